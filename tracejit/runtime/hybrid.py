"""Running graphs with control flow: each block becomes a list of step functions, built once.

The reference interpreter (`tracejit.ir.interpreter`) decides per node, on every run, what the node
is; here that is decided when the program is built: constants are materialized once, registry ops
become closures over their op and a dtype-rule cache, fusion groups call their native kernel (when
the arrays fit the types it was compiled for) and `prim::If` / `prim::Loop` run their blocks' step
lists. The semantics are the interpreter's (tests check one against the other); values are dropped
after their last use in a block, as the interpreter does.

    >>> import numpy as np
    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(2)):\\n  %1 : Float() = tj::sum(%x)\\n  %2 : Bool() = tj::gt(%1, %1)\\n"
    ...           "  %3 : bool = prim::Bool(%2)\\n  %4 : Float(2) = prim::If(%3)\\n    block0():\\n"
    ...           "      %5 : Float(2) = tj::neg(%x)\\n      -> (%5)\\n    block1():\\n      -> (%x)\\n"
    ...           "  return (%4)\\n")
    >>> Program(g)(np.array([1.0, 2.0], np.float32))[0].tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

import numpy as np

from tracejit import ops
from tracejit.ir.graph import ConstRef
from tracejit.ir.interpreter import (
    _SCALAR_OF,
    SCALAR_OPS,
    IRRuntimeError,
    ScriptException,
    _fits,
    _release_plan,
    _show,
)
from tracejit.ir.printer import _node_line
from tracejit.ir.types import BoolType, FloatType, IntType, NoneType, TensorType
from tracejit.ir.verify import _Meta
from tracejit.ops.execute import apply, run_op


class Program:
    """`Program(graph, kernels)(*arrays) -> tuple of outputs`; `kernels` maps fusion-group nodes to
    native callables (as `ir.run` takes them). Safe to call from several threads at once."""

    def __init__(self, graph, kernels=None):
        self.graph = graph
        self.kernels = kernels or {}
        self.body = self._block(graph.body)

    def __call__(self, *arrays):
        env = dict(zip(self.graph.inputs, arrays))
        return tuple(_run(self.body, env))

    # ---- building ---------------------------------------------------------------------------

    def _block(self, block):
        # A node's nested blocks run inside its step, so what is dead after it can go at once.
        return _Block(block, [(node, self._step(node)) for node in block.nodes], _release_plan(block))

    def _step(self, node):
        op, ins, outs = node.op, node.inputs, node.outputs
        if op == "prim::Constant":
            value = node.attrs.get("value")
            if isinstance(value, ConstRef):
                value = np.asarray(self.graph.constants[value.name])
            out = outs[0]

            def constant(env):
                env[out] = value

            return constant
        if op.startswith("tj::"):
            return _registry_step(ops.get(op), node)
        if op in SCALAR_OPS:
            fn, out = SCALAR_OPS[op], outs[0]
            return lambda env: env.__setitem__(out, fn(*[env[v] for v in ins]))
        if op in _SCALAR_OF:
            kind, src, out = _SCALAR_OF[op], ins[0], outs[0]

            def scalar(env):
                a = env[src]
                env[out] = kind(a.item() if hasattr(a, "item") else a)

            return scalar
        if op == "prim::If":
            then, other = self._block(node.blocks[0]), self._block(node.blocks[1])
            cond = ins[0]

            def branch(env):
                _assign(env, outs, _run(then if bool(env[cond]) else other, env))

            return branch
        if op == "prim::Loop":
            return self._loop(node)
        if op == "prim::FusionGroup":
            body = self._block(node.blocks[0])
            params = node.blocks[0].params
            kernel = self.kernels.get(node)

            def group(env):
                args = [env[v] for v in ins]
                if kernel is not None and _fits(node, args):
                    _assign(env, outs, list(kernel(*args)))
                    return
                env.update(zip(params, args))
                _assign(env, outs, _run(body, env))

            return group
        if op in ("prim::ListConstruct", "prim::TupleConstruct"):
            make, out = (list if op == "prim::ListConstruct" else tuple), outs[0]
            return lambda env: env.__setitem__(out, make(env[v] for v in ins))
        if op in ("prim::ListUnpack", "prim::TupleUnpack"):
            return lambda env: _assign(env, outs, list(env[ins[0]]))
        if op == "prim::size":
            dim, src, out = node.attrs["dim"], ins[0], outs[0]
            return lambda env: env.__setitem__(out, int(env[src].shape[dim]))
        if op == "prim::NumToTensor":
            dtype, src, out = outs[0].type.dtype.np, ins[0], outs[0]
            return lambda env: env.__setitem__(out, np.asarray(env[src], dtype=dtype))
        if op == "prim::Uninitialized":
            out = outs[0]
            return lambda env: env.__setitem__(out, None)
        if op == "prim::RaiseException":
            message = node.attrs.get("message", "an exception was raised")

            def raise_(env):
                raise ScriptException(message.format(*(_show(env[v]) for v in ins)), _node_line(node, ""))

            return raise_
        raise IRRuntimeError(f"the runtime has no rule for {op}\n  at {_node_line(node, '')}")

    def _loop(self, node):
        """TorchScript's loop: inputs (max_trip_count, cond, *carried); body params (i, *carried), body
        returns (cond, *carried); the node's outputs are the final carried values."""
        body = self._block(node.blocks[0])
        params, outs = node.blocks[0].params, node.outputs
        trip_v, cond_v, carried_v = node.inputs[0], node.inputs[1], node.inputs[2:]

        def loop(env):
            trip, go = int(env[trip_v]), bool(env[cond_v])
            values = [env[v] for v in carried_v]
            i = 0
            while go and i < trip:
                env.update(zip(params, [i, *values]))
                res = _run(body, env)
                go, values = bool(res[0]), res[1:]
                i += 1
            _assign(env, outs, values)

        return loop


class _Block:
    __slots__ = ("block", "steps", "drop")

    def __init__(self, block, steps, drop):
        self.block, self.steps, self.drop = block, steps, drop


_SAMPLE = {IntType: 1, FloatType: 1.0, BoolType: True, NoneType: None}  # what promotion reads of a number


def _static_rule(op, node):
    """The dtype rule's answer from the node's input types, when they fix it (every input a tensor of
    known dtype and rank, or a number); else None and the rule runs on the arrays."""
    metas = []
    for v in node.inputs:
        t = v.type
        if isinstance(t, TensorType) and t.dtype is not None and t.shape is not None:
            metas.append(_Meta(t.dtype, len(t.shape)))
        elif type(t) in _SAMPLE:
            metas.append(_SAMPLE[type(t)])
        else:
            return None
    try:
        return op.dtype_rule(tuple(metas), node.attrs)
    except Exception:  # let the run report it, on the arrays
        return None


def _registry_step(op, node):
    ins, outs, attrs = node.inputs, node.outputs, node.attrs
    rule = _static_rule(op, node)
    if rule is not None:
        compute, out_dtype = rule

        def call(args):
            return apply(op, np, args, attrs, compute, out_dtype)
    else:
        cache = {}  # the dtype rule's answers for this node (see ops.execute.run_op)

        def call(args):
            return run_op(op, np, args, attrs, cache)

    if len(outs) == 1:
        out = outs[0]

        def step(env):
            env[out] = call([env[v] for v in ins])
    else:
        def step(env):
            _assign(env, outs, list(call([env[v] for v in ins])))

    return step


def _run(prog, env):
    for (node, step), dead in zip(prog.steps, prog.drop):
        try:
            step(env)
        except IRRuntimeError:
            raise
        except Exception as e:
            raise IRRuntimeError(f"{type(e).__name__}: {e}\n  while executing {_node_line(node, '')}") from e
        for v in dead:
            env.pop(v, None)
    return [env[v] for v in prog.block.returns]


def _assign(env, values, results):
    if len(values) != len(results):
        raise IRRuntimeError(f"a block returned {len(results)} values for {len(values)} outputs")
    env.update(zip(values, results))


__all__ = ["Program"]
