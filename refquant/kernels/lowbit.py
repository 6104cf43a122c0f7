"""Low-bit product kernels (private; ``refquant.fast`` validates and calls them): XNOR-popcount, ternary, shift-only.

The definitions are those of ``refquant.spec.binary``, ``refquant.spec.ternary`` and ``refquant.spec.log``; the
caller validates the operands and prepares them as described here.

* ``xnor_gemm`` / ``xnor_gemm_serial``: ``a`` (M, W) packed rows, ``bt`` (W, N) the packed rhs *transposed* (word
  ``w`` of every column contiguous), both with the padding bits of the last word cleared by the caller (on copies:
  ``(a & mask) XOR (b & mask) = (a XOR b) & mask``, so the spec's masked count is the count of the cleared XOR).
  ``out[m, n] = k - 2 * sum_w popcount(a[m, w] XOR bt[w, n])`` (int32).
* ``ternary_gemm`` / ``ternary_gemm_serial``: for each operand the non-zero plane ``nz = plus | minus`` (padding
  cleared) and the minus plane; ``out[m, n] = sum_w popcount(z) - 2 * popcount(z & (ma XOR mb))`` with
  ``z = nza & nzb``.  On a valid bit where both codes are non-zero the product is ``+1`` when the two signs agree
  and ``-1`` otherwise; where either code is zero it is 0.  This equals the spec's four-popcount form
  ``pc(pa&pb) + pc(ma&mb) - pc(pa&mb) - pc(ma&pb)`` whenever no valid bit is set in both planes of one operand,
  which the caller checks first (``ternary_planes_overlap``).
* ``binary_conv`` / ``binary_conv_serial``: ``xb`` (B, H, W, Wc) the ``C`` channels of each input pixel packed
  (padding bits cleared), ``wbt`` (KH, KW, Wc, O) the packed weights with the output channel last, ``wsum``
  (KH, KW, O) the exact ``sum_c w[o, c, i, j]``.  A tap inside the input contributes
  ``C - 2 * popcount(x XOR w)``; a padded tap contributes ``fill * wsum`` (``fill`` 0, +1 or -1: the value a
  padded tap holds).  Output int32 NCHW.
* ``shift_gemm`` / ``shift_gemm_serial``: ``x`` (M, K) int64, ``shift`` (K, N) int64 >= 0, ``sign`` (K, N) int64
  in {-1, 0, 1}: ``out[m, n] = sum_k sign[k, n] * (x[m, k] << shift[k, n])`` in int64; the caller guarantees that
  no term or partial sum leaves int64.

``popcount64`` is the SWAR population count on uint64, the idiom LLVM recognises as ``ctpop``: ``vpopcntq`` on
AVX-512 VPOPCNTDQ, ``popcnt`` or a shuffle sequence elsewhere.  It is correct on every CPU, so these kernels have no
CPU dispatch.  The ``_parallel`` kernels split rows over Numba's threads (``prange``); the caller picks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from refquant.kernels._jit import njit, njit_parallel, prefer_wide_vectors

__all__ = [
    "RB",
    "binary_conv",
    "binary_conv_serial",
    "clear_padding",
    "popcount64",
    "shift_gemm",
    "shift_gemm_serial",
    "ternary_gemm",
    "ternary_gemm_serial",
    "ternary_planes",
    "xnor_gemm",
    "xnor_gemm_serial",
]

RB = 8  # lhs rows per block (the unit of parallel work)
NS = 256  # rhs columns per strip: a strip of 8 words (16 KB) stays in L1 while RB rows use it

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_FOUR = np.uint64(4)
_S56 = np.uint64(56)


@njit
def popcount64(x: Any) -> Any:
    """The number of set bits of a uint64 (SWAR), as int64."""
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> _TWO) & _M2)
    x = (x + (x >> _FOUR)) & _M4
    return np.int64((x * _H01) >> _S56)


# --- operand preparation ------------------------------------------------------------------------------------------


@njit
def clear_padding(words: Any, mask: Any, transpose: Any, out: Any) -> None:
    """``out`` = ``words`` (R, W) with the last word ANDed with ``mask``; (W, R) when ``transpose``."""
    rows, nw = words.shape
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    if not transpose:
        for r in range(rows):
            for w in range(nw):
                out[r, w] = words[r, w] & (mask if w == nw - 1 else ones)
        return
    # transposed: blocks of 64 rows, so the writes run along rows of ``out`` and the reads stay in cache
    for r0 in range(0, rows, 64):
        r1 = min(rows, r0 + 64)
        for w in range(nw):
            m = mask if w == nw - 1 else ones
            for r in range(r0, r1):
                out[w, r] = words[r, w] & m


@njit
def ternary_planes(plus: Any, minus: Any, mask: Any, transpose: Any, nz: Any, sign: Any) -> Any:
    """``nz = (plus | minus)`` with the padding cleared and ``sign = minus``, (R, W) or (W, R) when ``transpose``.

    Returns the number of words holding a valid bit set in both planes (0 for ternary codes).
    """
    rows, nw = plus.shape
    overlap = 0
    for r in range(rows):
        for w in range(nw):
            p = plus[r, w]
            m = minus[r, w]
            if w == nw - 1:
                p &= mask
                m_valid = m & mask
            else:
                m_valid = m
            if p & m_valid:
                overlap += 1
            if transpose:
                nz[w, r] = p | m_valid
                sign[w, r] = m
            else:
                nz[r, w] = p | m_valid
                sign[r, w] = m
    return overlap


# --- XNOR ---------------------------------------------------------------------------------------------------------


@njit
def _xnor_block(a: Any, bt: Any, k: Any, m0: Any, acc: Any, out: Any) -> None:
    """Rows ``m0 .. m0 + RB`` of the XNOR product; ``acc`` is an int64 (RB, NS) scratch."""
    prefer_wide_vectors()
    m_total, nw = a.shape
    n_total = bt.shape[1]
    rows = min(RB, m_total - m0)
    w8 = nw - nw % 8
    for n0 in range(0, n_total, NS):
        n1 = min(n0 + NS, n_total)
        cols = n1 - n0
        acc[:, :] = 0
        for w in range(0, w8, 8):
            b0, b1, b2, b3 = bt[w, n0:n1], bt[w + 1, n0:n1], bt[w + 2, n0:n1], bt[w + 3, n0:n1]
            b4, b5, b6, b7 = bt[w + 4, n0:n1], bt[w + 5, n0:n1], bt[w + 6, n0:n1], bt[w + 7, n0:n1]
            for r in range(rows):
                ar = a[m0 + r]
                a0, a1, a2, a3, a4, a5, a6, a7 = (
                    ar[w],
                    ar[w + 1],
                    ar[w + 2],
                    ar[w + 3],
                    ar[w + 4],
                    ar[w + 5],
                    ar[w + 6],
                    ar[w + 7],
                )
                accr = acc[r]
                for j in range(cols):
                    s0 = popcount64(a0 ^ b0[j]) + popcount64(a1 ^ b1[j])
                    s1 = popcount64(a2 ^ b2[j]) + popcount64(a3 ^ b3[j])
                    s2 = popcount64(a4 ^ b4[j]) + popcount64(a5 ^ b5[j])
                    s3 = popcount64(a6 ^ b6[j]) + popcount64(a7 ^ b7[j])
                    accr[j] += (s0 + s1) + (s2 + s3)
        for w in range(w8, nw):
            bw = bt[w, n0:n1]
            for r in range(rows):
                aw = a[m0 + r, w]
                accr = acc[r]
                for j in range(cols):
                    accr[j] += popcount64(aw ^ bw[j])
        for r in range(rows):
            o = out[m0 + r, n0:n1]
            accr = acc[r]
            for j in range(cols):
                o[j] = np.int32(k - 2 * accr[j])


@njit
def xnor_gemm_serial(a: Any, bt: Any, k: Any, out: Any) -> None:
    """``out[m, n] = k - 2 * sum_w popcount(a[m, w] XOR bt[w, n])`` on the calling thread."""
    acc = np.empty((RB, NS), np.int64)
    for blk in range((a.shape[0] + RB - 1) // RB):
        _xnor_block(a, bt, k, blk * RB, acc, out)


@njit_parallel
def xnor_gemm(a: Any, bt: Any, k: Any, out: Any) -> None:
    """``xnor_gemm_serial`` with the blocks of ``RB`` rows spread over the threads."""
    for blk in prange((a.shape[0] + RB - 1) // RB):
        acc = np.empty((RB, NS), np.int64)
        _xnor_block(a, bt, k, blk * RB, acc, out)


# --- ternary ------------------------------------------------------------------------------------------------------


@njit
def _ternary_block(nza: Any, sa: Any, nzbt: Any, sbt: Any, m0: Any, acc: Any, neg: Any, out: Any) -> None:
    """Rows ``m0 .. m0 + RB`` of the ternary product; ``acc`` and ``neg`` are int64 (RB, NS) scratch."""
    prefer_wide_vectors()
    m_total, nw = nza.shape
    n_total = nzbt.shape[1]
    rows = min(RB, m_total - m0)
    w4 = nw - nw % 4
    for n0 in range(0, n_total, NS):
        n1 = min(n0 + NS, n_total)
        cols = n1 - n0
        acc[:, :] = 0
        neg[:, :] = 0
        for w in range(0, w4, 4):
            z0, z1, z2, z3 = nzbt[w, n0:n1], nzbt[w + 1, n0:n1], nzbt[w + 2, n0:n1], nzbt[w + 3, n0:n1]
            t0, t1, t2, t3 = sbt[w, n0:n1], sbt[w + 1, n0:n1], sbt[w + 2, n0:n1], sbt[w + 3, n0:n1]
            for r in range(rows):
                zr = nza[m0 + r]
                sr = sa[m0 + r]
                y0, y1, y2, y3 = zr[w], zr[w + 1], zr[w + 2], zr[w + 3]
                x0, x1, x2, x3 = sr[w], sr[w + 1], sr[w + 2], sr[w + 3]
                accr = acc[r]
                negr = neg[r]
                for j in range(cols):
                    q0 = y0 & z0[j]
                    q1 = y1 & z1[j]
                    q2 = y2 & z2[j]
                    q3 = y3 & z3[j]
                    accr[j] += (popcount64(q0) + popcount64(q1)) + (popcount64(q2) + popcount64(q3))
                    p0 = popcount64(q0 & (x0 ^ t0[j])) + popcount64(q1 & (x1 ^ t1[j]))
                    p1 = popcount64(q2 & (x2 ^ t2[j])) + popcount64(q3 & (x3 ^ t3[j]))
                    negr[j] += p0 + p1
        for w in range(w4, nw):
            zw = nzbt[w, n0:n1]
            tw = sbt[w, n0:n1]
            for r in range(rows):
                yv = nza[m0 + r, w]
                xv = sa[m0 + r, w]
                accr = acc[r]
                negr = neg[r]
                for j in range(cols):
                    q = yv & zw[j]
                    accr[j] += popcount64(q)
                    negr[j] += popcount64(q & (xv ^ tw[j]))
        for r in range(rows):
            o = out[m0 + r, n0:n1]
            accr = acc[r]
            negr = neg[r]
            for j in range(cols):
                o[j] = np.int32(accr[j] - 2 * negr[j])


@njit
def ternary_gemm_serial(nza: Any, sa: Any, nzbt: Any, sbt: Any, out: Any) -> None:
    """``out[m, n] = sum_w popcount(z) - 2 * popcount(z & (sa XOR sb))``, ``z = nza & nzb``, on this thread."""
    acc = np.empty((RB, NS), np.int64)
    neg = np.empty((RB, NS), np.int64)
    for blk in range((nza.shape[0] + RB - 1) // RB):
        _ternary_block(nza, sa, nzbt, sbt, blk * RB, acc, neg, out)


@njit_parallel
def ternary_gemm(nza: Any, sa: Any, nzbt: Any, sbt: Any, out: Any) -> None:
    """``ternary_gemm_serial`` with the blocks of ``RB`` rows spread over the threads."""
    for blk in prange((nza.shape[0] + RB - 1) // RB):
        acc = np.empty((RB, NS), np.int64)
        neg = np.empty((RB, NS), np.int64)
        _ternary_block(nza, sa, nzbt, sbt, blk * RB, acc, neg, out)


# --- binary conv2d ------------------------------------------------------------------------------------------------


@njit
def _conv_row(
    xb: Any, wbt: Any, wsum: Any, c: Any, fill: Any, geom: Any, b: Any, oy: Any, acc: Any, pad: Any, out: Any
) -> None:
    """Output row ``oy`` of image ``b``: every output column and channel."""
    prefer_wide_vectors()
    sh, sw, pt, pl, dh, dw = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5]
    h, wd, nwords = xb.shape[1], xb.shape[2], xb.shape[3]
    kh, kw, o_total = wbt.shape[0], wbt.shape[1], wbt.shape[3]
    ow_total = out.shape[3]
    for ox in range(ow_total):
        acc[:] = 0
        pad[:] = 0
        n_valid = 0
        for i in range(kh):
            iy = oy * sh - pt + i * dh
            for j in range(kw):
                ix = ox * sw - pl + j * dw
                if 0 <= iy < h and 0 <= ix < wd:
                    n_valid += 1
                    for w in range(nwords):
                        xv = xb[b, iy, ix, w]
                        wrow = wbt[i, j, w]
                        for o in range(o_total):
                            acc[o] += popcount64(xv ^ wrow[o])
                elif fill != 0:
                    srow = wsum[i, j]
                    for o in range(o_total):
                        pad[o] += srow[o]
        base = n_valid * c
        for o in range(o_total):
            out[b, o, oy, ox] = np.int32(base - 2 * acc[o] + fill * pad[o])


@njit
def binary_conv_serial(xb: Any, wbt: Any, wsum: Any, c: Any, fill: Any, geom: Any, out: Any) -> None:
    """The binary cross-correlation on the calling thread; ``geom`` = (sh, sw, pt, pl, dh, dw) int64."""
    o_total = wbt.shape[3]
    acc = np.empty(o_total, np.int64)
    pad = np.empty(o_total, np.int64)
    for b in range(out.shape[0]):
        for oy in range(out.shape[2]):
            _conv_row(xb, wbt, wsum, c, fill, geom, b, oy, acc, pad, out)


@njit_parallel
def binary_conv(xb: Any, wbt: Any, wsum: Any, c: Any, fill: Any, geom: Any, out: Any) -> None:
    """``binary_conv_serial`` with the (image, output row) pairs spread over the threads."""
    o_total = wbt.shape[3]
    oh = out.shape[2]
    for t in prange(out.shape[0] * oh):
        acc = np.empty(o_total, np.int64)
        pad = np.empty(o_total, np.int64)
        _conv_row(xb, wbt, wsum, c, fill, geom, t // oh, t % oh, acc, pad, out)


# --- shift-only products ------------------------------------------------------------------------------------------


@njit
def _shift_row(x: Any, shift: Any, sign: Any, m: Any, out: Any) -> None:
    prefer_wide_vectors()
    o = out[m]
    o[:] = 0
    for t in range(x.shape[1]):
        xv = x[m, t]
        srow = shift[t]
        grow = sign[t]
        for j in range(o.shape[0]):
            o[j] += grow[j] * (xv << srow[j])


@njit
def shift_gemm_serial(x: Any, shift: Any, sign: Any, out: Any) -> None:
    """``out[m, n] = sum_k sign[k, n] * (x[m, k] << shift[k, n])`` (int64) on the calling thread."""
    for m in range(x.shape[0]):
        _shift_row(x, shift, sign, m, out)


@njit_parallel
def shift_gemm(x: Any, shift: Any, sign: Any, out: Any) -> None:
    """``shift_gemm_serial`` with the rows spread over the threads."""
    for m in prange(x.shape[0]):
        _shift_row(x, shift, sign, m, out)
