"""Loss functions with PyTorch's signatures, reductions and error messages.

    >>> import tracejit as tj
    >>> from tracejit.nn.functional import cross_entropy
    >>> round(cross_entropy(tj.zeros(1, 4), tj.tensor([2])).item(), 4)
    1.3863
"""

from __future__ import annotations

from .. import _api
from .. import dtypes as D

tj = _api.PUBLIC

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss", "kl_div",
           "l1_loss", "mse_loss", "nll_loss", "smooth_l1_loss"]


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction; expected 'mean', 'sum' or 'none'")


def _same_shape(input, target, what):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{what}: target size ({list(target.shape)}) must be the same as input size "
                         f"({list(input.shape)})")


def _class_dim_last(t):
    """(N, C, d1, ...) -> (N*d1*..., C): the class dim last, everything else flattened."""
    if t.ndim <= 2:
        return t if t.ndim == 2 else t.unsqueeze(0)
    return t.movedim(1, -1).reshape(-1, t.shape[1])


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """-input[n, target[n]] (weighted), averaged over non-ignored targets by default."""
    if input.ndim < 1:
        raise ValueError("nll_loss: expected input with at least 1 dim (classes)")
    if target.dtype not in (D.int64, D.int32, D.uint8, D.int16, D.int8):
        raise RuntimeError(f"nll_loss: expected target of an integer dtype (class indices), got {target.dtype}")
    n_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if input.ndim >= 2 and tuple(target.shape) != (input.shape[0],) + tuple(input.shape[2:]):
        raise ValueError(f"nll_loss: expected target of shape {[input.shape[0]] + list(input.shape[2:])}, got "
                         f"{list(target.shape)}")
    logp = _class_dim_last(input)
    tgt = target.reshape(-1).long()
    valid = tgt != ignore_index
    bad = valid & ((tgt < 0) | (tgt >= n_classes))
    if bool(bad.any()):
        raise IndexError(f"Target {int(tgt[bad][0])} is out of bounds: expected class indices in [0, {n_classes - 1}]"
                         + (f" or ignore_index={ignore_index}" if ignore_index != -100 else ""))
    safe = tgt.masked_fill(~valid, 0)
    picked = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = valid.to(input.dtype)
    if weight is not None:
        w = w * weight[safe]
    loss = picked * w
    if reduction == "mean":
        return loss.sum() / w.sum()
    out = _reduce(loss, reduction)
    return out.reshape(target.shape) if reduction == "none" else out


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """log_softmax + nll over dim 1; targets as class indices or as class probabilities."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    cdim = 1 if input.ndim >= 2 else 0
    logp = input.log_softmax(cdim)
    n_classes = input.shape[cdim]
    if target.dtype.is_floating_point:  # probabilities
        _same_shape(input, target, "cross_entropy")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        lw = logp if weight is None else logp * weight.reshape([n_classes] + [1] * (input.ndim - 2))
        per = -(lw * target).sum(cdim)
        return _reduce(per, reduction)
    loss = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return loss
    # Smoothing adds the mean over classes of -log p, weighted and reduced like the nll term.
    valid = (target != ignore_index).to(input.dtype)
    lw = logp if weight is None else logp * weight.reshape([n_classes] + [1] * (input.ndim - 2))
    smooth = -lw.sum(cdim) * valid
    if reduction == "mean":
        if weight is not None:
            denom = (weight[target.masked_fill(target == ignore_index, 0)] * valid).sum()
        else:
            denom = valid.sum()
        smooth = smooth.sum() / denom
    else:
        smooth = _reduce(smooth, reduction)
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / n_classes)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    loss = tj["where"](d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    d = (input - target).abs()
    loss = tj["where"](d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-(t log p + (1-t) log(1-p)), with log clamped at -100 and the gradient (p - t) / max(p (1-p), 1e-12),
    as PyTorch computes them."""
    _same_shape(input, target, "binary_cross_entropy")
    if bool(((input < 0) | (input > 1)).any()):
        raise RuntimeError("all elements of input should be between 0 and 1 (binary_cross_entropy takes "
                           "probabilities; use binary_cross_entropy_with_logits for logits)")

    def bce(p):
        return -(target * p.log().clamp(min=-100) + (1 - target) * (1 - p).log().clamp(min=-100))

    # Where p (1-p) < eps (p = 0 or 1: a saturated sigmoid) the log's gradient would be 0 * inf = nan;
    # there the value comes from the detached input and the gradient (p - t) / eps passes straight through.
    eps = 9.999999960041972e-13  # PyTorch's kernel divides by 1e-12 rounded to float32
    inside = input * (1 - input) >= eps
    x = input.detach()
    edge = bce(x) + ((x - target) / eps).detach() * (input - x)
    loss = tj["where"](inside, bce(tj["where"](inside, input, 0.5)), edge)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable formula."""
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    log_sig = -(-input).clamp(min=0) - ((-input.abs()).exp()).log1p()  # log(sigmoid(x)), stable
    log_one_minus = log_sig - input  # log(1 - sigmoid(x))
    if pos_weight is not None:
        loss = -(pos_weight * target * log_sig + (1 - target) * log_one_minus)
    else:
        loss = -(target * log_sig + (1 - target) * log_one_minus)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = tj["where"](target > 0, target * (target.clamp(min=1e-38).log() - input), target * 0)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    return _reduce(loss, reduction)
