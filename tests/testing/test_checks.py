"""refquant.testing.check_*: the classic bugs are caught and named; correct candidates (the spec, refquant.fast) pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, settings

import refquant.fast as fast
from refquant import (
    INT8,
    INT32,
    UINT8,
    Accumulator,
    PerAxis,
    PerBlock,
    PerTensor,
    QuantParams,
    RequantRounding,
    RoundingMode,
    SpecError,
    dequantize,
    matmul_int,
    profiles,
    quantize,
    requantize,
)
from refquant.testing import (
    CheckFailure,
    MatmulParams,
    RequantizeParams,
    check_dequantizer,
    check_matmul,
    check_quantizer,
    check_requantizer,
    default_settings,
)

FEW = default_settings(max_examples=30)

# The buggy candidates overflow on purpose (x * s beyond float32, casts of infinities): their warnings are noise.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _causes(error: pytest.ExceptionInfo[CheckFailure]) -> list[str]:
    return [c.name for c in error.value.causes]


# --- buggy quantizers (the classic bugs of docs/testing.md) ------------------------------------------------------


def _round_half_away(v: npt.NDArray[Any]) -> npt.NDArray[Any]:
    t = np.trunc(v)
    return np.where(np.abs(v - t) >= 0.5, t + np.sign(v), t)


def _clip(v: npt.NDArray[Any], p: QuantParams) -> npt.NDArray[np.int64]:
    return np.clip(v, p.fmt.qmin, p.fmt.qmax).astype(np.int64)


def ties_away(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int64]:
    return _clip(_round_half_away(x / p.scale) + p.zero_point, p)


def multiplies_by_scale(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int64]:
    return _clip(np.rint(x * p.scale) + p.zero_point, p)


def casts_before_clipping(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int8]:
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.rint(x / p.scale).astype(np.int64) + p.zero_point
    return np.clip(q.astype(np.int8), p.fmt.qmin, p.fmt.qmax)


def axis_off_by_one(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int64]:
    assert isinstance(p.granularity, PerAxis)
    view = [1] * x.ndim
    view[p.granularity.axis - 1] = -1
    return _clip(np.rint(x / p.scale.reshape(view)) + p.zero_point.reshape(view), p)


def reciprocal_multiply(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int64]:
    return _clip(np.rint(x * (np.float32(1) / p.scale)) + p.zero_point, p)


def zero_point_first(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int64]:
    return _clip(np.rint(x / p.scale + p.zero_point.astype(np.float32)), p)


ONE = default_settings(max_examples=1)
"""One Hypothesis example: what is caught under it is caught by the fixed battery."""


@pytest.mark.parametrize(
    ("candidate", "kwargs", "cause"),
    [
        (ties_away, {}, "rounding=half_away_from_zero"),
        (multiplies_by_scale, {}, "scale_multiplied"),
        (axis_off_by_one, {"granularity": PerAxis(1)}, "axis=0"),
        # Reciprocal multiplication differs from division only one ulp from some ties and never at power-of-two
        # scales; the battery's near-ties of the scales 0.3 and 0.1 hold such points.
        (reciprocal_multiply, {"fmt": UINT8, "max_scale": 1.0}, "scale_application=reciprocal_multiply"),
        (zero_point_first, {"fmt": UINT8}, "zero_point_order=before_rounding"),
    ],
    ids=["ties_away", "multiplies", "axis", "reciprocal", "zero_point_first"],
)
def test_classic_quantizer_bugs_are_caught_by_the_battery_and_named_exactly(
    candidate: Any, kwargs: dict[str, Any], cause: str
) -> None:
    with pytest.raises(CheckFailure) as error:
        check_quantizer(candidate, settings=ONE, **kwargs)
    assert error.value.found_by == "battery"
    assert _causes(error) == [cause]
    assert error.value.causes[0].exact
    text = str(error.value)
    assert text.splitlines()[1].startswith("found by the fixed battery (case ")
    assert f"likely cause (reproduces the candidate exactly on all {error.value.probes} records tried)" in text
    assert f"  {cause}: " in text


@pytest.mark.parametrize("granularity", [PerTensor(), PerAxis(0), PerAxis(-1), PerBlock(1, 2)], ids=str)
def test_the_battery_holds_ties_both_zero_point_ends_and_distinct_dims(granularity: Any) -> None:
    from refquant.testing.checks import _quantize_battery

    battery = _quantize_battery(UINT8, granularity, True, True, 2.0**-16, 2.0**8)
    zero_points = set()
    ties = 0
    for case in battery:
        (x,) = case.inputs
        assert isinstance(case.params, QuantParams)
        assert case.params.granularity == granularity
        if not isinstance(granularity, PerTensor):
            assert len(set(x.shape)) == x.ndim >= 2  # pairwise distinct dimensions
        scale, zp = case.params.expand(x.shape)
        zero_points |= set(np.unique(zp).tolist())
        with np.errstate(invalid="ignore"):
            ratio = x.astype(np.float64) / scale.astype(np.float64)
        ties += int(np.count_nonzero(np.abs(ratio - np.floor(ratio)) == 0.5))
    assert {0, 255} <= zero_points
    assert ties > 100
    assert any(np.isnan(case.inputs[0]).any() for case in battery)  # allow_nan: a NaN record


def test_the_battery_catches_the_other_classic_bugs_whatever_the_budget() -> None:
    with pytest.raises(CheckFailure) as error:
        check_quantizer(casts_before_clipping, settings=ONE)
    assert (error.value.found_by, _causes(error)) == ("battery", ["overflow=wrap"])
    with pytest.raises(CheckFailure) as error:
        check_dequantizer(divides_by_255_twice, fmt=UINT8, settings=ONE)
    assert (error.value.found_by, _causes(error)) == ("battery", ["extra_division_by_255"])
    assert "extra_division_by_255: the dequantized value divided by 255 once more" in str(error.value)

    def single(acc: npt.NDArray[np.int32], p: RequantizeParams) -> npt.NDArray[Any]:
        return requantize(acc, p.multiplier, **{**p.kwargs(), "rounding": RequantRounding.SINGLE})

    with pytest.raises(CheckFailure) as error:
        check_requantizer(single, settings=ONE)
    assert (error.value.found_by, _causes(error)) == ("battery", ["rounding=single"])

    def no_zero_points(lhs: npt.NDArray[Any], rhs: npt.NDArray[Any], p: MatmulParams) -> npt.NDArray[Any]:
        return lhs.astype(np.int64) @ rhs.astype(np.int64)

    with pytest.raises(CheckFailure) as error:
        check_matmul(no_zero_points, settings=ONE)
    assert (error.value.found_by, _causes(error)) == ("battery", ["zero_points_ignored"])


def test_casting_before_clipping_is_named_wrap() -> None:
    # A bare cast of an out-of-range float is not a wrap at +-inf and beyond 2**63 (numpy gives INT64_MIN there), so
    # the wrap reproduces the candidate on most records, not all: it is named as the closest cause.
    with pytest.raises(CheckFailure) as error:
        check_quantizer(casts_before_clipping)
    assert _causes(error) == ["overflow=wrap"]
    assert not error.value.causes[0].exact
    assert "closest causes" in str(error.value)


def test_failure_shows_the_minimal_record_with_bit_patterns() -> None:
    with pytest.raises(CheckFailure) as error:
        check_quantizer(ties_away)
    record = error.value.record
    assert record is not None
    assert record.inputs[0].size == 1
    x = float(record.inputs[0][0])
    scale = float(record.params.scale) if isinstance(record.params, QuantParams) else 0.0
    assert abs(x / scale) % 1 == 0.5  # the shrunk counterexample is a tie
    text = str(error.value)
    assert "minimal reproducing record:" in text
    assert f"(bits 0x{int(record.inputs[0].view(np.uint32)[0]):08x})" in text


def test_the_same_failure_on_every_run() -> None:
    messages = []
    for _ in range(2):
        with pytest.raises(CheckFailure) as error:
            check_quantizer(multiplies_by_scale)
        messages.append(str(error.value))
    assert messages[0] == messages[1]


def test_a_crashing_candidate_is_reported_with_its_exception() -> None:
    def crashes(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[np.int64]:
        raise RuntimeError("no kernel for this shape")

    with pytest.raises(CheckFailure) as error:
        check_quantizer(crashes, settings=FEW)
    assert error.value.problem == "raised RuntimeError: no kernel for this shape"
    assert error.value.record is None
    assert error.value.causes == ()


def test_wrong_dtype_and_shape_are_failures() -> None:
    with pytest.raises(CheckFailure) as error:
        check_quantizer(lambda x, p: quantize(x, p).astype(np.float32), settings=FEW)
    assert error.value.problem == "returned dtype float32, the reference integers"
    with pytest.raises(CheckFailure) as error:
        check_quantizer(lambda x, p: quantize(x, p).reshape(-1, 1), settings=FEW)
    assert error.value.problem.startswith("returned shape")


# --- correct candidates pass ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"fmt": UINT8, "granularity": PerAxis(0)},
        {"granularity": PerBlock(-1, 2)},
        {"profile": profiles.TFLITE, "fmt": UINT8},
    ],
    ids=["per_tensor", "per_axis", "per_block", "tflite"],
)
def test_the_spec_and_the_kernels_pass(kwargs: dict[str, Any]) -> None:
    profile = kwargs.get("profile")
    check_quantizer(lambda x, p: quantize(x, p, profile=profile), settings=FEW, **kwargs)
    check_quantizer(lambda x, p: fast.quantize(x, p, profile=profile), settings=FEW, **kwargs)


def test_nan_must_be_refused_where_the_reference_refuses_it() -> None:
    check_quantizer(lambda x, p: quantize(x, p), allow_nan=True, settings=FEW)

    def nan_to_zero(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[Any]:
        return quantize(np.nan_to_num(x, nan=0.0, posinf=np.inf, neginf=-np.inf), p)

    with pytest.raises(CheckFailure) as error:
        check_quantizer(nan_to_zero, allow_nan=True, settings=FEW)
    assert error.value.problem == "returned a result where the reference raises SpecError('nan_input')"


def test_a_profile_other_than_onnx_is_the_reference() -> None:
    # TFLite's reference kernels round half away from zero: the ONNX-style candidate is caught, and the cause is
    # the swap back to half to even.
    with pytest.raises(CheckFailure) as error:
        check_quantizer(lambda x, p: quantize(x, p), profile=profiles.TFLITE)
    assert _causes(error) == ["rounding=half_to_even"]


# --- dequantize ----------------------------------------------------------------------------------------------------


def divides_by_255_twice(q: npt.NDArray[Any], p: QuantParams) -> npt.NDArray[np.float32]:
    return (q.astype(np.int64) - p.zero_point).astype(np.float32) * p.scale / np.float32(255)


def forgets_zero_point(q: npt.NDArray[Any], p: QuantParams) -> npt.NDArray[np.float32]:
    return np.asarray(q.astype(np.float32) * p.scale, dtype=np.float32)


@pytest.mark.parametrize(
    ("candidate", "cause"),
    [(divides_by_255_twice, "extra_division_by_255"), (forgets_zero_point, "zero_point_ignored")],
)
def test_dequantizer_bugs_are_named(candidate: Any, cause: str) -> None:
    with pytest.raises(CheckFailure) as error:
        check_dequantizer(candidate, fmt=UINT8)
    assert _causes(error) == [cause]
    assert error.value.causes[0].exact


def test_dequantizer_in_float64_is_caught_by_its_dtype() -> None:
    def float64(q: npt.NDArray[Any], p: QuantParams) -> npt.NDArray[np.float64]:
        return (q.astype(np.float64) - p.zero_point) * p.scale.astype(np.float64)

    with pytest.raises(CheckFailure) as error:
        check_dequantizer(float64, settings=FEW)
    assert error.value.problem == "returned dtype float64, the reference float32"


def test_correct_dequantizers_pass() -> None:
    check_dequantizer(lambda q, p: dequantize(q, p), granularity=PerAxis(-1), settings=FEW)
    check_dequantizer(lambda q, p: fast.dequantize(q, p), fmt=UINT8, settings=FEW)


# --- requantize ----------------------------------------------------------------------------------------------------


def _spec_requantize(acc: npt.NDArray[np.int32], p: RequantizeParams) -> npt.NDArray[Any]:
    return requantize(acc, p.multiplier, **p.kwargs())


def test_correct_requantizers_pass() -> None:
    check_requantizer(_spec_requantize, settings=FEW)
    check_requantizer(lambda a, p: fast.requantize(a, p.multiplier, **p.kwargs()), granularity=PerAxis(0), settings=FEW)
    check_requantizer(_spec_requantize, rounding=RequantRounding.SINGLE, out_fmt=UINT8, settings=FEW)


def test_requantize_rounding_mixups_are_named() -> None:
    def single(acc: npt.NDArray[np.int32], p: RequantizeParams) -> npt.NDArray[Any]:
        return requantize(acc, p.multiplier, **{**p.kwargs(), "rounding": RequantRounding.SINGLE})

    with pytest.raises(CheckFailure) as error:
        check_requantizer(single)
    assert _causes(error) == ["rounding=single"]


def test_requantize_cast_instead_of_clamp_is_named_wrap() -> None:
    def wraps(acc: npt.NDArray[np.int32], p: RequantizeParams) -> npt.NDArray[Any]:
        wide = requantize(acc, p.multiplier, **{**p.kwargs(), "out_fmt": INT32})
        return wide.astype(np.int8)

    with pytest.raises(CheckFailure) as error:
        check_requantizer(wraps)
    assert _causes(error) == ["overflow=wrap"]


# --- matmul --------------------------------------------------------------------------------------------------------


def _spec_matmul(lhs: npt.NDArray[Any], rhs: npt.NDArray[Any], p: MatmulParams) -> npt.NDArray[Any]:
    return matmul_int(
        lhs, rhs, lhs_zero_point=p.lhs_zero_point, rhs_zero_point=p.rhs_zero_point, accumulator=p.accumulator
    )


def test_correct_matmuls_pass() -> None:
    check_matmul(_spec_matmul, settings=default_settings(max_examples=40))
    check_matmul(
        lambda a, b, p: fast.matmul_int(
            a, b, lhs_zero_point=p.lhs_zero_point, rhs_zero_point=p.rhs_zero_point, accumulator=p.accumulator
        ),
        accumulator=Accumulator.INT32_WRAP,
        settings=default_settings(max_examples=40),
    )


def test_int32_numpy_matmul_is_named_wrap_at_the_bound() -> None:
    def int32_numpy(lhs: npt.NDArray[Any], rhs: npt.NDArray[Any], p: MatmulParams) -> npt.NDArray[Any]:
        return (lhs.astype(np.int32) - np.int32(p.lhs_zero_point)) @ (rhs.astype(np.int32) - np.int32(p.rhs_zero_point))

    with pytest.raises(CheckFailure) as error:
        check_matmul(int32_numpy, accumulator=Accumulator.INT64)
    assert _causes(error) == ["accumulator=int32_wrap"]
    record = error.value.record
    assert record is not None
    assert record.inputs[0].shape[0] == 1
    assert record.inputs[1].shape[1] == 1
    assert "... (" in str(error.value)  # the long row is shown by its ends


def test_matmul_without_zero_points_is_named() -> None:
    def no_zero_points(lhs: npt.NDArray[Any], rhs: npt.NDArray[Any], p: MatmulParams) -> npt.NDArray[Any]:
        return lhs.astype(np.int64) @ rhs.astype(np.int64)

    with pytest.raises(CheckFailure) as error:
        check_matmul(no_zero_points, edge_cases=False)
    assert _causes(error) == ["zero_points_ignored"]


# --- arguments -----------------------------------------------------------------------------------------------------


def test_bad_arguments_raise_spec_errors() -> None:
    good = lambda x, p: quantize(x, p)  # noqa: E731
    with pytest.raises(SpecError, match="candidate must be callable") as error:
        check_quantizer(3)  # type: ignore[arg-type]
    assert error.value.condition == "invalid_option"
    with pytest.raises(SpecError) as error:
        check_quantizer(good, fmt="int8")  # type: ignore[arg-type]
    assert error.value.condition == "invalid_format"
    with pytest.raises(SpecError, match="granularity") as error:
        check_requantizer(_spec_requantize, granularity=PerBlock(0, 2))
    assert error.value.condition == "invalid_option"
    with pytest.raises(SpecError, match="settings"):
        check_quantizer(good, settings={"max_examples": 5})  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="rounding"):
        check_requantizer(_spec_requantize, rounding=RoundingMode.HALF_TO_EVEN)  # type: ignore[arg-type]


def test_user_settings_are_used() -> None:
    seen: list[int] = []

    def counting(x: npt.NDArray[np.float32], p: QuantParams) -> npt.NDArray[Any]:
        seen.append(x.size)
        return quantize(x, p)

    from refquant.testing.checks import _quantize_battery

    battery = len(_quantize_battery(INT8, PerTensor(), False, True, 2.0**-16, 2.0**8))
    check_quantizer(counting, settings=settings(max_examples=7, database=None, suppress_health_check=list(HealthCheck)))
    assert battery + 1 <= len(seen) <= battery + 7


@pytest.mark.parametrize(
    ("granularity", "cause"),
    [
        (PerTensor(), "scale_application=reciprocal_multiply+zero_point_order=fused_multiply_add"),
        (PerAxis(0), "scale_application=reciprocal_multiply+zero_point_order=before_rounding"),
    ],
    ids=["per_tensor", "per_axis"],
)
def test_torch_against_the_onnx_reference_is_named_by_its_two_options(granularity: Any, cause: str) -> None:
    # docs/profiles.md: torch 2.13 multiplies by float32(1 / s) and adds the zero point in one fused rounding per
    # tensor, in a separate float32 addition per channel.
    with pytest.raises(CheckFailure) as error:
        check_quantizer(lambda x, p: quantize(x, p, profile=profiles.TORCH), fmt=UINT8, granularity=granularity)
    assert _causes(error) == [cause]


def test_axis_off_by_one_in_dequantize_and_requantize_is_named() -> None:
    def dequantize_axis(q: npt.NDArray[Any], p: QuantParams) -> npt.NDArray[np.float32]:
        assert isinstance(p.granularity, PerAxis)
        view = [1] * q.ndim
        view[p.granularity.axis - 1] = -1
        wide = q.astype(np.int64) - p.zero_point.reshape(view)
        return np.asarray(wide.astype(np.float32) * p.scale.reshape(view), dtype=np.float32)

    with pytest.raises(CheckFailure) as error:
        check_dequantizer(dequantize_axis, granularity=PerAxis(1))
    assert _causes(error) == ["axis=0"]

    def requantize_axis(acc: npt.NDArray[np.int32], p: RequantizeParams) -> npt.NDArray[Any]:
        assert isinstance(p.granularity, PerAxis)
        view = [1] * acc.ndim
        view[p.granularity.axis - 1] = -1
        multipliers = np.broadcast_to(p.multiplier.reshape(view), acc.shape)
        out = np.empty(acc.shape, np.int64)
        for index in np.ndindex(acc.shape):  # one element at a time: the spec's per-tensor requantize
            kwargs = {**p.kwargs(), "granularity": PerTensor()}
            out[index] = requantize(np.array([acc[index]]), float(multipliers[index]), **kwargs)[0]
        return out

    with pytest.raises(CheckFailure) as error:
        check_requantizer(requantize_axis, granularity=PerAxis(1))
    assert error.value.problem.startswith("raised ValueError")  # the distinct dimensions do not broadcast
    assert _causes(error) == ["axis=0"]  # the probe with equal dimensions computes, along axis 0
