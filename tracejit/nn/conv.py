"""Convolution and pooling layers: Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d (and 1d pooling), with PyTorch's default initialization.

    >>> import tracejit as tj
    >>> tj.nn.Conv2d(1, 16, 3, padding=1)
    Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
"""

from __future__ import annotations

import math

from .. import _api
from . import functional as F
from . import init
from .module import Module, Parameter

tj = _api.PUBLIC


def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class _ConvNd(Module):
    _n = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        n = self._n
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        if padding_mode != "zeros":
            raise NotImplementedError(f"padding_mode={padding_mode!r} is not supported; only 'zeros'")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"invalid padding string {padding!r}, should be one of 'valid' or 'same'")
            if padding == "same" and any(s != 1 for s in _tuple(stride, n)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _tuple(kernel_size, n), _tuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.dilation, self.groups, self.padding_mode = _tuple(dilation, n), groups, padding_mode
        self.output_padding = _tuple(output_padding, n)
        kw = {"device": device, "dtype": dtype}
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(tj["empty"](shape, **kw))
        if bias:
            self.bias = Parameter(tj["empty"](out_channels, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check(self, input):
        cdim = 0 if input.ndim == self._n + 1 else 1
        if input.ndim not in (self._n + 1, self._n + 2) or input.shape[cdim] != self.in_channels:
            raise RuntimeError(f"{self!r} got input of shape {list(input.shape)}; expected (N, {self.in_channels}, "
                               f"{', '.join('*' * 1 for _ in range(self._n))}) or unbatched ({self.in_channels}, ...)")

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"  # PyTorch prints 'same' / 'valid' unquoted
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    _n = 1

    def forward(self, input):
        self._check(input)
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    _n = 2

    def forward(self, input):
        self._check(input)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    _n = 2
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         output_padding, device, dtype)

    def _output_padding(self, input, output_size):
        """The output_padding that makes the output `output_size` (its last n entries) spatially, as in PyTorch."""
        if output_size is None:
            return self.output_padding
        n, lead = self._n, input.ndim - self._n
        sizes = tuple(output_size)[lead:] if len(output_size) == n + lead else tuple(output_size)
        if len(sizes) != n:
            raise ValueError(f"ConvTranspose{n}D: for {input.ndim}D input, output_size must have {n} or {n + lead} "
                             f"elements (got {len(output_size)})")
        lo = [(input.shape[lead + d] - 1) * self.stride[d] - 2 * self.padding[d]
              + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(n)]
        hi = [m + s - 1 for m, s in zip(lo, self.stride)]
        if any(not a <= size <= b for a, size, b in zip(lo, sizes, hi)):
            raise ValueError(f"requested an output size of {list(sizes)}, but valid sizes range from {lo} to {hi} "
                             f"(for an input of {list(input.shape[lead:])})")
        return tuple(size - a for size, a in zip(sizes, lo))

    def forward(self, input, output_size=None):
        self._check(input)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose1d(ConvTranspose2d):
    _n = 1

    def forward(self, input, output_size=None):
        self._check(input)
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


class _Pool(Module):
    _fn = None
    _fields = ()
    _repr_fields = ()  # the fields PyTorch's repr shows (fewer than the constructor takes)

    def __init__(self, *args, **kwargs):
        super().__init__()
        values = dict(self._fields)
        for (k, _), v in zip(self._fields, args):
            values[k] = v
        for k, v in kwargs.items():
            if k not in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument '{k}'")
            values[k] = v
        if "stride" in values and values["stride"] is None:
            values["stride"] = values["kernel_size"]
        for k, v in values.items():
            setattr(self, k, v)

    def forward(self, input):
        return type(self)._fn(input, **{k: getattr(self, k) for k, _ in self._fields})

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)}" for k in self._repr_fields)


class MaxPool2d(_Pool):
    _fn = staticmethod(F.max_pool2d)
    _fields = (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1), ("return_indices", False),
               ("ceil_mode", False))
    _repr_fields = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")


class MaxPool1d(_Pool):
    _fn = staticmethod(F.max_pool1d)
    _fields, _repr_fields = MaxPool2d._fields, MaxPool2d._repr_fields


class AvgPool2d(_Pool):
    _fn = staticmethod(F.avg_pool2d)
    _fields = (("kernel_size", None), ("stride", None), ("padding", 0), ("ceil_mode", False),
               ("count_include_pad", True), ("divisor_override", None))
    _repr_fields = ("kernel_size", "stride", "padding")


class AvgPool1d(_Pool):
    _fn = staticmethod(F.avg_pool1d)
    _fields = (("kernel_size", None), ("stride", None), ("padding", 0), ("ceil_mode", False),
               ("count_include_pad", True))
    _repr_fields = AvgPool2d._repr_fields

    def extra_repr(self):  # PyTorch stores AvgPool1d's sizes as 1-tuples
        def one(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v,)

        return ", ".join(f"{k}={one(getattr(self, k))}" for k in self._repr_fields)


class AdaptiveAvgPool2d(_Pool):
    _fn = staticmethod(F.adaptive_avg_pool2d)
    _fields = (("output_size", None),)
    _repr_fields = ("output_size",)


class AdaptiveAvgPool1d(_Pool):
    _fn = staticmethod(F.adaptive_avg_pool1d)
    _fields = (("output_size", None),)
    _repr_fields = ("output_size",)
