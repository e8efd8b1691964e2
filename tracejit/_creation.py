"""Creating tensors: from data (`tensor`, `as_tensor`, `from_numpy`, `from_dlpack`), filled
(`zeros`, `ones`, `full`, `empty` and their `_like` forms), ranges (`arange`, `linspace`,
`eye`) and random draws (`rand`, `randn`, `randint`, `randperm`) from a seedable Generator.

    >>> import tracejit as tj
    >>> _ = tj.manual_seed(0)
    >>> a = tj.rand(3)
    >>> _ = tj.manual_seed(0)
    >>> bool((a == tj.rand(3)).all())
    True
"""

from __future__ import annotations

import numpy as np

from . import dtypes as D
from . import ops
from ._tensor import Tensor, _wrap, dispatch
from .devices import CPU, array_module, as_device, module_for, on_device_of, to_device

_FULL, _EMPTY, _ARANGE = ops.get("tj::full"), ops.get("tj::empty"), ops.get("tj::arange")
_LINSPACE, _EYE = ops.get("tj::linspace"), ops.get("tj::eye")
_RAND, _RANDN, _RANDINT, _RANDPERM = (ops.get(f"tj::{n}") for n in ("rand", "randn", "randint", "randperm"))

# PyTorch's default seed: values are reproducible from run to run even without manual_seed.
DEFAULT_SEED = 67280421310721


class Generator:
    """A random number generator (numpy's PCG64) with PyTorch's seeding API."""

    def __init__(self, device="cpu"):
        self.device = as_device(device)
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed):
        seed = int(seed)
        self._seed = seed
        self._np = np.random.Generator(np.random.PCG64(seed & (2**64 - 1)))
        return self

    def seed(self):
        s = int(np.random.SeedSequence().entropy) & (2**63 - 1)
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return self._seed

    def get_state(self):
        """The state as a uint8 tensor (a JSON encoding of the bit generator's state)."""
        import json

        blob = json.dumps(self._np.bit_generator.state).encode()
        return _wrap(np.frombuffer(blob, dtype=np.uint8).copy())

    def set_state(self, state):
        import json

        self._np.bit_generator.state = json.loads(bytes(state.numpy().tobytes()).decode())
        return self


default_generator = Generator()


def manual_seed(seed):
    """Seed the default generator; the same seed gives the same tensors on every run."""
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s)
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"size must be a tuple of ints, but got an element of type {type(s).__name__}: {s!r}")
        out.append(int(s))
    return tuple(out)


def _finish(t, requires_grad):
    if requires_grad:
        if not t.dtype.is_floating_point:
            raise RuntimeError(f"only tensors of floating point dtype can require gradients, got {t.dtype}")
        t.requires_grad = True
    return t


def _dt(dtype, default=None):
    if dtype is None:
        return default if default is not None else D.get_default_dtype()
    return D.as_dtype(dtype)


def _dev(device):
    return None if device is None else as_device(device)


def _infer_dtype(value):
    if isinstance(value, bool):
        return D.bool_
    if isinstance(value, (int, np.integer)):
        return D.int64
    return D.get_default_dtype()


def _from_data(data):
    """A numpy array from nested Python data, with PyTorch's dtype inference and errors."""
    if isinstance(data, (str, bytes)):
        raise TypeError(f"new(): invalid data type '{type(data).__name__}'")
    if isinstance(data, np.generic):  # numpy scalars keep their dtype, as numpy arrays do
        D.from_numpy_dtype(data.dtype)
        return np.array(data)
    if isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
        data = [v.numpy(force=True) if isinstance(v, Tensor) else v for v in data]
    try:
        arr = np.array(data)
    except ValueError as e:
        raise ValueError(f"could not build a tensor from ragged nested sequences: every list at one depth must "
                         f"have the same length ({e})") from None
    except OverflowError:
        raise RuntimeError("Overflow when unpacking long: a Python int does not fit in int64") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"could not infer a tensor dtype from data of type {type(data).__name__}; "
                        "expected numbers, bools or nested lists of them")
    if arr.dtype.kind == "f" and arr.dtype != np.float16:
        arr = arr.astype(D.get_default_dtype().np)
    elif arr.dtype.kind in "iu" and arr.dtype not in D.FROM_NP:  # numpy ints keep their (supported) type
        arr = arr.astype(np.int64)
    return arr


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor holding a copy of `data` (numbers, nested lists, numpy arrays or tensors)."""
    if isinstance(data, Tensor):
        arr = data.numpy(force=True).copy()
        if device is None:  # a copy of a tensor stays on its device, as in PyTorch
            device = data.device
    elif isinstance(data, np.ndarray):
        D.from_numpy_dtype(data.dtype)
        arr = np.array(data, copy=True)
    else:
        arr = _from_data(data)
    if dtype is not None:
        arr = arr.astype(D.as_dtype(dtype).np, copy=False)
    out = _wrap(np.ascontiguousarray(arr) if arr.ndim else arr)  # ascontiguousarray makes 0-d arrays 1-d
    if device is not None and as_device(device) != CPU:
        out._data = to_device(out._data, as_device(device))
    return _finish(out, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """`data` as a tensor, sharing memory with numpy arrays and tensors when dtype and device match."""
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    if isinstance(data, np.ndarray):
        t = from_numpy(data) if not any(s < 0 for s in data.strides) else tensor(data)
        return t.to(dtype=dtype, device=device)
    return tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def from_numpy(ndarray):
    """A tensor sharing memory with `ndarray` (writes show through both ways)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    D.from_numpy_dtype(ndarray.dtype)
    if any(s < 0 for s in ndarray.strides):
        raise ValueError("at least one stride in the given numpy array is negative; tensors with negative "
                         "strides are not supported (use array.copy())")
    if any(s % ndarray.itemsize for s in ndarray.strides):
        raise ValueError("the numpy array's strides are not multiples of its element size; use array.copy()")
    if not ndarray.dtype.isnative:
        raise ValueError("the numpy array is not in native byte order; use array.astype(array.dtype.newbyteorder('='))")
    # PyTorch's storage for it starts at its first element, whatever numpy array it is a view of
    arr = np.lib.stride_tricks.as_strided(np.asarray(_NumpyMemory(ndarray)), ndarray.shape, ndarray.strides,
                                          writeable=ndarray.flags.writeable)
    t = _wrap(arr)
    t._data = arr  # even a zero-size one, which _wrap would restride: PyTorch keeps numpy's strides
    return t


class _NumpyMemory:
    """The memory a numpy array spans, as a flat buffer from its first element. The array is kept in
    `owner`, not `base`, so that `storage_root` stops here."""

    def __init__(self, arr):
        item = arr.itemsize
        n = 1 + sum((s - 1) * (st // item) for s, st in zip(arr.shape, arr.strides)) if arr.size else 0
        self.owner = arr
        self.__array_interface__ = {"data": (arr.__array_interface__["data"][0], not arr.flags.writeable),
                                    "shape": (n,), "typestr": arr.dtype.str, "version": 3}


def from_dlpack(ext):
    """A tensor sharing memory with any DLPack producer (numpy, PyTorch, cupy, ...)."""
    dev = getattr(ext, "__dlpack_device__", lambda: (1, 0))()
    if dev[0] == 1:
        return _wrap(np.from_dlpack(ext))
    return _wrap(module_for(as_device("cuda")).from_dlpack(ext))


def _factory(op, attrs, requires_grad):
    return _finish(dispatch(op, (), attrs), requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor of `size` filled with `fill_value` (dtype inferred from it by default)."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    d = _dt(dtype, _infer_dtype(fill_value))
    return _factory(_FULL, {"size": _size((size,)), "fill_value": fill_value, "dtype": d, "device": _dev(device)},
                    requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _factory(_FULL, {"size": _size(size), "fill_value": 0, "dtype": _dt(dtype), "device": _dev(device)},
                    requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _factory(_FULL, {"size": _size(size), "fill_value": 1, "dtype": _dt(dtype), "device": _dev(device)},
                    requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _factory(_EMPTY, {"size": _size(size), "dtype": _dt(dtype), "device": _dev(device)}, requires_grad)


def _like(input, dtype, device):
    return tuple(input.shape), (input.dtype if dtype is None else D.as_dtype(dtype)), \
        (input.device if device is None else as_device(device))


def _keep_layout(out, input):
    """`out` in `input`'s strides when those are dense and non-overlapping (PyTorch's *_like keep them)."""
    st = input.stride()
    if input.is_contiguous():
        return out
    req = 1
    for d in sorted(range(input.ndim), key=lambda d: st[d]):
        n = input.shape[d]
        if n < 2:
            continue
        if st[d] != req:
            return out
        req *= n
    arr = out._data
    xp = array_module(arr)
    strides = tuple(s * arr.itemsize for s in st)
    with on_device_of(arr):
        view = xp.lib.stride_tricks.as_strided(xp.empty(arr.size, arr.dtype), arr.shape, strides)
        view[...] = arr
    out._data = view
    return out


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(zeros(s, dtype=d, device=dev, requires_grad=requires_grad), input)


def ones_like(input, *, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(ones(s, dtype=d, device=dev, requires_grad=requires_grad), input)


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(empty(s, dtype=d, device=dev, requires_grad=requires_grad), input)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(full(s, fill_value, dtype=d, device=dev, requires_grad=requires_grad), input)


def _num(v):
    return v.item() if isinstance(v, Tensor) else v


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from start (default 0) up to, not including, end; int64 unless an argument is a float."""
    if end is None:
        start, end = 0, start
    start, end, step = _num(start), _num(end), _num(step)
    floaty = any(isinstance(v, float) for v in (start, end, step))
    d = _dt(dtype, D.get_default_dtype() if floaty else D.int64)
    return _factory(_ARANGE, {"start": start, "end": end, "step": step, "dtype": d, "device": _dev(device)},
                    requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    return _factory(_LINSPACE, {"start": _num(start), "end": _num(end), "steps": int(steps), "dtype": _dt(dtype),
                                "device": _dev(device)}, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    if n < 0 or (m is not None and m < 0):
        raise RuntimeError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    return _factory(_EYE, {"n": int(n), "m": int(n if m is None else m), "dtype": _dt(dtype),
                           "device": _dev(device)}, requires_grad)


def _gen(generator):
    return (generator or default_generator)._np


def _float_only(what, dtype):
    if dtype is not None and not D.as_dtype(dtype).is_floating_point:
        raise NotImplementedError(f"{what}: not implemented for {D.as_dtype(dtype)}; use a floating-point dtype")


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    _float_only("rand", dtype)
    return _factory(_RAND, {"size": _size(size), "dtype": _dt(dtype), "device": _dev(device),
                            "generator": _gen(generator)}, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    _float_only("randn", dtype)
    return _factory(_RANDN, {"size": _size(size), "dtype": _dt(dtype), "device": _dev(device),
                             "generator": _gen(generator)}, requires_grad)


def randint(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """randint(high, size) or randint(low, high, size): integers in [low, high), int64 by default."""
    args = list(args)
    if size is None:
        if not args or not isinstance(args[-1], (tuple, list)):
            raise TypeError("randint() missing required argument 'size' (a tuple of ints)")
        size = args.pop()
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint() expects (high, size) or (low, high, size)")
    return _factory(_RANDINT, {"low": int(low), "high": int(high), "size": _size((size,)),
                               "dtype": _dt(dtype, D.int64), "device": _dev(device), "generator": _gen(generator)},
                    requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1."""
    return _factory(_RANDPERM, {"n": int(n), "dtype": _dt(dtype, D.int64), "device": _dev(device),
                                "generator": _gen(generator)}, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(rand(s, dtype=d, device=dev, requires_grad=requires_grad), input)


def randn_like(input, *, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(randn(s, dtype=d, device=dev, requires_grad=requires_grad), input)


def randint_like(input, low=0, high=None, *, dtype=None, device=None):
    if high is None:
        low, high = 0, low
    s, d, dev = _like(input, dtype, device)
    return _keep_layout(randint(low, high, s, dtype=d, device=dev), input)


FUNCTIONS = {f.__name__: f for f in (
    tensor, as_tensor, asarray, from_numpy, from_dlpack, full, zeros, ones, empty, zeros_like, ones_like,
    empty_like, full_like, arange, linspace, eye, rand, randn, randint, randperm, rand_like, randn_like,
    randint_like, manual_seed, seed, initial_seed, get_rng_state, set_rng_state)}
FUNCTIONS["asarray"] = asarray
