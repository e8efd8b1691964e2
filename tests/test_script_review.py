"""tracejit.script on PyTorch-style programs: control flow, run-time sizes and numbers, helpers and submodules,
compared with eager (and after save -> load) on inputs that take different paths, and clear errors for the rest."""

import math

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn as nn
from tests.script_helpers import check_scripted, flat_numpy
from tracejit.ir.interpreter import ScriptException
from tracejit.jit import ScriptError

N = {"x": {0: "N"}}


_np = flat_numpy
_check = check_scripted


# ---- behaviour that works ------------------------------------------------------------------------


def test_nested_branches_with_early_returns(tmp_path):
    def f(x):
        if x.sum() > 0:
            if x.max() > 5:
                return x * 10
            y = x + 1
        else:
            if x.min() < -5:
                return x * -10
            y = x - 1
        return y * 2

    _check(f, (tj.ones(3),), [(tj.ones(3) * 9,), (-tj.ones(3),), (-tj.ones(3) * 9,)], tmp_path=tmp_path)


def _scaled(x, scale=2.0, *, shift=1.0):
    return x * scale + shift


def _pick(x):
    if x.sum() > 0:
        return x, x.sum()
    return -x, x.mean()


def test_tuple_assigning_branches_and_helpers_with_defaults_and_keywords(tmp_path):
    def f(x):
        if x.sum() > 0:
            a, b = x * 2, x + 1
        else:
            a, b = x - 1, x * 3
        c, d = _pick(a - 3)
        return a + b + c * d + _scaled(x) + _scaled(x, 3.0) + _scaled(x, shift=5.0) + _scaled(x, scale=x.mean())

    _check(f, (tj.ones(3),), [(-tj.ones(3),), (tj.ones(3) * 5,)], tmp_path=tmp_path)


def test_shape_unpacking_and_negative_indexing_on_dynamic_dims(tmp_path):
    def f(x):
        n, d = x.shape
        out = x[-1] * d + x[1:].sum(0) + x[:-1].sum(0) + x[::2].sum(0) + x[..., 0].sum()
        for i in range(n):
            out = out + x[i] * i
        return out

    _check(f, (tj.randn(4, 3),), [(tj.randn(1, 3),), (tj.randn(2, 3),), (tj.randn(7, 3),)], N, tmp_path)


def test_while_with_counter_and_tensor_condition_and_number_results():
    def f(x):
        i = 0
        total = x.sum() * 0
        while i < x.size(0) and total < 5:
            total = total + x[i].sum()
            i += 1
        steps = 0
        n = x.size(0)
        while n > 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            steps += 1
        return total, x[:1] * 0 + i + steps

    _check(f, (tj.ones(3, 2),), [(tj.ones(1, 2),), (tj.ones(8, 2),), (tj.zeros(7, 2),)], N)


def test_loop_carried_shapes_change_and_zero_iteration_runs(tmp_path):
    def f(x):
        y = x[:0]
        for i in range(x.size(0)):
            if x[i].sum() > 0:
                y = tj.cat([y, x[i].unsqueeze(0)], 0)
        z = x
        while z.size(0) > 2:
            z = z[1:] + z[:-1]
        acc = x[0] * 0
        for i in range(x.size(0), 3):
            acc = acc + i
        for i in range(2, x.size(0) - 6, -2):
            acc = acc - i
        return y.sum(0) + z.sum(0) + acc

    _check(f, (tj.randn(4, 2),), [(tj.randn(1, 2),), (tj.randn(9, 2),), (-tj.ones(3, 2),)], N, tmp_path)


def test_item_int_float_conditions_and_conditional_expressions():
    def f(x):
        if x.sum().item() > 0:
            y = x + int(x.max())
        else:
            y = x - float(x.min())
        s = x.sum()
        k = 2.0 if s > 0 else 3.0
        return y * k if s > 5 else (y * 3 if s > 0 else y * 4)

    _check(f, (tj.ones(3),), [(-tj.ones(3) * 2.5,), (tj.ones(3) * 2.7,)])


def test_and_or_not_chains_mixing_tensors_and_python_values():
    def f(x, flag: bool = True):
        n = x.size(0)
        if flag and x.sum() > 0 or n > 3 and not x.mean() > 1:
            return x * 2
        if 1 < n <= 4 or (x > 5).any() and not (x > 6).all():
            return x + 1
        return x

    _check(f, (tj.ones(3),), [(-tj.ones(3),), (-tj.ones(5),), (tj.ones(5) * 2,), (tj.ones(1),)], N)


def test_min_max_abs_len_and_scalar_arithmetic_on_dynamic_sizes():
    def f(x):
        n = x.size(0)
        m = max(n - 2, 1)
        return x.sum() * m + abs(n - 5) + len(x) + min(n, 2) + n // 2 / 3 + int(-n / 2) + x.numel()

    _check(f, (tj.ones(3),), [(tj.ones(1),), (tj.ones(8),)], N)


def test_assert_and_raise_in_branches_and_loops(tmp_path):
    def f(x):
        acc = x[0] * 0
        for i in range(x.size(0)):
            if x[i].sum() < -100:
                raise ValueError("row too negative")
            acc = acc + x[i]
        assert acc.max() < 50, "sum too large"
        return acc

    s = _check(f, (tj.ones(3, 2),), [(tj.ones(5, 2),), (tj.ones(1, 2),)], N, tmp_path)
    with pytest.raises(ScriptException, match="ValueError: row too negative"):
        s(-tj.ones(4, 2) * 100)
    with pytest.raises(ScriptException, match="AssertionError: sum too large"):
        s(tj.ones(6, 2) * 10)
    with pytest.raises(Exception, match="row too negative"):
        tj.load(str(tmp_path / "m.tj"))(-np.ones((2, 2), np.float32) * 100)


class _Head(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x, temp: float = 1.0):
        y = self.act(self.fc(x) / temp)
        if y.mean() > 0:
            y = self.normalize(y)
        return y

    def act(self, x):
        return self.gate(x) * x

    def gate(self, x):
        return tj.sigmoid(x)

    def normalize(self, z, eps=1e-6):
        return z / (z.norm(dim=-1, keepdim=True) + eps)


class _Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([_Head(4) for _ in range(3)])
        self.seq = nn.Sequential(_Head(4), nn.ReLU(), _Head(4))
        self.heads = nn.ModuleDict({"a": _Head(4), "b": _Head(4)})

    def forward(self, x, mask: tj.Tensor | None = None):
        y = tj.stack([b(x, 2.0) for b in self.blocks]).sum(0)
        for i, b in enumerate(self.blocks):
            if i % 2 == 0:
                y = y + b(y, temp=0.5)
        y = self.seq(y)
        if mask is not None:
            y = y.masked_fill(mask, 0.0)
        best = self.heads["a"](y)
        other = self.heads["b"](y)
        best = other if other.max() > best.max() else best
        return best + len(self.blocks)


def test_modulelist_sequential_moduledict_with_user_modules(tmp_path):
    tj.manual_seed(0)
    m = _Stack().eval()
    _check(m, (tj.randn(2, 4),), [(tj.randn(5, 4) * 3,), (-tj.randn(1, 4),)], N, tmp_path)
    _check(m, (tj.randn(3, 4), tj.randn(3, 4) > 0), [(tj.randn(3, 4) * 3, tj.randn(3, 4) > 0)])


def test_unsupported_code_gives_a_script_error():
    def reshape_product(x):
        n, d = x.shape
        return x.reshape(n * d)

    def run_time_slice(x):
        return x[: x.size(0) // 2]

    def dtype_changes_in_loop(x):
        y = x.long()
        for _ in range(x.size(0)):
            y = y * 2.5
        return y

    def enumerate_dynamic(x):
        acc = x[0] * 0
        for i, r in enumerate(x):
            acc = acc + r * i
        return acc

    def return_in_unrolled_loop(x):
        for k in range(3):
            if x.sum() > k:
                return x * k
        return x

    def break_on_tensor(x):
        while True:
            x = x * 2
            if x.sum() > 10:
                break
        return x

    for f in (reshape_product, run_time_slice, dtype_changes_in_loop, enumerate_dynamic):
        with pytest.raises(ScriptError):
            tj.script(f, tj.ones(3, 2), dynamic_dims=N)
    _check(return_in_unrolled_loop, (tj.ones(3) * 0.1,), [(tj.ones(3),), (-tj.ones(3),)])
    _check(break_on_tensor, (tj.ones(3),), [(tj.ones(3) * 0.01,), (tj.ones(3) * 20,)])  # `while True` + break


# ---- bugs ----------------------------------------------------------------------------------------


def test_list_item_assigned_in_a_branch():
    def f(x):
        outs = [x, x]
        if x.sum() > 0:
            outs[1] = x * 2
        return outs[1] + 1

    _check(f, (tj.tensor([1, 2, 3]),), [(tj.tensor([-5, 1, 1]),), (tj.tensor([4, 4, 4]),)])


def test_run_time_size_in_a_tuple():
    def f(x):
        if x.size(0) in (2, 3):
            return x * 2
        return x

    _check(f, (tj.ones(4, 2),), [(tj.ones(2, 2),), (tj.ones(3, 2),)], N)


def test_shape_equality_guard():
    def f(x, y):
        if x.shape != y.shape:
            raise ValueError("shape mismatch")
        return x + y

    _check(f, (tj.ones(3, 2), tj.ones(3, 2)), [(tj.ones(5, 2), tj.ones(5, 2))], {"x": {0: "N"}, "y": {0: "N"}})


def test_int_power_with_negative_run_time_exponent():
    def f(x):
        return x * 2 ** int(x.sum())

    _check(f, (tj.ones(3),), [(-tj.ones(3),)])


def test_builtin_max_of_tensors():
    def f(x):
        return x * max(x.sum(), tj.tensor(1.0))

    _check(f, (tj.ones(3),), [(-tj.ones(3),)])


def test_branch_not_taken_is_compiled_on_example_data():
    def f(x):
        if x.size(0) > 2:
            return x[2]
        return x[0]

    _check(f, (tj.randn(2, 3),), [(tj.randn(4, 3),), (tj.randn(1, 3),)], N)


def test_loop_with_zero_iterations_on_the_example():
    def f(x):
        acc = x[0] * 0
        for i in range(x.size(0) - 1):
            acc = acc + x[i + 1] - x[i]
        return acc

    _check(f, (tj.ones(1, 2),), [(tj.randn(3, 2),), (tj.randn(6, 2),)], N)


def test_negative_run_time_index():
    def f(x, i):
        return x[int(i.sum())]

    _check(f, (tj.randn(4, 3), tj.ones(1)), [(tj.randn(4, 3), -tj.ones(1)), (tj.randn(4, 3), -tj.ones(1) * 4)])


def test_and_or_return_operands():
    def f(x):
        n = x.size(0) - 3
        return x * (n or 10) + (n and 2)

    _check(f, (tj.ones(5),), [(tj.ones(3),), (tj.ones(7),)], N)

    def mixed(x):
        n = x.size(0) - 3
        return x * (n > 0 and n)  # a bool on one path, an int on the other: no single type

    with pytest.raises(ScriptError, match="this expression is a bool on one path and a int on another"):
        tj.script(mixed, tj.ones(5), dynamic_dims=N)


def test_zero_dim_tensor_input(tmp_path):
    def f(x, t):
        if t > 0:
            return x * t
        return x

    _check(f, (tj.ones(3), tj.tensor(2.0)), [(tj.ones(3), tj.tensor(-1.0))], tmp_path=tmp_path)


def test_size_validation_with_dynamic_dims():
    def f(x):
        assert x.size(0) > 1, "need two rows"
        if x.size(0) > 4:
            raise ValueError("at most 4 rows")
        return x[1] - x[0]

    s = _check(f, (tj.ones(3, 2),), [(tj.randn(4, 2),)], N)
    with pytest.raises(ScriptException):
        s(tj.ones(1, 2))


def test_f_string_message_formats_run_time_values():
    def f(x):
        n = x.size(0)
        if x.sum() > 100:
            raise ValueError(f"too large with {n} rows")
        return x

    s = tj.script(f, tj.ones(3, 2), dynamic_dims=N)
    with pytest.raises(ScriptException, match="too large with 60 rows"):
        s(tj.ones(60, 2))


def test_run_time_size_given_to_library_code():
    def f(x):
        return x / math.sqrt(x.size(0)) + tj.zeros(x.size(0), 2)

    try:
        s = tj.script(f, tj.ones(4, 2), dynamic_dims=N)
    except ScriptError:
        return
    x = tj.ones(9, 2)
    np.testing.assert_allclose(s(x).numpy(), f(x).numpy(), rtol=1e-5)


def test_lazy_script_with_two_inputs_compiles_once():
    def f(x, y):
        return x + y

    lazy = tj.script(f, dynamic_dims={"x": {0: "N"}, "y": {0: "N"}})
    for n in (2, 3, 4):
        lazy(tj.ones(n, 2), tj.ones(n, 2))
    assert len(lazy._compiled) == 1
