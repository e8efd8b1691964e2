"""The compile half of the LLVM CPU backend: module text -> optimized machine code -> `Kernel`.

`llvm_cpu.emit_group` writes a fusion group's unoptimized LLVM IR (a `KernelSpec`); here that text
is optimized for the host CPU (new pass manager, O3, loop and SLP vectorizers, unrolling off),
turned into object code (kept in the disk cache, `tracejit.codegen.cache`) and loaded by MCJIT,
and `Kernel` calls the result: `run(outs, ins)` on preallocated arrays, split across the
threads of `tracejit.ops.parallel` when the spec's estimated work is large.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np

from tracejit.ops import parallel
from tracejit.ops.rules import contiguous_strides

KERNEL_NAME = "kernel"
# Kernels estimated to cost less than this (`KernelSpec.work`: elements x (loop passes + ops per
# element, a transcendental counting 8)) run on the calling thread. Measured on 2 cores, handing a
# slice to the pool costs 15-90 us; splitting gained from ~2**20 elements for `(x + y) * 2`
# (456 -> 326 us), ~2**21 for a row sum, and 2**18 for softmax (663 -> 425 us).
PARALLEL_WORK = 3 << 20


@functools.cache
def _host():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def host_target():
    """(triple, CPU name, CPU features) the kernels are compiled for: part of a disk-cache key."""
    target, cpu, features = _host()
    return target.triple, cpu, features


def _target_machine():
    """A target machine for the host CPU: a new one per engine, since an MCJIT engine takes ownership of
    (and frees) the target machine it is given."""
    target, cpu, features = _host()
    return target.create_target_machine(cpu=cpu, features=features, opt=3, jit=True)


def _optimized(llvm_ir, tm):
    """Parse, verify and optimize (O3, loop and SLP vectorizers) a module for the target `tm`."""
    import llvmlite.binding as llvm

    mod = llvm.parse_assembly(llvm_ir)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # The vectorizer interleaves loops anyway; unrolling on top gained nothing measurable and fully
    # unrolled small reduced loops (16 copies of a vector loop) took compile times from 30 to 200+ ms.
    pto.loop_unrolling = False
    pb = llvm.PassBuilder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def _compile_module(llvm_ir):
    """Unoptimized module text -> (engine, address of `kernel`, optimized IR text). The engine owns the
    machine code: keep it alive while the address is in use."""
    import llvmlite.binding as llvm

    tm = _target_machine()
    mod = _optimized(llvm_ir, tm)
    text = str(mod)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    return engine, engine.get_function_address(KERNEL_NAME), text


def emit_object(llvm_ir):
    """Unoptimized module text -> (object code for the host CPU, optimized IR text), for a disk cache;
    `load_object` turns the bytes back into a callable address."""
    tm = _target_machine()
    mod = _optimized(llvm_ir, tm)
    return tm.emit_object(mod), str(mod)


def load_object(obj):
    """Object code from `emit_object` -> (engine, address of `kernel`)."""
    import llvmlite.binding as llvm

    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine, engine.get_function_address(KERNEL_NAME)


class Kernel:
    """A compiled group. `kernel(*inputs) -> tuple of new output arrays` checks and converts its
    inputs; `kernel.run(outs, ins)` is the raw call. Attributes: `out_shapes`, `out_dtypes` (numpy),
    `in_strides` (element strides per input, None for scalars), `llvm_ir` (optimized IR), `spec`.

        >>> from tracejit.ir import parse
        >>> from tracejit.codegen.llvm_cpu import lower_group
        >>> g = parse("graph(%x : Float(3), %s : float):\\n  %1 : Float(3) = prim::FusionGroup(%x, %s)\\n"
        ...           "    block0(%a : Float(3), %b : float):\\n      %c : Float(3) = tj::mul(%a, %b)\\n"
        ...           "      -> (%c)\\n  return (%1)\\n")
        >>> kernel = lower_group(g.body.nodes[0])
        >>> out = np.empty(3, np.float32)
        >>> kernel.run([out], [np.arange(3, dtype=np.float32), np.array(0.5)])  # a scalar as a 0-d array
        >>> out.tolist(), kernel(np.ones(3), 2.0)[0].tolist()
        ([0.0, 0.5, 1.0], [2.0, 2.0, 2.0])
    """

    def __init__(self, spec, engine, address, llvm_ir):
        self.spec, self._llvm_ir, self._engine = spec, llvm_ir, engine
        self.out_shapes, self.out_dtypes, self.in_strides = spec.out_shapes, spec.out_dtypes, spec.in_strides
        n_ptr = len(spec.out_shapes) + len(spec.in_shapes)
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_ptr), ctypes.c_int64, ctypes.c_int64)
        self._fn = proto(address)
        self._range = spec.range_size
        self._parallel = spec.work >= PARALLEL_WORK and spec.range_size > 1

    @property
    def llvm_ir(self):
        """The optimized IR text (recomputed on request for kernels loaded from the disk cache)."""
        if self._llvm_ir is None:
            self._llvm_ir = str(_optimized(self.spec.llvm_ir, _target_machine()))
        return self._llvm_ir

    def run(self, outs, ins):
        """Write the outputs into `outs` (preallocated C-contiguous arrays) from `ins` (arrays with the
        compiled shapes, dtypes and strides; scalars as 0-d arrays). No checks; large kernels are
        split across the threads of `tracejit.ops.parallel` (inline when called from one of them)."""
        try:  # the buffer protocol is ~4x quicker than `a.ctypes.data`; it refuses read-only or strided arrays
            ptrs = [_addressof(_from_buffer(a)) for a in (*outs, *ins)]
        except (TypeError, ValueError, BufferError):
            ptrs = [a.ctypes.data for a in (*outs, *ins)]
        if self._parallel:
            self.run_ptrs(ptrs)
        else:
            self._fn(*ptrs, 0, self._range)

    def run_ptrs(self, ptrs):
        """`run` on raw addresses (outputs, then inputs), for callers that keep them."""
        n = self._range
        threads = parallel.get_num_threads()
        if not self._parallel or threads < 2 or threading.current_thread().name.startswith("tracejit-op"):
            self._fn(*ptrs, 0, n)
            return
        step = -(-n // threads)
        step = -(-step // self.spec.chunk) * self.spec.chunk
        pool = parallel.pool()
        futures = [pool.submit(self._fn, *ptrs, lo, min(lo + step, n)) for lo in range(step, n, step)]
        self._fn(*ptrs, 0, min(step, n))
        for f in futures:
            f.result()

    def __call__(self, *inputs):
        spec = self.spec
        if len(inputs) != len(spec.in_shapes):
            raise TypeError(f"kernel takes {len(spec.in_shapes)} inputs, got {len(inputs)}")
        ins = []
        for i, (a, shape, dt, st) in enumerate(zip(inputs, spec.in_shapes, spec.in_dtypes, spec.in_strides)):
            arr = np.asarray(a, dtype=dt)
            if shape is None:
                if arr.shape != ():
                    raise ValueError(f"input {i} is a scalar param; got an array of shape {arr.shape}")
            elif arr.shape != shape:
                raise ValueError(f"kernel compiled for input shape {shape}; got {arr.shape} (input {i})")
            elif not _strides_match(arr, st):
                if st != contiguous_strides(shape):
                    got = tuple(s // arr.itemsize for s in arr.strides)
                    raise ValueError(f"kernel compiled for element strides {st}; got {got} (input {i})")
                arr = np.ascontiguousarray(arr)
            ins.append(arr)
        outs = [np.empty(s, d) for s, d in zip(spec.out_shapes, spec.out_dtypes)]
        self.run(outs, ins)
        return tuple(outs)


_addressof, _from_buffer = ctypes.addressof, ctypes.c_char.from_buffer


def _strides_match(arr, strides):
    if arr.size == 0:
        return True
    return all(n == 1 or (s % arr.itemsize == 0 and s // arr.itemsize == want)
               for n, s, want in zip(arr.shape, arr.strides, strides))


def compile_spec(spec):
    """A `Kernel` from a `KernelSpec`: object code from the disk cache (`tracejit.codegen.cache`) when an
    entry for this IR, target and compiler exists, else compiled now and stored there."""
    from tracejit.codegen import cache

    key = cache.cache_key(spec.llvm_ir, host_target())
    obj = cache.get(key)
    if obj is not None:
        try:
            engine, address = load_object(obj)
            return Kernel(spec, engine, address, None)
        except Exception:  # noqa: BLE001 - an unusable entry is a miss: compile and replace it
            pass
    obj, text = emit_object(spec.llvm_ir)
    cache.put(key, obj)
    engine, address = load_object(obj)
    return Kernel(spec, engine, address, text)
