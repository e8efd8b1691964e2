"""`gradcheck`: compare autograd's gradients with central finite differences in float64.

    >>> import tracejit as tj
    >>> x = tj.randn(3, dtype=tj.float64, requires_grad=True)
    >>> tj.autograd.gradcheck(lambda t: (t * t).sin(), (x,))
    True
"""

from __future__ import annotations

import numpy as np


class GradcheckError(RuntimeError):
    """Analytical and numerical gradients disagree; the message shows both Jacobians."""


def _outputs(func, inputs):
    out = func(*inputs)
    return out if isinstance(out, (tuple, list)) else (out,)


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0):
    """True when d(func(inputs))/d(inputs) from backward matches finite differences."""
    from .. import _api
    from .engine import run_backward
    from .functional import F
    from .grad_mode import no_grad

    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff = [i for i, t in enumerate(inputs) if isinstance(t, _api.Tensor) and t.requires_grad]
    for i in diff:
        if inputs[i].dtype.name != "float64":
            raise ValueError(f"gradcheck needs float64 inputs for accurate finite differences; input {i} is "
                             f"{inputs[i].dtype}")
    outs = [o for o in _outputs(func, inputs) if isinstance(o, _api.Tensor) and o.requires_grad]
    if not outs:
        raise ValueError("gradcheck: no output of func requires grad")
    for i in diff:
        x = inputs[i]
        if not x.is_contiguous():
            raise ValueError(f"gradcheck: input {i} must be contiguous")
        # perturbed in place: the CPU array itself, or on a GPU the tensor's flat view
        flat = x.detach().numpy().reshape(-1) if x.is_cpu else x.detach().view(-1)
        for k, out in enumerate(outs):
            n_out = out.numel()
            numeric = np.zeros((x.numel(), n_out))
            with no_grad():
                for j in range(x.numel()):
                    orig = float(flat[j])
                    flat[j] = orig + eps
                    plus = _outputs(func, inputs)[_index_of(func, inputs, k)].numpy(force=True).reshape(-1).copy()
                    flat[j] = orig - eps
                    minus = _outputs(func, inputs)[_index_of(func, inputs, k)].numpy(force=True).reshape(-1).copy()
                    flat[j] = orig
                    numeric[j] = (plus - minus) / (2 * eps)
            analytic = np.zeros_like(numeric)
            for m in range(n_out):
                out_k = [o for o in _outputs(func, inputs) if isinstance(o, _api.Tensor) and o.requires_grad][k]
                go = np.zeros(n_out)
                go[m] = 1.0
                seed = _api.PUBLIC["tensor"](go.reshape(out_k.shape), dtype=out_k.dtype, device=out_k.device)
                (g,) = run_backward(F, [out_k], [seed], retain_graph=False, create_graph=False, inputs=[x],
                                    accumulate=False)
                if g is not None:
                    analytic[:, m] = g.numpy(force=True).reshape(-1)
            if not np.allclose(analytic, numeric, rtol=rtol, atol=atol):
                msg = (f"Jacobian mismatch for output {k} with respect to input {i},\nnumerical:{numeric}\n"
                       f"analytical:{analytic}\n")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def _index_of(func, inputs, k):
    """Position of the k-th grad-requiring output among all outputs."""
    outs = _outputs(func, inputs)
    seen = -1
    for pos, o in enumerate(outs):
        if getattr(o, "dtype", None) is not None and o.dtype.is_floating_point:
            seen += 1
            if seen == k:
                return pos
    return k
