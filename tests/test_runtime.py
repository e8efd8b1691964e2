"""tracejit.runtime.load / Model: the signature checks and their messages, inputs of every kind, the
layer rule (a fresh interpreter runs a model without the front end) and calls from many threads."""

import subprocess
import sys
import threading

import numpy as np
import pytest

import tracejit as tj
from tracejit import ir
from tracejit.runtime import Model, TracejitFormatError, load
from tracejit.runtime.model import InputError
from tracejit.runtime.tjfile import save_graph

FRONT_END = ["tracejit._tensor", "tracejit._api", "tracejit._dispatch", "tracejit.autograd", "tracejit.nn",
             "tracejit.optim", "tracejit.utils", "tracejit.jit", "tracejit.serialization"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """(path, eager model) of a small MLP with a symbolic batch N."""
    tj.manual_seed(0)
    model = tj.nn.Sequential(tj.nn.Linear(8, 16), tj.nn.ReLU(), tj.nn.Linear(16, 4)).eval()
    frozen = tj.freeze(tj.trace(model, tj.randn(3, 8), dynamic_dims={"input": {0: "N"}}))
    path = tmp_path_factory.mktemp("rt") / "mlp.tj"
    save_graph(path, frozen.graph)
    return path, model


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """A model of two inputs sharing the symbol N, with two outputs."""

    def f(a, b):
        return a * b + 1.0, (a - b).sum(dim=1)

    traced = tj.trace(f, (tj.randn(3, 4), tj.randn(3, 4)), dynamic_dims={"a": {0: "N"}, "b": {0: "N"}})
    path = tmp_path_factory.mktemp("rt") / "two.tj"
    save_graph(path, tj.freeze(traced).graph, output_names=["prod", "diff"])
    return path


def _eager(model, x):
    with tj.no_grad():
        return model(tj.tensor(x)).numpy()


def test_load_returns_a_model_with_a_signature(mlp):
    path, model = mlp
    m = load(path)
    assert isinstance(m, Model) and m.path == str(path)
    assert str(m.signature) == "(input: float32[N, 8]) -> (output: float32[N, 4])"
    assert m.input_names == ("input",) and m.output_names == ("output",)
    spec = m.signature.inputs[0]
    assert spec.name == "input" and spec.dtype is tj.float32 and spec.shape == ("N", 8)
    assert m.manifest["format_version"] == 1 and m.producer.startswith("tracejit ")
    assert m.num_parameters == 8 * 16 + 16 + 16 * 4 + 4
    assert isinstance(m.graph, ir.Graph) and "Model from" in repr(m)


def test_inputs_by_position_name_tensor_and_duck_types(mlp):
    path, model = mlp
    m = load(path)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    want = _eager(model, x)
    np.testing.assert_allclose(m(x), want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(m(input=x), want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(m(tj.tensor(x)), want, rtol=2e-5, atol=2e-6)  # a front-end Tensor
    np.testing.assert_allclose(m(tj.tensor(x, requires_grad=True)), want, rtol=2e-5, atol=2e-6)

    class OnlyNumpy:  # e.g. a tensor of another framework
        def numpy(self):
            return x

    np.testing.assert_allclose(m(OnlyNumpy()), want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(m(x.tolist()), want, rtol=2e-5, atol=2e-6)  # Python floats carry no width
    np.testing.assert_allclose(m(np.asfortranarray(x)), want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(m(x.astype(">f4")), want, rtol=2e-5, atol=2e-6)  # big-endian .npy data
    out = m(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (5, 4)


def test_several_outputs_come_back_as_a_tuple(two_inputs):
    m = load(two_inputs)
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), np.float32)
    prod, diff = m(a, b=b)
    np.testing.assert_allclose(prod, a * b + 1)
    np.testing.assert_allclose(diff, (a - b).sum(1))
    assert m.output_names == ("prod", "diff")


SIG = "the model expects (input: float32[N, 8]) -> (output: float32[N, 4])"


@pytest.mark.parametrize("call, needle", [
    (lambda m, x: m(inputs=x), "unknown input name 'inputs' (inputs: input)"),
    (lambda m, x: m(), "missing input 'input'"),
    (lambda m, x: m(x, x), "got 2 positional inputs but the model takes 1"),
    (lambda m, x: m(x, input=x), "input 'input' given twice"),
    (lambda m, x: m(x.astype(np.float64)), "input 'input' has dtype float64, expected float32"),
    (lambda m, x: m(x.astype(np.float16)), "has dtype float16, expected float32"),
    (lambda m, x: m(x.astype(np.int32)), "has dtype int32, expected float32"),
    (lambda m, x: m(x[0]), "has shape [8] (1-d), expected 2-d [N, 8]"),
    (lambda m, x: m(x[:, :7]), "has shape [3, 7], expected [N, 8] (dim 1 must be 8)"),
    (lambda m, x: m([["a"] * 8]), "do not convert to float32"),
    (lambda m, x: m(object()), "do not convert to float32"),
])
def test_input_errors_name_the_problem_and_show_the_signature(mlp, call, needle):
    m = load(mlp[0])
    x = np.zeros((3, 8), np.float32)
    with pytest.raises(InputError) as e:
        call(m, x)
    assert needle in str(e.value) and SIG in str(e.value), str(e.value)


def test_input_error_is_both_a_type_and_a_value_error(mlp):
    m = load(mlp[0])
    with pytest.raises(TypeError):
        m()
    with pytest.raises(ValueError):
        m(np.zeros((1, 8), np.float64))


def test_inputs_sharing_a_symbol_must_agree(two_inputs):
    m = load(two_inputs)
    with pytest.raises(InputError, match=r"input 'b' has N=3 \(dim 0\), but input 'a' has N=2; inputs sharing the "
                                         r"symbol N must agree; the model expects \(a: float32\[N, 4\], b: "):
        m(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32))


def test_python_data_converts_only_within_its_kind(tmp_path):
    path = tmp_path / "neg.tj"
    save_graph(path, ir.parse("graph(%i : Int(N)):\n  %1 : Int(N) = tj::neg(%i)\n  return (%1)\n"))
    m = load(path)
    np.testing.assert_array_equal(m([1, 2, 3]), np.array([-1, -2, -3], np.int32))
    np.testing.assert_array_equal(m([True, False]), np.array([-1, 0], np.int32))
    with pytest.raises(InputError, match="do not convert to int32"):
        m([1.5, 2.0])  # float -> int would truncate
    with pytest.raises(InputError, match="out of the range of int32"):
        m([1 << 40])
    with pytest.raises(InputError, match="has dtype int64, expected int32"):
        m(np.array([1, 2], np.int64))  # arrays are never cast


def test_devices(mlp):
    if not tj.cuda.is_available():  # with a GPU, tests/test_cuda_runtime.py runs the model there
        with pytest.raises(RuntimeError, match="device='cuda'"):
            load(mlp[0], device="cuda")
    with pytest.raises(ValueError, match="unknown device type 'tpu'"):
        load(mlp[0], device="tpu")
    assert load(mlp[0], device="cpu:0") is not None


def test_format_errors_are_reexported(tmp_path):
    p = tmp_path / "x.tj"
    p.write_bytes(b"junk")
    with pytest.raises(TracejitFormatError, match="not a tracejit model file"):
        load(p)
    assert TracejitFormatError is tj.errors.TracejitFormatError


def test_interpreter_and_native_agree(mlp):
    x = np.random.default_rng(3).standard_normal((7, 8)).astype(np.float32)
    np.testing.assert_allclose(load(mlp[0], native=False)(x), load(mlp[0])(x), rtol=2e-5, atol=2e-6)


def test_fresh_interpreter_runs_a_model_without_the_front_end(mlp):
    path, model = mlp
    x = np.random.default_rng(5).standard_normal((2, 8)).astype(np.float32)
    want = _eager(model, x)
    code = f"""
import sys
import numpy as np
import tracejit.runtime as rt
m = rt.load({str(path)!r})
y = m(np.array({x.tolist()!r}, dtype=np.float32))
np.testing.assert_allclose(y, np.array({want.tolist()!r}, dtype=np.float32), rtol=2e-5, atol=2e-6)
loaded = [name for name in {FRONT_END!r} if name in sys.modules]
assert not loaded, loaded
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_one_model_called_from_many_threads(mlp):
    path, model = mlp
    m = load(path)
    rng = np.random.default_rng(11)
    n_threads, calls = 8, 500
    inputs = [[rng.standard_normal((1 + (t + k) % 5, 8)).astype(np.float32) for k in range(calls)]
              for t in range(n_threads)]
    want = [[m(x) for x in xs] for xs in inputs]  # single-threaded results
    failures = []
    barrier = threading.Barrier(n_threads)

    def worker(t):
        barrier.wait()
        try:
            for k, x in enumerate(inputs[t]):
                got = m(x)
                if not np.array_equal(got, want[t][k]):
                    failures.append((t, k))
        except Exception as e:  # noqa: BLE001 - reported below with the thread that raised it
            failures.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not failures, failures[:5]
    np.testing.assert_allclose(want[0][0], _eager(model, inputs[0][0]), rtol=2e-5, atol=2e-6)
