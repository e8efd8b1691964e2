"""The IR: build graphs, print, parse back byte for byte, verify; errors name line/column or node."""

import math
import sys
import time

import pytest

from tracejit import dtypes
from tracejit.devices import device
from tracejit.ir import (
    BoolType,
    ConstRef,
    FloatType,
    Graph,
    IntType,
    IRParseError,
    IRVerifyError,
    ListType,
    NoneType,
    StrType,
    TensorType,
    TupleType,
    format_attr,
    parse,
    topological_order,
    verify,
)
from tracejit.ir.graph import Node

F32 = dtypes.float32

DESIGN_EXAMPLE = """\
graph(%x : Float(N, 784),
      %fc1.weight : Float(512, 784),
      %fc1.bias : Float(512)):
  %1 : Float(N, 512) = tj::linear(%x, %fc1.weight, %fc1.bias)  # examples/mlp.py:14
  %2 : Float(N, 512) = tj::relu(%1)  # examples/mlp.py:14
  %3 : Float() = tj::sum(%2)
  %4 : bool = tj::bool(%3)  # examples/mlp.py:15
  %5 : Float(N, 512) = prim::If(%4)
    block0():
      -> (%2)
    block1():
      %6 : Float(N, 512) = tj::neg(%2)
      -> (%6)
  return (%5)
"""


def roundtrip(g):
    text = str(g)
    g2 = parse(text)
    assert str(g2) == text
    return text, g2


def mlp_graph():
    g = Graph()
    x = g.add_input(TensorType(F32, ("N", 784)), "x")
    w = g.add_input(TensorType(F32, (512, 784)), "fc1.weight")
    b = g.add_input(TensorType(F32, (512,)), "fc1.bias")
    t = TensorType(F32, ("N", 512))
    h1 = g.append("tj::linear", [x, w, b], [t], loc="examples/mlp.py:14")
    h2 = g.append("tj::relu", [h1], [t], loc="examples/mlp.py:14")
    s = g.append("tj::sum", [h2], [TensorType(F32, ())])
    c = g.append("tj::bool", [s], [BoolType()], loc="examples/mlp.py:15")
    node = g.create("prim::If", [c], [t])
    g.body.append(node)
    then, other = node.add_block(), node.add_block()
    then.set_returns([h2])
    neg = g.append("tj::neg", [h2], [t], block=other)
    other.set_returns([neg])
    g.set_outputs(node.outputs)
    return g


def test_mlp_prints_exactly_like_design_md():
    g = mlp_graph()
    assert str(g) == DESIGN_EXAMPLE
    roundtrip(g)
    verify(g)
    verify(parse(DESIGN_EXAMPLE))


def test_if_inside_loop_roundtrip_and_verify():
    g = Graph()
    n = g.add_input(IntType(), "n")
    x = g.add_input(TensorType(F32, ("N",)), "x")
    true = g.append("prim::Constant", [], [BoolType()], {"value": True})
    loop = g.body.append(g.create("prim::Loop", [n, true, x], [x.type]))
    body = loop.add_block()
    i = g.add_param(body, IntType(), "i")
    acc = g.add_param(body, x.type, "acc")
    zero = g.append("prim::Constant", [], [IntType()], {"value": 0}, block=body)
    cond = g.append("tj::gt", [i, zero], [BoolType()], block=body, scope="loop")
    branch = body.append(g.create("prim::If", [cond], [x.type]))
    b0, b1 = branch.add_block(), branch.add_block()
    b0.set_returns([g.append("tj::neg", [acc], [x.type], block=b0)])
    b1.set_returns([acc])
    body.set_returns([true, branch.outputs[0]])
    g.set_outputs(loop.outputs)
    verify(g)
    text, g2 = roundtrip(g)
    verify(g2)
    assert "    block0(%i : int, %acc : Float(N)):\n" in text
    assert "        block1():\n          -> (%acc)\n" in text
    assert [n.op for n in g2.nodes()] == [n.op for n in g.nodes()]


ATTRS = {
    "i": 3,
    "neg": -7,
    "big": 2**70,
    "f": 1.5,
    "tiny": 1e-300,
    "third": 1 / 3,
    "inf": math.inf,
    "ninf": -math.inf,
    "nan": math.nan,
    "nzero": -0.0,
    "fint": 2.0,
    "t": True,
    "fa": False,
    "s": 'a "quoted"\\ \n\t\x01 ünï',
    "empty": "",
    "n": None,
    "l": [1, 2.5, "x", None],
    "tup": (1, (2,), ()),
    "el": [],
    "nested": [[1], [[2, 3]]],
    "dt": dtypes.float32,
    "dts": [dtypes.int64, dtypes.bool_],
    "w": ConstRef("fc1.weight"),
}


def test_every_attribute_type_roundtrips():
    g = Graph()
    g.set_outputs([g.append("prim::Constant", [], [NoneType()], dict(ATTRS))])
    text, g2 = roundtrip(g)
    got = next(g2.nodes()).attrs
    assert list(got) == list(ATTRS)
    for k, v in ATTRS.items():
        if isinstance(v, float) and math.isnan(v):
            assert math.isnan(got[k])
        elif isinstance(v, float):
            assert got[k] == v and type(got[k]) is float and math.copysign(1, got[k]) == math.copysign(1, v)
        else:
            assert got[k] == v and type(got[k]) is type(v)
    assert "w=@fc1.weight" in text and "fint=2.0" in text and "nzero=-0.0" in text


def test_attribute_syntax_is_documented_form():
    text = format_attr([1, (2,), (), 'a"b', None, True, dtypes.float16])
    assert text == '[1, (2,), (), "a\\"b", None, True, tracejit.float16]'


def test_types_roundtrip():
    g = Graph()
    types = [
        TensorType(F32, ("N", 3, "C")),
        TensorType(dtypes.float64, ()),
        TensorType(dtypes.int8, None),
        TensorType(),
        TensorType(dtypes.uint8, (2,), device("cuda:1")),
        IntType(),
        FloatType(),
        BoolType(),
        StrType(),
        NoneType(),
        ListType(IntType()),
        TupleType([TensorType(dtypes.bool_, (1,)), ListType(FloatType())]),
        TupleType([]),
    ]
    vals = [g.add_input(t) for t in types]
    g.set_outputs(vals)
    text, g2 = roundtrip(g)
    assert [v.type for v in g2.inputs] == types
    assert "Byte(2, device=cuda:1)" in text and "Char(*)" in text and "Tuple[]" in text


def test_constants_table_by_name_never_inline():
    import numpy as np

    g = Graph()
    g.constants["w0"] = np.ones((1000, 1000), np.float32)
    g.set_outputs([g.append("prim::Constant", [], [TensorType(F32, (1000, 1000))], {"value": ConstRef("w0")})])
    text = str(g)
    assert "value=@w0" in text and len(text) < 200
    g2 = parse(text, constants=g.constants)
    assert g2.constants["w0"] is g.constants["w0"]
    with pytest.raises(IRParseError, match="@w0"):
        parse(text, constants={})


def test_multi_output_zero_output_scope_and_names():
    g = Graph()
    x = g.add_input(TensorType(F32, (4, 5)), "x")
    n = g.body.append(
        g.create(
            "tj::max_dim",
            [x],
            [TensorType(F32, (4,)), TensorType(dtypes.int64, (4,))],
            {"dim": 1},
            loc="m.py:3",
            scope="model.head",
            names=["v", "x"],
        )
    )
    g.body.append(g.create("prim::Print", [n.outputs[0]]))
    g.set_outputs(n.outputs)
    text, g2 = roundtrip(g)
    assert "  %v : Float(4), %x.1 : Long(4) = tj::max_dim[dim=1](%x)  # scope=model.head m.py:3\n" in text
    assert "  = prim::Print(%v)\n" in text
    assert list(g2.nodes())[0].scope == "model.head"
    verify(g2)


@pytest.mark.parametrize(
    "text, line, col, expect",
    [
        ("graph(%x : int):\n  %1 : int = tj::add(%x %x)\n  return (%1)\n", 2, 25, "','"),
        ("graph(%x : int):\n  return (%x\n", 2, 13, "'\\)'"),
        ("graph(%x : Floot(3)):\n  return (%x)\n", 1, 12, "unknown dtype"),
        ("graph(%x : int):\n   return (%x)\n", 2, 4, "indented"),
        ("graph(%x : int):\n  block0():\n  return (%x)\n", 2, 3, "indented"),
        ("graph(%x : int):\n    block0():\n  return (%x)\n", 2, 5, "expected a node line"),
        ("graph(%x : int):\n  %1 : int = tj::neg(%y)\n  return (%1)\n", 2, 22, "never defined"),
        ("graph(%x : int):\n  %x : int = tj::neg(%x)\n  return (%x)\n", 2, 3, "defined twice"),
        ("graph(%x : int):\n  %1 : int = prim::Constant[v=$]()\n  return (%1)\n", 2, 31, "unexpected character"),
        ("graph(%x : int):\n  -> (%x)\n", 2, 3, "outside of a block"),
    ],
)
def test_parse_errors_name_line_and_column(text, line, col, expect):
    with pytest.raises(IRParseError, match=expect) as e:
        parse(text)
    assert (e.value.line, e.value.column) == (line, col), str(e.value)
    assert f"line {line}, column {col}" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_return():
    with pytest.raises(IRParseError, match="return"):
        parse("graph(%x : int):\n")


def test_verify_use_before_def():
    g = parse("graph(%x : int):\n  %1 : int = tj::neg(%2)\n  %2 : int = tj::neg(%x)\n  return (%1)\n")
    with pytest.raises(IRVerifyError, match=r"%2 is used before its definition[\s\S]*tj::neg\(%2\)"):
        verify(g)


def test_verify_use_outside_defining_block():
    text = DESIGN_EXAMPLE.replace("  return (%5)", "  return (%6)")
    with pytest.raises(IRVerifyError, match="%6 is used outside the block"):
        verify(parse(text))


def test_verify_double_definition():
    g = Graph()
    x = g.add_input(IntType(), "x")
    n = g.create("tj::neg", [x], [IntType()])
    g.body.append(n)
    m = Node("tj::neg", [x])
    m.outputs.append(n.outputs[0])
    g.body.append(m)
    g.set_outputs(n.outputs)
    with pytest.raises(IRVerifyError, match="defined more than once"):
        verify(g)


def test_verify_block_arity():
    with pytest.raises(IRVerifyError, match=r"block1 returns 0 values but the node has 1 outputs[\s\S]*prim::If"):
        verify(parse(DESIGN_EXAMPLE.replace("      -> (%6)", "      -> ()")))
    with pytest.raises(IRVerifyError, match="exactly one condition"):
        verify(parse(DESIGN_EXAMPLE.replace("prim::If(%4)", "prim::If(%4, %4)")))
    loop = (
        "graph(%n : int, %c : bool, %x : int):\n  %y : int = prim::Loop(%n, %c, %x)\n"
        "    block0(%i : int, %a : int):\n      -> (%c, %a)\n  return (%y)\n"
    )
    verify(parse(loop))
    with pytest.raises(IRVerifyError, match="must return"):
        verify(parse(loop.replace("-> (%c, %a)", "-> (%a)")))
    with pytest.raises(IRVerifyError, match="must take"):
        bad = loop.replace("block0(%i : int, %a : int)", "block0(%a : int)").replace("-> (%c, %a)", "-> (%c, %n)")
        verify(parse(bad))
    with pytest.raises(IRVerifyError, match="condition"):
        verify(parse(loop.replace("-> (%c, %a)", "-> (%i, %a)")))


def test_verify_shape_rule():
    ok = "graph(%a : Float(2, 3), %b : Float(3)):\n  %1 : Float(2, 3) = tj::add(%a, %b)\n  return (%1)\n"
    verify(parse(ok))
    with pytest.raises(IRVerifyError, match="shape rule gives"):
        verify(parse(ok.replace("%1 : Float(2, 3)", "%1 : Float(3, 3)")))
    with pytest.raises(IRVerifyError, match="rejects its input shapes"):
        verify(parse(ok.replace("%b : Float(3)", "%b : Float(4)")))
    verify(parse(ok.replace("Float(2, 3)", "Float(N, 3)")))  # symbolic: skipped


def test_insert_replace_erase_topo():
    g = Graph()
    x = g.add_input(IntType(), "x")
    a = g.append("tj::neg", [x], [IntType()])
    b = g.append("tj::neg", [a], [IntType()])
    g.set_outputs([b])
    c_node = g.create("tj::abs", [x], [IntType()])
    a.node.insert_after(c_node)
    d_node = g.create("tj::abs", [x], [IntType()])
    a.node.insert_before(d_node)
    assert [n.outputs[0] for n in g.body.nodes] == [d_node.outputs[0], a, c_node.outputs[0], b]
    a.replace_all_uses_with(c_node.outputs[0])
    assert b.node.inputs == [c_node.outputs[0]] and not a.uses
    with pytest.raises(RuntimeError, match="still used"):
        c_node.erase()
    a.node.erase()
    d_node.erase()
    assert [n.op for n in g.body.nodes] == ["tj::abs", "tj::neg"] and len(x.uses) == 1
    verify(g)
    # topological_order fixes a shuffled block and keeps a valid one unchanged.
    g.body.nodes.reverse()
    with pytest.raises(IRVerifyError):
        verify(g)
    g.body.nodes[:] = topological_order(g.body)
    verify(g)
    assert str(parse(str(g))) == str(g)


def test_ten_thousand_node_chain():
    limit = sys.getrecursionlimit()
    g = Graph()
    v = g.add_input(TensorType(F32, ("N", 16)), "x")
    for k in range(10_000):
        v = g.append("tj::relu" if k % 2 else "tj::neg", [v], [v.type], loc=f"model.py:{k}")
    g.set_outputs([v])
    text = str(g)
    t0 = time.perf_counter()
    g2 = parse(text)
    dt = time.perf_counter() - t0
    print(f"\nparse of a 10,000-node graph ({len(text)} chars): {dt:.3f} s")
    assert str(g2) == text
    verify(g2)
    assert len(topological_order(g2.body)) == 10_000
    assert sys.getrecursionlimit() == limit


def test_deep_nesting_is_iterative():
    # 600 nested prim::If blocks under a recursion limit of 300: only iterative walks survive this.
    g = Graph()
    c = g.add_input(BoolType(), "c")
    x = g.add_input(IntType(), "x")
    blk, nodes = g.body, []
    for _ in range(600):
        n = blk.append(g.create("prim::If", [c], [IntType()]))
        nodes.append(n)
        inner, other = n.add_block(), n.add_block()
        other.set_returns([x])
        blk = inner
    blk.set_returns([x])
    for n in reversed(nodes[1:]):
        n.owner.set_returns(n.outputs)
    g.set_outputs(nodes[0].outputs)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        verify(g)
        text = str(g)
        g2 = parse(text)
        verify(g2)
        assert len(list(g2.nodes())) == 600
    finally:
        sys.setrecursionlimit(limit)
    assert str(g2) == text


def test_ir_imports_no_front_end():
    import subprocess

    code = (
        "import sys, tracejit.ir\n"
        "allowed = ('ir', 'dtypes', 'devices', 'ops', 'errors')\n"
        "bad = [m for m in sys.modules if m.startswith('tracejit.') and m.split('.')[1] not in allowed]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_printer_refuses_text_it_could_not_parse_back():
    g = Graph()
    g.set_outputs([g.append("prim::Constant", [], [IntType()], {"bad name": 1})])
    with pytest.raises(ValueError, match="identifiers"):
        str(g)
    g = Graph()
    g.set_outputs([g.append("tj::neg", [g.add_input(IntType())], [IntType()], scope="a b")])
    with pytest.raises(ValueError, match="whitespace"):
        str(g)
    with pytest.raises(ValueError, match="symbolic dim"):
        TensorType(F32, ("N+1",))


def test_verify_if_condition_must_be_bool_and_static_linear_shape():
    with pytest.raises(IRVerifyError, match="condition %3 must be bool"):
        verify(parse(DESIGN_EXAMPLE.replace("prim::If(%4)", "prim::If(%3)")))
    static = DESIGN_EXAMPLE.replace("N", "8")
    verify(parse(static))
    with pytest.raises(IRVerifyError, match=r"shape rule gives \(8, 512\)[\s\S]*tj::linear"):
        verify(parse(static.replace("%1 : Float(8, 512)", "%1 : Float(8, 511)")))


def test_topological_order_sees_uses_inside_nested_blocks():
    text = DESIGN_EXAMPLE.replace("  %2 : Float(N, 512) = tj::relu(%1)  # examples/mlp.py:14\n", "")
    text = text.replace("  return (%5)", "  %2 : Float(N, 512) = tj::relu(%1)  # examples/mlp.py:14\n  return (%5)")
    text = text.replace("tj::sum(%2)", "tj::sum(%1)")
    g = parse(text)
    with pytest.raises(IRVerifyError, match="%2 is used before its definition"):
        verify(g)
    g.body.nodes[:] = topological_order(g.body)
    verify(g)
    assert [n.op for n in g.body.nodes][:2] == ["tj::linear", "tj::sum"]
    assert g.body.nodes.index(next(n for n in g.body.nodes if n.op == "tj::relu")) < 4


def test_verify_checks_each_op_dtype_rule_and_scalar_operands():
    bad_dtype = ("graph(%a : Float(2)):\n  %c : int = prim::Constant[value=1]()\n"
                 "  %1 : Long(2) = tj::add(%a, %c)\n  return (%1)\n")
    with pytest.raises(IRVerifyError, match="dtype rule gives tracejit.float32"):
        verify(parse(bad_dtype))
    bad_shape = ("graph(%a : Float(2)):\n  %c : float = prim::Constant[value=1.0]()\n"
                 "  %1 : Float(3) = tj::mul(%a, %c)\n  return (%1)\n")
    with pytest.raises(IRVerifyError, match="shape rule gives"):
        verify(parse(bad_shape))
    ok = bad_dtype.replace("Long(2) = tj::add", "Float(2) = tj::add")
    verify(parse(ok))


def test_shipped_parse_tables_are_current_and_parse_like_a_fresh_parser():
    import json

    from tracejit.ir import parser as P

    with open(P.TABLES_PATH, encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["key"] == P._tables_key(), "regenerate: python -c 'from tracejit.ir.parser import write_tables; ...'"
    loaded = P._load_tables()
    assert loaded is not None
    import pathlib

    for path in sorted(pathlib.Path(__file__).parent.joinpath("golden").glob("*.tjir")):
        text = path.read_text()
        with P._LOCK:
            P._PARSER = loaded
        a = str(P.parse(text))
        with P._LOCK:
            P._PARSER = P._build()
        assert str(P.parse(text)) == a == text
