"""Helpers shared by the nn tests that compare against PyTorch."""

import numpy as np
import pytest

DTYPES = {"float32": (np.float32, 1e-5), "float64": (np.float64, 1e-10)}


def torch_or_skip():
    return pytest.importorskip("torch")


def as_np(t):
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t)


def close(got, want, rtol, what):
    """Same shape, and values within rtol (absolute tolerance scaled by the largest reference value)."""
    got, want = as_np(got), as_np(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=rtol * scale,
                               err_msg=what)
