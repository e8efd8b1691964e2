"""Elementwise math as functions (`tracejit.exp(x)`) and Tensor methods (`x.exp()`, `x.exp_()`).

Every function is a thin front for one registry op: it checks and normalizes arguments and
calls `dispatch`. The in-place forms write into `self` and refuse results that would not fit
its dtype, as in PyTorch.

    >>> import tracejit as tj
    >>> tj.tensor([1, 2]) + 0.5
    tensor([1.5000, 2.5000])
"""

from __future__ import annotations

import numpy as np

from . import ops
from ._tensor import _FAST, Tensor, _operand, dispatch

_EMPTY = {}


def _unary(name, method_only=False):
    op = ops.get(f"tj::{name}")

    def fn(input):
        return dispatch(op, (input,))

    def fn_(self):
        return dispatch(op, (self,), _EMPTY, out=self)

    fn.__name__, fn_.__name__ = name, name + "_"
    fn.__doc__ = f"Elementwise `{name}` (registry op `tj::{name}`)."
    return fn, fn_


def _arg(x):
    if x.__class__ in _FAST:
        return x
    y = _operand(x)
    if y is None:
        raise TypeError(f"expected a Tensor or a Python number, got {type(x).__name__}")
    return y


def _binary(name, attrs_of=None):
    op = ops.get(f"tj::{name}")

    def fn(input, other):
        return dispatch(op, (_arg(input), _arg(other)))

    def fn_(self, other):
        return dispatch(op, (self, _arg(other)), _EMPTY, out=self)

    fn.__name__, fn_.__name__ = name, name + "_"
    fn.__doc__ = f"Elementwise `{name}` with broadcasting and type promotion (registry op `tj::{name}`)."
    return fn, fn_


UNARY = ["abs", "neg", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan",
         "tanh", "sigmoid", "erf", "relu", "sign", "floor", "ceil", "trunc", "logical_not", "bitwise_not",
         "isnan", "isinf", "isfinite"]
BINARY = ["mul", "remainder", "fmod", "pow", "maximum", "minimum", "atan2", "eq", "ne", "lt", "le", "gt", "ge",
          "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"]

FUNCTIONS = {}
METHODS = {}
for _n in UNARY:
    FUNCTIONS[_n], METHODS[_n + "_"] = _unary(_n)
for _n in BINARY:
    FUNCTIONS[_n], METHODS[_n + "_"] = _binary(_n)
for _n in ("isnan", "isinf", "isfinite"):  # no in-place form: the result is bool
    del METHODS[_n + "_"]

_ADD, _SUB, _DIV, _ROUND = ops.get("tj::add"), ops.get("tj::sub"), ops.get("tj::div"), ops.get("tj::round")
_CLAMP, _WHERE, _MASKED_FILL = ops.get("tj::clamp"), ops.get("tj::where"), ops.get("tj::masked_fill")


def add(input, other, *, alpha=1):
    """`input + alpha * other` (registry op `tj::add`)."""
    return dispatch(_ADD, (_arg(input), _arg(other)), _EMPTY if alpha == 1 else {"alpha": alpha})


def add_(self, other, *, alpha=1):
    return dispatch(_ADD, (self, _arg(other)), _EMPTY if alpha == 1 else {"alpha": alpha}, out=self)


def sub(input, other, *, alpha=1):
    """`input - alpha * other` (registry op `tj::sub`)."""
    return dispatch(_SUB, (_arg(input), _arg(other)), _EMPTY if alpha == 1 else {"alpha": alpha})


def sub_(self, other, *, alpha=1):
    return dispatch(_SUB, (self, _arg(other)), _EMPTY if alpha == 1 else {"alpha": alpha}, out=self)


def rsub(input, other, *, alpha=1):
    return sub(other, input, alpha=alpha)


def _rounding(rounding_mode):
    if rounding_mode not in (None, "trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"{rounding_mode!r}")
    return _EMPTY if rounding_mode is None else {"rounding_mode": rounding_mode}


def div(input, other, *, rounding_mode=None):
    """True division (integers give floats), or rounded with rounding_mode='trunc'|'floor'."""
    return dispatch(_DIV, (_arg(input), _arg(other)), _rounding(rounding_mode))


def div_(self, other, *, rounding_mode=None):
    return dispatch(_DIV, (self, _arg(other)), _rounding(rounding_mode), out=self)


def floor_divide(input, other):
    return div(input, other, rounding_mode="floor")


def floor_divide_(self, other):
    return div_(self, other, rounding_mode="floor")


def true_divide(input, other):
    return div(input, other)


def round(input, decimals=0):  # noqa: A001 - torch's name
    return dispatch(_ROUND, (input,), {"decimals": decimals} if decimals else _EMPTY)


def round_(self, decimals=0):
    return dispatch(_ROUND, (self,), {"decimals": decimals} if decimals else _EMPTY, out=self)


def _bound(v):
    if isinstance(v, Tensor) or v is None:
        return v
    return _arg(v)


def clamp(input, min=None, max=None):  # noqa: A002 - torch's names
    """Limit values to [min, max]; min and max may be numbers or tensors (broadcast)."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    return dispatch(_CLAMP, (input, _bound(min), _bound(max)))


def clamp_(self, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise RuntimeError("clamp_: at least one of 'min' or 'max' must not be None")
    return dispatch(_CLAMP, (self, _bound(min), _bound(max)), _EMPTY, out=self)


def clamp_min(input, min):  # noqa: A002
    return clamp(input, min=min)


def clamp_max(input, max):  # noqa: A002
    return clamp(input, max=max)


def where(condition, input=None, other=None):
    """`input` where `condition` holds, else `other`; `where(condition)` is `nonzero(as_tuple=True)`."""
    if input is None and other is None:
        from ._movement import nonzero

        return nonzero(condition, as_tuple=True)
    if condition.dtype.name != "bool":
        raise TypeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                        f"{condition.dtype}")
    return dispatch(_WHERE, (condition, _arg(input), _arg(other)))


def _mask_value(mask, value, what):
    if not isinstance(mask, Tensor) or mask.dtype.name != "bool":
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{what} only supports boolean masks, but got mask with dtype {got}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"{what} only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s)")
        value = value.item()
    return value


def masked_fill(input, mask, value):
    """`input` with `value` written where `mask` is True (mask broadcasts to input)."""
    return dispatch(_MASKED_FILL, (input, mask, _mask_value(mask, value, "masked_fill")))


def masked_fill_(self, mask, value):
    return dispatch(_MASKED_FILL, (self, mask, _mask_value(mask, value, "masked_fill_")), _EMPTY, out=self)


def square(input):
    return FUNCTIONS["mul"](input, input)


def lerp(input, end, weight):
    return add(input, FUNCTIONS["mul"](sub(end, input), weight))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """PyTorch's isclose: |input - other| <= atol + rtol * |other|, or equal (infinities included)."""
    F = FUNCTIONS
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is nan here on purpose
        diff = F["abs"](sub(input, other))
    close = F["le"](diff, add(F["mul"](F["abs"](other), rtol), atol))
    close = F["logical_and"](close, F["isfinite"](other))  # an infinity is close only to itself
    close = F["logical_or"](close, F["eq"](input, other))
    if equal_nan:
        close = F["logical_or"](close, F["logical_and"](F["isnan"](input), F["isnan"](other)))
    return close


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether every element of `input` is close to `other` (a Python bool)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all().item())


def equal(input, other):
    """True when both tensors have the same shape and elements."""
    return tuple(input.shape) == tuple(other.shape) and bool(FUNCTIONS["eq"](input, other).all().item())


FUNCTIONS.update(
    isclose=isclose, allclose=allclose, equal=equal,
    add=add, sub=sub, subtract=sub, rsub=rsub, div=div, divide=div, true_divide=true_divide,
    floor_divide=floor_divide, round=round, clamp=clamp, clip=clamp, clamp_min=clamp_min, clamp_max=clamp_max,
    where=where, masked_fill=masked_fill, multiply=FUNCTIONS["mul"], negative=FUNCTIONS["neg"],
    absolute=FUNCTIONS["abs"], greater=FUNCTIONS["gt"], greater_equal=FUNCTIONS["ge"], less=FUNCTIONS["lt"],
    less_equal=FUNCTIONS["le"], not_equal=FUNCTIONS["ne"], arctan2=FUNCTIONS["atan2"], square=square,
    lerp=lerp, fix=FUNCTIONS["trunc"],
)
METHODS.update(
    add_=add_, sub_=sub_, subtract_=sub_, div_=div_, divide_=div_, floor_divide_=floor_divide_, round_=round_,
    clamp_=clamp_, clip_=clamp_, masked_fill_=masked_fill_, multiply_=METHODS["mul_"],
    negative_=METHODS["neg_"],
)
