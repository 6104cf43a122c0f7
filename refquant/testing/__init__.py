"""refquant.testing: Hypothesis strategies and property checks for other projects' quantizers.

Needs the ``testing`` extra (``pip install refquant[testing]``, which installs Hypothesis); ``import refquant``
never imports this package.  ``refquant.testing.strategies`` generates the inputs where implementations
differ (ties and one ulp either side, saturation edges, pairwise-distinct shapes, fixed-point multipliers,
accumulations at the int32 bound); the ``check_*`` functions run a candidate implementation against the
reference on them and fail with a minimal counterexample and the likely cause.  docs/testing.md walks through
catching the classic bugs.
"""

from __future__ import annotations

from refquant.conformance.causes import Cause, MatmulParams, MinimalRecord, RequantizeParams
from refquant.testing import strategies
from refquant.testing.checks import (
    CheckFailure,
    check_dequantizer,
    check_matmul,
    check_quantizer,
    check_requantizer,
    default_settings,
)

__all__ = [
    "Cause",
    "CheckFailure",
    "MatmulParams",
    "MinimalRecord",
    "RequantizeParams",
    "check_dequantizer",
    "check_matmul",
    "check_quantizer",
    "check_requantizer",
    "default_settings",
    "strategies",
]
