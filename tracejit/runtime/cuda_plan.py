"""A graph on the GPU as a `CudaPlan`: CUDA kernels for fusion groups, cuBLAS for matrix products.

`CudaPlan(graph).run(*arrays)` takes numpy or cupy arrays and returns cupy arrays (`Model` copies them to
numpy at the edge). As with `Plan`, the first call with a given set of input sizes specializes the graph
to them (`plan.specialize`) and builds a program for it:

- `tj::linear` with a constant 2-D float32/float64 weight (kept transposed on the device) and
  `tj::matmul` on float32/float64 run as one cuBLAS GEMM (`cupy.matmul`). A linear's constant bias
  leaves the GEMM as a `tj::add` that joins the fusion group reading the product, or forms a group
  with the elementwise op that follows it (bias + ReLU: one kernel), or a group of its own;
- every `prim::FusionGroup`, and every lone elementwise op or reduction wrapped in a group of one,
  becomes CUDA C (`codegen.cuda_c.emit_group`), compiled by NVRTC to PTX for the device's compute
  capability, loaded by the CUDA driver and launched over its grid-stride loop; kernels are compiled
  on first use for the strides their inputs have. A group the emitter refuses runs op by op;
- every other op runs its registry implementation on cupy (`ops.execute.run_op`).

Graphs with control flow (or any prim the program has no rule for) run in the IR interpreter on cupy,
with the CUDA kernels of their groups. `plan.launches` is the number of GPU launches of the last run:
one per kernel and per GEMM, one per op run through its registry implementation (views, which only
change metadata, count none; an op's cupy implementation may itself launch more than one kernel), and
None for interpreted graphs. Which node runs how is decided on the host by `prepare` and `assign_steps`,
which need no GPU:

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(2, 3)):\\n  %w : Float(4, 3) = prim::Constant[value=@w]()\\n"
    ...           "  %b : Float(4) = prim::Constant[value=@b]()\\n"
    ...           "  %1 : Float(2, 4) = tj::linear(%x, %w, %b)\\n  %2 : Float(2, 4) = tj::relu(%1)\\n"
    ...           "  return (%2)\\n", constants={"w": np.ones((4, 3), np.float32), "b": np.ones(4, np.float32)})
    >>> steps = assign_steps(prepare(g))  # the bias and the ReLU share one kernel after the GEMM
    >>> [(s.kind, s.node.op, s.launches) for s in steps if s.kind != "host"]
    [('gemm', 'tj::linear', 1), ('kernel', 'prim::FusionGroup', 1)]

The device side (cupy, the CUDA driver, cuBLAS) is `runtime.cuda_device`; its `launch_shape` needs no GPU:

    >>> from tracejit.runtime.cuda_device import launch_shape
    >>> launch_shape(steps[-1].kernel, sm_count=132)
    ((1, 1, 1), (256, 1, 1))
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, NamedTuple

import numpy as np

from tracejit import ops
from tracejit.codegen import cuda_c
from tracejit.ir.graph import ConstRef, Node
from tracejit.ir.types import TensorType
from tracejit.ops.execute import run_op
from tracejit.runtime.cuda_device import VECTOR_ALIGN, CupyBackend, ptx_member
from tracejit.runtime.plan import bind, program_for, run_block, specialize

# Ops a program runs itself; any other prim (control flow, scalar arithmetic) sends the graph to the interpreter.
_HOST_PRIMS = {"prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack",
               "prim::TupleUnpack"}
_LONE_REDUCTIONS = {"tj::sum", "tj::mean", "tj::amax", "tj::amin", "tj::softmax", "tj::log_softmax"}
_GEMM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FRESH_KINDS = {"elementwise", "reduction", "linalg", "scan", "factory", "random"}


# ---- host side: how each node runs (no GPU needed) -------------------------------------------------


class Step(NamedTuple):
    """How one top-level node of a prepared graph runs.

    kind: "kernel" (a fusion group as one CUDA kernel), "gemm" (cuBLAS), "ops" (a group the CUDA emitter
    refuses, run op by op through the registry), "op" (one op through the registry) or "host" (constants,
    lists and tuples: no GPU work). `launches`: what the step adds to `CudaPlan.launches`. `kernel`: the
    `KernelSource` of a "kernel" step (for C-contiguous inputs); `why`: the emitter's refusal for "ops".
    """

    kind: str
    node: Any
    launches: int
    kernel: Any = None
    why: str | None = None


def _host_array(x):
    return np.asarray(getattr(x, "_data", x))


def _const_array(graph, v):
    """The array of a value produced by a `prim::Constant` naming a weight, else None."""
    n = v.node
    if n is None or n.op != "prim::Constant" or not isinstance(n.attrs.get("value"), ConstRef):
        return None
    return _host_array(graph.constants[n.attrs["value"].name])


def _is_none(v):
    n = v.node
    return n is not None and n.op == "prim::Constant" and n.attrs.get("value") is None


def _tensor_np_dtype(v):
    t = v.type
    if not isinstance(t, TensorType) or t.dtype is None or t.shape is None:
        return None
    return np.dtype(t.dtype.np)


def _is_gemm(graph, node):
    """Whether `node` runs as one cuBLAS GEMM: a linear with a constant 2-D float weight (and a constant bias
    or none), or a matmul of two float32/float64 tensors of at least 2 dims."""
    if node.op == "tj::linear":
        if len(node.inputs) not in (2, 3):
            return False
        w = _const_array(graph, node.inputs[1])
        if w is None or w.ndim != 2 or w.dtype not in _GEMM_DTYPES or _tensor_np_dtype(node.inputs[0]) != w.dtype:
            return False
        if len(node.inputs) == 3 and not _is_none(node.inputs[2]):
            b = _const_array(graph, node.inputs[2])
            return b is not None and b.dtype == w.dtype and b.shape in ((w.shape[0],), ())
        return True
    if node.op == "tj::matmul":
        a, b = node.inputs
        dt = _tensor_np_dtype(a)
        return (dt in _GEMM_DTYPES and _tensor_np_dtype(b) == dt and len(a.type.shape) >= 2
                and len(b.type.shape) >= 2)
    return False


def _has_bias(node):
    return node.op == "tj::linear" and len(node.inputs) == 3 and not _is_none(node.inputs[2])


def _op_launches(op):
    try:
        return 0 if ops.get(op).kind == "view" else 1
    except KeyError:
        return 1


def interpreted(graph):
    """Whether a CudaPlan runs `graph` in the interpreter: it has control flow, or a prim a program has no rule
    for."""
    return any(not (n.op.startswith("tj::") or n.op in _HOST_PRIMS or n.op == "prim::FusionGroup")
               for n in graph.nodes())


def assign_steps(graph):
    """The `Step` of every top-level node of `graph` (specialized, prepared, without control flow), in order."""
    steps = []
    for node in graph.body.nodes:
        if node.op in _HOST_PRIMS:
            steps.append(Step("host", node, 0))
        elif node.op == "prim::FusionGroup":
            why = cuda_c.refusal(node)
            if why is None:
                steps.append(Step("kernel", node, 1, kernel=cuda_c.emit_group(node)))
            else:
                block = node.blocks[0].nodes
                steps.append(Step("ops", node, sum(_op_launches(n.op) for n in block if n.op.startswith("tj::")),
                                  why=why))
        elif not node.op.startswith("tj::"):
            raise ValueError(f"assign_steps: {node.op} needs the interpreter (see `interpreted`)")
        elif _is_gemm(graph, node):
            steps.append(Step("gemm", node, 2 if _has_bias(node) else 1))
        else:
            steps.append(Step("op", node, _op_launches(node.op)))
    return steps


def prepare(graph):
    """Rewrite a private, specialized copy of a graph for the GPU; returns it.

    A GEMM linear's constant bias becomes a `tj::add` after it, moved into the fusion group that reads
    the product, or grouped with the elementwise op (or row-wise reduction) that does; then every lone
    elementwise op or reduction becomes a group of one, so it runs as a kernel too.
    """
    for node in list(graph.body.nodes):
        if node.op == "tj::linear" and _has_bias(node) and _is_gemm(graph, node):
            _split_bias(graph, node)
    _wrap_lone_ops(graph)
    return graph


def _split_bias(graph, node):
    from tracejit.ir.passes import _fusible, make_group

    x, w, b = node.inputs
    y = node.outputs[0]
    gemm = graph.create("tj::linear", [x, w], [y.type], attrs=node.attrs, loc=node.loc, scope=node.scope)
    node.insert_before(gemm)
    add = graph.create("tj::add", [gemm.outputs[0], b], [y.type], attrs=dict(ops.get("tj::add").attrs),
                       loc=node.loc, scope=node.scope)
    node.insert_before(add)
    y.replace_all_uses_with(add.outputs[0])
    node.erase()
    out = add.outputs[0]
    if len(out.uses) != 1:
        return
    user, i = out.uses[0]
    if not isinstance(user, Node) or user.owner is not graph.body:
        return
    if user.op == "prim::FusionGroup":
        _add_into_group(graph, add, user, i)
    elif user.op.startswith("tj::") and _fusible(user) and all(isinstance(v.type, TensorType) for v in user.outputs):
        graph.body.nodes.remove(add)  # every input of `add` is defined before `user`: move it next to it
        add.owner = None
        user.insert_before(add)
        make_group(graph, graph.body, [add, user])


def _add_into_group(graph, add, group, i):
    """Move `add` (product + bias) into `group`, which reads its result as input `i`."""
    product, bias = add.inputs
    block = group.blocks[0]
    param = block.params[i]
    inner = graph.create("tj::add", [], [param.type], attrs=dict(add.attrs), loc=add.loc, scope=add.scope)
    param.replace_all_uses_with(inner.outputs[0])
    inner.add_input(param)
    inner.add_input(graph.add_param(block, bias.type))
    if block.nodes:
        block.nodes[0].insert_before(inner)
    else:
        block.append(inner)
    group.add_input(bias)
    old = group.inputs[i]
    old.uses = [u for u in old.uses if not (u[0] is group and u[1] == i)]
    group.inputs[i] = product
    product.uses.append((group, i))
    add.erase()


def _runs_as_group(node):
    """Whether a lone top-level op becomes a group of one: an elementwise op or a reduction with a tensor result."""
    from tracejit.ir.passes import _fusible

    return (node.op.startswith("tj::") and len(node.outputs) == 1 and (_fusible(node) or node.op in _LONE_REDUCTIONS)
            and isinstance(node.outputs[0].type, TensorType))


def _wrap_lone_ops(graph):
    from tracejit.ir.passes import make_group

    for node in list(graph.body.nodes):
        if _runs_as_group(node):
            make_group(graph, graph.body, [node])


def _aliasing_outputs(graph, steps):
    """Per graph output: whether it may share memory with a graph input or a weight (then `run` copies it)."""
    shared = set(graph.inputs)
    for s in steps:
        node = s.node
        if node.op == "prim::Constant":
            shared.update(node.outputs)
        elif node.op == "prim::FusionGroup":
            if s.kind == "ops":  # a block may return one of its params as it is
                params = node.blocks[0].params
                for v, r in zip(node.outputs, node.blocks[0].returns):
                    if r in params and node.inputs[params.index(r)] in shared:
                        shared.add(v)
        elif s.kind == "gemm" or (node.op.startswith("tj::") and ops.get(node.op).kind in _FRESH_KINDS
                                  and node.op != "tj::to_dtype"):
            continue
        elif any(v in shared for v in node.inputs):
            shared.update(node.outputs)
    return [v in shared for v in graph.outputs]


class CudaPlan:
    """`CudaPlan(graph, device=0).run(*arrays) -> tuple of cupy arrays`; see the module docstring.

    `.launches`: GPU launches of the last run (None for interpreted graphs); `.steps`: the `Step`s of the
    program the last run used. `native=False` runs the reference interpreter on the GPU instead.
    `backend`: the device side (allocation, transfers, kernel loading, GEMMs); `cuda_device.CupyBackend(device)`
    by default. Safe to call from several threads (`.launches` and `.steps` then describe one of them).
    """

    def __init__(self, graph, *, device=None, native=True, backend=None, cached=None):
        self.graph = graph
        self.native = native
        self.backend = backend if backend is not None else CupyBackend(device, cached=cached)
        self.launches = None
        self.steps = None
        self._inputs = [(v.name, v.type) for v in graph.inputs]
        self._interpreted = interpreted(graph)
        self._programs = {}
        self._weights = {}  # (weight name, transposed) -> its device array, shared by every specialization
        self._lock = threading.Lock()

    def run(self, *arrays):
        sizes = bind(self._inputs, arrays)
        be = self.backend
        with be.activate():
            prog = program_for(self._programs, self._lock, sizes, self._build)
            arrays = [be.to_device(a) if be.is_host(a) else a for a in arrays]
            outs, self.launches = prog(arrays)
        self.steps = getattr(prog, "steps", None)
        return outs

    def _weight(self, graph, name, transposed=False):
        """The device copy of weight `name` (`transposed`: of its 2-D transpose, C-contiguous)."""
        w = self._weights.get((name, transposed))
        if w is None:
            host = _host_array(graph.constants[name])
            host = np.ascontiguousarray(host.T) if transposed else host
            w = self._weights[name, transposed] = self.backend.to_device(host)
        return w

    def _build(self, sizes):
        graph = specialize(self.graph, sizes)
        if self._interpreted or not self.native:
            return _Interpreted(graph, self.backend, self._weight, kernels=self.native)
        return _Program(prepare(graph), self.backend, self._weight)


class _Interpreted:
    """The IR interpreter on the device, with the CUDA kernels of every group the emitter accepts."""

    def __init__(self, graph, backend, weight, kernels):
        self.graph, self.xp = graph, backend.xp
        graph.constants = {name: weight(graph, name) for name in graph.constants}  # its own table: a copy
        self.kernels = None
        if kernels:
            self.kernels = {}
            for node in graph.nodes():
                if node.op == "prim::FusionGroup":
                    k = cuda_c.emit_group(node)
                    if k is not None:
                        group = _GroupKernel(node, k, backend)
                        self.kernels[node] = lambda *args, group=group: group(args)[0]

    def __call__(self, arrays):
        from tracejit import ir

        return ir.run(self.graph, *arrays, xp=self.xp, kernels=self.kernels), None


class _Program:
    """The steps of one specialized, prepared graph without control flow."""

    def __init__(self, graph, backend, weight):
        self.graph = graph
        self.steps = assign_steps(graph)
        slot = {}

        def slot_of(v):
            return slot.setdefault(v, len(slot))

        self.input_slots = [slot_of(v) for v in graph.inputs]
        gemm_linears = {s.node for s in self.steps if s.kind == "gemm" and s.node.op == "tj::linear"}
        template = {}
        self.calls = []
        for s in self.steps:
            node = s.node
            ins, outs = [slot_of(v) for v in node.inputs], [slot_of(v) for v in node.outputs]
            if node.op == "prim::Constant":
                value = node.attrs.get("value")
                if isinstance(value, ConstRef):
                    # a weight only GEMMs read lives on the device transposed, not also as it is
                    if all(u in gemm_linears and i == 1 for u, i in node.outputs[0].uses):
                        continue
                    value = weight(graph, value.name)
                template[outs[0]] = value
                continue
            self.calls.append(_make_call(s, graph, ins, outs, backend, weight))
        self.output_slots = [slot_of(v) for v in graph.outputs]
        self.copy_out = _aliasing_outputs(graph, self.steps)
        self.template = [template.get(i) for i in range(len(slot))]

    def __call__(self, arrays):
        env = list(self.template)
        for s, a in zip(self.input_slots, arrays):
            env[s] = a
        launches = 0
        for call in self.calls:
            launches += call(env)
        outs = tuple(env[s].copy() if copy and hasattr(env[s], "copy") else env[s]
                     for s, copy in zip(self.output_slots, self.copy_out))
        return outs, launches


def _make_call(step, graph, ins, outs, backend, weight):
    """A function of the value table that runs `step` and returns its launches."""
    node, xp = step.node, backend.xp
    if step.kind == "kernel":
        group = _GroupKernel(node, step.kernel, backend)

        def kernel(env):
            results, n = group([env[i] for i in ins])
            for s, r in zip(outs, results):
                env[s] = r
            return n

        return kernel
    if step.kind == "ops":
        block, count = node.blocks[0], step.launches

        def group_ops(env):
            for s, r in zip(outs, run_block(block, [env[i] for i in ins], xp)):
                env[s] = r
            return count

        return group_ops
    if step.kind == "gemm" and node.op == "tj::linear":
        return _linear_call(node, graph, ins, outs, backend, weight)
    if step.kind == "gemm":
        a, b, out = ins[0], ins[1], outs[0]

        def matmul(env):
            env[out] = backend.matmul(env[a], env[b])
            return 1

        return matmul
    if node.op in ("prim::ListConstruct", "prim::TupleConstruct"):
        make = list if node.op == "prim::ListConstruct" else tuple

        def construct(env):
            env[outs[0]] = make(env[i] for i in ins)
            return 0

        return construct
    if node.op in ("prim::ListUnpack", "prim::TupleUnpack"):
        def unpack(env):
            for s, v in zip(outs, env[ins[0]]):
                env[s] = v
            return 0

        return unpack
    op, attrs, count = ops.get(node.op), dict(node.attrs), step.launches

    def run(env):
        r = run_op(op, xp, [env[i] for i in ins], attrs)
        if len(outs) == 1:
            env[outs[0]] = r
        else:
            for s, v in zip(outs, r):
                env[s] = v
        return count

    return run


def _linear_call(node, graph, ins, outs, backend, weight):
    w_name = node.inputs[1].node.attrs["value"].name
    wt = weight(graph, w_name, transposed=True)  # (in, out): a plain row-major GEMM, no transpose per call
    k, n = wt.shape
    bias = weight(graph, node.inputs[2].node.attrs["value"].name) if _has_bias(node) else None
    x, out = ins[0], outs[0]

    def linear(env):
        a = env[x]
        lead = tuple(a.shape[:-1])
        y = backend.matmul(a.reshape(-1, k), wt)
        if bias is not None:
            y += bias
        env[out] = y.reshape(*lead, n)
        return 1 if bias is None else 2

    return linear




class _GroupKernel:
    """One fusion group on the device: a kernel per input-stride pattern, compiled on first use; the block op
    by op (through the registry) for inputs a kernel cannot take. `group(args) -> (outputs, launches)`."""

    def __init__(self, node, kernel, backend):
        self.node, self.kernel, self.backend = node, kernel, backend
        self.params = node.blocks[0].params
        self.launchers = {}  # input strides -> (KernelSource, launch function), or None: run op by op
        self.lock = threading.Lock()
        self.fallback_launches = sum(_op_launches(n.op) for n in node.blocks[0].nodes if n.op.startswith("tj::"))

    def __call__(self, args):
        be = self.backend
        args = [be.to_device(a) if be.is_host(a) else a for a in args]
        key = tuple(None if shape is None else _element_strides(a) for a, shape in zip(args, self.kernel.in_shapes))
        entry = self.launchers.get(key, False)
        if entry is False:
            with self.lock:
                entry = self.launchers.get(key, False)
                if entry is False:
                    entry = self.launchers[key] = self._launcher(args, key)
        if entry is None:
            return run_block(self.node.blocks[0], args, be.xp), self.fallback_launches
        k, launch = entry
        launches = 1
        if getattr(k, "vector_width", 1) > 1:  # 16-byte loads: a view at an odd offset gets an aligned copy
            for i, shape in enumerate(k.in_shapes):
                if shape is not None and be.address(args[i]) % VECTOR_ALIGN:
                    args[i] = args[i].copy()
                    launches += 1
        outs = [be.empty(s, d) for s, d in zip(k.out_shapes, k.out_dtypes)]
        launch(outs, args)
        return outs, launches

    def _launcher(self, args, key):
        """(KernelSource, launch function) for arguments like `args` (strides `key`), or None when they do
        not fit a kernel."""
        k = self.kernel
        for a, shape, dtype, strides in zip(args, k.in_shapes, k.in_dtypes, key):
            if shape is None:
                continue
            if strides is None or isinstance(a, np.generic) or tuple(a.shape) != tuple(shape) or a.dtype != dtype:
                return None
        if key != tuple(k.in_strides):
            k = cuda_c.emit_group(self.node, in_strides=list(key))
            if k is None:
                return None
        return k, self.backend.load(k, self.node)


def _element_strides(a):
    """Element strides of an array (None for non-arrays, or strides that are not whole elements)."""
    strides = getattr(a, "strides", None)
    if strides is None or not hasattr(a, "shape"):
        return None
    size = a.dtype.itemsize
    if any(s % size for s in strides):
        return None
    return tuple(s // size for s in strides)


class HostBackend:
    """CudaPlan's device side on the host (numpy): a kernel launch runs its group's block through the
    registry. It lists the kernels a graph needs for given inputs (`kernels`), e.g. to ship their PTX in
    a model file, and runs the plan's logic where there is no GPU."""

    xp = np
    sm_count = 4

    def __init__(self):
        self.kernels = []

    def activate(self):
        return contextlib.nullcontext()

    def is_host(self, a):
        return False  # numpy arrays are this device's arrays

    def to_device(self, a):
        return np.asarray(a)

    def to_host(self, a):
        return np.asarray(a)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def matmul(self, a, b):
        return np.matmul(a, b)

    def address(self, a):
        return a.__array_interface__["data"][0]

    def load(self, kernel, node):
        self.kernels.append(kernel)

        def launch(outs, args):
            for o, r in zip(outs, run_block(node.blocks[0], args, np)):
                np.copyto(o, r)

        return launch


def ptx_members(graph, arrays, archs):
    """`.tj` members (name -> bytes) holding the PTX of every kernel `graph` runs for inputs like `arrays`
    (their sizes and strides), compiled by NVRTC for each virtual architecture in `archs` ("compute_90").
    `tracejit.load(path, device="cuda")` uses one only on a GPU of that architecture, for that kernel."""
    from tracejit.codegen import nvrtc

    for arch in archs:
        if not re.fullmatch(r"compute_\d+", str(arch)):
            raise ValueError(f"PTX architectures are virtual ones such as 'compute_90'; got {arch!r}")
    backend = HostBackend()
    CudaPlan(graph, backend=backend).run(*arrays)
    members = {}
    for arch in archs:
        for k in backend.kernels:
            members[ptx_member(arch, k.source)] = nvrtc.compile_ptx(k.source, arch=arch).encode()
    return members


__all__ = ["CudaPlan", "HostBackend", "Step", "assign_steps", "interpreted", "prepare", "ptx_members"]
