"""The tensor-op namespace `F` that gradient rules are written with.

It is the public front end (`tracejit.<name>`) plus the few helpers rules need that are
not PyTorch functions: `sum_to` (undo broadcasting), functional `index` / `index_put`.
"""

from __future__ import annotations

from types import SimpleNamespace

from .. import ops
from .._api import PUBLIC
from .._tensor import dispatch

_INDEX, _INDEX_PUT = ops.get("tj::index"), ops.get("tj::index_put")


def sum_to(g, shape):
    """Sum `g` down to `shape` (the inverse of broadcasting); None when `shape` is None (a number input)."""
    if shape is None or g is None:
        return None
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if dims:
        g = g.sum(dims, keepdim=True)
    if lead:
        g = g.reshape(shape)
    return g


def index(x, indices):
    return dispatch(_INDEX, (x, tuple(indices)))


def index_put(x, indices, values, accumulate=False):
    return dispatch(_INDEX_PUT, (x, tuple(indices), values), {"accumulate": accumulate})


F = SimpleNamespace(**PUBLIC)
F.sum_to, F.index, F.index_put = sum_to, index, index_put
import tracejit as _tj  # noqa: E402 - dtype objects (F.bool, F.float32, ...)

for _name in ("bool", "float16", "float32", "float64", "int64", "int32"):
    setattr(F, _name, getattr(_tj, _name))
