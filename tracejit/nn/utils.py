"""`tracejit.nn.utils`: gradient clipping and parameter/vector conversion.

    >>> import tracejit as tj
    >>> p = tj.nn.Parameter(tj.ones(4)); p.grad = tj.full((4,), 3.0)
    >>> round(tj.nn.utils.clip_grad_norm_([p], 1.0).item(), 3)
    6.0
"""

from __future__ import annotations

from .. import _api
from .._tensor import Tensor
from ..autograd.grad_mode import no_grad

tj = _api.PUBLIC


def _params(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale gradients in place so their joint norm is at most `max_norm`; returns the norm before clipping."""
    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    if not grads:
        return tj["tensor"](0.0)
    norm_type = float(norm_type)
    with no_grad():
        if norm_type == float("inf"):
            total = tj["stack"]([g.abs().max() for g in grads]).max()
        else:
            total = tj["stack"]([g.norm(norm_type) for g in grads]).norm(norm_type)
        if error_if_nonfinite and not bool(total.isfinite()):
            raise RuntimeError(f"the total norm of order {norm_type} for gradients is non-finite, so it cannot be "
                               "clipped; set error_if_nonfinite=False to skip this check")
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    with no_grad():
        for p in _params(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters):
    return tj["cat"]([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    at = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.copy_(vec[at : at + n].view_as(p))
            at += n
