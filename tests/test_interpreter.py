"""The reference interpreter: every registry op reproduces eager dispatch when run from IR (and
survives a print/parse round trip), control flow, error context, and a 10,000-op chain."""

import sys

import numpy as np
import pytest
from test_registry import _cases

import tracejit as tj
from tracejit import ir, ops
from tracejit._tensor import dispatch
from tracejit.ir.interpreter import IRRuntimeError, run

_NUMBER = (bool, int, float)


def _scalar_type(v):
    return ir.NoneType() if v is None else ir.BoolType() if isinstance(v, bool) else \
        ir.IntType() if isinstance(v, int) else ir.FloatType()


def _value(g, a, feeds):
    """The IR value for one eager argument: tensors become graph inputs, the rest constants."""
    if isinstance(a, tj.Tensor):
        feeds.append(a.numpy().copy())
        return g.add_input(ir.TensorType(a.dtype, tuple(a.shape)))
    if isinstance(a, (list, tuple)):
        items = [_value(g, t, feeds) for t in a]
        return g.append("prim::ListConstruct", items, [ir.ListType(items[0].type if items else ir.NoneType())])
    return g.append("prim::Constant", (), [_scalar_type(a)], attrs={"value": a})


def _graph_of_call(op, args, attrs, outs):
    g = ir.Graph()
    feeds = []
    ins = [_value(g, a, feeds) for a in args]
    outs = outs if isinstance(outs, tuple) else (outs,)
    types = [ir.TensorType(o.dtype, tuple(o.shape)) for o in outs]
    node = g.body.append(g.create(op.name, ins, types, attrs=attrs, loc="tests/test_interpreter.py:1"))
    g.set_outputs(node.outputs)
    return g, feeds


@pytest.mark.parametrize("op, args, attrs", list(_cases()))
def test_interpreter_reproduces_eager_for_every_op(op, args, attrs):
    if op.kind == "random":
        pytest.skip("random ops draw from a generator object; the tracer bakes their samples in")
    eager = dispatch(op, tuple(args), attrs)
    g, feeds = _graph_of_call(op, args, attrs, eager)
    ir.verify(g, check_shapes=op.name not in ("tj::index", "tj::nonzero"))
    g = ir.parse(str(g))  # what the interpreter runs is what the text says
    got = run(g, *feeds)
    for e, r in zip(eager if isinstance(eager, tuple) else (eager,), got):
        assert r.dtype == e.numpy().dtype and r.shape == tuple(e.shape)
        np.testing.assert_array_equal(r, e.numpy())


def test_control_flow_and_value_release():
    text = """graph(%x : Float(3),
      %n : int):
  %c : bool = prim::Constant[value=True]()
  %out : Float(3) = prim::Loop(%n, %c, %x)
    block0(%i : int, %acc : Float(3)):
      %two : float = prim::Constant[value=2.0]()
      %y : Float(3) = tj::mul(%acc, %two)
      -> (%c, %y)
  %s : Float() = tj::sum[dim=None, keepdim=False](%out)
  %z : float = prim::Constant[value=0.0]()
  %pos : Bool() = tj::gt(%s, %z)
  %b : bool = prim::Bool(%pos)
  %r : Float(3) = prim::If(%b)
    block0():
      -> (%out)
    block1():
      %neg : Float(3) = tj::neg(%out)
      -> (%neg)
  return (%r)
"""
    g = ir.parse(text)
    ir.verify(g)
    x = np.array([1.0, -2.0, 3.0], np.float32)
    np.testing.assert_array_equal(run(g, x, 3)[0], x * 8)
    np.testing.assert_array_equal(run(g, -x - 2, 2)[0], (x + 2) * 4)
    np.testing.assert_array_equal(run(g, x, 0)[0], x)  # zero trips: the carried value passes through


def test_errors_name_the_node_and_line():
    g = ir.parse("graph(%a : Float(2),\n      %b : Float(3)):\n"
                 "  %1 : Float(2) = tj::add(%a, %b)  # model.py:12\n  return (%1)\n")
    with pytest.raises(IRRuntimeError, match=r"while executing %1 : Float\(2\) = tj::add\(%a, %b\)  # model.py:12"):
        run(g, np.ones(2, np.float32), np.ones(3, np.float32))
    with pytest.raises(TypeError, match="expects 2 inputs"):
        run(g, np.ones(2, np.float32))


def test_tensor_constants_come_from_the_table():
    g = ir.Graph()
    x = g.add_input(ir.TensorType(tj.float32, (3,)), "x")
    g.constants["w"] = np.array([1.0, 2.0, 3.0], np.float32)
    w = g.append("prim::Constant", (), [ir.TensorType(tj.float32, (3,))], attrs={"value": ir.ConstRef("w")})
    g.set_outputs([g.append("tj::mul", (x, w), [ir.TensorType(tj.float32, (3,))])])
    text = str(g)
    assert "@w" in text
    back = ir.parse(text, constants=g.constants)
    np.testing.assert_array_equal(run(back, np.ones(3, np.float32))[0], [1.0, 2.0, 3.0])


def test_ten_thousand_op_chain_runs_within_the_recursion_limit():
    g = ir.Graph()
    v = g.add_input(ir.TensorType(tj.float32, (4,)), "x")
    one = g.append("prim::Constant", (), [ir.FloatType()], attrs={"value": 1.0})
    for _ in range(10_000):
        v = g.append("tj::add", (v, one), [ir.TensorType(tj.float32, (4,))], attrs={"alpha": 1})
    g.set_outputs([v])
    g = ir.parse(str(g))
    ir.verify(g)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        out = run(g, np.zeros(4, np.float32))[0]
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_array_equal(out, np.full(4, 10_000.0, np.float32))


def test_op_lookup_uses_the_registry():
    g = ir.parse("graph(%a : Float(2)):\n  %1 : Float(2) = tj::not_an_op(%a)\n  return (%1)\n")
    with pytest.raises(IRRuntimeError, match="no op named 'tj::not_an_op'"):
        run(g, np.ones(2, np.float32))
    assert ops.get("tj::relu").impl is not None
