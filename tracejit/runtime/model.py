"""`load(path) -> Model`: a saved model, callable on numpy arrays, without the front end.

Inputs are checked against the signature before anything runs, and every message shows it.
The dtype rule: an array must have exactly the declared dtype -- no silent casts, since
float64 -> float32 loses precision and int -> float hides a mix-up (`x.astype(np.float32)` says
what is meant). Only Python numbers and lists, which carry no width, are converted, and only
within their kind or upwards (int -> float, bool -> int), never float -> int. A byte-swapped
array of the right dtype (from a big-endian `.npy`) is brought to native order.

    >>> import os, tempfile
    >>> import numpy as np
    >>> from tracejit.ir import parse
    >>> from tracejit.runtime.tjfile import save_graph
    >>> g = parse('graph(%x : Float(N, 2)):\\n  %1 : Float(N, 2) = tj::relu(%x)\\n  return (%1)\\n')
    >>> path = os.path.join(tempfile.mkdtemp(), "relu.tj")
    >>> _ = save_graph(path, g)
    >>> model = load(path)
    >>> model(np.array([[-1.0, 2.0]], np.float32))
    array([[0., 2.]], dtype=float32)
    >>> model(x=[[3, -4]])
    array([[3., 0.]], dtype=float32)
    >>> print(model.signature)
    (x: float32[N, 2]) -> (output: float32[N, 2])

`load(path, device="cuda")` runs the model on the GPU (`runtime.cuda_plan.CudaPlan`: CUDA kernels
compiled by NVRTC, cuBLAS, cupy). Inputs may be numpy arrays or arrays already on the GPU (cupy, or
anything with `__cuda_array_interface__`); outputs come back as numpy arrays, like on the CPU.
`model.plan.run(*arrays)` skips that copy and returns cupy arrays. Where CUDA is not available,
`load(..., device="cuda")` raises a RuntimeError that says what is missing.
"""

from __future__ import annotations

import os

import numpy as np

from tracejit import devices
from tracejit.runtime.plan import Plan
from tracejit.runtime.tjfile import read


class InputError(ValueError, TypeError):
    """The inputs do not fit the model's signature (a TypeError for names and counts, as Python's own
    calls raise, and a ValueError for dtypes and shapes: it is both, so either can be caught)."""


def _convert(x, on_gpu=False):
    """An ndarray from an array, a front-end Tensor, anything with `__array__` or `.numpy()`; None for
    plain Python data (numbers, lists), which is converted later against the declared dtype. `on_gpu`:
    arrays already on the GPU (`__cuda_array_interface__`) stay there, as cupy arrays."""
    if isinstance(x, np.ndarray):
        return x
    if on_gpu and hasattr(x, "__cuda_array_interface__"):
        return devices.cupy_module().asarray(x)
    if isinstance(x, np.generic):
        return np.asarray(x)
    if hasattr(x, "__array__"):
        return np.asarray(x)
    numpy = getattr(x, "numpy", None)
    if callable(numpy):
        return np.asarray(numpy())
    return None


class Model:
    """A loaded `.tj` model: `model(*arrays, **named_arrays)` returns an array, or a tuple for several outputs.

    `.signature` (inputs and outputs: names, dtypes, shapes), `.graph` (weights in `graph.constants`),
    `.manifest`, `.path`, `.device`, `.plan` (the `Plan`, or `CudaPlan` on the GPU). One Model may be
    called from many threads at once. Outputs are numpy arrays on every device.
    """

    def __init__(self, graph, manifest, signature, *, path=None, native=True, native_members=None, file_bytes=None,
                 device="cpu"):
        self.graph = graph
        self.manifest = manifest
        self.signature = signature
        self.path = path
        self.file_bytes = file_bytes
        self.native_members = dict(native_members or {})
        self.input_names = tuple(s.name for s in signature.inputs)
        self.output_names = tuple(s.name for s in signature.outputs)
        self._index = {n: i for i, n in enumerate(self.input_names)}
        self.device = devices.as_device(device)
        self._on_gpu = self.device.type == "cuda"
        if self._on_gpu:
            from tracejit.runtime.cuda_plan import CudaPlan

            self._plan = CudaPlan(graph, device=self.device.index, native=native, cached=self.native_members)
        else:
            self._plan = Plan(graph, native=native)

    @property
    def plan(self):
        return self._plan

    @property
    def producer(self):
        return self.manifest.get("producer")

    @property
    def num_parameters(self):
        return sum(int(np.size(a)) for a in self.graph.constants.values())

    def __repr__(self):
        where = f" from {self.path}" if self.path else ""
        on = f" on {self.device}" if self._on_gpu else ""
        return f"<tracejit.runtime.Model{where}{on} {self.signature}>"

    def _fail(self, msg):
        raise InputError(f"{msg}; the model expects {self.signature}")

    def bind(self, *args, **kwargs):
        """The inputs as a list of arrays in signature order, checked; raises InputError."""
        specs = self.signature.inputs
        if len(args) > len(specs):
            self._fail(f"got {len(args)} positional inputs but the model takes {len(specs)}")
        slots = list(args) + [_MISSING] * (len(specs) - len(args))
        for name, x in kwargs.items():
            i = self._index.get(name)
            if i is None:
                self._fail(f"unknown input name {name!r} (inputs: {', '.join(self.input_names) or 'none'})")
            if slots[i] is not _MISSING:
                self._fail(f"input {name!r} given twice (by position and by name)")
            slots[i] = x
        missing = [s.name for s, x in zip(specs, slots) if x is _MISSING]
        if missing:
            self._fail(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        bound = {}  # symbol -> (size, the input that fixed it)
        return [self._check(spec, x, bound) for spec, x in zip(specs, slots)]

    def _check(self, spec, x, bound):
        try:
            arr = _convert(x, self._on_gpu)
        except Exception as e:  # a failing __array__ / numpy(): name the input it came from
            self._fail(f"input {spec.name!r} cannot be read as an array ({type(e).__name__}: {e})")
        want = spec.dtype.np
        if arr is None:
            try:
                raw = np.asarray(x)
            except Exception as e:
                self._fail(f"input {spec.name!r} cannot be read as an array ({type(e).__name__}: {e})")
            if raw.dtype.kind not in "biuf" or not np.can_cast(raw.dtype, want, casting="same_kind"):
                self._fail(f"input {spec.name!r} is {type(x).__name__} data of {raw.dtype} values, which do not "
                           f"convert to {spec.dtype.name}")
            arr = raw.astype(want)
            if raw.dtype.kind in "iu" and want.kind in "iu" and not np.array_equal(arr, raw):
                self._fail(f"input {spec.name!r} has values out of the range of {spec.dtype.name}")
        elif arr.dtype != want:
            if arr.dtype.newbyteorder("=") == want and arr.dtype.byteorder not in ("=", "|"):
                arr = arr.astype(want)
            else:
                self._fail(f"input {spec.name!r} has dtype {arr.dtype}, expected {spec.dtype.name} (arrays are not "
                           f"cast implicitly: convert it, e.g. x.astype(np.{want.name}))")
        if spec.shape is not None:
            if arr.ndim != len(spec.shape):
                self._fail(f"input {spec.name!r} has shape {list(arr.shape)} ({arr.ndim}-d), expected "
                           f"{len(spec.shape)}-d [{', '.join(map(str, spec.shape))}]")
            for k, (have, dim) in enumerate(zip(arr.shape, spec.shape)):
                if isinstance(dim, str):
                    size, who = bound.setdefault(dim, (have, spec.name))
                    if size != have:
                        self._fail(f"input {spec.name!r} has {dim}={have} (dim {k}), but input {who!r} has {dim}="
                                   f"{size}; inputs sharing the symbol {dim} must agree")
                elif have != dim:
                    self._fail(f"input {spec.name!r} has shape {list(arr.shape)}, expected "
                               f"[{', '.join(map(str, spec.shape))}] (dim {k} must be {dim})")
        return arr if arr.flags.c_contiguous else arr.copy(order="C")

    def run(self, *arrays):
        """Run on arrays already in signature order and checked (see `bind`); returns a tuple of numpy arrays."""
        outs = self._plan.run(*arrays)
        if self._on_gpu:
            to_host = self._plan.backend.to_host
            return tuple(to_host(o) for o in outs)
        return tuple(np.asarray(o) for o in outs)

    def __call__(self, *args, **kwargs):
        outs = self.run(*self.bind(*args, **kwargs))
        return outs[0] if len(outs) == 1 else outs


_MISSING = object()


def _cuda_missing():
    """Why CUDA cannot be used here (a message), or None when it can."""
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed; on a machine with an NVIDIA GPU and driver: pip install 'tracejit[cuda]'"
    try:
        devices.cupy_module()
    except RuntimeError as e:
        return str(e)
    return None


def _check_device(device):
    try:
        dev = devices.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r}: {e}") from None
    if dev.type == "cuda":
        missing = _cuda_missing()
        if missing is not None:
            raise RuntimeError(f"device={device!r}: CUDA is not available here ({missing}); run on device='cpu'")
        try:
            devices.module_for(dev)
        except RuntimeError as e:
            raise RuntimeError(f"device={device!r}: {e}") from None
    return dev


def load(path, *, device="cpu", native=True):
    """Load the `.tj` file at `path` as a callable Model (see the module docstring).

    `device`: "cpu" (LLVM kernels and BLAS), or "cuda" / "cuda:N" (CUDA kernels, cuBLAS; outputs still come
    back as numpy arrays). `native=False` runs the graph in the reference interpreter instead of compiled
    code (on the device's array module). Raises TracejitFormatError when the file is damaged, truncated, of
    a newer format or inconsistent, and RuntimeError when the device is CUDA and CUDA is not available.
    """
    dev = _check_device(device)
    path = os.fspath(path)
    f = read(path)
    return Model(f.graph, f.manifest, f.signature, path=path, native=native, native_members=f.native,
                 file_bytes=f.file_bytes, device=dev)


__all__ = ["InputError", "Model", "load"]
