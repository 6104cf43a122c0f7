"""Affine quantize and dequantize kernels (private; ``refquant.fast`` validates and calls them).

Layout.  The caller views the tensor as a C-contiguous 2-D array ``(R, L)`` of rows and cuts each
row into chunks of ``ch`` elements; a work item is one chunk, item ``w`` being chunk ``w % nch`` of
row ``w // nch`` (``nch = ceil(L / ch)``).  Every parameter array is 2-D and found in one of two ways:

* scalar rows (``vector`` false): one parameter set per chunk, ``P[0, p]`` with
  ``p = (r % pa) * pb + (c if pc else 0)`` (per tensor: ``pa = pb = 1``; per axis with elements after
  the axis: rows are ``(outer, axis)`` pairs, ``pa = D_axis``; per block along the last axis:
  ``ch = block_size``, ``pc`` set);
* vector rows (``vector`` true): parameters vary along the row, ``P[prow, lo:hi]`` with
  ``prow = (r // pa) * pb + (r % pa) // pc`` (per axis along the last axis: one parameter row; per
  block with elements after the axis: rows are ``(outer, axis)`` pairs).

Arithmetic, per element (the definitions of ``refquant.spec.affine``, ``refquant.spec.rounding``
and ``refquant.spec.saturation``), in the compute precision (the parameters' and ``x``'s dtype,
float32 or float64; the caller converts ``x``).  Five loops (``kind``):

* 0 and 1, the fast loops (saturation into a format of at most 16 bits, rounding half to even or
  half away from zero, zero point after or before rounding), branch-free so that LLVM vectorises
  them: ``v = x / s + zb`` (0, DIVIDE) or ``v = x * inv + zb`` (1, RECIPROCAL_MULTIPLY), ``zb`` the
  zero point for BEFORE_ROUNDING and 0 otherwise (adding 0 is exact); ``r = rint(v)``, for half away
  from zero ``trunc(v) + sign(v)`` where ``|v - trunc(v)| >= 1/2`` (exact), else ``trunc(v)``; then
  ``code = int(clip(r + za, qmin, qmax))`` with ``za`` the zero point for AFTER_ROUNDING and 0
  otherwise.  The clip in the float domain is exact: ``qmin`` and ``qmax`` are integers below
  ``2**17`` (exact in float32), ``r + za`` is exact while ``|r| < 2**24`` and otherwise (also for
  +-inf) beyond the format on the same side as ``r``;
* 2, the same with the fused zero point (``fma(x, 1 / s, z)``, one float32 rounding: LLVM's
  ``llvm.fma`` through ``fma_hw``, the hardware's fused multiply-add);
* 4, DIVIDE with the zero point after rounding, without dividing on most vectors (the checked
  reciprocal): ``v = x * r`` with ``r = 1 / s`` rounded to the compute precision (a normal number, else
  kind 0 runs), codes from ``v`` as in kind 0; a vector is recomputed with the division when a lane has
  ``fma(|v|, NEAR, |v - round(v)|) >= 1/2`` (true whenever the exact ``|v - round(v)| + NEAR |v|`` reaches
  1/2, since 1/2 is a float) or a non-finite ``v``.  Exact: ``r = (1/s)(1 + e1)`` and
  ``v = x r (1 + e2)`` with ``|e1|, |e2| <= u`` (``u = 2**-24`` in float32, ``2**-53`` in float64), so
  ``|v - x/s| <= (2u + u**2) |x/s|``, and the correctly rounded quotient ``q`` the spec rounds lies
  within ``u |x/s|`` of ``x/s``: ``|v - q| < 4u |v| <= 2**-22 |v| < NEAR |v|`` for ``v`` that is not
  tiny.  A lane not flagged has ``v`` and ``q`` strictly inside the same interval between two
  half-integers, so ``round(v) = round(q)`` under both tie rules (ties are flagged).  For
  ``|v| >= 2**19`` every lane is flagged (``NEAR |v| >= 1/2``); below the smallest normal ``|v| < 1/2``
  and both round to 0 (the relative bound fails there but the distance to 1/2 does not);
* 3, any option combination, element by element: ``v = x / s`` or ``x * inv``, the zero point after
  rounding (exact integer), before rounding or fused, rounding by the exact fraction of ``|v|``, then
  saturation (infinities too) or two's-complement wrap of the exact integer.

A NaN element is computed as 0 (its code is then the zero point) and counted; under TO_QMIN it is
rewritten as ``qmin`` afterwards.  The output is passed as its bytes (``out8``, ``(R, L * width)``
int8) and written through an int8/int16/int32 view of ``width`` bytes (an unsigned code's bit
pattern is the truncated code), so one compiled kernel serves every output width: the fast loops
(formats of at most 16 bits) write the int8 or int16 view directly, the generic loop an int32 buffer
that ``store_codes`` copies out.

Option codes (``refquant.fast`` maps the enums to these ints):

* ``sapp``: 0 DIVIDE, 1 RECIPROCAL_MULTIPLY
* ``zorder``: 0 AFTER_ROUNDING, 1 BEFORE_ROUNDING, 2 FUSED_MULTIPLY_ADD
* ``rmode``: 0 HALF_TO_EVEN, 1 HALF_AWAY_FROM_ZERO, 2 HALF_TOWARD_POSITIVE, 3 HALF_TOWARD_NEGATIVE,
  4 HALF_TOWARD_ZERO, 5 TOWARD_ZERO, 6 TOWARD_POSITIVE, 7 TOWARD_NEGATIVE, 8 AWAY_FROM_ZERO,
  9 HALF_TO_ODD
* ``ovf``: 0 SATURATE, 1 WRAP
* ``nanp``: 0 RAISE (the element is written as the zero point and counted), 1 TO_QMIN,
  2 TO_ZERO_POINT

Quantize kernels return a value that is nonzero exactly when a NaN input was seen; dequantize kernels
return one that is nonzero exactly when a code lies outside ``[qmin, qmax]``.  No validation happens here.

Threads: ``*_par`` runs the serial kernel over ``parts`` ranges of work items in a ``prange`` loop
(one thin ``parallel=True`` wrapper per kernel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from refquant.kernels._jit import njit, njit_parallel

__all__ = [
    "BUF",
    "dequantize_rows",
    "dequantize_rows_par",
    "fma32",
    "fma_hw",
    "quantize_rows",
    "quantize_rows_par",
    "store_codes",
]

BUF = 1024
"""Elements per int32 code buffer (4 KB, stays in L1)."""


PREFETCH = 2048
"""Elements of input ahead of the current block that the quantize kernel prefetches."""


@njit
def fma32(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` for float32 operands rounded once to float32 (round half to even).

    The float64 product of two float32 numbers is exact; the float64 sum is corrected to
    round-to-odd with its TwoSum error, and round-to-odd at 53 bits followed by round half to even
    at 24 bits is the correctly rounded result.  Branch-free: the correction moves the sum one unit
    in the last place towards the error (bit pattern +1 when the error has the sum's sign, else -1;
    the sum is never 0 when the error is not).
    """
    p = np.float64(a) * np.float64(b)
    c64 = np.float64(c)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    bits = np.float64(s).view(np.int64)
    fix = (abs(s) < np.inf) & (err != 0.0) & ((bits & 1) == 0)
    step = 1 if (err > 0.0) == (s > 0.0) else -1
    moved = np.int64(bits + step).view(np.float64)
    return np.float32(moved if fix else s)


def _fma_hw_typer(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` rounded once (LLVM ``llvm.fma``: IEEE fusedMultiplyAdd, an ``vfmadd`` instruction or
    libm's ``fma``; never contracted or relaxed), in ``a``'s float type (the other operands converted)."""
    ftype = a if isinstance(a, types.Float) else types.float64
    sig = ftype(ftype, ftype, ftype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        lty = context.get_value_type(ftype)
        fn = builder.module.declare_intrinsic("llvm.fma", [lty], ir.FunctionType(lty, [lty, lty, lty]))
        return builder.call(fn, list(args))

    return sig, codegen


fma_hw: Any = intrinsic(_fma_hw_typer)


def _prefetch_typer(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Prefetch (``llvm.prefetch``, read, into every cache level) the line holding element ``idx`` of the
    1-D array ``arr``; ``idx`` may lie past the end (a prefetch never faults)."""
    sig = types.void(arr, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(arr.dtype)))
        ptr = builder.gep(builder.bitcast(ary.data, i8p), [builder.mul(args[1], itemsize)])
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")  # type: ignore[no-untyped-call]
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


prefetch: Any = intrinsic(_prefetch_typer)


VL = 16
"""Elements per vector step of the fast loops (one zmm of float32, two of float64)."""

NEAR = 2.0**-20
"""Relative distance to the nearest half-integer below which the checked reciprocal loop (kind 4) divides."""


def _make_qvec(kind: int, hafz: bool) -> Any:
    """An intrinsic ``qvec(x, i, dst, sd, sm, zb, za, pi, k) -> uint64``: the fast-loop arithmetic on the
    ``VL`` elements ``x[i : i + VL]`` with the parameters ``sd[pi : pi + VL]`` (and so on), codes stored to
    ``dst[i : i + VL]``; returns the bit mask of NaN lanes.  ``pi = i`` for parameters along the row, ``pi = 0``
    with ``VL``-long broadcast buffers for one parameter set.  ``k`` is the tuple ``(1/2, 1, qmin, qmax, NEAR)``
    in the compute precision (scalars, so that LLVM keeps them in registers across the loop).

    Written as LLVM vector IR (``VL`` lanes) rather than left to the loop vectoriser, which picks 256-bit
    vectors on this target and spends more instructions on the NaN test.  ``kind``: 0 ``x / sd + zb``,
    1 ``x * sm + zb``, 2 ``fma(x, sm, zb)`` (NaN lanes computed as 0, as the scalar loops do), 4 the checked
    reciprocal: ``v = x * sm`` (``sm`` the rounded reciprocal of ``sd``), and when any lane has ``v`` within
    ``NEAR * |v|`` of a half-integer, or is not finite, the whole vector is recomputed as kind 0 with
    ``zb = 0``.  The arrays must be contiguous (the caller passes row slices).
    """

    def typer(typingctx: Any, x: Any, i: Any, dst: Any, sd: Any, sm: Any, zb: Any, za: Any, pi: Any, k: Any) -> Any:
        sig = types.uint64(x, i, dst, sd, sm, zb, za, pi, k)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xa, ia, da, sda, sma, zba, zaa, pia, ka = args
            fty = context.get_value_type(x.dtype)
            vf = ir.VectorType(fty, VL)
            suffix = f"v{VL}f{x.dtype.bitwidth}"
            i32 = ir.IntType(32)

            def ptr(arr_ty: Any, arr: Any, elty: Any, idx: Any) -> Any:
                ary = context.make_array(arr_ty)(context, builder, arr)
                return builder.bitcast(builder.gep(ary.data, [idx]), ir.VectorType(elty, VL).as_pointer())

            def load(arr_ty: Any, arr: Any, idx: Any = None) -> Any:
                idx = pia if idx is None else idx
                return builder.load(ptr(arr_ty, arr, fty, idx), align=x.dtype.bitwidth // 8)

            def const(j: int) -> Any:
                val = builder.extract_value(ka, j - 1)
                vec = builder.insert_element(ir.Constant(vf, ir.Undefined), val, ir.Constant(i32, 0))
                return builder.shuffle_vector(
                    vec, ir.Constant(vf, ir.Undefined), ir.Constant(ir.VectorType(i32, VL), [0] * VL)
                )

            def call(name: str, *vals: Any) -> Any:
                fnty = ir.FunctionType(vf, [vf] * len(vals))
                fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.{name}.{suffix}")  # type: ignore[no-untyped-call]
                return builder.call(fn, list(vals))

            zero = ir.Constant(vf, None)
            half, one, qlo, qhi = const(1), const(2), const(3), const(4)

            def rnd(v: Any) -> Any:
                if not hafz:
                    return call("roundeven", v)
                t = call("trunc", v)
                ge = builder.fcmp_ordered(">=", call("fabs", builder.fsub(v, t)), half)
                step = builder.select(builder.fcmp_ordered(">", v, zero), one, builder.fneg(one))
                return builder.select(ge, builder.fadd(t, step), t)

            def store(r: Any) -> None:
                c = builder.fadd(r, load(za, zaa))
                c = builder.select(builder.fcmp_ordered("<", c, qlo), qlo, c)
                c = builder.select(builder.fcmp_ordered(">", c, qhi), qhi, c)
                dty = context.get_value_type(dst.dtype)
                codes = builder.trunc(builder.fptosi(c, ir.VectorType(i32, VL)), ir.VectorType(dty, VL))
                builder.store(codes, ptr(dst, da, dty, ia), align=1)

            def exact(xv: Any, zb_zero: bool) -> Any:
                isn = builder.fcmp_unordered("uno", xv, xv)
                xz = builder.select(isn, zero, xv)
                if kind in (0, 4):
                    v = builder.fdiv(xz, load(sd, sda))
                    v = v if zb_zero else builder.fadd(v, load(zb, zba))
                elif kind == 1:
                    v = builder.fadd(builder.fmul(xz, load(sm, sma)), load(zb, zba))
                else:
                    v = call("fma", xz, load(sm, sma), load(zb, zba))
                store(rnd(v))
                return builder.zext(builder.bitcast(isn, ir.IntType(VL)), ir.IntType(64))

            xv = load(x, xa, ia)
            if kind != 4:
                return exact(xv, False)
            v = builder.fmul(xv, load(sm, sma))
            r = rnd(v)
            store(r)
            # near a half-integer, or not finite (NaN distance): unordered-or-less-equal
            # |v - r| + NEAR * |v| >= 1/2 (one fma: rounding it can only raise more flags, never drop one)
            reach = call("fma", call("fabs", v), const(5), call("fabs", builder.fsub(v, r)))
            near = builder.fcmp_unordered(">=", reach, half)
            flagged = builder.icmp_unsigned("!=", builder.bitcast(near, ir.IntType(VL)), ir.Constant(ir.IntType(VL), 0))
            res = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(64), 0))  # type: ignore[no-untyped-call]
            with builder.if_then(flagged, likely=False):
                builder.store(exact(xv, True), res)
            return builder.load(res)

        return sig, codegen

    return intrinsic(typer)


_QVEC = {(k, h): _make_qvec(k, h) for k in (0, 1, 2, 4) for h in (False, True)}
qvec_div: Any = _QVEC[0, False]
qvec_div_hafz: Any = _QVEC[0, True]
qvec_mul: Any = _QVEC[1, False]
qvec_mul_hafz: Any = _QVEC[1, True]
qvec_fma: Any = _QVEC[2, False]
qvec_fma_hafz: Any = _QVEC[2, True]
qvec_chk: Any = _QVEC[4, False]
qvec_chk_hafz: Any = _QVEC[4, True]


@njit
def _round(v: Any, rmode: Any) -> Any:
    """``v`` rounded to an integral value under mode ``rmode``, as a float64 (infinities kept)."""
    if rmode == 0:
        return np.float64(np.rint(v))
    if rmode == 5:
        return np.float64(np.trunc(v))
    if rmode == 6:
        return np.float64(np.ceil(v))
    if rmode == 7:
        return np.float64(np.floor(v))
    a = np.float64(abs(v))
    if not np.isfinite(a):
        return np.float64(v)
    if rmode == 8:
        m = np.ceil(a)
    else:
        lower = np.floor(a)
        d = a - lower  # exact: a and lower are float32 (or float64) values, a - floor(a) is exact
        if d > 0.5:
            m = lower + 1.0
        elif d < 0.5:
            m = lower
        else:
            even = np.fmod(lower, 2.0) == 0.0
            if rmode == 1:
                m = lower + 1.0
            elif rmode == 2:
                m = lower + 1.0 if v > 0 else lower
            elif rmode == 3:
                m = lower if v > 0 else lower + 1.0
            elif rmode == 4:
                m = lower
            elif rmode == 9:
                m = lower + 1.0 if even else lower
            else:
                m = lower if even else lower + 1.0
    return -m if v < 0 else m


@njit
def _narrow(r: Any, off: Any, qmin: Any, qmax: Any, bits: Any, ovf: Any) -> Any:
    """The exact integer ``r + off`` saturated (``ovf == 0``, or ``r`` infinite) or wrapped into the format."""
    if ovf == 0 or not np.isfinite(r):
        bound = 17179869184.0  # 2**34: beyond it every offset (|off| < 2**33) saturates
        rr = min(max(r, -bound), bound)
        t = np.int64(rr) + off
        return min(max(t, qmin), qmax)
    # below 2**62 int64(r) is exact and congruent to fmod(r, 2**bits) modulo 2**bits
    t = np.int64(r) if abs(r) < 4611686018427387904.0 else np.int64(np.fmod(r, np.float64(np.int64(1) << bits)))
    t = t + off
    return ((t - qmin) & ((np.int64(1) << bits) - 1)) + qmin


@njit
def _quant1(
    xv: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    isnan = xv != xv
    # NaN read as 0 in the compute precision, overridden below.  ``s - s`` (s finite) keeps s's type; ``s * 0``
    # would be float64 (float32 times an int64 literal) and silently widen the whole float32 computation.
    xc = xv if not isnan else s - s
    v = xc / s if sapp == 0 else xc * inv
    off = zi
    if zorder == 1:
        v = v + zf
        off = 0
    elif zorder == 2:
        v = fma32(xc, inv, zf)
        off = 0
    code = _narrow(_round(v, rmode), off, qmin, qmax, bits, ovf)
    if isnan:
        code = qmin if nanp == 1 else zi
    return code


@njit
def _rint_clip(v: Any, za: Any, hafz: Any, k0: Any, k1: Any, k2: Any, k3: Any, k4: Any) -> Any:
    """``int32(clip(round(v) + za, qmin, qmax))``, half to even or (``hafz``) half away from zero, branch-free.

    Half away from zero: ``t = trunc(v)`` plus ``sign(v)`` where ``|v - t| >= 1/2`` (the difference is exact;
    for an infinite ``v`` it is NaN and ``t = v`` is kept).  ``k0 .. k4`` are the constants ``kc[0] .. kc[4]``
    (0, 1/2, 1, qmin, qmax) as scalars: loaded inside a conditional they would become gathers.
    """
    if hafz:
        t = np.trunc(v)
        r = t + (k2 if v > k0 else -k2) if abs(v - t) >= k1 else t
    else:
        r = np.rint(v)
    c = r + za
    c = k3 if c < k3 else c
    c = k4 if c > k4 else c
    return np.int32(c)


@njit
def _loop_div(xr: Any, buf: Any, sd: Any, zb: Any, za: Any, hafz: Any, kc: Any) -> Any:
    """Kind 0, DIVIDE: codes of ``x / sd + zb`` into ``buf``; returns whether it saw a NaN."""
    zero, half, one, qlo, qhi = kc[0], kc[1], kc[2], kc[3], kc[4]
    nan = False  # a bool flag, not an int64 count: an int64 in the loop would halve the vector width
    for i in range(xr.shape[0]):
        xv = xr[i]
        isn = xv != xv
        nan = nan | isn
        buf[i] = _rint_clip((zero if isn else xv) / sd[i] + zb[i], za[i], hafz, zero, half, one, qlo, qhi)
    return nan


@njit
def _loop_mul(xr: Any, buf: Any, sm: Any, zb: Any, za: Any, hafz: Any, kc: Any) -> Any:
    """Kind 1, RECIPROCAL_MULTIPLY: codes of ``x * sm + zb`` into ``buf``; returns whether it saw a NaN."""
    zero, half, one, qlo, qhi = kc[0], kc[1], kc[2], kc[3], kc[4]
    nan = False
    for i in range(xr.shape[0]):
        xv = xr[i]
        isn = xv != xv
        nan = nan | isn
        buf[i] = _rint_clip((zero if isn else xv) * sm[i] + zb[i], za[i], hafz, zero, half, one, qlo, qhi)
    return nan


@njit
def _loop_fma(xr: Any, buf: Any, sm: Any, zb: Any, hafz: Any, kc: Any) -> Any:
    """Kind 2, FUSED_MULTIPLY_ADD (float32): codes of ``fma(x, sm, zb)`` into ``buf``; returns whether it saw a NaN."""
    zero, half, one, qlo, qhi = kc[0], kc[1], kc[2], kc[3], kc[4]
    nan = False
    for i in range(xr.shape[0]):
        xv = xr[i]
        isn = xv != xv
        nan = nan | isn
        buf[i] = _rint_clip(fma_hw(zero if isn else xv, sm[i], zb[i]), zero, hafz, zero, half, one, qlo, qhi)
    return nan


@njit
def _vec(dst: Any, xr: Any, sdr: Any, smr: Any, zbr: Any, zar: Any, kind: Any, hafz: Any, kc: Any, ps: Any) -> Any:
    """The ``VL``-element steps of kinds 0, 1, 2, 4 over the first ``n - n % VL`` elements, parameters at
    ``i * ps`` (``ps`` 1 along the row, 0 for one broadcast set); returns the OR of the NaN lane masks.  One
    intrinsic per (kind, rounding) pair, selected by constant arguments."""
    n = xr.shape[0] - xr.shape[0] % VL
    m = np.uint64(0)
    k = (kc[1], kc[2], kc[3], kc[4], kc[5])
    if kind == 0:
        if hafz:
            for i in range(0, n, VL):
                prefetch(xr, i + PREFETCH)
                m |= qvec_div_hafz(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
        else:
            for i in range(0, n, VL):
                prefetch(xr, i + PREFETCH)
                m |= qvec_div(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
    elif kind == 1:
        if hafz:
            for i in range(0, n, VL):
                prefetch(xr, i + PREFETCH)
                m |= qvec_mul_hafz(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
        else:
            for i in range(0, n, VL):
                prefetch(xr, i + PREFETCH)
                m |= qvec_mul(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
    elif kind == 2:
        if hafz:
            for i in range(0, n, VL):
                prefetch(xr, i + PREFETCH)
                m |= qvec_fma_hafz(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
        else:
            for i in range(0, n, VL):
                prefetch(xr, i + PREFETCH)
                m |= qvec_fma(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
    elif hafz:
        for i in range(0, n, VL):
            prefetch(xr, i + PREFETCH)
            m |= qvec_chk_hafz(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
    else:
        for i in range(0, n, VL):
            prefetch(xr, i + PREFETCH)
            m |= qvec_chk(xr, i, dst, sdr, smr, zbr, zar, i * ps, k)
    return m != 0


@njit
def _fast(dst: Any, xr: Any, sdr: Any, smr: Any, zbr: Any, zar: Any, kind: Any, hafz: Any, kc: Any, ps: Any) -> Any:
    """Kinds 0, 1, 2, 4 into ``dst`` (the output's int8 or int16 view); returns whether a NaN was seen.

    Parameters along the row (``ps`` 1: as long as ``xr``) or one set broadcast into ``VL``-long buffers
    (``ps`` 0).  Whole vectors through ``_vec``, the last ``n % VL`` elements through the scalar loops (kind
    4's tail divides: it is DIVIDE with the zero point after rounding, ``zb = 0``).  Each call passes a
    constant rounding flag, so LLVM specialises the scalar loops on it.
    """
    nan = _vec(dst, xr, sdr, smr, zbr, zar, kind, hafz, kc, ps)
    n = xr.shape[0]
    t = n - n % VL
    q = t * ps  # the tail's parameters
    m = q + n - t
    dt, xt, sdt, smt, zbt, zat = dst[t:], xr[t:], sdr[q:m], smr[q:m], zbr[q:m], zar[q:m]
    if kind == 0 or kind == 4:
        if hafz:
            return _loop_div(xt, dt, sdt, zbt, zat, True, kc) | nan
        return _loop_div(xt, dt, sdt, zbt, zat, False, kc) | nan
    if kind == 1:
        if hafz:
            return _loop_mul(xt, dt, smt, zbt, zat, True, kc) | nan
        return _loop_mul(xt, dt, smt, zbt, zat, False, kc) | nan
    if hafz:
        return _loop_fma(xt, dt, smt, zbt, True, kc) | nan
    return _loop_fma(xt, dt, smt, zbt, False, kc) | nan


@njit
def _generic(
    xr: Any,
    buf: Any,
    sr: Any,
    ir: Any,
    fr: Any,
    zr: Any,
    vec: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """Kind 2 on one block, element by element (parameters along the block when ``vec``)."""
    nans = 0
    for i in range(xr.shape[0]):
        j = i if vec else 0
        xv = xr[i]
        nans += xv != xv
        buf[i] = _quant1(xv, sr[j], ir[j], fr[j], zr[j], sapp, zorder, rmode, ovf, nanp, qmin, qmax, bits)
    return nans


@njit
def store_codes(buf: Any, out8: Any, r: Any, lo: Any, hi: Any, width: Any) -> None:
    """``buf[:hi - lo]`` written to elements ``[lo, hi)`` of row ``r`` of the byte view ``out8`` (``width`` bytes each)."""
    n = hi - lo
    if width == 1:
        o1 = out8[r, lo:hi]
        for i in range(n):
            o1[i] = buf[i]
    elif width == 2:
        o2 = out8[r, 2 * lo : 2 * hi].view(np.int16)
        for i in range(n):
            o2[i] = buf[i]
    else:
        o4 = out8[r, 4 * lo : 4 * hi].view(np.int32)
        for i in range(n):
            o4[i] = buf[i]


@njit
def quantize_rows(
    x: Any,
    out8: Any,
    width: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    sd: Any,
    zb: Any,
    za: Any,
    kc: Any,
    vector: Any,
    pa: Any,
    pb: Any,
    pc: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    kind: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """Work items ``[w0, w1)``; returns a count that is nonzero when a NaN was seen (exact for kind 3 only).

    ``s``, ``inv``, ``zf`` (compute precision; float32 for the fused zero point), ``zi`` (int64): the
    scale, its reciprocal (the scale for DIVIDE) and the zero point, read by the generic loop (kind 3).
    The fast loops (kinds 0, 1, 2, 4) read ``sd`` (the divisor, kinds 0 and 4), ``inv`` (the multiplier,
    kinds 1 and 2; the reciprocal, kind 4), ``zb`` (the zero point added before rounding or fused, else 0)
    and ``za`` (the zero point added after rounding, else 0), a whole work item per call: along the row,
    or with scalar rows the chunk's values broadcast into ``VL``-long buffers.  ``kc`` holds 0, 1/2, 1,
    qmin, qmax and ``NEAR`` in the compute precision.
    """
    n_len = x.shape[1]
    nch = (n_len + ch - 1) // ch
    buf = np.empty(BUF, np.int32)
    pbuf = np.empty((4, VL), sd.dtype)  # one parameter set broadcast to a vector (row 2 unused: zb may differ)
    pz = np.empty(VL, zb.dtype)
    filled_p = -1
    hafz = rmode == 1
    pf = x.shape[0] * n_len >= 1 << 22  # prefetching pays on inputs beyond the caches, costs within them
    nans = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        lo = c * ch
        hi = min(n_len, lo + ch)
        prow = (r // pa) * pb + (r % pa) // pc if vector else 0
        p = 0 if vector else (r % pa) * pb + (c if pc else 0)
        if kind != 3:
            # the fast loops: the whole work item in one call, 8- or 16-bit codes straight into the output
            xr = x[r, lo:hi]
            if vector:
                sdr, smr, zbr, zar = sd[prow, lo:hi], inv[prow, lo:hi], zb[prow, lo:hi], za[prow, lo:hi]
            else:
                if p != filled_p:
                    pbuf[0, :] = sd[0, p]
                    pbuf[1, :] = inv[0, p]
                    pz[:] = zb[0, p]
                    pbuf[3, :] = za[0, p]
                    filled_p = p
                sdr, smr, zbr, zar = pbuf[0], pbuf[1], pz, pbuf[3]
            ps = 1 if vector else 0
            if width == 1:
                o1 = out8[r, lo:hi]
                k = _fast(o1, xr, sdr, smr, zbr, zar, kind, hafz, kc, ps)
                if k and nanp == 1:  # TO_QMIN (the loops wrote the zero point)
                    for i in range(hi - lo):
                        if xr[i] != xr[i]:
                            o1[i] = qmin
            else:
                o2 = out8[r, 2 * lo : 2 * hi].view(np.int16)
                k = _fast(o2, xr, sdr, smr, zbr, zar, kind, hafz, kc, ps)
                if k and nanp == 1:
                    for i in range(hi - lo):
                        if xr[i] != xr[i]:
                            o2[i] = qmin
            nans += k
            continue
        xrow = x[r]
        for b0 in range(lo, hi, BUF):
            b1 = min(hi, b0 + BUF)
            xr = x[r, b0:b1]
            if pf:
                for j in range(b0 + PREFETCH, b1 + PREFETCH, 16):  # the input PREFETCH elements ahead
                    prefetch(xrow, j)
            q0 = b0 if vector else p
            q1 = b1 if vector else p + 1
            k = _generic(
                xr,
                buf,
                s[prow, q0:q1],
                inv[prow, q0:q1],
                zf[prow, q0:q1],
                zi[prow, q0:q1],
                vector,
                sapp,
                zorder,
                rmode,
                ovf,
                nanp,
                qmin,
                qmax,
                bits,
            )
            store_codes(buf, out8, r, b0, b1, width)
            nans += k
    return nans


@njit
def dequantize_rows(
    q: Any,
    out: Any,
    s: Any,
    zi: Any,
    vector: Any,
    pa: Any,
    pb: Any,
    pc: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    qmin: Any,
    qmax: Any,
) -> Any:
    """``float32(q - z) * s`` over work items ``[w0, w1)``; returns the number of codes outside the format."""
    n_len = q.shape[1]
    nch = (n_len + ch - 1) // ch
    bad = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        lo = c * ch
        hi = min(n_len, lo + ch)
        qr = q[r, lo:hi]
        orow = out[r, lo:hi]
        if vector:
            prow = (r // pa) * pb + (r % pa) // pc
            sr = s[prow, lo:hi]
            zr = zi[prow, lo:hi]
            for i in range(hi - lo):
                qv = np.int64(qr[i])
                bad += (qv < qmin) | (qv > qmax)
                orow[i] = np.float32(qv - zr[i]) * sr[i]
        else:
            p = (r % pa) * pb + (c if pc else 0)
            sv = s[0, p]
            zv = zi[0, p]
            for i in range(hi - lo):
                qv = np.int64(qr[i])
                bad += (qv < qmin) | (qv > qmax)
                orow[i] = np.float32(qv - zv) * sv
    return bad


@njit_parallel
def quantize_rows_par(
    x: Any,
    out8: Any,
    width: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    sd: Any,
    zb: Any,
    za: Any,
    kc: Any,
    vector: Any,
    pa: Any,
    pb: Any,
    pc: Any,
    ch: Any,
    parts: Any,
    kind: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """``quantize_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = x.shape[0] * ((x.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = quantize_rows(
            x,
            out8,
            width,
            s,
            inv,
            zf,
            zi,
            sd,
            zb,
            za,
            kc,
            vector,
            pa,
            pb,
            pc,
            ch,
            t * nw // parts,
            (t + 1) * nw // parts,
            kind,
            sapp,
            zorder,
            rmode,
            ovf,
            nanp,
            qmin,
            qmax,
            bits,
        )
    return counts.sum()


@njit_parallel
def dequantize_rows_par(
    q: Any,
    out: Any,
    s: Any,
    zi: Any,
    vector: Any,
    pa: Any,
    pb: Any,
    pc: Any,
    ch: Any,
    parts: Any,
    qmin: Any,
    qmax: Any,
) -> Any:
    """``dequantize_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = q.shape[0] * ((q.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = dequantize_rows(
            q, out, s, zi, vector, pa, pb, pc, ch, t * nw // parts, (t + 1) * nw // parts, qmin, qmax
        )
    return counts.sum()
