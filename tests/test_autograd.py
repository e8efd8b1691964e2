"""Autograd: gradcheck on every differentiable registry op, the engine's API and its errors."""

import numpy as np
import pytest

import tracejit as tj
from tracejit import ops
from tracejit._tensor import dispatch

rng = np.random.default_rng(0)


def T(*shape, lo=-1.0, hi=1.0, grad=True):
    return tj.tensor(rng.uniform(lo, hi, shape), dtype=tj.float64, requires_grad=grad)


def P(*shape):  # strictly positive inputs (log, sqrt, pow base)
    return T(*shape, lo=0.5, hi=2.0)


def idx(*values):
    return tj.tensor(values, dtype=tj.int64)


def _op(name):
    return ops.get(name)


# op name -> (inputs, attrs). Inputs that require grad are checked; the rest are constants.
SAMPLES = {
    "tj::neg": lambda: ((T(3, 2),), {}),
    "tj::abs": lambda: ((T(3, 2) + 0.1 * tj.ones(3, 2, dtype=tj.float64).sign(),), {}),
    "tj::exp": lambda: ((T(3, 2),), {}),
    "tj::log": lambda: ((P(3, 2),), {}),
    "tj::log1p": lambda: ((P(3, 2),), {}),
    "tj::expm1": lambda: ((T(3, 2),), {}),
    "tj::sqrt": lambda: ((P(3, 2),), {}),
    "tj::rsqrt": lambda: ((P(3, 2),), {}),
    "tj::reciprocal": lambda: ((P(3, 2),), {}),
    "tj::sin": lambda: ((T(3, 2),), {}),
    "tj::cos": lambda: ((T(3, 2),), {}),
    "tj::tan": lambda: ((T(3, 2),), {}),
    "tj::tanh": lambda: ((T(3, 2),), {}),
    "tj::sigmoid": lambda: ((T(3, 2),), {}),
    "tj::erf": lambda: ((T(3, 2),), {}),
    "tj::relu": lambda: ((P(3, 2) * tj.tensor([1.0, -1.0], dtype=tj.float64),), {}),
    "tj::clone": lambda: ((T(3, 2),), {}),
    "tj::contiguous": lambda: ((T(3, 2),), {}),
    "tj::to_dtype": lambda: ((T(3, 2),), {"dtype": tj.float64}),
    "tj::sign": lambda: ((P(3, 2),), {}),
    "tj::floor": lambda: ((T(3, 2) * 0.4 + 0.5,), {}),
    "tj::ceil": lambda: ((T(3, 2) * 0.4 + 0.5,), {}),
    "tj::trunc": lambda: ((T(3, 2) * 0.4 + 0.5,), {}),
    "tj::round": lambda: ((T(3, 2) * 0.4 + 0.2,), {}),
    "tj::add": lambda: ((T(3, 2), T(2)), {"alpha": 2}),
    "tj::sub": lambda: ((T(3, 2), T(3, 1)), {"alpha": 3}),
    "tj::mul": lambda: ((T(3, 2), T(2)), {}),
    "tj::div": lambda: ((T(3, 2), P(3, 2)), {}),
    "tj::pow": lambda: ((P(3, 2), T(2)), {}),
    "tj::maximum": lambda: ((T(3, 2), T(3, 2)), {}),
    "tj::minimum": lambda: ((T(3, 2), T(3, 2)), {}),
    "tj::atan2": lambda: ((T(3, 2), P(3, 2)), {}),
    "tj::remainder": lambda: ((P(3, 2) * 3, P(3, 2)), {}),
    "tj::fmod": lambda: ((P(3, 2) * 3, P(3, 2)), {}),
    "tj::clamp": lambda: ((T(3, 4), T(4) * 0.3 - 0.5, T(4) * 0.3 + 0.5), {}),
    "tj::where": lambda: ((T(3, 2, grad=False) > 0, T(3, 2), T(2)), {}),
    "tj::masked_fill": lambda: ((T(3, 2), T(3, 2, grad=False) > 0, 1.5), {}),
    "tj::sum": lambda: ((T(3, 4),), {"dim": (1,), "keepdim": False}),
    "tj::mean": lambda: ((T(3, 4),), {"dim": (0,), "keepdim": True}),
    "tj::prod": lambda: ((T(3, 4),), {"dim": (1,), "keepdim": False}),
    "tj::amax": lambda: ((T(3, 4),), {"dim": (1,), "keepdim": False}),
    "tj::amin": lambda: ((T(3, 4),), {"dim": None, "keepdim": False}),
    "tj::max_dim": lambda: ((T(3, 4),), {"dim": 1, "keepdim": False}),
    "tj::min_dim": lambda: ((T(3, 4),), {"dim": 0, "keepdim": True}),
    "tj::var": lambda: ((T(3, 4),), {"dim": (1,), "correction": 1, "keepdim": False}),
    "tj::std": lambda: ((T(3, 4),), {"dim": None, "correction": 0, "keepdim": False}),
    "tj::logsumexp": lambda: ((T(3, 4),), {"dim": (1,), "keepdim": False}),
    "tj::norm": lambda: ((T(3, 4),), {"p": 3.0, "dim": (1,), "keepdim": False}),
    "tj::softmax": lambda: ((T(3, 4),), {"dim": 1}),
    "tj::log_softmax": lambda: ((T(3, 4),), {"dim": 0}),
    "tj::cumsum": lambda: ((T(3, 4),), {"dim": 1}),
    "tj::view": lambda: ((T(3, 4),), {"shape_attr": (2, 6)}),
    "tj::reshape": lambda: ((T(3, 4),), {"shape_attr": (4, 3)}),
    "tj::permute": lambda: ((T(2, 3, 4),), {"dims": (2, 0, 1)}),
    "tj::expand": lambda: ((T(3, 1),), {"size": (2, 3, 4)}),
    "tj::unsqueeze": lambda: ((T(3, 4),), {"dim": 1}),
    "tj::squeeze": lambda: ((T(3, 1, 4),), {"dims": (1,)}),
    "tj::slice": lambda: ((T(5, 4),), {"dim": 0, "start": 1, "end": 5, "step": 2}),
    "tj::select": lambda: ((T(5, 4),), {"dim": 1, "index": 2}),
    "tj::cat": lambda: (([T(2, 3), T(1, 3)],), {"dim": 0}),
    "tj::stack": lambda: (([T(2, 3), T(2, 3)],), {"dim": 1}),
    "tj::gather": lambda: ((T(3, 4), idx([0, 1], [3, 3], [2, 0])), {"dim": 1}),
    "tj::scatter": lambda: ((T(3, 4), idx([0, 1], [3, 2], [2, 0]), T(3, 2)), {"dim": 1, "reduce": None}),
    "tj::index_select": lambda: ((T(4, 3), idx(0, 2, 2)), {"dim": 0}),
    "tj::repeat": lambda: ((T(2, 3),), {"repeats": (2, 1, 2)}),
    "tj::flip": lambda: ((T(2, 3),), {"dims": (0, 1)}),
    "tj::roll": lambda: ((T(2, 3),), {"shifts": (1,), "dims": (1,)}),
    "tj::tril": lambda: ((T(3, 3),), {"diagonal": 0}),
    "tj::triu": lambda: ((T(3, 3),), {"diagonal": 1}),
    "tj::index": lambda: ((T(4, 3), (idx(0, 2, 2), None)), {}),
    "tj::index_put": lambda: ((T(4, 3), (idx(0, 2),), T(3)), {"accumulate": True}),
    "tj::copy": lambda: ((T(3, 2), T(2)), {}),
    "tj::matmul": lambda: ((T(2, 3, 4), T(4, 2)), {}),
    "tj::linear": lambda: ((T(2, 3, 4), T(5, 4), T(5)), {}),
}
# Differentiable ops checked by their own test files (convolution and pooling: tests/test_conv.py).
CHECKED_ELSEWHERE = {"tj::as_strided"}


def _differentiable():
    return [op.name for op in ops.all_ops() if op.grad is not None]


def test_every_differentiable_op_has_a_gradcheck_sample():
    conv_ops = {op.name for op in ops.all_ops() if op.name.startswith(("tj::conv", "tj::max_pool", "tj::avg_pool",
                                                                        "tj::adaptive", "tj::col2im", "tj::im2col"))}
    missing = [n for n in _differentiable() if n not in SAMPLES and n not in CHECKED_ELSEWHERE | conv_ops]
    assert not missing, f"add gradcheck samples for {missing}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_gradcheck(name):
    op = _op(name)
    args, attrs = SAMPLES[name]()
    flat = []  # gradcheck perturbs leaves: samples built with ops are cut from their history
    for a in args:
        for t in (a if isinstance(a, (list, tuple)) else [a]):
            if isinstance(t, tj.Tensor) and t.requires_grad:
                flat.append(t.detach().clone().requires_grad_())

    def fn(*ts):
        it = iter(ts)
        rebuilt = []
        for a in args:
            if isinstance(a, (list, tuple)):
                rebuilt.append(type(a)(next(it) if isinstance(t, tj.Tensor) and t.requires_grad else t for t in a))
            elif isinstance(a, tj.Tensor) and a.requires_grad:
                rebuilt.append(next(it))
            else:
                rebuilt.append(a)
        out = dispatch(op, tuple(rebuilt), attrs)
        return out[0] if isinstance(out, tuple) else out

    assert tj.autograd.gradcheck(fn, tuple(flat))


def test_backward_through_10000_ops():
    x = tj.tensor([1.0], dtype=tj.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001**10_000, rtol=1e-9)


def test_accumulation_and_zeroing():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    x.grad = None
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_second_backward_through_freed_graph_raises():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert x.grad.tolist() == [2.0 + 4.0, 4.0 + 8.0]


def test_inplace_on_saved_tensor_is_detected():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y * y
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_inplace_on_saved_output_is_detected():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_on_leaf_requiring_grad_raises():
    x = tj.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.add_(1)
    with tj.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 2.0]


def test_inplace_ops_rewrite_history():
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.mul_(y)  # y = (2x)^2
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 8 * x.detach().numpy())


def test_setitem_into_buffer_is_differentiable():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    buf = tj.zeros(3, 2)
    buf[1] = x * 3
    buf[2, 0] = x[1] * x[1]
    buf.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0 + 4.0]


def test_backward_on_non_scalar_needs_gradient():
    x = tj.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(tj.tensor([1.0, 2.0, 3.0]))
    assert x.grad.tolist() == [2.0, 4.0, 6.0]


def test_no_grad_enable_grad_inference_mode():
    x = tj.ones(2, requires_grad=True)
    with tj.no_grad():
        assert not (x * 2).requires_grad
        with tj.enable_grad():
            assert (x * 2).requires_grad
    with tj.inference_mode():
        assert not (x * 2).requires_grad

    @tj.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert tj.is_grad_enabled()
    tj.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    tj.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_detach_and_leaf_flags():
    x = tj.ones(2, requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf and y.grad_fn.name() == "MulBackward0"
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.data_ptr() == y.data_ptr()
    with pytest.raises(RuntimeError, match="int"):
        tj.ones(2, dtype=tj.int64, requires_grad=True)


def test_autograd_grad_and_create_graph():
    x = tj.tensor([0.5, -1.0], dtype=tj.float64, requires_grad=True)
    y = (x**3).sum()
    (g,) = tj.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    (gg,) = tj.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.detach().numpy())
    assert x.grad is None  # grad() returns, it does not accumulate


def test_autograd_grad_unused_input():
    x, z = tj.ones(2, requires_grad=True), tj.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="not have been used"):
        tj.autograd.grad((x * 2).sum(), (x, z))
    gx, gz = tj.autograd.grad((x * 2).sum(), (x, z), allow_unused=True)
    assert gz is None and gx.tolist() == [2.0, 2.0]


def test_leaf_hook():
    x = tj.ones(2, requires_grad=True)
    x.register_hook(lambda g: g * 10)
    (x * 2).sum().backward()
    assert x.grad.tolist() == [20.0, 20.0]


def test_gradcheck_reports_a_wrong_gradient():
    op = ops.get("tj::sin")
    saved = op.grad
    try:
        op.grad = lambda F, ctx, g: (g * 2,)
        with pytest.raises(tj.autograd.GradcheckError):
            tj.autograd.gradcheck(lambda t: t.sin(), (T(3),))
    finally:
        op.grad = saved


@pytest.mark.torch
def test_matches_torch_on_a_composite_expression():
    torch = pytest.importorskip("torch")
    a_np, b_np = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    a, b = tj.tensor(a_np, requires_grad=True), tj.tensor(b_np, requires_grad=True)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    for x, y in ((a, b), (ta, tb)):
        out = (x @ y).relu().softmax(dim=1).log().mean() + (x.sigmoid() * x).sum(1).max()
        out.backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-6, atol=1e-8)


@pytest.mark.torch
@pytest.mark.parametrize("base", [2.0, 0.0, -2.0])
def test_number_to_tensor_power_gradient_matches_torch(base):
    torch = pytest.importorskip("torch")
    b = tj.tensor([1.0, 2.0, -1.0], requires_grad=True)
    (base**b).sum().backward()
    tb = torch.tensor([1.0, 2.0, -1.0], requires_grad=True)
    (base**tb).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())
