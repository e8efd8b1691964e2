"""Graph passes and the pass manager: constant folding (including `prim::If` on a constant
condition), algebraic simplification, folding per-channel affine chains into conv/linear weights,
common-subexpression elimination, dead-code elimination, elementwise fusion.

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

import math
import os
import sys

import numpy as np

from tracejit import ops
from tracejit.ir.graph import ConstRef
from tracejit.ir.interpreter import SCALAR_OPS
from tracejit.ir.printer import format_attr
from tracejit.ir.types import FloatType, TensorType
from tracejit.ops.execute import run_op

# prim ops that only compute a value from their inputs (safe to remove when unused, or to share)
_PURE_PRIMS = {"prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack",
               "prim::TupleUnpack", "prim::Bool", "prim::Int", "prim::Float", "prim::size", "prim::NumToTensor",
               "prim::Uninitialized", *SCALAR_OPS}
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
            if node.op in SCALAR_OPS:
                args = [_constant_value(graph, v) for v in node.inputs]
                if all(isinstance(a, (bool, int, float)) for a in args):
                    try:
                        value = SCALAR_OPS[node.op](*args)
                    except Exception:  # 1 // 0 fails at run time too
                        continue
                    node.outputs[0].replace_all_uses_with(_make_constant(graph, node, value, node.outputs[0].type))
                    node.erase()
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


def _number(graph, v):
    """The Python number a value is a constant of, else None."""
    c = _constant_value(graph, v)
    return c if isinstance(c, (int, float)) and not isinstance(c, bool) else None


def _is_float(t):
    return isinstance(t, TensorType) and t.dtype is not None and t.dtype.is_floating_point


def _identity(node, x):
    """`node` computes `x` itself: its users read x instead (types must match exactly)."""
    out = node.outputs[0]
    if out.type != x.type:
        return False
    out.replace_all_uses_with(x)
    return True


def _simplify_node(graph, node):
    op, ins = node.op, node.inputs
    if op in ("tj::mul", "tj::div") and len(ins) == 2 and _number(graph, ins[1]) == 1 and (
            op == "tj::mul" or node.attrs.get("rounding_mode") is None):
        return _identity(node, ins[0])  # x*1 and x/1 are exact for every value, nan and -0.0 included
    if op == "tj::mul" and len(ins) == 2 and _number(graph, ins[0]) == 1:
        return _identity(node, ins[1])
    if op == "tj::sub" and _number(graph, ins[1]) == 0:
        return _identity(node, ins[0])  # x - 0 == x exactly, also for -0.0
    if op == "tj::add" and _number(graph, ins[1]) == 0 and not _is_float(ins[0].type):
        # for floats -0.0 + 0 is +0.0: kept, since the rule is not IEEE-exact there
        return _identity(node, ins[0])
    if op == "tj::div" and node.attrs.get("rounding_mode") is None and _is_float(ins[0].type):
        c = _number(graph, ins[1])
        if isinstance(c, float) and c != 0 and math.isfinite(c) and math.frexp(abs(c))[0] == 0.5:
            # dividing by a power of two is exactly multiplying by its reciprocal (also a power of two)
            recip = graph.create("prim::Constant", (), [FloatType()], attrs={"value": 1.0 / c})
            node.insert_before(recip)
            mul = graph.create("tj::mul", (ins[0], recip.outputs[0]), [node.outputs[0].type], loc=node.loc,
                               scope=node.scope)
            node.insert_before(mul)
            node.outputs[0].replace_all_uses_with(mul.outputs[0])
            return True
    if op == "tj::neg" and ins[0].node is not None and ins[0].node.op == "tj::neg":
        return _identity(node, ins[0].node.inputs[0])
    if op == "tj::to_dtype" and isinstance(ins[0].type, TensorType) and ins[0].type.dtype is node.attrs.get("dtype"):
        return _identity(node, ins[0])
    if op == "tj::permute" and ins[0].node is not None and ins[0].node.op == "tj::permute":
        inner, outer = ins[0].node.attrs["dims"], node.attrs["dims"]
        composed = tuple(inner[d] for d in outer)
        src = ins[0].node.inputs[0]
        if composed == tuple(range(len(composed))):
            return _identity(node, src)
        node.attrs["dims"] = composed
        _rewire(node, 0, src)
        return True
    if op in ("tj::view", "tj::reshape") and ins[0].node is not None and ins[0].node.op in ("tj::view", "tj::reshape"):
        _rewire(node, 0, ins[0].node.inputs[0])  # only the last shape matters
        src = node.inputs[0]
        if isinstance(src.type, TensorType) and src.type.shape == tuple(node.attrs["shape_attr"]):
            _identity(node, src)
        return True
    return False


def _rewire(node, i, value):
    """Make input i of `node` read `value`."""
    old = node.inputs[i]
    old.uses = [u for u in old.uses if not (u[0] is node and u[1] == i)]
    node.inputs[i] = value
    value.uses.append((node, i))


def simplify(graph):
    """Algebraic identities that hold exactly (x*1, x/1, x-0, int x+0, -(-x), identity casts,
    permute of permute, reshape of reshape, division by a power of two as a multiplication)."""
    changed = False
    for block in _blocks(graph):
        for node in list(block.nodes):
            if node.owner is not None and len(node.outputs) == 1 and _simplify_node(graph, node):
                changed = True
    return changed


def freeze_inputs(graph, values):
    """Turn the graph inputs named in `values` (name -> array) into constants (for inference)."""
    for v in list(graph.inputs):
        if v.name not in values:
            continue
        name = v.name
        graph.constants[name] = np.ascontiguousarray(values[name])
        node = graph.create("prim::Constant", (), [v.type], attrs={"value": ConstRef(name)})
        graph.body._attach(node, 0)
        v.replace_all_uses_with(node.outputs[0])
        graph.body.params.remove(v)


def _per_channel(graph, v, channels, channel_dim, ndim):
    """A constant that broadcasts along one channel axis of an (ndim)-d output: as a (channels,) array."""
    c = _constant_value(graph, v)
    if c is _UNKNOWN or c is None or isinstance(c, (bool, list, tuple)):
        return None
    arr = np.asarray(c, dtype=np.float64)
    if arr.ndim > ndim:
        return None
    full = (1,) * (ndim - arr.ndim) + arr.shape
    if any(n != 1 for d, n in enumerate(full) if d != channel_dim) or full[channel_dim] not in (1, channels):
        return None
    return np.broadcast_to(arr.reshape(-1) if arr.size > 1 else arr.reshape(1), (channels,))


def fold_affine(graph):
    """Fold per-channel `* s`, `/ s`, `+ t`, `- t` chains after a conv2d or linear with constant
    weights into those weights (this is how an eval-mode BatchNorm disappears after freezing)."""
    changed = False
    for block in _blocks(graph):
        for node in list(block.nodes):
            if node.owner is None or node.op not in ("tj::conv2d", "tj::linear"):
                continue
            w = _constant_value(graph, node.inputs[1])
            b = _constant_value(graph, node.inputs[2]) if len(node.inputs) > 2 else None
            if not isinstance(w, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
                continue
            out = node.outputs[0]
            if not isinstance(out.type, TensorType) or out.type.shape is None:
                continue
            ndim, channels = len(out.type.shape), w.shape[0]
            cdim = 1 if node.op == "tj::conv2d" else ndim - 1
            scale, shift, end = np.ones(channels), np.zeros(channels), out
            while len(end.uses) == 1 and isinstance(end.uses[0][0], type(node)):
                user, pos = end.uses[0]
                if user.op not in ("tj::mul", "tj::add", "tj::sub", "tj::div") or user.attrs.get("alpha", 1) != 1 \
                        or user.attrs.get("rounding_mode") is not None or user.outputs[0].type != out.type:
                    break
                if pos != 0 and user.op in ("tj::sub", "tj::div"):
                    break
                c = _per_channel(graph, user.inputs[1 - pos], channels, cdim, ndim)
                if c is None:
                    break
                if user.op == "tj::mul":
                    scale, shift = scale * c, shift * c
                elif user.op == "tj::div":
                    scale, shift = scale / c, shift / c
                elif user.op == "tj::add":
                    shift = shift + c
                else:
                    shift = shift - c
                end = user.outputs[0]
            if end is out:
                continue
            new_w = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
            new_b = ((b if b is not None else 0.0) * scale + shift).astype(w.dtype)
            w_v = _make_constant(graph, node, np.ascontiguousarray(new_w), node.inputs[1].type)
            b_v = _make_constant(graph, node, new_b, TensorType(out.type.dtype, (channels,)))
            fused = graph.create(node.op, [node.inputs[0], w_v, b_v], [out.type], attrs=dict(node.attrs),
                                 loc=node.loc, scope=node.scope)
            node.insert_after(fused)
            end.replace_all_uses_with(fused.outputs[0])
            changed = True
    return changed


def hoist_constants(graph):
    """Move `prim::Constant` nodes out of `prim::If` / `prim::Loop` blocks to just before the outermost
    such node, so a loop does not re-create them on every iteration (fusion groups keep theirs)."""
    changed = False
    for top in list(graph.body.nodes):
        if top.op not in ("prim::If", "prim::Loop"):
            continue
        stack = list(top.blocks)
        while stack:
            block = stack.pop()
            for n in list(block.nodes):
                if n.op == "prim::Constant":
                    block.nodes.remove(n)
                    n.owner = None
                    top.insert_before(n)
                    changed = True
                elif n.op in ("prim::If", "prim::Loop"):
                    stack.extend(n.blocks)
    return changed


PASSES = {"fold": fold_constants, "simplify": simplify, "fold_affine": fold_affine, "cse": cse, "dce": dce,
          "hoist": hoist_constants}
DEFAULT_PIPELINE = ["fold", "simplify", "fold_affine", "hoist", "cse", "dce"]


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


def _fusible(node):
    if node.op == "prim::Constant":
        return not isinstance(node.attrs.get("value"), ConstRef)  # scalars ride along; tensors stay outside
    if not node.op.startswith("tj::") or node.blocks or len(node.outputs) != 1:
        return False
    try:
        kind = ops.get(node.op).kind
    except KeyError:
        return False
    return kind == "elementwise" or _row_wise(node)


def _row_wise(node):
    """A reduction over the last dim that keeps it (or softmax along it): a group holding only such
    reductions besides elementwise ops runs one row per thread (layer norm, softmax)."""
    t = node.inputs[0].type if node.inputs else None
    if not isinstance(t, TensorType) or t.shape is None or not t.shape:
        return False
    last = len(t.shape) - 1
    if node.op in ("tj::softmax", "tj::log_softmax"):
        return node.attrs.get("dim") == last
    if node.op in ("tj::sum", "tj::mean", "tj::amax", "tj::amin", "tj::var"):
        dim = node.attrs.get("dim")
        return node.attrs.get("keepdim") is True and dim is not None and tuple(dim) == (last,)
    return False


def fuse_elementwise(graph):
    """Group each run of two or more consecutive elementwise ops into a `prim::FusionGroup` node.

    The group's block binds its inputs as params and returns the values used outside it, so the
    printed IR shows exactly what was fused; a backend lowers each group to one kernel."""
    changed = False
    for block in _blocks(graph):
        if block.owner_node is not None and block.owner_node.op == "prim::FusionGroup":
            continue  # already a group's body
        run, hoist = [], []
        for node in list(block.nodes) + [None]:
            if node is not None and node.op != "prim::FusionGroup" and _fusible(node):
                run.append(node)
                continue
            if node is not None and run and node.op == "prim::Constant" and not node.inputs:
                hoist.append(node)  # a tensor constant does not break a run: it moves before the group
                continue
            tail = node is not None and _trailing(node, run)
            if tail:  # one reduction (or row-wise softmax) may close the group
                run.append(node)
            if sum(1 for n in run if n.op != "prim::Constant") >= 2:
                for c in hoist:
                    block.nodes.remove(c)
                    c.owner = None
                    run[0].insert_before(c)
                _make_group(graph, block, run)
                changed = True
            run, hoist = [], []
    return changed


_TRAILING = {"tj::sum", "tj::mean", "tj::amax", "tj::amin", "tj::softmax", "tj::log_softmax"}


def _trailing(node, run):
    """A reduction reading the run's last value ends the group inside it (fused into one kernel)."""
    return (node.op in _TRAILING and node.inputs and run and node.inputs[0] is run[-1].outputs[0]
            and len(node.outputs) == 1)


def _make_group(graph, block, run):
    members = set(run)
    inside = {v for n in run for v in n.outputs}
    inputs, outputs = [], []
    for n in run:
        for v in n.inputs:
            if v not in inside and v not in inputs:
                inputs.append(v)
        for v in n.outputs:
            if any(not (isinstance(u, type(n)) and u in members) for u, _ in v.uses):
                outputs.append(v)
    group = graph.create("prim::FusionGroup", inputs, [v.type for v in outputs])
    run[0].insert_before(group)
    body = group.add_block()
    params = {v: graph.add_param(body, v.type) for v in inputs}
    for n in run:
        block.nodes.remove(n)
        n.owner = None
        body.append(n)
        for i, v in enumerate(list(n.inputs)):
            if v in params:
                _rewire(n, i, params[v])
    for old, new in zip(outputs, group.outputs):
        uses = [(u, i) for u, i in old.uses if not (isinstance(u, type(group)) and u in members)]
        for u, i in uses:
            if isinstance(u, type(group)):
                _rewire(u, i, new)
            else:  # a block's returns
                u.returns[i] = new
                new.uses.append((u, i))
        old.uses = [(u, i) for u, i in old.uses if (u, i) not in uses]
    body.set_returns(outputs)


def make_group(graph, block, nodes):
    """Move consecutive `nodes` of `block` into a new `prim::FusionGroup` (returned); values they
    produce that are used elsewhere become the group's outputs."""
    _make_group(graph, block, list(nodes))
    return nodes[0].owner.owner_node


PASSES["fuse"] = fuse_elementwise
DEFAULT_PIPELINE.append("fuse")


def _type_of_call(op, inputs, attrs):
    """The output type of `op` on `inputs` from its registry shape and dtype rules."""
    from tracejit.ir.verify import _operand

    operands = [_operand(v.type) for v in inputs]
    if any(o is None for o in operands):
        raise ValueError(f"decompose: cannot type {op.name} on {[str(v.type) for v in inputs]}")
    _, dtype = op.dtype_rule(tuple(o[1] for o in operands), attrs)
    shape = op.shape_rule([o[0] for o in operands], **attrs)
    return TensorType(dtype, tuple(shape))


def _emit(graph, before, name, inputs, attrs=None):
    op = ops.get(name)
    full = {**op.attrs, **(attrs or {})}
    node = graph.create(name, inputs, [_type_of_call(op, inputs, full)], attrs=full, loc=before.loc,
                        scope=before.scope)
    before.insert_before(node)
    return node.outputs[0]


def _const(graph, before, value):
    node = graph.create("prim::Constant", (), [FloatType()], attrs={"value": value})
    before.insert_before(node)
    return node.outputs[0]


def _decompose_node(graph, n):
    """Primitive ops computing what `n` computes, inserted before it; returns the new output or None."""
    if n.op in ("tj::softmax", "tj::log_softmax"):
        x, dim = n.inputs[0], n.attrs["dim"]
        if not (isinstance(x.type, TensorType) and x.type.dtype is not None and x.type.dtype.is_floating_point):
            return None
        m = _emit(graph, n, "tj::amax", [x], {"dim": (dim,), "keepdim": True})
        z = _emit(graph, n, "tj::sub", [x, m], {"alpha": 1})
        e = _emit(graph, n, "tj::exp", [z])
        s = _emit(graph, n, "tj::sum", [e], {"dim": (dim,), "keepdim": True})
        if n.op == "tj::softmax":
            return _emit(graph, n, "tj::div", [e, s], {"rounding_mode": None})
        return _emit(graph, n, "tj::sub", [z, _emit(graph, n, "tj::log", [s])], {"alpha": 1})
    if n.op == "tj::linear":
        x, w, b = n.inputs
        if not isinstance(w.type, TensorType) or w.type.shape is None or len(w.type.shape) != 2:
            return None
        wt = _emit(graph, n, "tj::permute", [w], {"dims": (1, 0)})
        y = _emit(graph, n, "tj::matmul", [x, wt])
        if isinstance(b.type, TensorType):
            y = _emit(graph, n, "tj::add", [y, b], {"alpha": 1})
        return y
    return None


def decompose(graph):
    """Rewrite composite ops (softmax, log_softmax, linear) into primitives so that fusion sees
    elementwise, reduction and movement ops. Opt-in: backends that fuse these whole keep them."""
    changed = False
    for block in _blocks(graph):
        for node in list(block.nodes):
            if node.owner is None or len(node.outputs) != 1:
                continue
            new = _decompose_node(graph, node)
            if new is not None:
                node.outputs[0].replace_all_uses_with(new)
                node.erase()
                changed = True
    return changed


PASSES["decompose"] = decompose
