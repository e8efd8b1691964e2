"""tracejit.script from Python source: control flow becomes prim::If / prim::Loop, checked against eager,
through save and the runtime (tracejit.load and tracejit-run)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn as nn
from tests import script_models as sm
from tracejit import ir
from tracejit.ir.interpreter import SCALAR_OPS
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


def test_the_decoder_example_runs():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "examples/script_decoder.py"], cwd=root, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "1 prim::Loop" in r.stdout and "equal to eager on 8 of 8" in r.stdout
