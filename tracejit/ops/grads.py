"""Gradient rules for the registry's differentiable ops.

A rule is `rule(F, ctx, *grad_outputs) -> grad per input` (None where an input gets no
gradient; a list for a list input). It is written with tensor ops from `F`, the namespace
of the front end's functions that autograd passes in, so this core module never imports
the front end, and a backward pass is made of dispatched ops that can themselves be
differentiated or traced. `ctx.input(i)`, `ctx.output(i)`, `ctx.shape(i)`, `ctx.dtype(i)`
and `ctx.attrs` describe the forward call.

    >>> from tracejit.ops import get
    >>> get("tj::mul").grad is not None
    True
"""

from __future__ import annotations

import math

from . import elementwise, linalg, movement, reduction  # noqa: F401 - the ops these rules attach to
from .registry import get

# Ops whose rules read the forward output (saved without a reference cycle) ...
_SAVE_OUTPUT = {"exp", "expm1", "sqrt", "rsqrt", "reciprocal", "tan", "tanh", "sigmoid", "relu", "pow", "prod",
                "amax", "amin", "logsumexp", "norm", "softmax", "log_softmax", "std", "max_dim", "min_dim"}
# ... and ops whose rules need only input shapes and attributes, not input values.
_NO_INPUTS = {"add", "sub", "neg", "view", "reshape", "permute", "expand", "unsqueeze", "squeeze", "slice",
              "select", "sum", "mean", "cat", "stack", "flip", "roll", "tril", "triu", "clone", "contiguous",
              "to_dtype", "copy", "sign", "floor", "ceil", "trunc", "round", "relu", "exp", "tanh", "sigmoid",
              "softmax", "log_softmax", "cumsum", "repeat", "sqrt", "rsqrt", "reciprocal", "expm1", "tan"}


def saves(op):
    """(save inputs?, save outputs?) for recording `op`."""
    return op.grad_saves_inputs, op.grad_saves_outputs


def set_rule(name, rule, *, inputs=True, outputs=False):
    """Attach a gradient rule to an op and say what it reads from the forward call."""
    op = get(name)
    op.grad = rule
    op.grad_saves_inputs = inputs
    op.grad_saves_outputs = outputs


def _is_t(x):
    return hasattr(x, "_data")


def _unary(rule):
    return lambda F, ctx, g: (rule(F, ctx, g),)


def _expand_back(F, ctx, g, dim, keepdim):
    """A reduced gradient broadcast back to the input's shape."""
    shape = ctx.shape(0)
    if dim is None:
        return g.reshape((1,) * len(shape)).expand(shape) if len(shape) else g
    if not keepdim:
        for d in sorted(dim):
            g = g.unsqueeze(d)
    return g.expand(shape)


def _count(shape, dim):
    n = 1
    for i, d in enumerate(shape):
        if dim is None or i in dim:
            n *= d
    return n


UNARY = {
    "neg": lambda F, c, g: -g,
    "abs": lambda F, c, g: g * c.input(0).sign(),
    "exp": lambda F, c, g: g * c.output(),
    "log": lambda F, c, g: g / c.input(0),
    "log1p": lambda F, c, g: g / (c.input(0) + 1),
    "expm1": lambda F, c, g: g * (c.output() + 1),
    "sqrt": lambda F, c, g: g * 0.5 / c.output(),
    "rsqrt": lambda F, c, g: g * -0.5 * c.output() ** 3,
    "reciprocal": lambda F, c, g: -g * c.output() * c.output(),
    "sin": lambda F, c, g: g * c.input(0).cos(),
    "cos": lambda F, c, g: -g * c.input(0).sin(),
    "tan": lambda F, c, g: g * (c.output() * c.output() + 1),
    "tanh": lambda F, c, g: g * (1 - c.output() * c.output()),
    "sigmoid": lambda F, c, g: g * c.output() * (1 - c.output()),
    "erf": lambda F, c, g: g * (2.0 / math.sqrt(math.pi)) * (-(c.input(0) * c.input(0))).exp(),
    "relu": lambda F, c, g: g * (c.output() > 0),
    "clone": lambda F, c, g: g,
    "contiguous": lambda F, c, g: g,
    "to_dtype": lambda F, c, g: g.to(c.dtype(0)),
}
for _n in ("sign", "floor", "ceil", "trunc", "round"):
    UNARY[_n] = lambda F, c, g: F.zeros_like(g)


def _grad_add(F, c, g):
    alpha = c.attrs.get("alpha", 1)
    return F.sum_to(g, c.shape(0)), F.sum_to(g * alpha if alpha != 1 else g, c.shape(1))


def _grad_sub(F, c, g):
    alpha = c.attrs.get("alpha", 1)
    return F.sum_to(g, c.shape(0)), F.sum_to(-g * alpha if alpha != 1 else -g, c.shape(1))


def _grad_mul(F, c, g):
    a, b = c.input(0), c.input(1)
    return F.sum_to(g * b, c.shape(0)), F.sum_to(g * a, c.shape(1))


def _grad_div(F, c, g):
    if c.attrs.get("rounding_mode") is not None:
        return F.sum_to(F.zeros_like(g), c.shape(0)), F.sum_to(F.zeros_like(g), c.shape(1))
    a, b = c.input(0), c.input(1)
    ga = g / b
    return F.sum_to(ga, c.shape(0)), F.sum_to(-ga * a / b, c.shape(1))


def _grad_pow(F, c, g):
    a, b = c.input(0), c.input(1)
    ga = gb = None
    if _is_t(a):
        if _is_t(b):
            ga = F.where(b == 0, 0.0, g * b * a ** (b - 1))
        else:
            ga = g * 0.0 if b == 0 else g * b * a ** (b - 1)
        ga = F.sum_to(ga, c.shape(0))
    if _is_t(b):
        out = c.output()
        if _is_t(a):
            gb = F.where((a == 0) & (b >= 0), 0.0, g * out * a.log())
        else:
            if a > 0:
                gb = g * out * math.log(a)
            else:  # log of a non-positive base: -inf at 0 (no effect where b >= 0, as in PyTorch), nan below
                log_a = float("-inf") if a == 0 else float("nan")
                gb = F.where(b >= 0, 0.0, g * out * log_a) if a == 0 else g * out * log_a
        gb = F.sum_to(gb, c.shape(1))
    return ga, gb


def _grad_maxmin(pick):
    def rule(F, c, g):
        a, b = c.input(0), c.input(1)
        ta = a > b if pick == "max" else a < b
        tie = (a == b) * 0.5
        wa = ta + tie
        wb = (~ta & (a != b)) + tie if _is_t(b) else None
        return F.sum_to(g * wa, c.shape(0)), (F.sum_to(g * wb, c.shape(1)) if wb is not None else None)

    return rule


def _grad_atan2(F, c, g):
    a, b = c.input(0), c.input(1)
    den = a * a + b * b
    return F.sum_to(g * b / den, c.shape(0)), F.sum_to(-g * a / den, c.shape(1))


def _grad_rem(rounding):
    def rule(F, c, g):
        a, b = c.input(0), c.input(1)
        q = F.div(a, b, rounding_mode=rounding)
        return F.sum_to(g, c.shape(0)), (F.sum_to(-g * q, c.shape(1)) if _is_t(b) else None)

    return rule


def _grad_clamp(F, c, g):
    x, lo, hi = c.input(0), c.input(1), c.input(2)
    keep = F.ones_like(x, dtype=F.bool)
    if lo is not None:
        keep = keep & (x >= lo)
    if hi is not None:
        keep = keep & (x <= hi)
    g_lo = F.sum_to(g * (x < lo), c.shape(1)) if _is_t(lo) else None
    g_hi = F.sum_to(g * (x > hi), c.shape(2)) if _is_t(hi) else None
    return F.sum_to(g * keep, c.shape(0)), g_lo, g_hi


def _grad_where(F, c, g):
    cond = c.input(0)
    zero = F.zeros_like(g)
    return None, F.sum_to(F.where(cond, g, zero), c.shape(1)), F.sum_to(F.where(cond, zero, g), c.shape(2))


def _grad_masked_fill(F, c, g):
    return F.sum_to(F.where(c.input(1), F.zeros_like(g), g), c.shape(0)), None, None


BINARY = {
    "add": _grad_add, "sub": _grad_sub, "mul": _grad_mul, "div": _grad_div, "pow": _grad_pow,
    "maximum": _grad_maxmin("max"), "minimum": _grad_maxmin("min"), "atan2": _grad_atan2,
    "remainder": _grad_rem("floor"), "fmod": _grad_rem("trunc"), "clamp": _grad_clamp, "where": _grad_where,
    "masked_fill": _grad_masked_fill,
}

# ---- reductions -----------------------------------------------------------------------------


def _grad_sum(F, c, g):
    return (_expand_back(F, c, g, c.attrs.get("dim"), c.attrs.get("keepdim", False)),)


def _grad_mean(F, c, g):
    dim = c.attrs.get("dim")
    return (_expand_back(F, c, g, dim, c.attrs.get("keepdim", False)) / _count(c.shape(0), dim),)


def _grad_prod(F, c, g):
    x, out = c.input(0), c.output()
    dim, keepdim = c.attrs.get("dim"), c.attrs.get("keepdim", False)
    out_b = _expand_back(F, c, out, dim, keepdim)
    g_b = _expand_back(F, c, g, dim, keepdim)
    zero = x == 0
    # The product of the other elements: out/x when x != 0; for a zero, the product of the
    # non-zeros when it is the only zero in its slice, else 0.
    nonzero_prod = F.prod(F.where(zero, F.ones_like(x), x), dim, True) if dim is not None else \
        F.prod(F.where(zero, F.ones_like(x), x)).reshape((1,) * x.ndim)
    zeros_in_slice = F.sum(zero, dim, True) if dim is not None else F.sum(zero).reshape((1,) * x.ndim)
    others = F.where(zero, nonzero_prod * (zeros_in_slice == 1), out_b / F.where(zero, F.ones_like(x), x))
    return (g_b * others,)


def _grad_amaxmin(F, c, g):
    x, out = c.input(0), c.output()
    dim, keepdim = c.attrs.get("dim"), c.attrs.get("keepdim", False)
    mask = x == _expand_back(F, c, out, dim, keepdim)
    count = F.sum(mask, dim, True) if dim is not None else F.sum(mask)
    return (_expand_back(F, c, g, dim, keepdim) * mask / count,)


def _grad_maxmin_dim(F, c, g_vals, g_idx=None):
    dim, keepdim = c.attrs["dim"], c.attrs.get("keepdim", False)
    if g_vals is None:
        return (None,)
    idx = c.output(1)
    if not keepdim:
        idx, g_vals = idx.unsqueeze(dim), g_vals.unsqueeze(dim)
    return (F.zeros(c.shape(0), dtype=g_vals.dtype, device=g_vals.device).scatter(dim, idx, g_vals),)


def _grad_var(F, c, g):
    x = c.input(0)
    dim, keepdim, corr = c.attrs.get("dim"), c.attrs.get("keepdim", False), c.attrs.get("correction", 1)
    n = _count(c.shape(0), dim)
    mean = F.mean(x, dim, True) if dim is not None else F.mean(x)
    gb = _expand_back(F, c, g, dim, keepdim)
    return (gb * 2.0 * (x - mean) / max(0, n - corr),)


def _grad_std(F, c, g):
    x, out = c.input(0), c.output()
    dim, keepdim, corr = c.attrs.get("dim"), c.attrs.get("keepdim", False), c.attrs.get("correction", 1)
    n = _count(c.shape(0), dim)
    mean = F.mean(x, dim, True) if dim is not None else F.mean(x)
    gb = _expand_back(F, c, g, dim, keepdim)
    ob = _expand_back(F, c, out, dim, keepdim)
    return (gb * (x - mean) / (ob * max(0, n - corr)),)


def _grad_logsumexp(F, c, g):
    x, out = c.input(0), c.output()
    dim, keepdim = c.attrs["dim"], c.attrs.get("keepdim", False)
    return (_expand_back(F, c, g, dim, keepdim) * (x - _expand_back(F, c, out, dim, keepdim)).exp(),)


def _grad_norm(F, c, g):
    x, out = c.input(0), c.output()
    p, dim, keepdim = c.attrs.get("p", 2.0), c.attrs.get("dim"), c.attrs.get("keepdim", False)
    gb, ob = _expand_back(F, c, g, dim, keepdim), _expand_back(F, c, out, dim, keepdim)
    if p == 2.0:
        return (F.where(ob == 0, F.zeros_like(x), gb * x / ob),)
    if p == 1.0:
        return (gb * x.sign(),)
    if math.isinf(p):
        mask = x.abs() == ob
        count = F.sum(mask, dim, True) if dim is not None else F.sum(mask)
        return (gb * x.sign() * mask / count,)
    if p == 0:
        return (F.zeros_like(x),)
    return (F.where(ob == 0, F.zeros_like(x), gb * x * x.abs() ** (p - 2) / ob ** (p - 1)),)


def _grad_softmax(F, c, g):
    out, dim = c.output(), c.attrs["dim"]
    return (out * (g - F.sum(g * out, dim, True)),)


def _grad_log_softmax(F, c, g):
    out, dim = c.output(), c.attrs["dim"]
    return (g - out.exp() * F.sum(g, dim, True),)


def _grad_cumsum(F, c, g):
    dim = c.attrs["dim"]
    return (F.flip(F.cumsum(F.flip(g, dim), dim), dim).to(c.dtype(0)),)


REDUCTIONS = {
    "sum": _grad_sum, "mean": _grad_mean, "prod": _grad_prod, "amax": _grad_amaxmin, "amin": _grad_amaxmin,
    "max_dim": _grad_maxmin_dim, "min_dim": _grad_maxmin_dim, "var": _grad_var, "std": _grad_std,
    "logsumexp": _grad_logsumexp, "norm": _grad_norm, "softmax": _grad_softmax, "log_softmax": _grad_log_softmax,
    "cumsum": _grad_cumsum,
}

# ---- movement -------------------------------------------------------------------------------


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _place(F, c, g, dim, start, end, step):
    """A zero gradient of the input's shape with `g` at positions start:end:step of `dim`."""
    shape = c.shape(0)
    idx = F.arange(start, end, step, device=g.device)
    view = [1] * len(shape)
    view[dim] = idx.shape[0]
    idx = idx.reshape(view).expand(g.shape)
    return F.zeros(shape, dtype=g.dtype, device=g.device).scatter(dim, idx, g)


def _grad_slice(F, c, g):
    a = c.attrs
    return (_place(F, c, g, a["dim"], a["start"], a["end"], a["step"]),)


def _grad_select(F, c, g):
    a = c.attrs
    return (_place(F, c, g.unsqueeze(a["dim"]), a["dim"], a["index"], a["index"] + 1, 1),)


def _grad_cat(F, c, g):
    dim = c.attrs.get("dim", 0)
    shapes = c.shape(0)
    sizes = [s[dim] if not (len(s) == 1 and s[0] == 0) else 0 for s in shapes]
    parts = iter(F.split(g, [s for s in sizes if s], dim))
    return ([next(parts) if s else F.zeros(shapes[i], dtype=g.dtype, device=g.device) for i, s in enumerate(sizes)],)


def _grad_stack(F, c, g):
    return (list(F.unbind(g, c.attrs.get("dim", 0))),)


def _grad_gather(F, c, g):
    dim, idx = c.attrs["dim"], c.input(1)
    return F.zeros(c.shape(0), dtype=g.dtype, device=g.device).scatter(dim, idx, g, reduce="add"), None


def _grad_scatter(F, c, g):
    dim, idx, src, reduce = c.attrs["dim"], c.input(1), c.input(2), c.attrs.get("reduce")
    if reduce not in (None, "add"):
        raise RuntimeError(f"the derivative of scatter with reduce={reduce!r} is not implemented")
    gx = g if reduce == "add" else g.scatter(dim, idx, 0.0)
    gsrc = F.gather(g, dim, idx) if _is_t(src) else None
    return gx, None, gsrc


def _grad_index_select(F, c, g):
    dim, idx = c.attrs["dim"], c.input(1)
    view = [1] * len(c.shape(0))
    view[dim] = idx.shape[0] if idx.ndim else 1
    full = idx.long().reshape(view).expand(g.shape)
    return F.zeros(c.shape(0), dtype=g.dtype, device=g.device).scatter(dim, full, g, reduce="add"), None


def _grad_repeat(F, c, g):
    reps = c.attrs["repeats"]
    shape = (1,) * (len(reps) - len(c.shape(0))) + tuple(c.shape(0))
    split = []
    for r, s in zip(reps, shape):
        split += [r, s]
    g = g.reshape(split).sum(tuple(range(0, 2 * len(reps), 2)))
    return (g.reshape(c.shape(0)),)


def _grad_index(F, c, g):
    x = c.shape(0)
    zeros = F.zeros(x, dtype=g.dtype, device=g.device)
    return F.index_put(zeros, c.input(1), g, accumulate=True), None


def _grad_index_put(F, c, g):
    indices, values = c.input(1), c.input(2)
    accumulate = c.attrs.get("accumulate", False)
    gx = g if accumulate else F.index_put(g, indices, F.zeros((), dtype=g.dtype, device=g.device))
    gv = F.sum_to(F.index(g, indices), c.shape(2)) if _is_t(values) else None
    return gx, None, gv


def _grad_copy(F, c, g):
    return F.zeros_like(g), (F.sum_to(g, c.shape(1)).to(c.dtype(1)) if c.shape(1) is not None else None)


def _grad_matmul(F, c, g):
    a, b = c.input(0), c.input(1)
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = g2.unsqueeze(-2)
    if b.ndim == 1:
        g2 = g2.unsqueeze(-1)
    ga = F.sum_to(F.matmul(g2, b2.transpose(-1, -2)), a2.shape).reshape(c.shape(0)) if _needs(c, 0) else None
    gb = F.sum_to(F.matmul(a2.transpose(-1, -2), g2), b2.shape).reshape(c.shape(1)) if _needs(c, 1) else None
    return ga, gb


def _needs(c, i):
    return c.needs_input_grad(i) if hasattr(c, "needs_input_grad") else True


def _grad_linear(F, c, g):
    # The first layer's input rarely needs a gradient: skipping it saves a third of the backward matmuls.
    x, w, b = c.input(0), c.input(1), c.input(2)
    gx = F.matmul(g, w) if _needs(c, 0) else None
    g2 = g.reshape(-1, g.shape[-1])
    gw = F.matmul(g2.t(), x.reshape(-1, x.shape[-1])) if _needs(c, 1) else None
    gb = g2.sum(0) if _is_t(b) and _needs(c, 2) else None
    return gx, gw, gb


MOVEMENT = {
    "view": lambda F, c, g: (g.reshape(c.shape(0)),),
    "reshape": lambda F, c, g: (g.reshape(c.shape(0)),),
    "permute": lambda F, c, g: (g.permute(_inverse(c.attrs["dims"])),),
    "expand": lambda F, c, g: (F.sum_to(g, c.shape(0)),),
    "unsqueeze": lambda F, c, g: (g.squeeze(c.attrs["dim"]),),
    "squeeze": lambda F, c, g: (g.reshape(c.shape(0)),),
    "slice": _grad_slice, "select": _grad_select, "cat": _grad_cat, "stack": _grad_stack,
    "gather": _grad_gather, "scatter": _grad_scatter, "index_select": _grad_index_select,
    "repeat": _grad_repeat,
    "flip": lambda F, c, g: (F.flip(g, c.attrs["dims"]),),
    "roll": lambda F, c, g: (_unroll(F, c, g),),
    "tril": lambda F, c, g: (F.tril(g, c.attrs.get("diagonal", 0)),),
    "triu": lambda F, c, g: (F.triu(g, c.attrs.get("diagonal", 0)),),
    "index": _grad_index, "index_put": _grad_index_put, "copy": _grad_copy, "matmul": _grad_matmul,
    "linear": _grad_linear,
}


def _unroll(F, c, g):
    shifts, dims = c.attrs["shifts"], c.attrs["dims"]
    if not dims:
        return F.roll(g.reshape(-1), -shifts).reshape(c.shape(0))
    return F.roll(g, tuple(-s for s in shifts), dims)


def _install():
    rules = {name: _unary(rule) for name, rule in UNARY.items()}
    for table in (BINARY, REDUCTIONS, MOVEMENT):
        rules.update(table)
    for name, rule in rules.items():
        set_rule(f"tj::{name}", rule, inputs=name not in _NO_INPUTS, outputs=name in _SAVE_OUTPUT)


_install()
