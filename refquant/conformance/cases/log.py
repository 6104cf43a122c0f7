"""Cases of the log chapter: ``log_quantize`` at the sqrt(2) thresholds under every ``LogRounding``, underflow
and top rules, ``log_dequantize`` of every code, ``shift_matmul``, and the APoT levels, quantizer and dequantizer
(docs/spec/log.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.log import LogFormat, LogRounding, LogTop, LogUnderflow, apot_levels, log_quantize

F32 = np.float32


def _thresholds() -> np.ndarray[Any, np.dtype[np.float32]]:
    """float32 values nearest 2**k * sqrt(2) and 2**k * 1.5 (the log- and linear-domain midpoints), their
    neighbours, the powers of two, both signs, zeros, infinities, subnormals."""
    ks = np.arange(-9, 5, dtype=np.float64)
    mids = np.concatenate([2.0**ks * np.sqrt(2.0), 2.0**ks * 1.5, 2.0**ks])
    m = mids.astype(F32)
    near = np.concatenate([np.nextafter(m, F32(0)), m, np.nextafter(m, F32(np.inf))])
    extra = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, 3.4e38], F32)
    return np.concatenate([near, -near, extra]).astype(F32)


def cases() -> list[Record]:
    """Every record of the log chapter."""
    b = Builder("log")
    x = _thresholds()
    for bits, fsr, signed in ((4, 2, True), (4, 0, False), (5, 1, True), (3, 0, True)):
        base = {"bits": bits, "fsr": fsr, "signed": signed}
        for rounding in LogRounding:
            b.add("log_quantize", "log_quantize", "tie", f"b{bits}", {**base, "rounding": rounding.value}, {"x": x})
        for under in LogUnderflow:
            for top in LogTop:
                params = {**base, "underflow": under.value, "top": top.value}
                b.add("log_quantize", "log_quantize", "saturation_edge", f"b{bits}", params, {"x": x})
        codes = np.unique(log_quantize(x, LogFormat(bits, fsr, signed=signed)))  # every code the format produces
        b.add("log_dequantize", "log_dequantize", "saturation_edge", f"b{bits}", base, {"codes": codes})
    b.add("log_quantize", "log_quantize", "bad_input", "nan", {"bits": 4, "fsr": 0}, {"x": np.array([np.nan], F32)})
    b.add("log_quantize", "log_quantize", "bad_input", "bits", {"bits": 1, "fsr": 0}, {"x": np.array([1.0], F32)})
    b.add(
        "log_dequantize",
        "log_dequantize",
        "bad_input",
        "code",
        {"bits": 4, "fsr": 0},
        {"codes": np.array([16], np.uint8)},
    )
    b.add(
        "log_dequantize",
        "log_dequantize",
        "negative_zero",
        "code",
        {"bits": 4, "fsr": 2},
        {"codes": np.array([8], np.uint8)},
    )
    for m, k, n in ((2, 3, 5), (5, 7, 3), (3, 64, 2)):

        def operands(r: Draws, m: int = m, k: int = k, n: int = n) -> dict[str, Any]:
            w = log_quantize((r.standard_normal((k, n)) * 2).astype(F32), LogFormat(4, 2))
            return {"lhs": r.integers(-128, 128, (m, k)).astype(np.int8), "w_codes": w}

        b.add("shift_matmul", "shift_matmul", "distinct_dims", "b4", {"bits": 4, "fsr": 2}, operands)
    top_codes = log_quantize(np.array([[-4.0]] * 4, F32), LogFormat(4, 2))  # -2**2, the largest magnitude
    edge = {"lhs": np.full((1, 4), -(2**31), np.int32), "w_codes": top_codes}
    b.add("shift_matmul", "shift_matmul", "accumulator_edge", "int32_min", {"bits": 4, "fsr": 2}, edge)
    bad = {"lhs": np.ones((1, 2), np.int8), "w_codes": np.array([[8], [1]], np.uint8)}  # 8: a negative zero
    b.add("shift_matmul", "shift_matmul", "bad_input", "code", {"bits": 4, "fsr": 2}, bad)
    _apot(b)
    return b.records


APOT_SHAPES = ((1, 1), (2, 1), (2, 2), (3, 1), (3, 3), (4, 1), (4, 2), (4, 4), (6, 2), (6, 3), (8, 2), (5, 5))
"""(bits, k) pairs: k divides bits, n = bits / k additive terms."""


def _apot(b: Builder) -> None:
    for bits, k in APOT_SHAPES:
        for alpha in (1.0, 1.5, 0.1, 6.0):
            inputs = {"alpha": np.array(alpha, F32)}
            b.add("apot_levels", "apot_levels", "random", f"b{bits}_k{k}", {"bits": bits, "k": k}, inputs)
    # The tiniest alpha makes levels coincide in float32; the largest keeps them finite.
    for alpha in (1e-45, 1e-40, 3.4028235e38):
        why = "subnormal" if alpha < 1.2e-38 else "saturation_edge"
        b.add("apot_levels", "apot_levels", why, "b4_k2", {"bits": 4, "k": 2}, {"alpha": np.array(alpha, F32)})
    for label, bits, k, alpha in (
        ("k_not_divisor", 4, 3, 1.0),
        ("levels_coincide", 8, 4, 1.0),
        ("bits_zero", 0, 1, 1.0),
        ("bits_large", 9, 1, 1.0),
        ("alpha_zero", 4, 2, 0.0),
        ("alpha_negative", 4, 2, -1.0),
        ("alpha_inf", 4, 2, float("inf")),
        ("alpha_nan", 4, 2, float("nan")),
    ):
        b.add("apot_levels", "apot_levels", "bad_input", label, {"bits": bits, "k": k}, {"alpha": np.array(alpha, F32)})
    # apot_quantize: midpoints between neighbouring levels (ties to the lower level) and one ulp either side,
    # the levels themselves, beyond both ends, -0.0, +-inf.
    for bits, k, alpha in ((4, 2, 1.5), (3, 1, 1.0), (6, 2, 0.75), (8, 2, 1.0)):
        levels = apot_levels(bits, k, alpha)
        mids = ((levels[:-1].astype(np.float64) + levels[1:]) / 2).astype(F32)
        near = np.concatenate([np.nextafter(mids, F32(-np.inf)), mids, np.nextafter(mids, F32(np.inf))])
        extra = np.array([-0.0, 0.0, -1.0, 2 * alpha, np.inf, -np.inf, 1e-45], F32)
        x = np.concatenate([near, levels, -near, extra]).astype(F32)
        label = f"b{bits}_k{k}"
        b.add("apot_quantize", "apot_quantize", "tie", label, {}, {"x": x, "levels": levels})
        codes = np.arange(levels.size, dtype=np.uint8)
        b.add("apot_dequantize", "apot_dequantize", "saturation_edge", label, {}, {"codes": codes, "levels": levels})
    levels = apot_levels(4, 2, 1.5)
    for label, inputs in (
        ("nan", {"x": np.array([np.nan], F32), "levels": levels}),
        ("levels_unsorted", {"x": np.zeros(1, F32), "levels": levels[::-1].copy()}),
    ):
        b.add("apot_quantize", "apot_quantize", "bad_input", label, {}, inputs)
    for label, dinputs in (
        ("code_above", {"codes": np.array([16], np.uint8), "levels": levels}),
        ("codes_float", {"codes": np.array([1.0], F32), "levels": levels}),
    ):
        b.add("apot_dequantize", "apot_dequantize", "bad_input", label, {}, dinputs)
