"""2-D convolution and transposed convolution over NCHW images, with the backward op they need.

Every op takes a 4-D batched input; the front end (`tracejit.nn.functional_conv`) adds the batch
and height dims for unbatched and 1-D calls and resolves `padding='same'`, so attributes arrive
here as pairs of ints. A convolution is im2col (a strided view, one channels-last copy) plus one
batched BLAS matmul over the groups; depthwise convolutions multiply-add the windows instead. At
stride 1 a transposed convolution is a convolution with the kernel flipped; otherwise it scatters
columns back with one slice-add per kernel offset (col2im). Gradients are registry ops too:

    d conv2d / d input    = conv_transpose2d(grad, weight)        (and vice versa)
    d conv2d / d weight   = conv2d_backward_weight(input, grad)

Importing this module also registers the pooling ops (`tracejit.ops.pool`).

    >>> from tracejit.ops import get
    >>> get("tj::conv2d").shape_rule([(8, 3, 32, 32), (16, 3, 3, 3), (16,)], stride=(1, 1), padding=(1, 1),
    ...                              dilation=(1, 1), groups=1)
    (8, 16, 32, 32)
"""

from __future__ import annotations

from .. import dtypes as D
from . import pool  # noqa: F401  (registers the pooling ops; tracejit.ops imports only this module)
from . import rules as R
from .registry import ShapeError, get, register
from .windows import col2im, fmt_sizes, known, nchw, pad, upcast, window_count, windows

# ---- shape and dtype rules (dims may be ints or symbol names) ------------------------------------


def _check_params(stride, padding, dilation, groups):
    if any(s <= 0 for s in stride):
        raise ShapeError("non-positive stride is not supported")
    if any(p < 0 for p in padding):
        raise ShapeError("negative padding is not supported")
    if any(d <= 0 for d in dilation):
        raise ShapeError("non-positive dilation is not supported")
    if groups <= 0:
        raise ShapeError("non-positive groups is not supported")


def conv_output_shape(name, x, w, b, stride, padding, dilation, groups, transposed=False, output_padding=None,
                      user_call=True):
    """The output shape of an N-d (transposed) convolution, or a ShapeError worded like PyTorch's.

    Works for any number of spatial dims (the front end checks 1-D calls with their own shapes).
    `user_call=False` (the op's own shape rule) allows the output_padding of any size that gradients
    of strided convolutions use internally.

        >>> conv_output_shape("conv1d", (2, 4, 10), (6, 2, 3), None, (2,), (1,), (1,), 2)
        (2, 6, 5)
    """
    nd = len(stride)
    if len(x) != nd + 2:
        raise ShapeError(f"Expected {nd + 2}D (batched) input to {name}, but got input of size: {R.fmt_shape(x)}")
    if len(w) != nd + 2:
        raise ShapeError(f"Expected {nd + 2}D weight (out_channels, in_channels/groups, *kernel_size) for {name}, "
                         f"but got weight of size: {R.fmt_shape(w)}")
    _check_params(stride, padding, dilation, groups)
    if transposed:
        for op_, s, d in zip(output_padding, stride, dilation):
            if op_ < 0 or (user_call and op_ >= s and op_ >= d):
                shown = " ".join(f"{k}: {v}" for k, v in (("output_padding", output_padding), ("stride", stride),
                                                            ("dilation", dilation)))
                raise ShapeError(f"output padding must be smaller than either stride or dilation, but got {shown}")
    if known(w[0]) and w[0] % groups:
        raise ShapeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                         f"got weight of size {R.fmt_shape(w)} instead")
    given = "Given transposed=1, " if transposed else f"Given groups={groups}, "
    in_ch = w[0] if transposed else (w[1] * groups if known(w[1]) else w[1])
    if known(x[1], in_ch) and x[1] != in_ch:
        raise ShapeError(f"{given}weight of size {R.fmt_shape(w)}, expected input{R.fmt_shape(x)} to have {in_ch} "
                         f"channels, but got {x[1]} channels instead")
    out_ch = (w[1] * groups if known(w[1]) else f"{w[1]}*{groups}") if transposed else w[0]
    if b is not None and (len(b) != 1 or (known(b[0], out_ch) and b[0] != out_ch)):
        given = "Given transposed=1, " if transposed else "Given "
        raise ShapeError(f"{given}weight of size {R.fmt_shape(w)}, expected bias to be 1-dimensional with {out_ch} "
                         f"elements, but got bias of size {R.fmt_shape(b)} instead")
    sizes, kernel = x[2:], w[2:]
    if transposed:
        out = [(n - 1) * s - 2 * p + d * (k - 1) + op_ + 1 if known(n, k) else
               f"({n}-1)*{s}+{d}*({k}-1)+{op_ - 2 * p + 1}"
               for n, k, s, p, d, op_ in zip(sizes, kernel, stride, padding, dilation, output_padding)]
        if known(*out) and any(o < 0 for o in out):
            raise ShapeError(f"Given input size per channel: {fmt_sizes(sizes)}. Calculated output size per channel: "
                             f"{fmt_sizes(out)}. Output size is too small")
        return (x[0], out_ch, *out)
    if known(*sizes, *kernel):
        padded = [n + 2 * p for n, p in zip(sizes, padding)]
        span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        if any(n < k for n, k in zip(padded, span)):
            raise ShapeError(f"Calculated padded input size per channel: {fmt_sizes(padded)}. Kernel size: "
                             f"{fmt_sizes(span)}. Kernel size can't be greater than actual input size")
    out = [window_count(n, k, s, p, d) for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)]
    return (x[0], out_ch, *out)


def _no_bias(b):
    # Eager error reports show a None input as (); the IR may pass None.
    return None if b is None or len(b) == 0 else b


def _conv2d_shape(shapes, stride, padding, dilation, groups):
    x, w, b = shapes
    return conv_output_shape("conv2d", x, w, _no_bias(b), stride, padding, dilation, groups)


def _conv_transpose2d_shape(shapes, stride, padding, output_padding, groups, dilation):
    x, w, b = shapes
    return conv_output_shape("conv_transpose2d", x, w, _no_bias(b), stride, padding, dilation, groups,
                             transposed=True, output_padding=output_padding, user_call=False)


def _conv2d_backward_weight_shape(shapes, weight_size, stride, padding, dilation, groups):
    x, gy = shapes
    full = conv_output_shape("conv2d", x, weight_size, None, stride, padding, dilation, groups)
    # grad may cover fewer rows/cols than the convolution makes (a transposed conv's gradient does).
    if len(gy) != 4 or (known(*gy, *full) and (gy[:2] != full[:2] or gy[2] > full[2] or gy[3] > full[3])):
        raise ShapeError(f"conv2d_backward_weight: grad of size {R.fmt_shape(gy)} does not fit the convolution of "
                         f"input {R.fmt_shape(x)} with weight {R.fmt_shape(weight_size)}, which gives "
                         f"{R.fmt_shape(full)}")
    return tuple(weight_size)


def _conv_dtype(args, attrs):
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    if x.dtype is not w.dtype:
        raise TypeError(f"Input type ({x.dtype.name}) and weight type ({w.dtype.name}) should be the same")
    if b is not None and b.dtype is not x.dtype:
        raise TypeError(f"Input type ({x.dtype.name}) and bias type ({b.dtype.name}) should be the same")
    if x.dtype is D.bool_:
        raise TypeError("convolution is not implemented for bool tensors")
    return x.dtype, x.dtype


# ---- implementations -----------------------------------------------------------------------------


def _im2col(xp, x, kernel, stride, padding, dilation, groups, out_hw, extra=(0, 0)):
    """Columns (groups, N*Ho*Wo, kh*kw*C/groups) of x padded by `padding` (+ `extra` at the bottom/right).

    Channels-last, so each copied run is a pixel's channels (kw*C of them at dilation 1) rather than a
    short image row: a third faster on small images, and one GEMM per group takes it as is.
    """
    n, c, h, w = x.shape
    (kh, kw), (ho, wo), (ph, pw) = kernel, out_hw, padding
    buf = xp.zeros((n, h + 2 * ph + extra[0], w + 2 * pw + extra[1], c), dtype=x.dtype)
    buf[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)
    sn, sh, sw, sc = buf.strides
    win = xp.lib.stride_tricks.as_strided(
        buf, (n, ho, wo, kh, kw, groups, c // groups),
        (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc * (c // groups), sc))
    if groups > 1:
        win = win.transpose(5, 0, 1, 2, 3, 4, 6)
    return win.reshape(groups, n * ho * wo, kh * kw * (c // groups))


def _weight_rows(weight, groups):
    """(O, C/groups, kh, kw) weight as (groups, O/groups, kh*kw*C/groups) rows matching _im2col's columns."""
    o, cg, kh, kw = weight.shape
    return weight.transpose(0, 2, 3, 1).reshape(groups, o // groups, kh * kw * cg)


def _by_groups(x, groups):
    """(N, C, H, W) as (groups, C/groups, N*H*W) for a per-group matmul (copies unless N == 1)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h * w).transpose(1, 2, 0, 3).reshape(groups, c // groups, n * h * w)


def _conv(xp, x, weight, bias, stride, padding, dilation, groups, extra=(0, 0)):
    """conv2d in the compute dtype, with `extra` zero rows/cols padded at the bottom/right only."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    out_hw = tuple(window_count(s + e, k, st, p, d) for s, e, k, st, p, d in
                   zip((h, w), extra, (kh, kw), stride, padding, dilation))
    if min(out_hw) <= 0:  # a kernel larger than the padded image; dispatch turns this into the shape rule's message
        raise ValueError("kernel larger than the padded input")
    if cg == 1 and groups > 1:  # depthwise: no reduction over channels, so no GEMM; multiply-add the windows
        win = windows(xp, pad(xp, x, *padding, 0, *extra), (kh, kw), stride, dilation, out_hw)
        out = xp.einsum("nchwij,cmij->ncmhw", win, weight.reshape(groups, o // groups, kh, kw), optimize=True)
        out = xp.ascontiguousarray(out).reshape(n, o, *out_hw)
        return out + bias.reshape(o, 1, 1) if bias is not None else out
    cols = _im2col(xp, x, (kh, kw), stride, padding, dilation, groups, out_hw, extra)
    out = xp.matmul(cols, _weight_rows(weight, groups).transpose(0, 2, 1))  # (groups, N*Ho*Wo, O/groups)
    out = xp.ascontiguousarray(out.reshape(groups, n, *out_hw, o // groups).transpose(1, 0, 4, 2, 3))
    out = out.reshape(n, o, *out_hw)
    if bias is not None:
        out += bias.reshape(o, 1, 1)
    return out


def _conv2d(xp, x, weight, bias, stride, padding, dilation, groups):
    dt = x.dtype
    x, weight, bias = upcast(xp, x, weight, bias)
    return _conv(xp, x, weight, bias, stride, padding, dilation, groups).astype(dt, copy=False)


def _conv_transpose2d(xp, x, weight, bias, stride, padding, output_padding, groups, dilation):
    dt = x.dtype
    x, weight, bias = upcast(xp, x, weight, bias)
    n, cin, h, w = x.shape
    _, cog, kh, kw = weight.shape
    cout = cog * groups
    full_pad = tuple(d * (k - 1) - p for d, k, p in zip(dilation, (kh, kw), padding))
    if tuple(stride) == (1, 1) and min(full_pad) >= 0:
        # At stride 1 a transposed conv is a conv with the kernel flipped and in/out channels swapped,
        # which avoids col2im's scatter (slow on small images: many short slice-adds).
        flipped = weight.reshape(groups, cin // groups, cog, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        flipped = xp.ascontiguousarray(flipped).reshape(cout, cin // groups, kh, kw)
        return _conv(xp, x, flipped, bias, stride, full_pad, dilation, groups, output_padding).astype(dt, copy=False)
    wt = weight.reshape(groups, cin // groups, cog * kh * kw).transpose(0, 2, 1)
    cols = xp.matmul(wt, _by_groups(x, groups))  # (groups, Cout/groups*kh*kw, N*H*W)
    full = tuple((s - 1) * st + d * (k - 1) + 1 + op_ for s, st, d, k, op_ in zip((h, w), stride, dilation, (kh, kw),
                                                                                   output_padding))
    buf = col2im(xp, cols.reshape(cout, kh, kw, n, h, w), stride, dilation, full)
    (ph, pw) = padding
    out = buf[:, :, ph:full[0] - ph, pw:full[1] - pw]
    if bias is not None:
        out = out + bias.reshape(cout, 1, 1, 1)
    return nchw(xp, out).astype(dt, copy=False)


def _conv2d_backward_weight(xp, x, grad_output, weight_size, stride, padding, dilation, groups):
    dt = x.dtype
    x, grad_output = upcast(xp, x, grad_output)
    o, cg, kh, kw = weight_size
    full = [window_count(s, k, st, p, d) for s, k, st, p, d in zip(x.shape[2:], (kh, kw), stride, padding, dilation)]
    if any(g > f for g, f in zip(grad_output.shape[2:], full)):  # windows past the image: as_strided would overrun
        raise ValueError("grad_output larger than the convolution's output")
    if cg == 1 and groups > 1:  # depthwise: one channel-wise dot product per kernel offset
        xpad, (ho, wo) = pad(xp, x, *padding), grad_output.shape[2:]
        gy = grad_output.reshape(x.shape[0], groups, o // groups, ho, wo)
        gw = xp.empty((groups, o // groups, kh, kw), dtype=x.dtype)
        (sh, sw), (dh, dw) = stride, dilation
        for i in range(kh):
            for j in range(kw):
                tap = xpad[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                gw[:, :, i, j] = xp.einsum("nchw,ncmhw->cm", tap, gy)
        return gw.reshape(o, 1, kh, kw).astype(dt, copy=False)
    cols = _im2col(xp, x, (kh, kw), stride, padding, dilation, groups, grad_output.shape[2:])
    gw = xp.matmul(_by_groups(grad_output, groups), cols)  # (groups, O/groups, kh*kw*Cg)
    return xp.ascontiguousarray(gw.reshape(o, kh, kw, cg).transpose(0, 3, 1, 2)).astype(dt, copy=False)


# ---- registry ------------------------------------------------------------------------------------


_CONV = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}

CONV2D = register("tj::conv2d", ("self", "weight", "bias"), _conv2d, _conv2d_shape, _conv_dtype, kind="linalg",
                  attrs=_CONV)
CONV_TRANSPOSE2D = register(
    "tj::conv_transpose2d", ("self", "weight", "bias"), _conv_transpose2d, _conv_transpose2d_shape, _conv_dtype,
    kind="linalg", attrs={"stride": (1, 1), "padding": (0, 0), "output_padding": (0, 0), "groups": 1,
                          "dilation": (1, 1)})
CONV2D_BACKWARD_WEIGHT = register(
    "tj::conv2d_backward_weight", ("self", "grad_output"), _conv2d_backward_weight, _conv2d_backward_weight_shape,
    _conv_dtype, kind="linalg", attrs={"weight_size": (), **_CONV})

# ---- gradient rules (tensor ops from F only, so backward passes are dispatched ops too) ----------


def _needs(c, i):
    """Whether input i's gradient goes anywhere: skips the costly gradients nobody asked for."""
    check = getattr(c, "needs_input_grad", None)
    return True if check is None else check(i)


def _output_padding(in_hw, out_hw, kernel, stride, padding, dilation):
    """The output_padding that makes a transposed conv of `out_hw` come back to `in_hw` exactly."""
    return tuple(n - ((o - 1) * s - 2 * p + d * (k - 1) + 1)
                 for n, o, k, s, p, d in zip(in_hw, out_hw, kernel, stride, padding, dilation))


def _crop(g, hw):
    """g cut to its first hw rows/cols (a strided conv's transpose can give a few more than asked)."""
    if tuple(g.shape[2:]) == tuple(hw):
        return g
    return g[:, :, :hw[0], :hw[1]]


def _conv_input_grad(F, g, weight, in_hw, a):
    """d conv2d(x, weight) / dx for an output gradient g: the transposed convolution."""
    opad = _output_padding(in_hw, g.shape[2:], weight.shape[2:], a["stride"], a["padding"], a["dilation"])
    return F.dispatch(CONV_TRANSPOSE2D, (g, weight, None), {
        "stride": a["stride"], "padding": a["padding"], "output_padding": opad, "groups": a["groups"],
        "dilation": a["dilation"]})


def _conv_weight_grad(F, x, g, weight_size, a):
    return F.dispatch(CONV2D_BACKWARD_WEIGHT, (x, g), {
        "weight_size": tuple(weight_size), "stride": a["stride"], "padding": a["padding"],
        "dilation": a["dilation"], "groups": a["groups"]})


def _conv_attrs(a):
    return {"stride": a["stride"], "padding": a["padding"], "dilation": a["dilation"], "groups": a["groups"]}


def _grad_conv2d(F, c, g):
    x, w, a = c.input(0), c.input(1), c.attrs
    gx = _conv_input_grad(F, g, w, c.shape(0)[2:], a) if _needs(c, 0) else None
    gw = _conv_weight_grad(F, x, g, c.shape(1), a) if _needs(c, 1) else None
    gb = g.sum((0, 2, 3)) if c.shape(2) is not None else None
    return gx, gw, gb


def _grad_conv_transpose2d(F, c, g):
    x, w, a = c.input(0), c.input(1), c.attrs
    # conv_transpose2d(x, w) is d conv2d(., w) applied to x: its adjoints are conv2d and the weight gradient.
    gx = _crop(F.dispatch(CONV2D, (g, w, None), _conv_attrs(a)), c.shape(0)[2:]) if _needs(c, 0) else None
    gw = _conv_weight_grad(F, g, x, c.shape(1), a) if _needs(c, 1) else None
    gb = g.sum((0, 2, 3)) if c.shape(2) is not None else None
    return gx, gw, gb


def _grad_conv2d_backward_weight(F, c, gg):
    # The weight gradient is bilinear in (x, grad_output): differentiate each side with gg as the weight.
    x, gy, a = c.input(0), c.input(1), c.attrs
    gx = _conv_input_grad(F, gy, gg, c.shape(0)[2:], a) if _needs(c, 0) else None
    ggy = _crop(F.dispatch(CONV2D, (x, gg, None), _conv_attrs(a)), c.shape(1)[2:]) if _needs(c, 1) else None
    return gx, ggy


GRADS = {
    "conv2d": _grad_conv2d, "conv_transpose2d": _grad_conv_transpose2d,
    "conv2d_backward_weight": _grad_conv2d_backward_weight,
}
for _name, _rule in GRADS.items():
    get(f"tj::{_name}").grad = _rule
