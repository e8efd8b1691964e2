"""The CUDA runtime (`runtime.cuda_plan.CudaPlan`, `load(..., device="cuda")`, `tracejit-run --device cuda`).

Without a GPU: the clear errors, the host-side decisions (which node runs as a kernel, a GEMM or a registry op;
the bias rewrite; launch shapes) and the whole plan on an emulated device, whose kernels run their group's
block on numpy (and whose sources NVRTC compiles, where it is installed). With a GPU (marked `gpu`): the corpus
models against the CPU runtime, launch counts, cupy inputs and outputs, strided and misaligned inputs.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import tracejit as tj
from tests import golden_models
from tracejit import devices, ir
from tracejit.codegen import nvrtc
from tracejit.runtime import cli, cuda_device, cuda_plan, load, tjfile
from tracejit.runtime.cuda_device import DeviceArrayModule, launch_shape
from tracejit.runtime.cuda_plan import CudaPlan, assign_steps, prepare
from tracejit.runtime.plan import PlanInputError, specialize
from tracejit.runtime.tjfile import save_graph

CUDA = devices.cuda_is_available()
CORPUS = ["mlp", "cnn", "encoder_layer", "lstm_step"]
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (cupy and a driver)")


def _frozen(name):
    model, example, traced = golden_models.traced(name)
    return model, example, tj.freeze(traced).graph


def _bench_mlp_graph():
    """MLP 784-512-512-10 (Linear-ReLU-Linear-ReLU-Linear) with a symbolic batch, as bench/gpu.py runs it."""
    tj.manual_seed(0)
    nn = tj.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    return tj.freeze(tj.trace(model, tj.randn(2, 784), dynamic_dims={"input": {0: "N"}})).graph


def _sizes(graph, *arrays):
    sizes = {}
    for v, a in zip(graph.inputs, arrays):
        for d, n in zip(v.type.shape, a.shape):
            if isinstance(d, str):
                sizes[d] = n
    return sizes


def _address(a):
    return a.__array_interface__["data"][0]


class Emulated(cuda_plan.HostBackend):
    """The host backend, checking what a GPU launch needs before each kernel runs (the strides baked into
    the kernel, 16-byte alignment for vector kernels, the arguments' ABI); NVRTC compiles every kernel
    source where it is installed."""

    def __init__(self):
        super().__init__()
        self.uploads = 0

    def to_device(self, a):
        self.uploads += 1
        return np.asarray(a)

    def empty(self, shape, dtype):
        return np.full(shape, 7, dtype)  # garbage, as cupy.empty's may be

    def load(self, kernel, node):
        self.kernels.append(kernel)
        if nvrtc.available():
            nvrtc.compile_ptx(kernel.source)
        grid, block = launch_shape(kernel, self.sm_count)
        assert grid[0] >= 1 and block[0] == kernel.threads

        def launch(outs, args):
            abi = kernel.arguments(outs, args)
            assert len(abi) == len(outs) + len(args) + 1 and abi[-1] == kernel.numel
            for a, shape, strides in zip(args, kernel.in_shapes, kernel.in_strides):
                if shape is None:
                    continue
                assert tuple(s // a.itemsize for s in a.strides) == tuple(strides)
                assert kernel.vector_width == 1 or _address(a) % 16 == 0
            for o, r in zip(outs, cuda_plan.run_block(node.blocks[0], args, np)):
                np.copyto(o, r)

        return launch


def _assert_close(got, want, rtol=2e-5, atol=2e-6):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# ---- without a GPU ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    _, example, graph = _frozen("mlp")
    d = tmp_path_factory.mktemp("cuda")
    save_graph(d / "mlp.tj", graph)
    np.save(d / "x.npy", example.numpy())
    return d


@pytest.mark.skipif(CUDA, reason="a GPU is present")
def test_load_on_cuda_without_a_gpu_says_what_is_missing(mlp_file):
    for device in ("cuda", "cuda:0", tj.device("cuda", 1)):
        with pytest.raises(RuntimeError, match=r"device=.*CUDA is not available here \(.*\); run on device='cpu'"):
            load(mlp_file / "mlp.tj", device=device)


@pytest.mark.skipif(CUDA, reason="a GPU is present")
def test_cli_on_cuda_without_a_gpu_exits_1_in_one_line(mlp_file, capsys):
    code = cli.main([str(mlp_file / "mlp.tj"), str(mlp_file / "x.npy"), "--device", "cuda"])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "CUDA is not available here" in lines[0], err
    assert lines[0].startswith("tracejit-run: error: device='cuda'")
    code = cli.main([str(mlp_file / "mlp.tj"), "--info", "--device", "cuda"])
    out, _ = capsys.readouterr()
    assert code == 0 and "device:      cuda (not available here:" in out


def test_cli_checks_the_device_name(mlp_file, capsys):
    for bad in ("gpu", "cuda:x", "cuda0"):
        assert cli.main([str(mlp_file / "mlp.tj"), "--device", bad]) == 2
        assert "expected cpu, cuda or cuda:N" in capsys.readouterr().err
    assert cli.main([str(mlp_file / "mlp.tj"), "--info"]) == 0
    assert "device:      cpu" in capsys.readouterr().out


def test_launch_shape_reads_the_kernel_and_caps_the_grid():
    assert launch_shape(SimpleNamespace(numel=1 << 26), sm_count=132) == ((4224, 1, 1), (256, 1, 1))
    assert launch_shape(SimpleNamespace(numel=0), sm_count=132) == ((1, 1, 1), (256, 1, 1))
    g = ir.parse("graph(%x : Float(8192, 4096)):\n  %1 : Float(8192, 4096) = tj::softmax[dim=1](%x)\n"
                 "  return (%1)\n")
    steps = assign_steps(prepare(g))
    (k,) = [s.kernel for s in steps if s.kind == "kernel"]
    grid, block = launch_shape(k, sm_count=132)
    assert k.launch == "rows" and block == (k.threads, 1, 1) and grid == (min(k.grid, 32 * 132), 1, 1)
    small = assign_steps(prepare(ir.parse("graph(%x : Float(10)):\n  %1 : Float(10) = tj::neg(%x)\n"
                                          "  return (%1)\n")))[-1].kernel
    assert launch_shape(small, sm_count=132) == ((1, 1, 1), (small.threads, 1, 1))


def test_steps_of_the_mlps():
    _, example, graph = _frozen("mlp")
    steps = [s for s in assign_steps(prepare(specialize(graph, {"N": 3}))) if s.kind != "host"]
    assert [(s.kind, s.node.op) for s in steps] == [("gemm", "tj::linear"), ("kernel", "prim::FusionGroup"),
                                                    ("gemm", "tj::linear"), ("kernel", "prim::FusionGroup")]
    bias_relu, bias_log_softmax = (s.node.blocks[0].nodes for s in steps if s.kind == "kernel")
    assert [n.op for n in bias_relu] == ["tj::add", "tj::relu"]
    assert [n.op for n in bias_log_softmax] == ["tj::add", "tj::log_softmax"]
    assert sum(s.launches for s in steps) == 4
    steps = assign_steps(prepare(specialize(_bench_mlp_graph(), {"N": 1})))
    assert [s.kind for s in steps if s.kind != "host"] == ["gemm", "kernel"] * 3
    assert sum(s.launches for s in steps) == 6


@pytest.mark.parametrize("name", CORPUS)
def test_prepare_keeps_what_the_graph_computes(name):
    _, example, graph = _frozen(name)
    x = example.numpy()
    prepared = prepare(specialize(graph, _sizes(graph, x)))
    ir.verify(prepared)
    _assert_close(ir.run(prepared, x), ir.run(graph, x), rtol=1e-6, atol=1e-7)
    for node in prepared.body.nodes:
        if node.op == "tj::linear":
            assert len(node.inputs) == 2  # every bias left the GEMM
        assert not cuda_plan._runs_as_group(node), node  # lone elementwise ops and reductions became groups


def test_a_bias_joins_the_group_that_reads_the_product():
    text = """graph(%x : Float(2, 3)):
  %w : Float(4, 3) = prim::Constant[value=@w]()
  %b : Float(4) = prim::Constant[value=@b]()
  %1 : Float(2, 4) = tj::linear(%x, %w, %b)
  %2 : Float(2, 4), %3 : Float(2, 4) = prim::FusionGroup(%1)
    block0(%a : Float(2, 4)):
      %t : Float(2, 4) = tj::tanh(%a)
      %m : Float(2, 4) = tj::mul(%t, %a)
      -> (%m, %a)
  return (%2, %3)
"""
    rng = np.random.default_rng(0)
    consts = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    g = ir.parse(text, constants=consts)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    want = ir.run(g, x)
    prepared = prepare(ir.parse(text, constants=consts))
    ir.verify(prepared)
    top = [n.op for n in prepared.body.nodes if n.op != "prim::Constant"]
    assert top == ["tj::linear", "prim::FusionGroup"]
    group = prepared.body.nodes[-1]
    assert [n.op for n in group.blocks[0].nodes] == ["tj::add", "tj::tanh", "tj::mul"]
    _assert_close(ir.run(prepared, x), want, rtol=1e-6, atol=1e-7)
    plan = CudaPlan(g, backend=Emulated())
    _assert_close(plan.run(x), want)
    assert plan.launches == 2


@pytest.mark.parametrize("name", CORPUS)
def test_emulated_plan_matches_the_interpreter(name):
    _, example, graph = _frozen(name)
    backend = Emulated()
    plan = CudaPlan(graph, backend=backend)
    x = example.numpy()
    _assert_close(plan.run(x), ir.run(graph, x))
    assert plan.launches == sum(s.launches for s in plan.steps)
    assert backend.kernels, "every corpus model has at least one fusion group"
    _assert_close(plan.run(x), ir.run(graph, x))  # the second run reuses the program and its kernels
    assert len(plan._programs) == 1


def test_a_symbolic_batch_specializes_and_uploads_weights_once():
    _, _, graph = _frozen("mlp")
    backend = Emulated()
    plan = CudaPlan(graph, backend=backend)
    for n in (1, 5, 5, 64):
        x = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
        _assert_close(plan.run(x), ir.run(graph, x))
        assert plan.launches == 4
    assert len(plan._programs) == 3
    assert backend.uploads == 4  # 2 weights (transposed) and 2 biases, once for every batch size
    with pytest.raises(PlanInputError, match="must be float32"):
        plan.run(np.zeros((2, 8), np.float64))
    with pytest.raises(PlanInputError, match="takes 1 inputs"):
        plan.run()


def _vector_graph(n):
    t = f"Float({n})"
    return ir.parse(f"graph(%x : {t}, %y : {t}):\n  %1 : {t} = prim::FusionGroup(%x, %y)\n"
                    f"    block0(%a : {t}, %b : {t}):\n      %c : {t} = tj::relu(%a)\n"
                    f"      %d : {t} = tj::mul(%c, %b)\n      %e : {t} = tj::add(%d, %a)\n      -> (%e)\n"
                    "  return (%1)\n")


def test_strided_and_misaligned_inputs_get_kernels_that_fit():
    g = _vector_graph(1024)
    (step,) = [s for s in assign_steps(prepare(specialize(g, {}))) if s.kind == "kernel"]
    assert step.kernel.vector_width == 4
    rng = np.random.default_rng(1)
    buf = rng.standard_normal(2049).astype(np.float32)
    y = rng.standard_normal(1024).astype(np.float32)
    plan = CudaPlan(g, backend=Emulated())
    aligned, misaligned, strided = buf[:1024], buf[1:1025], buf[1::2]
    assert _address(misaligned) % 16
    for x, launches in ((aligned, 1), (misaligned, 2), (strided, 1)):
        _assert_close(plan.run(x, y), ir.run(g, np.ascontiguousarray(x), y))
        assert plan.launches == launches  # a misaligned view is copied before a 16-byte-vector kernel
    kernels = plan.backend.kernels
    assert [k.vector_width for k in kernels] == [4, 1]  # the strided input got a kernel of its own


def test_scalar_params_and_lists():
    g = ir.parse("graph(%x : Float(3, 4), %a : float):\n"
                 "  %1 : Float(3, 4) = tj::mul(%x, %a)\n"
                 "  %2 : List[Float(3, 4)] = prim::ListConstruct(%1, %x)\n"
                 "  %3 : Float(6, 4) = tj::cat[dim=0](%2)\n"
                 "  return (%3, %x)\n")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    plan = CudaPlan(g, backend=Emulated())
    got = plan.run(x, 0.5)
    _assert_close(got, ir.run(g, x, 0.5))
    assert plan.launches == 2
    assert got[1] is not x and not np.shares_memory(got[1], x)  # an output never aliases an input


def _scalar_params_graph():
    g = ir.parse("graph(%x : Float(3, 4), %a : float, %k : int, %f : bool):\n"
                 "  %1 : Float(3, 4) = tj::mul(%x, %a)\n  %2 : Float(3, 4) = tj::add(%1, %k)\n"
                 "  %3 : Float(3, 4) = tj::masked_fill(%2, %f, %a)\n  return (%3)\n")
    ir.run_passes(g)
    return g


def test_float_int_and_bool_params_go_to_one_kernel():
    g = _scalar_params_graph()
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    plan = CudaPlan(g, backend=Emulated())
    for f in (True, False):
        _assert_close(plan.run(x, 0.5, 3, f), ir.run(g, x, 0.5, 3, f))
        assert [s.kind for s in plan.steps] == ["kernel"] and plan.launches == 1
    (k,) = plan.backend.kernels
    abi = k.arguments([np.empty((3, 4), np.float32)], [x, 0.5, 3, True])
    assert [type(a) for a in abi[2:]] == [np.float64, np.int64, np.bool_, np.int64]


def test_control_flow_runs_in_the_interpreter_with_kernels():
    g = ir.parse("""graph(%x : Float(N, 4)):
  %1 : Float(N, 4) = tj::relu(%x)
  %2 : Float() = tj::sum(%1)
  %3 : bool = prim::Bool(%2)
  %4 : Float(N, 4) = prim::If(%3)
    block0():
      %5 : Float(N, 4) = prim::FusionGroup(%1)
        block0(%a : Float(N, 4)):
          %b : Float(N, 4) = tj::exp(%a)
          %c : Float(N, 4) = tj::neg(%b)
          -> (%c)
      -> (%5)
    block1():
      -> (%1)
  return (%4)
""")
    assert cuda_plan.interpreted(g)
    backend = Emulated()
    plan = CudaPlan(g, backend=backend)
    for x in (np.ones((2, 4), np.float32), -np.ones((3, 4), np.float32)):
        _assert_close(plan.run(x), ir.run(g, x))
        assert plan.launches is None and plan.steps is None
    assert len(backend.kernels) == 1
    with pytest.raises(ValueError, match="needs the interpreter"):
        assign_steps(specialize(g, {"N": 2}))


def test_native_false_runs_the_interpreter_on_the_device():
    _, example, graph = _frozen("lstm_step")
    backend = Emulated()
    plan = CudaPlan(graph, backend=backend, native=False)
    _assert_close(plan.run(example.numpy()), ir.run(graph, example.numpy()))
    assert not backend.kernels and plan.launches is None


def test_device_array_module_adds_errstate():
    class Bare:
        __name__ = "cupy"
        exp = staticmethod(np.exp)

    xp = DeviceArrayModule(Bare())
    assert xp.__name__ == "cupy" and xp.exp is np.exp
    with xp.errstate(all="ignore", over="ignore"):
        pass
    with pytest.raises(AttributeError):
        xp.not_there  # noqa: B018


def test_the_cuda_runtime_imports_neither_the_front_end_nor_cupy():
    import subprocess
    import sys

    code = ("import sys, tracejit.runtime.cuda_plan, tracejit.runtime.cuda_device\n"
            "bad = [m for m in ('cupy', 'tracejit._tensor', 'tracejit.nn', 'tracejit.jit') if m in sys.modules]\n"
            "assert not bad, bad\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ---- on a GPU -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    """name -> (path of the scripted, saved model, example input as numpy)."""
    d = tmp_path_factory.mktemp("cuda_corpus")
    out = {}
    for name in CORPUS:
        model, example, dims = golden_models.models()[name]
        tj.script(model, example, dynamic_dims=dims).save(d / f"{name}.tj")
        out[name] = (d / f"{name}.tj", example.numpy())
    return out


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", CORPUS)
def test_corpus_on_the_gpu_matches_the_cpu_runtime(corpus_files, name):
    path, x = corpus_files[name]
    cpu, gpu_model = load(path), load(path, device="cuda")
    assert gpu_model.device == tj.device("cuda") and "on cuda" in repr(gpu_model)
    want = cpu(x)
    got = gpu_model(x)
    want, got = (want if isinstance(want, tuple) else (want,)), (got if isinstance(got, tuple) else (got,))
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    plan = gpu_model.plan
    assert plan.launches == sum(s.launches for s in plan.steps)
    interpreted = load(path, device="cuda", native=False)(x)
    interpreted = interpreted if isinstance(interpreted, tuple) else (interpreted,)
    for g, w in zip(interpreted, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@gpu
def test_mlp_launch_counts_and_cupy_in_and_out(corpus_files):
    import cupy as cp

    path, x = corpus_files["mlp"]
    m = load(path, device="cuda")
    want = load(path)(x)
    np.testing.assert_allclose(m(cp.asarray(x)), want, rtol=1e-4, atol=1e-5)  # cupy in, numpy out
    (out,) = m.plan.run(cp.asarray(x))  # the plan itself: cupy in and out
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(out), want, rtol=1e-4, atol=1e-5)
    assert m.plan.launches == 4  # GEMM, bias+ReLU, GEMM, bias+log_softmax (a row kernel)
    plan = CudaPlan(_bench_mlp_graph())
    for n in (1, 1024):
        xs = np.random.default_rng(n).standard_normal((n, 784)).astype(np.float32)
        (y,) = plan.run(xs)
        np.testing.assert_allclose(cp.asnumpy(y), ir.run(plan.graph, xs)[0], rtol=1e-4, atol=1e-4)
        assert plan.launches == 6  # 3 GEMMs, 3 bias(+ReLU) kernels


@pytest.mark.gpu
@gpu
def test_cli_runs_on_the_gpu(corpus_files, tmp_path, capsys):
    path, x = corpus_files["lstm_step"]
    np.save(tmp_path / "x.npy", x)
    for device in ("cpu", "cuda"):
        assert cli.main([str(path), str(tmp_path / "x.npy"), "-o", str(tmp_path / f"{device}.npz"),
                         "--device", device]) == 0
    got, want = np.load(tmp_path / "cuda.npz"), np.load(tmp_path / "cpu.npz")
    for k in want.files:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
    assert cli.main([str(path), "--bench", "3", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "on cuda" in out and "GPU launches per run:" in out
    assert cli.main([str(path), "--info", "--device", "cuda"]) == 0
    assert "compute capability" in capsys.readouterr().out


@pytest.mark.gpu
@gpu
def test_strided_misaligned_scalar_and_control_flow_inputs_on_the_gpu():
    import cupy as cp

    g = _vector_graph(1024)
    rng = np.random.default_rng(2)
    buf = cp.asarray(rng.standard_normal(2049).astype(np.float32))
    y = cp.asarray(rng.standard_normal(1024).astype(np.float32))
    plan = CudaPlan(g)
    for x, launches in ((buf[:1024], 1), (buf[1:1025], 2), (buf[1::2], 1)):
        (got,) = plan.run(x, y)
        want = ir.run(g, cp.asnumpy(x), cp.asnumpy(y))[0]
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-6, atol=1e-6)
        assert plan.launches == launches
    s = _scalar_params_graph()
    xs = np.arange(12, dtype=np.float32).reshape(3, 4)
    plan = CudaPlan(s)
    for f in (True, False):  # float, int and bool params by value in one kernel
        (got,) = plan.run(xs, 0.5, 3, f)
        np.testing.assert_allclose(cp.asnumpy(got), ir.run(s, xs, 0.5, 3, f)[0], rtol=1e-6)
        assert plan.launches == 1
    _, example, graph = _frozen("lstm_step")
    (out, h, c) = CudaPlan(graph).run(example.numpy())
    _assert_close([cp.asnumpy(o) for o in (out, h, c)], ir.run(graph, example.numpy()), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not nvrtc.available(), reason="needs the NVRTC library")
def test_model_files_can_ship_ptx_for_named_architectures(tmp_path):
    model = tj.nn.Sequential(tj.nn.Linear(8, 16), tj.nn.ReLU(), tj.nn.Linear(16, 4), tj.nn.Softmax(-1)).eval()
    x = tj.randn(3, 8)
    scripted = tj.script(model, x, dynamic_dims={"input": {0: "N"}})
    with pytest.raises(ValueError, match="needs cuda_inputs"):
        scripted.save(tmp_path / "m.tj", cuda_archs=("compute_80",))
    with pytest.raises(ValueError, match="virtual ones such as 'compute_90'"):
        scripted.save(tmp_path / "m.tj", cuda_archs=("sm_90",), cuda_inputs=(x,))
    scripted.save(tmp_path / "m.tj", cuda_archs=("compute_80", "compute_90"), cuda_inputs=(x,))
    f = tjfile.read(str(tmp_path / "m.tj"))
    backend = cuda_plan.HostBackend()
    cuda_plan.CudaPlan(f.graph, backend=backend).run(x.numpy())
    assert backend.kernels
    want = {cuda_device.ptx_member(a, k.source) for a in ("compute_80", "compute_90") for k in backend.kernels}
    assert set(f.native) == want
    for name, ptx in f.native.items():
        assert f".target sm_{name.split('/')[1][-2:]}" in ptx.decode()
    # Other sizes specialize other kernels: their members (keyed by the kernel source) do not match.
    other = cuda_plan.HostBackend()
    cuda_plan.CudaPlan(f.graph, backend=other).run(np.ones((5, 8), np.float32))
    assert {cuda_device.ptx_member("compute_80", k.source) for k in other.kernels} != want
    # The CUDA backend takes a shipped PTX for exactly its kernel and architecture, and compiles the rest.
    gpu = object.__new__(cuda_device.CupyBackend)
    gpu.cached, gpu.arch = dict(f.native), "compute_90"
    source = backend.kernels[0].source
    assert gpu._ptx(source) == f.native[cuda_device.ptx_member("compute_90", source)].decode()
    gpu.cached = {cuda_device.ptx_member("compute_80", source): b"// another architecture's",
                  cuda_device.ptx_member("compute_90", source + " "): b"// another kernel's"}
    assert ".target sm_90" in gpu._ptx(source)  # compiled here: nothing shipped matches
    loaded = tj.load(str(tmp_path / "m.tj"))  # the CPU ignores them
    np.testing.assert_allclose(loaded(x.numpy()), model(x).numpy(), rtol=1e-5, atol=1e-6)
