"""AVX-512 VNNI micro-kernel: ``vpdpbusd`` emitted through a Numba ``@intrinsic``.

LLVM does not turn Numba loops into ``vpdpbusd`` by itself, so the inner loop of the GEMM is
written directly in LLVM IR (llvmlite's IR builder) and inlined into the ``@njit`` drivers of
``refquant.kernels.gemm``.

Data layout the tile reads (built by ``gemm.pack_rhs_vnni`` and ``gemm.prepare_lhs``):

* A: unsigned bytes ``Au`` (int8 activations arrive shifted by ``XOR 0x80``), one row of ``Kp``
  bytes per output row, ``Kp`` a multiple of 4;
* B: one 64-column panel of signed bytes ``Bs`` laid out ``[Kp/4][64][4]``: for every group of
  four consecutive k, the 4 bytes of column 0, then column 1, ... (256 bytes per k-quad);
* C: int32, ``MR`` rows of 64 values with a row stride given in elements.  The tile starts its
  accumulators at the zero-point and sign correction ``beta[j] * rs[r] - al[r] * tcol[j]``
  (int32 arithmetic, modulo 2**32; ``rs``/``al``: ``MR`` int32 per row, ``beta``/``tcol``: 64 int32
  per column), adds ``sum_k Au[r, k] * Bs[k, j]`` and stores the result to C.  Computing the
  correction in registers avoids a store/reload round trip through C, which cost about as much
  as the whole tile at K = 256.

``vpdpbusd`` (the non-saturating form) adds four u8*s8 products to each int32 lane with
two's-complement wrap-around, so the tile computes the sum modulo 2**32 for any K.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["MR", "NR", "tile_1x64", "tile_2x64", "tile_3x64", "tile_4x64", "tile_5x64", "tile_6x64"]

MR = 6
"""Rows of the widest tile (6 rows x 4 zmm = 24 accumulators, below the 32 zmm registers)."""
NR = 64
"""Columns of a tile and of a packed panel (4 zmm of 16 int32 lanes)."""

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)


def _make_tile(mr: int) -> Any:
    """An intrinsic ``tile(a_addr, lda, b_addr, kq, c_addr, ldc, rs_addr, al_addr, beta_addr, tcol_addr)``.

    ``mr`` rows x 64 columns; the last four are addresses of int32 vectors (``mr`` row values, 64
    column values) giving the starting accumulators.
    """

    def typer(
        typingctx: Any,
        a_addr: Any,
        lda: Any,
        b_addr: Any,
        kq: Any,
        c_addr: Any,
        ldc: Any,
        rs_addr: Any,
        al_addr: Any,
        beta_addr: Any,
        tcol_addr: Any,
    ) -> Any:
        args = (a_addr, lda, b_addr, kq, c_addr, ldc, rs_addr, al_addr, beta_addr, tcol_addr)
        if not all(isinstance(t, types.Integer) for t in args):
            return None
        sig = types.void(*args)

        def codegen(context: Any, builder: Any, signature: Any, llargs: Any) -> Any:
            vals = [context.cast(builder, v, t, types.intp) for v, t in zip(llargs, signature.args, strict=True)]
            a_addr_v, lda_v, b_addr_v, kq_v, c_addr_v, ldc_v, rs_v, al_v, beta_v, tcol_v = vals
            intp_t = context.get_value_type(types.intp)
            fnty = ir.FunctionType(_V16, [_V16, _V16, _V16])
            dpbusd = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")  # type: ignore[no-untyped-call]
            a_base = builder.inttoptr(a_addr_v, _I8.as_pointer())
            b_base = builder.inttoptr(b_addr_v, _I8.as_pointer())
            c_base = builder.inttoptr(c_addr_v, _I32.as_pointer())
            a_rows = [builder.gep(a_base, [builder.mul(lda_v, ir.Constant(intp_t, r))]) for r in range(mr)]
            c_rows = [builder.gep(c_base, [builder.mul(ldc_v, ir.Constant(intp_t, r))]) for r in range(mr)]
            undef = ir.Constant(_V16, ir.Undefined)
            zeros16 = ir.Constant(ir.VectorType(_I32, 16), [0] * 16)

            def splat(word: Any) -> Any:
                return builder.shuffle_vector(builder.insert_element(undef, word, ir.Constant(_I32, 0)), undef, zeros16)

            beta_p = builder.inttoptr(beta_v, _I32.as_pointer())
            tcol_p = builder.inttoptr(tcol_v, _I32.as_pointer())
            rs_p = builder.inttoptr(rs_v, _I32.as_pointer())
            al_p = builder.inttoptr(al_v, _I32.as_pointer())
            betas = [
                builder.load(
                    builder.bitcast(builder.gep(beta_p, [ir.Constant(intp_t, 16 * v)]), _V16.as_pointer()), align=4
                )
                for v in range(4)
            ]
            tcols = [
                builder.load(
                    builder.bitcast(builder.gep(tcol_p, [ir.Constant(intp_t, 16 * v)]), _V16.as_pointer()), align=4
                )
                for v in range(4)
            ]
            accs = []
            for r in range(mr):
                rs_r = splat(builder.load(builder.gep(rs_p, [ir.Constant(intp_t, r)]), align=4))
                al_r = splat(builder.load(builder.gep(al_p, [ir.Constant(intp_t, r)]), align=4))
                row = []
                for v in range(4):
                    slot = cgutils.alloca_once(builder, _V16)  # type: ignore[no-untyped-call]
                    builder.store(builder.sub(builder.mul(betas[v], rs_r), builder.mul(al_r, tcols[v])), slot)
                    row.append(slot)
                accs.append(row)
            with cgutils.for_range(builder, kq_v) as loop:
                q = loop.index
                b_off = builder.mul(q, ir.Constant(intp_t, 256))
                b_vecs = []
                for v in range(4):
                    p = builder.gep(b_base, [builder.add(b_off, ir.Constant(intp_t, 64 * v))])
                    b_vecs.append(builder.load(builder.bitcast(p, _V16.as_pointer()), align=1))
                a_off = builder.mul(q, ir.Constant(intp_t, 4))
                for r in range(mr):
                    p = builder.bitcast(builder.gep(a_rows[r], [a_off]), _I32.as_pointer())
                    word = builder.load(p, align=1)
                    splat = builder.shuffle_vector(
                        builder.insert_element(undef, word, ir.Constant(_I32, 0)), undef, zeros16
                    )
                    for v in range(4):
                        builder.store(builder.call(dpbusd, [builder.load(accs[r][v]), splat, b_vecs[v]]), accs[r][v])
            for r in range(mr):
                for v in range(4):
                    ptr = builder.bitcast(builder.gep(c_rows[r], [ir.Constant(intp_t, 16 * v)]), _V16.as_pointer())
                    builder.store(builder.load(accs[r][v]), ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = f"vnni_tile_{mr}x64"
    return intrinsic(typer)


tile_1x64 = _make_tile(1)
tile_2x64 = _make_tile(2)
tile_3x64 = _make_tile(3)
tile_4x64 = _make_tile(4)
tile_5x64 = _make_tile(5)
tile_6x64 = _make_tile(6)
