"""A numpy-backed stand-in for the parts of cupy that tracejit's eager CUDA path uses.

`install(monkeypatch)` makes `tracejit.devices` find this module as cupy, so `device='cuda'` tensors hold
`FakeDeviceArray`s. Like `cupy.ndarray` that class is not a numpy array, and it refuses what cupy refuses,
so a host/device mix-up fails here as it would on a GPU:

- implicit conversion to numpy (`np.asarray(a)`, `__array__`): TypeError;
- numpy arrays as operands of ufuncs, functions and operators: TypeError (numpy scalars and Python numbers
  are fine); numpy functions given only device arrays dispatch here, as cupy's do;
- numpy-only API: no `errstate`, `__array_interface__`, `flags.writeable` or `__index__`; no
  `indices(sparse=)`, `astype(casting=)` or `einsum(out=)`; `ufunc.at` only for add/maximum/minimum and,
  with integer-array indices, only cupy's atomic dtypes (no int64, int8, int16, uint8 or bool);
- results are 0-d arrays where numpy returns scalars; every array is writeable (broadcast views too);
  a view's `.base` is its owner, and `as_strided` results have none; out-of-range integer array indices
  wrap around (take, fancy indexing) instead of raising;
- arrays live on a device: made on the current one (`cuda.Device(i)`), and an op that reads another
  device's array raises, as cupy does without peer access.

`asnumpy(a)` and `a.get()` are the ways back to numpy.

    >>> a = asarray(np.arange(3.0))
    >>> type(a).__name__, asnumpy(a * 2).tolist(), type(a.sum()).__name__
    ('FakeDeviceArray', [0.0, 2.0, 4.0], 'FakeDeviceArray')
"""

from __future__ import annotations

import builtins
import ctypes
import functools
import sys
import types

import numpy as np


def _quiet():
    """GPU arithmetic raises no floating-point warnings; numpy computing in its place should not either."""
    return np.errstate(all="ignore")


_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
             "array explicitly.")


# ---- devices ---------------------------------------------------------------------------------------------------


class _State:
    count = 1
    current = 0
    exporting = False  # a DLPack capsule is being made for a CUDA consumer (from_dlpack)


_state = _State()


class CUDARuntimeError(RuntimeError):
    pass


def _check_id(i):
    if not 0 <= i < _state.count:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


class _Runtime:
    CUDARuntimeError = CUDARuntimeError

    @staticmethod
    def getDeviceCount():  # noqa: N802 - cupy's name
        return _state.count

    @staticmethod
    def getDevice():  # noqa: N802
        return _state.current


class Device:
    """`cupy.cuda.Device(i)`: a context in which new arrays and kernels go to device i."""

    def __init__(self, device=None):
        self.id = _state.current if device is None else int(device)
        self._previous = []

    def __enter__(self):
        _check_id(self.id)
        self._previous.append(_state.current)
        _state.current = self.id
        return self

    def __exit__(self, *exc):
        _state.current = self._previous.pop()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    __hash__ = None


class Memory:
    """One allocation: `ptr`, `size` in bytes, the device; host memory (`_owner`) stands in for device memory."""

    def __init__(self, owner, device_id):
        self._owner = owner
        if owner.size:
            lo, hi = np.lib.array_utils.byte_bounds(owner)
        else:
            lo = hi = owner.__array_interface__["data"][0]
        self.ptr, self.size, self.device_id = lo, hi - lo, device_id

    def _bytes(self):
        if not self.size:
            return np.empty(0, np.uint8)
        return np.frombuffer((ctypes.c_ubyte * self.size).from_address(self.ptr), np.uint8)


class MemoryPointer:
    """`cupy.cuda.MemoryPointer(mem, offset)`: an address inside an allocation."""

    def __init__(self, mem, offset):
        self.mem, self.ptr, self.device_id = mem, mem.ptr + offset, mem.device_id


class RawKernel:
    """cupy's compiled kernels: this stand-in runs none, so any use of one fails loudly."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("fake cupy cannot compile or launch CUDA kernels; that needs a real GPU")


RawModule = RawKernel


cuda = types.SimpleNamespace(Device=Device, runtime=_Runtime, MemoryPointer=MemoryPointer, Memory=Memory,
                             CUDARuntimeError=CUDARuntimeError)


def _check_devices(arrays):
    """cupy launches kernels on the current device; reading another device's array needs peer access."""
    for a in arrays:
        if a._dev != _state.current:
            raise ValueError(f"The device where the array resides ({a._dev}) is different from the current device "
                             f"({_state.current}). Peer access is unavailable between these devices.")


# ---- the array -------------------------------------------------------------------------------------------------


def _owner(a):
    """A new array owning fresh memory on the current device."""
    x = object.__new__(FakeDeviceArray)
    x._a, x._mem, x._base, x._dev = a, Memory(a, _state.current), None, _state.current
    return x


def _view(parent, a, base=True):
    """A view of `parent`'s memory; `base=False` for cupy's as_strided and DLPack imports, which keep none."""
    x = object.__new__(FakeDeviceArray)
    x._a, x._mem, x._dev = a, parent._mem, parent._dev
    x._base = (parent._base if parent._base is not None else parent) if base else None
    return x


def _result(res, parents=()):
    """Wrap what numpy returned: an input itself, a view of an input's memory, or a new array (0-d for scalars)."""
    if isinstance(res, tuple):
        return tuple(_result(r, parents) for r in res)
    if isinstance(res, list):
        return [_result(r, parents) for r in res]
    if isinstance(res, np.generic):
        return _owner(np.asarray(res))
    if not isinstance(res, np.ndarray):
        return res
    for p in parents:
        if p._a is res:
            return p
    for p in parents:
        if res.size and np.may_share_memory(res, p._a):
            return _view(p, res)
    return _owner(res)


def _unwrap(x, arrays, operand=False):
    """An argument as numpy takes it: device arrays (also inside lists and tuples; collected into `arrays`) as
    their numpy array; numpy arrays refused. A ufunc `operand` may only be a device array or a number."""
    if isinstance(x, FakeDeviceArray):
        arrays.append(x)
        return x._a
    if isinstance(x, np.ndarray) or operand and not isinstance(x, (bool, int, float, complex, np.generic)):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, arrays) for v in x)
    return x


def _index(key, shape):
    """An index as numpy takes it: device and host integer/bool arrays allowed (cupy copies host ones over);
    integer arrays wrapped into range as cupy's kernels do. Returns (key, has_array, device arrays)."""
    items = list(key) if isinstance(key, tuple) else [key]
    arrays, has_array = [], False
    for i, it in enumerate(items):
        if isinstance(it, FakeDeviceArray):
            if it.dtype.kind not in "iub":
                raise IndexError(f"arrays used as indices must be of integer or boolean type (actual: {it.dtype})")
            arrays.append(it)
            items[i], has_array = it._a, True
        elif isinstance(it, (list, np.ndarray)) or isinstance(it, (np.bool_, bool)):
            items[i], has_array = np.asarray(it), True
            if items[i].size == 0 and isinstance(it, list):
                items[i] = items[i].astype(np.int32)
    consumed = builtins.sum(0 if it is None or it is Ellipsis else (it.ndim if isinstance(it, np.ndarray)
                                                            and it.dtype.kind == "b" else 1) for it in items)
    axis = 0
    for i, it in enumerate(items):
        if it is None:
            continue
        if it is Ellipsis:
            axis += len(shape) - consumed
        elif isinstance(it, np.ndarray) and it.dtype.kind == "b":
            axis += it.ndim
        else:
            if isinstance(it, np.ndarray) and axis < len(shape) and shape[axis]:
                items[i] = np.mod(it, shape[axis])
            axis += 1
    if not has_array and Ellipsis not in items:
        items.append(Ellipsis)  # numpy then returns 0-d views, not scalars, as cupy does
    return tuple(items), has_array, arrays


class FakeDeviceArray:
    """`cupy.ndarray` on numpy: `FakeDeviceArray(shape, dtype, memptr=None, strides=None)` as cupy's constructor."""

    __slots__ = ("_a", "_mem", "_base", "_dev")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is None:
            other = _owner(np.empty(shape, dtype, order=order))
            self._a, self._mem, self._base, self._dev = other._a, other._mem, None, other._dev
            return
        mem = memptr.mem
        self._a = np.ndarray(shape, dtype, buffer=mem._bytes(), offset=memptr.ptr - mem.ptr, strides=strides)
        self._mem, self._base, self._dev = mem, None, mem.device_id

    # ---- attributes -------------------------------------------------------------------------------------------

    shape = property(lambda self: self._a.shape)
    strides = property(lambda self: self._a.strides)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    base = property(lambda self: self._base)
    device = property(lambda self: Device(self._dev))

    @property
    def T(self):  # noqa: N802 - numpy's name
        return self if self.ndim < 2 else _view(self, self._a.T)

    @property
    def flags(self):
        f = self._a.flags
        return types.SimpleNamespace(c_contiguous=f.c_contiguous, f_contiguous=f.f_contiguous,
                                     owndata=self._base is None)  # and no `writeable`: cupy has none

    @property
    def data(self):
        return MemoryPointer(self._mem, self._a.__array_interface__["data"][0] - self._mem.ptr)

    # ---- conversions -------------------------------------------------------------------------------------------

    def get(self, stream=None, order="C", out=None):
        """A numpy copy in host memory."""
        host = np.array(self._a, order=order, copy=True)
        if out is not None:
            out[...] = host
            return out
        return host

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __bool__(self):
        if self.size != 1:
            if self.size == 0:
                return False
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self._a)

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __len__(self):
        if not self.ndim:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if not self.ndim:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return repr(self._a)

    def __copy__(self):
        return self.copy()

    def __dlpack_device__(self):
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        if not _state.exporting:
            raise BufferError("this array is in device memory: only a CUDA-capable consumer (cupy.from_dlpack) "
                              "can import it, numpy cannot")
        return self._a.__dlpack__()

    # ---- numpy protocols: numpy calls on device arrays dispatch here, as cupy's do -----------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fake = _UFUNCS.get(ufunc.__name__)
        if fake is None:
            return NotImplemented
        if "out" in kwargs:
            (kwargs["out"],) = kwargs["out"]
        fn = fake if method == "__call__" else getattr(fake, method, None)
        return NotImplemented if fn is None else fn(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        fn = _FUNCTIONS.get(func.__name__)
        if fn is None or builtins.any(not issubclass(t, FakeDeviceArray) for t in types_):
            return NotImplemented
        return fn(*args, **kwargs)

    # ---- indexing ----------------------------------------------------------------------------------------------

    def __getitem__(self, key):
        key, advanced, arrays = _index(key, self.shape)
        if not advanced:
            return _view(self, self._a[key])
        _check_devices([self, *arrays])
        return _owner(np.asarray(self._a[key]).copy())

    def __setitem__(self, key, value):
        key, advanced, arrays = _index(key, self.shape)
        _check_devices([self, *arrays])
        if isinstance(value, FakeDeviceArray):
            _check_devices([value])
            value = value._a
        elif not advanced and isinstance(value, np.ndarray) and value.ndim:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        elif not advanced and isinstance(value, (list, tuple)):
            raise TypeError(f"Unsupported type {type(value)}")
        self._a[key] = value

    # ---- methods -----------------------------------------------------------------------------------------------

    def _compute(self, fn, *args, out=None, **kwargs):
        _check_devices([self])
        with _quiet():
            if out is not None:
                fn(self._a, *args, out=out._a, **kwargs)
                return out
            return _result(fn(self._a, *args, **kwargs), (self,))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        _check_devices([self])
        with _quiet():
            return _owner(self._a.astype(dtype, order=order))

    def copy(self, order="C"):
        _check_devices([self])
        return _owner(self._a.copy(order=order))

    def view(self, dtype=None):
        return _view(self, self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value):
        _check_devices([self])
        self._a.fill(value)

    def reshape(self, *shape, order="C"):
        return _result(self._a.reshape(*shape, order=order), (self,))

    def transpose(self, *axes):
        return _view(self, self._a.transpose(*axes))

    def squeeze(self, axis=None):
        return _view(self, self._a.squeeze(axis))

    def ravel(self, order="C"):
        return _result(self._a.ravel(order), (self,))

    def take(self, indices, axis=None, out=None):
        return take(self, indices, axis, out)

    def dot(self, b):
        return _UFUNCS["matmul"](self, b)

    def sort(self, axis=-1):
        _check_devices([self])
        self._a.sort(axis)


def _method(np_fn, params):
    """A cupy method computed by numpy's `np_fn`; it takes `params` (cupy's, in cupy's order) and no others."""

    def method(self, *args, **kwargs):
        given = dict(zip(params, args))
        for k in kwargs:
            if k not in params or k in given:
                raise TypeError(f"{np_fn.__name__}() got an unexpected or repeated argument {k!r}")
        given.update(kwargs)
        return self._compute(np_fn, **given)

    method.__name__ = np_fn.__name__
    return method


for _name, _params in (("max", "axis out keepdims"), ("min", "axis out keepdims"), ("argmax", "axis out keepdims"),
                       ("argmin", "axis out keepdims"), ("sum", "axis dtype out keepdims"),
                       ("prod", "axis dtype out keepdims"), ("mean", "axis dtype out keepdims"),
                       ("var", "axis dtype out ddof keepdims"), ("std", "axis dtype out ddof keepdims"),
                       ("cumsum", "axis dtype out"), ("all", "axis out keepdims"), ("any", "axis out keepdims"),
                       ("clip", "min max out"), ("round", "decimals out"), ("repeat", "repeats axis"),
                       ("nonzero", ""), ("argsort", "axis")):
    setattr(FakeDeviceArray, _name, _method(getattr(np, _name), _params.split()))


def _operator(ufunc_name, reflected=False, inplace=False):
    def op(self, other):
        uf = _UFUNCS[ufunc_name]
        if inplace:
            return uf(self, other, out=self)
        if not isinstance(other, FakeDeviceArray) and _defers_to(other):
            return NotImplemented
        if isinstance(other, np.ndarray) and other.ndim == 0 and ufunc_name in _COMPARISONS:
            other = other.item()  # cupy compares with 0-d numpy arrays as with numbers
        return uf(other, self) if reflected else uf(self, other)

    return op


def _defers_to(other):
    """cupy's rule for `array op other`: defer when other opts out of ufuncs or outranks it (a tracejit Tensor)."""
    try:
        return other.__array_ufunc__ is None
    except AttributeError:
        return getattr(other, "__array_priority__", 0) > FakeDeviceArray.__array_priority__


_COMPARISONS = ("less", "less_equal", "equal", "not_equal", "greater", "greater_equal")
for _dunder, _uf in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "true_divide"),
                     ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "power"), ("and", "bitwise_and"),
                     ("or", "bitwise_or"), ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift"),
                     ("matmul", "matmul")):
    setattr(FakeDeviceArray, f"__{_dunder}__", _operator(_uf))
    setattr(FakeDeviceArray, f"__r{_dunder}__", _operator(_uf, reflected=True))
    if _dunder != "matmul":
        setattr(FakeDeviceArray, f"__i{_dunder}__", _operator(_uf, inplace=True))
for _dunder, _uf in (("lt", "less"), ("le", "less_equal"), ("eq", "equal"), ("ne", "not_equal"), ("gt", "greater"),
                     ("ge", "greater_equal")):
    setattr(FakeDeviceArray, f"__{_dunder}__", _operator(_uf))
FakeDeviceArray.__neg__ = lambda self: _UFUNCS["negative"](self)
FakeDeviceArray.__pos__ = lambda self: self
FakeDeviceArray.__abs__ = lambda self: _UFUNCS["absolute"](self)
FakeDeviceArray.__invert__ = lambda self: _UFUNCS["invert"](self)
ndarray = FakeDeviceArray


# ---- ufuncs ----------------------------------------------------------------------------------------------------

# cupy's ufunc.at scatters with CUDA atomics: these ufuncs, and with integer-array indices only these dtypes.
_AT_DTYPES = {"add": "iIQefd", "maximum": "iIQfd", "minimum": "iIQfd"}


class ufunc:  # noqa: N801 - cupy's name
    """A cupy ufunc on numpy: device arrays, numpy scalars and Python numbers in; device arrays out."""

    def __init__(self, np_ufunc):
        self._np = np_ufunc
        self.__name__ = self.name = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        arrays = []
        vals = [_unwrap(a, arrays, operand=True) for a in args]
        if out is not None:
            arrays.append(out)
        _check_devices(arrays)
        with _quiet():
            res = self._np(*vals, out=None if out is None else out._a, dtype=dtype, casting=casting, **kwargs)
        return out if out is not None else _result(res)

    def _method(self, name, array, *args, out=None, **kwargs):
        arrays = []
        a = _unwrap(array, arrays, operand=True)
        _check_devices(arrays + ([out] if out is not None else []))
        with _quiet():
            res = getattr(self._np, name)(a, *args, out=None if out is None else out._a, **kwargs)
        return out if out is not None else _result(res)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        return self._method("reduce", array, axis, dtype, out=out, keepdims=keepdims)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        return self._method("accumulate", array, axis, dtype, out=out)

    def outer(self, a, b, **kwargs):
        arrays = []
        res = self._np.outer(_unwrap(a, arrays, operand=True), _unwrap(b, arrays, operand=True), **kwargs)
        _check_devices(arrays)
        return _result(res)

    def at(self, a, indices, b=None):
        if self.name not in _AT_DTYPES:
            raise NotImplementedError(f"`{self.name}.at` is not supported yet")
        if not isinstance(a, FakeDeviceArray):
            raise TypeError(f"Unsupported type {type(a)}")
        key, advanced, arrays = _index(indices, a.shape)
        int_arrays = [k for k in key if isinstance(k, np.ndarray) and k.dtype.kind in "iu"]
        if int_arrays and a.dtype.char not in _AT_DTYPES[self.name]:
            raise TypeError(f"scatter_{self.name.replace('imum', '')} does not support {a.dtype} as data type")
        if isinstance(b, FakeDeviceArray):
            arrays.append(b)
            b = b._a
        _check_devices([a, *arrays])
        self._np.at(a._a, key, b)


_UFUNC_NAMES = (
    "add subtract multiply divide true_divide floor_divide negative positive power float_power remainder mod fmod "
    "absolute fabs rint sign exp exp2 log log2 log10 expm1 log1p sqrt square cbrt reciprocal sin cos tan arcsin "
    "arccos arctan arctan2 hypot sinh cosh tanh arcsinh arccosh arctanh deg2rad rad2deg bitwise_and bitwise_or "
    "bitwise_xor invert left_shift right_shift greater greater_equal less less_equal not_equal equal logical_and "
    "logical_or logical_xor logical_not maximum minimum fmax fmin isfinite isinf isnan signbit copysign nextafter "
    "ldexp frexp modf floor ceil trunc heaviside logaddexp logaddexp2 matmul conjugate"
).split()
_UFUNCS = {n: ufunc(getattr(np, n)) for n in _UFUNC_NAMES}
globals().update(_UFUNCS)
abs = _UFUNCS["absolute"]  # noqa: A001 - cupy's alias
bitwise_not, conj = _UFUNCS["invert"], _UFUNCS["conjugate"]


# ---- functions -------------------------------------------------------------------------------------------------

_FUNCTIONS = {}


def _device_function(np_fn, name=None):
    """A function on device arrays only, computed by numpy's function of the same name."""

    @functools.wraps(np_fn)
    def fn(*args, **kwargs):
        arrays = []
        args = _unwrap(args, arrays)
        kwargs = {k: _unwrap(v, arrays) for k, v in kwargs.items()}
        _check_devices(arrays)
        with _quiet():
            return _result(np_fn(*args, **kwargs), arrays)

    _FUNCTIONS[name or np_fn.__name__] = fn
    return fn


def _registered(fn):
    _FUNCTIONS[fn.__name__] = fn
    return fn


_DEVICE_FUNCTION_NAMES = (
    "reshape transpose swapaxes moveaxis expand_dims squeeze ravel concatenate stack vstack hstack split "
    "array_split tile repeat flip fliplr flipud roll tril triu diag diagonal where nonzero argwhere "
    "flatnonzero count_nonzero clip around round sum prod mean var std amax amin max min argmax argmin cumsum "
    "cumprod all any sort argsort unique bincount dot tensordot inner outer isclose allclose "
    "array_equal zeros_like ones_like empty_like full_like broadcast_arrays atleast_1d atleast_2d pad"
).split()
for _n in _DEVICE_FUNCTION_NAMES:
    globals()[_n] = _device_function(getattr(np, _n), _n)


def _new_on_device(np_fn):
    @functools.wraps(np_fn)
    def fn(*args, **kwargs):
        return _owner(np_fn(*args, **kwargs))

    _FUNCTIONS[np_fn.__name__] = fn
    return fn


empty, zeros, ones, full, arange, linspace, eye, identity, tri = (
    _new_on_device(getattr(np, n)) for n in ("empty", "zeros", "ones", "full", "arange", "linspace", "eye", "identity",
                                             "tri"))


@_registered
def einsum(subscripts, *operands, dtype=None, optimize=False):
    """cupy's einsum: no out, order or casting."""
    arrays = []
    ops = [_unwrap(o, arrays) for o in operands]
    _check_devices(arrays)
    return _result(np.einsum(subscripts, *ops, dtype=dtype, optimize=optimize), arrays)


@_registered
def indices(dimensions, dtype=int):
    """cupy's indices: a dense grid only (numpy's `sparse=` does not exist)."""
    return _owner(np.indices(dimensions, dtype))


@_registered
def broadcast_to(array, shape):
    """A writeable view, as cupy's broadcast views are (numpy's are read-only)."""
    if not isinstance(array, FakeDeviceArray):
        raise TypeError(f"Unsupported type {type(array)}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    b = np.broadcast_to(array._a, shape)
    return _view(array, np.lib.stride_tricks.as_strided(array._a, b.shape, b.strides))


broadcast_shapes = np.broadcast_shapes  # borrowed from numpy, as cupy does


def _wrapping_take(a, idx, axis):
    n = a.shape[axis] if axis is not None else a.size
    return np.mod(idx, n) if n and np.asarray(idx).dtype.kind in "iu" else idx


@_registered
def take(a, indices, axis=None, out=None):
    """cupy's take wraps out-of-range indices around (numpy's raises)."""
    arrays = []
    x, idx = _unwrap(a, arrays), _unwrap(indices, arrays)
    _check_devices(arrays)
    res = np.take(x, _wrapping_take(x, idx, axis), axis=axis)
    if out is not None:
        out[...] = _owner(res)
        return out
    return _owner(np.asarray(res))


@_registered
def take_along_axis(a, indices, axis):
    arrays = []
    x, idx = _unwrap(a, arrays), _unwrap(indices, arrays)
    _check_devices(arrays)
    return _owner(np.take_along_axis(x, _wrapping_take(x, idx, axis), axis))


@_registered
def ascontiguousarray(a, dtype=None):
    if not isinstance(a, FakeDeviceArray):
        raise TypeError(f"Unsupported type {type(a)}")
    if a.flags.c_contiguous and a.ndim and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    _check_devices([a])
    return _owner(np.ascontiguousarray(a._a, dtype))


@_registered
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    """A device array from device or host data (numpy arrays, lists, numbers): copied unless it can be `obj`."""
    if isinstance(obj, FakeDeviceArray):
        if not copy and obj._dev == _state.current and (dtype is None or np.dtype(dtype) == obj.dtype) \
                and obj.ndim >= ndmin:
            return obj
        return _owner(np.array(obj._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    if isinstance(obj, (list, tuple)) and builtins.any(isinstance(v, FakeDeviceArray) for v in obj):
        obj = [v.get() if isinstance(v, FakeDeviceArray) else v for v in obj]
    return _owner(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


@_registered
def asarray(a, dtype=None, order=None, *, blocking=False):
    return array(a, dtype, copy=False, order=order or "K")


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A numpy array from a device array (copied to the host) or anything numpy takes."""
    if isinstance(a, FakeDeviceArray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if builtins.any(isinstance(a, FakeDeviceArray) for a in args) else np


class _Capsule:
    """A DLPack capsule presented to numpy, which only reads the memory standing in for the device's."""

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, **_):
        return self._capsule

    def __dlpack_device__(self):
        return (1, 0)


@_registered
def from_dlpack(x, *, device=None, copy=None):
    """An array sharing memory with a DLPack producer whose memory is on a CUDA device."""
    kind, dev = x.__dlpack_device__()
    if kind != 2:
        raise BufferError(f"from_dlpack: unsupported DLPack device type {kind} (this stand-in imports CUDA memory)")
    _state.exporting = True
    try:
        capsule = x.__dlpack__(stream=None)
    finally:
        _state.exporting = False
    host = np.from_dlpack(_Capsule(capsule))
    with Device(dev):
        imported = _owner(host)  # numpy imports it read-only; cupy arrays are always writeable
    imported._a = np.ndarray(host.shape, host.dtype, buffer=imported._mem._bytes(), strides=host.strides,
                             offset=host.__array_interface__["data"][0] - imported._mem.ptr)
    return imported


class _StrideTricks:
    @staticmethod
    def as_strided(x, shape=None, strides=None):
        """cupy's as_strided: a new array over x's memory whose `.base` is None."""
        if not isinstance(x, FakeDeviceArray):
            raise TypeError(f"Unsupported type {type(x)}")
        shape = x.shape if shape is None else tuple(shape)
        strides = x.strides if strides is None else tuple(strides)
        return _view(x, np.lib.stride_tricks.as_strided(x._a, shape, strides), base=False)


lib = types.SimpleNamespace(stride_tricks=_StrideTricks)

# dtypes and constants are numpy's, as in cupy
for _n in ("bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 complex128 "
           "intp uintp intc uintc longlong ulonglong half single double dtype iinfo finfo result_type can_cast "
           "promote_types issubdtype generic number integer signedinteger unsignedinteger floating inexact "
           "complexfloating inf nan pi e newaxis").split():
    globals()[_n] = getattr(np, _n)


# ---- installing ------------------------------------------------------------------------------------------------


def install(monkeypatch, device_count=1):
    """Make `tracejit.devices` find this module as cupy, with `device_count` GPUs (device 0 current)."""
    from tracejit import devices

    monkeypatch.setattr(_state, "count", device_count)
    monkeypatch.setattr(_state, "current", 0)
    monkeypatch.setattr(devices, "_cupy", sys.modules[__name__])
    return sys.modules[__name__]
