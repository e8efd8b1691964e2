"""tracejit-run: running, inspecting, checking and benchmarking a model file; exit statuses and messages."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tracejit as tj
from tests import golden_models
from tracejit.runtime.cli import main
from tracejit.runtime.tjfile import save_graph

SIG = "the model expects (x: float32[N, 8]) -> (output: float32[N, 4])"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with mlp.tj (x -> output), lstm.tj (x -> out, h, c) and their inputs and eager outputs."""
    d = tmp_path_factory.mktemp("cli")
    model, example, traced = golden_models.traced("mlp")
    save_graph(d / "mlp.tj", tj.freeze(traced).graph)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    np.save(d / "x.npy", x)
    with tj.no_grad():
        np.save(d / "mlp_out.npy", model(tj.tensor(x)).numpy())
    lstm, ex, traced = golden_models.traced("lstm_step")
    save_graph(d / "lstm.tj", tj.freeze(traced).graph, output_names=["out", "h", "c"])
    np.save(d / "tokens.npy", ex.numpy())
    with tj.no_grad():
        out, h, c = lstm(ex)
    np.savez(d / "lstm_out.npz", out=out.numpy(), h=h.numpy(), c=c.numpy())
    return d


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracejit-run: error: "), err
    return lines[0]


def test_run_with_named_input_writes_npy(files, capsys, tmp_path):
    out = tmp_path / "y.npy"
    code, stdout, err = _run(capsys, files / "mlp.tj", "--input", f"x={files / 'x.npy'}", "--output", out)
    assert code == 0 and err == "" and stdout == ""
    np.testing.assert_allclose(np.load(out), np.load(files / "mlp_out.npy"), rtol=2e-5, atol=2e-6)


def test_positional_input_and_summary(files, capsys):
    code, stdout, err = _run(capsys, files / "mlp.tj", files / "x.npy", "--no-native")
    assert code == 0 and err == ""
    want = np.load(files / "mlp_out.npy")
    assert stdout.startswith("output: float32[5, 4] [") and "(20 values)" in stdout
    assert f"{want.ravel()[0]:.4f}"[:6] in stdout


def test_several_outputs_go_to_npz_and_npz_inputs_by_name(files, capsys, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.load(files / "tokens.npy"))
    for args in (["--input", tmp_path / "in.npz"], [tmp_path / "in.npz"], ["--input", f"x={tmp_path / 'in.npz'}"]):
        out = tmp_path / "y.npz"
        code, _, err = _run(capsys, files / "lstm.tj", *args, "-o", out)
        assert code == 0, err
        got, want = np.load(out), np.load(files / "lstm_out.npz")
        assert sorted(got.files) == ["c", "h", "out"]
        for k in want.files:
            np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6)
    code, _, err = _run(capsys, files / "lstm.tj", files / "tokens.npy", "-o", tmp_path / "y.npy")
    assert code == 1 and "3 outputs (out, h, c)" in _one_error_line(err) and ".npz" in err


def test_info_graph_and_check(files, capsys):
    code, out, err = _run(capsys, files / "mlp.tj", "--info")
    assert code == 0 and err == ""
    for needle in ("format:      1 (written by tracejit", "inputs:      x: float32[N, 8]",
                   "outputs:     output: float32[N, 4]", "parameters:  212 in 4 tensors",
                   f"file size:   {os.path.getsize(files / 'mlp.tj'):,} bytes", "tj::linear x2", "tj::relu x1"):
        assert needle in out, out
    code, out, err = _run(capsys, files / "mlp.tj", "--graph")
    assert code == 0 and out.startswith("graph(%x : Float(N, 8)):") and "tj::log_softmax" in out
    code, out, err = _run(capsys, files / "mlp.tj", "--check")
    assert code == 0 and "OK" in out and "3 members checked" in out


def test_bench(files, capsys):
    code, out, err = _run(capsys, files / "mlp.tj", "--bench", 5, "--dim", "N=16")
    assert code == 0, err
    assert "bench: 5 runs after 1 warm-up, inputs x[16, 8]" in out
    assert "latency: min " in out and "median" in out and "p99" in out and "inferences/s" in out
    code, out, err = _run(capsys, files / "mlp.tj", files / "x.npy", "--bench", 5, "--warmup", 0, "--threads", 2)
    assert code == 0 and "inputs x[5, 8]" in out, err


@pytest.mark.parametrize("argv, needle", [
    (["--input", "x=missing.npy"], "input file missing.npy does not exist"),
    (["--input", "{d}/x.npy"], "expected NAME=FILE"),
    (["--input", "y={d}/x.npy"], "no such input"),
    ([], "missing input 'x'"),
    (["{d}/x.npy", "{d}/x.npy"], "more positional input files than the model has inputs"),
    (["{d}/x.npy", "--input", "x={d}/x.npy"], "input 'x' is given twice"),
    (["{d}/x64.npy"], "has dtype float64, expected float32"),
    (["{d}/bad_shape.npy"], "has shape [5, 7], expected [N, 8]"),
])
def test_input_errors_exit_1_with_the_signature(files, capsys, argv, needle):
    np.save(files / "x64.npy", np.zeros((5, 8)))
    np.save(files / "bad_shape.npy", np.zeros((5, 7), np.float32))
    argv = [a.format(d=files) for a in argv]
    code, out, err = _run(capsys, files / "mlp.tj", *argv)
    expected_code = 2 if needle.startswith("expected NAME") else 1
    assert code == expected_code, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("tracejit-run: error: ") and needle in line, err
    if expected_code == 1:
        assert SIG in _one_error_line(err) or "does not exist" in line


def test_model_errors_exit_1_in_one_line(files, capsys, tmp_path):
    (tmp_path / "junk.tj").write_bytes(b"not a zip")
    code, _, err = _run(capsys, tmp_path / "junk.tj", "--check")
    assert code == 1 and "not a tracejit model file" in _one_error_line(err) and "Traceback" not in err
    code, _, err = _run(capsys, tmp_path / "nope.tj", "--info")
    assert code == 1 and "No such file or directory" in _one_error_line(err)
    code, _, err = _run(capsys, tmp_path / "junk.tj", "--check", "--verbose")
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("tracejit-run: error:")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = _run(capsys, files / "mlp.tj", tmp_path / "obj.npy")
    assert code == 1 and "without pickle" in _one_error_line(err)


@pytest.mark.skipif(tj.cuda.is_available(), reason="a GPU is present (tests/test_cuda_runtime.py runs there)")
def test_cuda_device_is_refused_clearly(files, capsys):
    code, _, err = _run(capsys, files / "mlp.tj", files / "x.npy", "--device", "cuda")
    assert code == 1 and "device='cuda'" in _one_error_line(err)


@pytest.mark.parametrize("argv", [[], ["m.tj", "--bench", "0"], ["m.tj", "--device", "tpu"], ["m.tj", "--dim", "N"],
                                  ["m.tj", "--output", "y.txt"], ["m.tj", "--frobnicate"], ["m.tj", "--threads", "0"]])
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "tracejit-run: error:" in err


def test_help_and_version_exit_0(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "usage: tracejit-run" in out
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.strip() == f"tracejit-run {tj.__version__}"


def _script():
    exe = shutil.which("tracejit-run")
    return [exe] if exe else [sys.executable, "-m", "tracejit.runtime"]


def test_console_script_end_to_end(files, tmp_path):
    out = tmp_path / "y.npy"
    r = subprocess.run([*_script(), str(files / "mlp.tj"), "--input", f"x={files / 'x.npy'}", "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(out), np.load(files / "mlp_out.npy"), rtol=2e-5, atol=2e-6)
    r = subprocess.run([sys.executable, "-m", "tracejit.runtime", str(files / "mlp.tj"), "--input",
                        f"y={files / 'x.npy'}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"tracejit-run: error: --input y={files / 'x.npy'} gives an input "
                                             f"named 'y', but the model has no such input; {SIG}"]
