"""End to end: a model written against PyTorch's nn/optim/utils.data API trains unchanged with
tracejit and follows PyTorch's loss curve from the same initial weights."""

import numpy as np
import pytest

import tracejit


def _program(torch, init, data, opt_name):
    """The same source for both libraries: only the module object passed as `torch` differs."""
    nn = torch.nn
    from importlib import import_module

    data_mod = import_module(torch.__name__ + ".utils.data")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.GELU())
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.norm(self.body(x)))

    model = Net()
    model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    x, y = (torch.tensor(a) for a in data)
    loader = data_mod.DataLoader(data_mod.TensorDataset(x, y), batch_size=16, shuffle=False)
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    losses = []
    for _ in range(4):
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
        sched.step()
    return np.array(losses)


def _problem(seed):
    """Initial weights and a learnable 3-class problem (the label is the argmax of the first 3 features)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    shapes = {"body.0.weight": (16, 6), "body.0.bias": (16,), "body.2.weight": (16, 16), "body.2.bias": (16,),
              "norm.weight": (16,), "norm.bias": (16,), "head.weight": (3, 16), "head.bias": (3,)}
    init = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
    return init, (x, x[:, :3].argmax(1))


@pytest.mark.torch
@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_same_program_same_loss_curve(opt_name):
    torch = pytest.importorskip("torch")
    init, data = _problem(1)
    ref = _program(torch, init, data, opt_name)
    got = _program(tracejit, init, data, opt_name)
    assert len(got) == len(ref) == 16
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-5)
    assert got[-1] < got[0]


def test_trains_without_torch():
    init, data = _problem(2)
    losses = _program(tracejit, init, data, "adam")
    assert losses[-4:].mean() < losses[:4].mean() * 0.8
