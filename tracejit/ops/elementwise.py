"""Elementwise ops: unary math, binary arithmetic, comparisons, logic, clamp, where.

Each op is one `register` call; the tables below only keep the common shape of many
entries in one place. Reference implementations take numpy-or-cupy arrays (`xp`) and
Python numbers, already cast to the op's compute dtype by the dispatcher.
"""

from __future__ import annotations

import numpy as np

from . import parallel
from . import rules as R
from .registry import ShapeError, get, register

_ND = np.ndarray
_MIN_PAR = parallel.MIN_PARALLEL


def _bin(xp, npf, a, b):
    """The binary numpy ufunc `npf` (or xp's ufunc of the same name) on a and b: the hot path of
    arithmetic, so it avoids the generic loop of `_uf`."""
    if xp is np:
        if (a.__class__ is _ND and a.size >= _MIN_PAR) or (b.__class__ is _ND and b.size >= _MIN_PAR):
            return parallel.ufunc(npf, a, b)
        return npf(a, b)
    return getattr(xp, npf.__name__)(a, b)


def _uf(xp, name, *args):
    """The ufunc `name` of xp on args; large numpy work is split across threads."""
    if xp is np:
        for a in args:
            if a.__class__ is _ND and a.size >= _MIN_PAR:
                return parallel.ufunc(getattr(np, name), *args)
    return getattr(xp, name)(*args)

ES = R.elementwise_shape


def _quiet(xp, fn):
    """Run `fn` without IEEE warnings: log(0) is -inf and 0/0 is nan, silently, as in PyTorch."""
    with R.quiet(xp):
        return fn()


def _no_bool(what, fn):
    """PyTorch has no bool kernel for these ops; numpy would quietly compute in int8."""

    def impl(xp, x, **kw):
        if x.dtype.kind == "b":
            raise TypeError(f'"{what}" is not implemented for bool tensors')
        return fn(xp, x, **kw)

    return impl


def _int_identity(what, fn):
    """floor/ceil/round/trunc of an integer tensor is a copy of it (numpy would make floats)."""

    def impl(xp, x, **kw):
        if x.dtype.kind in "iu":
            if kw.get("decimals"):  # PyTorch has no integer kernel for round(decimals=...)
                raise TypeError(f"{what}(decimals={kw['decimals']}) is not implemented for integer tensors")
            return x.copy()
        return fn(xp, x, **kw)

    return _no_bool(what, impl)


def _round(xp, x, decimals=0):
    return xp.round(x, decimals) if decimals else xp.rint(x)


def _sigmoid(xp, x):
    # exp(-|x|) never overflows and, unlike the tanh form, keeps full relative precision for
    # large negative x; float16 computes in float32 and rounds once, as PyTorch does.
    dt = x.dtype
    if dt == xp.float16:
        x = x.astype(xp.float32)
    e = xp.exp(-xp.abs(x))
    return (xp.where(x >= 0, 1, e) / (1 + e)).astype(dt, copy=False)


_ZEROS = {}


def _zero(xp, dt):
    """A cached 0-d zero: numpy converts it faster than a Python 0 in small ops. (Not for cupy, whose arrays
    belong to one GPU: there a scalar of the dtype.)"""
    if xp is not np:
        return dt.type(0)
    z = _ZEROS.get((xp, dt))
    if z is None:
        z = _ZEROS[xp, dt] = xp.zeros((), dt)
    return z


def _relu(xp, x):
    if x.dtype.kind == "b":
        raise TypeError("relu is not implemented for bool tensors")
    return xp.maximum(x, _zero(xp, x.dtype))


def _sign(xp, x):
    if x.dtype.kind == "b":
        return x.copy()
    if x.dtype.kind == "f":  # PyTorch's (0 < x) - (x < 0): sign(nan) is 0, where numpy's is nan
        return (x > 0).astype(x.dtype) - (x < 0)
    return xp.sign(x)


def _neg(xp, x):
    if x.dtype.kind == "b":
        raise TypeError("negation, the `-` operator, on a bool tensor is not supported; use ~ or logical_not")
    return xp.negative(x)


_ERF_CUT = 2.0
_TWO_OVER_SQRT_PI = 1.1283791670955126
_ONE_OVER_SQRT_PI = 0.5641895835477563


def _erf(xp, x):
    # float64 results must be good to a few ulp, as PyTorch's are (a single rational fit is
    # only ~1e-7 accurate). Below the cut: erf(x) = 2/sqrt(pi) e^(-x^2) sum (2x^2)^n x / (2n+1)!!,
    # whose terms are all positive (no cancellation); above it: erfc's continued fraction
    # 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up. Both to ~1e-15.
    with R.quiet(xp):
        ax = xp.abs(x).astype(xp.float64)
        s = xp.minimum(ax, _ERF_CUT)
        x2 = s * s
        term = s
        total = s
        for n in range(1, 30):
            term = term * (2 * x2) / (2 * n + 1)
            total = total + term
        small = _TWO_OVER_SQRT_PI * xp.exp(-x2) * total
        b = xp.maximum(ax, _ERF_CUT)
        frac = b
        for k in range(40, 0, -1):
            frac = b + (k / 2) / frac
        large = 1 - _ONE_OVER_SQRT_PI * xp.exp(-b * b) / frac
        r = xp.copysign(xp.where(ax < _ERF_CUT, small, large), x)
    return r.astype(x.dtype)


UNARY = {
    # name: (impl, dtype rule)
    "neg": (_neg, R.same),
    "abs": (_no_bool("abs", lambda xp, x: xp.abs(x)), R.same),
    "exp": (lambda xp, x: _quiet(xp, lambda: xp.exp(x)), R.float_same),
    "log": (lambda xp, x: _quiet(xp, lambda: xp.log(x)), R.float_same),
    "log1p": (lambda xp, x: _quiet(xp, lambda: xp.log1p(x)), R.float_same),
    "expm1": (lambda xp, x: _quiet(xp, lambda: xp.expm1(x)), R.float_same),
    "sqrt": (lambda xp, x: _quiet(xp, lambda: xp.sqrt(x)), R.float_same),
    "rsqrt": (lambda xp, x: _quiet(xp, lambda: 1 / xp.sqrt(x)), R.float_same),
    "reciprocal": (lambda xp, x: _quiet(xp, lambda: 1 / x), R.float_same),
    "sin": (lambda xp, x: _quiet(xp, lambda: xp.sin(x)), R.float_same),
    "cos": (lambda xp, x: _quiet(xp, lambda: xp.cos(x)), R.float_same),
    "tan": (lambda xp, x: _quiet(xp, lambda: xp.tan(x)), R.float_same),
    "tanh": (lambda xp, x: xp.tanh(x), R.float_same),
    "sigmoid": (_sigmoid, R.float_same),
    "erf": (_erf, R.float_same),
    "relu": (_relu, R.same),
    "sign": (_sign, R.same),
    "floor": (_int_identity("floor", lambda xp, x: xp.floor(x)), R.same),
    "ceil": (_int_identity("ceil", lambda xp, x: xp.ceil(x)), R.same),
    "trunc": (_int_identity("trunc", lambda xp, x: xp.trunc(x)), R.same),
    "round": (_int_identity("round", _round), R.same),
    "logical_not": (lambda xp, x: xp.logical_not(x), R.logical),
    "bitwise_not": (lambda xp, x: xp.invert(x), R.same),
    "isnan": (lambda xp, x: xp.isnan(x), R.bool_out),
    "isinf": (lambda xp, x: xp.isinf(x), R.bool_out),
    "isfinite": (lambda xp, x: xp.isfinite(x), R.bool_out),
}

for _name, (_impl, _rule) in UNARY.items():
    register(f"tj::{_name}", ("self",), _impl, R.first_shape, _rule,
             attrs={"decimals": 0} if _name == "round" else None)


_INT_RANGE = {}


def _fit(xp, v, like):
    """A Python int as PyTorch casts it to an integer operand's dtype: wrapped around (uint8 + -1
    adds 255, uint8 < -3 compares with 253), where numpy 2 refuses an out-of-range int or compares
    it exactly. Ints already in range, and every other operand, pass through untouched."""
    if v.__class__ is not int:
        return v
    dt = getattr(like, "dtype", None)
    if dt is None or dt.kind not in "iu":
        return v
    lo_hi = _INT_RANGE.get(dt)
    if lo_hi is None:
        info = xp.iinfo(dt)
        lo_hi = _INT_RANGE[dt] = (int(info.min), int(info.max))
    if lo_hi[0] <= v <= lo_hi[1]:
        return v
    return xp.asarray(v).astype(dt)[()]


_HALF_MAX = 65504.0


def _half_overflow(v, like):
    """Whether `v` is a Python float, finite but beyond float16's range, while `like` is float16."""
    return (v.__class__ is float and _HALF_MAX < abs(v) < float("inf")
            and getattr(like, "dtype", None) is not None and like.dtype.char == "e")


def _fit_scalars(fn, opmath=()):
    """Python-number operands as PyTorch treats them: ints wrapped to an integer operand's dtype
    (see `_fit`). A float against a float16 tensor is rounded to float16 (past its range: to inf,
    without numpy's overflow warning), except where PyTorch's mul and div kernels (`opmath`: the
    operand positions where this holds) read it at float32 precision and compute in float32:
    x // 0.02 divides by 0.0199999996, not by 0.020004, and 0 * 1e5 is 0, not nan."""

    def impl(xp, a, b, *rest, **kw):
        if a.__class__ is _ND and b.__class__ is _ND:  # two arrays: nothing to fit (the common case)
            return fn(xp, a, b, *rest, **kw)
        if a.__class__ is int:
            a = _fit(xp, a, b)
        elif b.__class__ is int:
            b = _fit(xp, b, a)
        elif a.__class__ is float or b.__class__ is float:
            pos, v, arr = (0, a, b) if a.__class__ is float else (1, b, a)
            if getattr(arr, "dtype", None) is not None and arr.dtype.char == "e":  # float16
                if pos in opmath:
                    with R.quiet(xp):
                        r = fn(xp, *(arr.astype(xp.float32), v)[::1 if pos else -1], *rest, **kw)
                        return r.astype(xp.float16) if r.dtype == xp.float32 else r
                if _HALF_MAX < abs(v) < float("inf"):
                    v *= float("inf")
                    a, b = (v, arr) if pos == 0 else (arr, v)
        return fn(xp, a, b, *rest, **kw)

    impl.opmath = opmath  # dispatch passes 0-dim float operands at these positions as numbers too
    return impl


def _check_half(v, like):
    if _half_overflow(v, like):
        raise OverflowError(f"value {v} cannot be converted to type float16 without overflow")


def _add(xp, a, b, alpha=1):
    return _bin(xp, np.add, a, b * _fit(xp, alpha, b) if alpha != 1 else b)


def _sub(xp, a, b, alpha=1):
    return _bin(xp, np.subtract, a, b * _fit(xp, alpha, b) if alpha != 1 else b)


def _sub_rule(args, attrs):
    # PyTorch refuses a bool operand of either kind (tensor or Python bool), not only two bool tensors.
    for a in args:
        if isinstance(a, bool) or getattr(a, "dtype", None) is R.D.bool_:
            raise TypeError("subtraction, the `-` operator, with a bool tensor is not supported; use the `^` or "
                            "logical_xor() operator instead, or `~` / logical_not() to invert a mask")
    return R.promote(args, attrs)


def _reject_bool(a, b, what):
    """Raise when the op computes on bools (tensor operands already hold the compute dtype):
    PyTorch has no bool kernel for these, where numpy would quietly compute in int8."""
    for v in (a, b):
        dt = getattr(v, "dtype", None)
        if dt is not None:
            if dt.kind == "b":
                raise TypeError(f'"{what}" is not implemented for bool tensors')
            return


def _div(xp, a, b, rounding_mode=None):
    with R.quiet(xp):
        if rounding_mode is None:
            return xp.true_divide(a, b)
        _reject_bool(a, b, f"div(rounding_mode={rounding_mode!r})")
        if rounding_mode == "floor":
            _check_divisor(xp, a, b)
            return xp.floor_divide(a, b)
        if rounding_mode == "trunc":
            _check_divisor(xp, a, b)
            q = xp.true_divide(a, b)
            out = xp.trunc(q)
            dt = getattr(a, "dtype", None) if hasattr(a, "dtype") else getattr(b, "dtype", None)
            return out.astype(dt) if dt is not None and dt.kind in "iu" else out
    raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', 'floor', got {rounding_mode!r}")


def _div_rule(args, attrs):
    if attrs.get("rounding_mode") is None:
        return R.promote_float(args, attrs)
    return R.promote(args, attrs)


def _pow(xp, a, b):
    if getattr(a, "dtype", None) is not None and a.dtype.kind == "b" and isinstance(b, bool):
        # PyTorch's only bool pow: x ** True is x and x ** False is all True
        return a.copy() if b else xp.ones_like(a)
    _reject_bool(a, b, "pow")
    _check_half(b, a)  # PyTorch refuses a float16-overflowing exponent; a base like that is inf
    if _half_overflow(a, b):
        a *= float("inf")
    a = _fit(xp, a, b)
    if b.__class__ is int and getattr(a, "dtype", None) is not None and a.dtype.kind in "iu":
        # An int exponent is not cast to the base's dtype (uint8 ** -3 is an error, not ** 253).
        if b < 0:
            raise ValueError("Integers to negative integer powers are not allowed.")
        if _fit(xp, b, a) is not b:
            with R.quiet(xp):
                return xp.power(a.astype(xp.int64), b).astype(a.dtype)
    with R.quiet(xp):
        if getattr(b, "dtype", None) is not None and b.dtype.kind == "i":
            neg = b < 0
            if neg.any():
                # numpy refuses integer ** negative integer; PyTorch truncates 1 / x**n:
                # 1 for x == 1, +-1 (by the exponent's parity) for x == -1, else 0.
                r = xp.power(a, xp.where(neg, 0, b))
                inv = xp.where(a == 1, 1, xp.where(a == -1, 1 - 2 * (b & 1), 0))
                return xp.where(neg, inv, r).astype(r.dtype, copy=False)
        return xp.power(a, b)


def _integer_operands(a, b):
    """Whether a division computes on integers (tensor operands are already in the compute dtype)."""
    for v in (a, b):
        dt = getattr(v, "dtype", None)
        if dt is not None:
            return dt.kind in "iub"
    return False


def _check_divisor(xp, a, b):
    if _integer_operands(a, b) and not xp.all(xp.asarray(b) != 0):
        raise ZeroDivisionError("integer division by zero")


def _int_div_check(fn, what):
    def impl(xp, a, b):
        _reject_bool(a, b, what)
        _check_divisor(xp, a, b)
        return _quiet(xp, lambda: fn(xp, a, b))

    return impl


def _bool_only_or_int(fn, what):
    def impl(xp, a, b):
        for v in (a, b):
            if getattr(v, "dtype", None) is not None and v.dtype.kind == "f" or isinstance(v, float):
                raise TypeError(f"{what} is only supported for integer and bool tensors, not float")
        return fn(a, b)

    return impl


BINARY = {
    "add": (_add, R.promote, {"alpha": 1}),
    "sub": (_sub, _sub_rule, {"alpha": 1}),
    "mul": (lambda xp, a, b: _bin(xp, np.multiply, a, b), R.promote, None),
    "div": (_div, _div_rule, {"rounding_mode": None}),
    "remainder": (_int_div_check(lambda xp, a, b: xp.remainder(a, b), "remainder"), R.promote, None),
    "fmod": (_int_div_check(lambda xp, a, b: xp.fmod(a, b), "fmod"), R.promote, None),
    "pow": (_pow, R.promote, None),
    "maximum": (lambda xp, a, b: _bin(xp, np.maximum, a, b), R.promote, None),
    "minimum": (lambda xp, a, b: _bin(xp, np.minimum, a, b), R.promote, None),
    "atan2": (lambda xp, a, b: xp.arctan2(a, b), R.promote_float, None),
    "eq": (lambda xp, a, b: xp.equal(a, b), R.compare, None),
    "ne": (lambda xp, a, b: xp.not_equal(a, b), R.compare, None),
    "lt": (lambda xp, a, b: xp.less(a, b), R.compare, None),
    "le": (lambda xp, a, b: xp.less_equal(a, b), R.compare, None),
    "gt": (lambda xp, a, b: xp.greater(a, b), R.compare, None),
    "ge": (lambda xp, a, b: xp.greater_equal(a, b), R.compare, None),
    # PyTorch tests truth after casting to the promoted dtype (1e-30 in a float16 op is False).
    "logical_and": (lambda xp, a, b: xp.logical_and(a, b), R.compare, None),
    "logical_or": (lambda xp, a, b: xp.logical_or(a, b), R.compare, None),
    "logical_xor": (lambda xp, a, b: xp.logical_xor(a, b), R.compare, None),
    "bitwise_and": (_bool_only_or_int(lambda a, b: a & b, "bitwise_and (&)"), R.promote, None),
    "bitwise_or": (_bool_only_or_int(lambda a, b: a | b, "bitwise_or (|)"), R.promote, None),
    "bitwise_xor": (_bool_only_or_int(lambda a, b: a ^ b, "bitwise_xor (^)"), R.promote, None),
}

for _name, (_impl, _rule, _attrs) in BINARY.items():
    _opmath = {"mul": (0, 1), "div": (1,)}.get(_name, ())
    register(f"tj::{_name}", ("self", "other"), _impl if _name == "pow" else _fit_scalars(_impl, _opmath), ES,
             _rule, attrs=_attrs)


def _inplace_ufunc(name, ufunc_name):
    """`x.add_(y)` and friends straight into x's memory (numpy's out=): no temporary, no copy back.

    Python ints (which may need wrapping to x's dtype) and float16 with a Python float (computed at
    float32 precision) take the generic path: compute, then copy into x."""
    functional = get(f"tj::{name}").impl

    def impl(xp, out, b, alpha=1, rounding_mode=None):
        if rounding_mode is None and (b.__class__ is _ND or (b.__class__ is float and out.dtype.char != "e")):
            if alpha != 1:
                b = b * alpha
            if b.__class__ is _ND and b.shape != out.shape and xp.broadcast_shapes(b.shape, out.shape) != out.shape:
                raise ShapeError(f"output with shape {list(out.shape)} doesn't match the broadcast shape "
                                 f"{list(xp.broadcast_shapes(b.shape, out.shape))} (in-place tj::{name})")
            # "unsafe" only relaxes numpy's kind rule (int64 -> uint8); dispatch already refused
            # results of a higher category than the target (float into int), as PyTorch does.
            if out.size >= _MIN_PAR and xp is np:
                parallel.ufunc_into(getattr(np, ufunc_name), out, b, casting="unsafe")
            else:
                getattr(xp, ufunc_name)(out, b, out=out, casting="unsafe")
            return out
        kw = {"alpha": alpha} if alpha != 1 else ({"rounding_mode": rounding_mode} if rounding_mode else {})
        out[...] = functional(xp, out, b, **kw)
        return out

    return impl


for _name, _uf_np in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("maximum", np.maximum),
                      ("minimum", np.minimum), ("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                      ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
    get(f"tj::{_name}").ufunc = _uf_np

for _name, _uname in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("div", "true_divide"),
                      ("maximum", "maximum"), ("minimum", "minimum")):
    get(f"tj::{_name}").inplace_impl = _inplace_ufunc(_name, _uname)


def _clamp(xp, x, lo, hi):
    _check_half(lo, x)
    _check_half(hi, x)
    if lo is not None:
        x = xp.maximum(x, _fit(xp, lo, x))
    if hi is not None:
        x = xp.minimum(x, _fit(xp, hi, x))
    return x


register("tj::clamp", ("self", "min", "max"), _clamp, ES, R.promote)


def _where_rule(args, attrs):
    r = R.promote(args[1:], attrs)[0]
    if all(isinstance(a, (bool, int, float)) for a in args[1:]):
        # No tensor to cast: numpy would make Python floats float64; cast the result instead.
        return None, r
    return r, r


def _where(xp, c, a, b):
    # where only selects: a float beyond float16's range becomes the inf it rounds to, as in
    # PyTorch, without numpy's overflow warning
    if _half_overflow(a, b):
        a *= float("inf")
    elif _half_overflow(b, a):
        b *= float("inf")
    return xp.where(c, a, b)


register("tj::where", ("condition", "self", "other"), _where, ES, _where_rule, cast=(1, 2))


def _masked_fill(xp, x, mask, value):
    _check_half(value, x)
    return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)


register("tj::masked_fill", ("self", "mask", "value"), _masked_fill, ES,
         lambda args, attrs: (args[0].dtype, args[0].dtype), cast=())


def _cast(xp, x, dtype):
    # Out-of-range values (1e5 to float16, nan to int64) convert silently in PyTorch.
    return _quiet(xp, lambda: x.astype(dtype.np))


# cast=(): the impl does the one conversion, quietly; dispatch's cast to the compute dtype would warn.
register("tj::to_dtype", ("self",), _cast, R.first_shape, R.given_dtype, attrs={"dtype": None}, cast=())
def _is_dense(x):
    """Non-overlapping and dense: the elements fill a block of memory in some order of the dims."""
    dims = sorted((st, n) for st, n in zip(x.strides, x.shape) if n != 1)
    expect = x.itemsize
    for st, n in dims:
        if st != expect:
            return False
        expect *= n
    return True


def _clone(xp, x):
    # PyTorch's clone keeps a dense tensor's layout (a permuted tensor stays permuted); numpy's
    # order="K" does the same, and anything else becomes C-contiguous as in PyTorch.
    return x.copy(order="K" if _is_dense(x) else "C")


register("tj::clone", ("self",), _clone, R.first_shape, R.same, kind="movement")
register("tj::contiguous", ("self",), lambda xp, x: xp.ascontiguousarray(x), R.first_shape, R.same,
         kind="movement")
