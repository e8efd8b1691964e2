"""Pooling over NCHW images: max, average and adaptive average/max, with their backward ops.

The front end (`tracejit.nn.functional_conv`) adds batch and height dims for unbatched and 1-D
calls, so every op takes a 4-D input and pairs of ints. Max pools return int64 indices flattened
per input plane (h*W + w), like PyTorch's return_indices. Gradients are registry ops too:

    d (adaptive_)max_pool2d   = max_pool2d_backward(grad, indices)   (a scatter-add)
    d avg_pool2d              = avg_pool2d_backward(grad)            (its adjoint: each is the other's gradient)
    d adaptive_avg_pool2d     = adaptive_avg_pool2d_backward(grad)   (likewise)

    >>> import numpy as np
    >>> from tracejit.ops import get
    >>> get("tj::max_pool2d").impl(np, np.arange(16.).reshape(1, 1, 4, 4), kernel_size=(2, 2), stride=(2, 2),
    ...                            padding=(0, 0), dilation=(1, 1), ceil_mode=False)[1].tolist()
    [[[[5, 7], [13, 15]]]]
"""

from __future__ import annotations

from .. import dtypes as D
from . import grads
from . import rules as R
from .registry import ShapeError, register
from .windows import col2im, fmt_sizes, known, nchw, pad, upcast, window_count, windows

# ---- shape and dtype rules -----------------------------------------------------------------------


def pool_output_shape(name, x, kernel, stride, padding, dilation=None, ceil_mode=False):
    """The output shape of an N-d max/avg pool, or a ShapeError worded like PyTorch's.

        >>> pool_output_shape("max_pool2d", (1, 3, 7, 7), (2, 2), (2, 2), (0, 0), ceil_mode=True)
        (1, 3, 4, 4)
    """
    nd = len(kernel)
    dilation = dilation or (1,) * nd
    if len(x) != nd + 2:
        raise ShapeError(f"{name}: expected a {nd + 2}D (batched) input, but got input of size: {R.fmt_shape(x)}")
    if any(k <= 0 for k in kernel):
        raise ShapeError(f"{name}: kernel_size must be greater than zero, but got kernel_size={list(kernel)}")
    if any(s <= 0 for s in stride):
        raise ShapeError(f"{name}: stride should be greater than zero, but got stride={list(stride)}")
    if any(d <= 0 for d in dilation):
        raise ShapeError(f"{name}: dilation should be greater than zero, but got dilation={list(dilation)}")
    if any(p < 0 for p in padding):
        raise ShapeError(f"{name}: pad must be non-negative, but got pad: {list(padding)}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ShapeError(f"{name}: pad should be at most half of kernel size, but got pad={list(padding)} and "
                         f"kernel_size={list(kernel)}")
    if any(known(n) and n == 0 for n in x[1:]):
        raise ShapeError(f"{name}: expected {nd + 1}D or {nd + 2}D (batch mode) tensor with optional 0 dim batch size "
                         f"for input, but got: {R.fmt_shape(x)}")
    out = [window_count(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip(x[2:], kernel, stride, padding, dilation)]
    if known(*out) and any(o <= 0 for o in out):
        raise ShapeError(f"{name}: given input size: {fmt_sizes(x[1:], 'x')}. Calculated output size: "
                         f"{fmt_sizes((x[1], *out), 'x')}. Output size is too small")
    return (x[0], x[1], *out)


def _max_pool2d_shape(shapes, kernel_size, stride, padding, dilation, ceil_mode):
    out = pool_output_shape("max_pool2d", shapes[0], kernel_size, stride, padding, dilation, ceil_mode)
    return out, out


def _avg_pool2d_shape(shapes, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if divisor_override is not None and divisor_override == 0:
        raise ShapeError("avg_pool2d: divisor must be not zero")
    return pool_output_shape("avg_pool2d", shapes[0], kernel_size, stride, padding, None, ceil_mode)


def _adaptive_shape(name):
    def rule(shapes, output_size):
        x = shapes[0]
        if len(x) != 4:
            raise ShapeError(f"{name}(): expected a 4D (batched) input, but got {R.fmt_shape(x)}")
        if any(o < 0 for o in output_size):
            raise ShapeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                             f"{list(output_size)}")
        for i in (1, 2, 3):
            if known(x[i]) and x[i] == 0:
                raise ShapeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but input "
                                 f"has sizes {R.fmt_shape(x)} with dimension {i} being empty")
        return (x[0], x[1], *output_size)

    return rule


def _adaptive_max_shape(shapes, output_size):
    out = _adaptive_shape("adaptive_max_pool2d")(shapes, output_size)
    return out, out


def _grad_shape(shapes, input_size, **_):
    return tuple(input_size)


def _pool_dtype(what, floats_only=False):
    def rule(args, attrs):
        d = args[0].dtype
        if d is D.bool_ or (floats_only and not d.is_floating_point):
            raise TypeError(f"{what} is not implemented for {d} tensors")
        return d, d

    return rule


_MAX_POOL_VALUES = _pool_dtype("max pooling")


def _max_pool_dtype(args, attrs):
    d = _MAX_POOL_VALUES(args, attrs)[0]
    return d, (d, D.int64)


def _grad_dtype(args, attrs):
    return args[0].dtype, args[0].dtype


# ---- implementations -----------------------------------------------------------------------------


def _pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode):
    """Output (Ho, Wo) and the extra bottom/right padding that ceil_mode's last windows reach into."""
    out = tuple(window_count(s, k, st, p, d, ceil_mode) for s, k, st, p, d in zip(shape[2:], kernel, stride, padding,
                                                                                   dilation))
    if min(out) <= 0:  # dispatch turns this into the shape rule's message
        raise ValueError("pooling window larger than the padded input")
    extra = tuple(max(0, (o - 1) * st + d * (k - 1) + 1 - (s + 2 * p))
                  for o, st, d, k, s, p in zip(out, stride, dilation, kernel, shape[2:], padding))
    return out, extra


def _lowest(xp, dtype):
    return -xp.inf if dtype.kind == "f" else xp.iinfo(dtype).min


def _max_pool2d(xp, x, kernel_size, stride, padding, dilation, ceil_mode):
    n, c, h, w = x.shape
    (ho, wo), extra = _pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    kh, kw = kernel_size
    xpad = pad(xp, x, *padding, _lowest(xp, x.dtype), *extra)
    win = windows(xp, xpad, kernel_size, stride, dilation, (ho, wo)).reshape(n, c, ho, wo, kh * kw)
    # argmax takes the first maximum in (kh, kw) order and treats NaN as the largest, as PyTorch does.
    arg = win.argmax(axis=-1)
    vals = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    rows = xp.arange(ho).reshape(ho, 1) * stride[0] - padding[0] + (arg // kw) * dilation[0]
    cols = xp.arange(wo) * stride[1] - padding[1] + (arg % kw) * dilation[1]
    return vals, (rows * w + cols).astype(xp.int64)


def _max_pool2d_backward(xp, grad_output, indices, input_size):
    n, c, h, w = input_size
    planes, per_plane = n * c, indices.shape[2] * indices.shape[3]
    flat = indices.reshape(planes, per_plane) + (xp.arange(planes, dtype=xp.int64) * (h * w)).reshape(planes, 1)
    # bincount sums the gradients of windows that share a maximum (overlapping windows); it works in float64.
    gx = xp.bincount(flat.reshape(-1), weights=grad_output.reshape(-1), minlength=planes * h * w)
    return gx.astype(grad_output.dtype).reshape(input_size)


def _pool_counts(xp, n_out, size, k, s, p, include_pad):
    start = xp.arange(n_out) * s - p
    end = xp.minimum(start + k, size + p)
    if include_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)


def _avg_divisor(xp, out_hw, in_hw, kernel, stride, padding, count_include_pad, divisor_override):
    """What each window's sum is divided by: a (Ho, Wo) array, or the override."""
    if divisor_override is not None:
        return divisor_override
    ch, cw = (_pool_counts(xp, o, s, k, st, p, count_include_pad)
              for o, s, k, st, p in zip(out_hw, in_hw, kernel, stride, padding))
    return ch.reshape(-1, 1) * cw.reshape(1, -1)


def _avg_pool2d(xp, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    dt = x.dtype
    (x,) = upcast(xp, x)
    (ho, wo), extra = _pool_geometry(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    acc = xp.int64 if x.dtype.kind in "iu" else x.dtype
    win = windows(xp, pad(xp, x, *padding, 0, *extra), kernel_size, stride, (1, 1), (ho, wo))
    total = win.sum(axis=(-2, -1), dtype=acc)
    div = _avg_divisor(xp, (ho, wo), x.shape[2:], kernel_size, stride, padding, count_include_pad, divisor_override)
    if acc == xp.int64:  # PyTorch divides integers rounding toward zero
        q = xp.abs(total) // div
        return xp.where(total < 0, -q, q).astype(dt)
    return (total / xp.asarray(div, dtype=x.dtype)).astype(dt, copy=False)


def _avg_pool2d_backward(xp, grad_output, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override):
    dt = grad_output.dtype
    (g,) = upcast(xp, grad_output)
    n, c, h, w = input_size
    (ho, wo), extra = _pool_geometry(input_size, kernel_size, stride, padding, (1, 1), ceil_mode)
    g = g / xp.asarray(_avg_divisor(xp, (ho, wo), (h, w), kernel_size, stride, padding, count_include_pad,
                                    divisor_override), dtype=g.dtype)
    cols = xp.broadcast_to(g.transpose(1, 0, 2, 3)[:, None, None], (c, *kernel_size, n, ho, wo))
    full = (h + 2 * padding[0] + extra[0], w + 2 * padding[1] + extra[1])
    buf = col2im(xp, cols, stride, (1, 1), full)
    return nchw(xp, buf[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w]).astype(dt, copy=False)


def _adaptive_bounds(xp, size, out):
    """PyTorch's adaptive windows: window i spans floor(i*size/out) .. ceil((i+1)*size/out)."""
    i = xp.arange(out)
    return (i * size) // out, ((i + 1) * size + out - 1) // out


def _adaptive_max_pool2d(xp, x, output_size):
    n, c, h, w = x.shape
    oh, ow = output_size
    if not (oh and ow):
        return xp.empty((n, c, oh, ow), dtype=x.dtype), xp.empty((n, c, oh, ow), dtype=xp.int64)
    if h % oh == 0 and w % ow == 0:  # equal windows side by side: a plain max pool
        k = (h // oh, w // ow)
        return _max_pool2d(xp, x, k, k, (0, 0), (1, 1), False)
    # Each window as its positions, short windows repeating their last one (the max is unchanged), so
    # one fancy-index gathers every window at once.
    taps = []
    for size, out in ((h, oh), (w, ow)):
        start, end = _adaptive_bounds(xp, size, out)
        longest = int((end - start).max())
        taps.append(xp.minimum(start.reshape(-1, 1) + xp.arange(longest), end.reshape(-1, 1) - 1))
    rows, cols = taps[0].reshape(oh, 1, -1, 1), taps[1].reshape(1, ow, 1, -1)
    win = x[:, :, rows, cols].reshape(n, c, oh, ow, -1)
    arg = win.argmax(axis=-1)  # the first maximum in (row, col) order, as PyTorch picks
    vals = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    flat = (rows * w + cols).reshape(oh, ow, -1)
    idx = flat[xp.arange(oh).reshape(-1, 1), xp.arange(ow), arg]
    return vals, idx.astype(xp.int64)


def _adaptive_matrix(xp, size, out, dtype):
    """(out, size) averaging matrix: row i averages PyTorch's window floor(i*size/out) .. ceil((i+1)*size/out)."""
    start, end = _adaptive_bounds(xp, size, out)
    pos = xp.arange(size)
    inside = (pos.reshape(1, -1) >= start.reshape(-1, 1)) & (pos.reshape(1, -1) < end.reshape(-1, 1))
    return inside.astype(dtype) / (end - start).reshape(-1, 1).astype(dtype)


def _adaptive_avg_pool2d(xp, x, output_size):
    dt = x.dtype
    (x,) = upcast(xp, x)
    n, c, h, w = x.shape
    oh, ow = output_size
    if oh and ow and h % oh == 0 and w % ow == 0:  # equal windows: a reshape and a mean, exact and fast
        return x.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5)).astype(dt, copy=False)
    mh, mw = _adaptive_matrix(xp, h, oh, x.dtype), _adaptive_matrix(xp, w, ow, x.dtype)
    rows = xp.matmul(x.reshape(n * c * h, w), mw.T).reshape(n * c, h, ow)  # one GEMM per axis
    return xp.matmul(mh, rows).reshape(n, c, oh, ow).astype(dt, copy=False)


def _adaptive_avg_pool2d_backward(xp, grad_output, input_size):
    dt = grad_output.dtype
    (g,) = upcast(xp, grad_output)
    n, c, h, w = input_size
    oh, ow = g.shape[2:]
    if oh and ow and h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        spread = xp.broadcast_to((g / (kh * kw))[:, :, :, None, :, None], (n, c, oh, kh, ow, kw))
        return spread.reshape(input_size).astype(dt, copy=False)
    mh, mw = _adaptive_matrix(xp, h, oh, g.dtype), _adaptive_matrix(xp, w, ow, g.dtype)
    rows = xp.matmul(g.reshape(n * c * oh, ow), mw).reshape(n * c, oh, w)
    return xp.ascontiguousarray(xp.matmul(mh.T, rows).reshape(input_size)).astype(dt, copy=False)


# ---- registry ------------------------------------------------------------------------------------


_POOL = {"kernel_size": (1, 1), "stride": (1, 1), "padding": (0, 0), "ceil_mode": False}
_AVG = {**_POOL, "count_include_pad": True, "divisor_override": None}

MAX_POOL2D = register("tj::max_pool2d", ("self",), _max_pool2d, _max_pool2d_shape, _max_pool_dtype,
                      kind="reduction", attrs={**_POOL, "dilation": (1, 1)}, num_outputs=2)
MAX_POOL2D_BACKWARD = register(
    "tj::max_pool2d_backward", ("grad_output", "indices"), _max_pool2d_backward, _grad_shape, _grad_dtype,
    kind="indexing", attrs={"input_size": ()})
AVG_POOL2D = register("tj::avg_pool2d", ("self",), _avg_pool2d, _avg_pool2d_shape, _pool_dtype("avg_pool2d"),
                      kind="reduction", attrs=_AVG)
AVG_POOL2D_BACKWARD = register(
    "tj::avg_pool2d_backward", ("grad_output",), _avg_pool2d_backward, _grad_shape, _grad_dtype, kind="movement",
    attrs={"input_size": (), **_AVG})
ADAPTIVE_MAX_POOL2D = register(
    "tj::adaptive_max_pool2d", ("self",), _adaptive_max_pool2d, _adaptive_max_shape, _max_pool_dtype,
    kind="reduction", attrs={"output_size": (1, 1)}, num_outputs=2)
ADAPTIVE_AVG_POOL2D = register(
    "tj::adaptive_avg_pool2d", ("self",), _adaptive_avg_pool2d, _adaptive_shape("adaptive_avg_pool2d"),
    _pool_dtype("adaptive_avg_pool2d", floats_only=True), kind="reduction", attrs={"output_size": (1, 1)})
ADAPTIVE_AVG_POOL2D_BACKWARD = register(
    "tj::adaptive_avg_pool2d_backward", ("grad_output",), _adaptive_avg_pool2d_backward, _grad_shape, _grad_dtype,
    kind="movement", attrs={"input_size": ()})

# ---- gradient rules (tensor ops from F only, so backward passes are dispatched ops too) ----------


def _grad_max_pool2d(F, c, g_vals, g_idx=None):
    if g_vals is None:
        return (None,)
    return (F.dispatch(MAX_POOL2D_BACKWARD, (g_vals, c.output(1)), {"input_size": tuple(c.shape(0))}),)


def _grad_max_pool2d_backward(F, c, gg):
    idx = c.input(1)
    n, ch = idx.shape[:2]
    picked = F.gather(gg.reshape(n, ch, -1), 2, idx.reshape(n, ch, -1))
    return picked.reshape(idx.shape), None


def _avg_attrs(a):
    return {k: a[k] for k in _AVG}


def _grad_avg_pool2d(F, c, g):
    return (F.dispatch(AVG_POOL2D_BACKWARD, (g,), {"input_size": tuple(c.shape(0)), **_avg_attrs(c.attrs)}),)


def _grad_avg_pool2d_backward(F, c, gg):
    return (F.dispatch(AVG_POOL2D, (gg,), _avg_attrs(c.attrs)),)


def _grad_adaptive_avg_pool2d(F, c, g):
    return (F.dispatch(ADAPTIVE_AVG_POOL2D_BACKWARD, (g,), {"input_size": tuple(c.shape(0))}),)


def _grad_adaptive_avg_pool2d_backward(F, c, gg):
    return (F.dispatch(ADAPTIVE_AVG_POOL2D, (gg,), {"output_size": tuple(c.shape(0)[2:])}),)


GRADS = {
    "max_pool2d": _grad_max_pool2d, "adaptive_max_pool2d": _grad_max_pool2d,
    "max_pool2d_backward": _grad_max_pool2d_backward, "avg_pool2d": _grad_avg_pool2d,
    "avg_pool2d_backward": _grad_avg_pool2d_backward, "adaptive_avg_pool2d": _grad_adaptive_avg_pool2d,
    "adaptive_avg_pool2d_backward": _grad_adaptive_avg_pool2d_backward,
}


def _install():
    # The max pools' rules read the indices output; these rules need only input shapes, not values.
    shapes_only = {"max_pool2d", "adaptive_max_pool2d", "avg_pool2d", "avg_pool2d_backward", "adaptive_avg_pool2d",
                   "adaptive_avg_pool2d_backward"}
    for name, rule in GRADS.items():
        grads.set_rule(f"tj::{name}", rule, inputs=name not in shapes_only,
                       outputs=name in ("max_pool2d", "adaptive_max_pool2d"))


_install()
