"""Graph passes and the pass manager: dead-code elimination, common-subexpression elimination,
constant folding (including `prim::If` on a constant condition).

A pass is a named function `pass(graph) -> bool` (True when it changed the graph). The pass
manager runs a pipeline, can print the IR after each pass (`TRACEJIT_LOG=passes`, or a
comma-separated list of pass names) and can leave passes out by name.

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(2)):\\n  %1 : Float(2) = tj::relu(%x)\\n"
    ...           "  %2 : Float(2) = tj::relu(%x)\\n  %3 : Float(2) = tj::add(%1, %2)\\n  return (%3)\\n")
    >>> run_passes(g, ["cse", "dce"])
    >>> print(g, end="")
    graph(%x : Float(2)):
      %1 : Float(2) = tj::relu(%x)
      %3 : Float(2) = tj::add(%1, %1)
      return (%3)
"""

from __future__ import annotations

import os
import sys

import numpy as np

from tracejit import ops
from tracejit.ir.graph import ConstRef
from tracejit.ir.printer import format_attr
from tracejit.ops.execute import run_op

# prim ops that only compute a value from their inputs (safe to remove when unused, or to share)
_PURE_PRIMS = {"prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack",
               "prim::TupleUnpack", "prim::Bool", "prim::Int", "prim::Float"}
FOLD_MAX_ELEMENTS = 1 << 16  # larger results stay as ops: a folded constant is stored in the model file


def is_pure(node):
    """Whether `node` has no effect besides its outputs (so it may be removed or merged)."""
    if node.op in _PURE_PRIMS:
        return True
    if node.op in ("prim::If", "prim::Loop"):
        stack = list(node.blocks)
        while stack:
            for n in stack.pop().nodes:
                if not is_pure(n):
                    return False
                stack.extend(n.blocks)
        return True
    if node.op.startswith("tj::"):
        try:
            return ops.get(node.op).pure
        except KeyError:
            return False
    return False


def _blocks(graph):
    """Every block, outer before inner (explicit stack)."""
    out, stack = [], [graph.body]
    while stack:
        b = stack.pop()
        out.append(b)
        for n in b.nodes:
            stack.extend(reversed(n.blocks))
    return out


def dce(graph):
    """Remove pure nodes whose outputs are unused (inner blocks first, then outer), and constants-table
    entries no node refers to any more."""
    changed = False
    for block in reversed(_blocks(graph)):
        for node in reversed(list(block.nodes)):
            if is_pure(node) and all(not o.uses for o in node.outputs):
                node.erase()
                changed = True
    used = {n.attrs["value"].name for n in graph.nodes()
            if n.op == "prim::Constant" and isinstance(n.attrs.get("value"), ConstRef)}
    for name in [k for k in graph.constants if k not in used]:
        del graph.constants[name]
        changed = True
    return changed


def _key(node):
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
    return (node.op, tuple(id(v) for v in node.inputs), attrs, tuple(str(o.type) for o in node.outputs))


def cse(graph):
    """Merge pure, block-free nodes that compute the same op on the same inputs with equal attributes.

    A node in a nested block may reuse an equal node of an enclosing block (it dominates it)."""
    changed = False
    # (block, table): a block's table starts as a copy of its enclosing block's at the owning node
    stack = [(graph.body, {})]
    while stack:
        block, table = stack.pop()
        for node in list(block.nodes):
            for b in node.blocks:
                stack.append((b, dict(table)))
            if node.blocks or not is_pure(node) or node.op.startswith("prim::") and node.op != "prim::Constant":
                continue
            k = _key(node)
            prev = table.get(k)
            if prev is None:
                table[k] = node
                continue
            for old, new in zip(node.outputs, prev.outputs):
                old.replace_all_uses_with(new)
            node.erase()
            changed = True
    return changed


def _constant_value(graph, v):
    """The Python/array value of `v` if a prim::Constant produces it, else a sentinel."""
    n = v.node
    if n is None or n.op != "prim::Constant":
        return _UNKNOWN
    value = n.attrs.get("value")
    if isinstance(value, ConstRef):
        return np.asarray(graph.constants[value.name])
    return value


_UNKNOWN = object()


def _make_constant(graph, before, value, type_):
    """A prim::Constant node for `value`, inserted before `before`; returns its output."""
    if isinstance(value, np.ndarray):
        k = 0
        while f"folded{k}" in graph.constants:
            k += 1
        name = f"folded{k}"
        graph.constants[name] = value
        attr = ConstRef(name)
    else:
        attr = value
    node = graph.create("prim::Constant", (), [type_], attrs={"value": attr})
    before.insert_before(node)
    return node.outputs[0]


def fold_constants(graph):
    """Evaluate registry ops whose inputs are all constants; `prim::If` on a constant picks its branch."""
    changed = False
    for block in _blocks(graph):
        for node in list(block.nodes):
            if node.owner is None:
                continue  # removed by an earlier fold in this sweep
            if node.op == "prim::If":
                cond = _constant_value(graph, node.inputs[0])
                if cond is not _UNKNOWN:
                    _inline_branch(node, node.blocks[0] if bool(cond) else node.blocks[1])
                    changed = True
                continue
            if not node.op.startswith("tj::") or node.blocks or not is_pure(node):
                continue
            op = ops.get(node.op)
            if op.kind == "random":
                continue
            args = [_constant_value(graph, v) for v in node.inputs]
            if any(a is _UNKNOWN for a in args) or any(isinstance(a, list) for a in args):
                continue
            try:
                res = run_op(op, np, args, node.attrs)
            except Exception:  # an op that fails on these constants fails at run time too: leave it there
                continue
            results = res if isinstance(res, tuple) else (res,)
            if any(r.size > FOLD_MAX_ELEMENTS for r in results):
                continue
            for out, r in zip(node.outputs, results):
                out.replace_all_uses_with(_make_constant(graph, node, np.ascontiguousarray(r), out.type))
            node.erase()
            changed = True
    return changed


def _inline_branch(if_node, block):
    """Replace `if_node` by the nodes of `block` (moved before it) and that block's returns."""
    for n in list(block.nodes):
        block.nodes.remove(n)
        n.owner = None
        if_node.insert_before(n)
    for out, ret in zip(if_node.outputs, list(block.returns)):
        out.replace_all_uses_with(ret)
    block.set_returns([])
    if_node.erase()


PASSES = {"fold": fold_constants, "cse": cse, "dce": dce}
DEFAULT_PIPELINE = ["fold", "cse", "dce"]


def _log_selection():
    spec = os.environ.get("TRACEJIT_LOG", "")
    names = {s.strip() for s in spec.split(",") if s.strip()}
    return names


def run_passes(graph, pipeline=None, *, disable=(), verify_each=False, max_rounds=4, log=None):
    """Run the named passes in order, repeating the pipeline until nothing changes (at most
    `max_rounds` times). `disable` leaves passes out by name; `verify_each` runs `verify` after
    every pass; with TRACEJIT_LOG=passes (or a pass name) the IR is printed after each pass."""
    from tracejit.ir.verify import verify

    names = list(DEFAULT_PIPELINE if pipeline is None else pipeline)
    unknown = [n for n in [*names, *disable] if n not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; known passes: {sorted(PASSES)}")
    selected = _log_selection()
    stream = log or sys.stderr
    for _ in range(max_rounds):
        any_change = False
        for name in names:
            if name in disable:
                continue
            changed = PASSES[name](graph)
            any_change = any_change or changed
            if verify_each:
                verify(graph)
            if changed and ("passes" in selected or name in selected):
                print(f"== after {name}\n{graph}", file=stream)
        if not any_change:
            return
