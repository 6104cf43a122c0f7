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
float32 or float64; the caller converts ``x``).  Four loops (``kind``):

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


PREFETCH = 4096
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
def _fast(dst: Any, xr: Any, sdr: Any, smr: Any, zbr: Any, zar: Any, kind: Any, hafz: Any, kc: Any) -> Any:
    """Kinds 0, 1, 2 into ``dst`` (the output's int8 or int16 view); returns whether a NaN was seen.

    Each call passes a constant rounding flag: LLVM specialises the loops on it (no tie correction in
    the half-to-even copies).
    """
    if kind == 0:
        if hafz:
            return _loop_div(xr, dst, sdr, zbr, zar, True, kc)
        return _loop_div(xr, dst, sdr, zbr, zar, False, kc)
    if kind == 1:
        if hafz:
            return _loop_mul(xr, dst, smr, zbr, zar, True, kc)
        return _loop_mul(xr, dst, smr, zbr, zar, False, kc)
    if hafz:
        return _loop_fma(xr, dst, smr, zbr, True, kc)
    return _loop_fma(xr, dst, smr, zbr, False, kc)


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
    The fast loops (kinds 0, 1, 2) read ``sd`` (the divisor, kind 0), ``inv`` (the multiplier, kinds
    1 and 2), ``zb`` (the zero point added before rounding or fused, else 0) and ``za`` (the zero point
    added after rounding, else 0) along the block: with scalar rows the chunk's values are first
    broadcast into a block-long buffer, so the same vector loop serves both layouts.  ``kc`` holds 0,
    1/2, 1, qmin and qmax in the compute precision.
    """
    n_len = x.shape[1]
    nch = (n_len + ch - 1) // ch
    buf = np.empty(BUF, np.int32)
    pbuf = np.empty((4, BUF), sd.dtype)
    pz = np.empty(BUF, zb.dtype)
    filled_p = -1
    filled_n = 0
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
        xrow = x[r]
        for b0 in range(lo, hi, BUF):
            b1 = min(hi, b0 + BUF)
            n = b1 - b0
            xr = x[r, b0:b1]
            if pf:
                for j in range(b0 + PREFETCH, b1 + PREFETCH, 16):  # the input PREFETCH elements ahead
                    prefetch(xrow, j)
            if kind == 3:
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
                continue
            if vector:
                sdr = sd[prow, b0:b1]
                smr = inv[prow, b0:b1]
                zbr = zb[prow, b0:b1]
                zar = za[prow, b0:b1]
            else:
                if p != filled_p or n > filled_n:
                    pbuf[0, :n] = sd[0, p]
                    pbuf[1, :n] = inv[0, p]
                    pz[:n] = zb[0, p]
                    pbuf[3, :n] = za[0, p]
                    filled_p = p
                    filled_n = n
                sdr = pbuf[0, :n]
                smr = pbuf[1, :n]
                zbr = pz[:n]
                zar = pbuf[3, :n]
            # 8- or 16-bit codes (the fast loops serve formats of at most 16 bits) straight into the output
            if width == 1:
                o1 = out8[r, b0:b1]
                k = _fast(o1, xr, sdr, smr, zbr, zar, kind, hafz, kc)
                if k and nanp == 1:  # TO_QMIN (the loops wrote the zero point)
                    for i in range(n):
                        if xr[i] != xr[i]:
                            o1[i] = qmin
            else:
                o2 = out8[r, 2 * b0 : 2 * b1].view(np.int16)
                k = _fast(o2, xr, sdr, smr, zbr, zar, kind, hafz, kc)
                if k and nanp == 1:
                    for i in range(n):
                        if xr[i] != xr[i]:
                            o2[i] = qmin
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
