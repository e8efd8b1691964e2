"""What every backend's group lowering shares: refusing a group, and checking types against the registry.

A backend walks a fusion group's block and raises `Refuse` with a reason for anything it cannot
lower (the group then runs op by op). Static shapes and each node's dtype rule are checked the
same way whatever the target language.

    >>> from tracejit import dtypes
    >>> from tracejit.ir.types import TensorType
    >>> static_shape(TensorType(dtypes.float32, (2, 3)), {dtypes.float32})
    (2, 3)
"""

from __future__ import annotations

from tracejit.ir.types import TensorType


class Refuse(Exception):
    """A group (or one of its nodes) this backend does not lower; the message says why."""


class Meta:
    """What dtype rules read from a tensor operand."""

    __slots__ = ("dtype", "ndim")

    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = dtype, ndim


def static_shape(t, supported):
    """The int shape of tensor type `t`; refuses unknown or symbolic shapes and dtypes not in `supported`."""
    if not isinstance(t, TensorType) or t.shape is None or t.dtype not in supported:
        raise Refuse(f"type {t} (unknown shape, or a dtype without a lowering)")
    if any(not isinstance(d, int) for d in t.shape):
        raise Refuse(f"symbolic shape {t}")
    return tuple(t.shape)


def checked_dtype_rule(op, node, metas, supported):
    """(compute dtype, output dtype) of `node` from its registry rule on `metas`; refuses when the rule
    fails, disagrees with the IR's output type, or computes in a dtype not in `supported`."""
    try:
        compute, out = op.dtype_rule(tuple(metas), node.attrs)
    except (TypeError, ValueError, KeyError) as e:
        raise Refuse(f"{node.op}: {e}") from None
    if out is not node.outputs[0].type.dtype:
        raise Refuse(f"{node.op}: the dtype rule gives {out}, the IR says {node.outputs[0].type}")
    if compute is not None and compute not in supported:
        raise Refuse(f"{node.op} computes in {compute}")
    return compute, out


def coalesce(axes):
    """Merge neighbouring axes that every operand walks as one. `axes`: [(extent, {operand: stride})] from
    outer to inner; axis a merges into the one before it when that one's strides are a's times a's extent.

        >>> coalesce([(2, {"x": 12}), (3, {"x": 4}), (4, {"x": 1})])
        [(24, {'x': 1})]
    """
    out = []
    for ext, st in axes:
        if out and all(out[-1][1][k] == st[k] * ext for k in st):
            out[-1] = (out[-1][0] * ext, st)
        else:
            out.append((ext, st))
    return out


# Reductions and row-wise ops the backends lower, with the attributes their lowerings understand.
REDUCE_ATTRS = {
    "tj::sum": {"dim", "keepdim", "dtype"},
    "tj::mean": {"dim", "keepdim", "dtype"},
    "tj::amax": {"dim", "keepdim"},
    "tj::amin": {"dim", "keepdim"},
    "tj::var": {"dim", "keepdim", "correction"},
    "tj::std": {"dim", "keepdim", "correction"},
    "tj::all": {"dim", "keepdim"},
    "tj::any": {"dim", "keepdim"},
    "tj::softmax": {"dim"},
    "tj::log_softmax": {"dim"},
}
