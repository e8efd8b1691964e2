"""Reverse-mode autograd: the recorded graph (`Node`) and the engine that walks it.

`dispatch` records one Node per op whose inputs require grad. A Node keeps the op, its
attributes, the inputs its gradient rule needs (with their versions, so an in-place change
is caught instead of giving a wrong gradient) and, for each tensor input, where its
gradient goes next: another Node, a leaf tensor, or nowhere. Gradient rules live in the op
registry (`tracejit.ops.grads`) and are written with tensor ops, so a backward pass is
itself made of dispatched ops: it can record a graph (create_graph=True) and be traced.

The engine is iterative (no recursion): a chain of 10,000 ops backpropagates.

    >>> import tracejit as tj
    >>> x = tj.tensor([2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([4., 6.])
"""

from __future__ import annotations

import weakref

from .grad_mode import _state

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
    "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if "
    "you need to access saved tensors after calling backward."
)


class Node:
    """The grad_fn of an op's outputs."""

    __slots__ = ("op", "attrs", "inputs", "shapes", "dtypes", "next_functions", "saved_output", "n_outputs", "freed",
                 "__weakref__")

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {id(self):#x}>"


_NODE_CLASSES = {}


def node_class(op):
    """`AddBackward0` for tj::add, as PyTorch names its grad_fn classes."""
    cls = _NODE_CLASSES.get(op.name)
    if cls is None:
        camel = "".join(p.capitalize() for p in op.name.split("::", 1)[1].split("_"))
        cls = _NODE_CLASSES[op.name] = type(f"{camel}Backward0", (Node,), {"__slots__": ()})
    return cls


class SavedTensor:
    """A tensor a gradient rule needs, with the version it had when saved."""

    __slots__ = ("tensor", "version")

    def __init__(self, t):
        self.tensor = t
        self.version = t._version

    def unpack(self, node):
        t = self.tensor
        if t._version != self.version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"[{t.dtype} {list(t.shape)}], which is an input of {node.name()}, is at version {t._version}; "
                f"expected version {self.version} instead. Hint: clone() the tensor before modifying it in place."
            )
        return t


def _edge(t):
    """Where the gradient of input tensor `t` goes: its grad_fn, itself if it is a leaf, or nowhere."""
    if not t.requires_grad:
        return None
    fn = t.grad_fn
    if fn is not None:
        return (fn, t._out_index)
    return (t, 0)


def record(op, args, attrs, outputs, detach):
    """Attach a Node to `outputs` (a tuple of Tensors); `args` are the op's inputs as given to dispatch.

    `detach(t)` returns a tensor sharing t's data without history (for saving outputs).
    """
    from ..ops.grads import saves

    node = node_class(op)()
    node.op = op
    node.attrs = attrs
    node.freed = False
    save_in, save_out = saves(op)
    inputs, shapes, dtypes, edges = [], [], [], []
    for a in args:
        if isinstance(a, (list, tuple)) and any(hasattr(t, "_data") for t in a):
            # a list of tensors; None entries (unindexed dims of tj::index) get no edge
            inputs.append([SavedTensor(t) if save_in and t is not None else None for t in a])
            shapes.append([None if t is None else tuple(t._data.shape) for t in a])
            dtypes.append([None if t is None else t.dtype for t in a])
            edges.extend(None if t is None else _edge(t) for t in a)
        elif hasattr(a, "_data"):
            inputs.append(SavedTensor(a) if save_in else None)
            shapes.append(tuple(a._data.shape))
            dtypes.append(a.dtype)
            edges.append(_edge(a))
        else:
            inputs.append(a)
            shapes.append(None)
            dtypes.append(None)
    node.inputs = inputs
    node.shapes = shapes
    node.dtypes = dtypes
    node.next_functions = tuple(edges)
    node.n_outputs = len(outputs)
    node.saved_output = None
    if save_out:
        # Not the output itself: output -> grad_fn -> output would be a reference cycle.
        node.saved_output = [(detach(o), weakref.ref(o), o._version) for o in outputs]
    for i, o in enumerate(outputs):
        if o._data.dtype.kind == "f":
            o.requires_grad = True
            o.grad_fn = node
            o._out_index = i
    return node


class Context:
    """What a gradient rule sees: inputs, input shapes, outputs and attributes of the op."""

    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node

    @property
    def attrs(self):
        return self.node.attrs

    def shape(self, i):
        return self.node.shapes[i]

    def dtype(self, i):
        return self.node.dtypes[i]

    def needs_input_grad(self, i):
        """Whether input i's gradient goes anywhere (rules may skip costly gradients nobody needs)."""
        node = self.node
        k = 0
        for s in node.shapes[:i]:  # edges exist for tensor inputs only (one per list element)
            k += len(s) if isinstance(s, list) else (s is not None)
        edge = node.next_functions[k] if k < len(node.next_functions) else None
        return edge is not None

    def input(self, i):
        v = self.node.inputs[i]
        if isinstance(v, SavedTensor):
            return v.unpack(self.node)
        if isinstance(v, list):
            return [s.unpack(self.node) if s is not None else None for s in v]
        return v

    @property
    def inputs(self):
        return tuple(self.input(i) for i in range(len(self.node.inputs)))

    def output(self, i=0):
        det, ref, ver = self.node.saved_output[i]
        live = ref()
        if live is not None and live._version != ver:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"output {i} of {self.node.name()} is at version {live._version}; expected version {ver} instead. "
                "Hint: clone() the result before modifying it in place."
            )
        return det


def _accumulate(store, key, g):
    prev = store.get(key)
    store[key] = g if prev is None else prev + g


def _collect(roots):
    """How many edges point at each function reachable from `roots` (iterative DFS), keyed by id.

    Keys are ids because leaves are Tensors, whose `==` is elementwise.
    """
    deps = {}
    seen = set()
    stack = [r for r in roots if isinstance(r, Node)]
    seen.update(id(r) for r in stack)
    while stack:
        node = stack.pop()
        for e in node.next_functions:
            if e is None:
                continue
            fn = e[0]
            deps[id(fn)] = deps.get(id(fn), 0) + 1
            if isinstance(fn, Node) and id(fn) not in seen:
                seen.add(id(fn))
                stack.append(fn)
    return deps


def run_backward(F, tensors, grad_tensors, *, retain_graph, create_graph, inputs=None, accumulate=True):
    """Backpropagate from `tensors` with `grad_tensors`.

    With `inputs`, return their gradients (`autograd.grad`); with `accumulate`, add the
    gradients of leaves into `.grad` (`backward`). `F` is the tensor-op namespace the
    gradient rules are written with.
    """
    grads = {}  # (node or leaf tensor, output index) -> gradient so far
    roots = []
    for t, g in zip(tensors, grad_tensors):
        e = _edge(t)
        if e is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        _accumulate(grads, (id(e[0]), e[1]), g)
        roots.append(e[0])
    captured = {}
    wanted = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            e = _edge(t)
            if e is None:
                raise RuntimeError(f"one of the differentiated tensors (input {i}) does not require grad")
            wanted.setdefault((id(e[0]), e[1]), []).append(i)
    deps = _collect(roots)
    ready = list({id(r): r for r in roots if deps.get(id(r), 0) == 0}.values())
    prev_mode = _state["enabled"]
    _state["enabled"] = bool(create_graph)
    try:
        while ready:
            fn = ready.pop()
            if isinstance(fn, Node):
                outs = [grads.pop((id(fn), i), None) for i in range(fn.n_outputs)]
                for i, g in enumerate(outs):
                    for k in wanted.get((id(fn), i), ()):
                        captured[k] = g
                in_grads = _apply(F, fn, outs, retain_graph) if any(g is not None for g in outs) else None
                for j, e in enumerate(fn.next_functions):
                    if e is None:
                        continue
                    nxt = e[0]
                    if in_grads is not None and in_grads[j] is not None:
                        _accumulate(grads, (id(nxt), e[1]), in_grads[j])
                    deps[id(nxt)] -= 1
                    if deps[id(nxt)] == 0:
                        ready.append(nxt)
            else:  # a leaf tensor
                g = grads.pop((id(fn), 0), None)
                if (id(fn), 0) in wanted:
                    for k in wanted[(id(fn), 0)]:
                        captured[k] = g
                elif accumulate and g is not None:
                    _accumulate_leaf(fn, g, create_graph)
    finally:
        _state["enabled"] = prev_mode
    if inputs is not None:
        return tuple(captured.get(i) for i in range(len(inputs)))
    return None


def _accumulate_leaf(leaf, g, create_graph):
    if not create_graph and g.grad_fn is not None:
        g = g.detach()
    for hook in getattr(leaf, "_grad_hooks", None) or ():
        r = hook(g)
        if r is not None:
            g = r
    if leaf.grad is None:
        # A fresh tensor: the gradient must not alias memory the user or the graph still uses.
        leaf.grad = g if g._base is None and g is not leaf else g.clone()
    elif create_graph:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad.add_(g)


def _apply(F, node, grads, retain_graph):
    if node.freed:
        raise RuntimeError(_FREED_MSG)
    rule = node.op.grad
    if rule is None:
        raise RuntimeError(f"the derivative for {node.op.name} is not implemented")
    ctx = Context(node)
    if node.n_outputs == 1:
        res = rule(F, ctx, grads[0])
    else:
        res = rule(F, ctx, *grads)
    if not isinstance(res, tuple):
        res = (res,)
    flat = []
    for i, r in enumerate(res):
        shape = node.shapes[i]
        if shape is None:
            continue  # a non-tensor argument has no gradient
        if isinstance(shape, list):
            flat.extend(r if r is not None else [None] * len(shape))
        else:
            flat.append(r)
    if not retain_graph and (node.saved_output is not None or any(
            v is not None and not isinstance(v, (int, float, bool)) for v in node.inputs)):
        node.freed = True
        node.inputs = [None if hasattr(v, "unpack") or isinstance(v, list) else v for v in node.inputs]
        node.saved_output = None
    return flat
