"""refquant's APoT levels and codes against PyTorch's experimental APoT (``torch.ao.quantization.experimental``).

The module exists in PyTorch 1.13 to 2.x (pytorch/pytorch ``torch/ao/quantization/experimental/{observer,
apot_utils}.py``, read at commits 01caf79e and ad7e69ae of cyyever/pytorch); torch 2.13.0+cpu as installed here
does not ship it, so these tests skip here and run wherever it imports.  What they check, from that source:

- ``APoTObserver(b, k)._calculate_qparams(False, min, max)`` builds the unsigned levels as
  ``float32(float32(alpha / P) * u)`` (gamma rounded to float32 first, then one float32 product), sorted, with
  ``level_indices`` the Cartesian-product position of each sorted level.  With ``alpha = P`` (gamma exactly 1)
  and ``alpha = 2 P`` both orders are exact and the levels must equal refquant's bit for bit; for other ``alpha``
  the levels must follow the gamma-first order (docs/spec/log.md §6, divergence "APoT gamma").
- ``float_to_apot(x, levels, indices, alpha)`` for ``|x| <= alpha`` returns the product index of the nearest
  level, the first (lowest) on a tie; mapped through ``level_indices`` it must equal ``apot_quantize``.
- ``apot_to_float(code, levels, indices)`` returns the level.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from refquant.spec.log import apot_levels, apot_quantize

observer = pytest.importorskip("torch.ao.quantization.experimental.observer")
apot_utils = pytest.importorskip("torch.ao.quantization.experimental.apot_utils")
torch = pytest.importorskip("torch")

if not hasattr(apot_utils, "float_to_apot") or not hasattr(apot_utils, "apot_to_float"):
    pytest.skip("this torch's apot_utils lacks float_to_apot / apot_to_float", allow_module_level=True)

CONFIGS = [(2, 1), (2, 2), (4, 2), (4, 4), (6, 2), (6, 3), (8, 2)]


def torch_qparams(b: int, k: int, alpha: float):  # type: ignore[no-untyped-def]
    obs = observer.APoTObserver(b=b, k=k)
    return obs._calculate_qparams(False, torch.tensor(0.0), torch.tensor(alpha, dtype=torch.float32))


def unit_total(b: int, k: int) -> float:
    return float(sum(Fraction(1, 2**i) for i in range(b // k)))


@pytest.mark.parametrize(("b", "k"), CONFIGS)
@pytest.mark.parametrize("times", [1.0, 2.0])
def test_levels_equal_when_gamma_is_exact(b: int, k: int, times: float) -> None:
    alpha = unit_total(b, k) * times
    _, _, levels, _ = torch_qparams(b, k, alpha)
    np.testing.assert_array_equal(levels.numpy().astype(np.float32), apot_levels(b, k, alpha))


@pytest.mark.parametrize(("b", "k"), CONFIGS)
@pytest.mark.parametrize("alpha", [0.1, 0.3, 2.7, 6.373247])
def test_levels_follow_the_gamma_first_order(b: int, k: int, alpha: float) -> None:
    _, _, levels, _ = torch_qparams(b, k, alpha)
    gamma = np.float32(np.float32(alpha) / np.float32(unit_total(b, k)))
    unit = apot_levels(b, k, unit_total(b, k))  # the unit sums u themselves (gamma 1), exact in float32 here
    np.testing.assert_array_equal(levels.numpy().astype(np.float32), gamma * unit)


@pytest.mark.parametrize(("b", "k"), [(4, 2), (6, 2), (6, 3)])
def test_codes_equal_through_the_level_indices(b: int, k: int) -> None:
    alpha = unit_total(b, k)
    _, _, levels, indices = torch_qparams(b, k, alpha)
    ours = apot_levels(b, k, alpha)
    lv64 = ours.astype(np.float64)
    mids = ((lv64[:-1] + lv64[1:]) / 2).astype(np.float32)  # exact: dyadic levels
    x = np.concatenate([ours, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0))])
    want = apot_quantize(x, ours)
    order = indices.tolist()
    for value, code in zip(x.tolist(), want.tolist(), strict=True):
        product_index = int(apot_utils.float_to_apot(value, levels, indices, alpha))
        assert order.index(product_index) == code, value
        assert float(apot_utils.apot_to_float(product_index, levels, indices)) == float(ours[code])
