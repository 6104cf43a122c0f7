"""Why do two sets of quantize options give different codes?  Single-option swaps, and the numbers behind them.

The quantize options of ``refquant.spec.affine`` (rounding, scale application, zero-point order,
overflow, NaN policy, precision) are where the stacks differ.  When two profiles A and B give
different codes for the same input and parameters, this module answers *which option is
responsible*, element by element:

1. evaluate A and B on the whole input;
2. for every option on which B differs from A, evaluate A with exactly that one option changed to
   B's value (a *single swap*); every swap that alone gives B's code at an element is named as a
   cause of that element's disagreement;
3. an element that no single swap explains (the options interact) is explained by the smallest sets
   of swaps that together give B's code.

It also reports, for each disagreeing element, the numbers that make the cause visible
(``Intermediates``): the exact quotient ``x / s``, the float32 results of ``x / s`` and of
``x * float32(1 / s)``, whether the exact quotient is a tie (fraction exactly 1/2) or a near-tie
(within ``NEAR_TIE_ULPS`` float32 ulps of one), and the zero point.

The same mechanism explains a mismatch between the reference and codes observed elsewhere (a
device, another library): ``explain_codes`` takes the observed codes and the alternative option
values to try.  Results are frozen dataclasses; turning them into text is the caller's business
(the ``refquant diff`` command does it in ``refquant.cli``).

Elements that a profile refuses (a NaN under ``NanPolicy.RAISE``) are not errors here: their
outcome is ``Refused("nan_input")``, so that a NaN-policy difference can be explained like any
other.  Errors that concern the whole call (a bad dtype, parameters that do not fit the input)
raise ``SpecError`` as ``quantize`` does.

Worked by hand from the definition (``refquant.spec.affine``), s = 1, z = 1, uint8, x = 0.5:
ONNX rounds ``0.5`` half to even to 0 and adds z: code 1; FBGEMM_LEGACY rounds ``0.5 + 1`` to 2.
Only the zero-point order differs in effect (``x * float32(1/1)`` is ``x / 1``), so the
explanation names ``zero_point_order``:

>>> import numpy as np
>>> from refquant import UINT8, QuantParams, profiles
>>> from refquant.explain import explain_profiles
>>> e = explain_profiles(np.array([0.5, 1.5, 2.5], np.float32), QuantParams(1.0, 1, UINT8),
...                      a=profiles.ONNX, b=profiles.FBGEMM_LEGACY)
>>> [(el.index, el.code_a, el.code_b) for el in e.elements]
[((0,), 1, 2), ((1,), 3, 2), ((2,), 3, 4)]
>>> [[swap.option.value for swap in cause] for cause in e.elements[0].causes]
[['zero_point_order']]
>>> e.elements[0].intermediates.tie
True
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, unique
from fractions import Fraction
from typing import Any, Final, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec.affine import NanPolicy, Precision, Profile, QuantParams, ScaleApplication, ZeroPointOrder, quantize
from refquant.spec.rounding import RoundingMode
from refquant.spec.saturation import Overflow

__all__ = [
    "NEAR_TIE_ULPS",
    "Code",
    "ElementExplanation",
    "Explanation",
    "Intermediates",
    "Option",
    "OptionValue",
    "Refused",
    "Swap",
    "SwapOutcome",
    "evaluate",
    "explain_codes",
    "explain_profiles",
    "intermediates",
]

NEAR_TIE_ULPS: Final = 4
"""An exact quotient within this many float32 ulps of a half-integer (and not on it) is a near-tie."""


@unique
class Option(Enum):
    """One quantize option; the value is the ``Profile`` field (and ``quantize`` keyword) it names."""

    ROUNDING = "rounding"
    SCALE_APPLICATION = "scale_application"
    ZERO_POINT_ORDER = "zero_point_order"
    OVERFLOW = "overflow"
    NAN_POLICY = "nan_policy"
    PRECISION = "precision"

    @property
    def kind(self) -> type[Enum]:
        """The enum whose members are this option's values."""
        return _KINDS[self]

    def of(self, profile: Profile) -> OptionValue:
        """This option's value in ``profile``."""
        value: OptionValue = getattr(profile, self.value)
        return value


OptionValue: TypeAlias = RoundingMode | ScaleApplication | ZeroPointOrder | Overflow | NanPolicy | Precision

_KINDS: Final[dict[Option, type[Enum]]] = {
    Option.ROUNDING: RoundingMode,
    Option.SCALE_APPLICATION: ScaleApplication,
    Option.ZERO_POINT_ORDER: ZeroPointOrder,
    Option.OVERFLOW: Overflow,
    Option.NAN_POLICY: NanPolicy,
    Option.PRECISION: Precision,
}


@dataclass(frozen=True)
class Refused:
    """No code: the options refuse this element (``condition`` is the ``SpecError`` id, e.g. ``"nan_input"``).

    ``"unsupported_option_combination"`` marks a swap whose options cannot be combined (a fused
    multiply-add without the reciprocal multiply); such a variant never reproduces anything.
    """

    condition: str


Code: TypeAlias = int | Refused
"""The outcome of quantizing one element: its integer code, or the reason there is none."""


@dataclass(frozen=True)
class Swap:
    """Option ``option`` set to ``value`` (everything else as in the reference profile)."""

    option: Option
    value: OptionValue


@dataclass(frozen=True)
class SwapOutcome:
    """What the reference profile gives at one element with ``swaps`` applied."""

    swaps: tuple[Swap, ...]
    code: Code


@dataclass(frozen=True)
class Intermediates:
    """The numbers behind one element's code.

    ``x`` is the element as given (as a Python float; exact for float16/32/64 input), ``scale``
    and ``zero_point`` the element's own parameters.  ``quotient`` is the exact rational ``x / s``
    (``None`` for NaN and infinities).  ``divided`` is ``float32(x) / s`` and ``multiplied`` is
    ``float32(x) * reciprocal`` with ``reciprocal = float32(1 / s)``, each one IEEE float32
    operation rounded half to even (the two ``ScaleApplication`` choices at ``Precision.FLOAT32``;
    the Python floats hold the float32 values exactly).  ``nearest_half`` is the half-integer
    ``k + 1/2`` nearest to the quotient and ``ulps_from_half`` the signed distance
    ``(quotient - nearest_half)`` in float32 ulps at ``nearest_half`` (``None`` when ``|nearest_half|``
    is 2**127 or more: quotients beyond float32, where a float64 input over a tiny scale can land).
    """

    x: float
    scale: float
    zero_point: int
    quotient: Fraction | None
    divided: float
    reciprocal: float
    multiplied: float
    nearest_half: Fraction | None
    ulps_from_half: float | None

    @property
    def tie(self) -> bool:
        """The exact quotient ``x / s`` has fraction exactly 1/2."""
        return self.quotient is not None and self.quotient == self.nearest_half

    @property
    def near_tie(self) -> bool:
        """Not a tie, but within ``NEAR_TIE_ULPS`` float32 ulps of one (and below 2**23, where float32 has halves)."""
        if self.tie or self.nearest_half is None or self.ulps_from_half is None:
            return False
        return abs(self.nearest_half) < 2**23 and abs(self.ulps_from_half) <= NEAR_TIE_ULPS

    @property
    def divided_is_half(self) -> bool:
        """The float32 result of ``x / s`` is a half-integer (what the rounding sees is a tie)."""
        return _is_half(self.divided)

    @property
    def multiplied_is_half(self) -> bool:
        """The float32 result of ``x * float32(1 / s)`` is a half-integer."""
        return _is_half(self.multiplied)


@dataclass(frozen=True)
class ElementExplanation:
    """One element where the codes disagree, and why.

    ``code_a`` is the reference profile's outcome, ``code_b`` the other one.  ``tried`` lists every
    single swap that was evaluated, with the code it gives here.  ``causes`` holds the smallest sets
    of swaps that reproduce ``code_b``: one-element tuples when single swaps suffice (every one that
    does is listed), larger tuples only when no single swap does; empty when nothing tried did.
    """

    index: tuple[int, ...]
    code_a: Code
    code_b: Code
    intermediates: Intermediates
    tried: tuple[SwapOutcome, ...]
    causes: tuple[tuple[Swap, ...], ...]

    @property
    def options(self) -> frozenset[Option]:
        """Every option named in some cause."""
        return frozenset(swap.option for cause in self.causes for swap in cause)


@dataclass(frozen=True)
class Explanation:
    """The elements (in C order) where ``codes_b`` differ from profile ``a``'s codes, each explained.

    ``b`` is the other profile (``None`` when the other codes were observed, not computed).
    ``alternatives`` are the option values that were tried, option by option.  ``count`` is the
    number of elements that disagree; ``elements`` explains all of them, or the first ``limit`` in C
    order when the call named a limit.
    """

    a: Profile
    b: Profile | None
    shape: tuple[int, ...]
    alternatives: tuple[tuple[Option, tuple[OptionValue, ...]], ...]
    elements: tuple[ElementExplanation, ...]
    count: int

    @property
    def size(self) -> int:
        """Number of elements compared."""
        return int(np.prod(self.shape, dtype=np.int64))


def _is_half(v: float) -> bool:
    return bool(np.isfinite(v)) and v - np.floor(v) == 0.5


def intermediates(x: float, scale: float, zero_point: int, /) -> Intermediates:
    """The ``Intermediates`` of one element with value ``x``, scale ``scale`` and zero point ``zero_point``.

    >>> from refquant.explain import intermediates
    >>> i = intermediates(0.273939937, 0.00214854861, 0)
    >>> i.divided, i.multiplied, i.near_tie
    (127.49999237060547, 127.5, True)
    """
    s32 = np.float32(scale)
    one = np.float32(1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x32 = np.float32(x)  # a float64 element beyond float32 becomes +-inf, as float32 quantization sees it
        divided = x32 / s32
        reciprocal = one / s32
        multiplied = x32 * reciprocal
    quotient: Fraction | None = None
    nearest: Fraction | None = None
    ulps: float | None = None
    xf = float(x)
    if np.isfinite(xf) and np.isfinite(s32) and s32 > 0:
        quotient = Fraction(xf) / Fraction(float(s32))
        nearest = Fraction(quotient.numerator // quotient.denominator) + Fraction(1, 2)
        if abs(nearest) < 2**127:  # beyond, float32 has no ulp at the half (and no halves at all past 2**23)
            ulp = float(np.spacing(np.float32(abs(float(nearest)))))
            ulps = float((quotient - nearest) / Fraction(ulp))
    return Intermediates(
        x=xf,
        scale=float(s32),
        zero_point=int(zero_point),
        quotient=quotient,
        divided=float(divided),
        reciprocal=float(reciprocal),
        multiplied=float(multiplied),
        nearest_half=nearest,
        ulps_from_half=ulps,
    )


def evaluate(
    x: npt.ArrayLike, params: QuantParams, /, *, profile: Profile, uniform: npt.ArrayLike | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Codes of ``x`` under ``profile`` as int64, and the mask of elements the profile refuses.

    A NaN under ``NanPolicy.RAISE`` does not raise here: the element is marked in the mask (its code
    slot holds 0) and every other element is quantized as usual.  Every other ``SpecError`` raises.
    ``uniform`` is passed on only when ``profile.rounding`` is STOCHASTIC.
    """
    xa = np.asarray(x)
    draws = uniform if profile.rounding is RoundingMode.STOCHASTIC else None
    refused = np.zeros(xa.shape, dtype=np.bool_)
    if profile.nan_policy is NanPolicy.RAISE and xa.dtype.kind == "f":
        refused = np.isnan(xa)
        if np.any(refused):
            xa = np.where(refused, xa.dtype.type(0), xa)
    codes = np.asarray(quantize(xa, params, profile=profile, uniform=draws)).astype(np.int64)
    return np.where(refused, np.int64(0), codes), refused


def _outcome(codes: npt.NDArray[np.int64], refused: npt.NDArray[np.bool_], index: tuple[int, ...]) -> Code:
    return Refused("nan_input") if bool(refused[index]) else int(codes[index])


_Variant: TypeAlias = tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]] | Refused


def _variant(
    x: npt.ArrayLike, params: QuantParams, a: Profile, swaps: tuple[Swap, ...], uniform: npt.ArrayLike | None
) -> _Variant:
    changes: dict[str, Any] = {swap.option.value: swap.value for swap in swaps}
    try:
        profile = dataclasses.replace(a, **changes)
    except SpecError as error:
        return Refused(error.condition)
    try:
        return evaluate(x, params, profile=profile, uniform=uniform)
    except SpecError as error:
        # A variant that cannot run on this input at all (e.g. STOCHASTIC without draws) explains nothing.
        return Refused(error.condition)


def _swap_sets(alternatives: Sequence[tuple[Option, tuple[OptionValue, ...]]], size: int) -> Iterator[tuple[Swap, ...]]:
    for chosen in itertools.combinations(alternatives, size):
        for values in itertools.product(*(vals for _, vals in chosen)):
            yield tuple(Swap(opt, val) for (opt, _), val in zip(chosen, values, strict=True))


def _normalise_alternatives(
    a: Profile, alternatives: Mapping[Option, Sequence[OptionValue]], uniform: npt.ArrayLike | None
) -> tuple[tuple[Option, tuple[OptionValue, ...]], ...]:
    for key in alternatives:
        if not isinstance(key, Option):
            raise SpecError("invalid_option", f"alternatives must be keyed by Option, got {key!r}")
    out: list[tuple[Option, tuple[OptionValue, ...]]] = []
    for option in Option:  # a fixed order, whatever the mapping's order
        if option not in alternatives:
            continue
        values: list[OptionValue] = []
        for value in alternatives[option]:
            if not isinstance(value, option.kind):
                raise SpecError(
                    "invalid_option",
                    f"alternatives[{option.name}] must hold {option.kind.__name__} values, got {value!r}",
                )
            if value is RoundingMode.STOCHASTIC and uniform is None:
                continue
            if value is not option.of(a) and value not in values:
                values.append(value)
        if values:
            out.append((option, tuple(values)))
    return tuple(out)


def _explain(
    x: npt.ArrayLike,
    params: QuantParams,
    a: Profile,
    b: Profile | None,
    codes_b: npt.NDArray[np.int64],
    refused_b: npt.NDArray[np.bool_],
    alternatives: tuple[tuple[Option, tuple[OptionValue, ...]], ...],
    max_swaps: int,
    uniform: npt.ArrayLike | None,
    limit: int | None,
) -> Explanation:
    xa = np.asarray(x)
    codes_a, refused_a = evaluate(xa, params, profile=a, uniform=uniform)
    mismatch = (refused_a != refused_b) | (~refused_a & ~refused_b & (codes_a != codes_b))
    count = int(np.count_nonzero(mismatch))
    flat = np.flatnonzero(mismatch.reshape(-1))[:limit]
    indices = [tuple(int(i) for i in np.unravel_index(int(f), xa.shape)) for f in flat]
    if not indices:
        return Explanation(a, b, xa.shape, alternatives, (), count)
    target = {idx: _outcome(codes_b, refused_b, idx) for idx in indices}

    singles: list[tuple[tuple[Swap, ...], _Variant]] = [
        (swaps, _variant(xa, params, a, swaps, uniform)) for swaps in _swap_sets(alternatives, 1)
    ]
    causes: dict[tuple[int, ...], list[tuple[Swap, ...]]] = {idx: [] for idx in indices}

    def outcome_at(variant: _Variant, idx: tuple[int, ...]) -> Code:
        return variant if isinstance(variant, Refused) else _outcome(variant[0], variant[1], idx)

    def collect(evaluated: list[tuple[tuple[Swap, ...], _Variant]], open_: list[tuple[int, ...]]) -> None:
        for swaps, variant in evaluated:
            for idx in open_:
                if outcome_at(variant, idx) == target[idx]:
                    causes[idx].append(swaps)

    collect(singles, indices)
    unexplained = [idx for idx in indices if not causes[idx]]
    for size in range(2, min(max_swaps, len(alternatives)) + 1):
        if not unexplained:
            break
        evaluated = [(swaps, _variant(xa, params, a, swaps, uniform)) for swaps in _swap_sets(alternatives, size)]
        collect(evaluated, unexplained)
        unexplained = [idx for idx in unexplained if not causes[idx]]

    scale, zero_point = params.expand(xa.shape)
    elements = tuple(
        ElementExplanation(
            index=idx,
            code_a=_outcome(codes_a, refused_a, idx),
            code_b=target[idx],
            intermediates=intermediates(_scalar(xa[idx]), float(scale[idx]), int(zero_point[idx])),
            tried=tuple(SwapOutcome(swaps, outcome_at(variant, idx)) for swaps, variant in singles),
            causes=tuple(causes[idx]),
        )
        for idx in indices
    )
    return Explanation(a, b, xa.shape, alternatives, elements, count)


def _scalar(value: Any) -> float:
    return float(value)


def _limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise SpecError("invalid_option", f"limit must be None or an int >= 0, got {limit!r}")
    return limit


def explain_profiles(
    x: npt.ArrayLike,
    params: QuantParams,
    /,
    *,
    a: Profile,
    b: Profile,
    uniform: npt.ArrayLike | None = None,
    limit: int | None = None,
) -> Explanation:
    """Where profiles ``a`` and ``b`` give different codes for ``x`` and ``params``, and which options cause it.

    Both profiles are first resolved for ``params`` (``Profile.resolve``: a profile whose options
    depend on the granularity or format becomes the flat profile that applies), and ``Explanation.a``
    and ``.b`` are those flat profiles.  The swaps tried are the options on which ``b`` differs from
    ``a``, each set to ``b``'s value;
    when no single swap explains an element, larger sets are tried up to all of them (which is ``b``
    itself, so every element gets a cause).  ``uniform`` is used by STOCHASTIC rounding only.
    ``limit`` (an int >= 0) explains only the first ``limit`` disagreeing elements in C order;
    ``Explanation.count`` still counts all of them.
    """
    if not isinstance(a, Profile) or not isinstance(b, Profile):
        raise SpecError("invalid_option", f"a and b must be Profiles, got {a!r} and {b!r}")
    if not isinstance(params, QuantParams):
        raise SpecError("invalid_option", f"params must be QuantParams, got {params!r}")
    a = a.resolve(granularity=params.granularity, fmt=params.fmt)
    b = b.resolve(granularity=params.granularity, fmt=params.fmt)
    alternatives = {option: (option.of(b),) for option in Option if option.of(a) is not option.of(b)}
    normalised = _normalise_alternatives(a, alternatives, uniform)
    codes_b, refused_b = evaluate(x, params, profile=b, uniform=uniform)
    return _explain(x, params, a, b, codes_b, refused_b, normalised, len(normalised), uniform, _limit(limit))


def explain_codes(
    x: npt.ArrayLike,
    params: QuantParams,
    codes: npt.ArrayLike,
    /,
    *,
    profile: Profile,
    alternatives: Mapping[Option, Sequence[OptionValue]] | None = None,
    max_swaps: int = 2,
    uniform: npt.ArrayLike | None = None,
    limit: int | None = None,
) -> Explanation:
    """Where observed ``codes`` differ from ``profile``'s codes for ``x``, and which option swaps reproduce them.

    ``profile`` is resolved for ``params`` first (``Profile.resolve``).
    ``alternatives`` maps each option to the values to try instead of ``profile``'s (default: every
    value of every option; STOCHASTIC only when ``uniform`` is given).  Sets of up to ``max_swaps``
    swaps are tried, smallest first, and only for the elements that smaller sets did not explain.
    ``limit`` as in ``explain_profiles``.

    Raises ``SpecError("shape_mismatch")`` when ``codes`` does not have ``x``'s shape and
    ``SpecError("unsupported_dtype")`` when it is not an integer array.
    """
    if not isinstance(profile, Profile):
        raise SpecError("invalid_option", f"profile must be a Profile, got {profile!r}")
    if not isinstance(params, QuantParams):
        raise SpecError("invalid_option", f"params must be QuantParams, got {params!r}")
    profile = profile.resolve(granularity=params.granularity, fmt=params.fmt)
    xa = np.asarray(x)
    observed = np.asarray(codes)
    if observed.dtype.kind not in "iu":
        raise SpecError("unsupported_dtype", f"codes must be an integer array, got dtype {observed.dtype}")
    if observed.shape != xa.shape:
        raise SpecError("shape_mismatch", f"codes of shape {observed.shape} do not match x of shape {xa.shape}")
    if isinstance(max_swaps, bool) or not isinstance(max_swaps, int) or max_swaps < 1:
        raise SpecError("invalid_option", f"max_swaps must be an int >= 1, got {max_swaps!r}")
    if alternatives is None:
        alternatives = {option: tuple(cast("list[OptionValue]", list(option.kind))) for option in Option}
    normalised = _normalise_alternatives(profile, alternatives, uniform)
    return _explain(
        xa,
        params,
        profile,
        None,
        observed.astype(np.int64),
        np.zeros(xa.shape, dtype=np.bool_),
        normalised,
        max_swaps,
        uniform,
        _limit(limit),
    )
