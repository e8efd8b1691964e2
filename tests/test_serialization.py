"""tracejit.save / tracejit.load: pickle-free round trips, atomic writes and clear errors."""

import os

import numpy as np
import pytest

import tracejit as tj
from tracejit.errors import TracejitFormatError


def test_state_dict_round_trip_all_dtypes(tmp_path):
    sd = {name: tj.tensor(np.arange(6).reshape(2, 3) % 2, dtype=getattr(tj, name))
          for name in ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")}
    path = tmp_path / "sd.safetensors"
    tj.save(sd, path)
    back = tj.load(path)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype is sd[k].dtype
        np.testing.assert_array_equal(back[k].numpy(), sd[k].numpy())


def test_nested_structures_round_trip(tmp_path):
    obj = {"state": {0: {"step": 3.0, "exp_avg": tj.ones(2)}}, "param_groups": [{"lr": 0.1, "params": [0]}],
           "note": "x", "nothing": None, "pair": (1, tj.zeros(1))}
    tj.save(obj, tmp_path / "o")
    back = tj.load(tmp_path / "o")
    assert back["state"][0]["step"] == 3.0 and back["state"][0]["exp_avg"].tolist() == [1.0, 1.0]
    assert back["param_groups"] == [{"lr": 0.1, "params": [0]}]
    assert back["note"] == "x" and back["nothing"] is None
    assert isinstance(back["pair"], tuple) and back["pair"][1].tolist() == [0.0]


def test_model_weights_round_trip(tmp_path):
    m = tj.nn.Sequential(tj.nn.Linear(3, 4), tj.nn.BatchNorm1d(4))
    tj.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = tj.nn.Sequential(tj.nn.Linear(3, 4), tj.nn.BatchNorm1d(4))
    m2.load_state_dict(tj.load(tmp_path / "m.safetensors"))
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_files_are_plain_safetensors(tmp_path):
    from safetensors.numpy import load_file

    tj.save({"fc.weight": tj.ones(2, 2)}, tmp_path / "w.safetensors")
    raw = load_file(str(tmp_path / "w.safetensors"))
    assert list(raw) == ["fc.weight"]


def test_loads_files_written_by_other_tools(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a": np.arange(3, dtype=np.float32)}, str(tmp_path / "x.safetensors"))
    assert tj.load(tmp_path / "x.safetensors")["a"].tolist() == [0.0, 1.0, 2.0]


def test_unsupported_objects_are_refused_without_writing(tmp_path):
    target = tmp_path / "bad"
    with pytest.raises(TypeError, match="no pickle"):
        tj.save({"f": lambda: 0}, target)
    assert not target.exists() and not os.listdir(tmp_path)


def test_save_is_atomic_over_an_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "w"
    tj.save({"a": tj.ones(2)}, path)
    import tracejit.serialization as ser

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ser.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        tj.save({"a": tj.zeros(2)}, path)
    monkeypatch.undo()
    assert tj.load(path)["a"].tolist() == [1.0, 1.0]
    assert sorted(os.listdir(tmp_path)) == ["w"]  # no temporary left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_files_raise_format_error(tmp_path, damage):
    path = tmp_path / "w"
    tj.save({"a": tj.ones(100)}, path)
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[: len(blob) // 2], "garbage": b"not a tensor file at all",
                      "empty": b""}[damage])
    with pytest.raises(TracejitFormatError):
        tj.load(path)


def test_newer_format_is_refused(tmp_path):
    import json

    from safetensors.numpy import save_file

    meta = {"tracejit.structure": json.dumps({"format": 99, "root": {"v": None}})}
    save_file({"a": np.zeros(1, np.float32)}, str(tmp_path / "n"), metadata=meta)
    with pytest.raises(TracejitFormatError, match="newer"):
        tj.load(tmp_path / "n")


def test_parameters_refuse_pickle():
    import pickle

    with pytest.raises(TypeError, match="never pickles"):
        pickle.dumps(tj.nn.Parameter(tj.ones(1)))
