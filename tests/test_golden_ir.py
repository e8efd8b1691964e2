"""Golden IR text of traced models (tests/golden/*.tjir), round trips and interpreter parity.

A change to what the tracer records shows up here as a text diff. When it is intended,
rewrite the files: `python tests/test_golden_ir.py` (run from the repository root).
"""

import os
import sys

import numpy as np
import pytest
from golden_models import models, traced

import tracejit as tj
from tracejit import ir

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch):
    # Source locations in the text are relative to the working directory.
    monkeypatch.chdir(os.path.dirname(os.path.dirname(GOLDEN)))


@pytest.mark.parametrize("name", sorted(models()))
def test_traced_text_matches_golden(name):
    _, _, t = traced(name)
    with open(os.path.join(GOLDEN, f"{name}.tjir")) as f:
        assert t.code == f.read()


@pytest.mark.parametrize("name", sorted(models()))
def test_golden_text_round_trips_and_runs_like_eager(name):
    model, example, t = traced(name)
    g = ir.parse(t.code, constants=t.graph.constants)
    ir.verify(g)
    assert str(g) == t.code
    with tj.no_grad():
        want = model(example)
    want = want if isinstance(want, tuple) else (want,)
    feeds = [example.numpy()] + [p.numpy() for _, p in list(model.named_parameters()) + list(model.named_buffers())]
    for got, w in zip(ir.run(g, *feeds), want):
        np.testing.assert_allclose(got, w.numpy(), rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    for name in models():
        _, _, t = traced(name)
        with open(os.path.join(GOLDEN, f"{name}.tjir"), "w") as f:
            f.write(t.code)
        print("wrote", name)
