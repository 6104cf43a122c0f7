"""``refquant demo``: post-training quantization end to end on scikit-learn's 8x8 digits (docs/demo.md).

Modules: ``model`` (data split, the CNN, numpy forward and backward, the shipped ``weights.npz``), ``train``
(Adam training and the STE fine-tune; ``python -m refquant.demo.train`` regenerates ``weights.npz``), ``ptq``
(weight schemes, calibration, the integer pipeline on ``refquant.fast`` and the float64 fake-quantized model),
``report`` (the rows, the mixed-precision choice, the table, the plot, and the command).

Importing this package imports neither scikit-learn (the ``demo`` extra, loaded by ``model.load_split``) nor
Numba (``refquant.fast``, loaded when the integer pipeline first runs).
"""

from __future__ import annotations

__all__: list[str] = []
