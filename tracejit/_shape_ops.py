"""Views and shape changes: view, reshape, permute, transpose, expand, squeeze, unsqueeze,
flatten, unflatten, narrow, select, split, chunk, unbind, as_strided.

Each normalizes its arguments (negative dims, -1 sizes) the way PyTorch does, so the op
attributes recorded by dispatch are canonical, and reports bad arguments PyTorch's way.

    >>> import tracejit as tj
    >>> tj.arange(6).view(2, -1).shape
    tracejit.Size([2, 3])
"""

from __future__ import annotations

from . import ops
from ._tensor import Tensor, dispatch, wrap_dim
from .ops.movement import view_strides
from .ops.rules import fmt_shape

_VIEW, _RESHAPE, _PERMUTE = ops.get("tj::view"), ops.get("tj::reshape"), ops.get("tj::permute")
_EXPAND, _UNSQUEEZE, _SQUEEZE = ops.get("tj::expand"), ops.get("tj::unsqueeze"), ops.get("tj::squeeze")
_SLICE, _SELECT, _AS_STRIDED = ops.get("tj::slice"), ops.get("tj::select"), ops.get("tj::as_strided")


def _sizes(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    out = []
    for a in args:
        if isinstance(a, Tensor):
            a = int(a)
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"sizes must be ints, got {a!r} of type {type(a).__name__}")
        out.append(int(a))
    return tuple(out)


def infer_size(shape, numel):
    """Resolve one -1 in `shape` against `numel` elements, with PyTorch's error messages."""
    neg = [i for i, d in enumerate(shape) if d == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred (more than one -1 in the shape)")
    for d in shape:
        if d < -1:
            raise RuntimeError(f"invalid shape dimension {d} in {fmt_shape(shape)}")
    known = 1
    for d in shape:
        if d != -1:
            known *= d
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape {fmt_shape(shape)} is invalid for input of size {numel}")
        shape = shape[: neg[0]] + (numel // known,) + shape[neg[0] + 1 :]
    elif known != numel:
        raise RuntimeError(f"shape {fmt_shape(shape)} is invalid for input of size {numel}")
    return shape


def view(self, *shape):
    """A view with a new shape; fails (suggesting reshape) when the strides do not allow one."""
    shape = infer_size(_sizes(shape), self.numel())
    if not self._data.flags.c_contiguous and view_strides(self._data.shape, self.stride(), shape) is None:
        raise RuntimeError(
            f"view size is not compatible with input tensor's size and stride (input shape "
            f"{fmt_shape(self._data.shape)}, stride {fmt_shape(self.stride())}, requested "
            f"{fmt_shape(shape)}): at least one dimension spans across two contiguous subspaces. "
            "Use .reshape(...) instead."
        )
    return dispatch(_VIEW, (self,), {"shape_attr": shape})


def reshape(self, *shape):
    """A view when the strides allow one, otherwise a contiguous copy (as in PyTorch)."""
    shape = infer_size(_sizes(shape), self.numel())
    if self._data.flags.c_contiguous or view_strides(self._data.shape, self.stride(), shape) is not None:
        return dispatch(_VIEW, (self,), {"shape_attr": shape})
    return dispatch(_RESHAPE, (self,), {"shape_attr": shape})


def view_as(self, other):
    return view(self, other.shape)


def reshape_as(self, other):
    return reshape(self, other.shape)


def permute(self, *dims):
    dims = _sizes(dims)
    n = self.ndim
    if len(dims) != n:
        raise RuntimeError(f"permute: number of dims don't match (tensor has {n} dims, got {len(dims)}: {dims})")
    norm = tuple(wrap_dim(d, n) for d in dims)
    if len(set(norm)) != n:
        raise RuntimeError(f"permute: repeated dim in {dims}")
    return dispatch(_PERMUTE, (self,), {"dims": norm})


def transpose(self, dim0, dim1):
    n = self.ndim
    if n == 0:
        wrap_dim(dim0, 0), wrap_dim(dim1, 0)
        return dispatch(_PERMUTE, (self,), {"dims": ()})
    d0, d1 = wrap_dim(dim0, n), wrap_dim(dim1, n)
    dims = list(range(n))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return dispatch(_PERMUTE, (self,), {"dims": tuple(dims)})


swapaxes = swapdims = transpose


def t(self):
    if self.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
    return transpose(self, 0, 1) if self.ndim == 2 else transpose(self, 0, 0)


def movedim(self, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    n = self.ndim
    src, dst = [wrap_dim(s, n) for s in src], [wrap_dim(d, n) for d in dst]
    if n == 0:  # dims 0 and -1 name the one "dim" of a 0-d tensor
        return permute(self)
    rest = [d for d in range(n) if d not in src]
    order = [None] * n
    for s, d in zip(src, dst):
        order[d] = s
    it = iter(rest)
    return permute(self, *[o if o is not None else next(it) for o in order])


def expand(self, *sizes):
    sizes = _sizes(sizes)
    shape = self._data.shape
    if len(sizes) < len(shape):
        raise RuntimeError(f"expand({fmt_shape(sizes)}): the number of sizes provided ({len(sizes)}) must be "
                           f"greater or equal to the number of dimensions in the tensor ({len(shape)})")
    lead = len(sizes) - len(shape)
    full = []
    for i, s in enumerate(sizes):
        if s == -1:
            if i < lead:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension {i}")
            s = shape[i - lead]
        full.append(s)
    return dispatch(_EXPAND, (self,), {"size": tuple(full)})


def expand_as(self, other):
    return expand(self, other.shape)


def broadcast_to(self, shape):
    return expand(self, shape)


def unsqueeze(self, dim):
    return dispatch(_UNSQUEEZE, (self,), {"dim": wrap_dim(dim, self.ndim + 1)})


def squeeze(self, dim=None):
    shape = self._data.shape
    if dim is None:
        dims = tuple(i for i, d in enumerate(shape) if d == 1)
    else:
        dl = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = tuple(sorted(d for d in {wrap_dim(d, len(shape)) for d in dl} if shape and shape[d] == 1))
    return dispatch(_SQUEEZE, (self,), {"dims": dims})


def flatten(self, start_dim=0, end_dim=-1):
    n = self.ndim
    if n == 0:
        return reshape(self, 1)
    s, e = wrap_dim(start_dim, n), wrap_dim(end_dim, n)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:  # nothing to flatten: PyTorch returns the tensor itself
        return self
    shape = self._data.shape
    mid = 1
    for d in shape[s : e + 1]:
        mid *= d
    return reshape(self, shape[:s] + (mid,) + shape[e + 1 :])


def ravel(self):
    return reshape(self, -1)


def unflatten(self, dim, sizes):
    d = wrap_dim(dim, self.ndim)
    sizes = tuple(sizes)
    shape = self._data.shape
    inner = infer_size(sizes, shape[d])
    return view(self, shape[:d] + inner + shape[d + 1 :]) if self.is_contiguous() else \
        reshape(self, shape[:d] + inner + shape[d + 1 :])


def narrow(self, dim, start, length):
    d = wrap_dim(dim, self.ndim)
    size = self._data.shape[d]
    if isinstance(start, Tensor):
        start = int(start)
    if not -size <= start <= size:
        raise IndexError(f"narrow: start ({start}) is out of bounds for dimension {d} with size {size}")
    start = start % size if start < 0 else start
    if length < 0 or start + length > size:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return slice_dim(self, d, start, start + length, 1)


def slice_dim(self, dim, start, end, step):
    """Slice `dim` with Python's clamping of start/end (`x[a:b:c]` along one dim)."""
    if step <= 0:
        raise ValueError("step must be greater than zero (negative slice steps are not supported; use flip)")
    size = self._data.shape[dim]
    start, end, _ = slice(start, end).indices(size)
    end = max(end, start)
    return dispatch(_SLICE, (self,), {"dim": dim, "start": start, "end": end, "step": step})


def select(self, dim, index):
    if self.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, self.ndim)
    size = self._data.shape[d]
    index = int(index)
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of bounds for dimension {d} with size {size}")
    return dispatch(_SELECT, (self,), {"dim": d, "index": index % size})


def split(self, split_size_or_sections, dim=0):
    d = wrap_dim(dim, self.ndim)
    size = self._data.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0 and size:
            raise RuntimeError(f"split expects split_size be positive, but got split_size={step}")
        bounds = [(i, min(i + step, size)) for i in range(0, size, step)] if size else [(0, 0)]
    else:
        sections = list(split_size_or_sections)
        if sum(sections) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                               f"size at dimension {d}), but got split_sizes={sections}")
        bounds, at = [], 0
        for s in sections:
            bounds.append((at, at + s))
            at += s
    return tuple(dispatch(_SLICE, (self,), {"dim": d, "start": a, "end": b, "step": 1}) for a, b in bounds)


def chunk(self, chunks, dim=0):
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = self._data.shape[wrap_dim(dim, self.ndim)]
    step = -(-size // chunks) if size else 1
    return split(self, step, dim)


def tensor_split(self, sections, dim=0):
    d = wrap_dim(dim, self.ndim)
    size = self._data.shape[d]
    base, extra = divmod(size, sections)
    return split(self, [base + 1] * extra + [base] * (sections - extra), d)


def unbind(self, dim=0):
    d = wrap_dim(dim, self.ndim)
    return tuple(dispatch(_SELECT, (self,), {"dim": d, "index": i}) for i in range(self._data.shape[d]))


def as_strided(self, size, stride, storage_offset=None):
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride):
        raise RuntimeError(f"as_strided: mismatch in length of strides and shape ({len(stride)} vs {len(size)})")
    off = self.storage_offset() if storage_offset is None else storage_offset
    need = off + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
    have = self.storage().size()
    if need > have:
        raise RuntimeError(f"as_strided: setStorage: sizes {list(size)}, strides {list(stride)}, storage offset "
                           f"{off} require {need} elements but the storage has {have}")
    return dispatch(_AS_STRIDED, (self,), {"size": size, "stride": stride, "storage_offset": off})


METHODS = [view, reshape, view_as, reshape_as, permute, transpose, swapaxes, swapdims, t, movedim, expand,
           expand_as, unsqueeze, squeeze, flatten, ravel, unflatten, narrow, select, split, chunk, tensor_split,
           unbind, as_strided, broadcast_to]
FUNCTIONS = [reshape, permute, transpose, swapaxes, swapdims, t, movedim, unsqueeze, squeeze, flatten, ravel,
             unflatten, narrow, select, split, chunk, tensor_split, unbind, as_strided, broadcast_to]


def _T(self):
    return permute(self, *reversed(range(self.ndim)))


def _mT(self):
    return transpose(self, -2, -1)


Tensor.T = property(_T)
Tensor.mT = property(_mT)
