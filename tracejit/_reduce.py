"""Reductions and scans as functions and Tensor methods: sum, mean, prod, max/min, amax/amin,
argmax/argmin, var/std, logsumexp, all/any, norm, softmax, log_softmax, cumsum.

    >>> import tracejit as tj
    >>> tj.tensor([[1., 5.], [3., 2.]]).max(dim=1)
    tracejit.return_types.max(values=tensor([5., 3.]), indices=tensor([1, 0]))
"""

from __future__ import annotations

from . import dtypes as D
from . import ops
from ._tensor import Tensor, dispatch, wrap_dim

_OP = {n: ops.get(f"tj::{n}") for n in (
    "sum", "prod", "mean", "amax", "amin", "argmax", "argmin", "max_dim", "min_dim", "var", "std", "logsumexp",
    "all", "any", "norm", "softmax", "log_softmax", "cumsum", "maximum", "minimum")}


def dims_of(dim, ndim):
    """None/() for every dim, else a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return None
    if isinstance(dim, (int, Tensor)):
        dim = (int(dim),)
    if len(dim) == 0:
        return None
    out = []
    for d in dim:
        w = wrap_dim(d, ndim)
        if w in out:
            raise RuntimeError(f"dim {w} appears multiple times in the list of dims")
        out.append(w)
    return tuple(sorted(out)) if ndim else None


def _attrs(input, dim, keepdim, dtype=None):
    a = {"dim": dims_of(dim, input.ndim), "keepdim": bool(keepdim)}
    if dtype is not None:
        a["dtype"] = D.as_dtype(dtype)
    return a


def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 - torch's name
    """Sum over `dim` (all dims by default); integers and bools sum in int64."""
    return dispatch(_OP["sum"], (input,), _attrs(input, dim, keepdim, dtype))


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    return sum(input.masked_fill(input.isnan(), 0), dim, keepdim, dtype=dtype)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    return dispatch(_OP["prod"], (input,), _attrs(input, dim, keepdim, dtype))


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Mean over `dim`; like PyTorch, integer inputs need an explicit float dtype."""
    return dispatch(_OP["mean"], (input,), _attrs(input, dim, keepdim, dtype))


def amax(input, dim=(), keepdim=False):
    return dispatch(_OP["amax"], (input,), _attrs(input, dim, keepdim))


def amin(input, dim=(), keepdim=False):
    return dispatch(_OP["amin"], (input,), _attrs(input, dim, keepdim))


def _one_dim(input, dim, keepdim):
    return {"dim": None if dim is None else wrap_dim(dim, input.ndim), "keepdim": bool(keepdim)}


def argmax(input, dim=None, keepdim=False):
    return dispatch(_OP["argmax"], (input,), _one_dim(input, dim, keepdim))


def argmin(input, dim=None, keepdim=False):
    return dispatch(_OP["argmin"], (input,), _one_dim(input, dim, keepdim))


class ReturnTypes(tuple):
    """`(values, indices)` with names, like `tracejit.return_types.max`."""

    _kind = "max"

    def __new__(cls, values, indices, kind):
        self = super().__new__(cls, (values, indices))
        self._kind = kind
        return self

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]

    def __repr__(self):
        return f"tracejit.return_types.{self._kind}(values={self[0]!r}, indices={self[1]!r})"


def _max_min(kind, input, dim, keepdim, other):
    if isinstance(dim, Tensor) and other is None:  # max(a, b) is the elementwise maximum
        dim, other = None, dim
    if other is not None:
        return dispatch(_OP["maximum" if kind == "max" else "minimum"], (input, other))
    if dim is None:
        return dispatch(_OP["amax" if kind == "max" else "amin"], (input,), {"dim": None, "keepdim": False})
    vals, idx = dispatch(_OP[f"{kind}_dim"], (input,), {"dim": wrap_dim(dim, input.ndim), "keepdim": bool(keepdim)})
    return ReturnTypes(vals, idx, kind)


def max(input, dim=None, keepdim=False, *, other=None):  # noqa: A001 - torch's name
    """Largest value; with `dim`, (values, indices); with a tensor, the elementwise maximum."""
    return _max_min("max", input, dim, keepdim, other)


def min(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    return _max_min("min", input, dim, keepdim, other)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased in (None, True) else 0


def _var_args(input, dim, unbiased, keepdim, correction):
    if isinstance(dim, bool):  # legacy var(x, unbiased)
        dim, unbiased = None, dim
    return {"dim": dims_of(dim, input.ndim), "correction": _correction(unbiased, correction), "keepdim": bool(keepdim)}


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance; `correction=1` (Bessel's, the default) or `unbiased=False` for the population variance."""
    return dispatch(_OP["var"], (input,), _var_args(input, dim, unbiased, keepdim, correction))


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return dispatch(_OP["std"], (input,), _var_args(input, dim, unbiased, keepdim, correction))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def logsumexp(input, dim, keepdim=False):
    """log(sum(exp(x))) over `dim`, computed without overflow."""
    return dispatch(_OP["logsumexp"], (input,), {"dim": dims_of(dim, input.ndim) or tuple(range(input.ndim)),
                                                 "keepdim": bool(keepdim)})


def all(input, dim=None, keepdim=False):  # noqa: A001
    return dispatch(_OP["all"], (input,), _attrs(input, dim, keepdim))


def any(input, dim=None, keepdim=False):  # noqa: A001
    return dispatch(_OP["any"], (input,), _attrs(input, dim, keepdim))


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over `dim` (all elements by default); 'fro' is the 2-norm of the flattened values."""
    if p == "fro" or p is None:
        p = 2.0
    if isinstance(p, str):
        raise ValueError(f"norm: unsupported p={p!r}; expected a number, inf, -inf or 'fro'")
    x = input if dtype is None else input.to(dtype)
    return dispatch(_OP["norm"], (x,), {"p": float(p), **_attrs(x, dim, keepdim)})


def _softmax_args(input, dim, dtype):
    if dim is None:
        raise TypeError("softmax() needs an explicit dim (implicit dim choice is deprecated in PyTorch)")
    x = input if dtype is None else input.to(dtype)
    return x, {"dim": wrap_dim(dim, x.ndim)}


def softmax(input, dim=None, dtype=None):
    """exp(x) / sum(exp(x)) along `dim`, stable for large inputs."""
    x, a = _softmax_args(input, dim, dtype)
    return dispatch(_OP["softmax"], (x,), a)


def log_softmax(input, dim=None, dtype=None):
    x, a = _softmax_args(input, dim, dtype)
    return dispatch(_OP["log_softmax"], (x,), a)


def cumsum(input, dim, *, dtype=None):
    a = {"dim": wrap_dim(dim, input.ndim)}
    if dtype is not None:
        a["dtype"] = D.as_dtype(dtype)
    return dispatch(_OP["cumsum"], (input,), a)


def count_nonzero(input, dim=None):
    return sum(input != 0, dim)


FUNCTIONS = {f.__name__: f for f in (
    sum, nansum, prod, mean, amax, amin, argmax, argmin, max, min, var, std, var_mean, std_mean, logsumexp, all,
    any, norm, softmax, log_softmax, cumsum, count_nonzero)}
