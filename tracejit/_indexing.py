"""`tensor[index]` and `tensor[index] = value`, as PyTorch does them.

Basic items (ints, slices, None, ...) become views (select / slice / unsqueeze) that share
storage; integer tensors, bool masks, lists and arrays then go to one advanced-indexing op
(`tj::index`, a copy) over that view, with None for the dims they do not index. Assignment
writes through the same view (`tj::copy` or `tj::index_put`).

    >>> import tracejit as tj
    >>> x = tj.zeros(2, 3)
    >>> x[:, 1] = 5
    >>> x[x > 0].tolist()
    [5.0, 5.0]
"""

from __future__ import annotations

import numpy as np

from . import dtypes as D
from . import ops
from ._shape_ops import select, slice_dim, unsqueeze
from ._tensor import Tensor, _wrap, dispatch

_INDEX, _INDEX_PUT, _COPY = ops.get("tj::index"), ops.get("tj::index_put"), ops.get("tj::copy")
_ALIAS = ops.get("tj::squeeze")
_INDEX_DTYPES = (D.int64, D.int32, D.int16, D.int8, D.uint8, D.bool_)


def _as_index_tensor(item, like):
    if isinstance(item, Tensor):
        t = item
    else:
        from ._creation import tensor

        t = tensor(item)
        if t.numel() == 0 and t.dtype.is_floating_point:  # x[[]] indexes with an empty long list
            t = t.long()
    if t.dtype not in _INDEX_DTYPES:
        raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got {t.dtype}")
    if t.dtype is D.uint8:
        t = t.bool()
    if t.device != like.device:
        t = t.to(like.device)
    return t


def _normalize(index, x):
    """Turn an index into a list of items: int, slice, None, or an index Tensor."""
    items = list(index) if isinstance(index, tuple) else [index]
    out = []
    for it in items:
        if it is None or it is Ellipsis or isinstance(it, slice):
            out.append(it)
        elif isinstance(it, bool):  # x[True] is x[None]; x[False] selects nothing from it
            out.append(_as_index_tensor(it, x))
        elif isinstance(it, (int, np.integer)):
            out.append(int(it))
        elif isinstance(it, Tensor) and it.ndim == 0 and it.dtype in _INDEX_DTYPES[:5]:
            out.append(int(it))  # a 0-dim integer tensor indexes like an int
        elif isinstance(it, (Tensor, list, np.ndarray)):
            out.append(_as_index_tensor(it, x))
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long, int or bool tensors "
                             f"are valid indices, got {type(it).__name__}")
    consumed = sum(it.ndim if isinstance(it, Tensor) and it.dtype is D.bool_ else
                   (0 if it is None or it is Ellipsis else 1) for it in out)
    n_ell = sum(1 for it in out if it is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    pos = list(range(len(out)))  # each item's place in the index, which PyTorch's errors name as its dim
    if n_ell:
        at = out.index(Ellipsis)
        out[at : at + 1] = [slice(None)] * (x.ndim - consumed)
        pos[at : at + 1] = [at] * (x.ndim - consumed)
        pos[at + x.ndim - consumed :] = range(at + 1, at + 1 + len(pos) - at - x.ndim + consumed)
    return out, pos


def _apply_basic(x, items, pos):
    """Apply the basic items as views; return the view and its advanced indices (None elsewhere)."""
    view = x
    dim = 0
    adv = []
    for it, p in zip(items, pos):
        if it is None:
            view = unsqueeze(view, dim)
            adv.append(None)
            dim += 1
        elif isinstance(it, int):
            size = view.shape[dim]
            if not -size <= it < size:
                raise IndexError(f"index {it} is out of bounds for dimension {p} with size {size}")
            view = select(view, dim, it)
        elif isinstance(it, slice):
            step = 1 if it.step is None else int(it.step)
            if it != slice(None):
                view = slice_dim(view, dim, it.start, it.stop, step)
            adv.append(None)
            dim += 1
        else:  # an index tensor; a bool mask covers as many dims as it has
            n = it.ndim if it.dtype is D.bool_ else 1
            if it.dtype is D.bool_:
                want = tuple(view.shape[dim : dim + n])
                if tuple(it.shape) != want:
                    raise IndexError(f"the shape of the mask {list(it.shape)} at index {dim} does not match the "
                                     f"shape of the indexed tensor {list(want)}")
            adv.append(it)
            adv.extend([_MASK_DIM] * (n - 1))
            dim += n
    adv = [a for a in adv if a is not _MASK_DIM]
    if all(a is None for a in adv):
        return view, None
    while adv and adv[-1] is None:
        adv.pop()
    return view, tuple(adv)


_MASK_DIM = object()


def getitem(x, index):
    view, adv = _apply_basic(x, *_normalize(index, x))
    if adv is None:
        # x[:] and x[...] are new views of x, not x itself
        return view if view is not x else dispatch(_ALIAS, (x,), {"dims": ()})
    return dispatch(_INDEX, (view, adv))


def setitem(x, index, value):
    view, adv = _apply_basic(x, *_normalize(index, x))
    if isinstance(value, (list, tuple, np.ndarray)):
        value = _wrap(np.asarray(value))
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Tensor) and value.device != x.device:  # x[i] = v copies v over, as copy_ does
        value = value.to(x.device)
    if isinstance(value, Tensor) and value.ndim > view.ndim and adv is None:
        value = value.reshape(value.shape[value.ndim - view.ndim:]) if all(
            d == 1 for d in value.shape[: value.ndim - view.ndim]) else value
    if adv is None:
        dispatch(_COPY, (view, value), out=view)
    else:
        dispatch(_INDEX_PUT, (view, adv, value), {"accumulate": False}, out=view)
