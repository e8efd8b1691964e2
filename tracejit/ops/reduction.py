"""Reductions and scans: sum, mean, prod, amax/amin, max/min with indices, argmax/argmin,
var/std, logsumexp, all/any, norm, softmax, log_softmax, cumsum.

`dim` attributes are already normalized by the front end: None (every dim) or a tuple of
non-negative ints; ops that take exactly one dim get a plain int.
"""

from __future__ import annotations

import numpy as np

from . import rules as R
from .registry import ShapeError, register


def _axis(dim):
    return dim if dim is None else tuple(dim)


def _np_dtype(d):
    return None if d is None else d.np


def _sum(xp, x, dim=None, keepdim=False, dtype=None):
    out_dt = dtype.np if dtype is not None else (x.dtype if x.dtype.kind == "f" else xp.int64)
    if xp is np:  # the ufunc method skips np.sum's Python wrappers (a third of a small sum's time)
        return np.add.reduce(x, dim, out_dt, None, keepdim)
    return xp.sum(x, axis=_axis(dim), keepdims=keepdim, dtype=out_dt)


def _prod(xp, x, dim=None, keepdim=False, dtype=None):
    out_dt = dtype.np if dtype is not None else (x.dtype if x.dtype.kind == "f" else xp.int64)
    with R.quiet(xp):  # overflow to inf and inf * 0 are silent in PyTorch
        return xp.prod(x, axis=_axis(dim), keepdims=keepdim, dtype=out_dt)


def _mean(xp, x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.astype(dtype.np)
    # float16 accumulates in float32, as PyTorch's CPU kernels do, then rounds once.
    acc = xp.float32 if x.dtype == xp.float16 else None
    with R.quiet(xp):  # inf + -inf is a silent nan in PyTorch
        if x.size == 0:  # 0/0: nan, as in PyTorch, without numpy's "Mean of empty slice" warning
            s = xp.sum(x, axis=_axis(dim), keepdims=keepdim, dtype=acc)
            return (s / x.dtype.type(0)).astype(x.dtype, copy=False)
        return xp.mean(x, axis=_axis(dim), keepdims=keepdim, dtype=acc).astype(x.dtype, copy=False)


def _nonempty(what):
    def check(x, dim):
        if x.size == 0 and (dim is None or any(x.shape[d] == 0 for d in dim)):
            raise ValueError(f"{what}(): cannot reduce over a zero-size dimension (input shape "
                             f"{R.fmt_shape(x.shape)}); there is no identity for {what}")

    return check


def _amax(xp, x, dim=None, keepdim=False):
    _nonempty("amax")(x, dim)
    return xp.max(x, axis=_axis(dim), keepdims=keepdim)


def _amin(xp, x, dim=None, keepdim=False):
    _nonempty("amin")(x, dim)
    return xp.min(x, axis=_axis(dim), keepdims=keepdim)


def _arg(fn_name):
    def impl(xp, x, dim=None, keepdim=False):
        if x.dtype.kind == "b":
            raise TypeError(f"{fn_name}(): does not support bool input")
        _nonempty(fn_name)(x, None if dim is None else (dim,))
        fn = xp.argmax if fn_name == "argmax" else xp.argmin
        if dim is None:
            r = fn(x.reshape(-1))
            return xp.asarray(r).reshape((1,) * x.ndim if keepdim else ())
        return fn(x, axis=dim, keepdims=keepdim)

    return impl


def _max_min_dim(fn_name):
    def impl(xp, x, dim, keepdim=False):
        _nonempty(fn_name)(x, (dim,))
        if x.ndim == 0:  # dim 0 of a 0-d tensor is the tensor itself (numpy has no axis to take)
            return x.copy(), xp.zeros((), xp.int64)
        argf = xp.argmax if fn_name == "max" else xp.argmin
        # PyTorch propagates NaN: a row holding NaN reports NaN and the index of the first NaN.
        idx = argf(x, axis=dim, keepdims=True)
        if x.dtype.kind == "f":
            nan = xp.isnan(x)
            has_nan = nan.any(axis=dim, keepdims=True)
            idx = xp.where(has_nan, xp.argmax(nan, axis=dim, keepdims=True), idx)
        vals = xp.take_along_axis(x, idx, axis=dim)
        if not keepdim:
            vals, idx = vals.squeeze(dim), idx.squeeze(dim)
        return vals, idx.astype(xp.int64)

    return impl


def _var(xp, x, dim=None, correction=1, keepdim=False):
    if x.dtype == xp.float16:  # squared deviations underflow float16: compute in float32 as PyTorch does
        return _var(xp, x.astype(xp.float32), dim, correction, keepdim).astype(xp.float16)
    n = R.numel(x.shape) if dim is None else R.numel([x.shape[d] for d in dim])
    with R.quiet(xp):
        if n - correction > 0:
            return xp.var(x, axis=_axis(dim), ddof=correction, keepdims=keepdim)
        # PyTorch divides by max(0, N - correction): 0/0 gives nan, more gives inf. The sum of
        # squared deviations is written out because xp.var warns on an empty reduction.
        mu = xp.sum(x, axis=_axis(dim), keepdims=True) / max(n, 1)
        ss = xp.sum((x - mu) ** 2, axis=_axis(dim), keepdims=keepdim)
        return (ss / x.dtype.type(0)).astype(x.dtype)


def _std(xp, x, dim=None, correction=1, keepdim=False):
    if x.dtype == xp.float16:
        return xp.sqrt(_var(xp, x.astype(xp.float32), dim, correction, keepdim)).astype(xp.float16)
    return xp.sqrt(_var(xp, x, dim, correction, keepdim))


def _half_in_float32(fn):
    """float16 inputs compute in float32 and round once, as PyTorch's CPU kernels do: exp and the
    division rounded to float16 step by step are off by more than an ulp."""

    def impl(xp, x, *args, **kw):
        if x.dtype == xp.float16:
            return fn(xp, x.astype(xp.float32), *args, **kw).astype(xp.float16)
        return fn(xp, x, *args, **kw)

    return impl


@_half_in_float32
def _logsumexp(xp, x, dim, keepdim=False):
    with R.quiet(xp):
        m = xp.max(x, axis=_axis(dim), keepdims=True) if x.size else xp.zeros((1,) * x.ndim, x.dtype)
        m = xp.where(xp.isfinite(m), m, 0)
        s = xp.log(xp.sum(xp.exp(x - m), axis=_axis(dim), keepdims=True)) + m
    return s if keepdim else s.reshape(R.reduce_shape(x.shape, dim, False))


def _norm(xp, x, p=2.0, dim=None, keepdim=False):
    if x.dtype == xp.float16:  # accumulate in float32 like PyTorch: float16 squares overflow past 256
        return _norm(xp, x.astype(xp.float32), p, dim, keepdim).astype(xp.float16)
    with R.quiet(xp):  # overflow to inf and 0 ** -p are silent in PyTorch
        return _norm_body(xp, x, p, _axis(dim), keepdim)


def _norm_body(xp, x, p, ax, keepdim):
    a = xp.abs(x)
    if p == float("inf"):
        return xp.max(a, axis=ax, keepdims=keepdim)
    if p == float("-inf"):
        return xp.min(a, axis=ax, keepdims=keepdim)
    if p == 0:
        return xp.sum(a != 0, axis=ax, keepdims=keepdim).astype(x.dtype)
    if p == 1:
        return xp.sum(a, axis=ax, keepdims=keepdim)
    if p == 2:
        return xp.sqrt(xp.sum(a * a, axis=ax, keepdims=keepdim))
    return xp.sum(a**p, axis=ax, keepdims=keepdim) ** (1.0 / p)


@_half_in_float32
def _softmax(xp, x, dim):
    dim = dim if x.ndim else None  # dim 0 of a 0-d tensor: numpy has no axis to name
    with R.quiet(xp):
        e = xp.exp(x - xp.max(x, axis=dim, keepdims=True))
        return e / xp.sum(e, axis=dim, keepdims=True)


@_half_in_float32
def _log_softmax(xp, x, dim):
    dim = dim if x.ndim else None
    with R.quiet(xp):
        s = x - xp.max(x, axis=dim, keepdims=True)
        return s - xp.log(xp.sum(xp.exp(s), axis=dim, keepdims=True))


def _cumsum(xp, x, dim, dtype=None):
    out_dt = dtype.np if dtype is not None else (x.dtype if x.dtype.kind == "f" else xp.int64)
    dim = dim if x.ndim else None  # numpy's cumsum makes a 0-d input 1-d; reshaped back below
    with R.quiet(xp):  # inf + -inf is a silent nan in PyTorch
        if out_dt == xp.float16:  # running sums in float16 drift by whole units; PyTorch accumulates in float32
            return xp.cumsum(x, axis=dim, dtype=xp.float32).astype(xp.float16).reshape(x.shape)
        return xp.cumsum(x, axis=dim, dtype=out_dt).reshape(x.shape)


def _one_dim_shape(shapes, dim, keepdim=False, **_):
    return R.reduce_shape(shapes[0], None if dim is None else (dim,), keepdim)


def _pair_shape(shapes, dim, keepdim=False):
    s = _one_dim_shape(shapes, dim, keepdim)
    return (s, s)


def _bool_reduce(fn):
    def impl(xp, x, dim=None, keepdim=False):
        return fn(x, axis=_axis(dim), keepdims=keepdim)

    return impl


def _bool_reduce_out(args, attrs):
    # all/any give bool, except on uint8, which PyTorch keeps (a legacy of uint8 masks).
    return None, R.D.uint8 if args[0].dtype is R.D.uint8 else R.D.bool_


def _float_keep(args, attrs):
    d = args[0].dtype
    if not d.is_floating_point:
        raise TypeError(f"expected a floating point tensor, got {d}")
    return d, d


RD = {"dim": None, "keepdim": False}
register("tj::sum", ("self",), _sum, R.reduction_shape, R.accumulate, kind="reduction", attrs={**RD, "dtype": None})
register("tj::prod", ("self",), _prod, R.reduction_shape, R.accumulate, kind="reduction",
         attrs={**RD, "dtype": None})
register("tj::mean", ("self",), _mean, R.reduction_shape, R.float_only("mean"), kind="reduction",
         attrs={**RD, "dtype": None})
register("tj::amax", ("self",), _amax, R.reduction_shape, R.same, kind="reduction", attrs=RD)
register("tj::amin", ("self",), _amin, R.reduction_shape, R.same, kind="reduction", attrs=RD)
register("tj::argmax", ("self",), _arg("argmax"), _one_dim_shape, R.index_out, kind="reduction", attrs=RD)
register("tj::argmin", ("self",), _arg("argmin"), _one_dim_shape, R.index_out, kind="reduction", attrs=RD)
register("tj::max_dim", ("self",), _max_min_dim("max"), _pair_shape,
         lambda a, k: (a[0].dtype, (a[0].dtype, R.D.int64)), kind="reduction",
         attrs={"dim": 0, "keepdim": False}, num_outputs=2)
register("tj::min_dim", ("self",), _max_min_dim("min"), _pair_shape,
         lambda a, k: (a[0].dtype, (a[0].dtype, R.D.int64)), kind="reduction",
         attrs={"dim": 0, "keepdim": False}, num_outputs=2)
register("tj::var", ("self",), _var, R.reduction_shape, R.float_only("var"), kind="reduction",
         attrs={"dim": None, "correction": 1, "keepdim": False})
register("tj::std", ("self",), _std, R.reduction_shape, R.float_only("std"), kind="reduction",
         attrs={"dim": None, "correction": 1, "keepdim": False})
# Integer inputs are cast to the float compute dtype first (cast=(0,)), else numpy would pick
# the float width from the integer's (float16 for int8, float64 for int64).
register("tj::logsumexp", ("self",), _logsumexp, R.reduction_shape, R.float_same, kind="reduction",
         attrs={"dim": (0,), "keepdim": False}, cast=(0,))
register("tj::all", ("self",), _bool_reduce(lambda x, **k: x.all(**k)), R.reduction_shape, _bool_reduce_out,
         kind="reduction", attrs=RD)
register("tj::any", ("self",), _bool_reduce(lambda x, **k: x.any(**k)), R.reduction_shape, _bool_reduce_out,
         kind="reduction", attrs=RD)
register("tj::norm", ("self",), _norm, R.reduction_shape, _float_keep, kind="reduction",
         attrs={"p": 2.0, "dim": None, "keepdim": False})
# PyTorch has no integer softmax kernels (softmax(x, dim, dtype=...) casts first).
register("tj::softmax", ("self",), _softmax, R.first_shape, R.float_only("softmax"), kind="reduction",
         attrs={"dim": -1})
register("tj::log_softmax", ("self",), _log_softmax, R.first_shape, R.float_only("log_softmax"),
         kind="reduction", attrs={"dim": -1})
register("tj::cumsum", ("self",), _cumsum, R.first_shape, R.accumulate, kind="scan",
         attrs={"dim": 0, "dtype": None})

__all__ = ["ShapeError"]
