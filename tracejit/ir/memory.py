"""Memory planning: liveness of every intermediate tensor and buffer reuse for the runtime plan.

Each tensor computed by a node of the graph body gets a buffer; a buffer is free again after the
last use of every value stored in it, and a later value takes the smallest free buffer that is
large enough (best fit), else a new one. Views (registry ops of kind "view") share their input's
buffer, which stays alive as long as any of them. Graph inputs, constants and outputs are not
planned: inputs and constants are owned by the caller and the model file, outputs are returned.

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(N, 256)):\\n  %1 : Float(N, 256) = tj::relu(%x)\\n"
    ...           "  %2 : Float(N, 256) = tj::exp(%1)\\n  %3 : Float(N, 256) = tj::neg(%2)\\n  return (%3)\\n")
    >>> plan = plan_memory(g, sizes={"N": 64})
    >>> plan.peak_bytes, plan.unplanned_bytes
    (131072, 196608)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracejit import ops
from tracejit.ir.types import TensorType


class MemoryPlanError(ValueError):
    """The graph's intermediate sizes cannot be known (a symbol without a size, an unknown shape)."""


@dataclass
class MemoryPlan:
    """Where each intermediate value lives: `buffer_of[value] -> buffer index`, `buffer_bytes[i]`."""

    buffer_of: dict = field(default_factory=dict)
    owner_of: dict = field(default_factory=dict)  # value -> the value whose buffer it uses (views: their source)
    buffer_bytes: list = field(default_factory=list)
    peak_bytes: int = 0  # the most intermediate memory live at once, with reuse
    unplanned_bytes: int = 0  # the same without reuse: every intermediate in its own buffer

    @property
    def total_bytes(self):
        """Memory the planned buffers take together (what a runtime allocates up front)."""
        return sum(self.buffer_bytes)

    def summary(self):
        return (f"{len(self.buffer_bytes)} buffers, {self.total_bytes} bytes allocated, peak {self.peak_bytes} bytes "
                f"live (without reuse: {self.unplanned_bytes} bytes)")


def _nbytes(t, sizes):
    if not isinstance(t, TensorType) or t.shape is None or t.dtype is None:
        raise MemoryPlanError(f"cannot plan a value of type {t}: its shape and dtype must be known")
    n = t.dtype.itemsize
    for d in t.shape:
        if isinstance(d, str):
            if d not in sizes:
                raise MemoryPlanError(f"symbolic dim {d} needs a size to plan memory: plan_memory(graph, "
                                      f"sizes={{{d!r}: ...}})")
            d = sizes[d]
        n *= d
    return n


def _is_view(node):
    if not node.op.startswith("tj::"):
        return False
    try:
        return ops.get(node.op).kind == "view"
    except KeyError:
        return False


def plan_memory(graph, sizes=None):
    """Plan the body's intermediate buffers; `sizes` gives values for symbolic dims."""
    sizes = dict(sizes or {})
    nodes = graph.body.nodes
    outputs = set(graph.outputs)
    root = {}  # value -> the value owning its buffer (itself, or a view's source)
    last = {}  # owner -> index of the last node reading it or any of its views
    for i, n in enumerate(nodes):
        stack = [n]
        while stack:  # reads inside nested blocks count as reads by the owning node
            m = stack.pop()
            for v in m.inputs:
                owner = root.get(v)
                if owner is not None:
                    last[owner] = i
            for b in m.blocks:
                for v in b.returns:
                    owner = root.get(v)
                    if owner is not None:
                        last[owner] = i
                stack.extend(b.nodes)
        if n.op == "prim::Constant":
            continue  # constants live in the model file, not in planned buffers
        view = _is_view(n)
        for v in n.outputs:
            if not isinstance(v.type, TensorType):
                continue
            src = root.get(n.inputs[0]) if view and n.inputs else None
            root[v] = src if src is not None else v
            last.setdefault(root[v], i)
    pinned = {root[v] for v in outputs if v in root}
    plan = MemoryPlan()
    plan.owner_of = dict(root)
    free = []  # (bytes, buffer index)
    live_bytes = 0
    releases = {}
    for owner, i in last.items():
        if owner not in pinned:
            releases.setdefault(i, []).append(owner)
    for i, n in enumerate(nodes):
        for v in n.outputs:
            if root.get(v) is not v:
                if v in root:
                    plan.buffer_of[v] = plan.buffer_of.get(root[v])
                continue
            size = _nbytes(v.type, sizes)
            plan.unplanned_bytes += size
            fits = [f for f in free if f[0] >= size]
            if fits and v not in pinned:
                best = min(fits)
                free.remove(best)
                buf = best[1]
            else:
                buf = len(plan.buffer_bytes)
                plan.buffer_bytes.append(size)
            plan.buffer_of[v] = buf
            live_bytes += plan.buffer_bytes[buf]
        plan.peak_bytes = max(plan.peak_bytes, live_bytes)
        for owner in releases.get(i, ()):
            buf = plan.buffer_of[owner]
            live_bytes -= plan.buffer_bytes[buf]
            free.append((plan.buffer_bytes[buf], buf))
    return plan
