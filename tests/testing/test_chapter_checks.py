"""refquant.testing's chapter checks (qparams, packing, log, binary, ternary): a planted bug is caught by the fixed
battery and named; the reference passes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from refquant import (
    INT4,
    UINT8,
    LogFormat,
    LogRounding,
    SignZero,
    binarize,
    choose_qparams_from_range,
    log_quantize,
    pack,
    unpack,
    xnor_matmul,
)
from refquant.conformance.causes import xnor_unmasked
from refquant.spec.ternary import bitnet_ternarize, ttq_ternarize, twn_ternarize
from refquant.testing import (
    CheckFailure,
    check_binarize,
    check_choose_qparams,
    check_log_quantize,
    check_pack,
    check_ternarize,
    check_unpack,
    check_xnor_matmul,
    default_settings,
)
from refquant.testing.strategies import TernaryMethod

ONE = default_settings(max_examples=1)
FEW = default_settings(max_examples=25)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# --- planted bugs ----------------------------------------------------------------------------------------------------


def qparams_truncating(lo: Any, hi: Any, fmt: Any) -> tuple[Any, Any]:
    """The classic zero point ``qmin - int(min / scale)``: truncation where the reference rounds half to even."""
    p = choose_qparams_from_range(lo, hi, fmt)
    zp = np.clip(fmt.qmin - np.trunc(np.minimum(np.float32(lo), np.float32(0)) / p.scale), fmt.qmin, fmt.qmax)
    return p.scale, np.int64(zp)


def pack_high_first(q: npt.NDArray[Any], fmt: Any) -> npt.NDArray[np.uint8]:
    v = np.asarray(q).astype(np.int64) & 0xF
    if v.size % 2:
        v = np.append(v, 0)
    return ((v[0::2] << 4) | v[1::2]).astype(np.uint8)


def unpack_zero_extended(packed: npt.NDArray[np.uint8], fmt: Any, count: int) -> npt.NDArray[Any]:
    return np.stack([packed & 0xF, packed >> 4], axis=1).reshape(-1)[:count].astype(np.int8)


def log_linear(x: npt.NDArray[np.float32], fmt: LogFormat) -> npt.NDArray[Any]:
    return log_quantize(x, fmt, rounding=LogRounding.LINEAR_DOMAIN_HALF_AWAY_FROM_ZERO)


def twn_inclusive(w: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
    delta = np.float64(twn_ternarize(w).delta)
    wa = w.astype(np.float64)
    return np.where(wa >= delta, 1, np.where(wa <= -delta, -1, 0)).astype(np.int8)


def ttq_inclusive(w: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
    delta = np.float64(ttq_ternarize(w, wp=1.0, wn=1.0).delta)
    wa = w.astype(np.float64)
    return np.where(wa >= delta, 1, np.where(wa <= -delta, -1, 0)).astype(np.int8)


def bitnet_half_away(w: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
    _, scale = bitnet_ternarize(w)
    v = w.astype(np.float32) / scale
    return np.clip(np.trunc(v + np.copysign(np.float32(0.5), v)), -1, 1).astype(np.int8)


CASES = [
    (check_choose_qparams, qparams_truncating, {"fmt": UINT8}, "zero_point_rounding=toward_zero"),
    (check_pack, pack_high_first, {"fmt": INT4}, "first_element_in_high_bits"),
    (check_unpack, unpack_zero_extended, {"fmt": INT4}, "not_sign_extended"),
    (check_log_quantize, log_linear, {}, "rounding=linear_domain_half_away_from_zero"),
    (check_binarize, lambda x: np.sign(x).astype(np.int8), {}, "sign_zero=zero"),
    (check_binarize, lambda x: np.where(np.signbit(x), -1, 1).astype(np.int8), {}, "negative_zero_negative"),
    (check_xnor_matmul, lambda a, b, k: xnor_unmasked(a, b, k).astype(np.int32), {}, "unmasked_padding"),
    (check_ternarize, twn_inclusive, {}, "threshold_inclusive"),
    (check_ternarize, ttq_inclusive, {"method": TernaryMethod.TTQ}, "threshold_inclusive"),
    (check_ternarize, bitnet_half_away, {"method": TernaryMethod.BITNET}, "rounding=half_away_from_zero"),
]
IDS = ["qparams", "pack", "unpack", "log", "sign", "signbit", "xnor", "twn", "ttq", "bitnet"]


@pytest.mark.parametrize(("check", "candidate", "kwargs", "cause"), CASES, ids=IDS)
def test_a_planted_bug_is_caught_by_the_battery_and_named(check: Any, candidate: Any, kwargs: Any, cause: str) -> None:
    with pytest.raises(CheckFailure) as error:
        check(candidate, settings=ONE, **kwargs)
    failure = error.value
    assert failure.found_by == "battery"
    assert failure.causes[0].name == cause
    assert failure.causes[0].exact
    text = str(failure)
    assert "minimal reproducing record:" in text
    assert f"likely cause (reproduces the candidate exactly on all {failure.probes} records tried):" in text
    assert failure.example is not None
    assert failure.example["observed"]


def test_the_counterexample_is_cut_to_the_mismatching_element() -> None:
    with pytest.raises(CheckFailure) as error:
        check_binarize(lambda x: np.sign(x).astype(np.int8), settings=ONE)
    example = error.value.example
    assert example is not None
    (x,) = example["inputs"].values()
    assert x.shape == (1,)
    assert float(x[0]) == 0.0
    # Worked by hand from the definition: binarize(+-0.0) is +1 under SignZero.POSITIVE; np.sign gives 0.
    assert "  expected b = int8[1] [1]\n  observed b = int8[1] [0]" in str(error.value)
    with pytest.raises(CheckFailure) as error:
        check_pack(pack_high_first, settings=ONE)
    assert error.value.example is not None
    assert error.value.example["inputs"]["q"].size <= 2  # the one byte's codes


@pytest.mark.parametrize(
    ("check", "candidate", "kwargs"),
    [
        (check_choose_qparams, lambda lo, hi, f: _qp(lo, hi, f), {"fmt": UINT8}),
        (check_choose_qparams, lambda lo, hi, f: _qp(lo, hi, f, symmetric=True), {"symmetric": True}),
        (check_pack, lambda q, f: pack(q, f), {}),
        (check_unpack, lambda p, f, c: unpack(p, f, c), {}),
        (check_log_quantize, lambda x, f: log_quantize(x, f), {"fmt": LogFormat(5, 2, signed=False)}),
        (check_binarize, lambda x: binarize(x, sign_zero=SignZero.ZERO), {"sign_zero": SignZero.ZERO}),
        (check_xnor_matmul, lambda a, b, k: xnor_matmul(a, b, k), {}),
        (check_ternarize, lambda w: twn_ternarize(w).codes, {}),
        (check_ternarize, lambda w: bitnet_ternarize(w)[0], {"method": TernaryMethod.BITNET}),
    ],
    ids=["qparams", "qparams_symmetric", "pack", "unpack", "log", "binarize", "xnor", "twn", "bitnet"],
)
def test_the_reference_passes(check: Any, candidate: Any, kwargs: Any) -> None:
    check(candidate, settings=FEW, **kwargs)


def _qp(lo: Any, hi: Any, fmt: Any, *, symmetric: bool = False) -> tuple[Any, Any]:
    p = choose_qparams_from_range(lo, hi, fmt, symmetric=symmetric)
    return p.scale, p.zero_point


def test_a_candidate_that_accepts_what_the_reference_refuses_fails() -> None:
    def no_nan_check(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
        return np.where(x < 0, -1, 1).astype(np.int8)

    check_binarize(no_nan_check, settings=ONE)  # the strategies hold no NaN: nothing refused, nothing to catch
    with pytest.raises(CheckFailure) as error:
        check_binarize(lambda x: np.zeros((2, 2), np.int8), settings=ONE)
    assert error.value.problem.startswith("returned b of shape (2, 2)")
    assert error.value.causes == ()


def test_what_the_battery_misses_hypothesis_finds() -> None:
    def wrong_above_2(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
        return np.where((x > 2) & np.isfinite(x), -1, binarize(x)).astype(np.int8)

    with pytest.raises(CheckFailure) as error:
        check_binarize(wrong_above_2, settings=default_settings(max_examples=100))
    assert error.value.found_by == "hypothesis"
    assert "found by Hypothesis's search" in str(error.value)
    assert error.value.causes == ()
    assert "no single alternative semantics reproduces the candidate" in str(error.value)


def test_bad_arguments_of_the_chapter_checks_raise_spec_errors() -> None:
    from refquant import SpecError

    for call in (
        lambda: check_pack(3),  # type: ignore[arg-type]
        lambda: check_pack(pack, fmt="int4"),  # type: ignore[arg-type]
        lambda: check_log_quantize(log_quantize, rounding="log_domain"),  # type: ignore[arg-type]
        lambda: check_binarize(binarize, sign_zero=0),  # type: ignore[arg-type]
        lambda: check_ternarize(lambda w: w, method="twn"),  # type: ignore[arg-type]
        lambda: check_ternarize(lambda w: w, eps=0.0),
        lambda: check_choose_qparams(_qp, symmetric=1),  # type: ignore[arg-type]
        lambda: check_binarize(binarize, settings={"max_examples": 3}),  # type: ignore[arg-type]
    ):
        with pytest.raises(SpecError) as error:
            call()
        assert error.value.condition in ("invalid_option", "invalid_format")
