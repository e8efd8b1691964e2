"""Arithmetic that produces inf and nan: the values PyTorch gives, and no numpy warnings as users see them."""

import math
import subprocess
import sys
import warnings

import pytest
from test_ops_numeric import assert_like_torch, needs_torch, torch

import tracejit as tj

INF_EXPRS = ["x - x", "x * 0", "x + x.flip(0)", "x.sum()", "x.view(1, 2) @ m.ones(2, 1)", "m.tensor([1e30]) * 1e30",
             "m.full((2,), 6e4, dtype=m.float16) * 2"]


@needs_torch
@pytest.mark.parametrize("expr", INF_EXPRS)
def test_inf_arithmetic_matches_torch(expr):
    with warnings.catch_warnings():  # values only; silence is checked below, as users see it
        warnings.simplefilter("ignore")
        out = eval(expr, {"m": tj, "x": tj.tensor([math.inf, -math.inf])})
    assert_like_torch(out, eval(expr, {"m": torch, "x": torch.tensor([math.inf, -math.inf])}))


def test_inf_arithmetic_is_silent_under_default_warning_filters():
    # A fresh interpreter: pytest's own warning capture takes precedence over tracejit's filter.
    code = "import math, tracejit as m\nx = m.tensor([math.inf, -math.inf])\n" + "".join(
        f"{e}\n" for e in INF_EXPRS)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Warning" not in run.stderr, run.stderr
