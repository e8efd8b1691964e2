"""A compiled graph as a `Plan`: a flat list of steps over reused buffers.

`Plan(graph)` takes a frozen graph (weights in `graph.constants`). The first call with a given
set of input shapes specializes the graph to those sizes (symbolic dims such as `N` become
numbers) and builds a program for it:

- every `prim::FusionGroup` (and every lone elementwise op or reduction, wrapped in a group of
  one) runs as one native LLVM kernel, compiled on its first run for the strides its inputs
  actually have; a group the backend cannot lower runs op by op through the registry;
- `tj::linear`, `tj::matmul` and `tj::conv2d` go to BLAS, with a following ReLU fused into
  them as an epilogue;
- every other op runs its registry implementation (`ops.execute.run_op`), the interpreter's rule.

Buffers of native steps come from a per-thread arena and are reused once every value that may
share their memory is dead (any op that is not known to allocate may return a view of its
input, so such outputs keep their sources' buffers alive). Graph outputs never live in the
arena: a value that may alias arena memory, a graph input or a constant is copied on return.
Graphs with control flow (`prim::If`, `prim::Loop`) run as step lists built once per block
(`runtime/hybrid.py`, the interpreter's semantics) with the native kernels of their fusion groups.

    >>> import numpy as np
    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(N, 3)):\\n  %1 : Float(N, 3) = tj::relu(%x)\\n"
    ...           "  %2 : Float(N, 3) = tj::mul(%1, %1)\\n  return (%2)\\n")
    >>> Plan(g).run(np.array([[-1.0, 2.0, 3.0]], np.float32))[0].tolist()
    [[0.0, 4.0, 9.0]]
"""

from __future__ import annotations

import threading

import numpy as np

from tracejit import ir, ops
from tracejit.ir.graph import ConstRef
from tracejit.ir.interpreter import SCALAR_OPS
from tracejit.ir.types import TensorType
from tracejit.ops.execute import run_op

# Op kinds whose registry implementations always return new memory; any other op (views,
# reshape, contiguous, to_dtype, indexing...) may hand back (part of) an input array.
_FRESH_KINDS = {"elementwise", "reduction", "linalg", "scan", "factory", "random"}
_MAY_ALIAS_OPS = {"tj::to_dtype"}
# Graphs holding these run in the interpreter (with native kernels for their groups): control flow and
# the Python-number ops scripted code computes sizes and conditions with.
_CONTROL = {"prim::If", "prim::Loop", "prim::size", "prim::NumToTensor", "prim::RaiseException",
            "prim::Uninitialized", "prim::Bool", "prim::Int", "prim::Float", *SCALAR_OPS}
_MAX_SPECIALIZATIONS = 32


class PlanInputError(ValueError):
    """The arrays given to `Plan.run` do not match the graph's inputs."""


def _may_alias(op):
    if op in _MAY_ALIAS_OPS:
        return True
    try:
        return ops.get(op).kind not in _FRESH_KINDS
    except KeyError:
        return True


def specialize(graph, sizes):
    """A copy of `graph` with every symbolic dim replaced by its size from `sizes`."""
    g = ir.parse(ir.print_graph(graph), constants=graph.constants)

    def fix(v):
        t = v.type
        if isinstance(t, TensorType) and t.shape is not None and any(isinstance(d, str) for d in t.shape):
            v.type = TensorType(t.dtype, tuple(sizes.get(d, d) if isinstance(d, str) else d for d in t.shape),
                                t.device)

    for v in g.inputs:
        fix(v)
    for node in g.nodes():
        for b in node.blocks:
            for v in b.params:
                fix(v)
        for v in node.outputs:
            fix(v)
    return g


def bind(inputs, arrays):
    """Check `arrays` against the graph inputs `inputs` ((name, type) pairs); returns {symbol: size}."""
    if len(arrays) != len(inputs):
        raise PlanInputError(f"the graph takes {len(inputs)} inputs "
                             f"({', '.join('%' + n for n, _ in inputs)}); got {len(arrays)}")
    sizes = {}
    for (name, t), a in zip(inputs, arrays):
        if not isinstance(t, TensorType):
            continue
        if t.dtype is not None and a.dtype != t.dtype.np:
            raise PlanInputError(f"input %{name} must be {t.dtype.np} ({t}); got {a.dtype}")
        if t.shape is None:
            continue
        if a.ndim != len(t.shape):
            raise PlanInputError(f"input %{name} must have {len(t.shape)} dims ({t}); got shape {a.shape}")
        for have, want in zip(a.shape, t.shape):
            if isinstance(want, str):
                if sizes.setdefault(want, have) != have:
                    raise PlanInputError(f"input %{name} has {want}={have}, but an earlier input has "
                                         f"{want}={sizes[want]}; inputs sharing a symbol must agree")
            elif have != want:
                raise PlanInputError(f"input %{name} must have shape {t}; got {tuple(a.shape)}")
    return sizes


def program_for(programs, lock, sizes, build):
    """The program specialized to `sizes` from `programs` (at most _MAX_SPECIALIZATIONS kept, the oldest
    dropped first), built under `lock` by `build(sizes)` the first time."""
    key = tuple(sorted(sizes.items()))
    prog = programs.get(key)
    if prog is None:
        with lock:
            prog = programs.get(key)
            if prog is None:
                if len(programs) >= _MAX_SPECIALIZATIONS:
                    programs.pop(next(iter(programs)))
                prog = programs[key] = build(sizes)
    return prog


class Plan:
    """`Plan(graph).run(*arrays) -> tuple of arrays`; safe to call from many threads at once.

    `native=False` runs the graph in the reference interpreter instead (for checking)."""

    def __init__(self, graph, *, native=True):
        self.graph = graph
        self.native = native
        self._programs = {}
        self._lock = threading.Lock()
        self._has_control = any(n.op in _CONTROL for n in graph.nodes())
        self._inputs = [(v.name, v.type) for v in graph.inputs]

    def run(self, *arrays):
        # (np.ascontiguousarray would turn a 0-dim array into a 1-dim one)
        arrays = [np.require(a, requirements="C") if isinstance(a, np.ndarray) else a for a in arrays]
        sizes = bind(self._inputs, arrays)
        return program_for(self._programs, self._lock, sizes, self._build)(arrays)

    def _build(self, sizes):
        graph = specialize(self.graph, sizes) if sizes else ir.parse(ir.print_graph(self.graph),
                                                                     constants=self.graph.constants)
        if not self.native:
            return lambda arrays: tuple(np.asarray(o) for o in ir.run(graph, *arrays))
        if self._has_control:
            return _Hybrid(graph)
        return _Program(graph)


class _Hybrid:
    """A graph with control flow: a `hybrid.Program` runs it, with native kernels for its groups."""

    def __init__(self, graph):
        from tracejit.codegen import llvm_cpu
        from tracejit.runtime.hybrid import Program

        self.graph = graph
        self.kernels = llvm_cpu.compile_groups(graph)
        self.program = Program(graph, self.kernels)

    def __call__(self, arrays):
        return tuple(np.asarray(o) for o in self.program(*arrays))


def _wrap_lone_ops(graph):
    """Put every top-level elementwise op or reduction outside a group into a group of its own,
    so it runs as a native kernel too."""
    from tracejit.ir.passes import _fusible, make_group

    for node in list(graph.body.nodes):
        if node.op.startswith("tj::") and len(node.outputs) == 1 and (
                _fusible(node) or node.op in _LONE_REDUCTIONS):
            if all(isinstance(v.type, TensorType) for v in node.outputs):
                make_group(graph, graph.body, [node])


_LONE_REDUCTIONS = {"tj::sum", "tj::mean", "tj::amax", "tj::amin", "tj::softmax", "tj::log_softmax"}


class _Program:
    """The steps of one specialized graph; see the module docstring."""

    def __init__(self, graph):
        self.graph = graph
        self.epilogues = _fuse_epilogues(graph)
        _wrap_lone_ops(graph)
        body = graph.body
        slot = {}

        def slot_of(v):
            if v not in slot:
                slot[v] = len(slot)
            return slot[v]

        self.input_slots = [slot_of(v) for v in graph.inputs]
        template = {}
        steps = []  # (builder, node, in slots, out slots)
        for node in body.nodes:
            ins = [slot_of(v) for v in node.inputs]
            outs = [slot_of(v) for v in node.outputs]
            if node.op == "prim::Constant":
                value = node.attrs.get("value")
                if isinstance(value, ConstRef):
                    value = np.asarray(graph.constants[value.name])
                template[outs[0]] = value
                continue
            steps.append((node, ins, outs))
        self.output_slots = [slot_of(v) for v in graph.outputs]
        self.n_slots = len(slot)
        self.template = [template.get(i) for i in range(self.n_slots)]
        self._plan_buffers(graph, slot, steps)
        consts = {i: v for i, v in template.items()}
        self.steps = [_make_step(node, ins, outs, self.buffer_of, self.epilogues.get(node), consts)
                      for node, ins, outs in steps]
        self._local = threading.local()

    def _plan_buffers(self, graph, slot, steps):
        """Arena buffers for the outputs of native steps, reused after the last use of every value that
        may share their memory; outputs and what they may alias are allocated fresh."""
        roots = {}  # value -> values whose memory it may share (itself included when it owns memory)
        native_owned = set()
        for v in graph.inputs:
            roots[v] = {v}
        for node, _, _ in steps:
            if node.op == "prim::FusionGroup" or node.op in _BLAS_OPS:
                for v in node.outputs:
                    roots[v] = {v}
                    if isinstance(v.type, TensorType) and v.type.shape is not None:
                        native_owned.add(v)
            elif node.op.startswith("tj::") and not _may_alias(node.op):
                for v in node.outputs:
                    roots[v] = {v}
            else:
                src = set().union(*(roots.get(v, {v}) for v in node.inputs)) if node.inputs else set()
                for v in node.outputs:
                    roots[v] = src | {v}
        for node in graph.body.nodes:
            if node.op == "prim::Constant":
                for v in node.outputs:
                    roots[v] = {v}
        escaping = set().union(*(roots.get(v, {v}) for v in graph.outputs)) if graph.outputs else set()
        self.copy_out = [bool(roots.get(v, {v}) - {v}) or v.node is None or v.node.op == "prim::Constant"
                         for v in graph.outputs]
        last = {}
        for k, (node, _, _) in enumerate(steps):
            for v in node.inputs:
                for r in roots.get(v, ()):
                    last[r] = k
            for v in node.outputs:
                for r in roots.get(v, ()):
                    last[r] = max(last.get(r, k), k)
        free = {}  # (shape, dtype) -> [buffer ids]
        self.buffer_specs = []
        self.buffer_of = {}  # slot -> buffer id, or None for a fresh allocation
        releases = {}
        for k, (node, _, outs) in enumerate(steps):
            for v, s in zip(node.outputs, outs):
                if v not in native_owned:
                    continue
                if v in escaping:
                    self.buffer_of[s] = None
                    continue
                spec = (tuple(v.type.shape), v.type.dtype.np)
                pool = free.get(spec)
                buf = pool.pop() if pool else None
                if buf is None:
                    buf = len(self.buffer_specs)
                    self.buffer_specs.append(spec)
                self.buffer_of[s] = buf
                releases.setdefault(last.get(v, k), []).append((spec, buf))
            for spec, buf in releases.pop(k, ()):
                free.setdefault(spec, []).append(buf)

    def _arena(self):
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = [np.empty(shape, dtype) for shape, dtype in self.buffer_specs]
        return bufs

    def __call__(self, arrays):
        env = list(self.template)
        for s, a in zip(self.input_slots, arrays):
            env[s] = a
        bufs = self._arena()
        for step in self.steps:
            step(env, bufs)
        return tuple(np.array(env[s]) if copy else env[s] for s, copy in zip(self.output_slots, self.copy_out))


def _out_array(slot, value, buffer_of, bufs):
    b = buffer_of.get(slot)
    if b is None:
        return np.empty(value.type.shape, value.type.dtype.np)
    return bufs[b]


def _make_step(node, ins, outs, buffer_of, epilogue=None, consts=None):
    if node.op == "prim::FusionGroup":
        return _GroupStep(node, ins, outs, buffer_of)
    special = _BLAS_STEPS.get(node.op)
    if special is not None:
        step = special(node, ins, outs, buffer_of, epilogue, consts or {})
        if step is not None:
            return step
    step = _op_step(node, ins, outs)
    if epilogue == "relu":
        out = outs[0]

        def with_relu(env, bufs):
            step(env, bufs)
            env[out] = np.maximum(env[out], 0, out=env[out])  # the product's result is fresh memory

        return with_relu
    return step


def _op_step(node, ins, outs):
    if node.op in ("prim::ListConstruct", "prim::TupleConstruct"):
        make = list if node.op == "prim::ListConstruct" else tuple

        def construct(env, bufs):
            env[outs[0]] = make(env[i] for i in ins)

        return construct
    if node.op in ("prim::ListUnpack", "prim::TupleUnpack"):
        def unpack(env, bufs):
            for s, v in zip(outs, env[ins[0]]):
                env[s] = v

        return unpack
    if not node.op.startswith("tj::"):
        raise NotImplementedError(f"the runtime plan has no rule for {node.op}")
    op, attrs = ops.get(node.op), dict(node.attrs)
    if len(outs) == 1:
        out = outs[0]

        def run(env, bufs):
            env[out] = run_op(op, np, [env[i] for i in ins], attrs)

        return run

    def run_many(env, bufs):
        for s, r in zip(outs, run_op(op, np, [env[i] for i in ins], attrs)):
            env[s] = r

    return run_many


class _GroupStep:
    """A fusion group: a native kernel per input-stride pattern, compiled on first use; the block op by op
    when the backend cannot lower it."""

    def __init__(self, node, ins, outs, buffer_of):
        self.node, self.ins, self.outs, self.buffer_of = node, ins, outs, buffer_of
        self.kernels = {}
        self.lock = threading.Lock()
        self.fallback = None

    def _kernel(self, args):
        key = tuple(a.strides if isinstance(a, np.ndarray) else None for a in args)
        k = self.kernels.get(key, False)
        if k is False:
            with self.lock:
                k = self.kernels.get(key, False)
                if k is False:
                    k = self.kernels[key] = _lower(self.node, args)
        return k

    def __call__(self, env, bufs):
        args = [env[i] for i in self.ins]
        kernel = self._kernel(args) if self.fallback is None else None
        if kernel is None:
            results = run_block(self.node.blocks[0], args)
            for s, r in zip(self.outs, results):
                env[s] = r
            return
        outs = [_out_array(s, v, self.buffer_of, bufs) for s, v in zip(self.outs, self.node.outputs)]
        kernel.run(outs, [_kernel_arg(a) for a in args])
        for s, o in zip(self.outs, outs):
            env[s] = o


def _kernel_arg(a):
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, bool):
        return np.asarray(a, np.bool_)
    return np.asarray(a, np.float64 if isinstance(a, float) else np.int64)


def _lower(node, args):
    from tracejit.codegen import llvm_cpu

    strides = []
    for a, p in zip(args, node.blocks[0].params):
        if isinstance(a, np.ndarray) and isinstance(p.type, TensorType):
            if tuple(a.shape) != tuple(p.type.shape) or a.dtype != p.type.dtype.np:
                return None
            if any(s % a.itemsize for s in a.strides):
                return None
            strides.append(tuple(s // a.itemsize for s in a.strides))
        else:
            strides.append(None)
    return llvm_cpu.lower_group(node, in_strides=strides)


def run_block(block, args, xp=np):
    """A group's block op by op through the registry (what the interpreter does), on array module `xp`."""
    env = dict(zip(block.params, args))
    for n in block.nodes:
        if n.op == "prim::Constant":
            env[n.outputs[0]] = n.attrs.get("value")
            continue
        res = run_op(ops.get(n.op), xp, [env[v] for v in n.inputs], n.attrs)
        if len(n.outputs) == 1:
            env[n.outputs[0]] = res
        else:
            env.update(zip(n.outputs, res))
    return [env[v] for v in block.returns]


# -- matrix products and convolution through BLAS, with a fused ReLU epilogue ----------------------------

_BLAS_OPS = {"tj::linear", "tj::matmul", "tj::conv2d"}
_EPILOGUE_OPS = {"tj::linear", "tj::conv2d"}


def _fuse_epilogues(graph):
    """`relu(linear(...))` / `relu(conv2d(...))` where the product has no other use: the ReLU becomes the
    product's epilogue. Returns {product node: "relu"}; the ReLU node is removed from this (private,
    specialized) copy of the graph."""
    epilogues = {}
    for node in list(graph.body.nodes):
        if node.op not in _EPILOGUE_OPS or len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        if len(out.uses) != 1 or out in graph.outputs:
            continue
        user, _ = out.uses[0]
        if getattr(user, "op", None) != "tj::relu" or user.owner is not graph.body:
            continue
        relu_out = user.outputs[0]
        epilogues[node] = "relu"
        relu_out.replace_all_uses_with(out)
        user.erase()
    return epilogues


_FLOAT_NP = (np.dtype(np.float32), np.dtype(np.float64))


def _const_arg(consts, ins, i):
    """(is constant, value) of input i: absent trailing inputs count as a constant None."""
    if i >= len(ins):
        return True, None
    if ins[i] in consts:
        return True, consts[ins[i]]
    return False, None


def _linear_step(node, ins, outs, buffer_of, epilogue, consts):
    from tracejit.codegen import blas

    ok_w, weight = _const_arg(consts, ins, 1)
    ok_b, bias = _const_arg(consts, ins, 2)
    t = node.inputs[0].type
    if not (ok_w and ok_b and isinstance(weight, np.ndarray) and weight.ndim == 2 and weight.dtype in _FLOAT_NP
            and isinstance(t, TensorType) and t.dtype is not None and t.dtype.np == weight.dtype):
        return None
    if bias is not None and (not isinstance(bias, np.ndarray) or bias.dtype != weight.dtype):
        return None
    kernel = blas.LinearKernel(weight, bias, activation=epilogue)
    x, out, value = ins[0], outs[0], node.outputs[0]

    def linear(env, bufs):
        env[out] = kernel(env[x], _out_array(out, value, buffer_of, bufs))

    return linear


def _conv2d_step(node, ins, outs, buffer_of, epilogue, consts):
    from tracejit.codegen import blas

    ok_w, weight = _const_arg(consts, ins, 1)
    ok_b, bias = _const_arg(consts, ins, 2)
    t = node.inputs[0].type
    if not (ok_w and ok_b and isinstance(weight, np.ndarray) and weight.ndim == 4 and weight.dtype in _FLOAT_NP
            and isinstance(t, TensorType) and t.shape is not None and len(t.shape) == 4
            and t.dtype is not None and t.dtype.np == weight.dtype):
        return None
    if bias is not None and (not isinstance(bias, np.ndarray) or bias.dtype != weight.dtype):
        return None
    a = node.attrs
    args = dict(stride=a.get("stride", 1), padding=a.get("padding", 0), dilation=a.get("dilation", 1),
                groups=a.get("groups", 1), activation=epilogue)
    try:
        blas.Conv2dKernel(tuple(t.shape), weight, bias, **args)
    except (ValueError, TypeError):
        return None
    local = threading.local()  # a conv kernel owns its column buffers: one per thread
    x, out, value = ins[0], outs[0], node.outputs[0]

    def conv2d(env, bufs):
        kernel = getattr(local, "kernel", None)
        if kernel is None:
            kernel = local.kernel = blas.Conv2dKernel(tuple(t.shape), weight, bias, **args)
        env[out] = kernel(env[x], _out_array(out, value, buffer_of, bufs))

    return conv2d


def _matmul_step(node, ins, outs, buffer_of, epilogue, consts):
    from tracejit.codegen import blas

    ta, tb = node.inputs[0].type, node.inputs[1].type
    if not all(isinstance(t, TensorType) and t.shape is not None and t.dtype is not None and 2 <= len(t.shape) <= 3
               and t.dtype.np in _FLOAT_NP for t in (ta, tb)) or ta.dtype is not tb.dtype:
        return None
    if len(ta.shape) != len(tb.shape):
        return None
    a, b_, out, value = ins[0], ins[1], outs[0], node.outputs[0]

    def matmul(env, bufs):
        env[out] = blas.matmul(env[a], env[b_], out=_out_array(out, value, buffer_of, bufs))

    return matmul


def _max_pool2d_step(node, ins, outs, buffer_of, epilogue, consts):
    """Max pooling when its indices are unused (inference): the running maximum over the kernel's offsets as
    strided views, a few whole-array ufunc calls instead of a windowed argmax. NaN wins, as in PyTorch."""
    a = node.attrs
    t, value = node.inputs[0].type, node.outputs[0]
    if node.outputs[1].uses or tuple(a.get("padding", (0, 0))) != (0, 0) or not isinstance(t, TensorType):
        return None
    if t.shape is None or len(t.shape) != 4 or value.type.shape is None or t.dtype is None:
        return None
    (kh, kw), (sh, sw), (dh, dw) = a["kernel_size"], a["stride"], a.get("dilation", (1, 1))
    oh, ow = value.type.shape[2:]
    if (oh - 1) * sh + (kh - 1) * dh >= t.shape[2] or (ow - 1) * sw + (kw - 1) * dw >= t.shape[3]:
        return None  # ceil_mode windows that run past the edge
    offsets = [(i * dh, j * dw) for i in range(kh) for j in range(kw)]
    x, out = ins[0], outs[0]

    def max_pool2d(env, bufs):
        src = env[x]
        dst = np.empty(value.type.shape, src.dtype)
        for k, (i, j) in enumerate(offsets):
            win = src[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
            if k == 0:
                np.copyto(dst, win)
            else:
                np.maximum(dst, win, out=dst)
        env[out] = dst

    return max_pool2d


_BLAS_STEPS = {"tj::linear": _linear_step, "tj::conv2d": _conv2d_step, "tj::matmul": _matmul_step,
               "tj::max_pool2d": _max_pool2d_step}
