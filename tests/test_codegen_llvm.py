"""LLVM CPU kernels for fusion groups: same values as the interpreter (nan, inf and -0.0
included) for every lowered op and dtype, any input strides, row-wise and trailing reductions,
thread splitting, vectorized loops, and a clean refusal for what the backend does not lower."""

import re

import numpy as np
import pytest

import tracejit as tj
import tracejit.ops as ops
from tracejit import dtypes as D
from tracejit import ir
from tracejit.codegen import llvm_cpu
from tracejit.codegen.llvm_cpu import LOWER, Kernel, emit_group, emit_object, load_object, lower_group
from tracejit.codegen.llvm_math import MATH
from tracejit.ir.passes import _make_group
from tracejit.ir.types import BoolType, FloatType, IntType, TensorType
from tracejit.ops import parallel

F = tj.nn.functional
SPECIAL = [0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 1e-38, 3e38]

# Elementwise registry ops with no LOWER entry, each with the reason. Empty: every elementwise op has
# an entry (an entry may still refuse some dtypes or attributes; see REFUSED below). A newly
# registered elementwise op fails test_every_elementwise_op_has_a_lowering until it is lowered or
# listed here.
NOT_LOWERED = {}


def _compare(got, want, rtol, atol=0.0, signed_zeros=False):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(np.isinf(g) & (g > 0), np.isinf(w) & (w > 0))
    np.testing.assert_array_equal(np.isinf(g) & (g < 0), np.isinf(w) & (w < 0))
    finite = np.isfinite(w)
    np.testing.assert_allclose(g[finite], w[finite], rtol=rtol, atol=atol)
    if signed_zeros:
        zero = finite & (w == 0)
        np.testing.assert_array_equal(np.signbit(g[zero]), np.signbit(w[zero]))


def _traced(fn, *examples, fuse=True):
    """(graph, its only fusion group) for `fn` traced on arrays; a lone op is wrapped as a group."""
    t = tj.trace(fn, tuple(tj.tensor(a) for a in examples), check_trace=False)
    g = ir.parse(t.code)
    ir.run_passes(g, ["fuse"])
    groups = [node for node in g.nodes() if node.op == "prim::FusionGroup"]
    if not groups:
        _make_group(g, g.body, list(g.body.nodes))
        groups = [node for node in g.nodes() if node.op == "prim::FusionGroup"]
    assert len(groups) == 1, str(g)
    return g, groups[0]


def _check(fn, *arrays, rtol=1e-6, atol=0.0, in_strides=None, feeds=None, signed_zeros=False):
    """Lower the group of `fn` and compare it with the interpreter on `arrays` (or `feeds`)."""
    g, group = _traced(fn, *arrays)
    kernel = lower_group(group, in_strides)
    assert kernel is not None, str(g)
    feeds = arrays if feeds is None else feeds
    env = dict(zip(g.inputs, feeds))
    assert set(group.inputs) <= set(env), "the group reads values computed outside it"
    got = kernel(*[env[v] for v in group.inputs])
    want = ir.run(g, *[np.ascontiguousarray(a) for a in feeds])
    assert set(group.outputs) <= set(g.outputs)
    for o, v in zip(got, group.outputs):
        _compare(o, want[g.outputs.index(v)], rtol, atol, signed_zeros)
    return kernel


def _values(dtype, n=64, seed=0, trig=False):
    rng = np.random.default_rng(seed)
    if dtype is D.bool_:
        return rng.random(n) < 0.5
    if not dtype.is_floating_point:
        info = np.iinfo(dtype.np)
        x = rng.integers(-50, 50, n).astype(dtype.np)
        x[:3] = [0, info.min, info.max] if not trig else [0, -1000, 1000]  # sin(2**63) is beyond MATH's bounds
        return rng.permutation(x)
    x = (rng.standard_normal(n) * 10).astype(dtype.np)
    special = SPECIAL[:-2] if trig or dtype is D.float16 else SPECIAL
    x[: len(special)] = special
    return rng.permutation(x)


def _scalar_type(v):
    return BoolType() if isinstance(v, bool) else IntType() if isinstance(v, int) else FloatType()


class _Meta:
    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = dtype, ndim


def _op_group(name, args, attrs, n=64):
    """A graph holding one group with one op: args are dtypes (tensor inputs) or Python constants."""
    op = ops.get(name)
    g = ir.Graph()
    run, inputs, metas = [], [], []
    for a in args:
        if isinstance(a, D.dtype):
            inputs.append(g.add_input(TensorType(a, (n,))))
            metas.append(_Meta(a, 1))
        else:
            c = g.append("prim::Constant", (), [_scalar_type(a) if a is not None else ir.NoneType()],
                         attrs={"value": a})
            run.append(c.node)
            inputs.append(c)
            metas.append(a)
    attrs = {**op.attrs, **attrs}
    try:
        _, out = op.dtype_rule(tuple(metas), attrs)
    except TypeError:
        return None, None  # the registry refuses these operands
    y = g.append(name, inputs, [TensorType(out, (n,))], attrs=attrs)
    g.set_outputs([y])
    _make_group(g, g.body, [*run, y.node])
    return g, next(node for node in g.nodes() if node.op == "prim::FusionGroup")


T, B = "tensor", "bool tensor"  # placeholders in CASES: the dtype under test, a bool mask
_UNARY = ["neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "tanh",
          "sigmoid", "erf", "relu", "sign", "floor", "ceil", "trunc", "round", "logical_not", "bitwise_not",
          "isnan", "isinf", "isfinite"]
_BINARY = ["add", "sub", "mul", "div", "remainder", "fmod", "pow", "maximum", "minimum", "atan2", "eq", "ne", "lt",
           "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"]
CASES = [(f"tj::{u}", (T,), {}) for u in _UNARY] + [(f"tj::{b}", (T, T), {}) for b in _BINARY] + [
    ("tj::add", (T, T), {"alpha": 2}),
    ("tj::sub", (T, 3), {"alpha": -1}),
    ("tj::mul", (T, 0.1), {}),
    ("tj::div", (T, T), {"rounding_mode": "trunc"}),
    ("tj::div", (T, T), {"rounding_mode": "floor"}),
    ("tj::div", (T, 3), {"rounding_mode": "floor"}),
    ("tj::div", (T, -4), {"rounding_mode": "floor"}),
    ("tj::div", (T, 0.25), {}),
    ("tj::remainder", (T, 3), {}),
    ("tj::remainder", (T, -4), {}),
    ("tj::fmod", (T, -3), {}),
    ("tj::pow", (T, 2), {}),
    ("tj::pow", (T, 0.5), {}),
    ("tj::pow", (T, 3), {}),
    ("tj::clamp", (T, -2, 5), {}),
    ("tj::clamp", (T, None, 2.5), {}),
    ("tj::where", (B, T, T), {}),
    ("tj::where", (B, T, 1.5), {}),
    ("tj::masked_fill", (T, B, 7), {}),
    ("tj::to_dtype", (T,), {"dtype": D.float32}),
    ("tj::to_dtype", (T,), {"dtype": D.float16}),
    ("tj::to_dtype", (T,), {"dtype": D.int32}),
    ("tj::to_dtype", (T,), {"dtype": D.bool_}),
    ("tj::to_dtype", (T,), {"dtype": D.float64}),
]
DTYPES = [D.float32, D.float64, D.float16, D.int32, D.int64, D.bool_]
# (case id, dtype kind) the kernel refuses although the interpreter runs them, with the reason:
# integer division by a tensor may divide by zero, which the interpreter reports and a kernel cannot;
# integer pow needs a constant exponent; float16 `alpha` would round y * alpha to half first; bool
# `alpha` makes the interpreter's result an int64 array where its dtype rule says bool.
REFUSED = {("div(t,t)[rounding_mode=floor]", "i"), ("div(t,t)[rounding_mode=trunc]", "i"), ("remainder(t,t)", "i"),
           ("fmod(t,t)", "i"), ("pow(t,t)", "i"), ("add(t,t)[alpha=2]", "f2"), ("add(t,t)[alpha=2]", "b"),
           ("sub(t,3)[alpha=-1]", "f2")}
_TRANSCENDENTAL = set(MATH) - {"tj::rsqrt", "tj::reciprocal"}


def test_every_elementwise_op_has_a_lowering():
    elementwise = {op.name for op in ops.all_ops() if op.kind == "elementwise"}
    assert sorted(elementwise - set(LOWER)) == sorted(NOT_LOWERED)
    assert {name for name, *_ in CASES} == elementwise, "every elementwise op has a row in CASES"


def _case_id(case):
    name, args, attrs = case
    return name[4:] + "(" + ",".join("t" if a == T else "b" if a == B else repr(a) for a in args) + ")" + \
        "".join(f"[{k}={v}]" for k, v in attrs.items())


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_lowered_op_matches_the_interpreter(case):
    name, args, attrs = case
    lowered = 0
    for dtype in DTYPES:
        spec = [dtype if a == T else D.bool_ if a == B else a for a in args]
        g, group = _op_group(name, spec, attrs)
        if g is None:
            continue
        trig = name in ("tj::sin", "tj::cos", "tj::tan")
        feeds = [_values(s, seed=k, trig=trig) for k, s in enumerate(spec) if isinstance(s, D.dtype)]
        try:
            want = ir.run(g, *feeds)[0]
        except ir.IRRuntimeError:
            continue  # the registry refuses this dtype (e.g. neg of bool): nothing to match
        kernel = lower_group(group)
        kind = dtype.np.kind + (str(dtype.itemsize) if dtype is D.float16 else "")
        if (_case_id(case), kind) in REFUSED:
            assert kernel is None, f"{name} {attrs} on {dtype} lowers now: take it out of REFUSED"
            continue
        assert kernel is not None, f"{name} {attrs} is not lowered for {dtype}"
        lowered += 1
        got = kernel(*feeds)[0]
        if want.dtype == np.float16:
            _compare(got, want, rtol=2e-3, atol=1e-7)
        elif name in _TRANSCENDENTAL:
            _compare(got, want, *((2e-6, 2e-6) if want.dtype == np.float32 else (1e-12, 1e-300)))
        else:
            _compare(got, want, 1e-6 if want.dtype == np.float32 else 1e-12, signed_zeros=True)
    assert lowered, f"{name} {attrs} lowers for no dtype"


FUNCS = [
    (lambda x, y: (x * 2 + y).relu() - y / 3, 2),
    (lambda x, y: tj.maximum(x, y) * tj.minimum(x, -y) + x.abs(), 2),
    (lambda x: (x.abs().sqrt() + 1).neg().floor() * x.ceil() - x.trunc(), 1),
    (lambda x, y: tj.sub(x, y, alpha=2) * 0.5 + tj.add(x, y, alpha=-1.5), 2),
]


@pytest.mark.parametrize("dtype", [tj.float32, tj.float64])
@pytest.mark.parametrize("k", range(len(FUNCS)))
def test_fused_chains_match_the_interpreter_exactly(k, dtype):
    fn, n_in = FUNCS[k]
    feeds = [_values(dtype, n=257, seed=i) for i in range(n_in)]
    _check(fn, *feeds, rtol=0, signed_zeros=True)  # no fast-math: bit for bit numpy's arithmetic


def test_mixed_dtypes_follow_the_registry_promotion():
    i32, i64 = _values(D.int32, seed=1), _values(D.int64, seed=2)
    f32, f16, f64 = _values(D.float32, seed=3), _values(D.float16, seed=4), _values(D.float64, seed=5)
    mask = _values(D.bool_, seed=6)
    _check(lambda a, b: (a + b * 2).relu() > 1, i32, i64)
    _check(lambda a, x: (a * x + 0.5).floor().int() // 3, i32, f32)
    _check(lambda h, x: (h * 0.1 + x) * h, f16, f32)
    _check(lambda h: h * 0.1 + 70000.0 - h / 3.3, f16, rtol=1e-3)  # float16 opmath for mul/div, inf for add
    _check(lambda d, x: (d * x).float() + (x > 0).float(), f64, f32)
    _check(lambda m, a, x: tj.where(m, a * 2, x) + m.int() - (a + 2**33), mask, i32, f32)
    _check(lambda m, x: ((x > 1) & m) | ~m ^ (x < -3), mask, f32)
    _check(lambda a: (a.double() * 1e10).long() + a.half().long(), f32, feeds=[np.clip(f32, -1e8, 1e8)])


def test_scalar_params_are_read_from_zero_dim_arrays():
    g = ir.parse("""graph(%x : Half(7), %s : float, %i : int, %f : bool):
  %1 : Half(7) = prim::FusionGroup(%x, %s, %i, %f)
    block0(%a : Half(7), %b : float, %c : int, %d : bool):
      %e : Half(7) = tj::mul(%a, %b)
      %g : Half(7) = tj::add(%e, %c)
      %h : Half(7) = tj::add(%g, %d)
      %j : Half(7) = tj::div(%h, %b)
      -> (%j)
  return (%1)
""")
    kernel = lower_group(g.body.nodes[0])
    assert kernel.spec.in_dtypes[1:] == (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_))
    x = np.linspace(-3, 3, 7).astype(np.float16)
    want = ir.run(g, x, 0.1, 3, True)[0]
    _compare(kernel(x, 0.1, 3, True)[0], want, rtol=0)
    out = np.empty(7, np.float16)
    kernel.run([out], [x, np.array(0.1), np.array(3), np.array(True)])
    _compare(out, want, rtol=0)


def test_optimized_kernel_is_vectorized():
    g, group = _traced(lambda x, y: (x * 2 + y).relu(), np.ones(1000, np.float32), np.ones(1000, np.float32))
    kernel = lower_group(group)
    assert re.search(r"<\d+ x float>", kernel.llvm_ir), "the O3 loop vectorizer should emit vector types"
    _, group = _traced(lambda x: (x * 2).sum(-1), np.ones((4, 1000), np.float32))
    assert re.search(r"<\d+ x double>", lower_group(group).llvm_ir), "sums accumulate in vectors of float64"


@pytest.mark.parametrize("xs, ys", [((6, 5), (5,)), ((6, 5), (6, 1)), ((2, 3, 4), (3, 1)), ((4, 1), (1, 7)),
                                    ((3, 1, 5), ()), ((1,), (1, 1))])
def test_broadcasting_inputs(xs, ys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ys).astype(np.float32)
    kernel = _check(lambda x, y: (x * 2 + y).relu() - y, x, y)
    assert kernel(x, y)[0].shape == np.broadcast_shapes(xs, ys)
    with pytest.raises(ValueError, match="compiled for input shape"):
        kernel(x, np.zeros((9,), np.float32))


def _strides(*arrays):
    return [tuple(s // a.itemsize for s in a.strides) for a in arrays]


@pytest.mark.parametrize("view", ["transposed", "step", "reversed", "broadcast", "column"])
def test_non_contiguous_inputs_by_index_arithmetic(view):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((12, 14)).astype(np.float32)
    y = rng.standard_normal((6, 7)).astype(np.float32)
    x = {"transposed": base[:7, :6].T, "step": base[::2, 1::2], "reversed": base[::-2, ::-2][:, :7],
         "broadcast": np.broadcast_to(base[0, :7], (6, 7)), "column": base[:6, 3:4].repeat(7, 1)[:, ::1]}[view]
    x = x[:6, :7]
    for fn in (lambda x, y: (x * 2 + y).relu() - y, lambda x, y: F.softmax(x * y, dim=-1),
               lambda x, y: (x - y).sum(0)):
        _check(fn, np.ascontiguousarray(x), y, in_strides=_strides(x, y), feeds=[x, y], rtol=1e-5, atol=1e-6)
    g, group = _traced(lambda x, y: x + y, np.ascontiguousarray(x), y)
    kernel = lower_group(group, _strides(x, y))
    assert kernel.in_strides == tuple(_strides(x, y))
    out = np.empty((6, 7), np.float32)
    kernel.run([out], [x, y])  # the raw call reads the strided array in place
    np.testing.assert_array_equal(out, x + y)


def test_contiguous_kernels_copy_strided_inputs_and_specialized_ones_check():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    g, group = _traced(lambda x: x * 2, x)
    np.testing.assert_array_equal(lower_group(group)(x.T.copy().T)[0], x * 2)
    strided = lower_group(group, [(1, 3)])
    np.testing.assert_array_equal(strided(np.asfortranarray(x))[0], x * 2)
    with pytest.raises(ValueError, match="element strides"):
        strided(x)


def _rows(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_layer_norm_and_softmax_groups(dtype):
    x = _rows((9, 37)).astype(dtype)
    w, b = _rows((37,), 1).astype(dtype), _rows((37,), 2).astype(dtype)
    tol = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-13), np.float16: (2e-3, 2e-3)}[dtype]
    _check(lambda x, w, b: F.layer_norm(x, (37,), w, b), x, w, b, rtol=tol[0], atol=tol[1])
    _check(lambda x: F.softmax(x * 2, dim=-1), x, rtol=tol[0], atol=tol[1])
    _check(lambda x: F.log_softmax(x, dim=1), x, rtol=tol[0], atol=tol[1])
    _check(lambda x: F.log_softmax(x - 1, dim=-1) * 0.5, x, rtol=tol[0], atol=tol[1])


def test_row_wise_groups_with_several_reductions_and_outputs():
    x = _rows((5, 3, 33))
    x[0, 0, :] = -np.inf
    x[1, 1, 4] = np.nan
    x[2, 2, 7] = np.inf
    _check(lambda x: F.softmax(x, dim=-1), x, rtol=1e-5, atol=1e-7)
    _check(lambda x: F.log_softmax(x * 1.0, dim=-1), x, rtol=1e-5, atol=1e-6)
    y = _rows((5, 3, 33), 3)
    for correction in (0, 1, 2):
        fn = lambda x: (x * 2).var(-1, keepdim=True, correction=correction) + x  # noqa: E731, B023
        _check(fn, y, rtol=1e-5, atol=1e-5)

    def norm_stats(x):  # a training-time layer norm: mean and rstd leave the group too
        mu = x.mean(-1, keepdim=True)
        d = x - mu
        rstd = (d * d).mean(-1, keepdim=True).add(1e-5).rsqrt()
        return d * rstd, mu, rstd, x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)

    _check(norm_stats, y, rtol=1e-5, atol=1e-6)
    _check(lambda x: x.std(-1, keepdim=True), y[:, :, :1], rtol=1e-5, atol=1e-6)  # 0/0: nan
    _check(lambda x: x.std(1, correction=0), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim, keepdim", [((0,), False), ((1,), True), ((0, 2), False), ((2,), False),
                                          (None, False), (None, True), ((1, 2), True)])
def test_trailing_and_standalone_reductions(dim, keepdim):
    x = _rows((4, 5, 6))
    m = x > 0
    for fn in (lambda x: (x * 2 + 1).sum(dim, keepdim=keepdim), lambda x: x.mean(dim, keepdim=keepdim),
               lambda x: (x * x).amax(dim, keepdim=keepdim), lambda x: x.amin(dim, keepdim=keepdim),
               lambda x: x.sum(dim, keepdim=keepdim)):
        _check(fn, x, rtol=1e-5, atol=1e-5)
    _check(lambda x: (x * 2, (x * 2).exp().sum(dim, keepdim=keepdim)), x, rtol=1e-5, atol=1e-5)  # both leave
    _check(lambda m: m.sum(dim, keepdim=keepdim), m)
    _check(lambda a: (a * 3).sum(dim, keepdim=keepdim), (x * 100).astype(np.int32))
    _check(lambda x: x.double().sum(dim, keepdim=keepdim), x, rtol=1e-12)
    _check(lambda h: (h * 2).mean(dim, keepdim=keepdim), x.astype(np.float16), rtol=2e-3, atol=1e-3)


def test_column_reductions_run_in_tiles():
    x = _rows((300, 70))
    x[5, 3] = np.nan
    x[7, 4] = -np.inf

    def keep_both(x):  # the elementwise value leaves the group too: stored during the one pass
        y = x * 2 + 1
        return y.amax(0, keepdim=True), y

    for fn in (keep_both, lambda x: (x * 2 + 1).sum(0), lambda x: (x > 0).any(0), lambda x: x.mean(0)):
        kernel = _check(fn, x, rtol=1e-5, atol=1e-4)
        assert "tile" in kernel.spec.llvm_ir
    t = np.ascontiguousarray(x.T)[:, ::2].T  # rows strided by 2 elements, columns by 600
    _check(lambda x: (x * x).sum(0), np.ascontiguousarray(t), in_strides=_strides(t), feeds=[t], rtol=1e-5)
    _check(lambda x: (x * x).sum(1), np.ascontiguousarray(t), in_strides=_strides(t), feeds=[t], rtol=1e-5)


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_over_any_dim(dim):
    x = _rows((4, 5, 6))
    _check(lambda x: F.softmax(x, dim=dim), x, rtol=1e-5, atol=1e-7)
    _check(lambda x: F.log_softmax(x * 3, dim=dim), x, rtol=1e-5, atol=1e-6)
    _check(lambda x: x.var(dim, keepdim=False), x, rtol=1e-5, atol=1e-6)


def test_bool_reductions_and_empty_reductions():
    x = _rows((4, 6))
    for fn in (lambda m: m.all(1), lambda m: m.any(0), lambda m: m.all(), lambda m: m.any(1, keepdim=True)):
        _check(fn, x > -1)
    empty = np.zeros((3, 0), np.float32)
    _check(lambda x: x.mean(1), empty)  # 0/0 is nan, as in the interpreter
    _check(lambda x: (x * 2).sum(1), empty)
    for fn in (lambda x: x.amax(1), lambda x: F.softmax(x, dim=1)):
        g, group = _traced(fn, np.ones((3, 1), np.float32))
        with pytest.raises(ir.IRRuntimeError):
            ir.run(g, empty)  # the registry has no identity for these: left to the interpreter, which raises
        group.blocks[0].params[0].type = TensorType(D.float32, (3, 0))
        out = group.blocks[0].nodes[0].outputs[0]
        out.type = TensorType(D.float32, (3, 0) if len(out.type.shape) == 2 else (3,))
        assert lower_group(group) is None


def _slices(kernel, outs, ins, bounds):
    ptrs = [a.ctypes.data for a in (*outs, *ins)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        kernel._fn(*ptrs, lo, hi)


@pytest.mark.parametrize("case", ["elementwise", "broadcast", "rows", "columns"])
def test_thread_splitting_gives_identical_results(case, monkeypatch):
    rng = np.random.default_rng(2)
    n = 1 << 20
    if case == "elementwise":
        fn, arrays = (lambda x, y: (x * 2 + y).relu() - y / 3), [rng.standard_normal(n), rng.standard_normal(n)]
    elif case == "broadcast":
        fn, arrays = (lambda x, y: x.exp() * y), [rng.standard_normal((1024, 1024)), rng.standard_normal((1024, 1))]
    elif case == "rows":
        fn, arrays = (lambda x: F.log_softmax(x, dim=-1)), [rng.standard_normal((4096, 256))]
    else:
        fn, arrays = (lambda x: (x * x).sum(0)), [rng.standard_normal((256, 4096))]
    arrays = [a.astype(np.float32) for a in arrays]
    g, group = _traced(fn, *arrays)
    kernel = lower_group(group)
    monkeypatch.setattr(parallel, "_num_threads", 3)  # more slices than cores: uneven splits are fine
    kernel._parallel = True
    outs = [np.empty(s, d) for s, d in zip(kernel.out_shapes, kernel.out_dtypes)]
    kernel.run(outs, arrays)
    single = [np.empty_like(o) for o in outs]
    kernel._fn(*[a.ctypes.data for a in (*single, *arrays)], 0, kernel.spec.range_size)
    uneven = [np.empty_like(o) for o in outs]
    r = kernel.spec.range_size
    _slices(kernel, uneven, arrays, [0, 1, 7, r // 3, r // 3 + 1, r - 5, r])  # slices start mid-row
    for o, s, u in zip(outs, single, uneven):
        np.testing.assert_array_equal(o, s)
        np.testing.assert_array_equal(u, s)
    _compare(outs[0], ir.run(g, *arrays)[0], rtol=1e-5, atol=1e-5)
    # called from a pool worker, the kernel runs inline instead of waiting on the pool it occupies
    again = [np.empty_like(o) for o in outs]
    parallel.pool().submit(kernel.run, again, arrays).result(timeout=30)
    np.testing.assert_array_equal(again[0], outs[0])


def test_large_kernels_are_split_and_small_ones_are_not():
    big = np.ones(1 << 21, np.float32)
    _, group = _traced(lambda x, y: (x + y) * 2, big, big)
    assert lower_group(group)._parallel
    _, group = _traced(lambda x, y: (x + y) * 2, big[:1000], big[:1000])
    assert not lower_group(group)._parallel


def test_object_code_round_trip_for_a_disk_cache():
    x = _rows((8, 16))
    g, group = _traced(lambda x: F.softmax(x * 2, dim=-1), x)
    spec = emit_group(group)
    assert "define void @\"kernel\"" in spec.llvm_ir and "target triple" in spec.llvm_ir
    obj, optimized = emit_object(spec.llvm_ir)
    engine, address = load_object(bytes(obj))
    kernel = Kernel(spec, engine, address, optimized)
    _compare(kernel(x)[0], ir.run(g, x)[0], rtol=1e-5, atol=1e-7)
    assert kernel.out_shapes == ((8, 16),) and kernel.out_dtypes == (np.dtype(np.float32),)
    assert re.search(r"<\d+ x float>", kernel.llvm_ir)


def test_what_the_backend_lacks_is_left_to_the_interpreter():
    u8 = np.arange(5, dtype=np.uint8)
    _, group = _traced(lambda x: (x * 2) + 1, u8)
    assert lower_group(group) is None  # uint8 has no lowering
    _, group = _traced(lambda x: (x * 2).prod(0), np.ones((3, 4), np.float32))
    assert lower_group(group) is None  # prod is not in REDUCE
    x = np.ones((3, 4), np.float32)
    _, group = _traced(lambda x: (x * 2).round(decimals=2), x)
    assert lower_group(group) is None
    g = ir.parse("graph(%x : Float(N)):\n  %1 : Float(N) = prim::FusionGroup(%x)\n"
                 "    block0(%a : Float(N)):\n      %b : Float(N) = tj::neg(%a)\n      -> (%b)\n  return (%1)\n")
    assert lower_group(g.body.nodes[0]) is None  # symbolic sizes: compiled per concrete shape


def test_compiled_groups_run_inside_the_interpreter_and_fall_back_on_other_inputs():
    def f(x, y):
        return ((x * 2 + y).relu() - y / 3).abs().sqrt() * 0.5 + x

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    g, group = _traced(f, x, y)
    kernels = llvm_cpu.compile_groups(g)
    assert list(kernels) == [group]
    np.testing.assert_allclose(ir.run(g, x, y, kernels=kernels)[0], ir.run(g, x, y)[0], rtol=1e-6)
    from tracejit.ir.interpreter import _fits

    assert not _fits(group, [np.zeros(3, np.float32), np.zeros(3, np.float32)])


def test_kernel_inputs_are_checked():
    x = np.ones(4, np.float32)
    _, group = _traced(lambda x, y: (x + y).relu(), x, x)
    kernel = lower_group(group)
    with pytest.raises(TypeError, match="takes 2 inputs"):
        kernel(x)
    with pytest.raises(ValueError, match="compiled for input shape"):
        kernel(np.zeros(3, np.float32), np.zeros(4, np.float32))
    out = np.empty(4, np.float32)
    kernel.run([out], [x, x.copy()])
    ro = x.copy()
    ro.setflags(write=False)  # read-only arrays take the slower address path
    kernel.run([out], [ro, ro])
    np.testing.assert_array_equal(out, 2 * x)


@pytest.mark.parametrize("name, ref", [
    ("exp", np.exp), ("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("tanh", np.tanh), ("log", np.log)])
def test_transcendentals_are_vectorized_polynomials_within_2e_6(name, ref):
    spread = np.geomspace(1e-45, 3e38, 100_001) if name == "log" else np.linspace(-110, 95, 100_001)
    x = np.concatenate([spread.astype(np.float32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-38, 88.72, 88.73, -87.3,
                                  -103.9, -104.5, 1.0, 1.4142135, 0.70710677, 2.0], np.float32)])
    _, group = _traced(lambda a: getattr(a * 1.0, name)().neg(), x)
    kernel = lower_group(group)
    assert kernel is not None and re.search(r"<\d+ x float>", kernel.llvm_ir)
    assert "@expf" not in kernel.llvm_ir and "@llvm.exp" not in kernel.llvm_ir  # no scalar libm calls
    with np.errstate(all="ignore"):
        want = (-ref(x.astype(np.float64))).astype(np.float32).astype(np.float64)  # the float32 result
    got = kernel(x)[0].astype(np.float64)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])  # inf, -inf and nan where numpy has them
    err = np.abs(got[finite] - want[finite]) / np.maximum(1.0, np.abs(want[finite]))
    assert err.max() <= 2e-6, f"{name}: error {err.max():.3g} at x={x[finite][np.argmax(err)]}"
