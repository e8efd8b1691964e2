"""Expressions of scripted code: names, operators, comparisons, `and`/`or`, conditional expressions,
f-strings and comprehensions (see `tracejit.jit.script`)."""

from __future__ import annotations

import ast
import builtins
import operator

from .._tensor import Tensor
from .script_values import (
    _BINOPS,
    _CMPOPS,
    SymScalar,
    _has_dynamic,
    _is_dynamic,
    _Range,
    _RunTimeText,
    _Undefined,
)


class ExprMixin:
    """The expression half of `Scripter`."""

    def eval(self, node):
        saved = self.node
        self.node = node if hasattr(node, "lineno") else saved
        try:
            return self._eval(node)
        finally:
            self.node = saved

    def _eval(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            obj = self.eval(node.value)
            if isinstance(obj, Tensor) and node.attr == "shape":
                return self.shape_of(obj)
            if isinstance(obj, SymScalar):
                raise self.error(f"attribute `{node.attr}` of a number known only at run time")
            try:
                return getattr(obj, node.attr)
            except AttributeError as e:
                raise self.error(str(e)) from None
        if isinstance(node, ast.Call):
            f = self.eval(node.func)
            args = []
            for a in node.args:
                if isinstance(a, ast.Starred):
                    args.extend(self.unpack_all(self.eval(a.value)))
                else:
                    args.append(self.eval(a))
            kwargs = {}
            for kw in node.keywords:
                if kw.arg is None:
                    kwargs.update(self.eval(kw.value))
                else:
                    kwargs[kw.arg] = self.eval(kw.value)
            self.node = node
            return self.call_value(f, tuple(args), kwargs)
        if isinstance(node, ast.BinOp):
            return self.binop(_BINOPS[type(node.op)], self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.UnaryOp):
            x = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                c = self.truth(x)
                return (not x) if c is None else self.scalar_op("not_", c)
            if isinstance(x, SymScalar):
                if isinstance(node.op, ast.USub):
                    return self.scalar_op("neg", x)
                if isinstance(node.op, ast.UAdd):
                    return x
                raise self.error("`~` on a number known only at run time")
            fn = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}[type(node.op)]
            return self.library_call(fn, (x,), {}) if isinstance(x, Tensor) else fn(x)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.IfExp):
            return self.ifexp(node)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    items.extend(self.unpack_all(self.eval(e.value)))
                else:
                    items.append(self.eval(e))
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Subscript):
            return self.getitem(self.eval(node.value), self.eval_index(node.slice))
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            return self.comprehension(node)
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node)
        if isinstance(node, ast.Slice):
            return self.eval_index(node)
        raise self.error(f"{type(node).__name__} expressions")

    def fstring(self, node):
        """An f-string; run-time values in it are formatted when the message is raised (`_RunTimeText`)."""
        text, template, values = [], [], []
        for v in node.values:
            if isinstance(v, ast.Constant):
                text.append(str(v.value))
                template.append(str(v.value).replace("{", "{{").replace("}", "}}"))
                continue
            value = self.eval(v.value)
            spec = self.fstring(v.format_spec) if v.format_spec else ""
            if _is_dynamic(value):
                if isinstance(spec, _RunTimeText):
                    raise self.error("a format spec known only at run time")
                conv_text = {115: "!s", 114: "!r", 97: "!a"}.get(v.conversion, "")
                text.append("{" + ast.unparse(v.value) + "}")
                template.append("{" + conv_text + (":" + spec if spec else "") + "}")
                values.append(value)
                continue
            conv = {115: str, 114: repr, 97: ascii}.get(v.conversion)
            part = format(conv(value) if conv else value, str(spec))
            text.append(part)
            template.append(part.replace("{", "{{").replace("}", "}}"))
        if not values:
            return "".join(text)
        return _RunTimeText("".join(text), "".join(template), values)

    def unpack_all(self, value):
        if isinstance(value, Tensor):
            return self.unpack(value, value.shape[0], self.node)
        return list(value)

    def eval_index(self, node):
        if isinstance(node, ast.Slice):
            return slice(*(self.eval(p) if p is not None else None for p in (node.lower, node.upper, node.step)))
        if isinstance(node, ast.Tuple):
            return tuple(self.eval_index(e) for e in node.elts)
        return self.eval(node)

    def lookup(self, name):
        env = self.ctx.env
        if name in env:
            v = env[name]
            if isinstance(v, _Undefined):
                if name.startswith("__retval"):
                    raise self.error("`return` inside a loop that runs a data-dependent number of times",
                                     "assign the result to a variable, stop the loop, and return after it")
                raise self.error(f"`{name}` is {v.why or 'not defined on every path that reaches here'}",
                                 "assign it before the branch or loop, or on every path")
            return v
        if name in self.ctx.closure:
            return self.ctx.closure[name]
        if name in self.ctx.globals:
            return self.ctx.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise self.error(f"`{name}` is not defined")

    def compare(self, node):
        left = self.eval(node.left)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = self.eval(right_node)
            if isinstance(op, (ast.Is, ast.IsNot)):
                r = (left is right) if isinstance(op, ast.Is) else (left is not right)
            elif isinstance(op, (ast.In, ast.NotIn)):
                if _has_dynamic(left) or (isinstance(right, (list, tuple)) and _has_dynamic(right)):
                    if not isinstance(right, (list, tuple)):
                        raise self.error("`in` with values known only at run time",
                                         "test membership in a list or tuple")
                    r = False
                    for item in right:
                        r = self.logical("or", r, self.equal(left, item))
                    if isinstance(op, ast.NotIn):
                        r = self.negate(r)
                else:
                    r = (left in right) if isinstance(op, ast.In) else (left not in right)
            elif isinstance(op, (ast.Eq, ast.NotEq)) and isinstance(left, (list, tuple)) and \
                    isinstance(right, (list, tuple)) and (_has_dynamic(left) or _has_dynamic(right)):
                r = self.equal(left, right)
                if isinstance(op, ast.NotEq):
                    r = self.negate(r)
            else:
                r = self.binop(_CMPOPS[type(op)], left, right)
            result = r if result is None else self.logical("and", result, r)
            left = right
        return result

    def equal(self, a, b):
        """`a == b` as Python means it, for sequences holding run-time numbers too."""
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            if len(a) != len(b):
                return False
            r = True
            for x, y in zip(a, b):
                r = self.logical("and", r, self.equal(x, y))
            return r
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            return False
        r = self.binop("eq", a, b)
        return self.truth(r) if isinstance(r, Tensor) else r

    def negate(self, r):
        c = self.truth(r)
        return (not r) if c is None else self.scalar_op("not_", c)

    def logical(self, op, a, b):
        """Python's `a and b` / `a or b`: the deciding operand itself, not just its truth."""
        ca = self.truth(a)
        if ca is None:  # known now: `False and x` is False, `True and x` is x
            if op == "and":
                return b if a else a
            return a if a else b
        # Truth values (Python bools, run-time bools, one-element bool tensors) combine into a run-time bool;
        # other operands are selected as Python does (`n or 10` is n when n is true).
        is_bool = all(isinstance(x, bool) or isinstance(x, SymScalar) and x.kind is bool or
                      isinstance(x, Tensor) and x.dtype.name == "bool" and x.numel() == 1 for x in (a, b))
        if is_bool:
            cb = self.truth(b)
            if cb is None:
                if op == "and":
                    return ca if b else False
                return True if b else ca
            return self.scalar_op(f"{op}_", ca, cb)
        return self.select(ca, b, a) if op == "and" else self.select(ca, a, b)

    def select(self, cond, then_value, else_value):
        """`then_value if cond else else_value` for a run-time `cond` (a prim::If of the two values)."""
        env = self.ctx.env
        names = ("__select_then", "__select_else", "__select_value")
        saved = {n: env[n] for n in names if n in env}
        env[names[0]], env[names[1]] = then_value, else_value
        node = self.node
        stmts = [ast.Assign([ast.Name(names[2], ast.Store())], ast.Name(src, ast.Load())) for src in names[:2]]
        for st in stmts:
            ast.copy_location(st, node)
            ast.fix_missing_locations(st)
        try:
            self.emit_if(cond, [stmts[0]], [stmts[1]], node)
            return env.pop(names[2])
        finally:
            for n in names:
                env.pop(n, None)
            env.update(saved)

    def boolop(self, node):
        op = "and" if isinstance(node.op, ast.And) else "or"
        value = self.eval(node.values[0])
        for v in node.values[1:]:
            if self.truth(value) is None:  # Python's short circuit while the value is known now
                if (op == "and" and not value) or (op == "or" and value):
                    return value
                value = self.eval(v)
                continue
            value = self.logical(op, value, self.eval(v))
        return value

    def ifexp(self, node):
        cond = self.eval_test(node.test)
        c = self.truth(cond)
        if c is None:
            return self.eval(node.body if cond else node.orelse)
        tmp = "__ifexp_value"
        then_s = [ast.copy_location(ast.Assign([ast.Name(tmp, ast.Store())], node.body), node)]
        else_s = [ast.copy_location(ast.Assign([ast.Name(tmp, ast.Store())], node.orelse), node)]
        for s in then_s + else_s:
            ast.fix_missing_locations(s)
        had = self.ctx.env.pop(tmp, None)
        self.emit_if(c, then_s, else_s, node)
        value = self.ctx.env.pop(tmp)
        if had is not None:
            self.ctx.env[tmp] = had
        return value

    def comprehension(self, node):
        if len(node.generators) != 1 or node.generators[0].is_async:
            raise self.error("comprehensions with more than one `for`", "write the loops out")
        gen = node.generators[0]
        it = self.eval(gen.iter)
        if isinstance(it, _Range):
            if it.dynamic:
                raise self.error("a comprehension over a range known only at run time", "write a for loop")
            it = range(it.start, it.stop, it.step)
        if isinstance(it, Tensor):
            it = self.unpack_all(it)
        env = self.ctx.env
        saved = dict(env)
        out = []
        try:
            for item in it:
                self.assign(gen.target, item)
                if all(self.static_truth(self.eval(c)) for c in gen.ifs):
                    out.append(self.eval(node.elt))
        finally:
            env.clear()
            env.update(saved)
        return out

    def static_truth(self, x):
        if self.truth(x) is not None:
            raise self.error("a comprehension filter known only at run time")
        return bool(x)


