"""In-place ops on tensors that take part in autograd.

An in-place op is recorded as its out-of-place form applied to the old value, and the
target takes over the new history. When the target is a view, its base's history is
rewritten too (PyTorch's CopySlices): the base's new value is the old base with the view's
region replaced, built from the recorded chain of view ops so that it is differentiable.
"""

from __future__ import annotations


def _snapshot(t):
    """A copy of t's current value that carries t's history (the "old" value the op reads)."""
    from .._tensor import _wrap

    old = _wrap(t._data.copy())
    old.requires_grad = t.requires_grad
    old.grad_fn = t.grad_fn
    old._out_index = t._out_index
    if t.grad_fn is None and t.requires_grad:  # a leaf: route its gradient to the leaf itself
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    return old


def _adopt(target, new):
    """Write new's value into target and give target new's history."""
    from .. import dtypes as D

    if new.dtype is not target.dtype and not D.can_cast(new.dtype, target.dtype) and new.dtype.is_floating_point \
            and not target.dtype.is_floating_point:
        raise TypeError(f"result type {new.dtype} can't be cast to the desired output type {target.dtype}")
    target._data[...] = new._data
    target._bump_version()
    if new.requires_grad:
        target.requires_grad = True
        target.grad_fn = new.grad_fn
        target._out_index = new._out_index


def _view_chain(view):
    chain = []
    t = view
    while t._view_of is not None:
        parent, op, attrs = t._view_of
        chain.append((parent, op, attrs))
        t = parent
    return t, list(reversed(chain))  # root, then ops from the root outwards


def _replay(x, chain):
    from .._tensor import dispatch

    for _, op, attrs in chain:
        x = dispatch(op, (x,), attrs)
    return x


def _embed(F, chain, value):
    """`value` placed into zeros of the root's shape through the inverse of each view op."""
    from .engine import Context, Node

    for parent, op, attrs in reversed(chain):
        if op.grad is None or op.name in ("tj::expand", "tj::as_strided"):
            raise RuntimeError(f"in-place operation on a view made by {op.name} is not supported by autograd; "
                               "clone() the view first")
        node = Node()
        node.op, node.attrs, node.shapes, node.dtypes = op, attrs, [tuple(parent.shape)], [parent.dtype]
        node.inputs, node.saved_output, node.n_outputs, node.freed = [None], None, 1, False
        (value,) = op.grad(F, Context(node), value)[:1]
    return value


def inplace_with_grad(op, target, args, attrs):
    from .._tensor import dispatch
    from .functional import F

    if target.requires_grad and target.grad_fn is None and target._base is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    if target._base is None:
        old = _snapshot(target)
        # `y.mul_(y)` reads the old y twice: every alias of the target among the inputs is the snapshot.
        rest = tuple(old if a is target else a for a in args[1:])
        new = dispatch(op, (old,) + rest, attrs)
        _adopt(target, new)
        return target
    root, chain = _view_chain(target)
    if root.requires_grad and root.grad_fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    if root is not target._base and root._base is not None:
        raise RuntimeError("in-place operation on a view whose view history is unknown; clone() it first")
    old_root = _snapshot(root)
    old_view = _replay(old_root, chain)
    new_view = dispatch(op, (old_view,) + tuple(args[1:]), attrs)
    region = _embed(F, chain, F.ones_like(new_view, dtype=F.bool))
    placed = _embed(F, chain, new_view.to(root.dtype))
    new_root = F.where(region, placed, old_root)
    _adopt(root, new_root)
    # The view now reads from the rewritten root.
    fresh = _replay(root, chain)
    target.requires_grad = fresh.requires_grad
    target.grad_fn = fresh.grad_fn
    target._out_index = fresh._out_index
    return target
