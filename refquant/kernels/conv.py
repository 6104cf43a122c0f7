# mypy: allow-untyped-defs, allow-untyped-calls
"""Integer conv2d kernels: implicit GEMM on a padded NHWC copy of the input (private; no validation).

The arithmetic (exact, whatever the signedness of the operands)::

    x' = x ^ 0x80 for int8 activations, x for uint8       (x' in [0, 255], x' = x + ox)
    w' = w ^ 0x80 for uint8 weights,   w for int8          (w' in [-128, 127], w' = w - ow)
    xz' = x_zero_point + ox,  wz'[oc] = w_zero_point[oc] - ow

    acc[p, oc] = sum_k (x - xzp)(w - wzp) = sum_k (x' - xz')(w' - wz')
               = P[p, oc] - wz'[oc] * Sx[p] - xz' * Sw[oc] + K * xz' * wz'[oc]

where ``P = sum_k x' w'`` is the unsigned-by-signed product the VNNI instruction computes, ``Sx[p]``
the sum of the patch of pixel ``p`` (the padded input is filled with ``xz'``, so padding taps
contribute ``(xz' - xz') = 0`` as the definition requires), ``Sw`` the weight sum of an output
channel and ``K = C_per_group * KH * KW``.  Every operation is a ring operation, so the int32 result
computed with wrapping arithmetic is the exact sum modulo 2**32: equal to the exact sum whenever that
fits in int32 (the caller checks a bound) and equal to the INT32_WRAP result always.

Layout of the work:

* ``xp``: the input converted once to NHWC bytes ``x'``, padded by the convolution padding (filled
  with ``xz'``) and with each group's channel run padded to a multiple of 4 (filled with 0);
* the patch of one output pixel is ``KH * KW`` contiguous runs of ``Cg4`` bytes (one per (kh, kw)
  tap), read in place: no im2col buffer;
* weights are packed once per group and 64-channel panel as ``[K/4][64][4]`` int8 (``K = KH*KW*Cg4``,
  k ordered (kh, kw, c)), the layout the VNNI micro-kernel reads with one 64-byte load per 16
  columns and k-quad;
* the VNNI micro-kernel computes 6 output pixels x 64 output channels with 24 zmm accumulators and
  walks the taps itself (a list of tap byte offsets), so one call covers the whole reduction; the
  portable kernel computes 4 pixels x one group's output channels with plain int32 loops.

Outputs are NHWC int32 (``[N, OH*OW, OC]``); ``nhwc_to_out`` writes them to the caller's layout, and
``nhwc_to_nchw`` to a C-contiguous NCHW int32 or 8-bit output, transposing 16 x 16 blocks in registers.
``conv_vnni_requant`` is the VNNI driver with QLinearConv's epilogue fused: each tile's int32 sums get the
bias and the FLOAT32 / FLOAT64 requantization in a private scratch and are written as codes, in any layout.
Where the taps of a kernel row are adjacent in memory (one group, no horizontal dilation) the VNNI tile
walks one segment per kernel row instead of one per tap (the 7x7 stem with 3 channels: 7 segments of 7
k-quads instead of 49 of one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from refquant.kernels._jit import njit_inline, njit_parallel, prefer_wide_vectors

__all__ = [
    "TILE_COLS",
    "TILE_ROWS_PORTABLE",
    "TILE_ROWS_VNNI",
    "channel_sums",
    "conv_exact",
    "conv_portable",
    "conv_vnni",
    "conv_vnni_requant",
    "nhwc_to_nchw",
    "nhwc_to_out",
    "pad_contiguous",
    "pad_nchw_dense",
    "pad_nhwc_dense",
    "to_padded_nhwc",
]

TILE_ROWS_VNNI = 6
TILE_ROWS_PORTABLE = 4
TILE_COLS = 64

_VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"


def _tile_6x64_typer(
    typingctx: Any,
    rows_addr: Any,
    segs_addr: Any,
    nseg: Any,
    kq: Any,
    b_addr: Any,
    c_addr: Any,
    ldc: Any,
    init_addr: Any,
    rs_addr: Any,
    wz_addr: Any,
) -> Any:
    """6x64 int32 tile of an implicit GEMM with ``vpdpbusd`` (all arguments are int64).

    ``rows_addr``: address of 6 int64 byte addresses (the patch base of each output pixel);
    ``segs_addr``: address of ``nseg`` int64 byte offsets (one per (kh, kw) tap), added to each row
    base; each tap contributes ``kq`` k-quads (4 unsigned bytes broadcast per row);
    ``b_addr``: packed panel ``[nseg*kq][64][4]`` int8; ``c_addr``: int32 output, row stride
    ``ldc`` bytes; ``init_addr``: 64 int32 initial values per column; ``rs_addr``: 6 int32 row
    values and ``wz_addr``: 64 int32 column values, the epilogue subtracts ``rs[r] * wz[j]``.
    """
    sig = types.void(
        types.int64,
        types.int64,
        types.int64,
        types.int64,
        types.int64,
        types.int64,
        types.int64,
        types.int64,
        types.int64,
        types.int64,
    )

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        rows_a, segs_a, nseg_v, kq_v, b_a, c_a, ldc_v, init_a, rs_a, wz_a = args
        i32 = ir.IntType(32)
        i64 = ir.IntType(64)
        v16 = ir.VectorType(i32, 16)
        v16p = v16.as_pointer()
        i32p = i32.as_pointer()
        i64p = i64.as_pointer()
        fnty = ir.FunctionType(v16, [v16, v16, v16])
        vnni = cgutils.get_or_insert_function(builder.module, fnty, _VPDPBUSD)

        def ptr(addr: Any, ty: Any) -> Any:
            return builder.inttoptr(addr, ty)

        def splat(scalar: Any) -> Any:
            vec = builder.insert_element(ir.Constant(v16, ir.Undefined), scalar, ir.Constant(i32, 0))
            return builder.shuffle_vector(vec, ir.Constant(v16, ir.Undefined), ir.Constant(v16, [0] * 16))

        def load_v16(addr: Any) -> Any:
            return builder.load(ptr(addr, v16p), align=1)

        rows = [builder.load(builder.gep(ptr(rows_a, i64p), [ir.Constant(i64, r)])) for r in range(6)]
        accs = [[cgutils.alloca_once(builder, v16) for _ in range(4)] for _ in range(6)]
        for j in range(4):
            init_v = load_v16(builder.add(init_a, ir.Constant(i64, 64 * j)))
            for r in range(6):
                builder.store(init_v, accs[r][j])
        bcur = cgutils.alloca_once(builder, i64)
        builder.store(b_a, bcur)
        with cgutils.for_range(builder, nseg_v) as seg_loop:
            off = builder.load(builder.gep(ptr(segs_a, i64p), [seg_loop.index]))
            bases = [builder.add(rows[r], off) for r in range(6)]
            with cgutils.for_range(builder, kq_v) as q_loop:
                q4 = builder.mul(q_loop.index, ir.Constant(i64, 4))
                bq = builder.load(bcur)
                bv = [load_v16(builder.add(bq, ir.Constant(i64, 64 * j))) for j in range(4)]
                builder.store(builder.add(bq, ir.Constant(i64, 256)), bcur)
                for r in range(6):
                    a_word = builder.load(ptr(builder.add(bases[r], q4), i32p), align=1)
                    av = splat(a_word)
                    for j in range(4):
                        cur = builder.load(accs[r][j])
                        builder.store(builder.call(vnni, [cur, av, bv[j]]), accs[r][j])
        wz = [load_v16(builder.add(wz_a, ir.Constant(i64, 64 * j))) for j in range(4)]
        for r in range(6):
            rsv = splat(builder.load(builder.gep(ptr(rs_a, i32p), [ir.Constant(i64, r)])))
            row_base = builder.add(c_a, builder.mul(ldc_v, ir.Constant(i64, r)))
            for j in range(4):
                val = builder.sub(builder.load(accs[r][j]), builder.mul(rsv, wz[j]))
                builder.store(val, ptr(builder.add(row_base, ir.Constant(i64, 64 * j)), v16p), align=4)
        return context.get_dummy_value()

    return sig, codegen


_tile_6x64: Any = intrinsic(_tile_6x64_typer)


def _make_transpose16(bits: int, lanes: int) -> Any:
    """An intrinsic ``transpose(src, src_stride, src_lane_stride, dst, dst_stride, dst_lane_stride, mask)``:
    ``lanes`` independent 16 x 16 blocks of ``bits``-bit elements transposed in registers, each element XOR
    ``mask``.  Row ``r`` of block ``b`` is read at ``src + r * src_stride + b * src_lane_stride`` and row ``r``
    of its transpose written at ``dst + r * dst_stride + b * dst_lane_stride`` (byte addresses and strides;
    a lane stride of ``16 * bits / 8`` makes the ``lanes`` rows one contiguous vector).  The blocks sit side
    by side in vectors of ``16 * lanes`` elements and go through four butterfly stages of two-vector
    shuffles (stage ``d`` swaps the off-diagonal ``d x d`` sub-blocks of each ``2d x 2d`` block), so four
    byte blocks cost the shuffles of one."""
    width = 16 * lanes

    def typer(typingctx: Any, src: Any, ss: Any, sls: Any, dst: Any, ds: Any, dls: Any, mask: Any) -> Any:
        sig = types.void(*([types.int64] * 7))

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            src_a, src_s, src_ls, dst_a, dst_s, dst_ls, mask_v = args
            i32 = ir.IntType(32)
            i64 = ir.IntType(64)
            elem = ir.IntType(bits)
            v16 = ir.VectorType(elem, 16)
            vec = ir.VectorType(elem, width)

            def idx(values: list[int]) -> Any:
                return ir.Constant(ir.VectorType(i32, len(values)), values)

            def addr(base: Any, stride: Any, r: int, lane_stride: Any, b: int) -> Any:
                off = builder.add(
                    builder.mul(stride, ir.Constant(i64, r)), builder.mul(lane_stride, ir.Constant(i64, b))
                )
                return builder.inttoptr(builder.add(base, off), v16.as_pointer())

            m = builder.trunc(mask_v, elem)
            mvec = builder.shuffle_vector(
                builder.insert_element(ir.Constant(vec, ir.Undefined), m, ir.Constant(i32, 0)),
                ir.Constant(vec, ir.Undefined),
                idx([0] * width),
            )
            rows = []
            for r in range(16):
                parts = [builder.load(addr(src_a, src_s, r, src_ls, b), align=1) for b in range(lanes)]
                while len(parts) > 1:  # concatenate: 16 -> 32 -> 64 elements
                    n = parts[0].type.count
                    parts = [
                        builder.shuffle_vector(parts[i], parts[i + 1], idx(list(range(2 * n))))
                        for i in range(0, len(parts), 2)
                    ]
                rows.append(parts[0])
            for d in (8, 4, 2, 1):
                low = idx([b + (width + e - d if e & d else e) for b in range(0, width, 16) for e in range(16)])
                high = idx([b + (width + e if e & d else e + d) for b in range(0, width, 16) for e in range(16)])
                new = list(rows)
                for i in range(16):
                    if not i & d:
                        new[i] = builder.shuffle_vector(rows[i], rows[i + d], low)
                        new[i + d] = builder.shuffle_vector(rows[i], rows[i + d], high)
                rows = new
            for r in range(16):
                row = builder.xor(rows[r], mvec)
                for b in range(lanes):
                    part = (
                        row
                        if lanes == 1
                        else builder.shuffle_vector(
                            row, ir.Constant(vec, ir.Undefined), idx(list(range(16 * b, 16 * b + 16)))
                        )
                    )
                    builder.store(part, addr(dst_a, dst_s, r, dst_ls, b), align=1)
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"transpose16x16x{lanes}_{bits}"
    return intrinsic(typer)


_transpose16 = _make_transpose16(32, 1)
_transpose16_u8 = _make_transpose16(8, 1)
_transpose16x4_u8 = _make_transpose16(8, 4)


@njit_inline
def _transpose_channel_blocks(src, src_c, src_row, dst, dst_c, dst_row, channels, mask):
    """16 pixels x ``channels`` (>= 16) bytes between a layout with the channels as rows and one with the
    pixels as rows: channel ``c`` of a block starts at ``src + c * src_c`` and ``dst + c * dst_c``, the 16 rows
    of a block are ``src_row`` and ``dst_row`` bytes apart.  Blocks of 64 channels go four at once (16 at a
    time with fewer than 64 channels); the last block starts ``step`` channels from the end and overlaps the
    one before (the bytes written twice are the same)."""
    step = 64 if channels >= 64 else 16
    for c0 in range(0, channels, step):
        c1 = min(c0, channels - step)
        s = src + c1 * src_c
        d = dst + c1 * dst_c
        if step == 64:
            _transpose16x4_u8(s, src_row, 16 * src_c, d, dst_row, 16 * dst_c, mask)
        else:
            _transpose16_u8(s, src_row, 0, d, dst_row, 0, mask)


@njit_parallel
def to_padded_nhwc(xv, mask, pad_top, pad_left, fill, groups, cg, cg4, xp):
    """Write ``xv`` (an NHWC-ordered uint8 view, any strides) XOR ``mask`` into the padded buffer.

    ``xp`` is ``[N, Hp, Wp, groups*cg4]`` uint8: the border is ``fill``, each group's channels
    ``cg..cg4`` are 0.
    """
    n_, h_, w_, _ = xv.shape
    hp = xp.shape[1]
    wp = xp.shape[2]
    c_outer = xv.strides[3] > xv.strides[2]
    for row in prange(n_ * hp):
        n = row // hp
        hh = row - n * hp
        h = hh - pad_top
        dst = xp[n, hh]
        if h < 0 or h >= h_:
            for wq in range(wp):
                for g in range(groups):
                    for c in range(cg):
                        dst[wq, g * cg4 + c] = fill
                    for c in range(cg, cg4):
                        dst[wq, g * cg4 + c] = 0
            continue
        for wq in range(wp):
            if wq < pad_left or wq >= pad_left + w_:
                for g in range(groups):
                    for c in range(cg):
                        dst[wq, g * cg4 + c] = fill
            for g in range(groups):
                for c in range(cg, cg4):
                    dst[wq, g * cg4 + c] = 0
        src = xv[n, h]
        if c_outer:
            for g in range(groups):
                for c in range(cg):
                    for w in range(w_):
                        dst[pad_left + w, g * cg4 + c] = src[w, g * cg + c] ^ mask
        else:
            for w in range(w_):
                d = dst[pad_left + w]
                s = src[w]
                for g in range(groups):
                    for c in range(cg):
                        d[g * cg4 + c] = s[g * cg + c] ^ mask


@njit_parallel
def pad_contiguous(x, nchw, mask, pad_top, pad_left, fill, cg, xp):
    """``to_padded_nhwc`` for one group of fewer than 4 channels of a C-contiguous ``x`` (NCHW if ``nchw``).

    ``xp`` is ``[N, Hp, Wp, 4]``: each padded pixel is one little-endian 32-bit word (channel ``c`` in
    byte ``c``, the bytes ``cg..3`` zero), written whole: the fast path for a 3-channel image.
    """
    n_ = x.shape[0]
    h_ = x.shape[2] if nchw else x.shape[1]
    w_ = x.shape[3] if nchw else x.shape[2]
    hp = xp.shape[1]
    wp = xp.shape[2]
    m = np.uint32(0)
    f = np.uint32(0)
    for c in range(cg):
        m |= np.uint32(mask) << np.uint32(8 * c)
        f |= np.uint32(fill) << np.uint32(8 * c)
    for row in prange(n_ * hp):
        n = row // hp
        hh = row - n * hp
        h = hh - pad_top
        dst = xp[n, hh].reshape(-1).view(np.uint32)
        if h < 0 or h >= h_:
            for wq in range(wp):
                dst[wq] = f
            continue
        for wq in range(pad_left):
            dst[wq] = f
        for wq in range(pad_left + w_, wp):
            dst[wq] = f
        body = dst[pad_left : pad_left + w_]
        if nchw and cg == 3:
            r0 = x[n, 0, h]
            r1 = x[n, 1, h]
            r2 = x[n, 2, h]
            for w in range(w_):
                v = np.uint32(r0[w]) | (np.uint32(r1[w]) << np.uint32(8)) | (np.uint32(r2[w]) << np.uint32(16))
                body[w] = v ^ m
        elif nchw:
            for w in range(w_):
                v = np.uint32(x[n, 0, h, w])
                for c in range(1, cg):
                    v |= np.uint32(x[n, c, h, w]) << np.uint32(8 * c)
                body[w] = v ^ m
        elif cg == 3:  # an RGB image: a constant stride the compiler vectorises
            src = x[n, h].reshape(-1)
            for w in range(w_):
                v = (
                    np.uint32(src[3 * w])
                    | (np.uint32(src[3 * w + 1]) << np.uint32(8))
                    | (np.uint32(src[3 * w + 2]) << np.uint32(16))
                )
                body[w] = v ^ m
        else:
            src = x[n, h].reshape(-1)
            for w in range(w_):
                v = np.uint32(src[w * cg])
                for c in range(1, cg):
                    v |= np.uint32(src[w * cg + c]) << np.uint32(8 * c)
                body[w] = v ^ m


@njit_parallel
def pad_nhwc_dense(x, mask, pad_top, pad_left, fill, xp):
    """``to_padded_nhwc`` for a C-contiguous NHWC ``x`` whose channel runs need no padding (``cg % 4 == 0``)."""
    n_, h_, w_, c_ = x.shape
    hp = xp.shape[1]
    wp = xp.shape[2]
    m = np.uint8(mask)
    f = np.uint8(fill)
    for row in prange(n_ * hp):
        n = row // hp
        hh = row - n * hp
        h = hh - pad_top
        dst = xp[n, hh].reshape(-1)
        if h < 0 or h >= h_:
            for i in range(wp * c_):
                dst[i] = f
            continue
        for i in range(pad_left * c_):
            dst[i] = f
        for i in range((pad_left + w_) * c_, wp * c_):
            dst[i] = f
        src = x[n, h].reshape(-1)
        body = dst[pad_left * c_ : (pad_left + w_) * c_]
        for i in range(w_ * c_):
            body[i] = src[i] ^ m


@njit_parallel
def pad_nchw_dense(x, mask, pad_top, pad_left, fill, xp):
    """``to_padded_nhwc`` for a C-contiguous NCHW ``x`` whose channel runs need no padding (``cg % 4 == 0``)."""
    n_, c_, h_, w_ = x.shape
    hp = xp.shape[1]
    wp = xp.shape[2]
    m4 = np.uint32(mask) * np.uint32(0x01010101)
    f = np.uint8(fill)
    for row in prange(n_ * hp):
        n = row // hp
        hh = row - n * hp
        h = hh - pad_top
        dst = xp[n, hh].reshape(-1)
        if h < 0 or h >= h_:
            for i in range(wp * c_):
                dst[i] = f
            continue
        for i in range(pad_left * c_):
            dst[i] = f
        for i in range((pad_left + w_) * c_, wp * c_):
            dst[i] = f
        if w_ >= 16 and c_ >= 16:
            # the transpose C x W -> W x C in register blocks of 16 pixels (the last block of pixels starts 16
            # from the end and overlaps the one before: the bytes written twice are the same)
            src0 = np.int64(x.ctypes.data) + (n * c_ * h_ + h) * w_
            dst0 = np.int64(xp.ctypes.data) + ((n * hp + hh) * wp + pad_left) * c_
            hw = h_ * w_
            for w0 in range(0, w_, 16):
                w1 = min(w0, w_ - 16)
                _transpose_channel_blocks(src0 + w1, hw, hw, dst0 + w1 * c_, 1, c_, c_, mask)
            continue
        # the transpose C x W -> W x C, four channels at a time into one little-endian 32-bit word
        # (c_ is a multiple of 4 here): 3-4x faster than byte by byte
        body = dst[pad_left * c_ : (pad_left + w_) * c_].view(np.uint32)
        c4 = c_ // 4
        for q in range(c4):
            r0 = x[n, 4 * q, h]
            r1 = x[n, 4 * q + 1, h]
            r2 = x[n, 4 * q + 2, h]
            r3 = x[n, 4 * q + 3, h]
            for w in range(w_):
                v = (
                    np.uint32(r0[w])
                    | (np.uint32(r1[w]) << np.uint32(8))
                    | (np.uint32(r2[w]) << np.uint32(16))
                    | (np.uint32(r3[w]) << np.uint32(24))
                )
                body[w * c4 + q] = v ^ m4


@njit_parallel
def channel_sums(xp, groups, cg4, cs):
    """``cs[n, h, w, g]`` = sum of the bytes of group ``g`` at padded pixel ``(n, h, w)``."""
    n_, hp, wp, _ = xp.shape
    for row in prange(n_ * hp):
        n = row // hp
        h = row - n * hp
        for w in range(wp):
            pix = xp[n, h, w]
            for g in range(groups):
                s = np.int32(0)
                seg = pix[g * cg4 : g * cg4 + cg4]
                for c in range(cg4):
                    s += np.int32(seg[c])
                cs[n, h, w, g] = s


@njit_inline
def _tile_rows(
    item, ntiles, npanels, groups, pixels, ow_, hp, wp, sh, sw, cpix, cg4, x_base, use_rs, cs, taps_h, taps_w, rows, rs
):
    """Work item ``item`` of the VNNI drivers (tile-major within panel, group, image) as ``(n, g, pb, p0, nrows)``;
    fills ``rows`` with the byte addresses of the tile's 6 patch bases in ``xp`` (the last valid row repeated past
    ``nrows``) and, with ``use_rs``, ``rs`` with their patch sums from ``cs``."""
    t = item % ntiles
    rest = item // ntiles
    pb = rest % npanels
    rest = rest // npanels
    g = rest % groups
    n = rest // groups
    p0 = t * 6
    nrows = min(6, pixels - p0)
    for r in range(6):
        p = p0 + min(r, nrows - 1)
        oh = p // ow_
        ow = p - oh * ow_
        rows[r] = x_base + (((n * hp + oh * sh) * wp + ow * sw) * cpix + g * cg4)
        if use_rs:
            s = np.int32(0)
            for tap in range(taps_h.shape[0]):
                s += cs[n, oh * sh + taps_h[tap], ow * sw + taps_w[tap], g]
            rs[r] = s
    return n, g, pb, p0, nrows


def _conv_vnni_body(
    xp, bp, segs, taps_h, taps_w, oh_, ow_, sh, sw, groups, cg4, ocg, init, wz, cs, use_rs, nchunks, out
):
    """VNNI driver: ``out[n, p, g*ocg + oc]`` for every pixel ``p`` (flattened oh, ow) and channel.

    ``bp``: ``[groups, npanels, K/4, 64, 4]`` int8; ``segs``: int64 byte offsets of the contiguous
    segments of a patch relative to its base, each ``K/4 / len(segs)`` k-quads long (one per tap, or,
    where the taps of a kernel row are adjacent in memory, one per kernel row); ``taps_h``/``taps_w``:
    each tap's row/column offset in padded pixels (for the patch sums); ``init``/``wz``: ``[groups, npanels*64]`` int32 column terms; ``cs``: patch-sum
    source (``channel_sums``), read only when ``use_rs``.
    """
    n_, hp, wp, cpix = xp.shape
    npanels = bp.shape[1]
    nseg = segs.shape[0]
    kq = bp.shape[2] // nseg  # k-quads per segment: one tap's channel run, or a kernel row's merged runs
    oc_total = out.shape[2]
    pixels = oh_ * ow_
    ntiles = (pixels + 5) // 6
    items = n_ * groups * npanels * ntiles
    per = (items + nchunks - 1) // nchunks
    x_base = np.int64(xp.ctypes.data)
    bp_base = np.int64(bp.ctypes.data)
    panel_bytes = np.int64(bp.shape[2]) * 256
    init_base = np.int64(init.ctypes.data)
    wz_base = np.int64(wz.ctypes.data)
    width = init.shape[1]
    out_base = np.int64(out.ctypes.data)
    segs_addr = np.int64(segs.ctypes.data)
    ldc = oc_total * 4
    for chunk in prange(nchunks):
        rows = np.empty(6, np.int64)
        rs = np.zeros(6, np.int32)
        scratch = np.empty((6, 64), np.int32)
        rows_addr = np.int64(rows.ctypes.data)
        rs_addr = np.int64(rs.ctypes.data)
        scratch_addr = np.int64(scratch.ctypes.data)
        for item in range(chunk * per, min(items, chunk * per + per)):
            n, g, pb, p0, nrows = _tile_rows(
                item, ntiles, npanels, groups, pixels, ow_, hp, wp, sh, sw, cpix, cg4, x_base, use_rs, cs, taps_h, taps_w,
                rows, rs,
            )  # fmt: skip
            col0 = g * ocg + pb * 64
            ncols = min(64, ocg - pb * 64)
            # addresses by arithmetic (bp, init and wz are C-contiguous): no array views in the tile loop
            b_addr = bp_base + (g * npanels + pb) * panel_bytes
            init_addr = init_base + (g * width + pb * 64) * 4
            wz_addr = wz_base + (g * width + pb * 64) * 4
            if nrows == 6 and ncols == 64:
                c_addr = out_base + ((n * pixels + p0) * oc_total + col0) * 4
                _tile_6x64(
                    rows_addr,
                    segs_addr,
                    np.int64(nseg),
                    np.int64(kq),
                    b_addr,
                    c_addr,
                    np.int64(ldc),
                    init_addr,
                    rs_addr,
                    wz_addr,
                )
            else:
                _tile_6x64(
                    rows_addr,
                    segs_addr,
                    np.int64(nseg),
                    np.int64(kq),
                    b_addr,
                    scratch_addr,
                    np.int64(256),
                    init_addr,
                    rs_addr,
                    wz_addr,
                )
                for r in range(nrows):
                    for j in range(ncols):
                        out[n, p0 + r, col0 + j] = scratch[r, j]


def _conv_vnni_requant_body(
    xp,
    bp,
    segs,
    taps_h,
    taps_w,
    oh_,
    ow_,
    sh,
    sw,
    groups,
    cg4,
    ocg,
    init,
    wz,
    cs,
    use_rs,
    nchunks,
    bias,
    m32,
    m64,
    mode64,
    zp,
    lo,
    hi,
    out,
):
    """The VNNI driver with the QLinearConv epilogue fused: codes instead of int32 accumulators.

    Each 6x64 tile is computed into a private int32 scratch (as the VNNI driver computes it), then
    per element ``a = int32(acc + bias[oc])`` (wrapping), ``r = rint(float32(a) * m32[oc])`` (or
    ``rint(float64(a) * m64[oc])`` with ``mode64``), ``clamp(r, lo - zp, hi - zp) + zp`` written to
    ``out[n, p, oc]`` (any strides: NHWC, or NCHW seen as ``[N, P, OC]``; the store truncates to ``out``'s
    width, so signed codes may be written through an unsigned view of the same width).  These are the FLOAT32 /
    FLOAT64 requantization steps of ``refquant.kernels.requant`` (no element is unpredictable there).
    """
    n_, hp, wp, cpix = xp.shape
    npanels = bp.shape[1]
    nseg = segs.shape[0]
    kq = bp.shape[2] // nseg  # k-quads per segment: one tap's channel run, or a kernel row's merged runs
    pixels = oh_ * ow_
    ntiles = (pixels + 5) // 6
    items = n_ * groups * npanels * ntiles
    per = (items + nchunks - 1) // nchunks
    x_base = np.int64(xp.ctypes.data)
    bp_base = np.int64(bp.ctypes.data)
    panel_bytes = np.int64(bp.shape[2]) * 256
    init_base = np.int64(init.ctypes.data)
    wz_base = np.int64(wz.ctypes.data)
    width = init.shape[1]
    segs_addr = np.int64(segs.ctypes.data)
    flo32 = np.float32(lo - zp)
    fhi32 = np.float32(hi - zp)
    flo64 = np.float64(lo - zp)
    fhi64 = np.float64(hi - zp)
    zp32 = np.int32(zp)
    for chunk in prange(nchunks):
        prefer_wide_vectors()
        rows = np.empty(6, np.int64)
        rs = np.zeros(6, np.int32)
        scratch = np.empty((6, 64), np.int32)
        rows_addr = np.int64(rows.ctypes.data)
        rs_addr = np.int64(rs.ctypes.data)
        scratch_addr = np.int64(scratch.ctypes.data)
        for item in range(chunk * per, min(items, chunk * per + per)):
            n, g, pb, p0, nrows = _tile_rows(
                item, ntiles, npanels, groups, pixels, ow_, hp, wp, sh, sw, cpix, cg4, x_base, use_rs, cs, taps_h, taps_w,
                rows, rs,
            )  # fmt: skip
            col0 = g * ocg + pb * 64
            ncols = min(64, ocg - pb * 64)
            # addresses by arithmetic (bp, init and wz are C-contiguous): no array views in the tile loop
            b_addr = bp_base + (g * npanels + pb) * panel_bytes
            init_addr = init_base + (g * width + pb * 64) * 4
            wz_addr = wz_base + (g * width + pb * 64) * 4
            _tile_6x64(
                rows_addr,
                segs_addr,
                np.int64(nseg),
                np.int64(kq),
                b_addr,
                scratch_addr,
                np.int64(256),
                init_addr,
                rs_addr,
                wz_addr,
            )
            # The clamped values lie in [lo - zp, hi - zp] (16-bit codes at most): exact in int32.  No value is
            # NaN (finite multipliers, int32 sums), so the comparisons below are max and min.
            bcol = bias[col0 : col0 + ncols]
            if mode64:
                mcol = m64[col0 : col0 + ncols]
                for r in range(nrows):
                    dst = out[n, p0 + r, col0 : col0 + ncols]
                    src = scratch[r]
                    for j in range(ncols):
                        a = np.int32(np.int64(src[j]) + np.int64(bcol[j]))
                        v = np.rint(np.float64(a) * mcol[j])
                        v = v if v > flo64 else flo64
                        v = v if v < fhi64 else fhi64
                        dst[j] = np.int32(v) + zp32
            else:
                mcol32 = m32[col0 : col0 + ncols]
                for r in range(nrows):
                    dst = out[n, p0 + r, col0 : col0 + ncols]
                    src = scratch[r]
                    for j in range(ncols):
                        a = np.int32(np.int64(src[j]) + np.int64(bcol[j]))
                        v32 = np.rint(np.float32(a) * mcol32[j])
                        v32 = v32 if v32 > flo32 else flo32
                        v32 = v32 if v32 < fhi32 else fhi32
                        dst[j] = np.int32(v32) + zp32


def _conv_portable_body(
    xp, wt, segs, taps_h, taps_w, oh_, ow_, sh, sw, groups, cg, cg4, init, wz, cs, use_rs, nchunks, out
):
    """Portable driver: same contract as the VNNI driver, ``wt`` is ``[groups, K, ocg]`` int32.

    Tiles of 4 output pixels by all of a group's output channels, int32 accumulators (wrapping).
    ``segs`` holds element offsets into the flattened ``xp`` here.
    """
    n_, hp, wp, cpix = xp.shape
    ocg = wt.shape[2]
    nseg = segs.shape[0]
    pixels = oh_ * ow_
    ntiles = (pixels + 3) // 4
    items = n_ * groups * ntiles
    per = (items + nchunks - 1) // nchunks
    xf = xp.reshape(-1)
    for chunk in prange(nchunks):
        acc = np.empty((4, ocg), np.int32)
        base = np.empty(4, np.int64)
        rs = np.zeros(4, np.int32)
        for item in range(chunk * per, min(items, chunk * per + per)):
            t = item % ntiles
            rest = item // ntiles
            g = rest % groups
            n = rest // groups
            p0 = t * 4
            nrows = min(4, pixels - p0)
            for r in range(4):
                p = p0 + min(r, nrows - 1)
                oh = p // ow_
                ow = p - oh * ow_
                base[r] = ((n * hp + oh * sh) * wp + ow * sw) * cpix + g * cg4
                if use_rs:
                    s = np.int32(0)
                    for tap in range(nseg):
                        s += cs[n, oh * sh + taps_h[tap], ow * sw + taps_w[tap], g]
                    rs[r] = s
            a0 = acc[0]
            a1 = acc[1]
            a2 = acc[2]
            a3 = acc[3]
            iv = init[g]
            for j in range(ocg):
                a0[j] = iv[j]
                a1[j] = iv[j]
                a2[j] = iv[j]
                a3[j] = iv[j]
            wg = wt[g]
            for tap in range(nseg):
                o = segs[tap]
                x0 = xf[base[0] + o : base[0] + o + cg]
                x1 = xf[base[1] + o : base[1] + o + cg]
                x2 = xf[base[2] + o : base[2] + o + cg]
                x3 = xf[base[3] + o : base[3] + o + cg]
                for c in range(cg):
                    wrow = wg[tap * cg4 + c]
                    v0 = np.int32(x0[c])
                    v1 = np.int32(x1[c])
                    v2 = np.int32(x2[c])
                    v3 = np.int32(x3[c])
                    for j in range(ocg):
                        wv = wrow[j]
                        a0[j] = np.int32(a0[j] + v0 * wv)
                        a1[j] = np.int32(a1[j] + v1 * wv)
                        a2[j] = np.int32(a2[j] + v2 * wv)
                        a3[j] = np.int32(a3[j] + v3 * wv)
            wzg = wz[g]
            for r in range(nrows):
                dst = out[n, p0 + r, g * ocg : g * ocg + ocg]
                src = acc[r]
                rv = rs[r]
                for j in range(ocg):
                    dst[j] = np.int32(src[j] - rv * wzg[j])


def _conv_exact_body(xp, wt, taps_h, taps_w, oh_, ow_, sh, sw, groups, cg, cg4, xz, wz, c_outer, saturate, out):
    """Exact reference-order kernel on the same operands: ``sum (x' - xz)(w' - wz[g, oc])``.

    ``saturate``: int32 saturation after every multiply-add, taps visited in the order of the
    flattened weight (``c_outer``: (c, kh, kw) as in OIHW, otherwise (kh, kw, c) as in OHWI);
    otherwise the exact int64 sum.  ``out``: ``[N, pixels, OC]`` int64.
    """
    n_ = xp.shape[0]
    ocg = wt.shape[2]
    nseg = taps_h.shape[0]
    pixels = oh_ * ow_
    lo = np.int64(-2147483648)
    hi = np.int64(2147483647)
    for item in prange(n_ * pixels):
        n = item // pixels
        p = item - n * pixels
        oh = p // ow_
        ow = p - oh * ow_
        for g in range(groups):
            wg = wt[g]
            for oc in range(ocg):
                zw = np.int64(wz[g, oc])
                acc = np.int64(0)
                for outer in range(cg if c_outer else nseg):
                    for inner in range(nseg if c_outer else cg):
                        c = outer if c_outer else inner
                        tap = inner if c_outer else outer
                        xv = np.int64(xp[n, oh * sh + taps_h[tap], ow * sw + taps_w[tap], g * cg4 + c]) - xz
                        acc += xv * (np.int64(wg[tap * cg4 + c, oc]) - zw)
                        if saturate:
                            acc = min(max(acc, lo), hi)
                out[n, p, g * ocg + oc] = acc


def _nhwc_to_nchw_body(src, dst):
    """``dst[n, oc, p] = src[n, p, oc]``: ``src`` ``[N, P, OC]`` and ``dst`` ``[N, OC, P]``, both C-contiguous,
    of one dtype of 4 bytes (int32 sums) or 1 byte (codes).

    Blocks of 16 pixels x 16 channels (64 channels for bytes, four blocks at once) go through the register
    transposes, the last channel block overlapping the one before; where every ``dst`` row
    starts at the same offset (``P`` a multiple of 16), the blocks start where their rows begin a 16-element
    run on a ``16 * itemsize``-byte boundary (a store that straddles two cache lines costs about twice as
    much).  The pixels before the first and after the last whole block (and every element when there are
    fewer than 16 channels) are copied element by element (one extra work item per image).
    """
    n_, pixels, oc_total = src.shape
    es = src.itemsize
    whole = oc_total if oc_total >= 16 else 0  # channel blocks overlap at the end: 16 channels suffice
    s0 = np.int64(src.ctypes.data)
    d0 = np.int64(dst.ctypes.data)
    shift = 0
    if pixels % 16 == 0 and d0 % es == 0:
        shift = min(pixels, ((16 * es - d0 % (16 * es)) % (16 * es)) // es)
    nblk = (pixels - shift) // 16
    tail = shift + 16 * nblk
    for item in prange(n_ * (nblk + 1)):
        n = item // (nblk + 1)
        b = item - n * (nblk + 1)
        if b < nblk:
            p0 = shift + 16 * b
            sa = s0 + (n * pixels + p0) * oc_total * es
            da = d0 + (n * oc_total * pixels + p0) * es
            if es == 1 and whole:
                _transpose_channel_blocks(sa, 1, oc_total, da, pixels, pixels, oc_total, 0)
            elif whole:
                for c0 in range(0, oc_total, 16):
                    c1 = min(c0, oc_total - 16)  # the last block overlaps the one before (same values written)
                    _transpose16(sa + c1 * 4, oc_total * 4, 0, da + c1 * pixels * 4, pixels * 4, 0, 0)
            for oc in range(whole, oc_total):
                d = dst[n, oc]
                for p in range(p0, p0 + 16):
                    d[p] = src[n, p, oc]
        else:
            for oc in range(oc_total):
                d = dst[n, oc]
                for p in range(shift):
                    d[p] = src[n, p, oc]
                for p in range(tail, pixels):
                    d[p] = src[n, p, oc]


def _nhwc_to_out_body(src, dst):
    """Copy ``src`` ``[N, P, OC]`` int32 into ``dst`` (same shape, any strides and integer dtype)."""
    n_, pixels, oc_total = src.shape
    nblk = (pixels + 15) // 16
    for item in prange(n_ * nblk):
        n = item // nblk
        p0 = (item - n * nblk) * 16
        p1 = min(pixels, p0 + 16)
        for oc in range(oc_total):
            for p in range(p0, p1):
                dst[n, p, oc] = src[n, p, oc]


conv_vnni = njit_parallel(_conv_vnni_body)
conv_vnni_requant = njit_parallel(_conv_vnni_requant_body)
conv_portable = njit_parallel(_conv_portable_body)
conv_exact = njit_parallel(_conv_exact_body)
nhwc_to_out = njit_parallel(_nhwc_to_out_body)
nhwc_to_nchw = njit_parallel(_nhwc_to_nchw_body)
