"""tracejit.optim: optimizers and LR schedulers, against hand-computed values and PyTorch.

The PyTorch comparisons build the same parameters in both frameworks from the same numpy
arrays, feed the same gradients, and compare the parameters after every step.
"""

import copy

import numpy as np
import pytest

import tracejit as tj
import tracejit.optim as optim
from tracejit.optim import lr_scheduler

SHAPES = [(3, 4), (5,), ()]
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _param(values, dtype=np.float32):
    return tj.tensor(np.asarray(values, dtype=dtype)).requires_grad_()


def _grad(values, dtype=np.float32):
    return tj.tensor(np.asarray(values, dtype=dtype))


# ---- hand-computed updates (no PyTorch needed) --------------------------------------------


@pytest.mark.parametrize("kwargs, expected", [
    ({}, [0.9, 0.8]),  # p -= lr * g, twice
    ({"momentum": 0.9}, [0.9, 0.71]),  # buf = g, then 0.9 * 1 + 1 = 1.9
    ({"momentum": 0.9, "dampening": 0.5}, [0.9, 0.76]),  # the first buffer is g undamped; then 0.9 + 0.5
    ({"momentum": 0.9, "nesterov": True}, [0.81, 0.539]),  # g + 0.9 * buf: 1.9, then 1 + 0.9 * 1.9 = 2.71
    ({"weight_decay": 0.5}, [0.85, 0.7075]),  # g + 0.5 * p: 1.5, then 1.425
    ({"maximize": True}, [1.1, 1.2]),
])
def test_sgd_two_steps_by_hand(kwargs, expected):
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1, **kwargs)
    for want in expected:
        p.grad = _grad([1.0])
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), [want], rtol=1e-6)


def test_adam_first_step_moves_by_lr_against_the_gradient_sign():
    p = _param([1.0, 2.0, 3.0])
    opt = optim.Adam([p], lr=0.01)
    p.grad = _grad([4.0, -0.001, 0.5])
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [0.99, 2.01, 2.99], rtol=1e-6)
    s = opt.state[p]
    assert s["step"] == 1 and set(s) == {"step", "exp_avg", "exp_avg_sq"}
    np.testing.assert_allclose(s["exp_avg"].numpy(), [0.4, -0.0001, 0.05], rtol=1e-6)


def _adam_reference(p, grads, lr, betas, eps, weight_decay, amsgrad, decoupled):
    """Adam in float64 numpy, written from the paper's formulas as PyTorch states them."""
    (b1, b2), m, v, vmax = betas, np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        denom = np.sqrt(vmax if amsgrad else v) / np.sqrt(1 - b2**t) + eps
        p = p - lr / (1 - b1**t) * m / denom
    return p


@pytest.mark.parametrize("cls, kwargs", [
    (optim.Adam, {}),
    (optim.Adam, {"amsgrad": True, "weight_decay": 0.1}),
    (optim.AdamW, {"weight_decay": 0.1}),
    (optim.AdamW, {"amsgrad": True, "betas": (0.5, 0.9), "eps": 1e-3}),
])
def test_adam_matches_a_float64_reference(cls, kwargs):
    rng = np.random.default_rng(1)
    start = rng.standard_normal(6)
    # amsgrad only differs from Adam when v shrinks: large gradients first, then small ones
    grads = [rng.standard_normal(6) * (10.0 if t < 3 else 0.1) for t in range(10)]
    p = tj.tensor(start).requires_grad_()
    opt = cls([p], lr=0.05, **kwargs)
    for g in grads:
        p.grad = tj.tensor(g)
        opt.step()
    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01 if cls is optim.AdamW else 0.0,
                "amsgrad": False}
    want = _adam_reference(start, grads, lr=0.05, decoupled=cls is optim.AdamW, **{**defaults, **kwargs})
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-12)
    assert p.dtype is tj.float64 and opt.state[p]["exp_avg"].dtype is tj.float64


def test_adamw_decays_the_weights_apart_from_the_gradient():
    p = _param([2.0])
    p.grad = _grad([0.0])  # zero gradient: the Adam update is 0 / eps = 0
    optim.AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.detach().numpy(), [1.9], rtol=1e-6)


@pytest.mark.parametrize("kwargs, expected", [
    ({}, 1 - 0.01 * 2 / 1),  # square_avg = 0.25 * 2^2 = 1
    ({"centered": True}, 1 - 0.01 * 2 / np.sqrt(1 - 0.5**2)),  # grad_avg = 0.25 * 2 = 0.5
    ({"momentum": 0.5}, 1 - 0.01 * 2 / 1),  # the buffer starts at zero: buf = g / avg
    ({"weight_decay": 1.0}, 1 - 0.01 * 3 / np.sqrt(0.25 * 9)),  # g + p = 3
])
def test_rmsprop_first_step_by_hand(kwargs, expected):
    p = _param([1.0])
    p.grad = _grad([2.0])
    optim.RMSprop([p], lr=0.01, alpha=0.75, **kwargs).step()
    np.testing.assert_allclose(p.detach().numpy(), [expected], rtol=1e-6)


# ---- behaviour shared by all optimizers ---------------------------------------------------

ALL = [(optim.SGD, {"lr": 0.1, "momentum": 0.9}), (optim.Adam, {"amsgrad": True}), (optim.AdamW, {}),
       (optim.RMSprop, {"momentum": 0.5, "centered": True})]


@pytest.mark.parametrize("cls, kwargs", ALL)
def test_step_updates_in_place_and_skips_parameters_without_grad(cls, kwargs):
    a, b = _param([1.0, 2.0]), _param([3.0])
    opt = cls([a, b], **kwargs)
    ptr, version = a.data_ptr(), a._version
    a.grad = _grad([0.5, -0.5])
    opt.step()
    assert a.data_ptr() == ptr and a._version > version
    assert a.requires_grad and a.is_leaf and a.grad_fn is None
    assert not np.allclose(a.detach().numpy(), [1.0, 2.0])
    assert b.detach().numpy().tolist() == [3.0] and b not in opt.state
    assert all(not v.requires_grad for v in opt.state[a].values() if isinstance(v, tj.Tensor))


@pytest.mark.parametrize("cls, kwargs", ALL)
def test_step_runs_the_closure_with_grad_enabled_and_returns_its_loss(cls, kwargs):
    p = _param([3.0])
    opt = cls([p], **kwargs)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tj.no_grad():  # the closure still records its graph
        loss = opt.step(closure)
    assert loss.item() == 9.0 and p.item() < 3.0


def test_training_loop_minimizes_a_quadratic():
    target = tj.tensor([1.0, -2.0, 0.5])
    w = tj.zeros(3, requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)
    for _ in range(200):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
        sched.step()
    np.testing.assert_allclose(w.detach().numpy(), target.numpy(), atol=1e-3)


def test_zero_grad():
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1)
    p.grad = g = _grad([2.0])
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and g.tolist() == [0.0]
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_take_their_own_options_and_the_defaults():
    a, b = _param([1.0]), _param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[0]["momentum"] == 0 and opt.param_groups[1]["params"] == [b]
    a.grad, b.grad = _grad([1.0]), _grad([1.0])
    opt.step()
    assert (a.item(), b.item()) == pytest.approx((0.9, 0.5))
    c = _param([1.0])
    opt.add_param_group({"params": [c], "lr": 0.25})
    c.grad = _grad([1.0])
    opt.step()
    assert c.item() == pytest.approx(0.75)
    assert "Parameter Group 2" in repr(opt) and "lr: 0.25" in repr(opt)


def test_state_dict_layout():
    a, b, c = _param([1.0]), _param([2.0]), _param([3.0])
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.5}])
    a.grad = c.grad = _grad([1.0])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 2] and sd["state"][2]["step"] == 1
    assert sd["state"][0]["exp_avg"] is opt.state[a]["exp_avg"]  # not a copy, as in PyTorch
    assert opt.param_groups[0]["params"] == [a, b]  # packing left the optimizer alone


@pytest.mark.parametrize("cls, kwargs", ALL)
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    rng = np.random.default_rng(2)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(10)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = tj.tensor(g)
            opt.step()

    ref = [tj.tensor(a).requires_grad_() for a in start]
    run(ref, cls(ref, **kwargs), grads)

    first = [tj.tensor(a).requires_grad_() for a in start]
    opt = cls(first, **kwargs)
    run(first, opt, grads[:5])
    sd = copy.deepcopy(opt.state_dict())
    resumed = [tj.tensor(p.detach().numpy()).requires_grad_() for p in first]
    opt2 = cls(resumed, lr=123.0)  # the loaded options replace the new optimizer's
    opt2.load_state_dict(sd)
    run(resumed, opt2, grads[5:])
    for r, p in zip(ref, resumed):
        np.testing.assert_array_equal(r.detach().numpy(), p.detach().numpy())


def test_load_state_dict_casts_state_to_the_parameter_dtype():
    p = _param([1.0])
    opt = optim.Adam([p])
    p.grad = _grad([1.0])
    opt.step()
    sd = opt.state_dict()
    sd["state"][0] = {k: (v.double() if isinstance(v, tj.Tensor) else v) for k, v in sd["state"][0].items()}
    sd["state"][0]["step"] = tj.tensor(1.0)  # PyTorch's checkpoints hold the step as a tensor
    opt2 = optim.Adam([p])
    opt2.load_state_dict(sd)
    assert opt2.state[p]["exp_avg"].dtype is tj.float32 and opt2.state[p]["step"] == 1.0
    opt2.step()
    assert opt2.state[p]["step"] == 2.0


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("make, err, match", [
    (lambda p: optim.SGD(p, lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    (lambda p: optim.SGD(p, momentum=-1), ValueError, "Invalid momentum value"),
    (lambda p: optim.SGD(p, weight_decay=-1), ValueError, "Invalid weight_decay value"),
    (lambda p: optim.SGD(p, nesterov=True), ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda p: optim.Adam(p, lr=-1.0), ValueError, "Invalid learning rate"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "Invalid epsilon value"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), ValueError, "Invalid alpha value"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), ValueError, "Invalid momentum value"),
    (lambda p: optim.SGD(p[0]), TypeError, "params argument given to the optimizer should be an iterable of Tensors"),
    (lambda p: optim.SGD([]), ValueError, "optimizer got an empty parameter list"),
    (lambda p: optim.SGD([{"params": set(p)}]), TypeError, "ordered collections"),
    (lambda p: optim.SGD([p[0], 1.0]), TypeError, "can only optimize Tensors, but one of the params is float"),
    (lambda p: optim.SGD([p[0] * 2]), ValueError, "can't optimize a non-leaf Tensor"),
    (lambda p: optim.SGD([{"params": p}, {"params": [p[0]]}]), ValueError, "more than one parameter group"),
    (lambda p: optim.SGD(p).add_param_group(p), TypeError, "param_group must be a dict"),
    (lambda p: optim.SGD(p).load_state_dict({"state": {}, "param_groups": []}), ValueError,
     "different number of parameter groups"),
    (lambda p: optim.SGD(p).load_state_dict({"state": {}, "param_groups": [{"params": [0]}]}), ValueError,
     "doesn't match the size of optimizer's group"),
    (lambda p: lr_scheduler.StepLR(object(), 1), TypeError, "object is not an Optimizer"),
    (lambda p: lr_scheduler.StepLR(optim.SGD(p), 1, last_epoch=3), KeyError, "initial_lr"),
    (lambda p: lr_scheduler.LambdaLR(optim.SGD(p), [abs, abs]), ValueError, "Expected 1 lr_lambdas, but got 2"),
])
def test_bad_input_is_refused_with_a_clear_message(make, err, match):
    with pytest.raises(err, match=match):
        make([_param([1.0]), _param([2.0])])


def test_duplicate_parameters_in_one_group_warn():
    p = _param([1.0])
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([p, p])


# ---- schedulers by hand -------------------------------------------------------------------


def _lrs(sched, n):
    out = [sched.get_last_lr()]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr())
    return out


def test_schedulers_by_hand():
    opt = optim.SGD([_param([1.0])], lr=1.0)
    assert [x[0] for x in _lrs(lr_scheduler.ExponentialLR(opt, gamma=0.5), 3)] == [1.0, 0.5, 0.25, 0.125]
    assert opt.param_groups[0]["lr"] == 0.125 and opt.param_groups[0]["initial_lr"] == 1.0
    opt = optim.SGD([_param([1.0])], lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.2)
    closed = [0.2 + 0.8 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(13)]
    np.testing.assert_allclose([x[0] for x in _lrs(sched, 12)], closed, atol=1e-12)
    assert sched.last_epoch == 12


def test_scheduler_state_dict_resumes_the_sequence():
    def make():
        opt = optim.SGD([_param([1.0])], lr=1.0)
        return lr_scheduler.LambdaLR(opt, lambda epoch: 0.9**epoch)

    ref = _lrs(make(), 8)
    first = make()
    _lrs(first, 3)
    sd = first.state_dict()
    assert sd["last_epoch"] == 3 and sd["lr_lambdas"] == [None] and "optimizer" not in sd
    second = make()
    second.load_state_dict(sd)
    assert second.get_last_lr() == ref[3]
    assert _lrs(second, 5)[1:] == ref[4:]


def test_scheduler_step_with_an_epoch_uses_the_closed_form():
    opt = optim.SGD([_param([1.0])], lr=1.0)
    sched = lr_scheduler.MultiStepLR(opt, milestones=[2, 4, 4], gamma=0.5)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(5)
    assert sched.get_last_lr() == [0.125] and sched.last_epoch == 5


# ---- against PyTorch ----------------------------------------------------------------------

OPTIMIZER_GRID = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "maximize": True, "amsgrad": True, "weight_decay": 0.05}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "betas": (0.5, 0.9), "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.001, "momentum": 0.5, "centered": True, "maximize": True, "eps": 1e-4}),
]


def _pair(torch, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    return [tj.tensor(a).requires_grad_() for a in arrays], [torch.tensor(a, requires_grad=True) for a in arrays], rng


def _feed(rng, ours, theirs, step):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if (i + step) % 4 == 3:  # now and then a parameter gets no gradient and must be skipped
            a.grad = b.grad = None
            continue
        g = rng.standard_normal(a.shape).astype(np.float32)
        a.grad, b.grad = tj.tensor(g), b.new_tensor(g)


def _assert_same(ours, theirs, what=""):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **TOL, err_msg=what)


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", OPTIMIZER_GRID, ids=lambda x: x if isinstance(x, str) else
                         ",".join(f"{k}={v}" for k, v in x.items()))
def test_matches_torch_over_ten_steps(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs, rng = _pair(torch)
    opt, ref = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(10):
        _feed(rng, ours, theirs, step)
        opt.step()
        ref.step()
        _assert_same(ours, theirs, f"step {step}")
    for a, b in zip(ours, theirs):  # the state too, key for key
        mine, want = opt.state[a], ref.state[b]
        assert set(mine) == set(want)
        for k, v in want.items():
            np.testing.assert_allclose(np.asarray(mine[k].numpy() if k != "step" else mine[k]), v.detach().numpy(),
                                       **TOL, err_msg=k)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_param_groups_with_different_options_match_torch(name):
    torch = pytest.importorskip("torch")
    ours, theirs, rng = _pair(torch, seed=3)
    extra = {"SGD": {"momentum": 0.9}, "Adam": {"amsgrad": True}, "AdamW": {"weight_decay": 0.3},
             "RMSprop": {"centered": True}}[name]

    def groups(ps):
        return [{"params": ps[:1], "lr": 0.05}, {"params": ps[1:], "lr": 0.005, **extra}]

    opt, ref = getattr(optim, name)(groups(ours), lr=0.01), getattr(torch.optim, name)(groups(theirs), lr=0.01)
    for step in range(10):
        _feed(rng, ours, theirs, step)
        opt.step()
        ref.step()
    _assert_same(ours, theirs)


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", [("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
                                          ("Adam", {"lr": 0.05}), ("RMSprop", {"lr": 0.01, "centered": True})])
def test_least_squares_with_autograd_and_a_closure_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a, b, w0 = (rng.standard_normal(s).astype(np.float32) for s in ((6, 4), (6,), (4,)))

    def setup(lib, opt_module):
        w, c = lib.tensor(w0, requires_grad=True), lib.tensor(0.5, requires_grad=True)
        opt = getattr(opt_module, name)([w, c], **kwargs)

        def closure():
            opt.zero_grad()
            r = lib.tensor(a) @ w + c - lib.tensor(b)
            loss = (r * r).sum() / 2
            loss.backward()
            return loss

        return opt, closure, (w, c)

    (opt, closure, ours), (ref, ref_closure, theirs) = setup(tj, optim), setup(torch, torch.optim)
    first = closure().item()
    for _ in range(10):
        loss, ref_loss = opt.step(closure), ref.step(ref_closure)
        np.testing.assert_allclose(loss.item(), ref_loss.item(), **TOL)
        _assert_same(ours, theirs)
    assert closure().item() < first


@pytest.mark.torch
def test_state_dict_matches_torch_and_resumes_like_it():
    torch = pytest.importorskip("torch")
    ours, theirs, rng = _pair(torch, seed=6)
    opt, ref = optim.Adam(ours, lr=0.01, amsgrad=True), torch.optim.Adam(theirs, lr=0.01, amsgrad=True)
    for step in range(5):
        _feed(rng, ours, theirs, step)
        opt.step()
        ref.step()
    mine, want = opt.state_dict(), ref.state_dict()
    assert mine["param_groups"][0]["params"] == want["param_groups"][0]["params"]
    assert set(mine["param_groups"][0]) <= set(want["param_groups"][0])
    assert sorted(mine["state"]) == sorted(want["state"])
    for i, st in want["state"].items():
        assert mine["state"][i]["step"] == st["step"].item()
        np.testing.assert_allclose(mine["state"][i]["max_exp_avg_sq"].numpy(), st["max_exp_avg_sq"].numpy(), **TOL)
    ours2 = [tj.tensor(p.detach().numpy()).requires_grad_() for p in ours]
    opt2 = optim.Adam(ours2)
    opt2.load_state_dict(copy.deepcopy(mine))
    for step in range(5, 10):
        _feed(rng, ours2, theirs, step)
        opt2.step()
        ref.step()
    _assert_same(ours2, theirs)


SCHEDULERS = [
    ("StepLR", {"step_size": 3}),
    ("StepLR", {"step_size": 2, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 5}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
    ("LambdaLR", {"lr_lambda": lambda epoch: 1 / (1 + epoch) ** 0.5}),
]


def _sched_pair(torch, name, kwargs):
    opt = optim.SGD([{"params": [_param([1.0])]}, {"params": [_param([1.0])], "lr": 0.03}], lr=0.1)
    ref_params = [torch.ones(1, requires_grad=True), torch.ones(1, requires_grad=True)]
    ref = torch.optim.SGD([{"params": ref_params[:1]}, {"params": ref_params[1:], "lr": 0.03}], lr=0.1)
    return getattr(lr_scheduler, name)(opt, **kwargs), getattr(torch.optim.lr_scheduler, name)(ref, **kwargs)


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", SCHEDULERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULERS)])
def test_scheduler_lrs_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = _sched_pair(torch, name, kwargs)
    got, want = _lrs(ours, 20), _lrs(theirs, 20)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert ours.last_epoch == theirs.last_epoch == 20
    assert [g["lr"] for g in ours.optimizer.param_groups] == [g["lr"] for g in theirs.optimizer.param_groups]


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", SCHEDULERS[:6], ids=[n for n, _ in SCHEDULERS[:6]])
def test_scheduler_resumed_from_state_dict_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = _sched_pair(torch, name, kwargs)
    _lrs(ours, 6)
    want = _lrs(theirs, 16)[7:]
    resumed, _ = _sched_pair(torch, name, kwargs)
    resumed.optimizer.load_state_dict(ours.optimizer.state_dict())
    resumed.load_state_dict(ours.state_dict())
    np.testing.assert_allclose(_lrs(resumed, 10)[1:], want, rtol=1e-12)
