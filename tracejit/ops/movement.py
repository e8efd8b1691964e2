"""Views (which alias their input) and data-movement ops (which copy).

A view's reference implementation returns a numpy/cupy view; its `view_strides` rule gives the
strides PyTorch reports for it, which can differ from numpy's in size-1 dims. The front end
normalizes every dim, size and index attribute before dispatch.
"""

from __future__ import annotations

import numpy as np

from . import rules as R
from .registry import ShapeError, register


def storage_root(arr):
    """The array that owns `arr`'s memory, followed through numpy's `.base` chain (cupy's `.base` is the owner)."""
    root = arr
    b = arr.base
    while b is not None:
        if hasattr(b, "strides") and hasattr(b, "dtype"):
            root, b = b, b.base
        else:  # numpy's as_strided wraps its source in a helper object with a `.base`
            b = getattr(b, "base", None)
    mem = None if isinstance(arr, np.ndarray) else getattr(arr.data, "mem", None)  # a cupy array's allocation
    if mem is not None and root.data.ptr != mem.ptr:
        return _allocation(arr, mem)
    if not root.flags.c_contiguous:
        return arr
    return root


def _allocation(arr, mem):
    """The whole cupy allocation `arr` lies in, as a 1-D array: cupy's as_strided (which restrided views
    use) gives views without a `.base`, so for them only the memory pointer knows where the storage starts."""
    return type(arr)((mem.size // arr.itemsize,), arr.dtype, memptr=type(arr.data)(mem, 0))


# ---- view stride rules (PyTorch's) --------------------------------------------------------


def view_strides(old_shape, old_strides, shape):
    """PyTorch's `computeStride`: strides for viewing (shape, strides) as `shape`, or None."""
    if not old_shape:  # a 0-d tensor views as any all-ones shape
        return (1,) * len(shape)
    if R.numel(old_shape) == 0:
        return tuple(old_strides) if tuple(old_shape) == tuple(shape) else R.contiguous_strides(shape)
    new = [0] * len(shape)
    view_d = len(shape) - 1
    chunk_base_stride = old_strides[-1] if old_strides else 1
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[tensor_d]
        if tensor_d == 0 or (
            old_shape[tensor_d - 1] != 1 and old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride
        ):
            while view_d >= 0 and (view_numel < tensor_numel or shape[view_d] == 1):
                new[view_d] = view_numel * chunk_base_stride
                view_numel *= shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = old_strides[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return tuple(new)


def _view_rule(shape, strides, shape_attr=None, **_):
    return view_strides(shape, strides, shape_attr)


def _expand_strides(shape, strides, size=()):
    out = [0] * len(size)
    if not shape:  # PyTorch gives an expanded 0-d tensor all-zero strides, even in size-1 dims
        return tuple(out)
    for i in range(len(size) - 1, -1, -1):
        d = i - (len(size) - len(shape))
        if d >= 0:
            sz, st = shape[d], strides[d]
        else:
            sz, st = 1, (size[i + 1] * out[i + 1] if i + 1 < len(size) else 1)
        if sz != size[i]:
            st = 0
        out[i] = st
    return tuple(out)


def _unsqueeze_strides(shape, strides, dim=0):
    st = shape[dim] * strides[dim] if dim < len(shape) else 1
    return tuple(strides[:dim]) + (st,) + tuple(strides[dim:])


# ---- views ---------------------------------------------------------------------------------


def _view_shape(shapes, shape_attr=None, **_):
    """The target shape; one -1 takes what is left. With a symbolic input (traced with dynamic dims) the
    -1 stands for the input's one symbol when the other dims account for all its concrete sizes."""
    shape, target = tuple(shapes[0]), tuple(shape_attr)
    symbols = [d for d in shape if isinstance(d, str)]
    holes = [j for j, d in enumerate(target) if d == -1]
    if len(holes) > 1:
        raise ShapeError(f"only one dimension can be inferred; got shape {R.fmt_shape(target)}")
    rest = R.numel([d for d in target if d != -1])
    if symbols:
        fixed = R.numel([d for d in shape if not isinstance(d, str)])
        if len(symbols) == 1 and holes and rest == fixed:
            return target[:holes[0]] + (symbols[0],) + target[holes[0] + 1:]
        if sorted(d for d in target if isinstance(d, str)) == sorted(symbols) and rest == fixed:
            return target
        raise ShapeError(f"shape {R.fmt_shape(target)} cannot be checked against symbolic input {R.fmt_shape(shape)}")
    total = R.numel(shape)
    if holes:
        if rest == 0 or total % rest:
            raise ShapeError(f"shape {R.fmt_shape(target)} is invalid for input of size {total}")
        return target[:holes[0]] + (total // rest,) + target[holes[0] + 1:]
    if total != rest:
        raise ShapeError(f"shape {R.fmt_shape(target)} is invalid for input of size {total}")
    return target


register("tj::view", ("self",), lambda xp, x, shape_attr: x.reshape(shape_attr), _view_shape, R.same,
         kind="view", attrs={"shape_attr": ()}, view_strides=_view_rule, extra={"numpy_strides": "contiguous"})
register("tj::reshape", ("self",), lambda xp, x, shape_attr: xp.ascontiguousarray(x).reshape(shape_attr),
         _view_shape, R.same, kind="movement", attrs={"shape_attr": ()})
register("tj::permute", ("self",), lambda xp, x, dims: x.transpose(dims),
         lambda shapes, dims: tuple(shapes[0][d] for d in dims), R.same, kind="view", attrs={"dims": ()},
         view_strides=lambda shape, strides, dims: tuple(strides[d] for d in dims), extra={"numpy_strides": "always"})


def _expand_shape(shapes, size=()):
    shape = shapes[0]
    if len(size) < len(shape):
        raise ShapeError(f"expand: the number of sizes provided ({len(size)}) must be greater or equal to "
                         f"the number of dimensions in the tensor ({len(shape)})")
    for i, d in enumerate(shape):
        want = size[len(size) - len(shape) + i]
        if d != want and d != 1:
            raise ShapeError(f"the expanded size of the tensor ({want}) must match the existing size ({d}) at "
                             f"non-singleton dimension {len(size) - len(shape) + i}. Target sizes: "
                             f"{R.fmt_shape(size)}. Tensor sizes: {R.fmt_shape(shape)}")
    return tuple(size)


register("tj::expand", ("self",), lambda xp, x, size: xp.broadcast_to(x, size), _expand_shape, R.same,
         kind="view", attrs={"size": ()}, view_strides=_expand_strides)
register("tj::unsqueeze", ("self",), lambda xp, x, dim: xp.expand_dims(x, dim),
         lambda shapes, dim: tuple(shapes[0][:dim]) + (1,) + tuple(shapes[0][dim:]), R.same, kind="view",
         attrs={"dim": 0}, view_strides=_unsqueeze_strides)
register("tj::squeeze", ("self",), lambda xp, x, dims: x.squeeze(dims) if dims else x[...],
         lambda shapes, dims: tuple(d for i, d in enumerate(shapes[0]) if i not in dims), R.same, kind="view",
         attrs={"dims": ()},
         view_strides=lambda shape, strides, dims: tuple(s for i, s in enumerate(strides) if i not in dims),
         extra={"numpy_strides": "always"})


def _slice_shape(shapes, dim, start, end, step):
    # start/end are Python's: negative counts from the end, and both clamp to the size (scripted graphs
    # keep them so for dims whose size is known only at run time; eager slicing passes them normalized).
    s = list(shapes[0])
    n = s[dim]
    if not isinstance(n, int):  # a size expression: tracing keeps the example's, scripting a fresh symbol
        s[dim] = f"{n}[{start}:{end}:{step}]"
        return tuple(s)
    start, end, _ = slice(start, end, step).indices(n)
    s[dim] = max(0, (end - start + step - 1) // step)
    return tuple(s)


class _At:
    """`base`'s memory presented at another address, for numpy to view (see `_empty_at`)."""

    def __init__(self, base, ptr, shape, strides):
        self.base = base  # keeps the memory alive; storage_root follows it
        self.__array_interface__ = {"data": (ptr, False), "shape": shape, "strides": strides,
                                    "typestr": base.dtype.str, "version": 3}


def _empty_at(xp, x, out, nbytes):
    """`out`, a view of `x`, starting `nbytes` past `x`'s data as PyTorch's storage offset says:
    numpy moves the data pointer of a zero-size view back to its base's."""
    if out.size or xp.__name__ != "numpy":
        return out
    ptr = x.__array_interface__["data"][0] + nbytes
    if out.__array_interface__["data"][0] == ptr:
        return out
    return xp.asarray(_At(x, ptr, out.shape, out.strides))


def _slice(xp, x, dim, start, end, step):
    start, end, _ = slice(start, end, step).indices(x.shape[dim])
    end = max(end, start)
    return _empty_at(xp, x, x[(slice(None),) * dim + (slice(start, end, step), Ellipsis)], start * x.strides[dim])


def _select(xp, x, dim, index):
    if not -x.shape[dim] <= index < x.shape[dim]:
        raise IndexError(f"index {index} is out of bounds for dimension {dim} with size {x.shape[dim]}")
    index %= x.shape[dim]
    return _empty_at(xp, x, x[(slice(None),) * dim + (index, Ellipsis)], index * x.strides[dim])


register("tj::slice", ("self",), _slice, _slice_shape, R.same, kind="view",
         attrs={"dim": 0, "start": 0, "end": 0, "step": 1},
         view_strides=lambda shape, strides, dim, step, **_: tuple(
             s * step if i == dim else s for i, s in enumerate(strides)), extra={"numpy_strides": "always"})
register("tj::select", ("self",), _select,
         lambda shapes, dim, index: tuple(d for i, d in enumerate(shapes[0]) if i != dim), R.same, kind="view",
         attrs={"dim": 0, "index": 0},
         view_strides=lambda shape, strides, dim, **_: tuple(s for i, s in enumerate(strides) if i != dim),
         extra={"numpy_strides": "always"})


def _as_strided(xp, x, size, stride, storage_offset):
    root = storage_root(x).reshape(-1)
    if root.dtype != x.dtype:
        root = root.view(x.dtype)
    item = x.itemsize
    out = xp.lib.stride_tricks.as_strided(root[storage_offset:], size, tuple(s * item for s in stride))
    return _empty_at(xp, root, out, storage_offset * item)


register("tj::as_strided", ("self",), _as_strided, lambda shapes, size, **_: tuple(size), R.same, kind="view",
         attrs={"size": (), "stride": (), "storage_offset": 0},
         view_strides=lambda shape, strides, stride, **_: tuple(stride))

# ---- copies --------------------------------------------------------------------------------


def _add_dims(a, b):
    """Sum of two dims; with a symbol the result is the symbolic expression ('N+3')."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0:
        return b
    return f"{a}+{b}"


def _cat_shape(shapes, dim=0):
    shapes = [s for s in shapes[0] if not (len(s) == 1 and s[0] == 0)]  # legacy: 1-D empties are skipped
    if not shapes:
        return (0,)
    first = shapes[0]
    total = 0
    for s in shapes:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != dim):
            raise ShapeError(f"cat: sizes of tensors must match except in dimension {dim}; got "
                             f"{R.fmt_shape(first)} and {R.fmt_shape(s)}")
        total = _add_dims(total, s[dim])
    return tuple(first[:dim]) + (total,) + tuple(first[dim + 1:])


def _cat(xp, xs, dim=0):
    xs = [x for x in xs if not (x.ndim == 1 and x.shape[0] == 0)] or xs[:1]
    return xp.concatenate(xs, axis=dim)


def _stack_shape(shapes, dim=0):
    first = shapes[0][0]
    for s in shapes[0]:
        if tuple(s) != tuple(first):
            raise ShapeError(f"stack expects each tensor to be equal size, but got {R.fmt_shape(first)} and "
                             f"{R.fmt_shape(s)}")
    return tuple(first[:dim]) + (len(shapes[0]),) + tuple(first[dim:])


def _list_promote(args, attrs):
    r = R.result_type(list(args[0]))
    return r, r


register("tj::cat", ("tensors[]",), _cat, _cat_shape, _list_promote, kind="movement", attrs={"dim": 0},
         cast=(0,))
register("tj::stack", ("tensors[]",), lambda xp, xs, dim=0: xp.stack(xs, axis=dim), _stack_shape, _list_promote,
         kind="movement", attrs={"dim": 0}, cast=(0,))


def _gather_shape(shapes, dim):
    s, idx = shapes
    if len(s) != len(idx):
        raise ShapeError(f"gather: index tensor must have the same number of dimensions as input "
                         f"({len(idx)} vs {len(s)})")
    for d, (n, m) in enumerate(zip(s, idx)):
        if d != dim and isinstance(n, int) and isinstance(m, int) and m > n:
            raise ShapeError(f"gather: size of index {R.fmt_shape(idx)} does not fit input {R.fmt_shape(s)} at "
                             f"dimension {d} (index may be smaller than the input outside dim {dim}, not larger)")
    return tuple(idx)


def _check_index_range(xp, idx, size, what):
    # PyTorch refuses negative indices here (numpy would wrap them around).
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
        bad = int(idx.max()) if int(idx.max()) >= size else int(idx.min())
        raise IndexError(f"{what}: index {bad} is out of bounds for dimension with size {size}")


def _gather(xp, x, index, dim):
    _check_index_range(xp, index, x.shape[dim], "gather")
    # An index smaller than the input outside `dim` reads the leading part of those dims (PyTorch's rule).
    x = x[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))]
    return xp.take_along_axis(x, index, axis=dim)


def _scatter_src(xp, x, index, src, dim, reduce=None):
    _check_index_range(xp, index, x.shape[dim], "scatter")
    out = x.copy()
    src = xp.broadcast_to(xp.asarray(src, dtype=x.dtype), index.shape) if not hasattr(src, "shape") or \
        src.shape == () else src[tuple(slice(0, n) for n in index.shape)]
    # an open grid of positions (numpy's indices(sparse=True), which cupy lacks)
    idx = [xp.arange(n).reshape((1,) * d + (n,) + (1,) * (index.ndim - d - 1)) for d, n in enumerate(index.shape)]
    idx[dim] = index
    if reduce is None:
        out[tuple(idx)] = src
    elif reduce in ("add", "multiply"):
        ufunc_at(xp, reduce, out, tuple(idx), src)
    else:
        raise ValueError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    return out


def ufunc_at(xp, name, out, key, values):
    """`xp.<name>.at(out, key, values)`: accumulate at repeated indices. cupy's runs on CUDA atomics, which
    exist for add (not multiply) and not for every dtype (no int64, int8, int16, uint8 or bool); those go
    through host memory instead."""
    try:
        getattr(xp, name).at(out, key, values)
    except (TypeError, NotImplementedError):
        if xp is np:
            raise
        host = xp.asnumpy(out)
        np_key = tuple(xp.asnumpy(k) if hasattr(k, "dtype") else k for k in key)
        getattr(np, name).at(host, np_key, xp.asnumpy(values) if hasattr(values, "dtype") else values)
        out[...] = xp.asarray(host)


register("tj::gather", ("self", "index"), _gather, _gather_shape, R.same, kind="indexing", attrs={"dim": 0})
register("tj::scatter", ("self", "index", "src"), _scatter_src, lambda shapes, **_: tuple(shapes[0]), R.same,
         kind="indexing", attrs={"dim": 0, "reduce": None})


def _index_select(xp, x, index, dim):
    _check_index_range(xp, index, x.shape[dim], "index_select")
    return xp.take(x, index, axis=dim)


register("tj::index_select", ("self", "index"), _index_select,
         lambda shapes, dim: tuple(shapes[0][:dim]) + tuple(shapes[1]) + tuple(shapes[0][dim + 1:]), R.same,
         kind="indexing", attrs={"dim": 0})


def _repeat_shape(shapes, repeats):
    s = shapes[0]
    if len(repeats) < len(s):
        raise ShapeError(f"number of dimensions of repeat dims ({len(repeats)}) can not be smaller than number "
                         f"of dimensions of tensor ({len(s)})")
    s = (1,) * (len(repeats) - len(s)) + tuple(s)
    return tuple(a * b for a, b in zip(s, repeats))


register("tj::repeat", ("self",), lambda xp, x, repeats: xp.tile(x, repeats), _repeat_shape, R.same,
         kind="movement", attrs={"repeats": ()})
register("tj::flip", ("self",), lambda xp, x, dims: xp.flip(x, dims).copy(), R.first_shape, R.same,
         kind="movement", attrs={"dims": ()})


def _roll(xp, x, shifts, dims):
    if not dims:
        return xp.roll(x.reshape(-1), shifts).reshape(x.shape)
    return xp.roll(x, shifts, axis=dims)


register("tj::roll", ("self",), _roll, R.first_shape, R.same, kind="movement", attrs={"shifts": (), "dims": ()})
register("tj::tril", ("self",), lambda xp, x, diagonal=0: xp.tril(x, diagonal), R.first_shape, R.same,
         kind="movement", attrs={"diagonal": 0})
register("tj::triu", ("self",), lambda xp, x, diagonal=0: xp.triu(x, diagonal), R.first_shape, R.same,
         kind="movement", attrs={"diagonal": 0})

# ---- advanced indexing ---------------------------------------------------------------------


def _index_key(indices):
    return tuple(slice(None) if i is None else i for i in indices)


def _check_bounds(x, indices):
    """Raise numpy's IndexError for an out-of-range integer index: cupy's kernels wrap it around instead."""
    d = 0
    for i in indices:
        if i is not None and i.dtype.kind == "b":
            d += i.ndim
            continue
        if i is not None and i.size:
            lo, hi, n = int(i.min()), int(i.max()), x.shape[d]
            if lo < -n or hi >= n:
                raise IndexError(f"index {hi if hi >= n else lo} is out of bounds for axis {d} with size {n}")
        d += 1


def _index(xp, x, indices):
    if xp is not np:
        _check_bounds(x, indices)
    out = x[_index_key(indices)]
    # numpy lays out x[:, i, j] with the indexed dims first in memory, and leaves odd strides in
    # size-1 dims; PyTorch's result is contiguous, with its strides
    want = tuple(s * out.itemsize for s in R.contiguous_strides(out.shape))
    if out.strides == want:
        return out
    if out.flags.c_contiguous:
        return xp.lib.stride_tricks.as_strided(out, out.shape, want)
    return xp.ascontiguousarray(out)


def _index_shape(shapes, **_):
    # The result shape depends on index values (bool masks); the IR records it from the trace.
    raise ShapeError("the shape of tj::index depends on the index values; it is taken from the example")


def _index_put(xp, x, indices, values, accumulate=False):
    out = x.copy()
    _index_put_(xp, out, indices, values, accumulate)
    return out


def _index_put_(xp, out, indices, values, accumulate=False):
    if xp is not np:
        _check_bounds(out, indices)
    key = _index_key(indices)
    try:
        if accumulate:
            ufunc_at(xp, "add", out, key, values)
        else:
            out[key] = values
    except ValueError as e:
        raise _broadcast_error(e) from None
    return out


def _broadcast_error(e):
    """numpy's ValueError for a value of the wrong shape as PyTorch's RuntimeError (a ShapeError)."""
    return ShapeError(str(e)) if "broadcast" in str(e) else e


register("tj::index", ("self", "indices[]"), _index, _index_shape, R.same, kind="indexing")
register("tj::index_put", ("self", "indices[]", "values"), _index_put, lambda shapes, **_: tuple(shapes[0]),
         R.same, kind="indexing", attrs={"accumulate": False}, inplace_impl=_index_put_)


def _copy_(xp, out, src):
    try:
        out[...] = src
    except ValueError as e:
        raise _broadcast_error(e) from None
    return out


register("tj::copy", ("self", "src"), lambda xp, x, src: xp.broadcast_to(src, x.shape).astype(x.dtype),
         lambda shapes, **_: tuple(shapes[0]), R.same, kind="movement", inplace_impl=_copy_)


def _nonzero(xp, x):
    return xp.stack(xp.nonzero(x), axis=1).astype(xp.int64) if x.ndim else xp.zeros((int(bool(x)), 0), xp.int64)


register("tj::nonzero", ("self",), _nonzero, _index_shape, R.index_out, kind="indexing")
