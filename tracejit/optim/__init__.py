"""Optimizers and learning-rate schedules with PyTorch's `torch.optim` API and update rules.

Updates run under `no_grad` and write into the parameters in place (their memory and
identity stay the same); parameters whose `.grad` is None are skipped.

    >>> import tracejit as tj
    >>> import tracejit.optim as optim
    >>> w = tj.tensor([2.0], requires_grad=True)
    >>> opt = optim.SGD([w], lr=0.25)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()  # d/dw w^2 = 2w: each step halves w
    ...     opt.step()
    >>> w
    tensor([0.2500], requires_grad=True)
"""

from __future__ import annotations

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
