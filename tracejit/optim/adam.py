"""Adam and AdamW (Adam with decoupled weight decay): PyTorch's `torch.optim.Adam` and
`torch.optim.AdamW`, with the same bias corrections, AMSGrad variant and state keys
("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq").

    >>> import tracejit as tj
    >>> from tracejit.optim import Adam
    >>> w = tj.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> w.grad = tj.tensor([3.0, -0.5])
    >>> opt.step()  # the first step moves each weight by lr against its gradient's sign
    >>> w
    tensor([0.9000, 2.1000], requires_grad=True)
"""

from __future__ import annotations

from .._creation import zeros_like
from ..autograd import no_grad
from .optimizer import Optimizer, check_nonnegative, closure_loss, grads_of


class Adam(Optimizer):
    """Adam: `m = lerp(m, g, 1 - beta1)`, `v = beta2 * v + (1 - beta2) * g * g`,
    `p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)`; with `amsgrad`,
    v in the denominator is the running maximum of v. `weight_decay` adds `wd * p` to the
    gradient, or with `decoupled_weight_decay` (AdamW) scales p by `1 - lr * wd` first.

    "step" is kept as a Python float (PyTorch keeps a float tensor) so that the bias
    corrections cost no tensor op. `foreach` is accepted and ignored.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, decoupled_weight_decay=False):
        check_nonnegative(lr=lr, eps=eps)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), but got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        check_nonnegative(weight_decay=weight_decay)
        defaults = {"lr": lr, "betas": (float(betas[0]), float(betas[1])), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize, "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def step(self, closure=None):
        """One update of every parameter whose `.grad` is set; returns `closure()`'s loss if given."""
        loss = closure_loss(closure)
        state = self.state
        with no_grad():
            for group in self.param_groups:
                lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
                weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
                decoupled = group["decoupled_weight_decay"]
                for p, grad in grads_of(group):
                    s = state[p]
                    if not s:
                        s["step"] = 0.0
                        s["exp_avg"] = zeros_like(p)
                        s["exp_avg_sq"] = zeros_like(p)
                        if amsgrad:
                            s["max_exp_avg_sq"] = zeros_like(p)
                    step = s["step"] = s["step"] + 1
                    if weight_decay != 0:
                        if decoupled:
                            p.mul_(1 - lr * weight_decay)
                        else:
                            grad = grad.add(p, alpha=weight_decay)
                    exp_avg, exp_avg_sq = s["exp_avg"], s["exp_avg_sq"]
                    exp_avg.add_(grad - exp_avg, alpha=1 - beta1)  # PyTorch's lerp_(grad, 1 - beta1)
                    exp_avg_sq.mul_(beta2).add_(grad * grad, alpha=1 - beta2)
                    step_size = lr / (1 - beta1**step)
                    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
                    if amsgrad:
                        exp_avg_sq = s["max_exp_avg_sq"].maximum_(exp_avg_sq)
                    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                    p.add_(exp_avg / denom, alpha=-step_size)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (`p *= 1 - lr * weight_decay` before the Adam update),
    weight_decay 1e-2 by default.

        >>> import tracejit as tj
        >>> from tracejit.optim import AdamW
        >>> w = tj.tensor([1.0], requires_grad=True)
        >>> w.grad = tj.tensor([0.0])
        >>> AdamW([w], lr=0.1, weight_decay=0.5).step()  # zero gradient: only the decay acts
        >>> w
        tensor([0.9500], requires_grad=True)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         decoupled_weight_decay=True)
