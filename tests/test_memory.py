"""Memory planning: values that share a buffer never live at the same time, views share their
source's buffer, and reuse lowers the memory a graph needs."""

import os

import pytest
from golden_models import models, traced

import tracejit as tj
from tracejit import ir
from tracejit.ir.memory import MemoryPlanError, plan_memory


def _lifetimes(graph):
    """value -> (index defining it, index of its last read) over the body, nested reads included."""
    life = {}
    for i, n in enumerate(graph.body.nodes):
        reads, stack = list(n.inputs), list(n.blocks)
        while stack:
            b = stack.pop()
            reads += list(b.returns)
            for m in b.nodes:
                reads += list(m.inputs)
                stack.extend(m.blocks)
        for v in reads:
            if v in life:
                life[v] = (life[v][0], i)
        for v in n.outputs:
            life[v] = (i, i)
    for v in graph.outputs:
        if v in life:
            life[v] = (life[v][0], len(graph.body.nodes))
    return life


@pytest.mark.parametrize("name", sorted(models()))
@pytest.mark.parametrize("frozen", [False, True])
def test_no_two_live_values_share_a_buffer(name, frozen, monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(__file__)))
    _, _, t = traced(name)
    g = tj.freeze(t).graph if frozen else t.graph
    plan = plan_memory(g, sizes={"N": 8})
    life = _lifetimes(g)
    # a buffer owner (a value, with the views of it) lives from its definition to its views' last read
    spans_of = {}
    for v in plan.buffer_of:
        owner = plan.owner_of[v]
        lo, hi = life[v]
        olo, ohi = spans_of.get(owner, (lo, hi))
        spans_of[owner] = (min(lo, olo), max(hi, ohi))
    by_buffer = {}
    for owner, span in spans_of.items():
        by_buffer.setdefault(plan.buffer_of[owner], []).append(span)
    for buf, spans in by_buffer.items():
        spans.sort()
        for (lo1, hi1), (lo2, _) in zip(spans, spans[1:]):
            assert hi1 <= lo2, f"buffer {buf} holds two live values ({name}): [{lo1}, {hi1}] and from {lo2}"
    assert plan.peak_bytes <= plan.unplanned_bytes
    assert plan.total_bytes <= plan.unplanned_bytes


def test_views_share_their_source_buffer_and_chains_reuse_memory():
    g = ir.parse("graph(%x : Float(64, 64)):\n"
                 "  %1 : Float(64, 64) = tj::exp(%x)\n"
                 "  %2 : Float(4096) = tj::view[shape_attr=(4096,)](%1)\n"
                 "  %3 : Float(4096) = tj::neg(%2)\n"
                 "  %4 : Float(4096) = tj::relu(%3)\n"
                 "  %5 : Float(4096) = tj::sigmoid(%4)\n"
                 "  %6 : Float(4096) = tj::tanh(%5)\n"
                 "  return (%6)\n")
    plan = plan_memory(g)
    values = {v.name: v for n in g.nodes() for v in n.outputs}
    assert plan.buffer_of[values["2"]] == plan.buffer_of[values["1"]]
    assert plan.buffer_of[values["4"]] == plan.buffer_of[values["1"]]  # %1/%2 are dead once %3 exists
    assert plan.peak_bytes == 2 * 4096 * 4 and plan.unplanned_bytes == 5 * 4096 * 4


def test_symbols_need_sizes():
    g = ir.parse("graph(%x : Float(N)):\n  %1 : Float(N) = tj::exp(%x)\n  %2 : Float(N) = tj::neg(%1)\n"
                 "  return (%2)\n")
    with pytest.raises(MemoryPlanError, match="symbolic dim N needs a size"):
        plan_memory(g)
    assert plan_memory(g, sizes={"N": 10}).peak_bytes == 80
