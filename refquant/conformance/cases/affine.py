"""Cases of the affine chapter: ``quantize``, ``dequantize`` and ``fake_quantize`` (docs/spec/affine.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant import profiles
from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.conformance.ops import granularity_params
from refquant.spec.affine import NanPolicy, ScaleApplication, ZeroPointOrder
from refquant.spec.formats import IntFormat
from refquant.spec.granularity import PerAxis, PerBlock
from refquant.spec.rounding import RoundingMode
from refquant.spec.saturation import Overflow

F32 = np.float32
FORMATS: Final = ("int8", "uint8", "int4", "uint4", "int16", "int8n", "int2")
DETERMINISTIC: Final = tuple(m for m in RoundingMode if m is not RoundingMode.STOCHASTIC)
EXACT_SCALES: Final = (1.0, 0.5, 2.0**-7)
"""Powers of two: ``(k + 1/2) * s`` is exact in float32, so these x sit exactly on ties."""
INEXACT_SCALES: Final = (0.1, 0.00214854861, 3.0517578e-05 * 3)
"""Scales whose ties are not representable: the float32 values nearest them and one ulp either side."""


def _zero_points(fmt: IntFormat) -> list[int]:
    mid = (fmt.qmin + fmt.qmax + 1) // 2
    return sorted({fmt.qmin, mid, fmt.qmax})


def _ulps(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each value and its float32 neighbours below and above, interleaved."""
    down = np.nextafter(x, F32(-np.inf))
    up = np.nextafter(x, F32(np.inf))
    return np.stack([down, x, up], axis=-1).reshape(-1).astype(F32)


def _ties(fmt: IntFormat, scale: float, zp: int) -> npt.NDArray[np.float32]:
    """Real values on the ties ``(k + 1/2) * scale`` around the zero point, the ends of the range, both signs."""
    lo, hi = fmt.qmin - zp, fmt.qmax - zp
    ks = sorted({-3, -2, -1, 0, 1, 2, lo - 1, lo, hi - 1, hi} | {-k - 1 for k in (0, 1, 2)})
    x = np.array([(k + 0.5) * scale for k in ks], dtype=np.float64).astype(F32)
    return _ulps(x)


def _params(fmt: str, **extra: Any) -> dict[str, Any]:
    return {"fmt": fmt, "granularity": "per_tensor", **extra}


def _qp(scale: float | list[float], zp: int | list[int]) -> dict[str, Any]:
    return {"scale": np.array(scale, F32), "zero_point": np.array(zp, np.int64)}


def _per_axis_ties(shape: tuple[int, ...], axis: int) -> Callable[[Draws], dict[str, Any]]:
    """Inputs of a per-axis int8 record along ``axis`` of ``shape``: scales ``2**e * {1, 0.75, 0.1}``, zero points
    anywhere in int8, and ``x`` on integers and half-integers (ties) of its channel's scale, reaching saturation."""
    n = shape[axis]
    others = tuple(d for d in range(len(shape)) if d != axis % len(shape))

    def per_axis(r: Draws) -> dict[str, Any]:
        scale = (2.0 ** r.integers(-6, 2, n) * r.choice([1.0, 0.75, 0.1], n)).astype(F32)
        zp = r.integers(-128, 128, n)
        k = r.integers(-140, 140, shape) + r.choice([0.0, 0.5], shape)
        x = k * np.expand_dims(scale, others)
        return {"x": x.astype(F32), "scale": scale, "zero_point": zp.astype(np.int64)}

    return per_axis


def _quantize(b: Builder) -> None:
    g = "quantize"
    # Ties and one ulp either side, both signs, every deterministic mode, every format, zero points at both ends.
    for name in FORMATS:
        fmt = IntFormat.from_name(name)
        for zp in _zero_points(fmt):
            for scale in EXACT_SCALES:
                for mode in DETERMINISTIC:
                    b.add(
                        g,
                        "quantize",
                        "tie",
                        name,
                        _params(name, rounding=mode.value),
                        {"x": _ties(fmt, scale, zp), **_qp(scale, zp)},
                    )
            for scale in INEXACT_SCALES:
                for mode in (RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO):
                    for sa in ScaleApplication:
                        params = _params(name, rounding=mode.value, scale_application=sa.value)
                        b.add(g, "quantize", "near_tie", name, params, {"x": _ties(fmt, scale, zp), **_qp(scale, zp)})
    # Zero point before / after rounding / fused, at both ends of the range.
    for name in ("int8", "uint8", "uint4"):
        fmt = IntFormat.from_name(name)
        for zp in (fmt.qmin, fmt.qmax, fmt.qmin + 1, fmt.qmax - 1):
            for order in ZeroPointOrder:
                for scale in (0.5, 0.1):
                    params = _params(name, zero_point_order=order.value, scale_application="reciprocal_multiply")
                    b.add(
                        g, "quantize", "zero_point_edge", name, params, {"x": _ties(fmt, scale, zp), **_qp(scale, zp)}
                    )
    # Saturation edges and beyond, saturate and wrap.
    for name in FORMATS:
        fmt = IntFormat.from_name(name)
        for zp in _zero_points(fmt):
            scale = 0.25
            edges = [fmt.qmin - zp, fmt.qmax - zp]
            ks = np.array(
                [e + d for e in edges for d in (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 100.0, -100.0)]
            )
            x = _ulps((ks * scale).astype(F32))
            x = np.concatenate([x, np.array([3.4e38, -3.4e38, 65504.0, -65504.0], F32)])
            for ov in Overflow:
                b.add(
                    g, "quantize", "saturation_edge", name, _params(name, overflow=ov.value), {"x": x, **_qp(scale, zp)}
                )
    # NaN and infinities under every NaN policy (RAISE: a negative record).
    for name in ("int8", "uint8", "int4"):
        fmt = IntFormat.from_name(name)
        for zp in _zero_points(fmt):
            x = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, -np.nan], F32)
            for pol in NanPolicy:
                b.add(g, "quantize", "nan_inf", name, _params(name, nan_policy=pol.value), {"x": x, **_qp(0.5, zp)})
            for ov in Overflow:
                xi = np.array([np.inf, -np.inf, 1.0], F32)
                b.add(g, "quantize", "nan_inf", name, _params(name, overflow=ov.value), {"x": xi, **_qp(0.5, zp)})
    # Subnormals: inputs and scales, both scale applications (a subnormal reciprocal overflows: negative record).
    tiny = np.array([1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38, 5e-39, -5e-39, 1.1754944e-38], F32)
    for scale in (2.0**-149, 2.0**-140, 2.0**-127, 2.0**-126, 1e-38, 1.0):
        for sa in ScaleApplication:
            params = _params("int8", scale_application=sa.value)
            b.add(g, "quantize", "subnormal", "int8", params, {"x": _ulps(tiny), **_qp(scale, 0)})
    # Negative zero and tiny negatives that round to zero, every deterministic mode.
    xz = np.array([-0.0, 0.0, -1e-30, 1e-30, -0.25, 0.25, -0.5, 0.5, -0.75], F32)
    for name in ("int8", "uint8"):
        for zp in _zero_points(IntFormat.from_name(name)):
            for mode in DETERMINISTIC:
                b.add(
                    g, "quantize", "negative_zero", name, _params(name, rounding=mode.value), {"x": xz, **_qp(1.0, zp)}
                )
    # Every profile on a tie-dense sample (int8 and uint8, reciprocal near-ties).
    for prof in profiles.ALL:
        for name in ("int8", "uint8"):
            fmt = IntFormat.from_name(name)
            for scale in (0.00214854861, 0.5, 0.1):
                zp = 0 if fmt.signed else 128
                params = _params(name, profile=prof.name)
                b.add(g, "quantize", "profile", name, params, {"x": _ties(fmt, scale, zp), **_qp(scale, zp)})
    # Stochastic rounding with the caller's draws.
    for name in ("int8", "uint4"):
        fmt = IntFormat.from_name(name)

        def stochastic(r: Draws, fmt: IntFormat = fmt) -> dict[str, Any]:
            x = _ties(fmt, 0.5, 0)
            u = np.concatenate([np.array([0.0, 0.5, np.nextafter(F32(1), F32(0))], F32), r.random(x.size - 3)]).astype(
                F32
            )
            return {"x": x, "uniform": u, **_qp(0.5, 0)}

        for _ in range(3):
            b.add(g, "quantize", "rounding_mode", name, _params(name, rounding="stochastic"), stochastic)
    # Per-axis shapes with pairwise-distinct dimensions, each axis (also negative).
    for shape in ((2, 3, 5), (5, 3, 2), (4, 7), (3, 1, 4)):
        for axis in range(-len(shape), len(shape)):
            gran = granularity_params(PerAxis(axis))
            b.add(g, "quantize", "distinct_dims", "int8", {"fmt": "int8", **gran}, _per_axis_ties(shape, axis))
    # Per-block with a ragged last block, along each axis.
    for shape, axis, block in (((3, 10), 1, 4), ((10, 3), 0, 4), ((2, 7, 3), 1, 3), ((2, 5), -1, 2), ((4, 6), 1, 6)):
        pb = PerBlock(axis, block)
        nb = -(-shape[axis] // block)

        def per_block(r: Draws, shape: tuple[int, ...] = shape, axis: int = axis, nb: int = nb) -> dict[str, Any]:
            pshape = tuple(nb if d == axis % len(shape) else size for d, size in enumerate(shape))
            scale = (2.0 ** r.integers(-4, 2, pshape) * r.choice([1.0, 0.3], pshape)).astype(F32)
            zp = r.integers(-8, 8, pshape).astype(np.int64)
            x = (r.integers(-20, 20, shape) + r.choice([0.0, 0.5], shape)) * 0.25
            return {"x": x.astype(F32), "scale": scale, "zero_point": zp}

        for name in ("int4", "int8"):
            b.add(g, "quantize", "ragged_block", name, {"fmt": name, **granularity_params(pb)}, per_block)
    # Random data, float64 inputs too.
    for name in FORMATS:
        for dtype in (np.float32, np.float64, np.float16):

            def rand(r: Draws, dtype: Any = dtype) -> dict[str, Any]:
                x = (r.standard_normal(24) * 40).astype(dtype)
                return {"x": x, **_qp(float(r.uniform(0.01, 1.0)), 0)}

            b.add(g, "quantize", "random", name, _params(name), rand)
    # Bad input: each violates one condition.
    bad: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("scale_zero", _params("int8"), {"x": np.ones(2, F32), **_qp(0.0, 0)}),
        ("scale_negative", _params("int8"), {"x": np.ones(2, F32), **_qp(-1.0, 0)}),
        ("scale_nan", _params("int8"), {"x": np.ones(2, F32), **_qp(float("nan"), 0)}),
        ("scale_inf", _params("int8"), {"x": np.ones(2, F32), **_qp(float("inf"), 0)}),
        ("zp_above", _params("int8"), {"x": np.ones(2, F32), **_qp(1.0, 128)}),
        ("zp_below", _params("uint8"), {"x": np.ones(2, F32), **_qp(1.0, -1)}),
        (
            "axis",
            {"fmt": "int8", "granularity": "per_axis", "axis": 2},
            {"x": np.ones((2, 3), F32), **_qp([1.0, 1.0], [0, 0])},
        ),
        (
            "scale_shape",
            {"fmt": "int8", "granularity": "per_axis", "axis": 1},
            {"x": np.ones((2, 3), F32), **_qp([1.0, 1.0], [0, 0])},
        ),
        ("nan", _params("int8"), {"x": np.array([np.nan], F32), **_qp(1.0, 0)}),
        ("uniform_missing", _params("int8", rounding="stochastic"), {"x": np.ones(2, F32), **_qp(1.0, 0)}),
        (
            "uniform_range",
            _params("int8", rounding="stochastic"),
            {"x": np.ones(2, F32), "uniform": np.array([0.0, 1.0], F32), **_qp(1.0, 0)},
        ),
        ("format", _params("int33"), {"x": np.ones(2, F32), **_qp(1.0, 0)}),
        (
            "block",
            {"fmt": "int8", "granularity": "per_block", "axis": 0, "block_size": 0},
            {"x": np.ones(2, F32), **_qp([1.0], [0])},
        ),
    ]
    for label, params, inputs in bad:
        b.add(g, "quantize", "bad_input", label, params, inputs)


def _dequantize(b: Builder) -> None:
    g = "dequantize"
    for name in FORMATS:
        fmt = IntFormat.from_name(name)
        codes = np.arange(fmt.qmin, fmt.qmax + 1, dtype=np.int64)
        if codes.size > 512:
            codes = np.concatenate([codes[:128], codes[-128:], np.array([-1, 0, 1])])
        q = codes.astype(fmt.storage_dtype)
        for zp in _zero_points(fmt):
            for scale in (0.1, 2.0**-7, 3.4e38 / 2**15, 1e-45):
                why = "subnormal" if scale < 1e-38 else "zero_point_edge"
                b.add(g, "dequantize", why, name, _params(name), {"q": q, **_qp(scale, zp)})
    for shape in ((2, 3, 5), (5, 3, 2)):
        for axis in range(len(shape)):
            n = shape[axis]

            def per_axis(r: Draws, shape: tuple[int, ...] = shape, n: int = n) -> dict[str, Any]:
                return {
                    "q": r.integers(-128, 128, shape).astype(np.int8),
                    **_qp(list(r.uniform(0.01, 2, n)), list(r.integers(-128, 128, n))),
                }

            b.add(
                g, "dequantize", "distinct_dims", "int8", {"fmt": "int8", **granularity_params(PerAxis(axis))}, per_axis
            )
    for label, params, inputs in (
        ("code_above", _params("int4"), {"q": np.array([8], np.int8), **_qp(1.0, 0)}),
        ("code_below", _params("uint4"), {"q": np.array([-1], np.int8), **_qp(1.0, 0)}),
        ("narrow", _params("int8n"), {"q": np.array([-128], np.int8), **_qp(1.0, 0)}),
        ("float_codes", _params("int8"), {"q": np.array([1.0], F32), **_qp(1.0, 0)}),
    ):
        b.add(g, "dequantize", "bad_input", label, params, inputs)


def _fake_quantize(b: Builder) -> None:
    g = o = "fake_quantize"
    # Ties and one ulp either side under every deterministic mode, zero points at both ends.
    for name in ("int8", "uint8", "int4", "int8n"):
        fmt = IntFormat.from_name(name)
        for zp in _zero_points(fmt):
            for mode in DETERMINISTIC:
                b.add(g, o, "tie", name, _params(name, rounding=mode.value), {"x": _ties(fmt, 0.5, zp), **_qp(0.5, zp)})
            for sa in ScaleApplication:
                params = _params(name, scale_application=sa.value)
                b.add(g, o, "near_tie", name, params, {"x": _ties(fmt, 0.1, zp), **_qp(0.1, zp)})
    # Saturation edges (the result is the nearest representable end, or wraps), NaN/inf, -0.0, every profile.
    for name in ("int8", "uint4"):
        fmt = IntFormat.from_name(name)
        for zp in _zero_points(fmt):
            ks = np.array([e + d for e in (fmt.qmin - zp, fmt.qmax - zp) for d in (-1.5, -0.5, 0.0, 0.5, 1.5, 100.0)])
            x = np.concatenate([_ulps((ks * 0.25).astype(F32)), np.array([3.4e38, -3.4e38], F32)])
            for ov in Overflow:
                b.add(g, o, "saturation_edge", name, _params(name, overflow=ov.value), {"x": x, **_qp(0.25, zp)})
            xn = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], F32)
            for pol in NanPolicy:
                b.add(g, o, "nan_inf", name, _params(name, nan_policy=pol.value), {"x": xn, **_qp(0.5, zp)})
    xz = np.array([-0.0, 0.0, -1e-30, 1e-30, -0.25, 0.25, -0.5, 0.5], F32)
    for mode in DETERMINISTIC:
        b.add(g, o, "negative_zero", "int8", _params("int8", rounding=mode.value), {"x": xz, **_qp(1.0, 0)})
    tiny = np.array([1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38, 5e-39], F32)
    for scale in (2.0**-149, 2.0**-126, 1e-38):
        b.add(g, o, "subnormal", "int8", _params("int8"), {"x": _ulps(tiny), **_qp(scale, 0)})
    for prof in profiles.ALL:
        for name in ("int8", "uint8"):
            zp = 0 if name == "int8" else 128
            fmt = IntFormat.from_name(name)
            for scale in (0.00214854861, 0.5):
                params = _params(name, profile=prof.name)
                b.add(g, o, "profile", name, params, {"x": _ties(fmt, scale, zp), **_qp(scale, zp)})

    def stochastic(r: Draws) -> dict[str, Any]:
        x = _ties(IntFormat.from_name("int8"), 0.5, 0)
        u = np.concatenate([np.array([0.0, 0.5, np.nextafter(F32(1), F32(0))], F32), r.random(x.size - 3)])
        return {"x": x, "uniform": u.astype(F32), **_qp(0.5, 0)}

    for _ in range(2):
        b.add(g, o, "rounding_mode", "int8", _params("int8", rounding="stochastic"), stochastic)
    for shape in ((2, 3, 5), (5, 3, 2)):
        for axis in range(-len(shape), len(shape)):
            b.add(
                g,
                o,
                "distinct_dims",
                "int8",
                {"fmt": "int8", **granularity_params(PerAxis(axis))},
                _per_axis_ties(shape, axis),
            )
    for bshape, axis, block in (((3, 10), 1, 4), ((10, 3), 0, 4), ((2, 7, 3), 1, 3)):
        nb = -(-bshape[axis] // block)

        def per_block(r: Draws, shape: tuple[int, ...] = bshape, axis: int = axis, nb: int = nb) -> dict[str, Any]:
            pshape = tuple(nb if d == axis % len(shape) else size for d, size in enumerate(shape))
            scale = (2.0 ** r.integers(-4, 2, pshape) * r.choice([1.0, 0.3], pshape)).astype(F32)
            zp = r.integers(-8, 8, pshape).astype(np.int64)
            x = (r.integers(-20, 20, shape) + r.choice([0.0, 0.5], shape)) * 0.25
            return {"x": x.astype(F32), "scale": scale, "zero_point": zp}

        b.add(g, o, "ragged_block", "int4", {"fmt": "int4", **granularity_params(PerBlock(axis, block))}, per_block)
    for name in ("int8", "uint8", "int4"):
        for dtype in (np.float32, np.float64, np.float16):

            def rand(r: Draws, dtype: Any = dtype) -> dict[str, Any]:
                return {"x": (r.standard_normal(24) * 40).astype(dtype), **_qp(float(r.uniform(0.01, 1.0)), 0)}

            b.add(g, o, "random", name, _params(name), rand)
    for label, params, inputs in (
        ("scale_zero", _params("int8"), {"x": np.ones(2, F32), **_qp(0.0, 0)}),
        ("zp_above", _params("int8"), {"x": np.ones(2, F32), **_qp(1.0, 128)}),
        ("nan", _params("int8"), {"x": np.array([np.nan], F32), **_qp(1.0, 0)}),
        ("uniform_missing", _params("int8", rounding="stochastic"), {"x": np.ones(2, F32), **_qp(1.0, 0)}),
        (
            "scale_shape",
            {"fmt": "int8", "granularity": "per_axis", "axis": 1},
            {"x": np.ones((2, 3), F32), **_qp([1.0, 1.0], [0, 0])},
        ),
    ):
        b.add(g, o, "bad_input", label, params, inputs)


def cases() -> list[Record]:
    """Every record of the affine chapter."""
    b = Builder("affine")
    _quantize(b)
    _dequantize(b)
    _fake_quantize(b)
    return b.records
