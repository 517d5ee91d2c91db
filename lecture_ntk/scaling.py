"""Fitting power laws: the slope of log y against log x.

Used wherever the lecture predicts a rate, e.g. the finite-width error of the
NTK (Theorem 1) and ||H||_2 (Proposition 1), both O(1/sqrt(k)), slope -1/2.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def _as_positive_1d(v, name: str) -> np.ndarray:
    """v as a 1-D float64 array of finite positive reals, or TypeError/ValueError naming it."""
    if isinstance(v, torch.Tensor):
        if v.dtype.is_complex or v.dtype == torch.bool:
            raise TypeError(f"{name}: expected real numbers, got a tensor of dtype {v.dtype}")
        v = v.detach().cpu().double().numpy()
    elif isinstance(v, (str, bytes, numbers.Number)) or v is None:
        raise TypeError(f"{name}: expected a 1-D sequence of positive numbers, "
                        f"got {type(v).__name__}")
    a = np.asarray(v)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers (int or float), got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name}: expected a 1-D sequence of length >= 2, got shape {a.shape}")
    bad = ~(np.isfinite(a) & (a > 0))
    if bad.any():
        raise ValueError(f"{name}: expected finite positive values (logarithms are taken), got "
                         f"{int(bad.sum())} of {a.size} that are not, e.g. {float(a[bad][0])!r}")
    return a


def loglog_slope(x, y) -> float:
    """Least-squares slope of log(y) against log(x).

        log y_i ~ p log x_i + log C,   p = the fitted exponent in y ~ C x^p

    Lecture: Theorem 1 and Proposition 1 (rates O(1/sqrt(k)), slope -1/2); notebooks 01, 03, 05.

    Args:
        x, y: 1-D sequences (lists, numpy arrays or tensors) of finite positive real numbers,
            the same length >= 2; x must take at least two distinct values.

    Returns:
        The fitted exponent p in y ~ C x^p, as a python float.

    Raises:
        TypeError: for strings, complex or boolean values; ValueError for wrong shapes,
            unequal lengths, non-positive or non-finite values, or a constant x.
    """
    x, y = _as_positive_1d(x, "x"), _as_positive_1d(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"y: expected a 1-D sequence of equal length to x ({x.size}), "
                         f"got length {y.size}")
    if np.ptp(np.log(x)) == 0:
        raise ValueError(f"x: expected at least two distinct values, "
                         f"got all equal to {float(x[0])!r}")
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope)
