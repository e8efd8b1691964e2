"""CUDA C kernels for fusion groups: every elementwise op has a CUDA expression, reductions over
trailing axes and softmax-like groups become row kernels, and every generated source compiles with
NVRTC to PTX (no GPU needed; those tests skip only where NVRTC cannot be loaded). Where cupy and a
GPU exist, kernels also run and match the interpreter."""

import functools
import re

import numpy as np
import pytest

import tracejit
from tracejit import dtypes as D
from tracejit import ir, ops
from tracejit.codegen import cuda_c, cuda_reduce, llvm_cpu, nvrtc
from tracejit.codegen.cuda_c import CUDA_EXPR, emit_group, translation_unit
from tracejit.ir.passes import _make_group
from tracejit.ir.types import DTYPE_TO_NAME

F = tracejit.nn.functional
needs_nvrtc = pytest.mark.skipif(not nvrtc.available(), reason=f"NVRTC is not installed ({nvrtc.INSTALL_HINT})")

# Registry ops lowered on CPU (llvm_cpu.LOWER) with no CUDA expression, each with the reason. Empty:
# every elementwise op has one (an entry may still refuse some dtypes or attributes).
NOT_IN_CUDA = {}

DTYPES = [D.float32, D.float64, D.float16, D.int32, D.int64, D.bool_]
SHAPE = (4, 3)


def _type(dtype, shape=SHAPE):
    return f"{DTYPE_TO_NAME[dtype]}({', '.join(map(str, shape))})"


def _group(op, in_types, out_type, attrs="", consts=()):
    """A graph holding one fusion group: `op` over tensor params of `in_types` then constants `consts`."""
    ins = ", ".join(f"%p{i} : {t}" for i, t in enumerate(in_types))
    block_ins = ", ".join(f"%b{i} : {t}" for i, t in enumerate(in_types))
    outer = ", ".join(f"%p{i}" for i in range(len(in_types)))
    lines = [f"graph({ins}):", f"  %r : {out_type} = prim::FusionGroup({outer})", f"    block0({block_ins}):"]
    args = [f"%b{i}" for i in range(len(in_types))]
    for j, c in enumerate(consts):
        kind = "bool" if isinstance(c, bool) else "int" if isinstance(c, int) else "float"
        lines.append(f"      %c{j} : {kind} = prim::Constant[value={c!r}]()")
        args.append(f"%c{j}")
    lines += [f"      %y : {out_type} = {op}{attrs}({', '.join(args)})", "      -> (%y)", "  return (%r)", ""]
    g = ir.parse("\n".join(lines))
    return g, g.body.nodes[0]


class _Meta:
    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = dtype, ndim


def _cases():
    """(op, dtype, graph, group) for every CUDA_EXPR op over every dtype the registry accepts."""
    out = []
    for name in CUDA_EXPR:
        op = ops.get(name)
        for dt in DTYPES:
            n_in, consts, attrs = len(op.inputs), (), ""
            kinds = [dt] * n_in
            if name in ("tj::where",):
                kinds[0] = D.bool_
            if name == "tj::masked_fill":
                kinds, consts = [dt, D.bool_], (1 if not dt.is_floating_point else 0.5,)
            if name == "tj::clamp":
                kinds, consts = [dt], ((0, 1) if not dt.is_floating_point else (-0.5, 0.5))
            if name == "tj::to_dtype":
                attrs = f"[dtype=tracejit.{'float32' if dt is not D.float32 else 'float16'}]"
            if name in ("tj::div", "tj::remainder", "tj::fmod", "tj::pow") and not dt.is_floating_point:
                kinds, consts = [dt], (3,)
            if name == "tj::div" and not dt.is_floating_point:
                attrs = "[rounding_mode=\"floor\"]"
            metas = tuple(_Meta(k, 2) for k in kinds) + consts
            try:
                parsed_attrs = {"dtype": D.float32 if dt is not D.float32 else D.float16} if name == "tj::to_dtype" \
                    else {"rounding_mode": "floor"} if "rounding_mode" in attrs else {}
                _, res = op.dtype_rule(metas, {**op.attrs, **parsed_attrs})
            except (TypeError, ValueError, KeyError):
                continue  # the registry itself rejects this dtype
            if res not in DTYPE_TO_NAME:
                continue
            g, node = _group(name, [_type(k) for k in kinds], _type(res), attrs, consts)
            out.append((name, dt, g, node))
    return out


def test_every_lowered_op_has_a_cuda_expression():
    from tracejit.codegen.llvm_cpu import LOWER

    missing = sorted(set(LOWER) - set(CUDA_EXPR) - set(NOT_IN_CUDA))
    assert not missing, f"ops lowered on CPU with no CUDA expression (add to CUDA_EXPR or NOT_IN_CUDA): {missing}"
    assert set(CUDA_EXPR) <= set(LOWER) | {o.name for o in ops.all_ops()}


@needs_nvrtc
def test_every_op_and_dtype_compiles():
    from tracejit.codegen import llvm_cpu

    cases = _cases()
    kernels, accepted = [], {}
    for i, (name, dt, _, node) in enumerate(cases):
        k = emit_group(node, name=f"k{i}")
        on_cpu = llvm_cpu.emit_group(node) is not None
        assert (k is not None) == on_cpu, f"{name} on {dt}: CUDA {cuda_c.refusal(node)}, CPU lowers: {on_cpu}"
        if k is not None:
            kernels.append(k)
            accepted.setdefault(name, []).append(dt)
    # CUDA accepts exactly what the CPU backend lowers; every op has a float32 form (bitwise ops: int32)
    for name in CUDA_EXPR:
        want = D.int32 if name.startswith("tj::bitwise") else D.float32
        assert want in accepted.get(name, []), f"{name} refused for {want}"
    assert len(kernels) > 3 * len(CUDA_EXPR)
    ptx = nvrtc.compile_ptx(translation_unit(kernels), name="ops.cu")
    entries = set(re.findall(r"\.entry (\w+)", ptx))
    assert {k.name for k in kernels} <= entries




def _entries(ptx):
    """{kernel name: its PTX body}."""
    parts = re.split(r"\.entry (\w+)", ptx)
    return dict(zip(parts[1::2], parts[2::2]))


@needs_nvrtc
def test_corpus_groups_compile():
    from tests import golden_models

    kernels, rows = [], []
    for model_name in ("mlp", "cnn", "encoder_layer", "lstm_step"):
        _, _, traced = golden_models.traced(model_name)
        frozen = tracejit.freeze(traced)
        for node in frozen.graph.nodes():
            if node.op != "prim::FusionGroup":
                continue
            k = emit_group(node, name=f"{model_name}_{len(kernels)}")
            # every group the CPU backend lowers, reductions included, is lowered here too
            if llvm_cpu.emit_group(node) is not None:
                assert k is not None, f"{model_name}: CUDA refused a group: {cuda_c.refusal(node)}\n{node}"
            if k is not None:
                kernels.append(k)
                if k.launch == "rows":
                    rows.append(k)
    assert kernels and rows, "the corpus has elementwise groups and row-wise ones (softmax, layer norm)"
    ptx = nvrtc.compile_ptx(translation_unit(kernels), name="corpus.cu")
    entries = _entries(ptx)
    assert {k.name for k in kernels} <= set(entries)
    for k in rows:
        assert "shfl.sync" in entries[k.name], k.name


def _broadcast_graph():
    return ir.parse(
        "graph(%x : Float(2, 3, 4), %y : Double(4), %z : Half(3, 1), %s : float):\n"
        "  %r : Float(2, 3, 4) = prim::FusionGroup(%x, %y, %z, %s)\n"
        "    block0(%a : Float(2, 3, 4), %b : Double(4), %c : Half(3, 1), %d : float):\n"
        "      %e : Double(2, 3, 4) = tj::add(%a, %b)\n"
        "      %f : Double(2, 3, 4) = tj::mul(%e, %c)\n"
        "      %h : Double(2, 3, 4) = tj::sub(%f, %d)\n"
        "      %k : Float(2, 3, 4) = tj::to_dtype[dtype=tracejit.float32](%h)\n"
        "      -> (%k)\n"
        "  return (%r)\n")


@needs_nvrtc
def test_broadcast_and_strides_compile():
    g = _broadcast_graph()
    node = g.body.nodes[0]
    dense = emit_group(node, name="dense")
    strided = emit_group(node, in_strides=[(1, 2, 6), (-1,), None, None], name="strided")
    assert dense is not None and strided is not None
    assert "double in_3" in dense.source and "c2 * 6LL" in strided.source
    assert strided.in_strides[0] == (1, 2, 6) and strided.in_strides[3] is None
    assert dense.numel == 24 and dense.out_shapes == ((2, 3, 4),)
    assert dense.vector_width == 1 and dense.launch == "elementwise"  # broadcast operands stay scalar
    ptx = nvrtc.compile_ptx(translation_unit([dense, strided]))
    assert ".entry dense" in ptx and ".entry strided" in ptx and ".v4" not in ptx


def test_refuses_column_reductions_and_symbolic_shapes():
    g = ir.parse("graph(%x : Float(2, 3)):\n  %1 : Float(3) = prim::FusionGroup(%x)\n"
                 "    block0(%a : Float(2, 3)):\n      %b : Float(3) = tj::sum[dim=(0,), keepdim=False](%a)\n"
                 "      -> (%b)\n  return (%1)\n")
    assert emit_group(g.body.nodes[0]) is None and llvm_cpu.emit_group(g.body.nodes[0]) is not None
    assert "not trailing" in cuda_c.refusal(g.body.nodes[0])
    g = ir.parse("graph(%x : Float(N, 3)):\n  %1 : Float(N, 3) = prim::FusionGroup(%x)\n"
                 "    block0(%a : Float(N, 3)):\n      %b : Float(N, 3) = tj::neg(%a)\n"
                 "      -> (%b)\n  return (%1)\n")
    assert emit_group(g.body.nodes[0]) is None
    assert "symbolic" in cuda_c.refusal(g.body.nodes[0])


# ---- row kernels: reductions over trailing axes, softmax, layer norm --------------------------


def _traced(fn, *examples):
    """(graph, its only fusion group) for `fn` traced on arrays; a lone op is wrapped as a group."""
    t = tracejit.trace(fn, tuple(tracejit.tensor(a) for a in examples), check_trace=False)
    g = ir.parse(t.code)
    ir.run_passes(g, ["fuse"])
    groups = [node for node in g.nodes() if node.op == "prim::FusionGroup"]
    if not groups:
        _make_group(g, g.body, list(g.body.nodes))
        groups = [node for node in g.nodes() if node.op == "prim::FusionGroup"]
    assert len(groups) == 1, str(g)
    return g, groups[0]


def _norm_stats(x):  # a training-time layer norm: mean and rstd leave the group too
    mu = x.mean(-1, keepdim=True)
    d = x - mu
    rstd = (d * d).mean(-1, keepdim=True).add(1e-5).rsqrt()
    return d * rstd, mu, rstd, x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)


def _layer_norm(x, w, b):
    return F.layer_norm(x, x.shape[-1:], w, b)


# (id, fn, number of inputs: x, then vectors of x's last dim) over float inputs
FLOAT_ROWS = [
    ("softmax", lambda x: F.softmax(x * 2, dim=-1), 1),
    ("log_softmax_epilogue", lambda x: F.log_softmax(x - 1, dim=-1) * 0.5, 1),
    ("layer_norm", _layer_norm, 3),
    ("norm_stats", _norm_stats, 1),
    ("sum_prologue", lambda x: (x * 2 + 1).sum(-1), 1),
    ("mean_keepdim", lambda x: x.mean(-1, keepdim=True), 1),
    ("amax_of_square", lambda x: (x * x).amax(-1), 1),
    ("amin_keepdim", lambda x: x.amin(-1, keepdim=True), 1),
    ("var_plus_x", lambda x: (x * 2).var(-1, keepdim=True, correction=0) + x, 1),
    ("std", lambda x: x.std(-1), 1),
    ("exp_and_sum_leave", lambda x: (x * 2, (x * 0.25).exp().sum(-1, keepdim=True)), 1),
    ("softmax_then_sum", lambda x: F.softmax(x, dim=-1).sum(-1), 1),
]
# (id, fn, input) over other dtypes and reduced axes
OTHER_ROWS = [
    ("sum_int32", lambda a: (a * 3).sum(-1), lambda x: (x * 100).astype(np.int32)),
    ("amax_int64", lambda a: a.amax(-1, keepdim=True), lambda x: (x * 100).astype(np.int64)),
    ("sum_bool", lambda m: m.sum(-1), lambda x: x > 0),
    ("all", lambda m: m.all(-1), lambda x: x > -1),
    ("any_keepdim", lambda m: m.any(-1, keepdim=True), lambda x: x > 1),
    ("sum_last_two", lambda x: (x * 2).sum((1, 2)), lambda x: x.reshape(x.shape[0], -1, 2) if x.shape[1] % 2 == 0
     else x[:, :, None]),
    ("sum_all", lambda x: x.sum(), lambda x: x),
    ("mean_all_keepdim", lambda x: x.mean(None, keepdim=True), lambda x: x),
    ("double_sum", lambda x: x.double().sum(-1), lambda x: x),
]
# row lengths that pick each split: 8 threads a row, a warp, a block of 256, 512 and 1024 threads
ROW_SHAPES = [(7, 5), (9, 37), (3, 2000), (2, 5000), (2, 20000)]


def _rows(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _row_cases():
    """(id, fn, arrays) of every row-kernel pattern."""
    out = []
    for shape in ROW_SHAPES:
        for dt in (np.float32, np.float64, np.float16):
            for name, fn, n_in in FLOAT_ROWS:
                arrays = [_rows(shape).astype(dt)] + [_rows(shape[-1:], i).astype(dt) for i in range(1, n_in)]
                out.append((f"{name}-{dt.__name__}-{shape}", fn, arrays))
        for name, fn, make in OTHER_ROWS:
            out.append((f"{name}-{shape}", fn, [make(_rows(shape))]))
    return out


@functools.cache
def _row_kernels():
    """(id, kernel, graph, group, arrays) of every row-kernel pattern; each one must be lowered."""
    out = []
    for i, (cid, fn, arrays) in enumerate(_row_cases()):
        g, group = _traced(fn, *arrays)
        k = emit_group(group, name=f"rows{i}")
        assert k is not None, f"{cid}: {cuda_c.refusal(group)}\n{g}"
        assert llvm_cpu.emit_group(group) is not None, f"{cid}: the CPU backend refuses it"
        out.append((cid, k, g, group, arrays))
    return out


def test_row_kernel_launch_fields():
    splits = set()
    for cid, k, _, _, arrays in _row_kernels():
        assert k.launch == "rows" and k.vector_width == 1, cid
        assert k.numel == k.rows and k.rows * k.row_len == arrays[0].size, (cid, k.rows, k.row_len)
        assert k.threads % k.rows_per_block == 0 and k.threads <= cuda_reduce.MAX_THREADS, cid
        assert k.grid == -(-k.rows // k.rows_per_block), cid
        assert f"__launch_bounds__({k.threads})" in k.source, cid
        splits.add((k.row_len, k.threads, k.rows_per_block))
    assert {(5, 128, 16), (37, 128, 4), (2000, 256, 1), (5000, 512, 1), (20000, 1024, 1)} <= splits


@needs_nvrtc
def test_every_row_kernel_compiles_with_shuffles():
    cases = _row_kernels()
    ptx = nvrtc.compile_ptx(translation_unit([k for _, k, *_ in cases]), name="rows.cu")
    entries = _entries(ptx)
    for cid, k, *_ in cases:
        assert k.name in entries, cid
        body = entries[k.name]
        assert "shfl.sync.bfly" in body, cid  # the butterfly within a warp
        if k.rows_per_block == 1:
            assert "bar.sync" in body and ".shared" in body, cid  # the cross-warp step


@needs_nvrtc
def test_row_kernels_compile_for_the_newest_architecture():
    _, k, *_ = next(c for c in _row_kernels() if c[1].threads == 1024)
    newest = nvrtc.supported_archs()[-1] if nvrtc.supported_archs() else 90
    ptx = nvrtc.compile_ptx(k.source, arch=nvrtc.arch((newest // 10, newest % 10)))
    assert f".target sm_{newest}" in ptx and "shfl.sync" in ptx


_LOAD_16 = r"ld\.global(\.nc)?\.(v4\.(f32|u32|b32)|v2\.(f64|u64|b64)) "  # one 128-bit load
_STORE_16 = r"st\.global\.(v4\.(f32|u32|b32)|v2\.(f64|u64|b64)) "


@needs_nvrtc
@pytest.mark.parametrize("shape, dtype, width, tail", [
    ((4, 1000), np.float32, 4, False), ((1003,), np.float32, 4, True), ((64,), np.float64, 2, False),
    ((3, 40), np.float16, 8, False), ((100,), np.bool_, 16, True), ((64,), np.int8, 16, False)])
def test_contiguous_elementwise_kernels_use_128_bit_accesses(shape, dtype, width, tail):
    x = (_rows(shape) * 10).astype(dtype)
    fn = (lambda a, b: a & ~b) if dtype is np.bool_ else (lambda a, b: (a * b).relu() - b)
    _, group = _traced(fn, x, x)
    k = emit_group(group)
    assert k.vector_width == width and k.launch == "elementwise"
    assert k.grid == -(-(x.size // width + (x.size % width > 0)) // k.threads)
    assert ("packs * " in k.source) == tail  # the scalar loop over the last n % width elements
    ptx = nvrtc.compile_ptx(k.source)
    assert re.search(_LOAD_16, ptx) and re.search(_STORE_16, ptx), sorted(set(re.findall(r"(?:ld|st)\.global\S*", ptx)))
    if dtype is np.float32:
        assert re.search(r"ld\.global(\.nc)?\.v4\.f32", ptx) and "st.global.v4.f32" in ptx


@needs_nvrtc
def test_mixed_widths_share_one_pack_size():
    # half in, float out: packs of 4 elements (8-byte loads of half, 16-byte ones of float)
    h, f = _rows((8, 64)).astype(np.float16), _rows((8, 64))
    _, group = _traced(lambda h, f: h.float() * f, h, f)
    k = emit_group(group)
    assert k.vector_width == 4
    ptx = nvrtc.compile_ptx(k.source)
    assert "ld.global.nc.v4.f32" in ptx and "ld.global.nc.v4.u16" in ptx and "st.global.v4.f32" in ptx


def test_broadcast_and_strided_operands_stay_scalar():
    x = _rows((8, 256))
    _, group = _traced(lambda a, b: a * b, x, x[0])
    assert emit_group(group).vector_width == 1
    _, group = _traced(lambda a, b: a * b, x, x)
    assert emit_group(group, in_strides=[(1, 8), None]).vector_width == 1
    assert emit_group(group).vector_width == 4


def test_kernel_arguments_convert_scalars():
    k = emit_group(_broadcast_graph().body.nodes[0])
    out, x, y, z = np.empty((2, 3, 4), np.float32), np.ones((2, 3, 4), np.float32), np.ones(4), np.ones((3, 1))
    args = k.arguments([out], [x, y, z, 0.5])
    assert args[:4] == (out, x, y, z) or all(a is b for a, b in zip(args[:4], (out, x, y, z)))
    assert type(args[4]) is np.float64 and args[4] == 0.5 and type(args[5]) is np.int64 and args[5] == 24


# ---- NVRTC -----------------------------------------------------------------------------------


@needs_nvrtc
def test_compile_error_carries_log_and_numbered_source():
    src = 'extern "C" __global__ void kernel(float* o) {\n  o[0] = undefined_name;\n}\n'
    with pytest.raises(nvrtc.NVRTCError) as info:
        nvrtc.compile_ptx(src, name="broken.cu")
    msg = str(info.value)
    assert "undefined_name" in msg and "identifier" in msg  # NVRTC's log
    assert "2 |   o[0] = undefined_name;" in msg  # the numbered source


@needs_nvrtc
def test_version():
    major, minor = nvrtc.version()
    assert major >= 11 and minor >= 0


@needs_nvrtc
def test_ptx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    src = 'extern "C" __global__ void k(float* o) { o[0] = 2.0f; }'
    ptx = nvrtc.compile_ptx_cached(src, arch="compute_80")
    assert ".entry k" in ptx and len(list(tmp_path.rglob("*.o"))) == 1

    def compiling(*a, **k):
        raise AssertionError("compiled again instead of reading the cache")

    monkeypatch.setattr(nvrtc, "compile_ptx", compiling)
    assert nvrtc.compile_ptx_cached(src, arch="compute_80") == ptx
    keys = {nvrtc.ptx_cache_key(src, "kernel.cu", "compute_80"), nvrtc.ptx_cache_key(src, "kernel.cu", "compute_90"),
            nvrtc.ptx_cache_key(src, "kernel.cu", "compute_80", ("-lineinfo",)),
            nvrtc.ptx_cache_key(src + " ", "kernel.cu", "compute_80")}
    assert len(keys) == 4  # source, architecture and options each change the key
    monkeypatch.undo()
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "off")
    assert nvrtc.compile_ptx_cached(src, arch="compute_80") == ptx


def test_arch_names():
    assert nvrtc.arch((9, 0), check=False) == "compute_90"
    assert nvrtc.arch((8, 6), real=True, check=False) == "sm_86"
    if nvrtc.available() and nvrtc.supported_archs():
        newest = nvrtc.supported_archs()[-1]
        assert nvrtc.arch((99, 9)) == f"compute_{newest}"  # a GPU newer than NVRTC: its newest PTX
        with pytest.raises(nvrtc.NVRTCError, match="cannot compile for compute capability 99.9"):
            nvrtc.arch((99, 9), real=True)


# ---- on a GPU --------------------------------------------------------------------------------

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not tracejit.devices.cuda_is_available(), reason="no CUDA GPU (or cupy)")


def _module(cp, k, tmp_path):
    """The kernel `k` loaded from PTX compiled here for the current GPU."""
    cc = cp.cuda.Device().compute_capability  # e.g. "90"
    ptx = nvrtc.compile_ptx_cached(k.source, arch=nvrtc.arch((int(cc[:-1]), int(cc[-1]))))
    path = tmp_path / f"{k.name}.ptx"
    path.write_text(ptx)
    return cp.RawModule(path=str(path)).get_function(k.name)


def _run_on_gpu(cp, k, inputs, tmp_path, grid=None):
    fn = _module(cp, k, tmp_path)
    outs = [cp.empty(s, dtype=d) for s, d in zip(k.out_shapes, k.out_dtypes)]
    ins = [a if shape is None else cp.asarray(np.ascontiguousarray(a)) for a, shape in zip(inputs, k.in_shapes)]
    fn((grid or k.grid,), (k.threads,), k.arguments(outs, ins))
    cp.cuda.runtime.deviceSynchronize()
    return [cp.asnumpy(o) for o in outs]


def _compare(got, want, rtol, atol):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w))
    np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w))
    finite = np.isfinite(w)
    np.testing.assert_allclose(g[finite], w[finite], rtol=rtol, atol=atol)


_TOL = {np.dtype(np.float16): (3e-3, 3e-3), np.dtype(np.float32): (2e-5, 2e-5), np.dtype(np.float64): (1e-11, 1e-11)}


def _check_on_gpu(cp, k, g, group, arrays, tmp_path, grid=None):
    env = dict(zip(g.inputs, arrays))
    got = _run_on_gpu(cp, k, [env[v] for v in group.inputs], tmp_path, grid)
    want = ir.run(g, *arrays)
    for o, v in zip(got, group.outputs):
        w = want[g.outputs.index(v)]
        # sums of n float32 terms in another order: the error grows with the row (and with mixed signs)
        rtol, atol = _TOL.get(np.dtype(arrays[0].dtype), _TOL[np.dtype(np.float32)])
        _compare(o, w, rtol * max(1, np.sqrt(k.row_len) / 8), atol * max(1, np.sqrt(k.row_len)))


@gpu
@needs_gpu
def test_gpu_row_kernels_match_the_interpreter(tmp_path):
    cp = _cupy()
    for cid, k, g, group, arrays in _row_kernels():
        x = arrays[0]
        if x.dtype.kind == "f":  # nan, inf and -inf in some rows: they propagate as numpy's
            x = x.copy()
            x.reshape(x.shape[0], -1)[0, 0] = np.nan
            x.reshape(x.shape[0], -1)[-1, -1] = np.inf
            arrays = [x, *arrays[1:]]
        try:
            _check_on_gpu(cp, k, g, group, arrays, tmp_path)
        except AssertionError as e:
            raise AssertionError(f"{cid}: {e}") from None


@gpu
@needs_gpu
def test_gpu_row_kernels_loop_over_rows_with_a_small_grid(tmp_path):
    cp = _cupy()
    for fn in (lambda x: F.softmax(x, dim=-1), _norm_stats, lambda x: x.sum(-1)):
        for shape in ((301, 7), (70, 100), (9, 3000)):
            x = _rows(shape)
            g, group = _traced(fn, x)
            k = emit_group(group)
            for grid in (1, 3):
                _check_on_gpu(cp, k, g, group, [x], tmp_path, grid=grid)


@gpu
@needs_gpu
def test_gpu_row_kernels_on_special_rows(tmp_path):
    cp = _cupy()
    x = _rows((6, 64))
    x[0, :] = -np.inf  # softmax of an all -inf row: nan, as numpy's
    x[1, 5] = np.nan
    x[2, :] = np.nan
    x[3, 3] = np.inf
    x[4, :] = 0.0
    x[4, ::2] = -0.0
    for fn in (lambda x: F.softmax(x, dim=-1), lambda x: F.log_softmax(x, dim=-1), lambda x: x.amax(-1),
               lambda x: x.amin(-1, keepdim=True), lambda x: x.sum(-1), lambda x: x.var(-1)):
        g, group = _traced(fn, x)
        _check_on_gpu(cp, emit_group(group), g, group, [x], tmp_path)
    empty = np.zeros((3, 0), np.float32)
    for op in ("tj::mean", "tj::sum"):  # 0/0 is nan; an empty sum is 0
        g = ir.parse("graph(%x : Float(3, 0)):\n  %1 : Float(3) = prim::FusionGroup(%x)\n"
                     "    block0(%a : Float(3, 0)):\n      %b : Float(3, 0) = tj::mul(%a, %a)\n"
                     f"      %c : Float(3) = {op}[dim=(1,), keepdim=False](%b)\n      -> (%c)\n  return (%1)\n")
        k = emit_group(g.body.nodes[0])
        assert k.rows == 3 and k.row_len == 0
        got = _run_on_gpu(cp, k, [empty], tmp_path)[0]
        np.testing.assert_array_equal(got, ir.run(g, empty)[0])


@gpu
@needs_gpu
@pytest.mark.parametrize("shape", [(4, 1000), (1003,), (3, 5)])
def test_gpu_vectorized_elementwise_matches_the_interpreter(shape, tmp_path):
    cp = _cupy()
    for dt in (np.float32, np.float16, np.float64, np.int32, np.bool_):
        a, b = (_rows(shape) * 10).astype(dt), (_rows(shape, 1) * 10).astype(dt)
        g, group = _traced(lambda a, b: tracejit.where(a > b, a, b), a, b)
        k = emit_group(group)
        assert k.vector_width > 1 or k.numel < 16 // a.itemsize
        got = _run_on_gpu(cp, k, [a, b], tmp_path)[0]
        np.testing.assert_array_equal(got, ir.run(g, a, b)[0])
    h, f = _rows(shape).astype(np.float16), _rows(shape, 2)
    g, group = _traced(lambda h, f: (h.float() * f).exp(), h, f)
    got = _run_on_gpu(cp, emit_group(group), [h, f], tmp_path)[0]
    _compare(got, ir.run(g, h, f)[0], 2e-6, 0)


def _cupy():
    import cupy

    return cupy


@gpu
@needs_gpu
def test_gpu_matches_interpreter_broadcast(tmp_path):
    cp = _cupy()
    g = _broadcast_graph()
    k = emit_group(g.body.nodes[0])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = rng.standard_normal(4)
    z = rng.standard_normal((3, 1)).astype(np.float16)
    got = _run_on_gpu(cp, k, [x, y, z, 0.25], tmp_path)[0]
    want = ir.run(g, x, y, z, 0.25)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


@gpu
@needs_gpu
@pytest.mark.parametrize("name", ["tj::maximum", "tj::relu", "tj::remainder", "tj::tanh", "tj::to_dtype", "tj::where"])
def test_gpu_matches_interpreter_ops(name, tmp_path):
    cp = _cupy()
    for op, dt, g, node in _cases():
        if op != name or dt not in (D.float32, D.float16):
            continue
        k = emit_group(node)
        vals = np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 2.5, -3.0, 0.5, 7.0, -7.0])
        ins = []
        for i, (shape, d) in enumerate(zip(k.in_shapes, k.in_dtypes)):
            v = vals if i % 2 == 0 else vals[::-1]
            ins.append((v > 0 if d == np.bool_ else v).reshape(shape).astype(d))
        got = _run_on_gpu(cp, k, ins, tmp_path)[0]
        want = ir.run(g, *ins)[0]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6, equal_nan=True)
