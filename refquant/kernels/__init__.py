"""Numba kernels (private): plain typed functions, arrays and ints in, no validation, no globals.

``refquant.fast`` is the public entry point; it validates with the specification's checks and
calls these kernels.  Nothing here imports ``refquant.spec``: agreement with the specification is a
tested claim (tests/kernels), not an import.

* ``_jit``: the single Numba import point, the fixed compile options and the run-time dispatch.
* ``vnni``: the AVX-512 VNNI micro-kernel (an ``@intrinsic`` emitting ``vpdpbusd``).
* ``gemm``: operand preparation, weight packing and the GEMM drivers (VNNI and portable).
"""
