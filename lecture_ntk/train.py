"""Full-batch gradient descent on the lecture's loss, with Example 3's stopping rules.

    L(A, B) = 1/2 sum_i (y_i - f(x_i))^2,   f(x) = sqrt(2/k) A relu(B x)
    (A, B) <- (A, B) - lr * grad L(A, B)

Stopping rules (Example 3), checked on the current parameters before every step:

- divergence (every width, checked first): stop when L is not finite or
  L > ``DIVERGENCE`` * max(L_0, 1/2 |y|^2) (1e3 times the larger of the starting loss and
  the loss of the zero function; the second term keeps a run that starts at a perfect fit,
  L_0 = 0, from being flagged for rounding noise);
- threshold (widths k >= ``patience_below`` = 15): stop as soon as L < ``threshold`` (2e-3);
- patience (widths k < 15): count the steps on which the loss did not decrease
  by more than a relative ``tol``, i.e. L_s >= (1 - tol) L_{s-1}; stop when the
  count exceeds ``patience`` (50). As in the lecture's footnote the count is
  cumulative (every such step counts, not only consecutive ones) and never resets;
- cap (every width): stop after ``max_steps`` updates.

A run reports the number of updates made (``steps``), the loss of the returned
parameters and the reason it stopped: one of ``REASONS``, "threshold", "patience",
"cap" or "diverged". A diverged run raises ``DivergenceError`` (a ValueError) whose
message gives the learning rate and the stability limit 2 / lambda_max(K(w0)) of
FORMULAS.md §13 (K(w0) = J J^T, the empirical NTK of the training points at the
starting weights, ``stability_limit``); the run itself is kept in the exception's
``result``. Why 1e3: for the linearised model above the limit the loss grows like
(1 - lr lambda_max)^(2 s), past any fixed level within a few steps. A ReLU network
rarely reaches inf: a large step kills its units. On Example 3 (seeds 0-3, widths 1-256,
lr from 1.1 to 100 times the limit) every run whose loss passed the ceiling ended with
every unit dead (no unit active on any training point, L = 1/2 |y|^2), while the
"catapults" that came back down to fit the data peaked below 7e2 max(L_0, 1/2 |y|^2).

This module holds the one-network reference loop (plain autograd) and the
initial weights shared with the batched ``sweep.width_sweep``.

Lecture: Section 5, Example 3 and its footnote; FORMULAS.md §11, §13; notebook 06.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import empirical, network
from ._checks import (as_samples, as_tensor, check_device, check_dtype, check_finite, check_int,
                      check_real)
from .device import make_generator

REASONS = ("threshold", "patience", "cap", "diverged")
LR = 1e-2
THRESHOLD = 2e-3
PATIENCE = 50
PATIENCE_BELOW = 15
TOL = 1e-8
DIVERGENCE = 1e3
_SEED_STRIDE = 2 ** 20


class DivergenceError(ValueError):
    """Gradient descent diverged: ``lr`` is above the stability limit 2 / lambda_max(K(w0)).

    A ValueError: the argument ``lr`` is too large for these data and starting weights.

    Attributes:
        lr: the learning rate used.
        limit: 2 / lambda_max(K(w0)) (``stability_limit``); for a sweep the smallest over
            the diverged networks. inf when K(w0) = 0, nan when K(w0) overflows.
        networks: ((seed, k), ...) of the diverged networks of a sweep; () for one network.
        limits: {(seed, k): limit} for a sweep; {} for one network.
        result: the run with reason "diverged" where it diverged (``GDResult`` or
            ``sweep.SweepResult``, every other network trained to its own rule).
    """

    def __init__(self, message: str, *, lr: float, limit: float, result, networks=(),
                 limits=None):
        super().__init__(message)
        self.lr, self.limit, self.result = lr, limit, result
        self.networks, self.limits = tuple(networks), dict(limits or {})


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
        dtype: torch.float32 or torch.float64; device: None (CPU), a torch.device or a name.
    """
    seed, k = check_int(seed, "seed", minimum=0), check_int(k, "k")
    dtype, device = check_dtype(dtype), check_device(device)
    if k >= _SEED_STRIDE:
        raise ValueError(f"k: expected a width below {_SEED_STRIDE}, got {k}")
    gen = make_generator(seed * _SEED_STRIDE + k)
    A, B = network.init_params(d, k, generator=gen, dtype=torch.float64)
    return A.to(dtype=dtype, device=device), B.to(dtype=dtype, device=device)


def check_network(A, B, X) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate A (1, k), B (k, d) and X (n >= 1, d): floating, finite, same dtype and device."""
    A, B = network._check_AB(A, B)
    if A.shape[0] != 1:
        raise ValueError(f"A: expected shape (1, k) (one output), got {tuple(A.shape)}")
    X = as_samples(X, "X", like=A)
    if X.shape[1] != B.shape[1]:
        raise ValueError(f"X: expected {B.shape[1]} feature columns to match B {tuple(B.shape)}, "
                         f"got shape {tuple(X.shape)}")
    return A, B, X


def check_training_data(X, y, *, like: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate X (n >= 1, d) and y (n,): floating, finite, same dtype and device (as ``like``)."""
    X = as_samples(X, "X", like=like)
    if X.shape[0] == 0:
        raise ValueError(f"X: expected at least one sample (row), got shape {tuple(X.shape)}")
    y = check_finite(as_tensor(y, "y", like=X), "y")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y: expected shape ({X.shape[0]},) to match X {tuple(X.shape)}, "
                         f"got {tuple(y.shape)}")
    return X, y


def _check_tol(tol) -> float:
    tol = check_real(tol, "tol", minimum=0.0)
    if tol >= 1.0:
        raise ValueError(f"tol: expected a relative decrease in [0, 1) (a step counts as a decrease "
                         f"when L_s < (1 - tol) L_(s-1)), got {tol}")
    return tol


def check_rules(lr, threshold, patience, tol, max_steps, patience_below) -> tuple:
    """Validate the step size and the stopping-rule settings; return them cleaned."""
    return (check_real(lr, "lr", minimum=0.0, strict=True),
            check_real(threshold, "threshold", minimum=0.0),
            check_int(patience, "patience", minimum=0),
            _check_tol(tol),
            check_int(max_steps, "max_steps", minimum=0),
            check_int(patience_below, "patience_below", minimum=1))


def loss(A, B, X, y) -> torch.Tensor:
    """L = 1/2 sum_i (y_i - f(x_i))^2 for f(x) = sqrt(2/k) A relu(B x) (a 0-d tensor).

    Args: A (1, k); B (k, d); X (n, d); y (n,), one dtype and device.
    """
    A, B, X = check_network(A, B, X)
    X, y = check_training_data(X, y)
    return _loss(A, B, X, y)


def _loss(A, B, X, y) -> torch.Tensor:
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
    A, B, X = check_network(A, B, X)
    X, y = check_training_data(X, y)
    Z = X @ B.T                                   # (n, k)
    scale = math.sqrt(2.0 / A.shape[1])
    r = scale * torch.relu(Z) @ A[0] - y          # (n,)
    dA = scale * (r @ torch.relu(Z))[None, :]
    dB = scale * A[0][:, None] * (((Z > 0) * r[:, None]).T @ X)
    return 0.5 * (r * r).sum(), dA, dB


def stability_limit(A, B, X) -> float:
    """The largest stable learning rate of full-batch gradient descent, 2 / lambda_max(K(w)).

        K(w) = J J^T (n, n),  J = d f(X) / d w  (``empirical.shallow_ntk``)
        stable iff lr < 2 / lambda_max(K)  (f_{s+1} - y = (I - lr K)(f_s - y))

    For L = 1/2 sum (y - f)^2 the Hessian in function space is K, so this is the limit of
    the linearised model exactly and of the network at the weights w = (A, B).

    Lecture: Definition 2, §5; FORMULAS.md §5, §13; notebook 06.

    Args:
        A: (1, k); B: (k, d) weights (a run's starting weights w0); X: (n, d) training inputs.

    Returns:
        2 / lambda_max as a python float; inf when K = 0 (e.g. every unit dead); nan when
        K is not finite (inputs or weights so large that J J^T overflows float64).

    Numerics: computed in float64 whatever the dtype of the inputs (an n x n ``eigvalsh``).
    The kernel of a finite network moves during training (by O(1/sqrt(k)) for wide ones),
    so the limit at w0 is a guide for the whole run, not a guarantee.
    """
    A, B, X = check_network(A, B, X)
    K = empirical.shallow_ntk(A.double(), B.double(), X.double())
    if not bool(torch.isfinite(K).all()):
        return math.nan
    lam = float(torch.linalg.eigvalsh(K)[-1]) if K.numel() else 0.0
    return 2.0 / lam if lam > 0 else math.inf


def _ceiling(L0: float, y: torch.Tensor) -> float:
    """DIVERGENCE * max(L_0, 1/2 |y|^2): a loss above it counts as diverged (module docstring)."""
    return DIVERGENCE * max(L0, 0.5 * float((y * y).sum()))


def _diverged(value: float, ceiling: float) -> bool:
    return not math.isfinite(value) or value > ceiling


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

    def __repr__(self) -> str:
        k, d = self.B.shape
        return (f"GDResult(k={k}, d={d}, steps={self.steps}, loss={self.loss:.4g}, "
                f"reason={self.reason!r}, losses=<{len(self.losses)} values>)")


def gradient_descent(A, B, X, y, *, lr: float = LR, threshold: float = THRESHOLD,
                     patience: int = PATIENCE, tol: float = TOL, max_steps: int = 10_000,
                     patience_below: int = PATIENCE_BELOW) -> GDResult:
    """Train one network by full-batch gradient descent with Example 3's stopping rules.

    The slow, obviously-correct reference: a plain loop with torch autograd. The
    rule is chosen by the width k = A.shape[1] (threshold if k >= patience_below,
    else patience); the divergence check and the cap apply always (module docstring).

    Args:
        A: (1, k) and B: (k, d) starting weights (not modified).
        X: (n, d) inputs, rows are samples (``data.with_bias`` for Example 3); y: (n,).
        lr: learning rate > 0; threshold: loss level of the threshold rule;
        patience: allowed count of non-decreasing steps; tol: relative decrease that
        counts as a decrease; max_steps: step cap (10,000 by default for this reference
        loop; the batched ``sweep.width_sweep`` defaults to 100,000, as Example 3 needs);
        patience_below: width below which the patience rule replaces the threshold rule.

    Returns:
        ``GDResult``.

    Raises:
        DivergenceError: when L becomes non-finite or exceeds 1e3 max(L_0, 1/2 |y|^2); the
            message names lr and 2 / lambda_max(K(w0)), ``.result`` holds the run.

    Numerics:
        A step counts as a decrease only when L_s < (1 - tol) L_{s-1}: with tol = 1e-8 a
        change at the level of rounding (1e-16 relative) is never taken for progress, and
        a loss that is exactly constant (e.g. every unit dead) counts every step.

    Lecture: Section 5, Example 3; FORMULAS.md §11, §13; notebook 06.
    """
    A, B, X = check_network(A, B, X)
    X, y = check_training_data(X, y)
    lr, threshold, patience, tol, max_steps, patience_below = check_rules(
        lr, threshold, patience, tol, max_steps, patience_below)
    use_threshold = A.shape[1] >= patience_below
    A0, B0 = A, B
    A = A.detach().clone().requires_grad_(True)
    B = B.detach().clone().requires_grad_(True)
    steps, count, prev, losses, ceiling = 0, 0, math.inf, [], None
    while True:
        L = _loss(A, B, X, y)
        value = L.item()
        losses.append(value)
        ceiling = _ceiling(value, y) if ceiling is None else ceiling
        if _diverged(value, ceiling):
            reason = "diverged"
            break
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
    result = GDResult(A.detach(), B.detach(), steps, value, reason,
                      torch.tensor(losses, dtype=torch.float64))
    if reason == "diverged":
        limit = stability_limit(A0, B0, X)
        raise DivergenceError(
            f"gradient_descent: the loss diverged at step {steps} (L = {value:.3g}, "
            f"L_0 = {losses[0]:.3g}; {_rule(ceiling, steps, X.dtype)}) with lr = {lr:.6g}. "
            f"{_advice(limit, X.shape[0])} The run up to the divergence is in the exception's "
            ".result.", lr=lr, limit=limit, result=result)
    return result


def _rule(ceiling: float, step: int, dtype) -> str:
    """Which rule fired, for the messages of both training loops."""
    if step == 0 and not math.isfinite(ceiling):
        return f"the loss at the starting weights is not finite in {dtype}: rescale the data"
    return (f"the rule: L not finite or L > {DIVERGENCE:g} x max(L_0, |y|^2 / 2) = "
            f"{ceiling:.3g}")


def _advice(limit: float, n: int) -> str:
    """The sentences on the stability limit 2 / lambda_max(K(w0)) shared by both loops."""
    if math.isnan(limit):
        return ("The stability limit 2 / lambda_max(K(w0)) could not be computed: the empirical "
                f"NTK Gram matrix K(w0) = J J^T of the n = {n} training points overflows float64 "
                "at the starting weights; rescale the inputs.")
    if not math.isfinite(limit):
        return ("2 / lambda_max(K(w0)) = inf: the empirical NTK Gram matrix K(w0) = J J^T of "
                f"the n = {n} training points is zero at the starting weights (no unit active), "
                "so no learning rate should diverge; check the data for overflow.")
    return (f"Full-batch gradient descent on L = 1/2 sum (y - f)^2 is stable for lr < 2 / "
            f"lambda_max(K(w0)) = {limit:.6g}, where lambda_max = {2.0 / limit:.6g} is the "
            f"largest eigenvalue of the empirical NTK Gram matrix K(w0) = J J^T of the n = {n} "
            f"training points at the starting weights (FORMULAS.md §13); use a smaller lr, "
            f"e.g. {0.5 * limit:.3g}.")
