"""Sliding-window helpers shared by the convolution and pooling ops (`tracejit.ops.conv`, `.pool`).

Shapes follow PyTorch's window arithmetic; dims may be ints or symbol names. The array helpers
work on NCHW arrays of any array module `xp` (numpy or cupy) and never loop over pixels.

    >>> window_count(32, k=3, s=2, p=1)
    16
    >>> window_count("H", k=3, s=1, p=1)
    'H'
"""

from __future__ import annotations


def known(*dims):
    """Whether every dim is a number (not a symbol such as 'N')."""
    return all(isinstance(d, int) for d in dims)


def fmt_sizes(dims, sep=" x "):
    """(8 x 8), as PyTorch prints per-channel sizes."""
    return "(" + sep.join(str(d) for d in dims) + ")"


def window_count(size, k, s, p, d=1, ceil_mode=False):
    """How many windows of `k` taps spaced `d` apart fit at stride `s` in `size` padded by `p` each side."""
    span = d * (k - 1) + 1
    if not isinstance(size, int):
        shift = 2 * p - span + (s - 1 if ceil_mode else 0)
        return f"({size}{shift:+d})//{s}+1" if s != 1 else f"{size}{shift + 1:+d}" if shift + 1 else size
    n = size + 2 * p - span
    if not ceil_mode:
        return n // s + 1
    out = -(-n // s) + 1
    if (out - 1) * s >= size + p:  # PyTorch: the last window must start inside the input or its left padding
        out -= 1
    return out


def upcast(xp, *arrays):
    """Arrays in the dtype to compute in (float16 accumulates in float32, as PyTorch's CPU kernels do)."""
    return [a.astype(xp.float32) if a is not None and a.dtype == xp.float16 else a for a in arrays]


def pad(xp, x, ph, pw, value=0, extra_h=0, extra_w=0):
    """x with `ph`/`pw` rows/cols of `value` on each side, plus `extra_*` more at the bottom/right."""
    if not (ph or pw or extra_h or extra_w):
        return x
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph + extra_h, w + 2 * pw + extra_w), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def windows(xp, x, kernel, stride, dilation, out_hw):
    """The (N, C, Ho, Wo, kh, kw) view of x's sliding windows; no copy."""
    sn, sc, sh, sw = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, (*x.shape[:2], *out_hw, *kernel),
        (sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]))


def col2im(xp, cols, stride, dilation, full_hw):
    """Sum columns (C, kh, kw, N, H, W) back into (C, N, *full_hw) images, one slice-add per kernel offset."""
    c, kh, kw, n, h, w = cols.shape
    buf = xp.zeros((c, n, *full_hw), dtype=cols.dtype)
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kh):
        for j in range(kw):
            buf[:, :, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (w - 1) + 1:sw] += cols[:, i, j]
    return buf


def nchw(xp, out_cn):
    """A (C, N, H, W) array as a contiguous (N, C, H, W) one."""
    return xp.ascontiguousarray(out_cn.transpose(1, 0, 2, 3))
