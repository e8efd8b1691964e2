"""The typed SSA IR (graphs, text form, parser, verifier, reference interpreter).

Layer rule: `ir` imports only `dtypes`, `devices`, `ops` and `errors`, never the front end,
`codegen` or `runtime`.

    >>> from tracejit.ir import parse, verify
    >>> g = parse('graph(%x : Float(N)):\\n  %1 : Float(N) = tj::relu(%x)\\n  return (%1)\\n')
    >>> verify(g)
    >>> print(g, end="")
    graph(%x : Float(N)):
      %1 : Float(N) = tj::relu(%x)
      return (%1)
"""

from tracejit.ir.graph import Block, ConstRef, Graph, Node, Value, topological_order
from tracejit.ir.interpreter import IRRuntimeError, run
from tracejit.ir.memory import MemoryPlan, MemoryPlanError, plan_memory
from tracejit.ir.parser import IRParseError, parse
from tracejit.ir.passes import PASSES, cse, dce, fold_affine, fold_constants, freeze_inputs, run_passes
from tracejit.ir.printer import format_attr, print_graph
from tracejit.ir.types import (
    BoolType,
    FloatType,
    IntType,
    ListType,
    NoneType,
    StrType,
    TensorType,
    TupleType,
    Type,
)
from tracejit.ir.verify import IRVerifyError, verify

__all__ = [
    "MemoryPlan",
    "MemoryPlanError",
    "plan_memory",
    "PASSES",
    "cse",
    "dce",
    "fold_affine",
    "fold_constants",
    "freeze_inputs",
    "run_passes",
    "IRRuntimeError",
    "run",
    "Block",
    "BoolType",
    "ConstRef",
    "FloatType",
    "Graph",
    "IRParseError",
    "IRVerifyError",
    "IntType",
    "ListType",
    "Node",
    "NoneType",
    "StrType",
    "TensorType",
    "TupleType",
    "Type",
    "Value",
    "format_attr",
    "parse",
    "print_graph",
    "topological_order",
    "verify",
]
