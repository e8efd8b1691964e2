"""Parameter initializers (`tracejit.nn.init`), PyTorch's formulas, filling tensors in place.

    >>> import tracejit as tj
    >>> w = tj.empty(3, 5)
    >>> _ = tj.nn.init.xavier_uniform_(w)
    >>> bool((w.abs() <= (6 / 8) ** 0.5).all())
    True
"""

from __future__ import annotations

import math

from .. import _api
from .. import dtypes as D
from ..autograd.grad_mode import no_grad

tj = _api.PUBLIC


def calculate_gain(nonlinearity, param=None):
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError("fan in and fan out can not be computed for a tensor with fewer than 2 dimensions")
    receptive = 1
    for d in tensor.shape[2:]:
        receptive *= d
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported; expected 'fan_in' or 'fan_out'")
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    with no_grad():
        r = tj["rand"](tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator)
        return tensor.copy_(r * (b - a) + a)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    with no_grad():
        r = tj["randn"](tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator)
        return tensor.copy_(r * std + mean)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    with no_grad():
        r = tj["randn"](tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator) * std + mean
        bad = (r < a) | (r > b)
        while bool(bad.any()):  # redraw only the samples outside [a, b]
            fresh = tj["randn"](tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator)
            r = tj["where"](bad, fresh * std + mean, r)
            bad = (r < a) | (r > b)
        return tensor.copy_(r)


def constant_(tensor, val):
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    with no_grad():
        return tensor.copy_(tj["eye"](*tensor.shape, dtype=tensor.dtype))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    import numpy as np

    rows, cols = tensor.shape[0], tensor.numel() // tensor.shape[0]
    flat = tj["randn"](rows, cols, dtype=D.float64, generator=generator)
    a = flat.numpy().T if rows < cols else flat.numpy()
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    with no_grad():
        return tensor.copy_(tj["tensor"](q.reshape(tensor.shape) * gain, dtype=tensor.dtype))
