"""Source checks for `tracejit.script`: every construct the scripting frontend cannot compile is found
before anything runs, and all of them are reported in one `ScriptError` with file:line:column and a hint.

    >>> import ast
    >>> tree = ast.parse("def f(x):\\n    with open('a') as h:\\n        pass\\n    return lambda y: y\\n")
    >>> [(p.line, p.what.split(" (")[0]) for p in check_function(tree.body[0], "m.py", 0)]
    [(2, '`with` blocks'), (4, 'lambda expressions')]
"""

from __future__ import annotations

import ast
import inspect
import linecache
import os
import sysconfig
import textwrap
from dataclasses import dataclass

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple(os.path.abspath(p) + os.sep for p in {
    sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class ScriptError(TypeError):
    """Code that `tracejit.script` cannot compile; `problems` lists each one (file, line, column, what, hint)."""

    def __init__(self, problems, header=None):
        self.problems = list(problems)
        n = len(self.problems)
        head = header or (f"tracejit.script cannot compile this code ({n} problem{'s' if n != 1 else ''}):")
        super().__init__("\n".join([head] + [p.format() for p in self.problems]))


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    what: str
    hint: str = ""

    def format(self):
        text = linecache.getline(self.file, self.line).rstrip() if self.line else ""
        out = f"  {self.file}:{self.line}:{self.col}: {self.what}"
        if text:
            out += f"\n      {text.strip()}"
        if self.hint:
            out += f"\n      hint: {self.hint}"
        return out


def problem(file, node, what, hint=""):
    return Problem(file, getattr(node, "lineno", 0), getattr(node, "col_offset", -1) + 1, what, hint)


# Constructs the frontend rejects, with what to do instead.
_UNSUPPORTED = {
    ast.With: ("`with` blocks (other than torch.no_grad() and the other grad modes)",
               "move the context manager around the call of the scripted model"),
    ast.AsyncWith: ("async code", "scripted code is synchronous"),
    ast.AsyncFor: ("async code", "scripted code is synchronous"),
    ast.AsyncFunctionDef: ("async code", "scripted code is synchronous"),
    ast.Await: ("async code", "scripted code is synchronous"),
    ast.Try: ("try/except", "scripted code cannot catch exceptions; test the condition with `if` and `raise`"),
    ast.Lambda: ("lambda expressions", "define a function at module level (or a method) and call it"),
    ast.FunctionDef: ("nested function definitions", "define the function at module level and call it"),
    ast.ClassDef: ("class definitions inside scripted code", "define the class at module level"),
    ast.Global: ("`global` statements", "pass the value as an argument or keep it on the module"),
    ast.Nonlocal: ("`nonlocal` statements", "pass the value as an argument and return the new one"),
    ast.Yield: ("generators (`yield`)", "return a tuple or list instead"),
    ast.YieldFrom: ("generators (`yield from`)", "return a tuple or list instead"),
    ast.Import: ("imports inside scripted code", "import at module level"),
    ast.ImportFrom: ("imports inside scripted code", "import at module level"),
    ast.Set: ("sets", "use a tuple or list"),
    ast.SetComp: ("set comprehensions", "use a list comprehension over a fixed range or list"),
    ast.DictComp: ("dict comprehensions", "build the dict with explicit keys"),
    ast.NamedExpr: ("assignment expressions (`:=`)", "assign on a line of its own"),
}
if hasattr(ast, "TryStar"):
    _UNSUPPORTED[ast.TryStar] = _UNSUPPORTED[ast.Try]
if hasattr(ast, "Match"):
    _UNSUPPORTED[ast.Match] = ("`match` statements", "use if/elif/else")


def check_function(fndef, file, line_offset=0):
    """The problems in one function definition's body (nested definitions are themselves problems)."""
    problems = []
    stack = list(reversed(fndef.body))
    args = fndef.args
    if args.vararg is not None or args.kwarg is not None:
        problems.append(problem(file, fndef, "`*args` / `**kwargs` parameters",
                                "name every parameter the scripted function takes"))
    for d in fndef.decorator_list:
        stack.append(d)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.With) and all(_is_grad_mode(item) for item in node.items):
            stack.extend(reversed(node.body))  # `with torch.no_grad():` and the like run their body inline
            continue
        kind = _UNSUPPORTED.get(type(node))
        if kind is not None:
            problems.append(problem(file, node, *kind))
            continue  # nothing inside an unsupported construct is looked at
        if isinstance(node, (ast.For, ast.While)) and node.orelse:
            problems.append(problem(file, node, f"`{'for' if isinstance(node, ast.For) else 'while'} ... else`",
                                    "set a flag before `break` and test it after the loop"))
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store):
                        problems.append(problem(file, sub, "assigning to an attribute",
                                                "keep the value in a local variable; module attributes are "
                                                "constants of the scripted graph"))
                    elif isinstance(sub, ast.Starred):
                        problems.append(problem(file, sub, "starred assignment (`a, *b = ...`)",
                                                "unpack a fixed number of items"))
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    problems.sort(key=lambda p: (p.line, p.col))
    for p in problems:
        object.__setattr__(p, "line", p.line + line_offset)
    return problems


GRAD_MODES = ("no_grad", "enable_grad", "inference_mode", "set_grad_enabled")


def _is_grad_mode(item):
    f = item.context_expr.func if isinstance(item.context_expr, ast.Call) else None
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    return item.optional_vars is None and name in GRAD_MODES


def is_user_code(fn):
    """Whether `fn` is a Python function the frontend compiles from source (not tracejit's own code, the
    standard library's or an installed package's, which run as they are and are recorded by tracing)."""
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    if not inspect.isfunction(fn):
        return False
    # Code typed at a prompt or exec'd counts too: scripting it reports that its source cannot be read.
    path = os.path.abspath(fn.__code__.co_filename)
    return not (path.startswith(_PKG + os.sep) or path.startswith(_LIBRARY_DIRS))


@dataclass
class Source:
    fndef: ast.FunctionDef
    file: str
    line_offset: int
    problems: list


_SOURCES = {}


def source_of(fn):
    """The parsed definition of `fn` (cached by code object), with its problems; ScriptError if unreadable."""
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    code = fn.__code__
    hit = _SOURCES.get(code)
    if hit is not None:
        return hit
    file = code.co_filename
    unreadable = ScriptError([Problem(file, code.co_firstlineno, 1, f"the source of {fn.__qualname__} cannot be "
                                      "read", "define it in a .py file, or mark it @tracejit.trace_only")])
    if fn.__name__ == "<lambda>":
        fndef = _lambda_def(fn)
        if fndef is None:
            raise unreadable
        src = _SOURCES[code] = Source(fndef, file, 0, check_function(fndef, file, 0))
        return src
    try:
        lines, first = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        raise unreadable from None
    fndef = tree.body[0]
    if not isinstance(fndef, ast.FunctionDef):
        raise ScriptError([Problem(file, first, 1, f"{fn.__qualname__} is not a plain function definition",
                                   "script a def-defined function or method")])
    # Decorator lines come before the def; ast line numbers count from the first source line.
    src = Source(fndef, file, first - 1, check_function(fndef, file, first - 1))
    _SOURCES[code] = src
    return src


def _lambda_def(fn):
    """A lambda's source as `def <lambda>(args): return body`, found in its file by line and parameters."""
    code = fn.__code__
    text = "".join(linecache.getlines(code.co_filename))
    if not text:
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    names = list(code.co_varnames[:code.co_argcount])
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno
             and [a.arg for a in n.args.args] == names]
    if len(found) != 1:
        return None
    lam = found[0]
    ret = ast.copy_location(ast.Return(lam.body), lam)
    extra = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    fndef = ast.FunctionDef(name="<lambda>", args=lam.args, body=[ret], decorator_list=[], returns=None, **extra)
    return ast.fix_missing_locations(ast.copy_location(fndef, lam))


def referenced_functions(src, globals_, obj=None):
    """User functions and methods the body names directly (module-level names, `self.method`); these are
    checked up front with the function so all problems are reported at once."""
    found = []
    for node in ast.walk(src.fndef):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        target, owner = None, None
        if isinstance(f, ast.Name):
            target = globals_.get(f.id)
        elif (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self"
              and obj is not None):
            target, owner = getattr(type(obj), f.attr, None), obj
        if target is not None and is_user_code(target) and _marker(target) is None:
            found.append((target, owner))
    return found


def _marker(fn):
    return getattr(inspect.unwrap(getattr(fn, "__func__", fn)), "__tracejit_script__", None)


def check_all(roots):
    """Check every function reachable from `roots` ((function, self-or-None) pairs) by name;
    raise one ScriptError listing every problem found."""
    seen = set()
    problems = []
    stack = list(roots)
    while stack:
        fn, obj = stack.pop()
        fn = inspect.unwrap(getattr(fn, "__func__", fn))
        if fn.__code__ in seen:
            continue
        seen.add(fn.__code__)
        src = source_of(fn)
        problems.extend(src.problems)
        stack.extend(referenced_functions(src, fn.__globals__, obj))
    if problems:
        problems.sort(key=lambda p: (p.file, p.line, p.col))
        raise ScriptError(problems)
