"""The lecture's one-hidden-layer network and its parameter vector.

    f(w; x) = A phi(B x) / sqrt(k),   A in R^{c x k} (c = 1 in the lecture), B in R^{k x d}

with every entry of A and B drawn iid N(0, 1). Samples are the rows of X, so on
a batch the network computes phi(X B^T) A^T / sqrt(k), shape (n, c).

The parameter vector w in R^{c k + k d} lists A first (row by row, for c = 1:
A_11 ... A_1k), then B row by row (B_11 ... B_1d, B_21 ...).

Example 1 is the same network with k = 2, d = 1 and no 1/sqrt(k) factor
(``scaled=False``).

Lecture: §2 (w and its order), §3 Example 1 and Theorem 1; FORMULAS.md §1; notebooks 01, 02.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import activations
from ._checks import as_samples, as_tensor, check_dtype, check_finite, check_int, check_ndim
from .device import randn


def init_params(d: int, k: int, c: int = 1, *, generator: torch.Generator,
                dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw A (c, k) and B (k, d) with iid N(0, 1) entries (A first, on the CPU generator).

    Args:
        d: input dimension; k: width; c: number of outputs.
        generator: an explicit CPU ``torch.Generator`` (see ``device.make_generator``).

    Returns:
        (A, B) on ``device`` with ``dtype``.
    """
    d, k, c = check_int(d, "d"), check_int(k, "k"), check_int(c, "c")
    dtype = check_dtype(dtype)
    A = randn(c, k, generator=generator, dtype=dtype, device=device)
    B = randn(k, d, generator=generator, dtype=dtype, device=device)
    return A, B


def _check_AB(A, B) -> tuple[torch.Tensor, torch.Tensor]:
    A = check_finite(check_ndim(as_tensor(A, "A"), 2, "A", "(c, k)"), "A")
    B = check_finite(check_ndim(as_tensor(B, "B", like=A), 2, "B", "(k, d)"), "B")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"B: expected shape (k, d) with k = {A.shape[1]}, the columns of A "
                         f"(shape (c, k) = {tuple(A.shape)}), got shape {tuple(B.shape)}"
                         + (" (were A and B swapped?)" if B.shape[1] == A.shape[0] else ""))
    return A, B


def forward(A, B, X, *, activation="relu_normalized", scaled: bool = True) -> torch.Tensor:
    """Evaluate f(w; x) = A phi(B x) / sqrt(k) on every row of X.

    Args:
        A: (c, k) tensor; B: (k, d) tensor; X: (n, d) tensor, rows are samples.
        activation: a name from ``activations.NAMES`` or an ``Activation``.
        scaled: divide by sqrt(k) (Theorem 1); False gives Example 1's network.

    Returns:
        (n, c) tensor of outputs.
    """
    A, B = _check_AB(A, B)
    X = as_samples(X, "X", like=A)
    if X.shape[1] != B.shape[1]:
        raise ValueError(f"X: expected {B.shape[1]} feature columns to match B {tuple(B.shape)}, "
                         f"got shape {tuple(X.shape)}")
    phi = activations.get(activation).phi
    out = phi(X @ B.T) @ A.T
    return out / math.sqrt(A.shape[1]) if scaled else out


def flatten(A, B) -> torch.Tensor:
    """Stack A and B into w in the lecture's order: A row by row, then B row by row."""
    A, B = _check_AB(A, B)
    return torch.cat([A.reshape(-1), B.reshape(-1)])


def unflatten(w, *, k: int, d: int, c: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``flatten``: split w of length c k + k d into A (c, k) and B (k, d)."""
    k, d, c = check_int(k, "k"), check_int(d, "d"), check_int(c, "c")
    w = check_ndim(as_tensor(w, "w"), 1, "w", "(p,)")
    if w.shape[0] != c * k + k * d:
        raise ValueError(f"w: expected length c*k + k*d = {c * k + k * d}, got {w.shape[0]}")
    return w[: c * k].reshape(c, k), w[c * k:].reshape(k, d)


class ShallowNet(nn.Module):
    """The lecture's network as a ``torch.nn.Module`` with parameters ``A`` and ``B``.

    ``forward(X)`` returns shape (n,) when c = 1 (a scalar output per sample) and
    (n, c) otherwise. Its parameters are registered A first, then B, so
    ``torch.func`` and ``parameters()`` see them in the lecture's order.
    """

    def __init__(self, A: torch.Tensor, B: torch.Tensor, *, activation="relu_normalized",
                 scaled: bool = True):
        super().__init__()
        A, B = _check_AB(A, B)
        self.A = nn.Parameter(A.detach().clone())
        self.B = nn.Parameter(B.detach().clone())
        self.activation = activations.get(activation)
        self.scaled = bool(scaled)

    @classmethod
    def init(cls, d: int, k: int, c: int = 1, *, generator: torch.Generator,
             activation="relu_normalized", scaled: bool = True, dtype=torch.float64,
             device=None) -> "ShallowNet":
        """Build a network with N(0, 1) weights drawn by ``init_params``."""
        A, B = init_params(d, k, c, generator=generator, dtype=dtype, device=device)
        return cls(A, B, activation=activation, scaled=scaled)

    @property
    def k(self) -> int:
        return self.A.shape[1]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        out = forward(self.A, self.B, X, activation=self.activation, scaled=self.scaled)
        return out[:, 0] if out.shape[1] == 1 else out

    def w(self) -> torch.Tensor:
        """The current parameters flattened in the lecture's order (detached)."""
        return flatten(self.A.detach(), self.B.detach())


def example1(*, generator: torch.Generator, activation="relu_normalized",
             dtype=torch.float64, device=None) -> ShallowNet:
    """Example 1's network: k = 2, d = 1, f_x(w) = A11 phi(B11 x) + A12 phi(B21 x).

    w = (A11, A12, B11, B21); no 1/sqrt(k) factor. Lecture: §2 Example 1; notebook 02.
    """
    return ShallowNet.init(1, 2, generator=generator, activation=activation, scaled=False,
                           dtype=dtype, device=device)
