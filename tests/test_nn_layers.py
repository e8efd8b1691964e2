"""tracejit.nn layers against torch.nn: each layer gets torch's weights through load_state_dict,
then outputs, input gradients and every parameter gradient must match; parameter and buffer
names, default initialization, and the statistics of Dropout are checked too."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nn_helpers import DTYPES
from nn_helpers import close as _close
from nn_helpers import torch_or_skip as _torch

import tracejit as tj
import tracejit.nn as nn


def _flat(out):
    """The tensors of a (possibly nested) layer output, in order; None entries dropped."""
    stack, flat = [out], []
    while stack:
        o = stack.pop(0)
        if isinstance(o, (tuple, list)):
            stack[:0] = list(o)
        elif o is not None:
            flat.append(o)
    return flat


def copy_weights(tlayer, jlayer):
    jlayer.load_state_dict({k: tj.tensor(v.detach().numpy()) for k, v in tlayer.state_dict().items()})


def check_names(tlayer, jlayer):
    assert [n for n, _ in jlayer.named_parameters()] == [n for n, _ in tlayer.named_parameters()]
    assert list(jlayer.state_dict()) == list(tlayer.state_dict())
    assert [n for n, _ in jlayer.named_buffers()] == [n for n, _ in tlayer.named_buffers()]


def check_layer(tlayer, jlayer, *inputs, dtype="float64", seed=0, grad=True, call=None, **kwargs):
    """Same weights, same inputs: outputs, input gradients and parameter gradients must match torch.

    `inputs` are numpy arrays (floating ones get requires_grad); numpy arrays in `kwargs` are passed
    to both as tensors without gradients, other kwargs as they are. `call(layer, *inputs)` replaces
    `layer(*inputs, **kwargs)` where a layer takes its inputs differently."""
    torch = _torch()
    npdt, rtol = DTYPES[dtype]
    tlayer.to(getattr(torch, dtype))
    jlayer.to(getattr(tj, dtype))
    check_names(tlayer, jlayer)
    copy_weights(tlayer, jlayer)
    rng = np.random.default_rng(seed)
    inputs = [a.astype(npdt) if a.dtype.kind == "f" else a for a in inputs]
    ts = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in inputs]
    js = [tj.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in inputs]

    def kw(lib):
        return {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}

    if call is None:
        want, got = _flat(tlayer(*ts, **kw(torch))), _flat(jlayer(*js, **kw(tj)))
    else:
        want, got = _flat(call(tlayer, *ts)), _flat(call(jlayer, *js))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, rtol, f"output {i}")
    if not grad:
        return got
    weights = [rng.standard_normal(tuple(w.shape)).astype(npdt) for w in want]
    sum(((w * torch.tensor(r)).sum() for w, r in zip(want, weights) if w.dtype.is_floating_point)).backward()
    sum(((g * tj.tensor(r)).sum() for g, r in zip(got, weights) if g.dtype.is_floating_point)).backward()
    for i, (t, j) in enumerate(zip(ts, js)):
        if t.requires_grad:
            _close(j.grad, t.grad, rtol * 10, f"grad of input {i}")
    jparams = dict(jlayer.named_parameters())
    for name, p in tlayer.named_parameters():
        if p.grad is None:
            assert jparams[name].grad is None, f"{name} got a gradient torch does not give"
        else:
            _close(jparams[name].grad, p.grad, rtol * 10, f"grad of {name}")
    return got


def _randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- dense, convolution and pooling ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("bias", [True, False])
def test_linear(dtype, bias):
    torch = _torch()
    check_layer(torch.nn.Linear(5, 3, bias=bias), nn.Linear(5, 3, bias=bias), _randn(2, 4, 5), dtype=dtype)


@pytest.mark.parametrize("bias", [True, False])
def test_bilinear(bias):
    torch = _torch()
    check_layer(torch.nn.Bilinear(3, 4, 2, bias=bias), nn.Bilinear(3, 4, 2, bias=bias), _randn(5, 3),
                _randn(5, 4, seed=2))


CONV_CASES = [
    {},
    {"stride": 2, "padding": 1},
    {"padding": "same", "dilation": 2},
    {"padding": "same", "kernel_size": 4},
    {"padding": "valid", "bias": False},
    {"groups": 2, "padding": 1, "dilation": 2},
    {"groups": 4, "stride": 2, "bias": False},
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv1d(kw):
    torch = _torch()
    kw = {"kernel_size": 3, **kw}
    check_layer(torch.nn.Conv1d(4, 8, **kw), nn.Conv1d(4, 8, **kw), _randn(2, 4, 11))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kw", CONV_CASES + [{"stride": (2, 1), "padding": (0, 2), "dilation": (1, 2)}])
def test_conv2d(kw, dtype):
    torch = _torch()
    kw = {"kernel_size": 3, **kw}
    check_layer(torch.nn.Conv2d(4, 8, **kw), nn.Conv2d(4, 8, **kw), _randn(2, 4, 7, 6), dtype=dtype)


def test_conv2d_unbatched():
    torch = _torch()
    check_layer(torch.nn.Conv2d(3, 2, 3), nn.Conv2d(3, 2, 3), _randn(3, 5, 5))


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1, "output_padding": 1},
                                {"groups": 2, "dilation": 2, "bias": False}, {"stride": (2, 3), "padding": (1, 0)}])
def test_conv_transpose2d(kw):
    torch = _torch()
    check_layer(torch.nn.ConvTranspose2d(4, 6, 3, **kw), nn.ConvTranspose2d(4, 6, 3, **kw), _randn(2, 4, 5, 4))


def test_conv_transpose_output_size():
    torch = _torch()
    tl, jl = torch.nn.ConvTranspose2d(2, 3, 3, stride=(2, 3), padding=1), nn.ConvTranspose2d(2, 3, 3, stride=(2, 3),
                                                                                              padding=1)
    for size in [(8, 12), (7, 10), [2, 3, 8, 11]]:
        got = check_layer(tl, jl, _randn(2, 2, 4, 4), call=lambda layer, x, size=size: layer(x, output_size=size))
        assert tuple(got[0].shape[2:]) == tuple(size[-2:])
    check_layer(torch.nn.ConvTranspose1d(2, 3, 3, stride=2), nn.ConvTranspose1d(2, 3, 3, stride=2), _randn(2, 4),
                call=lambda layer, x: layer(x, output_size=[10]))
    with pytest.raises(ValueError, match=r"valid sizes range from \[7, 10\] to \[8, 12\]"):
        jl(tj.randn(2, 2, 4, 4), output_size=(9, 10))


@pytest.mark.parametrize("make, kw", [
    ("MaxPool2d", {"kernel_size": 2}),
    ("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("MaxPool2d", {"kernel_size": (2, 3), "dilation": 2, "ceil_mode": True}),
    ("AvgPool2d", {"kernel_size": 2}),
    ("AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ("AvgPool2d", {"kernel_size": 3, "stride": 2, "ceil_mode": True, "divisor_override": 4}),
    ("AdaptiveAvgPool2d", {"output_size": (3, 2)}),
    ("AdaptiveAvgPool2d", {"output_size": 1}),
    ("AdaptiveAvgPool2d", {"output_size": (None, 4)}),
])
def test_pools(make, kw):
    torch = _torch()
    tl, jl = getattr(torch.nn, make)(**kw), getattr(nn, make)(**kw)
    check_layer(tl, jl, _randn(2, 3, 7, 9))
    assert repr(jl) == repr(tl)


# ---- normalization -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                         ("BatchNorm2d", (4, 3, 5, 2))])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batch_norm_training_steps_then_eval(make, shape, momentum):
    torch = _torch()
    tl = getattr(torch.nn, make)(3, momentum=momentum).double()
    jl = getattr(nn, make)(3, momentum=momentum).double()
    with torch.no_grad():  # non-trivial affine parameters
        tl.weight.uniform_(0.5, 1.5)
        tl.bias.uniform_(-0.5, 0.5)
    for step in range(3):
        check_layer(tl, jl, _randn(*shape, seed=step) * 2 + step, seed=step)
        tl.zero_grad()
        jl.zero_grad()
    # Run a few steps from the same starting stats, then compare the stats each layer accumulated.
    copy_weights(tl, jl)
    for step in range(3):
        x = _randn(*shape, seed=10 + step) * (step + 1) + step
        tl(torch.tensor(x))
        jl(tj.tensor(x))
    for name, buf in tl.named_buffers():
        jbuf = dict(jl.named_buffers())[name]
        assert jbuf.dtype.name == str(buf.dtype).split(".")[-1], name
        _close(jbuf, buf, 1e-10, name)
    tl.eval()
    jl.eval()
    assert not jl.training
    check_layer(tl, jl, _randn(*shape, seed=20))


@pytest.mark.parametrize("kw", [{"affine": False}, {"track_running_stats": False}])
def test_batch_norm_without_affine_or_stats(kw):
    torch = _torch()
    tl, jl = torch.nn.BatchNorm2d(3, **kw), nn.BatchNorm2d(3, **kw)
    check_layer(tl, jl, _randn(4, 3, 2, 2))
    tl.eval()
    jl.eval()
    check_layer(tl, jl, _randn(4, 3, 2, 2, seed=3))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape, kw", [((4, 5), {}), ((3, 4, 5), {"eps": 1e-3}), ((2, 3, 4, 5), {"bias": False}),
                                       ((2, 3, 4, 5), {"elementwise_affine": False})])
def test_layer_norm(shape, kw, dtype):
    torch = _torch()
    normalized = shape[-1] if len(shape) < 4 else shape[-2:]
    tl, jl = torch.nn.LayerNorm(normalized, **kw), nn.LayerNorm(normalized, **kw)
    if tl.weight is not None:
        with torch.no_grad():
            tl.weight.uniform_(0.5, 1.5)
    check_layer(tl, jl, _randn(*shape) * 3 + 1, dtype=dtype)
    assert repr(jl) == repr(tl)


@pytest.mark.parametrize("groups, shape, kw", [(2, (3, 6, 4), {}), (3, (2, 6, 2, 3), {"eps": 1e-3}),
                                               (6, (2, 6, 5), {"affine": False}), (1, (2, 6), {})])
def test_group_norm(groups, shape, kw):
    torch = _torch()
    tl, jl = torch.nn.GroupNorm(groups, 6, **kw), nn.GroupNorm(groups, 6, **kw)
    if tl.weight is not None:
        with torch.no_grad():
            tl.weight.uniform_(0.5, 1.5)
            tl.bias.uniform_(-1, 1)
    check_layer(tl, jl, _randn(*shape) * 2 - 1)
    assert repr(jl) == repr(tl)


def test_norm_reprs_match_torch():
    torch = _torch()
    for args, kw in [((3,), {}), ((3,), {"momentum": None, "affine": False}), ((3,), {"track_running_stats": False})]:
        assert repr(nn.BatchNorm1d(*args, **kw)) == repr(torch.nn.BatchNorm1d(*args, **kw))
        assert repr(nn.BatchNorm2d(*args, **kw)) == repr(torch.nn.BatchNorm2d(*args, **kw))


# ---- dropout, embedding, activations, reshaping -----------------------------------------------------------


def test_dropout_statistics_and_scaling():
    tj.manual_seed(0)
    x = tj.ones(200, 500)
    for p in (0.2, 0.5, 0.8):
        y = nn.Dropout(p)(x).numpy()
        kept = y != 0
        assert abs(kept.mean() - (1 - p)) < 0.01, p
        np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    d = nn.Dropout(0.5)
    assert nn.Dropout(0.0)(x).numpy().min() == 1
    assert np.all(nn.Dropout(1.0)(x).numpy() == 0)
    d.eval()
    assert d(x) is x or np.array_equal(d(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_dropout_gradient_uses_the_same_mask():
    tj.manual_seed(1)
    x = tj.randn(50, 40, requires_grad=True)
    y = nn.Dropout(0.3)(x)
    y.sum().backward()
    mask = y.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask / 0.7, rtol=1e-6)


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(padding_idx):
    torch = _torch()
    tl, jl = torch.nn.Embedding(7, 4, padding_idx=padding_idx), nn.Embedding(7, 4, padding_idx=padding_idx)
    assert jl.padding_idx == tl.padding_idx
    idx = np.array([[0, 2, 6, 2], [1, 6, 3, 2]])
    check_layer(tl, jl, idx)
    if padding_idx is not None:
        assert np.all(jl.weight.grad.numpy()[padding_idx] == 0)
        assert np.all(nn.Embedding(7, 4, padding_idx=padding_idx).weight.detach().numpy()[padding_idx] == 0)
    assert repr(jl) == repr(tl)


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm_renormalizes_looked_up_rows(norm_type):
    torch = _torch()
    tl = torch.nn.Embedding(6, 3, max_norm=1.5, norm_type=norm_type)
    jl = nn.Embedding(6, 3, max_norm=1.5, norm_type=norm_type)
    idx = np.array([[0, 2], [2, 5]])
    check_layer(tl, jl, idx)
    _close(jl.weight, tl.weight, 1e-10, "weight after renormalization")  # rows 1, 3, 4 untouched
    assert repr(jl) == repr(tl)
    with pytest.raises(NotImplementedError, match="scale_grad_by_freq"):
        nn.Embedding(6, 3, scale_grad_by_freq=True)


ACTIVATIONS = [
    ("ReLU", (), {}), ("LeakyReLU", (0.2,), {}), ("GELU", (), {}), ("GELU", (), {"approximate": "tanh"}),
    ("SiLU", (), {}), ("ELU", (), {"alpha": 0.7}), ("Softplus", (), {}), ("Softplus", (2.0, 3.0), {}),
    ("Softplus", (), {"beta": 0.5, "threshold": 1.0}), ("Sigmoid", (), {}), ("Tanh", (), {}), ("Softmax", (1,), {}),
    ("Softmax", (), {"dim": -1}), ("LogSoftmax", (1,), {}), ("LogSoftmax", (), {"dim": 0}), ("ReLU6", (), {}),
    ("Hardtanh", (-2.0, 3.0), {}), ("SELU", (), {}), ("Mish", (), {}), ("LogSigmoid", (), {}), ("Softmin", (2,), {}),
    ("GLU", (), {"dim": 1}),
]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name, args, kw", ACTIVATIONS)
def test_activations(name, args, kw, dtype):
    torch = _torch()
    tl, jl = getattr(torch.nn, name)(*args, **kw), getattr(nn, name)(*args, **kw)
    x = _randn(3, 4, 5) * 4
    x[0, 0, :3] = [0.0, 20.0, -30.0]  # the kinks and the far tails
    check_layer(tl, jl, x, dtype=dtype)
    assert repr(jl) == repr(tl)


def test_inplace_activation_modules():
    torch = _torch()

    def build(lib):
        acts = [lib.nn.ReLU(True), lib.nn.LeakyReLU(0.1, True), lib.nn.ELU(inplace=True), lib.nn.SiLU(True),
                lib.nn.Hardtanh(-1.5, 1.5, True), lib.nn.ReLU6(inplace=True), lib.nn.SELU(True)]
        return lib.nn.Sequential(*(m for a in acts for m in (lib.nn.Linear(4, 4), a)))

    tl, jl = build(torch), build(tj)
    check_layer(tl, jl, _randn(3, 4) * 3)
    assert repr(jl) == repr(tl)


def test_flatten_unflatten_identity():
    torch = _torch()
    check_layer(torch.nn.Flatten(), nn.Flatten(), _randn(2, 3, 4, 5))
    check_layer(torch.nn.Flatten(0, 2), nn.Flatten(0, 2), _randn(2, 3, 4, 5))
    check_layer(torch.nn.Unflatten(1, (3, 4)), nn.Unflatten(1, (3, 4)), _randn(2, 12, 5))
    check_layer(torch.nn.Identity(54, unused=True), nn.Identity(54, unused=True), _randn(2, 3))
    for tl, jl in [(torch.nn.Flatten(), nn.Flatten()), (torch.nn.Unflatten(1, (3, 4)), nn.Unflatten(1, (3, 4))),
                   (torch.nn.Identity(), nn.Identity())]:
        assert repr(jl) == repr(tl)


def test_containers():
    torch = _torch()

    def build(lib):
        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.seq = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.Tanh())
                self.blocks = lib.nn.ModuleList([lib.nn.Linear(6, 6) for _ in range(2)])
                self.heads = lib.nn.ModuleDict({"b": lib.nn.Linear(6, 2), "a": lib.nn.Linear(6, 3)})

            def forward(self, x):
                x = self.seq(x)
                for b in self.blocks:
                    x = b(x).relu()
                return self.heads["b"](x), self.heads["a"](x)

        return Net()

    tnet, jnet = build(torch), build(tj)
    check_layer(tnet, jnet, _randn(5, 4))
    assert repr(jnet) == repr(tnet)
    assert list(jnet.heads.keys()) == ["b", "a"]
    assert len(jnet.blocks) == 2 and len(jnet.seq) == 2 and isinstance(jnet.seq[-1], nn.Tanh)
    assert [type(m).__name__ for m in jnet.seq[:1]] == ["Linear"]


# ---- attention and transformer ---------------------------------------------------------------------------


def _masks(L, S, N, heads):
    rng = np.random.default_rng(5)
    bool_mask = np.triu(np.ones((L, S), dtype=bool), 1)
    float_mask = rng.standard_normal((L, S))
    per_head = rng.standard_normal((N * heads, L, S))
    padding = np.zeros((N, S), dtype=bool)
    padding[0, -2:] = True
    return bool_mask, float_mask, per_head, padding


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "per_head", "padding", "bool+padding"])
@pytest.mark.parametrize("need_weights, average", [(True, True), (True, False), (False, True)])
def test_multihead_attention(batch_first, mask_kind, need_weights, average):
    torch = _torch()
    E, H, L, S, N = 8, 2, 4, 5, 3
    tl = torch.nn.MultiheadAttention(E, H, batch_first=batch_first)
    jl = nn.MultiheadAttention(E, H, batch_first=batch_first)
    with torch.no_grad():
        tl.in_proj_bias.uniform_(-0.5, 0.5)
        tl.out_proj.bias.uniform_(-0.5, 0.5)
    shape = (lambda n: (N, n, E)) if batch_first else (lambda n: (n, N, E))
    bool_mask, float_mask, per_head, padding = _masks(L, S, N, H)
    kw = {"need_weights": need_weights, "average_attn_weights": average}
    if "bool" in mask_kind:
        kw["attn_mask"] = bool_mask
    if mask_kind == "float":
        kw["attn_mask"] = float_mask
    if mask_kind == "per_head":
        kw["attn_mask"] = per_head
    if "padding" in mask_kind:
        kw["key_padding_mask"] = padding
    check_layer(tl, jl, _randn(*shape(L)), _randn(*shape(S), seed=2), _randn(*shape(S), seed=3), **kw)


def test_multihead_attention_unbatched_and_self_attention():
    torch = _torch()
    tl, jl = torch.nn.MultiheadAttention(6, 3), nn.MultiheadAttention(6, 3)
    x = _randn(4, 6)
    check_layer(tl, jl, x, x, x)
    padding = np.array([False, False, True, False])
    check_layer(tl, jl, x, _randn(4, 6, seed=2), _randn(4, 6, seed=3), key_padding_mask=padding)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_layer(norm_first, activation, batch_first):
    torch = _torch()
    args = (8, 2)
    kw = {"dim_feedforward": 16, "activation": activation, "batch_first": batch_first, "norm_first": norm_first}
    tl, jl = torch.nn.TransformerEncoderLayer(*args, **kw), nn.TransformerEncoderLayer(*args, **kw)
    tl.eval()
    jl.eval()
    mask = np.triu(np.ones((5, 5), dtype=bool), 1)
    padding = np.zeros((3, 5), dtype=bool)
    padding[1, -1] = True
    check_layer(tl, jl, _randn(3, 5, 8) if batch_first else _randn(5, 3, 8), src_mask=mask,
                src_key_padding_mask=padding)
    assert repr(jl) == repr(tl)


def test_transformer_encoder_deep_copies_its_layer():
    torch = _torch()

    def build(lib, **kw):
        layer = lib.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, activation="gelu")
        return layer, lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(8), **kw)

    (_, tenc), (jlayer, jenc) = build(torch, enable_nested_tensor=False), build(tj)
    assert jenc.layers[0] is not jlayer and jenc.layers[0].linear1.weight is not jenc.layers[1].linear1.weight
    check_layer(tenc, jenc, _randn(2, 5, 8), mask=np.triu(np.ones((5, 5), dtype=bool), 1), is_causal=True)
    assert repr(jenc) == repr(tenc)


# ---- recurrent layers -------------------------------------------------------------------------------------


RNN_CASES = [
    {},
    {"batch_first": True},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"bias": False},
]


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("kw", RNN_CASES)
@pytest.mark.parametrize("given_state", [False, True])
def test_recurrent(kind, kw, given_state):
    torch = _torch()
    tl, jl = getattr(torch.nn, kind)(3, 4, **kw), getattr(nn, kind)(3, 4, **kw)
    T, N = 5, 2
    x = _randn(N, T, 3) if kw.get("batch_first") else _randn(T, N, 3)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    states = [_randn(layers, N, 4, seed=7), _randn(layers, N, 4, seed=8)][:2 if kind == "LSTM" else 1]
    if given_state:
        check_layer(tl, jl, x, *states, call=lambda layer, x, *hs: layer(x, hs if kind == "LSTM" else hs[0]))
    else:
        check_layer(tl, jl, x)
    assert repr(jl) == repr(tl)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("given_state", [False, True])
def test_recurrent_unbatched(kind, given_state):
    torch = _torch()
    tl, jl = getattr(torch.nn, kind)(3, 4, num_layers=2), getattr(nn, kind)(3, 4, num_layers=2)
    states = [_randn(2, 4, seed=7), _randn(2, 4, seed=8)][:2 if kind == "LSTM" else 1]
    if given_state:
        check_layer(tl, jl, _randn(5, 3), *states, call=lambda layer, x, *hs: layer(x, hs if kind == "LSTM" else hs[0]))
    else:
        check_layer(tl, jl, _randn(5, 3))


def test_rnn_relu_nonlinearity():
    torch = _torch()
    check_layer(torch.nn.RNN(3, 4, nonlinearity="relu"), nn.RNN(3, 4, nonlinearity="relu"), _randn(6, 2, 3))


# ---- default initialization (torch-free) ---------------------------------------------------------------------


def _uniform_like(w, bound):
    """Values within +-bound that fill the interval like a uniform sample."""
    w = w.detach().numpy().astype(np.float64).ravel()
    n, std = w.size, bound / math.sqrt(3)
    assert np.all(np.abs(w) <= bound * (1 + 1e-6)), (np.abs(w).max(), bound)
    assert np.abs(w).max() > (1 - 8 / n) * bound
    assert abs(w.mean()) < 5 * std / math.sqrt(n)  # five standard errors
    assert abs(w.std() - std) < 5 * 0.45 * std / math.sqrt(n)  # a uniform sample sd has sd ~0.45 std / sqrt(n)
    if n >= 1000:
        hist, _ = np.histogram(w, bins=4, range=(-bound, bound))
        assert hist.min() > 0.8 * hist.mean(), hist


def test_linear_and_conv_default_init():
    tj.manual_seed(0)
    lin = nn.Linear(256, 128)
    _uniform_like(lin.weight, 1 / math.sqrt(256))
    _uniform_like(lin.bias, 1 / math.sqrt(256))
    conv = nn.Conv2d(16, 64, 3)
    _uniform_like(conv.weight, 1 / math.sqrt(16 * 9))
    _uniform_like(conv.bias, 1 / math.sqrt(16 * 9))
    convt = nn.ConvTranspose2d(32, 16, 3)  # fan_in is weight.shape[1] * k * k, as in PyTorch
    _uniform_like(convt.weight, 1 / math.sqrt(16 * 9))
    bil = nn.Bilinear(64, 8, 32)
    _uniform_like(bil.weight, 1 / math.sqrt(64))
    assert lin.weight.dtype == tj.float32 and lin.weight.requires_grad


def test_embedding_and_norm_default_init():
    tj.manual_seed(0)
    w = nn.Embedding(1000, 64).weight.detach().numpy()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    bn = nn.BatchNorm2d(5)
    assert np.all(bn.weight.detach().numpy() == 1) and np.all(bn.bias.detach().numpy() == 0)
    assert np.all(bn.running_mean.numpy() == 0) and np.all(bn.running_var.numpy() == 1)
    assert bn.num_batches_tracked.dtype == tj.int64 and bn.num_batches_tracked.item() == 0
    ln = nn.LayerNorm((3, 4))
    assert ln.weight.shape == (3, 4) and np.all(ln.weight.detach().numpy() == 1)


def test_rnn_default_init():
    tj.manual_seed(0)
    for kind in (nn.RNN, nn.LSTM, nn.GRU):
        rnn = kind(32, 64, num_layers=2, bidirectional=True)
        for name, p in rnn.named_parameters():
            if name.startswith("weight"):
                _uniform_like(p, 1 / math.sqrt(64))
            else:
                assert np.all(np.abs(p.detach().numpy()) <= 1 / 8)


def test_multihead_attention_default_init():
    tj.manual_seed(0)
    mha = nn.MultiheadAttention(64, 4)
    _uniform_like(mha.in_proj_weight, math.sqrt(6 / (64 + 3 * 64)))
    _uniform_like(mha.out_proj.weight, 1 / math.sqrt(64))
    assert np.all(mha.in_proj_bias.detach().numpy() == 0) and np.all(mha.out_proj.bias.detach().numpy() == 0)
    assert [n for n, _ in mha.named_parameters()] == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                      "out_proj.bias"]


@pytest.mark.parametrize("name, args, kw, shape", [
    ("RNN", (3, 4), {"num_layers": 2, "bidirectional": True}, (5, 2, 3)),
    ("LSTM", (3, 4), {"num_layers": 2, "bidirectional": True}, (5, 2, 3)),
    ("GRU", (3, 4), {"num_layers": 2, "batch_first": True}, (2, 5, 3)),
    ("TransformerEncoderLayer", (8, 2, 16), {"norm_first": True}, (4, 3, 8)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("GroupNorm", (2, 4), {}, (3, 4, 5)),
])
def test_float32_layers(name, args, kw, shape):
    torch = _torch()
    tl, jl = getattr(torch.nn, name)(*args, **kw), getattr(nn, name)(*args, **kw)
    if name.startswith("Transformer"):
        tl.eval()
        jl.eval()
    check_layer(tl, jl, _randn(*shape) * 2 + 1, dtype="float32")
