"""tracejit.trace: recorded graphs, golden text, interpreter parity with eager, hazards."""

import sys
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit import ir
from tracejit.jit import TraceHazardError, TraceHazardWarning, TracingError

nn = tj.nn


def _parity(traced, fn, *inputs, tol=1e-5):
    with tj.no_grad():
        want = fn(*inputs)
    got = traced(*inputs)
    flat_w = want if isinstance(want, (tuple, list)) else [want]
    flat_g = got if isinstance(got, (tuple, list)) else [got]
    for w, g in zip(flat_w, flat_g):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=tol, atol=tol)


def test_mlp_golden_text_and_round_trip():
    tj.manual_seed(0)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(6, 5)
            self.fc2 = nn.Linear(5, 3)

        def forward(self, x):
            h = self.fc1(x).relu()
            return self.fc2(h).softmax(dim=-1)

    m = MLP()
    traced = tj.trace(m, tj.randn(4, 6))
    line = f"tests/test_trace.py:{MLP.forward.__code__.co_firstlineno + 1}"
    line2 = f"tests/test_trace.py:{MLP.forward.__code__.co_firstlineno + 2}"
    assert traced.code == f"""graph(%x : Float(4, 6),
      %fc1.weight : Float(5, 6),
      %fc1.bias : Float(5),
      %fc2.weight : Float(3, 5),
      %fc2.bias : Float(3)):
  %1 : Float(4, 5) = tj::linear(%x, %fc1.weight, %fc1.bias)  # scope=fc1 {line}
  %2 : Float(4, 5) = tj::relu(%1)  # {line}
  %3 : Float(4, 3) = tj::linear(%2, %fc2.weight, %fc2.bias)  # scope=fc2 {line2}
  %4 : Float(4, 3) = tj::softmax[dim=1](%3)  # {line2}
  return (%4)
"""
    assert str(ir.parse(traced.code)) == traced.code
    _parity(traced, m, tj.randn(4, 6))


def test_cnn_and_transformer_layer_run_from_their_graphs():
    tj.manual_seed(1)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 10)).eval()
    x = tj.randn(2, 1, 8, 8)
    traced = tj.trace(cnn, x)
    ir.verify(ir.parse(traced.code, constants=traced.graph.constants))
    _parity(traced, cnn, tj.randn(2, 1, 8, 8))
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True).eval()
    src = tj.randn(2, 5, 16)
    traced = tj.trace(layer, src)
    _parity(traced, layer, tj.randn(2, 5, 16), tol=1e-4)


def test_branch_on_a_tensor_warns_with_the_line_and_strict_raises():
    def f(x):
        if x.sum() > 0:  # the hazard
            return x * 2
        return -x

    line = f"tests/test_trace.py:{f.__code__.co_firstlineno + 1}"
    with pytest.warns(TraceHazardWarning, match=line + r".*bakes in True"):
        tj.trace(f, tj.ones(3))
    with pytest.raises(TraceHazardError, match=line):
        tj.trace(f, tj.ones(3), strict=True)


def test_item_tolist_and_iteration_are_hazards():
    for fn in (lambda x: x * x.max().item(), lambda x: x * len(x.tolist()), lambda x: sum(r for r in x)):
        with pytest.warns(TraceHazardWarning):
            tj.trace(fn, tj.ones(3), check_trace=False)


def test_values_made_inside_become_constants_and_numbers_are_baked_in():
    w = tj.tensor([1.0, 2.0, 3.0])

    def f(x):
        return x * w + 0.5

    traced = tj.trace(f, tj.ones(3))
    assert "@c0" in traced.code and "value=0.5" in traced.code
    np.testing.assert_allclose(traced(tj.full((3,), 2.0)).numpy(), [2.5, 4.5, 6.5])


def test_in_place_ops_are_recorded_as_new_values():
    def f(x):
        y = x * 1.0
        y.add_(1)
        y.mul_(y)
        return y

    traced = tj.trace(f, tj.ones(3))
    np.testing.assert_allclose(traced(tj.tensor([1.0, 2.0, 3.0])).numpy(), [4.0, 9.0, 16.0])


def test_large_temporaries_reused_in_place_still_trace_correctly():
    n = 1 << 18
    traced = tj.trace(lambda a, b: a * b + a, (tj.ones(n), tj.ones(n)))
    a, b = tj.full((n,), 2.0), tj.full((n,), 3.0)
    assert traced(a, b).numpy()[0] == 8.0


def test_nested_inputs_and_outputs_keep_their_structure():
    def f(pair, d):
        a, b = pair
        return {"sum": a + d["k"], "both": (a * b, b)}

    ex = ((tj.ones(2), tj.full((2,), 3.0)), {"k": tj.ones(2)})
    traced = tj.trace(f, ex)
    out = traced((tj.full((2,), 2.0), tj.ones(2)), {"k": tj.zeros(2)})
    assert out["sum"].tolist() == [2.0, 2.0] and out["both"][0].tolist() == [2.0, 2.0]
    assert isinstance(out["both"], tuple)


def test_bad_input_and_output_are_named():
    with pytest.raises(TracingError, match="got str"):
        tj.trace(lambda x: "no", tj.ones(1))
    traced = tj.trace(lambda x: x + 1, tj.ones(2))
    with pytest.raises(TracingError, match=r"traced as Float\(2\)"):
        traced(tj.ones(3))


def test_random_ops_are_baked_in_with_a_warning():
    with pytest.warns(TraceHazardWarning, match="random op tj::rand"):
        tj.trace(lambda x: x + tj.rand(2), tj.ones(2), check_trace=False)


def test_in_place_on_a_view_of_a_traced_tensor_is_refused():
    def f(x):
        y = x * 1
        y[0] = 5.0
        return y

    with pytest.raises(TracingError, match="view of a traced tensor"):
        tj.trace(f, tj.ones(3))


def test_ten_thousand_op_chain_traces_prints_parses_verifies_and_runs():
    def f(x):
        for _ in range(10_000):
            x = x + 1.0
        return x

    limit = sys.getrecursionlimit()
    traced = tj.trace(f, tj.zeros(2), check_trace=False)
    sys.setrecursionlimit(300)
    try:
        g = ir.parse(traced.code)
        ir.verify(g)
        assert ir.run(g, np.zeros(2, np.float32))[0].tolist() == [10_000.0, 10_000.0]
    finally:
        sys.setrecursionlimit(limit)


def test_tracing_leaves_no_state_behind():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tj.trace(lambda x: x.relu(), tj.ones(2))
    from tracejit._dispatch import _TRACE

    assert _TRACE["tracer"] is None
    assert (tj.ones(2) + 1).tolist() == [2.0, 2.0]


def test_symbolic_batch_mlp_runs_at_any_batch_size():
    tj.manual_seed(3)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3), nn.LogSoftmax(dim=1))
    traced = tj.trace(m, tj.randn(4, 6), dynamic_dims={"input": {0: "N"}})
    assert "%input : Float(N, 6)" in traced.code and "Float(N, 3) = tj::log_softmax" in traced.code
    for n in (1, 7, 64):
        _parity(traced, m, tj.randn(n, 6))


def test_symbolic_dims_must_agree_and_baked_sizes_are_reported():
    traced = tj.trace(lambda a, b: a + b, (tj.ones(2, 3), tj.ones(2, 3)),
                      dynamic_dims={"a": {0: "N"}, "b": {0: "N"}})
    assert traced(tj.ones(5, 3), tj.ones(5, 3)).shape == (5, 3)
    with pytest.raises(TracingError, match="N=4, but an earlier input has N=5"):
        traced(tj.ones(5, 3), tj.ones(4, 3))
    with pytest.raises(TracingError, match="bakes in a size"):
        tj.trace(lambda x: x.view(4, -1).sum(1), tj.randn(4, 6), dynamic_dims={"x": {0: "N"}})
    with pytest.raises(TracingError, match="unknown inputs"):
        tj.trace(lambda x: x, tj.ones(1), dynamic_dims={"y": {0: "N"}})


def test_in_place_updates_of_buffers_stay_in_the_graph():
    bn = nn.BatchNorm1d(3)  # training mode: running stats are updated in place
    x = tj.randn(8, 3)
    with pytest.warns(TraceHazardWarning, match="in-place update of input %running_mean"):
        traced = tj.trace(bn, x)
    twin = nn.BatchNorm1d(3)
    twin.load_state_dict(bn.state_dict())  # the checks inside trace left the state as one eager call did
    for _ in range(2):
        np.testing.assert_allclose(traced(x).numpy(), twin(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.running_var.numpy(), twin.running_var.numpy(), rtol=1e-6)
    assert int(bn.num_batches_tracked) == int(twin.num_batches_tracked) == 3


def test_numpy_of_a_traced_value_is_a_hazard():
    with pytest.warns(TraceHazardWarning, match="numpy"):
        tj.trace(lambda x: x * float((x * 2).numpy().sum()), tj.ones(2), check_trace=False)


def test_flatten_and_view_keep_the_symbolic_batch():
    class Net(tj.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = tj.nn.Linear(12, 2)

        def forward(self, x):
            return self.fc(x.flatten(1)) + self.fc(x.view(x.size(0), -1)) + x.reshape(-1, 12).sum(1, keepdim=True)

    net = Net().eval()
    traced = tj.trace(net, tj.randn(5, 3, 4), dynamic_dims={"x": {0: "N"}})
    assert "Float(N, 12)" in traced.code and "Float(5" not in traced.code
    for n in (1, 9):
        x = tj.randn(n, 3, 4)
        np.testing.assert_allclose(traced(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)
