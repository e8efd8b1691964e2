"""The export path end to end: eager == tracejit.script == saved-then-loaded == tracejit-run, for the corpus."""

import numpy as np
import pytest

import tracejit as tj
from tests import golden_models
from tracejit.runtime import cli


@pytest.mark.parametrize("name", ["mlp", "cnn", "encoder_layer", "lstm_step"])
def test_corpus_round_trip(name, tmp_path, capsys):
    model, example, dims = golden_models.models()[name]
    scripted = tj.script(model, example, dynamic_dims=dims)
    assert "prim::Constant" in scripted.code and scripted.compiled
    info = scripted.save(tmp_path / "m.tj")
    assert info.file_bytes > 0
    with tj.no_grad():
        eager = model(example)
    eager = [t.numpy() for t in (eager if isinstance(eager, tuple) else (eager,))]
    got_scripted = scripted(example)
    got_scripted = [t.numpy() for t in (got_scripted if isinstance(got_scripted, tuple) else (got_scripted,))]
    loaded = tj.load(str(tmp_path / "m.tj"))
    got_loaded = loaded(example.numpy())
    got_loaded = list(got_loaded) if isinstance(got_loaded, tuple) else [got_loaded]
    np.save(tmp_path / "x.npy", example.numpy())
    out = tmp_path / ("y.npz" if len(eager) > 1 else "y.npy")
    assert cli.main([str(tmp_path / "m.tj"), str(tmp_path / "x.npy"), "-o", str(out)]) == 0
    ran = np.load(out)
    got_cli = [ran[k] for k in loaded.output_names] if len(eager) > 1 else [ran]
    for results in (got_scripted, got_loaded, got_cli):
        assert len(results) == len(eager)
        for g, e in zip(results, eager):
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6)


def test_script_refuses_training_mode_and_compiles_lazily_without_examples(tmp_path):
    model = tj.nn.Sequential(tj.nn.Linear(2, 2), tj.nn.Dropout(0.5))
    with pytest.raises(Exception, match="training mode"):
        tj.script(model, tj.randn(1, 2))
    lazy = tj.script(model.eval())
    with pytest.raises(Exception, match="no graph yet"):
        tj.save(lazy, tmp_path / "m.tj")
    x = tj.randn(3, 2)
    np.testing.assert_allclose(lazy(x).numpy(), model(x).numpy(), rtol=1e-6)
    tj.save(lazy, tmp_path / "m.tj")
    np.testing.assert_allclose(tj.load(str(tmp_path / "m.tj"))(x.numpy()), model(x).numpy(), rtol=1e-6)


def test_tensor_files_still_load_as_tensors(tmp_path):
    tj.save({"w": tj.ones(2)}, tmp_path / "w.safetensors")
    assert tj.load(str(tmp_path / "w.safetensors"))["w"].tolist() == [1.0, 1.0]
