"""The vectorizable math of tracejit.codegen.llvm_math, compiled in loops and checked against numpy.

Every function runs in a loop `f(out, in..., n)` optimized like the CPU backend's kernels (O3 for
the host) and is compared with numpy's float64 result on the same inputs: dense log-spaced sweeps
over the whole finite range of the type, a grid around zero, random bit patterns, and edge values
(+-0.0, +-inf, nan, subnormals, the largest finite value, the overflow and underflow thresholds,
the switch points between approximations). The bound is |got - want| <= rtol * max(|want|, floor):
relative, turning absolute below `floor`. Where numpy's result is nan, infinite or zero, or an input
is, the result must match exactly, the sign of zero included. All functions share one compiled
module, so the file runs in a few seconds.
"""

import ctypes
import inspect
import math
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir as L

from tracejit import ops
from tracejit.codegen import llvm_math as M

_F32 = np.finfo(np.float32)
_INV_SQRT2, _INV_SQRT2_LO = 0.7071067811865476, -4.833646656726457e-17  # 1/sqrt(2) = hi + lo


def _ufunc(f):
    return lambda x: np.frompyfunc(f, 1, 1)(x).astype(np.float64)


_erf, _erfc = _ufunc(math.erf), _ufunc(math.erfc)


def _times_sigmoid(m, v):
    """m sigmoid(v); far left, m e**v as e**(v + log|m|), so that e**v does not underflow first."""
    e = np.exp(-np.abs(v))
    tiny = np.copysign(np.exp(v + np.log(np.abs(m))), m) / (1 + e)
    return np.where(v >= 0, m / (1 + e), np.where((v < -700) & np.isfinite(m), tiny, m * e / (1 + e)))


def _sigmoid(x):
    return _times_sigmoid(np.ones_like(x), x)


def _split(v):
    """Veltkamp's split v = hi + lo into 26-bit halves (products of halves are exact)."""
    t = v * 134217729.0
    hi = t - (t - v)
    return hi, v - hi


def _gelu(x):
    # 0.5 x erfc(z), z = -x/sqrt(2): z is rounded, so correct erfc to first order in the rounding
    # error d (erfc' = -2/sqrt(pi) e**-z**2); d comes from Dekker's exact product.
    z = -x * _INV_SQRT2
    (xh, xl), (ch, cl) = _split(-x), _split(np.float64(_INV_SQRT2))
    d = ((xh * ch - z) + xh * cl + xl * ch) + xl * cl - x * _INV_SQRT2_LO
    d = np.where(np.isfinite(d), d, 0.0)  # |x| so large that the split overflows: erfc(z) is 0 or 2 anyway
    return 0.5 * x * (_erfc(z) - 2 / math.sqrt(math.pi) * np.exp(-z * z) * d)


def _gelu_tanh(x):
    return _times_sigmoid(x, 2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))


def _softplus(x):
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


# name: (lowering, numpy reference on float64, (rtol, floor) for float32, for float64, largest |x| tested)
UNARY = {
    "exp": (M.exp, np.exp, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "expm1": (M.expm1, np.expm1, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "log": (M.log, np.log, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "log2": (M.log2, np.log2, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "log10": (M.log10, np.log10, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "log1p": (M.log1p, np.log1p, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "sigmoid": (M.sigmoid, _sigmoid, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "tanh": (M.tanh, np.tanh, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "erf": (M.erf, _erf, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "erfc": (M.erfc, _erfc, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "atan": (M.atan, np.arctan, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "gelu": (M.gelu, _gelu, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "gelu_tanh": (M.gelu_tanh, _gelu_tanh, (2e-6, 1e-38), (1e-14, 1e-9), None),
    "silu": (M.silu, lambda x: _times_sigmoid(x, x), (2e-6, 1e-38), (1e-14, 1e-300), None),
    "softplus": (M.softplus, _softplus, (2e-6, 1e-38), (1e-14, 1e-300), None),
    "sin": (M.sin, np.sin, (2e-6, 1.0), (1e-14, 1.0), 1e9),
    "cos": (M.cos, np.cos, (2e-6, 1.0), (1e-14, 1.0), 1e9),
    "tan": (M.tan, np.tan, (2e-6, 1.0), (1e-14, 1.0), 1e9),
    "rsqrt": (M.rsqrt, lambda x: 1 / np.sqrt(x), (2e-7, 1e-38), (3e-16, 1e-300), None),
    "reciprocal": (M.reciprocal, lambda x: 1 / x, (1e-7, 1e-38), (2e-16, 1e-300), None),
}
BINARY = {
    "pow": (M.pow, np.power, (2e-6, 1e-38), (1e-14, 1e-300)),
    "atan2": (M.atan2, np.arctan2, (2e-6, 1e-38), (1e-14, 1e-300)),
}
DTYPES = {np.float32: L.FloatType(), np.float64: L.DoubleType()}


def _loop(module, name, fn, ty, arity):
    """void name(ptr out, ptr in..., i64 n): out[i] = fn(in[i]...)."""
    i64 = L.IntType(64)
    f = L.Function(module, L.FunctionType(L.VoidType(), [L.PointerType()] * (arity + 1) + [i64]), name=name)
    for a in f.args[:-1]:
        a.add_attribute("noalias")
    entry, loop, done = (f.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = L.IRBuilder(entry)
    n = f.args[-1]
    b.cbranch(b.icmp_signed(">", n, L.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(L.Constant(i64, 0), entry)
    at = lambda p: b.gep(p, [i], inbounds=True, source_etype=ty)
    value = fn(b, *[b.load(at(p), typ=ty) for p in f.args[1:-1]])
    b.store(value, at(f.args[0]))
    nxt = b.add(i, L.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


def _host_machine():
    """The host CPU at O3, as the CPU backend compiles kernels."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    features = llvm.get_host_cpu_features().flatten()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features, opt=3, jit=True)


class _Compiled:
    """Every function of UNARY and BINARY for both types in one optimized, JIT-compiled module."""

    def __init__(self):
        module = L.Module(name="llvm_math_test")
        for dtype, ty in DTYPES.items():
            for name, (fn, *_) in UNARY.items():
                _loop(module, self.symbol(name, dtype), fn, ty, 1)
            for name, (fn, *_) in BINARY.items():
                _loop(module, self.symbol(name, dtype), fn, ty, 2)
        tm = _host_machine()
        mod = llvm.parse_assembly(str(module))
        mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
        mod.verify()
        options = llvm.PipelineTuningOptions(speed_level=3)
        options.loop_vectorization = options.slp_vectorization = True
        passes = llvm.PassBuilder(tm, options)
        passes.getModulePassManager().run(mod, passes)
        self.llvm_ir = str(mod)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()

    @staticmethod
    def symbol(name, dtype):
        return f"{name}_{np.dtype(dtype).name}"

    def __call__(self, name, *arrays):
        arrays = [np.ascontiguousarray(a) for a in arrays]
        out = np.empty_like(arrays[0])
        addr = self.engine.get_function_address(self.symbol(name, out.dtype))
        fn = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (len(arrays) + 1), ctypes.c_int64)(addr)
        fn(out.ctypes.data, *[a.ctypes.data for a in arrays], out.size)
        return out

    def function_ir(self, name, dtype):
        body = self.llvm_ir.split(f"@{self.symbol(name, dtype)}(", 1)[1]
        return body.split("\ndefine ", 1)[0]


@pytest.fixture(scope="module")
def compiled():
    return _Compiled()


def _edges(dtype):
    f = np.finfo(dtype)
    tiny = [1e-45, 1e-40, 1.17549435e-38] if dtype == np.float32 else [5e-324, 1e-310, 2.2250738585072014e-308]
    thresholds = [88.72283, 88.7228394, 88.72284, 89.0, -87.33654, -87.336548, -103.972076, -103.97208, -104.0,
                  709.78, 709.782712893384, 709.7827128933841, -708.3964185322641, -745.1332191019411,
                  -745.1332191019412, -746.0, 0.5, 0.625, 1.0, 2.0, 8.0, 1.4142135, 2.828427, 20.0, 0.4142135,
                  0.66, 2.4142137, math.pi / 2, math.pi, 3 * math.pi / 2, 1e4, 1e6, 1e9, 2.0**24, 2.0**53]
    near = np.array(thresholds, dtype)
    xs = np.concatenate([np.array([0.0, np.inf, np.nan, f.max, *tiny], dtype), near,
                         np.nextafter(near, dtype(np.inf)), np.nextafter(near, dtype(0))])
    return np.concatenate([xs, -xs])


def _sweep(dtype, n=20000):
    f = np.finfo(dtype)
    mags = np.logspace(np.log10(float(f.smallest_subnormal)), np.log10(float(f.max)) - 1e-9, n)
    grid = np.linspace(-30, 30, 6001)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    bits = np.random.default_rng(1).integers(0, np.iinfo(uint).max, n, dtype=uint, endpoint=True).view(dtype)
    return np.concatenate([mags.astype(dtype), -mags.astype(dtype), grid.astype(dtype), bits, _edges(dtype)])


def _errors(got, want, dtype, floor):
    """Relative errors |got - want| / max(|want|, floor), 0 where they agree exactly; an infinity stands
    for the smallest value that rounds to it, so an overflow one ulp early counts as one ulp."""
    with np.errstate(all="ignore"):
        g = got.astype(np.float64)
        if dtype == np.float32:
            edge = float(_F32.max) * (1 + 2.0**-24)
            g = np.where(np.isinf(g) & np.isfinite(want), np.copysign(edge, g), g)
        err = np.abs(g - want) / np.maximum(np.abs(want), floor)
        same = (got == want.astype(dtype)) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0.0, np.nan_to_num(err, nan=np.inf))


def _check(what, x, got, want, dtype, rtol, floor):
    """Assert the error bound, and exact agreement (sign of zero included) where numpy's float64 result
    is nan, infinite or zero, or an input is nan, infinite or zero."""
    x = list(np.broadcast_arrays(*x)) if isinstance(x, tuple) else [x]
    where = lambda m: ", ".join(f"{what}({', '.join(repr(v[k]) for v in x)}) = {got[k]!r}, numpy {want[k]!r}"
                                for k in np.flatnonzero(m)[:5])
    special = ~np.isfinite(want) | (want == 0)
    for v in x:
        special |= ~np.isfinite(v) | (v == 0)
    with np.errstate(all="ignore"):
        want_t = want.astype(dtype)
    same = (got == want_t) & (np.signbit(got) == np.signbit(want_t)) | np.isnan(got) & np.isnan(want_t)
    assert (same | ~special).all(), f"special values differ: {where(special & ~same)}"
    err = _errors(got, want, dtype, floor)
    assert (err <= rtol).all(), f"error {err.max():.3g} > {rtol:g}: {where(err > rtol)}"
    return err.max()


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_error_bounds(compiled, name, dtype):
    _, ref, bound32, bound64, limit = UNARY[name]
    x = _sweep(dtype)
    if limit is not None:  # outside, only inf and nan are checked (both give nan)
        x = x[~(np.abs(x) > limit) | np.isinf(x)]
    got = compiled(name, x)
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64))
    _check(name, x, got, want, dtype, *(bound32 if dtype == np.float32 else bound64))


def _pairs(dtype):
    rng = np.random.default_rng(0)
    f = np.finfo(dtype)
    mags = np.logspace(np.log10(float(f.smallest_subnormal)), np.log10(float(f.max)) - 1e-9, 2000).astype(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5,
                        float(f.max), -float(f.max), 1e-40 if dtype == np.float32 else 1e-310], dtype)
    sx, sy = (a.ravel() for a in np.meshgrid(special, special))
    x = np.concatenate([rng.choice(mags, 20000) * rng.choice([-1, 1], 20000), rng.uniform(-4, 4, 20000), sx])
    y = np.concatenate([rng.choice(mags, 20000) * rng.choice([-1, 1], 20000), rng.uniform(-40, 40, 20000), sy])
    ints = rng.integers(-60, 60, 5000).astype(dtype)  # negative bases need integral exponents
    x = np.concatenate([x, -rng.uniform(0, 8, 5000)])
    y = np.concatenate([y, ints])
    return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_error_bounds(compiled, name, dtype):
    _, ref, bound32, bound64 = BINARY[name]
    x, y = _pairs(dtype)
    got = compiled(name, x, y)
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64), y.astype(np.float64))
    _check(name, (x, y), got, want, dtype, *(bound32 if dtype == np.float32 else bound64))


SPECIAL = [  # (name, x, numpy's answer), each checked exactly, the sign of zero included
    ("exp", -np.inf, 0.0), ("exp", np.inf, np.inf), ("exp", np.nan, np.nan), ("exp", -0.0, 1.0),
    ("tanh", np.inf, 1.0), ("tanh", -np.inf, -1.0), ("tanh", -0.0, -0.0), ("tanh", np.nan, np.nan),
    ("erf", np.inf, 1.0), ("erf", -np.inf, -1.0), ("erf", -0.0, -0.0), ("erfc", -np.inf, 2.0),
    ("expm1", -0.0, -0.0), ("expm1", -np.inf, -1.0), ("log1p", -0.0, -0.0), ("log1p", -1.0, -np.inf),
    ("log", 0.0, -np.inf), ("log", -0.0, -np.inf), ("log", -1.0, np.nan), ("log", np.inf, np.inf),
    ("log2", 8.0, 3.0), ("log2", 2.0**-149, -149.0), ("sin", np.inf, np.nan), ("sin", -0.0, -0.0),
    ("cos", -np.inf, np.nan), ("tan", -0.0, -0.0), ("atan", -np.inf, -np.pi / 2), ("sigmoid", -np.inf, 0.0),
    ("sigmoid", np.inf, 1.0), ("gelu", -0.0, -0.0), ("softplus", -np.inf, 0.0), ("rsqrt", -0.0, -np.inf),
]


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_special_values(compiled, dtype):
    for name, x, want in SPECIAL:
        got = compiled(name, np.array([x], dtype))[0]
        assert got == dtype(want) or np.isnan(got) and np.isnan(want), f"{name}({x}) = {got}, want {want}"
        assert np.signbit(got) == np.signbit(want), f"{name}({x}) = {got}, want {want}"


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_trig_beyond_the_exact_reduction_stays_bounded(compiled, dtype):
    x = np.array([7e9, 1e12, 1e20, 1e30, float(np.finfo(dtype).max)], dtype)
    for name in ("sin", "cos"):
        got = compiled(name, np.concatenate([x, -x]))
        assert (np.abs(got) <= 1).all(), (name, got)


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "erf", "sin", "cos", "gelu"])
def test_loops_vectorize_without_libm_calls(compiled, name):
    body = compiled.function_ir(name, np.float32)
    assert re.search(r"<\d+ x float>", body), f"{name}: the loop vectorizer should emit vector types"
    assert not re.search(r"call [^\n]*@(?!llvm\.)", body), f"{name}: calls something other than an intrinsic"


def test_no_function_calls_libm(compiled):
    calls = set(re.findall(r"call [^\n]*?@([\w.]+)\(", compiled.llvm_ir))
    assert all(c.startswith("llvm.") for c in calls), sorted(calls)


def test_math_table_matches_the_registry():
    for name, fn in M.MATH.items():
        op = ops.get(name)  # raises for a name the registry lacks
        params = list(inspect.signature(fn).parameters)
        assert len(params) - 1 == len(op.inputs), name
        assert set(op.attrs) <= set(params), name


def test_unsupported_types_are_not_lowered():
    fn = L.Function(L.Module(), L.FunctionType(L.VoidType(), [L.IntType(32), L.HalfType()]), name="f")
    b = L.IRBuilder(fn.append_basic_block())
    for lower in M.MATH.values():
        args = fn.args[:1] * (len(inspect.signature(lower).parameters) - 1)
        assert lower(b, *args) is None
        assert lower(b, *[fn.args[1]] * len(args)) is None
    assert M.gelu(b, L.Constant(L.FloatType(), 1.0), approximate="cubic") is None
