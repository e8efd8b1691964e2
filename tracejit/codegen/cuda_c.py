"""CUDA C code generation: each `prim::FusionGroup` becomes one CUDA C kernel source.

`CUDA_EXPR` (`cuda_expr`) maps registry op names (the keys of `llvm_cpu.LOWER`) to one C expression
per op, and the semantics are the CPU backend's: no fast math (nan, inf and -0.0 as numpy has them; maximum,
minimum and relu propagate nan), integer arithmetic wraps, float16 is stored as IEEE half and
computed in float, each op's result rounded to half. Elementwise groups become elementwise kernels
(here); groups holding reductions over trailing axes, softmax and log_softmax become row kernels
(`cuda_reduce`, same ABI, another launch). Ops the table lacks, symbolic shapes, unsupported dtypes
and reductions over leading axes are refused: `emit_group` returns None (`refusal` says why).

Kernel ABI (one source; `nvrtc.compile_ptx` or `nvrtc.compile_ptx_cached` turns it into PTX)::

    extern "C" __global__ void kernel(T0* __restrict__ out_0, ..., const U0* __restrict__ in_0, ...,
                                      long long n)

- `out_j`: a C-contiguous buffer of `out_shapes[j]` / `out_dtypes[j]`, only written; it must not
  overlap an input or another output.
- `in_i`, tensor param: the address of element [0, ..., 0] of an array of `in_shapes[i]` /
  `in_dtypes[i]` whose element strides are `in_strides[i]` (baked into the code as constants;
  zero and negative strides are fine). Scalar param: passed by value as `double`, `long long` or
  `bool` (IR `float`, `int`, `bool`); `KernelSource.arguments(outs, ins)` converts them.
- `n`: `KernelSource.numel`: the number of output elements (launch "elementwise") or of rows
  (launch "rows").
- Alignment: every buffer starts on a 16-byte boundary (cupy allocations are 256-byte aligned).
  Where `vector_width` > 1, the kernel reads and writes whole packs of `vector_width` elements
  (16 bytes for the widest dtype, one `ld.global.v4`/`st.global.v4` per float32 operand), then the
  last `n % vector_width` elements one by one. A view starting inside an allocation must be copied
  first, or the group emitted for its strides (strided groups stay scalar). This path is taken
  only when every tensor operand is contiguous and shaped like the output (no broadcasting).
- Element storage: bool is one byte (`unsigned char`, 0 or 1); float16 is IEEE half held in an
  `unsigned short` and converted with PTX `cvt` (no CUDA headers are needed, so the NVRTC wheel
  alone compiles every kernel).

Launch: `kernel<<<grid, threads>>>(*k.arguments(outs, ins))`. Elementwise kernels loop over the
grid (`[0, n)` in packs, then the tail), so any grid and block shape is correct; `grid` blocks of
`threads` cover the work once. Row kernels need a block of exactly `threads` threads (see
`cuda_reduce`); any grid is correct there too.

    >>> from tracejit.ir import parse
    >>> g = parse("graph(%x : Float(4)):\\n  %1 : Float(4) = prim::FusionGroup(%x)\\n"
    ...           "    block0(%a : Float(4)):\\n      %b : Float(4) = tj::neg(%a)\\n"
    ...           "      %c : Float(4) = tj::relu(%b)\\n      -> (%c)\\n  return (%1)\\n")
    >>> k = emit_group(g.body.nodes[0])
    >>> k.name, k.out_shapes, k.out_dtypes, "__global__" in k.source
    ('kernel', ((4,),), (dtype('float32'),), True)
    >>> k.launch, k.grid, k.threads, k.vector_width, k.numel
    ('elementwise', 1, 256, 4, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracejit import dtypes as D
from tracejit import ops
from tracejit.codegen.cuda_expr import (
    _HALF_OPMATH,
    _HELD,
    _SCALARS,
    _STORED,
    _TAKES_COMPUTE,
    CUDA_EXPR,
    KERNEL_NAME,
    PRELUDE,
    CValue,
    _const,
    _convert,
)
from tracejit.codegen.lowering import Meta as _Meta
from tracejit.codegen.lowering import Refuse as _Refuse
from tracejit.codegen.lowering import checked_dtype_rule, coalesce, static_shape
from tracejit.ir.types import BoolType, FloatType, IntType, TensorType
from tracejit.ops.rules import broadcast_shapes, contiguous_strides

# ---- kernel source ---------------------------------------------------------------------------

THREADS = 256  # block size of elementwise kernels (any works: they loop over the grid)
MAX_GRID = 65535  # blocks suggested at most: the kernels' grid-stride loops cover the rest
VECTOR_BYTES = 16  # one 128-bit load or store per operand and pack


@dataclass(frozen=True)
class KernelSource:
    """The CUDA C of one group (`PRELUDE` included) and what a caller needs to launch `name`:
    `name<<<grid, threads>>>(*arguments(outs, ins))` (the module docstring gives the ABI)."""

    source: str
    name: str
    in_shapes: tuple  # per input: its shape, or None for a scalar param
    in_dtypes: tuple  # numpy dtypes (scalars: float64, int64 or bool)
    in_strides: tuple  # per input: element strides baked into the code, or None for a scalar
    out_shapes: tuple
    out_dtypes: tuple
    numel: int  # the `n` to pass: output elements ("elementwise") or rows ("rows")
    launch: str = "elementwise"  # "elementwise" (any grid and block) or "rows" (block of exactly `threads`)
    threads: int = THREADS  # threads per block
    grid: int = 1  # blocks that cover the work once (more or fewer are correct too)
    vector_width: int = 1  # elements per 16-byte pack (> 1: every buffer must be 16-byte aligned)
    rows: int = 0  # "rows": kept (not reduced) positions, one output element of a reduction each
    row_len: int = 0  # "rows": reduced elements per row
    rows_per_block: int = 1  # "rows": rows a block works on at once, threads // rows_per_block threads each

    def arguments(self, outs, ins):
        """The kernel's arguments: output and input arrays (device arrays for a launch), scalar params
        converted to the C type the kernel takes, then `n`."""
        args = list(outs)
        for a, shape, dt in zip(ins, self.in_shapes, self.in_dtypes):
            args.append(a if shape is not None else np.dtype(dt).type(a))
        return (*args, np.int64(self.numel))


class _Number:
    """A constant (`value`) or a scalar param (`name`, its C variable) converted per use."""

    def __init__(self, value, name=None):
        self.value, self.name = value, name


class Code:
    """Lines of C in nested scopes; `let` names each value once (fresh names are never shadowed)."""

    def __init__(self, depth=1):
        self.lines, self.depth, self.count = [], depth, 0

    def line(self, text):
        self.lines.append("  " * self.depth + text)

    def let(self, ctype, expr, prefix="v"):
        name = f"{prefix}{self.count}"
        self.count += 1
        self.line(f"const {ctype} {name} = {expr};")
        return name

    def open(self, head):
        self.line(head + " {")
        self.depth += 1

    def close(self):
        self.depth -= 1
        self.line("}")


def _number(num, dst, float32_scalar=False):
    if num.name is None:
        return _const(num.value, dst, float32_scalar)
    kind = _SCALARS[FloatType if isinstance(num.value, float) else BoolType if isinstance(num.value, bool)
                    else IntType][1]
    raw = CValue(num.name, kind)
    return _convert(raw, D.float32 if dst is D.float16 and float32_scalar else dst)


def as_dtype(e, dtype):
    """A computed value (CValue) or number (_Number) as a C expression of `dtype`."""
    return _convert(e, dtype) if isinstance(e, CValue) else _number(e, dtype)


def loaded(raw, dtype):
    """The held value of a stored element `raw` (a C lvalue) of `dtype`."""
    return f"({raw} != 0)" if dtype is D.bool_ else f"tj_h2f({raw})" if dtype is D.float16 else raw


def stored(e, dtype):
    """The C expression storing value `e` (None refuses) as an element of `dtype`."""
    if e is None:
        raise _Refuse("a None output")
    val = as_dtype(e, dtype)
    return f"(unsigned char)({val})" if dtype is D.bool_ else f"tj_f2h({val})" if dtype is D.float16 else val


def shape_of(t):
    return static_shape(t, _HELD)


def _dtype_rule(op, n, args):
    metas = []
    for v, a in zip(n.inputs, args):
        metas.append(_Meta(a.dtype, len(v.type.shape)) if isinstance(a, CValue) else
                     a.value if isinstance(a, _Number) else None)
    return checked_dtype_rule(op, n, metas, _HELD)


def dtype_rule(n, dtype):
    """(compute, output) dtypes of a one-tensor-input node `n` whose input has `dtype`."""
    return _dtype_rule(ops.get(n.op), n, [CValue("", dtype)])


def node_value(n, env, code):
    """Emit the C statements computing node `n` into `code`; returns its value (CValue, _Number or None).
    `env` maps the IR values `n` reads to theirs."""
    if n.op == "prim::Constant":
        value = n.attrs.get("value")
        if value is not None and not isinstance(value, (bool, int, float)):
            raise _Refuse(f"constant {value!r}")
        return None if value is None else _Number(value)
    rule = CUDA_EXPR.get(n.op)
    if rule is None:
        raise _Refuse(f"no CUDA expression for {n.op}")
    op = ops.get(n.op)
    args = [env.get(v) for v in n.inputs]
    compute, out_dtype = _dtype_rule(op, n, args)
    values = []
    for i, a in enumerate(args):
        cast = compute if compute is not None and i in op.cast else None
        if isinstance(a, CValue):
            values.append(_convert(a, cast))
        elif isinstance(a, _Number):
            opmath = compute is D.float16 and isinstance(a.value, float) and i in _HALF_OPMATH.get(n.op, ())
            values.append(_number(a, cast or out_dtype, opmath))
        else:
            values.append(None)
    extra = {"compute": compute} if n.op in _TAKES_COMPUTE else {}
    try:
        r = rule(*values, **n.attrs, **extra)
    except (TypeError, AttributeError) as e:
        raise _Refuse(f"{n.op}: {e}") from None
    if r is None:
        raise _Refuse(f"{n.op} has no CUDA expression for {[getattr(v, 'dtype', v) for v in values]} {n.attrs}")
    first = next((v for v in values if isinstance(v, CValue)), None)
    dtype = r.dtype if isinstance(r, CValue) else first.dtype if first is not None else None
    if dtype is None:
        raise _Refuse(f"{n.op}: no dtype for its result")
    var = code.let(_HELD[dtype], r)
    r = _convert(CValue(var, dtype), out_dtype)
    if r != var:
        var = code.let(_HELD[out_dtype], r)
    return CValue(var, out_dtype)


def emit_group(node, in_strides=None, name=KERNEL_NAME):
    """The `KernelSource` of a `prim::FusionGroup` node, or None when the group holds an op, dtype or
    shape this backend lacks. Elementwise groups become elementwise kernels; groups holding reductions
    over trailing axes (and softmax-like row-wise ops) become row kernels (`cuda_reduce`). `in_strides`:
    per block param, element strides to specialize for (None, or a None entry: C-contiguous). `name`:
    the kernel's symbol (distinct names let several kernels share one translation unit)."""
    try:
        return _emit(node, in_strides, name)
    except _Refuse:
        return None


def refusal(node, in_strides=None):
    """Why `emit_group` refuses `node` (a message), or None when it is accepted."""
    try:
        _emit(node, in_strides, KERNEL_NAME)
    except _Refuse as e:
        return str(e)
    return None


def _emit(node, in_strides, name):
    from tracejit.codegen import cuda_reduce

    block = node.blocks[0]
    if in_strides is not None and len(in_strides) != len(block.params):
        raise _Refuse(f"{len(in_strides)} stride tuples for {len(block.params)} params")
    if any(n.op in cuda_reduce.REDUCE for n in block.nodes):
        return cuda_reduce.emit_rows(node, in_strides, name)
    return _emit_elementwise(node, in_strides, name)


def param_strides(block, in_strides, nd):
    """Per tensor param ("in", i): element strides aligned to `nd` dims (broadcast dims 0); and the
    KernelSource fields in_shapes, in_dtypes, in_strides."""
    strides, in_shapes, in_dtypes, in_st = {}, [], [], []
    for i, p in enumerate(block.params):
        if not isinstance(p.type, TensorType):
            if type(p.type) not in _SCALARS:
                raise _Refuse(f"param of type {p.type}")
            in_shapes.append(None)
            in_dtypes.append(np.dtype(_SCALARS[type(p.type)][1].np))
            in_st.append(None)
            continue
        s = shape_of(p.type)
        given = in_strides[i] if in_strides is not None and in_strides[i] is not None else None
        st = tuple(int(v) for v in given) if given is not None else tuple(contiguous_strides(s))
        if len(st) != len(s):
            raise _Refuse(f"strides {st} for a param of shape {s}")
        strides["in", i] = (0,) * (nd - len(s)) + tuple(0 if e == 1 else v for e, v in zip(s, st))
        in_shapes.append(s)
        in_dtypes.append(np.dtype(p.type.dtype.np))
        in_st.append(st)
    return strides, (tuple(in_shapes), tuple(in_dtypes), tuple(in_st))


def signature(block, name, extra=""):
    """The kernel's first line: outputs, inputs (tensors by pointer, scalar params by value), `long long n`."""
    args = [f"{_STORED[v.type.dtype]}* __restrict__ out_{j}" for j, v in enumerate(block.returns)]
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            args.append(f"const {_STORED[p.type.dtype]}* __restrict__ in_{i}")
        else:
            args.append(f"{_SCALARS[type(p.type)][0]} in_{i}")
    args.append("long long n")
    head = f'extern "C" __global__ void {extra}{name}('
    return head + (",\n" + " " * len(head)).join(args) + ") {"


def scalar_env(block):
    """The scalar params as numbers read from the kernel's by-value arguments."""
    return {p: _Number(_SCALARS[type(p.type)][2], f"in_{i}") for i, p in enumerate(block.params)
            if not isinstance(p.type, TensorType)}


def coordinates(code, index, axes, prefix):
    """Emit the coordinates of flat C-order `index` over `axes` ([(extent, {operand: stride})]) that some
    operand reads; returns {operand: [offset terms]}."""
    terms = {}
    for pos in range(len(axes) - 1, -1, -1):
        ext, st = axes[pos]
        if not any(st.values()):
            continue
        rest = f"{index} / {_div_of(axes, pos)}LL" if pos < len(axes) - 1 else index
        coord = f"{prefix}{pos}"
        code.line(f"const long long {coord} = {rest} % {ext}LL;" if pos else f"const long long {coord} = {rest};")
        for k, s in st.items():
            if s:
                terms.setdefault(k, []).append(coord if s == 1 else f"{coord} * {s}LL")
    return terms


def _emit_elementwise(node, in_strides, name):
    block = node.blocks[0]
    params = list(block.params)
    shapes = [shape_of(p.type) for p in params if isinstance(p.type, TensorType)]
    for n in block.nodes:
        if n.blocks or len(n.outputs) != 1:
            raise _Refuse(f"{n.op} has blocks or {len(n.outputs)} outputs")
        if n.op != "prim::Constant":
            if n.op not in CUDA_EXPR:
                raise _Refuse(f"no CUDA expression for {n.op}")
            shapes.append(shape_of(n.outputs[0].type))
    try:
        shape = tuple(broadcast_shapes(*shapes))
    except ValueError as e:
        raise _Refuse(str(e)) from None
    nd = len(shape)
    strides, in_fields = param_strides(block, in_strides, nd)
    for v in block.returns:
        if not isinstance(v.type, TensorType) or shape_of(v.type) != shape:
            raise _Refuse(f"output {v.type} in an iteration space of shape {shape}")
    axes = coalesce([(shape[d], {k: s[d] for k, s in strides.items()}) for d in range(nd) if shape[d] != 1])
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    width = _vector_width(block, strides, axes, numel)

    first = "(long long)blockIdx.x * blockDim.x + threadIdx.x"
    stride = "(long long)blockDim.x * gridDim.x"
    store = lambda j, val: f"out_{j}[i] = {val};"
    code = Code()
    if width > 1:
        code.line(f"const long long packs = n / {width}LL;")
        code.open(f"for (long long p = {first}; p < packs; p += {stride})")
        _vector_pack(block, code, width)
        code.close()
        if numel % width:  # the last n % width elements, one by one
            code.open(f"for (long long i = packs * {width}LL + {first}; i < n; i += {stride})")
            _elements(block, code, lambda i: f"in_{i}[i]", store)
            code.close()
    else:
        code.open(f"for (long long i = {first}; i < n; i += {stride})")
        offsets = {k: " + ".join(t) for k, t in coordinates(code, "i", axes, "c").items()}
        _elements(block, code, lambda i: f"in_{i}[{offsets.get(('in', i), '0')}]", store)
        code.close()
    src = [PRELUDE, signature(block, name), *code.lines, "}", ""]
    work = -(-numel // width)
    return KernelSource("\n".join(src), name, *in_fields, tuple(tuple(v.type.shape) for v in block.returns),
                        tuple(np.dtype(v.type.dtype.np) for v in block.returns), numel, "elementwise", THREADS,
                        max(1, min(-(-work // THREADS), MAX_GRID)), width)


def _vector_width(block, strides, axes, numel):
    """Elements per 16-byte pack of the widest operand when every tensor operand walks the output's
    elements in order (one axis, stride 1: no broadcasting) and there is at least one pack; else 1."""
    if len(axes) != 1 or any(s != 1 for s in axes[0][1].values()):
        return 1
    values = [p for p in block.params if isinstance(p.type, TensorType)] + list(block.returns)
    widest = max(np.dtype(v.type.dtype.np).itemsize for v in values)
    width = VECTOR_BYTES // widest
    return width if 1 < width <= numel else 1


def _vector_pack(block, code, width):
    """One pack: a 16-byte (or narrower, for narrower dtypes) load per input, the elements computed
    in an unrolled loop, a store per output."""
    packs = {}
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            t = packs[i] = f"tj_pack<{_STORED[p.type.dtype]}, {width}>"
            code.line(f"const {t} a{i} = reinterpret_cast<const {t}*>(in_{i})[p];")
    out_packs = [f"tj_pack<{_STORED[v.type.dtype]}, {width}>" for v in block.returns]
    for j, t in enumerate(out_packs):
        code.line(f"{t} b{j};")
    code.line("#pragma unroll")
    code.open(f"for (int l = 0; l < {width}; ++l)")
    _elements(block, code, lambda i: f"a{i}.v[l]", lambda j, val: f"b{j}.v[l] = {val};")
    code.close()
    for j, t in enumerate(out_packs):
        code.line(f"reinterpret_cast<{t}*>(out_{j})[p] = b{j};")


def _elements(block, code, element, store):
    """The statements of one output element: inputs read from `element(i)` (a C lvalue per tensor
    param i), the block's nodes, then `store(j, value)` per output."""
    env = scalar_env(block)
    for i, p in enumerate(block.params):
        if isinstance(p.type, TensorType):
            dtype = p.type.dtype
            env[p] = CValue(code.let(_HELD[dtype], loaded(element(i), dtype), "x"), dtype)
    for n in block.nodes:
        env[n.outputs[0]] = node_value(n, env, code)
    for j, v in enumerate(block.returns):
        code.line(store(j, stored(env[v], v.type.dtype)))


def _div_of(axes, pos):
    """The product of the extents of the axes after `pos` (the divisor giving coordinate `pos`)."""
    d = 1
    for ext, _ in axes[pos + 1:]:
        d *= ext
    return d


def translation_unit(kernels):
    """One source holding several kernels (their names must differ); the prelude appears once."""
    return PRELUDE + "".join(k.source.replace(PRELUDE, "", 1) for k in kernels)
