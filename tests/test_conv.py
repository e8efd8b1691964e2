"""Convolution and pooling: values and gradients against torch.nn.functional, finite-difference
gradchecks of every op (backward ops included), and PyTorch-style error messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn.functional_conv as FC
from tracejit import ops
from tracejit.ops.registry import ShapeError

# PyTorch is the oracle where installed; the gradchecks and error tests run without it.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
DTYPES = {"float32": (np.float32, 1e-4), "float64": (np.float64, 1e-10)}


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _np(t):
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t)


def _close(got, want, tol, what):
    got, want = _np(got).astype(np.float64), _np(want).astype(np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


def check_against_torch(name, shapes, kwargs, dtype="float64", seed=0):
    """Run F.<name> in both libraries on random inputs of `shapes` (None: pass None); compare the
    outputs, then the gradients of every floating input for one random output gradient."""
    torch, TF = _torch()
    npdt, tol = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    arrays = [None if s is None else rng.standard_normal(s).astype(npdt) for s in shapes]
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    js = [None if a is None else tj.tensor(a, requires_grad=True) for a in arrays]
    want = getattr(TF, name)(*ts, **kwargs)
    got = getattr(FC, name)(*js, **kwargs)
    if isinstance(want, tuple):  # (values, indices)
        _close(got[1], want[1], 0, f"{name} indices")
        assert got[1].dtype == tj.int64
        want, got = want[0], got[0]
    _close(got, want, tol, f"{name} values")
    assert got.dtype.name == str(want.dtype).split(".")[-1]
    assert got.is_contiguous()
    go = rng.standard_normal(tuple(want.shape)).astype(npdt)
    want.backward(torch.tensor(go))
    got.backward(tj.tensor(go))
    for i, (t, j) in enumerate(zip(ts, js)):
        if t is not None:
            _close(j.grad, t.grad, tol * 10, f"{name} grad of input {i}")


# ---- convolution values and gradients ----------------------------------------------------------------

CONV2D_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), True, {}),
    ((2, 3, 7, 6), (4, 3, 3, 3), True, {"stride": 2, "padding": 1}),
    ((2, 3, 9, 8), (4, 3, 3, 2), True, {"stride": (2, 3), "padding": (1, 0), "dilation": (2, 1)}),
    ((2, 3, 7, 6), (4, 3, 3, 3), True, {"padding": "same"}),
    ((2, 3, 7, 6), (4, 3, 4, 2), True, {"padding": "same"}),  # even kernels: one more pad at the end
    ((1, 2, 8, 7), (3, 2, 2, 3), False, {"padding": "same", "dilation": (3, 2)}),
    ((2, 3, 7, 6), (4, 3, 3, 3), True, {"padding": "valid"}),
    ((2, 4, 6, 7), (6, 2, 3, 3), True, {"groups": 2, "padding": 1}),
    ((2, 4, 6, 7), (8, 1, 3, 3), False, {"groups": 4, "stride": 2}),  # depthwise, channel multiplier 2
    ((3, 7, 6), (4, 3, 3, 3), True, {"padding": 1}),  # unbatched
    ((2, 5, 5, 9), (3, 5, 1, 1), True, {}),
    ((2, 3, 5, 4), (2, 3, 5, 4), True, {}),  # kernel as large as the image
    ((1, 1, 11, 13), (2, 1, 5, 3), True, {"stride": (3, 2), "padding": (2, 1), "dilation": 2}),
    ((0, 3, 6, 6), (4, 3, 3, 3), True, {"padding": 1}),  # empty batch
]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("xs, ws, bias, kw", CONV2D_CASES)
def test_conv2d(xs, ws, bias, kw, dtype):
    check_against_torch("conv2d", [xs, ws, (ws[0],) if bias else None], kw, dtype)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("xs, ws, bias, kw", [
    ((2, 3, 10), (4, 3, 3), True, {}),
    ((2, 3, 10), (4, 3, 3), True, {"stride": 2, "padding": 1, "dilation": 2}),
    ((2, 4, 9), (6, 2, 4), False, {"groups": 2, "padding": "same"}),
    ((3, 10), (4, 3, 2), True, {"padding": "same"}),
    ((2, 4, 11), (4, 1, 3), True, {"groups": 4, "padding": "valid"}),
])
def test_conv1d(xs, ws, bias, kw, dtype):
    check_against_torch("conv1d", [xs, ws, (ws[0],) if bias else None], kw, dtype)


CONV_T2D_CASES = [
    ((2, 4, 5, 6), (4, 3, 3, 3), True, {}),
    ((2, 4, 5, 6), (4, 3, 3, 3), True, {"padding": 1}),
    ((2, 4, 5, 6), (4, 3, 3, 2), True, {"stride": 2}),
    ((2, 4, 5, 6), (4, 3, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 4, 5, 6), (4, 3, 3, 2), False, {"stride": (3, 2), "dilation": (2, 3), "output_padding": (2, 1)}),
    ((2, 4, 5, 6), (4, 2, 3, 3), True, {"groups": 2, "stride": 2, "padding": (1, 2)}),
    ((2, 4, 5, 6), (4, 2, 3, 3), True, {"groups": 2, "dilation": 2, "output_padding": 1}),
    ((2, 4, 5, 6), (4, 3, 3, 3), True, {"padding": 3}),  # padding beyond the kernel: the col2im path
    ((4, 5, 6), (4, 3, 2, 2), True, {"stride": 2}),
]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("xs, ws, bias, kw", CONV_T2D_CASES)
def test_conv_transpose2d(xs, ws, bias, kw, dtype):
    g = kw.get("groups", 1)
    check_against_torch("conv_transpose2d", [xs, ws, (ws[1] * g,) if bias else None], kw, dtype)


@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 4, 7), (4, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((4, 7), (4, 1, 3), {"groups": 2, "dilation": 2}),
])
def test_conv_transpose1d(xs, ws, kw):
    g = kw.get("groups", 1)
    check_against_torch("conv_transpose1d", [xs, ws, (ws[1] * g,)], kw)


def test_conv2d_float16_and_ints():
    torch, TF = _torch()
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    got = FC.conv2d(tj.tensor(x, dtype=tj.float16), tj.tensor(w, dtype=tj.float16), padding=1)
    want = TF.conv2d(torch.tensor(x, dtype=torch.float16), torch.tensor(w, dtype=torch.float16), padding=1)
    assert got.dtype == tj.float16
    np.testing.assert_allclose(_np(got).astype(np.float32), want.float().numpy(), atol=2e-2, rtol=1e-2)
    xi, wi = rng.integers(-5, 5, (2, 3, 6, 6)), rng.integers(-3, 3, (4, 3, 2, 2))
    got = FC.conv2d(tj.tensor(xi), tj.tensor(wi), stride=2)
    assert got.dtype == tj.int64
    np.testing.assert_array_equal(_np(got), TF.conv2d(torch.tensor(xi), torch.tensor(wi), stride=2).numpy())


def test_conv2d_double_backward_matches_torch():
    torch, TF = _torch()
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    outs = []
    for lib, F in ((torch, TF), (tj, FC)):
        xt, wt = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, stride=2, padding=1)
        gx, gw = lib.autograd.grad((y * y).sum(), (xt, wt), create_graph=True)
        ((gx * gx).sum() + (gw * gw).sum()).backward()
        outs.append((xt.grad, wt.grad))
    for got, want in zip(outs[1], outs[0]):
        _close(got, want, 1e-9, "double backward")


def test_only_the_gradients_asked_for():
    torch, TF = _torch()
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    xj, wj = tj.tensor(x), tj.tensor(w, requires_grad=True)
    FC.conv2d(xj, wj, padding=1).sum().backward()
    wt = torch.tensor(w, requires_grad=True)
    TF.conv2d(torch.tensor(x), wt, padding=1).sum().backward()
    assert xj.grad is None
    _close(wj.grad, wt.grad, 1e-10, "weight grad")


def test_pool_double_backward_matches_torch():
    torch, TF = _torch()
    x = np.random.default_rng(10).standard_normal((2, 2, 7, 6))
    for name, kw in (("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
                     ("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
                     ("adaptive_avg_pool2d", {"output_size": (3, 4)})):
        grads = []
        for lib, F in ((torch, TF), (tj, FC)):
            xt = lib.tensor(x, requires_grad=True)
            y = getattr(F, name)(xt, **kw)
            (gx,) = lib.autograd.grad((y * y * y).sum(), (xt,), create_graph=True)
            (gx * gx).sum().backward()
            grads.append(xt.grad)
        _close(grads[1], grads[0], 1e-10, f"{name} double backward")


def test_conv_outputs_are_contiguous_like_torch():
    torch, TF = _torch()
    x, w = tj.randn(1, 2, 6, 6), tj.randn(3, 2, 2, 2)
    for out in (FC.conv2d(x, w), FC.conv2d(x, w, padding="same"), FC.conv_transpose2d(x, w.transpose(0, 1)),
                FC.max_pool2d(x, 2), FC.avg_pool2d(x, 2)):
        assert out.stride() == tuple(torch.empty(tuple(out.shape)).stride())


# ---- pooling ------------------------------------------------------------------------------------------

MAX_POOL2D_CASES = [
    ((2, 3, 8, 8), {"kernel_size": 2}),
    ((2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((2, 3, 10, 9), {"kernel_size": (3, 2), "stride": (1, 2), "dilation": (2, 1)}),
    ((2, 3, 7, 7), {"kernel_size": 2, "stride": 2, "ceil_mode": True}),
    ((3, 8, 6), {"kernel_size": 3, "stride": 1, "padding": 1}),  # unbatched, overlapping windows
    ((1, 2, 5, 5), {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True, "dilation": 1}),
]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("return_indices", [False, True])
@pytest.mark.parametrize("xs, kw", MAX_POOL2D_CASES)
def test_max_pool2d(xs, kw, return_indices, dtype):
    check_against_torch("max_pool2d", [xs], {**kw, "return_indices": return_indices}, dtype)


@pytest.mark.parametrize("xs, kw", [
    ((2, 3, 11), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "return_indices": True}),
    ((3, 10), {"kernel_size": 2, "dilation": 2, "return_indices": True}),
])
def test_max_pool1d(xs, kw):
    check_against_torch("max_pool1d", [xs], kw)


AVG_POOL2D_CASES = [
    ((2, 3, 8, 8), {"kernel_size": 2}),
    ((2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((2, 3, 9, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ((2, 3, 8, 9), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1), "divisor_override": 5}),
    ((3, 7, 6), {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}),
    ((1, 2, 5, 5), {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True}),
]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("xs, kw", AVG_POOL2D_CASES)
def test_avg_pool2d(xs, kw, dtype):
    check_against_torch("avg_pool2d", [xs], kw, dtype)


@pytest.mark.parametrize("xs, kw", [
    ((2, 3, 11), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ((3, 10), {"kernel_size": 4}),
])
def test_avg_pool1d(xs, kw):
    check_against_torch("avg_pool1d", [xs], kw)


def test_pools_on_integers_and_float16():
    torch, TF = _torch()
    x = np.array([[[[1, 2, -7], [4, 4, 0], [9, -3, 5]]]])
    for kw in ({"kernel_size": 2}, {"kernel_size": 2, "padding": 1}, {"kernel_size": 2, "stride": 1}):
        for name in ("max_pool2d", "avg_pool2d"):
            got, want = getattr(FC, name)(tj.tensor(x), **kw), getattr(TF, name)(torch.tensor(x), **kw)
            assert got.dtype == tj.int64
            np.testing.assert_array_equal(_np(got), want.numpy(), err_msg=f"{name} {kw}")
    xh = np.random.default_rng(3).standard_normal((1, 2, 6, 6))
    got = FC.avg_pool2d(tj.tensor(xh, dtype=tj.float16), 3, 1)
    want = TF.avg_pool2d(torch.tensor(xh, dtype=torch.float16), 3, 1)
    np.testing.assert_allclose(_np(got).astype(np.float32), want.float().numpy(), atol=2e-3)


def test_max_pool2d_propagates_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    v, i = FC.max_pool2d(tj.tensor(x), 2, return_indices=True)
    assert np.isnan(_np(v)[0, 0, 0, 0]) and _np(i)[0, 0, 0, 0] == 1


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("xs, size", [
    ((2, 3, 8, 8), 1), ((2, 3, 8, 8), (4, 2)), ((2, 3, 9, 7), (4, 3)), ((2, 3, 9, 7), (5, 6)),
    ((2, 3, 5, 6), (7, 8)), ((3, 9, 7), (2, None)), ((2, 3, 9, 7), (None, 1)),
])
def test_adaptive_pool2d(xs, size, dtype):
    check_against_torch("adaptive_avg_pool2d", [xs], {"output_size": size}, dtype)
    check_against_torch("adaptive_max_pool2d", [xs], {"output_size": size, "return_indices": True}, dtype)


def test_adaptive_pool_to_zero_size():
    torch, TF = _torch()
    x = np.random.default_rng(11).standard_normal((2, 3, 5, 4))
    for name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        got, want = getattr(FC, name)(tj.tensor(x), (0, 2)), getattr(TF, name)(torch.tensor(x), (0, 2))
        assert tuple(got.shape) == tuple(want.shape) == (2, 3, 0, 2)


@pytest.mark.parametrize("xs, size", [((2, 3, 10), 4), ((3, 7), 3), ((2, 3, 6), 6)])
def test_adaptive_pool1d(xs, size):
    check_against_torch("adaptive_avg_pool1d", [xs], {"output_size": size})
    check_against_torch("adaptive_max_pool1d", [xs], {"output_size": size, "return_indices": True})


# ---- finite differences: every op, backward ops included -------------------------------------------


def _leaf(rng, *shape):
    return tj.tensor(rng.standard_normal(shape), dtype=tj.float64, requires_grad=True)


def _op(name):
    return ops.get(f"tj::{name}")


CONV_ATTRS = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2}


@pytest.mark.parametrize("w_shape, groups", [((2, 2, 2, 2), 2), ((8, 1, 2, 3), 4)])  # grouped, depthwise
def test_gradcheck_conv2d(w_shape, groups):
    rng = np.random.default_rng(4)
    x, w, b = _leaf(rng, 1, 4, 5, 5), _leaf(rng, *w_shape), _leaf(rng, w_shape[0])
    attrs = {**CONV_ATTRS, "groups": groups}
    assert tj.autograd.gradcheck(lambda x, w, b: tj.dispatch(_op("conv2d"), (x, w, b), attrs), (x, w, b))


@pytest.mark.parametrize("stride, padding", [((1, 1), (0, 1)), ((2, 3), (1, 0)), ((1, 1), (3, 0))])
def test_gradcheck_conv_transpose2d(stride, padding):
    rng = np.random.default_rng(5)
    x, w, b = _leaf(rng, 1, 2, 3, 2), _leaf(rng, 2, 1, 3, 2), _leaf(rng, 2)
    attrs = {"stride": stride, "padding": padding, "output_padding": (stride[0] - 1, 0), "groups": 2,
             "dilation": (1, 2)}
    assert tj.autograd.gradcheck(lambda x, w, b: tj.dispatch(_op("conv_transpose2d"), (x, w, b), attrs), (x, w, b))


def test_gradcheck_conv2d_backward_weight():
    rng = np.random.default_rng(6)
    x, gy = _leaf(rng, 1, 4, 5, 5), _leaf(rng, 1, 2, 3, 2)  # grad narrower than the conv's output (3, 3) is allowed
    attrs = {"weight_size": (2, 2, 2, 2), **CONV_ATTRS}
    assert tj.autograd.gradcheck(lambda x, gy: tj.dispatch(_op("conv2d_backward_weight"), (x, gy), attrs), (x, gy))


POOL = {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1), "ceil_mode": True}
AVG = {**POOL, "count_include_pad": False, "divisor_override": None}


def test_gradcheck_pools():
    rng = np.random.default_rng(7)
    x = _leaf(rng, 1, 2, 5, 4)
    assert tj.autograd.gradcheck(lambda x: tj.dispatch(_op("max_pool2d"), (x,), {**POOL, "dilation": (1, 1)})[0], (x,))
    assert tj.autograd.gradcheck(lambda x: tj.dispatch(_op("avg_pool2d"), (x,), AVG), (x,))
    assert tj.autograd.gradcheck(lambda x: tj.dispatch(_op("adaptive_avg_pool2d"), (x,), {"output_size": (3, 3)}),
                                 (x,))
    for size in ((2, 3), (5, 2)):  # uneven windows, then even ones (a plain max pool)
        assert tj.autograd.gradcheck(
            lambda x, size=size: tj.dispatch(_op("adaptive_max_pool2d"), (x,), {"output_size": size})[0], (x,))


def test_gradcheck_pool_backward_ops():
    rng = np.random.default_rng(8)
    g = _leaf(rng, 1, 2, 3, 5)
    attrs = {"input_size": (1, 2, 5, 4), **AVG}
    assert tj.autograd.gradcheck(lambda g: tj.dispatch(_op("avg_pool2d_backward"), (g,), attrs), (g,))
    ga = _leaf(rng, 1, 2, 3, 3)
    assert tj.autograd.gradcheck(
        lambda g: tj.dispatch(_op("adaptive_avg_pool2d_backward"), (g,), {"input_size": (1, 2, 5, 4)}), (ga,))
    _, idx = tj.dispatch(_op("max_pool2d"), (tj.randn(1, 2, 5, 4),), {**POOL, "dilation": (1, 1)})
    assert tj.autograd.gradcheck(
        lambda g: tj.dispatch(_op("max_pool2d_backward"), (g, idx), {"input_size": (1, 2, 5, 4)}), (g,))


def test_every_new_op_has_a_gradient_rule_and_a_shape_rule():
    names = ["conv2d", "conv_transpose2d", "conv2d_backward_weight", "max_pool2d", "max_pool2d_backward",
             "avg_pool2d", "avg_pool2d_backward", "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
             "adaptive_max_pool2d"]
    for n in names:
        assert _op(n).grad is not None, n
    # Symbolic batch and image sizes pass through the shape rules.
    shape = _op("conv2d").shape_rule([("N", 3, "H", 8), (4, 3, 3, 3), (4,)], **{**CONV_ATTRS, "groups": 1})
    assert shape == ("N", 4, "(H-1)//2+1", 4)
    assert _op("max_pool2d").shape_rule([("N", 3, 8, 8)], **POOL, dilation=(1, 1))[0] == ("N", 3, 5, 9)


def test_core_layer_does_not_import_the_front_end():
    code = "import sys, tracejit.ops.conv; assert 'tracejit._tensor' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- errors -------------------------------------------------------------------------------------------

ERRORS = [
    (lambda: FC.conv2d(tj.randn(2, 3), tj.randn(4, 3, 3, 3)),
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[2, 3\]"),
    (lambda: FC.conv1d(tj.randn(2, 3, 4, 5), tj.randn(4, 3, 3)),
     r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d, but got input of size: \[2, 3, 4, 5\]"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(16, 3, 3, 3)),
     r"Given groups=1, weight of size \[16, 3, 3, 3\], expected input\[2, 4, 8, 8\] to have 3 channels, but got 4"),
    (lambda: FC.conv2d(tj.randn(4, 8, 8), tj.randn(16, 3, 3, 3)),
     r"expected input\[1, 4, 8, 8\] to have 3 channels, but got 4 channels"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(6, 2, 3, 3), groups=4),
     r"Given groups=4, expected weight to be divisible by 4 at dimension 0, but got weight of size \[6, 2, 3, 3\]"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(6, 4, 3, 3), groups=3),
     r"Given groups=3, weight of size \[6, 4, 3, 3\], expected input\[2, 4, 8, 8\] to have 12 channels, but got 4"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), tj.randn(7)),
     r"expected bias to be 1-dimensional with 8 elements, but got bias of size \[7\]"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 9, 9)),
     r"Calculated padded input size per channel: \(8 x 8\). Kernel size: \(9 x 9\). Kernel size can't be greater"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), stride=0), "non-positive stride"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), padding=-1), "negative padding"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), dilation=(1, 0)), "non-positive dilation"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), groups=0), "non-positive groups"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), stride=2, padding="same"),
     "padding='same' is not supported for strided convolutions"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), padding="full"), "Invalid padding string: 'full'"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3, 3), stride=(1, 2, 3)),
     r"expected stride to be a single integer value or a list of 2 values .* stride=\[1, 2, 3\]"),
    (lambda: FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(8, 4, 3)), r"weight of size: \[8, 4, 3\]"),
    (lambda: FC.conv_transpose2d(tj.randn(2, 4, 8, 8), tj.randn(5, 2, 3, 3)),
     r"Given transposed=1, weight of size \[5, 2, 3, 3\], expected input\[2, 4, 8, 8\] to have 5 channels"),
    (lambda: FC.conv_transpose2d(tj.randn(2, 4, 8, 8), tj.randn(4, 2, 3, 3), output_padding=2),
     "output padding must be smaller than either stride or dilation"),
    (lambda: FC.conv_transpose2d(tj.randn(2, 4, 8, 8), tj.randn(4, 2, 3, 3), tj.randn(3)),
     r"Given transposed=1, weight of size \[4, 2, 3, 3\], expected bias to be 1-dimensional with 2 elements"),
    (lambda: FC.conv_transpose2d(tj.randn(2, 4, 1, 1), tj.randn(4, 2, 3, 3), padding=3),
     r"Calculated output size per channel: \(-3 x -3\). Output size is too small"),
    (lambda: FC.max_pool2d(tj.randn(2, 3), 2),
     r"max_pool2d: expected a 3D \(unbatched\) or 4D \(batched\) input, but got input of size: \[2, 3\]"),
    (lambda: FC.max_pool2d(tj.randn(2, 3, 8, 8), 3, padding=2), "pad should be at most half of kernel size"),
    (lambda: FC.max_pool2d(tj.randn(2, 3, 8, 8), 9), r"given input size: \(3x8x8\). Calculated output size: \(3x0x0\)"),
    (lambda: FC.max_pool2d(tj.randn(2, 3, 8, 8), 2, stride=(1, 2, 3)), "stride must either be omitted"),
    (lambda: FC.max_pool2d(tj.randn(2, 3, 8, 8), 0), "kernel_size must be greater than zero"),
    (lambda: FC.max_pool1d(tj.randn(2, 3, 8), 3, padding=2), "max_pool1d: pad should be at most half"),
    (lambda: FC.avg_pool2d(tj.randn(2, 3, 8, 8), 2, divisor_override=0), "divisor must be not zero"),
    (lambda: FC.avg_pool1d(tj.randn(2, 3, 4, 5), 2), r"avg_pool1d: expected a 2D .* \[2, 3, 4, 5\]"),
    (lambda: FC.adaptive_avg_pool2d(tj.randn(2, 3), 2), r"Expected 3D or 4D tensor, but got \[2, 3\]"),
    (lambda: FC.adaptive_avg_pool2d(tj.randn(2, 3, 8, 8), (2, 3, 4)), "output_size must be 2"),
    (lambda: FC.adaptive_avg_pool2d(tj.randn(2, 3, 8, 8), (-1, 2)), "greater than or equal to 0"),
    (lambda: FC.adaptive_max_pool2d(tj.randn(2, 3, 0, 8), 2),
     r"non-zero size for non-batch dimensions, but input has sizes \[2, 3, 0, 8\] with dimension 2 being empty"),
]


@pytest.mark.parametrize("call, message", ERRORS)
def test_errors(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


def test_type_errors():
    x = tj.randn(2, 4, 8, 8)
    with pytest.raises(TypeError, match=r"Input type \(float32\) and weight type \(float64\) should be the same"):
        FC.conv2d(x, tj.randn(8, 4, 3, 3, dtype=tj.float64))
    with pytest.raises(TypeError, match=r"Input type \(float32\) and bias type \(float64\)"):
        FC.conv2d(x, tj.randn(8, 4, 3, 3), tj.randn(8, dtype=tj.float64))
    with pytest.raises(TypeError, match="argument 'padding' must be tuple of ints, not str"):
        FC.conv_transpose2d(x, tj.randn(4, 2, 3, 3), padding="same")
    with pytest.raises(TypeError, match="argument 'groups' must be int"):
        FC.conv2d(x, tj.randn(8, 4, 3, 3), groups=2.0)
    with pytest.raises(TypeError, match="argument 'weight' must be Tensor"):
        FC.conv2d(x, np.ones((8, 4, 3, 3)))


def test_shape_errors_are_shape_errors():
    with pytest.raises(ShapeError):
        FC.conv2d(tj.randn(2, 4, 8, 8), tj.randn(16, 3, 3, 3))
    # Dispatching the ops directly (no front-end checks) still fails with the shape rule's message,
    # never by reading past the input through a strided view.
    with pytest.raises(ShapeError, match=r"conv2d_backward_weight: grad of size \[1, 2, 9, 9\]"):
        tj.dispatch(_op("conv2d_backward_weight"), (tj.randn(1, 4, 5, 5), tj.randn(1, 2, 9, 9)),
                    {"weight_size": (2, 2, 2, 2), **CONV_ATTRS})
    with pytest.raises(ShapeError, match="Kernel size can't be greater than actual input size"):
        tj.dispatch(_op("conv2d"), (tj.randn(1, 2, 2, 2), tj.randn(1, 2, 3, 3), None), {**CONV_ATTRS, "groups": 1})
    with pytest.raises(ShapeError, match="Output size is too small"):
        tj.dispatch(_op("avg_pool2d"), (tj.randn(1, 2, 2, 2),), {**AVG, "padding": (0, 0), "ceil_mode": False})
