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

import numpy as np

from . import dtypes as D
from .devices import CPU, as_device, device, device_of, to_device
from .ops.movement import storage_root

_FROM_NP = D.FROM_NP
_ndarray = np.ndarray
_generic = np.generic
_NUMBER = (bool, int, float)
_EMPTY = {}
_CUDA, _CUDA0 = device("cuda"), device("cuda", 0)
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
        if _TRACE["tracer"] is not None:
            _TRACE["tracer"].hazard(self, "numpy()", "the values it has now")
        if type(self._data) is not _ndarray:
            if force:
                return to_device(self._data, CPU)
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first.")
        return self._data

    def tolist(self):
        value = self._data.tolist()
        if _TRACE["tracer"] is not None:
            _TRACE["tracer"].hazard(self, "tolist()", value)
        return value

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        value = self._data.reshape(()).item()
        if _TRACE["tracer"] is not None:
            _TRACE["tracer"].hazard(self, "converting a tensor to a Python number (item/float/int)", value)
        return value

    def __bool__(self):
        if self._data.size != 1:
            what = "more than one value" if self._data.size else "no values"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        value = bool(self._data.reshape(()).item())
        if _TRACE["tracer"] is not None:
            _TRACE["tracer"].hazard(self, "bool() of a tensor (an `if`/`while` on a tensor)", value)
        return value

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
        if _TRACE["tracer"] is not None:
            _TRACE["tracer"].hazard(self, "iterating over a tensor", f"{self._data.shape[0]} iterations")
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
            if dev == _CUDA:  # plain `cuda` means cuda:0 (where to_device puts it): a tensor there stays itself
                dev = _CUDA0
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


# The dispatch layer lives in its own module; Tensor's methods and the rest of the front end use
# these names from here.
from ._dispatch import (  # noqa: E402, F401, I001
    _ABS, _ADD, _AND, _BNOT, _CLONE, _DIV, _EQ, _FAST, _FLOOR, _GE, _GT, _LE, _LNOT, _LT, _MUL, _NE, _NEG,
    _OR, _POW, _REM, _SUB, _TO_DTYPE, _TRACE, _XOR, _binary, _init, _inplace, _operand, _rbinary, _wrap,
    dispatch,
)

__all__ = ["Size", "Storage", "Tensor", "UntypedStorage", "dispatch", "wrap_dim"]
