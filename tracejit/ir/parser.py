"""Parse the IR text form back into a `Graph`: `str(parse(text)) == text` for printed graphs.

One LALR pass (lark) over a flat, line-oriented grammar; an inline transformer builds the graph
while parsing, and block nesting comes from the `blockK(...):` / `-> (...)` lines, checked
against indentation. No tree is built and nothing recurses over the graph, so a 10,000-node
graph parses quickly.

    >>> g = parse('graph(%x : Float(N)):\\n  %1 : Float(N) = tj::relu(%x)\\n  return (%1)\\n')
    >>> [n.op for n in g.nodes()]
    ['tj::relu']
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

from lark import Lark, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from tracejit import devices, dtypes
from tracejit.ir.graph import ConstRef, Graph, Node, Value
from tracejit.ir.types import NAME_TO_DTYPE, SCALAR_TYPES, ListType, TensorType, TupleType


class IRParseError(ValueError):
    """The text is not valid IR; the message names the line and column and what was expected."""

    def __init__(self, msg, line=None, column=None):
        self.line, self.column = line, column
        super().__init__(f"line {line}, column {column}: {msg}" if line is not None else msg)


GRAMMAR = r"""
start: header line*
header: "graph" "(" [param ("," _NL? param)*] ")" ":" _NL
?line: node_line | block_head | block_ret | ret
node_line: [outputs] EQ OP [attrs] "(" [values] ")" [COMMENT] _NL
outputs: param ("," param)*
block_head: BLOCK "(" [param ("," param)*] ")" ":" _NL
block_ret: ARROW "(" [values] ")" _NL
ret: RETURN "(" [values] ")" _NL
values: VALUE ("," VALUE)*
param: VALUE ":" type

type: NAME                              -> t_simple
    | NAME "(" [tdim ("," tdim)*] ")"   -> t_tensor
    | NAME "[" [type ("," type)*] "]"   -> t_generic
tdim: INT | NAME | STAR | NAME EQ DEVICE

attrs: "[" attr ("," attr)* "]"
attr: NAME EQ avalue
?avalue: INT                                 -> a_int
       | FLOAT                               -> a_float
       | STRING                              -> a_str
       | "True"                              -> a_true
       | "False"                             -> a_false
       | "None"                              -> a_none
       | DTYPE                               -> a_dtype
       | CONST                               -> a_const
       | "[" "]"                             -> a_list
       | "[" avalue ("," avalue)* "]"        -> a_list
       | "(" ")"                             -> a_tuple
       | "(" avalue "," ")"                  -> a_tuple
       | "(" avalue ("," avalue)+ ")"        -> a_tuple

EQ: "="
STAR: "*"
ARROW: "->"
RETURN.3: "return"
BLOCK.3: /block\d+/
OP.2: /[A-Za-z_][A-Za-z0-9_]*::[A-Za-z_][A-Za-z0-9_]*/
DTYPE.2: /tracejit\.[A-Za-z0-9_]+/
VALUE: /%[A-Za-z0-9_.]+/
CONST: /@[A-Za-z0-9_.]+/
FLOAT.2: /-?(\d+\.\d*([eE][-+]?\d+)?|\d+[eE][-+]?\d+|inf|nan)/
INT: /-?\d+/
STRING: /"(\\.|[^"\\\n])*"/
DEVICE: /[a-z]+(:\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
COMMENT: /#[^\n]*/
_NL: /\n/
%ignore / +/
"""


def _err(msg, tok):
    return IRParseError(msg, getattr(tok, "line", None), getattr(tok, "column", None))


class _Builder(Transformer):
    """Builds the graph as lark reduces each line (bottom-up, in text order)."""

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self):
        self.graph = Graph()
        self.by_name = {}  # name -> Value (a placeholder until defined: forward refs are legal text)
        self.pending = {}  # name -> first token that used it before its definition
        self.frames = [[self.graph.body, 2]]  # [block, indent of its lines]
        self.done = False

    # -- values ---------------------------------------------------------------------------
    def _use(self, tok):
        name = tok[1:]
        v = self.by_name.get(name)
        if v is None:
            v = self.by_name[name] = Value(None, name)
            self.pending[name] = tok
        return v

    def _define(self, tok, type_, node=None, block=None):
        name = tok[1:]
        v = self.by_name.get(name)
        if v is not None and name not in self.pending:
            raise _err(f"value %{name} is defined twice", tok)
        if v is None:
            v = self.by_name[name] = Value(type_, name)
        self.pending.pop(name, None)
        v.type, v.node, v.block = type_, node, block
        self.graph._names.add(name)
        return v

    def _check_line(self, tok, indent, what):
        if self.done:
            raise _err(f"unexpected {what} after the graph's return line", tok)
        if tok.column - 1 != indent:
            raise _err(f"{what} is indented by {tok.column - 1} spaces; expected {indent}", tok)

    # -- lines ----------------------------------------------------------------------------
    def param(self, c):
        return (c[0], c[1])

    def values(self, c):
        return [self._use(t) for t in c]

    def outputs(self, c):
        return c

    def header(self, c):
        for p in c:
            if p is not None:
                self.graph.body.params.append(self._define(p[0], p[1], block=self.graph.body))

    def node_line(self, c):
        outs, eq, op, attrs, ins, comment = c
        block, indent = self.frames[-1]
        self._check_line(outs[0][0] if outs else eq, indent, "node line")
        node = Node(op.value, ins or (), attrs)
        if comment is not None:
            text = comment[1:].lstrip(" ")
            if text.startswith("scope="):
                node.scope, _, text = text[6:].partition(" ")
            node.loc = text
        for tok, t in outs or ():
            node.outputs.append(self._define(tok, t, node=node))
        block.append(node)

    def block_head(self, c):
        tok, params = c[0], c[1:]
        block, indent = self.frames[-1]
        self._check_line(tok, indent + 2, "block header")
        owner = block.nodes[-1] if block.nodes else None
        k = int(tok.value[5:])
        if owner is None or k != len(owner.blocks):
            expected = f"block{len(owner.blocks)}" if owner is not None else "a node line"
            raise _err(f"unexpected {tok.value}; expected {expected} (blocks follow their node, numbered from 0)", tok)
        b = owner.add_block()
        for p in params:
            if p is not None:
                b.params.append(self._define(p[0], p[1], block=b))
        self.frames.append([b, indent + 4])

    def block_ret(self, c):
        tok, vals = c
        block, indent = self.frames[-1]
        if len(self.frames) == 1:
            raise _err("'->' outside of a block (the graph ends with 'return (...)')", tok)
        self._check_line(tok, indent, "block return")
        block.set_returns(vals or [])
        self.frames.pop()

    def ret(self, c):
        tok, vals = c
        if len(self.frames) != 1:
            raise _err("'return' inside a block; expected '-> (...)' to close the block first", tok)
        self._check_line(tok, 2, "return line")
        self.graph.set_outputs(vals or [])
        self.done = True

    # -- types ----------------------------------------------------------------------------
    def t_simple(self, c):
        name = c[0]
        if name == "Tensor":
            return TensorType()
        if name in SCALAR_TYPES:
            return SCALAR_TYPES[name]
        raise _err(
            f"unknown type {name!r}; expected Tensor, int, float, bool, str, NoneType, "
            f"List[...], Tuple[...] or a dtype such as Float(...)",
            name,
        )

    def t_tensor(self, c):
        name = c[0]
        if name != "Tensor" and name not in NAME_TO_DTYPE:
            raise _err(f"unknown dtype {name!r}; expected one of {', '.join(NAME_TO_DTYPE)}", name)
        dims, device, shape = [], None, ()
        for d in c[1:]:
            if d is None:
                continue
            if isinstance(d, tuple):
                device = d[1]
            elif d == "*":
                shape = None
            else:
                dims.append(d)
        if shape is not None:
            shape = tuple(dims)
        return TensorType(NAME_TO_DTYPE.get(name), shape, device)

    def tdim(self, c):
        if len(c) == 3:
            if c[0] != "device":
                raise _err(f"unknown tensor type option {c[0]!r}; expected device=...", c[0])
            try:
                return ("device", devices.device(c[2].value))
            except Exception as e:
                raise _err(str(e), c[2]) from None
        tok = c[0]
        return int(tok) if tok.type == "INT" else tok.value

    def t_generic(self, c):
        name, args = c[0], [a for a in c[1:] if a is not None]
        if name == "List" and len(args) == 1:
            return ListType(args[0])
        if name == "Tuple":
            return TupleType(args)
        raise _err(f"unknown type {name}[...]; expected List[T] or Tuple[T, ...]", name)

    # -- attributes -----------------------------------------------------------------------
    def attrs(self, c):
        return dict(c)

    def attr(self, c):
        return (c[0].value, c[2])

    def a_int(self, c):
        return int(c[0])

    def a_float(self, c):
        return float(c[0])

    def a_str(self, c):
        return json.loads(c[0])

    def a_true(self, c):
        return True

    def a_false(self, c):
        return False

    def a_none(self, c):
        return None

    def a_dtype(self, c):
        name = c[0][len("tracejit.") :]
        if name not in dtypes.BY_NAME:
            raise _err(f"unknown dtype {c[0].value}", c[0])
        return dtypes.BY_NAME[name]

    def a_const(self, c):
        return ConstRef(c[0][1:])

    def a_list(self, c):
        return list(c)

    def a_tuple(self, c):
        return tuple(c)


_BUILDER = _Builder()
_PARSER = None
_LOCK = threading.Lock()


_OPTIONS = {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": True}
# The LALR tables of GRAMMAR as lark serializes them (plain JSON, no pickle): loading them takes ~4 ms
# where building them takes ~35 ms, which matters to the runtime's start-up. After changing the
# grammar, regenerate them with `python -c "from tracejit.ir.parser import write_tables; write_tables()"`
# (tests/test_ir.py fails until then); stale or unreadable tables are ignored.
TABLES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parser_tables.json")


def _tables_key():
    import lark

    text = json.dumps([GRAMMAR, _OPTIONS, lark.__version__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _load_tables():
    try:
        with open(TABLES_PATH, encoding="utf-8") as f:
            saved = json.load(f)
        if saved.get("key") != _tables_key():
            return None
        data = saved["data"]
        tables = data["parser"]["parser"]
        # JSON object keys are strings; lark numbers tokens and states by int
        tables["tokens"] = {int(k): v for k, v in tables["tokens"].items()}
        tables["states"] = {int(k): {int(t): a for t, a in row.items()} for k, row in tables["states"].items()}
        parser = Lark.__new__(Lark)
        parser._load({"data": data, "memo": {int(k): v for k, v in saved["memo"].items()}}, transformer=_BUILDER)
        return parser
    except Exception:  # noqa: BLE001 - the tables are only a shortcut: build them instead
        return None


def _build():
    return Lark(GRAMMAR, transformer=_BUILDER, **_OPTIONS)


def write_tables(path=TABLES_PATH):
    """Save the parse tables of the current grammar (for this lark version) as JSON."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = Lark(GRAMMAR, **_OPTIONS).memo_serialize([TerminalDef, Rule])
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"key": _tables_key(), "data": data, "memo": memo}, f, separators=(",", ":"))
        f.write("\n")


def _parser():
    global _PARSER
    if _PARSER is None:
        # lark binds an inline transformer when the parser is built, so one parser shares one
        # builder whose state is reset per parse (under a lock) instead of rebuilding the tables.
        _PARSER = _load_tables() or _build()
    return _PARSER


def parse(text, constants=None):
    """Parse IR text into a Graph; `constants` (name -> tensor) becomes `graph.constants`.

    Raises IRParseError naming the line and column. When a table is given, every `@name`
    attribute must be in it.
    """
    with _LOCK:
        _BUILDER.reset()
        try:
            _parser().parse(text)
            pending, done, g = _BUILDER.pending, _BUILDER.done, _BUILDER.graph
        except UnexpectedInput as e:
            raise _describe(e) from None
        finally:
            _BUILDER.reset()  # drop the half-built graph so it is not kept alive until the next parse
    if pending:
        name, tok = next(iter(pending.items()))
        raise _err(f"value %{name} is used but never defined", tok)
    if not done:
        raise IRParseError("the graph has no 'return (...)' line", text.count("\n") + 1, 1)
    if constants is not None:
        g.constants = dict(constants)
        for n in g.nodes():
            for v in n.attrs.values():
                if isinstance(v, ConstRef) and v.name not in g.constants:
                    raise IRParseError(f"{n.op} refers to @{v.name}, which is not in the constant table")
    return g


_FRIENDLY = {
    "_NL": "end of line",
    "CONST": "@constant",
    "DTYPE": "tracejit.<dtype>",
    "FLOAT": "float",
    "INT": "int",
    "STRING": "string",
    "VALUE": "%value",
    "OP": "op name (ns::name)",
    "NAME": "name",
    "BLOCK": "blockN",
    "DEVICE": "device",
    "COMMENT": "# comment",
}


def _expected(names):
    # Show literal terminals as themselves (`')'` rather than RPAR); keep names for patterns.
    shown = []
    for name in sorted(names or ()):
        try:
            pat = _parser().get_terminal(name).pattern
        except KeyError:
            shown.append(_FRIENDLY.get(name, name))
            continue
        shown.append(repr(pat.value) if pat.type == "str" else _FRIENDLY.get(name, name))
    return ", ".join(shown)


def _describe(e):
    if isinstance(e, UnexpectedToken):
        tok = e.token
        got = "end of input" if tok.type == "$END" else repr(tok.value)
        return IRParseError(f"unexpected {got}; expected one of: {_expected(e.expected)}", e.line, e.column)
    if isinstance(e, UnexpectedCharacters):
        return IRParseError(
            f"unexpected character {e.char!r}; expected one of: {_expected(e.allowed)}", e.line, e.column
        )
    if isinstance(e, UnexpectedEOF):
        return IRParseError(f"unexpected end of input; expected one of: {_expected(e.expected)}")
    return IRParseError(str(e), getattr(e, "line", None), getattr(e, "column", None))


__all__ = ["IRParseError", "parse"]

