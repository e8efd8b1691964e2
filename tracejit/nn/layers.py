"""Basic layers: Identity, Linear, Bilinear, activations, Dropout, Flatten/Unflatten, Embedding.

Each initializes its parameters as PyTorch does and checks input shapes, naming the layer
and both shapes when they do not fit.

    >>> import tracejit as tj
    >>> tj.nn.Linear(784, 128)
    Linear(in_features=784, out_features=128, bias=True)
"""

from __future__ import annotations

import math

from .. import _api
from . import functional as F
from . import init
from .module import Module, Parameter

tj = _api.PUBLIC


def _factory_kwargs(device, dtype):
    return {"device": device, "dtype": dtype}


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(tj["empty"](out_features, in_features, **_factory_kwargs(device, dtype)))
        self.bias = Parameter(tj["empty"](out_features, **_factory_kwargs(device, dtype))) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise RuntimeError(f"{self!r} got input of shape {tuple(input.shape)}; expected the last dim to be "
                               f"{self.in_features}")
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        kw = _factory_kwargs(device, dtype)
        self.weight = Parameter(tj["empty"](out_features, in1_features, in2_features, **kw))
        if bias:
            self.bias = Parameter(tj["empty"](out_features, **kw))
        else:
            self.register_parameter("bias", None)
        bound = 1 / math.sqrt(in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


def _activation(name, fn, params=(), repr_fn=None):
    """A Module class around a functional activation with keyword parameters `params`."""

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(params)
        for (k, _), v in zip(params, args):
            values[k] = v
        for k, v in kwargs.items():
            if k not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument '{k}'")
            values[k] = v
        for k, v in values.items():
            setattr(self, k, v)

    def forward(self, input):
        return fn(input, **{k: getattr(self, k) for k, _ in params})

    def extra_repr(self):
        if repr_fn is not None:
            return repr_fn(self)
        return ", ".join(f"{k}={getattr(self, k)}" for k, _ in params)

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                  "__doc__": f"Module form of functional.{fn.__name__}."})


def _inplace_repr(self):
    return "inplace=True" if self.inplace else ""


ReLU = _activation("ReLU", F.relu, (("inplace", False),), _inplace_repr)
ReLU6 = _activation("ReLU6", F.relu6, (("inplace", False),), _inplace_repr)
LeakyReLU = _activation("LeakyReLU", F.leaky_relu, (("negative_slope", 0.01), ("inplace", False)),
                        lambda s: f"negative_slope={s.negative_slope}" + (", inplace=True" if s.inplace else ""))
ELU = _activation("ELU", F.elu, (("alpha", 1.0), ("inplace", False)),
                  lambda s: f"alpha={s.alpha}" + (", inplace=True" if s.inplace else ""))
SELU = _activation("SELU", F.selu, (("inplace", False),), _inplace_repr)
GELU = _activation("GELU", F.gelu, (("approximate", "none"),), lambda s: f"approximate='{s.approximate}'")
SiLU = _activation("SiLU", F.silu, (("inplace", False),), _inplace_repr)
Mish = _activation("Mish", F.mish)
Softplus = _activation("Softplus", F.softplus, (("beta", 1.0), ("threshold", 20.0)))
Sigmoid = _activation("Sigmoid", F.sigmoid)
Tanh = _activation("Tanh", F.tanh)
LogSigmoid = _activation("LogSigmoid", F.logsigmoid)
Hardtanh = _activation("Hardtanh", F.hardtanh, (("min_val", -1.0), ("max_val", 1.0), ("inplace", False)),
                       lambda s: f"min_val={s.min_val}, max_val={s.max_val}" + (", inplace=True" if s.inplace else ""))
Softmax = _activation("Softmax", F.softmax, (("dim", None),))
LogSoftmax = _activation("LogSoftmax", F.log_softmax, (("dim", None),))
Softmin = _activation("Softmin", F.softmin, (("dim", None),))
GLU = _activation("GLU", F.glu, (("dim", -1),))


class Dropout(Module):
    """Zeroes elements with probability p in training mode (identity in eval mode)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Embedding(Module):
    """A lookup table of `num_embeddings` vectors of size `embedding_dim`, initialized N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        if scale_grad_by_freq:
            raise NotImplementedError("Embedding: scale_grad_by_freq=True is not supported")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = max_norm, norm_type, False, sparse
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError(f"padding_idx must be within num_embeddings ({num_embeddings}), got {padding_idx}")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(tj["empty"](num_embeddings, embedding_dim, **_factory_kwargs(device, dtype)),
                                    requires_grad=not _freeze)
            init.normal_(self.weight)
            if padding_idx is not None:
                from ..autograd.grad_mode import no_grad

                with no_grad():
                    self.weight[padding_idx].fill_(0)
        else:
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kw):
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze, **kw)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        s += f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        s += f", max_norm={self.max_norm}" if self.max_norm is not None else ""
        s += f", norm_type={self.norm_type}" if self.norm_type != 2 else ""
        return s + (", sparse=True" if self.sparse else "")
