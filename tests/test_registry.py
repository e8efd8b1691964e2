"""The op registry: every entry is well formed, and its shape and dtype rules predict what eager runs give.

Each registered op needs a sample in SAMPLES (or a listed, reasoned exemption), so an op added
without one fails `test_every_op_has_a_sample`: new ops cannot slip in with rules nobody checked.
"""

import numpy as np
import pytest

import tracejit as tj
from tracejit import ops
from tracejit.ops import KINDS, ShapeError

ALL_OPS = ops.all_ops()

f = tj.tensor(np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3))
pos = f.abs() + 0.5
i = tj.tensor([[1, 2, 3], [4, 5, 6]])
row_i8 = tj.tensor([1, -2, 3], dtype=tj.int8)
u8 = tj.tensor([[1], [2]], dtype=tj.uint8)
h = tj.tensor([0.5, -1.5, 2.0], dtype=tj.float16)
b = tj.tensor([True, False, True])
d0 = tj.tensor(2.5, dtype=tj.float64)  # zero-dim: does not outrank dimensioned tensors of its category
img = tj.tensor(np.arange(72, dtype=np.float32).reshape(1, 2, 6, 6) / 10)
rng = np.random.default_rng(0)


def _pool_indices():
    return tj.dispatch(ops.get("tj::max_pool2d"), (img,), {**ops.get("tj::max_pool2d").attrs,
                                                            "kernel_size": (2, 2), "stride": (2, 2)})[1]


UNARY_FLOAT = ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "tanh",
               "sigmoid", "erf"]
BINARY_ANY = ["add", "mul", "div", "maximum", "minimum", "atan2", "eq", "ne", "lt", "le", "gt", "ge",
              "logical_and", "logical_or", "logical_xor"]
POOL = {"kernel_size": (2, 2), "stride": (2, 2)}

# op name: [(args, attrs)]; attrs extend the op's defaults. Several samples exercise promotion.
SAMPLES = {
    **{n: [((f,), {}), ((i,), {}), ((h,), {}), ((b,), {})] for n in UNARY_FLOAT},
    **{n: [((f,), {}), ((row_i8,), {}), ((h,), {})] for n in ("neg", "abs", "relu", "sign", "floor", "ceil", "trunc")},
    "round": [((f,), {"decimals": 1}), ((i,), {})],
    "logical_not": [((f,), {}), ((b,), {})],
    "bitwise_not": [((i,), {}), ((b,), {}), ((u8,), {})],
    **{n: [((f,), {}), ((i,), {}), ((h,), {})] for n in ("isnan", "isinf", "isfinite")},
    **{n: [((f, i), {}), ((u8, row_i8), {}), ((h, d0), {}), ((b, 2), {}), ((i, 0.5), {})] for n in BINARY_ANY},
    "sub": [((f, i), {"alpha": 2}), ((u8, row_i8), {}), ((h, d0), {})],
    "div": [((f, i), {}), ((i, row_i8), {"rounding_mode": "floor"}), ((u8, 2), {"rounding_mode": "trunc"})],
    **{n: [((f, pos), {}), ((i, row_i8), {}), ((u8, 3), {})] for n in ("remainder", "fmod")},
    "pow": [((pos, i), {}), ((i, 2), {}), ((2, row_i8.abs()), {}), ((h, 0.5), {})],
    **{n: [((i, row_i8), {}), ((b, b), {}), ((u8, 3), {})] for n in ("bitwise_and", "bitwise_or", "bitwise_xor")},
    "clamp": [((f, -0.5, 0.5), {}), ((i, f[0], None), {}), ((u8, None, 1), {})],
    "where": [((b, f, i), {}), ((b, h, 1.5), {}), ((b, 2, 3.5), {})],
    "masked_fill": [((f, b, 0.5), {}), ((i, b, 7), {})],
    "to_dtype": [((f,), {"dtype": tj.float16}), ((b,), {"dtype": tj.int64})],
    "clone": [((f.t(),), {})],
    "contiguous": [((f.t(),), {})],
    "full": [((), {"size": (2, 3), "fill_value": 1.5, "dtype": tj.float32})],
    "empty": [((), {"size": (0, 2), "dtype": tj.int8})],
    "arange": [((), {"start": 1, "end": 10, "step": 3, "dtype": tj.int64})],
    "linspace": [((), {"start": 0.0, "end": 1.0, "steps": 5, "dtype": tj.float64})],
    "eye": [((), {"n": 2, "m": 3, "dtype": tj.bool})],
    "rand": [((), {"size": (2, 2), "dtype": tj.float32, "generator": rng})],
    "randn": [((), {"size": (3,), "dtype": tj.float16, "generator": rng})],
    "randint": [((), {"low": 0, "high": 5, "size": (2, 3), "dtype": tj.int32, "generator": rng})],
    "randperm": [((), {"n": 4, "dtype": tj.int64, "generator": rng})],
    "matmul": [((f, f.t()), {}), ((i[0], i.t()), {}), ((img[0], img[0, 0]), {})],
    "linear": [((f, pos, pos[:, 0]), {}), ((img, img[0, 0], None), {})],
    "view": [((f,), {"shape_attr": (3, 2)})],
    "reshape": [((f.t(),), {"shape_attr": (6,)})],
    "permute": [((img,), {"dims": (3, 1, 0, 2)})],
    "expand": [((u8,), {"size": (4, 2, 3)})],
    "unsqueeze": [((f,), {"dim": 2})],
    "squeeze": [((u8,), {"dims": (1,)})],
    "slice": [((f,), {"dim": 1, "start": 0, "end": 3, "step": 2})],
    "select": [((f,), {"dim": 1, "index": 2})],
    "as_strided": [((f,), {"size": (2, 2), "stride": (1, 2), "storage_offset": 1})],
    "cat": [(([f, i],), {"dim": 1}), (([u8, row_i8.reshape(1, 3)[:, :1]],), {"dim": 0})],
    "stack": [(([f, i],), {"dim": 2}), (([b, b],), {"dim": 0})],
    "gather": [((f, tj.tensor([[2, 0], [1, 1]])), {"dim": 1}), ((f, tj.tensor([[2, 0, 1]])), {"dim": 1})],
    "scatter": [((f, tj.tensor([[2, 0, 1]]), pos), {"dim": 1}), ((i, tj.tensor([[1], [0]]), i), {"dim": 0,
                                                                                                 "reduce": "add"})],
    "index_select": [((img, tj.tensor([1, 1, 0])), {"dim": 1})],
    "repeat": [((u8,), {"repeats": (2, 1, 3)})],
    "flip": [((f,), {"dims": (0, 1)})],
    "roll": [((i,), {"shifts": (1,), "dims": (1,)}), ((i,), {"shifts": 2, "dims": ()})],
    "tril": [((f,), {"diagonal": 1})],
    "triu": [((img,), {"diagonal": -1})],
    "index_put": [((f, (tj.tensor([1, 0]),), tj.tensor(9.0)), {})],
    "copy": [((f, i[0]), {})],
    "sum": [((f,), {"dim": (1,), "keepdim": True}), ((b,), {}), ((i,), {"dtype": tj.float16})],
    "prod": [((i,), {"dim": (0,)}), ((h,), {})],
    "mean": [((f,), {"dim": (0, 1)}), ((i,), {"dtype": tj.float64, "dim": (1,)})],
    **{n: [((f,), {"dim": (1,), "keepdim": True}), ((u8,), {})] for n in ("amax", "amin")},
    **{n: [((f,), {"dim": 1}), ((i,), {"dim": None, "keepdim": True})] for n in ("argmax", "argmin")},
    **{n: [((f,), {"dim": 1, "keepdim": True}), ((u8,), {"dim": 0})] for n in ("max_dim", "min_dim")},
    **{n: [((f,), {"dim": (1,), "correction": 0}), ((h,), {})] for n in ("var", "std")},
    "logsumexp": [((f,), {"dim": (1,)}), ((i,), {"dim": (0, 1), "keepdim": True})],
    **{n: [((f,), {"dim": (1,)}), ((u8,), {}), ((b,), {"keepdim": True})] for n in ("all", "any")},
    "norm": [((f,), {"p": 3.0, "dim": (0,)}), ((h,), {"p": float("inf")})],
    **{n: [((f,), {"dim": 0}), ((h,), {"dim": 0})] for n in ("softmax", "log_softmax")},
    "cumsum": [((f,), {"dim": 1}), ((b,), {"dim": 0}), ((i,), {"dim": 0, "dtype": tj.float32})],
    "max_pool2d": [((img,), POOL), ((img,), {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)})],
    "max_pool2d_backward": [((img[:, :, :3, :3], _pool_indices()), {"input_size": (1, 2, 6, 6)})],
    "avg_pool2d": [((img,), POOL)],
    "avg_pool2d_backward": [((img[:, :, :3, :3],), {"input_size": (1, 2, 6, 6), **POOL})],
    "adaptive_max_pool2d": [((img,), {"output_size": (2, 3)})],
    "adaptive_avg_pool2d": [((img,), {"output_size": (4, 4)})],
    "adaptive_avg_pool2d_backward": [((img[:, :, :2, :2],), {"input_size": (1, 2, 6, 6)})],
    "conv2d": [((img, img[:, :, :3, :3].expand(3, 2, 3, 3), tj.ones(3)), {"padding": (1, 1)})],
    "conv_transpose2d": [((img, img[0, :, :3, :3].reshape(2, 1, 3, 3), None), {"stride": (2, 2)})],
    "conv2d_backward_weight": [((img, img[:, :1, :4, :4]), {"weight_size": (1, 2, 3, 3)})],
}

# Ops without a sample, each with its reason. Only factory, random and indexing ops may be here.
EXEMPT = {
    "tj::index": "result shape depends on index values (bool masks); its shape rule refuses on purpose",
    "tj::nonzero": "result shape depends on the values; its shape rule refuses on purpose",
}


def _shape_of(a):
    if isinstance(a, tj.Tensor):
        return tuple(a.shape)
    if isinstance(a, (list, tuple)) and a and isinstance(a[0], tj.Tensor):
        return [tuple(t.shape) for t in a]
    return ()


def _cases():
    for op in ALL_OPS:
        for k, (args, attrs) in enumerate(SAMPLES.get(op.name.removeprefix("tj::"), ())):
            yield pytest.param(op, args, {**op.attrs, **attrs}, id=f"{op.name}-{k}")


def test_names_are_unique_and_namespaced():
    names = [op.name for op in ALL_OPS]
    assert len(names) == len(set(names))
    assert all(n.startswith("tj::") and n[4:].isidentifier() for n in names)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.name)
def test_op_is_well_formed(op):
    assert op.kind in KINDS
    assert callable(op.impl) and callable(op.shape_rule) and callable(op.dtype_rule)
    assert all(isinstance(n, str) for n in op.inputs) and isinstance(op.attrs, dict)
    assert op.num_outputs >= 1 and all(0 <= c < len(op.inputs) for c in op.cast)
    assert (op.view_strides is not None) == op.is_view
    assert ops.get(op.name) is op and op.signature().startswith(op.name + "(")


def test_every_op_has_a_sample():
    """New ops need an entry in SAMPLES, or a reasoned exemption if they are factory/random/indexing ops."""
    missing = [op.name for op in ALL_OPS if op.name.removeprefix("tj::") not in SAMPLES and op.name not in EXEMPT]
    assert not missing, f"ops without a sample in tests/test_registry.py SAMPLES: {missing}"
    kinds = {op.name: op.kind for op in ALL_OPS}
    assert all(kinds.get(n) in ("factory", "random", "indexing") for n in EXEMPT), "only these kinds may be exempt"
    stale = set(SAMPLES) - {op.name.removeprefix("tj::") for op in ALL_OPS}
    assert not stale, f"samples for ops that are not registered: {stale}"


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("op, args, attrs", list(_cases()))
def test_rules_predict_eager_results(op, args, attrs):
    """Dispatching the sample gives the shape `shape_rule` predicts and the dtype `dtype_rule` gives."""
    out = tj.dispatch(op, args, attrs)
    outs = out if op.num_outputs > 1 else (out,)
    assert len(outs) == op.num_outputs
    shape = op.shape_rule([_shape_of(a) for a in args], **attrs)
    shapes = shape if op.num_outputs > 1 else (shape,)
    dtype = op.dtype_rule(args, attrs)[1]
    dtypes = dtype if op.num_outputs > 1 else (dtype,)
    for o, s, d in zip(outs, shapes, dtypes, strict=True):
        assert tuple(o.shape) == tuple(s)
        assert o.dtype is d


@pytest.mark.parametrize("name, shapes, attrs, expected", [
    ("tj::add", [("N", 3), (1, 3)], {}, ("N", 3)),
    ("tj::mul", [("N", 1), ("M",)], {}, ("N", "M")),
    ("tj::where", [("B", 1, 1), (1, "T", 1), (4,)], {}, ("B", "T", 4)),
    ("tj::sub", [("N",), ("N",)], {}, ("N",)),
    ("tj::eq", [("N", 3), ()], {}, ("N", 3)),
    ("tj::add", [("N", 3), (5, 1)], {}, (5, 3)),  # a symbol meeting a number takes the number
    ("tj::exp", [("B", "T")], {}, ("B", "T")),
    ("tj::sum", [("B", "T", 8)], {"dim": (1,), "keepdim": False}, ("B", 8)),
    ("tj::mean", [("B", "T", 8)], {"dim": (0, 2), "keepdim": True}, (1, "T", 1)),
    ("tj::argmax", [("B", 5)], {"dim": 1, "keepdim": True}, ("B", 1)),
    ("tj::max_dim", [("B", 5)], {"dim": 0}, ((5,), (5,))),
    ("tj::softmax", [("B", "C")], {"dim": 1}, ("B", "C")),
    ("tj::cumsum", [("N", 2)], {"dim": 0}, ("N", 2)),
    ("tj::matmul", [("B", "N", 4), (4, "M")], {}, ("B", "N", "M")),
    ("tj::matmul", [("N", "K"), ("K",)], {}, ("N",)),
])
def test_shape_rule_handles_symbolic_dims(name, shapes, attrs, expected):
    assert ops.get(name).shape_rule(shapes, **attrs) == expected


@pytest.mark.parametrize("name, shapes", [
    ("tj::add", [(2, 3), (4, 3)]),
    ("tj::mul", [("N", 3), (1, 4)]),
    ("tj::where", [(2,), (3,), (2,)]),
    ("tj::maximum", [(5, 2, 3), (2, 4)]),
])
def test_shape_rule_mismatch_names_both_shapes(name, shapes):
    with pytest.raises(ShapeError) as info:
        ops.get(name).shape_rule(shapes)
    msg = str(info.value)
    for s in shapes:
        assert "[" + ", ".join(map(str, s)) + "]" in msg
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name, shapes", [("tj::matmul", [(2, 3), (4, 5)]), ("tj::cat", [[(2, 3), (2, 4)]])])
def test_shape_rule_mismatch_in_other_ops_raises_shape_error(name, shapes):
    with pytest.raises(ShapeError):
        ops.get(name).shape_rule(shapes, **({"dim": 0} if name == "tj::cat" else {}))


def test_eager_broadcast_mismatch_raises_shape_error_naming_shapes():
    with pytest.raises(ShapeError) as info:
        tj.ones(2, 3) + tj.ones(4, 3)
    assert "[2, 3]" in str(info.value) and "[4, 3]" in str(info.value) and "tj::add" in str(info.value)
