"""Tests for lecture_ntk.solvers: matrix-free PCG against the Cholesky solve of
regression.kernel_regression on the same kernel (float64)."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from conftest import assert_close
from lecture_ntk import device as dev, fast_ntk, kernels, regression, solvers


def _data(gen, n=80, m=20, d=20, c=None, device="cpu"):
    X = dev.randn(n, d, generator=gen, device=device)
    X_test = dev.randn(m, d, generator=gen, device=device)
    y = dev.randn(n, generator=gen, device=device) if c is None else \
        dev.randn(n, c, generator=gen, device=device)
    return X, y, X_test


@pytest.mark.parametrize("preconditioner", ["nystrom", "jacobi", "none"])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_cg_matches_cholesky(gen, preconditioner, ridge):
    X, y, X_test = _data(gen, c=2)
    expected = regression.kernel_regression(kernels.ntk(X), y, kernels.ntk(X_test, X), ridge=ridge)
    out = solvers.kernel_regression_cg(X, y, X_test, ridge=ridge, tol=1e-13, chunk_size=40,
                                       preconditioner=preconditioner, rank=20)
    assert out.method == "cg" and out.predictions.shape == (20, 2) and out.alpha.shape == (80, 2)
    assert out.relative_residual <= 1e-13
    assert_close(out.predictions, expected, rtol=1e-8)


def test_cg_on_device_with_scalar_labels(gen, device):
    X, y, X_test = _data(gen, device=device)
    out = solvers.kernel_regression_cg(X, y, X_test, tol=1e-13, chunk_size=32)
    expected = regression.kernel_regression(kernels.ntk(X), y, kernels.ntk(X_test, X))
    assert out.predictions.shape == (20,) and out.predictions.device == X.device
    assert_close(out.predictions, expected, rtol=1e-8)


def test_nystrom_preconditioner_cuts_iterations(gen):
    X, y, X_test = _data(gen, d=6)  # condition number ~1e3
    plain = solvers.kernel_regression_cg(X, y, X_test, tol=1e-10, preconditioner="none")
    nys = solvers.kernel_regression_cg(X, y, X_test, tol=1e-10, rank=40)
    assert nys.iterations < plain.iterations / 2
    assert_close(nys.predictions, plain.predictions, rtol=1e-7)


def test_custom_kernels_deep_nngp_and_empirical_ntk(gen):
    X, y, X_test = _data(gen, n=60, d=5)
    deep = functools.partial(kernels.nngp, activation="erf", depth=2)
    out = solvers.kernel_regression_cg(X, y, X_test, kernel=deep, ridge=1e-2, tol=1e-13)
    expected = regression.kernel_regression(deep(X), y, deep(X_test, X), ridge=1e-2)
    assert_close(out.predictions, expected, rtol=1e-8)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    emp = functools.partial(fast_ntk.mlp_ntk, model)
    out = solvers.kernel_regression_cg(X, y, X_test, kernel=emp, ridge=1e-1, tol=1e-13)
    expected = regression.kernel_regression(emp(X), y, emp(X_test, X), ridge=1e-1)
    assert_close(out.predictions, expected, rtol=1e-8)


@pytest.mark.parametrize("chunk_size", [1, 7, 80])
def test_kernel_matvec_equals_dense_product(gen, chunk_size):
    X, _, _ = _data(gen)
    V = dev.randn(80, 3, generator=gen)
    dense = (kernels.ntk(X) + 0.5 * torch.eye(80, dtype=X.dtype)) @ V
    assert_close(solvers.kernel_matvec(kernels.ntk, X, V, ridge=0.5, chunk_size=chunk_size),
                 dense, rtol=1e-13)


def test_pivoted_cholesky(gen):
    X, _, _ = _data(gen, n=30, d=2)
    K = kernels.ntk(X)
    L = solvers.pivoted_cholesky(kernels.ntk, X, 30)
    assert_close(L @ L.T, K, rtol=1e-10)
    errors = [float(torch.linalg.norm(K - L[:, :r] @ L[:, :r].T)) for r in (2, 8, 16)]
    assert errors[0] > errors[1] > errors[2]  # each pivot removes part of the residual


def test_auto_switches_from_cholesky_to_cg(gen):
    X, y, X_test = _data(gen)
    direct = solvers.kernel_regression_auto(X, y, X_test)
    iterative = solvers.kernel_regression_auto(X, y, X_test, memory_budget=10_000, tol=1e-13)
    assert direct.method == "cholesky" and iterative.method == "cg"
    assert direct.relative_residual < 1e-10
    assert_close(iterative.predictions, direct.predictions, rtol=1e-8)
    assert_close(iterative.alpha, direct.alpha, rtol=1e-7)


def test_non_convergence_says_what_to_do(gen):
    X, y, X_test = _data(gen)
    with pytest.raises(solvers.ConvergenceError, match="max_iter = 2 .*ridge.*Cholesky"):
        solvers.kernel_regression_cg(X, y, X_test, tol=1e-12, max_iter=2, preconditioner="none")


def test_indefinite_kernel_is_refused(gen):
    X, y, X_test = _data(gen)
    with pytest.raises(ValueError, match="kernel: .*not positive definite"):
        solvers.kernel_regression_cg(X, y, X_test, kernel=lambda A, B=None: -kernels.ntk(A, B),
                                     preconditioner="none")


def test_bad_inputs(gen):
    X, y, X_test = _data(gen)
    with pytest.raises(ValueError, match="ridge"):
        solvers.kernel_regression_cg(X, y, X_test, ridge=-1.0)
    with pytest.raises(ValueError, match="tol"):
        solvers.kernel_regression_cg(X, y, X_test, tol=0.0)
    with pytest.raises(ValueError, match="preconditioner"):
        solvers.kernel_regression_cg(X, y, X_test, preconditioner="ilu")
    with pytest.raises(TypeError, match="kernel"):
        solvers.kernel_regression_cg(X, y, X_test, kernel="ntk")
    with pytest.raises(ValueError, match="y"):
        solvers.kernel_regression_cg(X, y[:-1], X_test)
    with pytest.raises(ValueError, match="X_test"):
        solvers.kernel_regression_cg(X, y, X_test[:, :2])
    with pytest.raises(ValueError, match="method"):
        solvers.kernel_regression_auto(X, y, X_test, method="lu")


def test_solvers_run_under_the_precision_policy(gen, loose_precision, monkeypatch):
    # Settings seen by the kernel and by the PCG products: full float32 precision during every
    # public solver call, the caller's settings restored afterwards.
    from lecture_ntk import precision
    seen = []
    full = {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False,
            "float32_matmul_precision": "highest"}

    def kernel(A, B=None):
        seen.append(precision.settings())
        return kernels.ntk(A, B)

    matvec = solvers._matvec

    def spy(*args):
        seen.append(precision.settings())
        return matvec(*args)

    monkeypatch.setattr(solvers, "_matvec", spy)
    X, y, X_test = (t.float() for t in _data(gen, n=40, m=5, d=4))
    calls = [
        lambda: solvers.kernel_regression_cg(X, y, X_test, kernel=kernel, ridge=1e-2, tol=1e-4),
        lambda: solvers.kernel_regression_auto(X, y, X_test, kernel=kernel, ridge=1e-2),
        lambda: solvers.kernel_matvec(kernel, X, y, chunk_size=16),
        lambda: solvers.pivoted_cholesky(kernel, X, 5),
    ]
    for call in calls:
        seen.clear()
        call()
        assert seen and all(s == full for s in seen)
        assert precision.settings() == loose_precision
