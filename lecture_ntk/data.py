"""Example 3's regression problem and the bias coordinate used by networks and kernels.

    g(x) = x + sin(10 x),   15 training inputs x_i ~ U[-1, 1],   y_i = g(x_i),
    test inputs: 1000 evenly spaced points of [-1, 1].

With d = 1 and no bias a ReLU network relu(B x) is a two-piece line through the
origin and cannot fit g (FORMULAS.md §11). We therefore feed every model the
input (x, 1): the second column of B acts as a hidden-layer bias, drawn N(0, 1)
like every other weight. The infinite-width NTK of these networks is the ReLU NTK
evaluated on the points (x, 1) (the off-sphere formula of §8), so networks and
kernel see exactly the same inputs.

Lecture: Section 5, Example 3, Figure 1; FORMULAS.md §8, §11; notebook 06.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import as_tensor, check_dtype, check_finite, check_int
from .device import rand


def g(x) -> torch.Tensor:
    """Example 3's target function g(x) = x + sin(10 x), elementwise.

    Args:
        x: tensor (any shape) or array of real numbers.

    Returns:
        A tensor of the same shape, dtype and device.
    """
    x = check_finite(as_tensor(x, "x"), "x")
    return x + torch.sin(10.0 * x)


def with_bias(x) -> torch.Tensor:
    """Append a constant coordinate: x of shape (n,) becomes X of shape (n, 2), rows (x_i, 1).

    A network on these inputs computes A phi(B (x, 1)) / sqrt(k), i.e. B[:, 0] are
    the input weights and B[:, 1] a hidden-layer bias initialised N(0, 1). The
    same rows go into ``kernels.ntk`` for the infinite-width limit.

    Args:
        x: (n,) tensor of scalar inputs (an (n, 1) column is accepted too).

    Returns:
        (n, 2) tensor with columns (x, 1), same dtype and device as x.

    Lecture: Example 3; FORMULAS.md §11 (the bias choice); notebook 06.
    """
    x = check_finite(as_tensor(x, "x"), "x")
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"x: expected shape (n,) or (n, 1) of scalar inputs, got {tuple(x.shape)}")
    return torch.stack([x, torch.ones_like(x)], dim=1)


@dataclass(frozen=True)
class Example3Data:
    """The training and test sets of Example 3 (1-D inputs; use ``with_bias`` for models).

    Attributes:
        x_train: (n_train,) inputs drawn from U[-1, 1].
        y_train: (n_train,) labels g(x_train).
        x_test: (n_test,) evenly spaced points of [-1, 1] (both ends included).
        y_test: (n_test,) labels g(x_test).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def example3(*, generator: torch.Generator, n_train: int = 15, n_test: int = 1000,
             dtype=torch.float64, device=None) -> Example3Data:
    """Draw Example 3's data: x_i ~ U[-1, 1] on ``generator``, y = g(x), and a test grid.

    The training inputs are 2 u - 1 with u ~ U[0, 1) drawn on the CPU generator
    (then moved to ``device``), so one seed gives the same points everywhere.

    Args:
        generator: explicit CPU ``torch.Generator`` (``device.make_generator``).
        n_train: number of training points (15 in the lecture).
        n_test: number of evenly spaced test points (1000 in the lecture), >= 2.

    Returns:
        ``Example3Data`` with 1-D tensors of ``dtype`` on ``device``.

    Lecture: Section 5, Example 3; FORMULAS.md §11; notebook 06.
    """
    n_train = check_int(n_train, "n_train")
    n_test = check_int(n_test, "n_test", minimum=2)
    dtype = check_dtype(dtype)
    x_train = 2.0 * rand(n_train, generator=generator, dtype=dtype, device=device) - 1.0
    x_test = torch.linspace(-1.0, 1.0, n_test, dtype=dtype, device=device)
    return Example3Data(x_train=x_train, y_train=g(x_train), x_test=x_test, y_test=g(x_test))
