"""Kernel regression with a Cholesky solve (never an explicit inverse).

    f(x) = K(x, X) (K(X, X) + ridge I)^{-1} y

With ridge = 0 this is the minimum-norm interpolant of the training data in the
kernel's feature space, the limit of gradient descent on the linearised network
started from zero (FORMULAS.md §3, §13). Several outputs share one kernel
matrix (§9): y may have shape (n, c).

Lecture: Definition 2 and the kernel regression predictor; FORMULAS.md §3, §9, §13; notebook 06.
"""
from __future__ import annotations

import torch

from ._checks import as_tensor, check_finite, check_real
from .precision import full_precision


def _check_inputs(K_train, y, K_test_train):
    K_train = check_finite(as_tensor(K_train, "K_train"), "K_train")
    if K_train.ndim != 2 or K_train.shape[0] != K_train.shape[1] or K_train.shape[0] == 0:
        raise ValueError("K_train: expected a square (n, n) matrix, "
                         f"got shape {tuple(K_train.shape)}")
    n = K_train.shape[0]
    K_test_train = as_tensor(K_test_train, "K_test_train", like=K_train)
    K_test_train = check_finite(K_test_train, "K_test_train")
    if K_test_train.ndim != 2 or K_test_train.shape[1] != n:
        raise ValueError(f"K_test_train: expected shape (m, {n}) to match K_train, "
                         f"got shape {tuple(K_test_train.shape)}")
    y = check_finite(as_tensor(y, "y", like=K_train), "y")
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"y: expected shape ({n},) or ({n}, c) to match K_train, "
                         f"got shape {tuple(y.shape)}")
    return K_train, y, K_test_train


def _check_symmetric(K_train: torch.Tensor) -> None:
    # A kernel matrix is symmetric up to rounding; a clearly asymmetric one is a bug upstream.
    scale = float(K_train.abs().max())
    gap = float((K_train - K_train.T).abs().max())
    tol = torch.finfo(K_train.dtype).eps ** 0.5 * max(scale, 1e-300)
    if gap > tol:
        raise ValueError(f"K_train: expected a symmetric matrix, got max |K - K^T| = {gap:.2e} "
                         f"(tolerance {tol:.1e})")


def _not_pd_error(M: torch.Tensor, ridge: float,
                  what: str = "the Cholesky factorisation failed") -> ValueError:
    eig = torch.linalg.eigvalsh(M.to(torch.float64))
    lo, hi = float(eig[0]), float(eig[-1])
    cond = f"{hi / lo:.2e}" if lo > 0 else "infinite (smallest eigenvalue <= 0)"
    return ValueError(
        f"K_train: expected a positive definite matrix (K_train + ridge I with ridge = {ridge:g}), "
        f"but {what} in {M.dtype}: smallest eigenvalue {lo:.3e}, "
        f"largest {hi:.3e}, condition number {cond}. Add a ridge (e.g. ridge=1e-8 * "
        f"trace/n = {1e-8 * float(torch.diagonal(M).mean()):.1e})"
        + (" or compute the kernel in float64." if M.dtype != torch.float64 else
           " (the kernel is already float64: a ridge is the remedy)."))


@full_precision()
def kernel_regression(K_train, y, K_test_train, *, ridge: float = 0.0) -> torch.Tensor:
    """Predict with kernel (ridge) regression: K_test_train (K_train + ridge I)^{-1} y.

    The linear system is solved by a Cholesky factorisation
    (``torch.linalg.cholesky_ex`` + ``torch.cholesky_solve``); no inverse is formed.

    Args:
        K_train: (n, n) symmetric positive definite kernel matrix K(X, X).
        y: (n,) labels, or (n, c) for c outputs sharing the kernel (§9).
        K_test_train: (m, n) kernel between test points (rows) and training points.
        ridge: ridge >= 0 added to the diagonal of K_train (0 = interpolation).

    Returns:
        (m,) predictions for (n,) labels, (m, c) for (n, c) labels; dtype and
        device of K_train. All three tensors must share dtype and device.

    Raises:
        ValueError: for bad shapes, non-finite entries, ridge < 0, an asymmetric
            K_train, when K_train + ridge I is not numerically positive definite, or
            when the predictions come out non-finite (the message gives the smallest
            eigenvalue and the condition number of K_train + ridge I, and says what
            to do: a ridge, or float64).
        TypeError: for non-floating inputs or mismatched dtypes.

    Numerics:
        K_train is symmetrised as (K + K^T) / 2 before the factorisation; an
        asymmetry larger than sqrt(machine eps) times max |K| is refused. A
        factorisation whose squared pivots span more than 1 / (n eps) counts as
        failed: the solve would have no correct digits left. float32 products run
        with TF32 off (``precision.full_precision``).

    Lecture: FORMULAS.md §3 (kernel regression), §9 (several outputs), §13; notebook 06.
    """
    K_train, y, K_test_train = _check_inputs(K_train, y, K_test_train)
    ridge = check_real(ridge, "ridge", minimum=0.0)
    _check_symmetric(K_train)
    n = K_train.shape[0]
    M = 0.5 * (K_train + K_train.T)
    if ridge > 0:
        M = M + ridge * torch.eye(n, dtype=M.dtype, device=M.device)
    L, info = torch.linalg.cholesky_ex(M)
    pivots = torch.diagonal(L) ** 2
    if int(info) != 0 or float(pivots.min()) <= n * torch.finfo(M.dtype).eps * float(pivots.max()):
        raise _not_pd_error(M, ridge)
    rhs = y[:, None] if y.ndim == 1 else y
    alpha = torch.cholesky_solve(rhs, L)
    out = K_test_train @ alpha
    if not bool(torch.isfinite(out).all()):  # e.g. overflow of huge coefficients in float32
        raise _not_pd_error(M, ridge, "the predictions are not finite")
    return out[:, 0] if y.ndim == 1 else out
