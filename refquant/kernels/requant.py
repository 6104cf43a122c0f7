"""Requantization kernels (private; ``refquant.fast.requantize`` validates and calls them).

Per element, with the element's fixed-point multiplier ``q`` and shift ``e`` (TFLite convention), or
its real multiplier ``m`` (float64 array; for FLOAT32 it holds float32 values), the output zero point
``zp`` and the clamp bounds ``[lo, hi]`` (the definitions of ``refquant.spec.fixed_point``):

* ``mode`` 0 DOUBLE: ``y = acc << max(e, 0)``, gemmlowp SaturatingRoundingDoublingHighMul(y, q),
  then RoundingDivideByPOT by ``max(-e, 0)``;
* ``mode`` 1 SINGLE: ``(acc * q + 2**(30 - e)) >> (31 - e)``;
* ``mode`` 2 FLOAT32: ``rint(float32(acc) * float32(m))``; ``mode`` 3 FLOAT64: ``rint(float64(acc) * m)``.

Then ``clamp(r + zp, lo, hi)``.  Where the definition makes a value unpredictable (``acc`` outside
int32 for the fixed-point modes, ``y`` or the scaled value outside int32, ``r + zp`` outside int32)
the element is counted and written as ``lo``; the caller then lets the specification raise.

Layout as in ``refquant.kernels.quant``: a C-contiguous ``(R, L)`` view cut into chunks of ``ch``;
scalar rows use parameter ``r % pr``, vector rows the parameter row ``0`` along the row.

``requantize_bytes`` (used by ``refquant.fast.requantize``) writes the codes through an int32 buffer
and the output's bytes (``refquant.kernels.quant.store_codes``), so one compiled kernel per
accumulator dtype serves every output width (``requantize_bytes_par``: over parallel ranges).  ``requantize_rows`` / ``requantize_rows_par`` write an int8/int16/int32 output directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from refquant.kernels._jit import njit, njit_parallel
from refquant.kernels.quant import BUF, store_codes

__all__ = ["requantize_bytes", "requantize_bytes_par", "requantize_rows", "requantize_rows_par"]


@njit
def _requant1(a: Any, q: Any, e: Any, m: Any, mode: Any, zp: Any, lo: Any, hi: Any) -> Any:
    int32_min = -2147483648
    int32_max = 2147483647
    if mode >= 2:
        v = np.float64(np.rint(np.float32(a) * np.float32(m))) if mode == 2 else np.rint(np.float64(a) * m)
        v = min(max(v, np.float64(lo - zp)), np.float64(hi - zp))
        return np.int64(v) + zp, False
    if a < int32_min or a > int32_max:
        return lo, True
    if mode == 0:
        left = max(e, 0)
        right = max(-e, 0)
        if left > 30:
            return lo, True
        y = a << left
        if y < int32_min or y > int32_max:
            return lo, True
        ab = y * q  # |y * q| <= 2**62
        t = ab + (1073741824 if ab >= 0 else 1 - 1073741824)
        high = t >> 31 if t >= 0 else -((-t) >> 31)  # C's truncating division by 2**31
        if y == int32_min and q == int32_min:
            high = int32_max
        mask = (np.int64(1) << right) - 1
        rem = high & mask
        thr = (mask >> 1) + (1 if high < 0 else 0)
        r = (high >> right) + (1 if rem > thr else 0)
    else:
        total = 31 - e
        r = (a * q + (np.int64(1) << (total - 1))) >> total
        if r < int32_min or r > int32_max:
            return lo, True
    t2 = r + zp
    if t2 < int32_min or t2 > int32_max:
        return lo, True
    return min(max(t2, lo), hi), False


@njit
def requantize_bytes(
    acc: Any,
    out8: Any,
    width: Any,
    q: Any,
    e: Any,
    m: Any,
    vector: Any,
    pr: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    mode: Any,
    zp: Any,
    lo: Any,
    hi: Any,
) -> Any:
    """``requantize_rows`` into the bytes ``out8`` (``(R, L * width)`` int8) of an output of ``width`` bytes."""
    n_len = acc.shape[1]
    nch = (n_len + ch - 1) // ch
    buf = np.empty(BUF, np.int32)
    bad = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        lo_i = c * ch
        hi_i = min(n_len, lo_i + ch)
        p = r % pr
        for b0 in range(lo_i, hi_i, BUF):
            b1 = min(hi_i, b0 + BUF)
            ar = acc[r, b0:b1]
            for i in range(b1 - b0):
                j = b0 + i if vector else p
                code, flag = _requant1(np.int64(ar[i]), q[j], e[j], m[j], mode, zp, lo, hi)
                bad += flag
                buf[i] = code
            store_codes(buf, out8, r, b0, b1, width)
    return bad


@njit_parallel
def requantize_bytes_par(
    acc: Any,
    out8: Any,
    width: Any,
    q: Any,
    e: Any,
    m: Any,
    vector: Any,
    pr: Any,
    ch: Any,
    parts: Any,
    mode: Any,
    zp: Any,
    lo: Any,
    hi: Any,
) -> Any:
    """``requantize_bytes`` over every work item, split into ``parts`` parallel ranges."""
    nw = acc.shape[0] * ((acc.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = requantize_bytes(
            acc, out8, width, q, e, m, vector, pr, ch, t * nw // parts, (t + 1) * nw // parts, mode, zp, lo, hi
        )
    return counts.sum()


@njit
def requantize_rows(
    acc: Any,
    out: Any,
    q: Any,
    e: Any,
    m: Any,
    vector: Any,
    pr: Any,
    ch: Any,
    w0: Any,
    w1: Any,
    mode: Any,
    zp: Any,
    lo: Any,
    hi: Any,
) -> Any:
    """Work items ``[w0, w1)``; parameters per row (``r % pr``) or, with ``vector``, along the row.

    Returns the number of elements whose result the definition leaves unpredictable.
    """
    n_len = acc.shape[1]
    nch = (n_len + ch - 1) // ch
    bad = 0
    for w in range(w0, w1):
        r = w // nch
        c = w - r * nch
        lo_i = c * ch
        hi_i = min(n_len, lo_i + ch)
        ar = acc[r, lo_i:hi_i]
        orow = out[r, lo_i:hi_i]
        if vector:
            qr = q[lo_i:hi_i]
            er = e[lo_i:hi_i]
            mr = m[lo_i:hi_i]
            for i in range(hi_i - lo_i):
                code, flag = _requant1(np.int64(ar[i]), qr[i], er[i], mr[i], mode, zp, lo, hi)
                bad += flag
                orow[i] = code
        else:
            p = r % pr
            qv = q[p]
            ev = e[p]
            mv = m[p]
            for i in range(hi_i - lo_i):
                code, flag = _requant1(np.int64(ar[i]), qv, ev, mv, mode, zp, lo, hi)
                bad += flag
                orow[i] = code
    return bad


@njit_parallel
def requantize_rows_par(
    acc: Any,
    out: Any,
    q: Any,
    e: Any,
    m: Any,
    vector: Any,
    pr: Any,
    ch: Any,
    parts: Any,
    mode: Any,
    zp: Any,
    lo: Any,
    hi: Any,
) -> Any:
    """``requantize_rows`` over every work item, split into ``parts`` parallel ranges."""
    nw = acc.shape[0] * ((acc.shape[1] + ch - 1) // ch)
    counts = np.zeros(parts, np.int64)
    for t in prange(parts):
        counts[t] = requantize_rows(
            acc, out, q, e, m, vector, pr, ch, t * nw // parts, (t + 1) * nw // parts, mode, zp, lo, hi
        )
    return counts.sum()
