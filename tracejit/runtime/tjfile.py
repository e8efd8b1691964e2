"""The `.tj` model file: one zip archive that the runtime loads without running anything from it.

Members (see DESIGN.md, "The model file"):

- `manifest.json` -- format version, producer, entry signature, and the size and sha256 of every
  other member (the manifest cannot hold its own; a damaged manifest fails to parse or validate);
- `graph.tjir` -- the frozen graph's IR text (`print_graph`), deflated;
- `weights.safetensors` -- every array of `graph.constants`, stored (not deflated) so it is read as is;
- optional `native/<target>/<file>` -- caches of compiled code; returned only when their checksum
  matches, never needed to run. Other members are ignored, so later versions can add some.

Manifest schema (format version 1)::

    {"format": "tracejit-model", "format_version": 1, "producer": "tracejit 0.1.0",
     "signature": {"inputs":  [{"name": "x", "dtype": "float32", "shape": ["N", 8]}],
                   "outputs": [{"name": "output", "dtype": "float32", "shape": ["N", 4]}]},
     "members": {"graph.tjir": {"size": 312, "sha256": "9f2c..."}, "weights.safetensors": {...}}}

A shape is a list of ints and symbol names (inputs sharing a symbol must agree), or null when
unknown. Loading parses JSON, IR text (the lark grammar) and safetensors only; anything wrong --
damaged, truncated, of a newer format, inconsistent -- raises `TracejitFormatError` naming the
file and the problem.

    >>> import os, tempfile
    >>> from tracejit.ir import parse
    >>> g = parse('graph(%x : Float(N, 2)):\\n  %1 : Float(N, 2) = tj::relu(%x)\\n  return (%1)\\n')
    >>> path = os.path.join(tempfile.mkdtemp(), "relu.tj")
    >>> info = save_graph(path, g)
    >>> info.file_bytes > 0
    True
    >>> f = read(path)
    >>> str(f.signature)
    '(x: float32[N, 2]) -> (output: float32[N, 2])'
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

import tracejit
from tracejit import dtypes, ir, ops
from tracejit.errors import TracejitFormatError
from tracejit.ir.graph import ConstRef
from tracejit.ir.interpreter import SCALAR_OPS
from tracejit.ir.types import DTYPE_TO_NAME, ListType, TensorType, TupleType

FORMAT = "tracejit-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GRAPH = "graph.tjir"
WEIGHTS = "weights.safetensors"
REQUIRED = (GRAPH, WEIGHTS)
NATIVE_PREFIX = "native/"

# prim:: ops the runtime executes (the interpreter's own rules); everything else must be a registry op.
RUNTIME_PRIMS = frozenset({
    "prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack",
    "prim::Bool", "prim::Int", "prim::Float", "prim::If", "prim::Loop", "prim::FusionGroup",
    "prim::size", "prim::NumToTensor", "prim::Uninitialized", "prim::RaiseException", *SCALAR_OPS,
})

# Limits against hostile archives (zip bombs). Deflate can expand data ~1032x at most; IR text
# compresses 5-30x, so a member claiming more than 256x is refused before anything is inflated,
# and a file never inflates to more than 256x its own size. The manifest is small by construction.
MAX_MANIFEST_BYTES = 16 << 20
MAX_DEFLATE_RATIO = 256
MAX_MEMBERS = 4096
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*(/[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*)*/?\Z")
_IO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the same model always gives the same bytes


class UnsupportedGraphError(ValueError):
    """The graph uses something the runtime cannot run, so it is not saved (never dead on arrival)."""


@dataclass(frozen=True)
class TensorSpec:
    """One entry of a model's signature: a name, a dtype and a shape (ints and symbols, or None)."""

    name: str
    dtype: object  # a tracejit dtype, or None when unknown
    shape: tuple | None

    def __str__(self):
        dt = self.dtype.name if self.dtype is not None else "Tensor"
        dims = "*" if self.shape is None else ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {dt}[{dims}]"

    def to_json(self):
        return {"name": self.name, "dtype": self.dtype.name if self.dtype is not None else None,
                "shape": None if self.shape is None else list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """A model's entry point: its inputs and outputs as TensorSpecs, in call order."""

    inputs: tuple
    outputs: tuple

    def __str__(self):
        ins = ", ".join(str(s) for s in self.inputs)
        outs = ", ".join(str(s) for s in self.outputs)
        return f"({ins}) -> ({outs})"

    def to_json(self):
        return {"inputs": [s.to_json() for s in self.inputs], "outputs": [s.to_json() for s in self.outputs]}


class ModelFile(NamedTuple):
    """What `read` returns: the verified graph (weights in `graph.constants`), the manifest dict, the
    native caches whose checksum matched (name -> bytes), the entry signature and the file size."""

    graph: object
    manifest: dict
    native: dict
    signature: Signature
    file_bytes: int


@dataclass
class SaveInfo:
    """What `save_graph` wrote; `str(info)` is a one-line summary."""

    path: str
    file_bytes: int
    parameters: int
    weight_bytes: int
    peak_bytes: int | None  # planned peak of intermediate memory, with symbolic dims at `plan_sizes`
    plan_sizes: dict = field(default_factory=dict)
    note: str = ""
    members: tuple = ()

    def __str__(self):
        peak = "unknown" if self.peak_bytes is None else f"{self.peak_bytes:,} bytes"
        at = ", ".join(f"{k}={v}" for k, v in self.plan_sizes.items())
        return (f"{self.path}: {self.file_bytes:,} bytes ({self.parameters:,} parameters, {self.weight_bytes:,} bytes "
                f"of weights); planned peak intermediate memory {peak}{' at ' + at if at else ''}"
                f"{'; ' + self.note if self.note else ''}")


# -- what the runtime supports ------------------------------------------------------------------

def _types_in(t):
    stack = [t]
    while stack:
        t = stack.pop()
        if isinstance(t, ListType):
            stack.append(t.elem)
        elif isinstance(t, TupleType):
            stack.extend(t.elems)
        else:
            yield t


def unsupported(graph):
    """Why the runtime could not run `graph`: a list of messages, empty when it can.

    Every op must be a registry op or a prim the runtime executes; every dtype must be in the IR's
    dtype table; every `@name` must be in `graph.constants` with a matching dtype and shape.
    """
    problems = []
    values = list(graph.inputs)
    for n in graph.nodes():
        if n.op not in RUNTIME_PRIMS:
            try:
                ops.get(n.op)
            except KeyError:
                problems.append(f"op {n.op} is not supported by the runtime (not in the op registry)")
        values.extend(n.outputs)
        for b in n.blocks:
            values.extend(b.params)
        for k, a in n.attrs.items():
            if isinstance(a, dtypes.dtype) and a not in DTYPE_TO_NAME:
                problems.append(f"{n.op} attribute {k}={a!r} is not a supported dtype")
            if isinstance(a, ConstRef):
                problems.extend(_check_constant(graph, n, a))
    for v in values:
        for t in _types_in(v.type):
            if isinstance(t, TensorType) and t.dtype is not None and t.dtype not in DTYPE_TO_NAME:
                problems.append(f"%{v.name} has dtype {t.dtype!r}, which is not in the IR's dtype table")
    return list(dict.fromkeys(problems))


def _check_constant(graph, node, ref):
    if ref.name not in graph.constants:
        return [f"{node.op} refers to weight @{ref.name}, which is not in the weights"]
    arr = _as_array(graph.constants[ref.name])
    if arr.dtype not in dtypes.FROM_NP:
        return [f"weight @{ref.name} has dtype {arr.dtype}, which the runtime does not support"]
    t = node.outputs[0].type if node.op == "prim::Constant" and len(node.outputs) == 1 else None
    if isinstance(t, TensorType):
        if t.dtype is not None and t.dtype.np != arr.dtype:
            return [f"weight @{ref.name} has dtype {dtypes.FROM_NP[arr.dtype].name} but the graph types it {t}"]
        if t.shape is not None and tuple(t.shape) != arr.shape:
            return [f"weight @{ref.name} has shape {list(arr.shape)} but the graph types it {t}"]
    return []


def _as_array(x):
    data = getattr(x, "_data", None)  # a front-end Tensor, without importing the front end
    return np.asarray(data if data is not None else x)


# -- the signature ------------------------------------------------------------------------------

def _spec_of(value, name, what):
    t = value.type
    if not isinstance(t, TensorType):
        raise UnsupportedGraphError(f"{what} %{value.name} has type {t}; the runtime takes and returns tensors only")
    return TensorSpec(name, t.dtype, None if t.shape is None else tuple(t.shape))


def _default_output_names(n):
    return ["output"] if n == 1 else [f"output{i}" for i in range(n)]


def signature_of(graph, input_names=None, output_names=None):
    """The entry signature of `graph`; inputs are named after the graph's inputs unless given."""
    input_names = list(input_names) if input_names is not None else [v.name for v in graph.inputs]
    output_names = list(output_names) if output_names is not None else _default_output_names(len(graph.outputs))
    for what, names, values in (("input", input_names, graph.inputs), ("output", output_names, graph.outputs)):
        if len(names) != len(values):
            raise ValueError(f"{len(names)} {what} names given for {len(values)} graph {what}s")
        for nm in names:
            if not isinstance(nm, str) or not _IO_NAME.match(nm) or len(nm) > 200:
                raise ValueError(f"{what} name {nm!r} must match [A-Za-z_][A-Za-z0-9_.-]* (at most 200 characters)")
        if len(set(names)) != len(names):
            raise ValueError(f"{what} names must be unique, got {names}")
    for v in graph.inputs:
        if isinstance(v.type, TensorType) and v.type.dtype is None:
            raise UnsupportedGraphError(f"input %{v.name} has no dtype ({v.type}); the runtime checks input dtypes")
    return Signature(tuple(_spec_of(v, n, "input") for v, n in zip(graph.inputs, input_names)),
                     tuple(_spec_of(v, n, "output") for v, n in zip(graph.outputs, output_names)))


# -- saving -------------------------------------------------------------------------------------

def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _check_member_name(name):
    if not isinstance(name, str) or not name.startswith(NATIVE_PREFIX) or not _MEMBER_NAME.match(name) \
            or name.endswith("/") or any(p in (".", "..") for p in name.split("/")) or len(name) > 255:
        raise ValueError(f"extra member name {name!r} must look like 'native/<target>/<file>' "
                         "(letters, digits, '_', '-', '+', '.'; no '..')")


def save_graph(path, graph, *, input_names=None, output_names=None, producer=None, extra_members=None,
               plan_sizes=None):
    """Write `graph` (a frozen graph: its inputs are the model's inputs, its weights in `graph.constants`)
    to the `.tj` file `path`, atomically. Returns a `SaveInfo`.

    `input_names` / `output_names` name the signature (default: the graph's input names; `output`, or
    `output0`, `output1`, ...). `extra_members` maps `native/<target>/<file>` names to bytes (caches).
    `plan_sizes` gives symbolic dims a size for the reported memory peak (default 1 each).
    Raises UnsupportedGraphError when the runtime could not run the graph.
    """
    problems = unsupported(graph)
    if problems:
        raise UnsupportedGraphError("cannot save a graph the runtime cannot run:\n  " + "\n  ".join(problems))
    sig = signature_of(graph, input_names, output_names)
    from safetensors.numpy import save as st_save

    weights = {}
    for k, v in graph.constants.items():
        arr = _as_array(v)
        if arr.dtype not in dtypes.FROM_NP:
            raise UnsupportedGraphError(f"weight @{k} has dtype {arr.dtype}, which the runtime does not support")
        weights[k] = arr if arr.flags.c_contiguous else arr.copy(order="C")
    try:
        text = ir.print_graph(graph)
    except (TypeError, ValueError) as e:
        raise UnsupportedGraphError(f"the graph cannot be written as IR text: {e}") from None
    members = {GRAPH: text.encode("utf-8"), WEIGHTS: st_save(weights, metadata={"format": FORMAT})}
    for name, data in (extra_members or {}).items():
        _check_member_name(name)
        members[name] = bytes(data)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "producer": producer if producer is not None else f"tracejit {tracejit.__version__}",
        "signature": sig.to_json(),
        "members": {name: {"size": len(data), "sha256": _sha256(data)} for name, data in members.items()},
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    # Load what is about to be written, exactly as `read` will: a file that does not load is never written.
    _decode(manifest_bytes, members, os.fspath(path))
    blob = _zip(manifest_bytes, members)
    _write_atomic(os.fspath(path), blob)
    peak, sizes, note = _peak(graph, plan_sizes)
    n_params = sum(int(a.size) for a in weights.values())
    return SaveInfo(os.fspath(path), len(blob), n_params, sum(int(a.nbytes) for a in weights.values()), peak,
                    sizes, note, (MANIFEST, *members))


def _zip(manifest_bytes, members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in ((MANIFEST, manifest_bytes), *members.items()):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            # Text is deflated; binary members (weights, native code) are stored so they read without inflating.
            info.compress_type = zipfile.ZIP_DEFLATED if name in (MANIFEST, GRAPH) else zipfile.ZIP_STORED
            zf.writestr(info, data)
    return buf.getvalue()


def _write_atomic(path, blob):
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tj", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; not every platform can open a folder
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _peak(graph, plan_sizes):
    symbols = {}
    for v in graph.inputs:
        for d in (v.type.shape or ()) if isinstance(v.type, TensorType) else ():
            if isinstance(d, str):
                symbols[d] = 1
    symbols.update(plan_sizes or {})
    try:
        peak = ir.plan_memory(graph, sizes=symbols).peak_bytes
    except ValueError as e:  # MemoryPlanError: an intermediate of unknown shape
        return None, symbols, f"memory not planned ({e})"
    note = "grows with the symbolic dims" if symbols and not plan_sizes else ""
    return peak, symbols, note


# -- loading ------------------------------------------------------------------------------------

def read(path):
    """Load and check the `.tj` file at `path`; returns a `ModelFile` (graph, manifest, native, signature, size).

    Raises TracejitFormatError for anything wrong with the file (and OSError when it cannot be opened).
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        zf = _open_zip(fh, path)
        with zf:
            manifest_bytes, members = _read_members(zf, size, path)
    graph, manifest, native, sig = _decode(manifest_bytes, members, path)
    return ModelFile(graph, manifest, native, sig, size)


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error, zlib.error,
               NotImplementedError, RuntimeError, KeyError, OverflowError, UnicodeDecodeError)


def _open_zip(fh, path):
    try:
        return zipfile.ZipFile(fh)
    except _ZIP_ERRORS as e:
        raise TracejitFormatError(f"{path} is not a tracejit model file: not a readable zip archive, or truncated "
                                  f"({type(e).__name__}: {e})") from None


def _read_members(zf, size, path):
    """The manifest's bytes and every member the manifest lists (name -> bytes), after the archive checks."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise TracejitFormatError(f"{path}: the archive has {len(infos)} members (at most {MAX_MEMBERS})")
    by_name = {}
    for info in infos:
        name = info.filename
        if not _MEMBER_NAME.match(name) or any(p in (".", "..") for p in name.rstrip("/").split("/")):
            raise TracejitFormatError(f"{path}: unsafe member name {name!r} in the archive")
        if name in by_name:
            raise TracejitFormatError(f"{path}: member {name!r} appears twice in the archive")
        by_name[name] = info
    if MANIFEST not in by_name:
        raise TracejitFormatError(f"{path}: missing member {MANIFEST} (not a tracejit model file?)")
    manifest_bytes = _read_member(zf, by_name[MANIFEST], size, path, MAX_MANIFEST_BYTES)
    listed = _listed_members(manifest_bytes, path)
    members = {}
    for name in listed:
        info = by_name.get(name)
        if info is None:
            if name in REQUIRED:
                raise TracejitFormatError(f"{path}: missing member {name}")
            continue  # a native cache that is not there: it is only a cache
        members[name] = _read_member(zf, info, size, path, size * MAX_DEFLATE_RATIO)
    for name in REQUIRED:
        if name not in by_name:
            raise TracejitFormatError(f"{path}: missing member {name}")
    return manifest_bytes, members


def _listed_members(manifest_bytes, path):
    """Member names from the manifest, or () when it is unreadable (then `_decode` reports why)."""
    try:
        listed = json.loads(manifest_bytes.decode("utf-8")).get("members")
        return [n for n in listed if isinstance(n, str)] if isinstance(listed, dict) else list(REQUIRED)
    except Exception:
        return list(REQUIRED)


def _read_member(zf, info, size, path, limit):
    name = info.filename
    if info.flag_bits & 0x1:
        raise TracejitFormatError(f"{path}: member {name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise TracejitFormatError(f"{path}: member {name} uses compression method {info.compress_type} "
                                  "(only stored and deflated members are read)")
    if info.header_offset < 0 or info.header_offset + info.compress_size > size:
        raise TracejitFormatError(f"{path}: member {name} extends past the end of the file (truncated?)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise TracejitFormatError(f"{path}: stored member {name} declares {info.file_size} bytes but holds "
                                  f"{info.compress_size}")
    if info.file_size > info.compress_size * MAX_DEFLATE_RATIO + 1024 or info.file_size > limit:
        raise TracejitFormatError(f"{path}: member {name} declares {info.file_size} bytes uncompressed from "
                                  f"{info.compress_size} in a {size}-byte file (corrupt, or a zip bomb)")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except _ZIP_ERRORS as e:
        raise TracejitFormatError(f"{path}: member {name} is damaged ({type(e).__name__}: {e})") from None
    if len(data) != info.file_size:
        raise TracejitFormatError(f"{path}: member {name} holds {len(data)} bytes, its header says {info.file_size}")
    return data


def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _decode(manifest_bytes, members, path):
    """(graph, manifest, native, signature) from the raw members; every check of the file's contents."""
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise TracejitFormatError(f"{path}: {MANIFEST} is not valid JSON ({e})") from None
    listed = _check_manifest(manifest, path)
    native = {}
    for name, want in listed.items():
        data = members.get(name)
        ok = data is not None and len(data) == want["size"] and _sha256(data) == want["sha256"]
        if name in REQUIRED and data is None:
            raise TracejitFormatError(f"{path}: missing member {name}")
        if name in REQUIRED and not ok:
            raise TracejitFormatError(f"{path}: member {name} does not match its checksum in {MANIFEST} (the file "
                                      "is damaged or was modified)")
        if ok and name.startswith(NATIVE_PREFIX):
            native[name] = data
    for name in REQUIRED:
        if name not in listed:
            raise TracejitFormatError(f"{path}: {MANIFEST} does not list required member {name}")
    graph = _decode_graph(members[GRAPH], members[WEIGHTS], path)
    sig = _check_signature(manifest["signature"], graph, path)
    return graph, manifest, native, sig


def _bad(path, msg):
    return TracejitFormatError(f"{path}: {MANIFEST}: {msg}")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _short(x):
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_manifest(m, path):
    if not isinstance(m, dict):
        raise _bad(path, f"expected a JSON object, got {type(m).__name__}")
    version = m.get("format_version")
    if not _is_int(version):
        raise _bad(path, f"'format_version' must be an integer, got {_short(version)}")
    if version > FORMAT_VERSION:
        raise TracejitFormatError(f"{path} was written by a newer tracejit (model format {version}, producer "
                                  f"{_short(m.get('producer'))}); this runtime reads formats up to "
                                  f"{FORMAT_VERSION}: upgrade tracejit")
    if version < 1:
        raise _bad(path, f"'format_version' must be at least 1, got {version}")
    if m.get("format") != FORMAT:
        raise _bad(path, f"'format' must be {FORMAT!r}, got {_short(m.get('format'))}")
    if not isinstance(m.get("producer"), str):
        raise _bad(path, f"'producer' must be a string, got {_short(m.get('producer'))}")
    listed = m.get("members")
    if not isinstance(listed, dict):
        raise _bad(path, f"'members' must be an object, got {type(listed).__name__}")
    for name, entry in listed.items():
        if not (isinstance(entry, dict) and _is_int(entry.get("size")) and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])):
            raise _bad(path, f"member entry {_short(name)} must be {{'size': int, 'sha256': 64 hex digits}}, "
                             f"got {_short(entry)}")
    sig = m.get("signature")
    if not isinstance(sig, dict):
        raise _bad(path, f"'signature' must be an object, got {type(sig).__name__}")
    for key in ("inputs", "outputs"):
        specs = sig.get(key)
        if not isinstance(specs, list):
            raise _bad(path, f"'signature.{key}' must be a list, got {type(specs).__name__}")
        for s in specs:
            _check_spec(s, key, path)
        names = [s["name"] for s in specs]
        if len(set(names)) != len(names):
            raise _bad(path, f"duplicate names in 'signature.{key}': {_short(names)}")
    return listed


def _check_spec(s, key, path):
    if not (isinstance(s, dict) and {"name", "dtype", "shape"} <= set(s)):
        raise _bad(path, f"each entry of 'signature.{key}' must be an object with name, dtype and shape, "
                         f"got {_short(s)}")
    name, dtype, shape = s["name"], s["dtype"], s["shape"]
    if not (isinstance(name, str) and _IO_NAME.match(name) and len(name) <= 200):
        raise _bad(path, f"bad name {_short(name)} in 'signature.{key}'")
    if not (dtype is None or (isinstance(dtype, str) and dtype in dtypes.BY_NAME)):
        raise _bad(path, f"unknown dtype {_short(dtype)} for {key[:-1]} {name!r}")
    if not (shape is None or (isinstance(shape, list) and all(
            (_is_int(d) and 0 <= d < 1 << 62) or (isinstance(d, str) and d.isidentifier()) for d in shape))):
        raise _bad(path, f"bad shape {_short(shape)} for {key[:-1]} {name!r}")


def _decode_graph(text_bytes, weights_bytes, path):
    from safetensors.numpy import load as st_load

    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TracejitFormatError(f"{path}: {GRAPH} is not UTF-8 text ({e})") from None
    try:
        weights = st_load(weights_bytes)
    except Exception as e:  # safetensors' own error type, for any malformed header or data
        raise TracejitFormatError(f"{path}: {WEIGHTS} is not a valid safetensors file ({e})") from None
    for arr in weights.values():
        arr.flags.writeable = False  # shared by every call and thread: nothing may write into a weight
    try:
        graph = ir.parse(text)
    except Exception as e:  # IRParseError, or anything a hostile text provokes: the file is at fault
        raise TracejitFormatError(f"{path}: {GRAPH} does not parse ({type(e).__name__}: {e})") from None
    graph.constants = weights
    problems = unsupported(graph)
    if problems:
        raise TracejitFormatError(f"{path}: " + "; ".join(problems[:5]) +
                                  ("" if len(problems) <= 5 else f" (and {len(problems) - 5} more problems)"))
    try:
        ir.verify(graph)
    except Exception as e:
        raise TracejitFormatError(f"{path}: {GRAPH} fails verification ({type(e).__name__}: {e})") from None
    return graph


def _check_signature(sig_json, graph, path):
    """The manifest's signature must describe the graph exactly (only the names are the manifest's own)."""
    try:
        from_graph = signature_of(graph)
    except (ValueError, UnsupportedGraphError) as e:
        raise TracejitFormatError(f"{path}: the graph's inputs or outputs cannot be a model signature ({e})") from None
    specs = {}
    for key, want in (("inputs", from_graph.inputs), ("outputs", from_graph.outputs)):
        got = sig_json[key]
        if len(got) != len(want):
            raise _bad(path, f"the signature lists {len(got)} {key} but the graph has {len(want)}")
        out = []
        for s, w in zip(got, want):
            spec = TensorSpec(s["name"], dtypes.BY_NAME[s["dtype"]] if s["dtype"] is not None else None,
                              None if s["shape"] is None else tuple(s["shape"]))
            if spec.dtype is not w.dtype or spec.shape != w.shape:
                raise _bad(path, f"signature {key[:-1]} {spec} does not match the graph's ({w})")
            out.append(spec)
        specs[key] = tuple(out)
    return Signature(specs["inputs"], specs["outputs"])


__all__ = ["FORMAT_VERSION", "ModelFile", "SaveInfo", "Signature", "TensorSpec", "UnsupportedGraphError", "read",
           "save_graph", "signature_of", "unsupported"]
