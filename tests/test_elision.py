"""Temporary elision (large `a * b + c` writes the sum into the product's memory) never changes
a value anyone can still see."""

import functools
import itertools
import operator

import numpy as np
import pytest

import tracejit as tj
from tracejit import _dispatch as _tensor

N = 1 << 18  # above the elision threshold


@pytest.fixture
def abc():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(N).astype(np.float32) for _ in range(3)]
    return [tj.from_numpy(x.copy()) for x in arrays], arrays


@pytest.fixture
def elisions(monkeypatch):
    count = {"n": 0}
    real = _tensor._elidable

    def spy(*args):
        ok = real(*args)
        count["n"] += ok
        return ok

    monkeypatch.setattr(_tensor, "_elidable", spy)
    return count


def test_calibration_found_a_temporary_refcount():
    assert _tensor._TEMP_REFS > 0


def test_temporaries_are_reused_and_values_are_right(abc, elisions):
    (a, b, c), (an, bn, cn) = abc
    out = a * b + c - b / 3
    np.testing.assert_allclose(out.numpy(), an * bn + cn - bn / 3, rtol=1e-6)
    assert elisions["n"] == 2
    for t, ref in ((a, an), (b, bn), (c, cn)):  # inputs untouched
        np.testing.assert_array_equal(t.numpy(), ref)


def test_anything_still_reachable_is_never_overwritten(abc, elisions):
    (a, b, c), (an, bn, cn) = abc
    prod = an * bn
    named = a * b
    _ = named + c
    np.testing.assert_array_equal(named.numpy(), prod)
    held = a * b
    arr = held.numpy()
    _ = held + c
    np.testing.assert_array_equal(arr, prod)
    viewed = a * b
    head = viewed[:10]
    _ = viewed + c
    np.testing.assert_array_equal(head.numpy(), prod[:10])
    box = {"k": a * b}
    _ = box["k"] + c
    np.testing.assert_array_equal(box["k"].numpy(), prod)
    items = [a * 1, b * 1, c * 1]
    acc = list(itertools.accumulate(items))
    np.testing.assert_array_equal(acc[0].numpy(), an)
    np.testing.assert_allclose(sum(items).numpy(), an + bn + cn, rtol=1e-6)
    np.testing.assert_allclose(functools.reduce(operator.add, items).numpy(), an + bn + cn, rtol=1e-6)
    for t, ref in zip(items, (an, bn, cn)):
        np.testing.assert_array_equal(t.numpy(), ref)
    # Only running totals nobody else holds are temporaries: sum()'s after its first addition (2),
    # reduce()'s after the first (1); accumulate() hands each total out, so none of its are.
    assert elisions["n"] == 3


def test_no_elision_when_the_result_type_differs_or_grad_is_recorded(elisions):
    i = tj.ones(N, dtype=tj.int32)
    assert ((i * 2) + 0.5).dtype is tj.float32
    assert ((i * 2) / 2).dtype is tj.float32
    w = tj.ones(N, requires_grad=True)
    y = (w * 2) + 1
    y.sum().backward()
    assert w.grad.tolist()[:2] == [2.0, 2.0]
    small = tj.ones(4)
    assert ((small * 2) + 1).tolist() == [3.0] * 4
    assert elisions["n"] == 0


def test_broadcast_into_the_temporary_only_when_shapes_allow(elisions):
    a = tj.ones(N // 4, 4)
    out = (a * 2) + tj.ones(4)
    assert tuple(out.shape) == (N // 4, 4) and elisions["n"] == 1
    out = (tj.ones(N // 4, 1) * 2) + tj.ones(4)  # the result is larger than the temporary
    assert tuple(out.shape) == (N // 4, 4) and out.tolist()[0] == [3.0] * 4
    assert elisions["n"] == 1
