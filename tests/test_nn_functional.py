"""tracejit.nn.functional, the loss modules, nn.init and nn.utils against torch: values and
input gradients, plus torch-free checks of the error messages and of the initializers' statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nn_helpers import DTYPES
from nn_helpers import close as _close
from nn_helpers import torch_or_skip as _torch

import tracejit as tj
import tracejit.nn as nn
import tracejit.nn.functional as F


def _randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def check_fn(fn, args, kwargs=None, dtype="float64", grad=True, seed=0):
    """`fn(lib, *tensors, **kwargs)` in torch and in tracejit: values, dtype and the gradient of every
    floating argument (arrays in `args` become tensors; others pass through) must agree."""
    torch = _torch()
    npdt, rtol = DTYPES[dtype]
    kwargs = kwargs or {}
    args = [a.astype(npdt) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]

    def tensors(lib):
        return [lib.tensor(a, requires_grad=grad and a.dtype.kind == "f") if isinstance(a, np.ndarray) else a
                for a in args]

    ts, js = tensors(torch), tensors(tj)
    kwargs = {k: v.astype(npdt) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for k, v in kwargs.items()}
    kt = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kj = {k: tj.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    want, got = fn(torch, *ts, **kt), fn(tj, *js, **kj)
    _close(got, want, rtol, "value")
    assert got.dtype.name == str(want.dtype).split(".")[-1]
    if not grad or not want.requires_grad:
        return got
    r = np.random.default_rng(seed).standard_normal(tuple(want.shape)).astype(npdt)
    (want * torch.tensor(r)).sum().backward()
    (got * tj.tensor(r)).sum().backward()
    for i, (t, j) in enumerate(zip(ts, js)):
        if getattr(t, "requires_grad", False):
            _close(j.grad, t.grad, rtol * 10, f"grad of argument {i}")
    return got


# ---- losses ------------------------------------------------------------------------------------------------


def _targets(shape, classes, seed=3):
    return np.random.default_rng(seed).integers(0, classes, shape)


def _probs(shape, seed=4):
    e = np.exp(_randn(*shape, seed=seed))
    return e / e.sum(1, keepdims=True)


REDUCTIONS = ["mean", "sum", "none"]
CE_CASES = [
    ("indices", {}),
    ("indices", {"ignore_index": 1}),
    ("indices", {"label_smoothing": 0.2}),
    ("indices", {"weight": True}),
    ("indices", {"weight": True, "label_smoothing": 0.1, "ignore_index": 2}),
    ("probs", {}),
    ("probs", {"label_smoothing": 0.3}),
    ("probs", {"weight": True}),
    ("probs", {"weight": True, "label_smoothing": 0.1}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_kind, kw", CE_CASES)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3), (4,)], ids=["NC", "NCd1d2", "C"])
def test_cross_entropy(shape, target_kind, kw, reduction):
    kw = dict(kw, reduction=reduction)
    C = shape[1] if len(shape) > 1 else shape[0]
    if kw.pop("weight", False):
        kw["weight"] = np.linspace(0.5, 2.0, C)
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    target = _targets(tshape, C) if target_kind == "indices" else _probs(shape if len(shape) > 1 else (1, C))
    if len(shape) == 1 and target_kind == "probs":
        target = target[0]
    if "ignore_index" in kw and target_kind == "indices" and target.ndim:
        target.flat[0] = kw["ignore_index"]
    check_fn(lambda lib, x, t, **k: lib.nn.CrossEntropyLoss(**k)(x, t), [_randn(*shape) * 2, target], kw)
    check_fn(lambda lib, x, t, **k: lib.nn.functional.cross_entropy(x, t, **k), [_randn(*shape) * 2, target], kw,
             dtype="float32")


def test_cross_entropy_all_targets_ignored_gives_nan_like_torch():
    torch = _torch()
    x, t = _randn(3, 4), np.full(3, -100)
    want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t))
    got = F.cross_entropy(tj.tensor(x), tj.tensor(t))
    assert math.isnan(want.item()) and math.isnan(got.item())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [{}, {"ignore_index": 0}, {"weight": True}, {"weight": True, "ignore_index": 2}])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4)])
def test_nll_loss(shape, kw, reduction):
    kw = dict(kw, reduction=reduction)
    if kw.pop("weight", False):
        kw["weight"] = np.array([0.3, 1.0, 2.5])
    target = _targets((shape[0],) + shape[2:], 3)
    check_fn(lambda lib, x, t, **k: lib.nn.NLLLoss(**k)(x.log_softmax(1), t), [_randn(*shape), target], kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, kw", [("MSELoss", {}), ("L1Loss", {}), ("SmoothL1Loss", {}),
                                      ("SmoothL1Loss", {"beta": 0.5}), ("SmoothL1Loss", {"beta": 0.0}),
                                      ("HuberLoss", {"delta": 0.7})])
def test_regression_losses(name, kw, reduction):
    x, y = _randn(4, 5), _randn(4, 5, seed=2)
    x[0, 0] = y[0, 0]  # a zero difference: the subgradient at the kink
    check_fn(lambda lib, a, b: getattr(lib.nn, name)(reduction=reduction, **kw)(a, b), [x, y])
    check_fn(lambda lib, a, b: getattr(lib.nn, name)(reduction=reduction, **kw)(a, b), [x, y], dtype="float32")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_loss(weighted, reduction):
    p = 1 / (1 + np.exp(-_randn(4, 3) * 2))
    t = (_randn(4, 3, seed=2) > 0).astype(np.float64)
    t[0, 0] = 0.3  # soft targets are allowed
    kw = {"reduction": reduction}
    if weighted:
        kw["weight"] = np.linspace(0.5, 1.5, 3)
    check_fn(lambda lib, a, b, **k: lib.nn.BCELoss(**k)(a, b), [p, t], kw)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_bce_loss_at_saturated_probabilities(dtype):
    """p = 0 or 1 (a saturated float32 sigmoid): finite loss and PyTorch's gradient (p - t) / max(p (1-p), 1e-12)."""
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 0.5, 1 - 1e-7])
    t = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 1.0])
    # The target goes without a gradient: at p = 0 or 1 PyTorch's target gradient is an unclamped +-inf.
    got = check_fn(lambda lib, a, target: lib.nn.functional.binary_cross_entropy(a, target, reduction="none"),
                   [p], {"target": t}, dtype=dtype)
    assert np.isfinite(got.detach().numpy()).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [{}, {"pos_weight": True}, {"weight": True}, {"pos_weight": True, "weight": True}])
def test_bce_with_logits_loss(kw, reduction):
    kw = dict(kw, reduction=reduction)
    if kw.pop("pos_weight", False):
        kw["pos_weight"] = np.array([0.5, 2.0, 3.0])
    if kw.pop("weight", False):
        kw["weight"] = np.linspace(0.5, 1.5, 12).reshape(4, 3)
    x = _randn(4, 3) * 10  # large logits: the stable formula matters
    t = (_randn(4, 3, seed=2) > 0).astype(np.float64)
    t[1, 1] = 0.25
    check_fn(lambda lib, a, b, **k: lib.nn.BCEWithLogitsLoss(**k)(a, b), [x, t], kw)
    check_fn(lambda lib, a, b, **k: lib.nn.functional.binary_cross_entropy_with_logits(a, b, **k), [x, t], kw,
             dtype="float32")


def test_cross_entropy_target_out_of_range_is_an_index_error():
    x = tj.randn(3, 5)
    with pytest.raises(IndexError, match=r"Target 5 is out of bounds"):
        F.cross_entropy(x, tj.tensor([0, 5, 1]))
    with pytest.raises(IndexError, match=r"Target -2 is out of bounds"):
        nn.CrossEntropyLoss()(x, tj.tensor([0, -2, 1]))
    with pytest.raises(IndexError, match="out of bounds"):
        nn.NLLLoss(ignore_index=7)(x, tj.tensor([0, 9, 7]))
    assert np.isfinite(nn.NLLLoss(ignore_index=7)(x, tj.tensor([0, 4, 7])).item())


def test_loss_shape_errors():
    with pytest.raises(ValueError, match=r"target size \(\[3, 2\]\) must be the same as input size \(\[3, 1\]\)"):
        nn.BCEWithLogitsLoss()(tj.randn(3, 1), tj.rand(3, 2))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        nn.BCELoss()(tj.tensor([1.5]), tj.tensor([1.0]))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")


# ---- attention, padding, interpolation ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"attn_mask": "bool"}, {"attn_mask": "float"},
                                {"scale": 0.3}, {"attn_mask": "bool_broadcast", "scale": 2.0}])
def test_scaled_dot_product_attention(kw, dtype):
    kw = dict(kw)
    L, S = 4, 6
    rng = np.random.default_rng(7)
    if kw.get("attn_mask") == "bool":
        m = rng.random((2, 3, L, S)) > 0.3
        m[..., 0] = True  # no fully masked rows
        kw["attn_mask"] = m
    elif kw.get("attn_mask") == "bool_broadcast":
        kw["attn_mask"] = np.tril(np.ones((L, S), dtype=bool))
    elif kw.get("attn_mask") == "float":
        kw["attn_mask"] = rng.standard_normal((L, S))
    if isinstance(kw.get("attn_mask"), np.ndarray) and kw["attn_mask"].dtype.kind == "f":
        kw["attn_mask"] = kw["attn_mask"].astype(DTYPES[dtype][0])
    check_fn(lambda lib, q, k, v, **a: lib.nn.functional.scaled_dot_product_attention(q, k, v, **a),
             [_randn(2, 3, L, 5), _randn(2, 3, S, 5, seed=2), _randn(2, 3, S, 7, seed=3)], kw, dtype=dtype)


@pytest.mark.parametrize("pad, mode", [
    ((1, 2), "constant"), ((1, 2, 0, 3), "constant"), ((-1, 2, 1, -2), "constant"), ((2, 0, 1, 1, 1, 0), "constant"),
    ((2, 1), "reflect"), ((1, 2, 2, 1), "reflect"), ((3, 0, 0, 2), "replicate"), ((1, 1), "replicate"),
    ((2, 3, 1, 0), "circular"), ((3, 1), "circular"),
])
def test_pad(pad, mode):
    shape = (2, 3, 4, 5) if mode == "constant" else (2, 3, 4, 5)[: len(pad) // 2 + 2]  # torch's supported ranks
    check_fn(lambda lib, x: lib.nn.functional.pad(x, pad, mode=mode), [_randn(*shape)])


def test_pad_constant_value():
    check_fn(lambda lib, x: lib.nn.functional.pad(x, (1, 1, 2, 0), value=-2.5), [_randn(2, 3, 4)])
    check_fn(lambda lib, x: lib.nn.functional.pad(x, (1, 1), value=7), [np.arange(6).reshape(2, 3)], grad=False)


@pytest.mark.parametrize("kw", [
    {"size": (5, 7)}, {"size": 3}, {"scale_factor": 2}, {"scale_factor": (1.5, 0.5)},
    {"size": (6, 9), "mode": "bilinear", "align_corners": False},
    {"size": (6, 9), "mode": "bilinear", "align_corners": True},
    {"size": (2, 3), "mode": "bilinear", "align_corners": False},
    {"scale_factor": 2, "mode": "bilinear", "align_corners": False},
    {"scale_factor": 1.7, "mode": "bilinear", "align_corners": True},
    {"scale_factor": 0.6, "mode": "bilinear", "align_corners": False},
    {"size": (1, 1), "mode": "bilinear", "align_corners": True},
])
def test_interpolate(kw):
    check_fn(lambda lib, x: lib.nn.functional.interpolate(x, **kw), [_randn(2, 3, 4, 5)])


def test_interpolate_linear_1d():
    check_fn(lambda lib, x: lib.nn.functional.interpolate(x, size=7, mode="linear", align_corners=False),
             [_randn(2, 3, 4)])
    check_fn(lambda lib, x: lib.nn.functional.interpolate(x, scale_factor=3, mode="nearest"), [_randn(2, 3, 4)])


# ---- smaller functions ---------------------------------------------------------------------------------------------


def test_one_hot():
    check_fn(lambda lib, t: lib.nn.functional.one_hot(t), [np.array([[0, 3], [2, 1]])], grad=False)
    check_fn(lambda lib, t: lib.nn.functional.one_hot(t, 6), [np.array([0, 5, 2])], grad=False)
    with pytest.raises(RuntimeError, match="class values must be"):
        F.one_hot(tj.tensor([0, 4]), 3)


@pytest.mark.parametrize("kw", [{}, {"p": 1.0, "dim": 0}, {"p": 3.0, "dim": -1}, {"eps": 0.5}])
def test_normalize(kw):
    x = _randn(3, 4)
    x[1] = 0  # eps keeps the zero row finite
    check_fn(lambda lib, a: lib.nn.functional.normalize(a, **kw), [x])


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_activation_functions(dtype):
    x = _randn(4, 5) * 5
    x[0, :3] = [0.0, 25.0, -25.0]
    for approximate in ("none", "tanh"):
        check_fn(lambda lib, a, approximate=approximate: lib.nn.functional.gelu(a, approximate=approximate), [x],
                 dtype=dtype)
    for beta, threshold in ((1.0, 20.0), (2.0, 5.0), (0.5, 1.0)):
        check_fn(lambda lib, a, kw={"beta": beta, "threshold": threshold}: lib.nn.functional.softplus(a, **kw), [x],
                 dtype=dtype)
    x[1, :4] = [1.0, -1.0, 6.0, 0.0]  # the bounds of hardtanh and relu6: no gradient there in PyTorch
    for name in ("relu", "silu", "elu", "leaky_relu", "sigmoid", "tanh", "logsigmoid", "mish", "selu", "relu6",
                 "hardtanh"):
        check_fn(lambda lib, a, name=name: getattr(lib.nn.functional, name)(a), [x], dtype=dtype)
    for name in ("softmax", "log_softmax", "softmin"):
        check_fn(lambda lib, a, name=name: getattr(lib.nn.functional, name)(a, dim=0), [x], dtype=dtype)
    check_fn(lambda lib, a: lib.nn.functional.glu(a, dim=0), [x], dtype=dtype)


def test_dropout_function():
    tj.manual_seed(3)
    x = tj.ones(100, 100)
    assert F.dropout(x, 0.3, training=False) is x
    y = F.dropout(x, 0.3).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.02 and np.allclose(y[y != 0], 1 / 0.7)
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, -0.1)
    leaf = tj.randn(20, 30, requires_grad=True)
    y = leaf * 2
    z = F.dropout(y, 0.5, inplace=True)  # the in-place form on a non-leaf still backpropagates
    assert z is y
    z.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), 4.0 * (z.detach().numpy() != 0))


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_norm_functions(dtype):
    x = _randn(3, 4, 5) * 3 + 2
    w, b = _randn(4, 5, seed=2), _randn(4, 5, seed=3)
    check_fn(lambda lib, a, w, b: lib.nn.functional.layer_norm(a, (4, 5), w, b, eps=1e-3), [x, w, b], dtype=dtype)
    check_fn(lambda lib, a: lib.nn.functional.layer_norm(a, (5,)), [x], dtype=dtype)
    gw, gb = _randn(4, seed=4), _randn(4, seed=5)
    check_fn(lambda lib, a, w, b: lib.nn.functional.group_norm(a, 2, w, b), [x, gw, gb], dtype=dtype)
    check_fn(lambda lib, a: lib.nn.functional.group_norm(a, 4, eps=0.1), [x], dtype=dtype)


def test_embedding_and_linear_functions():
    idx = np.array([[1, 0, 3], [3, 3, 2]])
    check_fn(lambda lib, w, i: lib.nn.functional.embedding(i, w), [_randn(4, 3), idx])
    w = check_fn(lambda lib, w, i: lib.nn.functional.embedding(i, w, padding_idx=3), [_randn(4, 3), idx])
    check_fn(lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [_randn(2, 3, 4), _randn(5, 4), _randn(5)])
    check_fn(lambda lib, x, w: lib.nn.functional.linear(x, w), [_randn(4), _randn(5, 4)], dtype="float32")
    assert w.shape == (2, 3, 3)
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding(tj.tensor([4]), tj.randn(4, 3))


@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh", "leaky_relu", "elu", "selu", "silu"])
def test_inplace_activations(name):
    def fn(lib, a):
        y = a * 1.5  # a non-leaf, so the in-place op may overwrite it
        out = getattr(lib.nn.functional, name)(y, inplace=True)
        assert out is y
        return out

    x = _randn(3, 4) * 3
    x[0, :3] = [0.0, -1.0 / 1.5, 4.0]
    check_fn(fn, [x])


# ---- nn.init ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("linear",), ("conv2d",), ("conv_transpose2d",), ("sigmoid",), ("tanh",),
                                  ("relu",), ("leaky_relu",), ("leaky_relu", 0.2), ("selu",)])
def test_calculate_gain(args):
    torch = _torch()
    assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-15)


def _stats(t):
    a = t.detach().numpy().astype(np.float64)
    return np.abs(a).max(), a.mean(), a.std()


def test_uniform_initializers_bounds():
    tj.manual_seed(0)
    w = tj.empty(300, 200)
    for fn, bound in [
        (lambda: nn.init.xavier_uniform_(w), math.sqrt(6 / 500)),
        (lambda: nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("tanh")), 5 / 3 * math.sqrt(6 / 500)),
        (lambda: nn.init.kaiming_uniform_(w), math.sqrt(6 / 200)),  # a=0: leaky_relu gain sqrt(2)
        (lambda: nn.init.kaiming_uniform_(w, nonlinearity="relu"), math.sqrt(6 / 200)),
        (lambda: nn.init.kaiming_uniform_(w, a=math.sqrt(5)), 1 / math.sqrt(200)),
        (lambda: nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(6 / 300)),
        (lambda: nn.init.uniform_(w, -0.2, 0.6), None),
    ]:
        assert fn() is w
        top, mean, std = _stats(w)
        if bound is None:
            a = w.numpy()
            assert a.min() >= -0.2 and a.max() <= 0.6 and abs(a.mean() - 0.2) < 0.005
            continue
        assert bound * 0.999 < top <= bound * (1 + 1e-6)
        assert abs(mean) < 0.01 * bound and abs(std - bound / math.sqrt(3)) < 0.01 * bound


def test_normal_initializers_statistics():
    tj.manual_seed(1)
    w = tj.empty(200, 300)
    for fn, want_std in [
        (lambda: nn.init.xavier_normal_(w), math.sqrt(2 / 500)),
        (lambda: nn.init.kaiming_normal_(w, nonlinearity="relu"), math.sqrt(2 / 300)),
        (lambda: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 200)),
        (lambda: nn.init.normal_(w, 0.0, 0.02), 0.02),
        (lambda: nn.init.trunc_normal_(w, std=1.0, a=-2.0, b=2.0), 0.8796),  # sd of N(0,1) cut at +-2
    ]:
        assert fn() is w
        _, mean, std = _stats(w)
        assert abs(mean) < 0.01 * want_std and abs(std - want_std) < 0.01 * want_std
    assert np.abs(w.numpy()).max() <= 2.0
    nn.init.constant_(w, 0.5)
    assert np.all(w.numpy() == 0.5)
    nn.init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), np.eye(200, 300))
    q = nn.init.orthogonal_(tj.empty(6, 4)).numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-6)


def test_init_does_not_track_gradients_and_checks_shapes():
    p = nn.Parameter(tj.empty(4, 3))
    nn.init.kaiming_uniform_(p)
    assert p.grad_fn is None and p.requires_grad and p.is_leaf
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(tj.empty(5))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        nn.init.calculate_gain("swish")


# ---- nn.utils -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm(norm_type, max_norm):
    torch = _torch()
    grads = [_randn(3, 4), _randn(5, seed=2) * 3, _randn(2, 2, 2, seed=3)]
    tps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    jps = [nn.Parameter(tj.zeros(g.shape, dtype=tj.float64)) for g in grads]
    for t, j, g in zip(tps, jps, grads):
        t.grad, j.grad = torch.tensor(g), tj.tensor(g)
    jps.append(nn.Parameter(tj.zeros(3)))  # a parameter without a gradient is skipped
    want = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    got = nn.utils.clip_grad_norm_(jps, max_norm, norm_type=norm_type)
    _close(got, want, 1e-12, "total norm")
    for t, j in zip(tps, jps):
        _close(j.grad, t.grad, 1e-12, "clipped grad")


def test_clip_grad_norm_single_tensor_and_nonfinite():
    p = nn.Parameter(tj.ones(4))
    p.grad = tj.full((4,), 3.0)
    assert nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(6.0)
    np.testing.assert_allclose(p.grad.numpy(), 0.5 / (1 + 1e-6 / 6), rtol=1e-6)
    p.grad = tj.tensor([1.0, float("nan"), 0.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    q = nn.Parameter(tj.ones(3))
    q.grad = tj.tensor([-5.0, 0.5, 5.0])
    nn.utils.clip_grad_value_([q], 1.0)
    np.testing.assert_array_equal(q.grad.numpy(), [-1.0, 0.5, 1.0])


def test_parameters_to_vector_round_trip():
    m = nn.Linear(3, 2)
    v = nn.utils.parameters_to_vector(m.parameters())
    assert tuple(v.shape) == (8,)
    nn.utils.vector_to_parameters(tj.arange(8.0), m.parameters())
    np.testing.assert_array_equal(m.weight.detach().numpy().ravel(), np.arange(6.0))
    np.testing.assert_array_equal(m.bias.detach().numpy(), [6.0, 7.0])
