"""Elementwise ops: unary math, binary arithmetic, comparisons, logic, clamp, where.

Each op is one `register` call; the tables below only keep the common shape of many
entries in one place. Reference implementations take numpy-or-cupy arrays (`xp`) and
Python numbers, already cast to the op's compute dtype by the dispatcher.
"""

from __future__ import annotations

from . import rules as R
from .registry import register

ES = R.elementwise_shape


def _quiet(xp, fn):
    """Run `fn` without IEEE warnings: log(0) is -inf and 0/0 is nan, silently, as in PyTorch."""
    with xp.errstate(all="ignore"):
        return fn()


def _int_identity(fn):
    """floor/ceil/round/trunc of an integer tensor is a copy of it (numpy would make floats)."""

    def impl(xp, x, **kw):
        if x.dtype.kind in "iub":
            return x.copy()
        return fn(xp, x, **kw)

    return impl


def _round(xp, x, decimals=0):
    return xp.round(x, decimals) if decimals else xp.rint(x)


def _sigmoid(xp, x):
    # tanh form is stable for large |x| (no exp overflow) and needs one transcendental.
    half = x.dtype.type(0.5)
    return xp.tanh(x * half) * half + half


_ZEROS = {}


def _zero(xp, dt):
    """A cached 0-d zero: numpy converts it faster than a Python 0 in small ops."""
    z = _ZEROS.get((xp, dt))
    if z is None:
        z = _ZEROS[xp, dt] = xp.zeros((), dt)
    return z


def _relu(xp, x):
    if x.dtype.kind == "b":
        raise TypeError("relu is not implemented for bool tensors")
    return xp.maximum(x, _zero(xp, x.dtype))


def _sign(xp, x):
    return x.copy() if x.dtype.kind == "b" else xp.sign(x)


def _neg(xp, x):
    if x.dtype.kind == "b":
        raise TypeError("negation, the `-` operator, on a bool tensor is not supported; use ~ or logical_not")
    return xp.negative(x)


def _erf(xp, x):
    # Abramowitz & Stegun 7.1.26 is only ~1e-7 accurate; this uses erfc's continued
    # rational form from Numerical Recipes (erfcc), relative error < 1.2e-7 everywhere.
    with xp.errstate(all="ignore"):
        ax = xp.abs(x).astype(xp.float64)
        t = 1.0 / (1.0 + 0.5 * ax)
        poly = -ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
            -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
                -0.82215223 + t * 0.17087277))))))))
        erfc = t * xp.exp(poly)
        r = xp.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return r.astype(x.dtype)


UNARY = {
    # name: (impl, dtype rule)
    "neg": (_neg, R.same),
    "abs": (lambda xp, x: xp.abs(x), R.same),
    "exp": (lambda xp, x: _quiet(xp, lambda: xp.exp(x)), R.float_same),
    "log": (lambda xp, x: _quiet(xp, lambda: xp.log(x)), R.float_same),
    "log1p": (lambda xp, x: _quiet(xp, lambda: xp.log1p(x)), R.float_same),
    "expm1": (lambda xp, x: _quiet(xp, lambda: xp.expm1(x)), R.float_same),
    "sqrt": (lambda xp, x: _quiet(xp, lambda: xp.sqrt(x)), R.float_same),
    "rsqrt": (lambda xp, x: _quiet(xp, lambda: 1 / xp.sqrt(x)), R.float_same),
    "reciprocal": (lambda xp, x: _quiet(xp, lambda: 1 / x), R.float_same),
    "sin": (lambda xp, x: xp.sin(x), R.float_same),
    "cos": (lambda xp, x: xp.cos(x), R.float_same),
    "tan": (lambda xp, x: xp.tan(x), R.float_same),
    "tanh": (lambda xp, x: xp.tanh(x), R.float_same),
    "sigmoid": (_sigmoid, R.float_same),
    "erf": (_erf, R.float_same),
    "relu": (_relu, R.same),
    "sign": (_sign, R.same),
    "floor": (_int_identity(lambda xp, x: xp.floor(x)), R.same),
    "ceil": (_int_identity(lambda xp, x: xp.ceil(x)), R.same),
    "trunc": (_int_identity(lambda xp, x: xp.trunc(x)), R.same),
    "round": (_int_identity(_round), R.same),
    "logical_not": (lambda xp, x: xp.logical_not(x), R.logical),
    "bitwise_not": (lambda xp, x: xp.invert(x), R.same),
    "isnan": (lambda xp, x: xp.isnan(x), R.bool_out),
    "isinf": (lambda xp, x: xp.isinf(x), R.bool_out),
    "isfinite": (lambda xp, x: xp.isfinite(x), R.bool_out),
}

for _name, (_impl, _rule) in UNARY.items():
    register(f"tj::{_name}", ("self",), _impl, R.first_shape, _rule,
             attrs={"decimals": 0} if _name == "round" else None)


def _sub(xp, a, b, alpha=1):
    if getattr(a, "dtype", None) == bool and getattr(b, "dtype", None) == bool:
        raise TypeError("subtraction, the `-` operator, with two bool tensors is not supported; "
                        "use the `^` or logical_xor() operator instead")
    return xp.subtract(a, b * alpha if alpha != 1 else b)


def _div(xp, a, b, rounding_mode=None):
    with xp.errstate(all="ignore"):
        if rounding_mode is None:
            return xp.true_divide(a, b)
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
    with xp.errstate(all="ignore"):
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


def _int_div_check(fn):
    def impl(xp, a, b):
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
    "add": (lambda xp, a, b, alpha=1: xp.add(a, b * alpha if alpha != 1 else b), R.promote, {"alpha": 1}),
    "sub": (_sub, R.promote, {"alpha": 1}),
    "mul": (lambda xp, a, b: xp.multiply(a, b), R.promote, None),
    "div": (_div, _div_rule, {"rounding_mode": None}),
    "remainder": (_int_div_check(lambda xp, a, b: xp.remainder(a, b)), R.promote, None),
    "fmod": (_int_div_check(lambda xp, a, b: xp.fmod(a, b)), R.promote, None),
    "pow": (_pow, R.promote, None),
    "maximum": (lambda xp, a, b: xp.maximum(a, b), R.promote, None),
    "minimum": (lambda xp, a, b: xp.minimum(a, b), R.promote, None),
    "atan2": (lambda xp, a, b: xp.arctan2(a, b), R.promote_float, None),
    "eq": (lambda xp, a, b: xp.equal(a, b), R.compare, None),
    "ne": (lambda xp, a, b: xp.not_equal(a, b), R.compare, None),
    "lt": (lambda xp, a, b: xp.less(a, b), R.compare, None),
    "le": (lambda xp, a, b: xp.less_equal(a, b), R.compare, None),
    "gt": (lambda xp, a, b: xp.greater(a, b), R.compare, None),
    "ge": (lambda xp, a, b: xp.greater_equal(a, b), R.compare, None),
    "logical_and": (lambda xp, a, b: xp.logical_and(a, b), R.logical, None),
    "logical_or": (lambda xp, a, b: xp.logical_or(a, b), R.logical, None),
    "logical_xor": (lambda xp, a, b: xp.logical_xor(a, b), R.logical, None),
    "bitwise_and": (_bool_only_or_int(lambda a, b: a & b, "bitwise_and (&)"), R.promote, None),
    "bitwise_or": (_bool_only_or_int(lambda a, b: a | b, "bitwise_or (|)"), R.promote, None),
    "bitwise_xor": (_bool_only_or_int(lambda a, b: a ^ b, "bitwise_xor (^)"), R.promote, None),
}

for _name, (_impl, _rule, _attrs) in BINARY.items():
    register(f"tj::{_name}", ("self", "other"), _impl, ES, _rule, attrs=_attrs)


def _clamp(xp, x, lo, hi):
    if lo is not None:
        x = xp.maximum(x, lo)
    if hi is not None:
        x = xp.minimum(x, hi)
    return x


register("tj::clamp", ("self", "min", "max"), _clamp, ES, R.promote)


def _where_rule(args, attrs):
    r = R.promote(args[1:], attrs)[0]
    return r, r


register("tj::where", ("condition", "self", "other"),
         lambda xp, c, a, b: xp.where(c, a, b), ES, _where_rule, cast=(1, 2))


def _masked_fill(xp, x, mask, value):
    return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)


register("tj::masked_fill", ("self", "mask", "value"), _masked_fill, ES,
         lambda args, attrs: (args[0].dtype, args[0].dtype), cast=())


def _cast(xp, x, dtype):
    return x.astype(dtype.np)


register("tj::to_dtype", ("self",), _cast, R.first_shape, R.given_dtype, attrs={"dtype": None})
register("tj::clone", ("self",), lambda xp, x: x.copy(), R.first_shape, R.same, kind="movement")
register("tj::contiguous", ("self",), lambda xp, x: xp.ascontiguousarray(x), R.first_shape, R.same,
         kind="movement")
