"""Convolution and pooling functions with `torch.nn.functional`'s signatures.

They normalize arguments the way PyTorch does (an int or a tuple per spatial dim, `padding='same'`
or `'valid'`, `stride=None` meaning the kernel size for pools), check shapes with PyTorch's
messages, then dispatch one registry op (`tj::conv2d`, `tj::max_pool2d`, ...). Unbatched inputs
gain a batch dim and 1-D calls gain a unit height, so every op sees NCHW.

    >>> import tracejit as tj
    >>> from tracejit.nn.functional_conv import conv2d, max_pool2d
    >>> x = tj.ones(1, 1, 4, 4)
    >>> conv2d(x, tj.ones(2, 1, 3, 3), padding="same").shape
    tracejit.Size([1, 2, 4, 4])
    >>> max_pool2d(x, 2).shape
    tracejit.Size([1, 1, 2, 2])
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .._tensor import Tensor, dispatch
from ..ops.conv import conv_output_shape
from ..ops.pool import pool_output_shape
from ..ops.registry import ShapeError
from ..ops.rules import fmt_shape

_CONV2D, _CONV_T2D = ops.get("tj::conv2d"), ops.get("tj::conv_transpose2d")
_MAX_POOL2D, _AVG_POOL2D = ops.get("tj::max_pool2d"), ops.get("tj::avg_pool2d")
_ADAPTIVE_AVG2D, _ADAPTIVE_MAX2D = ops.get("tj::adaptive_avg_pool2d"), ops.get("tj::adaptive_max_pool2d")

__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "avg_pool1d",
           "avg_pool2d", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d"]

# ---- argument normalization -------------------------------------------------------------------


def _check_tensors(name, **tensors):
    for arg, t in tensors.items():
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{name}(): argument '{arg}' must be Tensor, not {type(t).__name__}")


def _int(value, arg, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}(): argument '{arg}' must be int, not {type(value).__name__}")
    return int(value)


def _ints(value, n, arg, name):
    """`value` as n ints: PyTorch accepts one int, or a list of 1 or n of them."""
    vals = (value,) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        vals = tuple(_int(v, arg, name) for v in vals)
    except TypeError:
        raise TypeError(f"{name}(): argument '{arg}' must be an int or a tuple of ints, not {value!r}") from None
    if len(vals) == 1:
        return vals * n
    if len(vals) != n:
        raise RuntimeError(f"expected {arg} to be a single integer value or a list of {n} values to match the "
                           f"convolution dimensions, but got {arg}={list(vals)}")
    return vals


def _pool_ints(value, n, arg, name):
    try:
        return _ints(value, n, arg, name)
    except RuntimeError:
        raise RuntimeError(f"{name}: {arg} must either be a single int, or a tuple of {n} ints") from None


def _pool_stride(stride, kernel, n, name):
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel  # PyTorch's default: windows side by side
    try:
        return _ints(stride, n, "stride", name)
    except RuntimeError:
        raise RuntimeError(f"{name}: stride must either be omitted, a single int, or a tuple of {n} ints") from None


def _batched(input, nd, message):
    """(4-D-able input with a batch dim, whether one was added); ShapeError(message) for other ranks."""
    if input.ndim == nd + 2:
        return input, False
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    raise ShapeError(message)


def _finish(out, nd, unbatched):
    """Undo the unit height of a 1-D call and the batch dim of an unbatched one."""
    if nd == 1:
        out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


def _lift(pairs, nd, fill):
    """Per-dim parameters of a 1-D call as 2-D ones, with `fill` for the unit height."""
    return pairs if nd == 2 else (fill, *pairs)


# ---- convolution --------------------------------------------------------------------------------------


def _same_padding(kernel, stride, dilation):
    """PyTorch's padding='same': d*(k-1) in total per dim, the odd one out going to the end."""
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple(t // 2 for t in total), tuple(t % 2 for t in total)


def _conv(name, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_tensors(name, input=input, weight=weight, bias=bias)
    x, unbatched = _batched(input, nd, f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but "
                                       f"got input of size: {fmt_shape(input.shape)}")
    if weight.ndim != nd + 2:
        raise ShapeError(f"Expected {nd + 2}D weight (out_channels, in_channels/groups, *kernel_size) for {name}, but "
                         f"got weight of size: {fmt_shape(weight.shape)}")
    stride, dilation = _ints(stride, nd, "stride", name), _ints(dilation, nd, "dilation", name)
    groups = _int(groups, "groups", name)
    extra = (0,) * nd
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            padding, extra = _same_padding(tuple(weight.shape[2:]), stride, dilation)
        else:
            raise RuntimeError(f"Invalid padding string: {padding!r}")
    else:
        padding = _ints(padding, nd, "padding", name)
    # An odd total 'same' padding pads one more at the end: pad both sides by the larger amount and drop
    # the first output row/col, which saw only the extra leading padding (stride is 1 here).
    padding = tuple(p + e for p, e in zip(padding, extra))
    conv_output_shape(name, tuple(x.shape), tuple(weight.shape), None if bias is None else tuple(bias.shape), stride,
                      padding, dilation, groups)
    w = weight if nd == 2 else weight.unsqueeze(2)
    attrs = {"stride": _lift(stride, nd, 1), "padding": _lift(padding, nd, 0), "dilation": _lift(dilation, nd, 1),
             "groups": groups}
    out = dispatch(_CONV2D, (x if nd == 2 else x.unsqueeze(2), w, bias), attrs)
    if any(extra):
        eh, ew = _lift(extra, nd, 0)
        out = out[:, :, eh:, ew:].contiguous()
    return _finish(out, nd, unbatched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over (N, C, L) or (C, L) inputs, as `torch.nn.functional.conv1d`.

        >>> import tracejit as tj
        >>> conv1d(tj.ones(1, 2, 5), tj.ones(3, 2, 3)).tolist()[0][0]
        [6.0, 6.0, 6.0]
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) over (N, C, H, W) or (C, H, W), as `torch.nn.functional.conv2d`.

    `padding` is an int, a pair, 'valid' or 'same' (stride 1; even kernels pad one more at the end).

        >>> import tracejit as tj
        >>> conv2d(tj.ones(1, 1, 3, 3), tj.ones(1, 1, 2, 2), stride=1).tolist()
        [[[[4.0, 4.0], [4.0, 4.0]]]]
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(name, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_tensors(name, input=input, weight=weight, bias=bias)
    if isinstance(padding, str):
        raise TypeError(f"{name}(): argument 'padding' must be tuple of ints, not str")
    x, unbatched = _batched(input, nd, f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but "
                                       f"got input of size: {fmt_shape(input.shape)}")
    stride, padding = _ints(stride, nd, "stride", name), _ints(padding, nd, "padding", name)
    output_padding, dilation = _ints(output_padding, nd, "output_padding", name), _ints(dilation, nd, "dilation", name)
    groups = _int(groups, "groups", name)
    conv_output_shape(name, tuple(x.shape), tuple(weight.shape), None if bias is None else tuple(bias.shape), stride,
                      padding, dilation, groups, transposed=True, output_padding=output_padding)
    attrs = {"stride": _lift(stride, nd, 1), "padding": _lift(padding, nd, 0),
             "output_padding": _lift(output_padding, nd, 0), "groups": groups, "dilation": _lift(dilation, nd, 1)}
    args = (x, weight, bias) if nd == 2 else (x.unsqueeze(2), weight.unsqueeze(2), bias)
    return _finish(dispatch(_CONV_T2D, args, attrs), nd, unbatched)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution ("deconvolution"), as `torch.nn.functional.conv_transpose1d`.

        >>> import tracejit as tj
        >>> conv_transpose1d(tj.ones(1, 1, 2), tj.ones(1, 1, 2)).tolist()
        [[[1.0, 2.0, 1.0]]]
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution; weight is (in_channels, out_channels/groups, kH, kW), as in PyTorch.

        >>> import tracejit as tj
        >>> conv_transpose2d(tj.ones(1, 4, 5, 5), tj.ones(4, 2, 3, 3), stride=2).shape
        tracejit.Size([1, 2, 11, 11])
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# ---- pooling ------------------------------------------------------------------------------------------


def _pool_input(name, nd, input):
    _check_tensors(name, input=input)
    return _batched(input, nd, f"{name}: expected a {nd + 1}D (unbatched) or {nd + 2}D (batched) input, but got "
                               f"input of size: {fmt_shape(input.shape)}")


def _max_pool(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, unbatched = _pool_input(name, nd, input)
    kernel = _pool_ints(kernel_size, nd, "kernel_size", name)
    stride = _pool_stride(stride, kernel, nd, name)
    padding, dilation = _pool_ints(padding, nd, "padding", name), _pool_ints(dilation, nd, "dilation", name)
    pool_output_shape(name, tuple(x.shape), kernel, stride, padding, dilation, bool(ceil_mode))
    attrs = {"kernel_size": _lift(kernel, nd, 1), "stride": _lift(stride, nd, 1), "padding": _lift(padding, nd, 0),
             "dilation": _lift(dilation, nd, 1), "ceil_mode": bool(ceil_mode)}
    vals, idx = dispatch(_MAX_POOL2D, (x if nd == 2 else x.unsqueeze(2),), attrs)
    vals = _finish(vals, nd, unbatched)
    return (vals, _finish(idx, nd, unbatched)) if return_indices else vals


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-D max pooling; with return_indices, also the argmax positions along L.

        >>> import tracejit as tj
        >>> max_pool1d(tj.tensor([[[1., 3., 2., 0.]]]), 2).tolist()
        [[[3.0, 2.0]]]
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling; with return_indices, also each maximum's flat index h*W + w in its input plane.

        >>> import tracejit as tj
        >>> v, i = max_pool2d(tj.arange(16.).view(1, 1, 4, 4), 2, return_indices=True)
        >>> i.tolist()
        [[[[5, 7], [13, 15]]]]
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(name, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x, unbatched = _pool_input(name, nd, input)
    kernel = _pool_ints(kernel_size, nd, "kernel_size", name)
    stride = _pool_stride(stride, kernel, nd, name)
    padding = _pool_ints(padding, nd, "padding", name)
    if divisor_override is not None:
        divisor_override = _int(divisor_override, "divisor_override", name)
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
    pool_output_shape(name, tuple(x.shape), kernel, stride, padding, None, bool(ceil_mode))
    attrs = {"kernel_size": _lift(kernel, nd, 1), "stride": _lift(stride, nd, 1), "padding": _lift(padding, nd, 0),
             "ceil_mode": bool(ceil_mode), "count_include_pad": bool(count_include_pad),
             "divisor_override": divisor_override}
    return _finish(dispatch(_AVG_POOL2D, (x if nd == 2 else x.unsqueeze(2),), attrs), nd, unbatched)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-D average pooling, as `torch.nn.functional.avg_pool1d`.

        >>> import tracejit as tj
        >>> avg_pool1d(tj.tensor([[[1., 3., 2., 0.]]]), 2).tolist()
        [[[2.0, 1.0]]]
    """
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling; padding counts toward the divisor unless count_include_pad=False.

        >>> import tracejit as tj
        >>> avg_pool2d(tj.arange(16.).view(1, 1, 4, 4), 2).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _output_size(name, output_size, sizes):
    """Adaptive pooling's output_size as ints: one int for every dim, None keeping the input's size."""
    nd = len(sizes)
    vals = (output_size,) * nd if output_size is None or isinstance(output_size, (int, np.integer)) else \
        tuple(output_size)
    if len(vals) != nd:
        raise RuntimeError(f"{name}: output_size must be {nd}, but got output_size={list(vals)}")
    out = tuple(s if v is None else _int(v, "output_size", name) for v, s in zip(vals, sizes))
    if any(o < 0 for o in out):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                           f"{list(out)}")
    return out


def _adaptive_input(name, nd, input):
    _check_tensors(name, input=input)
    x, unbatched = _batched(input, nd, f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, but got "
                                       f"{fmt_shape(input.shape)}")
    for i in range(1, x.ndim):
        if x.shape[i] == 0:
            raise ShapeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but input has "
                             f"sizes {fmt_shape(input.shape)} with dimension {i - unbatched} being empty")
    return x, unbatched


def _adaptive_avg(name, nd, input, output_size):
    x, unbatched = _adaptive_input(name, nd, input)
    size = _output_size(name, output_size, tuple(x.shape[2:]))
    x2 = x if nd == 2 else x.unsqueeze(2)
    return _finish(dispatch(_ADAPTIVE_AVG2D, (x2,), {"output_size": _lift(size, nd, 1)}), nd, unbatched)


def adaptive_avg_pool1d(input, output_size):
    """1-D adaptive average pooling to `output_size` positions.

        >>> import tracejit as tj
        >>> adaptive_avg_pool1d(tj.tensor([[[1., 2., 3.]]]), 2).tolist()
        [[[1.5, 2.5]]]
    """
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """2-D adaptive average pooling; window i spans floor(i*H/oh) .. ceil((i+1)*H/oh), as in PyTorch.

        >>> import tracejit as tj
        >>> adaptive_avg_pool2d(tj.ones(2, 3, 7, 5), (2, None)).shape
        tracejit.Size([2, 3, 2, 5])
    """
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def _adaptive_max(name, nd, input, output_size, return_indices):
    x, unbatched = _adaptive_input(name, nd, input)
    size = _output_size(name, output_size, tuple(x.shape[2:]))
    x2 = x if nd == 2 else x.unsqueeze(2)
    vals, idx = dispatch(_ADAPTIVE_MAX2D, (x2,), {"output_size": _lift(size, nd, 1)})
    vals = _finish(vals, nd, unbatched)
    return (vals, _finish(idx, nd, unbatched)) if return_indices else vals


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """1-D adaptive max pooling (windows as in adaptive_avg_pool1d).

        >>> import tracejit as tj
        >>> adaptive_max_pool1d(tj.tensor([[[1., 3., 2.]]]), 2).tolist()
        [[[3.0, 3.0]]]
    """
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """2-D adaptive max pooling; with return_indices, flat indices h*W + w as max_pool2d gives.

        >>> import tracejit as tj
        >>> adaptive_max_pool2d(tj.arange(9.).view(1, 1, 3, 3), 1).tolist()
        [[[[8.0]]]]
    """
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)
