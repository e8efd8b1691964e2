"""Views against PyTorch: the same chain of view ops on a torch tensor and a tracejit tensor built
from the same numpy data must agree on shape, stride, storage offset, contiguity and values, and
writes through any view must reach the base, the other views and numpy arrays sharing the memory."""

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


def assert_same(t, j):
    """`j` (tracejit) has `t`'s (torch) shape, strides, storage offset, contiguity, dtype and values."""
    assert tuple(j.shape) == tuple(t.shape)
    assert j.stride() == t.stride()
    assert j.storage_offset() == t.storage_offset()
    assert j.is_contiguous() == t.is_contiguous()
    assert j.dtype.name == str(t.dtype).removeprefix("torch.")
    np.testing.assert_array_equal(j.numpy(), t.numpy())


def shares(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def pair(arr):
    # torch.tensor(ndarray) keeps numpy's strides (all zero for a zero-size array); copy_ gives fresh ones
    return torch.empty(arr.shape, dtype=getattr(torch, arr.dtype.name)).copy_(torch.from_numpy(arr)), tj.tensor(arr)


# ---- strategies ---------------------------------------------------------------------------

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).filter(lambda s: int(np.prod(s)) <= 96)


def shape_for(data, numel, min_dims=0):
    """A random shape with `numel` elements (size-1 dims included), sometimes with one -1."""
    if numel == 0:
        shape = data.draw(st.lists(st.integers(0, 3), min_size=max(0, min_dims - 1), max_size=2))
        shape.insert(data.draw(st.integers(0, len(shape))), 0)
    else:
        primes, n, p = [], numel, 2
        while n > 1:
            while n % p == 0:
                primes.append(p)
                n //= p
            p += 1
        ndim = data.draw(st.integers(max(min_dims, 1 if numel > 1 else 0), 4))
        shape = [1] * ndim
        for q in primes:
            shape[data.draw(st.integers(0, ndim - 1))] *= q
    if shape and data.draw(st.booleans()):
        shape[data.draw(st.integers(0, len(shape) - 1))] = -1
    return shape


def draw_op(data, shape, storage_size):
    """One view op applicable to a tensor of `shape`: (label, fn) with fn(tensor) -> tensor."""
    n = len(shape)
    names = ["permute", "transpose", "unsqueeze", "squeeze", "view", "reshape", "flatten", "as_strided",
             "movedim", "expand", "contiguous"]
    if n:
        names += ["slice", "select", "narrow", "split", "chunk", "unbind", "unflatten", "index_ellipsis"]
    if n <= 2:
        names.append("t")
    if n >= 2:
        names.append("mT")
    name = data.draw(st.sampled_from(names))
    dim = lambda: data.draw(st.integers(-n, n - 1))  # noqa: E731
    if name == "permute":
        perm = data.draw(st.permutations(range(n)))
        return f"permute{tuple(perm)}", lambda x: x.permute(tuple(perm))
    if name == "transpose":
        d0, d1 = (dim(), dim()) if n else (0, -1)
        return f"transpose({d0}, {d1})", lambda x: x.transpose(d0, d1)
    if name == "unsqueeze":
        d = data.draw(st.integers(-n - 1, n))
        return f"unsqueeze({d})", lambda x: x.unsqueeze(d)
    if name == "squeeze":
        how = data.draw(st.sampled_from(["all", "one", "tuple"])) if n else "all"
        if how == "all":
            return "squeeze()", lambda x: x.squeeze()
        if how == "one":
            d = dim()
            return f"squeeze({d})", lambda x: x.squeeze(d)
        ds = tuple(data.draw(st.sets(st.integers(0, n - 1), min_size=1)))
        return f"squeeze({ds})", lambda x: x.squeeze(ds)
    if name in ("view", "reshape"):
        new = shape_for(data, int(np.prod(shape)))
        return f"{name}({new})", lambda x: getattr(x, name)(tuple(new))
    if name == "flatten":
        if not n:
            return "flatten()", lambda x: x.flatten()
        s, e = dim(), dim()
        return f"flatten({s}, {e})", lambda x: x.flatten(s, e)
    if name == "as_strided":
        size = data.draw(st.lists(st.integers(0, 3), max_size=3))
        stride = data.draw(st.lists(st.integers(0, 3), min_size=len(size), max_size=len(size)))
        off = data.draw(st.integers(0, storage_size))
        need = off + sum((a - 1) * b for a, b in zip(size, stride)) + 1 if all(size) else off
        if need > storage_size:
            off = 0
        return f"as_strided({size}, {stride}, {off})", lambda x: x.as_strided(size, stride, off)
    if name == "movedim":
        if not n:
            return "movedim(0, 0)", lambda x: x.movedim(0, 0)
        k = data.draw(st.integers(1, n))
        src = data.draw(st.permutations(range(n)))[:k]
        dst = data.draw(st.permutations(range(-n, 0)))[:k]
        return f"movedim({src}, {dst})", lambda x: x.movedim(tuple(src), tuple(dst))
    if name == "expand":
        lead = data.draw(st.lists(st.integers(0, 3), max_size=2))
        sizes = [data.draw(st.sampled_from([1, 0, 2, 3, -1])) if s == 1 else data.draw(st.sampled_from([s, -1]))
                 for s in shape]
        return f"expand({lead + sizes})", lambda x: x.expand(tuple(lead + sizes))
    if name == "contiguous":
        return "contiguous()", lambda x: x.contiguous()
    if name == "t":
        return "t()", lambda x: x.t()
    if name == "mT":
        return "mT", lambda x: x.mT
    d = data.draw(st.integers(0, n - 1))
    size = shape[d]
    if name == "slice":
        bound = st.none() | st.integers(-size - 2, size + 2)
        sl = slice(data.draw(bound), data.draw(bound), data.draw(st.sampled_from([None, 1, 2, 3])))
        key = (slice(None),) * d + (sl,)
        return f"[{key}]", lambda x: x[key]
    if name == "select":
        if size == 0:
            return "select on empty dim (IndexError)", lambda x: x.select(d, 0)
        i = data.draw(st.integers(-size, size - 1))
        if data.draw(st.booleans()):
            return f"select({d}, {i})", lambda x: x.select(d, i)
        key = (slice(None),) * d + (i,)
        return f"[{key}]", lambda x: x[key]
    if name == "index_ellipsis":
        i = data.draw(st.integers(-size, size - 1)) if size else None
        key = (Ellipsis, None) if size == 0 else (Ellipsis, i) + (slice(None),) * (n - 1 - d)
        return f"[{key}]", lambda x: x[key]
    if name == "narrow":
        start = data.draw(st.integers(-size, size)) if size else 0
        length = data.draw(st.integers(0, size - start % max(size, 1) if start < size else 0))
        return f"narrow({d}, {start}, {length})", lambda x: x.narrow(d, start, length)
    pick = data.draw(st.integers(0, 7))
    if name == "split":
        k = data.draw(st.integers(1, size + 1))
        return f"split({k}, {d})[{pick}]", lambda x: (lambda ps: ps[pick % len(ps)])(x.split(k, d))
    if name == "chunk":
        c = data.draw(st.integers(1, 4))
        return f"chunk({c}, {d})[{pick}]", lambda x: (lambda ps: ps[pick % len(ps)])(x.chunk(c, d))
    if name == "unbind" and size:
        return f"unbind({d})[{pick}]", lambda x: (lambda ps: ps[pick % len(ps)])(x.unbind(d))
    if name == "unbind":  # nothing to pick along an empty dim
        return "contiguous()", lambda x: x.contiguous()
    assert name == "unflatten"
    sizes = shape_for(data, size, min_dims=1)
    return f"unflatten({d}, {sizes})", lambda x: x.unflatten(d, sizes)


# ---- random chains of views -------------------------------------------------------------------


@SETTINGS
@given(shape=shapes, dtype=st.sampled_from(["float32", "int64", "float64"]), data=st.data())
def test_random_view_chains_match_torch(shape, dtype, data):
    arr = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    tbase, jbase = pair(arr)
    t, j = tbase, jbase
    assert_same(t, j)
    storage = arr.size
    for _ in range(data.draw(st.integers(1, 6))):
        label, fn = draw_op(data, tuple(t.shape), storage)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t2 = fn(t)
        except ERRORS as e:
            with pytest.raises(type(e)):
                fn(j)
            return
        j2 = fn(j)
        assert_same(t2, j2)
        # a view shares the base's storage; reshape/contiguous copy exactly when torch's do
        assert shares(j2, jbase) == shares(t2, tbase), label
        assert shares(j2, j) == shares(t2, t), label
        assert (j2._base is not None) == (t2._base is not None), label
        assert (j2 is j) == (t2 is t), label
        t, j = t2, j2
        if not shares(t, tbase):  # a copy starts a new storage
            tbase, jbase, storage = t, j, t.numel()


@SETTINGS
@given(shape=shapes, data=st.data())
def test_reshape_is_a_view_exactly_when_torchs_is(shape, data):
    arr = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t, j = pair(arr)
    if len(shape) >= 2:  # start from a non-contiguous layout half the time
        perm = data.draw(st.permutations(range(len(shape))))
        t, j = t.permute(*perm), j.permute(*perm)
    new = shape_for(data, int(np.prod(shape)))
    try:
        tr = t.reshape(tuple(new))
    except RuntimeError:
        with pytest.raises(RuntimeError):
            j.reshape(tuple(new))
        return
    jr = j.reshape(tuple(new))
    assert_same(tr, jr)
    assert shares(jr, j) == shares(tr, t)
    try:
        tv = t.view(tuple(new))
    except RuntimeError:
        with pytest.raises(RuntimeError, match="reshape"):
            j.view(tuple(new))
        assert not shares(tr, t) or tr.numel() == 0
        return
    assert_same(tv, j.view(tuple(new)))
    assert shares(tr, t)


def test_specific_views_match_torch():
    arr = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    cases = [
        lambda x: x[1, :, ::2, 1:4],
        lambda x: x[..., 3, None, 1:],
        lambda x: x[:, 5:1],  # empty slice: the offset is where it starts, as in PyTorch
        lambda x: x[:, 3:].select(2, 1),
        lambda x: x.permute(3, 1, 0, 2).reshape(5, 3, 8)[:, :, 1],
        lambda x: x.transpose(0, 2).unflatten(0, (2, 2)).flatten(1, 3),
        lambda x: x[:, :1].expand(2, 7, 4, 5).squeeze(),
        lambda x: x[0, 0].t().narrow(0, 1, 3).unsqueeze(1),
        lambda x: x.as_strided((3, 3), (1, 7), 10)[1:],
        lambda x: x[1, 2, 3, 4].view(1, 1).expand(3, 0),
        lambda x: x.movedim(0, -1).chunk(3, 0)[2].mT,
        lambda x: x.split([1, 2], 1)[1].unbind(-1)[4],
        lambda x: x[0, 0, 0, 0].unsqueeze(0).squeeze(0),
        lambda x: x[:, :, :0].view(6, 0).t(),
    ]
    for f in cases:
        tx, jx = pair(arr)
        assert_same(f(tx), f(jx))


def test_zero_dim_and_empty_tensors():
    for f in (lambda m: m.tensor(3.0).t(), lambda m: m.tensor(3.0).view(1, 1), lambda m: m.tensor(3.0).reshape(()),
              lambda m: m.tensor(3.0).expand(2, 0), lambda m: m.tensor(3.0).unsqueeze(-1).squeeze(0),
              lambda m: m.zeros(2, 0, 3).permute(2, 0, 1), lambda m: m.zeros(0, 4)[:, 1:3].view(2, 0),
              lambda m: m.zeros(3, 0), lambda m: m.ones(1, 0, 2).float(), lambda m: m.zeros(0, 2) + 1):
        assert_same(f(torch), f(tj))


# ---- write-through --------------------------------------------------------------------------

WRITES = [
    ("setitem scalar", lambda m, v: v.__setitem__((0,), 7)),
    ("setitem tensor broadcast", lambda m, v: v.__setitem__((slice(None),), m.tensor([1.0, 2.0]))),
    ("setitem advanced", lambda m, v: v.__setitem__(([0, 1], [1, 0]), m.tensor([-1.0, -2.0]))),
    ("add_", lambda m, v: v.add_(1)),
    ("mul_", lambda m, v: v.mul_(m.tensor([2.0, 3.0]))),
    ("iadd", lambda m, v: v.__iadd__(5)),
    ("fill_", lambda m, v: v.fill_(4)),
    ("zero_", lambda m, v: v.zero_()),
    ("copy_", lambda m, v: v.copy_(m.arange(2.0))),
]
VIEWS = [
    ("transpose", lambda x: x.t()[1:3, ::2]),
    ("column slice", lambda x: x[:, 1:4:2]),
    ("as_strided", lambda x: x.as_strided((2, 2), (1, 4), 5)),
    ("view of view", lambda x: x.view(2, 8)[:, 2:6].unflatten(1, (2, 2))[1]),
    ("expanded row", lambda x: x[2:3, :2].expand(3, 2)[1:2].expand(2, 2)[0].expand(2, 2)),
]


@pytest.mark.parametrize("write", WRITES, ids=[w[0] for w in WRITES])
@pytest.mark.parametrize("view", VIEWS, ids=[v[0] for v in VIEWS])
def test_writes_through_views_match_torch(write, view):
    arr = np.arange(16, dtype=np.float32).reshape(4, 4)
    tbase, jbase = pair(arr)
    tv, jv = view[1](tbase), view[1](jbase)
    other_t, other_j = tbase.view(-1), jbase.view(-1)
    tver, jver = tbase._version, jbase._version  # pair() made torch's with an in-place copy_
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write[1](torch, tv)
    except RuntimeError:  # an overlapping (expanded) target: both refuse
        with pytest.raises(RuntimeError, match="memory location"):
            write[1](tj, jv)
        return
    write[1](tj, jv)
    assert_same(tbase, jbase)
    assert_same(tv, jv)
    assert_same(other_t, other_j)
    assert jbase._version - jver == tbase._version - tver == 1
    assert jv._version == jbase._version and tv._version == tbase._version


def test_writes_through_from_numpy_both_ways():
    a = np.zeros((3, 4), np.float32)
    x = tj.from_numpy(a)
    v = x.t()[1]
    v.add_(2)
    assert a[:, 1].tolist() == [2, 2, 2]
    x[0, 0] = 5
    assert a[0, 0] == 5
    a[2, 3] = -1  # numpy -> tracejit, through every view
    assert x[2, 3].item() == -1 and x.t()[3, 2].item() == -1 and x.view(12)[11].item() == -1
    a[:, 1] = 9
    assert v.tolist() == [9, 9, 9]
    s = tj.from_numpy(a[1:, ::2])  # PyTorch's storage for a numpy view starts at its first element
    assert s.storage_offset() == torch.from_numpy(a[1:, ::2]).storage_offset() == 0
    assert s.stride() == torch.from_numpy(a[1:, ::2]).stride()
    s.fill_(3)
    assert (a[1:, ::2] == 3).all() and (a[:, 1] == 9).all()


def test_numpy_results_share_memory_both_ways():
    x = tj.arange(12.0).view(3, 4)
    n = x[1:].numpy()
    n[0, 0] = 100
    assert x[1, 0].item() == 100
    x.t()[3].zero_()
    assert n[:, 3].tolist() == [0, 0]
    y = x.t()
    ny = y.numpy()
    assert ny.strides == tuple(s * 4 for s in y.stride())
    ny[2, 0] = -5
    assert x[0, 2].item() == -5
    assert np.shares_memory(np.asarray(x), n)


def test_setitem_on_one_view_shows_in_another():
    tx, jx = pair(np.zeros((3, 4), np.float32))
    for m, x in ((torch, tx), (tj, jx)):
        a, b = x[:, 2], x.t()[2]
        a[1] = 3
        b[2] = 4
        x.view(-1)[0:2] = m.tensor([1.0, 2.0])
    assert_same(tx, jx)
    assert jx[:, 2].tolist() == [0, 3, 4] and jx.t()[2].tolist() == [0, 3, 4]


# ---- _version --------------------------------------------------------------------------------


def test_version_counts_inplace_ops_and_is_shared_by_views():
    seq = [
        lambda m, x, v: v.add_(1),
        lambda m, x, v: x.__setitem__(0, 2.0),
        lambda m, x, v: x.__setitem__([0, 1], m.tensor([1.0, 2.0])),
        lambda m, x, v: v.fill_(3),
        lambda m, x, v: v.zero_(),
        lambda m, x, v: v.copy_(m.ones(2)),
        lambda m, x, v: v.__imul__(2),
        lambda m, x, v: x.view(3, 1).mul_(2),
        lambda m, x, v: x.add(1),  # out of place: no bump
        lambda m, x, v: x[1:].clone().add_(1),  # a copy has its own counter
    ]
    tx, jx = torch.zeros(3), tj.zeros(3)
    tv, jv = tx[1:], jx[1:]
    assert jx._version == jv._version == 0
    for f in seq:
        f(torch, tx, tv)
        f(tj, jx, jv)
        assert (jx._version, jv._version, jx.t()._version) == (tx._version, tv._version, tx.t()._version)
    assert jx._version > 0


# ---- errors ---------------------------------------------------------------------------------------


def test_view_of_non_contiguous_suggests_reshape():
    x = tj.zeros(3, 4).t()
    with pytest.raises(RuntimeError, match="reshape"):
        x.view(12)
    with pytest.raises(RuntimeError, match="reshape"):
        tj.zeros(4, 6)[:, :3].view(12)
    assert x.reshape(12).shape == (12,)


def test_view_size_mismatch_names_shape_and_size():
    with pytest.raises(RuntimeError) as tinfo:
        torch.zeros(3, 4).view(5, 2)
    with pytest.raises(RuntimeError) as jinfo:
        tj.zeros(3, 4).view(5, 2)
    assert "[5, 2]" in str(tinfo.value) and "12" in str(tinfo.value)
    assert "[5, 2]" in str(jinfo.value) and "12" in str(jinfo.value)
    with pytest.raises(RuntimeError, match=r"\[-1, 5\].*7"):
        tj.zeros(7).view(-1, 5)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        tj.zeros(4).view(-1, -1)


DIM_ERRORS = [
    lambda x: x.transpose(0, 3),
    lambda x: x.transpose(-4, 1),
    lambda x: x.unsqueeze(4),
    lambda x: x.squeeze(3),
    lambda x: x.select(-4, 0),
    lambda x: x.narrow(5, 0, 1),
    lambda x: x.flatten(0, 3),
    lambda x: x.movedim(3, 0),
    lambda x: x.size(3),
    lambda x: x.stride(-4),
    lambda x: x.unbind(3),
    lambda x: x.split(1, 3),
    lambda x: x.chunk(2, -5),
    lambda x: x.unflatten(3, (1, 1)),
    lambda x: x.permute(0, 1, 3),
]


@pytest.mark.parametrize("f", DIM_ERRORS)
def test_dimension_out_of_range_matches_torch(f):
    with pytest.raises(IndexError) as tinfo:
        f(torch.zeros(2, 3, 4))
    with pytest.raises(IndexError, match="Dimension out of range") as jinfo:
        f(tj.zeros(2, 3, 4))
    assert str(jinfo.value) == str(tinfo.value)


def test_zero_dim_dimension_errors():
    for f in (lambda x: x.unsqueeze(2), lambda x: x.transpose(0, 1), lambda x: x.squeeze(1)):
        with pytest.raises(IndexError) as tinfo:
            f(torch.tensor(1.0))
        with pytest.raises(IndexError) as jinfo:
            f(tj.tensor(1.0))
        assert str(jinfo.value) == str(tinfo.value)


def test_other_view_errors_match_torch():
    cases = [
        lambda m: m.zeros(2, 3).expand(3, 3),
        lambda m: m.zeros(2, 3).expand(3),
        lambda m: m.zeros(2, 3).narrow(1, 2, 2),
        lambda m: m.zeros(2, 3).permute(0, 0),
        lambda m: m.zeros(2, 3).as_strided((3, 3), (3, 1)),
        lambda m: m.zeros(2, 3, 4).t(),
        lambda m: m.zeros(2, 3).flatten(1, 0),
        lambda m: m.zeros(2, 3).chunk(0),
        lambda m: m.zeros(6).unflatten(0, (4, -1)),
        lambda m: m.zeros(2, 3)[:, ::-1],
    ]
    for f in cases:
        with pytest.raises(ERRORS) as tinfo:
            f(torch)
        with pytest.raises(ERRORS) as jinfo:
            f(tj)
        assert isinstance(jinfo.value, type(tinfo.value)), (tinfo.value, jinfo.value)


def test_clone_preserves_strides_like_torch():
    assert tj.zeros(4, 5, 6).permute(2, 0, 1).clone().stride() == \
        torch.zeros(4, 5, 6).permute(2, 0, 1).clone().stride()
