"""`prim::If` from scripted code: compiling each branch, joining what the branches leave into the node's
outputs, and running the node on the example (see `tracejit.jit.script`)."""

from __future__ import annotations

import numpy as np

from .. import ir
from .._dispatch import _wrap
from .._tensor import Tensor
from ..ir.interpreter import ScriptException, run_node
from ..ir.types import BoolType, FloatType, IntType, TensorType
from .script_ast import (
    _assigned_names,
    _copy_containers,
    _mutated_names,
)
from .script_check import ScriptError
from .script_values import (
    _KIND_TYPE,
    _MISSING,
    SymScalar,
    _Break,
    _Continue,
    _is_dynamic,
    _kind,
    _number,
    _Raised,
    _Return,
    _Undefined,
)
from .tracer import TracingError


class BranchMixin:
    """The branch half of `Scripter`."""

    def run_branch(self, block, stmts, names, returns, taken=True, copy=()):
        """Compile `stmts` into `block`; returns ("raise", None) or ("ok", values) where values are the
        variables `names` (or the returned value) at the end of the branch. `taken`: whether the example
        inputs take this branch (if not, a Python error while compiling it is reported as such)."""
        tracer = self.tracer
        saved_env = self.ctx.env
        self.ctx.env = {k: (_copy_containers(v) if k in copy else v) for k, v in saved_env.items()}
        tracer.block = block
        tracer.probing += 0 if taken else 1
        try:
            try:
                self.exec_block(stmts)
                result = None
                if returns:
                    result = ("ok", None)  # fell off the end of the function: returns None
                else:
                    result = ("ok", [self.ctx.env.get(n, _Undefined(n, "")) for n in names])
            except _Return as r:
                if not returns:
                    raise self.error("`return` inside a loop compiled for run time") from None
                result = ("ok", r.value)
            except _Raised:
                result = ("raise", None)
            except (_Break, _Continue):
                raise self.error("`break` / `continue` under a condition known only at run time",
                                 "use a `while` loop whose condition carries the stop") from None
            except (ScriptError, TracingError, ScriptException):
                raise
            except Exception as e:
                if taken:
                    raise
                raise self.not_reached(e, "branch") from e
        finally:
            self.ctx.env = saved_env
            tracer.probing -= 0 if taken else 1
        return result

    def not_reached(self, e, what):
        return self.error(f"compiling a {what} the example inputs do not reach failed on their values "
                          f"({type(e).__name__}: {e})",
                          f"script with example inputs that reach this {what} (the compiler runs every path on "
                          "the examples' data)")

    def emit_if(self, cond, then_stmts, else_stmts, stmt, returns=False):
        tracer = self.tracer
        node = self.graph.create("prim::If", [cond.ir], [], loc=self.loc(stmt), scope=tracer.current_scope())
        tracer.block.append(node)
        env = self.ctx.env
        mutated = [n for n in _mutated_names(then_stmts + else_stmts) if isinstance(env.get(n), (list, dict))]
        names = [] if returns else list(dict.fromkeys(_assigned_names(then_stmts + else_stmts) + mutated))
        outer_block = tracer.block
        snapshot = dict(tracer.values)
        mark = len(tracer.rebound)
        containers = self.container_snapshot(names)
        tracer.open_nodes.append(node)
        results = []
        try:
            for k, stmts in enumerate((then_stmts, else_stmts)):
                b = node.add_block()
                res = self.run_branch(b, stmts, names, returns, taken=bool(cond.value) == (k == 0),
                                      copy=set(names) | set(mutated))
                self.check_no_outer_writes(snapshot, stmt, mark)
                self.check_containers(containers, stmt)
                values = tracer.values
                tracer.values = dict(snapshot)
                results.append((b, res, values))
        finally:
            tracer.open_nodes.pop()
            tracer.block = outer_block
            self.node = stmt
        outs = self.join_branches(node, results, names, returns, stmt)
        if returns:
            raise _Return(outs)
        for n, v in zip(names, outs):
            self.ctx.env[n] = v

    def container_snapshot(self, skip):
        """The leaves of every list and dict variable not in `skip`, to check a branch or loop leaves them be."""
        snap = {}
        for n, v in self.ctx.env.items():
            if n not in skip and isinstance(v, (list, dict)):
                spec, leaves = self.flatten(v)
                snap[n] = (v, spec, [id(x) for x in leaves])
        return snap

    def check_containers(self, snap, stmt):
        for n, (v, spec, ids) in snap.items():
            now_spec, leaves = self.flatten(v)
            if now_spec != spec or [id(x) for x in leaves] != ids:
                raise self.error(f"`{n}` is changed in place under a condition known only at run time (through "
                                 "another name)", "change the list or dict through the variable that holds it",
                                 node=stmt)

    def check_no_outer_writes(self, snapshot, stmt, since=0):
        for k in self.tracer.rebound[since:]:
            entry = snapshot.get(k)
            if entry is None:
                continue
            now = self.tracer.values.get(k)
            if now is not None and now is not entry and now[0] is entry[0]:
                raise self.error(f"an in-place update of %{entry[1].name}, a tensor from outside this branch or "
                                 "loop", "assign a new tensor instead (`x = x + y`, not `x += y` on an alias or "
                                 "`x.add_(y)`)", node=stmt)

    def join_branches(self, node, results, names, returns, stmt):
        """Make the If's outputs from what each branch left in `names` (or returned)."""
        live = [(b, res[1], vals) for b, res, vals in results if res[0] == "ok"]
        if not live:  # both branches raise: nothing after this runs
            raise _Raised()
        if not returns:  # a loop's return value is read only where its flag is set: absent elsewhere is fine
            for k, n in enumerate(names):
                if not n.startswith("__retval"):
                    continue
                have = [v[k] for _, v, _ in live if not isinstance(v[k], _Undefined)]
                if have and len(have) < len(live):
                    spec, leaves = self.flatten(have[0])
                    for _, v, _ in live:
                        if isinstance(v[k], _Undefined):
                            v[k] = self.unflatten(spec, iter([_MISSING] * len(leaves)))
        structures = [self.flatten(v if returns else list(v)) for _, v, _ in live]
        spec0 = structures[0][0]
        for spec, _ in structures[1:]:
            if spec != spec0:
                raise self.error(self.mismatch_message(names, live, returns), node=stmt)
        leaves_per_branch = [leaves for _, leaves in structures]
        out_leaves = []
        fallback = []  # example values if running the node on the example raises (inside a loop probe)
        returns_per_block = {id(b): [] for b, _, _ in results}
        env_for = {id(b): vals for b, _, vals in live}
        for k in range(len(leaves_per_branch[0])):
            column = [leaves[k] for leaves in leaves_per_branch]
            present = [c for c in column if c is not _MISSING]
            if len(present) < len(column):
                out_type = self.missing_join(present, stmt)
                out = ir.Value(out_type, self.graph.fresh_name(), node=node)
                node.outputs.append(out)
                fallback.append(self.example_data(present[0]))
                for (b, _, _), c in zip(live, column):
                    if c is _MISSING:
                        u = self.graph.create("prim::Uninitialized", [], [out_type])
                        b.append(u)
                        returns_per_block[id(b)].append(u.outputs[0])
                    elif isinstance(c, Tensor):
                        returns_per_block[id(b)].append(self.tensor_ir(b, env_for[id(b)], c))
                    else:
                        returns_per_block[id(b)].append(self.ir_in_block(b, c))
                self.uninitialized_for_raising(results, out_type, returns_per_block)
                out_leaves.append(out)
                continue
            first = column[0]
            if all(c is first for c in column) and not _is_dynamic(first) or (
                    all(_number(c) for c in column) and len({(type(c), c) for c in column}) == 1):
                out_leaves.append(first)
                continue
            if all(isinstance(c, Tensor) for c in column):
                ir_vals = [self.tensor_ir(b, env_for[id(b)], c) for (b, _, _), c in zip(live, column)]
                types = [v.type for v in ir_vals]
                out_type = types[0]
                for t in types[1:]:
                    out_type = self.join_type(out_type, t, self.leaf_name(names, k, returns), stmt)
            elif all(_number(c) or isinstance(c, SymScalar) for c in column):
                kinds = {_kind(c) for c in column}
                if len(kinds) != 1:
                    kinds_text = " on one path and a ".join(sorted(t.__name__ for t in kinds))
                    raise self.error(f"{self.leaf_name(names, k, returns)} is a {kinds_text} on another",
                                     "give it one type on every path", node=stmt)
                out_type = _KIND_TYPE[kinds.pop()]()
                ir_vals = None
            elif any(isinstance(c, _Undefined) for c in column):
                why = next((c.why for c in column if isinstance(c, _Undefined) and c.why), "defined on some paths only")
                out_leaves.append(_Undefined(self.leaf_name(names, k, returns), why))
                continue
            else:
                kinds = " and ".join(sorted({type(c).__name__ for c in column}))
                if not returns:  # an error only if it is read after this point
                    out_leaves.append(_Undefined(
                        self.leaf_name(names, k, returns).strip("`"),
                        f"a different {kinds} on each path of a condition known only at run time"))
                    continue
                raise self.error(f"{self.leaf_name(names, k, returns)} is {kinds} depending on a condition known "
                                 "only at run time", "give it one type on every path (a tensor, or a number)",
                                 node=stmt)
            out = ir.Value(out_type, self.graph.fresh_name(), node=node)
            node.outputs.append(out)
            fallback.append(self.example_data(column[0]))
            for j, ((b, _, _), c) in enumerate(zip(live, column)):
                if ir_vals is not None:
                    returns_per_block[id(b)].append(ir_vals[j])
                else:
                    returns_per_block[id(b)].append(self.ir_in_block(b, c))
            self.uninitialized_for_raising(results, out_type, returns_per_block)
            out_leaves.append(out)
        for b, _, _ in results:
            b.set_returns(returns_per_block[id(b)])
        concrete = self.evaluate(node, fallback)
        final = []
        it = iter(concrete)
        for leaf in out_leaves:
            final.append(self.wrap_output(leaf, next(it)) if isinstance(leaf, ir.Value) else leaf)
        return self.unflatten(spec0, iter(final))

    def uninitialized_for_raising(self, results, out_type, returns_per_block):
        """A branch that raises returns a `prim::Uninitialized` for each output (nothing reads it)."""
        for b, res, _ in results:
            if res[0] == "raise":
                u = self.graph.create("prim::Uninitialized", [], [out_type])
                b.append(u)
                returns_per_block[id(b)].append(u.outputs[0])

    def missing_join(self, present, stmt):
        """The type of a return value set on some paths only (all present ones must agree)."""
        if all(isinstance(c, Tensor) for c in present):
            out_type = self.type_of(present[0])
            for c in present[1:]:
                out_type = self.join_type(out_type, self.type_of(c), "the returned value", stmt)
            return out_type
        kinds = {_kind(c) for c in present if _number(c) or isinstance(c, SymScalar)}
        if len(kinds) == 1 and all(_number(c) or isinstance(c, SymScalar) for c in present):
            return _KIND_TYPE[kinds.pop()]()
        raise self.error("a loop returns values of different types", "return one type (a tensor, or a number)",
                         node=stmt)

    def tensor_ir(self, block, values, t):
        entry = values.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else self.ir_in_block(block, t)

    def ir_in_block(self, block, x):
        if isinstance(x, SymScalar):
            return x.ir
        saved = self.tracer.block
        self.tracer.block = block
        try:
            return self.ir_of(x)
        finally:
            self.tracer.block = saved

    def leaf_name(self, names, k, returns):
        if returns:
            return "the returned value"
        if k < len(names) and names[k].startswith("__"):
            return "this expression"
        return f"`{names[k]}`" if k < len(names) else "a value"

    def mismatch_message(self, names, live, returns):
        what = "the returned value" if returns else "the variables " + ", ".join(names)
        return f"{what} have different structures on the two paths of a condition known only at run time"

    def flatten(self, value):
        """(spec, leaves) of nested lists/tuples; tensors, numbers and anything else are leaves."""
        leaves = []

        def walk(v):
            if isinstance(v, (list, tuple)) and not isinstance(v, str):
                return (type(v).__name__, tuple(walk(x) for x in v))
            if isinstance(v, dict):
                return ("dict", tuple((k, walk(x)) for k, x in v.items()))
            leaves.append(v)
            return "leaf"

        return walk(value), leaves

    def unflatten(self, spec, it):
        if spec == "leaf":
            return next(it)
        kind, items = spec
        if kind == "dict":
            return {k: self.unflatten(s, it) for k, s in items}
        vals = [self.unflatten(s, it) for s in items]
        return vals if kind == "list" else tuple(vals) if kind == "tuple" else type(kind)(vals)

    def join_type(self, a, b, what, stmt, keep_symbols=False):
        if isinstance(a, TensorType) and isinstance(b, TensorType):
            if a.dtype is not b.dtype:
                raise self.error(f"{what} is {a} on one path and {b} on another",
                                 "convert it to one dtype on every path", node=stmt)
            if a.shape is None or b.shape is None:
                return TensorType(a.dtype, None, a.device)
            if len(a.shape) != len(b.shape):
                raise self.error(f"{what} has {len(a.shape)} dims on one path and {len(b.shape)} on another",
                                 "give it one rank on every path", node=stmt)
            dims = tuple(x if x == y else (x if keep_symbols and isinstance(x, str) else self.fresh_symbol())
                         for x, y in zip(a.shape, b.shape))
            return TensorType(a.dtype, dims, a.device)
        if type(a) is type(b):
            return a
        raise self.error(f"{what} is {a} on one path and {b} on another", node=stmt)

    def fresh_symbol(self):
        taken = {d for v in self.graph.inputs if isinstance(v.type, TensorType) and v.type.shape
                 for d in v.type.shape if isinstance(d, str)}
        while True:
            self._symbols += 1
            name = f"S{self._symbols}"
            if name not in taken:
                return name

    def wrap_output(self, v, data):
        """A Python value standing for IR value `v` whose example value is `data`."""
        if data is None:  # prim::Uninitialized on the example's path: a stand-in of the right type
            t = v.type
            if isinstance(t, TensorType):
                data = np.zeros([d if isinstance(d, int) else 1 for d in t.shape or ()], t.dtype.np)
            else:
                data = 0
        if isinstance(v.type, TensorType):
            t = _wrap(np.asarray(data))
            self.tracer.values[id(t)] = (t, v)
            return t
        kind = {BoolType: bool, IntType: int, FloatType: float}[type(v.type)]
        self.scalars[v] = kind(data)
        return SymScalar(kind(data), v, kind)

    def evaluate(self, node, fallback):
        """What `node` computes on the example: the interpreter runs it on the example values it reads. Inside a
        branch or loop being compiled the example may reach a `raise` that real inputs never reach: then
        `fallback` stands in."""
        if self.tracer.probing:  # a path the example does not take: running it on the example proves nothing
            return fallback  # (and a loop there may never end on the example's values)
        try:
            return self._evaluate(node)
        except ScriptException:
            if not self.tracer.open_nodes:
                raise
            return fallback

    def _evaluate(self, node):
        defined = set()
        free = []
        stack = [node]
        reads = []
        while stack:
            n = stack.pop()
            reads.extend(n.inputs)
            for b in n.blocks:
                defined.update(b.params)
                reads.extend(b.returns)
                for m in b.nodes:
                    defined.update(m.outputs)
                    stack.append(m)
        by_value = {v: t for t, v in self.tracer.values.values()}
        env = {}
        for v in reads:
            if v in defined or v in env:
                continue
            env[v] = self.example_of(v, by_value)
            free.append(v)
        return run_node(self.graph, node, env)

    def example_of(self, v, by_value):
        if v in by_value:
            return by_value[v]._data
        if v in self.scalars:
            return self.scalars[v]
        n = v.node
        if n is not None and n.op == "prim::Constant":
            value = n.attrs.get("value")
            return np.asarray(self.graph.constants[value.name]) if isinstance(value, ir.ConstRef) else value
        if n is not None and n.op in ("prim::ListConstruct", "prim::TupleConstruct"):
            items = [self.example_of(x, by_value) for x in n.inputs]
            return items if n.op == "prim::ListConstruct" else tuple(items)
        raise TracingError(f"scripting: no example value for %{v.name}")

    # ---- loops ----------------------------------------------------------------------------

