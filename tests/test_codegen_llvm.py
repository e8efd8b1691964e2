"""LLVM CPU kernels for fusion groups: same values as the interpreter (nan, inf and -0.0
included), vectorized loops, and a clean refusal for what the backend does not lower."""

import re

import numpy as np
import pytest

import tracejit as tj
from tracejit import ir
from tracejit.codegen.llvm_cpu import lower_group

SPECIAL = [0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 1e-38, 3e38]


def _group(fn, n_inputs, dtype=tj.float32, n=257):
    t = tj.trace(fn, tuple(tj.ones(n, dtype=dtype) for _ in range(n_inputs)), check_trace=False)
    g = ir.parse(t.code)
    ir.run_passes(g, ["fuse"])
    groups = [node for node in g.nodes() if node.op == "prim::FusionGroup"]
    assert len(groups) == 1
    return g, groups[0]


def _inputs(k, dtype, n=257):
    rng = np.random.default_rng(k)
    x = rng.standard_normal(n).astype(dtype) * 10
    x[: len(SPECIAL)] = SPECIAL
    return rng.permutation(x)


FUNCS = [
    (lambda x, y: (x * 2 + y).relu() - y / 3, 2),
    (lambda x, y: tj.maximum(x, y) * tj.minimum(x, -y) + x.abs(), 2),
    (lambda x: (x.abs().sqrt() + 1).neg().floor() * x.ceil() - x.trunc(), 1),
    (lambda x, y: tj.sub(x, y, alpha=2) * 0.5 + tj.add(x, y, alpha=-1.5), 2),
]


@pytest.mark.parametrize("dtype", [tj.float32, tj.float64])
@pytest.mark.parametrize("k", range(len(FUNCS)))
def test_kernels_match_the_interpreter(k, dtype):
    fn, n_in = FUNCS[k]
    g, group = _group(fn, n_in, dtype)
    kernel = lower_group(group)
    assert kernel is not None
    feeds = [_inputs(i, dtype.np) for i in range(n_in)]
    want = ir.run(g, *feeds)[0]
    got = kernel(*feeds)[0]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6 if dtype is tj.float32 else 1e-13,
                               atol=1e-30)


def test_optimized_kernel_is_vectorized():
    _, group = _group(lambda x, y: (x * 2 + y).relu(), 2)
    kernel = lower_group(group)
    assert re.search(r"<\d+ x float>", kernel.llvm_ir), "the O3 loop vectorizer should emit vector types"


def test_what_the_backend_lacks_is_left_to_the_interpreter():
    _, group = _group(lambda x: (x * 2).sin(), 1)  # sin waits for its polynomial
    assert lower_group(group) is None
    _, group = _group(lambda x: (x * 2).exp(), 1, dtype=tj.float64)  # float64 exp is not lowered yet
    assert lower_group(group) is None
    _, group = _group(lambda x: (x * 2 + 1).relu(), 1, dtype=tj.int64)
    assert lower_group(group) is None


def test_empty_and_mismatched_inputs():
    _, group = _group(lambda x, y: (x + y).relu(), 2)
    kernel = lower_group(group)
    assert kernel(np.zeros(0, np.float32), np.zeros(0, np.float32))[0].shape == (0,)
    with pytest.raises(ValueError, match="one shape"):
        kernel(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_compiled_traced_module_matches_eager_and_falls_back_when_shapes_differ():
    def f(x, y):
        return ((x * 2 + y).relu() - y / 3).abs().sqrt() * 0.5 + x

    x, y = tj.randn(1000), tj.randn(1000)
    traced = tj.freeze(tj.trace(f, (x, y))).compile()
    assert len(traced.kernels) == 1
    np.testing.assert_allclose(traced(x, y).numpy(), f(x, y).numpy(), rtol=1e-6)
    from tracejit.ir.interpreter import _fits

    group = next(iter(traced.kernels))
    assert not _fits(group, [np.zeros(3, np.float32), np.zeros(3, np.float32)])


@pytest.mark.parametrize("name, ref", [
    ("exp", np.exp), ("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("tanh", np.tanh), ("log", np.log)])
def test_transcendentals_are_vectorized_polynomials_within_2e_6(name, ref):
    spread = np.geomspace(1e-45, 3e38, 100_001) if name == "log" else np.linspace(-110, 95, 100_001)
    x = np.concatenate([spread.astype(np.float32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-38, 88.72, 88.73, -87.3,
                                  -103.9, -104.5, 1.0, 1.4142135, 0.70710677, 2.0], np.float32)])
    _, group = _group(lambda a: getattr(a * 1.0, name)().neg(), 1, n=len(x))
    kernel = lower_group(group)
    assert kernel is not None and re.search(r"<\d+ x float>", kernel.llvm_ir)
    assert "@expf" not in kernel.llvm_ir and "@llvm.exp" not in kernel.llvm_ir  # no scalar libm calls
    with np.errstate(all="ignore"):
        want = (-ref(x.astype(np.float64))).astype(np.float32).astype(np.float64)  # the float32 result
    got = kernel(x)[0].astype(np.float64)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])  # inf, -inf and nan where numpy has them
    err = np.abs(got[finite] - want[finite]) / np.maximum(1.0, np.abs(want[finite]))
    assert err.max() <= 2e-6, f"{name}: error {err.max():.3g} at x={x[finite][np.argmax(err)]}"


@pytest.mark.parametrize("xs, ys", [((6, 5), (5,)), ((6, 5), (6, 1)), ((2, 3, 4), (3, 1)), ((4, 1), (1, 7))])
def test_broadcasting_inputs(xs, ys):
    out_shape = np.broadcast_shapes(xs, ys)
    t = tj.trace(lambda x, y: (x * 2 + y).relu() - y, (tj.randn(*xs), tj.randn(*ys)), check_trace=False)
    g = ir.parse(t.code)
    ir.run_passes(g, ["fuse"])
    group = next(n for n in g.nodes() if n.op == "prim::FusionGroup")
    kernel = lower_group(group)
    assert kernel is not None
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ys).astype(np.float32)
    got = kernel(x, y)[0]
    assert got.shape == out_shape
    np.testing.assert_allclose(got, np.maximum(x * 2 + y, 0) - y, rtol=1e-6)
    with pytest.raises(ValueError, match="compiled for input shape"):
        kernel(x, np.zeros((9,), np.float32))
