"""Fitting power laws: the slope of log y against log x.

Used wherever the lecture predicts a rate, e.g. the finite-width error of the
NTK (Theorem 1) and ||H||_2 (Proposition 1), both O(1/sqrt(k)), slope -1/2.
"""
from __future__ import annotations

import numpy as np
import torch


def loglog_slope(x, y) -> float:
    """Least-squares slope of log(y) against log(x).

    Args:
        x, y: 1-D sequences (lists, numpy arrays or tensors) of positive numbers, same length >= 2.

    Returns:
        The fitted exponent p in y ~ C x^p, as a python float.
    """
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"x, y: expected two 1-D sequences of equal length >= 2, got shapes "
                         f"{x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x, y: expected finite positive values (logarithms are taken)")
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope)
