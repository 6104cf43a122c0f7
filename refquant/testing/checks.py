"""Property checks that a project calls from its own test suite: its quantizer against the refquant reference.

Each ``check_*`` function runs Hypothesis on the inputs where implementations differ (``refquant.testing.
strategies``), compares the candidate's output with the reference element by element (integers exactly,
float32 as bit patterns), and on the first difference raises ``CheckFailure`` (an ``AssertionError``) holding:

- the counterexample, shrunk by Hypothesis, cut down to its first mismatching element
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

Hypothesis runs with ``default_settings()`` (derandomized, no example database, quiet: the same input gives
the same counterexample on every run) unless ``settings=`` names others.  Examples on which the reference
refuses to guess (``UnpredictableError``: an int32 accumulation that overflows under ``Accumulator.INT32``, a
left shift that overflows under ``RequantRounding.DOUBLE``) are skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
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
)
from refquant.errors import SpecError, UnpredictableError
from refquant.spec.affine import DEFAULT_PROFILE, Profile, QuantParams
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.formats import INT8, IntFormat
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
from refquant.testing import strategies as rs

__all__ = [
    "CheckFailure",
    "check_dequantizer",
    "check_matmul",
    "check_quantizer",
    "check_requantizer",
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
    number of records the candidate was compared on while diagnosing.
    """

    def __init__(
        self, message: str, *, problem: str, record: MinimalRecord | None, causes: tuple[Cause, ...], probes: int
    ) -> None:
        super().__init__(message)
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
) -> None:
    def test(case: _Case) -> None:
        try:
            expected = reference(op, case.params, case.inputs, profile=profile)
        except UnpredictableError:
            reject()
        except SpecError as refusal:
            try:
                call(case)
            except Exception:
                return
            raise _Failure(
                case, None, f"returned a result where the reference raises SpecError({refusal.condition!r})"
            ) from None
        observed, problem = _observe(op, call, case, expected)
        if problem is not None:
            raise _Failure(case, observed, problem)

    chosen = default_settings() if options is None else options
    if not isinstance(chosen, settings):
        raise SpecError("invalid_option", f"settings must be a hypothesis.settings or None, got {options!r}")
    runner = settings(chosen, report_multiple_bugs=False)(given(cases)(test))
    try:
        runner()
    except _Failure as failure:
        raise _report(op, name, failure, call, probes, profile) from None


def _report(
    op: Operation,
    name: str,
    failure: _Failure,
    call: Call,
    probes: Callable[[_Case], list[_Case]],
    profile: Profile | None,
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
    lines = [f"{name}: the candidate {failure.problem}"]
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
        "\n".join(lines), problem=failure.problem, record=record, causes=tuple(causes), probes=len(records)
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

    _run(Operation.QUANTIZE, "check_quantizer", cases(), call, _quantize_probes, prof, settings)


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

    _run(Operation.DEQUANTIZE, "check_dequantizer", cases(), call, _dequantize_probes, None, settings)


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

    _run(Operation.REQUANTIZE, "check_requantizer", cases(), call, _requantize_probes, None, settings)


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

    _run(Operation.MATMUL_INT, "check_matmul", cases, call, lambda case: [], None, settings)
