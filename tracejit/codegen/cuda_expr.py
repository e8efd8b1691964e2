"""C expressions of CUDA C kernels: how values are held and stored per dtype, literals, conversions, and
`CUDA_EXPR`, one C expression per registry op (the keys of `llvm_cpu.LOWER`; a test fails when one
lacks its expression). The semantics are the CPU backend's: no fast math, integer arithmetic wraps,
float16 stored as IEEE half and computed in float (see `tracejit.codegen.cuda_c`)."""

from __future__ import annotations

import math

import numpy as np

from tracejit import dtypes as D
from tracejit.codegen.lowering import Refuse as _Refuse
from tracejit.ir.types import BoolType, FloatType, IntType

KERNEL_NAME = "kernel"

# How values are held while computing (float16 in float) and how they are stored.
_HELD = {D.bool_: "bool", D.int8: "signed char", D.int16: "short", D.int32: "int", D.int64: "long long",
         D.float16: "float", D.float32: "float", D.float64: "double"}
_STORED = {**_HELD, D.bool_: "unsigned char", D.float16: "unsigned short"}
_UNSIGNED = {D.int8: "unsigned char", D.int16: "unsigned short", D.int32: "unsigned int",
             D.int64: "unsigned long long"}
_BITS = {D.int8: 8, D.int16: 16, D.int32: 32, D.int64: 64}
# Scalar params: IR type -> (C parameter type, the dtype it holds, a stand-in value for dtype rules)
_SCALARS = {FloatType: ("double", D.float64, 0.0), IntType: ("long long", D.int64, 0),
            BoolType: ("bool", D.bool_, False)}
# Positions where the registry reads a Python float at float32 precision against a float16 tensor (as llvm_cpu)
_HALF_OPMATH = {"tj::mul": (0, 1), "tj::div": (1,)}

# Shared by every kernel of a translation unit (guarded, so several kernels can share one source).
PRELUDE = r"""#ifndef TRACEJIT_PRELUDE
#define TRACEJIT_PRELUDE
__device__ __forceinline__ float tj_h2f(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short tj_f2h(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ unsigned short tj_d2h(double d) {
  unsigned short h; asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d)); return h;
}
__device__ __forceinline__ float tj_round_half(float x) { return tj_h2f(tj_f2h(x)); }
__device__ __forceinline__ float tj_round_half(double x) { return tj_h2f(tj_d2h(x)); }
template <typename T> __device__ __forceinline__ T tj_max(T x, T y) { return (x != x || x > y) ? x : y; }
template <typename T> __device__ __forceinline__ T tj_min(T x, T y) { return (x != x || x < y) ? x : y; }
template <typename T> __device__ __forceinline__ T tj_remainder(T x, T y) {
  T mod = fmod(x, y);
  if (mod != T(0) && ((y < T(0)) != (mod < T(0)))) mod += y;
  return mod == T(0) ? copysign(T(0), y) : mod;
}
template <typename T> __device__ __forceinline__ T tj_floor_divide(T x, T y) {
  if (y == T(0)) return x / y;
  T mod = fmod(x, y);
  T div = (x - mod) / y;
  if (mod != T(0) && ((y < T(0)) != (mod < T(0)))) div -= T(1);
  if (div == T(0)) return copysign(T(0), x / y);
  T fl = floor(div);
  if (div - fl > T(0.5)) fl += T(1);
  return fl;
}
template <typename T, typename U> __device__ __forceinline__ T tj_ipow(T x, int k) {
  U r = 1, b = (U)x;
  while (k) { if (k & 1) r *= b; k >>= 1; if (k) b *= b; }
  return (T)r;
}
template <typename T, int N> struct alignas(sizeof(T) * N) tj_pack { T v[N]; };  // one vector access
template <typename T, typename I> __device__ __forceinline__ I tj_to_int(T x, T lo, T hi, I indefinite) {
  return (x >= lo && x < hi) ? (I)x : indefinite;
}
#endif
"""


class CValue(str):
    """A C expression (a `str`) with the dtype it computes; `const` is its Python value when constant."""

    def __new__(cls, text, dtype, const=None):
        s = super().__new__(cls, text)
        s.dtype, s.const = dtype, const
        return s


# ---- literals and conversions --------------------------------------------------------------


def _int_lit(v, dtype):
    bits = _BITS.get(dtype, 64)
    v &= (1 << bits) - 1
    v = v - (1 << bits) if v >= 1 << (bits - 1) else v
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"(({_HELD[dtype]}){v}LL)"


def _float_lit(v, dtype):
    """An exact literal of `v` rounded to float (float16/float32) or double."""
    single = dtype is not D.float64
    v = float(np.float32(v)) if single else float(v)
    if math.isnan(v):
        return "__int_as_float(0x7fc00000)" if single else "__longlong_as_double(0x7ff8000000000000LL)"
    if math.isinf(v):
        inf = "__int_as_float(0x7f800000)" if single else "__longlong_as_double(0x7ff0000000000000LL)"
        return inf if v > 0 else f"(-{inf})"
    return f"({v.hex()}{'f' if single else ''})"


def _const(value, dtype, float32_scalar=False):
    """A Python number as a constant of `dtype`, rounded as the registry converts it."""
    if dtype is D.bool_:
        return CValue("true" if value else "false", dtype, bool(value))
    if not dtype.is_floating_point:
        if isinstance(value, float):
            raise _Refuse(f"float scalar {value} in an integer op")
        return CValue(_int_lit(int(value), dtype), dtype, int(value))
    with np.errstate(all="ignore"):
        if dtype is D.float16 and not float32_scalar:
            value = float(np.float16(value))
    return CValue(_float_lit(value, dtype), dtype, value)


def _truth(x):
    """Python truthiness as a C bool (nan is true)."""
    return x if x.dtype is D.bool_ else f"({x} != 0)"


def _convert(x, dst):
    """Convert held value `x` to dtype `dst` as numpy's astype does."""
    src = x.dtype
    if src is dst or dst is None:
        return x
    if dst is D.bool_:
        return CValue(_truth(x), dst)
    if src.is_floating_point and not dst.is_floating_point:
        # nan and out-of-range give the x86 "integer indefinite", as numpy there (and llvm_cpu)
        wide = D.int64 if dst is D.int64 else D.int32
        bits = _BITS[wide]
        lo, hi = _float_lit(-(2.0 ** (bits - 1)), src), _float_lit(2.0 ** (bits - 1), src)
        held = _HELD[wide]
        r = f"tj_to_int<{_HELD[src]}, {held}>({x}, {lo}, {hi}, {_int_lit(-(1 << (bits - 1)), wide)})"
        return CValue(f"(({_HELD[dst]}){r})" if wide is not dst else r, dst)
    if dst is D.float16:
        if src is D.float64 or (not src.is_floating_point and src is not D.bool_):
            return CValue(f"tj_round_half((double){x})", dst)
        return CValue(f"tj_round_half((float){x})", dst)
    return CValue(f"(({_HELD[dst]}){x})", dst)


# ---- elementwise rules: f(*args as CValue, **attrs) -> C expression or None ------------------


def _is_float(x):
    return x.dtype.is_floating_point


def _is_bool(x):
    return x.dtype is D.bool_


def _f(x, name):
    """The C math function `name` for x's precision: expf for float, exp for double."""
    return name if x.dtype is D.float64 else name + "f"


def _one(x, v=1.0):
    return _float_lit(v, x.dtype) if _is_float(x) else _int_lit(int(v), x.dtype)


def _wrapping(x, op, y):
    """x op y for integers, wrapping around as numpy does (signed overflow is undefined in C)."""
    u = _UNSIGNED[x.dtype]
    return f"(({_HELD[x.dtype]})(({u}){x} {op} ({u}){y}))"


def _math(name):
    def expr(x):
        return f"{_f(x, name)}({x})" if _is_float(x) else None

    return expr


def _sigmoid(x):
    return f"({_one(x)} / ({_one(x)} + {_f(x, 'exp')}(-{x})))" if _is_float(x) else None


def _rsqrt(x):  # two correctly rounded steps, not the ~2 ulp rsqrtf
    return f"({_one(x)} / {_f(x, 'sqrt')}({x}))" if _is_float(x) else None


def _reciprocal(x):
    return f"({_one(x)} / {x})" if _is_float(x) else None


def _atan2(y, x):
    return f"{_f(y, 'atan2')}({y}, {x})" if _is_float(y) else None


def _scaled(y, alpha, compute):
    if alpha == 1:
        return y
    if _is_bool(y) or compute is D.float16:
        return None
    if _is_float(y):
        return f"({y} * {_const(alpha, y.dtype)})"
    if not isinstance(alpha, int):
        return None
    return _wrapping(y, "*", _int_lit(alpha, y.dtype))


def _add(x, y, alpha=1, compute=None):
    y2 = _scaled(y, alpha, compute)
    if y2 is None:
        return None
    if _is_bool(x):
        return f"({x} || {y2})"
    return f"({x} + {y2})" if _is_float(x) else _wrapping(x, "+", y2)


def _sub(x, y, alpha=1, compute=None):
    y2 = _scaled(y, alpha, compute)
    if y2 is None or _is_bool(x):
        return None
    return f"({x} - {y2})" if _is_float(x) else _wrapping(x, "-", y2)


def _mul(x, y):
    if _is_bool(x):
        return f"({x} && {y})"
    return f"({x} * {y})" if _is_float(x) else _wrapping(x, "*", y)


def _neg(x):
    if _is_bool(x):
        return None
    return f"(-{x})" if _is_float(x) else _wrapping(CValue("0", x.dtype), "-", x)


def _int_divisor(y):
    """A nonzero constant integer divisor, else None (the registry raises on zero; runtime divisors refuse)."""
    return y.const if isinstance(y.const, int) and not isinstance(y.const, bool) and y.const else None


def _div(x, y, rounding_mode=None):
    if rounding_mode is None:
        return f"({x} / {y})" if _is_float(x) else None
    if rounding_mode == "trunc":
        return f"{_f(x, 'trunc')}({x} / {y})" if _is_float(x) else None
    if rounding_mode != "floor" or _is_bool(x):
        return None
    if _is_float(x):
        return f"tj_floor_divide({x}, {y})"
    d = _int_divisor(y)
    if d is None:
        return None
    if d == -1:  # INT_MIN / -1 wraps, as negation does
        return _neg(x)
    fix = f"({x} % {y} {'<' if d > 0 else '>'} 0)"
    return f"({x} / {y} - ({fix} ? 1 : 0))"


def _remainder(x, y):
    if _is_bool(x):
        return None
    if _is_float(x):
        return f"tj_remainder({x}, {y})"
    d = _int_divisor(y)
    if d is None:
        return None
    if d == -1:
        return _int_lit(0, x.dtype)
    return f"({x} % {y} + (({x} % {y} {'<' if d > 0 else '>'} 0) ? {y} : 0))"


def _fmod(x, y):
    if _is_bool(x):
        return None
    if _is_float(x):
        return f"{_f(x, 'fmod')}({x}, {y})"
    d = _int_divisor(y)
    if d is None:
        return None
    return _int_lit(0, x.dtype) if d == -1 else f"({x} % {y})"


def _pow(x, y, compute=None):
    k = y.const
    if _is_bool(x) or isinstance(k, bool):
        return None
    if _is_float(x):
        if k == 0:
            return _one(x)
        if k == 1:
            return x
        if k == 2:
            return f"({x} * {x})"
        if k == -1:
            return f"({_one(x)} / {x})"
        if k == 0.5:  # numpy takes sqrt for float32/64; float16 goes through powf: +0.0 and +inf there
            r = f"{_f(x, 'sqrt')}({x})"
            if compute is not D.float16:
                return r
            return f"({x} == -__int_as_float(0x7f800000) ? __int_as_float(0x7f800000) : {r} + 0.0f)"
        return f"{_f(x, 'pow')}({x}, {y})"
    if not isinstance(k, int) or k < 0 or k > 64:
        return None
    return f"tj_ipow<{_HELD[x.dtype]}, {_UNSIGNED[x.dtype]}>({x}, {k})"


def _abs(x):
    if _is_bool(x):
        return None
    if _is_float(x):
        return f"{_f(x, 'fabs')}({x})"
    return f"({x} < 0 ? {_neg(x)} : {x})"


def _sign(x):
    if _is_bool(x):
        return x
    zero = _one(x, 0)  # sign(nan) is 0 and sign(-0.0) is +0.0, as the registry's
    return f"(({_HELD[x.dtype]})(({zero} < {x}) - ({x} < {zero})))"


def _max(x, y):
    if _is_bool(x):
        return f"({x} || {y})"
    return f"tj_max<{_HELD[x.dtype]}>({x}, {y})"


def _min(x, y):
    if _is_bool(x):
        return f"({x} && {y})"
    return f"tj_min<{_HELD[x.dtype]}>({x}, {y})"


def _relu(x):
    return None if _is_bool(x) else _max(x, _one(x, 0))


def _clamp(x, lo, hi):
    if lo is not None:
        x = CValue(_max(x, lo), x.dtype)
    if hi is not None:
        x = CValue(_min(x, hi), x.dtype)
    return x


def _int_identity(name):
    """floor/ceil/trunc/round: a math function on floats, the value itself on integers, none on bool."""

    def expr(x, decimals=0):
        if decimals or _is_bool(x):
            return None
        return f"{_f(x, name)}({x})" if _is_float(x) else x

    return expr


def _bool(text):
    return CValue(text, D.bool_)


def _compare(op):
    def expr(x, y):  # C's float comparisons are numpy's: ordered, except != (true for nan)
        return _bool(f"({x} {op} {y})")

    return expr


def _logical(op):
    def expr(x, y):
        return _bool(f"({_truth(x)} {op} {_truth(y)})")

    return expr


def _bitwise(op):
    def expr(x, y):
        if _is_float(x):
            return None
        return _bool(f"(bool)({x} {op} {y})") if _is_bool(x) else f"({x} {op} {y})"

    return expr


def _bitwise_not(x):
    if _is_float(x):
        return None
    return _bool(f"(!{x})") if _is_bool(x) else f"(~{x})"


def _isnan(x):
    return _bool(f"isnan({x})" if _is_float(x) else "false")


def _isinf(x):
    return _bool(f"isinf({x})" if _is_float(x) else "false")


def _isfinite(x):
    return _bool(f"isfinite({x})" if _is_float(x) else "true")


def _where(cond, x, y):  # the result has x's dtype, not the condition's
    return CValue(f"({_truth(cond)} ? {x} : {y})", x.dtype) if x.dtype is y.dtype else None


def _masked_fill(x, mask, value):
    return f"({_truth(mask)} ? {value} : {x})" if value.dtype is x.dtype else None


# IR name -> C expression of one elementwise op (keys as llvm_cpu.LOWER). Inputs arrive converted to
# the op's compute dtype (registry dtype rule and `cast`), bool as C bool, float16 as float. A result
# without a dtype of its own (a plain str) has its first argument's dtype. Rules that need the
# compute dtype take it as the keyword `compute`.
CUDA_EXPR = {
    "tj::exp": _math("exp"),
    "tj::expm1": _math("expm1"),
    "tj::log": _math("log"),
    "tj::log1p": _math("log1p"),
    "tj::sigmoid": _sigmoid,
    "tj::tanh": _math("tanh"),
    "tj::erf": _math("erf"),
    "tj::sin": _math("sin"),
    "tj::cos": _math("cos"),
    "tj::tan": _math("tan"),
    "tj::atan2": _atan2,
    "tj::pow": _pow,
    "tj::rsqrt": _rsqrt,
    "tj::reciprocal": _reciprocal,
    "tj::add": _add,
    "tj::sub": _sub,
    "tj::mul": _mul,
    "tj::div": _div,
    "tj::remainder": _remainder,
    "tj::fmod": _fmod,
    "tj::neg": _neg,
    "tj::abs": _abs,
    "tj::relu": _relu,
    "tj::sign": _sign,
    "tj::maximum": _max,
    "tj::minimum": _min,
    "tj::clamp": _clamp,
    "tj::sqrt": _math("sqrt"),
    "tj::floor": _int_identity("floor"),
    "tj::ceil": _int_identity("ceil"),
    "tj::trunc": _int_identity("trunc"),
    "tj::round": _int_identity("rint"),  # numpy's rint: halves to even
    "tj::eq": _compare("=="),
    "tj::ne": _compare("!="),
    "tj::lt": _compare("<"),
    "tj::le": _compare("<="),
    "tj::gt": _compare(">"),
    "tj::ge": _compare(">="),
    "tj::logical_not": lambda x: _bool(f"(!{_truth(x)})"),
    "tj::logical_and": _logical("&&"),
    "tj::logical_or": _logical("||"),
    "tj::logical_xor": _logical("!="),
    "tj::bitwise_not": _bitwise_not,
    "tj::bitwise_and": _bitwise("&"),
    "tj::bitwise_or": _bitwise("|"),
    "tj::bitwise_xor": _bitwise("^"),
    "tj::isnan": _isnan,
    "tj::isinf": _isinf,
    "tj::isfinite": _isfinite,
    "tj::where": _where,
    "tj::masked_fill": _masked_fill,
    "tj::to_dtype": lambda x, dtype=None: x,  # the conversion to the node's dtype follows every rule
}
_TAKES_COMPUTE = {"tj::add", "tj::sub", "tj::pow"}
