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


def plot_example3(x_test, y_test, x_train, y_train, widths, test_mse, ntk_mse, curves: dict,
                  *, axes=None):
    """The lecture's Figure 1 in three panels (Example 3); draws arrays, computes nothing.

    (a) g on the test grid with the training points; (b) test MSE against width: mean over
    seeds with the min-max range, and the NTK as the k = infinity point (dashed line and
    marker at the right end); (c) learned functions, one curve per entry of ``curves``.

    Args:
        x_test, y_test: (m,) test grid and g on it; x_train, y_train: (n,) training data.
        widths: (W,) widths; test_mse: (S, W) test MSE per seed and width; ntk_mse: a number.
        curves: label -> (m,) predictions on x_test (e.g. widths 1, 10, 128 and the NTK).
        axes: three matplotlib axes, or None for a new 15 x 4 inch figure.

    Returns:
        The three axes.
    """
    if axes is None:
        axes = plt.subplots(1, 3, figsize=(15.0, 4.0))[1]
    ax_a, ax_b, ax_c = axes
    xt, xs, ys = to_numpy(x_test), to_numpy(x_train), to_numpy(y_train)
    for ax in (ax_a, ax_c):
        ax.plot(xt, to_numpy(y_test), color="0.5", lw=1.5, ls="--", label="g(x) = x + sin(10x)")
        ax.scatter(xs, ys, s=36, color="gold", edgecolor="k", zorder=5, label="training points")
    ax_a.set(xlabel="x", ylabel="y", title="(a) data and training samples")
    ax_a.legend(loc="upper left")
    k, mse = to_numpy(widths), to_numpy(test_mse)
    ax_b.fill_between(k, mse.min(0), mse.max(0), alpha=0.25, label="min-max over seeds")
    ax_b.plot(k, mse.mean(0), "o-", label="network of width k (mean)")
    k_inf = 2.0 * k.max()
    ax_b.axhline(float(ntk_mse), color="C3", ls="--", lw=1)
    ax_b.plot([k_inf], [float(ntk_mse)], "*", color="C3", ms=14, label="NTK (k = infinity)")
    ax_b.set_xscale("log")
    ax_b.set(xlabel="width k (log scale; star: k = infinity)", ylabel="test MSE",
             title="(b) test error against width")
    ax_b.legend()
    for label, y in curves.items():
        ax_c.plot(xt, to_numpy(y), lw=1.5, label=label)
    ax_c.set(xlabel="x", ylabel="f(x)", title="(c) learned functions")
    ax_c.legend(loc="lower right", fontsize=8)
    return axes
