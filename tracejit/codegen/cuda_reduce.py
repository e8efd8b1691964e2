"""CUDA C row kernels: fusion groups holding reductions over trailing axes, one row per thread group.

A group qualifies when the CPU backend's grouping rules hold (see `llvm_cpu`: every reduction over
the same axes, results that drop dims only leave the group, outputs shaped like the iteration space
or like a reduced result) and the reduced axes are the last ones of the iteration space (size-1 axes
ignored): a trailing `tj::sum`, `tj::mean`, `tj::amax`, `tj::amin`, `tj::var`, `tj::std`, `tj::all`,
`tj::any` (keepdim or not), and the row-wise `tj::softmax` / `tj::log_softmax`. Layer norm is a
composite (two means, rsqrt, scale and shift): its group is one row kernel too. Reductions over
leading axes (column sums) are refused; they would read memory uncoalesced.

A row is one kept position: `rows` of them, `row_len` reduced elements each. A group of `G` threads
owns a row (`G` = `row_len` rounded up to a power of two up to 32, so a warp or part of one for
short rows; the whole block of up to 1024 threads for long ones). For each reduction, in block
order, the group loops over the row with stride `G`, recomputing the elementwise prologue that
feeds it from the inputs (no intermediate buffers), and combines its partial results with
`__shfl_xor_sync` butterflies, then across warps through shared memory; every thread ends with the
same value, so later passes and the epilogue read it from a register. A last loop computes and
stores the outputs shaped like the row (softmax and the epilogue after it fuse into that store);
reduced outputs are stored once per row.

Numerics: float16 and float32 accumulate in float32, float64 in float64 (not the CPU's float64
partial sums: equal within rounding); integer sums wrap as numpy's do. amax/amin propagate nan,
as numpy's max does, and order -0.0 below +0.0. mean is the sum divided by `row_len` (0/0 is nan);
var/std take two passes (mean, then squared deviations) divided by max(0, row_len - correction).
softmax takes the max, then the sum of exp(x - max), then writes exp(x - max) / sum (log_softmax:
x - max - log(sum)); float16 computes in float32 and rounds once.

Kernel ABI (as `cuda_c`'s, with `n` = `rows`)::

    extern "C" __global__ void __launch_bounds__(threads) kernel(out_0, ..., in_0, ..., long long n)

- `out_j`: C-contiguous: shaped like the iteration space (row r's elements at [r * row_len,
  (r + 1) * row_len)) or like a reduced result (row r's value at [r]).
- `in_i`: tensor params at any baked-in strides, scalar params by value, as for elementwise kernels.
- Launch: block = (`threads`, 1, 1) exactly (the row split and the shared memory assume it);
  `rows_per_block` rows are worked on per block and step; any grid works (a block loops over rows
  `blockIdx.x * rows_per_block + k * gridDim.x * rows_per_block`), `grid` covers every row once. No
  dynamic shared memory.

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(6, 100)):\\n  %1 : Float(6) = prim::FusionGroup(%x)\\n"
    ...           "    block0(%a : Float(6, 100)):\\n      %b : Float(6) = tj::sum[dim=(1,), keepdim=False](%a)\\n"
    ...           "      -> (%b)\\n  return (%1)\\n")
    >>> k = emit_rows(g.body.nodes[0])
    >>> k.launch, k.rows, k.row_len, k.threads, k.rows_per_block, k.grid, k.numel
    ('rows', 6, 100, 128, 4, 2, 6)
"""

from __future__ import annotations

from collections import ChainMap

import numpy as np

from tracejit import dtypes as D
from tracejit.codegen import cuda_c as C
from tracejit.codegen import cuda_expr as E
from tracejit.codegen.cuda_expr import CValue
from tracejit.codegen.lowering import REDUCE_ATTRS, coalesce
from tracejit.codegen.lowering import Refuse as _Refuse
from tracejit.ir.types import TensorType
from tracejit.ops.rules import broadcast_shapes

# Shared by every row kernel of a translation unit (guarded, as cuda_c.PRELUDE).
REDUCE_PRELUDE = r"""#ifndef TRACEJIT_REDUCE_PRELUDE
#define TRACEJIT_REDUCE_PRELUDE
// max/min folds: nan propagates, -0.0 < +0.0; commutative, so every lane of a butterfly agrees
template <typename T> __device__ __forceinline__ T tj_fold_max(T a, T b) {
  return (a != a) ? a : (b != b) ? b : (a > b || (a == b && !signbit(a))) ? a : b;
}
template <typename T> __device__ __forceinline__ T tj_fold_min(T a, T b) {
  return (a != a) ? a : (b != b) ? b : (a < b || (a == b && signbit(a))) ? a : b;
}
// Combine the values of the G threads that own a row; all of them get the result. G <= 32: a
// butterfly within aligned lanes of a warp. G > 32 (the whole block, WARPS warps): a butterfly per
// warp, then every thread folds the warps' partials from shared memory in the same order.
template <int G, int WARPS, typename T, typename F>
__device__ __forceinline__ T tj_row_reduce(T v, F f, unsigned long long* smem) {
#pragma unroll
  for (int o = (G < 32 ? G : 32) / 2; o > 0; o >>= 1) v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (WARPS > 1) {
    T* partial = reinterpret_cast<T*>(smem);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    v = partial[0];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) v = f(v, partial[w]);
    __syncthreads();  // the partials are read before the next reduction writes them
  }
  return v;
}
#endif
"""

MAX_THREADS = 1024
SMALL_ROW_BLOCK = 128  # block size when a warp (or less) owns a row


class _Fold:
    """One pass: acc = step(acc, x) from `init` in C type `ctype` (x: the input as `dtype_in`), partial
    results merged by the C lambda `combine`; `finish(acc)` gives the reduced value (a CValue)."""

    def __init__(self, acc_dtype, init, step, combine, dtype_in, finish=None):
        self.acc_dtype, self.ctype = acc_dtype, E._HELD[acc_dtype]
        self.init, self.step, self.combine, self.dtype_in = init, step, combine, dtype_in
        self.finish = finish or (lambda acc: CValue(acc, acc_dtype))


def _lambda(ctype, expr):
    return f"[](const {ctype} a, const {ctype} b) {{ return {expr}; }}"


def _acc_dtype(compute):
    """Accumulators: float32 for float16/32, float64, and integers of at least 32 bits (a shuffle's width)."""
    if compute.is_floating_point:
        return D.float64 if compute is D.float64 else D.float32
    return D.int64 if compute is D.int64 else D.int32


def _sum_fold(compute, count):
    if compute is D.bool_:
        raise _Refuse("a sum computing in bool")
    acc = _acc_dtype(compute)
    ct = E._HELD[acc]
    if acc.is_floating_point:
        def add(a, b):
            return f"({a} + {b})"
    else:  # wrapping, as numpy's integer sums
        def add(a, b):
            return E._wrapping(CValue(a, acc), "+", b)
    return _Fold(acc, E._const(0, acc), lambda a, x: add(a, E._convert(x, acc)), _lambda(ct, add("a", "b")), compute)


def _mean_fold(compute, count):
    f = _sum_fold(compute, count)
    f.finish = lambda acc: CValue(f"({acc} / {E._float_lit(float(count), f.acc_dtype)})", f.acc_dtype)
    return f


def _extremum_fold(largest):
    def fold(compute, count):
        if count == 0:
            raise _Refuse("amax/amin/softmax over an empty dim (the registry raises)")
        if compute is D.bool_:
            return _bool_fold(not largest)(compute, count)
        acc = _acc_dtype(compute)
        ct = E._HELD[acc]
        if acc.is_floating_point:
            fn = f"tj_fold_{'max' if largest else 'min'}<{ct}>"
            init = E._float_lit(float("-inf") if largest else float("inf"), acc)

            def step(a, b):
                return f"{fn}({a}, {b})"
        else:
            bits = 64 if compute is D.int64 else E._BITS[compute]
            init = E._int_lit(-(1 << (bits - 1)) if largest else (1 << (bits - 1)) - 1, acc)

            def step(a, b):
                return f"({a} {'>' if largest else '<'} {b} ? {a} : {b})"
        return _Fold(acc, init, lambda a, x: step(a, E._convert(x, acc)), _lambda(ct, step("a", "b")), compute)

    return fold


def _bool_fold(is_all):
    """all / any (and amin / amax of bools), accumulated in an int (shuffles move 32 bits at least)."""

    def fold(compute, count):
        op = "&" if is_all else "|"
        return _Fold(D.int32, "1" if is_all else "0", lambda a, x: f"({a} {op} (int){x})",
                     _lambda("int", f"a {op} b"), D.bool_, lambda acc: CValue(f"({acc} != 0)", D.bool_))

    return fold


FOLDS = {"tj::sum": _sum_fold, "tj::mean": _mean_fold, "tj::amax": _extremum_fold(True),
         "tj::amin": _extremum_fold(False), "tj::all": _bool_fold(True), "tj::any": _bool_fold(False)}


def _one_pass(name):
    def reduce(em, n, x, compute, count):
        f = FOLDS[name](compute, count)
        return f.finish(em.fold(x, f))

    return reduce


def _moments(em, x, compute, count, correction):
    """var by two passes (mean, then squared deviations), divided by max(0, N - correction)."""
    acc = _acc_dtype(compute)
    ct = E._HELD[acc]
    total = em.fold(x, _sum_fold(compute, count))
    mean = em.code.let(ct, f"({total} / {E._float_lit(float(max(count, 1)), acc)})")

    def square(a, v):
        d = f"({E._convert(v, acc)} - {mean})"
        return f"({a} + {d} * {d})"

    ss = em.fold(x, _Fold(acc, E._const(0, acc), square, _lambda(ct, "a + b"), compute))
    return CValue(f"({ss} / {E._float_lit(float(max(0, count - correction)), acc)})", acc)


def _var(em, n, x, compute, count):
    return _moments(em, x, compute, count, n.attrs.get("correction", 1))


def _std(em, n, x, compute, count):
    v = _moments(em, x, compute, count, n.attrs.get("correction", 1))
    return CValue(f"{E._f(v, 'sqrt')}({v})", v.dtype)


def _softmax(log):
    """Max pass, sum-of-exp pass, then a function giving each output element from its input element."""

    def reduce(em, n, x, compute, count):
        work = D.float32 if compute is D.float16 else compute
        ct = E._HELD[work]
        m = em.code.let(ct, em.fold(x, _extremum_fold(True)(work, count)))

        def exp_of(v):
            return E.CUDA_EXPR["tj::exp"](CValue(f"({E._convert(v, work)} - {m})", work))

        s = em.code.let(ct, em.fold(x, _Fold(work, E._const(0, work), lambda a, v: f"({a} + {exp_of(v)})",
                                             _lambda(ct, "a + b"), work)))
        if log:
            s = em.code.let(ct, E.CUDA_EXPR["tj::log"](CValue(s, work)))

        def element(xe):
            v = E._convert(xe, work)
            r = f"({v} - {m} - {s})" if log else f"({exp_of(v)} / {s})"
            return CValue(em.code.let(ct, r), work)

        return element

    return reduce


# IR name -> (lowering, attributes it understands). A lowering returns the reduced value (a CValue
# valid for the row) or, for softmax-like ops, a function giving each output element.
_LOWERINGS = {
    "tj::sum": _one_pass("tj::sum"), "tj::mean": _one_pass("tj::mean"), "tj::amax": _one_pass("tj::amax"),
    "tj::amin": _one_pass("tj::amin"), "tj::var": _var, "tj::std": _std, "tj::all": _one_pass("tj::all"),
    "tj::any": _one_pass("tj::any"), "tj::softmax": _softmax(False), "tj::log_softmax": _softmax(True),
}
REDUCE = {op: (_LOWERINGS[op], attrs) for op, attrs in REDUCE_ATTRS.items()}
_ELEMENTWISE_RESULT = {"tj::softmax", "tj::log_softmax"}  # outputs shaped like the input


# ---- rows ------------------------------------------------------------------------------------


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _reduced_dims(n, rank):
    if n.op in _ELEMENTWISE_RESULT:
        d = n.attrs.get("dim", -1)
        return (d % rank,) if rank else ()
    dim = n.attrs.get("dim")
    return tuple(range(rank)) if dim is None else tuple(d % rank for d in dim) if rank else ()


class _Rows:
    """The group's iteration space split into rows: kept axes (outer) and reduced axes (trailing), each
    operand's element strides per axis, which outputs are stored per row and which per element."""

    def __init__(self, node, in_strides):
        block = node.blocks[0]
        self.reductions = [n for n in block.nodes if n.op in REDUCE]
        dropped, shapes = set(), []
        for p in block.params:
            if isinstance(p.type, TensorType):
                shapes.append(C.shape_of(p.type))
        for n in block.nodes:
            if n.blocks or len(n.outputs) != 1:
                raise _Refuse(f"{n.op} has blocks or {len(n.outputs)} outputs")
            if n.op == "prim::Constant":
                continue
            if n.op not in E.CUDA_EXPR and n.op not in REDUCE:
                raise _Refuse(f"no CUDA expression for {n.op}")
            s = C.shape_of(n.outputs[0].type)
            if n in self.reductions and len(s) < len(C.shape_of(n.inputs[0].type)):
                if any(u is not block for u, _ in n.outputs[0].uses):
                    raise _Refuse(f"the result of {n.op} is used inside the group")
                dropped.add(n.outputs[0])
                continue
            shapes.append(s)
        self.dropped = dropped
        try:
            self.shape = shape = tuple(broadcast_shapes(*shapes))
        except ValueError as e:
            raise _Refuse(str(e)) from None
        nd = len(shape)
        reduced = None
        for n in self.reductions:
            xs = C.shape_of(n.inputs[0].type)
            axes = {d + nd - len(xs) for d in _reduced_dims(n, len(xs))}
            if any(xs[d - nd + len(xs)] != shape[d] for d in axes):
                raise _Refuse(f"{n.op} reduces a broadcast dim")
            if n.outputs[0] in dropped and len(xs) != nd:
                raise _Refuse(f"{n.op} drops dims of a smaller-rank input")
            if reduced is not None and axes != reduced:
                raise _Refuse("reductions over different axes in one group")
            reduced = axes
        self.reduced = reduced = reduced or set()
        live = [d for d in range(nd) if shape[d] != 1]
        kept_live = [d for d in live if d not in reduced]
        if kept_live and any(d < kept_live[-1] for d in live if d in reduced):
            raise _Refuse(f"a reduction over dims {sorted(reduced)} of {shape}: not trailing (column reductions "
                          "are not lowered on CUDA)")
        self.row_len = _numel([shape[d] for d in reduced])
        kept_shape = tuple(shape[d] for d in range(nd) if d not in reduced)
        self.rows = _numel(kept_shape)
        self.strides, self.in_fields = C.param_strides(block, in_strides, nd)
        self.outer_outputs = []
        for j, v in enumerate(block.returns):
            if not isinstance(v.type, TensorType):
                raise _Refuse(f"output of type {v.type}")
            s = C.shape_of(v.type)
            if v in dropped:
                ok, inner = s == kept_shape, False
            else:
                aligned = (1,) * (nd - len(s)) + s
                inner = not reduced or any(aligned[d] != 1 for d in reduced)
                want = shape if inner else tuple(1 if d in reduced else e for d, e in enumerate(shape))
                ok = len(s) <= nd and aligned == want
            if not ok:
                raise _Refuse(f"output of shape {s} in an iteration space of shape {shape}")
            if not inner:
                self.outer_outputs.append(j)
        self.kept = coalesce([(shape[d], {k: s[d] for k, s in self.strides.items()}) for d in kept_live])
        self.inner = coalesce([(shape[d], {k: s[d] for k, s in self.strides.items()}) for d in live if d in reduced])


def _split(row_len):
    """(threads per row, threads per block): a power of two up to a warp for short rows, else a block."""
    if row_len <= 32:
        return 1 << max(0, row_len - 1).bit_length(), SMALL_ROW_BLOCK
    if row_len <= 1024:
        return 32, SMALL_ROW_BLOCK
    g = 256 if row_len <= 4096 else 512 if row_len <= 16384 else MAX_THREADS
    return g, g


class _RowEmitter:
    """Emits the body of the row loop: each reduction's passes in block order, then the outputs."""

    def __init__(self, block, lay, group, code):
        self.block, self.lay, self.group, self.code = block, lay, group, code
        self.warps = group // 32 if group > 32 else 1
        self.outer = C.scalar_env(block)  # IR value -> value valid for the whole row
        self.inner = None  # IR value -> value inside the current loop over the row
        self.elements = {}  # softmax-like outputs: IR value -> fn(input element) -> output element
        self.base = {}  # operand -> offset of the row's first element (C expression)
        self.inner_offsets = None  # operand -> offset inside the current loop (made on first use)

    def varies(self, v):
        """Whether `v` changes along the row (tensors spanning a reduced axis)."""
        t = v.type
        if not isinstance(t, TensorType) or v in self.lay.dropped:
            return False
        nd = len(self.lay.shape)
        aligned = (1,) * (nd - len(t.shape)) + tuple(t.shape)
        return any(aligned[d] != 1 for d in self.lay.reduced)

    def get(self, v):
        if self.inner is not None and v in self.inner:
            return self.inner[v]
        return self.outer[v]

    def _known(self, v):
        return v in self.outer or (self.inner is not None and v in self.inner)

    def _cone(self, roots):
        """Values `roots` need that are not computed yet (explicit stack)."""
        need, stack = set(), list(roots)
        while stack:
            v = stack.pop()
            if v in need or self._known(v):
                continue
            need.add(v)
            if v.node is not None:
                if v.node in self.lay.reductions and v not in self.elements:
                    raise _Refuse(f"{v.node.op} used before it is reduced")
                stack.extend(v.node.inputs[:1] if v in self.elements else v.node.inputs)
        return need

    def eval(self, roots):
        """Emit everything `roots` need, in block order, into the current scope."""
        need = self._cone(roots)
        for i, p in enumerate(self.block.params):
            if p in need:
                self._scope(p)[p] = self._load(i, p)
        env = ChainMap(self.inner if self.inner is not None else {}, self.outer)
        for n in self.block.nodes:
            out = n.outputs[0]
            if out in need:
                if out in self.elements:
                    r = self.elements[out](self.get(n.inputs[0]))
                else:
                    r = C.node_value(n, env, self.code)
                self._scope(out)[out] = r

    def _scope(self, v):
        if self.varies(v):
            if self.inner is None:
                raise _Refuse(f"%{v.name} varies along the row but is needed outside the loops")
            return self.inner
        return self.outer

    def _load(self, i, p):
        off = self.base.get(("in", i), "0")
        if self.varies(p):
            if self.inner_offsets is None:
                self.inner_offsets = {k: " + ".join(t) for k, t in
                                      C.coordinates(self.code, "r", self.lay.inner, "r_c").items()}
            inner = self.inner_offsets.get(("in", i))
            off = inner if off == "0" else f"{off} + {inner}" if inner else off
        dtype = p.type.dtype
        return CValue(self.code.let(E._HELD[dtype], C.loaded(f"in_{i}[{off}]", dtype), "x"), dtype)

    def loop(self, roots, body):
        """A loop over this thread's elements of the row computing `roots` per element, then `body()`."""
        self.eval([v for v in self._cone(roots) if not self.varies(v)])
        self.code.open(f"for (long long r = lane; r < {self.lay.row_len}LL; r += {self.group})")
        self.inner, self.inner_offsets = {}, None
        self.eval(roots)
        body()
        self.inner = self.inner_offsets = None
        self.code.close()

    def fold(self, x, f):
        """One pass of `f` over the row, combined across the row's threads; returns the accumulator."""
        code = self.code
        acc = f"acc{code.count}"
        code.count += 1
        code.line(f"{f.ctype} {acc} = {f.init};")
        if self.lay.row_len:
            self.loop([x], lambda: code.line(f"{acc} = {f.step(acc, self._as(x, f.dtype_in))};"))
            code.line(f"{acc} = tj_row_reduce<{self.group}, {self.warps}>({acc}, {f.combine}, "
                      f"{'tj_smem' if self.warps > 1 else 'nullptr'});")
        return acc

    def _as(self, v, dtype):
        return C.as_dtype(self.get(v), dtype)

    def reduce(self, n):
        extra = set(n.attrs) - REDUCE[n.op][1]
        if extra:
            raise _Refuse(f"{n.op} with attributes {sorted(extra)}")
        x = n.inputs[0]
        if len(n.inputs) != 1 or not isinstance(x.type, TensorType):
            raise _Refuse(f"{n.op} of {x.type}")
        compute, out_dtype = C.dtype_rule(n, x.type.dtype)
        compute = compute or x.type.dtype
        if compute not in E._HELD or out_dtype not in E._HELD:
            raise _Refuse(f"{n.op} computing in {compute}")
        r = REDUCE[n.op][0](self, n, x, compute, self.lay.row_len)
        out = n.outputs[0]
        if callable(r):
            self.elements[out] = lambda xe: CValue(self.code.let(E._HELD[out_dtype], E._convert(r(xe), out_dtype)),
                                                   out_dtype)
        else:
            self.outer[out] = CValue(self.code.let(E._HELD[out_dtype], E._convert(r, out_dtype)), out_dtype)

    def row(self, live):
        """The whole row: reductions, then the outputs stored per element and per row."""
        lay, code, returns = self.lay, self.code, self.block.returns
        self.base = {k: " + ".join(t) for k, t in C.coordinates(code, "row", lay.kept, "k").items()}
        for n in lay.reductions:
            self.reduce(n)
        per_element = [j for j in range(len(returns)) if j not in lay.outer_outputs]
        guard = "if (live) " if live else ""

        def store():
            for j in per_element:
                code.line(f"{guard}out_{j}[row * {lay.row_len}LL + r] = "
                          f"{C.stored(self.get(returns[j]), returns[j].type.dtype)};")

        if per_element and lay.row_len:
            self.loop([returns[j] for j in per_element], store)
        if lay.outer_outputs:
            self.eval([returns[j] for j in lay.outer_outputs])
            code.open(f"if ({'live && ' if live else ''}lane == 0)")
            for j in lay.outer_outputs:
                code.line(f"out_{j}[row] = {C.stored(self.get(returns[j]), returns[j].type.dtype)};")
            code.close()


def emit_rows(node, in_strides=None, name=E.KERNEL_NAME):
    """The `KernelSource` (launch "rows") of a group holding reductions over trailing axes; raises
    `lowering.Refuse` for anything else (`cuda_c.emit_group` turns that into None)."""
    block = node.blocks[0]
    lay = _Rows(node, in_strides)
    group, threads = _split(lay.row_len)
    per_block = threads // group
    code = C.Code()
    em = _RowEmitter(block, lay, group, code)
    if em.warps > 1:
        code.line(f"__shared__ unsigned long long tj_smem[{em.warps}];")
    code.line(f"const int lane = threadIdx.x{f' % {group}' if per_block > 1 else ''};")
    if per_block > 1:
        code.line(f"const int slot = threadIdx.x / {group};")
    code.open(f"for (long long row0 = (long long)blockIdx.x * {per_block}; row0 < n; "
              f"row0 += (long long)gridDim.x * {per_block})")
    if per_block > 1:  # every thread of a warp stays in step for its shuffles: spare rows redo the last one
        code.line("const bool live = row0 + slot < n;")
        code.line("const long long row = live ? row0 + slot : n - 1;")
    else:
        code.line("const long long row = row0;")
    em.row(per_block > 1)
    code.close()
    src = [E.PRELUDE, REDUCE_PRELUDE, C.signature(block, name, f"__launch_bounds__({threads}) "), *code.lines, "}", ""]
    grid = max(1, min(-(-lay.rows // per_block), C.MAX_GRID))
    return C.KernelSource("\n".join(src), name, *lay.in_fields, tuple(tuple(v.type.shape) for v in block.returns),
                          tuple(np.dtype(v.type.dtype.np) for v in block.returns), lay.rows, "rows", threads, grid,
                          1, lay.rows, lay.row_len, per_block)

