"""Property tests: hypothesis searches random and adversarial inputs for kernel failures.

Inputs (``samples``): up to 5 rows in d = 1..4, entries in [-3, 3], each row then
possibly replaced by a zero row, a copy or negated copy of another row, a near
copy or near anti-copy (relative offset 1e-12 .. 0.1), a rescaling by 10^[-8, 8],
a unit vector, or the unit vector (1, 2^-26) whose float64 self-dot is 1 + 2^-52.
Every activation, depths 1-3, float32 and float64.

Stated tolerances (C = K / sqrt(K_ii K_jj), the kernel normalised by its diagonal;
TOL = 1e-12 in float64, 1e-5 in float32; exact claims assume no subnormal numbers):
- X2 = None gives an exactly symmetric matrix; rows with K_ii = 0 are exactly zero;
- positive semi-definite: smallest eigenvalue of C >= -TOL[dtype];
- Cauchy-Schwarz: |C_ij| <= 1 + TOL[dtype];
- K(X1, X2) equals the block of K([X1; X2]) within TOL[dtype] (relative to sqrt(K_ii K_jj));
- ReLU family: K(a X1, b X2) = a b K(X1, X2) exactly for powers of two a, b, and within
  1e-13 (float64) for any a, b > 0; relu = relu_normalized / 2^L exactly;
- float32 within F32_TOL = 1e-5 of float64 on the same inputs, relative to sqrt(K_ii K_jj);
  for the non-homogeneous activations near copies are kept >= 1e-4 apart there, because
  their value at large norms depends on the angle with condition ~1/angle (see test_numerics),
  and tanh/softplus inputs keep norms up to ~5 (see below);
- values and input gradients (with respect to X1 and X2) are finite everywhere.
The quadrature activations (tanh, softplus) meet these with QUAD_TOL (1e-8 in float64) for
input norms up to ~5; their error grows with the variance (see kernels.nngp), so at larger
norms only finiteness is checked.

CI profile: derandomized, no example database, no deadline (see SETTINGS).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lecture_ntk import activations, kernels, regression

F32, F64 = torch.float32, torch.float64
TOL = {F64: 1e-12, F32: 1e-5}
QUAD_TOL = {F64: 1e-8, F32: 1e-5}
F32_TOL = 1e-5
CLOSED = ("relu", "relu_normalized", "erf", "sin")
QUADRATURE = ("tanh", "softplus")
assert set(CLOSED + QUADRATURE) == set(activations.NAMES)


def _settings(n):
    """Deterministic CI profile: the same n examples on every run, no database, no deadline."""
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


MUTATIONS = ("keep", "keep", "zero", "copy", "negate", "near", "near_anti", "scale", "unit",
             "selfdot")
_entry = st.floats(-3, 3, allow_nan=False).map(lambda v: 0.0 if abs(v) < 1e-6 else v)


@st.composite
def samples(draw, *, max_n=5, max_d=4, min_near=1e-12, max_log10=8.0):
    """An adversarial (n, d) float64 sample matrix (see the module docstring)."""
    n, d = draw(st.integers(1, max_n)), draw(st.integers(1, max_d))
    X = np.array(draw(st.lists(_entry, min_size=n * d, max_size=n * d))).reshape(n, d)
    for i in range(n):
        kind, j = draw(st.sampled_from(MUTATIONS)), draw(st.integers(0, n - 1))
        if kind == "zero":
            X[i] = 0.0
        elif kind in ("copy", "negate"):
            X[i] = X[j] if kind == "copy" else -X[j]
        elif kind in ("near", "near_anti"):
            eps = 10.0 ** draw(st.floats(math.log10(min_near), -1))
            offset = np.array(draw(st.lists(_entry, min_size=d, max_size=d))) / 3
            X[i] = (1 if kind == "near" else -1) * X[j] + eps * np.linalg.norm(X[j]) * offset
        elif kind == "scale":
            X[i] *= 10.0 ** draw(st.floats(-8, max_log10))
        elif kind == "unit" and np.linalg.norm(X[i]) > 0:
            X[i] /= np.linalg.norm(X[i])
        elif kind == "selfdot" and d >= 2:
            X[i] = 0.0
            X[i, :2] = (1.0, 2.0 ** -26)
    return torch.tensor(X, dtype=F64)


def _scale(K):
    """sqrt(K_ii K_jj) for a square kernel matrix (float64)."""
    d = K.diagonal().clamp_min(0).sqrt()
    return d[:, None] * d[None, :]


def _normalised(K):
    """(C, pos): K / sqrt(K_ii K_jj) on the rows with K_ii > 0, and that mask."""
    pos = K.diagonal() > 0
    return (K / _scale(K).clamp_min(1e-300))[pos][:, pos], pos


def _kernel_with_grads(f, X1, X2, **kw):
    X1 = X1.clone().requires_grad_(True)
    X2 = X2.clone().requires_grad_(True)
    K = f(X1, X2, **kw)
    g1, g2 = torch.autograd.grad(K.sum(), (X1, X2), allow_unused=True, materialize_grads=True)
    return K.detach(), g1, g2


def _check_properties(X, split, dtype, name, depth, which, tol=TOL):
    f = getattr(kernels, which)
    X = X.to(dtype)
    K = f(X, activation=name, depth=depth)
    assert torch.equal(K, K.T), "X2 = None must give an exactly symmetric matrix"
    K64 = K.double()
    C, pos = _normalised(K64)
    assert (K64[~pos] == 0).all(), "a row with K_ii = 0 must be zero"
    if C.numel():
        lam = float(torch.linalg.eigvalsh(C).min())
        assert lam >= -tol[dtype], f"not PSD: smallest eigenvalue of K/sqrt(K_ii K_jj) {lam:.2e}"
        assert float(C.abs().max()) <= 1 + tol[dtype], "Cauchy-Schwarz violated"
    X1, X2 = X[:split], X[split:]
    K12, g1, g2 = _kernel_with_grads(f, X1, X2, activation=name, depth=depth)
    assert torch.isfinite(K12).all() and torch.isfinite(g1).all() and torch.isfinite(g2).all()
    err = (K12.double() - K64[:split, split:]).abs() / _scale(K64)[:split, split:].clamp_min(1e-300)
    assert float(err.max()) <= tol[dtype] if err.numel() else True, "K(X1, X2) != block of K(X)"
    _, g = _kernel_with_grads(lambda a, b, **kw: f(a, **kw), X, X, activation=name, depth=depth)[:2]
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("name", CLOSED)
@_settings(350)
@given(X=samples(), data=st.data())
def test_closed_form_kernels(name, X, data):
    split = data.draw(st.integers(0, X.shape[0]))
    _check_properties(X, split, data.draw(st.sampled_from([F32, F64])), name,
                      data.draw(st.integers(1, 3)), data.draw(st.sampled_from(["nngp", "ntk"])))


@pytest.mark.parametrize("name", QUADRATURE)
@_settings(100)
@given(X=samples(max_n=4, max_d=3, max_log10=0.0), data=st.data())
def test_quadrature_kernels(name, X, data):
    """Norms up to ~5 (variances up to ~27), where the quadrature error is below QUAD_TOL."""
    split = data.draw(st.integers(0, X.shape[0]))
    _check_properties(X, split, data.draw(st.sampled_from([F32, F64])), name,
                      data.draw(st.integers(1, 3)), data.draw(st.sampled_from(["nngp", "ntk"])),
                      tol=QUAD_TOL)


@pytest.mark.parametrize("name", QUADRATURE)
@_settings(40)
@given(X=samples(max_n=3, max_d=3), data=st.data())
def test_quadrature_kernels_finite_at_any_norm(name, X, data):
    dtype, depth = data.draw(st.sampled_from([F32, F64])), data.draw(st.integers(1, 2))
    K, g1, g2 = _kernel_with_grads(kernels.ntk, X.to(dtype), X.to(dtype).flip(0),
                                   activation=name, depth=depth)
    assert all(torch.isfinite(t).all() for t in (K, g1, g2))


@_settings(200)
@given(X1=samples(), X2=samples(max_d=4), data=st.data())
def test_relu_homogeneity_and_plain_relu(X1, X2, data):
    d = min(X1.shape[1], X2.shape[1])
    X1, X2 = X1[:, :d], X2[:, :d]
    dtype = data.draw(st.sampled_from([F32, F64]))
    depth = data.draw(st.integers(1, 3))
    f = getattr(kernels, data.draw(st.sampled_from(["nngp", "ntk"])))
    X1, X2 = X1.to(dtype), X2.to(dtype)
    K = f(X1, X2, depth=depth)
    assert torch.equal(f(X1, X2, activation="relu", depth=depth), K / 2 ** depth)
    p, q = data.draw(st.integers(-10, 10)), data.draw(st.integers(-10, 10))
    assert torch.equal(f(2.0 ** p * X1, 2.0 ** q * X2, depth=depth), 2.0 ** (p + q) * K)
    if dtype == F64:
        a, b = (10.0 ** data.draw(st.floats(-8, 8)) for _ in range(2))
        scale = (f(X1, depth=depth).diagonal()[:, None] * f(X2, depth=depth).diagonal()[None, :])
        err = (f(a * X1, b * X2, depth=depth) - a * b * K).abs() / (a * b * scale.sqrt() + 1e-300)
        assert float(err.max()) <= 1e-13


@pytest.mark.parametrize("name", CLOSED + QUADRATURE)
@given(data=st.data())
@_settings(60)
def test_float32_close_to_float64(name, data):
    min_near = 1e-12 if name.startswith("relu") else 1e-4
    max_log10 = 0.0 if name in QUADRATURE else 8.0      # the quadrature's accurate range
    X = data.draw(samples(max_n=4, max_d=3, min_near=min_near, max_log10=max_log10)).float()
    depth = data.draw(st.integers(1, 3))
    for f in (kernels.nngp, kernels.ntk):
        K64 = f(X.double(), activation=name, depth=depth)
        K32 = f(X, activation=name, depth=depth)
        err = (K32.double() - K64).abs() / _scale(K64).clamp_min(1e-300)
        assert float(err.max()) <= F32_TOL, f"{f.__name__}: float32 error {float(err.max()):.2e}"


# ------------------------------------------------------------------ kernel regression


@st.composite
def spd_problems(draw):
    """(K_train, y, K_test_train, ridge): kernels of any rank and conditioning, or a ReLU NTK."""
    n = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([F32, F64]))
    if draw(st.booleans()):
        X = draw(samples(max_n=n + 2, max_d=3))
        K = kernels.ntk(X, depth=draw(st.integers(1, 2)))
        K_train, K_test_train = K[:n, :n], K[n:, :n]
        n = K_train.shape[0]
    else:
        rank = draw(st.integers(0, n))
        Z = np.array(draw(st.lists(st.floats(-2, 2), min_size=n * n, max_size=n * n))).reshape(n, n)
        scales = 10.0 ** np.array(draw(st.lists(st.floats(-14, 2), min_size=n, max_size=n)))
        Z = Z * np.where(np.arange(n) < rank, scales, 0.0)[None, :]
        K_train = torch.tensor(Z @ Z.T, dtype=F64)
        K_test_train = K_train[: max(1, n // 2)]
    y = torch.tensor(draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)), dtype=F64)
    ridge = draw(st.sampled_from([0.0, 1e-12, 1e-6, 1.0]))
    return K_train.to(dtype), y.to(dtype), K_test_train.to(dtype), ridge


@_settings(400)
@given(problem=spd_problems())
def test_kernel_regression_is_finite_or_says_what_to_do(problem):
    """Never NaN: finite predictions, or a ValueError with the condition number and advice."""
    K_train, y, K_test_train, ridge = problem
    if K_train.shape[0] == 0:
        return
    try:
        out = regression.kernel_regression(K_train, y, K_test_train, ridge=ridge)
    except ValueError as exc:
        msg = str(exc)
        assert msg.startswith("K_train:") and "condition number" in msg
        assert "ridge" in msg and "float64" in msg
    else:
        assert torch.isfinite(out).all() and out.shape == K_test_train.shape[:1]
