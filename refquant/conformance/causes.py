"""Why does an implementation's output differ from the reference?  Re-evaluate under alternative semantics.

``explain_mismatch(op, params, inputs, observed)`` evaluates the record under every alternative semantics
that some stack (or some classic bug) uses, and names each one that reproduces the ``observed`` output at
every element where ``observed`` differs from the reference.  The alternatives, per operation:

``Operation.QUANTIZE`` (``params``: ``QuantParams``; ``inputs``: ``(x,)``; keyword ``profile``)
    every single option swap of ``refquant.explain`` (the tie rule under every ``RoundingMode`` except
    STOCHASTIC, divide vs reciprocal multiply, zero point after / before rounding / fused multiply-add,
    float32 vs float64 precision, saturate vs wrap, the NaN policy), found with
    ``refquant.explain.explain_codes``; the pairs ``scale_application=reciprocal_multiply+zero_point_order=Z``
    (Z ``before_rounding`` or ``fused_multiply_add``: what FBGEMM and torch do, two options at once); and
    ``narrow_range`` (the signed format without its lowest code),
    ``axis=K`` (per-axis parameters applied along another axis ``K`` of equal length),
    ``scale_multiplied`` (``x * s`` instead of ``x / s``), ``zero_point_ignored`` and
    ``zero_point_subtracted`` (``round(x / s) - z``).
``Operation.DEQUANTIZE`` (``params``: ``QuantParams``; ``inputs``: ``(q,)``)
    ``zero_point_ignored`` (``q * s``), ``zero_point_added`` (``(q + z) * s``), ``scale_divided``
    (``(q - z) / s``), ``scale_applied_twice`` (``(q - z) * s * s``), ``extra_division_by_255`` (the
    reference result divided by 255 once more), ``axis=K``.  Float outputs are compared as bit patterns.
``Operation.REQUANTIZE`` (``params``: ``RequantizeParams``; ``inputs``: ``(acc,)``)
    ``rounding=R`` for every other ``RequantRounding`` (DOUBLE, SINGLE, FLOAT32, FLOAT64),
    ``overflow=wrap`` (the result reduced modulo ``2**bits`` instead of clamped), ``narrow_range``,
    ``zero_point_ignored``, ``axis=K``.
``Operation.MATMUL_INT`` (``params``: ``MatmulParams``; ``inputs``: ``(lhs, rhs)``)
    ``accumulator=A`` for every other ``Accumulator`` (INT32_WRAP, INT32_SATURATE, INT64; INT32 refuses an
    overflow), ``zero_points_ignored``, ``lhs_zero_point_ignored``, ``rhs_zero_point_ignored``.
``Operation.XNOR_MATMUL`` (``params``: ``XnorParams``; ``inputs``: ``(lhs_bits, rhs_bits)``)
    when ``k`` is not a multiple of 64: ``unmasked_padding`` (the padding bits of the last word counted as
    +-1 elements: ``64 * words - 2 * popcount(a XOR b)``) and ``unmasked_padding_xor`` (``k - 2 *
    popcount(a XOR b)`` over whole words: only the padding bits' XOR leaks in); see ``xnor_unmasked``.
``Operation.BINARY_CONV2D`` (``params``: ``BinaryConvParams``; ``inputs``: ``(x, w)``)
    when the record pads: ``unmasked_padding=V`` for every other ``BinaryPadding`` value ``V`` (the padded
    taps taken as 0, -1 or +1: what a bit-packed convolution computes when it leaves its padding bits in).

Every alternative is evaluated on the whole record.  A ``Cause`` is returned when the alternative gives
the observed value at every mismatching element; ``Cause.exact`` says whether it also gives the observed
value at every other element (the alternative *is* the implementation on this record).  Exact causes come
first.  An alternative that cannot run on the record (its options do not combine, an accumulator refuses
to guess) explains nothing.

``minimal_record`` cuts a record down to the first mismatching element (C order): a one-element
tensor for per-tensor and per-block parameters (with that element's own scale and zero point), the
element's line along the parameter axis for per-axis parameters, and one row of ``lhs`` times one column
of ``rhs`` for ``matmul_int``.

Worked by hand from the definition: ``x = 0.5``, ``s = 1``, ``z = 0`` into int8 is a tie; the reference
(half to even) gives 0.  An implementation that gives 1 is reproduced by every rounding that sends
``+0.5`` to 1:

>>> import numpy as np
>>> from refquant import INT8, QuantParams
>>> from refquant.conformance.causes import Operation, explain_mismatch
>>> causes = explain_mismatch(Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (np.float32([0.5, 1.0]),), [1, 1])
>>> [c.name for c in causes]  # doctest: +NORMALIZE_WHITESPACE
['rounding=half_away_from_zero', 'rounding=half_toward_positive', 'rounding=toward_positive',
 'rounding=away_from_zero', 'rounding=half_to_odd']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, unique
from functools import partial
from typing import Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError, UnpredictableError
from refquant.explain import Option, evaluate, explain_codes
from refquant.spec.affine import (
    DEFAULT_PROFILE,
    Precision,
    Profile,
    QuantParams,
    ScaleApplication,
    ZeroPointOrder,
    dequantize,
    quantize,
)
from refquant.spec.binary import BinaryPadding, binary_conv2d, xnor_matmul
from refquant.spec.fixed_point import RequantRounding, requantize
from refquant.spec.formats import INT8, INT32, IntFormat
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerTensor, normalize_axis
from refquant.spec.integer_ops import Accumulator, matmul_int
from refquant.spec.rounding import RoundingMode
from refquant.spec.saturation import Overflow, apply_overflow

__all__ = [
    "BinaryConvParams",
    "Cause",
    "MatmulParams",
    "MinimalRecord",
    "Operation",
    "RequantizeParams",
    "XnorParams",
    "alternative",
    "explain_mismatch",
    "format_record",
    "input_names",
    "minimal_record",
    "reference",
    "same_output",
    "show_array",
    "xnor_unmasked",
]

Array: TypeAlias = npt.NDArray[Any]


@unique
class Operation(Enum):
    """The operations whose mismatches can be explained; the values are the conformance records' ``op`` names."""

    QUANTIZE = "quantize"
    DEQUANTIZE = "dequantize"
    REQUANTIZE = "requantize"
    MATMUL_INT = "matmul_int"
    XNOR_MATMUL = "xnor_matmul"
    BINARY_CONV2D = "binary_conv2d"


@dataclass(frozen=True, eq=False)
class RequantizeParams:
    """The options of one ``requantize`` call (``multiplier``: a scalar, or 1-D along ``PerAxis``)."""

    multiplier: npt.NDArray[np.float64]
    out_fmt: IntFormat = INT8
    out_zero_point: int = 0
    rounding: RequantRounding = RequantRounding.DOUBLE
    granularity: Granularity = PER_TENSOR
    activation_min: int | None = None
    activation_max: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "multiplier", np.asarray(self.multiplier, dtype=np.float64))
        if not isinstance(self.out_fmt, IntFormat):
            raise SpecError("invalid_format", f"out_fmt must be an IntFormat, got {self.out_fmt!r}")
        if not isinstance(self.rounding, RequantRounding):
            raise SpecError("invalid_option", f"rounding must be a RequantRounding, got {self.rounding!r}")

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``requantize``."""
        return {
            "out_fmt": self.out_fmt,
            "out_zero_point": self.out_zero_point,
            "rounding": self.rounding,
            "granularity": self.granularity,
            "activation_min": self.activation_min,
            "activation_max": self.activation_max,
        }


@dataclass(frozen=True)
class MatmulParams:
    """The options of one ``matmul_int`` call (per-tensor zero points)."""

    lhs_zero_point: int = 0
    rhs_zero_point: int = 0
    accumulator: Accumulator = Accumulator.INT32

    def __post_init__(self) -> None:
        if not isinstance(self.accumulator, Accumulator):
            raise SpecError("invalid_option", f"accumulator must be an Accumulator, got {self.accumulator!r}")


@dataclass(frozen=True)
class XnorParams:
    """The ``k`` of one ``xnor_matmul`` call (the count of valid bits per packed row)."""

    k: int


@dataclass(frozen=True)
class BinaryConvParams:
    """The options of one ``binary_conv2d`` call."""

    stride: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (0, 0, 0, 0)
    dilation: tuple[int, ...] = (1, 1)
    padding_value: BinaryPadding = BinaryPadding.ZERO

    def __post_init__(self) -> None:
        if not isinstance(self.padding_value, BinaryPadding):
            raise SpecError("invalid_option", f"padding_value must be a BinaryPadding, got {self.padding_value!r}")

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``binary_conv2d``."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "padding_value": self.padding_value,
        }


Params: TypeAlias = QuantParams | RequantizeParams | MatmulParams | XnorParams | BinaryConvParams


@dataclass(frozen=True)
class Cause:
    """An alternative semantics that reproduces the observed output at every mismatching element.

    ``name`` is stable (``"rounding=half_away_from_zero"``, ``"scale_application=reciprocal_multiply"``,
    ``"accumulator=int32_wrap"``, ``"axis=0"``, ``"narrow_range"``...); ``description`` says it in words;
    ``exact`` is true when the alternative also agrees with the observed output everywhere else.
    """

    name: str
    description: str
    exact: bool


@dataclass(frozen=True, eq=False)
class MinimalRecord:
    """A smallest record that still shows the mismatch: the op, its params, inputs, expected and observed outputs.

    ``index`` is the (first) mismatching element's index in the original record's output.
    """

    op: Operation
    params: Params
    inputs: tuple[Array, ...]
    expected: Array
    observed: Array
    index: tuple[int, ...]
    profile: Profile | None = None


@dataclass(frozen=True)
class _Variant:
    name: str
    description: str
    run: Callable[[], Array]


# --- the reference -----------------------------------------------------------------------------------------------


def _check(op: object, params: object, inputs: object) -> tuple[Operation, tuple[Array, ...]]:
    if not isinstance(op, Operation):
        raise SpecError("invalid_option", f"op must be an Operation, got {op!r}")
    wanted: dict[Operation, tuple[type, int]] = {
        Operation.QUANTIZE: (QuantParams, 1),
        Operation.DEQUANTIZE: (QuantParams, 1),
        Operation.REQUANTIZE: (RequantizeParams, 1),
        Operation.MATMUL_INT: (MatmulParams, 2),
        Operation.XNOR_MATMUL: (XnorParams, 2),
        Operation.BINARY_CONV2D: (BinaryConvParams, 2),
    }
    kind, count = wanted[op]
    if not isinstance(params, kind):
        raise SpecError("invalid_option", f"params of {op.value} must be {kind.__name__}, got {params!r}")
    if not isinstance(inputs, (tuple, list)) or len(inputs) != count:
        raise SpecError("invalid_option", f"inputs of {op.value} must be a tuple of {count} array(s), got {inputs!r}")
    return op, tuple(np.asarray(a) for a in inputs)


def reference(
    op: Operation, params: Params, inputs: Sequence[npt.ArrayLike], /, *, profile: Profile | None = None
) -> Array:
    """The reference output of the record (the spec function; ``profile`` for quantize, default ONNX)."""
    op, arrays = _check(op, params, inputs)
    if op is Operation.QUANTIZE:
        params = cast("QuantParams", params)
        return np.asarray(quantize(arrays[0], params, profile=profile))
    if op is Operation.DEQUANTIZE:
        params = cast("QuantParams", params)
        return dequantize(arrays[0], params)
    if op is Operation.REQUANTIZE:
        params = cast("RequantizeParams", params)
        return np.asarray(requantize(arrays[0], params.multiplier, **params.kwargs()))
    if op is Operation.XNOR_MATMUL:
        params = cast("XnorParams", params)
        return xnor_matmul(arrays[0], arrays[1], params.k)
    if op is Operation.BINARY_CONV2D:
        params = cast("BinaryConvParams", params)
        return binary_conv2d(arrays[0], arrays[1], **params.kwargs())
    params = cast("MatmulParams", params)
    return np.asarray(
        matmul_int(
            arrays[0],
            arrays[1],
            lhs_zero_point=params.lhs_zero_point,
            rhs_zero_point=params.rhs_zero_point,
            accumulator=params.accumulator,
        )
    )


def _equal(op: Operation, a: Array, b: Array) -> npt.NDArray[np.bool_]:
    """Elementwise agreement: exact integers, or float32 bit patterns for dequantize."""
    if op is Operation.DEQUANTIZE:
        fa = np.asarray(a, dtype=np.float32)
        fb = np.asarray(b, dtype=np.float32)
        return np.asarray(fa.view(np.uint32) == fb.view(np.uint32))
    return np.asarray(np.asarray(a).astype(np.int64) == np.asarray(b).astype(np.int64))


def _observed(op: Operation, observed: npt.ArrayLike, shape: tuple[int, ...]) -> Array:
    obs = np.asarray(observed)
    if obs.shape != shape:
        raise SpecError("shape_mismatch", f"observed of shape {obs.shape} does not match the reference shape {shape}")
    if op is Operation.DEQUANTIZE:
        if obs.dtype != np.float32:
            raise SpecError("unsupported_dtype", f"observed dequantize output must be float32, got dtype {obs.dtype}")
    elif obs.dtype.kind not in "iu":
        raise SpecError("unsupported_dtype", f"observed {op.value} output must be integers, got dtype {obs.dtype}")
    return obs


# --- the alternatives --------------------------------------------------------------------------------------------


def _other_axes(granularity: Granularity, shape: tuple[int, ...]) -> list[int]:
    if not isinstance(granularity, PerAxis) or not shape:
        return []
    axis = normalize_axis(granularity.axis, len(shape))
    return [k for k in range(len(shape)) if k != axis and shape[k] == shape[axis]]


def _narrow(fmt: IntFormat) -> IntFormat | None:
    return (
        IntFormat(fmt.bits, True, narrow_range=True) if fmt.signed and not fmt.narrow_range and fmt.bits > 1 else None
    )


def _with(params: QuantParams, **changes: Any) -> QuantParams:
    fields: dict[str, Any] = {
        "scale": params.scale,
        "zero_point": params.zero_point,
        "fmt": params.fmt,
        "granularity": params.granularity,
    }
    fields.update(changes)
    return QuantParams(fields["scale"], fields["zero_point"], fields["fmt"], fields["granularity"])


def _quantize_variants(params: QuantParams, x: Array, profile: Profile) -> list[_Variant]:
    flat = profile.resolve(granularity=params.granularity, fmt=params.fmt)
    out: list[_Variant] = []
    for option in Option:
        for value in option.kind:
            if value is option.of(flat) or value is RoundingMode.STOCHASTIC:
                continue
            name = f"{option.value}={value.value}"

            def run(option: Option = option, value: Any = value) -> Array:
                variant = dataclasses.replace(flat, **{option.value: value})
                codes, refused = evaluate(x, params, profile=variant)
                # a refused element (NaN under RAISE) gets a value no code can have
                return np.where(refused, np.int64(2**40), codes)

            out.append(_Variant(name, f"{option.value} {value.name} instead of {option.of(flat).name}", run))
    if flat.scale_application is ScaleApplication.DIVIDE and flat.precision is Precision.FLOAT32:
        # The stacks that multiply by the reciprocal often also move the zero point (FBGEMM, torch): two swaps at once.
        for order in (ZeroPointOrder.BEFORE_ROUNDING, ZeroPointOrder.FUSED_MULTIPLY_ADD):
            if order is flat.zero_point_order:
                continue

            def both(order: ZeroPointOrder = order) -> Array:
                variant = dataclasses.replace(
                    flat, scale_application=ScaleApplication.RECIPROCAL_MULTIPLY, zero_point_order=order
                )
                codes, refused = evaluate(x, params, profile=variant)
                return np.where(refused, np.int64(2**40), codes)

            out.append(
                _Variant(
                    f"scale_application=reciprocal_multiply+zero_point_order={order.value}",
                    f"x * float32(1 / s) and the zero point {order.name} instead of x / s and {flat.zero_point_order.name}",
                    both,
                )
            )
    narrow = _narrow(params.fmt)
    if narrow is not None:
        out.append(
            _Variant(
                "narrow_range",
                f"{narrow.name}: the signed range without its lowest code {params.fmt.qmin}",
                lambda: np.asarray(quantize(x, _with(params, fmt=narrow), profile=flat)),
            )
        )

    def along(k: int) -> Array:
        return np.asarray(quantize(x, _with(params, granularity=PerAxis(k)), profile=flat))

    for k in _other_axes(params.granularity, x.shape):
        out.append(
            _Variant(
                f"axis={k}",
                f"per-axis parameters applied along axis {k} instead of {params.granularity}",
                partial(along, k),
            )
        )

    def multiplied() -> Array:
        scale, _ = params.expand(x.shape)
        cdt = flat.precision.dtype
        with np.errstate(over="ignore", invalid="ignore"):
            v = np.asarray(x).astype(cdt) * scale.astype(cdt)
        ones = _with(params, scale=np.ones_like(params.scale))
        return np.asarray(quantize(v, ones, profile=flat))

    out.append(_Variant("scale_multiplied", "x * scale instead of x / scale", multiplied))
    if np.any(params.zero_point != 0):
        out.append(
            _Variant(
                "zero_point_ignored",
                "the zero point never added",
                lambda: np.asarray(quantize(x, _with(params, zero_point=0), profile=flat)),
            )
        )

        def subtracted() -> Array:
            wide = quantize(x, _with(params, zero_point=0, fmt=INT32), profile=flat).astype(np.int64)
            _, zp = params.expand(x.shape)
            return np.asarray(apply_overflow(wide - zp, params.fmt, flat.overflow))

        out.append(_Variant("zero_point_subtracted", "round(x / s) - z instead of + z", subtracted))
    return out


def _dequantize_variants(params: QuantParams, q: Array) -> list[_Variant]:
    def parts() -> tuple[Array, Array, Array]:
        scale, zp = params.expand(q.shape)
        return q.astype(np.int64), scale, zp

    def ignored() -> Array:
        qq, s, _ = parts()
        return np.asarray(qq.astype(np.float32) * s, dtype=np.float32)

    def added() -> Array:
        qq, s, z = parts()
        return np.asarray((qq + z).astype(np.float32) * s, dtype=np.float32)

    def divided() -> Array:
        qq, s, z = parts()
        return np.asarray((qq - z).astype(np.float32) / s, dtype=np.float32)

    def twice() -> Array:
        qq, s, z = parts()
        return np.asarray((qq - z).astype(np.float32) * s * s, dtype=np.float32)

    def by_255() -> Array:
        return np.asarray(dequantize(q, params) / np.float32(255), dtype=np.float32)

    out = [
        _Variant("zero_point_ignored", "q * s: the zero point never subtracted", ignored),
        _Variant("zero_point_added", "(q + z) * s instead of (q - z) * s", added),
        _Variant("scale_divided", "(q - z) / s instead of (q - z) * s", divided),
        _Variant("scale_applied_twice", "(q - z) * s * s", twice),
        _Variant("extra_division_by_255", "the dequantized value divided by 255 once more", by_255),
    ]

    def along(k: int) -> Array:
        return dequantize(q, _with(params, granularity=PerAxis(k)))

    for k in _other_axes(params.granularity, q.shape):
        out.append(
            _Variant(
                f"axis={k}",
                f"per-axis parameters applied along axis {k} instead of {params.granularity}",
                partial(along, k),
            )
        )
    return out


def _requantize_variants(params: RequantizeParams, acc: Array) -> list[_Variant]:
    kw = params.kwargs()
    out: list[_Variant] = []

    def run(**changes: Any) -> Array:
        return np.asarray(requantize(acc, params.multiplier, **{**kw, **changes}))

    for rounding in RequantRounding:
        if rounding is params.rounding:
            continue
        out.append(
            _Variant(
                f"rounding={rounding.value}",
                f"RequantRounding.{rounding.name} instead of {params.rounding.name}",
                partial(run, rounding=rounding),
            )
        )

    def wrapped() -> Array:
        wide = requantize(
            acc, params.multiplier, **{**kw, "out_fmt": INT32, "activation_min": None, "activation_max": None}
        )
        return np.asarray(apply_overflow(np.asarray(wide).astype(np.int64), params.out_fmt, Overflow.WRAP))

    out.append(
        _Variant(
            "overflow=wrap", "the result reduced modulo 2**bits (a bare narrowing cast) instead of clamped", wrapped
        )
    )
    narrow = _narrow(params.out_fmt)
    if narrow is not None:
        out.append(
            _Variant(
                "narrow_range",
                f"{narrow.name}: the signed range without its lowest code {params.out_fmt.qmin}",
                lambda: np.asarray(requantize(acc, params.multiplier, **{**kw, "out_fmt": narrow})),
            )
        )
    if params.out_zero_point != 0:
        out.append(
            _Variant(
                "zero_point_ignored",
                "the output zero point never added",
                lambda: np.asarray(requantize(acc, params.multiplier, **{**kw, "out_zero_point": 0})),
            )
        )
    for k in _other_axes(params.granularity, acc.shape):
        out.append(
            _Variant(
                f"axis={k}",
                f"per-axis multipliers applied along axis {k} instead of {params.granularity}",
                partial(run, granularity=PerAxis(k)),
            )
        )
    return out


def _matmul_variants(params: MatmulParams, lhs: Array, rhs: Array) -> list[_Variant]:
    def run(lz: int, rz: int, accumulator: Accumulator) -> Callable[[], Array]:
        return lambda: np.asarray(
            matmul_int(lhs, rhs, lhs_zero_point=lz, rhs_zero_point=rz, accumulator=accumulator)
        ).astype(np.int64)

    lz, rz, acc = params.lhs_zero_point, params.rhs_zero_point, params.accumulator
    out = [
        _Variant(f"accumulator={a.value}", f"Accumulator.{a.name} instead of {acc.name}", run(lz, rz, a))
        for a in Accumulator
        if a is not acc
    ]
    loose = Accumulator.INT64 if acc is Accumulator.INT32 else acc  # an ignored zero point may overflow INT32
    if lz != 0 or rz != 0:
        out.append(_Variant("zero_points_ignored", "both zero points never subtracted", run(0, 0, loose)))
    if lz != 0 and rz != 0:
        out.append(_Variant("lhs_zero_point_ignored", "the lhs zero point never subtracted", run(0, rz, loose)))
        out.append(_Variant("rhs_zero_point_ignored", "the rhs zero point never subtracted", run(lz, 0, loose)))
    return out


def xnor_unmasked(lhs_bits: npt.ArrayLike, rhs_bits: npt.ArrayLike, k: int, /, *, length: int | None = None) -> Array:
    """``xnor_matmul`` without the padding mask: ``length - 2 * popcount(a XOR b)`` over whole 64-bit words (int64).

    ``length=None`` takes every bit of the words as an element (``64 * words``: a padding bit is an element of
    value +1 or -1 whose pair adds +1 when the two bits agree, -1 when they differ); ``length=k`` keeps the
    count of valid elements and lets only the padding bits' XOR through.  Both equal the reference when
    ``k`` is a multiple of 64.

    >>> import numpy as np
    >>> from refquant.spec.binary import pack_bits
    >>> a = pack_bits(np.array([[1, -1, 1]], np.int8))  # bits 0b101; 61 padding bits 0 (read as -1)
    >>> xnor_unmasked(a, a, 3).tolist()  # 3 matching elements and 61 matching padding pairs
    [[64]]
    """
    a = np.asarray(lhs_bits, dtype=np.uint64)
    b = np.asarray(rhs_bits, dtype=np.uint64)
    n = 64 * a.shape[-1] if length is None else int(length)
    differ = np.zeros((a.shape[0], b.shape[0]), np.int64)
    for m in range(a.shape[0]):
        differ[m] = np.bitwise_count(np.bitwise_xor(a[m], b)).sum(axis=1, dtype=np.int64)
    return np.asarray(n - 2 * differ, dtype=np.int64)


def _xnor_variants(params: XnorParams, lhs: Array, rhs: Array) -> list[_Variant]:
    if params.k % 64 == 0:
        return []
    return [
        _Variant(
            "unmasked_padding",
            "the padding bits of the last word not masked: counted as +-1 elements (64 * words - 2 * popcount)",
            lambda: xnor_unmasked(lhs, rhs, params.k),
        ),
        _Variant(
            "unmasked_padding_xor",
            "the padding bits' XOR not masked: k - 2 * popcount over whole words",
            lambda: xnor_unmasked(lhs, rhs, params.k, length=params.k),
        ),
    ]


def _binary_conv_variants(params: BinaryConvParams, x: Array, w: Array) -> list[_Variant]:
    if not any(params.padding):
        return []
    words = {BinaryPadding.ZERO: "0", BinaryPadding.MINUS_ONE: "-1", BinaryPadding.PLUS_ONE: "+1"}
    return [
        _Variant(
            f"unmasked_padding={value.value}",
            f"padded taps taken as {words[value]} (padding bits not masked out) instead of {words[params.padding_value]}",
            partial(lambda v: binary_conv2d(x, w, **{**params.kwargs(), "padding_value": v}).astype(np.int64), value),
        )
        for value in BinaryPadding
        if value is not params.padding_value
    ]


def _variants(op: Operation, params: Params, inputs: tuple[Array, ...], profile: Profile) -> list[_Variant]:
    if op is Operation.QUANTIZE:
        params = cast("QuantParams", params)
        return _quantize_variants(params, inputs[0], profile)
    if op is Operation.DEQUANTIZE:
        params = cast("QuantParams", params)
        return _dequantize_variants(params, inputs[0])
    if op is Operation.REQUANTIZE:
        params = cast("RequantizeParams", params)
        return _requantize_variants(params, inputs[0])
    if op is Operation.XNOR_MATMUL:
        return _xnor_variants(cast("XnorParams", params), inputs[0], inputs[1])
    if op is Operation.BINARY_CONV2D:
        return _binary_conv_variants(cast("BinaryConvParams", params), inputs[0], inputs[1])
    params = cast("MatmulParams", params)
    return _matmul_variants(params, inputs[0], inputs[1])


def _attempt(variant: _Variant) -> Array | None:
    try:
        with np.errstate(all="ignore"):
            return variant.run()
    except (SpecError, UnpredictableError):
        return None


_ALL_SWAPS = {f"{option.value}={value.value}" for option in Option for value in option.kind}


def _quantize_swaps(params: QuantParams, x: Array, observed: Array, profile: Profile) -> set[str] | None:
    """Names of the single option swaps that ``explain_codes`` finds at every mismatching element (None: no mismatch)."""
    try:
        with np.errstate(all="ignore"):
            explanation = explain_codes(x, params, observed.astype(np.int64), profile=profile, max_swaps=1)
    except OverflowError:
        # refquant.explain.intermediates cannot take a quotient beyond float64 (x / s overflows): the swaps are
        # then judged by their own evaluation below, without explain_codes' pre-selection.
        return _ALL_SWAPS
    if not explanation.elements:
        return None
    names: set[str] | None = None
    for element in explanation.elements:
        here = {f"{s.option.value}={s.value.value}" for cause in element.causes for s in cause}
        names = here if names is None else names & here
    return names or set()


def explain_mismatch(
    op: Operation,
    params: Params,
    inputs: Sequence[npt.ArrayLike],
    observed: npt.ArrayLike,
    /,
    *,
    profile: Profile | None = None,
) -> list[Cause]:
    """The alternative semantics that reproduce ``observed`` at every element where it differs from the reference.

    Exact causes (that reproduce ``observed`` everywhere) come first, then the others, each group in
    the fixed order of the module documentation.  An empty list: ``observed`` equals the reference, or
    no alternative reproduces it.  ``profile`` (quantize only; default ONNX) is the reference's profile.
    Raises ``SpecError`` (``"invalid_option"``, ``"shape_mismatch"``, ``"unsupported_dtype"``, or the
    reference's own condition when the reference refuses the record) and the reference's
    ``UnpredictableError``.
    """
    op, arrays = _check(op, params, inputs)
    prof = DEFAULT_PROFILE if profile is None else profile
    if not isinstance(prof, Profile):
        raise SpecError("invalid_option", f"profile must be a Profile, got {profile!r}")
    expected = reference(op, params, arrays, profile=prof)
    obs = _observed(op, observed, expected.shape)
    mismatch = ~_equal(op, expected, obs)
    if not np.any(mismatch):
        return []
    swaps: set[str] | None = None
    if op is Operation.QUANTIZE:
        params = cast("QuantParams", params)
        swaps = _quantize_swaps(params, arrays[0], obs, prof)
    exact: list[Cause] = []
    partial: list[Cause] = []
    for variant in _variants(op, params, arrays, prof):
        is_swap = op is Operation.QUANTIZE and variant.name in _ALL_SWAPS
        if is_swap and swaps is not None and variant.name not in swaps:
            continue
        out = _attempt(variant)
        if out is None or out.shape != obs.shape:
            continue
        same = _equal(op, out, obs)
        if np.all(same[mismatch]):
            cause = Cause(variant.name, variant.description, bool(np.all(same)))
            (exact if cause.exact else partial).append(cause)
    return exact + partial


def alternative(
    name: str,
    op: Operation,
    params: Params,
    inputs: Sequence[npt.ArrayLike],
    /,
    *,
    profile: Profile | None = None,
) -> Array | None:
    """The output of the record under the alternative called ``name``; ``None`` when it does not apply.

    An alternative does not apply when the record has nothing for it to change (``axis=1`` on a tensor
    without a second axis of that length, ``narrow_range`` on an unsigned format) or when it cannot run
    (its options do not combine, an accumulator refuses to guess).

    >>> import numpy as np
    >>> from refquant import INT8, QuantParams
    >>> from refquant.conformance.causes import Operation, alternative
    >>> x = np.float32([0.5, 1.5, 2.5])
    >>> alternative("rounding=half_away_from_zero", Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (x,)).tolist()
    [1, 2, 3]
    """
    op, arrays = _check(op, params, inputs)
    prof = DEFAULT_PROFILE if profile is None else profile
    for variant in _variants(op, params, arrays, prof):
        if variant.name == name:
            return _attempt(variant)
    return None


def same_output(op: Operation, a: npt.ArrayLike, b: npt.ArrayLike, /) -> npt.NDArray[np.bool_]:
    """Elementwise agreement of two outputs of ``op``: exact integers, float32 bit patterns for dequantize."""
    return _equal(op, np.asarray(a), np.asarray(b))


# --- the minimal record ------------------------------------------------------------------------------------------


def _element_params(params: QuantParams, shape: tuple[int, ...], index: tuple[int, ...]) -> QuantParams:
    scale, zp = params.expand(shape)
    return QuantParams(scale[index], zp[index], params.fmt, PerTensor())


def minimal_record(
    op: Operation,
    params: Params,
    inputs: Sequence[npt.ArrayLike],
    observed: npt.ArrayLike,
    /,
    *,
    profile: Profile | None = None,
) -> MinimalRecord | None:
    """The record cut down to its first mismatching element (C order), or ``None`` when nothing mismatches.

    >>> import numpy as np
    >>> from refquant import INT8, QuantParams
    >>> from refquant.conformance.causes import Operation, minimal_record
    >>> r = minimal_record(Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (np.float32([3.0, 0.5, 2.5]),), [3, 1, 3])
    >>> r.index, r.inputs[0].tolist(), r.expected.tolist(), r.observed.tolist()
    ((1,), [0.5], [0], [1])
    """
    op, arrays = _check(op, params, inputs)
    prof = DEFAULT_PROFILE if profile is None else profile
    expected = reference(op, params, arrays, profile=prof)
    obs = _observed(op, observed, expected.shape)
    mismatch = ~_equal(op, expected, obs)
    if not np.any(mismatch):
        return None
    index = tuple(int(i) for i in np.argwhere(mismatch)[0])
    if op is Operation.BINARY_CONV2D:  # every output element reads a window of every input: reported whole
        return MinimalRecord(op, params, arrays, expected, obs, index, None)
    if op is Operation.XNOR_MATMUL:
        i, j = index
        small = (arrays[0][i : i + 1, :], arrays[1][j : j + 1, :])
        return MinimalRecord(op, params, small, expected[i : i + 1, j : j + 1], obs[i : i + 1, j : j + 1], index)
    if op is Operation.MATMUL_INT:
        params = cast("MatmulParams", params)
        lhs, rhs = arrays
        if lhs.ndim != 2 or rhs.ndim != 2:  # batched or vector operands: reported whole
            return MinimalRecord(op, params, arrays, expected, obs, index, None)
        i, j = index
        small = (lhs[i : i + 1, :], rhs[:, j : j + 1])
        return MinimalRecord(op, params, small, expected[i : i + 1, j : j + 1], obs[i : i + 1, j : j + 1], index)
    x = arrays[0]
    if op is Operation.REQUANTIZE:
        params = cast("RequantizeParams", params)
        if isinstance(params.granularity, PerAxis):
            cut = _axis_line(x.shape, params.granularity.axis, index)
        else:
            cut = tuple(slice(i, i + 1) for i in index)
        return MinimalRecord(op, params, (x[cut],), expected[cut], obs[cut], index)
    params = cast("QuantParams", params)
    if isinstance(params.granularity, PerAxis):
        cut = _axis_line(x.shape, params.granularity.axis, index)
        small_params: QuantParams = params
    else:
        cut = tuple(slice(i, i + 1) for i in index)
        small_params = _element_params(params, x.shape, index)
    small_x = x[cut].reshape(-1) if not isinstance(params.granularity, PerAxis) else x[cut]
    return MinimalRecord(
        op,
        small_params,
        (small_x,),
        expected[cut].reshape(small_x.shape),
        obs[cut].reshape(small_x.shape),
        index,
        prof if op is Operation.QUANTIZE else None,
    )


def _axis_line(shape: tuple[int, ...], axis: int, index: tuple[int, ...]) -> tuple[slice, ...]:
    a = normalize_axis(axis, len(shape))
    return tuple(slice(None) if k == a else slice(i, i + 1) for k, i in enumerate(index))


# --- text ---------------------------------------------------------------------------------------------------------


_SHOWN = 12
"""Arrays longer than this are shown by their first and last elements."""


def _elided(items: list[Any]) -> str:
    if len(items) <= _SHOWN:
        return ", ".join(str(v) for v in items)
    head = ", ".join(str(v) for v in items[: _SHOWN - 4])
    tail = ", ".join(str(v) for v in items[-4:])
    return f"{head}, ... ({len(items) - _SHOWN} more), {tail}"


def show_array(a: Array, /) -> str:
    """``dtype[shape] [values]``, with the IEEE-754 bit patterns of float values; long arrays by their ends."""
    values = np.ravel(a).tolist()
    if a.dtype.kind == "f":
        bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
        width = 2 * a.dtype.itemsize
        hexes = [f"0x{int(b):0{width}x}" for b in np.ravel(a.view(bits))]
        return f"{a.dtype.name}{list(a.shape)} [{_elided(values)}] (bits {_elided(hexes)})"
    return f"{a.dtype.name}{list(a.shape)} [{_elided(values)}]"


def _show_params(params: Params, profile: Profile | None) -> str:
    if isinstance(params, QuantParams):
        scales = ", ".join(
            f"{float(s)!r} (0x{int(b):08x})"
            for s, b in zip(np.ravel(params.scale), np.ravel(params.scale.view(np.uint32)), strict=True)
        )
        text = f"scale [{scales}], zero_point {np.ravel(params.zero_point).tolist()}, {params.fmt.name}, {params.granularity}"
        return text + (f", profile {profile.name}" if profile is not None else "")
    if isinstance(params, RequantizeParams):
        return (
            f"multiplier {np.ravel(params.multiplier).tolist()}, out_fmt {params.out_fmt.name}, "
            f"out_zero_point {params.out_zero_point}, rounding {params.rounding.name}, {params.granularity}"
        )
    if isinstance(params, XnorParams):
        return f"k {params.k}"
    if isinstance(params, BinaryConvParams):
        return (
            f"stride {list(params.stride)}, padding {list(params.padding)}, dilation {list(params.dilation)}, "
            f"padding_value {params.padding_value.name}"
        )
    return f"lhs_zero_point {params.lhs_zero_point}, rhs_zero_point {params.rhs_zero_point}, accumulator {params.accumulator.name}"


def input_names(op: Operation, /) -> tuple[str, ...]:
    """The conformance records' names of ``op``'s inputs, in the order of ``MinimalRecord.inputs``."""
    return {
        Operation.QUANTIZE: ("x",),
        Operation.DEQUANTIZE: ("q",),
        Operation.REQUANTIZE: ("acc",),
        Operation.MATMUL_INT: ("lhs", "rhs"),
        Operation.XNOR_MATMUL: ("lhs_bits", "rhs_bits"),
        Operation.BINARY_CONV2D: ("x", "w"),
    }[op]


def format_record(record: MinimalRecord, /) -> str:
    """The record as text: one line each for the op and params, every input, the expected and observed outputs."""
    names = input_names(record.op)
    lines = [f"{record.op.value}: {_show_params(record.params, record.profile)}"]
    lines += [f"  {name} = {show_array(a)}" for name, a in zip(names, record.inputs, strict=True)]
    lines.append(f"  expected = {show_array(record.expected)}")
    lines.append(f"  observed = {show_array(record.observed)}")
    return "\n".join(lines)
