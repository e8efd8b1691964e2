"""The one dispatch function every eager op goes through, and the helpers around it.

`dispatch(op, args, attrs, out=None)` applies the op's dtype rule, casts inputs, picks numpy
or cupy, runs the reference implementation, wraps the result (linking views to their base
with PyTorch's strides), records autograd history, and for `out=` writes in place. Tensor's
operators come through `_binary` / `_rbinary` / `_inplace`, which also elide temporaries.
Import these names from `tracejit._tensor`, which re-exports them.
"""

from __future__ import annotations

from sys import getrefcount

import numpy as np

from . import dtypes as D
from . import ops
from ._tensor import _EMPTY, _NUMBER, Tensor, _ptr
from .autograd.engine import record as _record
from .autograd.grad_mode import _state as _GRAD
from .devices import array_module, as_device, device_of
from .ops.movement import _At, storage_root
from .ops.registry import ShapeError
from .ops.rules import contiguous_strides

_FROM_NP = D.FROM_NP
_SMALL = ops.parallel.MIN_PARALLEL  # below it an elementwise ufunc runs on the calling thread
_ndarray = np.ndarray
_HALF = np.dtype(np.float16)
_generic = np.generic

# ---- creating tensors from arrays ---------------------------------------------------------

_new = object.__new__


def _init(t, arr):
    t._data = arr
    t.dtype = D.from_numpy_dtype(arr.dtype)
    t._base = None
    t._ver = 0
    t.requires_grad = False
    t.grad = None
    t.grad_fn = None
    t._out_index = 0
    t._view_of = None
    t._grad_hooks = None


def _wrap(arr):
    """A fresh Tensor over `arr` (no copy)."""
    if arr.__class__ is not _ndarray and isinstance(arr, _generic):
        arr = np.asarray(arr)
    elif not arr.size:  # numpy gives zero-size arrays all-zero strides; PyTorch's are contiguous ones
        arr = _restride(arr, contiguous_strides(arr.shape))
    t = _new(Tensor)
    t._data = arr
    t.dtype = _FROM_NP[arr.dtype]
    t._base = None
    t._ver = 0
    t.requires_grad = False
    t.grad = None
    t.grad_fn = None
    t._out_index = 0
    t._view_of = None
    t._grad_hooks = None
    return t


def _restride(arr, strides):
    xp = array_module(arr)
    item = arr.itemsize
    return xp.lib.stride_tricks.as_strided(arr, arr.shape, tuple(s * item for s in strides))


# ---- dispatch -----------------------------------------------------------------------------


def dispatch(op, args, attrs=_EMPTY, out=None):
    """Run `op` on `args` (Tensors, lists of Tensors, Python numbers, None) with `attrs`.

    With `out`, the result is written into that tensor (the in-place form, e.g. `add_`).

        >>> import tracejit as tj
        >>> from tracejit import ops
        >>> dispatch(ops.get("tj::add"), (tj.ones(2), 1.5)).tolist()
        [2.5, 2.5]
    """
    compute, out_dtype = op.dtype_rule(args, attrs)
    want = compute.np if compute is not None else None
    cast = op.cast
    xp = np
    arrays = []
    grad = False
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            if a.requires_grad:
                grad = True
            arr = a._data
            if arr.__class__ is not _ndarray and xp is np:  # the first GPU array: the op runs on its GPU
                xp = array_module(arr)
                if arr.device.id != xp.cuda.runtime.getDevice():
                    return _on_device(xp, arr.device.id, op, args, attrs, out)
            if want is not None and arr.dtype is not want and i in cast and arr.dtype != want:
                if arr.ndim == 0 and want == _HALF and arr.dtype.kind == "f" and i in getattr(op.impl, "opmath", ()):
                    arr = float(arr)  # PyTorch's mul/div read a 0-dim float operand at its own precision
                else:
                    arr = arr.astype(want)
            arrays.append(arr)
        elif isinstance(a, (list, tuple)) and a and not isinstance(a[0], _NUMBER):
            lst = []
            for t in a:
                if t is None:
                    lst.append(None)
                    continue
                if t.requires_grad:
                    grad = True
                arr = t._data
                if arr.__class__ is not _ndarray and xp is np:
                    xp = array_module(arr)
                    if arr.device.id != xp.cuda.runtime.getDevice():
                        return _on_device(xp, arr.device.id, op, args, attrs, out)
                if want is not None and i in cast and arr.dtype != want:
                    arr = arr.astype(want)
                lst.append(arr)
            arrays.append(lst)
        else:
            arrays.append(a)
    if xp is not np:
        arrays = _same_device(op, arrays, xp)
    elif not op.inputs and attrs.get("device") is not None:
        dev = as_device(attrs["device"])
        if dev.type != "cpu":
            from .devices import module_for

            xp = module_for(dev)
            if (dev.index or 0) != xp.cuda.runtime.getDevice():
                return _on_device(xp, dev.index or 0, op, args, attrs, out)
    grad = grad and _GRAD["enabled"]
    if _TRACE["tracer"] is not None:
        return _traced(op, args, attrs, out)
    try:
        if out is not None:
            if grad or (out.requires_grad and _GRAD["enabled"]):
                from .autograd.inplace import inplace_with_grad

                return inplace_with_grad(op, out, args, attrs)
            return _write_into(op, out, xp, arrays, attrs, out_dtype)
        uf = op.ufunc
        if (uf is not None and xp is np and not attrs and len(arrays) == 2 and arrays[0].__class__ is _ndarray
                and arrays[1].__class__ is _ndarray and arrays[0].size < _SMALL and arrays[1].size < _SMALL):
            res = uf(arrays[0], arrays[1])  # the op is exactly this ufunc here; skip the impl's wrappers
        else:
            res = op.impl(xp, *arrays, **attrs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError) as e:
        raise _explain(op, args, attrs, e) from None
    if op.num_outputs != 1:
        outs = tuple(_wrap(r) for r in res)
        if grad and any(o._data.dtype.kind == "f" for o in outs):
            _record(op, args, attrs, outs, _detached)
        return outs
    if out_dtype is not compute and out_dtype is not None and res.dtype != out_dtype.np:
        res = res.astype(out_dtype.np)
    t = _wrap(res)
    if op.kind == "view":
        _make_view(op, t, args[0], attrs)
    if grad and res.dtype.kind == "f":
        _record(op, args, attrs, (t,), _detached)
    return t


def _on_device(xp, index, op, args, attrs, out):
    """Dispatch with GPU `index` current: cupy allocates results and runs kernels on its current device."""
    with xp.cuda.Device(index):
        return dispatch(op, args, attrs, out)


# The active tracer (tracejit.jit), or None: dispatch reports every op to it.
_TRACE = {"tracer": None}


def _traced(op, args, attrs, out):
    """Run the op with the tracer paused (nested dispatches are its implementation), then record it."""
    tracer = _TRACE["tracer"]
    if out is not None and out._base is not None and id(out._base) in tracer.values:
        from .jit.tracer import TracingError, source_line

        raise TracingError(f"in-place {op.name} on a view of a traced tensor at {source_line()} cannot be traced "
                           "yet; write it out of place (e.g. torch.where, torch.cat or index_put)")
    _TRACE["tracer"] = None
    try:
        result = dispatch(op, args, attrs, out)
    except Exception:
        # While scripting a path the example inputs do not take, the example's data may not suit an op
        # (x[2] of a 2-row example): the tracer then makes up a result of the right type to go on with.
        result = tracer.placeholder(op, args, attrs) if out is None else None
        if result is None:
            raise
    finally:
        _TRACE["tracer"] = tracer
    tracer.record(op, args, attrs, result, out)
    return result


def _detached(t):
    """A tensor sharing t's data, without history or a link back to t (no reference cycle via saved outputs)."""
    return _wrap(t._data)


def _make_view(op, t, src, attrs):
    base = src._base
    t._base = base if base is not None else src
    t._view_of = (src, op, attrs)
    # numpy's strides already are PyTorch's for these cases; checking costs more than the view itself.
    exact = op.extra.get("numpy_strides")
    if t._data.size and (exact == "always" or (
            exact == "contiguous" and src._data.flags.c_contiguous and 1 not in src._data.shape)):
        return
    want = op.view_strides(src._data.shape, src.stride(), **attrs)
    if want != t.stride():
        t._data = _restride(t._data, want)


def _write_into(op, out, xp, arrays, attrs, out_dtype):
    target = out._data
    if xp is not np and 0 in target.strides:  # cupy writes into broadcast views, where numpy's are read-only
        _check_overlap(op, target, arrays)
    try:
        if op.inplace_impl is not None:
            if op.kind == "elementwise" and out_dtype is not None and not D.can_cast(out_dtype, out.dtype):
                raise TypeError(f"result type {out_dtype} can't be cast to the desired output type {out.dtype} "
                                f"(in-place {op.name} on a {out.dtype} tensor)")
            op.inplace_impl(xp, target, *arrays[1:], **attrs)
        else:
            res = op.impl(xp, *arrays, **attrs)
            if out_dtype is not None and not D.can_cast(out_dtype, out.dtype):
                raise TypeError(f"result type {out_dtype} can't be cast to the desired output type {out.dtype} "
                                f"(in-place {op.name} on a {out.dtype} tensor)")
            if res.shape != target.shape and xp.broadcast_shapes(res.shape, target.shape) != target.shape:
                raise ShapeError(f"output with shape {list(target.shape)} doesn't match the broadcast shape "
                                 f"{list(res.shape)} (in-place {op.name})")
            target[...] = res
    except ValueError as e:
        if "read-only" not in str(e) or not _unexpand(op, out, arrays):
            raise
        return _write_into(op, out, xp, arrays, attrs, out_dtype)
    out._bump_version()
    return out


def _unexpand(op, out, arrays):
    """Make `out` writeable if numpy made it read-only only for being (a view of) an expanded tensor.

    As in PyTorch, elements that share one memory location may only be filled with one number."""
    arr = out._data
    root = storage_root(arr)
    if root is arr or not root.flags.writeable:  # read-only memory, not an expanded view
        return False
    _check_overlap(op, arr, arrays)
    out._data = np.asarray(_At(root, _ptr(arr), arr.shape, arr.strides))
    return True


def _check_overlap(op, arr, arrays):
    """Refuse to write into an expanded `arr` unless the op only fills it."""
    fill = (op.name == "tj::copy" and not hasattr(arrays[1], "shape")) or op.name == "tj::index_put"
    if not fill and any(st == 0 and n > 1 for n, st in zip(arr.shape, arr.strides)):
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                           "single memory location. Please clone() the tensor before performing the operation.")


def _same_device(op, arrays, xp):
    devs = set()
    for a in arrays:
        for arr in a if isinstance(a, list) else (a,):
            if hasattr(arr, "ndim") and not (type(arr) is _ndarray and arr.ndim == 0):
                devs.add(str(device_of(arr)))
    if len(devs) > 1:
        raise RuntimeError(f"{op.name}: expected all tensors to be on the same device, but found at least two "
                           f"devices: {', '.join(sorted(devs))}")

    def move(arr):  # a 0-dim CPU tensor may take part in a CUDA op, as in PyTorch
        return xp.asarray(arr) if type(arr) is _ndarray else arr

    return [[move(x) for x in a] if isinstance(a, list) else move(a) for a in arrays]


def _shape_of(a):
    if isinstance(a, Tensor):
        return tuple(a._data.shape)
    if isinstance(a, (list, tuple)) and a and not isinstance(a[0], _NUMBER):
        return [() if t is None else tuple(t._data.shape) for t in a]
    return ()


def _explain(op, args, attrs, err):
    """Turn a numpy error into one that names the op and the shapes or values at fault."""
    if isinstance(err, ValueError) and "read-only" in str(err):
        return RuntimeError(f"{op.name}: cannot write into this tensor: it is an expanded view (several elements "
                            "share one memory location) or read-only memory; .clone() it first")
    if not isinstance(err, (ShapeError, IndexError)):  # an IndexError is about index values, not shapes
        try:
            op.shape_rule([_shape_of(a) for a in args], **attrs)
        except ShapeError as e:
            return ShapeError(f"{op.name}: {e}")
        except Exception:  # the rule cannot judge these inputs; report the original error
            pass
    msg = str(err)
    if not msg.startswith(op.name):
        msg = f"{op.name}: {msg}"
    return type(err)(msg) if not isinstance(err, ShapeError) else ShapeError(msg)


# ---- operator helpers ---------------------------------------------------------------------

_ADD, _SUB, _MUL, _DIV = (ops.get(f"tj::{n}") for n in ("add", "sub", "mul", "div"))
_REM, _POW, _NEG, _ABS = (ops.get(f"tj::{n}") for n in ("remainder", "pow", "neg", "abs"))
_EQ, _NE, _LT, _LE, _GT, _GE = (ops.get(f"tj::{n}") for n in ("eq", "ne", "lt", "le", "gt", "ge"))
_AND, _OR, _XOR = (ops.get(f"tj::{n}") for n in ("bitwise_and", "bitwise_or", "bitwise_xor"))
_LNOT, _BNOT = ops.get("tj::logical_not"), ops.get("tj::bitwise_not")
_TO_DTYPE, _CLONE = ops.get("tj::to_dtype"), ops.get("tj::clone")
_FLOOR = {"rounding_mode": "floor"}
_FAST = {Tensor, int, float, bool}


def _operand(x):
    """Python numbers and Tensors pass through; numpy values become tracejit ones; others: None."""
    if x.__class__ in _FAST or isinstance(x, Tensor):
        return x
    if isinstance(x, _generic):
        return x.item()
    if isinstance(x, _ndarray):
        return _wrap(x)
    return None


def _binary(op, a, b, attrs=_EMPTY):
    if b.__class__ not in _FAST:
        b = _operand(b)
        if b is None:
            return NotImplemented
    if a._data.size >= _ELIDE_MIN and op in _ELIDE_OPS and getrefcount(a) <= _TEMP_REFS and _elidable(op, a, b):
        return dispatch(op, (a, b), attrs, out=a)
    return dispatch(op, (a, b), attrs)


# ---- temporary elision ----------------------------------------------------------------------
# In `a * b + c` the product is a temporary nobody else can see: numpy writes the sum into it
# instead of a new array, which saves a cold 4 MB write per op on large tensors. We do the same,
# under the same kind of proof: the tensor object is referenced only by the interpreter's stack
# (its reference count, calibrated below for this Python), its array only by the tensor, it is
# not a view, nothing records it for autograd, and the result has its dtype and shape.

_ELIDE_MIN = 1 << 17  # elements; small arrays gain nothing
_ELIDE_OPS = {_ADD, _SUB, _MUL, _DIV}


def _calibrate_temp_refs():
    """The reference count a temporary operand shows inside `_binary`; 0 disables elision."""

    def probe_binary(a):
        return getrefcount(a)

    class Probe:
        def __add__(self, other):
            return probe_binary(self)

    temp = Probe() + 1
    named = Probe()
    seen_named = named + 1
    return temp if seen_named > temp else 0


def _elidable(op, a, b):
    arr = a._data
    if (arr.__class__ is not _ndarray or a._base is not None or a.requires_grad or _GRAD_HOOKED(a)
            or arr.base is not None or not arr.flags.c_contiguous or not arr.flags.writeable
            or getrefcount(arr) > 3):  # held by: the tensor, `arr` here, getrefcount's argument
        return False
    if isinstance(b, Tensor):
        bshape = b._data.shape
        if b.requires_grad or (bshape != arr.shape and np.broadcast_shapes(bshape, arr.shape) != arr.shape):
            return False
    elif op is _DIV and a.dtype.category != D.FLOAT:
        return False
    return op.dtype_rule((a, b), _EMPTY)[1] is a.dtype


def _GRAD_HOOKED(t):
    return t.grad_fn is not None or t._grad_hooks is not None


_TEMP_REFS = _calibrate_temp_refs()


def _rbinary(op, a, b, attrs=_EMPTY):
    b = _operand(b)
    if b is None:
        return NotImplemented
    return dispatch(op, (b, a), attrs)


def _inplace(op, a, b, attrs=_EMPTY):
    b = _operand(b)
    if b is None:
        return NotImplemented
    return dispatch(op, (a, b), attrs, out=a)
