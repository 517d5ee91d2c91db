"""Full-batch gradient descent on the lecture's loss, with Example 3's stopping rules.

    L(A, B) = 1/2 sum_i (y_i - f(x_i))^2,   f(x) = sqrt(2/k) A relu(B x)
    (A, B) <- (A, B) - lr * grad L(A, B)

Stopping rules (Example 3), checked on the current parameters before every step:

- threshold (widths k >= ``patience_below`` = 15): stop as soon as L < ``threshold`` (2e-3);
- patience (widths k < 15): count the steps on which the loss did not decrease
  by more than a relative ``tol``, i.e. L_s >= (1 - tol) L_{s-1}; stop when the
  count exceeds ``patience`` (50). As in the lecture's footnote the count is
  cumulative (every such step counts, not only consecutive ones) and never resets;
- cap (every width): stop after ``max_steps`` updates.

A run reports the number of updates made (``steps``), the loss of the returned
parameters and the reason it stopped: "threshold", "patience" or "cap".

This module holds the one-network reference loop (plain autograd) and the
initial weights shared with the batched ``sweep.width_sweep``.

Lecture: Section 5, Example 3 and its footnote; FORMULAS.md §11, §13; notebook 06.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import network
from ._checks import as_samples, as_tensor, check_finite, check_int, check_real
from .device import make_generator

REASONS = ("threshold", "patience", "cap")
LR = 1e-2
THRESHOLD = 2e-3
PATIENCE = 50
PATIENCE_BELOW = 15
TOL = 1e-8
_SEED_STRIDE = 2 ** 20


def initial_params(seed: int, k: int, d: int = 2, *, dtype=torch.float64,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The starting weights of the width-k network of one seed: A (1, k), B (k, d) iid N(0, 1).

    A deterministic function of (seed, k, d): ``network.init_params(d, k)`` drawn on a
    fresh CPU generator seeded with seed * 2**20 + k. The batched sweep and the
    one-network reference therefore start from identical weights, whatever other
    widths are trained alongside. The draw is made in float64 and then cast, so a
    float32 run starts from the same weights rounded.

    Args:
        seed: int >= 0; k: width, 1 <= k < 2**20; d: input dimension (2 for (x, 1)).
    """
    seed, k = check_int(seed, "seed", minimum=0), check_int(k, "k")
    if k >= _SEED_STRIDE:
        raise ValueError(f"k: expected a width below {_SEED_STRIDE}, got {k}")
    gen = make_generator(seed * _SEED_STRIDE + k)
    A, B = network.init_params(d, k, generator=gen, dtype=torch.float64)
    return A.to(dtype=dtype, device=device), B.to(dtype=dtype, device=device)


def check_training_data(X, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate X (n, d) and y (n,): floating, finite, same dtype and device."""
    X = as_samples(X, "X")
    y = check_finite(as_tensor(y, "y", like=X), "y")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y: expected shape ({X.shape[0]},) to match X {tuple(X.shape)}, "
                         f"got {tuple(y.shape)}")
    return X, y


def check_rules(lr, threshold, patience, tol, max_steps, patience_below) -> tuple:
    """Validate the step size and the stopping-rule settings; return them cleaned."""
    return (check_real(lr, "lr", minimum=0.0, strict=True),
            check_real(threshold, "threshold", minimum=0.0),
            check_int(patience, "patience", minimum=0),
            check_real(tol, "tol", minimum=0.0),
            check_int(max_steps, "max_steps", minimum=0),
            check_int(patience_below, "patience_below", minimum=1))


def loss(A, B, X, y) -> torch.Tensor:
    """L = 1/2 sum_i (y_i - f(x_i))^2 for f(x) = sqrt(2/k) A relu(B x) (a 0-d tensor)."""
    r = network.forward(A, B, X)[:, 0] - y
    return 0.5 * (r * r).sum()


def loss_and_grad(A, B, X, y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss and its gradients by the §5 formulas (no autograd).

    With r_i = f(x_i) - y_i and z_i = B x_i, phi(z) = sqrt(2) max(0, z):
        dL/dA_1j = sum_i r_i phi(z_ij) / sqrt(k)
        dL/dB_jl = sum_i r_i A_1j phi'(z_ij) x_il / sqrt(k)

    Args:
        A: (1, k); B: (k, d); X: (n, d); y: (n,).

    Returns:
        (L, dL/dA (1, k), dL/dB (k, d)).

    Lecture: §5 (proof of Theorem 1); FORMULAS.md §5; notebook 06.
    """
    Z = X @ B.T                                   # (n, k)
    scale = math.sqrt(2.0 / A.shape[1])
    r = scale * torch.relu(Z) @ A[0] - y          # (n,)
    dA = scale * (r @ torch.relu(Z))[None, :]
    dB = scale * A[0][:, None] * (((Z > 0) * r[:, None]).T @ X)
    return 0.5 * (r * r).sum(), dA, dB


@dataclass(frozen=True)
class GDResult:
    """One trained network: final A (1, k), B (k, d), updates made, final loss, stop reason.

    ``losses`` holds the loss before every update and at the end (length steps + 1).
    """

    A: torch.Tensor
    B: torch.Tensor
    steps: int
    loss: float
    reason: str
    losses: torch.Tensor


def gradient_descent(A, B, X, y, *, lr: float = LR, threshold: float = THRESHOLD,
                     patience: int = PATIENCE, tol: float = TOL, max_steps: int = 10_000,
                     patience_below: int = PATIENCE_BELOW) -> GDResult:
    """Train one network by full-batch gradient descent with Example 3's stopping rules.

    The slow, obviously-correct reference: a plain loop with torch autograd. The
    rule is chosen by the width k = A.shape[1] (threshold if k >= patience_below,
    else patience); the cap applies always (see the module docstring).

    Args:
        A: (1, k) and B: (k, d) starting weights (not modified).
        X: (n, d) inputs, rows are samples (``data.with_bias`` for Example 3); y: (n,).
        lr: learning rate > 0; threshold: loss level of the threshold rule;
        patience: allowed count of non-decreasing steps; tol: relative decrease that
        counts as a decrease; max_steps: step cap; patience_below: width below which
        the patience rule replaces the threshold rule.

    Returns:
        ``GDResult``.

    Numerics:
        A step counts as a decrease only when L_s < (1 - tol) L_{s-1}: with tol = 1e-8 a
        change at the level of rounding (1e-16 relative) is never taken for progress, and
        a loss that is exactly constant (e.g. every unit dead) counts every step.

    Lecture: Section 5, Example 3; FORMULAS.md §11; notebook 06.
    """
    A, B = network._check_AB(A, B)
    if A.shape[0] != 1:
        raise ValueError(f"A: expected shape (1, k) (one output), got {tuple(A.shape)}")
    X, y = check_training_data(X, y)
    network.forward(A, B, X)  # shape and dtype checks against X
    lr, threshold, patience, tol, max_steps, patience_below = check_rules(
        lr, threshold, patience, tol, max_steps, patience_below)
    use_threshold = A.shape[1] >= patience_below
    A = A.detach().clone().requires_grad_(True)
    B = B.detach().clone().requires_grad_(True)
    steps, count, prev, losses = 0, 0, math.inf, []
    while True:
        L = loss(A, B, X, y)
        value = L.item()
        losses.append(value)
        if use_threshold and value < threshold:
            reason = "threshold"
            break
        if not use_threshold and not value < prev * (1.0 - tol):
            count += 1
            if count > patience:
                reason = "patience"
                break
        if steps >= max_steps:
            reason = "cap"
            break
        dA, dB = torch.autograd.grad(L, (A, B))
        with torch.no_grad():
            A -= lr * dA
            B -= lr * dB
        prev, steps = value, steps + 1
    return GDResult(A.detach(), B.detach(), steps, value, reason,
                    torch.tensor(losses, dtype=torch.float64))
