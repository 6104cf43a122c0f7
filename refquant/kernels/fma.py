"""Portable GEMM micro-kernel: the int8 products summed exactly with float32 multiply-adds.

The tile is written in target-independent LLVM IR (16-lane vectors and ``llvm.fmuladd``, through a
Numba ``@intrinsic`` as in ``refquant.kernels.vnni``): LLVM lowers it to ``vfmadd`` on x86 with FMA
(512-bit on AVX-512 hosts, two 256-bit halves on AVX2), to ``fmla`` on ARM, and to a multiply and an
add where there is no fused instruction.  No instruction set is assumed.

Why float32 and why it is exact.  The operands are ``Au`` in [0, 255] and ``Bs`` in [-128, 127]
(``refquant.kernels.gemm``), converted to float32 exactly, so every product is an integer of
magnitude at most 255 * 128 = 32640 < 2**15.  Within a block of ``KB = 512`` consecutive k every
partial sum is an integer of magnitude at most 512 * 32640 = 16 711 680 < 2**24, and float32
represents every integer below 2**24 exactly: each multiply-add, fused or not, has an exact result,
so no rounding ever happens and the block's sum is exact.  At the end of each block the float
accumulators are converted to int32 (exact, they are integers below 2**24) and added to int32
accumulators with two's-complement wrap-around, so the tile computes ``sum_k Au[r, k] * Bs[k, j]``
modulo 2**32 for any K, exactly as the VNNI tile does.

Measured on an AVX-512 Xeon (Emerald Rapids), 2 threads, 1024**3, through ``refquant.fast.matmul_int``:
about 260 GOP/s, against about 150 for the former int32 4 x 4 tile (LLVM vectorised it with
``vpmulld``: 16 products per 2 micro-ops, where one FMA makes 16).  Tried: B packed as float32 (no
conversion in the loop) reached about 300 GOP/s at 1024**3 but reads 4 times the bytes, so M = 1,
K = N = 4096 fell from 73 to 28 GOP/s; an 8 x 48 tile was about 12% slower than 12 x 32; an int16
``pmaddwd`` formulation in generic IR was not recognised by LLVM as such (it became one 16-lane
multiply per instruction with spills).

Data layout the tile reads (built by ``gemm.pack_rhs_portable`` and ``gemm.prepare_lhs_f32``):

* A: float32 rows of ``K`` values (``Au``, exact small integers), row stride given in elements;
* B: one ``PW``-column panel of signed bytes ``Bs``, ``[K][PW]`` (zero in the padding columns),
  converted to float32 in the loop (sign extension, then an exact int-to-float conversion);
* C: int32, ``rows`` rows of ``PW`` values, row stride given in elements; the int32 accumulators start
  at ``beta[j] * rs[r] - al[r] * tcol[j]`` (int32, modulo 2**32) as in the VNNI tile.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils

from refquant.kernels._jit import host_has_avx512, tile_intrinsic

__all__ = ["KB", "PMR", "PW", "ptile_1", "ptile_4", "ptile_main"]

KB = 512
"""k per exact float32 block: 512 * 255 * 128 < 2**24 (module docstring)."""
PW = 32
"""Columns of a tile and of a packed panel (two 16-lane vectors)."""
PMR = 12 if host_has_avx512() else 3
"""Rows of the main tile: 12 x 2 vectors = 24 accumulators of the 32 AVX-512 registers; with 16 vector
registers (AVX2, and anything else) 3 rows, whose 6 accumulators take 12 of them (not measured here)."""

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VF = ir.VectorType(_F32, 16)
_VI = ir.VectorType(_I32, 16)
_I8 = ir.IntType(8)
_VB = ir.VectorType(_I8, 16)
_NV = PW // 16


def _make_tile(mr: int) -> Any:
    """An intrinsic ``tile(a_addr, lda, b_addr, k, c_addr, ldc, rs_addr, al_addr, beta_addr, tcol_addr)``
    computing ``mr`` rows x ``PW`` columns (addresses as in the module docstring, strides in elements)."""

    def emit(context: Any, builder: Any, vals: list[Any]) -> None:
        a_addr_v, lda_v, b_addr_v, k_v, c_addr_v, ldc_v, rs_v, al_v, beta_v, tcol_v = vals
        intp_t = context.get_value_type(types.intp)

        def const(x: int) -> Any:
            return ir.Constant(intp_t, x)

        fnty = ir.FunctionType(_VF, [_VF, _VF, _VF])
        fmuladd = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fmuladd.v16f32")  # type: ignore[no-untyped-call]
        a_base = builder.inttoptr(a_addr_v, _F32.as_pointer())
        b_base = builder.inttoptr(b_addr_v, _I8.as_pointer())
        c_base = builder.inttoptr(c_addr_v, _I32.as_pointer())
        a_rows = [builder.gep(a_base, [builder.mul(lda_v, const(r))]) for r in range(mr)]
        c_rows = [builder.gep(c_base, [builder.mul(ldc_v, const(r))]) for r in range(mr)]
        fundef = ir.Constant(_VF, ir.Undefined)
        iundef = ir.Constant(_VI, ir.Undefined)
        zeros16 = ir.Constant(_VI, [0] * 16)
        fzero = ir.Constant(_VF, [0.0] * 16)

        def splat(undef: Any, x: Any) -> Any:
            return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(_I32, 0)), undef, zeros16)

        def vec_ptr(base: Any, index: Any, ty: Any) -> Any:
            return builder.bitcast(builder.gep(base, [index]), ty.as_pointer())

        beta_p = builder.inttoptr(beta_v, _I32.as_pointer())
        tcol_p = builder.inttoptr(tcol_v, _I32.as_pointer())
        rs_p = builder.inttoptr(rs_v, _I32.as_pointer())
        al_p = builder.inttoptr(al_v, _I32.as_pointer())
        iacc = [[cgutils.alloca_once(builder, _VI) for _ in range(_NV)] for _ in range(mr)]  # type: ignore[no-untyped-call]
        facc = [[cgutils.alloca_once(builder, _VF) for _ in range(_NV)] for _ in range(mr)]  # type: ignore[no-untyped-call]
        betas = [builder.load(vec_ptr(beta_p, const(16 * v), _VI), align=4) for v in range(_NV)]
        tcols = [builder.load(vec_ptr(tcol_p, const(16 * v), _VI), align=4) for v in range(_NV)]
        for r in range(mr):
            rs_r = splat(iundef, builder.load(builder.gep(rs_p, [const(r)]), align=4))
            al_r = splat(iundef, builder.load(builder.gep(al_p, [const(r)]), align=4))
            for v in range(_NV):
                builder.store(builder.sub(builder.mul(betas[v], rs_r), builder.mul(al_r, tcols[v])), iacc[r][v])
        nblocks = builder.udiv(builder.add(k_v, const(KB - 1)), const(KB))
        with cgutils.for_range(builder, nblocks) as block:
            k0 = builder.mul(block.index, const(KB))
            k1 = builder.add(k0, const(KB))
            k1 = builder.select(builder.icmp_signed("<", k1, k_v), k1, k_v)
            for r in range(mr):
                for v in range(_NV):
                    builder.store(fzero, facc[r][v])
            with cgutils.for_range_slice(builder, k0, k1, const(1), inc=True) as (kk, _):
                b_off = builder.mul(kk, const(PW))
                b_vecs = [
                    builder.sitofp(
                        builder.sext(
                            builder.load(vec_ptr(b_base, builder.add(b_off, const(16 * v)), _VB), align=1), _VI
                        ),
                        _VF,
                    )
                    for v in range(_NV)
                ]
                for r in range(mr):
                    x = splat(fundef, builder.load(builder.gep(a_rows[r], [kk]), align=4))
                    for v in range(_NV):
                        acc = facc[r][v]
                        builder.store(builder.call(fmuladd, [x, b_vecs[v], builder.load(acc)]), acc)
            for r in range(mr):  # the block's exact sums (integers below 2**24) into the int32 accumulators
                for v in range(_NV):
                    acc = iacc[r][v]
                    builder.store(builder.add(builder.load(acc), builder.fptosi(builder.load(facc[r][v]), _VI)), acc)
        for r in range(mr):
            for v in range(_NV):
                builder.store(builder.load(iacc[r][v]), vec_ptr(c_rows[r], const(16 * v), _VI), align=4)

    return tile_intrinsic(f"fma_tile_{mr}x{PW}", emit)


ptile_main = _make_tile(PMR)
ptile_4 = _make_tile(4)
ptile_1 = _make_tile(1)
