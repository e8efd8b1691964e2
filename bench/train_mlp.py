"""Training steps/s of an MLP 784-512-512-10 (batch 64, cross-entropy) with SGD and Adam:
tracejit eager vs hand-written numpy vs PyTorch eager."""

from __future__ import annotations

import numpy as np

import tracejit as tj

from .harness import best_time, print_table

SIZES = (784, 512, 512, 10)
BATCH = 64


def _init_weights(rng):
    ws, bs = [], []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(fan_in)
        ws.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        bs.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return ws, bs


def _module_step(nn, optim, lib, ws, bs, x, y, opt_name):
    layers = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with lib.no_grad():
            lin.weight.copy_(lib.from_numpy(w.copy()))
            lin.bias.copy_(lib.from_numpy(b.copy()))
        layers.append(lin)
        if i < len(ws) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = optim.SGD(model.parameters(), lr=0.01) if opt_name == "sgd" else optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = lib.from_numpy(x), lib.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss

    return step


def _numpy_step(ws, bs, x, y, opt_name):
    """Forward, backward and update written by hand in numpy: the floor for Python-level frameworks."""
    ws = [w.copy() for w in ws]
    bs = [b.copy() for b in bs]
    params = ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = [0]
    onehot = np.eye(SIZES[-1], dtype=np.float32)[y]

    def step():
        acts = [x]
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w.T + b
            if i < len(ws) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / BATCH
        gw, gb = [None] * len(ws), [None] * len(ws)
        for i in range(len(ws) - 1, -1, -1):
            gw[i] = g.T @ acts[i]
            gb[i] = g.sum(0)
            if i:
                g = (g @ ws[i]) * (acts[i] > 0)
        grads = gw + gb
        if opt_name == "sgd":
            for prm, gr in zip(params, grads):
                prm -= 0.01 * gr
        else:
            t[0] += 1
            c1, c2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
            for prm, gr, mm, vv in zip(params, grads, m, v):
                mm *= 0.9
                mm += 0.1 * gr
                vv *= 0.999
                vv += 0.001 * gr * gr
                prm -= 1e-3 * (mm / c1) / (np.sqrt(vv / c2) + 1e-8)

    return step


def run(torch=None):
    rng = np.random.default_rng(0)
    ws, bs = _init_weights(rng)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)
    rows = []
    peers = ["numpy"] + (["torch"] if torch is not None else [])
    for opt_name in ("sgd", "adam"):
        times = {
            "tracejit": best_time(_module_step(tj.nn, tj.optim, tj, ws, bs, x, y, opt_name), min_time=1.0),
            "numpy": best_time(_numpy_step(ws, bs, x, y, opt_name), min_time=1.0),
        }
        if torch is not None:
            times["torch"] = best_time(_module_step(torch.nn, torch.optim, torch, ws, bs, x, y, opt_name),
                                       min_time=1.0)
        rows.append((f"MLP train step, {opt_name}", times))
    print_table("training step: MLP 784-512-512-10, batch 64 (time per step; steps/s = 1/time)", rows, peers)
    for name, times in rows:
        print(f"  {name}: " + ", ".join(f"{k} {1 / v:.0f} steps/s" for k, v in times.items()))
    return rows
