"""Run one registry op on plain arrays: the array-level counterpart of eager `dispatch`.

The IR interpreter (and later the runtime's fallback) use it: the op's dtype rule decides the
compute and output dtypes, the inputs listed in `op.cast` are cast, the reference
implementation runs on `xp`, and the result is converted to the output dtype, exactly as
eager dispatch does for tensors.

    >>> import numpy as np
    >>> from tracejit.ops import get
    >>> run_op(get("tj::add"), np, (np.ones(2, np.int64), 0.5), {}).dtype
    dtype('float32')
"""

from __future__ import annotations

import numpy as np

from .. import dtypes as D

_NUMBER = (bool, int, float)


class _Meta:
    """What dtype rules read from an operand: its dtype and rank."""

    __slots__ = ("dtype", "ndim")

    def __init__(self, arr):
        self.dtype = D.from_numpy_dtype(arr.dtype)
        self.ndim = arr.ndim


def _meta(a):
    if a is None or isinstance(a, _NUMBER):
        return a
    if isinstance(a, (list, tuple)):
        return [None if t is None else _Meta(t) for t in a]
    return _Meta(a)


def _as_array(r):
    return np.asarray(r) if isinstance(r, np.generic) else r


def _key(a):
    if a is None or isinstance(a, _NUMBER):
        return a.__class__
    if isinstance(a, (list, tuple)):
        return tuple(None if t is None else (t.dtype, t.ndim) for t in a)
    return a.dtype, a.ndim


def run_op(op, xp, args, attrs, cache=None):
    """`op` on arrays / numbers / lists of arrays; returns an array or a tuple of arrays.

    `cache`: a dict the caller keeps for one node (its op and attrs fixed): the dtype rule's answer is
    remembered per operand dtypes and ranks (numbers count by kind, all that promotion reads of them)."""
    if cache is None:
        compute, out_dtype = op.dtype_rule(tuple(_meta(a) for a in args), attrs)
    else:
        key = tuple(_key(a) for a in args)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = op.dtype_rule(tuple(_meta(a) for a in args), attrs)
        compute, out_dtype = hit
    return apply(op, xp, args, attrs, compute, out_dtype)


def apply(op, xp, args, attrs, compute, out_dtype):
    """`run_op` with its dtype rule's answer already known (`compute`, `out_dtype`)."""
    if compute is not None and op.cast:
        want = compute.np
        args = list(args)
        for i in op.cast:
            a = args[i]
            if isinstance(a, (list, tuple)):
                args[i] = [t if t is None or t.dtype == want else t.astype(want) for t in a]
            elif a is not None and not isinstance(a, _NUMBER) and a.dtype != want:
                args[i] = a.astype(want)
    res = op.impl(xp, *args, **attrs)
    if op.num_outputs != 1:
        return tuple(_as_array(r) for r in res)
    res = _as_array(res)
    if out_dtype is not None and out_dtype is not compute and res.dtype != out_dtype.np:
        res = res.astype(out_dtype.np)
    return res
