"""The eager CUDA path (`device='cuda'`) without a GPU: cupy is replaced by `tests.fake_cupy`, whose device
arrays refuse what cupy refuses (conversion to numpy, host and device arrays in one op, numpy-only API), so a
slip that would fail on a GPU fails here. Each test runs the same code on the CPU and on the emulated GPU and
compares devices, dtypes, shapes, strides, storage offsets, values and gradients.

What the stand-in cannot show (kernels, cupy's own rounding, asynchronous errors, memory pools) is left to
the tests marked `gpu`.
"""

import os

import numpy as np
import pytest

import tracejit as tj
from tests import fake_cupy
from tracejit import nn

F = nn.functional


@pytest.fixture(autouse=True)
def emulated_gpu(monkeypatch):
    """One emulated GPU for every test in this file."""
    return fake_cupy.install(monkeypatch)


def _flat(x):
    if isinstance(x, (tuple, list)):
        return [y for v in x for y in _flat(v)]
    return [x]


def same(cpu, gpu, rtol=1e-5, atol=1e-6):
    """`gpu` (computed on the emulated GPU) matches `cpu`: device, dtype, shape, strides, offset, values."""
    cs, gs = _flat(cpu), _flat(gpu)
    assert len(cs) == len(gs)
    for c, g in zip(cs, gs):
        if not isinstance(c, tj.Tensor):
            assert c == g
            continue
        assert g.device == tj.device("cuda", 0) and isinstance(g._data, fake_cupy.FakeDeviceArray)
        assert (g.dtype, tuple(g.shape), g.stride(), g.storage_offset()) == \
            (c.dtype, tuple(c.shape), c.stride(), c.storage_offset())
        want, got = c.detach().numpy(), g.detach().cpu().numpy()
        if c.dtype.is_floating_point:
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(got, want)


def on_both(fn, **tol):
    """fn(device) on the CPU and on the emulated GPU gives the same results."""
    same(fn("cpu"), fn("cuda"), **tol)


X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 5


def x_on(d, dtype=None):
    return tj.tensor(X, device=d, dtype=dtype)


# ---- the stand-in itself ------------------------------------------------------------------------------------


def test_the_stand_in_refuses_what_cupy_refuses():
    cp = fake_cupy
    a = cp.asarray(np.arange(6.0))
    for bad in (lambda: np.asarray(a), lambda: a + np.ones(6), lambda: np.ones(6) * a, lambda: cp.exp(np.ones(2)),
                lambda: cp.indices((2,), sparse=True), lambda: a.astype(np.float32, casting="unsafe"),
                lambda: cp.add.at(cp.zeros(3, np.int64), cp.asarray(np.array([0, 0])), 1),
                lambda: range(3)[cp.asarray(1)], lambda: np.from_dlpack(a)):
        with pytest.raises((TypeError, BufferError)):
            bad()
    with pytest.raises(NotImplementedError):
        cp.multiply.at(a, [0], 2.0)
    assert not hasattr(cp, "errstate") and not hasattr(a, "__array_interface__") and not hasattr(a.flags, "writeable")
    assert type(a.sum()) is cp.FakeDeviceArray and a.sum().ndim == 0 and type(a[0]) is cp.FakeDeviceArray
    assert a[2:].base is a and cp.lib.stride_tricks.as_strided(a[2:], (2,), (8,)).base is None
    assert a[cp.asarray(np.array([7, -1]))].tolist() == [1.0, 5.0]  # wraps around, as cupy's kernels do
    assert type(np.exp(a)) is cp.FakeDeviceArray and cp.asnumpy(np.exp(a)).dtype == np.float64


def test_cuda_is_available_through_the_stand_in():
    assert tj.cuda.is_available() and tj.cuda.device_count() == 1
    t = tj.ones(2, device="cuda")
    assert t.is_cuda and not t.is_cpu and t.device == tj.device("cuda", 0) and "device='cuda:0'" in repr(t)
    assert isinstance(t._data, fake_cupy.FakeDeviceArray)


# ---- creation and random draws ------------------------------------------------------------------------------

CREATION = {
    "zeros": lambda d: tj.zeros(2, 3, device=d),
    "ones_int": lambda d: tj.ones(2, 3, dtype=tj.int64, device=d),
    "full": lambda d: tj.full((2,), 3.5, device=d),
    "full_bool": lambda d: tj.full((3,), True, device=d),
    "arange": lambda d: tj.arange(10, device=d),
    "arange_float": lambda d: tj.arange(0, 1, 0.1, device=d),
    "linspace": lambda d: tj.linspace(-1, 1, 7, device=d),
    "eye": lambda d: tj.eye(3, 4, device=d),
    "empty_shape": lambda d: tuple(tj.empty(2, 3, device=d).shape),
    "zeros_like_keeps_layout": lambda d: tj.zeros_like(x_on(d).permute(2, 0, 1)),
    "full_like": lambda d: tj.full_like(x_on(d), 2.0),
    "tensor": lambda d: tj.tensor([[1.5, 2], [3, 4]], device=d),
    "as_tensor_numpy": lambda d: tj.as_tensor(np.arange(4.0), device=d),
    "tensor_of_tensor_keeps_device": lambda d: tj.tensor(x_on(d)),
    "new_zeros": lambda d: x_on(d).new_zeros(2),
    "half": lambda d: tj.ones(3, dtype=tj.float16, device=d),
}


@pytest.mark.parametrize("name", CREATION)
def test_creation(name):
    on_both(CREATION[name])


RANDOM = {
    "rand": lambda d: tj.rand(3, 2, device=d),
    "randn": lambda d: tj.randn(4, device=d),
    "randint": lambda d: tj.randint(0, 5, (6,), device=d),
    "randperm": lambda d: tj.randperm(7, device=d),
    "rand_like": lambda d: tj.rand_like(x_on(d)),
    "normal_": lambda d: nn.init.normal_(tj.empty(5, device=d)),
    "dropout": lambda d: F.dropout(tj.ones(20, device=d), 0.5),
    "init": lambda d: nn.init.kaiming_uniform_(tj.empty(3, 4, device=d)),
    "orthogonal": lambda d: nn.init.orthogonal_(tj.empty(3, 4, device=d)),
}


@pytest.mark.parametrize("name", RANDOM)
def test_manual_seed_gives_the_same_draws_on_both_devices(name):
    def draw(d):
        tj.manual_seed(7)
        return RANDOM[name](d)

    on_both(draw)


# ---- elementwise math, reductions, matmul -------------------------------------------------------------------

ELEMENTWISE = {
    "exp": tj.exp, "log": tj.log, "sqrt": tj.sqrt, "rsqrt": tj.rsqrt, "sin": tj.sin, "tanh": tj.tanh,
    "sigmoid": tj.sigmoid, "relu": tj.relu, "abs": tj.abs, "sign": tj.sign, "floor": tj.floor, "round": tj.round,
    "erf": tj.erf, "neg": tj.neg, "reciprocal": tj.reciprocal, "gelu": F.gelu, "silu": F.silu,
    "clamp": lambda x: x.clamp(-0.5, 0.5), "scale": lambda x: x * 2.5, "add": lambda x: x + x,
    "sub_scalar": lambda x: 1 - x, "div": lambda x: x / 3, "floordiv": lambda x: x // 0.5, "mod": lambda x: x % 0.7,
    "pow": lambda x: x ** 2, "rpow": lambda x: 2 ** x, "maximum": lambda x: tj.maximum(x, x.flip(0)),
    "where": lambda x: tj.where(x > 0, x, 0.0), "masked_fill": lambda x: x.masked_fill(x < 0, -1.0),
    "compare": lambda x: (x > 0, x == x.flip(1), x <= 0.3), "isnan": lambda x: tj.isnan(tj.log(x)),
    "atan2": lambda x: tj.atan2(x, x.flip(2)), "lerp": lambda x: tj.lerp(x, x * 2, 0.25),
    "isclose": lambda x: tj.isclose(x, x + 1e-9),
}


@pytest.mark.parametrize("dtype", [tj.float32, tj.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise(name, dtype):
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype is tj.float32 else {"rtol": 2e-3, "atol": 2e-3}
    on_both(lambda d: ELEMENTWISE[name](x_on(d, dtype)), **tol)


INTEGER = {
    "floordiv": lambda d: tj.arange(-6, 6, device=d) // 4,
    "mod": lambda d: tj.arange(-6, 6, device=d) % 4,
    "bitwise": lambda d: (tj.arange(8, device=d) & 3, tj.arange(8, device=d) | 8, ~tj.arange(8, device=d)),
    "uint8_wraps": lambda d: tj.arange(6, dtype=tj.uint8, device=d) + 300,
    "pow_negative": lambda d: tj.tensor([1, -1, 2], device=d) ** tj.tensor([-1, -3, 2], device=d),
    "int_to_float_div": lambda d: tj.arange(5, device=d) / 2,
    "bool_logic": lambda d: (tj.arange(5, device=d) > 1) ^ (tj.arange(5, device=d) < 4),
    "sum_accumulates_int64": lambda d: tj.ones(4, dtype=tj.int8, device=d).sum(),
}


@pytest.mark.parametrize("name", INTEGER)
def test_integer_and_bool_math(name):
    on_both(INTEGER[name])


REDUCTIONS = {
    "sum": lambda x: (x.sum(), x.sum(1), x.sum((0, 2), keepdim=True)),
    "mean": lambda x: (x.mean(), x.mean((0, 2))),
    "amax_amin": lambda x: (x.amax(-1), x.amin(0), x.max(), x.min()),
    "max_dim": lambda x: tuple(x.max(1)) + tuple(x.min(2)),
    "argmax": lambda x: (x.argmax(), x.argmax(1), x.argmin(2, keepdim=True)),
    "var_std": lambda x: (x.var(1), x.std(), x.var((0, 2), correction=0)),
    "prod": lambda x: x.prod(2),
    "logsumexp": lambda x: x.logsumexp(1),
    "norm": lambda x: (x.norm(), x.norm(1, dim=2)),
    "all_any": lambda x: ((x > -2).all(), (x > 1).any(1)),
    "cumsum": lambda x: x.cumsum(1),
    "softmax": lambda x: (x.softmax(-1), x.log_softmax(1), F.softmax(x, 0)),
}


@pytest.mark.parametrize("dtype", [tj.float32, tj.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_and_softmax(name, dtype):
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype is tj.float32 else {"rtol": 3e-3, "atol": 3e-3}
    on_both(lambda d: REDUCTIONS[name](x_on(d, dtype)), **tol)


MATMUL = {
    "batched": lambda x: x @ x.transpose(1, 2),
    "2d": lambda x: x[0] @ x[1].t(),
    "vector": lambda x: (x[0, 0] @ x[1, 0], x[0] @ x[0, 0]),
    "linear": lambda x: F.linear(x, x[0][:2], tj.ones(2, device=x.device, dtype=x.dtype)),
    "bmm_broadcast": lambda x: tj.matmul(x, x[0].t()),
}


@pytest.mark.parametrize("dtype", [tj.float32, tj.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("name", MATMUL)
def test_matmul(name, dtype):
    on_both(lambda d: MATMUL[name](x_on(d, dtype)), rtol=1e-5 if dtype is tj.float32 else 2e-3, atol=1e-5)


# ---- views, indexing, movement --------------------------------------------------------------------------------

VIEWS = {
    "select": lambda x: x[1],
    "slice": lambda x: x[:, 1:],
    "ellipsis": lambda x: x[..., 2],
    "step": lambda x: x[:, ::2, 1::2],
    "transpose": lambda x: x.transpose(0, 2),
    "permute": lambda x: x.permute(2, 0, 1),
    "unsqueeze_of_offset_view": lambda x: x[1:, 1:].unsqueeze(2),  # restrided: cupy's as_strided drops .base
    "view": lambda x: x.view(6, 4)[2:5],
    "view_size1": lambda x: x[1:, 2:].view(1, 4, 1),
    "expand": lambda x: x[1:].expand(3, 3, 4),
    "squeeze": lambda x: x[:, 1:2].squeeze(1),
    "flatten_reshape": lambda x: (x.flatten(), x.reshape(4, 6), x.transpose(0, 1).reshape(-1)),
    "narrow_unbind_chunk": lambda x: (x.narrow(2, 1, 2), *x.unbind(1), *x.chunk(2, 2), *x.split([1, 2], 1)),
    "as_strided_of_offset_view": lambda x: x[1:, 1:].unsqueeze(2).as_strided((2, 2), (1, 3), 5),
    "contiguous": lambda x: x.transpose(0, 2).contiguous(),
    "clone_keeps_layout": lambda x: x.permute(2, 0, 1).clone(),
    "storage": lambda x: (x[1:].untyped_storage().size(), x[:, 1].storage().size(), x[0].t().storage().tolist()[:5]),
}


@pytest.mark.parametrize("name", VIEWS)
def test_views_strides_and_offsets(name):
    on_both(lambda d: VIEWS[name](x_on(d)))


@pytest.mark.parametrize("name", ["slice", "step", "transpose", "unsqueeze_of_offset_view", "view_size1"])
def test_writes_through_views_reach_the_base(name):
    def write(d):
        x = x_on(d)
        VIEWS[name](x).mul_(-2).add_(1)
        return x

    on_both(write)


def _setitem(index, value):
    def fn(d):
        x = x_on(d)
        x[index(d)] = value(d) if callable(value) else value
        return x

    return fn


INDEXING = {
    "mask": lambda d: x_on(d)[x_on(d) > 0],
    "list": lambda d: x_on(d)[[1, 0], :, [3, 2]],
    "tensor": lambda d: x_on(d)[tj.tensor([1, 0, 1], device=d)],
    "negative": lambda d: x_on(d)[:, tj.tensor([2, -1], device=d)],
    "cpu_index_on_cuda": lambda d: x_on(d)[:, tj.tensor([0, 2])],
    "scalar": lambda d: (x_on(d)[0, 1, 2], x_on(d)[1, -1]),
    "2d_index": lambda d: x_on(d)[0][tj.tensor([[0, 1], [2, 2]], device=d)],
    "set_scalar": _setitem(lambda d: (0, 1), 5.0),
    "set_mask": _setitem(lambda d: x_on(d) > 1, 0.0),
    "set_advanced": _setitem(lambda d: (1, [0, 2]), lambda d: tj.ones(4, device=d)),
    "set_cpu_tensor": _setitem(lambda d: 0, lambda d: tj.full((3, 4), 7.0)),
    "set_list": _setitem(lambda d: (0, 0), [1.0, 2.0, 3.0, 4.0]),
    "set_numpy": _setitem(lambda d: 1, np.ones((3, 4), np.float32)),
    "set_0dim": _setitem(lambda d: (..., 1), lambda d: tj.tensor(3.0)),
}


@pytest.mark.parametrize("name", INDEXING)
def test_indexing(name):
    on_both(INDEXING[name])


@pytest.mark.parametrize("bad", [lambda x, d: x[tj.tensor([5], device=d)], lambda x, d: x[0, [0, 3]],
                                 lambda x, d: x.__setitem__((tj.tensor([2], device=d),), 1.0),
                                 lambda x, d: x[:, :, tj.tensor([-5], device=d)]],
                         ids=["get", "get_list", "set", "get_negative"])
def test_out_of_range_indices_raise_on_both_devices(bad):
    for d in ("cpu", "cuda"):  # cupy's kernels wrap them around; tracejit checks first
        with pytest.raises(IndexError, match="out of bounds"):
            bad(x_on(d), d)


def _index(d, values, dtype=tj.int64):
    return tj.tensor(values, dtype=dtype, device=d)


MOVEMENT = {
    "cat": lambda d: (tj.cat([x_on(d), x_on(d)], 1), tj.cat([x_on(d)[0], x_on(d)[1]]), tj.cat([tj.ones(0, device=d),
                                                                                              tj.ones(2, device=d)])),
    "stack": lambda d: tj.stack([x_on(d), x_on(d) * 2], -1),
    "gather": lambda d: x_on(d).gather(2, _index(d, [[[0, 3], [1, 1], [2, 0]]] * 2)),
    "scatter": lambda d: tj.zeros(2, 3, 4, device=d).scatter(2, _index(d, [[[0, 3], [1, 1], [2, 0]]] * 2), 1.0),
    "scatter_src": lambda d: tj.zeros(3, 4, device=d).scatter(0, _index(d, [[2, 1, 0, 2]]), x_on(d)[0]),
    "scatter_add": lambda d: tj.zeros(3, device=d).scatter_add(0, _index(d, [0, 0, 2]), tj.ones(3, device=d)),
    "scatter_add_int64": lambda d: tj.zeros(3, dtype=tj.int64, device=d).scatter_add(
        0, _index(d, [0, 0, 2]), tj.ones(3, dtype=tj.int64, device=d)),  # cupy has no int64 atomics
    "scatter_multiply": lambda d: tj.ones(3, device=d).scatter(0, _index(d, [0, 0, 2]), tj.full((3,), 2.0, device=d),
                                                               reduce="multiply"),  # nor multiply.at
    "index_select": lambda d: x_on(d).index_select(1, _index(d, [2, 0])),
    "nonzero": lambda d: ((x_on(d) > 0.5).nonzero(), tj.where(x_on(d) > 1)),
    "flip_roll": lambda d: (x_on(d).flip(1), x_on(d).roll(1, 2), x_on(d).roll(3)),
    "tril_triu": lambda d: (x_on(d)[0].tril(), x_on(d)[1].triu(1)),
    "repeat": lambda d: x_on(d).repeat(1, 2, 1),
    "one_hot": lambda d: F.one_hot(_index(d, [0, 2, 1]), 3),
    "pad": lambda d: (F.pad(x_on(d), (1, 2)), F.pad(x_on(d)[None], (1, 1, 2, 0), mode="reflect"),
                      F.pad(x_on(d)[None], (1, 1), mode="replicate")),
    "interpolate": lambda d: (F.interpolate(x_on(d)[None], scale_factor=2),
                              F.interpolate(x_on(d)[None], size=(5, 7), mode="bilinear")),
}


@pytest.mark.parametrize("name", MOVEMENT)
def test_cat_stack_gather_scatter_and_friends(name):
    on_both(MOVEMENT[name])


INPLACE = {
    "add_mul": lambda x: x.add_(1).mul_(x),
    "div_sub": lambda x: x.div_(2).sub_(x[0], alpha=0.5),
    "operators": lambda x: (x.__iadd__(1), x.__imul__(2), x.__itruediv__(x + 4)),
    "clamp_zero_fill": lambda x: (x.clamp_(0, 1), x[0].zero_(), x[1, 1].fill_(2)),
    "on_transposed_view": lambda x: x.transpose(0, 2).add_(tj.arange(2.0, device=x.device)),
    "copy_from_cpu": lambda x: x.copy_(tj.ones(4)),
    "masked_fill_": lambda x: x.masked_fill_(x > 0, 0.5),
    "half_scalar": lambda x: x.half().mul_(0.02),
    "int_add_float_scalar": lambda x: tj.arange(3, device=x.device).add_(2),
}


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_ops(name):
    def run(d):
        x = x_on(d)
        out = INPLACE[name](x)
        return out, x

    on_both(run)


def test_inplace_into_an_expanded_tensor_is_refused_on_both_devices():
    for d in ("cpu", "cuda"):  # cupy would write it (its broadcast views are writeable)
        with pytest.raises(RuntimeError, match="single memory location"):
            tj.zeros(1, 3, device=d).expand(2, 3).add_(1)
        same_fill = tj.zeros(1, 3, device=d).expand(2, 3).fill_(2.0)
        assert same_fill.tolist() == [[2.0] * 3] * 2


# ---- moving between devices ---------------------------------------------------------------------------------


def test_to_cuda_cpu_and_back():
    c = x_on("cpu")
    g = c.to("cuda")
    same(c, g)
    assert g.cuda() is g and g.to("cuda:0") is g and g.to(tj.device("cuda")) is g and g.to("cuda", tj.float32) is g
    assert c.cpu() is c and c.to("cpu") is c
    back = g.cpu()
    assert back.is_cpu and type(back._data) is np.ndarray and np.array_equal(back.numpy(), X)
    assert g.double().device == g.device and g.to(tj.float16).dtype is tj.float16
    assert g.tolist() == c.tolist() and g[0, 0, 0].item() == c[0, 0, 0].item()
    assert float(g[1, 1, 1]) == float(c[1, 1, 1])
    assert int(tj.tensor(3, device="cuda")) == 3 and bool(tj.tensor(True, device="cuda"))


def test_numpy_of_a_cuda_tensor_raises_like_pytorch():
    g = tj.ones(2, device="cuda")
    msg = "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first."
    for fn in (g.numpy, lambda: np.asarray(g), lambda: np.array(g)):
        with pytest.raises(TypeError) as e:
            fn()
        assert str(e.value) == msg
    assert g.numpy(force=True).tolist() == [1.0, 1.0]


def test_dlpack_shares_cuda_memory_and_refuses_numpy():
    g = tj.arange(4.0, device="cuda")
    shared = tj.from_dlpack(g)
    shared[0] = 9.0
    assert shared.device == g.device and g.tolist() == [9.0, 1.0, 2.0, 3.0]
    assert g.__dlpack_device__() == (2, 0)
    with pytest.raises(BufferError):
        np.from_dlpack(g)


# ---- autograd -------------------------------------------------------------------------------------------------


def _pair(make):
    """The same freshly initialized module on the CPU and (a copy) on the emulated GPU."""
    tj.manual_seed(0)
    cpu, gpu = make(), make()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.cuda()


def _compare_modules(cpu, gpu, rtol=1e-5, atol=1e-6):
    for (name, p), (_, q) in zip(cpu.named_parameters(), gpu.named_parameters()):
        assert q.device.type == "cuda" and (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            same(p.grad, q.grad, rtol=rtol, atol=atol)
    for b, c in zip(cpu.buffers(), gpu.buffers()):
        same(b, c, rtol=rtol, atol=atol)


def test_mlp_backward_matches_cpu():
    cpu, gpu = _pair(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)))
    x, y = tj.randn(5, 4), tj.tensor([0, 1, 2, 1, 0])
    for model, xs, ys in ((cpu, x, y), (gpu, x.cuda(), y.cuda())):
        F.cross_entropy(model(xs), ys).backward()
    _compare_modules(cpu, gpu)


def test_conv_net_backward_matches_cpu():
    def make():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 4, 3, stride=2, groups=2), nn.AvgPool2d(1), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, 2))

    cpu, gpu = _pair(make)
    x = tj.randn(2, 3, 8, 8)
    for model, xs in ((cpu, x), (gpu, x.cuda())):
        (model(xs) ** 2).sum().backward()
    _compare_modules(cpu, gpu, rtol=1e-4, atol=1e-5)


def test_gradients_of_indexing_and_cat_stay_on_the_gpu():
    def run(d):
        w = tj.arange(6.0, device=d, requires_grad=True)
        e = tj.ones(0, device=d, requires_grad=True)
        out = tj.cat([e, w[tj.tensor([0, 0, 5], device=d)], w[1:].unsqueeze(0).squeeze(0)]) * 2
        tj.autograd.backward([out], [np.arange(out.numel(), dtype=np.float32)])  # a seed that is not a tensor
        return w.grad, e.grad

    on_both(run)


def test_gradcheck_runs_on_the_gpu():
    x = tj.randn(3, 2, dtype=tj.float64, device="cuda", requires_grad=True)
    assert tj.autograd.gradcheck(lambda t: (t.sigmoid() * t).sum(1), (x,))


# ---- nn layers, optimizers, data, files ---------------------------------------------------------------------

LAYERS = {
    "linear": (lambda: nn.Linear(4, 3), lambda: (tj.randn(2, 4),)),
    "conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), lambda: (tj.randn(2, 2, 6, 6),)),
    "conv2d_depthwise": (lambda: nn.Conv2d(3, 6, 3, groups=3, dilation=2), lambda: (tj.randn(2, 3, 7, 7),)),
    "conv1d": (lambda: nn.Conv1d(2, 3, 3, padding="same"), lambda: (tj.randn(2, 2, 7),)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), lambda: (tj.randn(1, 2, 4, 4),)),
    "conv_transpose2d_stride1": (lambda: nn.ConvTranspose2d(2, 4, 3, padding=1, groups=2),
                                 lambda: (tj.randn(1, 2, 5, 5),)),
    "pools": (lambda: nn.Sequential(nn.Conv2d(2, 2, 1), nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                                    nn.AvgPool2d(2, 1, 1, count_include_pad=False)), lambda: (tj.randn(2, 2, 7, 5),)),
    "adaptive_pools": (lambda: nn.Sequential(nn.Conv2d(2, 2, 1), nn.Flatten(0, 0)), lambda: (tj.randn(2, 2, 7, 5),),
                       lambda out: (F.adaptive_max_pool2d(out, (3, 2)), F.adaptive_avg_pool2d(out, (3, 4)))),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), lambda: (tj.randn(2, 4, 3),)),
    "gru": (lambda: nn.GRU(4, 5, bidirectional=True), lambda: (tj.randn(3, 2, 4),)),
    "bilinear": (lambda: nn.Bilinear(3, 4, 2), lambda: (tj.randn(5, 3), tj.randn(5, 4))),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), lambda: (tj.randn(4, 3, 2, 2),)),
    "layernorm": (lambda: nn.LayerNorm(6), lambda: (tj.randn(2, 3, 6),)),
    "embedding": (lambda: nn.Embedding(10, 4, padding_idx=0), lambda: (tj.tensor([[1, 2, 2], [9, 0, 1]]),)),
    "lstm": (lambda: nn.LSTM(4, 5, num_layers=2, batch_first=True), lambda: (tj.randn(2, 3, 4),)),
    "multihead_attention": (lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                            lambda: (tj.randn(2, 3, 8), tj.randn(2, 4, 8), tj.randn(2, 4, 8))),
    "attention_masks": (lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                        lambda: (tj.randn(2, 3, 8), tj.randn(2, 3, 8), tj.randn(2, 3, 8),
                                 {"attn_mask": tj.ones(3, 3, dtype=tj.bool).triu(1),
                                  "key_padding_mask": tj.tensor([[False, False, True], [False, False, False]])})),
    "encoder_layer": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                      lambda: (tj.randn(2, 3, 8),)),
}


def _to_cuda(args):
    return [({k: v.cuda() for k, v in a.items()} if isinstance(a, dict) else a.cuda()) for a in args]


@pytest.mark.parametrize("name", LAYERS)
def test_layers_forward_and_backward_match_cpu(name):
    make, inputs, *after = LAYERS[name]
    cpu, gpu = _pair(make)
    args = inputs()
    outs = []
    for model, a in ((cpu, args), (gpu, _to_cuda(args))):
        kwargs = a[-1] if isinstance(a[-1], dict) else {}
        out = model(*[t for t in a if not isinstance(t, dict)], **kwargs)
        out = after[0](out) if after else out
        first = out[0] if isinstance(out, tuple) else out
        (first * first).sum().backward()
        outs.append(out)
    same(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    _compare_modules(cpu, gpu, rtol=1e-4, atol=1e-5)


OPTIMIZERS = {
    "sgd": lambda p: tj.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
    "adam": lambda p: tj.optim.Adam(p, lr=0.01),
    "adamw_amsgrad": lambda p: tj.optim.AdamW(p, lr=0.01, amsgrad=True),
    "rmsprop": lambda p: tj.optim.RMSprop(p, lr=0.01, momentum=0.5),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_steps_on_cuda_params(name):
    def train(d):
        cpu, gpu = _pair(lambda: nn.Linear(3, 2))
        model = cpu if d == "cpu" else gpu
        opt = OPTIMIZERS[name](model.parameters())
        x = tj.randn(4, 3, device=d)
        for _ in range(3):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
        state = [v for s in opt.state.values() for v in s.values() if isinstance(v, tj.Tensor) and v.ndim]
        return [*model.parameters(), *state]

    on_both(train)


def test_optimizer_state_dict_round_trip_keeps_cuda_state():
    _, model = _pair(lambda: nn.Linear(3, 2))
    opt = tj.optim.Adam(model.parameters(), lr=0.01)
    model(tj.randn(2, 3, device="cuda")).sum().backward()
    opt.step()
    again = tj.optim.Adam(model.parameters(), lr=0.01)
    again.load_state_dict(opt.state_dict())
    for s in again.state.values():
        assert all(v.device.type == "cuda" for v in s.values() if isinstance(v, tj.Tensor) and v.ndim)


def test_dataloader_batches_move_to_cuda_and_train():
    data = tj.utils.data.TensorDataset(tj.arange(20.0).view(10, 2), tj.arange(10) % 3)
    loader = tj.utils.data.DataLoader(data, batch_size=4, shuffle=False, pin_memory=True)
    _, model = _pair(lambda: nn.Linear(2, 3))
    opt = tj.optim.SGD(model.parameters(), lr=0.01)
    for xb, yb in loader:
        xg, yg = xb.to("cuda"), yb.cuda(non_blocking=True)
        same(xb, xg)
        opt.zero_grad()
        F.cross_entropy(model(xg), yg).backward()
        opt.step()
    assert all(p.device.type == "cuda" for p in model.parameters())


def test_save_and_load_of_cuda_state_dicts(tmp_path):
    cpu, gpu = _pair(lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    path = os.fspath(tmp_path / "model.safetensors")
    tj.save(gpu.state_dict(), path)
    loaded = tj.load(path)
    for k, v in gpu.state_dict().items():
        same(v.cpu(), loaded[k])  # back on the GPU it was saved from, as torch.load does
    on_cpu = tj.load(path, map_location="cpu")
    assert all(v.is_cpu for v in on_cpu.values())
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).cuda()
    fresh.load_state_dict(on_cpu)  # a CPU checkpoint into a GPU model copies across devices
    for a, b in zip(cpu.state_dict().values(), fresh.state_dict().values()):
        same(a, b)
    tj.save({"x": tj.arange(4, device="cuda")[1:], "pair": (tj.ones(2), [tj.zeros(1, device="cuda")])}, path)
    back = tj.load(path)
    assert back["x"].device.type == "cuda" and back["pair"][0].is_cpu and back["pair"][1][0].is_cuda
    assert tj.load(path, map_location="cuda")["pair"][0].is_cuda


def test_load_of_a_gpu_checkpoint_without_a_gpu_points_to_map_location(tmp_path, monkeypatch):
    path = os.fspath(tmp_path / "w.safetensors")
    tj.save({"w": tj.ones(2, device="cuda")}, path)
    monkeypatch.setattr(fake_cupy._state, "count", 0)
    with pytest.raises(RuntimeError, match="map_location='cpu'"):
        tj.load(path)
    assert tj.load(path, map_location="cpu")["w"].tolist() == [1.0, 1.0]


# ---- two GPUs -------------------------------------------------------------------------------------------------


def test_tensors_and_ops_stay_on_their_gpu(monkeypatch):
    fake_cupy.install(monkeypatch, device_count=2)
    a = tj.ones(3, device="cuda:1")
    tj.relu(tj.ones(2, device="cuda:0"))  # ops that keep constants must not keep them for one GPU only
    made = [a, tj.zeros(2, device="cuda:1"), tj.arange(3, device="cuda:1"), tj.rand(2, device="cuda:1"),
            tj.zeros_like(tj.ones(2, 3, device="cuda:1").t()), tj.tensor([1.0], device="cuda:1")]
    computed = [a + 1, tj.relu(a), a.sum(), a.half().sigmoid(), a + tj.arange(3, device="cuda:1"),
                tj.cat([a, tj.ones(1, dtype=tj.int64, device="cuda:1")]),
                a.to("cuda:0").to("cuda:1"), a[tj.tensor([0, 2], device="cuda:1")], a * tj.tensor(2.0)]
    for t in made + computed:
        assert t.device == tj.device("cuda", 1) and t._data.device.id == 1
    assert a.to("cuda:0").device == tj.device("cuda", 0)
    with pytest.raises(RuntimeError, match="same device"):
        a + tj.ones(3, device="cuda:0")
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2)).to("cuda:1")
    model(tj.tensor([1, 4], device="cuda:1")).sum().backward()
    assert all(p.grad.device == tj.device("cuda", 1) for p in model.parameters())
