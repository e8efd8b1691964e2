"""Tensor ``repr`` formatting, a port of PyTorch 2.x ``torch/_tensor_str.py`` onto numpy arrays.

The output matches ``repr(torch.tensor(...))`` character for character (with ``tracejit.`` in
dtype names), so the algorithm below deliberately mirrors PyTorch's, quirks included.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["PRINT_OPTS", "PrintOptions", "format_array", "get_printoptions", "set_printoptions"]


@dataclasses.dataclass
class PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = PrintOptions()


def set_printoptions(
    precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None
):
    """Set printing options; same arguments and semantics as ``torch.set_printoptions``.

    ``profile`` is one of ``"default"``, ``"short"``, ``"full"``; explicit arguments override it.
    """
    if profile is not None:
        if profile == "default":
            PRINT_OPTS.precision, PRINT_OPTS.threshold = 4, 1000
            PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = 3, 80
        elif profile == "short":
            PRINT_OPTS.precision, PRINT_OPTS.threshold = 2, 1000
            PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = 2, 80
        elif profile == "full":
            PRINT_OPTS.precision, PRINT_OPTS.threshold = 4, math.inf
            PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = 3, 80
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    # PyTorch resets sci_mode on every call, even when it is not passed.
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict:
    """Current options as a dict that can be passed back to ``set_printoptions``."""
    return dataclasses.asdict(PRINT_OPTS)


class _Formatter:
    """Chooses one notation and width for every element of a (possibly summarized) array."""

    def __init__(self, arr: np.ndarray, floating: bool):
        self.floating_dtype = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = arr.reshape(-1)

        if not floating:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(f"{value}"))
            return

        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        # Ratios are taken in float64, as PyTorch does, so half/float32 cannot overflow here.
        absvals = np.abs(vals.astype(np.float64))
        vmin, vmax = float(absvals.min()), float(absvals.max())
        self.int_mode = not bool(np.any(vals != np.ceil(vals)))
        if PRINT_OPTS.sci_mode is None:
            self.sci_mode = vmax / vmin > 1000.0 or vmax > 1.0e8 or vmin < 1.0e-4
        else:
            self.sci_mode = PRINT_OPTS.sci_mode

        p = PRINT_OPTS.precision
        values = vals.tolist()
        if self.sci_mode:
            widths = (len(f"{v:.{p}e}") for v in values)
        elif self.int_mode:
            # +1 for the trailing "." that marks an integral float
            widths = (len(f"{v:.0f}") + 1 for v in values)
        else:
            widths = (len(f"{v:.{p}f}") for v in values)
        self.max_width = max(self.max_width, max(widths))

    def width(self) -> int:
        return self.max_width

    def format(self, value) -> str:
        if self.floating_dtype:
            p = PRINT_OPTS.precision
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{p}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{value:.{p}f}"
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _scalar_str(arr: np.ndarray, formatter: _Formatter) -> str:
    return formatter.format(arr.item())


def _vector_str(arr: np.ndarray, indent: int, summarize: bool, formatter: _Formatter) -> str:
    # element length includes the ", " separator
    element_length = formatter.width() + 2
    elements_per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / element_length))
    edge = PRINT_OPTS.edgeitems

    if summarize and not edge:
        data = ["..."]
    elif summarize and arr.shape[0] > 2 * edge:
        data = (
            [formatter.format(v) for v in arr[:edge].tolist()]
            + [" ..."]
            + [formatter.format(v) for v in arr[-edge:].tolist()]
        )
    else:
        data = [formatter.format(v) for v in arr.tolist()]

    lines = [", ".join(data[i : i + elements_per_line]) for i in range(0, len(data), elements_per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str_with_formatter(arr: np.ndarray, indent: int, summarize: bool, formatter: _Formatter) -> str:
    dim = arr.ndim
    if dim == 0:
        return _scalar_str(arr, formatter)
    if dim == 1:
        return _vector_str(arr, indent, summarize, formatter)

    edge = PRINT_OPTS.edgeitems
    n = arr.shape[0]

    def sub(i):
        return _tensor_str_with_formatter(arr[i], indent + 1, summarize, formatter)

    if summarize and n > 2 * edge:
        slices = [sub(i) for i in range(edge)] + ["..."] + [sub(i) for i in range(n - edge, n)]
    else:
        slices = [sub(i) for i in range(n)]
    return "[" + ("," + "\n" * (dim - 1) + " " * (indent + 1)).join(slices) + "]"


def _get_summarized_data(arr: np.ndarray) -> np.ndarray:
    """The elements that will actually be printed, so widths ignore the elided middle."""
    dim = arr.ndim
    edge = PRINT_OPTS.edgeitems
    if dim == 0:
        return arr
    if dim == 1:
        if arr.shape[0] > 2 * edge:
            # With edgeitems=0, arr[-0:] is the whole array; PyTorch has the same quirk.
            return np.concatenate((arr[:edge], arr[-edge:]))
        return arr
    if not edge:
        return np.empty([0] * dim, dtype=arr.dtype)
    n = arr.shape[0]
    rows = list(range(edge)) + list(range(n - edge, n)) if n > 2 * edge else range(n)
    return np.stack([_get_summarized_data(arr[i]) for i in rows])


def _tensor_str(arr: np.ndarray, indent: int, floating: bool) -> str:
    if arr.size == 0:
        return "[]"
    summarize = arr.size > PRINT_OPTS.threshold
    formatter = _Formatter(_get_summarized_data(arr) if summarize else arr, floating)
    return _tensor_str_with_formatter(arr, indent, summarize, formatter)


def _add_suffixes(tensor_str: str, suffixes, indent: int, force_newline: bool) -> str:
    tensor_strs = [tensor_str]
    # PyTorch's off-by-two line length estimate (rfind returns the index of "\n", then +1)
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        suffix_len = len(suffix)
        if force_newline or last_line_len + suffix_len + 2 > PRINT_OPTS.linewidth:
            tensor_strs.append(",\n" + " " * indent + suffix)
            last_line_len = indent + suffix_len
            force_newline = False
        else:
            tensor_strs.append(", " + suffix)
            last_line_len += suffix_len + 2
    tensor_strs.append(")")
    return "".join(tensor_strs)


def format_array(arr, *, dtype_name, is_default_dtype, is_floating, device=None, suffixes=()) -> str:
    """Render ``arr`` exactly like ``repr`` of the equivalent ``torch.Tensor``.

    ``is_default_dtype`` says whether PyTorch would omit ``dtype=`` (default float dtype, int64,
    bool); ``device`` is None for cpu; ``suffixes`` (e.g. ``"requires_grad=True"``) go last.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    prefix = "tensor("
    indent = len(prefix)
    all_suffixes = []
    if device is not None:
        all_suffixes.append(f"device='{device}'")

    dtype_suffix = f"dtype=tracejit.{dtype_name}"
    if arr.size == 0:
        # NumPy-style: the shape is shown unless it is (0,)
        if arr.ndim != 1:
            all_suffixes.append("size=" + str(tuple(int(s) for s in arr.shape)))
        # An empty int64/bool tensor still shows its dtype: only the default float dtype is implied.
        if not (is_default_dtype and is_floating):
            all_suffixes.append(dtype_suffix)
        tensor_str = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            all_suffixes.append("size=" + str(tuple(int(s) for s in arr.shape)))
        if not is_default_dtype:
            all_suffixes.append(dtype_suffix)
        tensor_str = _tensor_str(arr, indent, is_floating)

    all_suffixes.extend(suffixes)
    return _add_suffixes(prefix + tensor_str, all_suffixes, indent, force_newline=False)
