"""Recurrent layers: RNN (tanh/relu), LSTM and GRU, multi-layer, batch_first, bidirectional,
with PyTorch's parameter names, gate order and initialization.

    >>> import tracejit as tj
    >>> out, (h, c) = tj.nn.LSTM(4, 8, num_layers=2, batch_first=True)(tj.randn(3, 5, 4))
    >>> tuple(out.shape), tuple(h.shape)
    ((3, 5, 8), (2, 3, 8))
"""

from __future__ import annotations

import math

from .. import _api
from . import functional as F
from . import init
from .module import Module, Parameter

tj = _api.PUBLIC

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__()
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in range [0, 1], got {dropout}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        gates = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        kw = {"device": device, "dtype": dtype}
        self._flat_weights_names = []
        for layer in range(num_layers):
            for d in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else hidden_size * dirs
                names = [("weight_ih", (gates, in_size)), ("weight_hh", (gates, hidden_size))]
                if bias:
                    names += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
                for n, shape in names:
                    setattr(self, n + suffix, Parameter(tj["empty"](shape, **kw)))
                    self._flat_weights_names.append(n + suffix)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _cell(self, x, h, c, layer, d):
        suffix = f"_l{layer}" + ("_reverse" if d else "")
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        gi = F.linear(x, w_ih, b_ih)
        gh = F.linear(h, w_hh, b_hh)
        if self.mode == "LSTM":
            i, f, g, o = (gi + gh).chunk(4, -1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            return o.sigmoid() * c.tanh(), c
        if self.mode == "GRU":
            ir, iz, in_ = gi.chunk(3, -1)
            hr, hz, hn = gh.chunk(3, -1)
            r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
            n = (in_ + r * hn).tanh()
            return (1 - z) * n + z * h, None
        pre = gi + gh
        return (pre.tanh() if self.mode == "RNN_TANH" else pre.relu()), None

    def forward(self, input, hx=None):
        batched = input.ndim == 3
        if input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: expected input to be 2D or 3D, got {input.ndim}D")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{self!r} got input of shape {list(input.shape)}; expected input_size="
                               f"{self.input_size} as the last dim")
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        dirs = 2 if self.bidirectional else 1
        lstm = self.mode == "LSTM"
        if hx is None:
            zeros = tj["zeros"](self.num_layers * dirs, batch, self.hidden_size, dtype=input.dtype, device=input.device)
            h0, c0 = zeros, (zeros if lstm else None)
        elif lstm:
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        else:
            h0, c0 = (hx if batched else hx.unsqueeze(1)), None
        expect = (self.num_layers * dirs, batch, self.hidden_size)
        if tuple(h0.shape) != expect:
            raise RuntimeError(f"Expected hidden size {expect}, got {tuple(h0.shape)}")
        layer_in = x
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                h = h0[layer * dirs + d]
                c = c0[layer * dirs + d] if lstm else None
                seq = []
                order = range(steps - 1, -1, -1) if d else range(steps)
                for t in order:
                    h, c2 = self._cell(layer_in[t], h, c, layer, d)
                    c = c2 if lstm else c
                    seq.append(h)
                if d:
                    seq.reverse()
                outs.append(tj["stack"](seq, 0))
                h_n.append(h)
                if lstm:
                    c_n.append(c)
            layer_in = outs[0] if dirs == 1 else tj["cat"](outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True)
        out = layer_in
        if batched and self.batch_first:
            out = out.transpose(0, 1)
        h_n = tj["stack"](h_n, 0)
        c_n = tj["stack"](c_n, 0) if lstm else None
        if not batched:
            out = out.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        return out, ((h_n, c_n) if lstm else h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)


class GRU(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)
