"""Kernel regression at scale: preconditioned conjugate gradients without the n x n matrix.

    f(x) = K(x, X) alpha,   (K(X, X) + ridge I) alpha = y

``kernel_regression_cg`` solves for alpha by preconditioned conjugate gradients (PCG).
Every product K v is assembled from row blocks K(X_blk, X) computed on the fly by the
kernel (``kernels.ntk`` by default) and dropped at once, so memory is O(n d + block n);
with X2 = X only blocks on and above the diagonal are computed (each used twice).
``kernel_regression_auto`` uses the Cholesky solve of ``regression.kernel_regression``
while the matrices fit in ``memory_budget`` and PCG beyond.

Preconditioner "nystrom": a rank-r pivoted Cholesky factor L (K ~ L L^T, greedy pivots),
L = U S V^T, Lambda = S^2, mu = ridge, and (Frangella, Tropp and Udell's Nystrom PCG)
    P^{-1} = (lambda_r + mu) U (Lambda + mu I)^{-1} U^T + (I - U U^T).
"jacobi": P = diag(K) + ridge I.

Numerics: float32 products run with TF32 off (``precision.full_precision``), the kernel
calls included; a kernel that returns non-finite values or the wrong shape is refused
with a ValueError naming ``kernel``.

Lecture: Definition 2 and the kernel regression predictor; FORMULAS.md §3, §9, §13.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch

from . import kernels, regression
from ._checks import as_samples, as_tensor, check_finite, check_int, check_real, check_same_d
from .precision import full_precision

MEMORY_BUDGET = 512 * 2**20     # bytes for kernel blocks (the data and alpha are extra)
PRECONDITIONERS = ("nystrom", "jacobi", "none")
_BLOCK_COPIES = 12              # (block, n) temporaries alive inside one kernel call, estimated


class ConvergenceError(RuntimeError):
    """PCG did not reach the requested tolerance within ``max_iter`` iterations."""


@dataclass
class SolveResult:
    """Predictions of kernel regression and how they were obtained.

    predictions: (m,) or (m, c); alpha: (n,) or (n, c), (K(X, X) + ridge I)^{-1} y;
    method: "cg" or "cholesky"; iterations: PCG iterations (0 for Cholesky);
    relative_residual: max over columns of |(K + ridge I) alpha - y| / |y| (for PCG
    the recursively updated residual, for Cholesky the true one).
    """

    predictions: torch.Tensor
    alpha: torch.Tensor
    method: str
    iterations: int
    relative_residual: float


def _kernel_fn(kernel, activation, depth):
    if kernel is None:
        return partial(kernels.ntk, activation=activation, depth=depth)
    if not callable(kernel):
        raise TypeError(f"kernel: expected None (kernels.ntk) or a callable (X1, X2=None) -> "
                        f"(n1, n2) tensor, got {type(kernel).__name__}")
    return _checked(kernel, "kernel")


def _checked(kernel, name):
    """Wrap a user kernel so that each call returns an (n1, n2) tensor like X1, or raises."""
    if not callable(kernel):
        raise TypeError(f"{name}: expected a callable (X1, X2=None) -> (n1, n2) tensor, "
                        f"got {type(kernel).__name__}")

    def fn(X1, X2=None):
        K = kernel(X1, X2)
        shape = (X1.shape[0], (X1 if X2 is None else X2).shape[0])
        if not isinstance(K, torch.Tensor) or K.shape != shape or K.dtype != X1.dtype \
                or K.device != X1.device:
            got = (f"shape {tuple(K.shape)}, {K.dtype} on {K.device}"
                   if isinstance(K, torch.Tensor) else type(K).__name__)
            raise ValueError(f"{name}: expected an {shape} tensor of {X1.dtype} on {X1.device} "
                             f"for rows of shapes {tuple(X1.shape)} and "
                             f"{'None' if X2 is None else tuple(X2.shape)}, got {got}")
        return K
    return fn


def _check_finite_kernel(t, what, name="kernel"):
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got {int((~torch.isfinite(t)).sum())} "
                         f"NaN/inf entries in {what}")
    return t


def _block_rows(n, item, chunk_size, budget):
    if chunk_size is not None:
        return check_int(chunk_size, "chunk_size")
    # Blocks of about n / 4 rows: with the symmetric product 5/8 of K is evaluated per
    # product, and each kernel call is large enough to amortise its fixed cost.
    return max(1, min(n, max(256, -(-n // 4)), budget // (_BLOCK_COPIES * item * n)))


@full_precision()
def kernel_matvec(kernel_fn, X, V, *, ridge: float = 0.0, chunk_size: int) -> torch.Tensor:
    """(K(X, X) + ridge I) V from row blocks, never holding more than one block of K.

    Block i gives K(X_i, X_i) and K(X_i, X_{j > i}); the latter multiplies V_{j > i} for
    rows i and, transposed, V_i for the rows below: each pair of rows is evaluated once.

    Lecture: FORMULAS.md §3, §13 (the products K v of gradient descent and of PCG).

    Args:
        kernel_fn: callable (X1, X2=None) -> (n1, n2) tensor, symmetric: K(X1, X2) =
            K(X2, X1)^T, and X2 = None meaning X1 (as ``kernels.ntk``).
        X: (n, d) tensor; V: (n,) or (n, c) tensor like X; ridge >= 0; chunk_size: rows
            per block, >= 1.

    Returns:
        (K(X, X) + ridge I) V, the shape of V.
    """
    fn = _checked(kernel_fn, "kernel_fn")
    X = as_samples(X, "X")
    V = check_finite(as_tensor(V, "V", like=X), "V")
    if V.ndim not in (1, 2) or V.shape[0] != X.shape[0]:
        raise ValueError(f"V: expected shape ({X.shape[0]},) or ({X.shape[0]}, c) to match X, "
                         f"got shape {tuple(V.shape)}")
    ridge = check_real(ridge, "ridge", minimum=0.0)
    return _matvec(fn, X, V, ridge, check_int(chunk_size, "chunk_size"))


def _matvec(kernel_fn, X, V, ridge, chunk_size):
    out = ridge * V if ridge else torch.zeros_like(V)
    n = X.shape[0]
    for s in range(0, n, chunk_size):
        e = min(n, s + chunk_size)
        out[s:e] += kernel_fn(X[s:e], None) @ V[s:e]
        if e < n:
            Kb = kernel_fn(X[s:e], X[e:])
            out[s:e] += Kb @ V[e:]
            out[e:] += Kb.T @ V[s:e]
    return out


def _diagonal(kernel_fn, X, chunk_size):
    """diag K(X, X) from diagonal blocks of at most 256 rows.

    Numerics: each block is K(X_b, None), so the kernel sees x = x~ exactly (for ReLU
    kernels cos = 1 bit for bit, where a separately computed cos = 1 - 1e-16 would
    move K(x, x) by ~1e-8 through sqrt(1 - cos^2)).
    """
    b = min(chunk_size, 256)
    return torch.cat([kernel_fn(X[s:s + b], None).diagonal() for s in range(0, X.shape[0], b)])


@full_precision()
def pivoted_cholesky(kernel_fn, X, rank: int, *, diag=None, block: int = 32) -> torch.Tensor:
    """Greedy pivoted Cholesky factor L (n, r <= rank) with K(X, X) ~ L L^T.

    Each step takes the row i with the largest residual diagonal d_i and adds the column
    (K(X, x_i) - L L_i^T) / sqrt(d_i); it stops early once max d_i <= 1e-12 max diag K.
    Kernel columns are fetched ``block`` at a time, for the rows of largest d_i, and the
    greedy choice runs among them (one kernel call per block instead of per column).

    Lecture: FORMULAS.md §3 (a low-rank approximation of K(X, X), for the preconditioner).

    Args:
        kernel_fn: callable (X1, X2=None) -> (n1, n2) tensor (as ``kernel_matvec``).
        X: (n, d) tensor; rank: columns at most, >= 1; diag: None or diag K(X, X), (n,)
            like X; block: kernel columns fetched per call, >= 1.

    Numerics: the residual diagonal is clamped at 0 (rounding can push it below).
    """
    fn, X = _checked(kernel_fn, "kernel_fn"), as_samples(X, "X")
    rank, block = check_int(rank, "rank"), check_int(block, "block")
    if diag is not None:
        diag = check_finite(as_tensor(diag, "diag", like=X), "diag")
        if diag.shape != (X.shape[0],):
            raise ValueError(f"diag: expected shape ({X.shape[0]},) to match X, "
                             f"got shape {tuple(diag.shape)}")
    return _pivoted_cholesky(fn, X, rank, diag, block)


def _pivoted_cholesky(kernel_fn, X, rank, diag=None, block=32):
    n = X.shape[0]
    d = (_diagonal(kernel_fn, X, 256) if diag is None else diag).clone()
    L = torch.zeros(n, min(rank, n), dtype=X.dtype, device=X.device)
    stop, j = 1e-12 * float(d.max()), 0
    while j < L.shape[1]:
        cand = torch.topk(d, min(block, L.shape[1] - j)).indices
        if float(d[cand[0]]) <= stop:
            break
        C = kernel_fn(X, X[cand]) - L[:, :j] @ L[cand, :j].T    # residual columns (n, b)
        for _ in range(cand.shape[0]):
            t = int(torch.argmax(d[cand]))
            i = int(cand[t])
            if float(d[i]) <= stop:
                break
            L[:, j] = C[:, t] / math.sqrt(float(d[i]))
            C -= L[:, j:j + 1] * L[cand, j][None, :]
            d = (d - L[:, j] ** 2).clamp_min_(0.0)
            d[i] = 0.0
            j += 1
    return L[:, :j]


def _preconditioner(name, kernel_fn, X, ridge, rank, chunk_size):
    """A function r -> P^{-1} r, see the module docstring."""
    if name == "none":
        return lambda r: r
    diag = _check_finite_kernel(_diagonal(kernel_fn, X, chunk_size), "diag K(X_train, X_train)")
    if name == "jacobi":
        inv = 1.0 / (diag + ridge).clamp_min(torch.finfo(X.dtype).tiny)
        return lambda r: r * inv[:, None]
    L = _pivoted_cholesky(kernel_fn, X, rank, diag=diag)
    U, S, _ = torch.linalg.svd(L, full_matrices=False)
    keep = S > S.max() * 1e-8 if S.numel() else S > 0
    U, lam = U[:, keep], S[keep] ** 2
    if lam.numel() == 0:
        return lambda r: r
    scale = (lam[-1] + ridge) / (lam + ridge) - 1.0
    return lambda r: r + U @ (scale[:, None] * (U.T @ r))


def _pcg(matvec, precond, Y, tol, max_iter):
    """Block PCG on the columns of Y; returns (alpha, iterations, relative residuals)."""
    alpha = torch.zeros_like(Y)
    r = Y.clone()
    norm_y = torch.linalg.norm(Y, dim=0).clamp_min(torch.finfo(Y.dtype).tiny)
    res = torch.linalg.norm(r, dim=0) / norm_y
    z = precond(r)
    p, rz = z, (r * z).sum(0)
    for it in range(1, max_iter + 1):
        done = res <= tol
        if bool(done.all()):
            return alpha, it - 1, res
        Ap = matvec(p)
        pAp = (p * Ap).sum(0)
        if bool(((pAp <= 0) & ~done).any()):
            raise ValueError(f"kernel: K(X, X) + ridge I is not positive definite (p^T K p = "
                             f"{float(pAp.min()):.2e} at iteration {it}); use a positive "
                             "definite kernel or a ridge > 0")
        a = torch.where(done, 0.0, rz / torch.where(done, 1.0, pAp))
        alpha += a * p
        r = r - a * Ap  # not in place: z (and so p) may be r itself
        res = _check_finite_kernel(torch.linalg.norm(r, dim=0) / norm_y,
                                   f"the PCG residual at iteration {it} (products K v)")
        z = precond(r)
        rz_new = (r * z).sum(0)
        p = z + torch.where(done, 0.0, rz_new / torch.where(done, 1.0, rz)) * p
        rz = rz_new
    return alpha, max_iter, res


def _check_data(X_train, y, X_test):
    X_train = as_samples(X_train, "X_train")
    if X_train.shape[0] == 0:
        raise ValueError("X_train: expected at least one sample, got shape (0, d)")
    X_test = as_samples(X_test, "X_test", like=X_train)
    check_same_d(X_train, X_test, ("X_train", "X_test"))
    y = check_finite(as_tensor(y, "y", like=X_train), "y")
    if y.ndim not in (1, 2) or y.shape[0] != X_train.shape[0]:
        raise ValueError(f"y: expected shape ({X_train.shape[0]},) or ({X_train.shape[0]}, c) to "
                         f"match X_train, got shape {tuple(y.shape)}")
    return X_train, y, X_test


def _predict(kernel_fn, X_test, X_train, alpha, chunk_size):
    return torch.cat([kernel_fn(X_test[s:s + chunk_size], X_train) @ alpha
                      for s in range(0, X_test.shape[0], chunk_size)])


@full_precision()
def kernel_regression_cg(X_train, y, X_test, *, kernel=None, activation="relu_normalized",
                         depth: int = 1, ridge: float = 0.0, tol: float = 1e-8,
                         max_iter: int = 1000, preconditioner: str = "nystrom", rank: int = 100,
                         chunk_size: int | None = None,
                         memory_budget: int = MEMORY_BUDGET) -> SolveResult:
    """Kernel regression by matrix-free preconditioned conjugate gradients.

    f(x) = K(x, X) alpha with (K(X, X) + ridge I) alpha = y, stopped when
    |(K + ridge I) alpha - y| <= tol |y| for every column of y.

    Lecture: Definition 2 and the kernel regression predictor; FORMULAS.md §3, §9, §13.

    Args:
        X_train: (n, d) tensor, rows are samples; y: (n,) or (n, c) labels (§9: c outputs
            share one kernel); X_test: (m, d) tensor. Same dtype and device.
        kernel: None for ``kernels.ntk(X1, X2, activation=activation, depth=depth)``, or any
            symmetric positive (semi)definite callable (X1, X2=None) -> (n1, n2) tensor
            (None meaning X1, as in ``kernels.ntk``), e.g.
            ``functools.partial(fast_ntk.mlp_ntk, model)`` for an empirical NTK.
        ridge: ridge >= 0 added to the diagonal; tol: relative residual > 0;
        max_iter: PCG iterations at most.
        preconditioner: "nystrom" (rank-``rank`` pivoted Cholesky), "jacobi" or "none".
        chunk_size: rows per kernel block; default from ``memory_budget`` (bytes).

    Returns:
        ``SolveResult`` with predictions (m,) or (m, c), alpha, iterations, residual.

    Raises:
        ConvergenceError: if the residual is still above tol after max_iter iterations.
        ValueError: if K + ridge I is found not positive definite, or for bad inputs.

    Numerics: the residual is updated recursively (r -= a K p); in float64 it tracks the
    true residual closely down to ~1e-12 times the condition number.
    """
    X_train, y, X_test = _check_data(X_train, y, X_test)
    fn = _kernel_fn(kernel, activation, depth)
    ridge = check_real(ridge, "ridge", minimum=0.0)
    tol = check_real(tol, "tol", minimum=0.0, strict=True)
    max_iter, rank = check_int(max_iter, "max_iter"), check_int(rank, "rank")
    preconditioner = "none" if preconditioner is None else preconditioner
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner: expected one of {', '.join(PRECONDITIONERS)}, "
                         f"got {preconditioner!r}")
    budget = check_int(memory_budget, "memory_budget")
    b = _block_rows(X_train.shape[0], X_train.element_size(), chunk_size, budget)
    Y = y[:, None] if y.ndim == 1 else y
    precond = _preconditioner(preconditioner, fn, X_train, ridge, rank, b)
    alpha, it, res = _pcg(lambda V: _matvec(fn, X_train, V, ridge, b), precond, Y, tol, max_iter)
    worst = float(res.max())
    if worst > tol:
        mean_diag = float(_diagonal(fn, X_train[:256], b).mean())
        raise ConvergenceError(
            f"kernel_regression_cg: relative residual {worst:.2e} > tol = {tol:g} after "
            f"max_iter = {max_iter} iterations; K(X, X) + ridge I is ill conditioned for this "
            f"budget. Raise max_iter, use preconditioner='nystrom' with a larger rank (now "
            f"{rank}, preconditioner={preconditioner!r}), add a ridge (e.g. ridge = 1e-6 x mean "
            f"diagonal = {1e-6 * mean_diag:.1e}), or, while n x n fits in memory, use "
            "regression.kernel_regression (Cholesky).")
    pred = _check_finite_kernel(_predict(fn, X_test, X_train, alpha, b),
                                "the predictions K(X_test, X_train) alpha")
    if y.ndim == 1:
        alpha, pred = alpha[:, 0], pred[:, 0]
    return SolveResult(pred, alpha, "cg", it, worst)


@full_precision()
def kernel_regression_auto(X_train, y, X_test, *, method: str = "auto", kernel=None,
                           activation="relu_normalized", depth: int = 1, ridge: float = 0.0,
                           memory_budget: int = MEMORY_BUDGET, **cg_options) -> SolveResult:
    """Kernel regression by Cholesky while it fits in ``memory_budget``, else by PCG.

    f(x) = K(x, X) (K(X, X) + ridge I)^{-1} y.  The direct route needs about
    (4 n^2 + m n) numbers (K_train, its factor, an identity to recover alpha, K_test_train).

    Lecture: FORMULAS.md §3, §9, §13.

    Args:
        method: "auto", "cholesky" (``regression.kernel_regression``) or "cg"
            (``kernel_regression_cg``, which receives ``cg_options``).
        Others: as ``kernel_regression_cg``.
    """
    if method not in ("auto", "cholesky", "cg"):
        raise ValueError(f"method: expected 'auto', 'cholesky' or 'cg', got {method!r}")
    X_train, y, X_test = _check_data(X_train, y, X_test)
    budget = check_int(memory_budget, "memory_budget")
    n, m = X_train.shape[0], X_test.shape[0]
    need = X_train.element_size() * (4 * n * n + m * n)
    if method == "cg" or (method == "auto" and need > budget):
        return kernel_regression_cg(X_train, y, X_test, kernel=kernel, activation=activation,
                                    depth=depth, ridge=ridge, memory_budget=memory_budget,
                                    **cg_options)
    fn = _kernel_fn(kernel, activation, depth)
    K_train = fn(X_train, None)
    eye = torch.eye(n, dtype=K_train.dtype, device=K_train.device)
    out = regression.kernel_regression(K_train, y, torch.cat([fn(X_test, X_train), eye]),
                                       ridge=ridge)
    pred, alpha = out[:m], out[m:]
    Y = y[:, None] if y.ndim == 1 else y
    A = alpha[:, None] if y.ndim == 1 else alpha
    norm_y = torch.linalg.norm(Y, dim=0).clamp_min(torch.finfo(Y.dtype).tiny)
    res = torch.linalg.norm(K_train @ A + ridge * A - Y, dim=0) / norm_y
    return SolveResult(pred, alpha, "cholesky", 0, float(res.max()))
