"""Hypothesis-generated graphs, nested blocks and every attribute kind included, print and
parse back byte for byte, and verify."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit import ir

DTYPES = [tj.float32, tj.float64, tj.float16, tj.int64, tj.int32, tj.bool]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**62), 2**62),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, math.inf, -math.inf, 1e-300]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    st.sampled_from(DTYPES),
)
ATTR = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.lists(inner, max_size=3).map(tuple)), max_leaves=6)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


def _tensor_type(draw):
    dims = draw(st.lists(st.one_of(st.integers(0, 9), st.sampled_from(["N", "M", "batch"])), max_size=3))
    return ir.TensorType(draw(st.sampled_from(DTYPES)), tuple(dims))


def _fill(draw, g, block, live, depth):
    """Append random nodes to `block` that read values in `live` (visible there); returns the new live list."""
    live = list(live)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["op", "const", "attrs", "if", "loop"] if depth < 2 else ["op", "const", "attrs"]))
        if kind == "const" or not live:
            v = g.append("prim::Constant", (), [ir.IntType()], attrs={"value": draw(st.integers(-5, 5))},
                         block=block)
            live.append(v)
        elif kind == "op":
            args = draw(st.lists(st.sampled_from(live), min_size=1, max_size=3))
            n = g.create(draw(st.sampled_from(["tj::add", "tj::relu", "my::custom"])), args,
                         [_tensor_type(draw) for _ in range(draw(st.integers(0, 2)))],
                         loc=draw(st.sampled_from(["", "model.py:12", "a/b c.py:3"])),
                         scope=draw(st.sampled_from(["", "encoder.layers.0"])))
            block.append(n)
            live.extend(n.outputs)
        elif kind == "attrs":
            attrs = {draw(NAMES): draw(ATTR) for _ in range(draw(st.integers(1, 3)))}
            v = g.append("my::attrs", (), [ir.NoneType()], attrs=attrs, block=block)
            live.append(v)
        elif kind == "if":
            cond = g.append("prim::Constant", (), [ir.BoolType()], attrs={"value": True}, block=block)
            n_out = draw(st.integers(0, 2))
            node = g.create("prim::If", [cond], [ir.IntType() for _ in range(n_out)])
            block.append(node)
            for _ in range(2):
                b = node.add_block()
                inner = _fill(draw, g, b, live, depth + 1)
                b.set_returns([draw(st.sampled_from(inner)) for _ in range(n_out)])
            live.extend(node.outputs)
        else:  # prim::Loop(max_trip, cond, carried...) with block (i, carried...) -> (cond, carried...)
            trip = g.append("prim::Constant", (), [ir.IntType()], attrs={"value": 3}, block=block)
            cond = g.append("prim::Constant", (), [ir.BoolType()], attrs={"value": True}, block=block)
            carried = draw(st.lists(st.sampled_from(live), max_size=2))
            node = g.create("prim::Loop", [trip, cond, *carried], [v.type for v in carried])
            block.append(node)
            body = node.add_block()
            g.add_param(body, ir.IntType(), "i")
            params = [g.add_param(body, v.type) for v in carried]
            inner = _fill(draw, g, body, live + params, depth + 1)
            c2 = g.append("prim::Constant", (), [ir.BoolType()], attrs={"value": False}, block=body)
            body.set_returns([c2, *[draw(st.sampled_from([p, *inner])) if p.type == ir.IntType() else p
                                     for p in params]])
            live.extend(node.outputs)
    return live


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_graphs_round_trip(data):
    draw = data.draw
    g = ir.Graph()
    live = [g.add_input(_tensor_type(draw), draw(NAMES)) for _ in range(draw(st.integers(0, 3)))]
    live = _fill(draw, g, g.body, live, 0)
    g.set_outputs(draw(st.lists(st.sampled_from(live), max_size=3)) if live else [])
    text = str(g)
    back = ir.parse(text)
    assert str(back) == text
    ir.verify(back, check_shapes=False)
