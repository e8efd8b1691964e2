"""Shape and dtype rules shared by many ops.

Shape rules work on tuples whose dims are ints or symbol names (`'N'`), so the same rule
serves eager error messages, the IR verifier and shape propagation. Dtype rules take the
op's operands (anything with `.dtype` and `.ndim`, or Python numbers) and return
`(compute_dtype, out_dtype)`.
"""

from __future__ import annotations

import contextlib

from .. import dtypes as D
from .registry import ShapeError


def fmt_shape(s):
    return "[" + ", ".join(str(d) for d in s) + "]"


def broadcast_shapes(*shapes):
    """PyTorch/numpy broadcasting; a symbol broadcasts against 1 and against itself."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        dim = 1
        for s in shapes:
            if len(s) < -i:
                continue
            d = s[i]
            if d == 1 or d == dim:
                continue
            if dim == 1:
                dim = d
            elif isinstance(d, str) or isinstance(dim, str):
                dim = d if isinstance(dim, str) else dim  # a symbol meets a number: the number wins
            else:
                shown = " and ".join(fmt_shape(s) for s in shapes)
                raise ShapeError(
                    f"shapes {shown} cannot be broadcast: size {dim} and size {d} differ at dimension "
                    f"{ndim + i} (counting from the left of the broadcast shape)"
                )
        out.append(dim)
    return tuple(out)


def elementwise_shape(shapes, **_):
    return broadcast_shapes(*shapes)


def first_shape(shapes, **_):
    return tuple(shapes[0])


def reduce_shape(shape, dim, keepdim):
    """Shape after reducing `dim` (None: every dim; a tuple of normalized dims otherwise)."""
    if dim is None:
        return tuple(1 for _ in shape) if keepdim else ()
    dims = set(dim)
    if keepdim:
        return tuple(1 if i in dims else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in dims)


def reduction_shape(shapes, dim=None, keepdim=False, **_):
    return reduce_shape(shapes[0], dim, keepdim)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def contiguous_strides(shape):
    strides = []
    acc = 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(strides))


# ---- dtype rules --------------------------------------------------------------------------

_NUMBER = (bool, int, float)


def result_type(args):
    """PyTorch's promotion over tensors (dimensioned and zero-dim) and Python numbers."""
    dims, zero, scat = [], [], -1
    for a in args:
        if a is None:
            continue
        if isinstance(a, _NUMBER):
            c = D.scalar_category(a)
            if c > scat:
                scat = c
        elif isinstance(a, (list, tuple)):
            dims.extend(t.dtype for t in a)
        elif a.ndim:
            dims.append(a.dtype)
        else:
            zero.append(a.dtype)
    return D.result_type_of(dims, zero, scat)


def promote(args, attrs):
    if len(args) == 2:
        a, b = args
        ac, bc = a.__class__, b.__class__
        if ac not in _NUMBER and bc not in _NUMBER and b is not None:
            d = a.dtype
            if d is b.dtype:  # same dtype: nothing to promote, whatever the dims
                return d, d
        elif ac not in _NUMBER and bc in _NUMBER:  # tensor op number: the tensor decides unless outranked
            d = a.dtype
            if d.category >= D.scalar_category(b):
                return d, d
        elif bc not in _NUMBER and ac in _NUMBER and b is not None:
            d = b.dtype
            if d.category >= D.scalar_category(a):
                return d, d
    r = result_type(args)
    return r, r


def promote_float(args, attrs):
    r = promote(args, attrs)[0]
    if not r.is_floating_point:
        r = D.get_default_dtype()
    return r, r


def compare(args, attrs):
    return promote(args, attrs)[0], D.bool_


def logical(args, attrs):
    return None, D.bool_


def same(args, attrs):
    d = args[0].dtype
    return d, d


def bool_out(args, attrs):
    return args[0].dtype, D.bool_


def index_out(args, attrs):
    return args[0].dtype, D.int64


def float_same(args, attrs):
    """Keeps float dtypes; integer inputs compute in the default float dtype."""
    d = args[0].dtype
    if not d.is_floating_point:
        d = D.get_default_dtype()
    return d, d


def float_only(what):
    def rule(args, attrs):
        want = attrs.get("dtype")
        d = want if want is not None else args[0].dtype
        if not d.is_floating_point:
            raise TypeError(
                f"{what}(): could not infer output dtype. Input dtype must be a floating point dtype, "
                f"but got {args[0].dtype}"
            )
        return d, d

    return rule


def accumulate(args, attrs):
    """sum/prod/cumsum: integers and bools accumulate in int64 unless a dtype is given."""
    want = attrs.get("dtype")
    if want is not None:
        return want, want
    d = args[0].dtype
    if not d.is_floating_point:
        d = D.int64
    return d, d


def given_dtype(args, attrs):
    d = attrs["dtype"]
    return d, d


def quiet(xp):
    """A context in which `xp` raises no floating-point warnings (numpy's errstate; cupy never warns)."""
    errstate = getattr(xp, "errstate", None)
    return errstate(all="ignore") if errstate is not None else contextlib.nullcontext()
