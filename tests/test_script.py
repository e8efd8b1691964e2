"""tracejit.script from Python source: control flow becomes prim::If / prim::Loop, checked against eager,
through save and the runtime (tracejit.load and tracejit-run)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn as nn
from tests import script_models as sm
from tracejit import ir
from tracejit.ir.interpreter import SCALAR_OPS, ScriptException
from tracejit.jit import ScriptError
from tracejit.runtime import cli


def _as_list(out):
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in out]


def _corpus():
    tj.manual_seed(0)
    return {
        # name: (model, example, dynamic_dims, inputs that take other branches / iteration counts)
        "sign_branch": (sm.SignBranch(), tj.randn(2, 6), None,
                        [tj.randn(2, 6) - 3.0, -0.1 * tj.ones(2, 6), tj.ones(2, 6)]),
        "rnn": (sm.ElmanRNN(), tj.randn(4, 2, 5), {"x": {0: "T"}},
                [tj.randn(1, 2, 5), tj.randn(9, 2, 5), tj.randn(4, 2, 5)]),
        "beam": (sm.Beam(), tj.randn(3, 6), None, [tj.randn(3, 6) * 3.0, tj.randn(3, 6) * 0.01, tj.zeros(3, 6)]),
        "resnet": (sm.ResNet(), tj.randn(3, 16), {"x": {0: "N"}},
                   [tj.randn(3, 16) * 100.0, tj.randn(1, 16), tj.randn(6, 16) * 50.0]),
    }


def _ops(graph):
    return [n.op for n in graph.nodes()]


@pytest.mark.parametrize("name", ["sign_branch", "rnn", "beam", "resnet"])
def test_corpus_eager_script_load_cli(name, tmp_path):
    model, example, dims, others = _corpus()[name]
    model.eval()
    scripted = tj.script(model, example, dynamic_dims=dims)
    assert {"prim::If", "prim::Loop"} & set(_ops(scripted.graph))
    path = tmp_path / f"{name}.tj"
    scripted.save(path)
    loaded = tj.load(str(path))
    for k, x in enumerate([example, *others]):
        with tj.no_grad():
            want = _as_list(model(x))
        got = {"script": _as_list(scripted(x)), "load": _as_list(loaded(x.numpy()))}
        np.save(tmp_path / "x.npy", x.numpy())
        out = tmp_path / ("y.npz" if len(want) > 1 else "y.npy")
        assert cli.main([str(path), str(tmp_path / "x.npy"), "-o", str(out)]) == 0
        ran = np.load(out)
        got["tracejit-run"] = [ran[n] for n in loaded.output_names] if len(want) > 1 else [ran]
        for how, results in got.items():
            assert len(results) == len(want), how
            for g, w in zip(results, want):
                assert g.shape == w.shape, (how, k)
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5, err_msg=f"{how}, input {k}")


def test_corpus_inputs_take_different_paths():
    """The inputs above really exercise different branches and trip counts (else the corpus proves little)."""
    model, example, _, others = _corpus()["sign_branch"]
    branches = {0 if float(x.sum()) > 0 else 1 if float(x.mean()) < -1 else 2 for x in [example, *others]}
    assert branches == {0, 1, 2}
    model, example, _, others = _corpus()["beam"]
    model.eval()
    lengths = {model(x)[1].shape[1] for x in [example, *others]}
    assert len(lengths) >= 2
    model, example, _, others = _corpus()["resnet"]
    guards = set()
    for x in [example, *others]:
        for block in model.blocks:
            guards.add(bool(x.abs().max() > 10.0))
            x = block(x)
    assert guards == {True, False}


def test_corpus_runs_in_a_fresh_tracejit_run_process(tmp_path):
    model, example, dims, others = _corpus()["rnn"]
    model.eval()
    tj.script(model, example, dynamic_dims=dims).save(tmp_path / "rnn.tj")
    x = others[1]  # 9 time steps where the example had 4
    np.save(tmp_path / "x.npy", x.numpy())
    r = subprocess.run([sys.executable, "-m", "tracejit.runtime", str(tmp_path / "rnn.tj"), str(tmp_path / "x.npy"),
                        "-o", str(tmp_path / "y.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ran = np.load(tmp_path / "y.npz")
    with tj.no_grad():
        want = _as_list(model(x))
    names = sorted(ran.files)
    assert len(names) == 2
    loaded = tj.load(str(tmp_path / "rnn.tj"))
    for n, w in zip(loaded.output_names, want):
        np.testing.assert_allclose(ran[n], w, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["sign_branch", "rnn", "beam", "resnet"])
def test_scripted_ir_round_trips_through_the_parser(name):
    model, example, dims, _ = _corpus()[name]
    scripted = tj.script(model.eval(), example, dynamic_dims=dims)
    text = scripted.code
    again = ir.parse(text, constants=scripted.graph.constants)
    ir.verify(again)
    assert ir.print_graph(again) == text


# ---- errors -----------------------------------------------------------------------------------


class _ThreeProblems(nn.Module):
    def forward(self, x):
        with open("log.txt") as log:
            y = x * 2 + len(log.read())
        try:
            y = y + 1
        except RuntimeError:
            pass
        f = lambda v: v + 1  # noqa: E731
        return f(y)


def test_all_unsupported_constructs_are_reported_at_once():
    with pytest.raises(ScriptError) as e:
        tj.script(_ThreeProblems().eval(), tj.ones(2))
    msg = str(e.value)
    assert len(e.value.problems) == 3
    first = _ThreeProblems.forward.__code__.co_firstlineno
    lines = [p.line for p in e.value.problems]
    assert lines == [first + 1, first + 3, first + 7]
    for what in ("`with` blocks (other than torch.no_grad()", "try/except", "lambda"):
        assert what in msg
    assert "test_script.py" in msg and "hint:" in msg


def test_problems_in_submodules_and_helpers_are_reported_with_the_forward():
    class Inner(nn.Module):
        def forward(self, x):
            global _G  # noqa: PLW0602
            return x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return _helper_with_import(self.inner(x))

    with pytest.raises(ScriptError) as e:
        tj.script(Outer().eval(), tj.ones(2))
    whats = sorted(p.what for p in e.value.problems)
    assert whats == ["`global` statements", "imports inside scripted code"]


def _helper_with_import(x):
    import math  # noqa: F401

    return x


def test_branch_type_mismatch_names_the_variable():
    def f(x):
        if x.sum() > 0:
            y = x
        else:
            y = x.long()
        return y

    with pytest.raises(ScriptError, match=r"`y` is Float\(3\) on one path and Long\(3\)"):
        tj.script(f, tj.ones(3))


def test_variable_defined_on_one_path_only_is_an_error_when_used():
    def f(x):
        if x.sum() > 0:
            y = x * 2
        return y

    with pytest.raises(ScriptError, match="`y` is defined on some paths only"):
        tj.script(f, tj.ones(3))


def test_list_growing_in_a_data_dependent_loop_is_refused():
    def f(x):
        outs = []
        for t in range(x.size(0)):
            outs.append(x[t])
        return tj.stack(outs)

    with pytest.raises(ScriptError, match="list or dict `outs` changes length"):
        tj.script(f, tj.ones(3, 2), dynamic_dims={"x": {0: "T"}})


def test_return_inside_a_data_dependent_loop_is_refused():
    def f(x):
        for t in range(x.size(0)):
            if x[t].sum() > 0:
                return x[t]
        return x[0]

    with pytest.raises(ScriptError, match="`return` inside a loop that runs a data-dependent number of times"):
        tj.script(f, tj.ones(3, 2), dynamic_dims={"x": {0: "T"}})


def test_run_time_number_given_to_python_code_is_refused():
    def f(x):
        n = int(x.sum())
        return tj.zeros(n)

    with pytest.raises(ScriptError, match="known only at run time"):
        tj.script(f, tj.ones(3))


# ---- semantics ----------------------------------------------------------------------------------


def _check(fn, example, inputs, dims=None):
    s = tj.script(fn, example, dynamic_dims=dims)
    for x in [example, *inputs]:
        want, got = _as_list(fn(x)), _as_list(s(x))
        assert len(want) == len(got)
        for w, g in zip(want, got):
            assert w.shape == g.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return s


def test_early_returns_make_the_rest_part_of_both_branches():
    def f(x):
        if x.sum() > 10:
            return x * 0
        y = x + 1
        if y.mean() < 0:
            return -y
        return y * 2

    s = _check(f, tj.ones(3), [tj.ones(3) * 5, -tj.ones(3) * 3])
    assert _ops(s.graph).count("prim::If") == 2


def test_while_loop_with_counter_and_tensor_condition():
    def f(x):
        n = 0
        while x.sum() < 100:
            x = x * 2 + 1
            n += 1
        return x, tj.ones(1) * n

    s = _check(f, tj.ones(2), [tj.ones(2) * 200, tj.ones(2) * 0.01, -tj.ones(2) * 0.5])
    assert "prim::Loop" in _ops(s.graph)


def test_for_range_of_dynamic_size_with_start_and_step():
    def f(x):
        acc = x[0] * 0
        for i in range(1, x.size(0), 2):
            acc = acc + x[i] * i
        return acc

    _check(f, tj.randn(5, 3), [tj.randn(1, 3), tj.randn(2, 3), tj.randn(8, 3)], {"x": {0: "T"}})


def test_for_over_a_tensor_with_dynamic_first_dim():
    def f(x):
        s = x[0] * 0
        for row in x:
            s = s + row.relu()
        return s

    _check(f, tj.randn(4, 3), [tj.randn(1, 3), tj.randn(7, 3)], {"x": {0: "T"}})


def test_static_loops_unroll_and_known_conditions_fold():
    def f(x):
        for k in range(3):
            if k == 1:
                continue
            x = x + k
        i = 0
        while i < 2:
            x = x * 2
            i += 1
        return x

    s = _check(f, tj.ones(2), [tj.randn(2)])
    assert not {"prim::If", "prim::Loop"} & set(_ops(s.graph))


def test_scalar_arithmetic_on_run_time_sizes():
    def f(x):
        n = x.size(0)
        half = n // 2
        scale = n / 4 + (n % 3) - (-n) ** 2 // 7
        if half * 2 == n and n > 3:
            y = x[:1] * scale
        else:
            y = x[:1] - min(n, 3) + max(n, 5) + abs(-n)
        return y

    _check(f, tj.ones(4, 2), [tj.ones(5, 2), tj.ones(6, 2), tj.ones(1, 2), tj.ones(8, 2)], {"x": {0: "N"}})


def test_conditional_expression_and_boolean_operators():
    def f(x):
        big = x.sum() > 2
        y = x * 3 if big and x.mean() > 0 else x - 3
        z = y if not (x.max() > 5 or x.min() < -5) else y * 0
        return z

    _check(f, tj.ones(3), [tj.ones(3) * 0.1, tj.ones(3) * 9, -tj.ones(3) * 9])


def test_assert_and_raise_become_run_time_errors(tmp_path):
    def f(x):
        assert x.min() >= 0, "inputs must be non-negative"
        if x.sum() > 100:
            raise ValueError("too large")
        return x.sqrt()

    s = tj.script(f, tj.ones(3))
    assert "prim::RaiseException" in _ops(s.graph)
    np.testing.assert_allclose(s(tj.ones(3) * 4).numpy(), [2.0, 2.0, 2.0])
    with pytest.raises(ScriptException, match="AssertionError: inputs must be non-negative"):
        s(-tj.ones(3))
    with pytest.raises(ScriptException, match="ValueError: too large"):
        s(tj.ones(3) * 50)
    s.save(tmp_path / "f.tj")
    loaded = tj.load(str(tmp_path / "f.tj"))
    with pytest.raises(Exception, match="too large"):
        loaded(np.ones(3, np.float32) * 50)


def test_optional_input_checks_are_decided_at_compile_time():
    class M(nn.Module):
        def forward(self, x, bias=None):
            if bias is None:
                return x * 2
            return x + bias

    _check(M().eval(), tj.ones(2), [tj.randn(2)])


def test_isinstance_and_submodule_calls_and_helpers():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return _clip(self.fc(x))

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()
            self.seq = nn.Sequential(nn.Linear(3, 3), Inner())

        def forward(self, x):
            if isinstance(x, tj.Tensor):
                x = self.inner(x)
            return self.seq(x) * len(self.seq)

    m = Outer().eval()
    s = tj.script(m, tj.randn(2, 3))
    assert "prim::If" in _ops(s.graph)
    scopes = {n.scope for n in s.graph.nodes() if n.scope}
    assert "inner.fc" in scopes or any(sc.startswith("seq") for sc in scopes) or not scopes
    for x in (tj.randn(2, 3), tj.randn(2, 3) * 100):
        np.testing.assert_allclose(s(x).numpy(), m(x).numpy(), rtol=1e-5, atol=1e-6)


def _clip(y):
    if y.abs().max() > 1.0:
        return y / y.abs().max()
    return y


_CALLS = []


def test_trace_only_and_ignore():
    @tj.trace_only
    def traced_part(x):
        if x.sum() > 0:  # followed on the example only, as tracing does
            return x * 2
        return x

    @tj.ignore
    def log(x):
        _CALLS.append(1)

    def f(x):
        log(x)
        return traced_part(x) + 1

    with pytest.warns(tj.jit.TraceHazardWarning, match="bool"):
        s = tj.script(f, tj.ones(2))
    assert not {"prim::If"} & set(_ops(s.graph))
    assert s(tj.ones(2)).tolist() == [3.0, 3.0]
    before = len(_CALLS)
    f(tj.ones(2))
    assert len(_CALLS) == before + 1  # eager calls still run it


def test_script_without_examples_compiles_on_first_call(tmp_path):
    m = sm.SignBranch().eval()
    s = tj.script(m)
    with pytest.raises(tj.jit.TracingError, match="no graph yet"):
        s.save(tmp_path / "m.tj")
    x = tj.randn(2, 6)
    np.testing.assert_allclose(s(x).numpy(), m(x).numpy(), rtol=1e-5, atol=1e-6)
    assert "prim::If" in s.code
    s.save(tmp_path / "m.tj")
    np.testing.assert_allclose(tj.load(str(tmp_path / "m.tj"))(x.numpy()), m(x).numpy(), rtol=1e-5, atol=1e-6)


def test_script_without_examples_still_checks_the_source_at_once():
    with pytest.raises(ScriptError, match="3 problems"):
        tj.script(_ThreeProblems().eval())


def test_types_join_to_fresh_symbols_when_a_loop_grows_a_tensor():
    def f(x):
        seq = x[:, :1]
        while seq.shape[1] < 5 and seq.sum() < 1000:
            seq = tj.cat([seq, seq[:, -1:] * 2], dim=1)
        return seq

    s = _check(f, tj.ones(2, 3), [tj.ones(2, 3) * 400])
    loop = next(n for n in s.graph.nodes() if n.op == "prim::Loop")
    (out,) = [o for o in loop.outputs if isinstance(o.type, ir.TensorType)]
    assert out.type.shape[0] == 2 and isinstance(out.type.shape[1], str)


def test_source_of_user_code_in_a_file(tmp_path, monkeypatch):
    src = textwrap.dedent("""
        def f(x):
            y = x
            for i in range(x.size(0)):
                if i % 2 == 0:
                    y = y + x[i]
            return y
    """)
    (tmp_path / "usermod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    import usermod

    _check(usermod.f, tj.ones(3, 2), [tj.randn(6, 2), tj.randn(1, 2)], {"x": {0: "T"}})


# ---- IR level ------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(SCALAR_OPS))
def test_scalar_ops_follow_python(op):
    fn = SCALAR_OPS[op]
    unary = op in ("prim::neg", "prim::not", "prim::abs")
    for a in (-7, -1, 0, 3, 2.5, True):
        for b in ((None,) if unary else (-3, 2, 0.5, False)):
            args = (a,) if unary else (a, b)
            try:
                want = {"prim::add": lambda p, q: p + q, "prim::sub": lambda p, q: p - q,
                        "prim::mul": lambda p, q: p * q, "prim::truediv": lambda p, q: p / q,
                        "prim::floordiv": lambda p, q: p // q, "prim::mod": lambda p, q: p % q,
                        "prim::pow": lambda p, q: p ** q, "prim::neg": lambda p: -p, "prim::not": lambda p: not p,
                        "prim::lt": lambda p, q: p < q, "prim::le": lambda p, q: p <= q,
                        "prim::gt": lambda p, q: p > q, "prim::ge": lambda p, q: p >= q,
                        "prim::eq": lambda p, q: p == q, "prim::ne": lambda p, q: p != q,
                        "prim::and": lambda p, q: bool(p and q), "prim::or": lambda p, q: bool(p or q),
                        "prim::min": min, "prim::max": max, "prim::abs": abs}[op](*args)
            except ZeroDivisionError:
                with pytest.raises(ZeroDivisionError):
                    fn(*args)
                continue
            assert fn(*args) == want


def test_constant_scalar_ops_and_branches_fold_away():
    g = ir.parse(textwrap.dedent("""\
        graph(%x : Float(2)):
          %1 : int = prim::Constant[value=7]()
          %2 : int = prim::Constant[value=2]()
          %3 : int = prim::floordiv(%1, %2)
          %4 : bool = prim::gt(%3, %2)
          %5 : Float(2) = prim::If(%4)
            block0():
              %6 : Float(2) = tj::neg(%x)
              -> (%6)
            block1():
              -> (%x)
          return (%5)
        """))
    ir.run_passes(g)
    assert _ops(g) == ["tj::neg"]
    np.testing.assert_allclose(ir.run(g, np.ones(2, np.float32))[0], [-1.0, -1.0])


def test_annotations_are_read_and_checked():

    def scale(x: tj.Tensor, n: int, bias: tj.Tensor | None = None) -> tj.Tensor:
        y = x * n
        if bias is not None:
            y = y + bias
        return y

    def good(x):
        return scale(x, x.size(0), None) + scale(x, 2, x)

    _check(good, tj.ones(3), [tj.randn(5)], {"x": {0: "N"}})

    def bad(x):
        return scale(x, x.sum())

    with pytest.raises(ScriptError, match=r"argument `n` of .*scale is annotated int but gets Tensor"):
        tj.script(bad, tj.ones(3))


def test_passes_work_inside_blocks():
    def f(x):
        if x.sum() > 0:
            a = x.exp() * 2
            b = x.exp() * 2  # the same value: CSE
            unused = x.log()  # noqa: F841 - dead: DCE
            y = a + b
        else:
            y = x
        return y

    s = _check(f, tj.ones(3), [-tj.ones(3)])
    (if_node,) = [n for n in s.graph.body.nodes if n.op == "prim::If"]
    inner = [n.op for b in if_node.blocks for n in b.nodes]
    assert inner == ["prim::FusionGroup"]  # exp, mul, add fused; the duplicate and the log are gone
    group = if_node.blocks[0].nodes[0]
    assert [n.op for n in group.blocks[0].nodes].count("tj::exp") == 1


def test_nested_loops_and_branches_inside_loops():
    def f(x):
        total = x[0] * 0
        for i in range(x.size(0)):
            row = x[i]
            j = 0
            while j < i:
                row = row * 0.5
                j += 1
            if row.sum() > 0:
                total = total + row
            else:
                total = total - row
        return total

    _check(f, tj.randn(4, 3), [tj.randn(1, 3), tj.randn(6, 3), tj.ones(3, 3)], {"x": {0: "T"}})


def test_tuple_state_is_carried_through_a_loop():
    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.ih, self.hh = nn.Linear(4, 20), nn.Linear(5, 20)

        def forward(self, x, state):
            h, c = state
            i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, dim=1)
            c = tj.sigmoid(f) * c + tj.sigmoid(i) * tj.tanh(g)
            return tj.sigmoid(o) * tj.tanh(c), c

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = Cell()

        def forward(self, x):
            state = (x[0, :, :1] * 0 + tj.zeros(1, 5), x[0, :, :1] * 0 + tj.zeros(1, 5))
            for t in range(x.size(0)):
                state = self.cell(x[t], state)
            h, c = state
            return h + c

    _check(M().eval(), tj.randn(3, 2, 4), [tj.randn(1, 2, 4), tj.randn(7, 2, 4)], {"x": {0: "T"}})


class _Base(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            return x + 1
        return x - 1


class _Derived(_Base):
    def forward(self, x):
        return super().forward(x) * 2


def test_super_and_recursion_limit():
    _check(_Derived().eval(), tj.ones(3), [-tj.ones(3)])

    def forever(x):
        return forever(x)

    with pytest.raises(ScriptError, match="recursion"):
        tj.script(forever, tj.ones(2))


def test_grad_mode_blocks_run_inline():
    def f(x):
        with tj.no_grad():
            if x.sum() > 0:
                return x * 2
            y = x - 1
        return y

    _check(f, tj.ones(3), [-tj.ones(3)])


def test_python_number_inputs_are_constants_and_run_time_numbers_are_outputs():
    def f(x, n: int, scale=2.0):
        y = x
        for _ in range(n):
            y = y * scale
        return y, x.size(0) * n

    s = tj.script(f, tj.ones(3, 2), 3, dynamic_dims={"x": {0: "N"}})
    y, m = s(tj.ones(5, 2), 3)
    np.testing.assert_allclose(y.numpy(), np.full((5, 2), 8.0))
    assert m.dim() == 0 and int(m) == 15
    with pytest.raises(tj.jit.TracingError, match="Python numbers in them differ"):
        s(tj.ones(5, 2), 4)


def test_break_and_continue_under_run_time_conditions():
    def greedy(x):
        total = x[0] * 0
        for i in range(6):  # a constant range, left early on a condition known only at run time
            if total.sum() > 4:
                break
            if x[i % x.size(0)].sum() < 0:
                continue
            total = total + x[i % x.size(0)].abs()
        return total

    _check(greedy, tj.randn(3, 2), [tj.randn(3, 2) * 5, -tj.ones(3, 2), tj.ones(3, 2) * 0.1])

    def scan(x):
        acc = x[0] * 0
        n = 0
        for row in x:  # a dynamic number of rows
            n += 1
            if row.sum() < 0:
                continue
            acc = acc + row
            if acc.sum() > 3:
                break
        return acc, tj.ones(1) * n

    s = _check(scan, tj.randn(5, 2), [tj.randn(1, 2), tj.randn(9, 2) * 3, -tj.ones(4, 2)], {"x": {0: "T"}})
    assert "prim::Loop" in _ops(s.graph)

    def until(x):
        while x.sum() < 50:
            x = x * 2
            if x.max() > 20:
                break
        return x

    _check(until, tj.ones(2), [tj.ones(2) * 9, tj.ones(2) * 30, tj.ones(2) * 0.01])


def test_return_inside_loops():
    class Early(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])

        def forward(self, x):
            for k, layer in enumerate(self.layers):
                x = layer(x)
                if x.abs().max() > 2.0:
                    return x * 0 + k  # leaves the loop and the function
            return x

    _check(Early().eval(), tj.randn(2, 3), [tj.randn(2, 3) * 10, tj.randn(2, 3) * 0.01])

    def nested(x):
        for i in range(3):
            for j in range(2):
                if x.sum() > i * 2 + j:
                    return x * (i * 10 + j)
        return -x

    _check(nested, tj.ones(2) * 0.2, [tj.ones(2) * 1.6, tj.ones(2) * 10, -tj.ones(2)])

    def dynamic(x):
        for t in range(x.size(0)):
            if x[t].sum() > 0:
                return x[t]
        return x[0]

    with pytest.raises(ScriptError, match="`return` inside a loop that runs a data-dependent number of times"):
        tj.script(dynamic, tj.ones(3, 2), dynamic_dims={"x": {0: "T"}})


def test_compile_keeps_control_flow_and_falls_back_to_tracing():
    def f(x):
        if x.sum() > 0:
            return x.relu() * 2
        return x.abs()

    fast = tj.compile(f, tj.ones(3))
    assert fast.compiled and "prim::If" in fast.code
    for x in (tj.ones(3), -tj.ones(3), tj.randn(3)):
        np.testing.assert_allclose(fast(x).numpy(), f(x).numpy(), rtol=1e-6)

    def unscriptable(x):
        try:
            return x * 2
        except RuntimeError:
            return x

    with pytest.warns(tj.jit.TraceHazardWarning, match="traces this code instead of scripting it"):
        fast = tj.compile(unscriptable, tj.ones(3))
    np.testing.assert_allclose(fast(tj.ones(3)).numpy(), [2.0, 2.0, 2.0])


def _chain(x):
    if x.mean() > 0:
        return x * 2
    return x - 1


def test_lambdas_are_scripted_from_their_file():
    scale = 3.0
    f = lambda x: _chain(x) * scale  # noqa: E731
    s = _check(f, tj.ones(2), [-tj.ones(2)])
    assert "prim::If" in _ops(s.graph)


def test_constants_leave_loop_bodies():
    def f(x):
        acc = x[0] * 0
        for t in range(x.size(0)):
            acc = acc * 0.5 + x[t] * 3
        return acc

    s = _check(f, tj.randn(4, 2), [tj.randn(7, 2)], {"x": {0: "T"}})
    (loop,) = [n for n in s.graph.body.nodes if n.op == "prim::Loop"]
    assert not [n for n in loop.blocks[0].nodes if n.op == "prim::Constant"]


def test_an_object_that_differs_by_run_time_path_is_an_error_only_when_read():
    class M(nn.Module):
        def __init__(self, read_after):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
            self.read_after = read_after

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
                if x.sum() > 0:
                    break
            if self.read_after:
                return layer(x)  # which layer depends on where the loop stopped
            return x

    _check(M(False).eval(), tj.randn(1, 2), [tj.ones(1, 2) * 5, -tj.ones(1, 2) * 5])
    with pytest.raises(ScriptError, match="`layer` is a different Linear on each path"):
        tj.script(M(True).eval(), tj.randn(1, 2))
