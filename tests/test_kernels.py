"""Tests for lecture_ntk.kernels: every number reached by two independent routes.

Closed forms vs known values, vs Monte Carlo (seeded, within 5 standard errors),
vs quadrature, vs autograd, vs mpmath at the hard points, and the infinite-width
limit vs the finite-width kernel of wide networks.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import assert_close
from lecture_ntk import activations, empirical, kernels, network, scaling

F64 = torch.float64
N_MC = 10 ** 6
PI = math.pi


def _grad(f, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    return g


def _quadrature_copy(name):
    """The same activation under another name: forces the generic (quadrature) route."""
    a = activations.get(name)
    return activations.Activation(name + "_q", a.phi, a.dphi, a.ddphi)


def _mc_mean(values):
    """Sample mean of the leading axis and its standard error."""
    return values.mean(0), values.std(0) / math.sqrt(values.shape[0])


# ------------------------------------------------------------------- sphere scalars


def test_sphere_known_values():
    assert_close(kernels.relu_dual(1.0), torch.tensor(1.0, dtype=F64))
    assert_close(kernels.relu_ntk(1.0), torch.tensor(2.0, dtype=F64))
    assert abs(float(kernels.relu_ntk(-1.0))) < 1e-15
    assert_close(kernels.relu_ntk(0.0), torch.tensor(1 / PI, dtype=F64))
    assert_close(kernels.relu_dual(0.0), torch.tensor(1 / PI, dtype=F64))
    assert_close(kernels.drelu_dual(torch.tensor([-1.0, 0.0, 1.0], dtype=F64)),
                 torch.tensor([0.0, 0.5, 1.0], dtype=F64))
    assert kernels.relu_ntk(0.5).dtype == F64
    assert kernels.relu_ntk(torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32


def test_xi_is_clamped():
    xi = torch.tensor([-1.5, -1 - 2.0 ** -52, 1 + 2.0 ** -52, 3.0], dtype=F64)
    K = kernels.relu_ntk(xi)
    assert torch.equal(K, torch.tensor([0.0, 0.0, 2.0, 2.0], dtype=F64))
    assert torch.isfinite(_grad(kernels.relu_ntk, xi)).all()


def test_drelu_dual_is_autograd_of_relu_dual():
    xi = torch.cat([torch.linspace(-1, 1, 41, dtype=F64),
                    torch.tensor([1 - 1e-12, -1 + 1e-12, 1 - 2.0 ** -52], dtype=F64)])
    assert_close(_grad(kernels.relu_dual, xi), kernels.drelu_dual(xi), rtol=1e-14)
    # and the second derivative (double backward) is 1 / (pi sqrt(1 - xi^2)) inside (-1, 1)
    inner = xi[1:-4].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(kernels.relu_dual(inner).sum(), inner, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), inner)
    assert_close(h, 1 / (PI * torch.sqrt(1 - inner.detach() ** 2)), rtol=1e-12)


def test_relu_ntk_is_ntk_from_dual():
    xi = torch.linspace(-1, 1, 101, dtype=F64)
    assert_close(kernels.relu_ntk(xi),
                 kernels.ntk_from_dual(kernels.relu_dual, kernels.drelu_dual, xi))


def test_sphere_scalars_accurate_at_hard_points():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    for v in [1 - 1e-12, -1 + 1e-12, 1 - 2.0 ** -52, -1 + 2.0 ** -52, -0.95, 0.3]:
        x = mpmath.mpf(v)
        t = mpmath.acos(x)
        dual = (mpmath.sin(t) + (mpmath.pi - t) * x) / mpmath.pi
        ddual = (mpmath.pi - t) / mpmath.pi
        dddual = 1 / (mpmath.pi * mpmath.sqrt(1 - x * x))
        refs = [(kernels.relu_dual, dual, ddual), (kernels.drelu_dual, ddual, dddual),
                (kernels.relu_ntk, dual + x * ddual, 2 * ddual + x * dddual)]
        xi = torch.tensor(v, dtype=F64)
        for f, value, slope in refs:
            assert abs(float(f(xi)) / float(value) - 1) < 1e-13, (f.__name__, v)
            assert abs(float(_grad(f, xi)) / float(slope) - 1) < 1e-13, (f.__name__, v)


def test_values_and_gradients_finite_at_the_ends():
    xi = torch.tensor([-1.0, 1.0], dtype=F64)
    for f in (kernels.relu_dual, kernels.drelu_dual, kernels.relu_ntk):
        assert torch.isfinite(f(xi)).all() and torch.isfinite(_grad(f, xi)).all()
    assert_close(_grad(kernels.relu_dual, xi), torch.tensor([0.0, 1.0], dtype=F64))


# ------------------------------------------------------- Gaussian expectations vs Monte Carlo

COVARIANCES = [(1.0, 1.0, 0.3), (1.0, 1.0, -0.8), (0.25, 4.0, 0.6), (2.0, 0.5, -0.9)]


@pytest.mark.parametrize("name", ["relu_normalized", "erf", "tanh"])
def test_gaussian_expectations_vs_monte_carlo(name, gen):
    act = activations.get(name)
    z = torch.randn(N_MC, 2, generator=gen, dtype=F64)
    for s11, s22, s12 in COVARIANCES:
        c = s12 / math.sqrt(s11 * s22)
        u = math.sqrt(s11) * z[:, 0]
        v = math.sqrt(s22) * (c * z[:, 0] + math.sqrt(1 - c * c) * z[:, 1])
        sigma, sigma_dot = kernels.gaussian_expectations(name, s11, s22, s12)
        for value, f in ((sigma, act.phi), (sigma_dot, act.dphi)):
            mean, se = _mc_mean(f(u) * f(v))
            assert abs(float(value - mean)) < 5 * float(se), (name, s11, s22, s12)


@pytest.mark.parametrize("name", ["relu_normalized", "erf"])
def test_nngp_and_correction_vs_monte_carlo_off_sphere(name, gen):
    """Off the sphere: u = w^T x with w ~ N(0, I), i.e. one hidden unit, averaged over 1e6 units."""
    act = activations.get(name)
    X = torch.tensor([[0.5, 0.0, 0.0], [0.3, -1.1, 0.4], [1.5, 0.9, -1.0]], dtype=F64)
    U = torch.randn(N_MC, 3, generator=gen, dtype=F64) @ X.T        # (N, n) pre-activations
    sigma0 = X @ X.T
    nngp_term, correction = kernels.ntk_terms(X, activation=name)
    assert_close(kernels.nngp(X, activation=name), nngp_term)
    i, j = torch.triu_indices(3, 3)
    for value, f, scale in ((nngp_term, act.phi, 1.0), (correction, act.dphi, sigma0[i, j])):
        fU = f(U)
        mean, se = _mc_mean(fU[:, i] * fU[:, j])
        assert ((value[i, j] - scale * mean).abs() <= 5 * (scale * se).abs() + 1e-15).all(), name


def test_depth2_vs_monte_carlo_of_the_recursion(gen):
    """Layer 2 of §12 by Monte Carlo.

    (u, v) ~ N(0, Sigma^(1)), Theta^(2) = mean of Theta^(1) phi'(u) phi'(v) + phi(u) phi(v).
    """
    X = torch.tensor([[0.5, 0.2, 0.0], [0.3, -1.1, 0.4]], dtype=F64)
    for name in ("relu_normalized", "erf"):
        act = activations.get(name)
        S1, T1 = kernels.nngp(X, activation=name), kernels.ntk(X, activation=name)
        L = torch.linalg.cholesky(S1)
        U = torch.randn(N_MC, 2, generator=gen, dtype=F64) @ L.T
        p, dp = act.phi(U), act.dphi(U)
        for value, samples in ((kernels.nngp(X, activation=name, depth=2), p[:, 0] * p[:, 1]),
                               (kernels.ntk(X, activation=name, depth=2),
                                T1[0, 1] * dp[:, 0] * dp[:, 1] + p[:, 0] * p[:, 1])):
            mean, se = _mc_mean(samples)
            assert abs(float(value[0, 1] - mean)) < 5 * float(se), name


# ------------------------------------------------------------------- quadrature route


def test_quadrature_dual_matches_closed_forms():
    xi = torch.linspace(-1, 1, 41, dtype=F64)
    assert_close(kernels.quadrature_dual("relu_normalized", xi), kernels.relu_dual(xi), rtol=1e-12)
    assert_close(kernels.quadrature_dual("erf", xi), (2 / PI) * torch.asin(2 * xi / 3), rtol=1e-12)
    # phi' of the ReLU is a step: its dual is drelu_dual (§6, differentiation and dual commute)
    dphi = activations.get("relu_normalized").dphi
    assert_close(kernels.quadrature_dual(dphi, xi), kernels.drelu_dual(xi), rtol=1e-12)


def test_quadrature_dual_derivative_is_dual_of_dphi():
    tanh = activations.get("tanh")
    xi = torch.linspace(-0.99, 0.99, 21, dtype=F64)
    slope = _grad(lambda t: kernels.quadrature_dual(tanh, t), xi)
    assert_close(slope, kernels.quadrature_dual(tanh.dphi, xi), rtol=1e-10)


@pytest.mark.parametrize("name", ["relu", "relu_normalized", "erf"])
def test_quadrature_route_matches_closed_forms_off_sphere(name):
    s = torch.tensor(COVARIANCES + [(1e-3, 1.0, 0.0), (0.0, 1.0, 0.0), (1.5, 1.5, 1.5)], dtype=F64)
    closed = kernels.gaussian_expectations(name, s[:, 0], s[:, 1], s[:, 2])
    quad = kernels.gaussian_expectations(_quadrature_copy(name), s[:, 0], s[:, 1], s[:, 2])
    for a, b in zip(closed, quad):
        assert (a - b).abs().max() < 1e-9
    X = torch.tensor([[0.5, 0.2], [0.3, -1.1], [0.0, 0.0]], dtype=F64)
    assert (kernels.ntk(X, activation=name, depth=2)
            - kernels.ntk(X, activation=_quadrature_copy(name), depth=2)).abs().max() < 1e-9


# ------------------------------------------------------------------------- depth L


def test_unit_inputs_give_L_plus_1():
    X = torch.nn.functional.normalize(torch.randn(5, 4, dtype=F64, generator=torch.Generator()
                                                  .manual_seed(0)), dim=1)
    for L in range(1, 5):
        assert_close(kernels.ntk(X, depth=L).diagonal(), torch.full((5,), L + 1.0, dtype=F64))
        assert_close(kernels.nngp(X, depth=L).diagonal(), torch.ones(5, dtype=F64))


def test_plain_relu_is_normalized_over_2_to_L(gen):
    X1 = torch.randn(4, 3, generator=gen, dtype=F64)
    X2 = torch.randn(6, 3, generator=gen, dtype=F64)
    for L in (1, 2, 3):
        for f in (kernels.nngp, kernels.ntk):
            assert_close(f(X1, X2, activation="relu", depth=L),
                         f(X1, X2, activation="relu_normalized", depth=L) / 2 ** L)


def test_relu_homogeneity_and_sphere_formula(gen):
    """§8: K(a x, b x~) = a b K(x, x~), and on unit vectors K = relu_ntk(x^T x~)."""
    X1 = torch.randn(4, 3, generator=gen, dtype=F64)
    X2 = torch.randn(5, 3, generator=gen, dtype=F64)
    norms1, norms2 = X1.norm(dim=1), X2.norm(dim=1)
    cos = (X1 / norms1[:, None]) @ (X2 / norms2[:, None]).T
    outer = norms1[:, None] * norms2[None, :]
    assert_close(kernels.ntk(X1, X2), outer * kernels.relu_ntk(cos), rtol=1e-13)
    assert_close(kernels.nngp(X1, X2), outer * kernels.relu_dual(cos), rtol=1e-13)
    for a, b in ((1e-8, 1e8), (1e8, 1e8), (1e-8, 1e-8), (3.0, 0.5)):
        for L in (1, 3):
            assert_close(kernels.ntk(a * X1, b * X2, depth=L), a * b * kernels.ntk(X1, X2, depth=L),
                         rtol=1e-13)


# --------------------------------------------------------------- hard points (numerics)


def _mp_ntk_depth1(x, y, name):
    """Depth-1 NTK from two float64 vectors, in 50-digit arithmetic (dot products exact)."""
    import mpmath
    x, y = [mpmath.mpf(a) if isinstance(a, mpmath.mpf) else mpmath.mpf(float(a)) for a in x], \
        [mpmath.mpf(float(b)) for b in y]
    s11, s22 = mpmath.fsum(a * a for a in x), mpmath.fsum(b * b for b in y)
    s12 = mpmath.fsum(a * b for a, b in zip(x, y))
    if name == "erf":
        ab = (1 + 2 * s11) * (1 + 2 * s22)
        return (2 / mpmath.pi * mpmath.asin(2 * s12 / mpmath.sqrt(ab))
                + s12 * 4 / mpmath.pi / mpmath.sqrt(ab - 4 * s12 ** 2))
    t = mpmath.acos(s12 / mpmath.sqrt(s11 * s22))
    return (mpmath.sqrt(s11 * s22) * mpmath.sin(t) + 2 * (mpmath.pi - t) * s12) / mpmath.pi


def _mp_grad(x, y, name):
    import mpmath
    mpmath.mp.dps = 50
    x = [mpmath.mpf(float(a)) for a in x]
    return torch.tensor([float(mpmath.diff(
        lambda t, i=i: _mp_ntk_depth1(x[:i] + [t] + x[i + 1:], y, name), x[i]))
        for i in range(len(x))], dtype=F64)


@pytest.mark.parametrize("name", ["relu_normalized", "erf"])
@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
def test_ntk_and_gradient_match_mpmath_at_any_norm(name, scale):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    x = torch.tensor([[0.3, -1.2, 0.7]], dtype=F64) * scale
    y = torch.tensor([[1.1, 0.2, -0.4]], dtype=F64)
    K = kernels.ntk(x, y, activation=name)
    assert abs(float(K) / float(_mp_ntk_depth1(x[0], y[0], name)) - 1) < 1e-13
    g = _grad(lambda t: kernels.ntk(t, y, activation=name), x)
    assert_close(g, _mp_grad(x[0], y[0], name)[None], rtol=1e-12)


@pytest.mark.parametrize("name", ["relu_normalized", "erf"])
def test_nearly_parallel_inputs(name):
    """xi = 1 - 1e-12 between two unit vectors: accurate values; gradient finite and within
    the Gram route's conditioning (1 - cos is known to ~eps absolute, see kernels.nngp)."""
    pytest.importorskip("mpmath")
    t = math.sqrt(2e-12)
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)
    y = torch.tensor([[math.cos(t), math.sin(t), 0.0]], dtype=F64)
    K = kernels.ntk(x, y, activation=name)
    assert abs(float(K) / float(_mp_ntk_depth1(x[0], y[0], name)) - 1) < 1e-10
    g = _grad(lambda z: kernels.ntk(z, y, activation=name), x)
    assert torch.isfinite(g).all()
    assert_close(g, _mp_grad(x[0], y[0], name)[None], rtol=1e-4)


def test_self_dot_slightly_above_one():
    x = torch.tensor([[1.0, 2.0 ** -26]], dtype=F64)      # x^T x = 1 + 2^-52 exactly
    assert float(x @ x.T) == 1 + 2.0 ** -52
    assert float(kernels.relu_ntk(x @ x.T)) == 2.0
    assert torch.isfinite(_grad(lambda t: kernels.relu_ntk(t @ t.T), x)).all()
    for L in (1, 2):
        assert_close(kernels.ntk(x, depth=L), (L + 1) * x @ x.T, rtol=1e-15)
        assert_close(_grad(lambda t: kernels.ntk(t, depth=L), x), 2 * (L + 1) * x, rtol=1e-15)
        g = _grad(lambda t: kernels.ntk(t, x.clone(), depth=L), x)  # x~ = x as a separate input
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("name", ["relu", "relu_normalized", "erf", "tanh"])
def test_zero_input_gives_zero_row_and_finite_gradient(name):
    X = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]], dtype=F64)
    for L in (1, 2):
        for f in (kernels.nngp, kernels.ntk):
            K = f(X, activation=name, depth=L)
            if name in ("relu", "relu_normalized") or (f is kernels.ntk and L == 1):
                assert (K[0] == 0).all() and (K[:, 0] == 0).all(), (name, f.__name__, L)
            g = _grad(lambda t: f(t, activation=name, depth=L), X)
            assert torch.isfinite(K).all() and torch.isfinite(g).all()
    if name.startswith("relu"):
        assert (_grad(lambda t: kernels.ntk(t, activation=name), X)[0] == 0).all()


# ----------------------------------------------------------- Gram matrices, dtypes, inputs


@pytest.mark.parametrize("name", ["relu", "relu_normalized", "erf", "tanh"])
def test_gram_symmetric_and_psd(name, gen):
    n, depths = (24, (1, 3)) if name != "tanh" else (8, (1, 2))
    X = torch.randn(n, 4, generator=gen, dtype=F64) * torch.rand(n, 1, generator=gen, dtype=F64) * 2
    for L in depths:
        for f in (kernels.nngp, kernels.ntk):
            K = f(X, activation=name, depth=L)
            assert (K - K.T).abs().max() <= 1e-13 * K.abs().max()
            assert torch.linalg.eigvalsh(K).min() > -1e-10 * K.abs().max()


@pytest.mark.parametrize("name", ["relu_normalized", "erf", "tanh"])
def test_float32_close_to_float64(name, gen):
    X = torch.randn(6, 3, generator=gen, dtype=F64)
    for L in (1, 2):
        K64 = kernels.ntk(X, activation=name, depth=L)
        K32 = kernels.ntk(X.float(), activation=name, depth=L)
        assert K32.dtype == torch.float32
        assert_close(K32, K64, rtol=1e-5)


def test_numpy_input_and_x2_none(gen):
    X = torch.randn(5, 3, generator=gen, dtype=F64)
    K = kernels.ntk(X.numpy(), X.numpy()[:2])
    assert isinstance(K, torch.Tensor) and K.dtype == F64 and K.shape == (5, 2)
    assert_close(K, kernels.ntk(X)[:, :2], rtol=1e-14)
    assert_close(kernels.nngp(X.numpy(), depth=2), kernels.nngp(X, X, depth=2), rtol=1e-14)


def test_on_device(device, gen):
    X = torch.randn(6, 3, generator=gen, dtype=F64)
    for name in ("relu_normalized", "erf", "tanh"):
        K = kernels.ntk(X.to(device), activation=name, depth=2)
        assert K.device.type == device.type
        assert_close(K.cpu(), kernels.ntk(X, activation=name, depth=2), rtol=1e-12)


def test_gaussian_expectations_broadcast_and_dtype():
    s12 = torch.linspace(-1, 1, 5, dtype=torch.float32)
    sigma, sigma_dot = kernels.gaussian_expectations("relu_normalized", 1.0, torch.ones(3, 1), s12)
    assert sigma.shape == (3, 5) and sigma.dtype == torch.float32
    assert_close(sigma[0], kernels.relu_dual(s12), rtol=1e-6)
    assert_close(sigma_dot[0], kernels.drelu_dual(s12), rtol=1e-6)


def test_ntk_terms_sum_to_ntk_and_match_sphere_scalars(gen):
    X = torch.randn(6, 3, generator=gen, dtype=F64)
    nngp_term, correction = kernels.ntk_terms(X)
    assert_close(nngp_term + correction, kernels.ntk(X), rtol=1e-15)
    G = X @ X.T
    r = torch.sqrt(G.diagonal()[:, None] * G.diagonal()[None, :])
    cos = (G / r).clamp(-1, 1)
    cos.diagonal().fill_(1.0)     # rounding can leave 1 - 2^-53 there, where drelu_dual is steep
    assert_close(nngp_term, r * kernels.relu_dual(cos), rtol=1e-14)
    assert_close(correction, G * kernels.drelu_dual(cos), rtol=1e-14)


@pytest.mark.parametrize("call, match, exc", [
    (lambda: kernels.ntk(torch.ones(3, dtype=F64)), "X1", ValueError),
    (lambda: kernels.ntk(torch.ones(3, 2, dtype=F64), torch.ones(3, 4, dtype=F64)), "X2",
     ValueError),
    (lambda: kernels.nngp(torch.ones(3, 2, dtype=F64), torch.tensor([[1.0, float("nan")]],
                                                                    dtype=F64)), "X2", ValueError),
    (lambda: kernels.ntk(torch.ones(3, 2, dtype=torch.int64)), "X1", TypeError),
    (lambda: kernels.ntk(np.ones((3, 2), dtype=np.int32)), "X1", TypeError),
    (lambda: kernels.ntk(torch.ones(3, 2), torch.ones(3, 2, dtype=F64)), "X2", TypeError),
    (lambda: kernels.ntk(torch.ones(3, 2), activation="gelu"), "activation.*relu_normalized",
     ValueError),
    (lambda: kernels.ntk(torch.ones(3, 2), depth=0), "depth", ValueError),
    (lambda: kernels.nngp(torch.ones(3, 2), depth=1.0), "depth", TypeError),
    (lambda: kernels.ntk_terms(torch.ones(3, 2), activation=3), "activation", TypeError),
    (lambda: kernels.relu_ntk(float("nan")), "xi", ValueError),
    (lambda: kernels.relu_dual(torch.tensor([1, 0])), "xi", TypeError),
    (lambda: kernels.quadrature_dual("tanh", 0.5, deg=1), "deg", ValueError),
    (lambda: kernels.gaussian_expectations("erf", -1.0, 1.0, 0.0), "s11", ValueError),
    (lambda: kernels.gaussian_expectations("erf", 1.0, 1.0, float("inf")), "s12", ValueError),
    (lambda: kernels.ntk_from_dual(1.0, kernels.drelu_dual, 0.5), "dual", TypeError),
])
def test_bad_inputs_raise_naming_the_argument(call, match, exc):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------- finite width -> infinite width


def test_finite_width_error_falls_like_inverse_sqrt_k():
    """Theorem 1: K_emp(k) - K = O(1/sqrt(k)); 4x wider halves the RMS error (over seeds)."""
    X = torch.nn.functional.normalize(
        torch.randn(10, 3, generator=torch.Generator().manual_seed(5), dtype=F64), dim=1)
    K = kernels.ntk(X)
    widths, seeds = (128, 512, 2048, 8192), range(20)
    rms = []
    for k in widths:
        sq = [float(((empirical.shallow_ntk(*network.init_params(
            3, k, generator=torch.Generator().manual_seed(s)), X) - K) ** 2).sum()) for s in seeds]
        rms.append(math.sqrt(sum(sq) / len(sq)))
    ratios = [rms[i] / rms[i + 1] for i in range(len(rms) - 1)]
    assert all(1.5 < r < 2.6 for r in ratios), ratios
    assert -0.6 < scaling.loglog_slope(widths, rms) < -0.4


def test_finite_width_terms_converge_to_ntk_terms():
    X = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0], [-0.7, 0.3]],
                                                   dtype=F64), dim=1)
    A, B = network.init_params(2, 200_000, generator=torch.Generator().manual_seed(0))
    for emp, inf in zip(empirical.shallow_ntk_terms(A, B, X), kernels.ntk_terms(X)):
        assert (emp - inf).abs().max() < 0.02
