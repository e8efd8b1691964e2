"""tracejit.script, second review: break/continue/return in static and run-time loops, containers changed in
branches and loops, and/or operands, max/min, f-string messages, Python-number inputs and outputs, lambdas,
grad-mode blocks, tracejit.compile and lazy scripting; every graph goes through save -> load and the IR parser."""

import contextlib
import signal

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


class _Hang(Exception):
    """Raised by _deadline in a block still running after its time (and every second after)."""


@contextlib.contextmanager
def _deadline(seconds):
    def stop(*_):
        raise _Hang(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- behaviour that works ------------------------------------------------------------------------


def test_breaks_and_continues_at_several_levels(tmp_path):
    def f(x):
        acc = x[0] * 0
        for i in range(x.size(0)):  # run-time loop around a static one, each left by its own `break`
            for j in range(3):
                if x[i].sum() * j > 2:
                    break
                acc = acc + x[i] * j
            if acc.sum() > 10:
                break
        k = 0
        while True:  # exit on a tensor: becomes a loop at the first run-time `break`
            k += 1
            if acc.sum() + k > 12:
                break
            if k % 2 == 0:
                continue
            acc = acc * 0.5
        return acc, k

    _check(f, (tj.ones(4, 2),), [(tj.ones(1, 2),), (tj.ones(8, 2) * 3,), (-tj.ones(3, 2),)], N, tmp_path)


def test_return_of_tuples_from_loops_in_branches_and_a_while_turning_run_time(tmp_path):
    def f(x):
        if x.sum() > 0:
            for k in range(3):
                if x.max() > k + 0.5:
                    return x * k, k
        i = 0
        while i < 2 or x.sum() < 50:
            if x.sum() > 40:
                return x, i
            x = x.abs() * 2 + 0.1
            i += 1
        return x * 0, -1

    _check(f, (tj.ones(2),), [(tj.ones(2) * 0.1,), (-tj.ones(2) * 0.01,), (-tj.ones(2) * 30,), (tj.ones(2) * 5,)],
           tmp_path=tmp_path)


class _Early(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(4)])

    def forward(self, x):
        with tj.no_grad():
            for k, layer in enumerate(self.layers):
                x = layer(x)
                if x.abs().max() > 2.0:
                    return x, k
                for j in range(2):
                    if x.sum() > j + 5:
                        break
                    x = x * 1.1
        return x, -1


def test_module_early_return_lazy_compile_and_load(tmp_path):
    tj.manual_seed(0)
    m = _Early().eval()
    xs = [tj.randn(2, 3), tj.randn(5, 3) * 10, tj.randn(1, 3) * 0.01]
    _check(m, (xs[0],), [(x,) for x in xs[1:]], N, tmp_path)
    lazy, fast = tj.script(m, dynamic_dims=N), tj.compile(m, xs[0], dynamic_dims=N)
    for x in xs:
        for got in (_np(lazy(x)), _np(fast(x))):
            np.testing.assert_allclose(np.concatenate(got, None), np.concatenate(_np(m(x)), None), atol=1e-5)
    assert len(lazy._compiled) == 1
    lazy.save(tmp_path / "lazy.tj")
    np.testing.assert_allclose(tj.load(str(tmp_path / "lazy.tj"))(xs[1].numpy())[0], _np(m(xs[1]))[0], atol=1e-5)


def test_containers_changed_in_branches_and_loops(tmp_path):
    def f(x):
        cnt = [0, 0]
        st = {"a": x[0] * 0, "b": x[0] * 0}
        for row in x:
            if row.sum() > 0:
                cnt[0] += 1
                st.update(a=st["a"] + row)
            else:
                cnt[1] += 1
                st.update({"b": st["b"] - row})
        outs = [x[0] * 0, x[0] * 0]
        for k in range(4):
            if st["a"].sum() < k:
                break
            outs[k % 2] = outs[k % 2] + k
        return st["a"] + st["b"] + outs[0] - outs[1], cnt[0] * 10 + cnt[1]

    _check(f, (tj.randn(5, 2),), [(tj.randn(8, 2) * 3,), (tj.ones(1, 2),), (-tj.ones(3, 2),)], N, tmp_path)


def test_and_or_operands_and_max_min_of_tensors():
    def f(x, y):
        t = x.sum()
        n = x.size(0) - 3
        a = (t or x.mean() + 5) + (t and x.max())
        b = x * (n or 9) + (n and 11)
        return a + b + max(x.sum(), y.sum()) * x + min(x.mean(), y.mean(), x.max())

    _check(f, (tj.ones(5), tj.ones(5) * 2), [(tj.tensor([1.0, -1.0, 0.0]), tj.ones(3)), (tj.ones(4), -tj.ones(4))],
           {"x": {0: "N"}, "y": {0: "N"}})


def test_f_string_messages_with_run_time_values_in_loops_and_asserts(tmp_path):
    def f(x):
        n = x.size(0)
        assert n < 10, f"too many rows: {n} (max {9}) {{braces}}"
        for i in range(n):
            if x[i].sum() < 0:
                raise ValueError(f"row {i} is negative: {x[i].sum().item()}")
        return x

    s = _check(f, (tj.ones(3, 2),), [(tj.ones(5, 2),)], N, tmp_path)
    with pytest.raises(ScriptException, match=r"too many rows: 60 \(max 9\) \{braces\}"):
        s(tj.ones(60, 2))
    with pytest.raises(ScriptException, match="row 2 is negative: -2.0"):
        s(tj.tensor([[1.0, 1.0], [1.0, 1.0], [-3.0, 1.0]]))
    with pytest.raises(Exception, match="row 1 is negative"):
        tj.load(str(tmp_path / "m.tj"))(np.array([[1, 1], [-3, 1]], np.float32))


def test_number_inputs_are_constants_and_run_time_numbers_are_outputs(tmp_path):
    def f(x, k: int, scale: float = 2.0, flag: bool = True):
        y = x
        for _ in range(k):
            if flag:
                y = y * scale
        if y.sum() > 10:
            return y, k, x.sum().item() > 0
        return -y, k + 1, x.mean().item() > 5

    s = _check(f, (tj.ones(3), 2, 3.0, False), [(-tj.ones(3), 2, 3.0, False), (tj.ones(3) * 20, 2, 3.0, False)],
               tmp_path=tmp_path)
    y, k, b = s(-tj.ones(3), 2, 3.0, False)
    assert k.dim() == 0 and int(k) == 3 and bool(b) is False


_ACT = lambda t: t.relu() if t.mean() > 0 else t.abs()
_MULTI = (lambda x:
          x * 2
          if x.sum() > 0
          else x)


def test_lambdas_no_grad_and_compile(tmp_path):
    def f(x):
        with tj.no_grad():
            for i in range(x.size(0)):
                with tj.no_grad():
                    if x[i].sum() > 1:
                        break
                x = x * 1.5
        return _ACT(x) + _MULTI(x)

    _check(f, (tj.ones(3, 2) * 0.1,), [(tj.ones(3, 2),), (tj.ones(5, 2) * 0.2,), (-tj.ones(2, 2),)], N, tmp_path)
    fast = tj.compile(f, tj.ones(3, 2) * 0.1, dynamic_dims=N)
    assert "prim::Loop" in fast.code
    for x in (tj.ones(4, 2), -tj.ones(2, 2) * 0.1):
        np.testing.assert_allclose(fast(x).numpy(), f(x).numpy(), rtol=1e-5)


# ---- bugs ----------------------------------------------------------------------------------------


def test_while_on_a_path_the_example_does_not_take():
    def branch(x):
        if x.sum() > 0:
            while x.sum() < 100:
                x = x * 2
        return x

    def zero_trip(x):
        acc = x[0] * 0
        for i in range(x.size(0) - 3):
            y = x[i] + (x.size(0) - 3)
            while y.sum() < 100:
                y = y * 2
            acc = acc + y
        return acc

    with _deadline(2):
        _check(branch, (-tj.ones(3),), [(tj.ones(3),)])
        _check(zero_trip, (tj.zeros(3, 2),), [(tj.ones(5, 2),)], N)


def test_check_on_perturbed_inputs_does_not_hang():
    def f(x):
        while x.sum() != 0:
            x = x - x.sign()
        return x

    with _deadline(2):
        _check(f, (tj.ones(3) * 2,), [(tj.ones(3),)])


def test_loop_variable_after_a_run_time_break():
    def f(x):
        for i in range(5):
            if x.sum() <= i:
                break
        return x * i

    _check(f, (tj.ones(3) * 10,), [(tj.ones(3) * 0.1,), (tj.ones(3),)])


def test_range_used_as_a_python_object():
    def f(x):
        for i in reversed(range(3)):
            x = x * 2 + i
        for i, j in zip(range(2), range(1, 3)):
            x = x * j + i
        return x * len(range(4)) + sum(list(range(3)))

    _check(f, (tj.ones(3),), [])


def test_and_or_of_numbers_and_tensors_in_conditions():
    def f(x):
        n = x.size(0) - 3
        if n and x.sum() > 4:
            x = x * 2
        acc = x[0] * 0
        while n:  # a `while` on an int with a `break`: the stop flag is joined with the int
            n -= 1
            if x[n].sum() > 0:
                break
            acc = acc + x[n]
        return acc

    _check(f, (tj.ones(5),), [(tj.ones(3),), (-tj.ones(4),)], N)


def test_f_string_format_spec_of_run_time_values():
    def f(x):
        n = x.size(0)
        if n > 10:
            raise ValueError(f"{n:04d} rows, {n / 3:.3f} thirds")
        return x

    s = tj.script(f, tj.ones(3, 2), dynamic_dims=N)
    with pytest.raises(ScriptException, match="0012 rows, 4.000 thirds"):
        s(tj.ones(12, 2))


def test_returning_a_number_known_at_compile_time():
    def f(x):
        return x, x.size(1), x.shape

    _check(f, (tj.ones(3, 2),), [(tj.ones(5, 2),)], N)


def test_assert_message_evaluated_only_on_failure():
    def f(x):
        assert x.dim() == 2, f"expected 2 dims, got {x.tolist()}"
        return x * 2

    _check(f, (tj.ones(3, 2),), [(tj.ones(5, 2),)], N)


def test_while_true_left_only_by_return():
    def f(x):
        while True:
            if x.sum() > 10:
                return x
            x = x * 2

    _check(f, (tj.ones(2),), [(tj.ones(2) * 20,), (tj.ones(2) * 0.01,)])


def test_any_all_of_run_time_conditions():
    def f(x):
        return x * 2 if any([x.sum() > 0, x.mean() > 1]) else x

    try:  # refusing it is fine; what is compiled must follow the input
        s = tj.script(f, tj.ones(3))
    except ScriptError:
        return
    np.testing.assert_allclose(s(-tj.ones(3)).numpy(), f(-tj.ones(3)).numpy())


def test_run_time_slice_bound_error_names_the_slice():
    def f(x, t):
        return x[int(t):int(t) + 1]

    with pytest.raises(ScriptError) as e:
        tj.script(f, tj.ones(4), tj.tensor(1))
    assert "str is given" not in str(e.value)
