"""The runtime Plan: native kernels, BLAS and fallbacks over reused buffers give the interpreter's values."""

import threading

import numpy as np
import pytest

import tracejit as tj
from tests import golden_models
from tracejit import ir
from tracejit.runtime.plan import Plan, PlanInputError


def _frozen(name):
    model, example, traced = golden_models.traced(name)
    return model, example, tj.freeze(traced)


@pytest.mark.parametrize("name", ["mlp", "cnn", "encoder_layer", "lstm_step"])
def test_corpus_runs_natively_and_matches_eager(name):
    model, example, frozen = _frozen(name)
    plan = Plan(frozen.graph)
    x = example.numpy()
    got = plan.run(x)
    want = ir.run(frozen.graph, x)
    with tj.no_grad():
        eager = model(example)
    eager = eager if isinstance(eager, tuple) else (eager,)
    assert len(got) == len(want) == len(eager)
    for g, w, e in zip(got, want, eager):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(g, e.numpy(), rtol=2e-5, atol=2e-6)


def test_symbolic_batch_specializes_per_size():
    _, example, frozen = _frozen("mlp")
    plan = Plan(frozen.graph)
    for n in (1, 7, 64, 7):
        x = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
        np.testing.assert_allclose(plan.run(x)[0], ir.run(frozen.graph, x)[0], rtol=2e-5, atol=2e-6)
    assert len(plan._programs) == 3


def test_outputs_never_alias_reused_buffers():
    g = ir.parse("graph(%x : Float(4, 8)):\n"
                 "  %1 : Float(4, 8) = tj::exp(%x)\n"
                 "  %2 : Float(8, 4) = tj::permute[dims=(1, 0)](%1)\n"
                 "  %3 : Float(8, 4) = tj::neg(%2)\n"
                 "  %4 : Float(8, 4) = tj::relu(%3)\n"
                 "  %5 : Float(4, 8) = tj::tanh(%x)\n"
                 "  return (%2, %4, %5)\n")
    plan = Plan(g)
    x1 = np.linspace(-2, 2, 32, dtype=np.float32).reshape(4, 8)
    first = [o.copy() for o in plan.run(x1)]
    kept = plan.run(x1)
    plan.run(-x1 * 3)  # must not overwrite what an earlier call returned
    for a, b, w in zip(first, kept, ir.run(g, x1)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, w, rtol=2e-6, atol=2e-6)


def test_relu_epilogue_and_fallback_ops():
    model = tj.nn.Sequential(tj.nn.Conv2d(2, 3, 3, padding=1), tj.nn.ReLU(), tj.nn.MaxPool2d(2), tj.nn.Flatten(),
                             tj.nn.Linear(12, 5), tj.nn.ReLU(), tj.nn.Linear(5, 2)).eval()
    x = tj.randn(3, 2, 4, 4)
    frozen = tj.freeze(tj.trace(model, x))
    got = Plan(frozen.graph).run(x.numpy())[0]
    with tj.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=2e-5, atol=2e-6)


def test_input_errors_name_the_input():
    _, _, frozen = _frozen("mlp")
    plan = Plan(frozen.graph)
    with pytest.raises(PlanInputError, match="takes 1 inputs"):
        plan.run()
    with pytest.raises(PlanInputError, match="float32"):
        plan.run(np.zeros((2, 8), np.float64))
    with pytest.raises(PlanInputError, match=r"shape Float\(N, 8\)"):
        plan.run(np.zeros((2, 9), np.float32))


def test_many_threads_share_one_plan():
    _, _, frozen = _frozen("encoder_layer")
    plan = Plan(frozen.graph)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 5, 8)).astype(np.float32) for _ in range(16)]
    want = [plan.run(x)[0] for x in xs]
    errors = []

    def worker(k):
        for r in range(40):
            i = (k + r) % len(xs)
            if not np.array_equal(plan.run(xs[i])[0], want[i]):
                errors.append(i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_interpreter_mode_for_checking():
    _, example, frozen = _frozen("cnn")
    x = example.numpy()
    np.testing.assert_array_equal(Plan(frozen.graph, native=False).run(x)[0], ir.run(frozen.graph, x)[0])


@pytest.mark.parametrize("kernel,stride,dilation", [(2, 2, 1), (3, 1, 1), (3, 2, 2), ((2, 3), (1, 2), 1)])
def test_max_pool_without_indices_matches_the_registry(kernel, stride, dilation):
    pool = tj.nn.MaxPool2d(kernel, stride, dilation=dilation)
    x = tj.randn(2, 3, 9, 10)
    x[0, 0, 0, 0] = float("nan")
    frozen = tj.freeze(tj.trace(pool, x, check_trace=False))
    got = Plan(frozen.graph).run(x.numpy())[0]
    np.testing.assert_array_equal(got, ir.run(frozen.graph, x.numpy())[0])
    assert np.isnan(got[0, 0]).any()
