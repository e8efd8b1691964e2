"""Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and
weight decay: PyTorch's `torch.optim.SGD`, update for update.

    >>> import tracejit as tj
    >>> from tracejit.optim import SGD
    >>> w = tj.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> w.grad = tj.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w
    tensor([0.9000, 2.1000], requires_grad=True)
"""

from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer, closure_loss, grads_of


class SGD(Optimizer):
    """`p -= lr * g`, where g is the gradient (plus `weight_decay * p`), or the momentum
    buffer `buf = momentum * buf + (1 - dampening) * g` (the first buffer is g itself),
    or with `nesterov` `g + momentum * buf`. State: "momentum_buffer" when momentum != 0.
    `foreach` is accepted for PyTorch compatibility and ignored (there is one implementation)."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def step(self, closure=None):
        """One update of every parameter whose `.grad` is set; returns `closure()`'s loss if given."""
        loss = closure_loss(closure)
        state = self.state
        with no_grad():
            for group in self.param_groups:
                lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
                weight_decay, nesterov = group["weight_decay"], group["nesterov"]
                for p, grad in grads_of(group):
                    if weight_decay != 0:
                        grad = grad.add(p, alpha=weight_decay)
                    if momentum != 0:
                        s = state[p]
                        buf = s.get("momentum_buffer")
                        if buf is None:
                            buf = s["momentum_buffer"] = grad.detach().clone()
                        else:
                            buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                        grad = grad.add(buf, alpha=momentum) if nesterov else buf
                    p.add_(grad, alpha=-lr)
        return loss
