"""tracejit.script semantics: branches, loops, early returns, break/continue, run-time numbers, containers,
calls, annotations and decorators, each compared with eager on inputs that take different paths."""

import textwrap

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn as nn
from tests import script_models as sm
from tests.test_script import _as_list, _ops, _ThreeProblems
from tracejit import ir
from tracejit.ir.interpreter import ScriptException
from tracejit.jit import ScriptError

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
