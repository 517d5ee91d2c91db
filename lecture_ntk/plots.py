"""Matplotlib helpers for the notebooks.

Every ``plot_*`` function takes arrays (numpy, lists, or CPU/GPU tensors), draws
them on an optional ``ax`` and returns that ``ax``; none computes anything the
notebook has not already computed and checked.
"""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch


def set_style() -> None:
    """A plain, readable style shared by every notebook (fixed size and resolution)."""
    mpl.rcParams.update({
        "figure.figsize": (6.0, 4.0),
        "figure.dpi": 80,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "font.size": 10,
    })


def to_numpy(x) -> np.ndarray:
    """A CPU numpy copy of a tensor, array or list (float64)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def _axes(ax):
    return ax if ax is not None else plt.subplots()[1]


def plot_curves(x, curves: dict, *, ax=None, xlabel="", ylabel="", title="", styles=None):
    """Draw several y(x) curves sharing one x, labelled by the keys of ``curves``."""
    ax = _axes(ax)
    styles = styles or {}
    for label, y in curves.items():
        ax.plot(to_numpy(x), to_numpy(y), label=label, **styles.get(label, {}))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if len(curves) > 1:
        ax.legend()
    return ax


def plot_loglog(x, curves: dict, *, ax=None, xlabel="", ylabel="", title="", ref_slope=None,
                ref_label=None):
    """Log-log curves with markers, plus an optional dashed reference line of slope ``ref_slope``.

    The reference line passes through the first point of the first curve.
    """
    ax = _axes(ax)
    for label, y in curves.items():
        ax.loglog(to_numpy(x), to_numpy(y), "o-", label=label)
    if ref_slope is not None:
        xs = to_numpy(x)
        y0 = to_numpy(next(iter(curves.values())))[0]
        ax.loglog(xs, y0 * (xs / xs[0]) ** ref_slope, "k--", lw=1,
                  label=ref_label or f"slope {ref_slope:g}")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    return ax


def plot_matrix(M, *, ax=None, title="", cmap="viridis"):
    """Show a matrix (e.g. a kernel Gram matrix) as an image with a colour bar."""
    ax = _axes(ax)
    im = ax.imshow(to_numpy(M), cmap=cmap)
    ax.figure.colorbar(im, ax=ax)
    ax.set(title=title)
    ax.grid(False)
    return ax
