"""CPU code generation with LLVM: a `prim::FusionGroup` of elementwise ops becomes one native loop.

The group's block is lowered op by op through the `LOWER` table (one entry per registry op,
keyed by its IR name) into a function `kernel(out..., in..., n)` over contiguous float32 or
float64 buffers; inputs may broadcast against the output (index arithmetic with constant
divisors), Python-number constants are folded in. The module is optimized for the host CPU at
O3 with the new pass manager, so the loop vectorizes, and compiled with MCJIT. Groups with
anything the table lacks are not lowered (`lower_group` returns None) and keep running in the
interpreter.

    >>> import numpy as np
    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(4)):\\n  %1 : Float(4) = prim::FusionGroup(%x)\\n"
    ...           "    block0(%a : Float(4)):\\n      %b : Float(4) = tj::neg(%a)\\n"
    ...           "      %c : Float(4) = tj::relu(%b)\\n      -> (%c)\\n  return (%1)\\n")
    >>> kernel = lower_group(g.body.nodes[0])
    >>> kernel(np.array([-1.0, 2.0, -3.0, 4.0], np.float32))[0].tolist()
    [1.0, 0.0, 3.0, 0.0]
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir as L

from tracejit import dtypes
from tracejit.ir.types import TensorType


def _fmax(b, x, y):
    # PyTorch propagates NaN through maximum/minimum; `x > y or x != x` keeps a NaN x, else picks
    return b.select(b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered(">", x, y)), x, y)


def _fmin(b, x, y):
    return b.select(b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered("<", x, y)), x, y)


def _relu(b, x):
    zero = L.Constant(x.type, 0.0)
    # relu(nan) is nan in PyTorch: keep x unless it is (ordered) below zero
    return b.select(b.fcmp_ordered("<", x, zero), zero, x)


def _intrinsic(name):
    def lower(b, x):
        fn = b.module.declare_intrinsic(name, [x.type])
        return b.call(fn, [x])

    return lower


def _f32(v):
    return isinstance(v.type, L.FloatType)


def _exp(b, x):
    """e**x for float32 as vectorizable IR (no libm call): Cody-Waite range reduction x = k ln2 + r,
    Cephes' degree-7 polynomial for e**r on |r| <= ln2/2, and 2**k built from exponent bits in two
    factors so that results down to the subnormal range stay exact. float64 is not lowered."""
    if not _f32(x):
        return None
    f, i32 = x.type, L.IntType(32)

    def c(v):
        return L.Constant(f, v)

    rint = b.module.declare_intrinsic("llvm.rint", [f])
    xc = _fmin(b, _fmax(b, x, c(-104.0)), c(89.0))
    k = b.call(rint, [b.fmul(xc, c(1.4426950408889634))])
    r = b.fsub(b.fsub(xc, b.fmul(k, c(0.693359375))), b.fmul(k, c(-2.12194440e-4)))
    p = c(1.9875691500e-4)
    for coef in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        p = b.fadd(b.fmul(p, r), c(coef))
    p = b.fadd(b.fadd(b.fmul(b.fmul(p, r), r), r), c(1.0))
    ki = b.fptosi(k, i32)
    half = b.ashr(ki, L.Constant(i32, 1))
    rest = b.sub(ki, half)

    def pow2(e):  # 2**e for e in [-126, 127] from the exponent field
        return b.bitcast(b.shl(b.add(e, L.Constant(i32, 127)), L.Constant(i32, 23)), f)

    y = b.fmul(b.fmul(p, pow2(half)), pow2(rest))
    y = b.select(b.fcmp_ordered(">", x, c(88.72283935546875)), c(float("inf")), y)
    y = b.select(b.fcmp_ordered("<", x, c(-103.97208)), c(0.0), y)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


def _log(b, x):
    """log(x) for float32 as vectorizable IR: x = m * 2**e from the exponent bits (subnormals scaled
    up first), m in [sqrt(1/2), sqrt(2)), Cephes' polynomial for log(1 + f), e*ln2 in two parts."""
    if not _f32(x):
        return None
    f, i32 = x.type, L.IntType(32)

    def c(v):
        return L.Constant(f, v)

    tiny = b.fcmp_ordered("<", x, c(1.17549435e-38))
    xs = b.select(tiny, b.fmul(x, c(8388608.0)), x)  # 2**23 lifts subnormals into the normal range
    bits = b.bitcast(xs, i32)
    e = b.sub(b.and_(b.lshr(bits, L.Constant(i32, 23)), L.Constant(i32, 0xFF)), L.Constant(i32, 127))
    e = b.select(tiny, b.sub(e, L.Constant(i32, 23)), e)
    m = b.bitcast(b.or_(b.and_(bits, L.Constant(i32, 0x7FFFFF)), L.Constant(i32, 0x3F800000)), f)
    big = b.fcmp_ordered(">", m, c(1.41421356237))
    m = b.select(big, b.fmul(m, c(0.5)), m)
    ef = b.sitofp(b.select(big, b.add(e, L.Constant(i32, 1)), e), f)
    g = b.fsub(m, c(1.0))
    z = b.fmul(g, g)
    p = c(7.0376836292e-2)
    for coef in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):
        p = b.fadd(b.fmul(p, g), c(coef))
    y = b.fmul(b.fmul(p, g), z)
    y = b.fadd(y, b.fmul(ef, c(-2.12194440e-4)))
    y = b.fsub(y, b.fmul(z, c(0.5)))
    y = b.fadd(b.fadd(g, y), b.fmul(ef, c(0.693359375)))
    y = b.select(b.fcmp_ordered("==", x, c(0.0)), c(float("-inf")), y)
    y = b.select(b.fcmp_ordered("<", x, c(0.0)), c(float("nan")), y)
    y = b.select(b.fcmp_ordered("==", x, c(float("inf"))), x, y)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


def _sigmoid(b, x):
    e = _exp(b, b.fneg(x))
    if e is None:
        return None
    one = L.Constant(x.type, 1.0)
    return b.fdiv(one, b.fadd(one, e))


def _tanh(b, x):
    e = _exp(b, b.fmul(x, L.Constant(x.type, 2.0)))
    if e is None:
        return None
    one = L.Constant(x.type, 1.0)
    # 1 - 2/(e**2x + 1): exact limits at +-inf, absolute error ~1e-7 elsewhere
    return b.fsub(one, b.fdiv(L.Constant(x.type, 2.0), b.fadd(e, one)))


# IR name -> builder function on LLVM values; ops not here are not lowered.
LOWER = {
    "tj::add": lambda b, x, y, alpha=1: b.fadd(x, y if alpha == 1 else b.fmul(y, L.Constant(y.type, alpha))),
    "tj::sub": lambda b, x, y, alpha=1: b.fsub(x, y if alpha == 1 else b.fmul(y, L.Constant(y.type, alpha))),
    "tj::mul": lambda b, x, y: b.fmul(x, y),
    "tj::div": lambda b, x, y, rounding_mode=None: b.fdiv(x, y) if rounding_mode is None else None,
    "tj::neg": lambda b, x: b.fneg(x),
    "tj::relu": _relu,
    "tj::maximum": _fmax,
    "tj::minimum": _fmin,
    "tj::abs": _intrinsic("llvm.fabs"),
    "tj::sqrt": _intrinsic("llvm.sqrt"),
    "tj::floor": _intrinsic("llvm.floor"),
    "tj::ceil": _intrinsic("llvm.ceil"),
    "tj::trunc": _intrinsic("llvm.trunc"),
    "tj::exp": _exp,
    "tj::log": _log,
    "tj::sigmoid": _sigmoid,
    "tj::tanh": _tanh,
}
_LLVM_TYPE = {dtypes.float32: L.FloatType(), dtypes.float64: L.DoubleType()}


@functools.cache
def _host():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def _target_machine():
    """A target machine for the host CPU: a new one per engine, since an MCJIT engine takes ownership of
    (and frees) the target machine it is given."""
    target, cpu, features = _host()
    return target.create_target_machine(cpu=cpu, features=features, opt=3, jit=True)


def _optimize(module_ref, tm):
    import llvmlite.binding as llvm

    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.PassBuilder(tm, pto)
    mpm = pb.getModulePassManager()
    mpm.run(module_ref, pb)


class Kernel:
    """A compiled group: `kernel(*arrays) -> tuple of output arrays`; `.llvm_ir` is the optimized IR."""

    def __init__(self, fn, n_out, dtype, llvm_ir, engine, in_shapes=None, out_shape=None):
        self._fn, self._n_out, self._dtype, self.llvm_ir, self._engine = fn, n_out, dtype, llvm_ir, engine
        self._in_shapes, self._out_shape = in_shapes, out_shape

    def __call__(self, *inputs):
        arrays = [np.ascontiguousarray(a, dtype=self._dtype) for a in inputs]
        if self._in_shapes is None:  # compiled for one shape shared by every tensor
            shape = arrays[0].shape if arrays else ()
            for a in arrays:
                if a.shape != shape:
                    raise ValueError(f"kernel inputs must have one shape; got {a.shape} and {shape}")
        else:  # compiled for these broadcasting shapes
            for a, want in zip(arrays, self._in_shapes):
                if a.shape != want:
                    raise ValueError(f"kernel compiled for input shape {want}; got {a.shape}")
            shape = self._out_shape
        outs = [np.empty(shape, self._dtype) for _ in range(self._n_out)]
        ptrs = [o.ctypes.data for o in outs] + [a.ctypes.data for a in arrays]
        self._fn(*ptrs, int(np.prod(shape, dtype=np.int64)))
        return tuple(outs)


def lower_group(node):
    """Compile a `prim::FusionGroup` node; None when it holds an op or type this backend lacks."""
    block = node.blocks[0]
    types = [v.type for v in list(block.params) + list(node.outputs)]
    if not types or not all(isinstance(t, TensorType) for t in types):
        return None
    dtype = types[0].dtype
    shape = node.outputs[0].type.shape if node.outputs else None
    if dtype not in _LLVM_TYPE or any(t.dtype is not dtype for t in types) or shape is None:
        return None
    if any(not isinstance(d, int) for t in types for d in (t.shape or ("?",))):
        return None  # symbolic sizes: compiled per concrete shape later
    if any(t.shape != shape for t in types[len(block.params):]):
        return None
    in_shapes = [p.type.shape for p in block.params]
    if any(not _broadcasts(s_in, shape) for s_in in in_shapes):
        return None
    fty = _LLVM_TYPE[dtype]
    module = L.Module(name="tracejit_kernel")
    ptr = L.PointerType(fty)
    n_out, n_in = len(node.outputs), len(block.params)
    fn = L.Function(module, L.FunctionType(L.VoidType(), [ptr] * (n_out + n_in) + [L.IntType(64)]), name="kernel")
    for a in fn.args[:-1]:
        a.add_attribute("noalias")
    entry, loop, done = fn.append_basic_block("entry"), fn.append_basic_block("loop"), fn.append_basic_block("done")
    b = L.IRBuilder(entry)
    n = fn.args[-1]
    b.cbranch(b.icmp_signed(">", n, L.Constant(L.IntType(64), 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(L.IntType(64))
    i.add_incoming(L.Constant(L.IntType(64), 0), entry)
    env = {p: b.load(b.gep(fn.args[n_out + k], [_offset(b, i, in_shapes[k], shape)]))
           for k, p in enumerate(block.params)}
    for inner in block.nodes:
        if inner.op == "prim::Constant":
            value = inner.attrs.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            env[inner.outputs[0]] = L.Constant(fty, float(value))
            continue
        rule = LOWER.get(inner.op)
        if rule is None or len(inner.outputs) != 1:
            return None
        try:
            out = rule(b, *[env[v] for v in inner.inputs], **inner.attrs)
        except (KeyError, TypeError):
            return None
        if out is None:
            return None
        _fast_math(out)
        env[inner.outputs[0]] = out
    for k, v in enumerate(block.returns):
        b.store(env[v], b.gep(fn.args[k], [i]))
    nxt = b.add(i, L.Constant(L.IntType(64), 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    broadcast = any(s_in != shape for s_in in in_shapes)
    return _compile(str(module), n_out + n_in, n_out, dtype, in_shapes if broadcast else None, shape)


def _broadcasts(s_in, shape):
    if len(s_in) > len(shape):
        return False
    return all(a == b or a == 1 for a, b in zip(s_in, shape[len(shape) - len(s_in):]))


def _offset(b, i, s_in, shape):
    """The element of a contiguous input of shape `s_in` read at flat output index i (broadcasting)."""
    if tuple(s_in) == tuple(shape):
        return i
    i64 = L.IntType(64)
    full = (1,) * (len(shape) - len(s_in)) + tuple(s_in)
    in_strides, acc = [], 1
    for d in reversed(full):
        in_strides.append(acc)
        acc *= d
    in_strides.reverse()
    off = L.Constant(i64, 0)
    out_stride = 1
    for d in range(len(shape) - 1, -1, -1):
        if full[d] != 1 and shape[d] != 1:  # a broadcast (size-1) dim contributes nothing
            coord = b.urem(b.udiv(i, L.Constant(i64, out_stride)), L.Constant(i64, shape[d]))
            off = b.add(off, b.mul(coord, L.Constant(i64, in_strides[d])))
        out_stride *= shape[d]
    return off


def _fast_math(value):
    # Only contraction: exact IEEE results otherwise (nan/inf/-0.0 behave as in the interpreter).
    flags = getattr(value, "flags", None)
    if flags is not None and value.opname in ("fadd", "fsub", "fmul", "fdiv"):
        flags.append("contract")


def _compile(text, n_ptrs, n_out, dtype, in_shapes=None, out_shape=None):
    import llvmlite.binding as llvm

    tm = _target_machine()
    mod = llvm.parse_assembly(text)
    mod.verify()
    _optimize(mod, tm)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    addr = engine.get_function_address("kernel")
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_ptrs), ctypes.c_int64)
    return Kernel(proto(addr), n_out, dtype.np, str(mod), engine, in_shapes, out_shape)


def compile_groups(graph):
    """Compiled kernels for every fusion group of `graph` this backend can lower: {node: kernel}."""
    kernels = {}
    for node in graph.nodes():
        if node.op == "prim::FusionGroup":
            k = lower_group(node)
            if k is not None:
                kernels[node] = k
    return kernels
