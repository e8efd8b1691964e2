"""Reading and rewriting the `ast` of scripted code: the names a block binds or changes, and the rewrites
that turn `break` / `continue` / `return` inside loops into flags (see `tracejit.jit.script`)."""

from __future__ import annotations

import ast


def _assigned_names(stmts):
    """Names a statement list binds (not inside nested scopes), in first-assignment order."""
    names = []
    stack = list(reversed(stmts))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and node.id not in names:
            names.append(node.id)
        if isinstance(node, (ast.FunctionDef, ast.Lambda, ast.ListComp, ast.GeneratorExp)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return names


_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort", "update", "setdefault",
             "popitem", "__setitem__", "__delitem__"}


def _mutated_names(stmts):
    """Variables whose list or dict a statement list changes in place (`a.append(x)`, `a[i] = x`, `del a[i]`)."""
    names = []
    for s in stmts:
        for node in ast.walk(s):
            base = None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
                base = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
                base = node.func.value
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Subscript):
                base = node.target.value
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name) and base.id not in names:
                names.append(base.id)
    return names


def _copy_containers(v):
    if isinstance(v, list):
        return [_copy_containers(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy_containers(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return tuple(_copy_containers(x) for x in v)
    return v


def _loop_exits(stmts):
    """Whether `break` or `continue` of this loop appear in `stmts` (not those of nested loops)."""
    stack = list(stmts)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Break, ast.Continue)):
            return True
        if isinstance(n, (ast.For, ast.While, ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _flag(name, value, at):
    return ast.fix_missing_locations(ast.copy_location(
        ast.Assign([ast.Name(name, ast.Store())], ast.Constant(value)), at))


def _without_exits(stmts, brk, cont):
    """`stmts` with `break` / `continue` turned into flag assignments and what follows them guarded by
    `if not (brk or cont):`, so a loop can stop on a condition known only at run time."""
    out = []
    for i, s in enumerate(stmts):
        if isinstance(s, (ast.Break, ast.Continue)):
            out.append(_flag(brk if isinstance(s, ast.Break) else cont, True, s))
            return out  # the rest of this block is dead
        if isinstance(s, (ast.If, ast.With)) and _loop_exits([s]):
            if isinstance(s, ast.If):
                new = ast.If(s.test, _without_exits(s.body, brk, cont), _without_exits(s.orelse, brk, cont))
            else:
                new = ast.With(s.items, _without_exits(s.body, brk, cont))
            out.append(ast.copy_location(new, s))
            rest = stmts[i + 1:]
            if rest:
                test = ast.UnaryOp(ast.Not(), ast.BoolOp(ast.Or(), [ast.Name(brk, ast.Load()),
                                                                    ast.Name(cont, ast.Load())]))
                guard = ast.copy_location(ast.If(test, _without_exits(rest, brk, cont), []), rest[0])
                out.append(ast.fix_missing_locations(guard))
            return out
        out.append(s)
    return out


def _has_return(stmts):
    stack = list(stmts)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Return):
            return True
        if not isinstance(n, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(n))
    return False


def _without_returns(stmts, ret, val):
    """A loop body with `return v` turned into `val = v; ret = True; break` (nested loops stop too)."""
    out = []
    for s in stmts:
        if isinstance(s, ast.Return):
            value = s.value if s.value is not None else ast.Constant(None)
            for new in (ast.Assign([ast.Name(val, ast.Store())], value), _flag(ret, True, s), ast.Break()):
                out.append(ast.fix_missing_locations(ast.copy_location(new, s)))
            return out
        if not _has_return([s]):
            out.append(s)
        elif isinstance(s, ast.If):
            out.append(ast.copy_location(ast.If(s.test, _without_returns(s.body, ret, val),
                                                _without_returns(s.orelse, ret, val)), s))
        elif isinstance(s, ast.With):
            out.append(ast.copy_location(ast.With(s.items, _without_returns(s.body, ret, val)), s))
        elif isinstance(s, (ast.For, ast.While)):
            loop = ast.copy_location(ast.For(s.target, s.iter, _without_returns(s.body, ret, val), s.orelse)
                                     if isinstance(s, ast.For) else
                                     ast.While(s.test, _without_returns(s.body, ret, val), s.orelse), s)
            out.append(loop)
            stop = ast.If(ast.Name(ret, ast.Load()), [ast.Break()], [])
            out.append(ast.fix_missing_locations(ast.copy_location(stop, s)))
        else:
            out.append(s)
    return out


def _always_returns(stmts):
    for s in stmts:
        if isinstance(s, (ast.Return, ast.Raise)):
            return True
        if isinstance(s, ast.If) and _always_returns(s.body) and _always_returns(s.orelse):
            return True
    return False


def _contains_return(stmts):
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Return):
                return True
    return False


