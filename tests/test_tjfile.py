"""The .tj model file: round trips of the corpus, the manifest, atomic saves, every named error, and a fuzz
test over damaged files (each gives TracejitFormatError or loads and computes the right values)."""

import hashlib
import io
import json
import os
import signal
import time
import warnings
import zipfile

import numpy as np
import pytest

import tracejit as tj
from tests import golden_models
from tracejit import ir
from tracejit.errors import TracejitFormatError
from tracejit.runtime import load, tjfile
from tracejit.runtime.tjfile import FORMAT_VERSION, UnsupportedGraphError, read, save_graph

CORPUS = ["mlp", "cnn", "lstm_step", "encoder_layer"]


@pytest.fixture(scope="module")
def corpus():
    """name -> (eager model, example input, frozen graph)."""
    out = {}
    for name in CORPUS:
        model, example, traced = golden_models.traced(name)
        out[name] = (model, example, tj.freeze(traced).graph)
    return out


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("tj") / "mlp.tj"
    save_graph(path, corpus["mlp"][2])
    return path


def _eager(model, example):
    with tj.no_grad():
        out = model(example)
    return tuple(o.numpy() for o in out) if isinstance(out, tuple) else (out.numpy(),)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _write_zip(path, members, *, fix_checksums=False):
    """Write `members` (name -> bytes, manifest.json included) as a zip; optionally recompute the manifest's
    checksums so a test reaches the checks behind them."""
    members = dict(members)
    if fix_checksums:
        manifest = json.loads(members["manifest.json"])
        manifest["members"] = {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                               for n, d in members.items() if n in manifest["members"] or n.startswith("native/")}
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _edit_manifest(members, fn):
    manifest = json.loads(members["manifest.json"])
    fn(manifest)
    return {**members, "manifest.json": json.dumps(manifest).encode()}


# -- round trips ------------------------------------------------------------------------------------

@pytest.mark.parametrize("native", [True, False], ids=["native", "interpreter"])
@pytest.mark.parametrize("name", CORPUS)
def test_corpus_round_trip_matches_eager(tmp_path, corpus, name, native):
    model, example, graph = corpus[name]
    path = tmp_path / f"{name}.tj"
    info = save_graph(path, graph)
    assert info.file_bytes == os.path.getsize(path) and info.parameters > 0
    loaded = load(path, native=native)
    got = loaded(example.numpy())
    got = got if isinstance(got, tuple) else (got,)
    want = _eager(model, example)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
    # The text and the weights come back exactly.
    assert ir.print_graph(loaded.graph) == ir.print_graph(graph)
    assert sorted(loaded.graph.constants) == sorted(graph.constants)
    for k, v in graph.constants.items():
        np.testing.assert_array_equal(loaded.graph.constants[k], np.asarray(v))


def test_symbolic_batch_runs_at_any_size(mlp_file, corpus):
    model = load(mlp_file)
    for n in (1, 5, 33):
        x = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
        np.testing.assert_allclose(model(x), _eager(corpus["mlp"][0], tj.tensor(x))[0], rtol=2e-5, atol=2e-6)


def test_manifest_contents(mlp_file):
    f = read(mlp_file)
    m = f.manifest
    assert m["format"] == "tracejit-model" and m["format_version"] == FORMAT_VERSION == 1
    assert m["producer"] == f"tracejit {tj.__version__}"
    assert m["signature"] == {"inputs": [{"name": "x", "dtype": "float32", "shape": ["N", 8]}],
                              "outputs": [{"name": "output", "dtype": "float32", "shape": ["N", 4]}]}
    members = _members(mlp_file)
    assert list(members) == ["manifest.json", "graph.tjir", "weights.safetensors"]
    assert set(m["members"]) == {"graph.tjir", "weights.safetensors"}
    for name, entry in m["members"].items():
        assert entry == {"size": len(members[name]), "sha256": hashlib.sha256(members[name]).hexdigest()}
    assert members["graph.tjir"].decode() == ir.print_graph(f.graph)
    with zipfile.ZipFile(mlp_file) as zf:  # weights are stored, so they can be read without inflating
        assert zf.getinfo("weights.safetensors").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo("graph.tjir").compress_type == zipfile.ZIP_DEFLATED
    assert str(f.signature) == "(x: float32[N, 8]) -> (output: float32[N, 4])"
    assert f.native == {} and f.file_bytes == os.path.getsize(mlp_file)


def test_names_producer_and_info(tmp_path, corpus):
    graph = corpus["lstm_step"][2]
    path = tmp_path / "lstm.tj"
    info = save_graph(path, graph, input_names=["tokens"], output_names=["out", "h", "c"], producer="me 1.0")
    f = read(path)
    assert [s.name for s in f.signature.inputs] == ["tokens"]
    assert [s.name for s in f.signature.outputs] == ["out", "h", "c"]
    assert f.manifest["producer"] == "me 1.0"
    assert info.peak_bytes is not None and info.peak_bytes > 0 and info.plan_sizes == {}
    assert "bytes" in str(info)
    mlp = save_graph(tmp_path / "m.tj", corpus["mlp"][2])
    assert mlp.plan_sizes == {"N": 1} and "symbolic" in mlp.note
    assert save_graph(tmp_path / "m.tj", corpus["mlp"][2], plan_sizes={"N": 64}).peak_bytes > mlp.peak_bytes
    with pytest.raises(ValueError, match="unique"):
        save_graph(tmp_path / "bad.tj", graph, output_names=["a", "a", "b"])
    with pytest.raises(ValueError, match="3 graph outputs"):
        save_graph(tmp_path / "bad.tj", graph, output_names=["a"])
    with pytest.raises(ValueError, match="must match"):
        save_graph(tmp_path / "bad.tj", graph, input_names=["a=b"])


def test_saving_is_deterministic(tmp_path, corpus):
    save_graph(tmp_path / "a.tj", corpus["cnn"][2])
    save_graph(tmp_path / "b.tj", corpus["cnn"][2])
    assert (tmp_path / "a.tj").read_bytes() == (tmp_path / "b.tj").read_bytes()


def test_native_members_are_returned_only_when_their_checksum_matches(tmp_path, corpus):
    path = tmp_path / "m.tj"
    save_graph(path, corpus["mlp"][2], extra_members={"native/x86_64-test/kernels.bin": b"\x7fELF..."})
    assert read(path).native == {"native/x86_64-test/kernels.bin": b"\x7fELF..."}
    assert load(path).native_members == {"native/x86_64-test/kernels.bin": b"\x7fELF..."}
    members = _members(path)
    members["native/x86_64-test/kernels.bin"] = b"\x7fELF.!."
    _write_zip(path, members)
    assert read(path).native == {}  # a stale cache is dropped, the model still loads
    members.pop("native/x86_64-test/kernels.bin")
    _write_zip(path, members)
    assert read(path).native == {}
    for bad in ("kernels.bin", "native/../x", "/native/x", "native/a\\b", "native/x/"):
        with pytest.raises(ValueError, match="native/<target>/<file>"):
            save_graph(tmp_path / "x.tj", corpus["mlp"][2], extra_members={bad: b""})


def test_unknown_members_are_ignored(tmp_path, mlp_file):
    members = _members(mlp_file)
    members["future/feature.json"] = b"{}"
    members["native/other/readme"] = b"not listed in the manifest"
    path = _write_zip(tmp_path / "m.tj", members)
    f = read(path)
    assert f.native == {} and ir.print_graph(f.graph) == members["graph.tjir"].decode()


# -- atomic saves ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fail_in", ["os.replace", "os.fsync"])
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, corpus, monkeypatch, fail_in):
    path = tmp_path / "model.tj"
    save_graph(path, corpus["mlp"][2])
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, fail_in.split(".")[1], boom)
    with pytest.raises(OSError, match="disk full"):
        save_graph(path, corpus["cnn"][2])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.tj"]
    read(path)


def test_failed_first_save_leaves_nothing(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_graph(tmp_path / "new.tj", corpus["mlp"][2])
    assert os.listdir(tmp_path) == []


def test_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path, corpus):
    path = tmp_path / "m.tj"
    save_graph(path, corpus["mlp"][2])
    assert os.stat(path).st_mode & 0o777 == 0o644
    os.chmod(path, 0o600)
    save_graph(path, corpus["mlp"][2])
    assert os.stat(path).st_mode & 0o777 == 0o600


# -- what cannot be saved -------------------------------------------------------------------------

def _relu_graph():
    return ir.parse("graph(%x : Float(N, 2)):\n  %1 : Float(N, 2) = tj::relu(%x)\n  return (%1)\n")


@pytest.mark.parametrize("text, match", [
    ("graph(%x : Float(2)):\n  %1 : Float(2) = tj::no_such_op(%x)\n  return (%1)\n", "tj::no_such_op"),
    ("graph(%x : Float(2)):\n  %1 : Float(2) = prim::PythonOp(%x)\n  return (%1)\n", "prim::PythonOp"),
    ("graph(%x : Float(2)):\n  %1 : Float(2) = prim::Constant[value=@w]()\n  return (%1)\n", "@w"),
    ("graph(%x : int):\n  return (%x)\n", "tensors only"),
    ("graph(%x : Tensor):\n  return (%x)\n", "no dtype"),
])
def test_unsupported_graphs_are_not_saved(tmp_path, text, match):
    with pytest.raises(UnsupportedGraphError, match=match):
        save_graph(tmp_path / "m.tj", ir.parse(text))
    assert not (tmp_path / "m.tj").exists()


def test_weights_must_match_their_types_to_be_saved(tmp_path):
    text = "graph(%x : Float(2)):\n  %1 : Float(2) = prim::Constant[value=@w]()\n" \
           "  %2 : Float(2) = tj::add(%x, %1)\n  return (%2)\n"
    for w, match in ((np.ones(3, np.float32), "shape"), (np.ones(2, np.float64), "dtype"),
                     (np.ones(2, np.complex64), "dtype complex64")):
        with pytest.raises(UnsupportedGraphError, match=match):
            save_graph(tmp_path / "m.tj", ir.parse(text, constants={"w": w}))
    save_graph(tmp_path / "m.tj", ir.parse(text, constants={"w": tj.ones(2)}))  # a front-end tensor is fine
    np.testing.assert_array_equal(load(tmp_path / "m.tj")(np.ones(2, np.float32)), [2.0, 2.0])


# -- every named error ------------------------------------------------------------------------------

def _expect_error(path, *needles):
    with pytest.raises(TracejitFormatError) as e:
        load(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_newer_format_version(tmp_path, mlp_file):
    members = _edit_manifest(_members(mlp_file), lambda m: m.update(format_version=FORMAT_VERSION + 1,
                                                                     signature="a schema we do not know"))
    _expect_error(_write_zip(tmp_path / "m.tj", members), "newer tracejit", "format 2", "upgrade")


def test_bad_checksum(tmp_path, mlp_file):
    members = _members(mlp_file)
    members["graph.tjir"] = members["graph.tjir"].replace(b"tj::relu", b"tj::tanh")
    _expect_error(_write_zip(tmp_path / "m.tj", members), "graph.tjir", "checksum")
    members = _members(mlp_file)
    w = bytearray(members["weights.safetensors"])
    w[-1] ^= 1
    members["weights.safetensors"] = bytes(w)
    _expect_error(_write_zip(tmp_path / "w.tj", members), "weights.safetensors", "checksum")


def test_truncated_and_non_zip_files(tmp_path, mlp_file):
    blob = mlp_file.read_bytes()
    for n in (0, 10, len(blob) // 2, len(blob) - 30, len(blob) - 1):
        p = tmp_path / f"t{n}.tj"
        p.write_bytes(blob[:n])
        _expect_error(p, "zip")
    p = tmp_path / "text.tj"
    p.write_text("graph(%x : Float(2)):\n  return (%x)\n")
    _expect_error(p, "not a tracejit model file")
    p = tmp_path / "weights.tj"
    tj.save({"w": tj.ones(2)}, p)
    _expect_error(p, "not a tracejit model file")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.tj")


@pytest.mark.parametrize("member", ["manifest.json", "graph.tjir", "weights.safetensors"])
def test_missing_member(tmp_path, mlp_file, member):
    members = _members(mlp_file)
    del members[member]
    _expect_error(_write_zip(tmp_path / "m.tj", members), "missing member", member)


def test_required_member_not_listed_in_manifest(tmp_path, mlp_file):
    members = _edit_manifest(_members(mlp_file), lambda m: m["members"].pop("weights.safetensors"))
    _expect_error(_write_zip(tmp_path / "m.tj", members), "does not list", "weights.safetensors")


def _retext(members, fn):
    return {**members, "graph.tjir": fn(members["graph.tjir"].decode()).encode()}


def _reweight(members, fn):
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    weights = dict(st_load(members["weights.safetensors"]))
    fn(weights)
    return {**members, "weights.safetensors": st_save(weights)}


@pytest.mark.parametrize("edit, needles", [
    (lambda ms: _reweight(ms, lambda w: w.pop("fc1.weight")), ["@fc1.weight", "not in the weights"]),
    (lambda ms: _reweight(ms, lambda w: w.update({"fc1.bias": np.zeros(16, np.float64)})),
     ["@fc1.bias", "dtype float64", "Float(16)"]),
    (lambda ms: _reweight(ms, lambda w: w.update({"fc1.bias": np.zeros(15, np.float32)})),
     ["@fc1.bias", "shape [15]", "Float(16)"]),
    (lambda ms: {**ms, "weights.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json"},
     ["weights.safetensors", "not a valid safetensors"]),
    (lambda ms: _retext(ms, lambda t: t.replace("return (", "retur (")), ["graph.tjir", "does not parse", "line"]),
    (lambda ms: {**ms, "graph.tjir": b"\xff\xfe"}, ["graph.tjir", "UTF-8"]),
    (lambda ms: _retext(ms, lambda t: t.replace("Float(N, 16) = tj::relu", "Double(N, 16) = tj::relu")),
     ["graph.tjir", "fails verification"]),
    (lambda ms: _retext(ms, lambda t: t.replace("tj::relu", "tj::frobnicate")),
     ["tj::frobnicate", "not supported"]),
])
def test_bad_contents_behind_valid_checksums(tmp_path, mlp_file, edit, needles):
    members = edit(_members(mlp_file))
    _expect_error(_write_zip(tmp_path / "m.tj", members, fix_checksums=True), *needles)


@pytest.mark.parametrize("edit, needles", [
    (lambda m: m.update(format_version="1"), ["'format_version' must be an integer"]),
    (lambda m: m.update(format_version=True), ["'format_version' must be an integer"]),
    (lambda m: m.update(format_version=0), ["at least 1"]),
    (lambda m: m.update(format="zip"), ["'format' must be"]),
    (lambda m: m.update(producer=3), ["'producer' must be a string"]),
    (lambda m: m.update(members=["graph.tjir"]), ["'members' must be an object"]),
    (lambda m: m["members"]["graph.tjir"].update(size="450"), ["member entry 'graph.tjir'"]),
    (lambda m: m["members"]["graph.tjir"].update(sha256="00"), ["member entry 'graph.tjir'"]),
    (lambda m: m.pop("signature"), ["'signature' must be an object"]),
    (lambda m: m["signature"].update(inputs={"x": 1}), ["'signature.inputs' must be a list"]),
    (lambda m: m["signature"]["inputs"][0].update(dtype="float128"), ["unknown dtype 'float128'"]),
    (lambda m: m["signature"]["inputs"][0].update(shape="N,8"), ["bad shape"]),
    (lambda m: m["signature"]["inputs"][0].update(shape=["N", -1]), ["bad shape"]),
    (lambda m: m["signature"]["inputs"][0].update(name="a b"), ["bad name"]),
    (lambda m: m["signature"]["inputs"][0].update(shape=["N", 9]), ["does not match the graph"]),
    (lambda m: m["signature"]["outputs"][0].update(dtype="float64"), ["does not match the graph"]),
    (lambda m: m["signature"]["outputs"].append(dict(m["signature"]["outputs"][0], name="y")),
     ["2 outputs but the graph has 1"]),
    (lambda m: m["signature"]["inputs"].append(dict(m["signature"]["inputs"][0])), ["duplicate names"]),
])
def test_bad_manifest_fields(tmp_path, mlp_file, edit, needles):
    members = _edit_manifest(_members(mlp_file), edit)
    _expect_error(_write_zip(tmp_path / "m.tj", members), "manifest.json", *needles)


@pytest.mark.parametrize("text, needle", [
    (b"{not json", "not valid JSON"),
    (b"[]", "expected a JSON object"),
    (b'{"format_version": 1, "format_version": 1}', "duplicate key"),
    (b"[" * 100000, "not valid JSON"),
    ("{\"producer\": \"\u00e9\"}".encode("latin-1"), "not valid JSON"),
])
def test_bad_manifest_json(tmp_path, mlp_file, text, needle):
    members = {**_members(mlp_file), "manifest.json": text}
    _expect_error(_write_zip(tmp_path / "m.tj", members), "manifest.json", needle)


def test_unsafe_and_duplicate_member_names(tmp_path, mlp_file):
    for evil in ("../evil.txt", "/etc/passwd", "native/../../x", "a\\b", "native/ok/./x"):
        members = {**_members(mlp_file), evil: b"x"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = _write_zip(tmp_path / "m.tj", members)
        # zipfile itself normalizes nothing on reading, so the name reaches the check as written
        _expect_error(path, "unsafe member name")
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        for name, data in _members(mlp_file).items():
            zf.writestr(name, data)
        zf.writestr("graph.tjir", b"graph():\n  return ()\n")
    (tmp_path / "d.tj").write_bytes(buf.getvalue())
    _expect_error(tmp_path / "d.tj", "appears twice", "graph.tjir")


def _patch_central_sizes(blob, name, *, file_size=None, compress_size=None):
    """Rewrite the sizes the central directory declares for `name` (a hostile archive)."""
    i = blob.rfind(b"PK\x01\x02", 0, blob.find(name.encode(), blob.find(b"PK\x01\x02")) + 1)
    b = bytearray(blob)
    if compress_size is not None:
        b[i + 20:i + 24] = compress_size.to_bytes(4, "little")
    if file_size is not None:
        b[i + 24:i + 28] = file_size.to_bytes(4, "little")
    return bytes(b)


def test_zip_bombs_and_lying_sizes(tmp_path, mlp_file):
    blob = mlp_file.read_bytes()
    p = tmp_path / "m.tj"
    p.write_bytes(_patch_central_sizes(blob, "graph.tjir", file_size=0xFFFFFFF0))
    _expect_error(p, "graph.tjir", "zip bomb")
    p.write_bytes(_patch_central_sizes(blob, "weights.safetensors", compress_size=0xFFFFFF00))
    _expect_error(p, "weights.safetensors", "past the end")
    p.write_bytes(_patch_central_sizes(blob, "weights.safetensors", file_size=10))
    _expect_error(p, "weights.safetensors", "stored member")
    # A real bomb: 64 MB of zeros deflates to ~64 KB; refused before it is inflated.
    members = _members(mlp_file)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data if name != "graph.tjir" else bytes(64 << 20))
    p.write_bytes(buf.getvalue())
    _expect_error(p, "graph.tjir", "zip bomb")


def test_encrypted_and_unsupported_compression(tmp_path, mlp_file):
    members = _members(mlp_file)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_BZIP2 if name == "graph.tjir" else None)
    (tmp_path / "b.tj").write_bytes(buf.getvalue())
    _expect_error(tmp_path / "b.tj", "graph.tjir", "compression method 12")
    blob = bytearray(mlp_file.read_bytes())
    i = blob.find(b"PK\x01\x02", blob.find(b"PK\x01\x02") + 1)  # graph.tjir's central directory entry
    blob[i + 8] |= 1  # the "encrypted" flag
    (tmp_path / "e.tj").write_bytes(bytes(blob))
    _expect_error(tmp_path / "e.tj", "graph.tjir", "encrypted")


# -- fuzzing ---------------------------------------------------------------------------------------

class _Timeout(Exception):
    pass


def _guard(seconds):
    """Raise _Timeout in the main thread after `seconds` (POSIX); a no-op elsewhere."""
    if not hasattr(signal, "setitimer"):
        return lambda: None

    def fire(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

    return cancel


def _mutate_bytes(rng, blob):
    b = bytearray(blob)
    kind = rng.integers(5)
    if kind == 0:  # truncate
        return bytes(b[:rng.integers(len(b))]), "truncate"
    if kind == 1:  # flip bits
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
        return bytes(b), "bitflip"
    if kind == 2:  # overwrite a run of bytes
        i = int(rng.integers(len(b)))
        n = int(rng.integers(1, 17))
        b[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        return bytes(b), "overwrite"
    if kind == 3:  # remove or insert bytes in the middle
        i = int(rng.integers(len(b)))
        if rng.random() < 0.5:
            return bytes(b[:i] + b[i + int(rng.integers(1, 9)):]), "cut"
        return bytes(b[:i] + rng.integers(0, 256, 4, dtype=np.uint8).tobytes() + b[i:]), "insert"
    return bytes(rng.integers(0, 256, 16, dtype=np.uint8).tobytes()) + bytes(b), "prefix"


def _random_json_value(rng):
    return [None, True, 0, -1, 1 << 70, 1.5, "", "N", "float32", [], {}, [1, "N"], {"size": 0}][rng.integers(13)]


def _mutate_manifest(rng, manifest):
    """Replace, drop or add one field somewhere in the manifest."""
    paths = []
    stack = [((), manifest)]
    while stack:
        where, obj = stack.pop()
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for k, v in items:
            paths.append(where + (k,))
            stack.append((where + (k,), v))
    where = paths[rng.integers(len(paths))]
    parent = manifest
    for k in where[:-1]:
        parent = parent[k]
    op = rng.integers(3)
    if op == 0:
        parent[where[-1]] = _random_json_value(rng)
    elif op == 1:
        parent.pop(where[-1])
    elif isinstance(parent, dict):
        parent["extra" + str(rng.integers(9))] = _random_json_value(rng)
    else:
        parent.append(_random_json_value(rng))
    return manifest


def _mutate_members(rng, members, other):
    names = list(members)
    kind = rng.integers(6)
    m = dict(members)
    if kind == 0:  # remove a member
        m.pop(names[rng.integers(len(names))])
        return list(m.items()), "remove"
    if kind == 1:  # duplicate a member, possibly with other contents
        name = names[rng.integers(len(names))]
        return list(m.items()) + [(name, other.get(name, b"x"))], "duplicate"
    if kind == 2:  # swap the contents of two members
        a, b = rng.choice(len(names), 2, replace=False)
        m[names[a]], m[names[b]] = m[names[b]], m[names[a]]
        return list(m.items()), "swap"
    if kind == 3:  # a member from another model's file
        name = names[rng.integers(len(names))]
        m[name] = other[name] if name in other else b""
        return list(m.items()), "foreign"
    if kind == 4:  # a field of the manifest
        try:
            m["manifest.json"] = json.dumps(_mutate_manifest(rng, json.loads(m["manifest.json"]))).encode()
        except (KeyError, IndexError, TypeError):
            pass
        return list(m.items()), "manifest"
    items = list(m.items())  # reorder members
    rng.shuffle(items)
    return items, "reorder"


def _zip_items(items, rng):
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")
        for name, data in items:
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if rng.random() < 0.5 else zipfile.ZIP_STORED)
    return buf.getvalue()


def test_fuzz_damaged_files_give_format_errors_or_correct_results(tmp_path, corpus):
    """Thousands of damaged files: each raises TracejitFormatError, or loads and computes the right values
    (changes the checks cannot see are harmless: zip timestamps, padding, ignored members, manifest names).
    Never another exception, a crash or a hang."""
    base_path, other_path = tmp_path / "base.tj", tmp_path / "other.tj"
    save_graph(base_path, corpus["mlp"][2], extra_members={"native/test-target/cache.bin": b"cached code" * 4})
    save_graph(other_path, corpus["cnn"][2])
    base, other = base_path.read_bytes(), _members(other_path)
    members = _members(base_path)
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    want = load(base_path, native=False)(x)
    rng = np.random.default_rng(20240601)
    path = tmp_path / "case.tj"
    outcomes = {}
    cases, start, slowest = 3000, time.perf_counter(), 0.0
    for case in range(cases):
        if case % 3 == 2:
            items, kind = _mutate_members(rng, members, other)
            blob = _zip_items(items, rng)
        else:
            blob, kind = _mutate_bytes(rng, base)
        path.write_bytes(blob)
        t0 = time.perf_counter()
        cancel = _guard(5.0)
        try:
            model = load(path, native=False)
            got = model(x)
            outcome = "loaded"
        except TracejitFormatError as e:
            assert str(path) in str(e), f"case {case} ({kind}): the message does not name the file: {e}"
            outcome = "rejected"
        except _Timeout:
            pytest.fail(f"case {case} ({kind}) took more than 5 s")
        except Exception as e:  # noqa: BLE001 - any other exception is the failure this test looks for
            path.with_name(f"failing-{case}.tj").write_bytes(blob)
            pytest.fail(f"case {case} ({kind}) raised {type(e).__name__}: {e}")
        finally:
            cancel()
        slowest = max(slowest, time.perf_counter() - t0)
        if outcome == "loaded":
            np.testing.assert_array_equal(got, want, err_msg=f"case {case} ({kind}) loaded but computes other values")
            assert ir.print_graph(model.graph) == members["graph.tjir"].decode()
        outcomes[kind, outcome] = outcomes.get((kind, outcome), 0) + 1
    elapsed = time.perf_counter() - start
    rejected = sum(n for (_, o), n in outcomes.items() if o == "rejected")
    assert rejected > cases * 0.5, outcomes  # most damage is detected, not silently tolerated
    assert slowest < 2.0 and elapsed < 60, (slowest, elapsed)


def test_fuzz_text_and_weights_behind_valid_checksums(tmp_path, mlp_file):
    """The parser and the safetensors reader see damaged contents directly when the checksums are fixed:
    still only TracejitFormatError, or a graph that verifies and runs."""
    members = _members(mlp_file)
    rng = np.random.default_rng(7)
    x = np.ones((2, 8), np.float32)
    path = tmp_path / "m.tj"
    for case in range(300):
        m = dict(members)
        name = "graph.tjir" if case % 2 else "weights.safetensors"
        blob, kind = _mutate_bytes(rng, m[name])
        m[name] = blob
        _write_zip(path, m, fix_checksums=True)
        cancel = _guard(5.0)
        try:
            load(path, native=False)(x)
        except TracejitFormatError:
            pass
        except _Timeout:
            pytest.fail(f"case {case} ({name}, {kind}) took more than 5 s")
        except ir.IRRuntimeError:
            pass  # a damaged but well-formed graph may fail while running, with the node named
        finally:
            cancel()


def test_member_name_check_is_shared_by_save_and_read():
    assert tjfile._MEMBER_NAME.match("native/x86_64-linux+avx2/kernels.o")
    assert not tjfile._MEMBER_NAME.match("native//x")
    assert not tjfile._MEMBER_NAME.match(".hidden/../x")
