"""tracejit._tensor_str must print arrays exactly like repr(torch.Tensor)."""

import re

import numpy as np
import pytest

from tracejit._tensor_str import PRINT_OPTS, format_array, set_printoptions


@pytest.fixture(autouse=True)
def _reset_printoptions():
    set_printoptions(profile="default")
    yield
    set_printoptions(profile="default")
    try:
        import torch
    except ImportError:
        return
    torch.set_printoptions(profile="default")


def fmt(arr, **kw):
    arr = np.asarray(arr)
    default = arr.dtype in (np.float32, np.int64, np.bool_)
    return format_array(
        arr,
        dtype_name=arr.dtype.name,
        is_default_dtype=kw.pop("is_default_dtype", default),
        is_floating=arr.dtype.kind == "f",
        **kw,
    )


# ---- torch-free cases with literal expectations -------------------------------------------


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.array([1.0, 2.0], np.float32), "tensor([1., 2.])"),
        (np.array([0.1, 0.2], np.float32), "tensor([0.1000, 0.2000])"),
        (np.array([1e-5, 1.0], np.float32), "tensor([1.0000e-05, 1.0000e+00])"),
        (np.array(3), "tensor(3)"),
        # bools are right-aligned to the widest element, as in PyTorch
        (np.array([True, False]), "tensor([ True, False])"),
        (np.array([True, True]), "tensor([True, True])"),
        (np.array([1.0, 2.0]), "tensor([1., 2.], dtype=tracejit.float64)"),
        (np.array([-1, 10, 100], np.int32), "tensor([ -1,  10, 100], dtype=tracejit.int32)"),
        (np.array([np.nan, np.inf, -np.inf, 1.0], np.float32), "tensor([nan, inf, -inf, 1.])"),
        (np.zeros((2, 2), np.float32), "tensor([[0., 0.],\n        [0., 0.]])"),
        (np.zeros((0,), np.float32), "tensor([])"),
        (np.zeros((0, 3), np.float32), "tensor([], size=(0, 3))"),
        (np.zeros((0,), np.int64), "tensor([], dtype=tracejit.int64)"),
    ],
)
def test_literal(arr, expected):
    assert fmt(arr) == expected


def test_device_and_suffixes():
    arr = np.array([1.0, 2.0], np.float32)
    assert fmt(arr, device="cuda:0") == "tensor([1., 2.], device='cuda:0')"
    assert fmt(arr, suffixes=("requires_grad=True",)) == "tensor([1., 2.], requires_grad=True)"


def test_set_printoptions_profiles():
    set_printoptions(profile="short")
    assert (PRINT_OPTS.precision, PRINT_OPTS.edgeitems) == (2, 2)
    assert fmt(np.array([1.12345], np.float32)) == "tensor([1.12])"
    set_printoptions(profile="full")
    assert PRINT_OPTS.threshold == float("inf")
    set_printoptions(threshold=5)
    assert fmt(np.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    set_printoptions(profile="default")
    assert fmt(np.arange(10)) == "tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"


# ---- comparisons against PyTorch ------------------------------------------------------------


def _cases():
    rng = np.random.default_rng(0)
    cases = {}
    for shape in [(5,), (3, 4), (2, 3, 4), (2, 1, 2, 3), (17,)]:
        for scale in [1e-6, 1.0, 1e5, 1e9]:
            for dt in (np.float32, np.float64):
                values = (rng.standard_normal(shape) * scale).astype(dt)
                cases[f"normal{shape}x{scale:g}-{np.dtype(dt).name}"] = values
    cases["intvalued"] = np.array([1.0, -2.0, 300.0, 0.0], np.float32)
    cases["intvalued_big"] = np.array([1.0, 2e9, -5.0], np.float32)
    cases["intvalued_wide"] = np.array([1.0, 1e4, 3.0], np.float64)
    cases["nan_inf"] = np.array([[np.nan, 1.5, np.inf], [-np.inf, 0.0, -2.25]], np.float32)
    cases["nan_inf_int"] = np.array([np.nan, 2.0, -np.inf], np.float32)
    cases["only_nonfinite"] = np.array([np.nan, np.inf, 0.0], np.float32)
    cases["neg_zero"] = np.array([-0.0, 0.0, 1.0], np.float32)
    cases["all_zero"] = np.zeros((3, 3), np.float32)
    cases["scalar_f"] = np.array(3.14159, np.float32)
    cases["scalar_f64"] = np.array(2.5e-7)
    cases["scalar_int"] = np.array(7, np.int32)
    cases["scalar_bool"] = np.array(True)
    cases["empty0"] = np.zeros((0,), np.float32)
    cases["empty03"] = np.zeros((0, 3), np.float32)
    cases["empty204"] = np.zeros((2, 0, 4), np.float32)
    cases["empty_i64"] = np.zeros((0, 2), np.int64)
    cases["empty_f64"] = np.zeros((0,), np.float64)
    for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        info = np.iinfo(dt)
        cases[f"int-{np.dtype(dt).name}"] = rng.integers(info.min, info.max, (4, 5), dtype=dt, endpoint=True)
    cases["bool"] = rng.random((3, 4)) > 0.5
    cases["float16"] = (rng.standard_normal((3, 5)) * 10).astype(np.float16)
    cases["float16_sci"] = np.array([1e-3, 6e4, np.inf], np.float16)
    cases["float64"] = rng.standard_normal((4, 3))
    cases["len2000"] = rng.standard_normal(2000).astype(np.float32)
    cases["40x40"] = rng.standard_normal((40, 40)).astype(np.float32)
    cases["3x1000"] = rng.standard_normal((3, 1000)).astype(np.float32)
    cases["1001"] = np.arange(1001, dtype=np.int64)
    cases["10x10x11"] = rng.standard_normal((10, 10, 11)) * 1e4
    cases["long_row"] = rng.standard_normal(60).astype(np.float32)
    cases["noncontig"] = (rng.standard_normal((6, 8)).astype(np.float32))[::2, ::-3]
    cases["transposed"] = np.arange(12, dtype=np.int64).reshape(3, 4).T
    return cases


CASES = _cases()


def _torch_expected(torch, t):
    """repr(t) with dtype names renamed *before* suffix wrapping.

    "tracejit." is 3 characters longer than "torch.", so PyTorch's line-wrapping decision for
    suffixes must be re-run on the renamed suffixes rather than textually replacing its output.
    """
    from torch._tensor_str import _add_suffixes, _tensor_str

    full = repr(t)
    with torch.no_grad():
        body = "tensor(" + _tensor_str(t.detach(), 7)
    assert full.startswith(body)
    rest = full[len(body) : -1]
    suffixes = re.split(r",\s+(?=[a-z_]+=)", rest)[1:] if rest else []
    return _add_suffixes(body, [x.replace("torch.", "tracejit.") for x in suffixes], 7, False)


def _torch_repr(torch, arr):
    return _torch_expected(torch, torch.from_numpy(arr.copy(order="C")))


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    arr = CASES[name]
    assert fmt(arr) == _torch_repr(torch, arr)


OPTIONS = [
    dict(precision=2),
    dict(precision=0),
    dict(precision=8),
    dict(sci_mode=True),
    dict(sci_mode=False),
    dict(threshold=5),
    dict(threshold=5, edgeitems=1),
    dict(threshold=5, edgeitems=0),
    dict(edgeitems=0),
    dict(linewidth=40),
    dict(linewidth=200),
    dict(profile="short"),
    dict(profile="full"),
]


@pytest.mark.torch
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize(
    "name",
    [
        "normal(3, 4)x1-float32",
        "normal(17,)x100000-float64",
        "int-int16",
        "nan_inf",
        "40x40",
        "1001",
        "10x10x11",
        "scalar_f",
        "bool",
        "empty03",
    ],
)
def test_matches_torch_with_options(opts, name):
    torch = pytest.importorskip("torch")
    torch.set_printoptions(**opts)
    set_printoptions(**opts)
    arr = CASES[name]
    assert fmt(arr) == _torch_repr(torch, arr)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["normal(5,)x1-float64", "normal(3, 4)x1e-06-float64", "long_row", "40x40"])
def test_matches_torch_autograd_suffixes(name):
    torch = pytest.importorskip("torch")
    arr = CASES[name]
    leaf = torch.from_numpy(arr.copy(order="C")).requires_grad_()
    assert fmt(arr, suffixes=("requires_grad=True",)) == _torch_expected(torch, leaf)
    out = leaf * 2
    assert fmt(arr * 2, suffixes=("grad_fn=<MulBackward0>",)) == _torch_expected(torch, out)


@pytest.mark.torch
@pytest.mark.parametrize("linewidth", [80, 30])
def test_suffix_wrapping_matches_torch(linewidth):
    torch = pytest.importorskip("torch")
    from torch._tensor_str import _add_suffixes

    torch.set_printoptions(linewidth=linewidth)
    set_printoptions(linewidth=linewidth)
    arr = CASES["normal(3, 4)x1-float32"].astype(np.float64)
    suffixes = ["requires_grad=True", "grad_fn=<SomeVeryLongBackwardFunctionName0>", "tag=x" * 5, "a=1"]
    body = "tensor(" + torch._tensor_str._tensor_str(torch.from_numpy(arr), 7)
    expected = _add_suffixes(body, ["device='cuda:1'", "dtype=tracejit.float64"] + suffixes, 7, False)
    assert fmt(arr, device="cuda:1", suffixes=tuple(suffixes)) == expected
