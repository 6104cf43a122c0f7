"""Property checks that a project calls from its own test suite: its quantizer against the refquant reference.

Each ``check_*`` function first runs a fixed, tie-dense battery (ties and one ulp either side, saturation
edges, zero points at both ends of the format, NaN and infinities where the check allows them, per-axis
shapes with pairwise distinct dimensions), so that a classic bug fails deterministically in a handful of
records whatever Hypothesis's budget; then Hypothesis on the inputs where implementations differ
(``refquant.testing.strategies``).  It compares the candidate's output with the reference element by element
(integers exactly, floats as bit patterns), and on the first difference raises ``CheckFailure`` (an
``AssertionError``; ``found_by`` says ``"battery"`` or ``"hypothesis"``) holding:

- the counterexample (shrunk by Hypothesis when the search found it) cut down to its first mismatching element
  (``refquant.conformance.causes.minimal_record``), with float inputs shown as IEEE-754 bit patterns;
- the likely cause: the alternative semantics (``refquant.conformance.causes.explain_mismatch``) that
  reproduce the candidate's output exactly on the counterexample and on a set of probe records (ties and
  one ulp either side, saturation edges, and for per-axis parameters a tensor whose dimensions are all
  equal, so that an axis mix-up computes instead of failing to broadcast), on which the candidate is run
  as well.

The candidate's calling convention (the adapter a project writes around its own function):

``check_quantizer``: ``candidate(x, params) -> codes``
    ``x`` a float32 array, ``params`` a ``refquant.QuantParams`` (``.scale`` float32 and ``.zero_point``
    int64 arrays of the granularity's parameter shape, ``.fmt``, ``.granularity``); integer codes of ``x``'s
    shape.  Where the reference raises ``SpecError`` (a NaN under ``NanPolicy.RAISE``, with
    ``allow_nan=True``) the candidate must raise too (any exception).
``check_dequantizer``: ``candidate(q, params) -> x``
    ``q`` codes in ``params.fmt.storage_dtype``; a float32 array of ``q``'s shape.
``check_requantizer``: ``candidate(acc, params) -> codes``
    ``acc`` an int32 array, ``params`` a ``RequantizeParams`` (``.multiplier`` float64, scalar or 1-D along
    ``PerAxis``; ``.out_fmt``, ``.out_zero_point``, ``.rounding``, ``.granularity``).
``check_matmul``: ``candidate(lhs, rhs, params) -> acc``
    ``lhs`` ``(M, K)`` uint8 or int8, ``rhs`` ``(K, N)`` int8 or uint8, ``params`` a ``MatmulParams``
    (``.lhs_zero_point``, ``.rhs_zero_point``, ``.accumulator``); integers of shape ``(M, N)``.

The chapter checks (``check_choose_qparams``, ``check_pack``, ``check_unpack``, ``check_log_quantize``,
``check_binarize``, ``check_xnor_matmul``, ``check_ternarize``) work the same way with alternatives of their
own (each function's documentation lists its candidate's signature and the causes it names); their failures
carry ``CheckFailure.example`` instead of a ``MinimalRecord``.

Hypothesis runs with ``default_settings()`` (derandomized, no example database, quiet: the same input gives
the same counterexample on every run) unless ``settings=`` names others.  Examples on which the reference
refuses to guess (``UnpredictableError``: an int32 accumulation that overflows under ``Accumulator.INT32``, a
left shift that overflows under ``RequantRounding.DOUBLE``) are skipped.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import strategies as st

from refquant.conformance.causes import (
    Cause,
    MatmulParams,
    MinimalRecord,
    Operation,
    Params,
    RequantizeParams,
    alternative,
    explain_mismatch,
    format_record,
    minimal_record,
    reference,
    same_output,
    show_array,
    xnor_unmasked,
)
from refquant.errors import SpecError, UnpredictableError
from refquant.spec.affine import DEFAULT_PROFILE, Precision, Profile, QuantParams
from refquant.spec.binary import SignZero, binarize, xnor_matmul
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.formats import INT4, INT8, IntFormat
from refquant.spec.granularity import (
    PER_TENSOR,
    Granularity,
    PerAxis,
    PerBlock,
    PerTensor,
    normalize_axis,
    param_shape,
)
from refquant.spec.integer_ops import Accumulator
from refquant.spec.log import LogFormat, LogRounding, LogTop, LogUnderflow, log_quantize
from refquant.spec.packing import pack, unpack
from refquant.spec.qparams import SymmetricDenominator, ZeroRange, choose_qparams_from_range
from refquant.spec.rounding import RoundingMode
from refquant.spec.ternary import bitnet_ternarize, ttq_ternarize, twn_ternarize
from refquant.testing import strategies as rs

__all__ = [
    "CheckFailure",
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
]

Array = npt.NDArray[Any]
F32 = np.float32


def default_settings(*, max_examples: int = 150) -> settings:
    """The Hypothesis settings of the checks: derandomized, no database, quiet, no deadline, no explain phase."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class CheckFailure(AssertionError):
    """The candidate differs from the reference.

    ``problem`` says how (``"differs from the reference at 1 of 3 elements"``, ``"raised ValueError: ..."``);
    ``record`` is the minimal reproducing record (``None`` when the candidate gave no comparable output);
    ``causes`` the likely causes, those that reproduce the candidate on every probe first (``Cause.exact``
    true) or, when none does, those that reproduce the counterexample's mismatching elements; ``probes`` the
    number of records the candidate was compared on while diagnosing; ``found_by`` is ``"battery"`` when the
    fixed battery run before the search found the difference, ``"hypothesis"`` when the search did.  The
    chapter checks (``check_choose_qparams``, ``check_pack``, ...) have no ``MinimalRecord``: their ``example``
    holds the reproducing example's ``inputs``, ``options`` and ``observed`` outputs by name.
    """

    def __init__(
        self,
        message: str,
        *,
        problem: str,
        record: MinimalRecord | None,
        causes: tuple[Cause, ...],
        probes: int,
        found_by: str = "hypothesis",
        example: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.found_by = found_by
        self.example = example
        self.problem = problem
        self.record = record
        self.causes = causes
        self.probes = probes


@dataclass(frozen=True, eq=False)
class _Case:
    params: Params
    inputs: tuple[Array, ...]


class _Failure(Exception):
    def __init__(self, case: _Case, observed: Array | None, problem: str) -> None:
        super().__init__(problem)
        self.case = case
        self.observed = observed
        self.problem = problem


Call = Callable[[_Case], Any]


def _observe(op: Operation, call: Call, case: _Case, expected: Array) -> tuple[Array | None, str | None]:
    """The candidate's output on ``case`` and, when it is wrong, what is wrong with it."""
    try:
        raw = call(case)
    except Exception as error:
        return None, f"raised {type(error).__name__}: {error}"
    obs = np.asarray(raw)
    if obs.shape != expected.shape:
        return None, f"returned shape {obs.shape}, the reference {expected.shape}"
    if op is Operation.DEQUANTIZE and obs.dtype != np.float32:
        return None, f"returned dtype {obs.dtype}, the reference float32"
    if op is not Operation.DEQUANTIZE and obs.dtype.kind not in "iu":
        return None, f"returned dtype {obs.dtype}, the reference integers"
    same = same_output(op, expected, obs)
    if not np.all(same):
        return obs, f"differs from the reference at {int(np.count_nonzero(~same))} of {same.size} elements"
    return obs, None


def _run(
    op: Operation,
    name: str,
    cases: st.SearchStrategy[_Case],
    call: Call,
    probes: Callable[[_Case], list[_Case]],
    profile: Profile | None,
    options: settings | None,
    battery: list[_Case],
) -> None:
    def test(case: _Case) -> bool:
        """Compare on ``case``; ``False`` when the reference refuses to guess (the case says nothing)."""
        try:
            expected = reference(op, case.params, case.inputs, profile=profile)
        except UnpredictableError:
            return False
        except SpecError as refusal:
            try:
                call(case)
            except Exception:
                return True
            raise _Failure(
                case, None, f"returned a result where the reference raises SpecError({refusal.condition!r})"
            ) from None
        observed, problem = _observe(op, call, case, expected)
        if problem is not None:
            raise _Failure(case, observed, problem)
        return True

    chosen = default_settings() if options is None else options
    if not isinstance(chosen, settings):
        raise SpecError("invalid_option", f"settings must be a hypothesis.settings or None, got {options!r}")
    for number, case in enumerate(battery, 1):
        try:
            test(case)
        except _Failure as failure:
            found = f"the fixed battery (case {number} of {len(battery)})"
            raise _report(op, name, failure, call, probes, profile, found) from None

    def search(case: _Case) -> None:
        if not test(case):
            reject()

    runner = settings(chosen, report_multiple_bugs=False)(given(cases)(search))
    try:
        runner()
    except _Failure as failure:
        raise _report(op, name, failure, call, probes, profile, "Hypothesis's search") from None


def _report(
    op: Operation,
    name: str,
    failure: _Failure,
    call: Call,
    probes: Callable[[_Case], list[_Case]],
    profile: Profile | None,
    found_by: str,
) -> CheckFailure:
    case = failure.case
    records: list[tuple[_Case, Array, Array]] = []  # (case, expected, observed) where the candidate ran
    if failure.observed is not None:
        records.append((case, reference(op, case.params, case.inputs, profile=profile), failure.observed))
    for probe in probes(case):
        try:
            expected = reference(op, probe.params, probe.inputs, profile=profile)
        except (SpecError, UnpredictableError):
            continue
        observed, _ = _observe(op, call, probe, expected)
        if observed is not None:
            records.append((probe, expected, observed))
    causes = _diagnose(op, records, profile)
    record = None
    if failure.observed is not None:
        record = minimal_record(op, case.params, case.inputs, failure.observed, profile=profile)
    lines = [f"{name}: the candidate {failure.problem}", f"found by {found_by}"]
    if record is not None:
        lines += ["minimal reproducing record:", format_record(record)]
    else:
        try:
            expected = reference(op, case.params, case.inputs, profile=profile)
        except (SpecError, UnpredictableError):
            expected = np.zeros(0, np.int64)
        whole = MinimalRecord(op, case.params, case.inputs, expected, np.zeros(0, np.int64), (), profile)
        lines += ["counterexample:", format_record(whole).rsplit("\n", 1)[0]]
    if causes and causes[0].exact:
        lines.append(f"likely cause (reproduces the candidate exactly on all {len(records)} records tried):")
        lines += [f"  {c.name}: {c.description}" for c in causes]
    elif causes:
        lines.append(f"closest causes (reproduce the candidate on some of the {len(records)} records tried, not all):")
        lines += [f"  {c.name}: {c.description}" for c in causes]
    else:
        lines.append("no single alternative semantics reproduces the candidate")
    return CheckFailure(
        "\n".join(lines),
        problem=failure.problem,
        record=record,
        causes=tuple(causes),
        probes=len(records),
        found_by="battery" if found_by.startswith("the fixed battery") else "hypothesis",
    )


def _diagnose(op: Operation, records: list[tuple[_Case, Array, Array]], profile: Profile | None) -> list[Cause]:
    """Causes that reproduce the candidate on the most records (``exact``: on all of them), in order of discovery.

    Candidate names come from ``explain_mismatch`` on the first few mismatching records; each is then
    re-evaluated on every record.  An alternative that does not apply to a record (an axis swap on a tensor
    without two equal dimensions) agrees with the candidate there when the candidate agrees with the reference.
    """
    found: dict[str, Cause] = {}
    mismatching = [r for r in records if not np.all(same_output(op, r[1], r[2]))]
    for case, _, observed in mismatching[:_EXPLAINED_RECORDS]:
        for cause in explain_mismatch(op, case.params, case.inputs, observed, profile=profile):
            found.setdefault(cause.name, cause)

    def agreements(name: str) -> int:
        count = 0
        for case, expected, observed in records:
            out = alternative(name, op, case.params, case.inputs, profile=profile)
            target = expected if out is None else out
            if target.shape == observed.shape and bool(np.all(same_output(op, target, observed))):
                count += 1
        return count

    scored = [(agreements(name), cause) for name, cause in found.items()]
    best = max((n for n, _ in scored), default=0)
    if best == 0:
        return []
    return [Cause(c.name, c.description, n == len(records)) for n, c in scored if n == best]


_EXPLAINED_RECORDS = 4


# --- shapes for a granularity -------------------------------------------------------------------------------------


def _min_dims(granularity: Granularity) -> int:
    if isinstance(granularity, PerTensor):
        return 1
    return granularity.axis + 1 if granularity.axis >= 0 else -granularity.axis


def _shapes(granularity: Granularity, max_side: int) -> st.SearchStrategy[tuple[int, ...]]:
    low = _min_dims(granularity)
    return rs.distinct_shapes(min_dims=low, max_dims=max(low, 3), min_side=1, max_side=max(max_side, low))


def _square(shape: tuple[int, ...], granularity: Granularity) -> tuple[int, ...] | None:
    """The all-equal shape on which an axis mix-up of per-axis parameters computes (None: not per axis)."""
    if not isinstance(granularity, PerAxis) or len(shape) < 2:
        return None
    side = shape[normalize_axis(granularity.axis, len(shape))]
    return (side,) * len(shape) if side > 1 else None


def _check_granularity(granularity: object, allowed: tuple[type, ...]) -> Granularity:
    if not isinstance(granularity, allowed):
        names = ", ".join(k.__name__ for k in allowed)
        raise SpecError("invalid_option", f"granularity must be one of {names}, got {granularity!r}")
    return granularity  # type: ignore[return-value]


def _check_candidate(candidate: object) -> None:
    if not callable(candidate):
        raise SpecError("invalid_option", f"candidate must be callable, got {candidate!r}")


# --- the fixed battery (run before Hypothesis's search) -----------------------------------------------------------

_BATTERY_SCALES = (0.5, 2.0, 0.25, 0.3, 1.0, 0.1, 3.0, 2.0**-10, 48.0)
"""Powers of two (exact ties at every k), short significands (3, 48), and scales whose float32 reciprocal is inexact
(0.3, 0.1: division and reciprocal multiplication differ near some of their ties)."""


def _battery_scales(min_scale: float, max_scale: float) -> list[float]:
    lo, hi = float(F32(min_scale)), float(F32(max_scale))
    inside = [v for v in _BATTERY_SCALES if lo <= v <= hi]
    return inside if len(inside) >= 2 else sorted({*inside, lo, hi})


def _battery_zero_points(fmt: IntFormat) -> list[int]:
    """Zero points at both ends of the format, 0 (when it holds 0) and one step inside the low end."""
    ends = [0, fmt.qmin, fmt.qmax, fmt.qmin + 1]
    return list(dict.fromkeys(z for z in ends if fmt.qmin <= z <= fmt.qmax))


def _battery_shape(granularity: Granularity, size: int) -> tuple[int, ...]:
    """``(size,)`` per tensor; else pairwise distinct dimensions: the parameter axis 3 long (enough for two blocks
    and a ragged one when the block size allows), one other axis ``size`` long, the rest 2 and 1 long."""
    if isinstance(granularity, PerTensor):
        return (size,)
    n = max(_min_dims(granularity), 2)
    axis = normalize_axis(granularity.axis, n)
    along = 3 if not isinstance(granularity, PerBlock) else max(3, 2 * granularity.block_size + 1)
    other = size if size != along else size + 1
    fill = iter(v for v in (2, 1, 4, 5) if v not in (along, other))
    dims = [0] * n
    dims[axis] = along
    rest = [d for d in range(n) if d != axis]
    dims[rest[0]] = other
    for d in rest[1:]:
        dims[d] = next(fill)
    return tuple(dims)


def _battery_params(
    granularity: Granularity, shape: tuple[int, ...], fmt: IntFormat, scales: list[float], zps: list[int], start: int
) -> QuantParams:
    """One scale and zero point per parameter slot, cycling through ``scales`` and ``zps`` from ``start``."""
    pshape = param_shape(granularity, shape)
    size = int(np.prod(pshape, dtype=np.int64))
    s = [scales[(start + i) % len(scales)] for i in range(size)]
    z = [zps[(start + i) % len(zps)] for i in range(size)]
    return QuantParams(np.array(s, F32).reshape(pshape), np.array(z, np.int64).reshape(pshape), fmt, granularity)


@functools.lru_cache(maxsize=256)
def _quantize_templates(s: float, z: int, fmt: IntFormat, allow_infinity: bool) -> tuple[float, ...]:
    """The battery's values for scale ``s`` and zero point ``z``: ``float32((k + 1/2) * s)`` (a tie where float32
    holds it exactly, the nearest near-tie otherwise) and one ulp either side for
    ``k`` from -24 to 23 and ``k + z`` at both ends of the format, the saturation edges half a step to a hundred steps beyond
    each end, signed zeros, the smallest subnormals, the largest finite float32 and (when allowed) +-inf."""
    # nearest zero first (0, -1, 1, -2, ...), then the ends: the first mismatch, which the report shows, is small
    near = sorted(range(-24, 24), key=lambda k: (abs(k + 0.5), k))
    ends = [*range(fmt.qmin - z - 2, fmt.qmin - z + 2), *range(fmt.qmax - z - 2, fmt.qmax - z + 2)]
    ks = list(dict.fromkeys([*near, *ends]))
    out: list[float] = []
    for k in ks:
        with np.errstate(over="ignore"):
            t = float(
                F32((k + 0.5) * s)
            )  # the tie itself where float32 holds it, else the nearest float32 (a near-tie)
        if not np.isfinite(t):
            t = rs.tie_point(k, s)
        out += [t, float(np.nextafter(F32(t), F32(np.inf))), float(np.nextafter(F32(t), F32(-np.inf)))]
    with np.errstate(over="ignore"):
        for e in (0.5, 1.0, 2.0, 100.0):
            out += [float(F32((fmt.qmax - z + e) * s)), float(F32((fmt.qmin - z - e) * s))]
    tiny = float(np.finfo(F32).smallest_subnormal)
    big = float(np.finfo(F32).max)
    out += [0.0, -0.0, tiny, -tiny, big, -big]
    if allow_infinity:
        out += [np.inf, -np.inf]
    return tuple(out)


def _fill(params: QuantParams, shape: tuple[int, ...], templates: Callable[[float, int], tuple[float, ...]]) -> Array:
    """Element ``i`` is template ``i % T`` of its own scale and zero point (float32)."""
    scale, zp = params.expand(shape)
    flat_s, flat_z = scale.reshape(-1).tolist(), zp.reshape(-1).tolist()
    values = [templates(s, z)[i % len(templates(s, z))] for i, (s, z) in enumerate(zip(flat_s, flat_z, strict=True))]
    return np.array(values, dtype=F32).reshape(shape)


def _quantize_battery(
    fmt: IntFormat,
    granularity: Granularity,
    allow_nan: bool,
    allow_infinity: bool,
    min_scale: float,
    max_scale: float,
) -> list[_Case]:
    scales, zps = _battery_scales(min_scale, max_scale), _battery_zero_points(fmt)

    def templates(s: float, z: int) -> tuple[float, ...]:
        return _quantize_templates(s, z, fmt, allow_infinity)

    size = len(templates(1.0, 0))
    shape = _battery_shape(granularity, size)
    out: list[_Case] = []
    if isinstance(granularity, PerTensor):
        for s in scales:
            for z in zps:
                params = QuantParams(F32(s), z, fmt, granularity)
                out.append(_Case(params, (np.array(templates(float(F32(s)), z), dtype=F32),)))
    else:
        for start in range(max(len(scales), len(zps))):
            params = _battery_params(granularity, shape, fmt, scales, zps, start)
            out.append(_Case(params, (_fill(params, shape, templates),)))
    if allow_nan:
        x = out[0].inputs[0].copy()
        x.reshape(-1)[1::7] = np.nan
        out.append(_Case(out[0].params, (x,)))
    return out


def _dequantize_battery(fmt: IntFormat, granularity: Granularity, min_scale: float, max_scale: float) -> list[_Case]:
    """Every code of formats up to 10 bits (else both ends, 0 and the zero point's neighbours), per zero point at
    both ends of the format and each battery scale (1/255 among them: the image pipelines' scale)."""
    scales = _battery_scales(min_scale, max_scale)
    third = float(F32(1 / 255))
    if float(F32(min_scale)) <= third <= float(F32(max_scale)):
        scales = [third, *scales]
    zps = _battery_zero_points(fmt)
    if fmt.bits <= 10:
        every = list(range(fmt.qmin, fmt.qmax + 1))
    else:
        every = sorted(
            {fmt.qmin, fmt.qmin + 1, fmt.qmax - 1, fmt.qmax, *range(-3, 4)} & set(range(fmt.qmin, fmt.qmax + 1))
        )

    def templates(s: float, z: int) -> tuple[float, ...]:
        return tuple(float(v) for v in every)

    out: list[_Case] = []
    if isinstance(granularity, PerTensor):
        for s in scales:
            for z in zps:
                q = np.array(every, dtype=np.int64).astype(fmt.storage_dtype)
                out.append(_Case(QuantParams(F32(s), z, fmt, granularity), (q,)))
    else:
        shape = _battery_shape(granularity, len(every))
        for start in range(max(len(scales), len(zps))):
            params = _battery_params(granularity, shape, fmt, scales, zps, start)
            q = _fill(params, shape, templates).astype(np.int64).astype(fmt.storage_dtype)
            out.append(_Case(params, (q,)))
    return out


_BATTERY_MULTIPLIERS = (0.5, 0.25, 2.0**-31, 2.0**-20, 0.75, 0.3, 1.0 - 2.0**-31, 1.0, 2.0**-8, 1e-3)
"""Multipliers with exact ties (powers of two: ``acc * m = k + 1/2`` for odd multiples), the double-rounding case
``2**-31`` (TFLite's doubling high multiply rounds before the shift does), near 1, 1 itself, and inexact ones."""


def _battery_accumulators() -> npt.NDArray[np.int32]:
    ramp = set(range(-300, 301))
    for k in range(1, 31):
        ramp |= {2**k, 2**k - 1, 2**k + 1, -(2**k), -(2**k) + 1, -(2**k) - 1}
    ramp |= {2**31 - 1, -(2**31), -(2**31) + 1}
    return np.array(sorted(ramp), dtype=np.int32)


def _requantize_battery(
    out_fmt: IntFormat, rounding: RequantRounding, granularity: Granularity, lo: float, hi: float
) -> list[_Case]:
    mults = [m for m in _BATTERY_MULTIPLIERS if lo <= m <= hi] or sorted({lo, hi})
    zps = _battery_zero_points(out_fmt)
    acc = _battery_accumulators()
    out: list[_Case] = []
    if isinstance(granularity, PerTensor):
        for m in mults:
            for z in zps:
                out.append(_Case(RequantizeParams(np.array(m), out_fmt, z, rounding, granularity), (acc,)))
        return out
    shape = _battery_shape(granularity, acc.size)
    axis = normalize_axis(cast("PerAxis", granularity).axis, len(shape))
    other = next(d for d in range(len(shape)) if d != axis)
    view = [1] * len(shape)
    view[other] = -1
    grid = np.broadcast_to(acc.reshape(view), shape).copy()
    for start in range(len(mults)):
        ms = np.array([mults[(start + i) % len(mults)] for i in range(shape[axis])], np.float64)
        for z in zps:
            out.append(_Case(RequantizeParams(ms, out_fmt, z, rounding, granularity), (grid,)))
    return out


def _matmul_battery(accumulator: Accumulator, edge_cases: bool) -> list[_Case]:
    """Products of small ``(3, 4) @ (4, 5)`` operands at the ends of uint8 / int8 with zero points at both ends of
    their ranges; with ``edge_cases`` two products of int8 rows that accumulate to ``INT32_MAX`` and one beyond it
    (and to ``INT32_MIN`` and one below; the reference refuses the ones beyond under ``Accumulator.INT32``)."""
    out: list[_Case] = []
    for lt, rt in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)):
        li, ri = np.iinfo(lt), np.iinfo(rt)
        lhs = np.array([[li.min, li.max, 0, 1], [li.max, li.max, li.min, 3], [2, li.min, li.max, li.max]]).astype(lt)
        rhs = np.array(
            [[ri.min, ri.max, 0, 1, 5], [ri.max, ri.min, ri.max, 2, 0], [1, 0, ri.min, ri.max, 3], [ri.max] * 5]
        ).astype(rt)
        for lz in sorted({0, int(li.min), int(li.max)}):
            for rz in sorted({0, int(ri.min), int(ri.max)}):
                out.append(_Case(MatmulParams(lz, rz, accumulator), (lhs, rhs)))
    if edge_cases:
        for target in (rs.INT32_MAX, rs.INT32_MAX + 1, rs.INT32_MIN, rs.INT32_MIN - 1):
            pairs = rs._pairs_for(target)
            lhs = np.array([[a for a, _ in pairs]], dtype=np.int8)
            rhs = np.array([[b] for _, b in pairs], dtype=np.int8)
            out.append(_Case(MatmulParams(0, 0, accumulator), (lhs, rhs)))
    return out


# --- quantize -----------------------------------------------------------------------------------------------------


def _probe_params(params: QuantParams, shape: tuple[int, ...]) -> list[QuantParams]:
    """The counterexample's params, the same with zero points 0, and (per axis or block) distinct scales and zero points."""
    fmt = params.fmt
    out = [params]
    if np.any(params.zero_point != 0):
        out.append(QuantParams(params.scale, 0, fmt, params.granularity))
    if params.scale.size > 1:
        n = params.scale.size
        distinct = (np.arange(1, n + 1, dtype=np.float32) * F32(0.25)).reshape(params.scale.shape)
        zps = np.clip(np.arange(n, dtype=np.int64) - n // 2, fmt.qmin, fmt.qmax).reshape(params.scale.shape)
        out.append(QuantParams(distinct, zps, fmt, params.granularity))
    return out


def _shapes_to_probe(shape: tuple[int, ...], granularity: Granularity) -> list[tuple[int, ...]]:
    square = _square(shape, granularity)
    return [shape] if square is None else [shape, square]


def _quantize_fills(params: QuantParams, shape: tuple[int, ...]) -> list[Array]:
    scale, zp = params.expand(shape)
    s = scale.astype(np.float64)
    z = zp
    fmt = params.fmt
    out: list[Array] = []
    tie = np.vectorize(rs.tie_point, otypes=[np.float64])
    for k in (-2, -1, 0, 1):
        base = tie(k, s).astype(F32)
        out += [base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf))]
    with np.errstate(over="ignore"):
        for e in (0.5, 1.0, 3.0):
            out.append(((fmt.qmax - z + e) * s).astype(F32))
            out.append(((fmt.qmin - z - e) * s).astype(F32))
    out += [np.full(shape, np.inf, F32), np.full(shape, -np.inf, F32), np.full(shape, -0.0, F32)]
    return [np.asarray(x, dtype=F32).reshape(shape) for x in out]


_AWKWARD_SCALE = 0.3
"""A scale whose float32 reciprocal is inexact: x / s and x * (1 / s) differ near a dozen of its rounded ties."""


def _rounded_ties(params: QuantParams, shape: tuple[int, ...]) -> list[Array]:
    """``float32((k + 1/2) * s)`` (rounded: near-ties, not ties) and one ulp either side, ``k`` from -24 to 23."""
    scale, _ = params.expand(shape)
    size = int(np.prod(shape, dtype=np.int64))
    k = (np.arange(size) % 48 - 24).reshape(shape)
    base = ((k + 0.5) * scale.astype(np.float64)).astype(F32)
    return [base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf))]


def _quantize_probes(case: _Case) -> list[_Case]:
    params = cast("QuantParams", case.params)
    shapes = _shapes_to_probe(case.inputs[0].shape, params.granularity)
    probes = []
    for shape in shapes:
        for p in _probe_params(params, shape):
            probes += [_Case(p, (x,)) for x in _quantize_fills(p, shape)]
    # 48 elements along the parameter axis (any length will do: these probes bring their own parameters).
    g = params.granularity
    ndim = case.inputs[0].ndim
    if isinstance(g, PerTensor):
        long: tuple[int, ...] = (48,)
    else:
        axis = normalize_axis(g.axis, ndim)
        long = tuple(48 if d == axis else 1 for d in range(ndim))
    pshape = param_shape(g, long)
    fmt = params.fmt
    for z in sorted({0, 1} & set(range(fmt.qmin, fmt.qmax + 1))):
        awkward = QuantParams(np.full(pshape, _AWKWARD_SCALE, F32), np.full(pshape, z), fmt, g)
        probes += [_Case(awkward, (x,)) for x in _rounded_ties(awkward, long)]
    return probes


def check_quantizer(
    candidate: Callable[[npt.NDArray[np.float32], QuantParams], npt.ArrayLike],
    /,
    *,
    fmt: IntFormat = INT8,
    granularity: Granularity = PER_TENSOR,
    profile: Profile | None = None,
    allow_nan: bool = False,
    allow_infinity: bool = True,
    min_scale: float = 2.0**-16,
    max_scale: float = 2.0**8,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(x, params) -> codes`` against ``refquant.quantize`` under ``profile`` (default ONNX).

    Shapes have pairwise distinct dimensions (1 to 3 of them, enough for ``granularity``'s axis); per-axis
    and per-block parameters are drawn for each shape, with ``fmt`` and scales in ``[min_scale, max_scale]``.
    Raises ``CheckFailure`` on the first difference (see the module documentation); returns ``None``
    when Hypothesis finds none.
    """
    _check_candidate(candidate)
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    g = _check_granularity(granularity, (PerTensor, PerAxis, PerBlock))
    prof = DEFAULT_PROFILE if profile is None else profile
    if not isinstance(prof, Profile):
        raise SpecError("invalid_option", f"profile must be a Profile, got {profile!r}")

    @st.composite
    def cases(draw: st.DrawFn) -> _Case:
        shape = draw(_shapes(g, 5))
        params = draw(rs.quant_params(shape=shape, fmt=fmt, granularity=g, min_scale=min_scale, max_scale=max_scale))
        x = draw(rs.quantize_inputs(params, shape=shape, allow_nan=allow_nan, allow_infinity=allow_infinity))
        return _Case(params, (x,))

    def call(case: _Case) -> Any:
        return candidate(case.inputs[0].copy(), case.params)  # type: ignore[arg-type]

    battery = _quantize_battery(fmt, g, allow_nan, allow_infinity, min_scale, max_scale)
    _run(Operation.QUANTIZE, "check_quantizer", cases(), call, _quantize_probes, prof, settings, battery)


# --- dequantize ---------------------------------------------------------------------------------------------------


def _dequantize_fills(params: QuantParams, shape: tuple[int, ...]) -> list[Array]:
    fmt = params.fmt
    _, zp = params.expand(shape)
    out: list[Array] = []
    size = int(np.prod(shape, dtype=np.int64))
    for c in sorted({fmt.qmin, fmt.qmin + 1, fmt.qmax - 1, fmt.qmax, *([0] if fmt.qmin <= 0 else [])}):
        out.append(np.full(shape, c, np.int64))
    for dz in (-1, 1):
        out.append(np.clip(zp + dz, fmt.qmin, fmt.qmax))
    span = fmt.qmax - fmt.qmin + 1
    out.append((fmt.qmin + (np.arange(size, dtype=np.int64) * 37) % span).reshape(shape))
    return [np.asarray(q).astype(fmt.storage_dtype).reshape(shape) for q in out]


def _dequantize_probes(case: _Case) -> list[_Case]:
    params = cast("QuantParams", case.params)
    probes = []
    for shape in _shapes_to_probe(case.inputs[0].shape, params.granularity):
        for p in _probe_params(params, shape):
            probes += [_Case(p, (q,)) for q in _dequantize_fills(p, shape)]
    return probes


def check_dequantizer(
    candidate: Callable[[Array, QuantParams], npt.ArrayLike],
    /,
    *,
    fmt: IntFormat = INT8,
    granularity: Granularity = PER_TENSOR,
    min_scale: float = 2.0**-16,
    max_scale: float = 2.0**8,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(q, params) -> x`` (float32) against ``refquant.dequantize``, bit for bit."""
    _check_candidate(candidate)
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    g = _check_granularity(granularity, (PerTensor, PerAxis, PerBlock))

    @st.composite
    def cases(draw: st.DrawFn) -> _Case:
        shape = draw(_shapes(g, 5))
        params = draw(rs.quant_params(shape=shape, fmt=fmt, granularity=g, min_scale=min_scale, max_scale=max_scale))
        return _Case(params, (draw(rs.codes(params, shape=shape)),))

    def call(case: _Case) -> Any:
        return candidate(case.inputs[0].copy(), case.params)  # type: ignore[arg-type]

    battery = _dequantize_battery(fmt, g, min_scale, max_scale)
    _run(Operation.DEQUANTIZE, "check_dequantizer", cases(), call, _dequantize_probes, None, settings, battery)


# --- requantize ---------------------------------------------------------------------------------------------------


_ACC_PROBES = (-10, -7, -6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6, 7, 10, 2**15, -(2**15), 2**31 - 1, -(2**31))


def _requantize_probes(case: _Case) -> list[_Case]:
    params = cast("RequantizeParams", case.params)
    shape = case.inputs[0].shape
    shapes = [shape]
    square = _square(shape, params.granularity)
    if square is not None:
        shapes.append(square)
    variants = [params]
    if params.out_zero_point != 0:
        variants.append(dataclasses.replace(params, out_zero_point=0))
    if params.multiplier.size > 1:  # distinct multipliers, so that an axis mix-up changes the codes
        distinct = np.arange(1, params.multiplier.size + 1, dtype=np.float64) / 8
        variants.append(dataclasses.replace(params, multiplier=distinct))
    probes = []
    for p in variants:
        for sh in shapes:
            size = int(np.prod(sh, dtype=np.int64))
            for a in _ACC_PROBES:
                probes.append(_Case(p, (np.full(sh, a, np.int32),)))
            ramp = (np.arange(size, dtype=np.int64) * 2 - size).astype(np.int32).reshape(sh)
            probes.append(_Case(p, (ramp,)))
    if isinstance(params.granularity, PerTensor):
        probes.append(_Case(params, (np.arange(-300, 301, dtype=np.int32),)))
    return probes


def check_requantizer(
    candidate: Callable[[npt.NDArray[np.int32], RequantizeParams], npt.ArrayLike],
    /,
    *,
    out_fmt: IntFormat = INT8,
    rounding: RequantRounding = RequantRounding.DOUBLE,
    granularity: Granularity = PER_TENSOR,
    min_multiplier: float = 0.0,
    max_multiplier: float = 1.0,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(acc, params) -> codes`` against ``refquant.requantize`` with ``rounding``.

    Multipliers come from ``strategies.multipliers`` (dense near 1 and near 0), accumulators from
    ``strategies.accumulators`` (dense at the int32 bounds), output zero points from both ends of ``out_fmt``.
    """
    _check_candidate(candidate)
    if not isinstance(out_fmt, IntFormat):
        raise SpecError("invalid_format", f"out_fmt must be an IntFormat, got {out_fmt!r}")
    if not isinstance(rounding, RequantRounding):
        raise SpecError("invalid_option", f"rounding must be a RequantRounding, got {rounding!r}")
    g = _check_granularity(granularity, (PerTensor, PerAxis))
    mults = rs.multipliers(min_value=min_multiplier, max_value=max_multiplier)

    @st.composite
    def cases(draw: st.DrawFn) -> _Case:
        shape = draw(_shapes(g, 5))
        count = shape[normalize_axis(g.axis, len(shape))] if isinstance(g, PerAxis) else 1
        m = draw(st.lists(mults, min_size=count, max_size=count))
        multiplier = np.array(m, np.float64) if isinstance(g, PerAxis) else np.float64(m[0])
        zp = draw(rs._zero_points(out_fmt))
        params = RequantizeParams(np.asarray(multiplier), out_fmt, zp, rounding, g)
        return _Case(params, (draw(rs.accumulators(shape=shape)),))

    def call(case: _Case) -> Any:
        return candidate(case.inputs[0].copy(), case.params)  # type: ignore[arg-type]

    battery = _requantize_battery(out_fmt, rounding, g, min_multiplier, max_multiplier)
    _run(Operation.REQUANTIZE, "check_requantizer", cases(), call, _requantize_probes, None, settings, battery)


# --- matmul -------------------------------------------------------------------------------------------------------


def check_matmul(
    candidate: Callable[[Array, Array, MatmulParams], npt.ArrayLike],
    /,
    *,
    accumulator: Accumulator = Accumulator.INT32,
    edge_cases: bool = True,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(lhs, rhs, params) -> acc`` against ``refquant.matmul_int`` with ``accumulator``.

    Half the examples are small ``(M, K) @ (K, N)`` products with pairwise distinct ``M, K, N``, uint8 or
    int8 operands and zero points at the ends of their range; with ``edge_cases`` the other half are
    ``strategies.accumulation_edge_matmuls`` (int8, zero points 0, ``K`` about 131 thousand) whose output
    ``[0, 0]`` sits within 64 of the int32 bound, on either side (under ``Accumulator.INT32`` the ones beyond
    are skipped: the reference refuses to guess).
    """
    _check_candidate(candidate)
    if not isinstance(accumulator, Accumulator):
        raise SpecError("invalid_option", f"accumulator must be an Accumulator, got {accumulator!r}")

    def zero_points(dtype: np.dtype[Any]) -> st.SearchStrategy[int]:
        info = np.iinfo(dtype)
        return st.one_of(
            st.sampled_from(sorted({0, int(info.min), int(info.max)})), st.integers(int(info.min), int(info.max))
        )

    @st.composite
    def small(draw: st.DrawFn) -> _Case:
        m, k, n = draw(rs.distinct_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6))
        lt = draw(st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)]))
        rt = draw(st.sampled_from([np.dtype(np.int8), np.dtype(np.uint8)]))

        def codes(dtype: np.dtype[Any], size: int) -> list[int]:
            info = np.iinfo(dtype)
            edge = st.sampled_from([int(info.min), int(info.max), 0])
            return draw(
                st.lists(st.one_of(edge, st.integers(int(info.min), int(info.max))), min_size=size, max_size=size)
            )

        lhs = np.array(codes(lt, m * k), dtype=np.int64).astype(lt).reshape(m, k)
        rhs = np.array(codes(rt, k * n), dtype=np.int64).astype(rt).reshape(k, n)
        params = MatmulParams(draw(zero_points(lt)), draw(zero_points(rt)), accumulator)
        return _Case(params, (lhs, rhs))

    edges = rs.accumulation_edge_matmuls().map(lambda lr: _Case(MatmulParams(0, 0, accumulator), lr))
    cases = st.one_of(small(), edges) if edge_cases else small()

    def call(case: _Case) -> Any:
        return candidate(case.inputs[0].copy(), case.inputs[1].copy(), case.params)  # type: ignore[arg-type]

    battery = _matmul_battery(accumulator, edge_cases)
    small_battery = [c for c in battery if c.inputs[0].shape[1] < 64]  # the diagnosis reruns these: not the long rows
    _run(Operation.MATMUL_INT, "check_matmul", cases, call, lambda case: small_battery, None, settings, battery)


# --- the other chapters: one generic runner ------------------------------------------------------------------------
#
# qparams, packing, log, binary and ternary have no entry in refquant.conformance.causes: each check below names
# its own alternatives (the semantics its chapter's stacks and classic bugs use), evaluated on the counterexample
# and on every battery record the candidate ran on, the same way as _diagnose above.

Outputs = dict[str, Array]


@dataclass(frozen=True, eq=False)
class _Example:
    """One example of a chapter check: the candidate's positional ``inputs`` by name, and fixed ``options``."""

    inputs: dict[str, Any]
    options: dict[str, Any]


@dataclass(frozen=True, eq=False)
class _Alternative:
    name: str
    description: str
    run: Callable[[_Example], Outputs | None]  # None: does not apply to the example


@dataclass(frozen=True, eq=False)
class _Model:
    name: str
    reference: Callable[[_Example], Outputs]
    alternatives: tuple[_Alternative, ...]
    cut: Callable[[_Example, str, tuple[int, ...]], _Example | None] = lambda example, output, index: None


class _ExampleFailure(Exception):
    def __init__(self, example: _Example, observed: Outputs | None, problem: str) -> None:
        super().__init__(problem)
        self.example = example
        self.observed = observed
        self.problem = problem


def _same(a: Array, b: Array) -> npt.NDArray[np.bool_]:
    """Elementwise equality: integers exactly, floats as float64 bit patterns (a float32 value and its float64
    widening agree; ``-0.0`` is not ``0.0``)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        if a.dtype.kind != "f" or b.dtype.kind != "f":
            return np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=bool)
        return np.asarray(a.astype(np.float64).view(np.uint64) == b.astype(np.float64).view(np.uint64))
    return np.asarray(a.astype(np.int64) == b.astype(np.int64))


def _compare(expected: Outputs, observed: Outputs) -> str | None:
    for name, want in expected.items():
        got = observed[name]
        if got.shape != want.shape:
            return f"returned {name} of shape {got.shape}, the reference {want.shape}"
        if (got.dtype.kind == "f") != (want.dtype.kind == "f") or got.dtype.kind not in "iuf":
            return f"returned {name} of dtype {got.dtype}, the reference {want.dtype}"
        same = _same(want, got)
        if not np.all(same):
            return f"differs from the reference in {name} at {int(np.count_nonzero(~same))} of {same.size} elements"
    return None


def _candidate_outputs(call: Callable[[_Example], Any], example: _Example, names: tuple[str, ...]) -> Outputs:
    raw = call(example)
    values = (raw,) if len(names) == 1 else tuple(raw)
    if len(values) != len(names):
        raise TypeError(f"the candidate returned {len(values)} values, expected {len(names)} ({', '.join(names)})")
    return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


def _try_example(model: _Model, call: Callable[[_Example], Any], example: _Example, names: tuple[str, ...]) -> None:
    try:
        expected = model.reference(example)
    except SpecError as refusal:
        try:
            call(example)
        except Exception:
            return
        raise _ExampleFailure(
            example, None, f"returned a result where the reference raises SpecError({refusal.condition!r})"
        ) from None
    try:
        observed = _candidate_outputs(call, example, names)
    except Exception as error:
        raise _ExampleFailure(example, None, f"raised {type(error).__name__}: {error}") from None
    problem = _compare(expected, observed)
    if problem is not None:
        raise _ExampleFailure(example, observed, problem)


def _run_model(
    model: _Model,
    names: tuple[str, ...],
    examples: st.SearchStrategy[_Example],
    call: Callable[[_Example], Any],
    battery: list[_Example],
    options: settings | None,
) -> None:
    chosen = default_settings() if options is None else options
    if not isinstance(chosen, settings):
        raise SpecError("invalid_option", f"settings must be a hypothesis.settings or None, got {options!r}")
    for number, example in enumerate(battery, 1):
        try:
            _try_example(model, call, example, names)
        except _ExampleFailure as failure:
            found = f"the fixed battery (case {number} of {len(battery)})"
            raise _model_report(model, names, failure, call, battery, found) from None

    def search(example: _Example) -> None:
        _try_example(model, call, example, names)

    runner = settings(chosen, report_multiple_bugs=False)(given(examples)(search))
    try:
        runner()
    except _ExampleFailure as failure:
        raise _model_report(model, names, failure, call, battery, "Hypothesis's search") from None


def _first_mismatch(expected: Outputs, observed: Outputs) -> tuple[str, tuple[int, ...]] | None:
    for name, want in expected.items():
        got = observed.get(name)
        if got is None or got.shape != want.shape:
            continue
        differ = ~_same(want, got)
        if np.any(differ):
            return name, tuple(int(i) for i in np.argwhere(differ.reshape(want.shape) if want.ndim else differ)[0])
    return None


def _shrink(
    model: _Model, names: tuple[str, ...], failure: _ExampleFailure, call: Callable[[_Example], Any]
) -> tuple[_Example, Outputs | None]:
    """The model's cut of the example to its first mismatching element, when the candidate still fails on it."""
    if failure.observed is None:
        return failure.example, None
    first = _first_mismatch(model.reference(failure.example), failure.observed)
    small = None if first is None else model.cut(failure.example, *first)
    if small is not None:
        try:
            observed = _candidate_outputs(call, small, names)
            if _compare(model.reference(small), observed) is not None:
                return small, observed
        except Exception:  # the cut does not suit the candidate: keep the whole example
            pass
    return failure.example, failure.observed


def _show_value(value: Any) -> str:
    if isinstance(value, (np.ndarray, np.generic)):
        return show_array(np.asarray(value))
    if isinstance(value, IntFormat):
        return value.name
    if isinstance(value, Enum):
        return value.name
    return repr(value)


def _model_report(
    model: _Model,
    names: tuple[str, ...],
    failure: _ExampleFailure,
    call: Callable[[_Example], Any],
    battery: list[_Example],
    found_by: str,
) -> CheckFailure:
    example, observed = _shrink(model, names, failure, call)
    tried: list[tuple[_Example, Outputs]] = []
    if observed is not None:
        tried.append((example, observed))
    for other in battery:
        try:
            model.reference(other)
            tried.append((other, _candidate_outputs(call, other, names)))
        except Exception:  # the reference refuses it, or the candidate does not run on it: nothing to learn
            continue
    scored: list[tuple[int, _Alternative]] = []
    for alt in model.alternatives if observed is not None else ():
        agree = 0
        for ex, obs in tried:
            try:
                out = alt.run(ex)
                target = model.reference(ex) if out is None else out
            except (SpecError, UnpredictableError, ValueError, OverflowError):
                continue
            if _compare(target, obs) is None:
                agree += 1
        if agree and observed is not None and _reproduces(model, alt, example, observed):
            scored.append((agree, alt))
    best = max((n for n, _ in scored), default=0)
    causes = tuple(Cause(a.name, a.description, n == len(tried)) for n, a in scored if n == best)
    lines = [f"{model.name}: the candidate {failure.problem}", f"found by {found_by}"]
    lines.append("minimal reproducing record:" if observed is not None else "counterexample:")
    lines.append(
        " ".join([f"{model.name}:", ", ".join(f"{k} {_show_value(v)}" for k, v in example.options.items())]).rstrip()
    )
    lines += [f"  {k} = {_show_value(v)}" for k, v in example.inputs.items()]
    try:
        expected = model.reference(example)
        lines += [f"  expected {k} = {show_array(v)}" for k, v in expected.items()]
    except SpecError as refusal:
        lines.append(f"  expected: SpecError({refusal.condition!r})")
    if observed is not None:
        lines += [f"  observed {k} = {show_array(v)}" for k, v in observed.items()]
    if causes and causes[0].exact:
        lines.append(f"likely cause (reproduces the candidate exactly on all {len(tried)} records tried):")
    elif causes:
        lines.append(f"closest causes (reproduce the candidate on some of the {len(tried)} records tried, not all):")
    else:
        lines.append("no single alternative semantics reproduces the candidate")
    lines += [f"  {c.name}: {c.description}" for c in causes]
    return CheckFailure(
        "\n".join(lines),
        problem=failure.problem,
        record=None,
        causes=causes,
        probes=len(tried),
        found_by="battery" if found_by.startswith("the fixed battery") else "hypothesis",
        example={
            "inputs": dict(example.inputs),
            "options": dict(example.options),
            "observed": dict(observed or {}),
        },
    )


def _reproduces(model: _Model, alt: _Alternative, example: _Example, observed: Outputs) -> bool:
    try:
        out = alt.run(example)
    except (SpecError, UnpredictableError, ValueError, OverflowError):
        return False
    return out is not None and _compare(out, observed) is None


def _elementwise_cut(key: str) -> Callable[[_Example, str, tuple[int, ...]], _Example | None]:
    """Cut an elementwise op's input ``key`` to the one mismatching element (a 1-element 1-D array)."""

    def cut(example: _Example, output: str, index: tuple[int, ...]) -> _Example | None:
        x = np.asarray(example.inputs[key])
        if x.ndim == 0:
            return None
        return _Example({**example.inputs, key: x[index].reshape(1)}, example.options)

    return cut


# --- qparams --------------------------------------------------------------------------------------------------------


def _qparams_reference(example: _Example, **changes: Any) -> Outputs:
    o = {**example.options, **changes}
    fmt = o.pop("fmt")
    p = choose_qparams_from_range(example.inputs["min_val"], example.inputs["max_val"], fmt, **o)
    return {"scale": np.asarray(p.scale), "zero_point": np.asarray(p.zero_point)}


def _qparams_alternatives(symmetric: bool) -> tuple[_Alternative, ...]:
    out = [
        _Alternative(
            f"zero_point_rounding={mode.value}",
            f"the zero point qmin - min_val / scale rounded {mode.name} instead of HALF_TO_EVEN",
            partial(_qparams_reference, zero_point_rounding=mode),
        )
        for mode in RoundingMode
        if mode not in (RoundingMode.HALF_TO_EVEN, RoundingMode.STOCHASTIC) and not symmetric
    ]
    out.append(
        _Alternative(
            "precision=float64",
            "the scale and zero point computed in float64, not float32",
            partial(_qparams_reference, precision=Precision.FLOAT64),
        )
    )
    if symmetric:
        out.append(
            _Alternative(
                "symmetric_denominator=qmax",
                "max|x| / (qmax - zero_point) instead of max|x| / ((qmax - qmin) / 2)",
                partial(_qparams_reference, symmetric_denominator=SymmetricDenominator.QMAX),
            )
        )
    out += [
        _Alternative(
            f"zero_range={z.value}",
            f"a degenerate range handled as {z.name} instead of SCALE_ONE",
            partial(_qparams_reference, zero_range=z),
        )
        for z in ZeroRange
        if z is not ZeroRange.SCALE_ONE
    ]
    return tuple(out)


def _qparams_battery(fmt: IntFormat, symmetric: bool) -> list[_Example]:
    smallest = float(np.finfo(F32).smallest_subnormal)
    tiny = float(np.finfo(F32).tiny)
    ranges = [
        (0.0, 0.0),
        (-1.0, 1.0),
        (1.0, 1.0),
        (-1.0, -1.0),
        (0.5, 2.0),
        (-3.0, -0.5),
        (-1.0, 0.5),
        (-smallest, smallest),
        (-tiny, tiny),
        (-(2.0**20), 3.0),
    ]
    span = fmt.qmax - fmt.qmin
    for s in (1.0, 0.5, 0.25, 2.0, 0.375):
        for k in sorted({0, 1, 2, 3, span // 2, max(0, span - 2)}):
            lo = -(k + 0.5) * s  # the zero point's quotient -min_val / s is the tie k + 1/2
            ranges.append((lo, lo + span * s))
    return [
        _Example({"min_val": F32(lo), "max_val": F32(hi)}, {"fmt": fmt, "symmetric": symmetric})
        for lo, hi in ranges
        if lo <= hi
    ]


def check_choose_qparams(
    candidate: Callable[[npt.NDArray[np.float32], npt.NDArray[np.float32], IntFormat], Any],
    /,
    *,
    fmt: IntFormat = INT8,
    symmetric: bool = False,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(min_val, max_val, fmt) -> (scale, zero_point)`` against ``choose_qparams_from_range``.

    ``min_val`` and ``max_val`` are float32 scalars (``strategies.value_ranges``: degenerate, one-sided,
    subnormal ranges and ranges whose zero point is a tie); the scale is compared as a bit pattern (a float32
    value returned as float64 agrees), the zero point exactly.  Causes named: ``zero_point_rounding=R``,
    ``precision=float64``, ``symmetric_denominator=qmax`` (symmetric), ``zero_range=Z``.
    """
    _check_candidate(candidate)
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    if not isinstance(symmetric, bool):
        raise SpecError("invalid_option", f"symmetric must be a bool, got {symmetric!r}")
    options = {"fmt": fmt, "symmetric": symmetric}
    model = _Model("check_choose_qparams", _qparams_reference, _qparams_alternatives(symmetric))
    examples = rs.value_ranges(fmt=fmt).map(lambda r: _Example({"min_val": F32(r[0]), "max_val": F32(r[1])}, options))

    def call(example: _Example) -> Any:
        return candidate(example.inputs["min_val"], example.inputs["max_val"], fmt)

    _run_model(model, ("scale", "zero_point"), examples, call, _qparams_battery(fmt, symmetric), settings)


# --- packing --------------------------------------------------------------------------------------------------------


def _per_byte(fmt: IntFormat) -> int | None:
    return 8 // fmt.bits if 8 % fmt.bits == 0 else None


def _pack_high_first(example: _Example) -> Outputs | None:
    fmt: IntFormat = example.options["fmt"]
    per = _per_byte(fmt)
    q = np.asarray(example.inputs["q"]).reshape(-1)
    if per is None or per == 1:
        return None
    padded = np.zeros(-(-q.size // per) * per, dtype=np.int64)
    padded[: q.size] = q
    return {"packed": pack(padded.reshape(-1, per)[:, ::-1].reshape(-1), fmt)}


def _pack_sign_unmasked(example: _Example) -> Outputs | None:
    fmt: IntFormat = example.options["fmt"]
    per = _per_byte(fmt)
    q = np.asarray(example.inputs["q"]).reshape(-1).astype(np.int64)
    if per is None or per == 1 or not fmt.signed:
        return None
    out = np.zeros(-(-q.size // per), dtype=np.int64)
    for i, v in enumerate(q.tolist()):
        out[i // per] |= (v << (fmt.bits * (i % per))) & 0xFF  # the sign bits of a negative code are not masked
    return {"packed": out.astype(np.uint8)}


def _pack_cut(example: _Example, output: str, index: tuple[int, ...]) -> _Example | None:
    per = _per_byte(example.options["fmt"])
    if per is None:
        return None
    q = np.asarray(example.inputs["q"]).reshape(-1)
    (byte,) = index
    return _Example({"q": q[byte * per : (byte + 1) * per]}, example.options)


def _pack_battery(fmt: IntFormat) -> list[_Example]:
    edges = [v for v in (fmt.qmin, fmt.qmax, 0, -1, 1, fmt.qmin + 1, fmt.qmax - 1) if fmt.qmin <= v <= fmt.qmax]
    out = []
    for n in (1, 2, 3, 7, 8, 9, 17):
        q = np.array([edges[i % len(edges)] for i in range(n)], dtype=np.int64).astype(fmt.storage_dtype)
        out.append(_Example({"q": q}, {"fmt": fmt}))
        out.append(_Example({"q": q[::-1].copy()}, {"fmt": fmt}))
    return out


def check_pack(
    candidate: Callable[[Array, IntFormat], Any], /, *, fmt: IntFormat = INT4, settings: settings | None = None
) -> None:
    """Check ``candidate(q, fmt) -> packed`` (uint8, 1-D) against ``refquant.pack``: the codes in C order as a bit
    stream, first element in the low bits, negative codes in two's complement masked to ``fmt.bits``.

    Codes from ``strategies.packable_codes`` (odd lengths: a partial last byte).  Causes named:
    ``first_element_in_high_bits``, ``sign_bits_unmasked`` (formats whose width divides 8).
    """
    _check_candidate(candidate)
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    model = _Model(
        "check_pack",
        lambda e: {"packed": pack(e.inputs["q"], e.options["fmt"])},
        (
            _Alternative(
                "first_element_in_high_bits", "the first element of each byte in its high bits", _pack_high_first
            ),
            _Alternative(
                "sign_bits_unmasked", "a negative code's sign bits ORed into its neighbours' bits", _pack_sign_unmasked
            ),
        ),
        _pack_cut,
    )
    examples = rs.packable_codes(fmt=fmt).map(lambda q: _Example({"q": q}, {"fmt": fmt}))

    def call(example: _Example) -> Any:
        return candidate(np.array(example.inputs["q"]), fmt)

    _run_model(model, ("packed",), examples, call, _pack_battery(fmt), settings)


def _unpack_high_first(example: _Example) -> Outputs | None:
    fmt: IntFormat = example.options["fmt"]
    per = _per_byte(fmt)
    if per is None or per == 1:
        return None
    packed, count = example.inputs["packed"], example.inputs["count"]
    every = unpack(packed, fmt, packed.size * per).reshape(-1, per)[:, ::-1].reshape(-1)
    return {"q": every[:count]}


def _unpack_zero_extended(example: _Example) -> Outputs | None:
    fmt: IntFormat = example.options["fmt"]
    if not fmt.signed:
        return None
    raw = unpack(example.inputs["packed"], IntFormat(fmt.bits, False), example.inputs["count"])
    return {"q": raw.astype(np.int64).astype(fmt.storage_dtype)}


def _unpack_cut(example: _Example, output: str, index: tuple[int, ...]) -> _Example | None:
    fmt: IntFormat = example.options["fmt"]
    per = _per_byte(fmt)
    if per is None:
        return None
    (element,) = index
    byte = element // per
    count = min(per, int(example.inputs["count"]) - byte * per)
    return _Example({"packed": example.inputs["packed"][byte : byte + 1], "count": count}, example.options)


def _unpack_battery(fmt: IntFormat) -> list[_Example]:
    patterns = [0x00, 0xFF, 0x0F, 0xF0, 0x80, 0x7F, 0x88, 0x01, 0x10, 0xA5]
    out = []
    for count in (1, 2, 3, 7, 8, 9, 17):
        size = -(-count * fmt.bits // 8)
        packed = np.array([patterns[i % len(patterns)] for i in range(size)], dtype=np.uint8)
        for p in (packed, packed[::-1]):
            out.append(_Example({"packed": rs.clear_padding(p, fmt, count), "count": count}, {"fmt": fmt}))
    return out


def check_unpack(
    candidate: Callable[[Array, IntFormat, int], Any],
    /,
    *,
    fmt: IntFormat = INT4,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(packed, fmt, count) -> q`` (1-D codes) against ``refquant.unpack``: first element in the
    low bits, signed codes sign-extended.

    ``(packed, count)`` from ``strategies.packed_bytes`` (arbitrary bytes; the last byte's padding bits clear, as
    ``unpack`` requires).  Causes named:
    ``first_element_in_high_bits``, ``not_sign_extended``.
    """
    _check_candidate(candidate)
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    model = _Model(
        "check_unpack",
        lambda e: {"q": unpack(e.inputs["packed"], e.options["fmt"], e.inputs["count"])},
        (
            _Alternative(
                "first_element_in_high_bits",
                "the first element of each byte read from its high bits",
                _unpack_high_first,
            ),
            _Alternative("not_sign_extended", "signed codes read as unsigned (zero-extended)", _unpack_zero_extended),
        ),
        _unpack_cut,
    )
    examples = rs.packed_bytes(fmt=fmt).map(lambda pc: _Example({"packed": pc[0], "count": pc[1]}, {"fmt": fmt}))

    def call(example: _Example) -> Any:
        return candidate(np.array(example.inputs["packed"]), fmt, int(example.inputs["count"]))

    _run_model(model, ("q",), examples, call, _unpack_battery(fmt), settings)


# --- log ------------------------------------------------------------------------------------------------------------


def _log_reference(example: _Example, **changes: Any) -> Outputs:
    fmt: LogFormat = example.options["fmt"]
    rounding = changes.pop("rounding", example.options["rounding"])
    if changes:
        fields = {"signed": fmt.signed, "underflow": fmt.underflow, "top": fmt.top, **changes}
        fmt = LogFormat(fmt.bits, fmt.fsr, **fields)
    return {"codes": log_quantize(example.inputs["x"], fmt, rounding=rounding)}


def _log_alternatives(fmt: LogFormat, rounding: LogRounding) -> tuple[_Alternative, ...]:
    out = [
        _Alternative(
            f"rounding={r.value}",
            f"LogRounding.{r.name} instead of {rounding.name}",
            partial(_log_reference, rounding=r),
        )
        for r in LogRounding
        if r is not rounding
    ]
    out += [
        _Alternative(
            f"underflow={u.value}",
            f"LogUnderflow.{u.name} instead of {fmt.underflow.name}",
            partial(_log_reference, underflow=u),
        )
        for u in LogUnderflow
        if u is not fmt.underflow
    ]
    out += [
        _Alternative(f"top={t.value}", f"LogTop.{t.name} instead of {fmt.top.name}", partial(_log_reference, top=t))
        for t in LogTop
        if t is not fmt.top
    ]
    return tuple(out)


def check_log_quantize(
    candidate: Callable[[npt.NDArray[np.float32], LogFormat], Any],
    /,
    *,
    fmt: LogFormat | None = None,
    rounding: LogRounding = LogRounding.LOG_DOMAIN,
    allow_infinity: bool = True,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(x, fmt) -> codes`` against ``refquant.log_quantize`` with ``rounding`` (``fmt`` default
    ``LogFormat(4, 0)``).

    Inputs from ``strategies.log_edge_values``: powers of two, the float32 nearest the log-domain threshold
    ``sqrt(2) * 2**k`` and the linear tie ``1.5 * 2**k``, one ulp either side, both signs, zeros and infinities.
    Causes named: ``rounding=R`` (another ``LogRounding``), ``underflow=U``, ``top=T``.
    """
    _check_candidate(candidate)
    f = LogFormat(4, 0) if fmt is None else fmt
    if not isinstance(f, LogFormat):
        raise SpecError("invalid_format", f"fmt must be a LogFormat, got {fmt!r}")
    if not isinstance(rounding, LogRounding):
        raise SpecError("invalid_option", f"rounding must be a LogRounding, got {rounding!r}")
    options = {"fmt": f, "rounding": rounding}
    model = _Model("check_log_quantize", _log_reference, _log_alternatives(f, rounding), _elementwise_cut("x"))
    examples = (
        st.integers(1, 6)
        .flatmap(lambda n: rs.log_edge_values(f, shape=(n,), allow_infinity=allow_infinity))
        .map(lambda x: _Example({"x": x}, options))
    )
    edges = np.array(rs._log_edges(f, allow_infinity), dtype=np.float32)
    battery = [_Example({"x": edges[edges >= 0]}, options), _Example({"x": edges[~(edges >= 0)]}, options)]

    def call(example: _Example) -> Any:
        return candidate(np.array(example.inputs["x"]), f)

    _run_model(model, ("codes",), examples, call, battery, settings)


# --- binary ---------------------------------------------------------------------------------------------------------


def _binarize_signbit(example: _Example) -> Outputs:
    x = np.asarray(example.inputs["x"])
    return {"b": np.where(np.signbit(x), -1, 1).astype(np.int8)}


def check_binarize(
    candidate: Callable[[npt.NDArray[np.float32]], Any],
    /,
    *,
    sign_zero: SignZero = SignZero.POSITIVE,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(x) -> b`` (int8 +-1, and 0 under ``SignZero.ZERO``) against ``refquant.binarize``.

    Inputs from ``strategies.sign_edge_values`` (``+0.0``, ``-0.0``, subnormals, infinities).  Causes named:
    ``sign_zero=S`` (another policy for zeros, such as ``np.sign``'s 0), ``negative_zero_negative`` (the sign
    bit read: ``-0.0`` gives -1, ``+0.0`` gives +1).
    """
    _check_candidate(candidate)
    if not isinstance(sign_zero, SignZero):
        raise SpecError("invalid_option", f"sign_zero must be a SignZero, got {sign_zero!r}")

    def ref(example: _Example, policy: SignZero = sign_zero) -> Outputs:
        return {"b": binarize(example.inputs["x"], sign_zero=policy)}

    alternatives = [
        _Alternative(
            f"sign_zero={s.value}",
            f"a zero binarized as SignZero.{s.name} instead of {sign_zero.name}",
            partial(ref, policy=s),
        )
        for s in SignZero
        if s is not sign_zero
    ]
    alternatives.append(
        _Alternative("negative_zero_negative", "the sign bit read: -0.0 gives -1 and +0.0 gives +1", _binarize_signbit)
    )
    model = _Model("check_binarize", ref, tuple(alternatives), _elementwise_cut("x"))
    examples = (
        st.integers(1, 6)
        .flatmap(lambda n: rs.sign_edge_values(shape=(n,)))
        .map(lambda x: _Example({"x": x}, {"sign_zero": sign_zero}))
    )
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, np.inf, -np.inf, 1e-38, -1e-38], dtype=np.float32)
    battery = [_Example({"x": special}, {"sign_zero": sign_zero})]

    def call(example: _Example) -> Any:
        return candidate(np.array(example.inputs["x"]))

    _run_model(model, ("b",), examples, call, battery, settings)


def _xnor_alternative(length_k: bool) -> Callable[[_Example], Outputs | None]:
    def run(example: _Example) -> Outputs | None:
        lhs, rhs, k = example.inputs["lhs_bits"], example.inputs["rhs_bits"], example.inputs["k"]
        if k % 64 == 0:
            return None
        return {"dot": xnor_unmasked(lhs, rhs, k, length=k if length_k else None)}

    return run


def _xnor_cut(example: _Example, output: str, index: tuple[int, ...]) -> _Example | None:
    i, j = index
    lhs, rhs = example.inputs["lhs_bits"], example.inputs["rhs_bits"]
    return _Example({"lhs_bits": lhs[i : i + 1], "rhs_bits": rhs[j : j + 1], "k": example.inputs["k"]}, {})


def _xnor_battery() -> list[_Example]:
    out = []
    for k in (1, 3, 63, 64, 65, 100, 130):
        words = -(-k // 64)
        full = np.uint64(2**64 - 1)
        valid = np.uint64((1 << (k % 64)) - 1) if k % 64 else full
        rows = np.zeros((3, words), np.uint64)
        rows[1, :] = full
        rows[1, -1] = valid  # all +1, padding clear
        rows[2, :] = np.uint64(0x5555555555555555)
        garbage = rows.copy()
        garbage[:, -1] |= ~valid  # the same rows with every padding bit set
        out.append(_Example({"lhs_bits": rows, "rhs_bits": rows.copy(), "k": k}, {}))
        out.append(_Example({"lhs_bits": garbage, "rhs_bits": rows.copy(), "k": k}, {}))
    return out


def check_xnor_matmul(
    candidate: Callable[[npt.NDArray[np.uint64], npt.NDArray[np.uint64], int], Any],
    /,
    *,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(lhs_bits, rhs_bits, k) -> dot`` (int ``(M, N)``) against ``refquant.xnor_matmul``: the
    padding bits of the last word (``k`` not a multiple of 64) are masked out, whatever they hold.

    Operands from ``strategies.packed_sign_matrices`` (set padding bits included).  Causes named:
    ``unmasked_padding`` and ``unmasked_padding_xor`` (``refquant.conformance.causes.xnor_unmasked``).
    """
    _check_candidate(candidate)
    model = _Model(
        "check_xnor_matmul",
        lambda e: {"dot": xnor_matmul(e.inputs["lhs_bits"], e.inputs["rhs_bits"], e.inputs["k"])},
        (
            _Alternative(
                "unmasked_padding",
                "the padding bits of the last word not masked: counted as +-1 elements (64 * words - 2 * popcount)",
                _xnor_alternative(False),
            ),
            _Alternative(
                "unmasked_padding_xor",
                "the padding bits' XOR not masked: k - 2 * popcount over whole words",
                _xnor_alternative(True),
            ),
        ),
        _xnor_cut,
    )
    examples = rs.packed_sign_matrices().map(lambda t: _Example({"lhs_bits": t[0], "rhs_bits": t[1], "k": t[2]}, {}))

    def call(example: _Example) -> Any:
        i = example.inputs
        return candidate(np.array(i["lhs_bits"]), np.array(i["rhs_bits"]), int(i["k"]))

    _run_model(model, ("dot",), examples, call, _xnor_battery(), settings)


# --- ternary --------------------------------------------------------------------------------------------------------


def _ternary_codes(example: _Example, *, inclusive: bool = False, half_away: bool = False) -> Outputs:
    o = example.options
    method: rs.TernaryMethod = o["method"]
    w = np.asarray(example.inputs["w"])
    if method is rs.TernaryMethod.BITNET:
        codes, scale = bitnet_ternarize(w, eps=o["eps"])
        if half_away:
            v = w.astype(np.float32) / scale
            codes = np.clip(np.trunc(v + np.copysign(np.float32(0.5), v)), -1, 1).astype(np.int8)
        return {"codes": codes}
    if method is rs.TernaryMethod.TWN:
        codes = twn_ternarize(w, factor=o["factor"]).codes
    else:
        codes = ttq_ternarize(w, t=o["t"], wp=1.0, wn=1.0).codes
    if inclusive:
        delta = np.float64(rs.ternary_threshold(w, method, factor=o["factor"], t=o["t"], eps=o["eps"]))
        wa = w.astype(np.float64)
        codes = np.where(wa >= delta, 1, np.where(wa <= -delta, -1, 0)).astype(np.int8)
    return {"codes": codes}


def check_ternarize(
    candidate: Callable[[npt.NDArray[np.float32]], Any],
    /,
    *,
    method: rs.TernaryMethod = rs.TernaryMethod.TWN,
    factor: float = 0.7,
    t: float = 0.05,
    eps: float = 1e-5,
    settings: settings | None = None,
) -> None:
    """Check ``candidate(w) -> codes`` (int {-1, 0, 1}, ``w``'s shape, per tensor) against ``method``'s codes:
    ``twn_ternarize(w, factor=factor)``, ``ttq_ternarize(w, t=t, ...)`` or ``bitnet_ternarize(w, eps=eps)``.

    Weights from ``strategies.ternary_weights``, with two elements exactly on the threshold (``|w| = delta``,
    which the strict ``>`` sends to 0; ``w / scale = 1/2``, which half to even sends to 0).  Only the codes are
    compared (the scales are each method's own).  Causes named: ``threshold_inclusive`` (``>=`` where the
    method says ``>``; TWN, TTQ), ``rounding=half_away_from_zero`` (BitNet).
    """
    _check_candidate(candidate)
    if not isinstance(method, rs.TernaryMethod):
        raise SpecError("invalid_option", f"method must be a TernaryMethod, got {method!r}")
    for name, value, low in (("factor", factor, 0.0), ("t", t, 0.0), ("eps", eps, None)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        if not ok or (low is not None and value < low) or (low is None and not value > 0):
            raise SpecError(
                "invalid_option", f"{name} must be a finite number {'> 0' if low is None else '>= 0'}, got {value!r}"
            )
    options = {"method": method, "factor": factor, "t": t, "eps": eps}
    if method is rs.TernaryMethod.BITNET:
        alternatives = (
            _Alternative(
                "rounding=half_away_from_zero",
                "w / scale rounded half away from zero instead of half to even",
                partial(_ternary_codes, half_away=True),
            ),
        )
    else:
        alternatives = (
            _Alternative(
                "threshold_inclusive",
                "|w| >= delta kept instead of the strict |w| > delta",
                partial(_ternary_codes, inclusive=True),
            ),
        )
    model = _Model("check_ternarize", _ternary_codes, alternatives)
    opts = {"factor": factor, "t": t, "eps": eps}
    examples = (
        st.integers(3, 12)
        .flatmap(lambda n: rs.ternary_weights(method=method, shape=(n,), **opts))
        .map(lambda w: _Example({"w": w}, options))
    )
    battery = []
    for base in ([1.0, 0.5, -0.25, 2.0, -1.5, 0.0, 0.0], [0.1, -0.2, 0.3, 0.0, 0.0], [4.0, -4.0, 1.0, 0.0, 0.0, 0.0]):
        w = rs.plant_threshold_ties(np.array(base, dtype=np.float32), method, **opts)
        battery.append(_Example({"w": w}, options))

    def call(example: _Example) -> Any:
        return candidate(np.array(example.inputs["w"]))

    _run_model(model, ("codes",), examples, call, battery, settings)
