"""CUDA C kernels for fusion groups: every elementwise op has a CUDA expression, and every generated
source compiles with NVRTC to PTX (no GPU needed). Where cupy and a GPU exist, kernels also run and
match the interpreter."""

import re

import numpy as np
import pytest

import tracejit
from tracejit import dtypes as D
from tracejit import ir, ops
from tracejit.codegen import cuda_c, nvrtc
from tracejit.codegen.cuda_c import CUDA_EXPR, emit_group, translation_unit
from tracejit.ir.types import DTYPE_TO_NAME

if not nvrtc.available():
    pytest.skip(f"NVRTC is not installed ({nvrtc.INSTALL_HINT})", allow_module_level=True)

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


def test_corpus_groups_compile():
    from tests import golden_models

    kernels, refused = [], []
    for model_name in ("mlp", "cnn", "encoder_layer", "lstm_step"):
        _, _, traced = golden_models.traced(model_name)
        frozen = tracejit.freeze(traced)
        for node in frozen.graph.nodes():
            if node.op != "prim::FusionGroup":
                continue
            ops_in = {n.op for n in node.blocks[0].nodes}
            k = emit_group(node, name=f"{model_name}_{len(kernels)}")
            if k is None:
                refused.append((model_name, cuda_c.refusal(node)))
                assert ops_in & {"tj::softmax", "tj::log_softmax", "tj::mean", "tj::sum", "tj::var", "tj::amax"}, \
                    f"{model_name}: an elementwise group was refused: {cuda_c.refusal(node)}"
            else:
                kernels.append(k)
    assert kernels, f"no corpus group was accepted; refused: {refused}"
    ptx = nvrtc.compile_ptx(translation_unit(kernels), name="corpus.cu")
    assert {k.name for k in kernels} <= set(re.findall(r"\.entry (\w+)", ptx))


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


def test_broadcast_and_strides_compile():
    g = _broadcast_graph()
    node = g.body.nodes[0]
    dense = emit_group(node, name="dense")
    strided = emit_group(node, in_strides=[(1, 2, 6), (-1,), None, None], name="strided")
    assert dense is not None and strided is not None
    assert "double in_3" in dense.source and "c2 * 6LL" in strided.source
    assert strided.in_strides[0] == (1, 2, 6) and strided.in_strides[3] is None
    assert dense.numel == 24 and dense.out_shapes == ((2, 3, 4),)
    ptx = nvrtc.compile_ptx(translation_unit([dense, strided]))
    assert ".entry dense" in ptx and ".entry strided" in ptx


def test_refuses_reductions_and_symbolic_shapes():
    g = ir.parse("graph(%x : Float(2, 3)):\n  %1 : Float(2) = prim::FusionGroup(%x)\n"
                 "    block0(%a : Float(2, 3)):\n      %b : Float(2) = tj::sum[dim=(1,), keepdim=False](%a)\n"
                 "      -> (%b)\n  return (%1)\n")
    assert emit_group(g.body.nodes[0]) is None
    assert "tj::sum" in cuda_c.refusal(g.body.nodes[0])
    g = ir.parse("graph(%x : Float(N, 3)):\n  %1 : Float(N, 3) = prim::FusionGroup(%x)\n"
                 "    block0(%a : Float(N, 3)):\n      %b : Float(N, 3) = tj::neg(%a)\n"
                 "      -> (%b)\n  return (%1)\n")
    assert emit_group(g.body.nodes[0]) is None


def test_compile_error_carries_log_and_numbered_source():
    src = 'extern "C" __global__ void kernel(float* o) {\n  o[0] = undefined_name;\n}\n'
    with pytest.raises(nvrtc.NVRTCError) as info:
        nvrtc.compile_ptx(src, name="broken.cu")
    msg = str(info.value)
    assert "undefined_name" in msg and "identifier" in msg  # NVRTC's log
    assert "2 |   o[0] = undefined_name;" in msg  # the numbered source


def test_version():
    major, minor = nvrtc.version()
    assert major >= 11 and minor >= 0


# ---- on a GPU --------------------------------------------------------------------------------


def _cupy():
    cp = pytest.importorskip("cupy", reason="cupy is not installed")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as e:  # no driver
        pytest.skip(f"no CUDA device: {e}")
    return cp


def _run_on_gpu(cp, k, inputs):
    ptx = nvrtc.compile_ptx(k.source)
    fn = cp.RawModule(code=ptx).get_function(k.name)
    outs = [cp.empty(s, dtype=d) for s, d in zip(k.out_shapes, k.out_dtypes)]
    args = list(outs)
    for a, shape in zip(inputs, k.in_shapes):
        if shape is None:
            args.append(a)
        else:
            args.append(cp.asarray(a))
    args.append(np.int64(k.numel))
    fn(((k.numel + 127) // 128,), (128,), tuple(args))
    return [cp.asnumpy(o) for o in outs]


def test_gpu_matches_interpreter_broadcast():
    cp = _cupy()
    g = _broadcast_graph()
    k = emit_group(g.body.nodes[0])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = rng.standard_normal(4)
    z = rng.standard_normal((3, 1)).astype(np.float16)
    got = _run_on_gpu(cp, k, [x, y, z, np.float64(0.25)])[0]
    want = ir.run(g, x, y, z, 0.25)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["tj::maximum", "tj::relu", "tj::remainder", "tj::tanh", "tj::to_dtype"])
def test_gpu_matches_interpreter_ops(name):
    cp = _cupy()
    for op, dt, g, node in _cases():
        if op != name or dt not in (D.float32, D.float16):
            continue
        k = emit_group(node)
        vals = np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 2.5, -3.0, 0.5, 7.0, -7.0])
        ins = [(vals if i == 0 else vals[::-1]).reshape(SHAPE).astype(dt.np) for i in range(len(k.in_shapes))]
        got = _run_on_gpu(cp, k, ins)[0]
        want = ir.run(g, *ins)[0]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6, equal_nan=True)
