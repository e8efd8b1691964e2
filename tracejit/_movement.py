"""Ops that move or copy data: cat, stack, gather, scatter, index_select, repeat, flip, roll,
tril/triu, clone, contiguous, nonzero, masked_select, and the matrix products.

    >>> import tracejit as tj
    >>> tj.cat([tj.zeros(1, 2), tj.ones(1, 2)]).shape
    tracejit.Size([2, 2])
"""

from __future__ import annotations

from . import dtypes as D
from . import ops
from ._tensor import Tensor, dispatch, wrap_dim
from .ops.rules import broadcast_shapes

_OP = {n: ops.get(f"tj::{n}") for n in (
    "cat", "stack", "gather", "scatter", "index_select", "repeat", "flip", "roll", "tril", "triu", "clone",
    "contiguous", "nonzero", "matmul", "index", "copy")}


def _tensors(tensors, what):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{what}() expects a sequence of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise RuntimeError(f"{what}() expects a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}(): expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    return tuple(tensors)


def cat(tensors, dim=0):
    """Join tensors along an existing dim (promoting dtypes, as PyTorch does)."""
    ts = _tensors(tensors, "cat")
    ref = next((t for t in ts if not (t.ndim == 1 and t.shape[0] == 0)), ts[0])
    if ref.ndim == 0:
        raise RuntimeError("zero-dimensional tensor cannot be concatenated")
    return dispatch(_OP["cat"], (ts,), {"dim": wrap_dim(dim, ref.ndim)})


def stack(tensors, dim=0):
    """Join tensors along a new dim."""
    ts = _tensors(tensors, "stack")
    return dispatch(_OP["stack"], (ts,), {"dim": wrap_dim(dim, ts[0].ndim + 1)})


def hstack(tensors):
    ts = _tensors(tensors, "hstack")
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in _tensors(tensors, "vstack")], 0)


def _index_tensor(index, what):
    if not isinstance(index, Tensor):
        raise TypeError(f"{what}(): index must be a Tensor, got {type(index).__name__}")
    if index.dtype is not D.int64:
        raise RuntimeError(f"{what}(): Expected dtype int64 for index, but got {index.dtype}")
    return index


def gather(input, dim, index):
    """out[i][j] = input[index[i][j]][j] for dim=0 (and so on for other dims)."""
    d = wrap_dim(dim, input.ndim)
    return dispatch(_OP["gather"], (input, _index_tensor(index, "gather")), {"dim": d})


def _scatter_args(input, dim, index, src, value, reduce, what):
    d = wrap_dim(dim, input.ndim)
    _index_tensor(index, what)
    if src is None:
        src = value
    if src is None:
        raise TypeError(f"{what}() needs src (a tensor) or value (a number)")
    if isinstance(src, Tensor) and src.dtype is not input.dtype:
        raise RuntimeError(f"{what}(): Expected self.dtype to be equal to src.dtype ({input.dtype} vs {src.dtype})")
    return (input, index, src), {"dim": d, "reduce": reduce}


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """A copy of input with values from src (or a number) written at `index` along `dim`."""
    args, attrs = _scatter_args(input, dim, index, src, value, reduce, "scatter")
    return dispatch(_OP["scatter"], args, attrs)


def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    args, attrs = _scatter_args(self, dim, index, src, value, reduce, "scatter_")
    return dispatch(_OP["scatter"], args, attrs, out=self)


def scatter_add(input, dim, index, src):
    return scatter(input, dim, index, src, reduce="add")


def scatter_add_(self, dim, index, src):
    return scatter_(self, dim, index, src, reduce="add")


def index_select(input, dim, index):
    if not isinstance(index, Tensor) or index.dtype not in (D.int64, D.int32) or index.ndim > 1:
        raise RuntimeError("index_select(): index must be a 1-D int64 or int32 tensor")
    if index.ndim == 0:  # PyTorch treats a 0-d index as a 1-element one: the dim is kept, with size 1
        index = index.reshape(1)
    return dispatch(_OP["index_select"], (input, index), {"dim": wrap_dim(dim, input.ndim)})


def repeat(self, *sizes):
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    return dispatch(_OP["repeat"], (self,), {"repeats": tuple(int(s) for s in sizes)})


def flip(input, dims):
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return dispatch(_OP["flip"], (input,), {"dims": tuple(wrap_dim(d, input.ndim) for d in dims)})


def fliplr(input):
    return flip(input, 1)


def flipud(input):
    return flip(input, 0)


def roll(input, shifts, dims=None):
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: with no dims, shifts must be one number, got {shifts}")
        return dispatch(_OP["roll"], (input,), {"shifts": shifts[0], "dims": ()})
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(dims) != len(shifts):
        raise RuntimeError(f"roll: shifts and dims must align. shifts: {len(shifts)}, dims: {len(dims)}")
    return dispatch(_OP["roll"], (input,), {"shifts": shifts, "dims": tuple(wrap_dim(d, input.ndim) for d in dims)})


def _tri(kind, input, diagonal):
    if input.ndim < 2:
        raise RuntimeError(f"{kind}: input tensor must have at least 2 dimensions, got {input.ndim}")
    return dispatch(_OP[kind], (input,), {"diagonal": int(diagonal)})


def tril(input, diagonal=0):
    """The lower triangle of the last two dims (elements above `diagonal` zeroed)."""
    return _tri("tril", input, diagonal)


def triu(input, diagonal=0):
    return _tri("triu", input, diagonal)


def tril_(self, diagonal=0):
    return self.copy_(tril(self, diagonal))


def triu_(self, diagonal=0):
    return self.copy_(triu(self, diagonal))


def clone(input, *, memory_format=None):
    return dispatch(_OP["clone"], (input,))


def contiguous(self, memory_format=None):
    """Self when already contiguous, else a contiguous copy."""
    return self if self._data.flags.c_contiguous else dispatch(_OP["contiguous"], (self,))


def copy_(self, src, non_blocking=False):
    """Copy src into self (broadcasting, casting to self's dtype); returns self."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be a Tensor, not {type(src).__name__}")
    if src.device != self.device:  # copy_ is how data crosses devices (load_state_dict, init)
        src = src.to(self.device)
    return dispatch(_OP["copy"], (self, src), out=self)


def fill_(self, value):
    if isinstance(value, Tensor):
        value = value.item()
    return dispatch(_OP["copy"], (self, value), out=self)


def zero_(self):
    return fill_(self, 0)


def nonzero(input, *, as_tuple=False):
    """Indices of non-zero elements: an (n, ndim) int64 tensor, or one tensor per dim with as_tuple."""
    idx = dispatch(_OP["nonzero"], (input,))
    if as_tuple:
        return tuple(idx[:, i] for i in range(max(input.ndim, 1)))
    return idx


def argwhere(input):
    return nonzero(input)


def masked_select(input, mask):
    if mask.dtype is not D.bool_:
        raise TypeError(f"masked_select: expected a bool mask, got {mask.dtype}")
    shape = broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    return dispatch(_OP["index"], (input.expand(shape), (mask.expand(shape),)))


def matmul(input, other):
    """Matrix product with PyTorch's rules: 1-D operands, batch dims broadcast."""
    for name, t in (("input", input), ("other", other)):
        if not isinstance(t, Tensor):
            raise TypeError(f"matmul(): argument '{name}' must be a Tensor, not {type(t).__name__}")
    return dispatch(_OP["matmul"], (input, other))


def mm(input, mat2):
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be matrices, got {input.ndim}D and {mat2.ndim}D")
    return matmul(input, mat2)


def bmm(input, mat2):
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm: batch1 and batch2 must be 3D tensors, got {input.ndim}D and {mat2.ndim}D")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {input.shape[0]} and {mat2.shape[0]}")
    return matmul(input, mat2)


def mv(input, vec):
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv: expected a matrix and a vector, got {input.ndim}D and {vec.ndim}D")
    return matmul(input, vec)


def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape[0] != other.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
                           f"[{other.shape[0]}] to have the same number of elements")
    return matmul(input, other)


FUNCTIONS = {f.__name__: f for f in (
    cat, stack, hstack, vstack, gather, scatter, scatter_add, index_select, flip, fliplr, flipud, roll, tril,
    triu, clone, nonzero, argwhere, masked_select, matmul, mm, bmm, mv, dot)}
FUNCTIONS.update(concat=cat, concatenate=cat)
METHODS = {f.__name__: f for f in (repeat, scatter_, scatter_add_, tril_, triu_, contiguous, copy_, fill_, zero_)}
