"""Indexing (get and set, basic and advanced) and tensor creation against PyTorch, plus Python
conversions, DLPack, dtype/device movement, `tracejit.device` and repr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracejit as tj

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ERRORS = (RuntimeError, IndexError, ValueError, TypeError)
CUDA = tj.cuda.is_available()


def dtype_name(d):
    return str(d).removeprefix("torch.").removeprefix("tracejit.")


def assert_same_values(t, j):
    assert tuple(j.shape) == tuple(t.shape)
    assert dtype_name(j.dtype) == dtype_name(t.dtype)
    np.testing.assert_array_equal(j.numpy(), t.numpy())


def shares(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def assert_same_error(f, same_message=False):
    """f(torch) and f(tracejit) raise the same kind of exception (and message, if asked)."""
    with pytest.raises(ERRORS) as tinfo:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f(torch)
    with pytest.raises(ERRORS) as jinfo:
        f(tj)
    assert isinstance(jinfo.value, type(tinfo.value)), (tinfo.value, jinfo.value)
    assert not same_message or str(jinfo.value) == str(tinfo.value)


def pair(arr):
    # torch.tensor(ndarray) keeps numpy's strides (all zero for a zero-size array); copy_ gives fresh ones
    return torch.empty(arr.shape, dtype=getattr(torch, arr.dtype.name)).copy_(torch.from_numpy(arr)), tj.tensor(arr)


# ---- random indices ---------------------------------------------------------------------------

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).filter(lambda s: int(np.prod(s)) <= 96)
ADVANCED = {"list", "arr", "nparr", "mask", "pybool", "bool0d"}


def draw_index(data, shape, unique=False):
    """A random index for a tensor of `shape`, as a list of (kind, value) items. Integer arrays
    share one length so that they broadcast; with `unique` they never repeat a position."""
    n = len(shape)
    length = data.draw(st.integers(0, 3))
    state = {"adv": False, "mask": False}

    def gen(dims):
        items, i = [], 0
        while i < len(dims):
            size = dims[i]
            kind = data.draw(st.sampled_from(["int", "slice", "full", "none", "list", "arr", "nparr", "mask", "oob"]))
            if kind == "none":
                items.append(("none", None))
                continue
            if kind == "int" and size or kind == "oob" and data.draw(st.integers(0, 3)) == 0:  # oob: out of range
                ok = kind == "int"
                items.append(("int", data.draw(st.integers(-size, size - 1) if ok else st.sampled_from([size, ~size]))))
            elif kind == "slice":
                bound = st.none() | st.integers(-size - 1, size + 1)
                sl = slice(data.draw(bound), data.draw(bound), data.draw(st.sampled_from([None, 1, 2, 3])))
                items.append(("slice", sl))
            elif kind in ("list", "arr", "nparr") and not state["mask"] and (size >= length if unique else
                                                                              size or not length):
                by = (lambda v, size=size: v % size) if unique else None
                vals = data.draw(st.lists(st.integers(-size, size - 1), min_size=length, max_size=length,
                                          unique_by=by)) if size else []
                arr = np.array(vals, dtype=np.int64)
                if kind == "arr" and not unique and data.draw(st.booleans()):
                    arr = np.stack([arr, arr[::-1]])  # a 2-d index: its shape goes into the result
                items.append((kind, vals if kind == "list" else arr))
                state["adv"] = True
            elif kind == "mask" and not state["adv"] and not state["mask"]:
                k = data.draw(st.integers(1, len(dims) - i))
                mshape = dims[i : i + k]
                bits = data.draw(st.lists(st.booleans(), min_size=int(np.prod(mshape)), max_size=int(np.prod(mshape))))
                items.append(("mask", np.array(bits, dtype=bool).reshape(mshape)))
                state["mask"] = True
                i += k
                continue
            else:
                items.append(("slice", slice(None)))
            i += 1
        return items

    if data.draw(st.integers(0, 2)) == 0:
        a = data.draw(st.integers(0, n))
        b = data.draw(st.integers(a, n))
        items = gen(shape[:a]) + [("ellipsis", Ellipsis)] + gen(shape[b:])
    else:
        items = gen(shape[: data.draw(st.integers(0, n))])
    if not state["adv"] and not state["mask"] and data.draw(st.integers(0, 5)) == 0:
        kind = data.draw(st.sampled_from(["pybool", "bool0d"]))
        items.insert(data.draw(st.integers(0, len(items))), (kind, data.draw(st.booleans())))
    return items


def build(m, items):
    """The index for module `m` (torch or tracejit) from `draw_index`'s items."""
    return tuple(m.tensor(v) if kind in ("arr", "mask", "bool0d") else v for kind, v in items)


@SETTINGS
@given(shape=shapes, data=st.data())
def test_random_getitem_matches_torch(shape, data):
    arr = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    tx, jx = pair(arr)
    items = draw_index(data, list(shape))
    advanced = any(k in ADVANCED for k, _ in items)
    try:
        t = tx[build(torch, items)]
    except ERRORS as e:
        with pytest.raises(type(e)):
            jx[build(tj, items)]
        return
    j = jx[build(tj, items)]
    assert_same_values(t, j)
    assert j.is_contiguous() == t.is_contiguous()
    # basic indexing gives a view of the same storage (PyTorch's strides and offset), advanced indexing a copy
    assert shares(j, jx) == (j._base is jx) == (not advanced) == (shares(t, tx) if tx.numel() else not advanced)
    if not advanced:
        assert (j.stride(), j.storage_offset()) == (t.stride(), t.storage_offset())
    elif t.numel():  # torch lays out an advanced-indexing result like its input: size-1 dims' strides vary
        assert [s for s, n in zip(j.stride(), j.shape) if n > 1] == [s for s, n in zip(t.stride(), t.shape) if n > 1]


@SETTINGS
@given(shape=shapes, data=st.data())
def test_random_setitem_matches_torch(shape, data):
    arr = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    tx, jx = pair(arr)
    tensor_value = data.draw(st.booleans())
    items = draw_index(data, list(shape), unique=tensor_value)
    try:
        target = tuple(tx[build(torch, items)].shape)
    except ERRORS as e:
        with pytest.raises(type(e)):
            jx[build(tj, items)] = 1.0
        return
    if tensor_value:  # broadcasts: a suffix of the target's shape, some dims 1
        k = data.draw(st.integers(0, len(target)))
        vshape = [1 if data.draw(st.booleans()) else s for s in target[len(target) - k :]]
        varr = np.asarray(-np.arange(1, int(np.prod(vshape)) + 1, dtype=np.float32).reshape(vshape))
        tv, jv = torch.from_numpy(varr), tj.tensor(varr)
    else:
        tv = jv = data.draw(st.sampled_from([-1, 2.5, True]))
    tver, jver = tx._version, jx._version
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tx[build(torch, items)] = tv
    except ERRORS as e:
        with pytest.raises(type(e)):
            jx[build(tj, items)] = jv
        return
    jx[build(tj, items)] = jv
    assert_same_values(tx, jx)
    assert jx._version - jver == tx._version - tver


# ---- specific indices --------------------------------------------------------------------------

X = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
INDICES = {
    "int": lambda m: (1,), "negative ints": lambda m: (-1, -2, 0, -5), "ellipsis": lambda m: (Ellipsis, 2),
    "slices": lambda m: (slice(None), slice(1, None, 2), slice(-3, -1)), "none": lambda m: (None, 0, None, 1, None),
    "list": lambda m: ([1, 0, 1],), "negative list": lambda m: (slice(None), [-1, 0]), "empty list": lambda m: ([],),
    "empty list mid": lambda m: (0, [], slice(None)), "empty long tensor": lambda m: (m.tensor([], dtype=m.int64),),
    "x[0, :, idx]": lambda m: (0, slice(None), m.tensor([3, 1])),
    "x[idx1, :, idx2]": lambda m: (m.tensor([1, 0]), slice(None), m.tensor([2, 3])),
    "x[:, idx1, idx2]": lambda m: (slice(None), m.tensor([1, 0]), m.tensor([2, 3])),
    "broadcast 2-d indices": lambda m: (m.tensor([[0], [1]]), slice(None), m.tensor([0, 3])),
    "x[..., mask]": lambda m: (Ellipsis, m.tensor([True, False, True, False, True])),
    "mask 2-d": lambda m: (m.tensor(X[:, :, 0, 0] % 3 == 0),), "mask 4-d": lambda m: (m.tensor(X % 7 == 0),),
    "mask 2-d mid": lambda m: (slice(None), m.tensor(X[0, :, :, 0] % 2 == 0)),
    "all-false mask": lambda m: (m.tensor([False, False]),), "0-d bool": lambda m: (m.tensor(True),),
    "python bool": lambda m: (slice(None), False), "0-d int tensors": lambda m: (m.tensor(1), m.tensor(-1)),
    "int32 index": lambda m: (m.tensor([1, 0], dtype=m.int32),), "numpy index": lambda m: (np.array([1, 0]), 1),
    "None with advanced": lambda m: (None, [0, 1], None, 1), "slice, advanced": lambda m: (slice(1, 2), 0, [0, -1]),
}


@pytest.mark.parametrize("index", INDICES.values(), ids=INDICES.keys())
def test_getitem_cases_match_torch(index):
    tx, jx = pair(X)
    t, j = tx[index(torch)], jx[index(tj)]
    assert_same_values(t, j)
    assert j.stride() == t.stride()
    assert shares(j, jx) == shares(t, tx)


SET_CASES = {
    "scalar at int": lambda m: ((0, 1), 7.0), "row broadcast": lambda m: ((slice(None), 1), m.arange(5.0)),
    "column broadcast": lambda m: ((Ellipsis, slice(0, 2)), m.tensor([[1.0], [2.0], [3.0], [4.0]])),
    "leading 1 dims": lambda m: ((0, 0), m.ones(1, 1, 4, 5)), "empty list": lambda m: (([],), 5.0),
    "advanced scalar": lambda m: (([0, 1], slice(None), [3, 1]), -1.0), "int value": lambda m: ((1,), 3),
    "advanced tensor": lambda m: ((0, [2, 0]), m.tensor([[9.0] * 5, [8.0] * 5]).unsqueeze(1)),
    "advanced broadcast": lambda m: ((slice(None), [0, 2], 1), m.tensor([6.0, 7.0, 8.0, 9.0, 10.0])),
    "mask scalar": lambda m: ((m.tensor(X % 3 == 0),), 0.5), "python bool": lambda m: ((True, 0), 4.0),
    "mask tensor": lambda m: ((Ellipsis, m.tensor([True, False, False, True, False])), m.tensor([1.0, 2.0])),
}


@pytest.mark.parametrize("case", SET_CASES.values(), ids=SET_CASES.keys())
def test_setitem_cases_match_torch(case):
    tx, jx = pair(X)
    (tidx, tval), (jidx, jval) = case(torch), case(tj)
    tx[tidx] = tval
    jx[jidx] = jval
    assert_same_values(tx, jx)


@pytest.mark.parametrize("index, bad, dim, size", [
    ((3,), 3, 0, 3), ((slice(None), -5), -5, 1, 4), ((-4,), -4, 0, 3), ((0, 0, 7), 7, 2, 5), ((None, 0, 7), 7, 2, 4),
    ((0, Ellipsis, -6), -6, 2, 5),  # an int's dim is its place in the index, as PyTorch counts
    (([0, 3],), 3, 0, 3), ((slice(None), [1, -5]), -5, 1, 4), ((slice(None), slice(None), [5]), 5, 2, 5),
])
def test_out_of_range_index_names_dim_and_size(index, bad, dim, size):
    pattern = rf"index {bad} is out of bounds for (dimension|axis) {dim} with size {size}"
    with pytest.raises(IndexError, match=pattern):
        tj.zeros(3, 4, 5)[index]
    with pytest.raises(IndexError, match=pattern):
        tj.zeros(3, 4, 5)[index] = 1.0
    if not any(isinstance(i, list) for i in index):  # PyTorch's message for ints, word for word
        assert_same_error(lambda m: m.zeros(3, 4, 5)[index], same_message=True)


ERROR_CASES = [  # indexing, then creation
    lambda m: m.zeros(2, 3)[0, 0, 0], lambda m: m.zeros(2, 3)[m.tensor([True, False, True])],
    lambda m: m.zeros(2, 3)[m.tensor([0.0])], lambda m: m.zeros(2, 3)[1.5], lambda m: m.zeros(2, 3)[::-1],
    lambda m: m.zeros(2, 3)[[0, 1], [0, 1, 2]], lambda m: m.zeros(2, 3).__setitem__((0,), m.ones(2)),
    lambda m: m.zeros(2, 3).__setitem__(([0, 1],), m.ones(3, 3)), lambda m: m.tensor(1.0)[0],
    lambda m: m.arange(0, 5, -1), lambda m: m.arange(0, 5, 0), lambda m: m.randint(5, 5, (3,)),
    lambda m: m.linspace(0, 1, -1), lambda m: m.zeros(-1), lambda m: m.eye(-1), lambda m: m.triu(m.ones(3)),
    lambda m: m.rand(2, dtype=m.int64), lambda m: m.randn(2, dtype=m.int32), lambda m: m.tensor("abc"),
    lambda m: m.tensor([[1, 2], [3]]), lambda m: m.from_numpy(np.zeros(3)[::-1]), lambda m: m.from_numpy([1]),
]


@pytest.mark.parametrize("f", ERROR_CASES)
def test_errors_match_torch(f):
    assert_same_error(f)


# ---- creation ---------------------------------------------------------------------------------

DATA = [
    3, 2.5, True, [1, 2, 3], [1.0, 2], [True, False], [True, 2], [[1, 2], [3, 4]], [[1.5], [2.0]], [],
    [[], []], np.array([1.5, 2.5]), np.array([1, 2], np.int32), np.array([[True]]), np.array(2.5),
    np.float64(1.5), np.int32(7), np.float16(0.5), np.arange(6, dtype=np.uint8).reshape(2, 3),
    np.arange(6.0).reshape(2, 3).T, [tj.tensor(1.0), 2.0], [np.int32(1), np.int32(2)], [[np.int8(1)], [np.int16(2)]],
    [1, np.int32(2)], [np.uint8(3), True], [np.float32(1.5), 2.0],  # numpy scalars in lists keep their types
]


@pytest.mark.parametrize("data", DATA, ids=[repr(d)[:30] for d in DATA])
def test_tensor_infers_dtype_and_shape_like_torch(data):
    tdata = [torch.tensor(1.0), 2.0] if isinstance(data, list) and data and isinstance(data[0], tj.Tensor) else data
    assert_same_values(torch.tensor(tdata), tj.tensor(data))
    assert_same_values(torch.as_tensor(tdata), tj.as_tensor(data))


@pytest.mark.xfail(reason="tensor() infers a list's dtype with numpy, then casts float64 to the default dtype; "
                          "PyTorch promotes the elements' own types (np.float64 -> float64, np.float16 with ints -> "
                          "float16); matching it needs a scan of every float list: not done, to keep tensor() fast",
                   strict=True)
@pytest.mark.parametrize("data", [[1.0, np.float64(2.0)], [np.float16(1), 2]])
def test_tensor_keeps_numpy_float_scalars_inside_lists(data):
    assert dtype_name(tj.tensor(data).dtype) == dtype_name(torch.tensor(data).dtype)


def test_tensor_dtype_argument_and_copy_semantics():
    a = np.arange(4.0)
    assert_same_values(torch.tensor(a, dtype=torch.int32), tj.tensor(a, dtype=tj.int32))
    copied, shared = tj.tensor(a), tj.as_tensor(a)
    a[0] = 99
    assert copied[0].item() == 0 and shared[0].item() == 99 and tj.as_tensor(shared) is shared


FACTORIES = [
    lambda m: m.zeros(2, 3), lambda m: m.zeros((2, 0), dtype=m.int32), lambda m: m.zeros(()),
    lambda m: m.ones(4, dtype=m.bool), lambda m: m.full((2, 2), 3), lambda m: m.full((2,), 1.5),
    lambda m: m.full((3,), False), lambda m: m.full((2,), 7, dtype=m.float64),
    lambda m: m.zeros_like(m.ones(2, 3, dtype=m.int16)), lambda m: m.ones_like(m.ones(2), dtype=m.float64),
    lambda m: m.full_like(m.ones(3, dtype=m.int64), 2.7), lambda m: m.arange(5), lambda m: m.arange(0, 1, 0.25),
    lambda m: m.arange(5, 0, -2), lambda m: m.arange(2.5), lambda m: m.arange(3, 3),
    lambda m: m.arange(4, dtype=m.float64),
    lambda m: m.arange(-1.0, 1.0, 0.5, dtype=m.float16), lambda m: m.linspace(0, 1, 5), lambda m: m.linspace(-2, 3, 1),
    lambda m: m.linspace(2, 3, 0), lambda m: m.linspace(0, 10, 4, dtype=m.int64),
    lambda m: m.eye(3), lambda m: m.eye(2, 4, dtype=m.int64), lambda m: m.eye(0),
    lambda m: m.tril(m.arange(12.0).view(3, 4)), lambda m: m.triu(m.arange(12).view(3, 4), 1),
    lambda m: m.tril(m.ones(2, 3, 3), -1), lambda m: m.triu(m.ones(3, 2), -1),
    lambda m: m.zeros_like(m.ones(2, 3, 4).permute(2, 0, 1)), lambda m: m.ones_like(m.ones(4, 4)[:, ::2]),
    lambda m: m.full_like(m.ones(3, 2).t(), 5),  # *_like keep a dense input's strides
]


@pytest.mark.parametrize("f", FACTORIES)
def test_deterministic_factories_match_torch(f):
    t, j = f(torch), f(tj)
    assert_same_values(t, j)
    assert j.stride() == t.stride()


@pytest.mark.parametrize("f", [lambda m: m.empty(2, 0, 3), lambda m: m.empty((4,), dtype=m.int8),
                               lambda m: m.empty_like(m.ones(2, 3).t()), lambda m: m.rand_like(m.ones(3, 2).t())])
def test_empty_and_random_like_shapes_and_strides(f):
    t, j = f(torch), f(tj)
    assert (tuple(j.shape), dtype_name(j.dtype), j.stride()) == (tuple(t.shape), dtype_name(t.dtype), t.stride())


def test_manual_seed_reproducibility():
    draws = (lambda: tj.rand(5), lambda: tj.randn(2, 3), lambda: tj.randint(0, 10, (6,)), lambda: tj.randperm(8))
    seeded = lambda seed: (tj.manual_seed(seed), [f().tolist() for f in draws])[1]  # noqa: E731
    first = seeded(123)
    assert seeded(123) == first and seeded(124) != first
    g = tj.Generator().manual_seed(5)
    a = tj.rand(4, generator=g)
    g.manual_seed(5)
    assert tj.rand(4, generator=g).tolist() == a.tolist()


def test_random_factories_ranges_and_dtypes():
    tj.manual_seed(0)
    r, n, ri, p = tj.rand(1000), tj.randn(4000), tj.randint(-3, 4, (2000,)), tj.randperm(50)
    assert r.dtype == tj.float32 and 0 <= r.min().item() and r.max().item() < 1
    assert tj.rand(2, 3, dtype=tj.float64).dtype == tj.float64
    assert abs(n.mean().item()) < 0.1 and 0.9 < n.std().item() < 1.1
    assert ri.dtype == tj.int64 and ri.min().item() == -3 and ri.max().item() == 3
    assert tj.randint(5, (3, 2)).shape == (3, 2) and tj.randint(5, (50,)).max().item() < 5
    assert tj.randint(0, 2, (4,), dtype=tj.int8).dtype == tj.int8
    assert p.dtype == tj.int64 and sorted(p.tolist()) == list(range(50)) and tj.randperm(0).shape == (0,)


# ---- Python conversions ---------------------------------------------------------------------------


def test_tolist_item_and_python_numbers_match_torch():
    for f in (lambda m: m.tensor(2.5).tolist(), lambda m: m.tensor([[1, 2]]).tolist(), lambda m: m.tensor(2.5).item(),
              lambda m: m.tensor([0.1]).tolist(), lambda m: m.tensor([True]).tolist(), lambda m: m.tensor([[3]]).item(),
              lambda m: m.tensor([[True]]).item(), lambda m: float(m.tensor([2])), lambda m: int(m.tensor(-2.7)),
              lambda m: int(m.tensor([[7]])), lambda m: bool(m.tensor([0.0])), lambda m: bool(m.tensor(3)),
              lambda m: [10, 20, 30][m.tensor(1)], lambda m: m.zeros(2, 0).tolist()):
        t, j = f(torch), f(tj)
        assert j == t and type(j) is type(t) and repr(j) == repr(t)  # repr: the element types too


@pytest.mark.parametrize("f", [
    lambda m: m.tensor([1, 2]).item(), lambda m: m.tensor([]).item(), lambda m: float(m.tensor([1.0, 2.0])),
    lambda m: int(m.tensor([])), lambda m: bool(m.tensor([1, 2])), lambda m: bool(m.tensor([])),
    lambda m: [1, 2][m.tensor(1.0)], lambda m: [1, 2][m.tensor([0, 1])]])
def test_python_number_errors_match_torch(f):
    assert_same_error(f, same_message=True)
    for g in (lambda m: len(m.tensor(1)), lambda m: iter(m.tensor(1))):
        assert_same_error(g)


def test_len_iteration_and_array_protocol():
    t, j = pair(np.arange(6, dtype=np.int64).reshape(3, 2))
    assert len(j) == len(t) == 3 and len(tj.zeros(0, 4)) == 0
    assert (np.add(j, 1) == np.add(t.numpy(), 1)).all()
    rows = list(j)
    assert [r.tolist() for r in rows] == [r.tolist() for r in t]
    rows[1][0] = 99  # rows are views
    assert j[1, 0].item() == 99
    a = np.asarray(j)
    assert a.dtype == np.int64 and np.shares_memory(a, j.numpy()) and np.asarray(j.t()).strides == (8, 16)
    assert np.asarray(j, dtype=np.float32).dtype == np.float32 and not np.shares_memory(np.array(j, copy=True), a)


# ---- DLPack ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda m: m.arange(12.0).view(3, 4), lambda m: m.arange(12).view(3, 4).t(),
                                  lambda m: m.arange(24.0).view(4, 6)[1:, ::2], lambda m: m.tensor(3.5),
                                  lambda m: m.tensor([True, False]), lambda m: m.arange(6, dtype=m.int32)])
def test_dlpack_round_trips_share_memory(make):
    j, src = make(tj), make(torch)
    t = torch.from_dlpack(j)  # tracejit -> torch -> tracejit
    back = tj.from_dlpack(t)
    k = tj.from_dlpack(src)  # torch -> tracejit
    for a, b in ((t, j), (t, back), (src, k)):
        assert a.data_ptr() == b.data_ptr() and a.stride() == b.stride()
        assert_same_values(a, b)
    assert np.shares_memory(np.from_dlpack(j), j.numpy())


def test_dlpack_writes_are_visible_both_ways():
    t, k = torch.arange(6.0).view(2, 3), tj.zeros(3)
    j = tj.from_dlpack(t)
    j[0, 0], t[1, 2] = 100, -1
    torch.from_dlpack(k).add_(2)
    assert t[0, 0].item() == 100 and j[1, 2].item() == -1 and k.tolist() == [2, 2, 2]
    assert_same_values(torch.from_dlpack(np.arange(3.0)), tj.from_dlpack(np.arange(3.0)))


# ---- dtype and device movement --------------------------------------------------------------------


def test_to_returns_self_when_nothing_changes():
    x = tj.ones(2, 3)
    for same in (x.to(tj.float32), x.to("cpu"), x.to(tj.device("cpu")), x.to("cpu", tj.float32), x.to(tj.ones(1)),
                 x.to(dtype=tj.float32, device="cpu"), x.float(), x.cpu(), x.contiguous(), x.type(tj.float32)):
        assert same is x
    t = torch.ones(2, 3)
    assert t.to(torch.float32) is t and t.float() is t and t.cpu() is t
    c = x.to(tj.float32, copy=True)
    assert c is not x and not shares(c, x) and c.tolist() == x.tolist()


CONVERSIONS = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
               "short": "int16", "char": "int8", "byte": "uint8", "bool": "bool"}


@pytest.mark.parametrize("conv", CONVERSIONS)
def test_dtype_conversions_match_torch(conv):
    t, j = pair(np.array([[-1.7, 0.0, 2.5], [3.2, -0.4, 1.0]], dtype=np.float64))
    name = CONVERSIONS[conv]
    for f in (lambda x, m: getattr(x, conv)(), lambda x, m: getattr(x.t(), conv)(), lambda x, m: x.to(getattr(m, name)),
              lambda x, m: x.to(dtype=getattr(m, name)), lambda x, m: x.to("cpu", getattr(m, name)),
              lambda x, m: x.to(m.ones(1, dtype=getattr(m, name)))):
        assert_same_values(f(t, torch), f(j, tj))
        assert f(j, tj).type() == f(t, torch).type().replace("torch.", "tracejit.")


@pytest.mark.parametrize("args", [(0, 1, 5), (-2, 3, 1), (2, 3, 0), (0, 1, 7), (1000.0, 10, 24), (-5.5, 0.7, 33)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linspace_matches_torch(args, dtype):
    t, j = torch.linspace(*args, dtype=getattr(torch, dtype)), tj.linspace(*args, dtype=getattr(tj, dtype))
    assert (tuple(j.shape), dtype_name(j.dtype)) == (tuple(t.shape), dtype_name(t.dtype))
    # PyTorch's rounding depends on its SIMD width (start + i*step per vector lane): equal to a few ulps
    np.testing.assert_allclose(j.numpy(), t.numpy(), rtol=0, atol=4 * np.finfo(dtype).eps * max(map(abs, args[:2])))
    if args[2]:
        assert j[0].item() == t[0].item() and j[-1].item() == t[-1].item()


def test_unknown_dtype_and_device_list_the_valid_ones():
    for f in (lambda: tj.zeros(2, dtype="complex7"), lambda: tj.ones(2).to(dtype="float128")):
        with pytest.raises(TypeError, match=r"float32.*int64|int64.*float32"):
            f()
    for f in (lambda: tj.ones(2).to("tpu"), lambda: tj.device("tpu"), lambda: tj.zeros(2, device="npu:0")):
        with pytest.raises(RuntimeError, match="cpu.*cuda"):
            f()


def test_device_parsing_repr_str_eq_like_torch():
    for args in (("cpu",), ("cpu:0",), ("cpu", 0), ("cuda",), ("cuda:1",), ("cuda", 1), ("cuda", 0), ("cuda:0",),
                 ("cuda:12",)):
        t, j = torch.device(*args), tj.device(*args)
        assert (repr(j), str(j), j.type, j.index) == (repr(t), str(t), t.type, t.index)
        assert tj.device(j) == j and hash(tj.device(*args)) == hash(j)
    assert tj.device("cuda:0") == tj.device("cuda", 0) and (torch.device("cuda:0") == torch.device("cuda", 0))
    assert (tj.device("cuda") == tj.device("cuda:0")) == (torch.device("cuda") == torch.device("cuda:0"))
    assert (tj.device("cpu") == tj.device("cuda")) == (torch.device("cpu") == torch.device("cuda")) is False
    assert (tj.device("cpu") == "cpu") == (torch.device("cpu") == "cpu")
    assert (tj.device("cpu:0") == tj.device("cpu")) == (torch.device("cpu:0") == torch.device("cpu"))
    assert str(tj.ones(1).device) == str(torch.ones(1).device) == "cpu"
    assert tj.ones(1).device == tj.device("cpu") and tj.ones(1).is_cpu and not tj.ones(1).is_cuda
    for bad in (("cuda:x",), ("cuda:-1",), ("tpu",), ("cuda:0:1",), ("cuda", -1)):
        assert_same_error(lambda m, bad=bad: m.device(*bad))


@pytest.mark.skipif(CUDA, reason="a GPU is present")
@pytest.mark.parametrize("request_cuda", [
    lambda: tj.ones(2).cuda(), lambda: tj.ones(2).to("cuda"), lambda: tj.ones(2).to("cuda:1"),
    lambda: tj.zeros(2, device="cuda"), lambda: tj.tensor([1.0], device="cuda"), lambda: tj.arange(3, device="cuda"),
    lambda: tj.rand(2, device="cuda"), lambda: tj.ones(2).to(tj.device("cuda", 0))])
def test_cuda_requests_without_gpu_raise_clear_runtime_error(request_cuda):
    assert tj.cuda.is_available() is False and tj.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match=r"(?i)cuda"):
        request_cuda()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
class TestGPU:
    def test_ops_on_cuda_match_cpu(self):
        arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        c, g = tj.tensor(arr), tj.tensor(arr, device="cuda")
        assert g.device == tj.device("cuda", 0) and g.is_cuda and "device='cuda:0'" in repr(g)
        for f in (lambda x: x.t() if x.ndim == 2 else x.permute(2, 0, 1), lambda x: x[:, 1:, ::2] + 1,
                  lambda x: x[x > 5], lambda x: x[[1, 0], :, [3, 2]], lambda x: x.reshape(6, 4).sum(0),
                  lambda x: (x * 2).view(-1)[3:9]):
            a, b = f(c), f(g)
            assert b.device.type == "cuda" and tuple(b.shape) == tuple(a.shape) and b.stride() == a.stride()
            np.testing.assert_array_equal(b.cpu().numpy(), a.numpy())

    def test_writes_seeds_and_transfers(self):
        g, c = tj.zeros(3, 4, device="cuda"), tj.zeros(3, 4)
        for x in (g, c):
            x[1] = 5
            x.t()[2].add_(1)
        assert g.cpu().tolist() == c.tolist() and g.to("cpu").device == tj.device("cpu")
        tj.manual_seed(3)
        a = tj.rand(5, device="cuda")
        tj.manual_seed(3)
        assert a.cpu().tolist() == tj.rand(5).tolist()
        with pytest.raises(TypeError):
            g.numpy()


# ---- repr ------------------------------------------------------------------------------------------

REPRS = [
    lambda m: m.tensor([1.0, 2.5]), lambda m: m.tensor([0.1, 1e-5]), lambda m: m.tensor([[1, -2], [30, 4]]),
    lambda m: m.tensor([1.5, 2.0], dtype=m.float64), lambda m: m.tensor([True, False]), lambda m: m.tensor(True),
    lambda m: m.tensor(3.5), lambda m: m.tensor(7), lambda m: m.tensor(2.0, dtype=m.float64), lambda m: m.tensor([]),
    lambda m: m.zeros(2, 0), lambda m: m.zeros(0, dtype=m.int64), lambda m: m.ones(2, dtype=m.float16),
    lambda m: m.tensor([[1, 2]], dtype=m.int32), lambda m: m.arange(12.0).view(3, 4).t() / 7, lambda m: m.arange(2000),
    lambda m: m.tensor([1e10, 1.0]),
]


@pytest.mark.parametrize("make", REPRS)
def test_repr_matches_torch(make):
    expected = repr(make(torch)).replace("torch.", "tracejit.")
    assert repr(make(tj)) == str(make(tj)) == expected
