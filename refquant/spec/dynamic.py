"""Dynamic quantization: parameters chosen from the tensor being quantized, at run time.

Definition: ``dynamic_quantize_linear`` (ONNX DynamicQuantizeLinear, opset 11, uint8)
------------------------------------------------------------------------------------
For a float32 tensor ``x`` (any shape, at least one element), every operation one IEEE 754 float32
operation rounded half to even, ``[qmin, qmax] = [0, 255]``::

    lo = min(0, min(x))            hi = max(0, max(x))                      (exact)
    scale = (hi - lo) / 255                                                  (1) two roundings
    zero_point = round_half_to_even(clip(qmin - lo / scale, qmin, qmax))     (2)
    y = saturate(round_half_to_even(x / scale) + zero_point)                 (3) the division in float32

This is ``choose_qparams(x, UINT8)`` followed by ``quantize`` (the ONNX profile), which is why the
function is built on them.  (1) is the same expression.  (2) agrees bit for bit: with ``qmin = 0`` the
float32 subtraction ``0 - lo / scale`` is an exact negation, round half to even commutes with negation,
and clipping to integer bounds commutes with rounding (both are monotonic and the bounds are integers),
so ``clip(round(-lo / scale))`` equals ``round(clip(-lo / scale))``.  (3) is QuantizeLinear's equation.

Zero range.  The operator's text does not define ``hi == lo`` (an all-zero ``x``), where (1) is 0:

* ``ZeroRange.SCALE_ONE_OVER_QRANGE`` (default): scale ``float32(1) / 255`` = 0.003921569, zero point 0,
  codes 0: the ONNX reference implementation (onnx 1.23.2 ``op_dynamic_quantize_linear.py``).
* ``ZeroRange.SCALE_ONE``: scale 1.0, zero point 0, codes 0: onnxruntime 1.32 (``core/util/qmath.h``,
  ``GetQuantizationParameter``: ``max == min ? 1.0f``).
* ``ZeroRange.RAISE``: ``SpecError("zero_range")``.

As everywhere in refquant (docs/spec/qparams.md, the zero-range rule), the rule applies wherever (1) is
below ``FLT_MIN = 2**-126``: a nonzero range of a few subnormals gives the rule's scale here, a subnormal
(or zero) scale in both peers.

Per-row (per-token) dynamic quantization: ``dynamic_quantize_per_row``
---------------------------------------------------------------------
For a 2-D ``x`` whose rows are tokens (``axis`` is the axis reduced over, -1 by default: the row's
elements), one parameter pair per row from that row's range (``choose_qparams`` with ``PerAxis`` of the
other axis), then ``quantize``.  Defaults (int8 activations)::

    amax = max(|x[i, :]|)       scale[i] = amax / 127          (float32, one rounding)
    q[i, j] = saturate(round_half_to_even(x[i, j] / scale[i]))  zero point 0, codes in [-127, 127]

``symmetric_denominator`` picks ``amax / 127`` (``QMAX``, default) or ``amax / 127.5`` (``HALF_RANGE``);
``rounding`` and ``scale_application`` are QuantizeLinear's options; ``scale_floor`` is
``choose_qparams``'s ``scale = max(scale, floor)`` (torchao's per-token ``eps = 1e-5``).  A row of zeros
follows ``zero_range`` (default ``SCALE_ONE``: scale 1.0, codes 0), unless a floor of at least
``2**-126`` gives it the floor as its scale.  ``symmetric=False`` gives the asymmetric
parameters of ``choose_qparams`` per row.  docs/spec/dynamic.md names which stack uses which convention.

Errors
------
``SpecError``: ``"unsupported_dtype"`` (``dynamic_quantize_linear`` takes float32 only, as the operator;
``dynamic_quantize_per_row`` takes float16/float32/float64), ``"nan_input"``, ``"range_not_finite"`` (an
infinity), ``"empty_input"``, ``"zero_range"`` (with ``ZeroRange.RAISE``), ``"shape_mismatch"`` (a per-row
input that is not 2-D), ``"axis_out_of_range"``, ``"invalid_option"``, ``"invalid_format"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec._checks import first_index
from refquant.spec.affine import QuantParams, ScaleApplication, quantize
from refquant.spec.formats import INT8, UINT8, IntFormat
from refquant.spec.granularity import PerAxis, normalize_axis
from refquant.spec.qparams import SymmetricDenominator, ZeroRange, choose_qparams
from refquant.spec.rounding import RoundingMode

__all__ = ["dynamic_quantize_linear", "dynamic_quantize_per_row"]


def _check_finite(xa: npt.NDArray[Any], name: str) -> None:
    nan = np.isnan(xa)
    if np.any(nan):
        raise SpecError("nan_input", f"{name} holds NaN at index {first_index(nan)}")
    inf = np.isinf(xa)
    if np.any(inf):
        raise SpecError("range_not_finite", f"{name} holds {xa[inf].flat[0]!r} at index {first_index(inf)}")


def dynamic_quantize_linear(
    x: npt.ArrayLike,
    /,
    *,
    zero_range: ZeroRange = ZeroRange.SCALE_ONE_OVER_QRANGE,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """ONNX DynamicQuantizeLinear: ``(y, y_scale, y_zero_point)`` as uint8 codes, a float32 0-d array, a uint8 0-d array.

    See the module documentation for the definition and ``zero_range``.

    >>> import numpy as np
    >>> y, s, z = dynamic_quantize_linear(np.array([1.0, 2.0], np.float32))
    >>> y.tolist(), float(s), int(z)
    ([127, 255], 0.007843137718737125, 0)
    >>> y, s, z = dynamic_quantize_linear(np.zeros(3, np.float32))
    >>> y.tolist(), float(s), int(z)
    ([0, 0, 0], 0.003921568859368563, 0)
    >>> y, s, z = dynamic_quantize_linear(np.zeros(3, np.float32), zero_range=ZeroRange.SCALE_ONE)
    >>> y.tolist(), float(s), int(z)
    ([0, 0, 0], 1.0, 0)
    """
    if not isinstance(zero_range, ZeroRange):
        raise SpecError("invalid_option", f"zero_range must be a ZeroRange, got {zero_range!r}")
    xa = np.asarray(x)
    if xa.dtype.kind != "f" or xa.dtype.itemsize != 4:
        raise SpecError("unsupported_dtype", f"x must be a float32 array (DynamicQuantizeLinear's T1), got {xa.dtype}")
    xa = xa.astype(np.float32)  # native byte order
    _check_finite(xa, "x")
    if xa.size == 0:
        raise SpecError("empty_input", f"x of shape {xa.shape} is empty: DynamicQuantizeLinear needs an element")
    params = choose_qparams(xa, UINT8, zero_range=zero_range)
    y = quantize(xa, params)
    return (
        np.asarray(y, dtype=np.uint8),
        np.asarray(params.scale.reshape(()), dtype=np.float32),
        np.asarray(params.zero_point.reshape(()), dtype=np.uint8),
    )


def dynamic_quantize_per_row(
    x: npt.ArrayLike,
    /,
    *,
    fmt: IntFormat = INT8,
    symmetric: bool = True,
    axis: int = -1,
    symmetric_denominator: SymmetricDenominator = SymmetricDenominator.QMAX,
    rounding: RoundingMode = RoundingMode.HALF_TO_EVEN,
    scale_application: ScaleApplication = ScaleApplication.DIVIDE,
    scale_floor: float | None = None,
    zero_range: ZeroRange = ZeroRange.SCALE_ONE,
) -> tuple[npt.NDArray[np.integer[Any]], QuantParams]:
    """Per-row (per-token) dynamic quantization of a 2-D ``x``: codes and ``QuantParams`` (``PerAxis`` of the rows).

    ``axis`` is the axis each parameter pair is computed over (the row's elements).  See the module
    documentation for the definition and the options.

    >>> import numpy as np
    >>> x = np.array([[0.5, -1.27, 0.01], [0.0, 0.0, 0.0]], np.float32)
    >>> q, p = dynamic_quantize_per_row(x)
    >>> q.tolist(), p.scale.tolist(), p.granularity
    ([[50, -127, 1], [0, 0, 0]], [0.009999999776482582, 1.0], PerAxis(axis=0))
    """
    if not isinstance(symmetric, bool):
        raise SpecError("invalid_option", f"symmetric must be a bool, got {symmetric!r}")
    if not isinstance(rounding, RoundingMode) or rounding is RoundingMode.STOCHASTIC:
        raise SpecError("invalid_option", f"rounding must be a deterministic RoundingMode, got {rounding!r}")
    if not isinstance(scale_application, ScaleApplication):
        raise SpecError("invalid_option", f"scale_application must be a ScaleApplication, got {scale_application!r}")
    xa = np.asarray(x)
    if not (xa.dtype.kind == "f" and xa.dtype.itemsize in (2, 4, 8)):
        raise SpecError("unsupported_dtype", f"x must be a float16/float32/float64 array, got dtype {xa.dtype}")
    if xa.ndim != 2:
        raise SpecError("shape_mismatch", f"x must be 2-D (rows, elements), got shape {xa.shape}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise SpecError("axis_out_of_range", f"axis must be an integer, got {axis!r}")
    reduce_axis = normalize_axis(int(axis), 2)
    _check_finite(xa, "x")
    granularity = PerAxis(1 - reduce_axis)
    params = choose_qparams(
        xa,
        fmt,
        symmetric=symmetric,
        granularity=granularity,
        symmetric_denominator=symmetric_denominator,
        scale_floor=scale_floor,
        zero_range=zero_range,
    )
    codes = quantize(xa, params, rounding=rounding, scale_application=scale_application)
    return codes, params
