"""`prim::Loop` from scripted code, and loops unrolled at compile time (see `tracejit.jit.script`)."""

from __future__ import annotations

import ast

from .. import ir
from .._tensor import Tensor
from ..ir.interpreter import ScriptException
from ..ir.types import IntType, TensorType
from .script_ast import (
    _assigned_names,
    _flag,
    _loop_exits,
    _mutated_names,
    _without_exits,
)
from .script_check import ScriptError
from .script_values import (
    _INT_MAX,
    _KIND_TYPE,
    _LOOP_FIXPOINT,
    MAX_UNROLL,
    SymScalar,
    _Break,
    _Continue,
    _is_dynamic,
    _kind,
    _number,
    _Raised,
    _Range,
    _Return,
    _Undefined,
)
from .tracer import TracingError


class LoopMixin:
    """The loop half of `Scripter`."""

    def exec_for(self, stmt):
        it = self.eval(stmt.iter)
        if (isinstance(it, _Range) and it.dynamic) or (isinstance(it, Tensor) and self.dim_is_dynamic(it, 0)):
            rng, over = (it, None) if isinstance(it, _Range) else (None, it)
            if not _loop_exits(stmt.body):
                return self.emit_loop(stmt, stmt.body, rng=rng, over=over)
            brk, body = self.exit_flags(stmt)
            try:
                return self.emit_loop(stmt, body, rng=rng, over=over, brk=brk)
            finally:
                self.drop_flags()
        if isinstance(it, Tensor):
            it = [self.getitem(it, i) for i in range(it.shape[0])]
        if isinstance(it, _Range):
            it = range(it.start, it.stop, it.step)
        if isinstance(it, (SymScalar, _Undefined)) or not hasattr(it, "__iter__"):
            raise self.error(f"iterating over {type(it).__name__}",
                             "iterate over range(...), a tensor, a list, a tuple or an nn.ModuleList")
        self.ctx.loop_depth += 1
        try:
            if not _loop_exits(stmt.body):
                for k, item in enumerate(it):
                    if k >= MAX_UNROLL:
                        raise self.error(f"a loop unrolled more than {MAX_UNROLL} times")
                    self.assign(stmt.target, item)
                    self.exec_block(stmt.body)
                return
            brk, body = self.exit_flags(stmt)
            try:
                for k, item in enumerate(it):
                    if k >= MAX_UNROLL:
                        raise self.error(f"a loop unrolled more than {MAX_UNROLL} times")
                    stop = self.ctx.env[brk]
                    if not _is_dynamic(stop) and stop:
                        break
                    if not _is_dynamic(stop):
                        self.assign(stmt.target, item)
                        self.exec_block(body)
                        continue
                    # After a run-time `break` the rest, the loop variable included, runs only if it did not.
                    self.ctx.env["__loop_item"] = item
                    take = ast.fix_missing_locations(ast.copy_location(
                        ast.Assign([stmt.target], ast.Name("__loop_item", ast.Load())), stmt))
                    try:
                        self.exec_block([self.guard(brk, [take] + body, stmt)])
                    finally:
                        self.ctx.env.pop("__loop_item", None)
            finally:
                self.drop_flags()
        finally:
            self.ctx.loop_depth -= 1

    def exit_flags(self, stmt, keep=False):
        """Flag variables standing for this loop's `break` / `continue`, and its body rewritten to set them."""
        self._flags = getattr(self, "_flags", 0) + 1
        brk, cont = f"__break{self._flags}", f"__continue{self._flags}"
        self.ctx.env[brk] = False
        self.ctx.env[cont] = False
        self._open_flags = getattr(self, "_open_flags", []) + [(brk, cont)]
        return brk, [_flag(cont, False, stmt)] + _without_exits(stmt.body, brk, cont)

    def drop_flags(self):
        brk, cont = self._open_flags.pop()
        self.ctx.env.pop(brk, None)
        self.ctx.env.pop(cont, None)

    def guard(self, brk, body, at):
        test = ast.UnaryOp(ast.Not(), ast.Name(brk, ast.Load()))
        return ast.fix_missing_locations(ast.copy_location(ast.If(test, body, []), at))

    def exec_while(self, stmt):
        self.ctx.loop_depth += 1
        try:
            self._exec_while(stmt)
        finally:
            self.ctx.loop_depth -= 1

    def _exec_while(self, stmt):
        brk, body = self.exit_flags(stmt) if _loop_exits(stmt.body) else (None, stmt.body)
        try:
            for k in range(MAX_UNROLL + 1):
                self.node = stmt
                cond = self.eval_test(stmt.test)
                if brk is not None:
                    cond = self.logical("and", self.negate(self.ctx.env[brk]), self.truth_value(cond))
                c = self.truth(cond)
                if c is not None:
                    return self.emit_loop(stmt, body, cond=c, brk=brk)
                if not cond:
                    return
                if k == MAX_UNROLL:
                    raise self.error(f"a `while` loop whose condition is known at compile time ran {MAX_UNROLL} "
                                     "times", "make the condition depend on a tensor, or bound the loop")
                self.exec_block(body)
        finally:
            if brk is not None:
                self.drop_flags()

    def dim_is_dynamic(self, t, d):
        shape = self.type_of(t).shape
        return shape is None or not isinstance(shape[d], int)

    def type_of(self, t):
        entry = self.tracer.values.get(id(t))
        if entry is not None and entry[0] is t:
            return entry[1].type
        return TensorType(t.dtype, tuple(t.shape))

    def emit_loop(self, stmt, body, rng=None, over=None, cond=None, brk=None):
        """A prim::Loop for `for` over a run-time range or tensor, or `while` on a run-time condition."""
        tracer = self.tracer
        env = self.ctx.env
        is_for = rng is not None or over is not None
        assigned = _assigned_names(body + ([ast.Assign([stmt.target], ast.Constant(0))] if is_for else []))
        loop_var = [n.id for n in ast.walk(stmt.target) if isinstance(n, ast.Name)] if is_for else []
        mutated = [n for n in _mutated_names(body) if isinstance(env.get(n), (list, dict)) and n not in assigned]
        carried = [n for n in assigned + mutated
                   if n in env and n not in loop_var and not isinstance(env[n], _Undefined)]
        if over is not None:
            rng = _Range(0, self.size_of(over, 0), 1)
        if rng is not None:
            trip = self.trip_count(rng)
            cond0 = True
        else:
            trip = _INT_MAX
            cond0 = cond
        init = [env[n] for n in carried]
        spec, init_leaves = self.flatten(init)
        # Tensors and numbers are carried; static objects (modules, strings, None) must not change in the loop.
        dyn = [k for k, leaf in enumerate(init_leaves) if isinstance(leaf, (Tensor, SymScalar)) or _number(leaf)]
        init_ir = [self.ir_of(init_leaves[k]) for k in dyn]
        types = [self.leaf_type(init_leaves[k]) for k in dyn]
        node = self.graph.create("prim::Loop", [self.ir_of(trip), self.ir_of(cond0), *init_ir], [],
                                 loc=self.loc(stmt), scope=tracer.current_scope())
        tracer.block.append(node)
        outer_block = tracer.block
        snapshot = dict(tracer.values)
        mark = len(tracer.rebound)
        containers = self.container_snapshot(carried)
        tracer.open_nodes.append(node)
        self.ctx.loop_depth += 1
        try:
            for _attempt in range(_LOOP_FIXPOINT):
                block = node.add_block()
                runs = bool(cond.value) if cond is not None else \
                    (trip.value if isinstance(trip, SymScalar) else trip) > 0
                tracer.probing += 0 if runs else 1
                try:
                    out_leaves, body_vals = self.loop_body(block, stmt, body, carried, spec, init_leaves, dyn,
                                                           types, rng, over, cond, brk)
                except (ScriptError, TracingError, ScriptException):
                    raise
                except Exception as e:
                    if runs:
                        raise
                    raise self.not_reached(e, "loop body") from e
                finally:
                    tracer.probing -= 0 if runs else 1
                self.check_no_outer_writes(snapshot, stmt, mark)
                self.check_containers(containers, stmt)
                new_types = []
                for k, t in zip(dyn, types):
                    leaf = out_leaves[k]
                    new_types.append(self.join_type(t, self.leaf_type_in(leaf, body_vals),
                                                    f"`{self.carried_name(carried, spec, k)}`", stmt,
                                                    keep_symbols=True))
                tracer.values = dict(snapshot)
                if new_types == types:
                    break
                types = new_types
                self.drop_block(node)
            else:
                raise self.error("the types of the loop's variables do not settle", node=stmt)
        finally:
            tracer.open_nodes.pop()
            tracer.block = outer_block
            self.ctx.loop_depth -= 1
            self.node = stmt
        for t in types:
            node.outputs.append(ir.Value(t, self.graph.fresh_name(), node=node))
        concrete = self.evaluate(node, [self.example_data(init_leaves[k]) for k in dyn])
        leaves = list(init_leaves)
        for k, v, data in zip(dyn, node.outputs, concrete):
            leaves[k] = self.wrap_output(v, data)
        final = self.unflatten(spec, iter(leaves))
        for n, v in zip(carried, final):
            env[n] = v
        for n in assigned:
            if n not in carried:
                env[n] = _Undefined(n, "assigned only inside a loop compiled for run time")

    def loop_body(self, block, stmt, body, carried, spec, init_leaves, dyn, types, rng, over, cond, brk=None):
        tracer = self.tracer
        tracer.block = block
        i_param = self.graph.add_param(block, IntType(), "i")
        self.scalars[i_param] = 0
        leaves = list(init_leaves)
        for k, t in zip(dyn, types):
            p = self.graph.add_param(block, t)
            leaves[k] = self.wrap_output(p, self.example_data(init_leaves[k]))
        saved_env = self.ctx.env
        env = dict(saved_env)
        for n, v in zip(carried, self.unflatten(spec, iter(leaves))):
            env[n] = v
        self.ctx.env = env
        i = SymScalar(0, i_param, int, nonneg=True)
        try:
            if rng is not None:
                value = i
                if not (isinstance(rng.step, int) and rng.step == 1):
                    value = self.binop("mul", value, rng.step)
                if not (isinstance(rng.start, int) and rng.start == 0):
                    value = self.binop("add", rng.start, value)
                if isinstance(value, SymScalar):  # counting up from a start >= 0
                    value.nonneg = isinstance(rng.step, int) and rng.step > 0 and (
                        rng.start.nonneg if isinstance(rng.start, SymScalar) else rng.start >= 0)
                if over is not None:
                    value = self.dynamic_index(over, (value,))
                self.assign(stmt.target, value)
            raised = False
            try:
                self.exec_block(body)
            except (_Break, _Continue):
                raise self.error("`break` / `continue` in a loop that runs a data-dependent number of times",
                                 "use a `while` loop whose condition carries the stop") from None
            except _Return:
                raise self.error("`return` inside a loop that runs a data-dependent number of times",
                                 "assign the result to a variable, stop the loop, and return after it") from None
            except _Raised:
                raised = True
            next_cond = True
            if cond is not None and not raised:
                self.node = stmt
                next_cond = self.truth_value(self.eval_test(stmt.test))
            if brk is not None and not raised:  # the loop also stops once a `break` ran
                next_cond = self.logical("and", self.negate(env[brk]), next_cond)
            c = self.truth(next_cond)
            next_ir = c.ir if c is not None else self.ir_of(bool(next_cond))
            for n, init_value in zip(carried, self.unflatten(spec, iter(init_leaves))):
                if self.flatten(env.get(n))[0] != self.flatten(init_value)[0]:
                    what = "list or dict" if isinstance(init_value, (list, dict)) else "tuple"
                    raise self.error(f"{what} `{n}` changes length inside a loop that runs a data-dependent number "
                                     "of times", "collect results in a tensor carried by the loop "
                                     "(e.g. `out = torch.cat([out, y])`) instead of a list", node=stmt)
            _, out = self.flatten([env.get(n, _Undefined(n, "")) for n in carried])
            body_vals = tracer.values
            rets = []
            for k in dyn:
                leaf = out[k]
                if isinstance(leaf, _Undefined):
                    raise self.error(f"`{leaf.name}` is deleted inside the loop", node=stmt)
                if raised:
                    u = self.graph.create("prim::Uninitialized", [], [self.leaf_type(init_leaves[k])])
                    block.append(u)
                    rets.append(u.outputs[0])
                elif isinstance(leaf, Tensor):
                    entry = body_vals.get(id(leaf))
                    rets.append(entry[1] if entry is not None and entry[0] is leaf else self.ir_of(leaf))
                else:
                    rets.append(self.ir_of(leaf))
            for k, (a, b) in enumerate(zip(init_leaves, out)):
                if k not in dyn and a is not b:
                    raise self.error(f"`{self.carried_name(carried, spec, k)}` changes inside a loop that runs a "
                                     "data-dependent number of times", "only tensors and numbers may change in it",
                                     node=stmt)
            block.set_returns([next_ir, *rets])
            return out, body_vals
        finally:
            self.ctx.env = saved_env

    def carried_name(self, carried, spec, k):
        return carried[k] if k < len(carried) and len(carried) == len(spec[1]) else "a loop variable"

    def leaf_type(self, leaf):
        if isinstance(leaf, Tensor):
            return self.type_of(leaf)
        return _KIND_TYPE[_kind(leaf)]()

    def leaf_type_in(self, leaf, values):
        if isinstance(leaf, Tensor):
            entry = values.get(id(leaf))
            if entry is not None and entry[0] is leaf:
                return entry[1].type
            return TensorType(leaf.dtype, tuple(leaf.shape))
        if isinstance(leaf, SymScalar) or _number(leaf):
            return _KIND_TYPE[_kind(leaf)]()
        raise self.error(f"a loop variable became {type(leaf).__name__}")

    def example_data(self, leaf):
        if isinstance(leaf, Tensor):
            return leaf._data
        return leaf.value if isinstance(leaf, SymScalar) else leaf

    def drop_block(self, node):
        block = node.blocks.pop()
        block.set_returns([])
        for n in reversed(list(block.nodes)):
            for out in n.outputs:
                out.uses.clear()  # only later nodes of this (discarded) block use them
            n.erase()

    def trip_count(self, rng):
        start, stop, step = rng.start, rng.stop, rng.step
        if isinstance(step, SymScalar):
            raise self.error("range() with a step known only at run time", "use a step known at compile time")
        if step == 0:
            raise self.error("range() step must not be zero")
        if step > 0:
            span = stop if isinstance(start, int) and start == 0 else self.binop("sub", stop, start)
            return span if step == 1 else self.binop("floordiv", self.binop("add", span, step - 1), step)
        span = self.binop("sub", start, stop)
        return self.binop("floordiv", self.binop("add", span, -step - 1), -step)

    # ---- expressions --------------------------------------------------------------------

