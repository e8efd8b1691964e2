"""CUDA C code generation: each `prim::FusionGroup` becomes one CUDA C kernel source.

`CUDA_EXPR` maps registry op names (the keys of `llvm_cpu.LOWER`) to one C expression per op, and
the semantics are the CPU backend's: no fast math (nan, inf and -0.0 as numpy has them; maximum,
minimum and relu propagate nan), integer arithmetic wraps, float16 is stored as IEEE half and
computed in float, each op's result rounded to half. Elementwise groups become elementwise kernels
(here); groups holding reductions over trailing axes, softmax and log_softmax become row kernels
(`cuda_reduce`, same ABI, another launch). Ops the table lacks, symbolic shapes, unsupported dtypes
and reductions over leading axes are refused: `emit_group` returns None (`refusal` says why).

Kernel ABI (one source; `nvrtc.compile_ptx` or `nvrtc.compile_ptx_cached` turns it into PTX)::

    extern "C" __global__ void kernel(T0* __restrict__ out_0, ..., const U0* __restrict__ in_0, ...,
                                      long long n)

- `out_j`: a C-contiguous buffer of `out_shapes[j]` / `out_dtypes[j]`, only written; it must not
  overlap an input or another output.
- `in_i`, tensor param: the address of element [0, ..., 0] of an array of `in_shapes[i]` /
  `in_dtypes[i]` whose element strides are `in_strides[i]` (baked into the code as constants;
  zero and negative strides are fine). Scalar param: passed by value as `double`, `long long` or
  `bool` (IR `float`, `int`, `bool`); `KernelSource.arguments(outs, ins)` converts them.
- `n`: `KernelSource.numel`: the number of output elements (launch "elementwise") or of rows
  (launch "rows").
- Alignment: every buffer starts on a 16-byte boundary (cupy allocations are 256-byte aligned).
  Where `vector_width` > 1, the kernel reads and writes whole packs of `vector_width` elements
  (16 bytes for the widest dtype, one `ld.global.v4`/`st.global.v4` per float32 operand), then the
  last `n % vector_width` elements one by one. A view starting inside an allocation must be copied
  first, or the group emitted for its strides (strided groups stay scalar). This path is taken
  only when every tensor operand is contiguous and shaped like the output (no broadcasting).
- Element storage: bool is one byte (`unsigned char`, 0 or 1); float16 is IEEE half held in an
  `unsigned short` and converted with PTX `cvt` (no CUDA headers are needed, so the NVRTC wheel
  alone compiles every kernel).

Launch: `kernel<<<grid, threads>>>(*k.arguments(outs, ins))`. Elementwise kernels loop over the
grid (`[0, n)` in packs, then the tail), so any grid and block shape is correct; `grid` blocks of
`threads` cover the work once. Row kernels need a block of exactly `threads` threads (see
`cuda_reduce`); any grid is correct there too.

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(4)):\\n  %1 : Float(4) = prim::FusionGroup(%x)\\n"
    ...           "    block0(%a : Float(4)):\\n      %b : Float(4) = tj::neg(%a)\\n"
    ...           "      %c : Float(4) = tj::relu(%b)\\n      -> (%c)\\n  return (%1)\\n")
    >>> k = emit_group(g.body.nodes[0])
    >>> k.name, k.out_shapes, k.out_dtypes, "__global__" in k.source
    ('kernel', ((4,),), (dtype('float32'),), True)
    >>> k.launch, k.grid, k.threads, k.vector_width, k.numel
    ('elementwise', 1, 256, 4, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracejit import dtypes as D
from tracejit import ops
from tracejit.codegen.lowering import Meta as _Meta
from tracejit.codegen.lowering import Refuse as _Refuse
from tracejit.codegen.lowering import checked_dtype_rule, coalesce, static_shape
from tracejit.ir.types import BoolType, FloatType, IntType, TensorType
from tracejit.ops.rules import broadcast_shapes, contiguous_strides

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


# ---- kernel source ---------------------------------------------------------------------------

THREADS = 256  # block size of elementwise kernels (any works: they loop over the grid)
MAX_GRID = 65535  # blocks suggested at most: the kernels' grid-stride loops cover the rest
VECTOR_BYTES = 16  # one 128-bit load or store per operand and pack


@dataclass(frozen=True)
class KernelSource:
    """The CUDA C of one group (`PRELUDE` included) and what a caller needs to launch `name`:
    `name<<<grid, threads>>>(*arguments(outs, ins))` (the module docstring gives the ABI)."""

    source: str
    name: str
    in_shapes: tuple  # per input: its shape, or None for a scalar param
    in_dtypes: tuple  # numpy dtypes (scalars: float64, int64 or bool)
    in_strides: tuple  # per input: element strides baked into the code, or None for a scalar
    out_shapes: tuple
    out_dtypes: tuple
    numel: int  # the `n` to pass: output elements ("elementwise") or rows ("rows")
    launch: str = "elementwise"  # "elementwise" (any grid and block) or "rows" (block of exactly `threads`)
    threads: int = THREADS  # threads per block
    grid: int = 1  # blocks that cover the work once (more or fewer are correct too)
    vector_width: int = 1  # elements per 16-byte pack (> 1: every buffer must be 16-byte aligned)
    rows: int = 0  # "rows": kept (not reduced) positions, one output element of a reduction each
    row_len: int = 0  # "rows": reduced elements per row
    rows_per_block: int = 1  # "rows": rows a block works on at once, threads // rows_per_block threads each

    def arguments(self, outs, ins):
        """The kernel's arguments: output and input arrays (device arrays for a launch), scalar params
        converted to the C type the kernel takes, then `n`."""
        args = list(outs)
        for a, shape, dt in zip(ins, self.in_shapes, self.in_dtypes):
            args.append(a if shape is not None else np.dtype(dt).type(a))
        return (*args, np.int64(self.numel))


class _Number:
    """A constant (`value`) or a scalar param (`name`, its C variable) converted per use."""

    def __init__(self, value, name=None):
        self.value, self.name = value, name


class Code:
    """Lines of C in nested scopes; `let` names each value once (fresh names are never shadowed)."""

    def __init__(self, depth=1):
        self.lines, self.depth, self.count = [], depth, 0

    def line(self, text):
        self.lines.append("  " * self.depth + text)

    def let(self, ctype, expr, prefix="v"):
        name = f"{prefix}{self.count}"
        self.count += 1
        self.line(f"const {ctype} {name} = {expr};")
        return name

    def open(self, head):
        self.line(head + " {")
        self.depth += 1

    def close(self):
        self.depth -= 1
        self.line("}")


def _number(num, dst, float32_scalar=False):
    if num.name is None:
        return _const(num.value, dst, float32_scalar)
    kind = _SCALARS[FloatType if isinstance(num.value, float) else BoolType if isinstance(num.value, bool)
                    else IntType][1]
    raw = CValue(num.name, kind)
    return _convert(raw, D.float32 if dst is D.float16 and float32_scalar else dst)


def as_dtype(e, dtype):
    """A computed value (CValue) or number (_Number) as a C expression of `dtype`."""
    return _convert(e, dtype) if isinstance(e, CValue) else _number(e, dtype)


def loaded(raw, dtype):
    """The held value of a stored element `raw` (a C lvalue) of `dtype`."""
    return f"({raw} != 0)" if dtype is D.bool_ else f"tj_h2f({raw})" if dtype is D.float16 else raw


def stored(e, dtype):
    """The C expression storing value `e` (None refuses) as an element of `dtype`."""
    if e is None:
        raise _Refuse("a None output")
    val = as_dtype(e, dtype)
    return f"(unsigned char)({val})" if dtype is D.bool_ else f"tj_f2h({val})" if dtype is D.float16 else val


def shape_of(t):
    return static_shape(t, _HELD)


def _dtype_rule(op, n, args):
    metas = []
    for v, a in zip(n.inputs, args):
        metas.append(_Meta(a.dtype, len(v.type.shape)) if isinstance(a, CValue) else
                     a.value if isinstance(a, _Number) else None)
    return checked_dtype_rule(op, n, metas, _HELD)


def dtype_rule(n, dtype):
    """(compute, output) dtypes of a one-tensor-input node `n` whose input has `dtype`."""
    return _dtype_rule(ops.get(n.op), n, [CValue("", dtype)])


def node_value(n, env, code):
    """Emit the C statements computing node `n` into `code`; returns its value (CValue, _Number or None).
    `env` maps the IR values `n` reads to theirs."""
    if n.op == "prim::Constant":
        value = n.attrs.get("value")
        if value is not None and not isinstance(value, (bool, int, float)):
            raise _Refuse(f"constant {value!r}")
        return None if value is None else _Number(value)
    rule = CUDA_EXPR.get(n.op)
    if rule is None:
        raise _Refuse(f"no CUDA expression for {n.op}")
    op = ops.get(n.op)
    args = [env.get(v) for v in n.inputs]
    compute, out_dtype = _dtype_rule(op, n, args)
    values = []
    for i, a in enumerate(args):
        cast = compute if compute is not None and i in op.cast else None
        if isinstance(a, CValue):
            values.append(_convert(a, cast))
        elif isinstance(a, _Number):
            opmath = compute is D.float16 and isinstance(a.value, float) and i in _HALF_OPMATH.get(n.op, ())
            values.append(_number(a, cast or out_dtype, opmath))
        else:
            values.append(None)
    extra = {"compute": compute} if n.op in _TAKES_COMPUTE else {}
    try:
        r = rule(*values, **n.attrs, **extra)
    except (TypeError, AttributeError) as e:
        raise _Refuse(f"{n.op}: {e}") from None
    if r is None:
        raise _Refuse(f"{n.op} has no CUDA expression for {[getattr(v, 'dtype', v) for v in values]} {n.attrs}")
    first = next((v for v in values if isinstance(v, CValue)), None)
    dtype = r.dtype if isinstance(r, CValue) else first.dtype if first is not None else None
    if dtype is None:
        raise _Refuse(f"{n.op}: no dtype for its result")
    var = code.let(_HELD[dtype], r)
    r = _convert(CValue(var, dtype), out_dtype)
    if r != var:
        var = code.let(_HELD[out_dtype], r)
    return CValue(var, out_dtype)


def emit_group(node, in_strides=None, name=KERNEL_NAME):
    """The `KernelSource` of a `prim::FusionGroup` node, or None when the group holds an op, dtype or
    shape this backend lacks. Elementwise groups become elementwise kernels; groups holding reductions
    over trailing axes (and softmax-like row-wise ops) become row kernels (`cuda_reduce`). `in_strides`:
    per block param, element strides to specialize for (None, or a None entry: C-contiguous). `name`:
    the kernel's symbol (distinct names let several kernels share one translation unit)."""
    try:
        return _emit(node, in_strides, name)
    except _Refuse:
        return None


def refusal(node, in_strides=None):
    """Why `emit_group` refuses `node` (a message), or None when it is accepted."""
    try:
        _emit(node, in_strides, KERNEL_NAME)
    except _Refuse as e:
        return str(e)
    return None


def _emit(node, in_strides, name):
    from tracejit.codegen import cuda_reduce

    block = node.blocks[0]
    if in_strides is not None and len(in_strides) != len(block.params):
        raise _Refuse(f"{len(in_strides)} stride tuples for {len(block.params)} params")
    if any(n.op in cuda_reduce.REDUCE for n in block.nodes):
        return cuda_reduce.emit_rows(node, in_strides, name)
    return _emit_elementwise(node, in_strides, name)


def param_strides(block, in_strides, nd):
    """Per tensor param ("in", i): element strides aligned to `nd` dims (broadcast dims 0); and the
    KernelSource fields in_shapes, in_dtypes, in_strides."""
    strides, in_shapes, in_dtypes, in_st = {}, [], [], []
    for i, p in enumerate(block.params):
        if not isinstance(p.type, TensorType):
            if type(p.type) not in _SCALARS:
                raise _Refuse(f"param of type {p.type}")
            in_shapes.append(None)
            in_dtypes.append(np.dtype(_SCALARS[type(p.type)][1].np))
            in_st.append(None)
            continue
        s = shape_of(p.type)
        given = in_strides[i] if in_strides is not None and in_strides[i] is not None else None
        st = tuple(int(v) for v in given) if given is not None else tuple(contiguous_strides(s))
        if len(st) != len(s):
            raise _Refuse(f"strides {st} for a param of shape {s}")
        strides["in", i] = (0,) * (nd - len(s)) + tuple(0 if e == 1 else v for e, v in zip(s, st))
        in_shapes.append(s)
        in_dtypes.append(np.dtype(p.type.dtype.np))
        in_st.append(st)
    return strides, (tuple(in_shapes), tuple(in_dtypes), tuple(in_st))


def signature(block, name, extra=""):
    """The kernel's first line: outputs, inputs (tensors by pointer, scalar params by value), `long long n`."""
    args = [f"{_STORED[v.type.dtype]}* __restrict__ out_{j}" for j, v in enumerate(block.returns)]
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            args.append(f"const {_STORED[p.type.dtype]}* __restrict__ in_{i}")
        else:
            args.append(f"{_SCALARS[type(p.type)][0]} in_{i}")
    args.append("long long n")
    head = f'extern "C" __global__ void {extra}{name}('
    return head + (",\n" + " " * len(head)).join(args) + ") {"


def scalar_env(block):
    """The scalar params as numbers read from the kernel's by-value arguments."""
    return {p: _Number(_SCALARS[type(p.type)][2], f"in_{i}") for i, p in enumerate(block.params)
            if not isinstance(p.type, TensorType)}


def coordinates(code, index, axes, prefix):
    """Emit the coordinates of flat C-order `index` over `axes` ([(extent, {operand: stride})]) that some
    operand reads; returns {operand: [offset terms]}."""
    terms = {}
    for pos in range(len(axes) - 1, -1, -1):
        ext, st = axes[pos]
        if not any(st.values()):
            continue
        rest = f"{index} / {_div_of(axes, pos)}LL" if pos < len(axes) - 1 else index
        coord = f"{prefix}{pos}"
        code.line(f"const long long {coord} = {rest} % {ext}LL;" if pos else f"const long long {coord} = {rest};")
        for k, s in st.items():
            if s:
                terms.setdefault(k, []).append(coord if s == 1 else f"{coord} * {s}LL")
    return terms


def _emit_elementwise(node, in_strides, name):
    block = node.blocks[0]
    params = list(block.params)
    shapes = [shape_of(p.type) for p in params if isinstance(p.type, TensorType)]
    for n in block.nodes:
        if n.blocks or len(n.outputs) != 1:
            raise _Refuse(f"{n.op} has blocks or {len(n.outputs)} outputs")
        if n.op != "prim::Constant":
            if n.op not in CUDA_EXPR:
                raise _Refuse(f"no CUDA expression for {n.op}")
            shapes.append(shape_of(n.outputs[0].type))
    try:
        shape = tuple(broadcast_shapes(*shapes))
    except ValueError as e:
        raise _Refuse(str(e)) from None
    nd = len(shape)
    strides, in_fields = param_strides(block, in_strides, nd)
    for v in block.returns:
        if not isinstance(v.type, TensorType) or shape_of(v.type) != shape:
            raise _Refuse(f"output {v.type} in an iteration space of shape {shape}")
    axes = coalesce([(shape[d], {k: s[d] for k, s in strides.items()}) for d in range(nd) if shape[d] != 1])
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    width = _vector_width(block, strides, axes, numel)

    first = "(long long)blockIdx.x * blockDim.x + threadIdx.x"
    stride = "(long long)blockDim.x * gridDim.x"
    store = lambda j, val: f"out_{j}[i] = {val};"
    code = Code()
    if width > 1:
        code.line(f"const long long packs = n / {width}LL;")
        code.open(f"for (long long p = {first}; p < packs; p += {stride})")
        _vector_pack(block, code, width)
        code.close()
        if numel % width:  # the last n % width elements, one by one
            code.open(f"for (long long i = packs * {width}LL + {first}; i < n; i += {stride})")
            _elements(block, code, lambda i: f"in_{i}[i]", store)
            code.close()
    else:
        code.open(f"for (long long i = {first}; i < n; i += {stride})")
        offsets = {k: " + ".join(t) for k, t in coordinates(code, "i", axes, "c").items()}
        _elements(block, code, lambda i: f"in_{i}[{offsets.get(('in', i), '0')}]", store)
        code.close()
    src = [PRELUDE, signature(block, name), *code.lines, "}", ""]
    work = -(-numel // width)
    return KernelSource("\n".join(src), name, *in_fields, tuple(tuple(v.type.shape) for v in block.returns),
                        tuple(np.dtype(v.type.dtype.np) for v in block.returns), numel, "elementwise", THREADS,
                        max(1, min(-(-work // THREADS), MAX_GRID)), width)


def _vector_width(block, strides, axes, numel):
    """Elements per 16-byte pack of the widest operand when every tensor operand walks the output's
    elements in order (one axis, stride 1: no broadcasting) and there is at least one pack; else 1."""
    if len(axes) != 1 or any(s != 1 for s in axes[0][1].values()):
        return 1
    values = [p for p in block.params if isinstance(p.type, TensorType)] + list(block.returns)
    widest = max(np.dtype(v.type.dtype.np).itemsize for v in values)
    width = VECTOR_BYTES // widest
    return width if 1 < width <= numel else 1


def _vector_pack(block, code, width):
    """One pack: a 16-byte (or narrower, for narrower dtypes) load per input, the elements computed
    in an unrolled loop, a store per output."""
    packs = {}
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            t = packs[i] = f"tj_pack<{_STORED[p.type.dtype]}, {width}>"
            code.line(f"const {t} a{i} = reinterpret_cast<const {t}*>(in_{i})[p];")
    out_packs = [f"tj_pack<{_STORED[v.type.dtype]}, {width}>" for v in block.returns]
    for j, t in enumerate(out_packs):
        code.line(f"{t} b{j};")
    code.line("#pragma unroll")
    code.open(f"for (int l = 0; l < {width}; ++l)")
    _elements(block, code, lambda i: f"a{i}.v[l]", lambda j, val: f"b{j}.v[l] = {val};")
    code.close()
    for j, t in enumerate(out_packs):
        code.line(f"reinterpret_cast<{t}*>(out_{j})[p] = b{j};")


def _elements(block, code, element, store):
    """The statements of one output element: inputs read from `element(i)` (a C lvalue per tensor
    param i), the block's nodes, then `store(j, value)` per output."""
    env = scalar_env(block)
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            dtype = p.type.dtype
            env[p] = CValue(code.let(_HELD[dtype], loaded(element(i), dtype), "x"), dtype)
    for n in block.nodes:
        env[n.outputs[0]] = node_value(n, env, code)
    for j, v in enumerate(block.returns):
        code.line(store(j, stored(env[v], v.type.dtype)))


def _div_of(axes, pos):
    """The product of the extents of the axes after `pos` (the divisor giving coordinate `pos`)."""
    d = 1
    for ext, _ in axes[pos + 1:]:
        d *= ext
    return d


def translation_unit(kernels):
    """One source holding several kernels (their names must differ); the prelude appears once."""
    return PRELUDE + "".join(k.source.replace(PRELUDE, "", 1) for k in kernels)
