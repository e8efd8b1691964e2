"""The IR text form (see DESIGN.md, "The IR"); `parse(print_graph(g))` prints back byte for byte.

Attribute syntax, inside `[...]` after the op name, as `name=value` separated by ", "
in the attrs dict's insertion order (deterministic, and kept by the parser):

- int `3`, `-3`; float `repr(x)`: `1.0`, `1e-07`, `inf`, `-inf`, `nan`, `-0.0` (always has a
  `.`, `e`, `inf` or `nan`, so it never reads back as an int); bool `True`/`False`; `None`;
- str as a JSON string literal `"a\\"b\\n"` (escapes `"`, `\\` and control characters);
- dtype `tracejit.float32`; tensor constant `@name` (into `graph.constants`, never inline);
- list `[1, 2]`, tuple `(1, 2)` / `(1,)` / `()`, nested freely.

A node line ends with `  # <loc>` and, when the node has a scope, `# scope=<scope> <loc>`
(scope has no spaces).

    >>> from tracejit.ir.graph import Graph
    >>> from tracejit.ir.types import IntType
    >>> g = Graph()
    >>> c = g.append("prim::Constant", [], [IntType()], {"value": 3})
    >>> g.set_outputs([c])
    >>> print(print_graph(g), end="")
    graph():
      %1 : int = prim::Constant[value=3]()
      return (%1)
"""

from __future__ import annotations

import json
import math
import numbers
import re

from tracejit import dtypes
from tracejit.ir.graph import ConstRef


def format_attr(value):
    """The text of one attribute value; iterative so deeply nested lists are fine."""
    out = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _Lit):
            out.append(v.text)
        elif v is None or isinstance(v, bool):
            out.append(repr(v))
        elif isinstance(v, numbers.Integral):  # numpy integers too
            out.append(str(int(v)))
        elif isinstance(v, float):
            out.append("nan" if math.isnan(v) else repr(float(v)))
        elif isinstance(v, str):
            out.append(json.dumps(v, ensure_ascii=False))
        elif isinstance(v, dtypes.dtype):
            out.append(repr(v))
        elif isinstance(v, ConstRef):
            out.append("@" + v.name)
        elif isinstance(v, (list, tuple)):
            is_list = isinstance(v, list)
            close = "]" if is_list else ("," + ")" if len(v) == 1 else ")")
            items = [_Lit(close)]
            for k in range(len(v) - 1, -1, -1):
                items.append(v[k])
                if k:
                    items.append(_Lit(", "))
            items.append(_Lit("[" if is_list else "("))
            stack.extend(items)
        else:
            raise TypeError(f"cannot print attribute value {v!r} of type {type(v).__name__}")
    return "".join(out)


class _Lit:
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_printable(n):
    # Refuse what the parser could not read back, rather than print text that does not round trip.
    bad = [k for k in n.attrs if not _IDENT.match(k)]
    if bad:
        raise ValueError(f"{n.op}: attribute names must be identifiers, got {bad}")
    if any(c.isspace() for c in n.scope):
        raise ValueError(f"{n.op}: scope {n.scope!r} must not contain whitespace")
    if "\n" in n.loc or n.loc.startswith("scope=") or n.loc != n.loc.strip(" "):
        raise ValueError(f"{n.op}: source location {n.loc!r} cannot be printed (newline, edge spaces or 'scope=')")


def _node_line(n, indent):
    _check_printable(n)
    outs = ", ".join(f"%{o.name} : {o.type}" for o in n.outputs)
    attrs = ""
    if n.attrs:
        attrs = "[" + ", ".join(f"{k}={format_attr(v)}" for k, v in n.attrs.items()) + "]"
    ins = ", ".join("%" + v.name for v in n.inputs)
    line = f"{indent}{outs + ' ' if outs else ''}= {n.op}{attrs}({ins})"
    comment = []
    if n.scope:
        comment.append("scope=" + n.scope)
    if n.loc:
        comment.append(n.loc)
    if comment:
        line += "  # " + " ".join(comment)
    return line


def _values(vs):
    return ", ".join("%" + v.name for v in vs)


def print_graph(graph):
    """The text form of `graph` (ends with a newline)."""
    params = [f"%{v.name} : {v.type}" for v in graph.inputs]
    lines = ["graph(" + ",\n      ".join(params) + "):"]
    # Work items: a node to print at a depth, or a literal line (block headers and returns).
    stack = [("line", "  return (" + _values(graph.outputs) + ")")]
    stack.extend(("node", n, 1) for n in reversed(graph.body.nodes))
    while stack:
        item = stack.pop()
        if item[0] == "line":
            lines.append(item[1])
            continue
        _, n, depth = item
        ind = "  " * depth
        lines.append(_node_line(n, ind))
        for k in range(len(n.blocks) - 1, -1, -1):
            b = n.blocks[k]
            stack.append(("line", f"{ind}    -> ({_values(b.returns)})"))
            stack.extend(("node", m, depth + 2) for m in reversed(b.nodes))
            params = ", ".join(f"%{v.name} : {v.type}" for v in b.params)
            stack.append(("line", f"{ind}  block{k}({params}):"))
    return "\n".join(lines) + "\n"
