"""Matrix products. `matmul` follows PyTorch's rules for 1-D operands and batch broadcasting."""

from __future__ import annotations

from . import rules as R
from .registry import ShapeError, register


def matmul_shape(shapes, **_):
    a, b = (tuple(s) for s in shapes)
    if not a or not b:
        raise ShapeError(f"both arguments to matmul need to be at least 1D, but they are {len(a)}D and {len(b)}D")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({a2[-2]}x{a2[-1]} and {b2[-2]}x{b2[-1]})")
    batch = R.broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _matmul_rule(args, attrs):
    a, b = args
    if a.dtype is not b.dtype:
        raise TypeError(f"expected both matmul operands to have the same dtype, but got: {a.dtype} != {b.dtype}")
    if a.dtype.name == "bool":
        raise TypeError("matmul is not implemented for bool tensors")
    return a.dtype, a.dtype


def _matmul(xp, a, b):
    if a.dtype == xp.float16:  # accumulate in float32 like PyTorch, round once
        return xp.matmul(a.astype(xp.float32), b.astype(xp.float32)).astype(xp.float16)
    return xp.matmul(a, b)


register("tj::matmul", ("self", "other"), _matmul, matmul_shape, _matmul_rule, kind="linalg")


def linear_shape(shapes, **_):
    x, w = tuple(shapes[0]), tuple(shapes[1])
    if len(w) != 2:
        raise ShapeError(f"linear: weight must be 2-D (out_features, in_features), got {R.fmt_shape(w)}")
    if not x or x[-1] != w[1]:
        raise ShapeError(f"linear: input of shape {R.fmt_shape(x)} does not match weight {R.fmt_shape(w)} "
                         f"(expected last input dim {w[1]})")
    if len(shapes) > 2 and shapes[2] is not None and tuple(shapes[2]) not in ((w[0],), ()):
        raise ShapeError(f"linear: bias of shape {R.fmt_shape(shapes[2])} does not match {w[0]} out features")
    return x[:-1] + (w[0],)


def _linear(xp, x, w, b=None):
    out = _matmul(xp, x, w.T)
    if b is not None:
        out += b
    return out


def _linear_rule(args, attrs):
    x, w = args[0], args[1]
    for t in (w, args[2] if len(args) > 2 else None):
        if t is not None and t.dtype is not x.dtype:
            raise TypeError(f"linear: input and parameters must have the same dtype, got {x.dtype} and {t.dtype}")
    return x.dtype, x.dtype


# y = x @ weight.T + bias in one op: a layer's forward is one dispatch (decomposes to matmul + add).
register("tj::linear", ("self", "weight", "bias"), _linear, linear_shape, _linear_rule, kind="linalg")
