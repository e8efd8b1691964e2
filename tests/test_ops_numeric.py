"""Every eager op checked for values against numpy, and for values, dtype and shape against PyTorch.

The same numpy inputs go to tracejit (`tj.tensor(x)`) and to PyTorch (`torch.tensor(x)`), in several
memory layouts (contiguous, transposed, strided, expanded). PyTorch is the oracle: result dtypes and
shapes must be its exactly, values within PyTorch's own `assert_close` tolerances per dtype (float16
looser). numpy warnings escaping from tracejit fail a test: PyTorch computes inf and nan silently.
"""

import math
import operator
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracejit as tj

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's floating-point warnings

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOATS = ("float16", "float32", "float64")
INTS = ("uint8", "int8", "int16", "int32", "int64")
NUM = INTS + FLOATS
ALL = ("bool",) + NUM
BITS = ("bool",) + INTS
LAYOUTS = ("contiguous", "transposed", "strided", "expanded")
# (rtol, atol): PyTorch's assert_close defaults, but float64 to a few ulp (both libraries get that close;
# 1e-7 would pass a float32-accurate algorithm)
TOL = {"float16": (1e-3, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-12, 1e-14)}


name_of = lambda t: str(t.dtype).split(".")[-1]  # "float32" for tracejit and PyTorch dtypes


def assert_close(actual, expected, dtype, mag=0.0):
    """Exact for integers and bools; `mag` widens atol to rtol * mag for results that accumulate
    many rounded terms (sums: the summands' scale), where the order of operations differs."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    if dtype not in TOL:
        np.testing.assert_array_equal(actual, expected.astype(actual.dtype))
        return
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol,
                               atol=max(atol, rtol * mag), equal_nan=True)


def assert_like_torch(res, ref, mag=0.0):
    """tracejit result(s) against PyTorch's: the same dtype names and shapes, close values."""
    res, ref = (v if isinstance(v, tuple) else (v,) for v in (res, ref))
    for r, e in zip(res, ref, strict=True):
        assert (name_of(r), tuple(r.shape)) == (name_of(e), tuple(e.shape))
        assert_close(r.numpy(), e.numpy(), name_of(e), mag)


def lay_out(m, x, layout):
    """A tensor of module `m` holding `x`'s values in the given memory layout, and those values."""
    if layout == "transposed" and x.ndim >= 2:
        t = m.tensor(np.ascontiguousarray(x.T))
        return (t.t() if x.ndim == 2 else t.permute(*reversed(range(x.ndim)))), x
    if layout == "strided" and x.ndim >= 1:
        return m.tensor(np.repeat(x, 2, axis=-1))[..., ::2], x
    if layout == "expanded" and x.ndim >= 1 and x.shape[0] > 0:
        return m.tensor(x[:1]).expand(*x.shape), np.broadcast_to(x[:1], x.shape)
    return m.tensor(x), x


def arrays(dtype, shape, lo=-10, hi=10):
    if dtype == "bool":
        el = st.booleans()
    elif dtype in FLOATS:
        el = st.floats(lo, hi, width=int(dtype[5:]), allow_nan=False, allow_infinity=False)
    else:
        el = st.integers(max(lo, 0) if dtype == "uint8" else lo, hi)
    return hnp.arrays(np.dtype(dtype), shape, elements=el)


def quiet(fn, *args, **kw):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the references' own warnings (var of one element, ...)
        return fn(*args, **kw)


def outcome(fn):
    try:
        return fn()
    except (RuntimeError, TypeError, ValueError, ArithmeticError, NotImplementedError) as e:
        return e


# ---- numpy references (PyTorch's semantics where numpy's differ) ----------------------------------


np_sign = lambda x: x if x.dtype == bool else ((x > 0).astype(x.dtype) - (x < 0)).astype(x.dtype)  # nan: 0
np_acc = lambda x: x.dtype if x.dtype.kind == "f" else np.int64
mag_sum = lambda x: float(np.abs(x.astype(np.float64)).sum())
mag_max = lambda x: float(np.abs(x.astype(np.float64)).max(initial=0))
mag_sq = lambda x: float((x.astype(np.float64) ** 2).sum())


def np_pow(a, b):
    """PyTorch's integer pow truncates 1 / a**n for a negative exponent, which numpy refuses."""
    if b.dtype.kind != "i" or not (b < 0).any():
        return np.power(a, b)
    r = np.power(a, np.where(b < 0, 0, b))
    return np.where(b < 0, np.where(a == 1, 1, np.where(a == -1, 1 - 2 * (b & 1), 0)), r).astype(r.dtype)


def np_axis(x, dim):
    return None if dim is None or x.ndim == 0 else tuple(d % x.ndim for d in ((dim,) if isinstance(dim, int) else dim))


def np_norm(x, a, k, p):
    x = np.abs(x.astype(np.float64))
    if math.isinf(p):
        return (np.max if p > 0 else np.min)(x, a, keepdims=k)
    return np.sum(x != 0, a, keepdims=k) * 1.0 if p == 0 else np.sum(x**p, a, keepdims=k) ** (1 / p)


def np_arg(fn, x, a, k):
    return fn(x, a[0], keepdims=k) if a else np.asarray(fn(x.reshape(-1))).reshape((1,) * x.ndim if k else ())


def np_softmax(x, a):
    e = np.exp(x.astype(np.float64) - x.max(a, keepdims=True))
    return e / e.sum(a, keepdims=True)


def np_scatter(x, dim, index, src, add):
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        tgt = pos[:dim] + (index[pos],) + pos[dim + 1:]
        out[tgt] = out[tgt] + src[pos] if add else src[pos]
    return out


# ---- the op table ----------------------------------------------------------------------------
# SPECS[id] = (case strategy -> (arrays, params), call(m, *tensors, **params),
#              numpy reference(out dtype, promoted dtype, *arrays, **params), error scale(x) or None)
SPECS = {}
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
DIVISIONS = {"div", "floor_divide", "remainder", "fmod"}


@st.composite
def unary_case(draw, dtypes):
    return [draw(arrays(draw(st.sampled_from(dtypes)), draw(SHAPES)))], {}


@st.composite
def binary_case(draw, name, dtypes):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)).input_shapes
    a = draw(arrays(draw(st.sampled_from(dtypes)), shapes[0]))
    db = draw(st.sampled_from(dtypes))
    b = draw(arrays(db, shapes[1], *((-3, 5) if name == "pow" else (-10, 10))))
    if name in DIVISIONS:  # integer division by zero raises (tested apart); tiny float divisors overflow
        b = np.where(b == 0, 1, b) if db in INTS else np.where(np.abs(b) < 1e-3, 0, b)  # quotients differently
    return [a, b.astype(db)], {}


for _n, (_ref, _dtypes) in {
    "abs": (np.abs, NUM), "neg": (np.negative, NUM), "exp": (np.exp, ALL), "log": (np.log, ALL),
    "log1p": (np.log1p, ALL), "expm1": (np.expm1, ALL), "sqrt": (np.sqrt, ALL), "reciprocal": (np.reciprocal, ALL),
    "rsqrt": (lambda x: 1 / np.sqrt(x.astype(np.float64)), ALL), "sin": (np.sin, ALL), "cos": (np.cos, ALL),
    "tan": (np.tan, ALL), "tanh": (np.tanh, ALL), "sigmoid": (lambda x: 1 / (1 + np.exp(-x.astype(np.float64))), ALL),
    "erf": (np.vectorize(math.erf, otypes=[np.float64]), ALL), "relu": (lambda x: np.maximum(x, 0), NUM),
    "sign": (np_sign, ALL), "floor": (np.floor, NUM), "ceil": (np.ceil, NUM), "trunc": (np.trunc, NUM),
    "round": (np.rint, NUM), "logical_not": (np.logical_not, ALL), "bitwise_not": (np.invert, BITS),
    "isnan": (np.isnan, NUM), "isinf": (np.isinf, NUM), "isfinite": (np.isfinite, NUM),
}.items():  # the reference computes in the result dtype (tests: on the input as is)
    SPECS[_n] = (unary_case(_dtypes), lambda m, x, n=_n: getattr(m, n)(x),
                 lambda d, cd, x, f=_ref: f(x if d == "bool" else x.astype(d)), None)
UNARY_IDS = set(SPECS)

BINARY_IDS = set()
for _n, (_ref, _dtypes) in {
    "add": (np.add, ALL), "sub": (np.subtract, NUM), "mul": (np.multiply, ALL), "div": (np.true_divide, ALL),
    "floor_divide": (np.floor_divide, NUM), "remainder": (np.remainder, NUM), "fmod": (np.fmod, NUM),
    "pow": (np_pow, NUM), "maximum": (np.maximum, ALL), "minimum": (np.minimum, ALL), "atan2": (np.arctan2, ALL),
    "eq": (np.equal, ALL), "ne": (np.not_equal, ALL), "lt": (np.less, ALL), "le": (np.less_equal, ALL),
    "gt": (np.greater, ALL), "ge": (np.greater_equal, ALL), "logical_and": (np.logical_and, ALL),
    "logical_or": (np.logical_or, ALL), "logical_xor": (np.logical_xor, ALL), "bitwise_and": (np.bitwise_and, BITS),
    "bitwise_or": (np.bitwise_or, BITS), "bitwise_xor": (np.bitwise_xor, BITS),
}.items():  # comparisons and logic compute in the promoted dtype, arithmetic in the result dtype
    SPECS[_n] = (binary_case(_n, _dtypes), lambda m, a, b, n=_n: getattr(m, n)(a, b),
                 lambda d, cd, a, b, f=_ref: f(a.astype(cd if d == "bool" else d), b.astype(cd if d == "bool" else d)),
                 None)
    BINARY_IDS.add(_n)


@st.composite
def reduction_case(draw, dtypes, dims):
    x = draw(arrays(draw(st.sampled_from(dtypes)), draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)), -3, 3))
    n = max(x.ndim, 1)
    one = st.integers(-n, n - 1)
    many = st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).map(tuple)
    dim = draw({"req": one, "one": st.none() | one, "multi": st.none() | one | many}[dims])
    return [x], {"dim": dim, "keepdim": draw(st.booleans())}


F64 = np.float64
# id: (call(m, t, d, k), reference(x, numpy axis, k), input dtypes, dims: "multi" (None, an int or a
# tuple), "one" (None or an int) or "req" (an int), error scale)
for _n, (_call, _ref, _dtypes, _dims, _mag) in {
    "sum": (lambda m, t, d, k: t.sum(d, k), lambda x, a, k: np.sum(x, a, np_acc(x), keepdims=k), ALL, "multi",
            mag_sum),
    "sum_dtype": (lambda m, t, d, k: m.sum(t, d, k, dtype=m.float64), lambda x, a, k: np.sum(x, a, F64, keepdims=k),
                  ALL, "multi", mag_sum),
    "mean": (lambda m, t, d, k: t.mean(d, k), lambda x, a, k: np.mean(x, a, F64, keepdims=k), FLOATS, "multi", mag_max),
    "mean_dtype": (lambda m, t, d, k: t.mean(d, k, dtype=m.float32), lambda x, a, k: np.mean(x, a, F64, keepdims=k),
                   INTS, "multi", mag_max),
    "prod": (lambda m, t, d, k: t.prod() if d is None else t.prod(d, k),
             lambda x, a, k: np.prod(x, a, np_acc(x), keepdims=k and a is not None), ALL, "one",
             lambda x: float(np.abs(np.prod(x, dtype=F64))) * x.size),
    "amax": (lambda m, t, d, k: m.amax(t, () if d is None else d, k), lambda x, a, k: np.max(x, a, keepdims=k), ALL,
             "multi", None),
    "amin": (lambda m, t, d, k: t.amin(() if d is None else d, k), lambda x, a, k: np.min(x, a, keepdims=k), ALL,
             "multi", None),
    "max": (lambda m, t, d, k: t.max(), lambda x, a, k: np.max(x), ALL, "one", None),
    "min": (lambda m, t, d, k: m.min(t), lambda x, a, k: np.min(x), ALL, "one", None),
    "max_dim": (lambda m, t, d, k: tuple(m.max(t, d, k)),
                lambda x, a, k: (np.max(x, a, keepdims=k), np_arg(np.argmax, x, a, k)), ALL, "req", None),
    "min_dim": (lambda m, t, d, k: tuple(t.min(d, keepdim=k)),
                lambda x, a, k: (np.min(x, a, keepdims=k), np_arg(np.argmin, x, a, k)), ALL, "req", None),
    "max_tensor": (lambda m, t, d, k: m.max(t, t.flip(-1) if t.ndim else t), lambda x, a, k: np.maximum(
        x, np.flip(x, -1) if x.ndim else x), ALL, "one", None),
    "argmax": (lambda m, t, d, k: t.argmax(d, k), lambda x, a, k: np_arg(np.argmax, x, a, k), NUM, "one", None),
    "argmin": (lambda m, t, d, k: m.argmin(t, d, k), lambda x, a, k: np_arg(np.argmin, x, a, k), NUM, "one", None),
    "var": (lambda m, t, d, k: t.var(d, keepdim=k), lambda x, a, k: np.var(x.astype(F64), a, ddof=1, keepdims=k),
            FLOATS, "multi", mag_sq),
    "var_biased": (lambda m, t, d, k: m.var(t, d, unbiased=False, keepdim=k),
                   lambda x, a, k: np.var(x.astype(F64), a, keepdims=k), FLOATS, "multi", mag_sq),
    # the square root of var's error: std of near-equal values is the root of a rounding error
    "std": (lambda m, t, d, k: t.std(d, correction=0, keepdim=k), lambda x, a, k: np.std(x.astype(F64), a,
            keepdims=k), FLOATS, "multi", lambda x: mag_sq(x) ** 0.5 * 30),
    "logsumexp": (lambda m, t, d, k: m.logsumexp(t, d, k),
                  lambda x, a, k: np.log(np.sum(np.exp(x.astype(F64)), a, keepdims=k)), ALL, "req", mag_max),
    "all": (lambda m, t, d, k: t.all(d, k), lambda x, a, k: np.all(x, a, keepdims=k), ALL, "multi", None),
    "any": (lambda m, t, d, k: m.any(t, d, k), lambda x, a, k: np.any(x, a, keepdims=k), ALL, "multi", None),
    "softmax": (lambda m, t, d, k: t.softmax(d), lambda x, a, k: np_softmax(x, a), FLOATS, "req", None),
    "log_softmax": (lambda m, t, d, k: m.log_softmax(t, d), lambda x, a, k: np.log(np_softmax(x, a)), FLOATS, "req",
                    mag_max),
    "cumsum": (lambda m, t, d, k: t.cumsum(d),
               lambda x, a, k: np.cumsum(x, a and a[0], np_acc(x)).reshape(x.shape), ALL, "req", mag_sum),
    "cumsum_dtype": (lambda m, t, d, k: m.cumsum(t, d, dtype=m.float32),
                     lambda x, a, k: np.cumsum(x, a and a[0], F64).reshape(x.shape), ALL, "req", mag_sum),
    **{f"norm_p{p}": (lambda m, t, d, k, p=p: t.norm(p, d, k), lambda x, a, k, p=p: np_norm(x, a, k, p), FLOATS,
                      "multi", mag_sum) for p in (1, 2, 3, 0.5, 0, math.inf, -math.inf)},
}.items():
    SPECS[_n] = (reduction_case(_dtypes, _dims), lambda m, x, dim, keepdim, c=_call: c(m, x, dim, keepdim),
                 lambda d, cd, x, dim, keepdim, f=_ref: f(x, np_axis(x, dim), keepdim), _mag)

MATMUL = {"matmul": "(m?,n),(n,p?)->(m?,p?)", "mm": "(m,n),(n,p)->(m,p)", "bmm": "(b,m,n),(b,n,p)->(b,m,p)"}
INDEXED = {"gather", "scatter", "scatter_add", "index_select"}  # their second array is an int64 index


@st.composite
def movement_case(draw, name):
    if name in MATMUL:
        shapes = draw(hnp.mutually_broadcastable_shapes(signature=MATMUL[name], max_side=4,
                                                        max_dims=2 if name == "matmul" else 0)).input_shapes
        dtype = draw(st.sampled_from(NUM))
        return [draw(arrays(dtype, s, -3, 3)) for s in shapes], {}
    x = draw(arrays(draw(st.sampled_from(ALL)), draw(hnp.array_shapes(
        min_dims=2 if name in ("tril", "triu") else 1, max_dims=3, max_side=4))))
    ax = draw(st.integers(0, x.ndim - 1))
    n = x.shape[ax]
    if name in ("cat", "stack"):
        shape = x.shape if name == "stack" else x.shape[:ax] + (draw(st.integers(0, 3)),) + x.shape[ax + 1:]
        return [x, draw(arrays(draw(st.sampled_from(ALL)), shape))], {"dim": ax - x.ndim * draw(st.booleans())}
    if name == "index_select":
        return [x, draw(arrays("int64", (draw(st.integers(0, 5)),), 0, n - 1))], {"dim": ax}
    if name in ("gather", "scatter", "scatter_add"):
        shape = tuple(draw(st.integers(1, s)) for s in x.shape)  # an index up to the input's size in every dim
        index = draw(arrays("int64", shape, 0, n - 1))
        if name == "scatter":  # distinct targets per column, else which value lands is unspecified
            order = np.argsort(draw(arrays("float64", x.shape[:ax] + (n,) + shape[ax + 1:], 0, 1)), axis=ax)
            index = order[tuple(slice(0, s) for s in shape)]
        return [x, index, draw(arrays(x.dtype.name, shape))], {"dim": ax}
    if name == "repeat":
        return [x], {"repeats": tuple(draw(st.lists(st.integers(0, 3), min_size=x.ndim, max_size=x.ndim + 1)))}
    if name == "flip":
        dims = st.lists(st.integers(-x.ndim, x.ndim - 1), max_size=x.ndim, unique_by=lambda d: d % x.ndim)
        return [x], {"dims": tuple(draw(dims))}
    if name == "roll":
        dims = draw(st.lists(st.integers(0, x.ndim - 1), max_size=x.ndim, unique=True))
        k = max(len(dims), 1)
        return [x], {"shifts": tuple(draw(st.lists(st.integers(-5, 5), min_size=k, max_size=k))),
                     "dims": tuple(dims) or None}
    return [x], {"diagonal": draw(st.integers(-3, 3))}


def scatter_call(add):
    def call(m, x, i, s, dim):
        out = x.clone()
        out.scatter_add_(dim, i, s) if add else out.scatter_(dim, i, s)
        assert_like_torch(out, m.scatter_add(x, dim, i, s) if add else m.scatter(x, dim, i, s))  # in-place form
        return out

    return call


for _n, (_call, _ref) in {
    "cat": (lambda m, a, b, dim: m.cat([a, b], dim), lambda a, b, dim: np.concatenate([a, b], dim)),
    "stack": (lambda m, a, b, dim: m.stack([a, b], dim), lambda a, b, dim: np.stack([a, b], dim)),
    "gather": (lambda m, x, i, s, dim: m.gather(x, dim, i), lambda x, i, s, dim: np.take_along_axis(
        x[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(i.shape))], i, dim)),
    "scatter": (scatter_call(False), lambda x, i, s, dim: np_scatter(x, dim, i, s, False)),
    "scatter_add": (scatter_call(True), lambda x, i, s, dim: np_scatter(x, dim, i, s, True)),
    "index_select": (lambda m, x, i, dim: m.index_select(x, dim, i), lambda x, i, dim: np.take(x, i, dim)),
    "repeat": (lambda m, x, repeats: x.repeat(*repeats), lambda x, repeats: np.tile(x, repeats)),
    "flip": (lambda m, x, dims: m.flip(x, dims), lambda x, dims: np.flip(x, dims) if dims else x),
    "roll": (lambda m, x, shifts, dims: m.roll(x, shifts, dims),
             lambda x, shifts, dims: np.roll(x, shifts, dims) if dims else np.roll(x.ravel(), shifts).reshape(x.shape)),
    "tril": (lambda m, x, diagonal: m.tril(x, diagonal), lambda x, diagonal: np.tril(x, diagonal)),
    "triu": (lambda m, x, diagonal: x.triu(diagonal), lambda x, diagonal: np.triu(x, diagonal)),
    "matmul": (lambda m, a, b: a @ b, np.matmul), "mm": (lambda m, a, b: m.mm(a, b), np.matmul),
    "bmm": (lambda m, a, b: m.bmm(a, b), np.matmul),
}.items():
    SPECS[_n] = (movement_case(_n), _call, lambda d, cd, *arrs, f=_ref, n=_n, **p: f(
        *(a if i == 1 and n in INDEXED else a.astype(d) for i, a in enumerate(arrs)), **p), mag_sum)


def _draw(data, op):
    """The case for `op`, with a memory layout per array (indices stay contiguous: their values matter)."""
    arrs, params = data.draw(SPECS[op][0])
    lay = [data.draw(st.sampled_from(LAYOUTS)) if i == 0 or op in BINARY_IDS else "contiguous"
           for i in range(len(arrs))]
    return arrs, params, lay


@pytest.mark.parametrize("op", SPECS)
@SETTINGS
@given(data=st.data())
def test_matches_numpy(op, data):
    _, call, ref, mag = SPECS[op]
    arrs, params, lay = _draw(data, op)
    pairs = [lay_out(tj, a, layout) for a, layout in zip(arrs, lay)]
    out = call(tj, *(t for t, _ in pairs), **params)
    vals = [v for _, v in pairs]
    cd = tj.result_type(pairs[0][0], pairs[1][0]).name if op in BINARY_IDS else None
    first = out[0] if isinstance(out, tuple) else out
    expected = quiet(ref, name_of(first), cd, *vals, **params)
    for o, e in zip(*((out, expected) if isinstance(out, tuple) else ((out,), (expected,))), strict=True):
        assert_close(o.numpy(), np.asarray(e), name_of(o), mag(vals[0]) if mag else 0.0)


@needs_torch
@pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")  # var of one element: nan in both
@pytest.mark.parametrize("op", SPECS)
@SETTINGS
@given(data=st.data())
def test_matches_torch(op, data):
    _, call, _, mag = SPECS[op]
    arrs, params, lay = _draw(data, op)
    if op == "prod" and arrs[0].dtype == np.float16:  # PyTorch multiplies in float16 (overflowing to inf,
        assume(np.prod(np.maximum(np.abs(arrs[0].astype(F64)), 1)) < 65504)  # then * 0 is nan), numpy in float32
    res, ref = (call(m, *(lay_out(m, a, lay_)[0] for a, lay_ in zip(arrs, lay)), **params) for m in (tj, torch))
    assert_like_torch(res, ref, mag(arrs[0]) if mag else 0.0)


OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv,
             "%": operator.mod, "**": operator.pow, "&": operator.and_, "|": operator.or_, "^": operator.xor,
             "<": operator.lt, "==": operator.eq}
AUGMENTED = {"+": operator.iadd, "-": operator.isub, "*": operator.imul, "/": operator.itruediv,
             "//": operator.ifloordiv, "%": operator.imod, "**": operator.ipow, "&": operator.iand,
             "|": operator.ior, "^": operator.ixor}


@needs_torch
@pytest.mark.parametrize("sym", AUGMENTED)
@pytest.mark.parametrize("other", ["tensor", "number"])
def test_augmented_operator_writes_in_place(sym, other):
    a, b = (np.array([[1.5, -2.0], [3.0, 4.5]]), np.array([2.0, -0.5])) if sym in ("/", "**") else \
        (np.array([[1, -2], [3, 4]]), np.array([2, 3]))
    outs = []
    for m in (tj, torch):
        x = m.tensor(a)
        ptr = x.data_ptr()
        assert AUGMENTED[sym](x, m.tensor(b) if other == "tensor" else b[1].item()) is x and x.data_ptr() == ptr
        outs.append(x)
    assert_like_torch(*outs)


# ---- special values, errors and edge cases ----------------------------------------------------------

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.5, 1e-30, 88.0, -100.0])


@needs_torch
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", sorted(UNARY_IDS - {"bitwise_not"}) + [
    "softmax", "log_softmax", "logsumexp", "cumsum", "max_dim", "argmax", "amax", "norm_p2", "var", "sum", "prod",
    "mean", "div", "maximum", "minimum", "atan2", "remainder", "fmod", "floor_divide", "pow", "eq", "lt",
    "logical_and"])  # add, sub, mul: see test_inf_arithmetic_is_silent
def test_special_values_match_torch(op, dtype):
    """nan, infinities, signed zeros, tiny and overflowing values (in every pair, for binary ops)."""
    call, x = SPECS[op][1], SPECIAL.astype(dtype)
    args = np.meshgrid(x, x) if op in BINARY_IDS else [x]
    kw = {"dim": 0, "keepdim": False} if "dim" in call.__code__.co_varnames else {}
    assert_like_torch(call(tj, *map(tj.tensor, args), **kw), call(torch, *map(torch.tensor, args), **kw))


@needs_torch
@pytest.mark.parametrize("expr", [
    "m.abs(b)", "m.floor(b)", "m.ceil(b)", "m.trunc(b)", "m.round(b)", "m.relu(b)", "-b", "b - b", "b - 1",
    "1.5 - b", "m.tensor([1, 2]) - b", "m.ones(2, dtype=m.uint8).sub_(True)", "b // b", "b % b", "m.fmod(b, b)",
    "b ** b", "True ** b", "m.argmax(b)", "m.argmin(b, 0)", "m.mean(b.long())", "m.var(b.long())",
    "m.softmax(b.long(), 0)", "m.log_softmax(b.int(), 0)", "m.norm(b.long())", "m.ones(2) @ m.ones(2).double()",
    "b.float() @ b.float().view(2, 1).bool()", "m.round(b.long(), decimals=-1)", "~b.float()", "b.float() & 1",
    "m.ones(2, dtype=m.int32) ** -2", "m.tensor([3, 4]) // m.tensor([1, 0])", "m.tensor([3]) % 0",
    "m.fmod(m.tensor([3], dtype=m.uint8), m.tensor([0], dtype=m.uint8))", "m.ones(2, 3) + m.ones(4, 3)",
    "m.ones(2, dtype=m.float16).pow(1e6)", "m.ones(2, dtype=m.float16).clamp(max=1e9)",
    "m.ones(2, dtype=m.float16).masked_fill(b, -1e9)",
])
def test_what_torch_rejects_raises(expr):
    """Inputs PyTorch refuses (bool arithmetic, missing integer kernels, integer division by zero, ...)."""
    for m in (torch, tj):
        b = m.tensor([True, False])
        with pytest.raises((RuntimeError, TypeError, ValueError, ArithmeticError, NotImplementedError)):
            eval(expr, {"m": m, "b": b})


@needs_torch
@pytest.mark.parametrize("expr", [
    "x + -3", "x * 300", "x < -3", "m.clamp(x, min=-1)", "m.add(x, x, alpha=-1)", "m.where(x > 1, x, -1)",
    "h * 1e9", "h + 1e9", "1e6 // h", "1e6 ** h", "m.where(h > 0, h, -1e9)", "h // 0.02",
    "h.div(0.3, rounding_mode='trunc')",
    "2 ** m.tensor([-1, 0, 2])", "m.tensor([-1, 1, 2, 0]) ** m.tensor(-3)", "m.round(g, decimals=1)",
    "m.round(h, decimals=2)", "m.clamp(g, m.tensor([0.0, 2.0, 1.0]), m.tensor(1.5))",
    "m.clamp(g.long(), max=m.tensor(1.5))", "g.view(1, 3) @ g.view(3, 1)", "m.tensor([[1, 2]]) @ x.long()[:2, None]",
    "m.where(x > 1, x, g)", "m.where(x > 1, 2, 3.5)", "x.masked_fill(x > 1, 7)",
    "g.masked_fill(m.tensor([True, False, True]), m.tensor(-1))", "m.div(g, 0.7, rounding_mode='trunc')",
    "m.div(x, 2, rounding_mode='floor')", "g // -0.4", "x.sign()", "b ** True", "b ** False", "b.all()", "x.any(0)",
    "m.max(g.view(1, 3).expand(2, 3), 1)", "m.tensor(4.0).max(0)", "m.tensor([[2, 7]]).cumsum(1, dtype=m.int8)",
    "m.index_select(g, 0, m.tensor(1))", "h.cumsum(0)", "m.tensor(3.0).softmax(0)", "g.logsumexp(0)",
    "h.add_(m.ones(3, dtype=m.float64) / 3)", "x.add_(m.tensor([1, 2, 300]))", "x.div_(2, rounding_mode='floor')",
    "m.tensor([4, 5]).masked_fill_(m.tensor([True, False]), 2.5)", "x.mul_(-1)", "h.mul_(0.1)",
])
def test_scalar_and_mixed_edge_cases_match_torch(expr):
    def run(m):
        env = {"m": m, "x": m.tensor([1, 2, 200], dtype=m.uint8), "g": m.tensor([-1.25, 0.35, 2.5]),
               "h": m.tensor([0.0, 2.0, -3.0], dtype=m.float16), "b": m.tensor([True, False, True])}
        out = eval(expr, env)
        return tuple(out) if isinstance(out, tuple) else out

    assert_like_torch(run(tj), run(torch))


# ---- in-place ops ----------------------------------------------------------------------------------

INPLACE = {
    "add_": lambda t, o: t.add_(o, alpha=2), "sub_": lambda t, o: t.sub_(o), "mul_": lambda t, o: t.mul_(o),
    "div_": lambda t, o: t.div_(o), "floor_divide_": lambda t, o: t.floor_divide_(o),
    "remainder_": lambda t, o: t.remainder_(o), "pow_": lambda t, o: t.pow_(2), "clamp_": lambda t, o: t.clamp_(-1, 1),
    "clamp_tensor_": lambda t, o: t.clamp_(min=o), "exp_": lambda t, o: t.exp_(),
    "sqrt_": lambda t, o: t.abs_().sqrt_(),
    "neg_": lambda t, o: t.neg_(), "sigmoid_": lambda t, o: t.sigmoid_(), "round_": lambda t, o: t.round_(),
    "masked_fill_": lambda t, o: t.masked_fill_(o > 0, 0.5), "add_scalar_": lambda t, o: t.add_(3),
    "scatter_": lambda t, o: t.scatter_(1, o.abs().long().clamp(0, 2)[:1], o[:1]),
}


@needs_torch
@pytest.mark.parametrize("name", INPLACE)
@pytest.mark.parametrize("view", ["contiguous", "transposed", "strided"])
def test_inplace_writes_into_self(name, view):
    """The result is self, in the same storage; a write through a strided view lands in its base."""
    a = np.array([[0.5, -1.5, 2.0], [3.0, -0.25, 1.0], [-2.0, 0.75, -3.5]], np.float32)
    o = np.array([[1.0, 2.0, -0.5], [0.25, 4.0, 3.0], [1.5, -1.0, 2.0]], np.float32)
    outs = []
    for m in (tj, torch):
        base = m.tensor(np.repeat(a, 2, axis=1))
        t = {"contiguous": m.tensor(a), "transposed": m.tensor(a.T.copy()).t(), "strided": base[:, ::2]}[view]
        ptr = t.data_ptr()
        assert INPLACE[name](t, m.tensor(o)) is t and t.data_ptr() == ptr
        outs.append((t, base))
    assert_like_torch(outs[0][0], outs[1][0])
    assert_like_torch(outs[0][1], outs[1][1])


@needs_torch
@pytest.mark.parametrize("dtype, call", [
    ("int64", lambda t: t.add_(0.5)), ("int64", lambda t: t.div_(2)), ("int64", lambda t: t.exp_()),
    ("int64", lambda t: t.sqrt_()), ("int64", lambda t: t.clamp_(0.5)), ("int32", lambda t: t.pow_(2.0)),
    ("int64", lambda t: t.floor_divide_(2.0)), ("int64", lambda t: t.mul_(t.float())), ("bool", lambda t: t.add_(1)),
    ("bool", lambda t: t.mul_(2)), ("uint8", lambda t: t.sub_(True)), ("float32", lambda t: t.add_(t.expand(2, 3))),
])
def test_inplace_that_cannot_fit_self_raises(dtype, call):
    """A result dtype (or shape) self cannot hold: PyTorch refuses, and self stays untouched."""
    for m in (torch, tj):
        t = m.ones(3, dtype=getattr(m, dtype))
        with pytest.raises((RuntimeError, TypeError)):
            call(t)
        assert t.tolist() == m.ones(3, dtype=getattr(m, dtype)).tolist()


# ---- type promotion ---------------------------------------------------------------------------------

PROMOTING = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "==": operator.eq,
             "where": lambda a, b: (tj if isinstance(a, tj.Tensor) else torch).where(a > 2, a, b),
             "maximum": lambda a, b: a.maximum(b), "cat": lambda a, b: (tj if isinstance(a, tj.Tensor) else torch).cat(
                 [a.reshape(-1), b.reshape(-1)])}


def _mismatches(cases):
    """[(description, tracejit call, PyTorch call)] -> those whose results differ in dtype, shape or values;
    where PyTorch raises, tracejit must raise too."""
    bad = []
    for what, ours, theirs in cases:
        want, got = outcome(theirs), outcome(ours)
        if isinstance(want, Exception) or isinstance(got, Exception):
            if not (isinstance(want, Exception) and isinstance(got, Exception)):
                bad.append((what, got, want))
            continue
        try:
            assert_like_torch(got, want)
        except AssertionError as e:
            bad.append((what, str(e)[:200]))
    return bad


@needs_torch
@pytest.mark.parametrize("dims", [((2,), (2,)), ((), (2,)), ((2,), ()), ((), ())], ids=["nd-nd", "0d-nd", "nd-0d",
                                                                                     "0d-0d"])
@pytest.mark.parametrize("op", PROMOTING)
def test_promotion_of_tensor_pairs_matches_torch(op, dims):
    """All 9x9 dtype pairs, dimensioned and zero-dim: tj.result_type and a real op give PyTorch's dtype
    (pairs PyTorch rejects, like bool subtraction, raise in both)."""
    fn, cases = PROMOTING[op], []
    for da in ALL:
        for db in ALL:
            ta, tb = tj.ones(dims[0], dtype=getattr(tj, da)), tj.ones(dims[1], dtype=getattr(tj, db))
            pa, pb = torch.ones(dims[0], dtype=getattr(torch, da)), torch.ones(dims[1], dtype=getattr(torch, db))
            cases.append(((da, db), lambda a=ta, b=tb: fn(a, b), lambda a=pa, b=pb: fn(a, b)))
            cases.append(((da, db, "result_type"), lambda a=ta, b=tb: tj.empty(0, dtype=tj.result_type(a, b)),
                          lambda a=pa, b=pb: torch.empty(0, dtype=torch.result_type(a, b))))
    assert not _mismatches(cases)


@needs_torch
@pytest.mark.parametrize("scalar", [True, False, 0, 3, -3, 2.5, -0.75, 1e-3])
@pytest.mark.parametrize("zero_dim", [False, True])
def test_operators_with_python_numbers_match_torch(scalar, zero_dim):
    """`t op 2.5` and the reflected `2.5 op t` for every operator and dtype: promotion, values, and an error
    where PyTorch raises; and tj.result_type(t, number)."""
    cases = []
    for d in ALL:
        x = np.array(3, d) if zero_dim else np.arange(-3, 3).astype(d)
        t, p = tj.tensor(x), torch.tensor(x)
        for sym, fn in OPERATORS.items():
            cases.append(((d, sym), lambda f=fn, t=t: f(t, scalar), lambda f=fn, p=p: f(p, scalar)))
            cases.append(((scalar, sym, d), lambda f=fn, t=t: f(scalar, t), lambda f=fn, p=p: f(scalar, p)))
        cases.append(((d, "result_type"), lambda t=t: tj.empty(0, dtype=tj.result_type(t, scalar)),
                      lambda p=p: torch.empty(0, dtype=torch.result_type(p, scalar))))
    assert not _mismatches(cases)


# ---- indexing errors, and warnings not yet silenced -------------------------------------------------


@needs_torch
@pytest.mark.parametrize("expr", ["m.index_select(x, 0, m.tensor([-1]))", "m.gather(x, 0, m.tensor([[-1, 0, 0, 0]]))",
                                  "m.gather(x, 1, m.tensor([[0, 4]]))", "m.gather(x, 1, m.zeros(4, 1).long())"])
def test_out_of_range_indices_raise(expr):
    """Negative indices included: numpy would wrap them around."""
    for m in (torch, tj):
        with pytest.raises((IndexError, RuntimeError)):
            eval(expr, {"m": m, "x": m.arange(12.0).reshape(3, 4)})


def test_isclose_allclose_equal_match_torch():
    torch = pytest.importorskip("torch")
    vals = [1.0, 1.0 + 1e-7, float("nan"), float("inf"), -float("inf"), 2.0, 0.0, -0.0]
    other = [1.0, 1.0, float("nan"), float("inf"), float("inf"), 2.1, 1e-9, 0.0]
    for equal_nan in (False, True):
        for rtol, atol in ((1e-5, 1e-8), (0.1, 0.0)):
            got = tj.isclose(tj.tensor(vals), tj.tensor(other), rtol=rtol, atol=atol, equal_nan=equal_nan)
            want = torch.isclose(torch.tensor(vals), torch.tensor(other), rtol=rtol, atol=atol, equal_nan=equal_nan)
            assert got.tolist() == want.tolist()
    assert tj.allclose(tj.ones(3), tj.ones(3) + 1e-9) and not tj.allclose(tj.ones(3), tj.zeros(3))
    assert tj.equal(tj.ones(2), tj.ones(2)) and not tj.equal(tj.ones(2), tj.ones(3))


@pytest.mark.parametrize("op", ["mul", "div", "floor_divide"])
@pytest.mark.parametrize("scalar_dtype", ["float32", "float64"])
def test_half_times_a_zero_dim_float_reads_it_at_its_own_precision(op, scalar_dtype):
    """As PyTorch's mul/div kernels: a 0-dim float32/float64 operand is not rounded to float16 first
    (2.928 // 2.9284015 is 0, where rounding the divisor to float16 first would give 1)."""
    torch = pytest.importorskip("torch")
    a = np.array([2.928, -1.5, 7.0, 0.3], np.float16)
    s = np.array(2.9284015, scalar_dtype)
    got = getattr(tj, op)(tj.from_numpy(a), tj.from_numpy(s))
    want = getattr(torch, op)(torch.from_numpy(a), torch.from_numpy(s))
    assert got.dtype is tj.float16
    np.testing.assert_array_equal(got.numpy(), want.numpy())
