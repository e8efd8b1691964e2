"""The runtime's program for graphs with control flow (tracejit.runtime.hybrid) against the reference
interpreter, on the scripted corpus and on errors raised by scripted code."""

import numpy as np
import pytest

import tracejit as tj
from tests import script_models as sm
from tracejit import ir
from tracejit.codegen import llvm_cpu
from tracejit.ir.interpreter import IRRuntimeError, ScriptException
from tracejit.runtime.hybrid import Program


def _corpus():
    tj.manual_seed(0)
    return [
        (sm.SignBranch(), tj.randn(2, 6), None, [(2, 6), (2, 6)]),
        (sm.ElmanRNN(), tj.randn(4, 2, 5), {"x": {0: "T"}}, [(1, 2, 5), (9, 2, 5)]),
        (sm.Beam(), tj.randn(3, 6), None, [(3, 6), (3, 6)]),
        (sm.ResNet(), tj.randn(3, 16), {"x": {0: "N"}}, [(1, 16), (5, 16)]),
    ]


@pytest.mark.parametrize("k", range(4))
def test_programs_match_the_interpreter(k):
    model, example, dims, shapes = _corpus()[k]
    graph = tj.script(model.eval(), example, dynamic_dims=dims).graph
    plain, native = Program(graph), Program(graph, llvm_cpu.compile_groups(graph))
    rng = np.random.default_rng(k)
    for scale, shape in zip((1.0, 30.0), shapes):
        x = (rng.standard_normal(shape) * scale).astype(np.float32)
        want = ir.run(graph, x)
        for got in (plain(x), native(x)):
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == w.shape
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        for g, w in zip(plain(x), want):  # the same registry ops in the same order: the same bits
            np.testing.assert_array_equal(g, w)


def test_errors_are_the_interpreters():
    def f(x):
        n = x.size(0)
        if x.sum() > 100:
            raise ValueError(f"too large with {n} rows")
        return x.log()

    graph = tj.script(f, tj.ones(3), dynamic_dims={"x": {0: "N"}}).graph
    prog = Program(graph)
    with pytest.raises(ScriptException, match="ValueError: too large with 60 rows"):
        prog(np.ones(60, np.float32) * 2)
    bad = ir.parse("graph(%x : Float(2)):\n  %1 : Float(2) = tj::view[shape_attr=(3,)](%x)\n  return (%1)\n")
    with pytest.raises(IRRuntimeError, match="while executing .*tj::view"):
        Program(bad)(np.ones(2, np.float32))
