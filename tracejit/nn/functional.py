"""`tracejit.nn.functional`: activations, normalization, losses, attention and utilities
with PyTorch's signatures, written with registry ops (composites decompose to primitives).

    >>> import tracejit as tj
    >>> import tracejit.nn.functional as F
    >>> F.relu(tj.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""

from __future__ import annotations

import math

from .. import _api, ops
from .. import dtypes as D
from .._tensor import dispatch
from ..autograd.grad_mode import no_grad
from ..devices import on_device_of
from .functional_conv import *  # noqa: F403 - conv and pooling live in their own file
from .functional_losses import *  # noqa: F403

_LINEAR = ops.get("tj::linear")
tj = _api.PUBLIC  # the tensor functions, by name


def linear(input, weight, bias=None):
    """`input @ weight.T + bias`."""
    return dispatch(_LINEAR, (input, weight, bias))


def bilinear(input1, input2, weight, bias=None):
    """out[..., o] = sum_ij input1[..., i] * weight[o, i, j] * input2[..., j] + bias[o]."""
    y = (input1.unsqueeze(-2).unsqueeze(-2) @ weight).squeeze(-2)  # (..., out, j)
    out = (y * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


# ---- activations ------------------------------------------------------------------------


def relu(input, inplace=False):
    return input.relu_() if inplace else input.relu()


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    # Not plain clamp: PyTorch's hardtanh passes no gradient at the bounds themselves (clamp passes it there).
    inside = (input > min_val) & (input < max_val)
    out = tj["where"](inside, input, input.detach().clamp(min_val, max_val))
    return input.copy_(out) if inplace else out


# The in-place forms compute on a clone: the graph must not save the tensor that the write overwrites.


def leaky_relu(input, negative_slope=0.01, inplace=False):
    x = input.clone() if inplace else input
    out = tj["where"](x > 0, x, x * negative_slope)
    return input.copy_(out) if inplace else out


def elu(input, alpha=1.0, inplace=False):
    x = input.clone() if inplace else input
    out = tj["where"](x > 0, x, (x.clamp(max=0).expm1()) * alpha)
    return input.copy_(out) if inplace else out


def selu(input, inplace=False):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    x = input.clone() if inplace else input
    out = elu(x, alpha) * scale
    return input.copy_(out) if inplace else out


def gelu(input, approximate="none"):
    """GELU: x * Phi(x) exactly (erf), or the tanh approximation with approximate='tanh'."""
    if approximate == "none":
        return input * 0.5 * (1.0 + (input * (1.0 / math.sqrt(2.0))).erf())
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * 0.5 * (1.0 + inner.tanh())
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input, inplace=False):
    x = input.clone() if inplace else input
    out = x * x.sigmoid()
    return input.copy_(out) if inplace else out


def mish(input):
    return input * softplus(input).tanh()


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, linear above `threshold` for numerical stability."""
    bx = input * beta
    soft = (bx.clamp(max=threshold).exp().log1p()) / beta
    return tj["where"](bx > threshold, input, soft)


def logsigmoid(input):
    return -softplus(-input)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    return tj["softmax"](input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    return tj["log_softmax"](input, dim, dtype)


def softmin(input, dim=None, dtype=None):
    return tj["softmax"](-input, dim, dtype)


def glu(input, dim=-1):
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


# ---- dropout -----------------------------------------------------------------------------


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero elements with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    x = input.clone() if inplace else input  # the graph must not save the tensor the write overwrites
    if p == 1.0:
        out = x * 0.0
    else:
        keep = tj["rand"](input.shape, dtype=input.dtype, device=input.device) >= p
        out = x * keep * (1.0 / (1.0 - p))
    return input.copy_(out) if inplace else out


# ---- normalization -----------------------------------------------------------------------


def _norm_shape(normalized_shape):
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing `normalized_shape` dims, then scale and shift."""
    shape = _norm_shape(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise RuntimeError(f"layer_norm: expected input with shape [*, {', '.join(map(str, shape))}], but got input "
                           f"of size {list(input.shape)}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    out = centered * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise RuntimeError(f"group_norm: expected number of channels in input ({c}) to be divisible by num_groups "
                           f"({num_groups})")
    x = input.reshape(n, num_groups, -1)
    mean = x.mean(-1, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(-1, keepdim=True)
    out = (centered * (var + eps).rsqrt()).reshape(input.shape)
    affine = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(affine)
    if bias is not None:
        out = out + bias.reshape(affine)
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalization over every dim but the channel dim (1); updates running stats when training."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected 2D or more input (got {input.ndim}D input)")
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // c
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)}")
        mean = input.mean(dims)
        centered = input - mean.reshape(shape)
        var = (centered * centered).mean(dims)
        if running_mean is not None:
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (momentum * n / (n - 1)))
        out = centered * (var.reshape(shape) + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm in eval mode needs running_mean and running_var")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps) along `dim`."""
    denom = input.norm(p, dim, keepdim=True).clamp(min=eps)
    return input / denom


# ---- embedding, one-hot, padding, interpolation ---------------------------------------


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of `weight` picked by the integer `input`; the padding row gets no gradient.

    With `max_norm`, the rows looked up are first rescaled in place to norm at most max_norm (as in PyTorch)."""
    if input.dtype not in (D.int64, D.int32):
        raise RuntimeError(f"embedding: expected indices of dtype int64 or int32, got {input.dtype}")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding: scale_grad_by_freq=True is not supported")
    n = weight.shape[0]
    # The check reads the index values directly: it is validation, not part of what a trace records.
    if input.numel():
        with on_device_of(input._data):
            lo, hi = int(input._data.min()), int(input._data.max())
        if hi >= n or lo < -n:
            raise IndexError(f"embedding: index out of range (num_embeddings={n}, got indices in [{lo}, {hi}])")
    if max_norm is not None:
        with no_grad():
            rows = input.reshape(-1)
            w = weight[rows]
            norms = w.norm(norm_type, 1, keepdim=True)
            weight[rows] = tj["where"](norms > max_norm, w * (max_norm / (norms + 1e-7)), w)
    out = weight[input]
    if padding_idx is not None and weight.requires_grad:
        pad = padding_idx % n
        out = tj["where"]((input != pad).unsqueeze(-1), out, weight.detach()[input])
    return out


def one_hot(tensor, num_classes=-1):
    if tensor.dtype is not D.int64:
        raise RuntimeError(f"one_hot is only applicable to index tensor of dtype int64, got {tensor.dtype}")
    if num_classes == -1:
        num_classes = int(tensor.max()) + 1 if tensor.numel() else 0
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= num_classes):
        raise RuntimeError(f"one_hot: class values must be in [0, {num_classes})")
    return (tensor.unsqueeze(-1) == tj["arange"](num_classes, device=tensor.device)).long()


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dims: pad = (left, right, top, bottom, ...), as in PyTorch."""
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, got {len(pad)}")
    if len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding of length {len(pad)} is too long for a {input.ndim}-D input")
    if mode != "constant":
        return _pad_index(input, pad, mode)
    out = input
    for i in range(len(pad) // 2):
        dim = input.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if lo < 0:
            out = out.narrow(dim, -lo, out.shape[dim] + lo)
            lo = 0
        if hi < 0:
            out = out.narrow(dim, 0, out.shape[dim] + hi)
            hi = 0
        parts = []
        if lo:
            s = list(out.shape)
            s[dim] = lo
            parts.append(tj["full"](s, value or 0, dtype=out.dtype, device=out.device))
        parts.append(out)
        if hi:
            s = list(out.shape)
            s[dim] = hi
            parts.append(tj["full"](s, value or 0, dtype=out.dtype, device=out.device))
        if len(parts) > 1:
            out = tj["cat"](parts, dim)
    return out


def _pad_index(input, pad, mode):
    """reflect / replicate / circular padding as a gather along each padded dim."""
    out = input
    for i in range(len(pad) // 2):
        dim = input.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        n = out.shape[dim]
        pos = tj["arange"](-lo, n + hi, device=input.device)
        if mode == "reflect":
            if lo >= n or hi >= n:
                raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the dim size {n}")
            period = 2 * (n - 1) if n > 1 else 1
            pos = pos.remainder(period)
            pos = tj["where"](pos >= n, period - pos, pos)
        elif mode == "replicate":
            pos = pos.clamp(0, n - 1)
        elif mode == "circular":
            pos = pos.remainder(n)
        else:
            raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
        out = out.index_select(dim, pos)
    return out


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resize the spatial dims with 'nearest', 'linear' or 'bilinear' sampling (PyTorch's coordinates)."""
    spatial = input.ndim - 2
    if spatial < 1:
        raise ValueError(f"interpolate expects a 3D, 4D or 5D input, got {input.ndim}D")
    in_sizes = input.shape[2:]
    if size is not None:
        out_sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        scales = [None] * spatial
    elif scale_factor is not None:
        sf = (scale_factor,) * spatial if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        out_sizes = tuple(int(math.floor(n * s)) for n, s in zip(in_sizes, sf))
        scales = [None if recompute_scale_factor else s for s in sf]
    else:
        raise ValueError("interpolate: either size or scale_factor should be defined")
    out = input
    for i, (n_in, n_out) in enumerate(zip(in_sizes, out_sizes)):
        dim = 2 + i
        scale = (1.0 / scales[i]) if scales[i] else n_in / n_out
        if mode == "nearest":
            idx = (tj["arange"](n_out, dtype=D.float64, device=input.device) * scale).floor().long().clamp(max=n_in - 1)
            out = out.index_select(dim, idx)
        elif mode in ("linear", "bilinear", "trilinear"):
            if align_corners:
                src = tj["arange"](n_out, dtype=D.float64, device=input.device) * (
                    (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
            else:
                src = ((tj["arange"](n_out, dtype=D.float64, device=input.device) + 0.5) * scale - 0.5).clamp(min=0)
            lo = src.floor().long().clamp(max=n_in - 1)
            hi = (lo + 1).clamp(max=n_in - 1)
            w = (src - lo.double()).to(input.dtype)
            shape = [1] * out.ndim
            shape[dim] = n_out
            w = w.reshape(shape)
            out = out.index_select(dim, lo) * (1 - w) + out.index_select(dim, hi) * w
        else:
            raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; use 'nearest' or 'bilinear'")
    return out


# ---- attention ----------------------------------------------------------------------------


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q k^T * scale + mask) v, with a causal mask and bool (True = attend) or additive masks."""
    d = query.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        causal = tj["ones"](L, S, dtype=D.bool_, device=query.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype is D.bool_:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    attn = scores.softmax(-1)
    if dropout_p > 0.0:
        attn = dropout(attn, dropout_p, True)
    return attn @ value


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    num = (x1 * x2).sum(dim)
    den = (x1.norm(2, dim) * x2.norm(2, dim)).clamp(min=eps)
    return num / den


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    return (x1 - x2 + eps).norm(p, -1, keepdim)
