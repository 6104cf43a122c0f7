"""Cases of the log chapter: ``log_quantize`` at the sqrt(2) thresholds under every ``LogRounding``, underflow
and top rules, ``log_dequantize`` of every code, ``shift_matmul`` (docs/spec/log.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.log import LogFormat, LogRounding, LogTop, LogUnderflow, log_quantize

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
    return b.records
