"""Data types and PyTorch's type-promotion rules.

    >>> from tracejit.dtypes import float32, int64, promote_types
    >>> promote_types(int64, float32)
    tracejit.float32
"""

from __future__ import annotations

import numpy as np

# Categories order promotion across kinds: a float operand always wins over an integer one.
BOOL, INT, FLOAT = 0, 1, 2


class dtype:  # noqa: N801 - the public name is torch's
    """A tensor element type; `tracejit.float32` and friends are the only instances."""

    __slots__ = ("name", "np", "category", "itemsize", "is_floating_point", "is_signed", "aliases")

    def __init__(self, name, np_dtype, category, aliases=()):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.category = category
        self.itemsize = self.np.itemsize
        self.is_floating_point = category == FLOAT
        self.is_signed = self.np.kind in "if"
        self.aliases = aliases

    @property
    def is_complex(self):
        return False

    def to_real(self):
        return self

    def __repr__(self):
        return "tracejit." + self.name

    def __reduce__(self):
        return (_by_name, (self.name,))


def _by_name(name):
    return BY_NAME[name]


bool_ = dtype("bool", np.bool_, BOOL)
uint8 = dtype("uint8", np.uint8, INT)
int8 = dtype("int8", np.int8, INT)
int16 = dtype("int16", np.int16, INT, ("short",))
int32 = dtype("int32", np.int32, INT, ("int",))
int64 = dtype("int64", np.int64, INT, ("long",))
float16 = dtype("float16", np.float16, FLOAT, ("half",))
float32 = dtype("float32", np.float32, FLOAT, ("float",))
float64 = dtype("float64", np.float64, FLOAT, ("double",))

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
BY_NAME = {}
for _d in ALL:
    BY_NAME[_d.name] = _d
    for _a in _d.aliases:
        BY_NAME[_a] = _d
FROM_NP = {d.np: d for d in ALL}
_NP_PROMOTE = {}
for _a in ALL:
    for _b in ALL:
        _NP_PROMOTE[_a, _b] = FROM_NP[np.promote_types(_a.np, _b.np)]

_default_float = float32


def get_default_dtype():
    """The dtype of float tensors created from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(d):
    """Set the dtype used for Python floats: `tracejit.set_default_dtype(tracejit.float64)`."""
    global _default_float
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def as_dtype(d):
    """Accept a tracejit dtype, a numpy dtype, a Python type or a name; raise naming the valid ones."""
    if type(d) is dtype:
        return d
    if isinstance(d, str):
        found = BY_NAME.get(d.removeprefix("tracejit.").removeprefix("torch."))
        if found is not None:
            return found
    elif d is float:
        return _default_float
    elif d is int:
        return int64
    elif d is bool:
        return bool_
    else:
        torch_name = getattr(d, "is_floating_point", None) is not None and str(d).startswith("torch.")
        if torch_name:
            return as_dtype(str(d))
        try:
            found = FROM_NP.get(np.dtype(d))
        except TypeError:
            found = None
        if found is not None:
            return found
    valid = ", ".join(sorted(BY_NAME))
    raise TypeError(f"unknown dtype {d!r}; expected one of: {valid}")


def from_numpy_dtype(npdt):
    found = FROM_NP.get(npdt)
    if found is None:
        valid = ", ".join(str(d.np) for d in ALL)
        raise TypeError(f"numpy arrays of dtype {npdt} are not supported; supported dtypes: {valid}")
    return found


def promote_types(a, b):
    """The smallest dtype both `a` and `b` convert to, as `torch.promote_types` computes it."""
    if a.category != b.category:
        return a if a.category > b.category else b
    return _NP_PROMOTE[a, b]


def scalar_category(x):
    if isinstance(x, bool):
        return BOOL
    if isinstance(x, int):
        return INT
    return FLOAT


def default_for_category(cat):
    return (bool_, int64, _default_float)[cat]


def result_type_of(dims, zero_dims, scalar_cat):
    """Promotion over three tiers, as PyTorch does.

    `dims` and `zero_dims` are the dtypes of dimensioned and zero-dimensional tensor operands,
    `scalar_cat` the highest category among Python-number operands (-1 if none). A zero-dim
    tensor or a Python number only decides the dtype when it is of a higher category than
    every operand of the tiers above it.
    """
    result = None
    for d in dims:
        result = d if result is None else promote_types(result, d)
    zd = None
    for d in zero_dims:
        zd = d if zd is None else promote_types(zd, d)
    if zd is not None and (result is None or zd.category > result.category):
        result = zd
    if scalar_cat >= 0 and (result is None or scalar_cat > result.category):
        result = default_for_category(scalar_cat)
    return result


def can_cast(src, dst):
    """Whether an in-place op may write a `src` result into a `dst` tensor (same-kind casting)."""
    return src.category <= dst.category
