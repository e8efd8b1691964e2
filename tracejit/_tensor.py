"""The eager Tensor and the one dispatch function every op goes through.

A Tensor is a view (size, stride, storage offset) over a flat storage, held as a numpy (CPU)
or cupy (CUDA) array whose strides are the ones PyTorch would report. Ops never call numpy
behind `dispatch`'s back: that single point is where autograd and the tracer hook in.

    >>> import tracejit as tj
    >>> x = tj.arange(6.).view(2, 3)
    >>> x.t().stride()
    (1, 3)
"""

from __future__ import annotations

from sys import getrefcount

import numpy as np

from . import dtypes as D
from . import ops
from .autograd.engine import record as _record
from .autograd.grad_mode import _state as _GRAD
from .devices import CPU, array_module, as_device, device_of, to_device
from .ops.movement import _At, storage_root
from .ops.registry import ShapeError
from .ops.rules import contiguous_strides

_FROM_NP = D.FROM_NP
_ndarray = np.ndarray
_generic = np.generic
_NUMBER = (bool, int, float)
_EMPTY = {}
_LEGACY_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
                 "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


class Tensor:
    """A multi-dimensional array with PyTorch's API; see the module docstring."""

    # `dtype` is kept beside `_data` (always FROM_NP[_data.dtype]) because promotion reads it on every op.
    # `_out_index`: which output of grad_fn this is; `_view_of`: (parent, op, attrs) for views,
    # replayed when an in-place op on the view must rewrite its base's history.
    __slots__ = ("_data", "dtype", "_base", "_ver", "requires_grad", "grad", "grad_fn", "_out_index", "_view_of",
                 "_grad_hooks", "__weakref__")
    # numpy defers binary operators to us (ndarray + Tensor calls Tensor.__radd__).
    __array_priority__ = 1000

    def __init__(self, *args, dtype=None, device=None):
        # Legacy constructor: Tensor([1, 2]) copies data as float; Tensor(2, 3) is uninitialized.
        from ._creation import empty, tensor

        dt = dtype or D.get_default_dtype()
        if len(args) == 1 and not isinstance(args[0], int):
            src = tensor(args[0], dtype=dt, device=device)
        else:
            src = empty(*args, dtype=dt, device=device)
        _init(self, src._data)

    # ---- metadata ------------------------------------------------------------------------

    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[wrap_dim(dim, self._data.ndim)]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    ndimension = dim

    def numel(self):
        return int(self._data.size)

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return int(self._data.nbytes)

    def stride(self, dim=None):
        item = self._data.itemsize
        st = tuple(s // item for s in self._data.strides)
        return st if dim is None else st[wrap_dim(dim, self._data.ndim)]

    def storage_offset(self):
        return (_ptr(self._data) - _ptr(storage_root(self._data))) // self._data.itemsize

    def data_ptr(self):
        return _ptr(self._data)

    def untyped_storage(self):
        return UntypedStorage(self._data)

    def storage(self):
        return Storage(self._data)

    def is_contiguous(self, memory_format=None):
        return bool(self._data.flags.c_contiguous)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def device(self):
        return device_of(self._data)

    @property
    def is_cuda(self):
        return type(self._data) is not _ndarray

    @property
    def is_cpu(self):
        return type(self._data) is _ndarray

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def is_complex(self):
        return False

    @property
    def _version(self):
        b = self._base
        return (b if b is not None else self)._ver

    def _bump_version(self):
        b = self._base
        (b if b is not None else self)._ver += 1

    def type(self, dtype=None):
        if dtype is None:
            return f"tracejit.{_LEGACY_NAMES[self.dtype.name]}Tensor"
        return self.to(D.as_dtype(dtype))

    # ---- conversions ---------------------------------------------------------------------

    def numpy(self, *, force=False):
        """The CPU array itself (shares memory); CUDA tensors need `.cpu()` first, as in PyTorch."""
        if type(self._data) is not _ndarray:
            if force:
                return to_device(self._data, CPU)
            raise TypeError("can't convert a cuda tensor to numpy; use .cpu() to copy it to host memory first")
        return self._data

    def tolist(self):
        return self._data.tolist()

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(()).item()

    def __bool__(self):
        if self._data.size != 1:
            what = "more than one value" if self._data.size else "no values"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self._scalar())

    def __int__(self):
        return int(self._scalar())

    def _scalar(self):
        if self._data.size != 1:  # item() raises a RuntimeError; the Python conversions a ValueError
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.item()

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __complex__(self):
        return complex(self._scalar())

    def __format__(self, spec):
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __contains__(self, item):
        return bool((self == item).any())

    __hash__ = object.__hash__

    def __repr__(self):
        from ._tensor_str import format_array

        d = self.dtype
        dev = self.device
        default = d in (D.get_default_dtype(), D.int64, D.bool_)
        suffixes = []
        if self.grad_fn is not None:
            suffixes.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        return format_array(self.numpy(force=True), dtype_name=d.name, is_default_dtype=default,
                            is_floating=d.is_floating_point, device=None if dev.type == "cpu" else str(dev),
                            suffixes=tuple(suffixes))

    __str__ = __repr__

    # ---- dtype and device movement -------------------------------------------------------

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        """`to(dtype)`, `to(device)`, `to(device, dtype)`, `to(other_tensor)`; returns self if nothing changes."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, D.dtype) or (a in (float, int, bool)):
                dtype = a
            elif a is not None:
                try:
                    dtype = D.as_dtype(a)
                except TypeError:
                    device = a
        out = self
        if device is not None:
            dev = as_device(device)
            if dev != self.device:
                out = _wrap(to_device(self._data, dev))
        if dtype is not None:
            dt = D.as_dtype(dtype)
            if dt is not out.dtype:
                out = dispatch(_TO_DTYPE, (out,), {"dtype": dt})
        if copy and out is self:
            out = dispatch(_CLONE, (self,))
        return out

    def cuda(self, device=None, non_blocking=False):
        return self.to(device="cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def cpu(self):
        return self.to(device="cpu")

    def float(self):
        return self.to(D.float32)

    def double(self):
        return self.to(D.float64)

    def half(self):
        return self.to(D.float16)

    def long(self):
        return self.to(D.int64)

    def int(self):
        return self.to(D.int32)

    def short(self):
        return self.to(D.int16)

    def char(self):
        return self.to(D.int8)

    def byte(self):
        return self.to(D.uint8)

    def bool(self):
        return self.to(D.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ---- operators: the hot path, so each goes straight to dispatch ---------------------

    def __add__(self, other):
        return _binary(_ADD, self, other)

    def __radd__(self, other):
        return _rbinary(_ADD, self, other)

    def __iadd__(self, other):
        return _inplace(_ADD, self, other)

    def __sub__(self, other):
        return _binary(_SUB, self, other)

    def __rsub__(self, other):
        return _rbinary(_SUB, self, other)

    def __isub__(self, other):
        return _inplace(_SUB, self, other)

    def __mul__(self, other):
        return _binary(_MUL, self, other)

    def __rmul__(self, other):
        return _rbinary(_MUL, self, other)

    def __imul__(self, other):
        return _inplace(_MUL, self, other)

    def __truediv__(self, other):
        return _binary(_DIV, self, other)

    def __rtruediv__(self, other):
        return _rbinary(_DIV, self, other)

    def __itruediv__(self, other):
        return _inplace(_DIV, self, other)

    def __floordiv__(self, other):
        return _binary(_DIV, self, other, _FLOOR)

    def __rfloordiv__(self, other):
        return _rbinary(_DIV, self, other, _FLOOR)

    def __ifloordiv__(self, other):
        return _inplace(_DIV, self, other, _FLOOR)

    def __mod__(self, other):
        return _binary(_REM, self, other)

    def __rmod__(self, other):
        return _rbinary(_REM, self, other)

    def __imod__(self, other):
        return _inplace(_REM, self, other)

    def __pow__(self, other):
        return _binary(_POW, self, other)

    def __rpow__(self, other):
        return _rbinary(_POW, self, other)

    def __ipow__(self, other):
        return _inplace(_POW, self, other)

    def __matmul__(self, other):
        from ._movement import matmul

        other = _operand(other)
        return NotImplemented if other is None else matmul(self, other)

    def __rmatmul__(self, other):
        from ._movement import matmul

        other = _operand(other)
        return NotImplemented if other is None else matmul(other, self)

    def __and__(self, other):
        return _binary(_AND, self, other)

    def __rand__(self, other):
        return _rbinary(_AND, self, other)

    def __iand__(self, other):
        return _inplace(_AND, self, other)

    def __or__(self, other):
        return _binary(_OR, self, other)

    def __ror__(self, other):
        return _rbinary(_OR, self, other)

    def __ior__(self, other):
        return _inplace(_OR, self, other)

    def __xor__(self, other):
        return _binary(_XOR, self, other)

    def __rxor__(self, other):
        return _rbinary(_XOR, self, other)

    def __ixor__(self, other):
        return _inplace(_XOR, self, other)

    def __eq__(self, other):
        return _binary(_EQ, self, other)

    def __ne__(self, other):
        return _binary(_NE, self, other)

    def __lt__(self, other):
        return _binary(_LT, self, other)

    def __le__(self, other):
        return _binary(_LE, self, other)

    def __gt__(self, other):
        return _binary(_GT, self, other)

    def __ge__(self, other):
        return _binary(_GE, self, other)

    def __neg__(self):
        return dispatch(_NEG, (self,))

    def __pos__(self):
        return self

    def __abs__(self):
        return dispatch(_ABS, (self,))

    def __invert__(self):
        if self._data.dtype.kind == "b":
            return dispatch(_LNOT, (self,))
        if self._data.dtype.kind == "f":
            raise TypeError("~ (bitwise_not) is only supported for integer and bool tensors, not float")
        return dispatch(_BNOT, (self,))

    def __getitem__(self, index):
        from ._indexing import getitem

        return getitem(self, index)

    def __setitem__(self, index, value):
        from ._indexing import setitem

        setitem(self, index, value)


class Size(tuple):
    """A tensor's shape: a tuple that prints as `tracejit.Size([2, 3])`."""

    __slots__ = ()

    def __repr__(self):
        return f"tracejit.Size({list(self)})"

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n


class Storage:
    """The flat memory a tensor views (PyTorch's `storage()`, sized in elements): shared by all its views."""

    __slots__ = ("_flat",)

    def __init__(self, arr):
        root = storage_root(arr)
        flat = root.reshape(-1)
        if flat.dtype != arr.dtype:
            flat = flat.view(arr.dtype) if flat.nbytes % arr.itemsize == 0 else arr.reshape(-1)
        self._flat = flat

    def data_ptr(self):
        return _ptr(self._flat)

    def size(self):
        return int(self._flat.size)

    def __len__(self):
        return int(self._flat.size)

    def nbytes(self):
        return int(self._flat.nbytes)

    def element_size(self):
        return self._flat.itemsize

    @property
    def dtype(self):
        return D.FROM_NP[self._flat.dtype]

    @property
    def device(self):
        return device_of(self._flat)

    def tolist(self):
        return self._flat.tolist()

    def __getitem__(self, i):
        return self._flat[i].tolist()

    def __setitem__(self, i, v):
        self._flat[i] = v

    def __repr__(self):
        body = "\n".join(f" {v}" for v in self._flat.tolist()[:20])
        more = "\n ..." if self._flat.size > 20 else ""
        return f"{body}{more}\n[tracejit.storage of size {self._flat.size}, dtype={self.dtype}]"


class UntypedStorage(Storage):
    """PyTorch's `untyped_storage()`: the same memory, sized in bytes."""

    __slots__ = ()

    def size(self):
        return int(self._flat.nbytes)

    __len__ = size


def _ptr(arr):
    if type(arr) is _ndarray:
        return arr.__array_interface__["data"][0]
    return arr.data.ptr


def wrap_dim(dim, ndim):
    """Normalize a possibly negative dim, raising PyTorch's IndexError when out of range."""
    n = ndim if ndim > 0 else 1
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n if ndim else 0


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
            if arr.__class__ is not _ndarray:
                xp = array_module(arr)
            if want is not None and arr.dtype is not want and i in cast and arr.dtype != want:
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
                if arr.__class__ is not _ndarray:
                    xp = array_module(arr)
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
    grad = grad and _GRAD["enabled"]
    try:
        if out is not None:
            if grad or (out.requires_grad and _GRAD["enabled"]):
                from .autograd.inplace import inplace_with_grad

                return inplace_with_grad(op, out, args, attrs)
            return _write_into(op, out, xp, arrays, attrs, out_dtype)
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
    fill = (op.name == "tj::copy" and not hasattr(arrays[1], "shape")) or op.name == "tj::index_put"
    if not fill and any(st == 0 and n > 1 for n, st in zip(arr.shape, arr.strides)):
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                           "single memory location. Please clone() the tensor before performing the operation.")
    out._data = np.asarray(_At(root, _ptr(arr), arr.shape, arr.strides))
    return True


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
