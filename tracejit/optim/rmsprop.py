"""RMSprop: PyTorch's `torch.optim.RMSprop`, with its momentum and centered variants and
state keys ("step", "square_avg", "momentum_buffer", "grad_avg").

    >>> import tracejit as tj
    >>> from tracejit.optim import RMSprop
    >>> w = tj.tensor([1.0], requires_grad=True)
    >>> w.grad = tj.tensor([2.0])
    >>> RMSprop([w], lr=0.01, alpha=0.75).step()  # square_avg = 0.25 * 4 = 1: w -= 0.01 * 2 / 1
    >>> w
    tensor([0.9800], requires_grad=True)
"""

from __future__ import annotations

from .._creation import zeros_like
from ..autograd import no_grad
from .optimizer import Optimizer, check_nonnegative, closure_loss, grads_of


class RMSprop(Optimizer):
    """`v = alpha * v + (1 - alpha) * g * g`, `p -= lr * g / (sqrt(v) + eps)`; `centered`
    subtracts the squared running mean of g from v, `momentum` accumulates `g / (sqrt(v) + eps)`
    into a buffer that is applied instead. Options after `centered` are keyword-only here
    (PyTorch also takes them by position, after `capturable`). `foreach` is ignored."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False, foreach=None):
        check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def step(self, closure=None):
        """One update of every parameter whose `.grad` is set; returns `closure()`'s loss if given."""
        loss = closure_loss(closure)
        state = self.state
        with no_grad():
            for group in self.param_groups:
                lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
                weight_decay, centered = group["weight_decay"], group["centered"]
                for p, grad in grads_of(group):
                    s = state[p]
                    if not s:
                        s["step"] = 0.0
                        s["square_avg"] = zeros_like(p)
                        if momentum > 0:
                            s["momentum_buffer"] = zeros_like(p)
                        if centered:
                            s["grad_avg"] = zeros_like(p)
                    s["step"] += 1
                    if weight_decay != 0:
                        grad = grad.add(p, alpha=weight_decay)
                    square_avg = s["square_avg"].mul_(alpha).add_(grad * grad, alpha=1 - alpha)
                    if centered:
                        grad_avg = s["grad_avg"]
                        grad_avg.add_(grad - grad_avg, alpha=1 - alpha)  # PyTorch's lerp_(grad, 1 - alpha)
                        avg = (square_avg - grad_avg * grad_avg).sqrt_()
                    else:
                        avg = square_avg.sqrt()
                    avg.add_(eps)
                    if momentum > 0:
                        buf = s["momentum_buffer"].mul_(momentum).add_(grad / avg)
                        p.add_(buf, alpha=-lr)
                    else:
                        p.add_(grad / avg, alpha=-lr)
        return loss
