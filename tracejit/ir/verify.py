"""`verify(graph)`: SSA, scoping, control-flow arities and (where known) op shape rules.

>>> from tracejit.ir.parser import parse
>>> verify(parse('graph(%x : int):\\n  return (%x)\\n'))
"""

from __future__ import annotations

from tracejit import ops
from tracejit.ir.types import BoolType, FloatType, IntType, NoneType, TensorType


class IRVerifyError(ValueError):
    """The graph breaks an IR invariant; the message names the offending node."""


def _fail(node, msg):
    where = f"{node!r}" if node is not None else "graph"
    raise IRVerifyError(f"{msg}\n  in: {where}")


def _check_if(n):
    if len(n.inputs) != 1:
        _fail(n, f"prim::If takes exactly one condition input, got {len(n.inputs)}")
    cond = n.inputs[0].type
    if cond is not None and not isinstance(cond, BoolType):
        _fail(n, f"prim::If condition %{n.inputs[0].name} must be bool, got {cond}")
    if len(n.blocks) != 2:
        _fail(n, f"prim::If needs 2 blocks (then, else), got {len(n.blocks)}")
    for k, b in enumerate(n.blocks):
        if b.params:
            _fail(n, f"prim::If block{k} takes no params, got {len(b.params)}")
        if len(b.returns) != len(n.outputs):
            _fail(n, f"prim::If block{k} returns {len(b.returns)} values but the node has {len(n.outputs)} outputs")


def _check_loop(n):
    # TorchScript: inputs (max_trip_count, initial_cond, *carried); block params (i, *carried);
    # block returns (cond, *carried); outputs (*carried).
    if len(n.inputs) < 2:
        _fail(n, "prim::Loop takes (max_trip_count, initial_condition, *carried) inputs")
    carried = len(n.inputs) - 2
    if len(n.blocks) != 1:
        _fail(n, f"prim::Loop needs 1 block, got {len(n.blocks)}")
    b = n.blocks[0]
    if len(n.outputs) != carried:
        _fail(n, f"prim::Loop has {carried} loop-carried inputs but {len(n.outputs)} outputs")
    if len(b.params) != carried + 1:
        _fail(n, f"prim::Loop block0 must take (iteration, *carried) = {carried + 1} params, got {len(b.params)}")
    if len(b.returns) != carried + 1:
        _fail(n, f"prim::Loop block0 must return (condition, *carried) = {carried + 1} values, got {len(b.returns)}")
    for what, v, want in (
        ("max_trip_count", n.inputs[0], IntType),
        ("condition", n.inputs[1], BoolType),
        ("iteration param", b.params[0], IntType),
        ("returned condition", b.returns[0], BoolType),
    ):
        if v.type is not None and not isinstance(v.type, want):
            _fail(n, f"prim::Loop {what} %{v.name} must be {want()}, got {v.type}")


class _Meta:
    """What dtype rules read from a tensor operand."""

    __slots__ = ("dtype", "ndim")

    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = dtype, ndim


# A representative Python value per scalar type: promotion only looks at its kind.
_SCALAR_SAMPLE = {IntType: 1, FloatType: 1.0, BoolType: True, NoneType: None}


def _operand(t):
    """(shape for the shape rule, operand for the dtype rule), or None when not checkable."""
    if isinstance(t, TensorType):
        if t.shape is None or t.dtype is None:
            return None
        return t.shape, _Meta(t.dtype, len(t.shape))
    if type(t) in _SCALAR_SAMPLE:
        return (), _SCALAR_SAMPLE[type(t)]
    return None  # lists and other values: not modelled here


def _check_shape_rule(n):
    """The node's output types must be what its registry op's shape and dtype rules give."""
    try:
        op = ops.get(n.op)
    except KeyError:
        return  # ops not (yet) in the registry, such as DESIGN.md's tj::bool, have no rule to check
    operands = [_operand(v.type) for v in n.inputs]
    if any(o is None for o in operands) or not all(isinstance(v.type, TensorType) for v in n.outputs):
        return
    outs_t = [v.type for v in n.outputs]
    try:
        _, out_dtype = op.dtype_rule(tuple(o[1] for o in operands), n.attrs)
    except TypeError as e:
        _fail(n, f"{n.op} rejects its input dtypes: {e}")
    if out_dtype is not None:
        want = out_dtype if isinstance(out_dtype, tuple) else (out_dtype,) * len(outs_t)
        for v, d in zip(n.outputs, want):
            if v.type.dtype is not None and d is not None and v.type.dtype is not d:
                _fail(n, f"%{v.name} is typed {v.type} but {n.op}'s dtype rule gives {d}")
    shapes = [o[0] for o in operands]
    if any(not isinstance(d, int) for s in shapes for d in s) or any(
            t.shape is None or any(not isinstance(d, int) for d in t.shape) for t in outs_t):
        return  # symbolic or unknown shapes are checked where they are propagated, not here
    try:
        got = op.shape_rule(shapes, **n.attrs)
    except TypeError:
        return  # attributes the rule does not take in this form (e.g. constants tables); not checkable here
    except (ValueError, IndexError) as e:
        _fail(n, f"{n.op} rejects its input shapes {shapes}: {e}")
    outs = [tuple(got)] if op.num_outputs == 1 else [tuple(s) for s in got]
    for v, want in zip(n.outputs, outs):
        if tuple(v.type.shape) != want:
            _fail(n, f"%{v.name} is typed {v.type} but {n.op}'s shape rule gives {want}")


def verify(graph, check_shapes=True):
    """Raise IRVerifyError unless `graph` is well formed; returns None.

    Checks that each value is defined once and before its uses in a visible (enclosing) block,
    that uses lists match the inputs, prim::If / prim::Loop arities, and tj:: ops' shape rules
    (static shapes only). Iterative, so a 10,000-node graph is fine.
    """
    defined = set()  # ids of values defined so far (anywhere)
    visible = {}  # id(value) -> number of open scopes that see it (a value is visible while its block is open)
    blocks = []  # open blocks, innermost last
    scope_vals = []  # per open block: ids defined in it, removed when the block closes

    def define(v, node):
        if id(v) in defined:
            _fail(node, f"value %{v.name} is defined more than once")
        defined.add(id(v))
        visible[id(v)] = True
        scope_vals[-1].append(id(v))

    def use(v, user, index, node):
        if id(v) not in visible:
            why = "before its definition" if id(v) not in defined else "outside the block that defines it"
            _fail(node, f"%{v.name} is used {why}")
        if not any(u is user and i == index for u, i in v.uses):
            _fail(node, f"%{v.name}'s uses list is missing this use")

    # Work items: ("block", block, node) opens a block; ("end", block, node) checks returns and closes it.
    stack = [("end", graph.body, None), ("block", graph.body, None)]
    while stack:
        kind, item, owner = stack.pop()
        if kind == "block":
            blocks.append(item)
            scope_vals.append([])
            for p in item.params:
                define(p, owner)
            for n in reversed(item.nodes):
                stack.append(("node", n, None))
        elif kind == "node":
            n = item
            if n.owner is not blocks[-1]:
                _fail(n, "node.owner is not the block that lists this node")
            if n.op == "prim::If":
                _check_if(n)
            elif n.op == "prim::Loop":
                _check_loop(n)
            for i, v in enumerate(n.inputs):
                use(v, n, i, n)
            # The node's outputs become visible after its blocks, so push them first.
            stack.append(("outs", n, None))
            for b in reversed(n.blocks):
                stack.append(("end", b, n))
                stack.append(("block", b, n))
        elif kind == "outs":
            for o in item.outputs:
                define(o, item)
                if o.node is not item:
                    _fail(item, f"%{o.name}'s producer is not this node")
            if check_shapes and item.op.startswith("tj::"):
                _check_shape_rule(item)
        else:  # "end"
            for i, v in enumerate(item.returns):
                use(v, item, i, owner)
            blocks.pop()
            for vid in scope_vals.pop():
                del visible[vid]
