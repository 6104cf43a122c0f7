"""The ``refquant`` command.

``refquant check [--impl MODULE | --results DIR] [--suite DIR] [--op OP] [--why TAG] [--max-failures N]``
    runs the conformance suite through refquant.fast (or an adapter module, or a folder of results files)
    and explains each failure (``refquant.conformance.check``; exit status 1 when a record failed).
``refquant diff [INPUT.npy]``
    quantizes a built-in tie-dense sample (or the user's array) under several profiles and prints
    the elements where they disagree with the first profile, each with the option that causes it
    (``refquant.explain``), then a one-line summary.
``refquant quantize IN.npy --out OUT.npy``
    writes the golden codes of a user's stimulus (``np.save``).
``refquant vectors generate OUT_DIR`` / ``refquant vectors export --format npy|hex|c OUT_DIR [--suite DIR]``
    regenerates the conformance suite from the spec, or exports it (docs/conformance.md).
``refquant demo [--repeats N] [--qat-epochs N] [--budget PP] [--retrain] [--plot OUT.png]``
    post-training quantization end to end on sklearn's digits (``refquant.demo``, docs/demo.md).

Bad arguments and bad input print one line, ``refquant: error: ...``, on stderr and exit with
status 2; no traceback.  Inputs are read with ``np.load(path, allow_pickle=False)`` only.  ``diff``
shows a NaN that a profile refuses (``NanPolicy.RAISE``) as ``raise`` in that profile's column, so
that NaN policies can be compared; ``quantize`` refuses it (exit status 2) unless the profile or
``--nan-policy`` names a policy.  Strings appear here only as the enums' stable values.  Importing
this module does not import numba.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Sequence
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Final, NoReturn

import numpy as np
import numpy.typing as npt

from refquant import SPEC_VERSION, profiles
from refquant.errors import SpecError, UnpredictableError
from refquant.explain import (
    Code,
    ElementExplanation,
    Explanation,
    Intermediates,
    Option,
    Refused,
    Swap,
    evaluate,
    explain_profiles,
    intermediates,
)
from refquant.spec.affine import NanPolicy, Profile, QuantParams, ScaleApplication, ZeroPointOrder, quantize
from refquant.spec.formats import IntFormat
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerTensor, normalize_axis

__all__ = ["DEFAULT_SCALE", "builtin_sample", "default_zero_point", "main"]

PROG: Final = "refquant"
WIDTH: Final = 100
DEFAULT_SCALE: Final = 0.00214854861
"""The built-in sample's default scale: the reciprocal near-tie of the FBGEMM source comment (spec-anchors V2)."""

_OPTION_WORDS: Final = {
    Option.ROUNDING: "rounding",
    Option.SCALE_APPLICATION: "scale",
    Option.ZERO_POINT_ORDER: "zero point",
    Option.OVERFLOW: "overflow",
    Option.NAN_POLICY: "NaN",
    Option.PRECISION: "precision",
}


class CliError(Exception):
    """A bad argument or input: printed as one ``refquant: error:`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and an exception, never usage text and sys.exit."""

    def error(self, message: str) -> NoReturn:
        raise CliError(message)


# --------------------------------------------------------------------------- parameters and input


def default_zero_point(fmt: IntFormat, /) -> int:
    """One below the middle of the code range: -1 for signed formats, ``2**(bits-1) - 1`` for unsigned.

    It is odd for every format but uint1, so ties show where the zero point enters
    (before or after rounding), and it leaves room on both sides for the saturation edges.
    """
    return (fmt.qmin + fmt.qmax + 1) // 2 - 1


def _numbers(text: str, kind: type[float] | type[int], what: str) -> list[Any]:
    values: list[Any] = []
    for part in text.split(","):
        item = part.strip()
        try:
            values.append(kind(item))
        except ValueError:
            raise CliError(f"{what}: {item!r} is not {'an integer' if kind is int else 'a number'}") from None
    return values


def _load(path: str) -> npt.NDArray[Any]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    if not isinstance(loaded, np.ndarray):
        if hasattr(loaded, "close"):
            loaded.close()
        raise CliError(f"{path} is not a single-array .npy file (an .npz archive?)")
    if loaded.dtype.kind not in "fiu":
        raise CliError(f"{path} holds dtype {loaded.dtype}; refquant quantizes float16/32/64 or integer arrays")
    return loaded


def _granularity(args: argparse.Namespace, n_scales: int) -> Granularity:
    if args.axis is None:
        if n_scales > 1:
            raise CliError(f"{n_scales} scales need --axis (the axis they run along)")
        return PER_TENSOR
    return PerAxis(args.axis)


def _explicit_params(args: argparse.Namespace, fmt: IntFormat, zero_point_default: int) -> QuantParams:
    scales = _numbers(args.scale, float, "--scale")
    for value in scales:
        if not (math.isfinite(value) and value > 0):
            raise CliError(f"--scale must be finite and > 0, got {value}")
    zero_points = _numbers(args.zero_point, int, "--zero-point") if args.zero_point is not None else None
    granularity = _granularity(args, len(scales))
    if isinstance(granularity, PerTensor):
        if zero_points is not None and len(zero_points) != 1:
            raise CliError(f"one scale needs one zero point, got {len(zero_points)}")
        return QuantParams(scales[0], zero_points[0] if zero_points else zero_point_default, fmt)
    if zero_points is not None and len(zero_points) not in (1, len(scales)):
        raise CliError(f"{len(scales)} scales need 1 or {len(scales)} zero points, got {len(zero_points)}")
    zp: Any = zero_point_default if zero_points is None else zero_points
    if isinstance(zp, list) and len(zp) == 1:
        zp = zp[0]
    return QuantParams(np.array(scales, np.float64), zp, fmt, granularity)


def _symmetric_params(x: npt.NDArray[Any], fmt: IntFormat, args: argparse.Namespace) -> QuantParams:
    if args.zero_point is not None:
        raise CliError("--symmetric chooses the zero point itself; leave out --zero-point")
    try:
        from refquant.spec.qparams import choose_qparams
    except ImportError as error:
        raise CliError(f"--symmetric needs refquant.spec.qparams, which is not available: {error}") from None
    granularity: Granularity = PER_TENSOR if args.axis is None else PerAxis(args.axis)
    return choose_qparams(x, fmt, symmetric=True, granularity=granularity)


def _profiles(text: str) -> list[Profile]:
    chosen: list[Profile] = []
    for name in text.split(","):
        profile = profiles.by_name(name)
        if profile not in chosen:
            chosen.append(profile)
    return chosen


# --------------------------------------------------------------------------- the built-in sample


def _at(multiple: float, scale: np.float32) -> np.float32:
    """``multiple * scale`` rounded once to float32 (the product is formed exactly in float64 for small multiples)."""
    with np.errstate(over="ignore"):
        return np.float32(multiple * float(scale))


_DIVIDE: Final = Profile("divide")
_MULTIPLY: Final = tuple(
    Profile(f"multiply_{order.value}", scale_application=ScaleApplication.RECIPROCAL_MULTIPLY, zero_point_order=order)
    for order in ZeroPointOrder
)


def _near_ties(scale: np.float32, zero_point: int, fmt: IntFormat, per_sign: int = 2) -> list[np.float32]:
    """Float32 values near ``(k + 1/2) * scale`` where ``x / s`` and ``x * float32(1/s)`` give different codes.

    "Different" means: rounding half to even, saturating, the code of ``x / s`` with the zero point
    added after rounding differs from the code of ``x * float32(1/s)`` with the zero point added
    after rounding, before rounding, or in a fused multiply-add (any of the three).

    ``k`` runs over the ties whose codes lie in the format's range (at most 2048 of them on each side
    of 0); the candidates are ``float32((k + 1/2) * s)`` and its neighbours up to 2 ulps away.  The
    ``per_sign`` candidates with the largest ``|k|`` on each side are kept: they sit next to the
    saturation edges, where the FBGEMM comment's case (``s = 0.00214854861``, ``x = 0.273939937``) is.
    """
    lo = max(fmt.qmin - zero_point - 1, -2048)
    hi = min(fmt.qmax - zero_point, 2047)
    if hi < lo:
        return []
    ks = np.arange(lo, hi + 1, dtype=np.float64)
    with np.errstate(over="ignore"):
        base = ((ks + 0.5) * float(scale)).astype(np.float32)
    candidates = [base]
    for direction in (np.inf, -np.inf):
        step = base
        for _ in range(2):
            step = np.nextafter(step, np.float32(direction))
            candidates.append(step)
    x = np.stack(candidates, axis=1)  # (len(ks), 5)
    params = QuantParams(scale, zero_point, fmt)
    finite = np.isfinite(x)
    xs = np.where(finite, x, np.float32(0))
    divided = quantize(xs, params, profile=_DIVIDE)
    differs = np.zeros(x.shape, dtype=np.bool_)
    for variant in _MULTIPLY:
        differs |= quantize(xs, params, profile=variant) != divided
    differs &= finite
    found: list[tuple[float, np.float32]] = []
    for row, col in zip(*np.nonzero(differs), strict=True):
        found.append((float(ks[row]), x[row, col]))
    positive = sorted((f for f in found if f[0] >= 0), key=lambda f: -f[0])
    negative = sorted((f for f in found if f[0] < 0), key=lambda f: f[0])
    chosen: list[np.float32] = []
    for group in (positive, negative):
        seen_k: list[float] = []
        for k, value in group:
            if k not in seen_k and len(seen_k) < per_sign:
                seen_k.append(k)
                chosen.append(value)
    return chosen


def _channel_sample(scale: np.float32, zero_point: int, fmt: IntFormat) -> list[np.float32]:
    values: list[np.float32] = [_at(t, scale) for t in (0.5, -0.5, 1.5, -1.5, 2.5, -2.5)]
    tie = values[0]
    values += [np.nextafter(tie, np.float32(-np.inf)), np.nextafter(tie, np.float32(np.inf))]
    values += _near_ties(scale, zero_point, fmt)
    for edge in (fmt.qmax - zero_point - 0.5, fmt.qmax - zero_point + 0.5):
        values.append(_at(edge, scale))
    for edge in (fmt.qmin - zero_point + 0.5, fmt.qmin - zero_point - 0.5):
        values.append(_at(edge, scale))
    values += [np.float32(np.inf), np.float32(-np.inf), np.float32(np.nan)]
    unique: list[np.float32] = []
    seen: set[int] = set()
    for value in values:
        bits = int(np.float32(value).view(np.uint32))
        if bits not in seen:
            seen.add(bits)
            unique.append(np.float32(value))
    return unique


def builtin_sample(params: QuantParams, /) -> npt.NDArray[np.float32]:
    """The tie-dense, edge-dense float32 sample that ``refquant diff`` uses without INPUT, built for ``params``.

    For each scale ``s`` and zero point ``z``, in this order: the ties ``(k + 1/2) * s`` for
    ``k + 1/2`` in +-0.5, +-1.5, +-2.5 (exact where ``s``'s significand allows, otherwise the nearest
    float32), one float32 ulp either side of ``0.5 * s``; near-ties where dividing by ``s`` and
    multiplying by ``float32(1/s)`` round to different codes (``_near_ties``); the saturation edges
    ``(qmax - z +- 1/2) * s`` and ``(qmin - z +- 1/2) * s``; +inf, -inf and NaN.  Repeated values
    appear once.  Per tensor the sample is 1-D; per axis it is 2-D with one channel per scale along
    the axis (0 or 1), shorter channels padded with 0.0.
    """
    gran = params.granularity
    if isinstance(gran, PerTensor):
        scale = np.float32(params.scale.reshape(-1).tolist()[0])
        return np.array(_channel_sample(scale, int(params.zero_point), params.fmt), dtype=np.float32)
    if not isinstance(gran, PerAxis):
        raise CliError("the built-in sample supports per-tensor and per-axis parameters only")
    channels = [
        _channel_sample(np.float32(s), int(z), params.fmt)
        for s, z in zip(params.scale.reshape(-1).tolist(), params.zero_point.reshape(-1).tolist(), strict=True)
    ]
    length = max(len(c) for c in channels)
    sample = np.zeros((len(channels), length), dtype=np.float32)
    for i, channel in enumerate(channels):
        sample[i, : len(channel)] = channel
    if gran.axis not in (0, 1, -1, -2):
        raise CliError(f"the built-in sample is 2-D per axis; --axis must be 0, 1, -1 or -2, got {gran.axis}")
    return sample if normalize_axis(gran.axis, 2) == 0 else sample.T.copy()


# --------------------------------------------------------------------------- formatting


def _num(value: float, dtype: np.dtype[Any] | None = None) -> str:
    """Shortest round-trip text of ``value`` in ``dtype`` (float32 unless given)."""
    kind = np.float32 if dtype is None or dtype.kind != "f" else dtype.type
    return str(kind(value))


def _decimal(q: Fraction, decimals: int) -> str:
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(q.numerator) / Decimal(q.denominator)
        return f"{value:.{decimals}f}"


def _half(h: Fraction) -> str:
    return str(float(h))


def _kind(i: Intermediates) -> str:
    """The sentence about ties for one element (empty when there is nothing to say)."""
    if i.quotient is None:
        return "NaN" if math.isnan(i.x) else "infinite"
    if i.tie and i.nearest_half is not None:
        return f"tie: x/s = {_half(i.nearest_half)} exactly"
    if i.near_tie and i.nearest_half is not None and i.ulps_from_half is not None:
        distance = abs(i.quotient - i.nearest_half)
        decimals = max(1, -math.floor(math.log10(float(distance))) + 1)
        side = "below" if i.quotient < i.nearest_half else "above"
        ulps = abs(i.ulps_from_half)
        return (
            f"near tie: x/s = {_decimal(i.quotient, decimals)}..., "
            f"{ulps:.2g} float32 ulp {side} {_half(i.nearest_half)}"
        )
    return ""


def _describe_swap(swap: Swap) -> str:
    return f"{_OPTION_WORDS[swap.option]} {swap.value.value}"


def _reason(element: ElementExplanation) -> str:
    if not element.causes:
        return "no swap of a single option or set of options reproduces it"
    return " or ".join(" + ".join(_describe_swap(s) for s in cause) for cause in element.causes)


def _code_text(code: Code) -> str:
    return "raise" if isinstance(code, Refused) else str(code)


def _options_text(profile: Profile) -> str:
    return ", ".join(f"{_OPTION_WORDS[o]} {o.of(profile).value}" for o in Option)


def _params_text(params: QuantParams) -> str:
    def listed(values: list[Any], fmt: str) -> str:
        text = ", ".join(fmt.format(v) for v in values[:4])
        return f"[{text}{', ...' if len(values) > 4 else ''}]"

    if isinstance(params.granularity, PerTensor):
        return f"{params.fmt.name}, scale {_num(float(params.scale.reshape(())))}, zero point {int(params.zero_point)}"
    scales = [_num(float(s)) for s in params.scale.reshape(-1)]
    zps = [int(z) for z in params.zero_point.reshape(-1)]
    axis = params.granularity.axis if isinstance(params.granularity, PerAxis) else None
    where = f"per axis {axis}" if axis is not None else str(params.granularity)
    return f"{params.fmt.name}, {where}, scale {listed(scales, '{}')}, zero point {listed(zps, '{}')}"


def _index_text(index: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in index) if index else "()"


def _pack(segments: Sequence[str], indent: int) -> list[str]:
    """``segments`` joined by "; " into lines of at most WIDTH columns, breaking between segments
    (a segment that is too long by itself is wrapped at spaces)."""
    pad = " " * indent
    lines: list[str] = []
    current = ""
    for segment in segments:
        candidate = f"{current}; {segment}" if current else segment
        if len(pad) + len(candidate) <= WIDTH:
            current = candidate
            continue
        if current:
            lines.append(pad + current)
        if len(pad) + len(segment) <= WIDTH:
            current = segment
        else:
            wrapped = textwrap.wrap(segment, WIDTH - indent, subsequent_indent="  ", break_on_hyphens=False)
            lines += [pad + w for w in wrapped[:-1]]
            current = wrapped[-1]
    if current:
        lines.append(pad + current)
    return lines


def render_diff(
    x: npt.NDArray[Any],
    params: QuantParams,
    chosen: Sequence[Profile],
    *,
    source: str,
    max_rows: int,
    show_all: bool = False,
) -> list[str]:
    """The lines that ``refquant diff`` prints for ``x`` under ``chosen`` (the first is the reference)."""
    reference, others = chosen[0], list(chosen[1:])
    outcomes = {p.name: evaluate(x, params, profile=p) for p in chosen}
    ref_codes, ref_refused = outcomes[reference.name]
    disagree = np.zeros(x.shape, dtype=np.bool_)
    for p in others:
        codes, refused = outcomes[p.name]
        disagree |= (refused != ref_refused) | (~refused & ~ref_refused & (codes != ref_codes))
    # Each profile's first max_rows disagreements hold every disagreement among the first max_rows rows.
    explanations: dict[str, Explanation] = {
        p.name: explain_profiles(x, params, a=reference, b=p, limit=max_rows) for p in others
    }
    by_index: dict[tuple[int, ...], dict[str, ElementExplanation]] = {}
    for name, explanation in explanations.items():
        for element in explanation.elements:
            by_index.setdefault(element.index, {})[name] = element
    size = int(x.size)
    total = x.size if show_all else int(np.count_nonzero(disagree))
    shown = np.flatnonzero(np.ones(x.size, np.bool_) if show_all else disagree.reshape(-1))[:max_rows]
    rows = [tuple(int(i) for i in np.unravel_index(int(f), x.shape)) for f in shown]

    resolved = reference.resolve(granularity=params.granularity, fmt=params.fmt)
    lines = [f"refquant diff: {source}, {size} element{'' if size == 1 else 's'}, {_params_text(params)}"]
    lines += _pack([f"reference {reference.name}: {_options_text(resolved)}"], 0)
    lines.append('x/s and x*(1/s): float32 results; "raise": the profile refuses the element (NaN)')
    lines.append("")

    per_tensor = isinstance(params.granularity, PerTensor)
    scale_full, zp_full = params.expand(x.shape)
    headers = ["idx", "x"] + ([] if per_tensor else ["s", "z"]) + ["x/s", "x*(1/s)"] + [p.name for p in chosen]
    table: list[list[str]] = []
    notes: list[list[str]] = []
    for idx in rows:
        value = float(x[idx])
        i = intermediates(value, float(scale_full[idx]), int(zp_full[idx]))
        cells = [_index_text(idx), _num(value, x.dtype)]
        if not per_tensor:
            cells += [_num(i.scale), str(i.zero_point)]
        cells += [_num(i.divided), _num(i.multiplied)]
        for p in chosen:
            codes, refused = outcomes[p.name]
            cells.append("raise" if bool(refused[idx]) else str(int(codes[idx])))
        table.append(cells)
        groups: dict[str, list[str]] = {}
        for name, element in by_index.get(idx, {}).items():
            groups.setdefault(_reason(element), []).append(name)
        parts = [_kind(i)] if _kind(i) else []
        parts += [f"{', '.join(names)}: {reason}" for reason, names in groups.items()]
        notes.append(_pack(parts, 6) if groups or show_all else [])
    widths = [max(len(h), *(len(r[c]) for r in table)) if table else len(h) for c, h in enumerate(headers)]
    if table:
        lines.append(" ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    else:
        lines.append(f"no element disagrees with {reference.name}")
    for cells, note in zip(table, notes, strict=True):
        lines.append(" ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
        lines += note
    if total > len(rows):
        lines.append(f"... {total - len(rows)} more rows not shown (--max-rows {max_rows})")
    counts = ", ".join(f"{name} {e.count}" for name, e in explanations.items())
    lines.append("")
    noun = "element" if size == 1 else "elements"
    lines.append(f"{size} {noun}, {int(np.count_nonzero(disagree))} disagree with {reference.name}: {counts}")
    return lines


# --------------------------------------------------------------------------- commands


def _format(args: argparse.Namespace) -> IntFormat:
    return IntFormat.from_name(args.format)


def _cmd_diff(args: argparse.Namespace) -> int:
    fmt = _format(args)
    chosen = _profiles(args.profiles)
    if len(chosen) < 2:
        raise CliError("diff needs at least two different profiles in --profiles")
    if args.max_rows < 0:
        raise CliError(f"--max-rows must be >= 0, got {args.max_rows}")
    if args.input is None:
        if args.symmetric:
            raise CliError(
                "--symmetric chooses parameters from data: give INPUT.npy (the built-in sample is built from them)"
            )
        if args.scale is None:
            if args.axis is not None:
                raise CliError("--axis needs --scale with one value per channel")
            args.scale = str(DEFAULT_SCALE)
        params = _explicit_params(args, fmt, default_zero_point(fmt))
        x: npt.NDArray[Any] = builtin_sample(params)
        source = "built-in sample"
    else:
        x = _load(args.input)
        if args.symmetric:
            params = _symmetric_params(x, fmt, args)
        elif args.scale is not None:
            params = _explicit_params(args, fmt, 0)
        else:
            raise CliError("INPUT needs --scale (and --zero-point) or --symmetric")
        source = args.input
    for line in render_diff(x, params, chosen, source=source, max_rows=args.max_rows, show_all=args.all):
        print(line)
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    fmt = _format(args)
    profile = profiles.by_name(args.profile)
    x = _load(args.input)
    if args.symmetric:
        params = _symmetric_params(x, fmt, args)
    elif args.scale is not None:
        params = _explicit_params(args, fmt, 0)
    else:
        raise CliError("quantize needs --scale (and --zero-point) or --symmetric")
    nan_policy = None if args.nan_policy is None else NanPolicy(args.nan_policy)
    codes = quantize(x, params, profile=profile, nan_policy=nan_policy)
    try:
        with open(args.out, "wb") as handle:
            np.save(handle, codes, allow_pickle=False)
    except OSError as error:
        raise CliError(f"cannot write {args.out}: {error}") from None
    print(f"{PROG}: wrote {args.out}: {codes.size} {fmt.name} codes, shape {codes.shape}, profile {profile.name}")
    return 0


def _default_suite() -> str:
    """The committed suite of a source checkout: ``conformance/v1`` next to the package."""
    from pathlib import Path

    return str(Path(__file__).resolve().parents[1] / "conformance" / "v1")


def _cmd_vectors_generate(args: argparse.Namespace) -> int:
    from refquant.conformance.generate import generate

    counts = generate(args.out_dir)
    print(f"{PROG}: wrote {sum(counts.values())} records in {len(counts)} files and index.json to {args.out_dir}")
    return 0


def _cmd_vectors_export(args: argparse.Namespace) -> int:
    from refquant.conformance.export import ExportFormat, export
    from refquant.conformance.load import load_suite

    suite = load_suite(args.suite)
    written = export(suite, args.out_dir, fmt=ExportFormat(args.format))
    print(f"{PROG}: exported {len(suite)} records as {args.format} ({written} files) to {args.out_dir}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from refquant.conformance import check
    from refquant.conformance.load import load_suite

    if args.max_failures < 0:
        raise CliError(f"--max-failures must be >= 0, got {args.max_failures}")
    if args.impl is not None and args.results is not None:
        raise CliError("give at most one of --impl and --results")
    root = check.default_suite(args.suite)
    suite = load_suite(root)
    records = check.select(suite, ops=args.op or (), whys=args.why or ())
    if args.results is not None:
        outcomes = check.check_results(records, args.results)
        title = f"results in {args.results}"
    elif args.impl is not None:
        outcomes = check.check_adapter(records, check.module_adapter(args.impl))
        title = f"--impl {args.impl}"
    else:
        outcomes = check.check_adapter(records, check.fast_adapter())
        title = "refquant.fast"
    title += f" against {root} ({len(records)} of {len(suite)} records, spec {suite.spec_version})"
    print(check.render(outcomes, title=title, max_failures=args.max_failures))
    return 0 if check.summarize(outcomes).ok else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from refquant.demo.report import run_cli  # imports scikit-learn and numba only when the demo runs

    return run_cli(
        repeats=args.repeats, qat_epochs=args.qat_epochs, budget_pp=args.budget, retrain=args.retrain, plot=args.plot
    )


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="The golden reference for neural-network quantization arithmetic.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} (spec {SPEC_VERSION})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_params(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--format", default="int8", help="integer format: int8, uint8, int4, int16, int8n... (default int8)"
        )
        group = sub.add_mutually_exclusive_group()
        group.add_argument("--scale", help="scale, or comma-separated scales (one per channel, with --axis)")
        group.add_argument("--symmetric", action="store_true", help="choose a symmetric scale from the data")
        sub.add_argument(
            "--zero-point",
            help="zero point, or comma-separated zero points (default 0; for diff's built-in sample, "
            "one below the middle of the format's range)",
        )
        sub.add_argument("--axis", type=int, help="the axis the per-channel scales run along")

    diff = commands.add_parser(
        "diff",
        help="show where the profiles disagree, and why",
        description="Quantize a built-in tie-dense sample (or INPUT.npy) under each profile and print the "
        "elements where a profile disagrees with the first one, with the option that causes it. "
        f"Without --scale the sample uses scale {DEFAULT_SCALE} and the zero point one below the middle "
        "of the format's range (-1 for signed formats).",
    )
    diff.add_argument("input", nargs="?", metavar="INPUT.npy", help="a float array saved with np.save")
    add_params(diff)
    diff.add_argument(
        "--profiles",
        default=",".join(p.name for p in profiles.ALL),
        help="comma-separated profile names, the first is the reference (default: all)",
    )
    diff.add_argument("--max-rows", type=int, default=40, help="rows to print at most (default 40)")
    diff.add_argument("--all", action="store_true", help="print every element, not only the disagreements")
    diff.set_defaults(run=_cmd_diff)

    quant = commands.add_parser(
        "quantize",
        help="write golden codes for a stimulus",
        description="Quantize IN.npy under one profile and write the codes with np.save.",
    )
    quant.add_argument("input", metavar="IN.npy", help="a float array saved with np.save")
    quant.add_argument("--out", required=True, metavar="OUT.npy", help="where to write the codes")
    add_params(quant)
    quant.add_argument("--profile", default=profiles.ONNX.name, help="profile name (default onnx)")
    quant.add_argument(
        "--nan-policy",
        choices=[p.value for p in NanPolicy],
        help="override the profile's NaN policy (NaN input is an error under raise)",
    )
    quant.set_defaults(run=_cmd_quantize)

    chk = commands.add_parser(
        "check",
        help="check an implementation against the conformance suite (default: refquant.fast)",
        description="Run the conformance suite through refquant.fast (default), a Python adapter module (--impl) or "
        "the files a non-Python implementation wrote (--results); print records, passed, failed and not covered "
        "per op and why tag, and explain each failure. Exit status 0 only when nothing failed.",
    )
    source = chk.add_mutually_exclusive_group()
    source.add_argument("--impl", metavar="MODULE", help="a module defining functions named after the ops")
    source.add_argument("--results", metavar="DIR", help="a folder with one <record id>.json or .error per record")
    chk.add_argument("--suite", metavar="DIR", help="the suite folder (default: conformance/v1 of the checkout)")
    chk.add_argument("--op", action="append", metavar="OP", help="check only this op (repeatable)")
    chk.add_argument("--why", action="append", metavar="TAG", help="check only this why tag (repeatable)")
    chk.add_argument("--max-failures", type=int, default=10, metavar="N", help="failures to explain (default 10)")
    chk.set_defaults(run=_cmd_check)

    vectors = commands.add_parser(
        "vectors",
        help="generate or export the conformance vectors",
        description="Regenerate the conformance suite from the spec, or export it as .npy, $readmemh hex or a C header.",
    )
    actions = vectors.add_subparsers(dest="vectors_command", metavar="ACTION", required=True)
    gen = actions.add_parser("generate", help="write the suite (index.json and one file per case group)")
    gen.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write (created)")
    gen.set_defaults(run=_cmd_vectors_generate)
    exp = actions.add_parser("export", help="export a suite as npy, hex or c")
    exp.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write (created)")
    exp.add_argument("--format", required=True, choices=["npy", "hex", "c"], help="the export format")
    exp.add_argument(
        "--suite", default=_default_suite(), metavar="DIR", help="the suite to export (default: conformance/v1)"
    )
    exp.set_defaults(run=_cmd_vectors_export)

    demo = commands.add_parser(
        "demo",
        help="post-training quantization end to end on sklearn's digits (needs the demo extra)",
        description="Quantize a small CNN trained on sklearn's 8x8 digits with refquant (observers, per-channel "
        "weights, int4 / ternary / binary, mixed precision, QAT), run the integer pipeline on refquant.fast, check it "
        "code for code against a fake-quantized float64 model, and print size, accuracy and latency (docs/demo.md).",
    )
    demo.add_argument("--repeats", type=int, default=7, metavar="N", help="timed runs per row, median (default 7)")
    demo.add_argument("--qat-epochs", type=int, default=3, metavar="N", help="STE fine-tuning epochs (default 3)")
    demo.add_argument("--budget", type=float, default=1.0, metavar="PP", help="mixed-precision budget (default 1.0)")
    demo.add_argument("--retrain", action="store_true", help="retrain the float model instead of the shipped weights")
    demo.add_argument("--plot", metavar="OUT.png", help="draw accuracy against weight bits (needs matplotlib)")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _error(message: str) -> int:
    text = " ".join(str(message).split())
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``refquant`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            raise CliError("choose a command: check, demo, diff, quantize or vectors (refquant --help)")
        status: int = args.run(args)
        return status
    except CliError as error:
        return _error(str(error))
    except (SpecError, UnpredictableError) as error:
        return _error(f"{error.message} [{error.condition}]")
    except BrokenPipeError:  # the reader went away (refquant diff | head)
        return 1
    except (OSError, ValueError) as error:
        return _error(str(error))
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else 0
