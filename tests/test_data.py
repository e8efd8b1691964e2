"""tracejit.utils.data: datasets, samplers, collation and the DataLoader, checked against
torch.utils.data on the same data where PyTorch is installed (random orders cannot match
PyTorch's generator, so shuffling is checked for its properties instead)."""

import collections
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    default_collate_fn_map,
    default_convert,
    get_worker_info,
    random_split,
)

Point = collections.namedtuple("Point", ["x", "y"])


def _torch():
    return pytest.importorskip("torch")


def assert_same(ours, theirs, where="batch"):
    """`ours` (tracejit) has the structure, types, shapes, dtypes and values of `theirs` (torch)."""
    torch = _torch()
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tj.Tensor), f"{where}: expected a tensor, got {type(ours).__name__}"
        assert tuple(ours.shape) == tuple(theirs.shape), f"{where}: shape {ours.shape} != {theirs.shape}"
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1], \
            f"{where}: dtype {ours.dtype} != {theirs.dtype}"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=where)
        return
    if isinstance(theirs, Point):
        assert type(ours) is Point, f"{where}: {type(ours).__name__} is not Point"
    else:
        assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{where}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, where


def _features(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 7
    y = np.arange(n, dtype=np.int64) % 3
    return x, y


def _pair(n=10):
    """The same TensorDataset in tracejit and in torch."""
    torch = _torch()
    x, y = _features(n)
    ours = TensorDataset(tj.from_numpy(x.copy()), tj.from_numpy(y.copy()))
    theirs = torch.utils.data.TensorDataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()))
    return ours, theirs


def _order(loader):
    return [i for (x,) in loader for i in x.tolist()]


# --- sequential loading against torch ---------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (4, True), (10, False),
                                                  (16, False), (16, True)])
def test_sequential_batches_match_torch(batch_size, drop_last):
    torch = _torch()
    ours, theirs = _pair()
    a = DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
    b = torch.utils.data.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    assert len(a) == len(b)
    got, want = list(a), list(b)
    assert len(got) == len(want) == len(a)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, f"batch {i}")


@pytest.mark.torch
def test_custom_samplers_and_no_batching_match_torch():
    torch = _torch()
    ours, theirs = _pair()
    order = [9, 0, 4, 4, 7]
    cases = [
        (dict(batch_size=None), dict(batch_size=None)),
        (dict(sampler=order, batch_size=2), dict(sampler=order, batch_size=2)),
        (dict(batch_sampler=[[1, 2], [0], [5, 9, 3]]), dict(batch_sampler=[[1, 2], [0], [5, 9, 3]])),
        (dict(batch_size=3, collate_fn=lambda b: b), dict(batch_size=3, collate_fn=lambda b: b)),
    ]
    for kw_ours, kw_theirs in cases:
        a, b = DataLoader(ours, **kw_ours), torch.utils.data.DataLoader(theirs, **kw_theirs)
        got, want = list(a), list(b)
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{kw_ours} batch {i}")


@pytest.mark.torch
def test_samples_of_python_and_numpy_values_match_torch():
    torch = _torch()

    class Rows(Dataset):
        def __getitem__(self, i):
            return {"img": np.full((2, 2), i, np.float32), "label": i, "w": i / 4, "name": f"s{i}"}

        def __len__(self):
            return 5

    class TorchRows(torch.utils.data.Dataset):
        __getitem__, __len__ = Rows.__getitem__, Rows.__len__

    for kw in (dict(batch_size=2), dict(batch_size=None), dict(batch_size=3, drop_last=True)):
        got, want = list(DataLoader(Rows(), **kw)), list(torch.utils.data.DataLoader(TorchRows(), **kw))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w, str(kw))


# --- default_collate and default_convert against torch ----------------------------------------

def _sample(i, tensor):
    return {
        "t": tensor(np.arange(3, dtype=np.float32) + i),
        "arr": np.arange(4, dtype=np.int32).reshape(2, 2) * i,
        "np_scalar": np.float64(i) / 3,
        "int": i,
        "float": i / 3,
        "bool": i % 2 == 0,
        "str": f"row{i}",
        "bytes": b"b",
        "point": Point(np.float32(i), i * 2),
        "tuple": (i, tensor(np.array([i, i], dtype=np.int64))),
        "list": [i, float(i)],
        "nested": {"deep": [Point(i, "p")]},
    }


@pytest.mark.torch
def test_default_collate_nested_matches_torch():
    torch = _torch()
    got = default_collate([_sample(i, tj.from_numpy) for i in range(3)])
    want = torch.utils.data.default_collate([_sample(i, torch.from_numpy) for i in range(3)])
    assert_same(got, want)
    assert got["float"].numpy()[1] == 1 / 3  # float64 all the way, not rounded through float32


@pytest.mark.torch
@pytest.mark.parametrize("batch", [
    [1, 2, 3], [True, False], [True, 1], [1, 2.5], [1.5, 2.5], ["a", "b"],
    [np.float32(1), np.float32(2)], [np.int32(1), np.int32(5)], [np.bool_(True), np.bool_(False)],
    [np.array(1.0), np.array(2.0)], [np.ones((2, 3), np.float16), np.zeros((2, 3), np.float16)],
    [(1, "a"), (2, "b")], [[1, 2], [3, 4]], [Point(1, 2.0), Point(3, 4.0)],
    [collections.OrderedDict(b=1, a=2), collections.OrderedDict(b=3, a=4)],
])
def test_default_collate_leaves_match_torch(batch):
    torch_collate = _torch().utils.data.default_collate

    assert_same(default_collate(batch), torch_collate(batch))


@pytest.mark.torch
@pytest.mark.parametrize("data", [
    np.arange(3), np.float64(2.5), np.int32(3), 7, 2.5, "s", (np.ones(2), 1), [np.zeros(2, np.float32), "x"],
    {"a": np.arange(2), "b": [np.int64(1)]}, Point(np.array(0), 1), np.array(["a", "b"]),
])
def test_default_convert_matches_torch(data):
    torch_convert = _torch().utils.data.default_convert

    got, want = default_convert(data), torch_convert(data)
    if isinstance(data, np.ndarray) and data.dtype.kind == "U":
        assert got is data and want is data
    else:
        assert_same(got, want)


def test_collate_mismatched_shapes_names_them():
    with pytest.raises(RuntimeError, match=r"same shape, but got \[2, 3\] at entry 0 and \[3, 2\] at entry 2"):
        default_collate([tj.ones(2, 3), tj.ones(2, 3), tj.ones(3, 2)])
    with pytest.raises(RuntimeError, match=r"numpy array .* \[2\] at entry 0 and \[3\] at entry 1"):
        default_collate([np.ones(2), np.ones(3)])
    with pytest.raises(RuntimeError, match="equal size, but entry 0 has 2 elements and entry 1 has 1"):
        default_collate([[1, 2], [3]])


def test_collate_unsupported_types():
    with pytest.raises(TypeError, match="batch must contain tensors, numpy arrays, numbers, dicts or lists; found "
                                        "<class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_collate_numpy_mixed_dtypes_promote_like_tensors():
    out = default_collate([np.ones(2, np.int32), np.ones(2, np.float32)])
    assert out.dtype is tj.float32  # PyTorch's promotion; numpy's would give float64


# --- datasets ---------------------------------------------------------------------------------

def test_tensor_dataset_size_mismatch_names_sizes():
    with pytest.raises(ValueError, match=r"Size mismatch between tensors.*sizes \[3, 2\].*\[\[3, 4\], \[2\]\]"):
        TensorDataset(tj.zeros(3, 4), tj.zeros(2))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(TypeError, match="argument 0 is a ndarray"):
        TensorDataset(np.zeros(3))


def test_subset_concat_and_add():
    ds = TensorDataset(tj.arange(5))
    both = ds + Subset(ds, [4, 3])
    assert isinstance(both, ConcatDataset)
    assert len(both) == 7 and both.cumulative_sizes == [5, 7]
    assert [int(both[i][0]) for i in range(7)] == [0, 1, 2, 3, 4, 4, 3]
    assert int(both[-1][0]) == 3 and int(both[-7][0]) == 0
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        both[-8]
    with pytest.raises(IndexError):
        both[7]
    with pytest.raises(ValueError, match="at least one dataset"):
        ConcatDataset([])
    with pytest.raises(NotImplementedError, match="must implement __getitem__"):
        Dataset()[0]


def test_iterable_dataset_batches_and_errors():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    assert list(DataLoader(Stream(), batch_size=None)) == list(range(7))
    assert len(DataLoader(Stream(), batch_size=3)) == 3 and len(DataLoader(Stream(), batch_size=3, drop_last=True)) == 2
    assert list(Stream() + Stream()) == list(range(7)) * 2 and len(ChainDataset([Stream(), Stream()])) == 14
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified shuffle option"):
        DataLoader(Stream(), shuffle=True)
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified sampler option"):
        DataLoader(Stream(), sampler=[0])
    with pytest.raises(TypeError, match="does not support IterableDataset"):
        ConcatDataset([Stream()])


@pytest.mark.torch
@pytest.mark.parametrize("n,lengths", [(10, [3, 7]), (10, [0.3, 0.7]), (10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]),
                                       (11, [0.25, 0.25, 0.25, 0.25]), (5, [1]), (100, [0.8, 0.1, 0.1])])
def test_random_split_sizes_match_torch_and_are_disjoint(n, lengths):
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = random_split(range(n), lengths, generator=tj.Generator().manual_seed(0))
        want = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in want]
    seen = [i for p in parts for i in p]
    assert sorted(seen) == list(range(n)), "splits must cover the dataset without overlap"


def test_random_split_is_reproducible_and_errors():
    a = random_split(range(20), [5, 15], generator=tj.Generator().manual_seed(3))
    b = random_split(range(20), [5, 15], generator=tj.Generator().manual_seed(3))
    c = random_split(range(20), [5, 15], generator=tj.Generator().manual_seed(4))
    assert [list(p) for p in a] == [list(p) for p in b] != [list(p) for p in c]
    tj.manual_seed(1)
    d = random_split(range(20), [5, 15])
    tj.manual_seed(1)
    assert [list(p) for p in d] == [list(p) for p in random_split(range(20), [5, 15])]
    with pytest.raises(ValueError, match=r"Sum of input lengths does not equal .* sum to 9, but the dataset has 10"):
        random_split(range(10), [4, 5])
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(range(10), [1.5, -0.5])
    with pytest.raises(ValueError, match="length 0 is -1"):
        random_split(range(10), [-1, 11])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(2), [0.9, 0.1])


# --- samplers and shuffling -------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("n,batch_size,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False)])
def test_batch_sampler_matches_torch(n, batch_size, drop_last):
    torch = _torch()
    ours = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
    theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_shuffle_is_reproducible_and_reshuffles_each_epoch():
    ds = TensorDataset(tj.arange(50))

    def epochs(seed, n=3):
        loader = DataLoader(ds, batch_size=8, shuffle=True, generator=tj.Generator().manual_seed(seed))
        return [_order(loader) for _ in range(n)]

    first = epochs(0)
    assert first == epochs(0), "the same seed must give the same orders"
    assert first != epochs(1), "different seeds must give different orders"
    assert all(sorted(e) == list(range(50)) for e in first), "each epoch is a permutation"
    assert first[0] != first[1] != first[2], "each epoch must reshuffle"
    assert first[0] != list(range(50))


def test_shuffle_without_generator_follows_manual_seed():
    ds = TensorDataset(tj.arange(30))
    loader = DataLoader(ds, batch_size=4, shuffle=True)
    tj.manual_seed(7)
    a = [_order(loader), _order(loader)]
    tj.manual_seed(7)
    b = [_order(loader), _order(loader)]
    tj.manual_seed(8)
    c = _order(loader)
    assert a == b and a[0] != a[1] and c != a[0]

    # draws from the global generator between batches (dropout, noise) leave the epoch's order alone
    tj.manual_seed(7)
    interleaved = []
    for (x,) in loader:
        interleaved += x.tolist()
        tj.rand(5)
    assert interleaved == a[0]


def test_random_sampler_options_and_errors():
    g = tj.Generator().manual_seed(0)
    draws = list(RandomSampler(range(5), replacement=True, num_samples=70, generator=g))
    assert len(draws) == 70 and set(draws) <= set(range(5)) and len(set(draws)) == 5
    more = list(RandomSampler(range(4), num_samples=10, generator=g))
    assert len(more) == 10 and sorted(more[:4]) == sorted(more[4:8]) == [0, 1, 2, 3]
    assert len(RandomSampler(range(4), num_samples=3)) == 3
    assert sorted(SubsetRandomSampler([5, 7, 9], generator=g)) == [5, 7, 9]
    with pytest.raises(TypeError, match="replacement should be a boolean value, but got replacement=1"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(range(0))
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=None"):
        BatchSampler(range(3), 2, None)


# --- DataLoader options, errors and the TensorDataset fast path -------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("kw", [
    dict(sampler=[0, 1], shuffle=True),
    dict(batch_sampler=[[0]], batch_size=2),
    dict(batch_sampler=[[0]], shuffle=True),
    dict(batch_sampler=[[0]], sampler=[0]),
    dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(timeout=-1),
    dict(prefetch_factor=2),
    dict(persistent_workers=True),
    dict(batch_size=0),
    dict(batch_size=2, drop_last=1),
])
def test_loader_option_errors_match_torch(kw):
    torch = _torch()
    ours, theirs = _pair()
    with pytest.raises(ValueError) as want:
        torch.utils.data.DataLoader(theirs, **kw)
    with pytest.raises(ValueError) as got:
        DataLoader(ours, **kw)
    # spaces aside: PyTorch's prefetch_factor message lacks one after "multiprocessing."
    assert str(got.value).replace(" ", "") == str(want.value).replace(" ", "")


def test_loader_attributes_are_frozen_and_workers_run_in_process():
    ds = TensorDataset(tj.arange(6))
    loader = DataLoader(ds, batch_size=4, num_workers=3, persistent_workers=True, pin_memory=True)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        loader.batch_size = 2
    assert loader.prefetch_factor == 2 and get_worker_info() is None
    assert _order(loader) == list(range(6))


def test_tensor_dataset_batches_index_each_tensor_once(monkeypatch):
    x = tj.randn(100, 5)
    ds = TensorDataset(x, tj.arange(100))
    train, _ = random_split(ds, [64, 36], generator=tj.Generator().manual_seed(0))
    slow = lambda b: default_collate(b)  # not default_collate itself, so the generic path runs
    want = {name: [[t.numpy().copy() for t in b] for b in DataLoader(d, batch_size=16, collate_fn=slow)]
            for name, d in (("full", ds), ("subset", train))}

    def no_stacking(batch, *, collate_fn_map=None):
        raise AssertionError("the TensorDataset fast path should not stack rows")

    monkeypatch.setitem(default_collate_fn_map, tj.Tensor, no_stacking)
    for name, d in (("full", ds), ("subset", train)):
        got = list(DataLoader(d, batch_size=16))
        assert len(got) == len(want[name])
        for g, w in zip(got, want[name]):
            assert type(g) is list and len(g) == 2
            assert g[0].dtype is tj.float32 and g[1].dtype is tj.int64
            for a, b in zip(g, w):
                np.testing.assert_array_equal(a.numpy(), b)

    class Doubled(TensorDataset):  # an overridden __getitem__ must still be called
        def __getitem__(self, i):
            return tuple(t[i] * 2 for t in self.tensors)

    monkeypatch.setitem(default_collate_fn_map, tj.Tensor, lambda b, **_: tj.stack(b))
    (got,) = next(iter(DataLoader(Doubled(tj.arange(4)), batch_size=4)))
    assert got.tolist() == [0, 2, 4, 6]


def test_batch_sampler_may_yield_index_tensors_and_iterators_know_their_length():
    ds = TensorDataset(tj.arange(10) * 10)
    batches = [tj.tensor([3, 1]), np.array([0, 9]), (2,)]
    assert [x.tolist() for (x,) in DataLoader(ds, batch_sampler=batches)] == [[30, 10], [0, 90], [20]]
    sub = Subset(ds, tj.tensor([5, 6, 7]))
    assert [x.tolist() for (x,) in DataLoader(sub, batch_size=2)] == [[50, 60], [70]]
    it = iter(DataLoader(ds, batch_size=3))
    assert len(it) == 4 and next(it)[0].tolist() == [0, 10, 20]
    with pytest.raises(IndexError):  # out-of-range indices skip the fast path and fail as indexing does
        list(DataLoader(ds, batch_sampler=[[10]]))
