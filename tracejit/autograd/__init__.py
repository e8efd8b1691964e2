"""Reverse-mode automatic differentiation.

    >>> import tracejit as tj
    >>> x = tj.tensor(3.0, requires_grad=True)
    >>> (g,) = tj.autograd.grad(x * x, (x,))
    >>> g
    tensor(6.)
"""

from __future__ import annotations

from .engine import Node
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck


def _seed(t, g):
    from .._creation import ones_like

    if g is None:
        if t.numel() != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this output has shape {list(t.shape)}: "
                "pass `gradient=` (a tensor of the same shape) to backward() or grad_outputs= to grad()")
        return ones_like(t)
    from .._tensor import Tensor

    if not isinstance(g, Tensor):
        from .._creation import tensor

        g = tensor(g, dtype=t.dtype, device=t.device)
    if tuple(g.shape) != tuple(t.shape):
        raise RuntimeError(f"mismatch in shape: grad_output has shape {list(g.shape)} but output has shape "
                           f"{list(t.shape)}")
    return g


def _as_tuple(x):
    if x is None:
        return None
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaf) into each leaf's `.grad`."""
    from .engine import run_backward
    from .functional import F

    tensors = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) or (None,) * len(tensors)
    seeds = [_seed(t, g) for t, g in zip(tensors, grads)]
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is not None:
        got = run_backward(F, tensors, seeds, retain_graph=retain, create_graph=create_graph,
                           inputs=_as_tuple(inputs), accumulate=False)
        for t, g in zip(_as_tuple(inputs), got):
            if g is not None:
                from .engine import _accumulate_leaf

                _accumulate_leaf(t, g, create_graph)
        return
    run_backward(F, tensors, seeds, retain_graph=retain, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         materialize_grads=False):
    """Gradients of `outputs` with respect to `inputs`, returned rather than accumulated."""
    from .engine import run_backward
    from .functional import F

    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    gos = _as_tuple(grad_outputs) or (None,) * len(outputs)
    seeds = [_seed(t, g) for t, g in zip(outputs, gos)]
    retain = create_graph if retain_graph is None else retain_graph
    got = run_backward(F, outputs, seeds, retain_graph=retain, create_graph=create_graph, inputs=inputs,
                       accumulate=False)
    result = []
    for i, (t, g) in enumerate(zip(inputs, got)):
        if g is None:
            if materialize_grads:
                from .._creation import zeros_like

                g = zeros_like(t)
            elif not allow_unused:
                raise RuntimeError(f"one of the differentiated tensors (input {i}) appears to not have been used in "
                                   "the graph. Set allow_unused=True if this is the desired behavior.")
        result.append(g)
    return tuple(result)


__all__ = ["GradcheckError", "Node", "backward", "enable_grad", "grad", "gradcheck", "inference_mode",
           "is_grad_enabled", "no_grad", "set_grad_enabled"]
