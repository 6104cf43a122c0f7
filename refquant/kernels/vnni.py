"""AVX-512 VNNI micro-kernel: ``vpdpbusd`` emitted through a Numba ``@intrinsic``.

LLVM does not turn Numba loops into ``vpdpbusd`` by itself, so the inner loop of the GEMM is
written directly in LLVM IR (llvmlite's IR builder) and inlined into the ``@njit`` drivers of
``refquant.kernels.gemm``.

Data layout the tile reads (built by ``gemm.pack_rhs_vnni``, and by ``gemm.prepare_lhs`` or the fused drivers' per-task row shift):

* A: unsigned bytes ``Au`` (int8 activations arrive shifted by ``XOR 0x80``), one row of ``Kp``
  bytes per output row, ``Kp`` a multiple of 4;
* B: one ``NR``-column panel of signed bytes ``Bs`` laid out ``[Kp/4][NR][4]``: for every group of
  four consecutive k, the 4 bytes of column 0, then column 1, ... (``4 * NR`` bytes per k-quad);
* C: int32, ``mr`` rows of ``NR`` values with a row stride given in elements.  The tile starts its
  accumulators at the zero-point and sign correction ``beta[j] * rs[r] - al[r] * tcol[j]`` (int32
  arithmetic, modulo 2**32; ``rs``/``al``: ``mr`` int32 per row, ``beta``/``tcol``: ``NR`` int32 per
  column), adds ``sum_k Au[r, k] * Bs[k, j]`` and stores the result to C.  Computing the correction
  in registers avoids a store/reload round trip through C, which cost about as much as the whole
  tile at K = 256.

The tile shape, 8 rows x 48 columns (24 zmm accumulators, 3 zmm of B and 8 broadcasts of A per
k-quad), measured about 10% faster than the former 6 x 64 tile (24 accumulators) at 1024**3 and at
M = 16, K = 4096 (one thread, kernel alone, on the Xeon (Emerald Rapids) it was tuned on); 12 x 32,
14 x 32, 9 x 48 and 4 x 64 were no better.  The last panel of B, when N is not a multiple of 48, runs
on narrower tiles (16 or 32 columns) instead of a full one.  Each tile prefetches the panel
``PREFETCH`` bytes ahead.

``vpdpbusd`` (the non-saturating form) adds four u8*s8 products to each int32 lane with
two's-complement wrap-around, so the tile computes the sum modulo 2**32 for any K.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils

from refquant.kernels._jit import tile_intrinsic

__all__ = ["MR", "NR"] + [f"tile_{r}{w}" for r in range(1, 9) for w in ("", "_16", "_32")]

MR = 8
"""Rows of the widest tile (8 rows x 3 zmm = 24 accumulators, below the 32 zmm registers)."""
NV = 3
"""zmm registers (16 int32 lanes each) across a tile."""
NR = 16 * NV
"""Columns of a tile and of a packed panel."""
PREFETCH = 1024
"""Bytes of the B panel ahead of the current k-quad that the tile prefetches (``llvm.prefetch``, read,
keep in all cache levels): +8% at M = 16, K = 4096, where the panel streams from memory, and 0 to +2%
on the compute-bound shapes (one thread, kernel alone)."""

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)


def _make_tile(mr: int, nv: int = NV) -> Any:
    """An intrinsic ``tile(a_addr, lda, b_addr, kq, c_addr, ldc, rs_addr, al_addr, beta_addr, tcol_addr)``.

    ``mr`` rows x ``16 * nv`` columns (the first ``16 * nv`` columns of a panel: ``nv < NV`` for the last,
    partial panel of B); the last four are addresses of int32 vectors (``mr`` row values, ``16 * nv``
    column values) giving the starting accumulators.
    """

    def emit(context: Any, builder: Any, vals: list[Any]) -> None:
        a_addr_v, lda_v, b_addr_v, kq_v, c_addr_v, ldc_v, rs_v, al_v, beta_v, tcol_v = vals
        intp_t = context.get_value_type(types.intp)

        def const(x: int) -> Any:
            return ir.Constant(intp_t, x)

        fnty = ir.FunctionType(_V16, [_V16, _V16, _V16])
        dpbusd = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")  # type: ignore[no-untyped-call]
        pfty = ir.FunctionType(ir.VoidType(), [_I8.as_pointer(), _I32, _I32, _I32])
        prefetch = cgutils.get_or_insert_function(builder.module, pfty, "llvm.prefetch.p0")  # type: ignore[no-untyped-call]
        a_base = builder.inttoptr(a_addr_v, _I8.as_pointer())
        b_base = builder.inttoptr(b_addr_v, _I8.as_pointer())
        c_base = builder.inttoptr(c_addr_v, _I32.as_pointer())
        a_rows = [builder.gep(a_base, [builder.mul(lda_v, const(r))]) for r in range(mr)]
        c_rows = [builder.gep(c_base, [builder.mul(ldc_v, const(r))]) for r in range(mr)]
        undef = ir.Constant(_V16, ir.Undefined)
        zeros16 = ir.Constant(ir.VectorType(_I32, 16), [0] * 16)

        def splat(word: Any) -> Any:
            return builder.shuffle_vector(builder.insert_element(undef, word, ir.Constant(_I32, 0)), undef, zeros16)

        def vec_ptr(base: Any, index: int) -> Any:
            return builder.bitcast(builder.gep(base, [const(index)]), _V16.as_pointer())

        beta_p = builder.inttoptr(beta_v, _I32.as_pointer())
        tcol_p = builder.inttoptr(tcol_v, _I32.as_pointer())
        rs_p = builder.inttoptr(rs_v, _I32.as_pointer())
        al_p = builder.inttoptr(al_v, _I32.as_pointer())
        accs = [[cgutils.alloca_once(builder, _V16) for _ in range(nv)] for _ in range(mr)]  # type: ignore[no-untyped-call]
        betas = [builder.load(vec_ptr(beta_p, 16 * v), align=4) for v in range(nv)]
        tcols = [builder.load(vec_ptr(tcol_p, 16 * v), align=4) for v in range(nv)]
        for r in range(mr):
            rs_r = splat(builder.load(builder.gep(rs_p, [const(r)]), align=4))
            al_r = splat(builder.load(builder.gep(al_p, [const(r)]), align=4))
            for v in range(nv):
                builder.store(builder.sub(builder.mul(betas[v], rs_r), builder.mul(al_r, tcols[v])), accs[r][v])
        with cgutils.for_range(builder, kq_v) as loop:
            q = loop.index
            b_off = builder.mul(q, const(4 * NR))
            for v in range(nv):  # the panel PREFETCH bytes ahead (a prefetch never faults, even past the end)
                p = builder.gep(b_base, [builder.add(b_off, const(PREFETCH + 64 * v))])
                builder.call(prefetch, [p, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
            b_vecs = []
            for v in range(nv):
                p = builder.gep(b_base, [builder.add(b_off, const(64 * v))])
                b_vecs.append(builder.load(builder.bitcast(p, _V16.as_pointer()), align=1))
            a_off = builder.mul(q, const(4))
            for r in range(mr):
                p = builder.bitcast(builder.gep(a_rows[r], [a_off]), _I32.as_pointer())
                word = splat(builder.load(p, align=1))
                for v in range(nv):
                    builder.store(builder.call(dpbusd, [builder.load(accs[r][v]), word, b_vecs[v]]), accs[r][v])
        for r in range(mr):
            for v in range(nv):
                builder.store(builder.load(accs[r][v]), vec_ptr(c_rows[r], 16 * v), align=4)

    return tile_intrinsic(f"vnni_tile_{mr}x{16 * nv}", emit)


tile_1 = _make_tile(1)
tile_2 = _make_tile(2)
tile_3 = _make_tile(3)
tile_4 = _make_tile(4)
tile_5 = _make_tile(5)
tile_6 = _make_tile(6)
tile_7 = _make_tile(7)
tile_8 = _make_tile(8)
tile_1_16 = _make_tile(1, 1)
tile_2_16 = _make_tile(2, 1)
tile_3_16 = _make_tile(3, 1)
tile_4_16 = _make_tile(4, 1)
tile_5_16 = _make_tile(5, 1)
tile_6_16 = _make_tile(6, 1)
tile_7_16 = _make_tile(7, 1)
tile_8_16 = _make_tile(8, 1)
tile_1_32 = _make_tile(1, 2)
tile_2_32 = _make_tile(2, 2)
tile_3_32 = _make_tile(3, 2)
tile_4_32 = _make_tile(4, 2)
tile_5_32 = _make_tile(5, 2)
tile_6_32 = _make_tile(6, 2)
tile_7_32 = _make_tile(7, 2)
tile_8_32 = _make_tile(8, 2)
