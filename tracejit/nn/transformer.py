"""Attention layers: MultiheadAttention and TransformerEncoderLayer (PyTorch's parameter
names, masks, batch_first and norm_first conventions).

    >>> import tracejit as tj
    >>> layer = tj.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    >>> tuple(layer(tj.randn(2, 5, 16)).shape)
    (2, 5, 16)
"""

from __future__ import annotations

import math

from .. import _api
from .. import dtypes as D
from . import functional as F
from . import init
from .container import ModuleList
from .layers import Dropout, Linear
from .module import Module, Parameter
from .norm import LayerNorm

tj = _api.PUBLIC


def _merge_masks(attn_mask, key_padding_mask, batch, heads, L, S, dtype):
    """One additive float mask of shape (batch, heads, L, S), or None."""
    mask = None
    if attn_mask is not None:
        m = attn_mask
        if m.dtype is D.bool_:  # True means "not allowed" in nn.MultiheadAttention
            m = tj["zeros"](m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
        m = m.to(dtype)
        if m.ndim == 3:
            m = m.reshape(batch, heads, L, S)
        mask = m
    if key_padding_mask is not None:
        k = key_padding_mask
        if k.dtype is D.bool_:
            k = tj["zeros"](k.shape, dtype=dtype, device=k.device).masked_fill(k, float("-inf"))
        k = k.to(dtype).reshape(batch, 1, 1, S)
        mask = k if mask is None else mask + k
    return mask


class NonDynamicallyQuantizableLinear(Linear):
    """A plain Linear under the class name PyTorch gives MultiheadAttention.out_proj, so reprs match."""


class MultiheadAttention(Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise AssertionError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if add_bias_kv or add_zero_attn or (kdim not in (None, embed_dim)) or (vdim not in (None, embed_dim)):
            raise NotImplementedError("MultiheadAttention: add_bias_kv, add_zero_attn and kdim/vdim != embed_dim "
                                      "are not supported")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        kw = {"device": device, "dtype": dtype}
        self.in_proj_weight = Parameter(tj["empty"](3 * embed_dim, embed_dim, **kw))
        if bias:
            self.in_proj_bias = Parameter(tj["empty"](3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **kw)
        init.xavier_uniform_(self.in_proj_weight)
        if bias:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.ndim == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        L, N, E = query.shape
        S = key.shape[0]
        if E != self.embed_dim:
            raise RuntimeError(f"{self!r} got query with embedding dim {E}; expected {self.embed_dim}")
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        h, d = self.num_heads, self.head_dim

        def heads(x, w, b, n):  # (n, N, E) -> (N, h, n, d)
            return F.linear(x, w, b).reshape(n, N, h, d).permute(1, 2, 0, 3)

        q, k, v = heads(query, w_q, b_q, L), heads(key, w_k, b_k, S), heads(value, w_v, b_v, S)
        if is_causal and attn_mask is None:
            attn_mask = tj["ones"](L, S, dtype=D.bool_).triu(1)
        mask = _merge_masks(attn_mask, key_padding_mask, N, h, L, S, q.dtype)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        if mask is not None:
            scores = scores + mask
        attn = scores.softmax(-1)
        if self.dropout and self.training:
            attn = F.dropout(attn, self.dropout, True)
        out = (attn @ v).permute(2, 0, 1, 3).reshape(L, N, E)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
            if not batched:
                weights = weights.squeeze(0)
        return out, weights

    def extra_repr(self):
        return ""


class TransformerEncoderLayer(Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            if activation not in ("relu", "gelu"):
                raise RuntimeError(f"activation should be relu/gelu, not {activation}")
            activation = F.relu if activation == "relu" else F.gelu
        self.activation = activation

    def _sa(self, x, mask, key_padding_mask, is_causal):
        out = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=False,
                             is_causal=is_causal)[0]
        return self.dropout1(out)

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff(self.norm2(x))
        else:
            x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff(x))
        return x


class TransformerEncoder(Module):
    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        import copy

        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x
