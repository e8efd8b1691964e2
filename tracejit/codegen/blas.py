"""Matrix products and 2-D convolution on the CPU through a CBLAS found at run time, with fused epilogues.

Where the BLAS comes from (`load`; the first library that has ``cblas_sgemm`` and ``cblas_dgemm`` wins):

1. the OpenBLAS that numpy bundles, in ``numpy.libs/`` (Linux and Windows wheels) or ``numpy/.dylibs/``
   (macOS). numpy 2 wheels ship scipy-openblas64, whose symbols carry a prefix and a suffix
   (``scipy_cblas_sgemm64_``, ``scipy_openblas_set_num_threads64_``) and take 64-bit integers;
2. the ``scipy_openblas64`` and ``scipy_openblas32`` pip packages (``<package>/lib/``);
3. a system ``libopenblas``, ``libcblas`` or ``libblas`` (`ctypes.util.find_library`).

Each library is probed with four spellings of the names (with or without the ``scipy_`` prefix and the
``64_`` suffix). Integers are 64-bit when the names end in ``64_`` or ``openblas_get_config`` reports
USE64BITINT, else 32-bit. Functions are called through `ctypes.CDLL`, which releases the GIL. When no
library is usable, or ``TRACEJIT_BLAS=numpy`` is set, everything here computes the same results with
``numpy.matmul``; ``TRACEJIT_BLAS=/path/to/libopenblas.so`` tries only that library. `backend()` tells
what was found; `load()` searches again (after the variable changed, say).

What it offers: `gemm` (``out = alpha * op(a) @ op(b) + beta * out`` on 2-D arrays, checked) and
`matmul` (numpy's semantics); for hot paths, kernels built once around fixed parameters, whose calls
cost little more than the BLAS call itself: `LinearKernel` (``tj::linear``, x @ weight.T + bias, then
relu) and `Conv2dKernel` (PyTorch's conv2d by im2col into reused buffers, bias folded into the product,
relu). Kernels own packed copies of weight and bias: rebuild one after changing its parameters.
`linear` and `conv2d` build and run a kernel once. `set_num_threads` sizes OpenBLAS's thread pool.

    >>> import numpy as np
    >>> weight = np.array([[1.0, -2.0], [0.5, 0.5]], np.float32)
    >>> lin = LinearKernel(weight, np.array([0.0, 1.0], np.float32), activation="relu")
    >>> lin(np.array([[1.0, 2.0]], np.float32)).tolist()
    [[0.0, 2.5]]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import math
import os

import numpy as np

__all__ = ["Backend", "Conv2dKernel", "LinearKernel", "backend", "conv2d", "gemm", "get_num_threads", "linear",
           "load", "matmul", "set_num_threads"]

_FLOATS = {np.dtype(np.float32): ("s", ctypes.c_float), np.dtype(np.float64): ("d", ctypes.c_double)}
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_ACTIVATIONS = (None, "relu")
# (prefix, suffix) of the exported names: numpy's scipy-openblas64, scipy-openblas32, an OpenBLAS built
# with SYMBOLSUFFIX=64_ (some Linux distributions), and plain CBLAS.
_SPELLINGS = (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", ""))


class Backend:
    """A loaded BLAS, or the numpy fallback (`lib` is None).

    `name` is the library's file name (or "numpy"), `path` where it was loaded from, `sgemm` the name
    of its single-precision gemm, `int_bits` the width of its integers (64 or 32; None for numpy),
    `config` what OpenBLAS reports about its build.
    """

    def __init__(self, name, path=None, lib=None, prefix="", suffix=""):
        self.name, self.path, self.lib = name, path, lib
        self.sgemm = f"{prefix}cblas_sgemm{suffix}" if lib is not None else None
        self.int_bits, self.config, self.gemm, self.gemm_raw, self.index = None, "", {}, {}, None
        self._set_threads = self._get_threads = None
        if lib is None:
            return

        def symbol(base):
            try:
                return lib[f"{prefix}{base}{suffix}"]
            except AttributeError:
                return None

        get_config = symbol("openblas_get_config")
        if get_config is not None:
            get_config.argtypes, get_config.restype = [], ctypes.c_char_p
            self.config = (get_config() or b"").decode(errors="replace").strip()
        self.int_bits = 64 if suffix == "64_" or "USE64BITINT" in self.config else 32
        self.index = index = ctypes.c_int64 if self.int_bits == 64 else ctypes.c_int32
        for dtype, (letter, real) in _FLOATS.items():
            fn = symbol(f"cblas_{letter}gemm")
            fn.argtypes = [ctypes.c_int] * 3 + [index] * 3 + [real, ctypes.c_void_p, index, ctypes.c_void_p, index,
                                                             real, ctypes.c_void_p, index]
            fn.restype = None
            self.gemm[dtype] = fn
            # The same function without argtypes, for kernels that pass prebuilt ctypes values: converting
            # fourteen Python numbers costs more than the call itself for small products.
            raw = symbol(f"cblas_{letter}gemm")
            raw.restype = None
            self.gemm_raw[dtype] = raw
        self._set_threads, self._get_threads = symbol("openblas_set_num_threads"), symbol("openblas_get_num_threads")
        if self._set_threads is not None:
            self._set_threads.argtypes, self._set_threads.restype = [ctypes.c_int], None
        if self._get_threads is not None:
            self._get_threads.argtypes, self._get_threads.restype = [], ctypes.c_int

    def gemm_args(self, dtype, m, n, k, a, lda, b, ldb, c, ldc, trans_b=False, beta=0.0):
        """The arguments of one row-major ``c = a @ op(b) + beta * c`` for `gemm_raw`, as ctypes values."""
        real, index, ptr = _FLOATS[dtype][1], self.index, ctypes.c_void_p
        return (_ROW_MAJOR, _NO_TRANS, _TRANS if trans_b else _NO_TRANS, index(m), index(n), index(k), real(1.0),
                ptr(a), index(lda), ptr(b), index(ldb), real(beta), ptr(c), index(ldc))

    @property
    def max_dim(self):
        """The largest size or leading dimension one call can take."""
        return 2**63 - 1 if self.int_bits == 64 else 2**31 - 1

    def __repr__(self):
        if self.lib is None:
            return "Backend(numpy.matmul fallback)"
        return (f"Backend({self.name!r}, {self.sgemm}, {self.int_bits}-bit ints, {self.config or 'no config'!r}, "
                f"path={self.path!r})")


def _candidate_paths():
    here = os.path.dirname(np.__file__)
    for folder in (os.path.join(os.path.dirname(here), "numpy.libs"), os.path.join(here, ".dylibs")):
        yield from sorted(glob.glob(os.path.join(folder, "*openblas*")))
    for package in ("scipy_openblas64", "scipy_openblas32"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            yield from sorted(glob.glob(os.path.join(folder, "lib", "*openblas*")))
    for name in ("openblas", "cblas", "blas"):
        found = ctypes.util.find_library(name)
        if found:
            yield found


def _open(path):
    """A Backend for the library at `path`, or None when it cannot be loaded or has no CBLAS gemm."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix in _SPELLINGS:
        names = [f"{prefix}cblas_{letter}gemm{suffix}" for letter, _ in _FLOATS.values()]
        if all(hasattr(lib, n) for n in names):
            return Backend(os.path.basename(path), path, lib, prefix, suffix)
    return None


_loaded = None


def load(force=None):
    """Search for a BLAS again and make it the one every later call uses; returns the new `Backend`.

    `force` overrides ``TRACEJIT_BLAS``: "numpy" for the fallback, a path or library name to use only that
    library (ValueError when it has no CBLAS gemm), None or "auto" to search. Kernels built before keep
    the backend they were built with.
    """
    global _loaded
    choice = force if force is not None else os.environ.get("TRACEJIT_BLAS", "")
    if choice == "numpy":
        _loaded = Backend("numpy")
    elif choice not in ("", "auto"):
        by_name = ctypes.util.find_library(choice)
        found = _open(choice) or (_open(by_name) if by_name else None)
        if found is None:
            raise ValueError(f"TRACEJIT_BLAS={choice!r}: no loadable library with cblas_sgemm and cblas_dgemm there; "
                             "use a path to a CBLAS, 'numpy' or 'auto'")
        _loaded = found
    else:
        _loaded = next(filter(None, map(_open, _candidate_paths())), None) or Backend("numpy")
    return _loaded


def backend():
    """The BLAS in use (found on first use; see `load`).

        >>> found = backend()
        >>> found.lib is None or found.int_bits in (32, 64)
        True
    """
    return _loaded if _loaded is not None else load()


def set_num_threads(n):
    """Size OpenBLAS's thread pool (numpy's matmul shares it when it is numpy's bundled library).

    A no-op for the numpy fallback or a BLAS without ``openblas_set_num_threads``.
    """
    if int(n) < 1:
        raise ValueError(f"set_num_threads: n must be a positive thread count, got {n}")
    setter = backend()._set_threads
    if setter is not None:
        setter(int(n))


def get_num_threads():
    """OpenBLAS's thread count, or None when the backend has no way to tell (numpy fallback, other BLAS)."""
    getter = backend()._get_threads
    return None if getter is None else int(getter())


# ---- pointers and layouts -----------------------------------------------------------------------------

_char = ctypes.c_char


def _address(a):
    """The data pointer of `a`; ctypes' buffer view is ~3x cheaper than ``a.ctypes.data`` where it works."""
    try:
        return ctypes.addressof(_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):  # read-only, empty or not C-contiguous
        return a.ctypes.data


def _float_dtype(a, what, fn):
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{fn}: {what} must be a numpy array, got {type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise ValueError(f"{fn}: {what} has dtype {a.dtype}; expected float32 or float64")
    return a.dtype


def _layout(a):
    """How a row-major BLAS sees the 2-D array `a`: (transposed, leading dimension); None when it cannot."""
    rows, cols = a.shape
    if a.flags.c_contiguous:
        return False, max(1, cols)
    if a.flags.f_contiguous:
        return True, max(1, rows)
    item, (s0, s1) = a.itemsize, a.strides
    if s1 == item and s0 % item == 0 and s0 >= cols * item:
        return False, s0 // item
    if s0 == item and s1 % item == 0 and s1 >= rows * item:
        return True, s1 // item
    return None


def _matrix_layout(a):
    """`_layout` of every matrix of a 2-D or 3-D array (they share their strides); None when one has none."""
    return _layout(a if a.ndim == 2 else a[0]) if a.ndim == 2 or len(a) else (False, 1)


def gemm(a, b, out, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """``out = alpha * op(a) @ op(b) + beta * out`` in place, op transposing when trans_* is set; returns out.

    a, b and out are 2-D float32 or float64 arrays of one dtype. Inputs may be C- or Fortran-contiguous or
    slices of whole rows (strided views are used as they are, never copied); anything else raises
    ValueError, as do mismatched shapes and an out that overlaps an input. With beta=0 the old contents of
    out are ignored (NaN included), as in BLAS.

        >>> a = np.arange(6.0).reshape(2, 3)
        >>> gemm(a, a, np.zeros((2, 2)), trans_b=True).tolist()
        [[5.0, 14.0], [14.0, 50.0]]
    """
    dtype = _float_dtype(out, "out", "gemm")
    for what, arr in (("a", a), ("b", b)):
        if _float_dtype(arr, what, "gemm") != dtype:
            raise ValueError(f"gemm: {what} has dtype {arr.dtype} but out has {dtype}; expected one dtype for all")
    for what, arr in (("a", a), ("b", b), ("out", out)):
        if arr.ndim != 2:
            raise ValueError(f"gemm: {what} must be 2-D, got shape {arr.shape}")
    m, k = a.shape[::-1] if trans_a else a.shape
    k_b, n = b.shape[::-1] if trans_b else b.shape
    if k != k_b or out.shape != (m, n):
        raise ValueError(f"gemm: op(a) is {m}x{k} and op(b) is {k_b}x{n}, out has shape {out.shape}; expected "
                         f"op(a) columns == op(b) rows and out of shape ({m}, {k_b if k != k_b else n})")
    if not out.flags.writeable:
        raise ValueError("gemm: out is read-only")
    for what, arr in (("a", a), ("b", b)):
        if np.may_share_memory(out, arr):
            raise ValueError(f"gemm: out overlaps {what}; expected a separate output array")
    if m == 0 or n == 0:
        return out
    if k == 0:
        if beta == 0:
            out.fill(0)
        else:
            out *= beta
        return out
    be = backend()
    if be.lib is None:
        return _numpy_gemm(a.T if trans_a else a, b.T if trans_b else b, out, alpha, beta)
    layouts = [_layout(arr) for arr in (a, b, out)]
    for what, arr, layout in zip(("a", "b", "out"), (a, b, out), layouts):
        if layout is None:
            raise ValueError(f"gemm: {what} has shape {arr.shape} and strides {arr.strides}; expected unit stride "
                             f"along one axis (C- or Fortran-contiguous, or a slice of whole rows); pass "
                             f"np.ascontiguousarray({what})")
    (a_t, lda), (b_t, ldb), (out_t, ldc) = layouts
    ta, tb = trans_a != a_t, trans_b != b_t
    pa, pb = _address(a), _address(b)
    if out_t:  # out is stored transposed: compute out.T = op(b).T @ op(a).T
        m, n, ta, tb, pa, pb, lda, ldb = n, m, not tb, not ta, pb, pa, ldb, lda
    if max(m, n, k, lda, ldb, ldc) > be.max_dim:
        raise ValueError(f"gemm: sizes {m}x{n}x{k} exceed the {be.int_bits}-bit integers of {be.name}")
    be.gemm[dtype](_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k, float(alpha), pa,
                   lda, pb, ldb, float(beta), _address(out), ldc)
    return out


def _numpy_gemm(op_a, op_b, out, alpha, beta):
    if beta == 0:
        np.matmul(op_a, op_b, out=out)
        if alpha != 1:
            out *= alpha
    else:
        product = np.matmul(op_a, op_b)
        out *= beta
        out += product if alpha == 1 else alpha * product
    return out


def matmul(a, b, out=None):
    """``numpy.matmul`` through the BLAS for float32/float64 2-D and 3-D operands of one dtype.

    A 3-D a times a 2-D b is one product over all rows; other batches loop over gemm. Everything else
    (1-D or 4-D+ operands, mixed or integer dtypes, matrices without a unit stride, an out that is not
    C-contiguous or overlaps an input) goes to numpy.

        >>> matmul(np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32)).shape
        (2, 3, 5)
    """
    a, b = np.asarray(a), np.asarray(b)
    batch = a.shape[:-2] if a.ndim >= b.ndim else b.shape[:-2]
    if (backend().lib is None or a.dtype != b.dtype or a.dtype not in _FLOATS or not 2 <= a.ndim <= 3
            or not 2 <= b.ndim <= 3 or a.shape[-1] != b.shape[-2]
            or (a.ndim == b.ndim == 3 and a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]))
            or _matrix_layout(a) is None or _matrix_layout(b) is None):
        return np.matmul(a, b, out=out)
    if a.ndim == b.ndim == 3:
        batch = (max(a.shape[0], b.shape[0]),)
    shape = batch + (a.shape[-2], b.shape[-1])
    if out is None:
        out = np.empty(shape, a.dtype)
    elif (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != a.dtype
          or not out.flags.c_contiguous or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return np.matmul(a, b, out=out)
    if a.ndim == 2 and b.ndim == 2:
        return gemm(a, b, out)
    if b.ndim == 2 and a.flags.c_contiguous:
        gemm(a.reshape(-1, a.shape[-1]), b, out.reshape(-1, shape[-1]))
        return out
    for i in range(shape[0]):
        gemm(a if a.ndim == 2 else a[i % a.shape[0]], b if b.ndim == 2 else b[i % b.shape[0]], out[i])
    return out


# ---- linear ---------------------------------------------------------------------------------------------


def _check_activation(activation, fn):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{fn}: activation must be one of {_ACTIVATIONS}, got {activation!r}")


class LinearKernel:
    """``out = activation(x @ weight.T + bias)``: PyTorch's linear (``tj::linear``) with fixed parameters.

    weight is (out_features, in_features), bias (out_features,) or None, activation None or "relu"; the
    kernel keeps contiguous copies of both. Call it as ``kernel(x, out=None)``: x is (..., in_features)
    with weight's dtype (leading dims are flattened; a non-contiguous x is copied first), out a C-contiguous
    (..., out_features) array to write into, or None to allocate one. The BLAS arguments for the last x and
    out are kept (with references to both, which also stop ``ndarray.resize`` from moving them), so calling
    again with the same buffers costs one bias copy, one BLAS call and the relu. Several threads may call
    one kernel at once.

        >>> k = LinearKernel(np.eye(3, dtype=np.float64)[:2], np.array([1.0, 2.0]))
        >>> k(np.ones((2, 2, 3))).shape
        (2, 2, 2)
    """

    def __init__(self, weight, bias=None, activation=None):
        weight = np.asarray(weight)
        self.dtype = _float_dtype(weight, "weight", "LinearKernel")
        if weight.ndim != 2:
            raise ValueError(f"LinearKernel: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
        _check_activation(activation, "LinearKernel")
        self.weight = np.array(weight, order="C")
        self.out_features, self.in_features = weight.shape
        self.bias = None
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (self.out_features,) or bias.dtype != self.dtype:
                raise ValueError(f"LinearKernel: bias has shape {bias.shape} and dtype {bias.dtype}; expected "
                                 f"({self.out_features},) {self.dtype}")
            self.bias = np.array(bias)
        self.activation = activation
        self.backend = backend()
        self._gemm = self.backend.gemm_raw.get(self.dtype)
        self._template = None if self._gemm is None else self.backend.gemm_args(
            self.dtype, 0, self.out_features, self.in_features, 0, self.in_features, _address(self.weight),
            self.in_features, 0, self.out_features, trans_b=True, beta=0.0 if bias is None else 1.0)
        self._zero = self.dtype.type(0)
        self._last = (None, None, None)  # (x, out, BLAS arguments) of the last call

    def __call__(self, x, out=None):
        if (type(x) is not np.ndarray or x.dtype is not self.dtype or not x.flags.c_contiguous or not x.ndim
                or x.shape[-1] != self.in_features):
            x = self._coerce(x)
        if out is None:
            out = np.empty(x.shape[:-1] + (self.out_features,), self.dtype)
            args = self._prepare(x, out, fresh=True)
        else:
            last_x, last_out, args = self._last  # read once: another thread may replace it meanwhile
            if x is not last_x or out is not last_out:
                args = self._prepare(x, out)
        if self.bias is not None:
            out[...] = self.bias
        if args is None:
            self._numpy(x, out)
        else:
            self._gemm(*args)
        if self.activation == "relu":
            np.maximum(out, self._zero, out=out)
        return out

    def _prepare(self, x, out, fresh=False):
        """Check out against x and build the BLAS arguments (None: let numpy do it) for this pair."""
        shape = x.shape[:-1] + (self.out_features,)
        if not fresh:
            if type(out) is not np.ndarray or out.dtype != self.dtype or out.shape != shape:
                got = f"{type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}".strip()
                raise ValueError(f"LinearKernel: out is {got}; expected a {self.dtype} array of shape {shape}")
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError("LinearKernel: out must be a writeable C-contiguous array")
            if np.may_share_memory(out, x):
                raise ValueError("LinearKernel: out overlaps x; expected a separate output array")
        k, n = self.in_features, self.out_features
        m = x.size // k if k else 0
        if self._gemm is None or m == 0 or n == 0 or k == 0 or max(m, n, k) > self.backend.max_dim:
            return None
        # all but m and the x and out pointers are the same every call: reuse them
        args = self._template[:3] + (self.backend.index(m),) + self._template[4:7] + (ctypes.c_void_p(_address(x)),) \
            + self._template[8:12] + (ctypes.c_void_p(_address(out)), self._template[13])
        if not fresh:
            self._last = (x, out, args)
        return args

    def _numpy(self, x, out):
        m = math.prod(x.shape[:-1])
        out2, x2 = out.reshape(m, self.out_features), x.reshape(m, self.in_features)
        if self.bias is None:
            np.matmul(x2, self.weight.T, out=out2)
        else:
            out2 += x2 @ self.weight.T

    def _coerce(self, x):
        x = np.asarray(x)
        if x.dtype != self.dtype:
            raise ValueError(f"LinearKernel: x has dtype {x.dtype}; expected {self.dtype} (the weight's)")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"LinearKernel: x has shape {x.shape}; expected (..., {self.in_features})")
        return np.ascontiguousarray(x)


def linear(x, weight, bias=None, activation=None, out=None):
    """One call of `LinearKernel` (build the kernel once instead where the weights stay fixed).

        >>> linear(np.ones((1, 2)), np.ones((3, 2)), np.arange(3.0)).tolist()
        [[2.0, 3.0, 4.0]]
    """
    return LinearKernel(weight, bias, activation)(x, out)


# ---- conv2d ---------------------------------------------------------------------------------------------

# Bytes of columns (and products) per chunk of images, per layout (see Conv2dKernel); measured best on a
# 2-core Sapphire Rapids with 2 MiB of L2 per core.
_CHUNK_BYTES = {"direct": 1 << 18, "rows": 1 << 21}
# Window-row columns (see Conv2dKernel) need this many rows per group (C_in/groups * kH) to keep the
# products efficient, and pay for computing at most this multiple of the output width.
_ROWS_MIN_DEPTH = 16
_ROWS_MAX_WASTE = 1.5


def _pair(value, what):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"Conv2dKernel: {what} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _padding(padding, stride, dilation, kernel):
    """(top, bottom, left, right) zero padding; 'same' pads the odd extra on the bottom/right, as PyTorch."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("Conv2dKernel: padding='same' needs stride 1, as in PyTorch")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, totals[1] - totals[1] // 2
    if isinstance(padding, str):
        raise ValueError(f"Conv2dKernel: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"Conv2dKernel: padding must be non-negative, got {padding!r}")
    return ph, ph, pw, pw


def _aligned(shape, dtype, fill=None):
    """An array starting on a 64-byte (cache line) boundary: BLAS runs measurably steadier on those."""
    size = math.prod(shape) * dtype.itemsize
    raw = np.empty(size + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + size].view(dtype).reshape(shape)
    if fill is not None:
        out.fill(fill)
    return out


def _view(base, shape, strides, offset=0):
    """A view of the C-contiguous `base` with strides and offset counted in elements."""
    item = base.itemsize
    return np.ndarray(shape, base.dtype, buffer=base, offset=offset * item, strides=[s * item for s in strides])


class Conv2dKernel:
    """PyTorch's conv2d on NCHW arrays of one shape, with fixed weight and bias and an optional relu.

    weight is (C_out, C_in/groups, kH, kW); stride and dilation are ints or pairs, padding an int, a
    pair, 'valid' or 'same' (zeros). Call it as ``kernel(x, out=None)``; x is copied first when it is not
    C-contiguous. The buffers are the kernel's own: call one kernel from one thread at a time.

    im2col, one chunk of images at a time: a strided view of the (zero-padded) input holds the windows,
    one copy puts them in a reused column buffer, BLAS multiplies by the packed weight. A row of ones
    under the columns makes the bias one more weight column. Two layouts of the columns:

    - "direct": whole windows (C_in/groups * kH * kW rows; any stride), one product per image and group
      written straight into out;
    - "rows": C_in/groups * kH rows holding whole input rows (width stride 1, enough channels), so the
      copy moves long contiguous runs and is kW times smaller. Per group, kW products over the whole
      chunk, each reading the columns shifted by one tap, add up; a copy into out puts the channels
      first and drops the extra columns at the end of each row.

    `layout` says which one a kernel uses.

        >>> k = Conv2dKernel((1, 1, 3, 3), np.ones((2, 1, 2, 2), np.float32), np.array([0.0, -9.0], np.float32),
        ...                  activation="relu")
        >>> k(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3))[0].tolist()
        [[[8.0, 12.0], [20.0, 24.0]], [[0.0, 3.0], [11.0, 15.0]]]
    """

    def __init__(self, x_shape, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None):
        weight = np.asarray(weight)
        self.dtype = dtype = _float_dtype(weight, "weight", "Conv2dKernel")
        _check_activation(activation, "Conv2dKernel")
        if len(x_shape) != 4 or weight.ndim != 4:
            raise ValueError(f"Conv2dKernel: expected a 4-D input (N, C, H, W) and 4-D weight (C_out, C_in/groups, "
                             f"kH, kW), got input shape {tuple(x_shape)} and weight shape {weight.shape}")
        self.x_shape = n, c, h, w = tuple(int(d) for d in x_shape)
        c_out, c_group, kh, kw = weight.shape
        if not isinstance(groups, (int, np.integer)) or groups < 1 or c_out % groups or c != c_group * groups:
            raise ValueError(f"Conv2dKernel: input has {c} channels and weight shape {weight.shape} with groups="
                             f"{groups}; expected C_in == weight.shape[1] * groups and C_out divisible by groups")
        (sh, sw), (dh, dw) = _pair(stride, "stride"), _pair(dilation, "dilation")
        if min(sh, sw, dh, dw) < 1:
            raise ValueError(f"Conv2dKernel: stride and dilation must be positive, got {stride!r} and {dilation!r}")
        top, bottom, left, right = _padding(padding, (sh, sw), (dh, dw), (kh, kw))
        hp, wp = h + top + bottom, w + left + right
        oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"Conv2dKernel: a {h}x{w} input padded to {hp}x{wp} is smaller than the dilated "
                             f"{dh * (kh - 1) + 1}x{dw * (kw - 1) + 1} kernel; output would be {oh}x{ow}")
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (c_out,) or bias.dtype != dtype:
                raise ValueError(f"Conv2dKernel: bias has shape {bias.shape} and dtype {bias.dtype}; expected "
                                 f"({c_out},) {dtype}")
        self.out_shape = (n, c_out, oh, ow)
        self.activation, self.backend = activation, backend()
        g, co_g = groups, c_out // groups
        rows = sw == 1 and kw > 1 and c_group * kh >= _ROWS_MIN_DEPTH and wp <= _ROWS_MAX_WASTE * ow
        shifts, taps, row = (kw, 1, wp) if rows else (1, kw, ow)  # products per chunk, taps per column, row width
        k_g = c_group * kh * taps
        kb, length = k_g + (bias is not None), oh * row
        self._direct = not rows
        self.layout = "rows" if rows else "direct"
        per_image = (g * kb + (c_out if rows else 0)) * length * dtype.itemsize  # columns (and products)
        nb = max(1, min(n, _CHUNK_BYTES[self.layout] // per_image))
        ld = nb * length + (kw - 1) * dw * rows  # the last shifted product reads kW-1 taps past the end
        ld += -ld % (64 // dtype.itemsize)  # each row on a cache line boundary
        self._cols = _aligned((g, kb, ld), dtype, fill=0)
        self._packed = _aligned((shifts, g, co_g, kb), dtype, fill=0)  # per shift: (groups, C_out/groups, rows)
        per_tap = weight.reshape(g, co_g, c_group, kh, kw)
        for i in range(shifts):
            self._packed[i, ..., :k_g] = (per_tap[..., i] if rows else per_tap).reshape(g, co_g, k_g)
        if bias is not None:
            self._packed[0, ..., k_g] = bias.reshape(g, co_g)
            self._cols[:, k_g] = 1
        self._geometry = (g, co_g, kb, length, nb, ld, shifts, dw)
        self._chunks = [(i, min(n, i + nb)) for i in range(0, n, nb)]
        # the windows of an (N, C, hp, wp) input and their places in the columns, as arrays of shape
        # (groups, C/groups, kh, taps, images, oh, row)
        self._window_shape = (g, c_group, kh, taps, n, oh, row)
        self._window_strides = (c_group * hp * wp, hp * wp, dh * wp, dw, c * hp * wp, sh * wp, sw)
        self._dst = {n1 - n0: _view(self._cols, self._window_shape[:4] + (n1 - n0, oh, row),
                                    (kb * ld, kh * taps * ld, taps * ld, ld, length, row, 1))
                     for n0, n1 in self._chunks}
        self._src = None
        if top or bottom or left or right:
            self._xpad = np.zeros((n, c, hp, wp), dtype)
            self._interior = self._xpad[:, :, top:top + h, left:left + w]
            self._src = _view(self._xpad, self._window_shape, self._window_strides)
        self._res = None if self._direct else _aligned((c_out, nb, oh, row), dtype)
        # relu as a maximum against zeros of the same shape: twice as fast as against a scalar 0
        self._zeros = np.zeros((nb, c_out, oh, ow), dtype) if activation == "relu" else None
        self._gemm = self.backend.gemm_raw.get(dtype)
        if max(g * kb * ld, n * c_out * length) > self.backend.max_dim:
            self._gemm = None
        self._last = (None, None)  # (out, BLAS arguments per chunk) of the last call
        if not self._direct and self._gemm is not None:
            self._last = (None, self._blas_args(None))

    def _blas_args(self, out):
        """Per chunk, the gemm arguments: per shift and group into the product buffer, or per image and group
        straight into out."""
        g, co_g, kb, length, nb, ld, shifts, dw = self._geometry
        item, dtype, be = self.dtype.itemsize, self.dtype, self.backend
        packed, cols = _address(self._packed), _address(self._cols)
        weights = [packed + i * co_g * kb * item for i in range(shifts * g)]  # (shift, group) blocks
        per_chunk = []
        for n0, n1 in self._chunks:
            if self._direct:
                base = _address(out)
                per_chunk.append([be.gemm_args(dtype, co_g, length, kb, weights[i], kb,
                                               cols + (i * kb * ld + j * length) * item, ld,
                                               base + ((n0 + j) * g + i) * co_g * length * item, length)
                                  for j in range(n1 - n0) for i in range(g)])
                continue
            res = _address(self._res)
            per_chunk.append([be.gemm_args(dtype, co_g, (n1 - n0) * length, kb, weights[t * g + i], kb,
                                           cols + (i * kb * ld + t * dw) * item, ld,
                                           res + i * co_g * nb * length * item, nb * length, beta=float(t > 0))
                              for t in range(shifts) for i in range(g)])
        return per_chunk

    def __call__(self, x, out=None):
        if type(x) is not np.ndarray or x.dtype is not self.dtype or x.shape != self.x_shape:
            x = np.asarray(x)
            if x.dtype != self.dtype or x.shape != self.x_shape:
                raise ValueError(f"Conv2dKernel: x is {x.dtype} {x.shape}; expected {self.dtype} {self.x_shape} "
                                 "(build a kernel per input shape)")
        x = np.ascontiguousarray(x)
        last_out, args = self._last  # read once: another thread may replace it meanwhile
        if out is None or out is not last_out:
            if out is None:
                out = np.empty(self.out_shape, self.dtype)
            else:
                self._check_out(x, out)
            if self._direct and self._gemm is not None:
                args = self._blas_args(out)
            self._last = (out, args)
        if self._src is not None:
            np.copyto(self._interior, x)
            src = self._src
        else:
            src = _view(x, self._window_shape, self._window_strides)
        zeros, ow = self._zeros, self.out_shape[3]
        for i, (n0, n1) in enumerate(self._chunks):
            np.copyto(self._dst[n1 - n0], src[:, :, :, :, n0:n1])
            if self._gemm is None:
                self._numpy(out[n0:n1])
            else:
                for step in args[i]:
                    self._gemm(*step)
            if not self._direct:  # (images, C_out, oh, ow) from the (C_out, images, oh, row) product
                product = self._res[:, :n1 - n0, :, :ow].transpose(1, 0, 2, 3)
                if zeros is None:
                    np.copyto(out[n0:n1], product)
                else:
                    np.maximum(product, zeros[:n1 - n0], out=out[n0:n1])
            elif zeros is not None:
                np.maximum(out[n0:n1], zeros[:n1 - n0], out=out[n0:n1])
        return out

    def _numpy(self, out):
        g, co_g, kb, length, nb, ld, shifts, dw = self._geometry
        images = out.shape[0]
        if self._direct:
            cols = self._cols[:, :, :nb * length].reshape(g, kb, nb, length)[:, :, :images].transpose(2, 0, 1, 3)
            np.matmul(self._packed[0], cols, out=out.reshape(images, g, co_g, length))
            return
        res = self._res.reshape(g, co_g, nb * length)[:, :, :images * length]
        for t in range(shifts):
            product = np.matmul(self._packed[t], self._cols[:, :, t * dw:t * dw + images * length])
            if t:
                res += product
            else:
                res[...] = product

    def _check_out(self, x, out):
        if type(out) is not np.ndarray or out.dtype != self.dtype or out.shape != self.out_shape:
            got = f"{type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}".strip()
            raise ValueError(f"Conv2dKernel: out is {got}; expected a {self.dtype} array of shape {self.out_shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("Conv2dKernel: out must be a writeable C-contiguous array")
        if np.may_share_memory(out, x):
            raise ValueError("Conv2dKernel: out overlaps x; expected a separate output array")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None, out=None):
    """One call of `Conv2dKernel`; an unbatched (C, H, W) x gives a (C_out, OH, OW) result, as in PyTorch.

        >>> conv2d(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), padding=1).shape
        (1, 3, 4, 4)
    """
    x = np.asarray(x)
    if x.ndim == 3:
        batched_out = None if out is None else out[None]
        return conv2d(x[None], weight, bias, stride, padding, dilation, groups, activation, batched_out)[0]
    kernel = Conv2dKernel(x.shape, weight, bias, stride, padding, dilation, groups, activation)
    return kernel(x, out)
