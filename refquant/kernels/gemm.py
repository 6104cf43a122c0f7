"""INT8 GEMM kernels: operand preparation, weight packing, the VNNI and portable drivers, exact paths.

Arithmetic (every kernel here, whatever the operand types):

* ``Au = A + oa`` is the lhs as unsigned bytes (``oa = 128`` for int8, where ``A + 128 == A XOR 0x80``
  on the byte, ``oa = 0`` for uint8);
* ``Bs = B - cb`` is the rhs as signed bytes (``cb = 128`` for uint8, where ``B - 128 == B XOR 0x80``,
  ``cb = 0`` for int8);
* with ``alpha_i = oa + za_i`` and ``beta_j = cb - zb_j``::

      sum_k (A_ik - za_i)(B_kj - zb_j) = sum_k Au_ik Bs_kj + beta_j rowsum(Au)_i - alpha_i (colsum(Bs)_j + beta_j K)

  The fast kernels evaluate the first term with int32 wrap-around (``vpdpbusd`` or the portable
  tile) and write ``beta_j rowsum_i - alpha_i tcol_j`` (``tcol_j = colsum_j + beta_j K``) as the
  starting accumulator, so the result is the exact sum modulo 2**32: the exact value whenever it
  fits int32.  ``centered_gemm`` computes ``sum_k (Au_ik - alpha_i)(Bs_kj + beta_j)`` term by term
  in int64, exactly or saturating to int32 after every multiply-add, for the accumulators that
  need it.

Batch dimensions are flattened: ``ai[b]`` / ``bi[b]`` give the lhs / rhs batch of output batch ``b``
(np.matmul broadcasting is resolved by the caller).  No validation happens here.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refquant.kernels._jit import njit, njit_parallel
from refquant.kernels.fma import PMR, PW, ptile_1, ptile_4, ptile_main
from refquant.kernels.vnni import (
    MR,
    NR,
    tile_1,
    tile_1_16,
    tile_1_32,
    tile_2,
    tile_2_16,
    tile_2_32,
    tile_3,
    tile_3_16,
    tile_3_32,
    tile_4,
    tile_4_16,
    tile_4_32,
    tile_5,
    tile_5_16,
    tile_5_32,
    tile_6,
    tile_6_16,
    tile_6_32,
    tile_7,
    tile_7_16,
    tile_7_32,
    tile_8,
    tile_8_16,
    tile_8_32,
)

__all__ = [
    "centered_gemm",
    "gemm_portable",
    "gemm_portable_serial",
    "gemm_vnni",
    "gemm_vnni_fused",
    "gemm_vnni_fused_serial",
    "gemm_vnni_serial",
    "pack_rhs_portable",
    "pack_rhs_vnni",
    "prepare_lhs",
    "prepare_lhs_f32",
    "prepare_lhs_f32_par",
    "unpack_portable",
    "unpack_vnni",
]

# --------------------------------------------------------------------------------------------------
# operand preparation


@njit
def _row_sum(row, k, fx):  # type: ignore[no-untyped-def]
    """Exact ``sum(row[:k] XOR fx)`` of uint8 values: int32 partial sums over 8192-byte chunks (vectorizes), int64 total."""
    total = np.int64(0)
    for c0 in range(0, k, 8192):
        seg = row[c0 : min(k, c0 + 8192)]  # a loop over a slice vectorizes, one over range(c0, c1) did not (16x slower)
        s = np.int32(0)
        for c in range(seg.shape[0]):
            s = np.int32(s + np.int32(seg[c] ^ fx))
        total += np.int64(s)
    return total


@njit
def prepare_lhs(a, flip, kp, au, rsum, need_rsum):  # type: ignore[no-untyped-def]
    """``au[b, i, :K] = a[b, i, :] XOR flip`` (zero-padded to ``kp`` columns) and ``rsum[b, i] = sum(au[b, i])``.

    ``a`` is a 3-D uint8 view of the lhs (any strides), ``flip`` 0 or 128.  Without ``need_rsum`` the
    row sums are not computed (``rsum`` is set to 0).  The XOR and the sum are separate loops: each
    vectorizes on its own, the fused loop did not.
    """
    nb, m, k = a.shape
    fx = np.uint8(flip)
    for b in range(nb):
        for i in range(m):
            row = au[b, i]
            src = a[b, i]
            for c in range(k):
                row[c] = src[c] ^ fx
            for c in range(k, kp):
                row[c] = 0
            rsum[b, i] = _row_sum(row, k, np.uint8(0)) if need_rsum else 0


@njit
def _prepare_row_f32(src, fx, dst, k):  # type: ignore[no-untyped-def]
    for c in range(k):
        dst[c] = np.float32(src[c] ^ fx)


@njit
def prepare_lhs_f32(a, flip, af, rsum, need_rsum):  # type: ignore[no-untyped-def]
    """The portable tile's lhs: ``af[b, i, :] = float32(a[b, i, :] XOR flip)`` and, with ``need_rsum``,
    ``rsum[b, i] = sum(a[b, i, :] XOR flip)`` modulo 2**32 (int32; 0 otherwise).  ``a`` is a 3-D uint8
    view (any strides), ``flip`` 0 or 128."""
    nb, m, k = a.shape
    fx = np.uint8(flip)
    for b in range(nb):
        for i in range(m):
            _prepare_row_f32(a[b, i], fx, af[b, i], k)
            rsum[b, i] = np.int32(_row_sum(a[b, i], k, fx)) if need_rsum else 0


@njit_parallel
def prepare_lhs_f32_par(a, flip, af, rsum, need_rsum):  # type: ignore[no-untyped-def]
    """``prepare_lhs_f32`` with the rows split over Numba's threads (large lhs)."""
    nb, m, k = a.shape
    fx = np.uint8(flip)
    for t in prange(nb * m):
        b = t // m
        i = t - b * m
        _prepare_row_f32(a[b, i], fx, af[b, i], k)
        rsum[b, i] = np.int32(_row_sum(a[b, i], k, fx)) if need_rsum else 0


@njit
def pack_rhs_vnni(bu, flip, bp, colsum):  # type: ignore[no-untyped-def]
    """Pack ``Bs = bu XOR flip`` (3-D uint8 view ``(nb, K, N)``) into ``NR``-column panels ``[K/4][NR][4]``.

    ``bp`` is ``(nb, ceil(N/NR), kq * 4 * NR)`` int8, ``colsum`` ``(nb, N)`` int64 receives ``sum_k Bs``.
    """
    nb, k, n = bu.shape
    fx = np.uint8(flip)
    bp[:] = 0
    for b in range(nb):
        for j in range(n):
            colsum[b, j] = 0
        for kk in range(k):
            q = kk >> 2
            r = kk & 3
            for j in range(n):
                v = np.int8(bu[b, kk, j] ^ fx)
                p = j // NR
                bp[b, p, (q * NR + j - p * NR) * 4 + r] = v
                colsum[b, j] += np.int64(v)


@njit
def unpack_vnni(bp, k, n, bs):  # type: ignore[no-untyped-def]
    """Inverse of ``pack_rhs_vnni``: ``bs[b, k, j] = Bs`` (int8, ``(nb, K, N)``)."""
    nb = bp.shape[0]
    for b in range(nb):
        for kk in range(k):
            q = kk >> 2
            r = kk & 3
            for j in range(n):
                p = j // NR
                bs[b, kk, j] = bp[b, p, (q * NR + j - p * NR) * 4 + r]


@njit
def pack_rhs_portable(bu, flip, bf, colsum):  # type: ignore[no-untyped-def]
    """Pack ``Bs = bu XOR flip`` (3-D uint8 view ``(nb, K, N)``) into ``PW``-column panels ``[K][PW]``.

    ``bf`` is ``(nb, ceil(N/PW), K * PW)`` int8 (padding columns zero), ``colsum`` ``(nb, N)`` int64
    receives ``sum_k Bs``.
    """
    nb, k, n = bu.shape
    fx = np.uint8(flip)
    bf[:] = 0
    for b in range(nb):
        for j in range(n):
            colsum[b, j] = 0
        for kk in range(k):
            for j in range(n):
                v = np.int8(bu[b, kk, j] ^ fx)
                p = j // PW
                bf[b, p, kk * PW + j - p * PW] = v
                colsum[b, j] += np.int64(v)


@njit
def unpack_portable(bf, k, n, bs):  # type: ignore[no-untyped-def]
    """Inverse of ``pack_rhs_portable``: ``bs[b, k, j] = Bs`` (int8, ``(nb, K, N)``)."""
    nb = bf.shape[0]
    for b in range(nb):
        for kk in range(k):
            for j in range(n):
                p = j // PW
                bs[b, kk, j] = np.int8(bf[b, p, kk * PW + j - p * PW])


# --------------------------------------------------------------------------------------------------
# VNNI driver: one task = one (batch, NR-column panel, chunk of MR-row groups) over the whole K


@njit
def _run_tile(rows, a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc):  # type: ignore[no-untyped-def]
    """The VNNI tile of ``rows`` (1..8) rows x NR columns (``rs, al, be, tc``: addresses of its int32 terms)."""
    if rows == 8:
        tile_8(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 7:
        tile_7(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 6:
        tile_6(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 5:
        tile_5(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 4:
        tile_4(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 3:
        tile_3(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 2:
        tile_2(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    else:
        tile_1(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)


@njit
def _run_tile_32(rows, a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc):  # type: ignore[no-untyped-def]
    """``_run_tile`` on the first 32 columns of a panel (the last panel of B, 17 to 32 columns)."""
    if rows == 8:
        tile_8_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 7:
        tile_7_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 6:
        tile_6_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 5:
        tile_5_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 4:
        tile_4_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 3:
        tile_3_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 2:
        tile_2_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    else:
        tile_1_32(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)


@njit
def _run_tile_16(rows, a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc):  # type: ignore[no-untyped-def]
    """``_run_tile`` on the first 16 columns of a panel (the last panel of B, 1 to 16 columns)."""
    if rows == 8:
        tile_8_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 7:
        tile_7_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 6:
        tile_6_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 5:
        tile_5_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 4:
        tile_4_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 3:
        tile_3_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    elif rows == 2:
        tile_2_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)
    else:
        tile_1_16(a_addr, kp, b_addr, kq, c_addr, ldc, rs, al, be, tc)


@njit
def _vnni_task(t, au, bp, ai, bi, rsum, alpha, beta, tcol, gpt, out):  # type: ignore[no-untyped-def]
    _, m, n = out.shape
    kp = au.shape[2]
    kq = kp // 4
    np_ = bp.shape[1]
    mg = (m + MR - 1) // MR
    nch = (mg + gpt - 1) // gpt
    ch = t % nch
    rest = t // nch
    p = rest % np_
    b = rest // np_
    j0 = p * NR
    cols = min(NR, n - j0)
    ba = ai[b]
    bb = bi[b]
    b_addr = np.int64(bp.ctypes.data) + (bb * np_ + p) * (kq * 4 * NR)
    width = beta.shape[1]
    be = np.int64(beta.ctypes.data) + (bb * width + j0) * 4
    tc = np.int64(tcol.ctypes.data) + (bb * width + j0) * 4
    tile = np.empty((MR, NR), dtype=np.int32)
    for g in range(ch * gpt, min(mg, ch * gpt + gpt)):
        i0 = g * MR
        rows = min(MR, m - i0)
        a_addr = np.int64(au.ctypes.data) + (ba * m + i0) * kp
        rs = np.int64(rsum.ctypes.data) + (ba * m + i0) * 4
        al = np.int64(alpha.ctypes.data) + (b * m + i0) * 4
        if cols == NR:
            c_addr = np.int64(out.ctypes.data) + ((b * m + i0) * n + j0) * 4
            _run_tile(rows, a_addr, kp, b_addr, kq, c_addr, n, rs, al, be, tc)
        else:  # the last, partial panel: only its 16-column vectors, through the MR x NR scratch tile
            if cols <= 16:
                _run_tile_16(rows, a_addr, kp, b_addr, kq, np.int64(tile.ctypes.data), NR, rs, al, be, tc)
            elif cols <= 32:
                _run_tile_32(rows, a_addr, kp, b_addr, kq, np.int64(tile.ctypes.data), NR, rs, al, be, tc)
            else:
                _run_tile(rows, a_addr, kp, b_addr, kq, np.int64(tile.ctypes.data), NR, rs, al, be, tc)
            for r in range(rows):
                out[b, i0 + r, j0:n] = tile[r, :cols]


@njit_parallel
def gemm_vnni(au, bp, ai, bi, rsum, alpha, beta, tcol, gpt, out):  # type: ignore[no-untyped-def]
    """``out = Au @ Bs + corrections`` modulo 2**32 on the VNNI tile, tasks split over Numba's threads.

    ``gpt``: row groups per task.  The correction terms are int32 (values modulo 2**32, which leaves
    the result unchanged): ``rsum``/``alpha`` C-contiguous ``(batches, M)``, ``beta``/``tcol``
    ``(batches, panels * NR)`` (zero-padded to whole panels, since the tile reads NR columns).
    """
    nb, m, _ = out.shape
    ntasks = nb * bp.shape[1] * ((((m + MR - 1) // MR) + gpt - 1) // gpt)
    for t in prange(ntasks):
        _vnni_task(t, au, bp, ai, bi, rsum, alpha, beta, tcol, gpt, out)


@njit
def gemm_vnni_serial(au, bp, ai, bi, rsum, alpha, beta, tcol, gpt, out):  # type: ignore[no-untyped-def]
    """``gemm_vnni`` on the calling thread (small problems)."""
    nb, m, _ = out.shape
    ntasks = nb * bp.shape[1] * ((((m + MR - 1) // MR) + gpt - 1) // gpt)
    for t in range(ntasks):
        _vnni_task(t, au, bp, ai, bi, rsum, alpha, beta, tcol, gpt, out)


# --------------------------------------------------------------------------------------------------
# VNNI driver on the raw lhs: one task = one (batch, block of rows, range of panels); the task shifts
# its rows once into its own buffer, then runs them against every panel of its range


@njit
def _row_stride(kp):  # type: ignore[no-untyped-def]
    """A row stride of at least ``kp`` bytes that is an odd number of 64-byte lines, so that the rows a tile
    reads fall in different L1 sets (rows 4096 bytes apart share one: M = 16, K = 4096 ran 2-4% slower)."""
    return ((kp + 63) // 64 | 1) * 64


@njit
def _vnni_task_fused(t, a, flip, need_rsum, bp, ai, bi, alpha, beta, tcol, rpt, ppt, out):  # type: ignore[no-untyped-def]
    _, m, n = out.shape
    k = a.shape[2]
    kq = bp.shape[2] // (4 * NR)
    kp = kq * 4
    np_ = bp.shape[1]
    nrc = (m + rpt - 1) // rpt
    npc = (np_ + ppt - 1) // ppt
    pc = t % npc
    rest = t // npc
    rc = rest % nrc
    b = rest // nrc
    ba = ai[b]
    bb = bi[b]
    r0 = rc * rpt
    nrows = min(rpt, m - r0)
    # the rows of the block, XOR flip, zero-padded to whole k-quads, and their sums (int32, modulo 2**32)
    lda = _row_stride(kp)
    abuf = np.empty((rpt, lda), dtype=np.uint8)
    rsb = np.zeros(rpt, dtype=np.int32)
    fx = np.uint8(flip)
    for r in range(nrows):
        dst = abuf[r]
        src = a[ba, r0 + r]
        for c in range(k):
            dst[c] = src[c] ^ fx
        for c in range(k, kp):
            dst[c] = 0
        if need_rsum:
            rsb[r] = np.int32(_row_sum(dst, k, np.uint8(0)))
    tile = np.empty((MR, NR), dtype=np.int32)
    width = beta.shape[1]
    for p in range(pc * ppt, min(np_, pc * ppt + ppt)):
        j0 = p * NR
        cols = min(NR, n - j0)
        b_addr = np.int64(bp.ctypes.data) + (bb * np_ + p) * (kq * 4 * NR)
        be = np.int64(beta.ctypes.data) + (bb * width + j0) * 4
        tc = np.int64(tcol.ctypes.data) + (bb * width + j0) * 4
        for g0 in range(0, nrows, MR):
            rows = min(MR, nrows - g0)
            i0 = r0 + g0
            a_addr = np.int64(abuf.ctypes.data) + g0 * lda
            rs = np.int64(rsb.ctypes.data) + g0 * 4
            al = np.int64(alpha.ctypes.data) + (b * m + i0) * 4
            if cols == NR:
                c_addr = np.int64(out.ctypes.data) + ((b * m + i0) * n + j0) * 4
                _run_tile(rows, a_addr, lda, b_addr, kq, c_addr, n, rs, al, be, tc)
            else:  # the last, partial panel: only its 16-column vectors, through the MR x NR scratch tile
                t_addr = np.int64(tile.ctypes.data)
                if cols <= 16:
                    _run_tile_16(rows, a_addr, lda, b_addr, kq, t_addr, NR, rs, al, be, tc)
                elif cols <= 32:
                    _run_tile_32(rows, a_addr, lda, b_addr, kq, t_addr, NR, rs, al, be, tc)
                else:
                    _run_tile(rows, a_addr, lda, b_addr, kq, t_addr, NR, rs, al, be, tc)
                for r in range(rows):
                    out[b, i0 + r, j0:n] = tile[r, :cols]


@njit_parallel
def gemm_vnni_fused(a, flip, need_rsum, bp, ai, bi, alpha, beta, tcol, rpt, ppt, out):  # type: ignore[no-untyped-def]
    """``gemm_vnni`` on the unprepared lhs ``a`` (3-D uint8 view, any strides, any K): each task takes
    ``rpt`` rows (a multiple of MR) and ``ppt`` panels, and shifts (``XOR flip``), pads and (with
    ``need_rsum``) sums its rows into a buffer of its own first, so there is no separate lhs pass and
    the rows a thread multiplies were written by that thread.  ``alpha`` is int32 ``(batches, M)``."""
    nb, m, _ = out.shape
    ntasks = nb * ((m + rpt - 1) // rpt) * ((bp.shape[1] + ppt - 1) // ppt)
    for t in prange(ntasks):
        _vnni_task_fused(t, a, flip, need_rsum, bp, ai, bi, alpha, beta, tcol, rpt, ppt, out)


@njit
def gemm_vnni_fused_serial(a, flip, need_rsum, bp, ai, bi, alpha, beta, tcol, rpt, ppt, out):  # type: ignore[no-untyped-def]
    """``gemm_vnni_fused`` on the calling thread (small problems)."""
    nb, m, _ = out.shape
    ntasks = nb * ((m + rpt - 1) // rpt) * ((bp.shape[1] + ppt - 1) // ppt)
    for t in range(ntasks):
        _vnni_task_fused(t, a, flip, need_rsum, bp, ai, bi, alpha, beta, tcol, rpt, ppt, out)


# --------------------------------------------------------------------------------------------------
# portable driver: one task = one (batch, PW-column panel, chunk of PMR-row groups) over the whole K,
# on the float32 tile of refquant.kernels.fma (exact: see its docstring)


@njit
def _run_ptile(rows, a_addr, lda, b_addr, k, c_addr, ldc, rs, al, be, tc):  # type: ignore[no-untyped-def]
    """The portable tile of ``rows`` (PMR, 4 or 1) rows x PW columns."""
    if rows == PMR:
        ptile_main(a_addr, lda, b_addr, k, c_addr, ldc, rs, al, be, tc)
    elif rows == 4:
        ptile_4(a_addr, lda, b_addr, k, c_addr, ldc, rs, al, be, tc)
    else:
        ptile_1(a_addr, lda, b_addr, k, c_addr, ldc, rs, al, be, tc)


@njit
def _portable_task(t, af, bf, ai, bi, rsum, alpha, beta, tcol, gpt, out):  # type: ignore[no-untyped-def]
    _, m, n = out.shape
    k = af.shape[2]
    np_ = bf.shape[1]
    mg = (m + PMR - 1) // PMR
    nch = (mg + gpt - 1) // gpt
    ch = t % nch
    rest = t // nch
    p = rest % np_
    b = rest // np_
    j0 = p * PW
    cols = min(PW, n - j0)
    ba = ai[b]
    bb = bi[b]
    b_addr = np.int64(bf.ctypes.data) + (bb * np_ + p) * (k * PW)
    width = beta.shape[1]
    be = np.int64(beta.ctypes.data) + (bb * width + j0) * 4
    tc = np.int64(tcol.ctypes.data) + (bb * width + j0) * 4
    tile = np.empty((PMR, PW), dtype=np.int32)
    for g in range(ch * gpt, min(mg, ch * gpt + gpt)):
        i = g * PMR
        end = min(m, i + PMR)
        while i < end:  # a whole PMR-row tile, then the rows left in 4-row and 1-row tiles
            rows = PMR if end - i == PMR else (4 if end - i >= 4 and PMR > 4 else 1)
            a_addr = np.int64(af.ctypes.data) + (ba * m + i) * (k * 4)
            rs = np.int64(rsum.ctypes.data) + (ba * m + i) * 4
            al = np.int64(alpha.ctypes.data) + (b * m + i) * 4
            if cols == PW:
                c_addr = np.int64(out.ctypes.data) + ((b * m + i) * n + j0) * 4
                _run_ptile(rows, a_addr, k, b_addr, k, c_addr, n, rs, al, be, tc)
            else:  # the last, partial panel, through the scratch tile
                _run_ptile(rows, a_addr, k, b_addr, k, np.int64(tile.ctypes.data), PW, rs, al, be, tc)
                for r in range(rows):
                    out[b, i + r, j0:n] = tile[r, :cols]
            i += rows


@njit_parallel
def gemm_portable(af, bf, ai, bi, rsum, alpha, beta, tcol, gpt, out):  # type: ignore[no-untyped-def]
    """``out = Au @ Bs + corrections`` modulo 2**32 on the portable float32 tile, tasks split over Numba's
    threads (``gpt`` row groups per task; the terms are int32 as for ``gemm_vnni``, padded to whole PW panels)."""
    nb, m, _ = out.shape
    ntasks = nb * bf.shape[1] * ((((m + PMR - 1) // PMR) + gpt - 1) // gpt)
    for t in prange(ntasks):
        _portable_task(t, af, bf, ai, bi, rsum, alpha, beta, tcol, gpt, out)


@njit
def gemm_portable_serial(af, bf, ai, bi, rsum, alpha, beta, tcol, gpt, out):  # type: ignore[no-untyped-def]
    """``gemm_portable`` on the calling thread (small problems)."""
    nb, m, _ = out.shape
    ntasks = nb * bf.shape[1] * ((((m + PMR - 1) // PMR) + gpt - 1) // gpt)
    for t in range(ntasks):
        _portable_task(t, af, bf, ai, bi, rsum, alpha, beta, tcol, gpt, out)


# --------------------------------------------------------------------------------------------------
# exact and saturating paths: term by term in int64


@njit_parallel
def centered_gemm(au, bs, ai, bi, alpha, beta, saturate, out):  # type: ignore[no-untyped-def]
    """``out[b, i, j] = sum_k (au[ai[b], i, k] - alpha[b, i]) * (bs[bi[b], k, j] + beta[bi[b], j])`` in int64.

    With ``saturate`` the running sum is clamped to int32 after every multiply-add, k increasing.
    ``out`` is int64 ``(nb, M, N)``; only the first ``bs.shape[1]`` (= K) columns of ``au`` are read.
    """
    nb, m, n = out.shape
    k = bs.shape[1]
    lo = np.int64(-2147483648)
    hi = np.int64(2147483647)
    for t in prange(nb * m):
        b = t // m
        i = t % m
        ba = ai[b]
        bb = bi[b]
        al = alpha[b, i]
        row = out[b, i]
        row[:] = 0
        bet = beta[bb]
        for kk in range(k):
            x = np.int64(au[ba, i, kk]) - al
            bk = bs[bb, kk]
            if saturate:
                for j in range(n):
                    v = row[j] + x * (np.int64(bk[j]) + bet[j])
                    row[j] = min(max(v, lo), hi)
            else:
                for j in range(n):
                    row[j] += x * (np.int64(bk[j]) + bet[j])
