"""The Module API against torch.nn.Module: traversal order and de-duplication, modes, zero_grad,
dtype conversion, hooks, repr, state dicts (strict errors, save/load round trips, safetensors
files from torch) and the error messages for inputs of the wrong shape."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn as nn


def _torch():
    return pytest.importorskip("torch")


def _shared_model(lib):
    """A nested model in which one Linear appears twice (under `enc.0` and `tied`)."""

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            shared = lib.nn.Linear(4, 4)
            self.enc = lib.nn.Sequential(shared, lib.nn.ReLU(), lib.nn.BatchNorm1d(4))
            self.heads = lib.nn.ModuleList([lib.nn.Linear(4, 2), lib.nn.Linear(4, 3, bias=False)])
            self.tied = shared
            self.register_buffer("scale", lib.ones(1))
            self.register_buffer("cache", lib.zeros(2), persistent=False)

        def forward(self, x):
            return self.heads[0](self.tied(self.enc(x))) * self.scale

    return Net()


def _nested_model(lib):
    return lib.nn.Sequential(
        lib.nn.Conv2d(3, 8, 3, padding=1), lib.nn.BatchNorm2d(8), lib.nn.ReLU(), lib.nn.MaxPool2d(2),
        lib.nn.Sequential(lib.nn.Conv2d(8, 8, 3, stride=2, groups=2, bias=False), lib.nn.Dropout(0.25)),
        lib.nn.AdaptiveAvgPool2d(1), lib.nn.Flatten(), lib.nn.Linear(8, 10), lib.nn.LSTM(10, 6, num_layers=2),
        lib.nn.ModuleDict({"norm": lib.nn.LayerNorm(6), "act": lib.nn.GELU()}),
    )


# ---- traversal (torch decides the order) --------------------------------------------------------------------


def test_traversal_order_and_dedup_match_torch():
    torch = _torch()
    t, j = _shared_model(torch), _shared_model(tj)
    for attr in ("named_parameters", "named_buffers", "named_modules", "named_children"):
        assert [n for n, _ in getattr(j, attr)()] == [n for n, _ in getattr(t, attr)()], attr
    assert list(j.state_dict()) == list(t.state_dict())
    assert [n for n, _ in j.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in t.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in j.named_modules(remove_duplicate=False)] == \
        [n for n, _ in t.named_modules(remove_duplicate=False)]
    assert [n for n, _ in j.heads.named_parameters(prefix="h")] == [n for n, _ in t.heads.named_parameters(prefix="h")]
    assert [n for n, _ in j.named_parameters(recurse=False)] == []
    assert len(list(j.parameters())) == 7 and len(list(j.modules())) == 8
    assert j.get_submodule("heads.1") is j.heads[1] and j.get_parameter("enc.0.bias") is j.tied.bias


def test_apply_visits_children_first_like_torch():
    torch = _torch()
    seen_t, seen_j = [], []
    _nested_model(torch).apply(lambda m: seen_t.append(type(m).__name__))
    _nested_model(tj).apply(lambda m: seen_j.append(type(m).__name__))
    assert seen_j == seen_t


def test_repr_matches_torch():
    torch = _torch()
    assert repr(_nested_model(tj)) == repr(_nested_model(torch))
    assert repr(_shared_model(tj)) == repr(_shared_model(torch))


# ---- names of parameters and buffers --------------------------------------------------------------------------


NAMED = [
    ("Linear", (3, 2), {}), ("Linear", (3, 2), {"bias": False}), ("Bilinear", (2, 3, 4), {}),
    ("Conv1d", (2, 4, 3), {}), ("Conv2d", (2, 4, 3), {"bias": False}), ("ConvTranspose2d", (2, 4, 3), {}),
    ("BatchNorm1d", (3,), {}), ("BatchNorm2d", (3,), {"affine": False}),
    ("BatchNorm2d", (3,), {"track_running_stats": False}), ("BatchNorm1d", (3,), {"bias": False}),
    ("LayerNorm", (3,), {}), ("LayerNorm", (3,), {"bias": False}), ("GroupNorm", (2, 4), {}),
    ("GroupNorm", (2, 4), {"bias": False}),
    ("Embedding", (5, 2), {}), ("MultiheadAttention", (4, 2), {}), ("MultiheadAttention", (4, 2), {"bias": False}),
    ("TransformerEncoderLayer", (4, 2, 8), {}), ("RNN", (2, 3), {"num_layers": 2, "bidirectional": True}),
    ("LSTM", (2, 3), {"num_layers": 2}), ("GRU", (2, 3), {"bidirectional": True, "bias": False}),
]


@pytest.mark.parametrize("name, args, kw", NAMED)
def test_parameter_and_buffer_names_match_torch(name, args, kw):
    torch = _torch()
    tl, jl = getattr(torch.nn, name)(*args, **kw), getattr(nn, name)(*args, **kw)
    assert [n for n, _ in jl.named_parameters()] == [n for n, _ in tl.named_parameters()]
    assert list(jl.state_dict()) == list(tl.state_dict())
    assert [n for n, _ in jl.named_buffers()] == [n for n, _ in tl.named_buffers()]
    for (n, p), (_, q) in zip(jl.named_parameters(), tl.named_parameters()):
        assert tuple(p.shape) == tuple(q.shape), n
        assert isinstance(p, nn.Parameter)
    assert repr(jl) == repr(tl)


# ---- modes, gradients, conversion (torch-free) ---------------------------------------------------------------


def test_train_eval_propagate():
    m = _nested_model(tj)
    assert m.eval() is m
    assert all(not s.training for s in m.modules())
    m[4].train()
    assert m[4][1].training and not m[1].training
    m.train()
    assert all(s.training for s in m.modules())
    with pytest.raises(ValueError, match="boolean"):
        m.train("no")


def test_zero_grad_set_to_none_or_zero():
    m = nn.Linear(3, 2)
    m(tj.randn(4, 3)).sum().backward()
    grad = m.weight.grad
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is not None and np.all(m.weight.grad.numpy() == 0) and m.weight.grad.grad_fn is None
    assert m.weight.grad is grad or np.all(grad.numpy() == 0)
    m(tj.randn(4, 3)).sum().backward()
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_to_dtype_keeps_parameter_identity():
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    w, rm = m[0].weight, m[1].running_mean
    before = w.detach().numpy().copy()
    assert m.to(tj.float64) is m
    assert m[0].weight is w and isinstance(w, nn.Parameter) and w.requires_grad and w.dtype == tj.float64
    np.testing.assert_array_equal(w.detach().numpy(), before)
    assert m[1].running_mean.dtype == tj.float64 and rm.dtype == tj.float32
    assert m[1].num_batches_tracked.dtype == tj.int64  # integer buffers keep their dtype
    m.float()
    assert m[0].weight is w and w.dtype == tj.float32
    assert m.half()[0].weight.dtype == tj.float16
    with pytest.raises(TypeError, match="floating point"):
        m.to(tj.int32)
    out = m.double()(tj.randn(4, 3, dtype=tj.float64))
    assert out.dtype == tj.float64


def test_register_buffer_and_parameter():
    m = _shared_model(tj)
    assert "cache" not in m.state_dict() and "scale" in m.state_dict()
    assert [n for n, _ in m.named_buffers()][:2] == ["scale", "cache"]
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", tj.ones(1))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("p", tj.ones(1))
    m.register_parameter("extra", None)
    assert "extra" not in dict(m.named_parameters())
    m.scale = tj.full((1,), 2.0)  # assigning a tensor to a buffer name replaces the buffer
    assert m._buffers["scale"].item() == 2.0
    lin = m.heads[0]
    with pytest.raises(TypeError, match="as parameter 'weight'"):  # a plain tensor is not a Parameter
        lin.weight = tj.ones(2, 4)
    assert isinstance(lin.weight, nn.Parameter)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert str(lin.weight).startswith("Parameter containing:\ntensor(")
    with pytest.raises(TypeError, match="cannot assign 'int' as child module"):
        m.enc = 3
    del m.tied
    assert "tied" not in dict(m.named_children())


def test_forward_hooks_and_pre_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(tuple(out.shape)))
    h3 = m.register_forward_hook(lambda mod, args, out: out + 100)
    y = m(tj.randn(3, 2))
    np.testing.assert_allclose(y.detach().numpy(), np.broadcast_to(m.bias.detach().numpy() + 100, (3, 2)), rtol=1e-6)
    assert calls == [(3, 2)]
    for h in (h1, h2, h3):
        h.remove()
    x = tj.randn(3, 2)
    np.testing.assert_allclose(m(x).detach().numpy(), nn.functional.linear(x, m.weight, m.bias).detach().numpy())
    assert calls == [(3, 2)]
    h1.remove()  # removing twice is harmless


def test_deepcopy_copies_parameters_and_keeps_sharing():
    import copy

    m = _shared_model(tj)
    c = copy.deepcopy(m)
    assert c.tied is c.enc[0] and c.tied.weight is c.enc[0].weight  # shared stays shared
    assert c.tied.weight is not m.tied.weight and isinstance(c.tied.weight, nn.Parameter)
    np.testing.assert_array_equal(c.tied.weight.detach().numpy(), m.tied.weight.detach().numpy())
    with tj.no_grad():
        c.tied.weight.fill_(0)
    assert not np.all(m.tied.weight.detach().numpy() == 0)


# ---- state dicts ---------------------------------------------------------------------------------------------


def test_load_state_dict_strict_errors_match_torch():
    torch = _torch()
    t, j = torch.nn.Linear(3, 2), nn.Linear(3, 2)
    bad = {"weight": np.zeros((3, 3), np.float32), "extra": np.zeros(1, np.float32)}
    with pytest.raises(RuntimeError) as want:
        t.load_state_dict({k: torch.tensor(v) for k, v in bad.items()})
    with pytest.raises(RuntimeError) as got:
        j.load_state_dict({k: tj.tensor(v) for k, v in bad.items()})
    assert str(got.value) == str(want.value).replace("torch.Size([3, 3])", "[3, 3]").replace("torch.Size([2, 3])",
                                                                                              "[2, 3]")
    msg = str(got.value)
    assert 'Missing key(s) in state_dict: "bias"' in msg and 'Unexpected key(s) in state_dict: "extra"' in msg
    assert "size mismatch for weight" in msg and "[3, 3]" in msg and "[2, 3]" in msg


def test_load_state_dict_non_strict_returns_keys():
    torch = _torch()
    t, j = _shared_model(torch), _shared_model(tj)
    sd = {k: v for k, v in t.state_dict().items() if not k.startswith("heads.1")}
    sd["junk.weight"] = torch.zeros(1)
    want = t.load_state_dict(sd, strict=False)
    got = j.load_state_dict({k: tj.tensor(v.numpy()) for k, v in sd.items()}, strict=False)
    assert got.missing_keys == want.missing_keys and got.unexpected_keys == want.unexpected_keys
    assert repr(got) == repr(want)
    assert repr(j.load_state_dict(j.state_dict())) == "<All keys matched successfully>"
    np.testing.assert_array_equal(j.enc[0].weight.detach().numpy(), t.enc[0].weight.detach().numpy())


def test_state_dict_is_detached_and_load_copies_values():
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    assert sd["weight"].grad_fn is None and not sd["weight"].requires_grad
    w = m.weight
    m.load_state_dict({"weight": tj.ones(2, 3), "bias": tj.zeros(2)})
    assert m.weight is w and w.requires_grad and np.all(w.detach().numpy() == 1)


def test_save_load_round_trip_with_all_buffer_dtypes(tmp_path):
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    m.register_buffer("half", tj.tensor([1.5, -2.25], dtype=tj.float16))
    m.register_buffer("mask", tj.tensor([True, False, True]))
    m.register_buffer("ids", tj.tensor([[1, 2**40], [-3, 0]], dtype=tj.int64))
    m(tj.randn(4, 3))  # num_batches_tracked and the running stats move off their defaults
    path = tmp_path / "m.safetensors"
    tj.save(m.state_dict(), path)
    loaded = tj.load(path)
    assert list(loaded) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert loaded[k].dtype == v.dtype, k
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy(), err_msg=k)
    fresh = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    fresh.register_buffer("half", tj.zeros(2, dtype=tj.float16))
    fresh.register_buffer("mask", tj.zeros(3, dtype=tj.bool))
    fresh.register_buffer("ids", tj.zeros(2, 2, dtype=tj.int64))
    fresh.load_state_dict(loaded)
    assert fresh.ids.dtype == tj.int64 and fresh.ids.numpy()[0, 1] == 2**40
    assert fresh[1].num_batches_tracked.item() == 1
    x = tj.randn(5, 3)
    np.testing.assert_array_equal(fresh.eval()(x).detach().numpy(), m.eval()(x).detach().numpy())


def test_load_state_dict_from_torch_safetensors_file(tmp_path):
    torch = _torch()
    safetensors_torch = pytest.importorskip("safetensors.torch")
    t, j = _nested_model(torch), _nested_model(tj)
    t[:8](torch.randn(2, 3, 8, 8))  # running stats off their defaults
    path = os.fspath(tmp_path / "torch.safetensors")
    safetensors_torch.save_file({k: v.contiguous() for k, v in t.state_dict().items()}, path)
    sd = tj.load(path)
    assert set(sd) == set(t.state_dict())
    j.load_state_dict(sd)
    t.eval()
    j.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want, _ = t[:9](torch.tensor(x))  # up to the LSTM (a ModuleDict has no forward)
    got, _ = j[:9](tj.tensor(x))
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)


# ---- bad input ------------------------------------------------------------------------------------------------


def test_linear_wrong_input_names_layer_and_shape():
    with pytest.raises(RuntimeError, match=r"Linear\(in_features=784, out_features=10, bias=True\).*\(64, 100\)"):
        nn.Linear(784, 10)(tj.randn(64, 100))


def test_conv_channel_mismatch_names_layer():
    with pytest.raises(RuntimeError, match=r"Conv2d\(3, 8, kernel_size=\(3, 3\).*\[2, 4, 8, 8\].*3"):
        nn.Conv2d(3, 8, 3)(tj.randn(2, 4, 8, 8))
    with pytest.raises(RuntimeError, match=r"Conv1d\(2, 4"):
        nn.Conv1d(2, 4, 3)(tj.randn(2, 3, 8))


def test_other_layers_reject_bad_shapes():
    with pytest.raises(RuntimeError, match=r"BatchNorm2d\(4.*got input with 3 channels"):
        nn.BatchNorm2d(4)(tj.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(4)(tj.randn(2, 4))
    with pytest.raises(RuntimeError, match=r"layer_norm: expected input with shape \[\*, 5\]"):
        nn.LayerNorm(5)(tj.randn(2, 4))
    with pytest.raises(RuntimeError, match=r"LSTM\(3, 4\).*input_size=3"):
        nn.LSTM(3, 4)(tj.randn(5, 2, 7))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 4\)"):
        nn.GRU(3, 4)(tj.randn(5, 2, 3), tj.zeros(1, 3, 4))
    with pytest.raises(IndexError, match="index out of range"):
        nn.Embedding(4, 2)(tj.tensor([1, 4]))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(AssertionError, match="divisible"):
        nn.MultiheadAttention(6, 4)
