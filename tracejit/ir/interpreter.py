"""The reference interpreter: runs a Graph on numpy (or cupy) arrays through the registry's
reference implementations. It is the oracle every pass and backend is checked against.

Control flow (prim::If, prim::Loop) runs on an explicit stack of frames, so deep graphs and
deep nesting never touch the recursion limit; each value is dropped after its last use in its
block. An error names the node it came from.

    >>> import numpy as np
    >>> from tracejit.ir import parse, run
    >>> g = parse("graph(%x : Float(2)):\\n  %1 : Float(2) = tj::relu(%x)\\n  return (%1)\\n")
    >>> run(g, np.array([-1.0, 2.0], np.float32))
    (array([0., 2.], dtype=float32),)
"""

from __future__ import annotations

import operator

import numpy as np

from tracejit import ops
from tracejit.devices import array_module
from tracejit.ir.graph import ConstRef
from tracejit.ir.printer import _node_line
from tracejit.ops.execute import run_op

_SCALAR_OF = {"prim::Bool": bool, "prim::Int": int, "prim::Float": float}


class IRRuntimeError(RuntimeError):
    """An op failed while the interpreter ran it; the message shows the node and its source line."""


class ScriptException(IRRuntimeError):
    """A `raise` or failed `assert` of scripted code, reached at run time; the message is the program's."""

    def __init__(self, message, where=""):
        super().__init__(message + (f"\n  raised by {where}" if where else ""))
        self.user_message = message


def _show(value):
    """A run-time value as a raised message shows it (a one-element array as its number)."""
    if hasattr(value, "shape") and getattr(value, "size", 0) == 1:
        return value.reshape(()).item() if hasattr(value, "reshape") else value
    return value


def _floordiv(a, b):
    return a // b


def _truediv(a, b):
    return a / b


# Python-number ops of scripted code (`n = x.size(0) // 2`, `i < n`, `not done`): Python's semantics.
SCALAR_OPS = {
    "prim::add": operator.add, "prim::sub": operator.sub, "prim::mul": operator.mul,
    "prim::truediv": _truediv, "prim::floordiv": _floordiv, "prim::mod": operator.mod,
    "prim::pow": operator.pow, "prim::neg": operator.neg, "prim::not": operator.not_,
    "prim::lt": operator.lt, "prim::le": operator.le, "prim::gt": operator.gt, "prim::ge": operator.ge,
    "prim::eq": operator.eq, "prim::ne": operator.ne, "prim::and": lambda a, b: bool(a and b),
    "prim::or": lambda a, b: bool(a or b), "prim::min": min, "prim::max": max, "prim::abs": abs,
}


def _uses_in(node):
    """Values read by `node` and by everything nested inside it (explicit stack)."""
    out = list(node.inputs)
    stack = list(node.blocks)
    while stack:
        b = stack.pop()
        out.extend(b.returns)
        for n in b.nodes:
            out.extend(n.inputs)
            stack.extend(n.blocks)
    return out


def _release_plan(block):
    """For each node index, the values of this block that are dead after it."""
    defined = set(block.params)
    for n in block.nodes:
        defined.update(n.outputs)
    last = {v: -1 for v in defined}
    for j, n in enumerate(block.nodes):
        for v in n.outputs:
            last[v] = max(last[v], j)
        for v in _uses_in(n):
            if v in last:
                last[v] = j
    keep = set(block.returns)
    plan = [[] for _ in block.nodes]
    for v, j in last.items():
        if v not in keep and j >= 0:
            plan[j].append(v)
    return plan


class _Frame:
    __slots__ = ("block", "pos", "done", "plan", "deferred")

    def __init__(self, block, done, plans):
        self.block = block
        self.pos = 0
        self.done = done
        self.deferred = []
        plan = plans.get(id(block))
        if plan is None:
            plan = plans[id(block)] = _release_plan(block)
        self.plan = plan


def _unwrap(x):
    data = getattr(x, "_data", None)  # a front-end Tensor, without importing the front end
    return data if data is not None else x


def run(graph, *inputs, xp=None, kernels=None, cache=None):
    """Run `graph` on `inputs` (arrays, numbers, or tensors); returns a tuple of outputs.

    `kernels` maps `prim::FusionGroup` nodes to compiled callables (`kernel(*arrays) -> outputs`);
    a group without one, or whose inputs do not suit it, runs node by node. `cache`: a dict the caller
    keeps across runs of this graph, which must not change meanwhile (what each block frees when, each
    node's op and dtype rule answers)."""
    params = graph.inputs
    if len(inputs) != len(params):
        names = ", ".join("%" + p.name for p in params)
        raise TypeError(f"graph expects {len(params)} inputs ({names}), got {len(inputs)}")
    inputs = [_unwrap(x) for x in inputs]
    if xp is None:
        arrays = [x for x in inputs if hasattr(x, "dtype") and hasattr(x, "shape")]
        xp = array_module(arrays[0]) if arrays else np
    env = dict(zip(params, inputs))
    result = []
    plans = {} if cache is None else cache

    def finish_graph(values):
        result.extend(values)

    _drive([_Frame(graph.body, finish_graph, plans)], env, graph, xp, plans, kernels)
    return tuple(result)


def _drive(frames, env, graph, xp, plans, kernels=None):
    while frames:
        f = frames[-1]
        if f.pos == len(f.block.nodes):
            frames.pop()
            results = [env[v] for v in f.block.returns]
            for v in f.deferred:
                env.pop(v, None)
            f.done(results)
            continue
        node = f.block.nodes[f.pos]
        plan = f.plan[f.pos]
        f.pos += 1
        try:
            _step(node, env, frames, graph, xp, plans, kernels)
        except IRRuntimeError:
            raise
        except Exception as e:
            line = _node_line(node, "")
            raise IRRuntimeError(f"{type(e).__name__}: {e}\n  while executing {line}") from e
        if node.blocks:  # its nested blocks may still read these: drop them when this block ends
            f.deferred.extend(plan)
        else:
            for v in plan:
                env.pop(v, None)


def run_node(graph, node, env, xp=np):
    """Run one node of `graph` (with its nested blocks) given `env`, a dict from every value it reads to
    its runtime value; returns the node's outputs as a list. Scripting uses it to learn what a branch
    or loop computes on the example inputs."""
    env = dict(env)
    plans = {}
    frames = []
    try:
        _step(node, env, frames, graph, xp, plans)
    except IRRuntimeError:
        raise
    except Exception as e:
        raise IRRuntimeError(f"{type(e).__name__}: {e}\n  while executing {_node_line(node, '')}") from e
    _drive(frames, env, graph, xp, plans)
    return [env[v] for v in node.outputs]


def _assign(env, values, results):
    if len(values) != len(results):
        raise IRRuntimeError(f"a block returned {len(results)} values for {len(values)} outputs")
    for v, r in zip(values, results):
        env[v] = r


def _step(node, env, frames, graph, xp, plans, kernels=None):
    op = node.op
    args = [env[v] for v in node.inputs]
    if op == "prim::Constant":
        value = node.attrs.get("value")
        if isinstance(value, ConstRef):
            value = xp.asarray(_unwrap(graph.constants[value.name]))
        env[node.outputs[0]] = value
    elif op in ("prim::ListConstruct", "prim::TupleConstruct"):
        env[node.outputs[0]] = list(args) if op == "prim::ListConstruct" else tuple(args)
    elif op in _SCALAR_OF:  # a one-element tensor read as a Python number (TorchScript's aten::Bool, ...)
        env[node.outputs[0]] = _SCALAR_OF[op](args[0].item() if hasattr(args[0], "item") else args[0])
    elif op in ("prim::ListUnpack", "prim::TupleUnpack"):
        _assign(env, node.outputs, list(args[0]))
    elif op in SCALAR_OPS:
        env[node.outputs[0]] = SCALAR_OPS[op](*args)
    elif op == "prim::size":
        env[node.outputs[0]] = int(args[0].shape[node.attrs["dim"]])
    elif op == "prim::NumToTensor":
        env[node.outputs[0]] = xp.asarray(args[0], dtype=node.outputs[0].type.dtype.np)
    elif op == "prim::Uninitialized":
        env[node.outputs[0]] = None
    elif op == "prim::RaiseException":  # the message is a format string: {} per input, {{ for a brace
        message = node.attrs.get("message", "an exception was raised").format(*(_show(a) for a in args))
        raise ScriptException(message, _node_line(node, ""))
    elif op == "prim::If":
        block = node.blocks[0] if bool(args[0]) else node.blocks[1]
        frames.append(_Frame(block, lambda res, node=node: _assign(env, node.outputs, res), plans))
    elif op == "prim::Loop":
        _start_loop(node, args, env, frames, plans)
    elif op == "prim::FusionGroup" and kernels and node in kernels and _fits(node, args):
        _assign(env, node.outputs, list(kernels[node](*args)))
    elif op == "prim::FusionGroup":  # its block binds the group's inputs as params
        block = node.blocks[0]
        _assign(env, block.params, args)
        frames.append(_Frame(block, lambda res, node=node: _assign(env, node.outputs, res), plans))
    elif op.startswith("tj::"):
        entry = plans.get(node)
        if entry is None:
            entry = plans[node] = (ops.get(op), {})
        res = run_op(entry[0], xp, args, node.attrs, entry[1])
        if len(node.outputs) == 1:
            env[node.outputs[0]] = res
        else:
            _assign(env, node.outputs, list(res))
    else:
        raise IRRuntimeError(f"the interpreter has no rule for {op}\n  while executing {_node_line(node, '')}")


def _fits(node, args):
    """Whether the runtime arrays match the static types a kernel was compiled for."""
    for a, p in zip(args, node.blocks[0].params):
        t = p.type
        if not hasattr(a, "dtype") or a.dtype != t.dtype.np or tuple(a.shape) != tuple(t.shape):
            return False
    return True


def _start_loop(node, args, env, frames, plans):
    """TorchScript's loop: inputs (max_trip_count, cond, *carried); body params (i, *carried),
    body returns (cond, *carried); the node's outputs are the final carried values."""
    max_trip, cond, carried = int(args[0]), bool(args[1]), list(args[2:])
    body = node.blocks[0]
    state = {"i": 0}

    def iterate(values):
        if not (cond_now[0] and state["i"] < max_trip):
            _assign(env, node.outputs, values)
            return
        _assign(env, body.params, [state["i"], *values])
        frames.append(_Frame(body, after_body, plans))

    def after_body(res):
        cond_now[0] = bool(res[0])
        state["i"] += 1
        iterate(list(res[1:]))

    cond_now = [cond]
    iterate(carried)
