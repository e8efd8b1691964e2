"""Checks shared by the scripting tests: a scripted function against eager, through save and load."""

import numpy as np

import tracejit as tj
from tracejit import ir


def flat_numpy(out):
    """Every array of a (nested) result, in order: tensors, numbers, lists, tuples and dicts (by key)."""
    if isinstance(out, dict):
        return [a for k in sorted(out) for a in flat_numpy(out[k])]
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in flat_numpy(o)]
    return [out.numpy() if hasattr(out, "numpy") else np.asarray(out)]


def check_scripted(fn, example, inputs, dims=None, tmp_path=None):
    """Script `fn` on `example` (a tuple of inputs): its IR text must parse back identically, and the scripted
    module (and, with `tmp_path`, the saved and loaded file) must match eager on the example and `inputs`."""
    s = tj.script(fn, *example, dynamic_dims=dims)
    assert ir.print_graph(ir.parse(s.code, constants=s.graph.constants)) == s.code
    loaded = None
    if tmp_path is not None:
        s.save(tmp_path / "m.tj")
        loaded = tj.load(str(tmp_path / "m.tj"))
    for k, xs in enumerate([example, *inputs]):
        want = flat_numpy(fn(*xs))
        runs = {"script": flat_numpy(s(*xs))}
        if loaded is not None:
            runs["load"] = flat_numpy(loaded(*[x.numpy() for x in xs if hasattr(x, "numpy")]))
        for how, got in runs.items():
            assert len(got) == len(want), how
            for g, w in zip(got, want):
                assert g.shape == w.shape, (how, k)
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"{how}, input {k}")
    return s
