"""Graph passes: each on small graphs with the expected text after it, and the whole pipeline over
the traced corpus, with `verify` after every pass and the interpreter as the oracle."""

import io
import os

import numpy as np
import pytest
from golden_models import models, traced

from tracejit import ir


def _g(body, inputs="%x : Float(3)"):
    return ir.parse(f"graph({inputs}):\n{body}")


def _same_outputs(before, after, *feeds):
    for a, b in zip(ir.run(before, *feeds), ir.run(after, *feeds)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_dce_removes_unused_pure_nodes_and_keeps_effects():
    g = _g("  %1 : Float(3) = tj::exp(%x)\n"
           "  %2 : Float(3) = tj::rand[size=(3,), dtype=tracejit.float32, device=None, generator=None]()\n"
           "  %3 : Float(3) = tj::relu(%x)\n  return (%3)\n")
    assert ir.dce(g)
    assert str(g) == ("graph(%x : Float(3)):\n"
                      "  %2 : Float(3) = tj::rand[size=(3,), dtype=tracejit.float32, device=None, generator=None]()\n"
                      "  %3 : Float(3) = tj::relu(%x)\n  return (%3)\n")
    assert not ir.dce(g)


def test_cse_merges_equal_pure_nodes_only():
    text = ("  %1 : Float(3) = tj::softmax[dim=0](%x)\n  %2 : Float(3) = tj::softmax[dim=0](%x)\n"
            "  %3 : Float(3) = tj::softmax[dim=-1](%x)\n  %4 : Float(3) = tj::add(%1, %2)\n"
            "  %5 : Float(3) = tj::add(%4, %3)\n  return (%5)\n")
    g = _g(text)
    ref = ir.parse(str(g))
    assert ir.cse(g)
    assert str(g) == ("graph(%x : Float(3)):\n  %1 : Float(3) = tj::softmax[dim=0](%x)\n"
                      "  %3 : Float(3) = tj::softmax[dim=-1](%x)\n  %4 : Float(3) = tj::add(%1, %1)\n"
                      "  %5 : Float(3) = tj::add(%4, %3)\n  return (%5)\n")
    _same_outputs(ref, g, np.array([1.0, 2.0, 3.0], np.float32))


def test_cse_reuses_an_outer_value_inside_a_block_but_not_across_branches():
    text = """  %1 : Float(3) = tj::exp(%x)
  %c : bool = prim::Constant[value=True]()
  %r : Float(3) = prim::If(%c)
    block0():
      %2 : Float(3) = tj::exp(%x)
      %3 : Float(3) = tj::neg(%x)
      -> (%2)
    block1():
      %4 : Float(3) = tj::neg(%x)
      -> (%4)
  %s : Float(3) = tj::add(%r, %1)
  return (%s)
"""
    g = _g(text)
    ir.cse(g)
    out = str(g)
    assert "%2 : Float(3) = tj::exp" not in out and "-> (%1)" in out
    assert out.count("tj::neg(%x)") == 2  # the two branches do not dominate each other
    ir.verify(g)


def test_fold_evaluates_constant_ops_and_picks_a_constant_branch():
    text = """  %a : float = prim::Constant[value=2.0]()
  %c : Float(3) = tj::full[size=(3,), fill_value=1.0, dtype=tracejit.float32, device=None]()
  %d : Float(3) = tj::mul(%c, %a)
  %e : Float(3) = tj::add(%x, %d)
  %t : bool = prim::Constant[value=False]()
  %r : Float(3) = prim::If(%t)
    block0():
      %u : Float(3) = tj::relu(%e)
      -> (%u)
    block1():
      %v : Float(3) = tj::neg(%e)
      -> (%v)
  return (%r)
"""
    g = _g(text)
    ref = ir.parse(str(g))
    ir.run_passes(g, ["fold", "simplify", "cse", "dce"], verify_each=True)
    assert str(g) == ("graph(%x : Float(3)):\n  %2 : Float(3) = prim::Constant[value=@folded1]()\n"
                      "  %e : Float(3) = tj::add(%x, %2)\n  %v : Float(3) = tj::neg(%e)\n  return (%v)\n")
    assert list(g.constants) == ["folded1"]
    _same_outputs(ref, g, np.array([-5.0, 1.0, 2.0], np.float32))


def test_fold_leaves_large_results_and_failing_ops_alone():
    g = _g("  %c : Float(70000) = tj::full[size=(70000,), fill_value=1.0, dtype=tracejit.float32, device=None]()\n"
           "  return (%c)\n", inputs="")
    assert not ir.fold_constants(g)


def test_pass_manager_disables_by_name_logs_and_rejects_unknown_passes(monkeypatch):
    text = ("  %1 : Float(3) = tj::exp(%x)\n  %2 : Float(3) = tj::exp(%x)\n  %3 : Float(3) = tj::relu(%x)\n"
            "  return (%3)\n")
    g = _g(text)
    ir.run_passes(g, disable={"dce"})
    assert "tj::exp" in str(g)
    monkeypatch.setenv("TRACEJIT_LOG", "dce")
    buf = io.StringIO()
    ir.run_passes(g, log=buf)
    assert "== after dce" in buf.getvalue() and "tj::exp" not in str(g)
    with pytest.raises(ValueError, match="unknown pass"):
        ir.run_passes(g, ["nope"])


@pytest.mark.parametrize("name", sorted(models()))
def test_pipeline_preserves_the_traced_corpus(name, monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(__file__)))
    model, example, t = traced(name)
    g = ir.parse(t.code, constants=t.graph.constants)
    ref = ir.parse(t.code, constants=t.graph.constants)
    ir.run_passes(g, verify_each=True)
    assert ir.parse(str(g), constants=g.constants) is not None
    feeds = [example.numpy()] + [p.numpy() for _, p in list(model.named_parameters()) + list(model.named_buffers())]
    for a, b in zip(ir.run(ref, *feeds), ir.run(g, *feeds)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


def test_simplify_applies_exact_identities_only():
    text = """  %one : float = prim::Constant[value=1.0]()
  %zero : float = prim::Constant[value=0.0]()
  %four : float = prim::Constant[value=4.0]()
  %three : float = prim::Constant[value=3.0]()
  %1 : Float(2, 3) = tj::mul(%x, %one)
  %2 : Float(2, 3) = tj::sub(%1, %zero)
  %3 : Float(2, 3) = tj::add(%2, %zero)
  %4 : Float(2, 3) = tj::neg(%3)
  %5 : Float(2, 3) = tj::neg(%4)
  %6 : Float(2, 3) = tj::div[rounding_mode=None](%5, %four)
  %7 : Float(2, 3) = tj::div[rounding_mode=None](%6, %three)
  %8 : Float(3, 2) = tj::permute[dims=(1, 0)](%7)
  %9 : Float(2, 3) = tj::permute[dims=(1, 0)](%8)
  %10 : Float(6) = tj::view[shape_attr=(6,)](%9)
  %11 : Float(3, 2) = tj::view[shape_attr=(3, 2)](%10)
  %12 : Float(3, 2) = tj::to_dtype[dtype=tracejit.float32](%11)
  return (%12)
"""
    g = _g(text, inputs="%x : Float(2, 3)")
    ref = ir.parse(str(g))
    ir.run_passes(g, ["simplify", "dce"], verify_each=True)
    assert str(g) == """graph(%x : Float(2, 3)):
  %zero : float = prim::Constant[value=0.0]()
  %three : float = prim::Constant[value=3.0]()
  %3 : Float(2, 3) = tj::add(%x, %zero)
  %13 : float = prim::Constant[value=0.25]()
  %14 : Float(2, 3) = tj::mul(%3, %13)
  %7 : Float(2, 3) = tj::div[rounding_mode=None](%14, %three)
  %11 : Float(3, 2) = tj::view[shape_attr=(3, 2)](%7)
  return (%11)
"""
    x = np.array([[-0.0, np.nan, np.inf], [1.5, -3.0, 1e-30]], np.float32)
    for a, b in zip(ir.run(ref, x), ir.run(g, x)):
        np.testing.assert_array_equal(a, b)  # bit-for-bit where the rules fire: nan, inf and -0.0 included
        assert np.array_equal(np.signbit(a), np.signbit(b))


def test_int_add_zero_is_removed():
    g = _g("  %z : int = prim::Constant[value=0]()\n  %1 : Long(3) = tj::add(%x, %z)\n  return (%1)\n",
           inputs="%x : Long(3)")
    ir.run_passes(g, ["simplify", "dce"])
    assert str(g) == "graph(%x : Long(3)):\n  return (%x)\n"


def test_freeze_folds_batch_norm_into_the_conv(monkeypatch):
    import tracejit as tj

    monkeypatch.chdir(os.path.dirname(os.path.dirname(__file__)))
    model, example, t = traced("cnn")
    frozen = tj.freeze(t)
    ops_left = [n.op for n in frozen.graph.nodes()]
    assert [v.name for v in frozen.graph.inputs] == ["x"]
    assert "tj::rsqrt" not in ops_left and "tj::sub" not in ops_left and "tj::mul" not in ops_left
    assert ops_left.count("tj::conv2d") == 1
    x = tj.randn(2, 1, 8, 8)
    with tj.no_grad():
        np.testing.assert_allclose(frozen(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    again = ir.parse(frozen.code, constants=frozen.graph.constants)
    ir.verify(again)


def test_fold_affine_merges_per_channel_scale_and_shift_into_linear():
    import tracejit as tj

    f32 = tj.float32
    g = ir.Graph()
    x = g.add_input(ir.TensorType(f32, (4, 3)), "x")
    g.constants.update(w=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.array([1.0, -1.0], np.float32),
                       s=np.array([2.0, 0.5], np.float32), t=np.array([0.25, 4.0], np.float32))

    def const(name, shape):
        return g.append("prim::Constant", (), [ir.TensorType(f32, shape)], attrs={"value": ir.ConstRef(name)})

    w, b, s, t = const("w", (2, 3)), const("b", (2,)), const("s", (2,)), const("t", (2,))
    y = g.append("tj::linear", (x, w, b), [ir.TensorType(f32, (4, 2))])
    y = g.append("tj::mul", (y, s), [ir.TensorType(f32, (4, 2))])
    y = g.append("tj::sub", (y, t), [ir.TensorType(f32, (4, 2))], attrs={"alpha": 1})
    g.set_outputs([y])
    ref = ir.parse(str(g), constants=dict(g.constants))
    assert ir.fold_affine(g)
    ir.dce(g)
    assert [n.op for n in g.nodes()].count("tj::mul") == 0
    xv = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(ir.run(g, xv)[0], ir.run(ref, xv)[0], rtol=1e-6)


def test_freeze_refuses_a_graph_that_updates_buffers():
    import warnings

    import tracejit as tj
    from tracejit.jit import TracingError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = tj.trace(tj.nn.BatchNorm1d(3), tj.randn(8, 3))
    with pytest.raises(TracingError, match="eval mode"):
        tj.freeze(t)


def test_fusion_groups_elementwise_runs_and_prints_them():
    import tracejit as tj

    def f(x, y):
        a = (x * 2 + y).tanh()
        b = a.sigmoid() * y - 1.0
        return (b @ y.t()).relu() + b.sum(), a

    t = tj.trace(f, (tj.randn(4, 4), tj.randn(4, 4)))
    g = ir.parse(t.code)
    ref = ir.parse(t.code)
    ir.run_passes(g, ["fuse"], verify_each=True)
    text = str(g)
    assert text.count("prim::FusionGroup") == 1  # one group; running the pass again adds nothing
    group = next(n for n in g.nodes() if n.op == "prim::FusionGroup")
    assert [n.op for n in group.blocks[0].nodes if n.op != "prim::Constant"] == [
        "tj::mul", "tj::add", "tj::tanh", "tj::sigmoid", "tj::mul", "tj::sub"]
    assert len(group.outputs) == 2  # `a` is also used outside the group (returned)
    assert str(ir.parse(text)) == text
    xs = [np.random.default_rng(i).standard_normal((4, 4)).astype(np.float32) for i in range(2)]
    for a, b in zip(ir.run(ref, *xs), ir.run(g, *xs)):
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_decompose_rewrites_composites_into_primitives_with_the_same_values():
    import tracejit as tj

    def f(x, w, b):
        h = tj.nn.functional.linear(x, w, b)
        return h.softmax(dim=1), h.log_softmax(dim=0)

    ex = (tj.randn(5, 4), tj.randn(3, 4), tj.randn(3))
    t = tj.trace(f, ex)
    g = ir.parse(t.code)
    ir.run_passes(g, ["decompose", "cse", "dce"], verify_each=True)
    ops_left = {n.op for n in g.nodes()}
    assert not ops_left & {"tj::softmax", "tj::log_softmax", "tj::linear"}
    assert {"tj::amax", "tj::exp", "tj::sum", "tj::matmul", "tj::permute"} <= ops_left
    feeds = [a.numpy() for a in ex]
    for a, b in zip(ir.run(ir.parse(t.code), *feeds), ir.run(g, *feeds)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    x = np.array([[0.0, -np.inf, 1e30], [np.nan, 1.0, 2.0]], np.float32)
    w, b = np.eye(3, dtype=np.float32), np.zeros(3, np.float32)
    for a, b2 in zip(ir.run(ir.parse(t.code), x, w, b), ir.run(g, x, w, b)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b2))  # inf/nan rows behave the same


def test_a_reduction_closes_a_fusion_group():
    import tracejit as tj

    t = tj.trace(lambda x: ((x * 2).exp() + 1).softmax(dim=1) @ x.t(), tj.randn(3, 3))
    g = ir.parse(t.code)
    ir.run_passes(g, verify_each=True)
    group = next(n for n in g.nodes() if n.op == "prim::FusionGroup")
    assert [n.op for n in group.blocks[0].nodes if n.op != "prim::Constant"] == [
        "tj::mul", "tj::exp", "tj::add", "tj::softmax"]
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    np.testing.assert_allclose(ir.run(g, x)[0], ir.run(ir.parse(t.code), x)[0], rtol=1e-6)


def _op_cases():
    from test_registry import _cases

    return [c for c in _cases() if c.values[0].kind != "random"]


@pytest.mark.parametrize("op, args, attrs", _op_cases())
def test_full_pipeline_preserves_every_registry_op(op, args, attrs):
    from test_interpreter import _graph_of_call

    from tracejit._tensor import dispatch

    eager = dispatch(op, tuple(args), attrs)
    g, feeds = _graph_of_call(op, args, attrs, eager)
    ref = ir.parse(str(g))
    ir.run_passes(g, verify_each=op.name not in ("tj::index", "tj::nonzero"))
    for a, b in zip(ir.run(ref, *feeds), ir.run(g, *feeds)):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


def test_layer_norm_fuses_into_one_row_wise_group():
    import tracejit as tj

    ln = tj.nn.LayerNorm(8)
    t = tj.trace(lambda x: ln(x.relu()) * 2, tj.randn(4, 8))  # ln's parameters become constants
    g = ir.parse(t.code, constants=t.graph.constants)
    ref = ir.parse(t.code, constants=t.graph.constants)
    ir.run_passes(g, ["fuse"], verify_each=True)
    groups = [n for n in g.nodes() if n.op == "prim::FusionGroup"]
    assert len(groups) == 1
    inner = [n.op for n in groups[0].blocks[0].nodes if n.op != "prim::Constant"]
    assert inner.count("tj::mean") == 2 and inner[0] == "tj::relu" and inner[-1] == "tj::mul"
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(ir.run(g, x)[0], ir.run(ref, x)[0], rtol=1e-6)


def test_fusion_expected_text():
    g = _g("  %1 : Float(3) = tj::exp(%x)\n  %2 : Float(3) = tj::neg(%1)\n"
           "  %3 : Float() = tj::sum[dim=None, keepdim=False](%2)\n  %4 : Float(3) = tj::mul(%2, %3)\n"
           "  return (%4)\n")
    ir.run_passes(g, ["fuse"], verify_each=True)
    assert str(g) == """graph(%x : Float(3)):
  %5 : Float(3), %6 : Float() = prim::FusionGroup(%x)
    block0(%7 : Float(3)):
      %1 : Float(3) = tj::exp(%7)
      %2 : Float(3) = tj::neg(%1)
      %3 : Float() = tj::sum[dim=None, keepdim=False](%2)
      -> (%2, %3)
  %4 : Float(3) = tj::mul(%5, %6)
  return (%4)
"""
