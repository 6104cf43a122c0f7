"""refquant: the golden reference for neural-network quantization arithmetic.

The functions exported here are the specification (pure numpy); ``refquant.fast`` holds the
Numba kernels that are tested bit for bit against them.  Importing ``refquant`` does not import
numba.
"""

from __future__ import annotations

from typing import Final

from refquant import profiles
from refquant.errors import SpecError, UnpredictableError
from refquant.spec.affine import (
    NanPolicy,
    Precision,
    Profile,
    ProfileCase,
    QuantParams,
    ScaleApplication,
    ZeroPointOrder,
    dequantize,
    fake_quantize,
    quantize,
)
from refquant.spec.fixed_point import (
    FixedPointMultiplier,
    RequantRounding,
    apply_scale_16,
    apply_scale_32,
    quantize_multiplier,
    requantize,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from refquant.spec.formats import INT2, INT4, INT8, INT16, INT32, UINT2, UINT4, UINT8, UINT16, IntFormat
from refquant.spec.granularity import Granularity, PerAxis, PerBlock, PerTensor
from refquant.spec.integer_ops import Accumulator, Layout, conv2d_int, matmul_int, qlinear_conv, qlinear_matmul
from refquant.spec.packing import pack, packed_length, unpack
from refquant.spec.qparams import (
    FLOAT32_EPS,
    NudgedRange,
    ReduceRange,
    SymmetricDenominator,
    ZeroRange,
    choose_qparams,
    choose_qparams_from_range,
    nudge_quantization_range,
)
from refquant.spec.rounding import RoundingMode, round_to_int
from refquant.spec.saturation import Overflow, saturate, wrap

SPEC_VERSION: Final = "1.0"

__all__ = [
    "FLOAT32_EPS",
    "INT2",
    "INT4",
    "INT8",
    "INT16",
    "INT32",
    "SPEC_VERSION",
    "UINT2",
    "UINT4",
    "UINT8",
    "UINT16",
    "Accumulator",
    "FixedPointMultiplier",
    "Granularity",
    "IntFormat",
    "Layout",
    "NanPolicy",
    "NudgedRange",
    "Overflow",
    "PerAxis",
    "PerBlock",
    "PerTensor",
    "Precision",
    "Profile",
    "ProfileCase",
    "QuantParams",
    "ReduceRange",
    "RequantRounding",
    "RoundingMode",
    "ScaleApplication",
    "SpecError",
    "SymmetricDenominator",
    "UnpredictableError",
    "ZeroPointOrder",
    "ZeroRange",
    "apply_scale_16",
    "apply_scale_32",
    "choose_qparams",
    "choose_qparams_from_range",
    "conv2d_int",
    "dequantize",
    "fake_quantize",
    "matmul_int",
    "nudge_quantization_range",
    "pack",
    "packed_length",
    "profiles",
    "qlinear_conv",
    "qlinear_matmul",
    "quantize",
    "quantize_multiplier",
    "requantize",
    "round_to_int",
    "rounding_divide_by_pot",
    "saturate",
    "saturating_rounding_doubling_high_mul",
    "unpack",
    "wrap",
]
