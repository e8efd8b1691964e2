"""The device side of a `CudaPlan` on cupy: allocation, transfers, kernel loading and launch, cuBLAS GEMMs.

Everything here that touches the GPU is in `CupyBackend` and `describe_device`; cupy is imported only when
one is made (`devices.cupy_module`). Kernels are compiled by NVRTC to PTX for the device's compute
capability (the PTX is cached on disk with the native code, `codegen.cache`), loaded by the CUDA driver
(`cupy.cuda.function.Module`) and launched with `launch_shape`, which needs no GPU:

    >>> from types import SimpleNamespace as K
    >>> launch_shape(K(numel=1 << 26, threads=256, grid=65535), sm_count=132)
    ((4224, 1, 1), (256, 1, 1))
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading

import numpy as np

from tracejit import devices

THREADS = 256  # threads per block of a kernel that does not name its own
BLOCKS_PER_SM = 32  # grid cap: enough resident blocks to hide memory latency; grid-stride loops do the rest
VECTOR_ALIGN = 16  # bytes: kernels with vector_width > 1 load and store 16-byte packs


def ptx_member(arch, source):
    """The `.tj` member that holds the PTX of kernel `source` for virtual architecture `arch` ("compute_90"):
    named by the source's hash, so a cached PTX is only ever used for exactly the kernel it was made from."""
    return f"native/cuda-{arch}/{hashlib.sha256(source.encode()).hexdigest()[:40]}.ptx"


def launch_shape(kernel, sm_count):
    """(grid, block) to launch `kernel` (a `cuda_c.KernelSource`) on a device of `sm_count` multiprocessors.

    The block is the kernel's `threads` (a row kernel assumes exactly that many); the grid is the kernel's
    `grid` (blocks that cover its work once) capped at 32 blocks per multiprocessor, since every kernel
    loops over the rest (grid-stride loops). Without those fields: 256 threads, one per output element.

        >>> from types import SimpleNamespace as K
        >>> launch_shape(K(numel=1 << 26), sm_count=132)
        ((4224, 1, 1), (256, 1, 1))
        >>> launch_shape(K(numel=8192, threads=1024, grid=8192), sm_count=132)  # a row kernel, one row per block
        ((4224, 1, 1), (1024, 1, 1))
        >>> launch_shape(K(numel=10, threads=64, grid=1), sm_count=132)
        ((1, 1, 1), (64, 1, 1))
    """
    threads = int(getattr(kernel, "threads", None) or THREADS)
    grid = getattr(kernel, "grid", None)
    if grid is None:
        grid = math.ceil(kernel.numel / threads)
    return (max(1, min(int(grid), BLOCKS_PER_SM * sm_count)), 1, 1), (threads, 1, 1)


class DeviceArrayModule:
    """cupy as the registry's implementations use it (`xp`): cupy, plus numpy's `errstate`, which cupy lacks
    (GPU arithmetic raises no floating-point warnings, so it does nothing)."""

    def __init__(self, module):
        self._module = module
        self.__name__ = module.__name__

    def __getattr__(self, name):
        value = getattr(self._module, name)
        setattr(self, name, value)  # later lookups skip __getattr__
        return value

    @staticmethod
    def errstate(**_):
        return contextlib.nullcontext()


def describe_device(index=None):
    """One line about CUDA device `index` (default 0): name, compute capability, multiprocessors, memory."""
    cp = devices.cupy_module()
    i = index or 0
    rt = cp.cuda.runtime
    name = rt.getDeviceProperties(i)["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    cc = cp.cuda.Device(i).compute_capability
    sms = rt.deviceGetAttribute(rt.cudaDevAttrMultiProcessorCount, i)
    total = cp.cuda.Device(i).mem_info[1]
    return f"cuda:{i} {name} (compute capability {cc[:-1]}.{cc[-1]}, {sms} SMs, {total / 2 ** 30:.1f} GiB)"


_functions = {}  # (device index, arch, kernel source, name) -> loaded kernel function, for the whole process
_functions_lock = threading.Lock()


class CupyBackend:
    """The device side of a CudaPlan on cupy: allocation, transfers, kernels (NVRTC's PTX, loaded by the CUDA
    driver; PTX is cached on disk with the native code), and cuBLAS GEMMs through `cupy.matmul`."""

    def __init__(self, index=None, cached=None):
        from tracejit.codegen import nvrtc

        self.cached = dict(cached or {})  # `.tj` members: PTX shipped in the model file (see ptx_member)
        cp = devices.cupy_module()
        devices.module_for(devices.device("cuda", index))  # a clear error for an index with no GPU
        if not nvrtc.available():
            raise RuntimeError(f"the CUDA runtime compiles its kernels with NVRTC, which was not found: "
                               f"{nvrtc.INSTALL_HINT}")
        self.cp = cp
        self.index = index or 0
        self.xp = DeviceArrayModule(cp)
        dev = cp.cuda.Device(self.index)
        # e.g. "90" -> compute_90, or the newest virtual architecture NVRTC has for a GPU newer than it knows
        self.arch = nvrtc.arch(divmod(int(dev.compute_capability), 10))
        rt = cp.cuda.runtime
        self.sm_count = int(rt.deviceGetAttribute(rt.cudaDevAttrMultiProcessorCount, self.index))

    def activate(self):
        return self.cp.cuda.Device(self.index)

    def is_host(self, a):
        return isinstance(a, np.ndarray)

    def to_device(self, a):
        return self.cp.asarray(a)

    def to_host(self, a):
        return self.cp.asnumpy(a)

    def empty(self, shape, dtype):
        return self.cp.empty(shape, dtype)

    def address(self, a):
        return a.data.ptr

    def matmul(self, a, b):
        return self.cp.matmul(a, b)

    def load(self, kernel, node):
        """`launch(outs, args)` for `kernel` (a KernelSource emitted from the group `node`)."""
        key = (self.index, self.arch, kernel.source, kernel.name)
        fn = _functions.get(key)
        if fn is None:
            with _functions_lock:
                fn = _functions.get(key)
                if fn is None:
                    fn = _functions[key] = self._function(kernel, node)
        grid, block = launch_shape(kernel, self.sm_count)
        arguments = kernel.arguments  # scalars by value in the ABI's C type (a Python bool would go as 8 bytes)

        def launch(outs, args):
            fn(grid, block, arguments(outs, args))

        return launch

    def _function(self, kernel, node):
        cp = self.cp
        ptx = self._ptx(kernel.source)
        module = cp.cuda.function.Module()
        try:
            module.load(ptx.encode())
            return module.get_function(kernel.name)
        except cp.cuda.driver.CUDADriverError as e:
            # A driver older than the NVRTC that wrote the PTX cannot load it; cupy's own compile emits a cubin.
            try:
                return cp.RawModule(code=kernel.source, options=("--std=c++17",)).get_function(kernel.name)
            except Exception as e2:
                raise RuntimeError(f"the CUDA driver could not load the kernel of {node!r} ({e}), and cupy could "
                                   f"not compile it either ({type(e2).__name__}: {e2})") from e2

    def _ptx(self, source):
        from tracejit.codegen import nvrtc

        shipped = self.cached.get(ptx_member(self.arch, source))
        if shipped is not None:
            return shipped.decode()
        return nvrtc.compile_ptx_cached(source, arch=self.arch)


__all__ = ["CupyBackend", "DeviceArrayModule", "describe_device", "launch_shape", "ptx_member"]
