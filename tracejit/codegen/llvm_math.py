"""Transcendental functions as straight-line LLVM IR, for loops that LLVM can vectorize.

Each function takes an `llvmlite.ir.IRBuilder` and LLVM values (scalar `float` or `double`) and
returns the result, or None for any other type (the convention of `llvm_cpu.LOWER`). The code has
no branches, lanes choose between candidate results with `select`, and no libm calls: the only
calls are LLVM intrinsics that are single instructions on x86-64 (SSE4.1 and later) and AArch64
(fabs, copysign, rint, floor, sqrt). Inside a loop, LLVM's loop vectorizer turns them into
`<8 x float>` (or `<4 x double>`) code.

    >>> from llvmlite import ir
    >>> fn = ir.Function(ir.Module(), ir.FunctionType(ir.FloatType(), [ir.FloatType()]), name="f")
    >>> b = ir.IRBuilder(fn.append_basic_block())
    >>> _ = b.ret(MATH["tj::tanh"](b, fn.args[0]))
    >>> sorted(g.name for g in fn.module.functions if g.is_declaration)  # intrinsics only, no libm
    ['llvm.copysign.f32', 'llvm.fabs.f32', 'llvm.rint.f32']
    >>> print(MATH["tj::exp"](b, ir.Constant(ir.IntType(32), 1)))  # not a float type: not lowered
    None

How each function works (Cephes: S. L. Moshier's library; fdlibm: Sun's, as in musl and Go):

- exp: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, with ln2 in two parts so k ln2 is exact;
  Cephes' degree-7 polynomial (float32) or fdlibm's rational form (float64) for e**r; 2**k is
  applied as two exponent-field factors so a subnormal result is rounded once.
- log: x = 2**e (1 + g) from the exponent bits (subnormals scaled up first), 1 + g in
  [sqrt(1/2), sqrt(2)); Cephes' polynomial in g (float32) or fdlibm's in s = g/(2 + g) (float64).
  log2 and log10 reuse the pieces, so log2 of a power of two is exact.
- log1p: log(u) + (x - (u - 1))/u with u = 1 + x rounded; the quotient puts back what rounding u
  lost. expm1: a Taylor polynomial for |x| < 1/2, exp(x) - 1 beyond (no cancellation there).
- sigmoid: exp(-|x|) never overflows and keeps relative precision for x << 0. tanh: Cephes'
  polynomial/rational for |x| < 0.625, 1 - 2/(e**2|x| + 1) beyond, sign copied from x.
- erf, erfc: Cephes' rational approximations on [0, 1), [1, 2) / [2, inf) (float32) or [1, 8) /
  [8, inf) (float64). erfc and gelu take e**(-x*x) from x = hi + lo with hi*hi exact, so the
  tail keeps its relative accuracy where x*x rounded would lose it.
- sin, cos, tan: Cody-Waite reduction x = k pi/2 + r in float64 (for float32 too), pi/2 in three
  21-bit parts and a remainder, so k * part is exact for |k| < 2**32; the quadrant k mod 4 picks
  sin or cos of r and the sign; Cephes' (float32) or fdlibm's (float64) polynomials on
  |r| <= pi/4, Cephes' tan.
- atan, atan2: Cephes' reduction to |t| <= tan(pi/8) (float32) or 0.66 (float64) and its
  polynomial/rational; atan2 divides the smaller of |x|, |y| by the larger and fixes the octant.
- pow: e**(y log|x|) in float64 (float32 arguments are widened); for float64 the log and the
  product are carried as double-doubles (Dekker's exact product), so the exponent's error stays
  near 2**-60 relative. C99's special cases (negative bases, zeros, infinities) by select.
- gelu: 0.5 x erfc(-x/sqrt(2)), which stays accurate for x << 0 where 1 + erf cancels;
  gelu_tanh: x sigmoid(2u), the same as 0.5 x (1 + tanh(u)) without its cancellation;
  silu: x sigmoid(x); softplus: PyTorch's log1p(exp(beta x))/beta, or x above the threshold.

Special values follow numpy: nan stays nan, infinities give the limits (exp(-inf) = 0,
tanh(+-inf) = +-1, log(0) = -inf, log(-1) = nan, sin(inf) = nan), and the sign of zero is kept
where numpy keeps it (tanh, erf, expm1, log1p, sin, tan, atan of -0.0 are -0.0). silu, gelu and
gelu_tanh of -inf are nan (-inf times 0), as in PyTorch.

`MATH` maps registry op names to these functions; log2, log10, erfc, atan, gelu, gelu_tanh, silu
and softplus have no registry op of their own and are here for composites to build on.

Accuracy: the largest |got - want| / max(|want|, floor) against numpy's float64 result on the same
inputs, over dense log-spaced sweeps of each type's whole finite range, edge values and random bit
patterns (a million per type for the "measured" column; tests/test_codegen_math.py checks the
bounds on fewer). Below `floor` the bound is absolute: 1e-38 and 1e-300 mean relative everywhere
except in the subnormal range.

    function      float32 bound  measured   float64 bound  measured   floor f32 / f64
    exp           2e-6           1.0e-7     1e-14          2.2e-16    1e-38 / 1e-300
    expm1         2e-6           1.2e-7     1e-14          2.4e-16    1e-38 / 1e-300
    log           2e-6           7.9e-8     1e-14          2.2e-16    1e-38 / 1e-300
    log2, log10   2e-6           1.9e-7     1e-14          2.5e-16    1e-38 / 1e-300
    log1p         2e-6           1.3e-7     1e-14          2.2e-16    1e-38 / 1e-300
    sigmoid       2e-6           1.7e-7     1e-14          3.3e-16    1e-38 / 1e-300
    tanh          2e-6           1.4e-7     1e-14          4.0e-16    1e-38 / 1e-300
    erf           2e-6           1.8e-7     1e-14          4.5e-16    1e-38 / 1e-300
    erfc          2e-6           8.9e-7     1e-14          1.7e-15    1e-38 / 1e-300
    gelu          2e-6           9.5e-7     1e-14          1.7e-15    1e-38 / 1e-300
    gelu_tanh     2e-6           2.2e-7     1e-14          7.4e-15    1e-38 / 1e-9
    silu          2e-6           2.1e-7     1e-14          4.6e-16    1e-38 / 1e-300
    softplus      2e-6           1.7e-7     1e-14          4.4e-16    1e-38 / 1e-300
    atan          2e-6           2.0e-7     1e-14          2.2e-16    1e-38 / 1e-300
    atan2         2e-6           2.3e-7     1e-14          2.4e-16    1e-38 / 1e-300
    pow           2e-6           0 (*)      1e-14          8.3e-16    1e-38 / 1e-300
    sin, cos      2e-6           7.6e-8     1e-14          1.1e-16    1 / 1, |x| < 6.7e9
    tan           2e-6           1.9e-7     1e-14          4.4e-16    1 / 1, |x| < 6.7e9

(*) float32 pow rounds a float64 result accurate to ~1e-16 once, so it matched numpy's rounded
value everywhere. rsqrt and reciprocal are a correctly rounded division (of a correctly rounded
square root). sin, cos and tan are held to an absolute bound: near the zeros of sin a relative
bound would measure the rounding of x itself. Past |x| = 2**32 pi/2 (~6.7e9) their reduction is
inexact, the error grows like |x| 2**-53 (1e-6 at 1e10) and results stay within [-1, 1]; there
is no Payne-Hanek reduction. gelu_tanh's float64 floor: far in the left tail the relative error is
|2u| times that of 2u, which is rounded (in numpy's formula too), ~1e-14 where the result is 1e-9;
float32 forms 2u in float64.
"""

from __future__ import annotations

import functools
import math

from llvmlite import ir as L

_INF, _NAN = float("inf"), float("nan")
_PI, _PI_LO = 3.141592653589793, 1.2246467991473532e-16  # pi = _PI + _PI_LO to ~1e-32
_PIO2, _PIO2_LO = 1.5707963267948966, 6.123233995736766e-17
_PI_F32_LO, _PIO2_F32_LO = -8.742278000372485e-08, -4.371139000186243e-08  # pi - float32(pi), ...


class _Emitter:
    """Straight-line arithmetic on one LLVM float type; Python numbers become constants of it."""

    def __init__(self, b, ty):
        self.b, self.ty = b, ty
        self.f64 = isinstance(ty, L.DoubleType)
        self.int = L.IntType(64 if self.f64 else 32)
        self.mant, self.bias = (52, 1023) if self.f64 else (23, 127)

    def c(self, v):
        return v if isinstance(v, L.Value) else L.Constant(self.ty, float(v))

    def i(self, v):
        return L.Constant(self.int, v)

    def add(self, x, y):
        return self.b.fadd(self.c(x), self.c(y))

    def sub(self, x, y):
        return self.b.fsub(self.c(x), self.c(y))

    def mul(self, x, y):
        return self.b.fmul(self.c(x), self.c(y))

    def div(self, x, y):
        return self.b.fdiv(self.c(x), self.c(y))

    def cmp(self, op, x, y):
        """An ordered comparison: false when either side is nan."""
        return self.b.fcmp_ordered(op, self.c(x), self.c(y))

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def isfinite(self, x):
        return self.cmp("<", self.abs(x), _INF)

    def signbit(self, x):
        return self.b.icmp_signed("<", self.bits(x), self.i(0))

    def sel(self, cond, x, y):
        return self.b.select(cond, self.c(x), self.c(y))

    def intrinsic(self, name, *args):
        fnty = L.FunctionType(self.ty, [self.ty] * len(args))
        return self.b.call(self.b.module.declare_intrinsic(name, [self.ty], fnty), [self.c(a) for a in args])

    def abs(self, x):
        return self.intrinsic("llvm.fabs", x)

    def copysign(self, x, sign):
        return self.intrinsic("llvm.copysign", x, sign)

    def rint(self, x):
        return self.intrinsic("llvm.rint", x)

    def floor(self, x):
        return self.intrinsic("llvm.floor", x)

    def clamp(self, x, lo, hi):
        """x limited to [lo, hi]; nan becomes lo, so the result always converts to an integer safely."""
        x = self.sel(self.cmp(">", x, lo), x, lo)
        return self.sel(self.cmp("<", x, hi), x, hi)

    def poly(self, x, coefs):
        """Horner's rule, highest degree first. Each step may contract into one fused multiply-add where the
        CPU has one (one rounding instead of two: never less accurate, and half the instructions)."""
        p = self.c(coefs[0])
        for k in coefs[1:]:
            m = self.mul(p, x)
            m.flags.append("contract")
            p = self.add(m, k)
            p.flags.append("contract")
        return p

    def poly1(self, x, coefs):
        """A monic polynomial x**n + coefs[0] x**(n-1) + ... (Cephes' p1evl)."""
        return self.poly(x, (1.0, *coefs))

    def bits(self, x):
        return self.b.bitcast(x, self.int)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def pow2(self, k):
        """Two powers of two whose product is 2**k, for an integral float k within twice the exponent range:
        y * p1 * p2 is exact until the last product, so a subnormal result is rounded once."""
        ki = self.b.fptosi(k, self.int)
        half = self.b.ashr(ki, self.i(1))
        return [self.from_bits(self.b.shl(self.b.add(n, self.i(self.bias)), self.i(self.mant)))
                for n in (half, self.b.sub(ki, half))]

    def ldexp(self, y, k):
        p1, p2 = self.pow2(k)
        return self.mul(self.mul(y, p1), p2)

    def keep_zero(self, x, y):
        """x where x is +-0.0, so odd functions return the zero they were given."""
        return self.sel(self.cmp("==", x, 0.0), x, y)

    def keep_nan(self, x, y):
        return self.sel(self.isnan(x), x, y)


def _lowering(fn):
    """fn(e, x, ...) on an emitter, callable as fn(b, x, ...) on an IRBuilder (or an emitter, to compose
    functions); None when the arguments are not all float or all double."""

    @functools.wraps(fn)
    def lower(b, x, *rest, **attrs):
        if not isinstance(x.type, (L.FloatType, L.DoubleType)) or any(y.type != x.type for y in rest):
            return None
        e = b if isinstance(b, _Emitter) else _Emitter(b, x.type)
        return fn(e, x, *rest, **attrs)

    return lower


def _double(e, x):
    """(float64 emitter, x widened to double) for work that float32 does in float64."""
    d = e if e.f64 else _Emitter(e.b, L.DoubleType())
    return d, (x if e.f64 else e.b.fpext(x, d.ty))


# --- exp, log ---------------------------------------------------------------------------------

_LN2 = {False: (0.693359375, -2.12194440e-4), True: (6.93147180369123816490e-01, 1.90821492927058770002e-10)}
# Beyond these e**x is 0 or inf however k rounds; the low end leaves room for y 2**k times a factor m
# (silu's x e**x) that is still above the underflow threshold, and keeps k/2 a normal exponent.
_EXP_RANGE = {False: (-170.0, 89.0), True: (-1400.0, 710.0)}
_EXP_F32 = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_EXP_F64 = (4.13813679705723846039e-08, -1.65339022054652515390e-06, 6.61375632143793436117e-05,
            -2.77777777770155933842e-03, 1.66666666666666019037e-01)


def _exp_parts(e, x, extra=None):
    """(y, k) with e**(x + extra) = y 2**k, y in [sqrt(1/2), sqrt(2)], k integral (a float); extra is a
    tiny correction (a low part of the argument). No nan handling."""
    xc = e.clamp(x, *_EXP_RANGE[e.f64])
    k = e.rint(e.mul(xc, 1.4426950408889634))
    ln2_hi, ln2_lo = _LN2[e.f64]
    hi = e.sub(xc, e.mul(k, ln2_hi))  # exact: ln2_hi has few bits
    lo = e.mul(k, ln2_lo)
    if extra is not None:
        lo = e.sub(lo, e.sel(e.cmp("==", x, xc), extra, 0.0))
    r = e.sub(hi, lo)
    if e.f64:  # fdlibm: e**r = 1 + 2r/(2 - c), c = r - r**2 P(r**2), rearranged to keep hi - lo's bits
        t = e.mul(r, r)
        c = e.sub(r, e.mul(t, e.poly(t, _EXP_F64)))
        y = e.sub(1.0, e.sub(e.sub(lo, e.div(e.mul(r, c), e.sub(2.0, c))), hi))
    else:  # Cephes expf: 1 + r + r**2 P(r)
        y = e.add(e.add(e.mul(e.mul(e.poly(r, _EXP_F32), r), r), r), 1.0)
    return y, k


def _exp(e, x, extra=None):
    return e.ldexp(*_exp_parts(e, x, extra))


@_lowering
def exp(e, x):
    """e**x; 0 below the underflow threshold, inf above the overflow one, subnormal results rounded once."""
    return e.keep_nan(x, _exp(e, x))


_LOG_F32 = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
            -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
_LG_ODD = (1.479819860511658591e-01, 1.818357216161805012e-01, 2.857142874366239149e-01, 6.666666666666735130e-01)
_LG_EVEN = (1.531383769920937332e-01, 2.222219843214978396e-01, 3.999999999940941908e-01)


def _log_reduce(e, x):
    """(k, g) with x = 2**k (1 + g) and 1 + g in [sqrt(1/2), sqrt(2)), for finite x > 0."""
    b = e.b
    tiny = e.cmp("<", x, 2.2250738585072014e-308 if e.f64 else 1.17549435e-38)
    x = e.sel(tiny, e.mul(x, float(2**e.mant)), x)  # subnormals into the normal range
    bits = e.bits(x)
    k = b.sub(b.and_(b.lshr(bits, e.i(e.mant)), e.i(2 * e.bias + 1)), e.i(e.bias))
    k = b.select(tiny, b.sub(k, e.i(e.mant)), k)
    m = e.from_bits(b.or_(b.and_(bits, e.i((1 << e.mant) - 1)), e.i(e.bias << e.mant)))
    big = e.cmp(">", m, 1.4142135623730951)
    m = e.sel(big, e.mul(m, 0.5), m)
    k = b.select(big, b.add(k, e.i(1)), k)
    return b.sitofp(k, e.ty), e.sub(m, 1.0)


def _log1p_tail(e, g):
    """log(1 + g) - g for 1 + g in [sqrt(1/2), sqrt(2))."""
    z = e.mul(g, g)
    if not e.f64:  # Cephes logf: g**3 P(g) - g**2/2
        return e.sub(e.mul(e.mul(e.poly(g, _LOG_F32), g), z), e.mul(z, 0.5))
    hfsq = e.mul(z, 0.5)  # fdlibm: log(1 + g) = g - hfsq + s (hfsq + R(s**2)), s = g/(2 + g)
    s = e.div(g, e.add(g, 2.0))
    s2 = e.mul(s, s)
    s4 = e.mul(s2, s2)
    r = e.add(e.mul(s2, e.poly(s4, _LG_ODD)), e.mul(s4, e.poly(s4, _LG_EVEN)))
    return e.sub(e.mul(s, e.add(hfsq, r)), hfsq)


def _log_specials(e, x, y):
    y = e.sel(e.cmp("==", x, 0.0), -_INF, y)
    y = e.sel(e.cmp("<", x, 0.0), _NAN, y)
    y = e.sel(e.cmp("==", x, _INF), _INF, y)
    return e.keep_nan(x, y)


def _log(e, x):
    k, g = _log_reduce(e, x)
    ln2_hi, ln2_lo = _LN2[e.f64]
    return e.add(e.mul(k, ln2_hi), e.add(g, e.add(_log1p_tail(e, g), e.mul(k, ln2_lo))))


@_lowering
def log(e, x):
    """Natural logarithm; log(0) = -inf, log(x < 0) = nan."""
    return _log_specials(e, x, _log(e, x))


@_lowering
def log2(e, x):
    """Base-2 logarithm: k + log(1 + g)/ln 2, exact at powers of two."""
    k, g = _log_reduce(e, x)
    return _log_specials(e, x, e.add(k, e.mul(e.add(g, _log1p_tail(e, g)), 1.4426950408889634)))


@_lowering
def log10(e, x):
    """Base-10 logarithm: k log10(2) + log(1 + g) log10(e)."""
    k, g = _log_reduce(e, x)
    y = e.add(e.mul(k, 0.3010299956639812), e.mul(e.add(g, _log1p_tail(e, g)), 0.4342944819032518))
    return _log_specials(e, x, y)


@_lowering
def log1p(e, x):
    """log(1 + x), relative accuracy for tiny x: log(u) + (x - (u - 1))/u with u = 1 + x."""
    u = e.add(x, 1.0)
    y = e.add(_log(e, u), e.div(e.sub(x, e.sub(u, 1.0)), u))
    return e.keep_zero(x, _log_specials(e, u, y))


_EXPM1_TAYLOR = {False: 8, True: 16}  # expm1 = x + x**2 (1/2! + x/3! + ...) through x**n/n!, for |x| < 1/2


@_lowering
def expm1(e, x):
    """e**x - 1, relative accuracy for tiny x."""
    n = _EXPM1_TAYLOR[e.f64]
    coefs = [1.0 / math.factorial(j) for j in range(n, 1, -1)]
    small = e.add(x, e.mul(e.mul(x, x), e.poly(x, coefs)))
    y = e.sel(e.cmp("<", e.abs(x), 0.5), small, e.sub(_exp(e, x), 1.0))
    return e.keep_zero(x, e.keep_nan(x, y))


# --- sigmoid, tanh, softplus, silu ------------------------------------------------------------


def _times_sigmoid(e, m, x, lo=None):
    """m / (1 + e**-(x + lo)), as m/(1 + e**-|x|) for x >= 0 and m e**-|x| / (1 + e**-|x|) below: no
    overflow, relative accuracy for x << 0, and e**-|x| = y 2**k scaled last so a subnormal result is
    rounded once (not rounded to a subnormal, then multiplied by m). lo is an optional low part of x."""
    pos = e.cmp(">=", x, 0.0)
    y, k = _exp_parts(e, e.b.fneg(e.abs(x)), None if lo is None else e.sel(pos, e.b.fneg(lo), lo))
    p1, p2 = e.pow2(k)
    den = e.add(e.mul(e.mul(y, p1), p2), 1.0)
    neg = e.mul(e.mul(e.mul(m, p1), e.div(y, den)), p2)  # m p1 cannot overflow: here k <= 0
    neg = e.sel(e.cmp(">", e.abs(x), -_EXP_RANGE[e.f64][0]), e.mul(m, 0.0), neg)  # e**x clamped: 0 times m
    return e.keep_nan(x, e.sel(pos, e.div(m, den), neg))


@_lowering
def sigmoid(e, x):
    """The logistic function 1/(1 + e**-x), relative accuracy for x << 0 too."""
    return _times_sigmoid(e, e.c(1.0), x)


_TANH_F32 = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)


@_lowering
def tanh(e, x):
    """Hyperbolic tangent: Cephes' x + x**3 R(x**2) below 0.625, 1 - 2/(e**2|x| + 1) above."""
    a = e.abs(x)
    z = e.mul(a, a)
    r = e.div(e.poly(z, _TANH_P), e.poly1(z, _TANH_Q)) if e.f64 else e.poly(z, _TANH_F32)
    small = e.add(a, e.mul(a, e.mul(z, r)))
    large = e.sub(1.0, e.div(2.0, e.add(_exp(e, e.mul(a, 2.0)), 1.0)))
    return e.keep_nan(x, e.copysign(e.sel(e.cmp("<", a, 0.625), small, large), x))


@_lowering
def silu(e, x):
    """x sigmoid(x) (also called swish)."""
    return _times_sigmoid(e, x, x)


@_lowering
def softplus(e, x, beta=1.0, threshold=20.0):
    """PyTorch's softplus: log1p(e**(beta x))/beta, or x where beta x > threshold."""
    xb = x if beta == 1 else e.mul(x, beta)
    y = log1p(e, _exp(e, xb))
    if beta != 1:
        y = e.div(y, beta)
    return e.keep_nan(x, e.sel(e.cmp(">", xb, threshold), x, y))


# --- erf, erfc, gelu --------------------------------------------------------------------------

_ERF_F32 = (7.853861353153693e-5, -8.010193625184903e-4, 5.188327685732524e-3, -2.685381193529856e-2,
            1.128358514861418e-1, -3.761262582423300e-1, 1.128379165726710e0)
_ERFC_F32_P = (2.326819970068386e-2, -1.387039388740657e-1, 3.687424674597105e-1, -5.824733027278666e-1,
               6.210004621745983e-1, -4.944515323274145e-1, 3.404879937665872e-1, -2.741127028184656e-1,
               5.638259427386472e-1)
_ERFC_F32_R = (-1.047766399936249e1, 1.297719955372516e1, -7.495518717768503e0, 2.921019019210786e0,
               -1.015265279202700e0, 4.218463358204948e-1, -2.820767439740514e-1, 5.641895067754075e-1)
_ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
          7.00332514112805075473e3, 5.55923013010394962768e4)
_ERF_U = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
_ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
           4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
           9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFC_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
           9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
           1.65666309194161350182e3, 5.57535340817727675546e2)
_ERFC_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
           6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_ERFC_S = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
           1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)
_ERFC_ZERO = {False: 12.0, True: 30.0}  # erfc underflows to 0 before these


def _erf_small(e, x):
    """erf(x) for |x| < 1."""
    z = e.mul(x, x)
    if e.f64:
        return e.div(e.mul(x, e.poly(z, _ERF_T)), e.poly1(z, _ERF_U))
    return e.mul(x, e.poly(z, _ERF_F32))


def _erfc_tail(e, a, ex):
    """erfc(a) for a >= 1 (inf included), given ex = e**(-a*a)."""
    if e.f64:
        ac = e.clamp(a, 1.0, _ERFC_ZERO[True])
        near = e.div(e.poly(ac, _ERFC_P), e.poly1(ac, _ERFC_Q))
        far = e.div(e.poly(ac, _ERFC_R), e.poly1(ac, _ERFC_S))
        return e.mul(ex, e.sel(e.cmp("<", a, 8.0), near, far))
    q = e.div(1.0, a)
    y = e.mul(q, q)
    p = e.sel(e.cmp("<", a, 2.0), e.poly(y, _ERFC_F32_P), e.poly(y, _ERFC_F32_R))
    return e.mul(ex, e.mul(q, p))


def _exp_neg_square(e, a, scale=1.0):
    """e**(-scale a**2) for a >= 0 with the square exact: a = hi + lo, hi with half the mantissa bits,
    a**2 = hi**2 + lo (a + hi). Rounding a**2 would cost a relative error of ~a**2 ulp."""
    ac = e.clamp(a, 0.0, _ERFC_ZERO[e.f64] / scale**0.5)
    hi = e.from_bits(e.b.and_(e.bits(ac), e.i(-(1 << ((e.mant + 1) // 2 + 1)))))
    lo = e.sub(ac, hi)
    big = _exp(e, e.mul(e.mul(hi, hi), -scale))
    return e.mul(big, _exp(e, e.mul(e.mul(lo, e.add(ac, hi)), -scale)))


def _erfc(e, z, ex):
    """erfc(z) for any z, given ex = e**(-z*z)."""
    tail = _erfc_tail(e, e.abs(z), ex)
    far = e.sel(e.cmp("<", z, 0.0), e.sub(2.0, tail), tail)
    return e.sel(e.cmp("<", e.abs(z), 1.0), e.sub(1.0, _erf_small(e, z)), far)


@_lowering
def erf(e, x):
    """Error function; erf(+-inf) = +-1, erf(-0.0) = -0.0."""
    a = e.abs(x)
    large = e.sub(1.0, _erfc_tail(e, a, _exp(e, e.b.fneg(e.mul(a, a)))))
    return e.keep_nan(x, e.copysign(e.sel(e.cmp("<", a, 1.0), _erf_small(e, a), large), x))


@_lowering
def erfc(e, x):
    """Complementary error function 1 - erf(x), with relative accuracy in the tail."""
    return e.keep_nan(x, _erfc(e, x, _exp_neg_square(e, e.abs(x))))


@_lowering
def gelu(e, x, approximate="none"):
    """GELU: 0.5 x (1 + erf(x/sqrt(2))) = 0.5 x erfc(-x/sqrt(2)); approximate="tanh" is gelu_tanh."""
    if approximate == "tanh":
        return gelu_tanh(e, x)
    if approximate != "none":
        return None
    ex = _exp_neg_square(e, e.abs(x), 0.5)  # e**(-x*x/2) from x itself, not from x/sqrt(2) rounded
    return e.mul(e.mul(x, 0.5), _erfc(e, e.mul(x, -0.7071067811865476), ex))


_GELU_K0, _GELU_K1 = 1.5957691216057308, 0.07135481627260025  # 2 sqrt(2/pi), 2 sqrt(2/pi) 0.044715


@_lowering
def gelu_tanh(e, x):
    """GELU's tanh form 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x**3), as x sigmoid(2u).
    For float32, 2u is formed in float64 and passed on as hi + lo: sigmoid(v) far out on the left
    tail has a relative error of |v| times that of v."""
    if e.f64:
        return _times_sigmoid(e, x, e.mul(x, e.add(e.mul(e.mul(x, x), _GELU_K1), _GELU_K0)))
    d, xd = _double(e, x)
    v = d.mul(xd, d.add(d.mul(d.mul(xd, xd), _GELU_K1), _GELU_K0))
    hi = e.b.fptrunc(v, e.ty)
    lo = e.b.fptrunc(d.sub(v, e.b.fpext(hi, d.ty)), e.ty)
    return _times_sigmoid(e, x, hi, lo)


# --- sin, cos, tan, atan, atan2 ---------------------------------------------------------------

_PIO2_PARTS = (1.570796012878418, 3.139164164167596e-07, 6.22337468017542e-14, -2.508278806334166e-20)
_SIN_F32 = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS_F32 = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)
_SIN_F64 = (1.58969099521155010221e-10, -2.50507602534068634195e-08, 2.75573137070700676789e-06,
            -1.98412698298579493134e-04, 8.33333333332248946124e-03, -1.66666666666666324348e-01)
_COS_F64 = (-1.13596475577881948265e-11, 2.08757232129817482790e-09, -2.75573143513906633035e-07,
            2.48015872894767294178e-05, -1.38888888888741095749e-03, 4.16666666666666019037e-02)
_TAN_F32 = (9.38540185543e-3, 3.11992232697e-3, 2.44301354525e-2, 5.34112807005e-2, 1.33387994085e-1,
            3.33331568548e-1)
_TAN_P = (-1.30936939181383777646e4, 1.15351664838587416140e6, -1.79565251976484877988e7)
_TAN_Q = (1.36812963470692954678e4, -1.32089234440210967447e6, 2.50083801823357915839e7,
          -5.38695755929454629881e7)


def _reduce_pio2(e, x):
    """(r, q): x = k pi/2 + r with |r| <= pi/4 (r in x's type) and q = k mod 4 (i32), in float64."""
    d, xd = _double(e, x)
    xd = d.sel(d.isfinite(xd), xd, 0.0)  # keeps k finite; inf and nan are answered by the caller
    k = d.rint(d.mul(xd, 0.6366197723675814))
    r = xd
    for part in _PIO2_PARTS:  # each k * part is exact for |k| < 2**32
        r = d.sub(r, d.mul(k, part))
    r = d.clamp(r, -0.7864, 0.7864)  # only active past |k| = 2**32, where r is inexact: keeps |sin| <= 1
    q = e.b.fptosi(d.sub(k, d.mul(d.floor(d.mul(k, 0.25)), 4.0)), L.IntType(32))
    return (r if e.f64 else e.b.fptrunc(r, e.ty)), q


def _sin_cos_reduced(e, r):
    """(sin r, cos r) for |r| <= pi/4."""
    z = e.mul(r, r)
    if not e.f64:
        s = e.add(e.mul(e.mul(e.poly(z, _SIN_F32), z), r), r)
        c = e.add(e.sub(e.mul(e.mul(e.poly(z, _COS_F32), z), z), e.mul(z, 0.5)), 1.0)
        return s, c
    s = e.add(r, e.mul(e.mul(z, r), e.poly(z, _SIN_F64)))
    hz = e.mul(z, 0.5)
    w = e.sub(1.0, hz)  # fdlibm: cos = w + ((1 - w) - hz + z**2 C(z)), keeping the bits 1 - hz loses
    c = e.add(w, e.add(e.sub(e.sub(1.0, w), hz), e.mul(e.mul(z, z), e.poly(z, _COS_F64))))
    return s, c


def _bit(e, q, mask):
    i32 = L.IntType(32)
    return e.b.icmp_unsigned("!=", e.b.and_(q, L.Constant(i32, mask)), L.Constant(i32, 0))


def _by_quadrant(e, q, s, c):
    """sin(x) from sin r and cos r for quadrant q: s, c, -s, -c."""
    y = e.sel(_bit(e, q, 1), c, s)
    return e.sel(_bit(e, q, 2), e.b.fneg(y), y)


@_lowering
def sin(e, x):
    """Sine; an absolute error bound, for |x| < 6.7e9 (see the module docstring)."""
    r, q = _reduce_pio2(e, x)
    y = e.keep_zero(x, _by_quadrant(e, q, *_sin_cos_reduced(e, r)))
    return e.sel(e.isfinite(x), y, _NAN)


@_lowering
def cos(e, x):
    """Cosine; an absolute error bound, for |x| < 6.7e9 (see the module docstring)."""
    r, q = _reduce_pio2(e, x)
    y = _by_quadrant(e, e.b.add(q, L.Constant(L.IntType(32), 1)), *_sin_cos_reduced(e, r))
    return e.sel(e.isfinite(x), y, _NAN)


@_lowering
def tan(e, x):
    """Tangent: Cephes' tan on |r| <= pi/4 and -1/tan(r) in odd quadrants."""
    r, q = _reduce_pio2(e, x)
    z = e.mul(r, r)
    if e.f64:
        t = e.add(r, e.mul(r, e.div(e.mul(z, e.poly(z, _TAN_P)), e.poly1(z, _TAN_Q))))
    else:
        t = e.add(e.mul(e.mul(e.poly(z, _TAN_F32), z), r), r)
    y = e.keep_zero(x, e.sel(_bit(e, q, 1), e.div(-1.0, t), t))
    return e.sel(e.isfinite(x), y, _NAN)


_ATAN_F32 = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)
_ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
           -1.228866684490136173410e2, -6.485021904942025371773e1)
_ATAN_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
           4.853903996359136964868e2, 1.945506571482613964425e2)


def _atan_pos(e, a):
    """atan(a) for a >= 0 (inf included): a > tan(3pi/8) -> pi/2 + atan(-1/a), a above tan(pi/8)
    (float32) or 0.66 (float64) -> pi/4 + atan((a - 1)/(a + 1)), then Cephes' odd polynomial/rational."""
    big = e.cmp(">", a, 2.414213562373095)
    mid = e.cmp(">", a, 0.66 if e.f64 else 0.4142135623730950)
    t = e.sel(big, e.div(-1.0, a), e.sel(mid, e.div(e.sub(a, 1.0), e.add(a, 1.0)), a))
    base = e.sel(big, _PIO2, e.sel(mid, _PIO2 / 2, 0.0))
    z = e.mul(t, t)
    if not e.f64:
        return e.add(base, e.add(e.mul(e.mul(e.poly(z, _ATAN_F32), z), t), t))
    r = e.add(e.mul(t, e.div(e.mul(z, e.poly(z, _ATAN_P)), e.poly1(z, _ATAN_Q))), t)
    r = e.add(r, e.sel(big, _PIO2_LO, e.sel(mid, _PIO2_LO / 2, 0.0)))  # the bits of pi/2 a double drops
    return e.add(base, r)


@_lowering
def atan(e, x):
    """Arc tangent; atan(+-inf) = +-pi/2."""
    return e.keep_nan(x, e.copysign(_atan_pos(e, e.abs(x)), x))


@_lowering
def atan2(e, y, x):
    """atan2(y, x), the angle of (x, y), with C99's answers for zeros and infinities
    (atan2(+-0, -0) = +-pi, atan2(+-inf, -inf) = +-3pi/4, ...)."""
    ax, ay = e.abs(x), e.abs(y)
    steep = e.cmp(">", ay, ax)
    t = e.div(e.sel(steep, ax, ay), e.sel(steep, ay, ax))
    t = e.sel(e.cmp("==", e.sel(steep, ay, ax), 0.0), 0.0, t)  # both zero
    t = e.sel(e.b.and_(e.cmp("==", ax, _INF), e.cmp("==", ay, _INF)), 1.0, t)  # both infinite
    a = _atan_pos(e, t)
    # the angle is base +- a: a (steep: pi/2 - a) for x >= 0, pi - a (steep: pi/2 + a) for x < 0 or -0
    left = e.signbit(x)
    base_hi = e.sel(steep, _PIO2, e.sel(left, _PI, 0.0))
    pio2_lo, pi_lo = (_PIO2_LO, _PI_LO) if e.f64 else (_PIO2_F32_LO, _PI_F32_LO)
    base_lo = e.sel(steep, pio2_lo, e.sel(left, pi_lo, 0.0))
    a = e.sel(e.b.xor(steep, left), e.b.fneg(a), a)
    a = e.add(base_hi, e.add(a, base_lo))
    return e.sel(e.b.or_(e.isnan(x), e.isnan(y)), _NAN, e.copysign(a, y))


# --- pow --------------------------------------------------------------------------------------


def _two_prod(e, a, b):
    """(p, err) with p = a*b rounded and p + err = a*b exactly (Dekker; no fma needed)."""
    p = e.mul(a, b)

    def split(v):  # Veltkamp: v = hi + lo with 26-bit halves, so their products are exact
        t = e.mul(v, 134217729.0)
        hi = e.sub(t, e.sub(t, v))
        return hi, e.sub(v, hi)

    (ah, al), (bh, bl) = split(a), split(b)
    err = e.add(e.add(e.add(e.sub(e.mul(ah, bh), p), e.mul(ah, bl)), e.mul(al, bh)), e.mul(al, bl))
    return p, err


def _two_sum(e, a, b):
    s = e.add(a, b)
    bb = e.sub(s, a)
    return s, e.add(e.sub(a, e.sub(s, bb)), e.sub(b, bb))


def _log_dd(e, x):
    """log(x) as hi + lo to ~2**-59 relative, for finite x > 0 (float64): fdlibm's log(1 + g) =
    2s + s R(s**2) with s = g/(2 + g) itself carried as a double-double."""
    k, g = _log_reduce(e, x)
    d = e.add(g, 2.0)
    d_lo = e.sub(g, e.sub(d, 2.0))  # 2 + g = d + d_lo exactly
    s = e.div(g, d)
    p, p_err = _two_prod(e, s, d)
    s_lo = e.div(e.sub(e.sub(e.sub(g, p), p_err), e.mul(s, d_lo)), d)
    s2 = e.mul(s, s)
    s4 = e.mul(s2, s2)
    r = e.add(e.mul(s2, e.poly(s4, _LG_ODD)), e.mul(s4, e.poly(s4, _LG_EVEN)))
    ln2_hi, ln2_lo = _LN2[True]
    hi, err = _two_sum(e, e.mul(k, ln2_hi), e.mul(s, 2.0))
    lo = e.add(err, e.add(e.mul(k, ln2_lo), e.add(e.mul(s_lo, 2.0), e.mul(s, r))))
    total = e.add(hi, lo)  # renormalized (|lo| is below |hi|): lo at most half an ulp of the sum
    return total, e.sub(lo, e.sub(total, hi))


def _pow64(e, x, y):
    ax = e.abs(x)
    hi, lo = _log_dd(e, ax)
    p, p_err = _two_prod(e, y, hi)
    p_lo = e.add(p_err, e.mul(y, lo))  # nan where splitting a huge y overflowed: then p saturates or hi is 0
    p_lo = e.sel(e.b.and_(e.cmp("<", e.abs(p), 1e4), e.isfinite(p_lo)), p_lo, 0.0)
    mag = _exp(e, p, p_lo)
    b = e.b
    # zero or infinite base, infinite exponent: 0 or inf, by whether |x|**y grows
    edge = b.or_(b.or_(e.cmp("==", ax, 0.0), e.cmp("==", ax, _INF)), e.cmp("==", e.abs(y), _INF))
    grows = b.icmp_unsigned("==", e.cmp(">", ax, 1.0), e.cmp(">", y, 0.0))
    mag = e.sel(edge, e.sel(grows, _INF, 0.0), mag)
    integral = e.cmp("==", e.rint(y), y)
    half = e.mul(y, 0.5)
    odd = b.and_(integral, e.cmp("!=", e.rint(half), half))
    r = e.sel(b.and_(e.signbit(x), odd), b.fneg(mag), mag)
    negative_finite = b.and_(e.cmp("<", x, 0.0), e.isfinite(x))
    r = e.sel(b.and_(negative_finite, b.not_(integral)), _NAN, r)
    r = e.sel(b.or_(e.isnan(x), e.isnan(y)), _NAN, r)
    unit_inf = b.and_(e.cmp("==", ax, 1.0), e.cmp("==", e.abs(y), _INF))  # (-1)**inf
    one = b.or_(b.or_(e.cmp("==", y, 0.0), e.cmp("==", x, 1.0)), unit_inf)
    return e.sel(one, 1.0, r)


@_lowering
def pow(e, x, y):
    """x**y with C99's special cases: pow(x, 0) = pow(1, y) = 1, even for nan; a negative base
    needs an integral exponent (else nan) whose parity gives the sign; zeros and infinities give
    0 or inf. float32 computes in float64 and rounds once."""
    if e.f64:
        return _pow64(e, x, y)
    d, xd = _double(e, x)
    return e.b.fptrunc(_pow64(d, xd, e.b.fpext(y, d.ty)), e.ty)


# --- rsqrt, reciprocal ------------------------------------------------------------------------


@_lowering
def rsqrt(e, x):
    """1/sqrt(x) (two correctly rounded steps, not the ~12-bit hardware estimate)."""
    return e.div(1.0, e.intrinsic("llvm.sqrt", x))


@_lowering
def reciprocal(e, x):
    """1/x."""
    return e.div(1.0, x)


# Registry op name -> lowering; ops with attributes take them as keywords, as `llvm_cpu.LOWER` passes them.
MATH = {
    "tj::exp": exp,
    "tj::expm1": expm1,
    "tj::log": log,
    "tj::log1p": log1p,
    "tj::sigmoid": sigmoid,
    "tj::tanh": tanh,
    "tj::erf": erf,
    "tj::sin": sin,
    "tj::cos": cos,
    "tj::tan": tan,
    "tj::atan2": atan2,
    "tj::pow": pow,
    "tj::rsqrt": rsqrt,
    "tj::reciprocal": reciprocal,
}
