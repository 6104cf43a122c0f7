"""THE registry of conformance operations: one entry per op, shared by the generator and the checker.

Each entry names the op (``"quantize"``), its chapter (``"affine"``, the folder of its vectors) and an adapter
``run(params, inputs) -> outputs`` that decodes the record's JSON params into the spec's enums and dataclasses,
calls the spec function, and returns the outputs by name.  ``fast`` is the same adapter on ``refquant.fast`` for
the ops that have a kernel (imported lazily: importing this module never imports numba).  ``decode(op, params,
inputs)`` is the public decoding of a record of those ops into one spec call (``Call``), which both runners
make and the checker's cause models start from.  A new chapter adds its ops here and its cases in ``refquant.conformance.cases.<chapter>``; nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import ModuleType
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from refquant import profiles
from refquant.conformance.format import JSONValue
from refquant.errors import SpecError
from refquant.spec import affine, binary, codebook, fixed_point, integer_ops, log, packing, qparams, ternary
from refquant.spec.affine import NanPolicy, Precision, QuantParams, ScaleApplication, ZeroPointOrder
from refquant.spec.binary import BinaryPadding, SignZero, SteWindow
from refquant.spec.codebook import CodebookInit, LevelTie
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.formats import IntFormat
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerBlock
from refquant.spec.integer_ops import Accumulator, Layout
from refquant.spec.log import LogFormat, LogRounding, LogTop, LogUnderflow
from refquant.spec.qparams import ReduceRange, SymmetricDenominator, ZeroRange
from refquant.spec.rounding import RoundingMode
from refquant.spec.saturation import Overflow

__all__ = ["DECODABLE", "OPS", "Arrays", "Call", "Op", "Params", "decode", "fast_runner", "granularity_params", "op"]

Params = Mapping[str, JSONValue]
Arrays = Mapping[str, npt.NDArray[Any]]
Runner = Callable[[Params, Arrays], dict[str, npt.NDArray[Any]]]
E = TypeVar("E", bound=Enum)


@dataclass(frozen=True)
class Op:
    """A registered operation: ``run`` on the spec; ``fast`` on ``refquant.fast`` (``None``: no kernel)."""

    name: str
    chapter: str
    run: Runner
    fast: Callable[[ModuleType], Runner] | None = None


# --- decoding params ---------------------------------------------------------------------------------------------


def _bad(message: str) -> SpecError:
    return SpecError("malformed_record", message)


def _enum(params: Params, key: str, kind: type[E]) -> E | None:
    value = params.get(key)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise _bad(f"param {key}={value!r} is not one of {[m.value for m in kind]}") from None


def _int(params: Params, key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    if type(value) is not int:
        raise _bad(f"param {key}={value!r} must be an int")
    return value


def _opt_int(params: Params, key: str) -> int | None:
    return None if params.get(key) is None else _int(params, key)


def _bool(params: Params, key: str, default: bool = False) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"param {key}={value!r} must be a bool")
    return value


def _fmt(params: Params, key: str = "fmt") -> IntFormat:
    value = params.get(key)
    if not isinstance(value, str):
        raise _bad(f"param {key}={value!r} must be a format name such as 'int8'")
    return IntFormat.from_name(value)


def _granularity(params: Params) -> Granularity:
    kind = params.get("granularity", "per_tensor")
    if kind == "per_tensor":
        return PER_TENSOR
    if kind == "per_axis":
        return PerAxis(_int(params, "axis"))
    if kind == "per_block":
        return PerBlock(_int(params, "axis"), _int(params, "block_size"))
    raise _bad(f"param granularity={kind!r} is not per_tensor, per_axis or per_block")


def granularity_params(g: Granularity, /) -> dict[str, JSONValue]:
    """The record params of a granularity (the inverse of the decoding above)."""
    if isinstance(g, PerBlock):
        return {"granularity": "per_block", "axis": g.axis, "block_size": g.block_size}
    if isinstance(g, PerAxis):
        return {"granularity": "per_axis", "axis": g.axis}
    return {"granularity": "per_tensor"}


def _input(inputs: Arrays, key: str) -> npt.NDArray[Any]:
    if key not in inputs:
        raise _bad(f"input {key!r} is missing")
    return inputs[key]


def _quant_params(params: Params, inputs: Arrays, fmt_key: str = "fmt") -> QuantParams:
    return QuantParams(
        _input(inputs, "scale"), _input(inputs, "zero_point"), _fmt(params, fmt_key), _granularity(params)
    )


_QUANTIZE_OPTIONS: Final[dict[str, type[Enum]]] = {
    "rounding": RoundingMode,
    "scale_application": ScaleApplication,
    "zero_point_order": ZeroPointOrder,
    "overflow": Overflow,
    "nan_policy": NanPolicy,
    "precision": Precision,
}


def _quantize_kwargs(params: Params, inputs: Arrays) -> dict[str, Any]:
    kwargs: dict[str, Any] = {key: _enum(params, key, kind) for key, kind in _QUANTIZE_OPTIONS.items()}
    name = params.get("profile")
    if name is not None:
        if not isinstance(name, str):
            raise _bad(f"param profile={name!r} must be a profile name")
        kwargs["profile"] = profiles.by_name(name)
    if "uniform" in inputs:
        kwargs["uniform"] = inputs["uniform"]
    return kwargs


# --- the adapters ---------------------------------------------------------------------------------------------


def _fake_quantize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    qp = _quant_params(params, inputs)
    return {"y": affine.fake_quantize(_input(inputs, "x"), qp, **_quantize_kwargs(params, inputs))}


def _qparams_options(params: Params) -> dict[str, Any]:
    return {
        "symmetric": _bool(params, "symmetric"),
        "granularity": _granularity(params),
        "symmetric_denominator": _enum(params, "symmetric_denominator", SymmetricDenominator)
        or SymmetricDenominator.HALF_RANGE,
        "reduce_range": _enum(params, "reduce_range", ReduceRange) or ReduceRange.NONE,
        "zero_point_rounding": _enum(params, "zero_point_rounding", RoundingMode) or RoundingMode.HALF_TO_EVEN,
        "power_of_two_scale": _enum(params, "power_of_two_scale", RoundingMode),
        "zero_range": _enum(params, "zero_range", ZeroRange) or ZeroRange.SCALE_ONE,
        "precision": _enum(params, "precision", Precision) or Precision.FLOAT32,
    }


def _choose_qparams_from_range(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    p = qparams.choose_qparams_from_range(
        _input(inputs, "min_val"), _input(inputs, "max_val"), _fmt(params), **_qparams_options(params)
    )
    return {"scale": np.asarray(p.scale), "zero_point": np.asarray(p.zero_point)}


def _choose_qparams(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    p = qparams.choose_qparams(_input(inputs, "x"), _fmt(params), **_qparams_options(params))
    return {"scale": np.asarray(p.scale), "zero_point": np.asarray(p.zero_point)}


def _nudge_quantization_range(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    r = qparams.nudge_quantization_range(
        _input(inputs, "min_val"), _input(inputs, "max_val"), _fmt(params), granularity=_granularity(params)
    )
    return {
        "scale": np.asarray(r.params.scale),
        "zero_point": np.asarray(r.params.zero_point),
        "nudged_min": np.asarray(r.nudged_min),
        "nudged_max": np.asarray(r.nudged_max),
    }


def _pack(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"packed": packing.pack(_input(inputs, "q"), _fmt(params))}


def _unpack(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"q": packing.unpack(_input(inputs, "packed"), _fmt(params), _int(params, "count"))}


def _srdhm(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"y": fixed_point.saturating_rounding_doubling_high_mul(_input(inputs, "a"), _input(inputs, "b"))}


def _rdbpot(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"y": fixed_point.rounding_divide_by_pot(_input(inputs, "x"), _input(inputs, "exponent"))}


def _quantize_multiplier(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    real = _input(inputs, "real")
    if real.shape != ():
        raise _bad(f"input real must be a scalar, got shape {real.shape}")
    m = fixed_point.quantize_multiplier(float(real), single_rounding=_bool(params, "single_rounding"))
    return {"multiplier": np.array(m.multiplier, np.int64), "shift": np.array(m.shift, np.int64)}


def _apply_scale_32(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    y = fixed_point.apply_scale_32(
        _input(inputs, "value"),
        _input(inputs, "multiplier"),
        _input(inputs, "shift"),
        double_round=_bool(params, "double_round"),
    )
    return {"y": y}


def _apply_scale_16(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    y = fixed_point.apply_scale_16(_input(inputs, "value"), _input(inputs, "multiplier"), _input(inputs, "shift"))
    return {"y": y}


def _ints(params: Params, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = params.get(key, list(default))
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise _bad(f"param {key}={value!r} must be a list of ints")
    return tuple(value)


def _conv_geometry(params: Params) -> dict[str, Any]:
    return {
        "stride": _ints(params, "stride", (1, 1)),
        "padding": _ints(params, "padding", (0, 0, 0, 0)),
        "dilation": _ints(params, "dilation", (1, 1)),
    }


def _operand_params(params: Params, inputs: Arrays, name: str, axis: int) -> QuantParams:
    per_axis = _bool(params, f"{name}_per_axis")
    return QuantParams(
        _input(inputs, f"{name}_scale"),
        _input(inputs, f"{name}_zero_point"),
        _fmt(params, f"{name}_fmt"),
        PerAxis(axis) if per_axis else PER_TENSOR,
    )


def _binarize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    sign_zero = _enum(params, "sign_zero", SignZero) or SignZero.POSITIVE
    return {"b": binary.binarize(_input(inputs, "x"), sign_zero=sign_zero)}


def _binarize_stochastic(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"b": binary.binarize_stochastic(_input(inputs, "x"), uniform=_input(inputs, "uniform"))}


def _ste_mask(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    window = _enum(params, "window", SteWindow) or SteWindow.CLOSED
    return {"mask": binary.ste_mask(_input(inputs, "x"), window=window)}


def _ste_grad(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    window = _enum(params, "window", SteWindow) or SteWindow.CLOSED
    return {"grad": binary.ste_grad(_input(inputs, "x"), _input(inputs, "grad"), window=window)}


def _pack_bits(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"words": binary.pack_bits(_input(inputs, "b"))}


def _axis(params: Params) -> int | None:
    return _opt_int(params, "axis")


def _real(inputs: Arrays, key: str) -> float:
    value = _input(inputs, key)
    if value.shape != () or value.dtype.kind != "f":
        raise _bad(f"input {key} must be a float scalar, got {value.dtype} of shape {value.shape}")
    return float(value)


def _twn_ternarize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    t = ternary.twn_ternarize(_input(inputs, "w"), axis=_axis(params), factor=_real(inputs, "factor"))
    return {"codes": t.codes, "alpha": t.alpha, "delta": t.delta}


def _bitnet_ternarize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    codes, scale = ternary.bitnet_ternarize(_input(inputs, "w"), eps=_real(inputs, "eps"))
    return {"codes": codes, "scale": scale}


def _log_format(params: Params) -> LogFormat:
    return LogFormat(
        _int(params, "bits"),
        _int(params, "fsr"),
        signed=_bool(params, "signed", True),
        underflow=_enum(params, "underflow", LogUnderflow) or LogUnderflow.TO_ZERO,
        top=_enum(params, "top", LogTop) or LogTop.CLAMP_TO_FSR,
    )


def _log_quantize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    rounding = _enum(params, "rounding", LogRounding) or LogRounding.LOG_DOMAIN
    return {"codes": log.log_quantize(_input(inputs, "x"), _log_format(params), rounding=rounding)}


def _log_dequantize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"x": log.log_dequantize(_input(inputs, "codes"), _log_format(params))}


def _apot_levels(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"levels": log.apot_levels(_int(params, "bits"), _int(params, "k"), _real(inputs, "alpha"))}


def _apot_quantize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"codes": log.apot_quantize(_input(inputs, "x"), _input(inputs, "levels"))}


def _apot_dequantize(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"x": log.apot_dequantize(_input(inputs, "codes"), _input(inputs, "levels"))}


def _codebook_encode(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    tie = _enum(params, "tie", LevelTie) or LevelTie.TO_LOWER
    return {"codes": codebook.codebook_encode(_input(inputs, "x"), _input(inputs, "levels"), tie=tie)}


def _codebook_decode(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"x": codebook.codebook_decode(_input(inputs, "codes"), _input(inputs, "levels"))}


def _codebook_quantiles(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    return {"levels": codebook.codebook_quantiles(_input(inputs, "x"), _int(params, "bits"))}


def _codebook_kmeans(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
    levels = codebook.codebook_kmeans(
        _input(inputs, "x"),
        _int(params, "bits"),
        init=_enum(params, "init", CodebookInit) or CodebookInit.LINEAR,
        iterations=_int(params, "iterations", 100),
        tol=_real(inputs, "tol") if "tol" in inputs else 0.0,
    )
    return {"levels": levels}


# --- the public decoder: a record as one call of a spec function --------------------------------------------------


@dataclass(frozen=True, eq=False)
class Call:
    """A record decoded into one call ``function(*args, **kwargs)`` of a spec function (or its ``refquant.fast`` twin).

    ``args`` are the positional arguments: the record's input arrays (numpy, as loaded) and the few positional
    non-arrays of the spec signature (``k`` of ``xnor_matmul``, the ``LogFormat`` of ``shift_matmul``, the
    ``QuantParams`` of ``quantize``); ``kwargs`` the keyword options, decoded from the record's JSON params into
    the spec's enums and dataclasses (``RoundingMode``, ``IntFormat``, ``PerAxis``, ``Profile``...).  An option
    the record leaves out is absent from ``kwargs`` (``quantize``: ``None``, the profile's value) or holds the
    spec default.
    """

    op: str
    function: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    def on(self, module: Any, /) -> Any:
        """The call evaluated with ``module``'s function of that name (``refquant.spec.<chapter>``, ``refquant.fast``)."""
        return getattr(module, self.function)(*self.args, **self.kwargs)


def _d_quantize(params: Params, inputs: Arrays) -> Call:
    args = (_input(inputs, "x"), _quant_params(params, inputs))
    return Call("quantize", "quantize", args, _quantize_kwargs(params, inputs))


def _d_dequantize(params: Params, inputs: Arrays) -> Call:
    return Call("dequantize", "dequantize", (_input(inputs, "q"), _quant_params(params, inputs)), {})


def _d_requantize(params: Params, inputs: Arrays) -> Call:
    kwargs = {
        "out_fmt": _fmt(params, "out_fmt"),
        "out_zero_point": _int(params, "out_zero_point", 0),
        "rounding": _enum(params, "rounding", RequantRounding) or RequantRounding.DOUBLE,
        "granularity": _granularity(params),
        "activation_min": _opt_int(params, "activation_min"),
        "activation_max": _opt_int(params, "activation_max"),
    }
    return Call("requantize", "requantize", (_input(inputs, "acc"), _input(inputs, "multiplier")), kwargs)


def _d_matmul_int(params: Params, inputs: Arrays) -> Call:
    kwargs = {
        "lhs_zero_point": inputs.get("lhs_zero_point", 0),
        "rhs_zero_point": inputs.get("rhs_zero_point", 0),
        "accumulator": _enum(params, "accumulator", Accumulator) or Accumulator.INT32,
    }
    return Call("matmul_int", "matmul_int", (_input(inputs, "lhs"), _input(inputs, "rhs")), kwargs)


def _d_conv2d_int(params: Params, inputs: Arrays) -> Call:
    kwargs = {
        "x_zero_point": inputs.get("x_zero_point", 0),
        "w_zero_point": inputs.get("w_zero_point", 0),
        "groups": _int(params, "groups", 1),
        "layout": _enum(params, "layout", Layout) or Layout.NCHW,
        "accumulator": _enum(params, "accumulator", Accumulator) or Accumulator.INT32,
        **_conv_geometry(params),
    }
    return Call("conv2d_int", "conv2d_int", (_input(inputs, "x"), _input(inputs, "w")), kwargs)


def _d_qlinear_matmul(params: Params, inputs: Arrays) -> Call:
    kwargs = {
        "a_params": _operand_params(params, inputs, "a", -2),
        "b_params": _operand_params(params, inputs, "b", -1),
        "y_params": _operand_params(params, inputs, "y", -1),
        "rounding": _enum(params, "rounding", RequantRounding) or RequantRounding.FLOAT64,
        "multiplier_precision": _enum(params, "multiplier_precision", Precision) or Precision.FLOAT64,
        "accumulator": _enum(params, "accumulator", Accumulator) or Accumulator.INT32,
    }
    return Call("qlinear_matmul", "qlinear_matmul", (_input(inputs, "a"), _input(inputs, "b")), kwargs)


def _d_qlinear_conv(params: Params, inputs: Arrays) -> Call:
    kwargs = {
        "x_params": _operand_params(params, inputs, "x", 0),
        "w_params": _operand_params(params, inputs, "w", 0),
        "y_params": _operand_params(params, inputs, "y", 0),
        "bias": inputs.get("bias"),
        "groups": _int(params, "groups", 1),
        "layout": _enum(params, "layout", Layout) or Layout.NCHW,
        "rounding": _enum(params, "rounding", RequantRounding) or RequantRounding.FLOAT64,
        "activation_min": _opt_int(params, "activation_min"),
        "activation_max": _opt_int(params, "activation_max"),
        "multiplier_precision": _enum(params, "multiplier_precision", Precision) or Precision.FLOAT64,
        "accumulator": _enum(params, "accumulator", Accumulator) or Accumulator.INT32,
        **_conv_geometry(params),
    }
    return Call("qlinear_conv", "qlinear_conv", (_input(inputs, "x"), _input(inputs, "w")), kwargs)


def _d_binary_conv2d(params: Params, inputs: Arrays) -> Call:
    kwargs = {
        "padding_value": _enum(params, "padding_value", BinaryPadding) or BinaryPadding.ZERO,
        **_conv_geometry(params),
    }
    return Call("binary_conv2d", "binary_conv2d", (_input(inputs, "x"), _input(inputs, "w")), kwargs)


def _d_xnor_matmul(params: Params, inputs: Arrays) -> Call:
    args = (_input(inputs, "lhs_bits"), _input(inputs, "rhs_bits"), _int(params, "k"))
    return Call("xnor_matmul", "xnor_matmul", args, {})


def _d_ternary_matmul(params: Params, inputs: Arrays) -> Call:
    lhs = (_input(inputs, "lhs_plus"), _input(inputs, "lhs_minus"))
    rhs = (_input(inputs, "rhs_plus"), _input(inputs, "rhs_minus"))
    return Call("ternary_matmul", "ternary_matmul", (lhs, rhs, _int(params, "k")), {})


def _d_shift_matmul(params: Params, inputs: Arrays) -> Call:
    args = (_input(inputs, "lhs"), _input(inputs, "w_codes"), _log_format(params))
    return Call("shift_matmul", "shift_matmul", args, {})


_DECODERS: Final[dict[str, Callable[[Params, Arrays], Call]]] = {
    "quantize": _d_quantize,
    "dequantize": _d_dequantize,
    "requantize": _d_requantize,
    "matmul_int": _d_matmul_int,
    "conv2d_int": _d_conv2d_int,
    "qlinear_matmul": _d_qlinear_matmul,
    "qlinear_conv": _d_qlinear_conv,
    "binary_conv2d": _d_binary_conv2d,
    "xnor_matmul": _d_xnor_matmul,
    "ternary_matmul": _d_ternary_matmul,
    "shift_matmul": _d_shift_matmul,
}

DECODABLE: Final = frozenset(_DECODERS)
"""The ops ``decode`` takes: those whose spec function ``refquant.fast`` mirrors (one call, one output)."""


def decode(op_name: str, params: Params, inputs: Arrays, /) -> Call:
    """The record (``op_name``, its JSON ``params``, its input arrays) as one call of the spec function.

    Params become the spec's enums and dataclasses (``"half_to_even"`` -> ``RoundingMode.HALF_TO_EVEN``,
    ``"int8"`` -> ``INT8``, ``per_axis`` + ``axis`` -> ``PerAxis(axis)``, scale and zero point inputs ->
    ``QuantParams``); arrays stay the record's numpy arrays.  The ops are ``DECODABLE`` (the ones with a
    kernel); the registry's runners of those ops are this call and nothing else.  Raises
    ``SpecError("unknown_op")`` for another op and ``SpecError("malformed_record")`` for params or inputs that
    do not decode (a missing input, an enum value the enum does not hold, a param of the wrong JSON type),
    and the spec's own condition when the decoded parameters are invalid (``QuantParams`` validates itself).

    >>> import numpy as np
    >>> call = decode("requantize", {"out_fmt": "int16", "rounding": "single"}, {"acc": np.int32([7]),
    ...     "multiplier": np.float64(0.5)})
    >>> call.function, call.kwargs["out_fmt"].name, call.kwargs["rounding"]
    ('requantize', 'int16', <RequantRounding.SINGLE: 'single'>)
    """
    decoder = _DECODERS.get(op_name)
    if decoder is None:
        raise SpecError("unknown_op", f"op {op_name!r} has no decoded call form; decode takes {sorted(_DECODERS)}")
    return decoder(params, inputs)


def _kernel_op(name: str, chapter: str, module: ModuleType, output: str) -> Op:
    def runner(module: Any) -> Runner:
        def run(params: Params, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
            return {output: decode(name, params, inputs).on(module)}

        return run

    return Op(name, chapter, runner(module), runner)


OPS: Final[dict[str, Op]] = {
    o.name: o
    for o in (
        _kernel_op("quantize", "affine", affine, "q"),
        _kernel_op("dequantize", "affine", affine, "x"),
        Op("fake_quantize", "affine", _fake_quantize),
        Op("choose_qparams_from_range", "qparams", _choose_qparams_from_range),
        Op("choose_qparams", "qparams", _choose_qparams),
        Op("nudge_quantization_range", "qparams", _nudge_quantization_range),
        Op("pack", "packing", _pack),
        Op("unpack", "packing", _unpack),
        Op("saturating_rounding_doubling_high_mul", "fixed_point", _srdhm),
        Op("rounding_divide_by_pot", "fixed_point", _rdbpot),
        Op("quantize_multiplier", "fixed_point", _quantize_multiplier),
        Op("apply_scale_32", "fixed_point", _apply_scale_32),
        Op("apply_scale_16", "fixed_point", _apply_scale_16),
        _kernel_op("requantize", "fixed_point", fixed_point, "q"),
        _kernel_op("matmul_int", "integer_ops", integer_ops, "acc"),
        _kernel_op("conv2d_int", "integer_ops", integer_ops, "acc"),
        _kernel_op("qlinear_matmul", "integer_ops", integer_ops, "y"),
        _kernel_op("qlinear_conv", "integer_ops", integer_ops, "y"),
        Op("binarize", "binary", _binarize),
        Op("binarize_stochastic", "binary", _binarize_stochastic),
        Op("ste_mask", "binary", _ste_mask),
        Op("ste_grad", "binary", _ste_grad),
        _kernel_op("binary_conv2d", "binary", binary, "y"),
        Op("pack_bits", "binary", _pack_bits),
        _kernel_op("xnor_matmul", "binary", binary, "dot"),
        Op("twn_ternarize", "ternary", _twn_ternarize),
        Op("bitnet_ternarize", "ternary", _bitnet_ternarize),
        _kernel_op("ternary_matmul", "ternary", ternary, "dot"),
        Op("log_quantize", "log", _log_quantize),
        Op("log_dequantize", "log", _log_dequantize),
        _kernel_op("shift_matmul", "log", log, "acc"),
        Op("apot_levels", "log", _apot_levels),
        Op("apot_quantize", "log", _apot_quantize),
        Op("apot_dequantize", "log", _apot_dequantize),
        Op("codebook_encode", "codebook", _codebook_encode),
        Op("codebook_decode", "codebook", _codebook_decode),
        Op("codebook_quantiles", "codebook", _codebook_quantiles),
        Op("codebook_kmeans", "codebook", _codebook_kmeans),
    )
}
"""Every conformance op by name."""


def op(name: str, /) -> Op:
    """The registered op ``name``; ``SpecError("unknown_op")`` for a name the registry does not hold."""
    try:
        return OPS[name]
    except KeyError:
        raise SpecError("unknown_op", f"op {name!r} is not one of {sorted(OPS)}") from None


def fast_runner(entry: Op, /) -> Runner | None:
    """The adapter of ``entry`` on ``refquant.fast`` (imports numba), or ``None`` when the op has no kernel."""
    if entry.fast is None:
        return None
    return entry.fast(importlib.import_module("refquant.fast"))
