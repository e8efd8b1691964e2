"""CPU code generation with LLVM: each `prim::FusionGroup` becomes one native function.

A group's block is lowered op by op through tables keyed by registry names: `LOWER` for
elementwise ops (with the vectorizable transcendentals of `llvm_math.MATH`) and `REDUCE` for
reductions. Groups may mix dtypes (the registry's dtype rules decide each node's compute and
result dtype; conversions are inserted as its `cast` says), read inputs of any strides (broadcast
dims have stride 0) and hold reductions: row-wise ones (layer norm, softmax) or one trailing
reduction over any axes. A group holding anything the tables lack is not lowered: `lower_group`
returns None and the group keeps running in the interpreter (`TRACEJIT_LOG=codegen` says why).

Loops. The iteration space is the broadcast shape of the group's values, size-1 axes dropped and
neighbouring axes merged where every operand allows (so contiguous same-shape operands are one
flat loop, `offset = i`). Elementwise groups walk it in segments along the last axis, the
vectorized loop. Groups with reductions loop over the kept positions; for each, every pass of a
reduction (softmax: max, then sum of exp; var: mean, then squared deviations) is a loop nest over
the reduced axes that recomputes the elementwise expression feeding it from the inputs (no
intermediate buffers: a row is in cache), and a last loop nest writes the outputs. A single-pass
reduction whose kept positions lie closer in memory than its reduced elements (a sum over rows)
instead runs in tiles of up to `TILE` kept positions, with the reduced loops outside a vector loop
over the tile's accumulators.

Kernel ABI (what `Kernel.run` calls; a `KernelSpec` holds the metadata)::

    void kernel(ptr out_0, ..., ptr out_m, ptr in_0, ..., ptr in_n, i64 start, i64 end)

- `out_j`: a C-contiguous buffer of `out_shapes[j]` / `out_dtypes[j]`, only written.
- `in_i`, tensor param: the address of element [0, ..., 0] of an array of the param's shape and
  dtype whose element strides (numpy strides // itemsize) are `in_strides[i]`: the code is
  specialized for those strides (zero and negative strides are fine; a size-1 dim's stride is
  never read). Scalar param (IR type `float` / `int` / `bool`): the address of a 0-d float64 /
  int64 / bool array holding it, read once per call.
- Element types: bool is one byte (0 or 1); float16 is stored as IEEE half and computed in
  float32, each op's result rounded to half, as numpy does.
- `[start, end)`: a slice of the outer index space `[0, range_size)`. For an elementwise group it
  is the flat (C-order) output element index; for a group with reductions, the flat index over the
  kept (not reduced) positions. Disjoint slices may run on different threads at once; `Kernel.run`
  splits large kernels so over the shared pool of `tracejit.ops.parallel`.
- Pointer arguments are `noalias`: an output must not overlap an input or another output (no
  in-place updates).

Semantics are the interpreter's: arithmetic carries no fast-math flags (nan, inf and -0.0 as in
numpy; +, -, *, / and sqrt give numpy's bits). Only reduction accumulations are marked `reassoc`,
so that they vectorize: float16/float32 sums accumulate in float64 partial sums, float64 sums in
several float64 partial sums (not numpy's pairwise order: equal within rounding).

    >>> import numpy as np
    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(4)):\\n  %1 : Float(4) = prim::FusionGroup(%x)\\n"
    ...           "    block0(%a : Float(4)):\\n      %b : Float(4) = tj::neg(%a)\\n"
    ...           "      %c : Float(4) = tj::relu(%b)\\n      -> (%c)\\n  return (%1)\\n")
    >>> kernel = lower_group(g.body.nodes[0])
    >>> kernel(np.array([-1.0, 2.0, -3.0, 4.0], np.float32))[0].tolist()
    [1.0, 0.0, 3.0, 0.0]
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
from llvmlite import ir as L

from tracejit import dtypes as D
from tracejit import ops
from tracejit.codegen.llvm_jit import (  # noqa: F401 - the compile half, re-exported
    KERNEL_NAME,
    PARALLEL_WORK,
    Kernel,
    compile_spec,
    emit_object,
    host_target,
    load_object,
)
from tracejit.codegen.llvm_math import MATH
from tracejit.codegen.lowering import REDUCE_ATTRS, checked_dtype_rule, coalesce, static_shape
from tracejit.codegen.lowering import Meta as _Meta
from tracejit.codegen.lowering import Refuse as _Refuse
from tracejit.ir.types import BoolType, FloatType, IntType, TensorType
from tracejit.ops.rules import broadcast_shapes, contiguous_strides

_I1, _I8, _I16, _I32, _I64 = (L.IntType(w) for w in (1, 8, 16, 32, 64))
_F16, _F32, _F64 = L.HalfType(), L.FloatType(), L.DoubleType()
_PTR = L.PointerType()
# How values are held while computing (float16 in float32) and how they are stored.
_VALUE_TYPE = {D.bool_: _I1, D.int8: _I8, D.int16: _I16, D.int32: _I32, D.int64: _I64,
               D.float16: _F32, D.float32: _F32, D.float64: _F64}
_STORAGE_TYPE = {**_VALUE_TYPE, D.bool_: _I8, D.float16: _F16}
_DTYPE_OF = {_I1: D.bool_, _I8: D.int8, _I16: D.int16, _I32: D.int32, _I64: D.int64, _F32: D.float32,
             _F64: D.float64}
# Scalar params: the IR type, the 0-d array dtype the kernel reads, its LLVM type, a stand-in for dtype rules
_SCALARS = {FloatType: (np.dtype(np.float64), _F64, 0.0), IntType: (np.dtype(np.int64), _I64, 0),
            BoolType: (np.dtype(np.bool_), _I8, False)}
_REASSOC = ("reassoc",)
TILE = 256  # kept positions per tile of a column reduction (its accumulators stay in L1)


class _Builder(L.IRBuilder):
    """An IR builder that also tells lowering rules the compute dtype of the node being lowered."""

    compute = None


# ---- elementwise rules: f(builder, *llvm values, **attrs) -> llvm value or None -----------------


def _is_float(v):
    return isinstance(v.type, (L.FloatType, L.DoubleType))


def _is_bool(v):
    return v.type == _I1


def _fconst(ty, value):
    """A float constant of `ty`, rounded once from the Python number (as numpy rounds a scalar)."""
    return L.Constant(ty, float(np.float32(value)) if ty == _F32 else float(value))


def _intrinsic(b, name, *args):
    ty = args[0].type
    fn = b.module.declare_intrinsic(name, [ty], L.FunctionType(ty, [ty] * len(args)))
    return b.call(fn, list(args))


def _unary_intrinsic(name):
    def lower(b, x):
        return _intrinsic(b, name, x) if _is_float(x) else None

    return lower


def _int_identity(name):
    """floor/ceil/trunc/round: an intrinsic on floats, the value itself on integers, none on bool."""

    def lower(b, x, decimals=0):
        if decimals or _is_bool(x):
            return None
        return _intrinsic(b, name, x) if _is_float(x) else x

    return lower


def _fmax(b, x, y):
    """numpy's maximum: NaN propagates, else `x > y ? x : y` (so maximum(-0.0, 0.0) is 0.0)."""
    if _is_float(x):
        return b.select(b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered(">", x, y)), x, y)
    if _is_bool(x):
        return b.or_(x, y)
    return b.select(b.icmp_signed(">", x, y), x, y)


def _fmin(b, x, y):
    if _is_float(x):
        return b.select(b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered("<", x, y)), x, y)
    if _is_bool(x):
        return b.and_(x, y)
    return b.select(b.icmp_signed("<", x, y), x, y)


def _relu(b, x):
    return None if _is_bool(x) else _fmax(b, x, L.Constant(x.type, 0))


def _neg(b, x):
    if _is_bool(x):
        return None
    return b.fneg(x) if _is_float(x) else b.sub(L.Constant(x.type, 0), x)


def _abs(b, x):
    if _is_bool(x):
        return None
    if _is_float(x):
        return _intrinsic(b, "llvm.fabs", x)
    return b.select(b.icmp_signed("<", x, L.Constant(x.type, 0)), b.sub(L.Constant(x.type, 0), x), x)


def _sign(b, x):
    if _is_bool(x):
        return x
    if _is_float(x):  # (0 < x) - (x < 0): sign(nan) is 0 and sign(-0.0) is +0.0, as the registry's
        zero = L.Constant(x.type, 0.0)
        return b.fsub(b.uitofp(b.fcmp_ordered(">", x, zero), x.type), b.uitofp(b.fcmp_ordered("<", x, zero), x.type))
    zero = L.Constant(x.type, 0)
    return b.sub(b.zext(b.icmp_signed(">", x, zero), x.type), b.zext(b.icmp_signed("<", x, zero), x.type))


def _truth(b, x):
    """Python truthiness of a value as i1 (nan is true)."""
    if _is_bool(x):
        return x
    if _is_float(x):
        return b.fcmp_unordered("!=", x, L.Constant(x.type, 0.0))
    return b.icmp_unsigned("!=", x, L.Constant(x.type, 0))


def _scaled(b, y, alpha):
    """y * alpha as the registry computes it in y's dtype; None where that leaves the dtype."""
    if alpha == 1:
        return y
    if _is_bool(y) or b.compute is D.float16:  # float16 would round y * alpha to half first: not done here
        return None
    if _is_float(y):
        return b.fmul(y, _fconst(y.type, alpha))
    if not isinstance(alpha, int):
        return None
    return b.mul(y, L.Constant(y.type, _wrap(int(alpha), y.type.width)))


def _add(b, x, y, alpha=1):
    y = _scaled(b, y, alpha)
    if y is None:
        return None
    if _is_bool(x):
        return b.or_(x, y)
    return b.fadd(x, y) if _is_float(x) else b.add(x, y)


def _sub(b, x, y, alpha=1):
    y = _scaled(b, y, alpha)
    if y is None or _is_bool(x):
        return None
    return b.fsub(x, y) if _is_float(x) else b.sub(x, y)


def _mul(b, x, y):
    if _is_bool(x):
        return b.and_(x, y)
    return b.fmul(x, y) if _is_float(x) else b.mul(x, y)


def _const_int(y):
    """The value of an integer LLVM constant, else None."""
    if isinstance(y, L.Constant) and isinstance(y.type, L.IntType) and isinstance(y.constant, int):
        return y.constant
    return None


def _floor_div_float(b, x, y):
    """numpy's float floor_divide (npy_divmod): fmod, then the quotient snapped to an integer."""
    zero, one = L.Constant(x.type, 0.0), L.Constant(x.type, 1.0)
    q = b.fdiv(x, y)
    mod = b.frem(x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    wrong_sign = b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero))
    div = b.select(b.and_(b.fcmp_unordered("!=", mod, zero), wrong_sign), b.fsub(div, one), div)
    fl = _intrinsic(b, "llvm.floor", div)
    fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), L.Constant(x.type, 0.5)), b.fadd(fl, one), fl)
    fl = b.select(b.fcmp_unordered("!=", div, zero), fl, _intrinsic(b, "llvm.copysign", zero, q))
    return b.select(b.fcmp_ordered("==", y, zero), q, fl)


def _int_div_parts(b, x, d):
    """Truncated quotient and remainder by a nonzero constant, and whether floor rounding adjusts them."""
    dc = L.Constant(x.type, d)
    q, r = b.sdiv(x, dc), b.srem(x, dc)
    zero = L.Constant(x.type, 0)
    return q, r, b.icmp_signed("<" if d > 0 else ">", r, zero)


def _div(b, x, y, rounding_mode=None):
    if rounding_mode is None:
        return b.fdiv(x, y) if _is_float(x) else None
    if rounding_mode == "trunc":
        return _intrinsic(b, "llvm.trunc", b.fdiv(x, y)) if _is_float(x) else None
    if rounding_mode != "floor" or _is_bool(x):
        return None
    if _is_float(x):
        return _floor_div_float(b, x, y)
    d = _const_int(y)  # the registry raises on an integer zero divisor: only nonzero constants lower
    if not d:
        return None
    if d == -1:  # sdiv overflows on INT_MIN / -1; numpy wraps to INT_MIN, as negation does
        return b.sub(L.Constant(x.type, 0), x)
    q, _, fix = _int_div_parts(b, x, d)
    return b.select(fix, b.sub(q, L.Constant(x.type, 1)), q)


def _remainder(b, x, y):
    if _is_bool(x):
        return None
    if _is_float(x):  # numpy's: fmod, moved into the divisor's sign; a zero result takes the divisor's sign
        zero = L.Constant(x.type, 0.0)
        mod = b.frem(x, y)
        wrong_sign = b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero))
        mod = b.select(b.and_(b.fcmp_unordered("!=", mod, zero), wrong_sign), b.fadd(mod, y), mod)
        return b.select(b.fcmp_ordered("==", mod, zero), _intrinsic(b, "llvm.copysign", zero, y), mod)
    d = _const_int(y)
    if not d:
        return None
    if d == -1:
        return L.Constant(x.type, 0)
    _, r, fix = _int_div_parts(b, x, d)
    return b.select(fix, b.add(r, L.Constant(x.type, d)), r)


def _fmod(b, x, y):
    if _is_bool(x):
        return None
    if _is_float(x):
        return b.frem(x, y)
    d = _const_int(y)
    if not d:
        return None
    return L.Constant(x.type, 0) if d == -1 else b.srem(x, L.Constant(x.type, d))


def _pow(b, x, y):
    """Exponents with an exact short form (x**2 is x*x in numpy too); anything else goes to `MATH`."""
    k = y.constant if isinstance(y, L.Constant) else None
    if _is_bool(x) or isinstance(k, bool):
        return None
    if _is_float(x):
        one = L.Constant(x.type, 1.0)
        if k == 0:
            return one
        if k == 1:
            return x
        if k == 2:
            return b.fmul(x, x)
        if k == -1:
            return b.fdiv(one, x)
        if k == 0.5:  # numpy takes sqrt for float32/64; float16 goes through C's powf: +0.0 and +inf there
            r = _intrinsic(b, "llvm.sqrt", x)
            if b.compute is not D.float16:
                return r
            minus_inf = b.fcmp_ordered("==", x, L.Constant(x.type, float("-inf")))
            return b.select(minus_inf, L.Constant(x.type, float("inf")), b.fadd(r, L.Constant(x.type, 0.0)))
        fn = MATH.get("tj::pow")
        return fn(b, x, y) if fn is not None else None
    if not isinstance(k, int) or k < 0 or k > 64:
        return None
    result, base = L.Constant(x.type, 1), x  # integer powers wrap: any multiplication order gives numpy's result
    while k:
        if k & 1:
            result = b.mul(result, base)
        k >>= 1
        if k:
            base = b.mul(base, base)
    return result


def _compare(op):
    def lower(b, x, y):
        if _is_float(x):  # ordered, except != (true for nan, as in numpy)
            return b.fcmp_unordered(op, x, y) if op == "!=" else b.fcmp_ordered(op, x, y)
        return b.icmp_unsigned(op, x, y) if _is_bool(x) else b.icmp_signed(op, x, y)

    return lower


def _logical(op):
    def lower(b, x, y):
        return getattr(b, op)(_truth(b, x), _truth(b, y))

    return lower


def _bitwise(op):
    def lower(b, x, y):
        return None if _is_float(x) else getattr(b, op)(x, y)

    return lower


def _bitwise_not(b, x):
    return None if _is_float(x) else b.xor(x, L.Constant(x.type, -1 if x.type.width > 1 else 1))


def _isnan(b, x):
    return b.fcmp_unordered("uno", x, x) if _is_float(x) else L.Constant(_I1, 0)


def _isinf(b, x):
    if not _is_float(x):
        return L.Constant(_I1, 0)
    return b.fcmp_ordered("==", _intrinsic(b, "llvm.fabs", x), L.Constant(x.type, float("inf")))


def _isfinite(b, x):
    if not _is_float(x):
        return L.Constant(_I1, 1)
    return b.fcmp_ordered("<", _intrinsic(b, "llvm.fabs", x), L.Constant(x.type, float("inf")))


def _clamp(b, x, lo, hi):
    if lo is not None:
        x = _fmax(b, x, lo)
    if hi is not None:
        x = _fmin(b, x, hi)
    return x


def _where(b, cond, x, y):
    return b.select(_truth(b, cond), x, y) if x.type == y.type else None


def _masked_fill(b, x, mask, value):
    return b.select(_truth(b, mask), value, x) if value.type == x.type else None


# IR name -> lowering of one elementwise op; ops not here are not lowered. Inputs arrive converted
# to the op's compute dtype (registry dtype rule and `cast`), bool as i1, float16 as float.
LOWER = {
    **MATH,  # transcendentals as vectorizable polynomials; the entries below take precedence
    "tj::add": _add,
    "tj::sub": _sub,
    "tj::mul": _mul,
    "tj::div": _div,
    "tj::remainder": _remainder,
    "tj::fmod": _fmod,
    "tj::pow": _pow,
    "tj::neg": _neg,
    "tj::abs": _abs,
    "tj::relu": _relu,
    "tj::sign": _sign,
    "tj::maximum": _fmax,
    "tj::minimum": _fmin,
    "tj::clamp": _clamp,
    "tj::sqrt": _unary_intrinsic("llvm.sqrt"),
    "tj::floor": _int_identity("llvm.floor"),
    "tj::ceil": _int_identity("llvm.ceil"),
    "tj::trunc": _int_identity("llvm.trunc"),
    "tj::round": _int_identity("llvm.roundeven"),  # numpy's rint: halves to even
    "tj::eq": _compare("=="),
    "tj::ne": _compare("!="),
    "tj::lt": _compare("<"),
    "tj::le": _compare("<="),
    "tj::gt": _compare(">"),
    "tj::ge": _compare(">="),
    "tj::logical_not": lambda b, x: b.not_(_truth(b, x)),
    "tj::logical_and": _logical("and_"),
    "tj::logical_or": _logical("or_"),
    "tj::logical_xor": _logical("xor"),
    "tj::bitwise_not": _bitwise_not,
    "tj::bitwise_and": _bitwise("and_"),
    "tj::bitwise_or": _bitwise("or_"),
    "tj::bitwise_xor": _bitwise("xor"),
    "tj::isnan": _isnan,
    "tj::isinf": _isinf,
    "tj::isfinite": _isfinite,
    "tj::where": _where,
    "tj::masked_fill": _masked_fill,
    "tj::to_dtype": lambda b, x, dtype=None: x,  # the conversion to the node's dtype follows every rule
}

# Positions where the registry reads a Python float at float32 precision against a float16 tensor
# and computes in float32 (PyTorch's opmath for mul and div; see ops.elementwise._fit_scalars).
_HALF_OPMATH = {"tj::mul": (0, 1), "tj::div": (1,)}


# ---- values and conversions -----------------------------------------------------------------


class _Tensor:
    """An element of a tensor value: its LLVM value (as held while computing) and dtype."""

    __slots__ = ("value", "dtype")

    def __init__(self, value, dtype):
        self.value, self.dtype = value, dtype


class _Number:
    """A Python number (a constant) or a scalar param read at run time (`raw`), converted per use."""

    __slots__ = ("value", "raw")

    def __init__(self, value, raw=None):
        self.value, self.raw = value, raw


def _wrap(v, bits):
    """A Python int cast to a signed `bits`-wide integer (wrapped around, as the registry casts it)."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if bits > 1 and v >= 1 << (bits - 1) else v


def _f64_to_f16(b, v):
    """Round a double to half once: to float with round-to-odd (float keeps 13 more bits than half,
    so the second rounding is then exact), then to half."""
    f = b.fptrunc(v, _F32)
    exact = b.fcmp_ordered("==", b.fpext(f, _F64), v)
    bits = b.bitcast(f, _I32)
    odd = b.trunc(bits, _I1)
    toward = b.fcmp_ordered(">", _intrinsic(b, "llvm.fabs", b.fpext(f, _F64)), _intrinsic(b, "llvm.fabs", v))
    step = b.select(toward, L.Constant(_I32, -1), L.Constant(_I32, 1))
    inf = b.fcmp_ordered("==", _intrinsic(b, "llvm.fabs", f), L.Constant(_F32, float("inf")))
    keep = b.or_(b.or_(exact, odd), b.or_(inf, b.fcmp_unordered("uno", v, v)))
    f = b.select(keep, f, b.bitcast(b.add(bits, step), _F32))
    return b.fpext(b.fptrunc(f, _F16), _F32)


def _convert(b, v, src, dst):
    """Convert a held value of dtype `src` to `dst` as numpy's astype does."""
    if src is dst or dst is None:
        return v
    if dst is D.bool_:
        return _truth(b, v)
    ty = _VALUE_TYPE[dst]
    if src is D.bool_:
        return b.uitofp(v, ty) if dst.is_floating_point else b.zext(v, ty)
    if not src.is_floating_point:
        if not dst.is_floating_point:
            w = v.type.width
            return b.sext(v, ty) if w < ty.width else b.trunc(v, ty) if w > ty.width else v
        return _f64_to_f16(b, b.sitofp(v, _F64)) if dst is D.float16 else b.sitofp(v, ty)
    if not dst.is_floating_point:  # nan and out-of-range give the x86 "integer indefinite", as numpy there
        wide = _I64 if ty.width == 64 else _I32
        lo, hi = -(2.0 ** (wide.width - 1)), 2.0 ** (wide.width - 1)
        ok = b.and_(b.fcmp_ordered(">=", v, L.Constant(v.type, lo)), b.fcmp_ordered("<", v, L.Constant(v.type, hi)))
        r = b.select(ok, b.fptosi(v, wide), L.Constant(wide, -(1 << (wide.width - 1))))
        return b.trunc(r, ty) if wide != ty else r
    if dst is D.float16:
        return _f64_to_f16(b, v) if v.type == _F64 else b.fpext(b.fptrunc(v, _F16), _F32)
    if v.type == ty:
        return v
    return b.fpext(v, ty) if ty == _F64 else b.fptrunc(v, ty)


def _number_const(value, dst, float32_scalar=False):
    """A Python number as a constant of dtype `dst`, converted as the registry converts it."""
    if dst is D.bool_:
        return L.Constant(_I1, int(bool(value)))
    ty = _VALUE_TYPE[dst]
    if not dst.is_floating_point:
        if isinstance(value, float):
            raise _Refuse(f"float scalar {value} in an integer op")
        return L.Constant(ty, _wrap(int(value), ty.width))
    with np.errstate(all="ignore"):
        if dst is D.float16:
            return L.Constant(_F32, float(np.float32(value) if float32_scalar else np.float16(value)))
        return _fconst(ty, value)


def _number_value(b, num, dst, float32_scalar=False):
    """A constant or scalar param converted to `dst`."""
    if num.raw is None:
        return _number_const(num.value, dst, float32_scalar)
    kind = D.float64 if isinstance(num.value, float) else D.bool_ if isinstance(num.value, bool) else D.int64
    raw = b.icmp_unsigned("!=", num.raw, L.Constant(_I8, 0)) if kind is D.bool_ else num.raw
    if dst is D.float16 and float32_scalar:
        return _convert(b, raw, kind, D.float32)
    return _convert(b, raw, kind, dst)


# ---- reductions ------------------------------------------------------------------------------


class _Fold:
    """One pass of a reduction: acc = step(acc, x) from `init` over the reduced elements (x converted
    to `dtype_in`), then finish(acc) of dtype `dtype_out` per kept position."""

    def __init__(self, dtype_in, ty, init, step, finish=None, dtype_out=None):
        self.dtype_in, self.ty, self.init, self.step = dtype_in, ty, init, step
        self.finish = finish or (lambda b, a: a)
        self.dtype_out = dtype_out or dtype_in


def _sum_fold(compute, count):
    if compute.is_floating_point:  # float16/32 accumulate in float64, whose partial sums may be reordered
        return _Fold(compute, _F64, L.Constant(_F64, 0.0),
                     lambda b, a, v: b.fadd(a, _convert(b, v, compute, D.float64), flags=_REASSOC), None, D.float64)
    ty = _VALUE_TYPE[compute]
    return _Fold(compute, ty, L.Constant(ty, 0), lambda b, a, v: b.add(a, v))


def _mean_fold(compute, count):
    f = _sum_fold(compute, count)
    f.finish = lambda b, a: b.fdiv(a, L.Constant(_F64, float(count)))  # 0/0 is nan, as the registry's
    return f


def _extremum_fold(largest):
    def fold(compute, count):
        if count == 0:
            raise _Refuse("amax/amin/softmax over an empty dim (the registry raises)")
        ty = _VALUE_TYPE[compute]
        if compute.is_floating_point:  # llvm.maximum propagates nan like numpy's max, and vectorizes
            init = L.Constant(ty, float("-inf") if largest else float("inf"))
            name = "llvm.maximum" if largest else "llvm.minimum"
            return _Fold(compute, ty, init, lambda b, a, v: _intrinsic(b, name, a, v))
        if compute is D.bool_:
            return _bool_fold(not largest)(compute, count)
        bound = 1 << (ty.width - 1)
        name = "llvm.smax" if largest else "llvm.smin"
        return _Fold(compute, ty, L.Constant(ty, -bound if largest else bound - 1),
                     lambda b, a, v: _intrinsic(b, name, a, v))

    return fold


def _bool_fold(is_all):
    """all / any (and amin / amax of bools), accumulated in a byte: arrays of i1 vectorize poorly."""

    def step(b, a, v):
        v = b.zext(v, _I8)
        return b.and_(a, v) if is_all else b.or_(a, v)

    def fold(compute, count):
        return _Fold(D.bool_, _I8, L.Constant(_I8, int(is_all)), step,
                     lambda b, a: b.icmp_unsigned("!=", a, L.Constant(_I8, 0)))

    return fold


# Single-pass reductions as folds: they also lower by the tiled loop order (see `_Emitter.tiled`).
FOLDS = {"tj::sum": _sum_fold, "tj::mean": _mean_fold, "tj::amax": _extremum_fold(True),
         "tj::amin": _extremum_fold(False), "tj::all": _bool_fold(True), "tj::any": _bool_fold(False)}


def _one_pass(name):
    def reduce(em, n, x, compute, count):
        f = FOLDS[name](compute, count)
        return _Tensor(f.finish(em.b, em.fold(x, f)), f.dtype_out)

    return reduce


def _moments(em, x, compute, count, correction):
    """var in float64 by two passes (mean, then squared deviations), divided by max(0, N - correction)."""
    b = em.b
    total = em.fold(x, _sum_fold(compute, count))
    mean = b.fdiv(total, L.Constant(_F64, float(max(count, 1))))

    def square(b, a, v):
        d = b.fsub(_convert(b, v, compute, D.float64), mean)
        return b.fadd(a, b.fmul(d, d), flags=_REASSOC)

    ss = em.fold(x, _Fold(compute, _F64, L.Constant(_F64, 0.0), square))
    return b.fdiv(ss, L.Constant(_F64, float(max(0, count - correction))))


def _var(em, n, x, compute, count):
    return _Tensor(_moments(em, x, compute, count, n.attrs.get("correction", 1)), D.float64)


def _std(em, n, x, compute, count):
    return _Tensor(_intrinsic(em.b, "llvm.sqrt", _moments(em, x, compute, count, n.attrs.get("correction", 1))),
                   D.float64)


def _softmax(log):
    """Max pass, sum-of-exp pass, then the output recomputed per element: exp(x - max) / sum, or
    x - max - log(sum). float16 computes in float32 and rounds once, as the registry does."""

    def reduce(em, n, x, compute, count):
        work = D.float32 if compute is D.float16 else compute
        b = em.b
        exp = LOWER.get("tj::exp")
        m = em.fold(x, _extremum_fold(True)(work, count))

        def exp_of(b, v):
            b.compute = work
            e = exp(b, b.fsub(v, m)) if exp is not None else None
            if e is None:
                raise _Refuse(f"no exp lowering for {work}")
            return e

        s = em.fold(x, _Fold(work, _F64, L.Constant(_F64, 0.0),
                             lambda b, a, v: b.fadd(a, _convert(b, exp_of(b, v), work, D.float64), flags=_REASSOC)))
        s = _convert(b, s, D.float64, work)
        if log:
            b.compute = work
            log_fn = LOWER.get("tj::log")
            ls = log_fn(b, s) if log_fn is not None else None
            if ls is None:
                raise _Refuse(f"no log lowering for {work}")

        def element(b, xe):
            v = _convert(b, xe.value, xe.dtype, work)
            r = b.fsub(b.fsub(v, m), ls) if log else b.fdiv(exp_of(b, v), s)
            return _Tensor(r, work)

        return element

    return reduce


# IR name -> (lowering, attributes it understands). A lowering returns the reduced value (computed
# once per kept position) or, for softmax-like ops, a function computing each output element.
_LOWERINGS = {
    "tj::sum": _one_pass("tj::sum"), "tj::mean": _one_pass("tj::mean"), "tj::amax": _one_pass("tj::amax"),
    "tj::amin": _one_pass("tj::amin"), "tj::var": _var, "tj::std": _std, "tj::all": _one_pass("tj::all"),
    "tj::any": _one_pass("tj::any"), "tj::softmax": _softmax(False), "tj::log_softmax": _softmax(True),
}
REDUCE = {op: (_LOWERINGS[op], attrs) for op, attrs in REDUCE_ATTRS.items()}
_ELEMENTWISE_RESULT = {"tj::softmax", "tj::log_softmax"}  # outputs shaped like the input


# ---- iteration space -------------------------------------------------------------------------


def _shape_of(t):
    return static_shape(t, _VALUE_TYPE)


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _reduced_dims(n, rank):
    if n.op in _ELEMENTWISE_RESULT:
        d = n.attrs.get("dim", -1)
        return (d % rank,) if rank else ()
    dim = n.attrs.get("dim")
    return tuple(range(rank)) if dim is None else tuple(d % rank for d in dim) if rank else ()


class _Layout:
    """The group's iteration space: the broadcast shape of its values, split into kept and reduced
    axes (size-1 axes dropped, neighbours merged where every operand allows), with each operand's
    element stride per axis. Operands are ("in", i) for tensor params and ("out", j) for outputs."""

    def __init__(self, node, in_strides):
        block = node.blocks[0]
        self.reductions = [n for n in block.nodes if n.op in REDUCE]
        dropped = set()  # outputs of reductions that drop dims: they broadcast against nothing
        shapes = []
        for p in block.params:
            if isinstance(p.type, TensorType):
                shapes.append(_shape_of(p.type))
            elif type(p.type) not in _SCALARS:
                raise _Refuse(f"param of type {p.type}")
        for n in block.nodes:
            if n.op == "prim::Constant":
                continue
            if len(n.outputs) != 1:
                raise _Refuse(f"{n.op} has {len(n.outputs)} outputs")
            s = _shape_of(n.outputs[0].type)
            if n in self.reductions and len(s) < len(_shape_of(n.inputs[0].type)):
                if any(u is not block for u, _ in n.outputs[0].uses):
                    raise _Refuse(f"the result of {n.op} is used inside the group")
                dropped.add(n.outputs[0])
                continue
            shapes.append(s)
        self.dropped_values = dropped
        try:
            self.shape = broadcast_shapes(*shapes)
        except ValueError as e:
            raise _Refuse(str(e)) from None
        nd = len(self.shape)
        self.reduced = None
        for n in self.reductions:
            xs = _shape_of(n.inputs[0].type)
            axes = {d + nd - len(xs) for d in _reduced_dims(n, len(xs))}
            if any(xs[d - nd + len(xs)] != self.shape[d] for d in axes):
                raise _Refuse(f"{n.op} reduces a broadcast dim")
            if n.outputs[0] in dropped and len(xs) != nd:
                raise _Refuse(f"{n.op} drops dims of a smaller-rank input")
            if self.reduced is not None and axes != self.reduced:
                raise _Refuse("reductions over different axes in one group")
            self.reduced = axes
        self.reduced = self.reduced or set()
        self.count = _numel([self.shape[d] for d in self.reduced])
        kept_shape = tuple(self.shape[d] for d in range(nd) if d not in self.reduced)
        strides = {}
        for i, p in enumerate(block.params):
            if isinstance(p.type, TensorType):
                s = p.type.shape
                given = in_strides[i] if in_strides is not None and in_strides[i] is not None else None
                st = tuple(int(v) for v in given) if given is not None else contiguous_strides(s)
                if len(st) != len(s):
                    raise _Refuse(f"strides {st} for a param of shape {s}")
                full = (0,) * (nd - len(s)) + tuple(0 if e == 1 else v for e, v in zip(s, st))
                strides["in", i] = full
        self.outer_outputs = []
        dense = contiguous_strides(self.shape)
        kept_dense = iter(contiguous_strides(kept_shape))
        kept_strides = tuple(0 if d in self.reduced else next(kept_dense) for d in range(nd))
        for j, v in enumerate(block.returns):
            if not isinstance(v.type, TensorType):
                raise _Refuse(f"output of type {v.type}")
            s = _shape_of(v.type)
            if v in dropped:
                ok, inner = s == kept_shape, False
            else:
                aligned = (1,) * (nd - len(s)) + s
                inner = not self.reduced or any(aligned[d] != 1 for d in self.reduced)
                want = self.shape if inner else tuple(1 if d in self.reduced else e for d, e in enumerate(self.shape))
                ok = len(s) <= nd and aligned == want
            if not ok:
                raise _Refuse(f"output of shape {s} in an iteration space of shape {self.shape}")
            strides["out", j] = dense if inner else kept_strides
            if not inner:
                self.outer_outputs.append(j)
        self.operands = list(strides)
        live = [d for d in range(nd) if self.shape[d] != 1]
        self.kept = coalesce([(self.shape[d], {k: s[d] for k, s in strides.items()})
                               for d in live if d not in self.reduced])
        self.inner = coalesce([(self.shape[d], {k: s[d] for k, s in strides.items()})
                                for d in live if d in self.reduced])
        self.range_size = _numel(kept_shape) if self.reductions else _numel(self.shape)


# ---- emission --------------------------------------------------------------------------------


class _Emitter:
    """Builds the LLVM function of one group over a `_Layout`."""

    def __init__(self, node, lay):
        self.block, self.lay = node.blocks[0], lay
        self.n_out = len(self.block.returns)
        self.module = L.Module(name="tracejit_kernel")
        n_ptr = self.n_out + len(self.block.params)
        fn = L.Function(self.module, L.FunctionType(L.VoidType(), [_PTR] * n_ptr + [_I64, _I64]), name=KERNEL_NAME)
        for a in fn.args[:n_ptr]:
            a.add_attribute("noalias")
        self.fn, self.start, self.end = fn, fn.args[-2], fn.args[-1]
        self.entry = fn.append_basic_block("entry")
        self.b = _Builder(self.entry)
        self.outer = {}  # IR value -> _Tensor/_Number/None, valid for one kept position (or the whole call)
        self.inner = None  # IR value -> _Tensor inside the current loop nest
        self.base = {}  # operand -> i64 offset of the current kept position (or segment)
        self.terms = []  # (index, axis strides) of the open loops
        self.elements = {}  # softmax-like outputs: IR value -> fn(builder, input element)
        self.varying = {}
        self.all_inner = False
        for i, p in enumerate(self.block.params):
            if not isinstance(p.type, TensorType):
                _, ty, stand_in = _SCALARS[type(p.type)]
                self.outer[p] = _Number(stand_in, self.b.load(fn.args[self.n_out + i], typ=ty))

    # -- values

    def varies(self, v):
        """Whether `v` changes inside the loop nest (for elementwise groups: every tensor)."""
        r = self.varying.get(v)
        if r is None:
            t = v.type
            if not isinstance(t, TensorType) or v in self.lay.dropped_values:
                r = False
            elif self.all_inner or not self.lay.reductions:
                r = True
            else:
                nd = len(self.lay.shape)
                aligned = (1,) * (nd - len(t.shape)) + tuple(t.shape)
                r = any(aligned[d] != 1 for d in self.lay.reduced)
            self.varying[v] = r
        return r

    def get(self, v):
        if self.inner is not None and v in self.inner:
            return self.inner[v]
        return self.outer[v]

    def _known(self, v):
        return v in self.outer or (self.inner is not None and v in self.inner)

    def _cone(self, roots):
        """Values `roots` need that are not computed yet (explicit stack)."""
        need, stack = set(), list(roots)
        while stack:
            v = stack.pop()
            if v in need or self._known(v):
                continue
            need.add(v)
            if v.node is not None:
                if v.node in self.lay.reductions and v not in self.elements:
                    raise _Refuse(f"{v.node.op} used before it is reduced")
                stack.extend(v.node.inputs[:1] if v in self.elements else v.node.inputs)
        return need

    def eval(self, roots):
        """Emit everything `roots` need, in block order, into the current scope."""
        need = self._cone(roots)
        for p in self.block.params:
            if p in need:
                self._scope(p)[p] = self._load(p)
        for n in self.block.nodes:
            if n.outputs and n.outputs[0] in need:
                self._scope(n.outputs[0])[n.outputs[0]] = self._node(n)

    def _scope(self, v):
        if self.varies(v):
            if self.inner is None:
                raise _Refuse(f"%{v.name} varies but is needed outside the loops")
            return self.inner
        return self.outer

    def offset(self, operand, inner):
        b = self.b
        off = self.base.get(operand, L.Constant(_I64, 0))
        for idx, st, *_ in self.terms if inner else ():
            s = st[operand]
            if s == 1:
                off = b.add(off, idx, flags=["nsw"])
            elif s:
                off = b.add(off, b.mul(idx, L.Constant(_I64, s), flags=["nsw"]), flags=["nsw"])
        return off

    def _load(self, p):
        i = self.block.params.index(p)
        dtype = p.type.dtype
        ty = _STORAGE_TYPE[dtype]
        ptr = self.b.gep(self.fn.args[self.n_out + i], [self.offset(("in", i), self.varies(p))], inbounds=True,
                         source_etype=ty)
        v = self.b.load(ptr, typ=ty)
        if dtype is D.bool_:
            v = self.b.icmp_unsigned("!=", v, L.Constant(_I8, 0))
        elif dtype is D.float16:
            v = self.b.fpext(v, _F32)
        return _Tensor(v, dtype)

    def store(self, j, inner):
        v = self.block.returns[j]
        dtype = v.type.dtype
        e = self.get(v)
        b = self.b
        val = _convert(b, e.value, e.dtype, dtype) if isinstance(e, _Tensor) else _number_value(b, e, dtype)
        if dtype is D.bool_:
            val = b.zext(val, _I8)
        elif dtype is D.float16:
            val = b.fptrunc(val, _F16)
        b.store(val, b.gep(self.fn.args[j], [self.offset(("out", j), inner)], inbounds=True,
                           source_etype=_STORAGE_TYPE[dtype]))

    def _node(self, n):
        if n.op == "prim::Constant":
            value = n.attrs.get("value")
            if value is None:
                return None
            if not isinstance(value, (bool, int, float)):
                raise _Refuse(f"constant {value!r}")
            return _Number(value)
        out = n.outputs[0]
        if out in self.elements:
            return self.elements[out](self.b, self.get(n.inputs[0]))
        rule = LOWER.get(n.op)
        if rule is None:
            raise _Refuse(f"no lowering for {n.op}")
        op = ops.get(n.op)
        args = [self.get(v) for v in n.inputs]
        compute, out_dtype = _dtype_rule(op, n, args)
        b = self.b
        values = []
        for i, a in enumerate(args):
            cast = compute if compute is not None and i in op.cast else None
            if isinstance(a, _Tensor):
                values.append(_convert(b, a.value, a.dtype, cast))
            elif isinstance(a, _Number):
                opmath = compute is D.float16 and isinstance(a.value, float) and i in _HALF_OPMATH.get(n.op, ())
                values.append(_number_value(b, a, cast or out_dtype, opmath))
            else:
                values.append(None)
        b.compute = compute
        try:
            r = rule(b, *values, **n.attrs)
        except (TypeError, AttributeError) as e:
            raise _Refuse(f"{n.op}: {e}") from None
        if r is None:
            raise _Refuse(f"{n.op} is not lowered for {[str(getattr(v, 'type', v)) for v in values]} {n.attrs}")
        dtype = _DTYPE_OF.get(r.type)
        if dtype is None:
            raise _Refuse(f"{n.op} gave an LLVM {r.type}")
        return _Tensor(_convert(b, r, dtype, out_dtype), out_dtype)

    # -- loops

    def _alloca(self, ty, count=None):
        b = L.IRBuilder(self.entry)
        b.position_at_start(self.entry)
        return b.alloca(ty, size=None if count is None else L.Constant(_I64, count))

    def open_loops(self):
        """Counted loops over the reduced axes (outermost first); the body follows."""
        b = self.b
        for ext, st in self.lay.inner:
            pre = b.block
            head = self.fn.append_basic_block("inner")
            b.branch(head)
            b.position_at_end(head)
            idx = b.phi(_I64)
            idx.add_incoming(L.Constant(_I64, 0), pre)
            self.terms.append((idx, st, ext, head))
        self.inner = {}

    def close_loops(self):
        b = self.b
        self.inner = None
        while self.terms:
            idx, _, ext, head = self.terms.pop()
            nxt = b.add(idx, L.Constant(_I64, 1), flags=["nuw", "nsw"])
            idx.add_incoming(nxt, b.block)
            done = self.fn.append_basic_block("inner.done")
            b.cbranch(b.icmp_unsigned("<", nxt, L.Constant(_I64, ext)), head, done)
            b.position_at_end(done)

    def fold(self, x, f):
        """One pass of `f` over the reduced axes; returns the accumulator."""
        b = self.b
        slot = self._alloca(f.ty)
        b.store(f.init, slot)
        if self.lay.count:
            self.stage([x], lambda: b.store(f.step(b, b.load(slot, typ=f.ty), self._as(x, f.dtype_in)), slot))
        return b.load(slot, typ=f.ty)

    def _as(self, v, dtype):
        e = self.get(v)
        if isinstance(e, _Number):
            return _number_value(self.b, e, dtype)
        return _convert(self.b, e.value, e.dtype, dtype)

    def stage(self, roots, body):
        """A loop nest over the reduced axes computing `roots` per element, then `body()`."""
        self.eval([v for v in self._cone(roots) if not self.varies(v)])
        self.open_loops()
        self.eval(roots)
        body()
        self.close_loops()

    def coords(self, index, axes):
        """Per-axis coordinates of a flat C-order index over `axes`; the operands' offsets there."""
        b = self.b
        base = {k: L.Constant(_I64, 0) for k in self.lay.operands}
        rem = index
        for pos in range(len(axes) - 1, -1, -1):
            ext, st = axes[pos]
            if pos:
                c, rem = b.urem(rem, L.Constant(_I64, ext)), b.udiv(rem, L.Constant(_I64, ext))
            else:
                c = rem
            for k, s in st.items():
                if s:
                    base[k] = b.add(base[k], b.mul(c, L.Constant(_I64, s), flags=["nsw"]), flags=["nsw"])
        return base

    def _counted(self, lo, hi, name):
        """`for i in [lo, hi)` with lo < hi known; returns (i, latch function)."""
        b = self.b
        pre = b.block
        head = self.fn.append_basic_block(name)
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(_I64)
        i.add_incoming(lo, pre)

        def latch(step=None):
            nxt = b.add(i, step if step is not None else L.Constant(_I64, 1), flags=["nsw"])
            i.add_incoming(nxt, b.block)
            done = self.fn.append_basic_block(name + ".done")
            b.cbranch(b.icmp_signed("<", nxt, hi), head, done)
            b.position_at_end(done)

        return i, latch

    def _guard(self):
        """Skip everything when start >= end; returns the exit block."""
        b = self.b
        body, done = self.fn.append_basic_block("body"), self.fn.append_basic_block("exit")
        b.cbranch(b.icmp_signed("<", self.start, self.end), body, done)
        b.position_at_end(body)
        return done

    def elementwise(self):
        """Segments of the flat output range along the last axis; the last axis is the vector loop."""
        b, lay = self.b, self.lay
        axes = lay.kept or [(1, {k: 1 if k[0] == "out" else 0 for k in lay.operands})]
        outs = list(range(self.n_out))
        done = self._guard()
        last_ext, last_st = axes[-1]
        if len(axes) == 1:
            j, latch = self._counted(self.start, self.end, "loop")
            self.terms = [(j, last_st, None, None)]
            self._elements(outs)
            latch()
        else:
            i, seg_latch = self._counted(self.start, self.end, "segment")
            ext = L.Constant(_I64, last_ext)
            row, j0 = b.udiv(i, ext), b.urem(i, ext)
            jn = b.select(b.icmp_signed("<", b.sub(self.end, i), b.sub(ext, j0)), b.add(j0, b.sub(self.end, i)), ext)
            self.base = self.coords(row, axes[:-1])
            j, latch = self._counted(j0, jn, "loop")
            self.terms = [(j, last_st, None, None)]
            self._elements(outs)
            latch()
            self.terms = []
            seg_latch(b.sub(jn, j0))
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()

    def _elements(self, outs):
        self.inner = {}
        self.eval([self.block.returns[j] for j in outs])
        for j in outs:
            self.store(j, True)
        self.inner = None

    def reduction(self):
        """Per kept position: the reductions' passes in block order, then the outputs."""
        b, lay = self.b, self.lay
        done = self._guard()
        k, latch = self._counted(self.start, self.end, "kept")
        self.base = self.coords(k, lay.kept)
        for n in lay.reductions:
            self._reduce(n)
        inner_outs = [j for j in range(self.n_out) if j not in lay.outer_outputs]
        if inner_outs and lay.count:
            self.stage([self.block.returns[j] for j in inner_outs], lambda: [self.store(j, True) for j in inner_outs])
        self.eval([self.block.returns[j] for j in lay.outer_outputs])
        for j in lay.outer_outputs:
            self.store(j, False)
        latch()
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()

    def _reduce(self, n):
        compute, out_dtype = _reduction_types(n)
        r = REDUCE[n.op][0](self, n, n.inputs[0], compute, self.lay.count)
        if callable(r):
            self.elements[n.outputs[0]] = lambda b, xe, r=r, out_dtype=out_dtype: _finish(b, r(b, xe), out_dtype)
        else:
            self.outer[n.outputs[0]] = _finish(self.b, r, out_dtype)

    def tiled(self):
        """A single-pass reduction whose kept positions lie closer in memory than its reduced elements
        (a sum over rows): per tile of up to TILE neighbouring kept positions, accumulators in an
        array and the reduced loops outside a vectorizable loop over the tile."""
        b, lay = self.b, self.lay
        n = lay.reductions[0]
        x, out = n.inputs[0], n.outputs[0]
        compute, out_dtype = _reduction_types(n)
        f = FOLDS[n.op](compute, lay.count)
        self.all_inner = True  # every tensor value changes from lane to lane
        done = self._guard()
        ext, last = lay.kept[-1]
        i, tile_latch = self._counted(self.start, self.end, "tile")
        size = L.Constant(_I64, ext)
        if len(lay.kept) > 1:
            j0 = b.urem(i, size)
            self.base = self.coords(b.udiv(i, size), lay.kept[:-1])
        else:
            j0 = i
        room = b.sub(size, j0)
        room = b.select(b.icmp_signed("<", room, L.Constant(_I64, TILE)), room, L.Constant(_I64, TILE))
        left = b.sub(self.end, i)
        width = b.select(b.icmp_signed("<", left, room), left, room)
        accs = self._alloca(f.ty, TILE)

        def lanes(name, body):
            t, latch = self._counted(L.Constant(_I64, 0), width, name)
            self.terms.append((b.add(j0, t), last, None, None))
            body(b.gep(accs, [t], inbounds=True, source_etype=f.ty))
            self.terms.pop()
            latch()

        inner_outs = [j for j, v in enumerate(self.block.returns) if v is not out]

        def step(slot):
            self.inner = {}
            self.eval([x] + [self.block.returns[j] for j in inner_outs])
            b.store(f.step(b, b.load(slot, typ=f.ty), self._as(x, f.dtype_in)), slot)
            for j in inner_outs:
                self.store(j, True)

        def finish(slot):
            self.inner = {out: _finish(b, _Tensor(f.finish(b, b.load(slot, typ=f.ty)), f.dtype_out), out_dtype)}
            for j, v in enumerate(self.block.returns):
                if v is out:
                    self.store(j, True)
            self.inner = None

        lanes("init", lambda slot: b.store(f.init, slot))
        self.open_loops()
        lanes("lane", step)
        self.close_loops()
        lanes("finish", finish)
        tile_latch(width)
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()


def _reduction_types(n):
    """(compute, output) dtypes of a reduction node, or a refusal."""
    extra = set(n.attrs) - REDUCE[n.op][1]
    if extra:
        raise _Refuse(f"{n.op} with attributes {sorted(extra)}")
    x = n.inputs[0]
    if not isinstance(x.type, TensorType) or len(n.inputs) != 1:
        raise _Refuse(f"{n.op} of {x.type}")
    compute, out_dtype = _dtype_rule(ops.get(n.op), n, [_Tensor(None, x.type.dtype)])
    compute = compute or x.type.dtype
    if compute not in _VALUE_TYPE or out_dtype not in _VALUE_TYPE:
        raise _Refuse(f"{n.op} computing in {compute}")
    return compute, out_dtype


def _tiles_pay(block, lay):
    """Whether a group is one single-pass reduction best run by `_Emitter.tiled`: the inputs walk the
    last kept axis with smaller strides than the innermost reduced axis (column sums)."""
    if len(lay.reductions) != 1 or lay.reductions[0].op not in FOLDS or not lay.count or not lay.kept:
        return False
    out = lay.reductions[0].outputs[0]
    if not lay.inner or any(block.returns[j] is not out for j in lay.outer_outputs):
        return False
    ins = [k for k in lay.operands if k[0] == "in"]
    return sum(abs(lay.kept[-1][1][k]) for k in ins) < sum(abs(lay.inner[-1][1][k]) for k in ins)


def _finish(b, e, dtype):
    return _Tensor(_convert(b, e.value, e.dtype, dtype), dtype)


def _dtype_rule(op, n, args):
    metas = []
    for v, a in zip(n.inputs, args):
        if isinstance(a, _Tensor):
            metas.append(_Meta(a.dtype, len(v.type.shape)))
        elif isinstance(a, _Number):
            metas.append(a.value)
        else:
            metas.append(None)
    return checked_dtype_rule(op, n, metas, _VALUE_TYPE)


# ---- compilation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpec:
    """What one group lowers to, as plain data: the unoptimized LLVM module text (its function
    `kernel` has the ABI of the module docstring) and what a caller needs to call it."""

    llvm_ir: str
    in_shapes: tuple  # per input: its shape, or None for a scalar param
    in_dtypes: tuple  # per input: numpy dtype of the array passed (scalars: float64, int64 or bool)
    in_strides: tuple  # per input: the element strides the code assumes, or None for a scalar
    out_shapes: tuple
    out_dtypes: tuple  # numpy dtypes
    range_size: int  # the outer index runs over [0, range_size)
    work: int  # elements visited per call, summed over passes (decides on threading)
    chunk: int  # thread slices of the outer range start on multiples of this


def emit_group(node, in_strides=None):
    """The `KernelSpec` of a `prim::FusionGroup` node, or None when the group holds an op, dtype or
    shape this backend lacks. `in_strides`: per block param, element strides to specialize for
    (None, or a None entry: C-contiguous).

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(2, 3)):\\n  %1 : Float(2) = prim::FusionGroup(%x)\\n"
    ...           "    block0(%a : Float(2, 3)):\\n      %b : Float(2) = tj::sum[dim=(1,), keepdim=False](%a)\\n"
    ...           "      -> (%b)\\n  return (%1)\\n")
    >>> spec = emit_group(g.body.nodes[0], in_strides=[(1, 2)])
    >>> spec.range_size, spec.in_strides, spec.out_shapes
    (2, ((1, 2),), ((2,),))
    """
    block = node.blocks[0]
    try:
        if in_strides is not None and len(in_strides) != len(block.params):
            raise _Refuse(f"{len(in_strides)} stride tuples for {len(block.params)} params")
        lay = _Layout(node, in_strides)
        em = _Emitter(node, lay)
        if not lay.range_size:
            em.b.ret_void()
        elif _tiles_pay(block, lay):
            em.tiled()
        elif lay.reductions:
            em.reduction()
        else:
            em.elementwise()
        text = str(em.module)
    except _Refuse as e:
        if "codegen" in _log_selection():
            print(f"codegen: not lowering a group: {e}", file=sys.stderr)
        return None
    shapes, dts, strides = [], [], []
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            shapes.append(tuple(p.type.shape))
            dts.append(p.type.dtype.np)
            given = in_strides[i] if in_strides is not None else None
            strides.append(tuple(int(s) for s in given) if given is not None else contiguous_strides(p.type.shape))
        else:
            shapes.append(None)
            dts.append(_SCALARS[type(p.type)][0])
            strides.append(None)
    work = _numel(lay.shape) * _cost_per_element(block, lay)
    return KernelSpec(text, tuple(shapes), tuple(dts), tuple(strides),
                      tuple(tuple(v.type.shape) for v in block.returns),
                      tuple(v.type.dtype.np for v in block.returns), lay.range_size,
                      work, 1 if lay.reductions else 64)


_PASSES = {"tj::var": 2, "tj::std": 2, "tj::softmax": 2, "tj::log_softmax": 2}
_TRANSCENDENTAL = 8  # cost of an op from MATH relative to an add (polynomials of ~20 instructions)


def _cost_per_element(block, lay):
    """Loop passes over the iteration space plus the ops evaluated per element (a rough cost model)."""
    passes = sum(_PASSES.get(n.op, 1) for n in lay.reductions)
    passes += 1 if len(lay.outer_outputs) < len(block.returns) else 0
    ops_cost = sum(_TRANSCENDENTAL if n.op in MATH else 1 for n in block.nodes
                   if n.op != "prim::Constant" and n not in lay.reductions)
    ops_cost += sum(2 * _TRANSCENDENTAL for n in lay.reductions if n.op in ("tj::softmax", "tj::log_softmax"))
    return passes + ops_cost


def _log_selection():
    return {s.strip() for s in os.environ.get("TRACEJIT_LOG", "").split(",") if s.strip()}


def lower_group(node, in_strides=None):
    """Compile a `prim::FusionGroup` node (see `emit_group`); None when this backend cannot lower it."""
    spec = emit_group(node, in_strides)
    return None if spec is None else compile_spec(spec)


def compile_groups(graph):
    """Compiled kernels for every fusion group of `graph` this backend can lower: {node: kernel}."""
    kernels = {}
    for node in graph.nodes():
        if node.op == "prim::FusionGroup":
            k = lower_group(node)
            if k is not None:
                kernels[node] = k
    return kernels
