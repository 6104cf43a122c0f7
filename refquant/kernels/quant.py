"""Affine quantize and dequantize kernels (private; ``refquant.fast`` validates and calls them).

Layout.  The caller views the tensor as a C-contiguous 2-D array ``(R, L)`` of rows and cuts each
row into chunks of ``ch`` elements; a work item is one chunk, item ``w`` being chunk ``w % nch`` of
row ``w // nch`` (``nch = ceil(L / ch)``).  Parameters are found in one of two ways:

* scalar rows (``*_scalar_rows``): one parameter set per chunk, index
  ``p = (r % pr) * pc + (c if block_chunks else 0)`` into 1-D parameter arrays (per tensor:
  ``pr = pc = 1``; per axis with elements after the axis: rows are ``(outer, axis)`` pairs,
  ``pr = D_axis``; per block along the last axis: ``ch = block_size``, ``block_chunks`` set);
* vector rows (``*_vector_rows``): parameters vary along the row, from the 2-D parameter row
  ``prow = (r // dv) * nb + (r % dv) // bsz`` (per axis along the last axis: one parameter row; per
  block with elements after the axis: rows are ``(outer, axis)`` pairs).

Arithmetic, per element (the definitions of ``refquant.spec.affine``, ``refquant.spec.rounding``
and ``refquant.spec.saturation``): the compute precision is the parameters' dtype (float32 or
float64; a float32 ``x`` is widened exactly when the parameters are float64), ``v = x / s`` or
``x * inv``, then the zero point after rounding (exact integer), before rounding (``v + zf`` in the
compute precision) or fused (``fma32(x, inv, zf)``, one float32 rounding), rounding by the exact
fraction of ``|v|``, then saturation (infinities too) or two's-complement wrap of the exact integer.

Option codes (``refquant.fast`` maps the enums to these ints):

* ``sapp``: 0 DIVIDE, 1 RECIPROCAL_MULTIPLY
* ``zorder``: 0 AFTER_ROUNDING, 1 BEFORE_ROUNDING, 2 FUSED_MULTIPLY_ADD
* ``rmode``: 0 HALF_TO_EVEN, 1 HALF_AWAY_FROM_ZERO, 2 HALF_TOWARD_POSITIVE, 3 HALF_TOWARD_NEGATIVE,
  4 HALF_TOWARD_ZERO, 5 TOWARD_ZERO, 6 TOWARD_POSITIVE, 7 TOWARD_NEGATIVE, 8 AWAY_FROM_ZERO,
  9 HALF_TO_ODD
* ``ovf``: 0 SATURATE, 1 WRAP
* ``nanp``: 0 RAISE (the element is written as the zero point and counted), 1 TO_QMIN,
  2 TO_ZERO_POINT

Codes are written through an int8/int16/int32 view of the output (an unsigned code's bit pattern
is the truncated int64 code).  Quantize kernels return the number of NaN inputs seen; dequantize
kernels return the number of codes outside ``[qmin, qmax]``.  No validation happens here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from refquant.kernels._jit import njit, njit_parallel

__all__ = [
    "dequantize_scalar_rows",
    "dequantize_scalar_rows_par",
    "dequantize_vector_rows",
    "dequantize_vector_rows_par",
    "fma32",
    "quantize_scalar_rows",
    "quantize_scalar_rows_par",
    "quantize_vector_rows",
    "quantize_vector_rows_par",
]


@njit
def fma32(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` for float32 operands rounded once to float32 (round half to even).

    The float64 product of two float32 numbers is exact; the float64 sum is corrected to
    round-to-odd with its TwoSum error, and round-to-odd at 53 bits followed by round half to even
    at 24 bits is the correctly rounded result.
    """
    p = np.float64(a) * np.float64(b)
    c64 = np.float64(c)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    if np.isfinite(s) and err != 0.0 and (np.float64(s).view(np.int64) & 1) == 0:
        s = np.nextafter(s, np.inf if err > 0.0 else -np.inf)
    return np.float32(s)


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
def _qgeneric(
    xr: Any,
    orow: Any,
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
    """Any option combination, element by element (parameters along the segment when ``vec``)."""
    nans = 0
    for i in range(xr.shape[0]):
        j = i if vec else 0
        xv = xr[i]
        nans += xv != xv
        orow[i] = _quant1(xv, sr[j], ir[j], fr[j], zr[j], sapp, zorder, rmode, ovf, nanp, qmin, qmax, bits)
    return nans


@njit
def _qseg(
    xr: Any,
    orow: Any,
    sr: Any,
    ir: Any,
    fr: Any,
    zr: Any,
    kc: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    vec: Any,
    sapp: Any,
    zorder: Any,
    rclass: Any,
) -> Any:
    """Saturating quantization of one segment, rounding half to even (``rclass`` 0) or half away from zero (1).

    Called with constant ``vec``, ``sapp``, ``zorder`` and ``rclass``: Numba compiles one specialised
    copy per combination (literal arguments, dead branches pruned), so every loop is straight-line
    code that LLVM vectorises.  ``kc`` holds the constants 0, 1/2, 1 and 2**34 in the compute precision.
    """
    zero = kc[0]
    half = kc[1]
    one = kc[2]
    big = kc[3]
    sv = sr[0]
    iv = ir[0]
    fv = fr[0]
    zv = zr[0]
    nans = 0
    for i in range(xr.shape[0]):
        if vec == 1:
            sv = sr[i]
            iv = ir[i]
            fv = fr[i]
            zv = zr[i]
        xv = xr[i]
        isn = xv != xv
        nans += isn
        xc = zero if isn else xv
        if sapp == 0:  # noqa: SIM108 (a statement, so that Numba prunes the branch for a constant sapp)
            v = xc / sv
        else:
            v = xc * iv
        if zorder == 1:
            v = v + fv
        elif zorder == 2:
            v = fma32(xc, iv, fv)
        if rclass == 0:
            r = np.rint(v)
        else:
            a = -v if v < zero else v
            f = np.floor(a)
            m = f + one if a - f >= half else f
            r = -m if v < zero else m
        r = -big if r < -big else r
        r = big if r > big else r
        c = np.int64(r) + (zv if zorder == 0 else 0)
        c = qmin if c < qmin else c
        c = qmax if c > qmax else c
        nanc = qmin if nanp == 1 else zv
        orow[i] = nanc if isn else c
    return nans


@njit
def _qchunk(
    xr: Any,
    orow: Any,
    sr: Any,
    ir: Any,
    fr: Any,
    zr: Any,
    kc: Any,
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
    """One segment: a specialised saturating loop for the two common rounding modes, else element by element."""
    if ovf != 0 or rmode > 1:
        return _qgeneric(xr, orow, sr, ir, fr, zr, vec, sapp, zorder, rmode, ovf, nanp, qmin, qmax, bits)
    if sapp == 0:
        if zorder == 0:
            if rmode == 0:
                return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 0, 0, 0)
            return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 0, 0, 1)
        if rmode == 0:
            return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 0, 1, 0)
        return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 0, 1, 1)
    if zorder == 0:
        if rmode == 0:
            return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 1, 0, 0)
        return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 1, 0, 1)
    if zorder == 1:
        if rmode == 0:
            return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 1, 1, 0)
        return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 1, 1, 1)
    if rmode == 0:
        return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 1, 2, 0)
    return _qseg(xr, orow, sr, ir, fr, zr, kc, nanp, qmin, qmax, vec, 1, 2, 1)


@njit
def quantize_scalar_rows(
    x: Any,
    out: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    kc: Any,
    pr: Any,
    pc: Any,
    block_chunks: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """Work items ``[w0, w1)`` of a scalar-rows quantization; returns the NaN count."""
    n_len = x.shape[1]
    nch = (n_len + ch - 1) // ch
    nans = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        p = (r % pr) * pc + (c if block_chunks else 0)
        lo = c * ch
        hi = min(n_len, lo + ch)
        nans += _qchunk(
            x[r, lo:hi],
            out[r, lo:hi],
            s[p : p + 1],
            inv[p : p + 1],
            zf[p : p + 1],
            zi[p : p + 1],
            kc,
            0,
            sapp,
            zorder,
            rmode,
            ovf,
            nanp,
            qmin,
            qmax,
            bits,
        )
    return nans


@njit_parallel
def quantize_scalar_rows_par(
    x: Any,
    out: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    kc: Any,
    pr: Any,
    pc: Any,
    block_chunks: Any,
    ch: Any,
    parts: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """``quantize_scalar_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = x.shape[0] * ((x.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = quantize_scalar_rows(
            x,
            out,
            s,
            inv,
            zf,
            zi,
            kc,
            pr,
            pc,
            block_chunks,
            ch,
            t * nw // parts,
            (t + 1) * nw // parts,
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


@njit
def quantize_vector_rows(
    x: Any,
    out: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    kc: Any,
    dv: Any,
    nb: Any,
    bsz: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """Work items ``[w0, w1)`` of a vector-rows quantization (2-D parameters); returns the NaN count."""
    n_len = x.shape[1]
    nch = (n_len + ch - 1) // ch
    nans = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        prow = (r // dv) * nb + (r % dv) // bsz
        lo = c * ch
        hi = min(n_len, lo + ch)
        nans += _qchunk(
            x[r, lo:hi],
            out[r, lo:hi],
            s[prow, lo:hi],
            inv[prow, lo:hi],
            zf[prow, lo:hi],
            zi[prow, lo:hi],
            kc,
            1,
            sapp,
            zorder,
            rmode,
            ovf,
            nanp,
            qmin,
            qmax,
            bits,
        )
    return nans


@njit_parallel
def quantize_vector_rows_par(
    x: Any,
    out: Any,
    s: Any,
    inv: Any,
    zf: Any,
    zi: Any,
    kc: Any,
    dv: Any,
    nb: Any,
    bsz: Any,
    ch: Any,
    parts: Any,
    sapp: Any,
    zorder: Any,
    rmode: Any,
    ovf: Any,
    nanp: Any,
    qmin: Any,
    qmax: Any,
    bits: Any,
) -> Any:
    """``quantize_vector_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = x.shape[0] * ((x.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = quantize_vector_rows(
            x,
            out,
            s,
            inv,
            zf,
            zi,
            kc,
            dv,
            nb,
            bsz,
            ch,
            t * nw // parts,
            (t + 1) * nw // parts,
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


@njit
def dequantize_scalar_rows(
    q: Any,
    out: Any,
    s: Any,
    zi: Any,
    pr: Any,
    pc: Any,
    block_chunks: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    qmin: Any,
    qmax: Any,
) -> Any:
    """``float32(q - z) * s`` over work items ``[w0, w1)``; returns the count of codes outside the format."""
    n_len = q.shape[1]
    nch = (n_len + ch - 1) // ch
    bad = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        p = (r % pr) * pc + (c if block_chunks else 0)
        lo = c * ch
        hi = min(n_len, lo + ch)
        sv = s[p]
        zv = zi[p]
        qr = q[r, lo:hi]
        orow = out[r, lo:hi]
        for i in range(hi - lo):
            qv = np.int64(qr[i])
            bad += (qv < qmin) | (qv > qmax)
            orow[i] = np.float32(qv - zv) * sv
    return bad


@njit_parallel
def dequantize_scalar_rows_par(
    q: Any,
    out: Any,
    s: Any,
    zi: Any,
    pr: Any,
    pc: Any,
    block_chunks: Any,
    ch: Any,
    parts: Any,
    qmin: Any,
    qmax: Any,
) -> Any:
    """``dequantize_scalar_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = q.shape[0] * ((q.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = dequantize_scalar_rows(
            q, out, s, zi, pr, pc, block_chunks, ch, t * nw // parts, (t + 1) * nw // parts, qmin, qmax
        )
    return counts.sum()


@njit
def dequantize_vector_rows(
    q: Any,
    out: Any,
    s: Any,
    zi: Any,
    dv: Any,
    nb: Any,
    bsz: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    qmin: Any,
    qmax: Any,
) -> Any:
    """Vector-rows dequantization of work items ``[w0, w1)``; returns the count of codes outside the format."""
    n_len = q.shape[1]
    nch = (n_len + ch - 1) // ch
    bad = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        prow = (r // dv) * nb + (r % dv) // bsz
        lo = c * ch
        hi = min(n_len, lo + ch)
        qr = q[r, lo:hi]
        orow = out[r, lo:hi]
        sr = s[prow, lo:hi]
        zr = zi[prow, lo:hi]
        for i in range(hi - lo):
            qv = np.int64(qr[i])
            bad += (qv < qmin) | (qv > qmax)
            orow[i] = np.float32(qv - zr[i]) * sr[i]
    return bad


@njit_parallel
def dequantize_vector_rows_par(
    q: Any,
    out: Any,
    s: Any,
    zi: Any,
    dv: Any,
    nb: Any,
    bsz: Any,
    ch: Any,
    parts: Any,
    qmin: Any,
    qmax: Any,
) -> Any:
    """``dequantize_vector_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = q.shape[0] * ((q.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = dequantize_vector_rows(
            q, out, s, zi, dv, nb, bsz, ch, t * nw // parts, (t + 1) * nw // parts, qmin, qmax
        )
    return counts.sum()
