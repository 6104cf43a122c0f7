"""refquant.testing: Hypothesis strategies and property checks for other projects' quantizers.

Needs the ``testing`` extra (``pip install refquant[testing]``, which installs Hypothesis); ``import refquant``
never imports this package.  ``refquant.testing.strategies`` generates the inputs where implementations
differ (ties and one ulp either side, saturation edges, pairwise-distinct shapes, fixed-point multipliers,
accumulations at the int32 bound); the ``check_*`` functions (quantize, dequantize, requantize, matmul, and
qparams, packing, log, binary, ternary) run a candidate implementation against the reference, on a fixed
tie-dense battery first and then on those strategies, and fail with a minimal counterexample and the likely
cause.  docs/testing.md walks through catching the classic bugs.
"""

from __future__ import annotations

from refquant.conformance.causes import Cause, MatmulParams, MinimalRecord, RequantizeParams
from refquant.testing import strategies
from refquant.testing.checks import (
    CheckFailure,
    check_binarize,
    check_choose_qparams,
    check_dequantizer,
    check_log_quantize,
    check_matmul,
    check_pack,
    check_quantizer,
    check_requantizer,
    check_ternarize,
    check_unpack,
    check_xnor_matmul,
    default_settings,
)

__all__ = [
    "Cause",
    "CheckFailure",
    "MatmulParams",
    "MinimalRecord",
    "RequantizeParams",
    "check_binarize",
    "check_choose_qparams",
    "check_dequantizer",
    "check_log_quantize",
    "check_matmul",
    "check_pack",
    "check_quantizer",
    "check_requantizer",
    "check_ternarize",
    "check_unpack",
    "check_xnor_matmul",
    "default_settings",
    "strategies",
]
