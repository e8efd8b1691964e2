"""Devices and the array module (`xp`) behind each: numpy on CPU, cupy on CUDA.

cupy is imported only when a CUDA device is first used, so a CPU-only install works.

    >>> from tracejit.devices import device
    >>> device("cuda:1")
    device(type='cuda', index=1)
"""

from __future__ import annotations

import contextlib

import numpy as np

VALID_TYPES = ("cpu", "cuda")


class device:  # noqa: N801 - the public name is torch's
    """Where a tensor lives: `device('cpu')`, `device('cuda')`, `device('cuda', 1)`, `device('cuda:1')`."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002 - torch's argument name
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type
        elif not isinstance(type, str):
            raise TypeError(f"device() expects a string such as 'cpu' or 'cuda:0', got {type!r}")
        elif ":" in type:
            if index is not None:
                raise RuntimeError(f"device string {type!r} already has an index; do not pass index={index}")
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"invalid device index in {type}:{idx!r}; expected e.g. 'cuda:0'")
            index = int(idx)
        if type not in VALID_TYPES:
            raise RuntimeError(f"unknown device type {type!r}; expected one of: cpu, cuda, cuda:N")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"device index must be a non-negative int, got {index!r}")
        if type == "cpu" and index not in (None, 0):
            raise RuntimeError(f"cpu device has no index {index}")
        self.type = type
        self.index = index  # device("cpu:0") keeps its index, as in PyTorch (tensors report device("cpu"))

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):  # a device never equals a string, as in PyTorch
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))


CPU = device("cpu")
_cupy = None


def cupy_module():
    """Import cupy on first use, with an error that says what to install when it is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError(
                "CUDA tensors need cupy, which is not installed: pip install 'tracejit[cuda]' "
                "(cupy-cuda12x) on a machine with an NVIDIA GPU and driver"
            ) from e
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # cupy raises CUDARuntimeError without a driver
            raise RuntimeError(f"CUDA is not available: no usable NVIDIA GPU or driver was found ({e})") from e
        if count == 0:
            raise RuntimeError("CUDA is not available: no NVIDIA GPU was found")
        _cupy = cupy
    return _cupy


def cuda_is_available():
    """True when cupy imports and sees at least one GPU; never raises."""
    try:
        cupy_module()
    except RuntimeError:
        return False
    return True


def cuda_device_count():
    return cupy_module().cuda.runtime.getDeviceCount() if cuda_is_available() else 0


def as_device(d):
    if type(d) is device:
        return d
    if d is None:
        return CPU
    return device(d)


def array_module(arr):
    """numpy for numpy arrays, cupy for cupy arrays."""
    if type(arr) is np.ndarray:
        return np
    return cupy_module()


def device_of(arr):
    if type(arr) is np.ndarray:
        return CPU
    return device("cuda", arr.device.id)


def module_for(dev):
    """The array module for a device, checking that a CUDA index exists."""
    if dev.type == "cpu":
        return np
    cp = cupy_module()
    n = cp.cuda.runtime.getDeviceCount()
    if dev.index is not None and dev.index >= n:
        raise RuntimeError(f"CUDA device {dev.index} requested but only {n} GPU(s) are present")
    return cp


def on_device_of(arr):
    """A context in which `arr`'s GPU is cupy's current device (nothing for a CPU array): cupy allocates
    and runs kernels on its current device, whichever device the arrays are on."""
    if type(arr) is np.ndarray:
        return contextlib.nullcontext()
    return cupy_module().cuda.Device(arr.device.id)


def to_device(arr, dev):
    """Copy `arr` to `dev` (no copy when it is already there)."""
    if dev.type == "cpu":
        return arr if type(arr) is np.ndarray else arr.get()
    cp = module_for(dev)
    with cp.cuda.Device(dev.index or 0):
        return cp.asarray(arr)
