"""tracejit.codegen.blas: gemm, matmul, the linear and conv2d kernels against numpy and PyTorch, through the
CBLAS that was found and through the numpy fallback (TRACEJIT_BLAS=numpy), plus the error messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tracejit.codegen import blas

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
TOL = {np.float32: 1e-4, np.float64: 1e-11}


@pytest.fixture(params=["cblas", "numpy"])
def backend(request, monkeypatch):
    """Each test that asks for it runs once per backend; the module's choice is restored afterwards."""
    if request.param == "numpy":
        monkeypatch.setenv("TRACEJIT_BLAS", "numpy")
    else:
        monkeypatch.delenv("TRACEJIT_BLAS", raising=False)
    found = blas.load()
    if request.param == "cblas" and found.lib is None:
        pytest.skip("no CBLAS library found; only the numpy fallback runs here")
    yield found
    monkeypatch.undo()
    blas.load()


def _rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _close(got, want, dtype):
    scale = max(1.0, float(np.abs(want).max()) if np.size(want) else 1.0)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale)


# ---- backend selection ----------------------------------------------------------------------------------


def test_backend_found_or_fallback(backend):
    assert blas.backend() is backend
    if backend.lib is None:
        assert backend.name == "numpy" and backend.int_bits is None and blas.get_num_threads() is None
    else:
        assert backend.int_bits in (32, 64) and set(backend.gemm) == {np.dtype(np.float32), np.dtype(np.float64)}
        assert "fallback" not in repr(backend) and backend.name in repr(backend)


def test_fallback_forced_by_environment(monkeypatch):
    monkeypatch.setenv("TRACEJIT_BLAS", "numpy")
    try:
        assert blas.load().lib is None and blas.backend().name == "numpy"
    finally:
        monkeypatch.undo()
        blas.load()


def test_load_rejects_a_library_without_cblas(tmp_path):
    bogus = tmp_path / "libnotblas.so"
    bogus.write_bytes(b"not a shared library")
    try:
        with pytest.raises(ValueError, match="no loadable library with cblas_sgemm"):
            blas.load(str(bogus))
    finally:
        blas.load()


def test_thread_count_round_trip():
    before = blas.get_num_threads()
    if before is None:
        pytest.skip("this BLAS does not report its thread count")
    try:
        blas.set_num_threads(1)
        assert blas.get_num_threads() == 1
    finally:
        blas.set_num_threads(before)
    with pytest.raises(ValueError, match="positive thread count"):
        blas.set_num_threads(0)


# ---- gemm -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 9, 4), (7, 1, 3), (5, 6, 7), (33, 17, 65)])
def test_gemm_matches_numpy(backend, dtype, trans_a, trans_b, m, n, k):
    a = _rand(*((k, m) if trans_a else (m, k)), dtype=dtype, seed=1)
    b = _rand(*((n, k) if trans_b else (k, n)), dtype=dtype, seed=2)
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    out = np.full((m, n), np.nan, dtype)  # beta=0 must ignore what is there, NaN included
    _close(blas.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b), op_a @ op_b, dtype)
    c = _rand(m, n, dtype=dtype, seed=3)
    got = blas.gemm(a, b, c.copy(), trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=2.0)
    _close(got, -0.5 * (op_a @ op_b) + 2.0 * c, dtype)


@pytest.mark.parametrize("m,n,k", [(0, 3, 2), (3, 0, 2), (0, 0, 0)])
def test_gemm_empty_output(backend, m, n, k):
    out = np.empty((m, n))
    assert blas.gemm(np.ones((m, k)), np.ones((k, n)), out) is out


def test_gemm_empty_inner_dim_scales_out(backend):
    a, b = np.ones((2, 0)), np.ones((0, 3))
    assert blas.gemm(a, b, np.full((2, 3), np.nan)).tolist() == [[0.0] * 3] * 2
    assert blas.gemm(a, b, np.full((2, 3), 2.0), beta=0.5).tolist() == [[1.0] * 3] * 2


def test_gemm_takes_strided_layouts_without_copies(backend):
    big = _rand(10, 12, seed=4)
    a = big[1:6, 2:9]  # rows of a larger array: leading dimension 12
    b = np.asfortranarray(_rand(7, 4, seed=5))  # column-major: seen as a transposed row-major matrix
    out = np.zeros((4, 5), order="F")  # written as its transpose
    _close(blas.gemm(a, b, out.T).T, (a @ b).T, np.float64)
    out_rows = np.zeros((8, 9))[2:7, 1:5]  # out with a leading dimension
    _close(blas.gemm(a, b, out_rows), a @ b, np.float64)


def test_gemm_errors_say_what_was_wrong():
    a, b = np.ones((2, 3)), np.ones((3, 4))
    with pytest.raises(ValueError, match=r"unit stride along one axis.*ascontiguousarray\(a\)"):
        blas.gemm(np.ones((2, 6))[:, ::2], b, np.empty((2, 4)))
    with pytest.raises(ValueError, match="b has dtype float32 but out has float64"):
        blas.gemm(a, b.astype(np.float32), np.empty((2, 4)))
    with pytest.raises(ValueError, match="out has dtype int64; expected float32 or float64"):
        blas.gemm(a, b, np.empty((2, 4), np.int64))
    with pytest.raises(ValueError, match=r"op\(a\) is 2x3 and op\(b\) is 3x4, out has shape \(4, 2\).*\(2, 4\)"):
        blas.gemm(a, b, np.empty((4, 2)))
    with pytest.raises(ValueError, match=r"op\(a\) columns == op\(b\) rows"):
        blas.gemm(a, b, np.empty((2, 4)), trans_b=True)
    with pytest.raises(ValueError, match="must be 2-D"):
        blas.gemm(np.ones(3), b, np.empty((1, 4)))
    with pytest.raises(ValueError, match="must be a numpy array"):
        blas.gemm([[1.0]], np.ones((1, 1)), np.empty((1, 1)))
    square = np.ones((3, 3))
    with pytest.raises(ValueError, match="out overlaps a"):
        blas.gemm(square, np.ones((3, 3)), square)


# ---- matmul ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shapes", [((4, 5), (5, 3)), ((2, 4, 5), (5, 3)), ((2, 4, 5), (2, 5, 3)),
                                    ((1, 4, 5), (3, 5, 2)), ((3, 4, 5), (1, 5, 2)), ((4, 5), (3, 5, 2)),
                                    ((5,), (5, 3)), ((2, 2, 4, 5), (5, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_numpy(backend, shapes, dtype):
    a, b = _rand(*shapes[0], dtype=dtype, seed=6), _rand(*shapes[1], dtype=dtype, seed=7)
    want = np.matmul(a, b)
    got = blas.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    _close(got, want, dtype)
    out = np.empty_like(want)
    assert blas.matmul(a, b, out=out) is out
    _close(out, want, dtype)


def test_matmul_transposed_strided_and_mixed_dtypes(backend):
    a = _rand(3, 5, 4).transpose(0, 2, 1)  # each matrix Fortran-ordered
    _close(blas.matmul(a, _rand(3, 5, 2)), np.matmul(a, _rand(3, 5, 2)), np.float64)
    every_other = _rand(2, 4, 6)[:, :, ::2]  # no unit stride: numpy does it
    _close(blas.matmul(every_other, _rand(3, 2)), np.matmul(every_other, _rand(3, 2)), np.float64)
    mixed = blas.matmul(np.ones((2, 3), np.float32), np.ones((3, 2)))
    assert mixed.dtype == np.float64 and mixed.tolist() == [[3.0, 3.0]] * 2


# ---- linear ---------------------------------------------------------------------------------------------


def _linear_ref(x, w, b, activation):
    y = x @ w.T + (0 if b is None else b)
    return np.maximum(y, 0) if activation == "relu" else y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("x_shape", [(1, 13), (6, 13), (2, 3, 13), (13,)])
def test_linear_matches_numpy(backend, dtype, with_bias, activation, x_shape):
    w, x = _rand(7, 13, dtype=dtype, seed=8), _rand(*x_shape, dtype=dtype, seed=9)
    b = _rand(7, dtype=dtype, seed=10) if with_bias else None
    kernel = blas.LinearKernel(w, b, activation)
    want = _linear_ref(x, w, b, activation)
    _close(kernel(x), want, dtype)
    out = np.full(want.shape, np.nan, dtype)
    for _ in range(2):  # the second call reuses the remembered buffers
        assert kernel(x, out) is out
        _close(out, want, dtype)
    x[...] = _rand(*x_shape, dtype=dtype, seed=11)  # same buffer, new values
    _close(kernel(x, out), _linear_ref(x, w, b, activation), dtype)


def test_linear_copies_noncontiguous_x_and_snapshots_weights(backend):
    w, b = _rand(4, 6, seed=12), _rand(4, seed=13)
    kernel = blas.LinearKernel(w, b)
    x = _rand(6, 5, seed=14).T  # not C-contiguous
    want = x @ w.T + b
    w[...] = 0  # the kernel keeps its own copy
    _close(kernel(x), want, np.float64)
    _close(blas.linear(x, np.ones((2, 6)), None, "relu"), np.maximum(x @ np.ones((6, 2)), 0), np.float64)


def test_linear_degenerate_sizes(backend):
    assert blas.LinearKernel(np.ones((3, 4)), np.ones(3))(np.ones((0, 4))).shape == (0, 3)
    assert blas.LinearKernel(np.ones((3, 0)), np.arange(3.0))(np.ones((2, 0))).tolist() == [[0.0, 1.0, 2.0]] * 2
    assert blas.LinearKernel(np.ones((3, 0)))(np.ones((2, 0))).tolist() == [[0.0] * 3] * 2
    assert blas.LinearKernel(np.ones((0, 4)))(np.ones((2, 4))).shape == (2, 0)


def test_read_only_inputs(backend):
    x = _rand(2, 2, 6, 6, dtype=np.float32)
    x.setflags(write=False)
    w = _rand(3, 2, 3, 3, dtype=np.float32)
    _close(blas.conv2d(x, w), _torch_conv(x.copy(), w, None, 1, 0, 1, 1, None), np.float32)
    weight = _rand(5, 6, dtype=np.float32)
    _close(blas.linear(x, weight), x @ weight.T, np.float32)


def test_conv2d_empty_batch(backend):
    assert blas.conv2d(np.ones((0, 2, 5, 5)), np.ones((3, 2, 3, 3)), np.ones(3)).shape == (0, 3, 3, 3)


def test_linear_relu_keeps_nan():
    x = np.array([[np.nan, 1.0]], np.float32)
    assert np.isnan(blas.LinearKernel(np.eye(2, dtype=np.float32), activation="relu")(x)[0, 0])


def test_linear_errors_say_what_was_wrong():
    kernel = blas.LinearKernel(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="x has dtype float64; expected float32"):
        kernel(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"x has shape \(2, 5\); expected \(\.\.\., 4\)"):
        kernel(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected a float32 array of shape \(2, 3\)"):
        kernel(np.ones((2, 4), np.float32), np.empty((3, 2), np.float32))
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        kernel(np.ones((2, 4), np.float32), np.empty((3, 2), np.float32).T)
    with pytest.raises(ValueError, match="activation must be one of"):
        blas.LinearKernel(np.ones((3, 4)), activation="gelu")
    with pytest.raises(ValueError, match=r"bias has shape \(4,\)"):
        blas.LinearKernel(np.ones((3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        blas.LinearKernel(np.ones(4))


# ---- conv2d ---------------------------------------------------------------------------------------------

CONV_CASES = [  # (N, C_in, H, W), (C_out, kH, kW), stride, padding, dilation, groups
    ((2, 3, 9, 8), (4, 3, 3), 1, 0, 1, 1),
    ((2, 3, 9, 8), (4, 3, 3), 2, 1, 1, 1),
    ((1, 4, 10, 11), (6, 3, 2), (2, 1), (1, 2), (2, 1), 2),
    ((3, 4, 7, 7), (4, 3, 3), 1, 1, 1, 4),
    ((2, 2, 8, 8), (3, 4, 4), 1, "same", 1, 1),
    ((2, 2, 8, 9), (3, 3, 2), 1, "same", 2, 1),
    ((2, 2, 8, 8), (3, 1, 1), 3, "valid", 1, 1),
    ((1, 1, 28, 28), (8, 3, 3), 1, 0, 1, 1),
    ((5, 1, 12, 12), (8, 3, 3), 1, 0, 1, 1),
    ((3, 16, 10, 10), (32, 3, 3), 1, 0, 1, 1),
]


def _torch_conv(x, w, b, stride, padding, dilation, groups, activation):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = lambda a: None if a is None else torch.from_numpy(a)
    y = F.conv2d(t(x), t(w), t(b), stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (F.relu(y) if activation == "relu" else y).numpy()


LAYOUTS = {  # module settings that make a kernel pick each layout, with one image or a few per chunk
    "direct": dict(_ROWS_MIN_DEPTH=1 << 62, _CHUNK_BYTES={"direct": 1}),
    "rows": dict(_ROWS_MIN_DEPTH=0, _ROWS_MAX_WASTE=1e9, _CHUNK_BYTES={"rows": 1, "direct": 1}),
    "direct, chunks": dict(_ROWS_MIN_DEPTH=1 << 62, _CHUNK_BYTES={"direct": 1 << 14}),
    "rows, chunks": dict(_ROWS_MIN_DEPTH=0, _ROWS_MAX_WASTE=1e9, _CHUNK_BYTES={"rows": 1 << 14, "direct": 1}),
}


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("with_bias,activation", [(True, None), (False, "relu"), (True, "relu")])
def test_conv2d_matches_torch(backend, case, with_bias, activation, monkeypatch):
    x_shape, (c_out, kh, kw), stride, padding, dilation, groups = case
    x = _rand(*x_shape, dtype=np.float32, seed=15)
    w = _rand(c_out, x_shape[1] // groups, kh, kw, dtype=np.float32, seed=16)
    b = _rand(c_out, dtype=np.float32, seed=17) if with_bias else None
    args = (stride, padding, dilation, groups, activation)
    want = _torch_conv(x, w, b, *args)
    _close(blas.conv2d(x, w, b, *args), want, np.float32)
    for layout, settings in LAYOUTS.items():
        with monkeypatch.context() as m:
            for name, value in settings.items():
                m.setattr(blas, name, value)
            kernel = blas.Conv2dKernel(x.shape, w, b, *args)
        expected = layout.split(",")[0]
        width_stride = stride if isinstance(stride, int) else stride[1]
        if expected == "rows" and (width_stride != 1 or kw == 1):
            continue  # that layout cannot serve this case
        assert kernel.layout == expected
        out = np.full(kernel.out_shape, np.nan, np.float32)
        for _ in range(2):  # the second call reuses the remembered BLAS arguments
            assert kernel(x, out) is out
            _close(out, want, np.float32)
        _close(kernel(x), want, np.float32)


def test_conv2d_float64_unbatched_and_noncontiguous(backend):
    x, w, b = _rand(3, 9, 9, seed=18), _rand(5, 3, 3, 3, seed=19), _rand(5, seed=20)
    want = _torch_conv(x[None], w, b, 2, 1, 1, 1, None)[0]
    _close(blas.conv2d(x, w, b, stride=2, padding=1), want, np.float64)
    x_t = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)  # same values, not C-contiguous
    _close(blas.conv2d(x_t, w, b, stride=2, padding=1), want, np.float64)
    x, w = _rand(2, 8, 9, 9, seed=21), _rand(4, 8, 3, 3, seed=22)  # the "rows" layout
    assert blas.Conv2dKernel(x.shape, w).layout == "rows"
    _close(blas.conv2d(x, w, None, 1, 1, 1, 1, "relu"), _torch_conv(x, w, None, 1, 1, 1, 1, "relu"), np.float64)


def test_conv2d_errors_say_what_was_wrong():
    w = np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="expected C_in == weight.shape\\[1\\] \\* groups"):
        blas.Conv2dKernel((1, 4, 8, 8), w)
    with pytest.raises(ValueError, match="smaller than the dilated 5x5 kernel"):
        blas.Conv2dKernel((1, 3, 4, 4), w, dilation=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        blas.Conv2dKernel((1, 3, 8, 8), w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be non-negative"):
        blas.Conv2dKernel((1, 3, 8, 8), w, padding=-1)
    with pytest.raises(ValueError, match=r"bias has shape \(3,\)"):
        blas.Conv2dKernel((1, 3, 8, 8), w, np.ones(3, np.float32))
    kernel = blas.Conv2dKernel((1, 3, 8, 8), w)
    with pytest.raises(ValueError, match="build a kernel per input shape"):
        kernel(np.ones((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected a float32 array of shape \(1, 4, 6, 6\)"):
        kernel(np.ones((1, 3, 8, 8), np.float32), np.empty((1, 4, 6, 6)))
