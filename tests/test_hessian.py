"""Tests for lecture_ntk.hessian: autograd Hessian against the Appendix A closed form (§10)."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import assert_close
from lecture_ntk import device as dev, empirical, hessian, network, scaling

SMOOTH = ["tanh", "softplus", "sin", "erf"]
WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def _net(gen, k=9, d=1, device="cpu"):
    return network.init_params(d, k, generator=gen, device=device)


# ----------------------------------------------------------------------------- closed form


@pytest.mark.parametrize("activation", SMOOTH + ["relu_normalized"])
@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("x", [0.7, -1.3])
def test_autograd_hessian_equals_block_matrix(gen, device, activation, scaled, x):
    A, B = _net(gen, device=device)
    H = hessian.hessian(A, B, torch.tensor([x], dtype=A.dtype, device=device),
                        activation=activation, scaled=scaled)
    H_block = hessian.block_hessian(A, B, x, activation=activation, scaled=scaled)
    assert H.shape == H_block.shape == (18, 18)
    assert float((H - H_block).abs().max()) < 1e-12 * max(1.0, float(H.abs().max()))


@pytest.mark.parametrize("activation", SMOOTH)
@pytest.mark.parametrize("x", [0.5, -2.0])
def test_eigvalsh_equals_block_eigenvalues(gen, activation, x):
    A, B = _net(gen, k=12)
    H = hessian.hessian(A, B, x, activation=activation)
    pairs = hessian.block_eigenvalues(A, B, x, activation=activation)
    assert pairs.shape == (12, 2)
    assert bool((pairs[:, 0] <= 0).all() and (pairs[:, 1] >= 0).all())
    eig = torch.linalg.eigvalsh(H)
    assert float((eig - pairs.reshape(-1).sort().values).abs().max()) < 1e-10
    norm = hessian.spectral_norm(A, B, x, activation=activation)
    assert abs(float(norm) - float(torch.linalg.matrix_norm(H, 2))) < 1e-10


@pytest.mark.parametrize("activation", SMOOTH)
def test_pairs_have_trace_c_and_determinant_minus_b_squared(gen, activation):
    # Each block [[0, b], [b, c]] has trace c and determinant -b^2; also where |b| << |c|.
    A, B = _net(gen, k=50)
    A[0, :5] = 1e6
    b, c = hessian.block_entries(A, B, 1.1, activation=activation)
    pairs = hessian.block_eigenvalues(A, B, 1.1, activation=activation)
    assert_close(pairs.sum(1), c, rtol=1e-14)
    assert_close(pairs.prod(1), -b * b, rtol=1e-14)


def test_relu_pairs_are_plus_minus_b(gen):
    A, B = _net(gen)
    b, c = hessian.block_entries(A, B, 0.8, activation="relu_normalized")
    assert float(c.abs().max()) == 0.0
    pairs = hessian.block_eigenvalues(A, B, 0.8, activation="relu_normalized")
    assert_close(pairs, torch.stack([-b.abs(), b.abs()], 1), rtol=1e-15)


def test_pair_order_makes_the_hessian_block_diagonal(gen):
    A, B = _net(gen, k=6)
    b, c = hessian.block_entries(A, B, 0.9, activation="tanh")
    perm = hessian.pair_order(6)
    H = hessian.hessian(A, B, 0.9, activation="tanh")
    blocks = [torch.stack([torch.stack([torch.zeros_like(bi), bi]), torch.stack([bi, ci])])
              for bi, ci in zip(b, c)]
    assert_close(H[perm][:, perm], torch.block_diag(*blocks), rtol=1e-12)
    assert torch.equal(perm[torch.argsort(perm)], torch.arange(12))


def test_general_d_hessian_matches_hand_formula(gen):
    # d = 3: d2f/dA_i dB_ij = phi'(B_i x) x_j / sqrt(k), d2f/dB_ij dB_il = A_i phi''(B_i x) x_j x_l / sqrt(k).
    k, d = 4, 3
    A, B = _net(gen, k=k, d=d)
    x = dev.randn(d, generator=gen)
    H = hessian.hessian(A, B, x, activation="erf")
    z = B @ x
    dphi = 2 / math.sqrt(math.pi) * torch.exp(-z * z)
    ddphi = -2 * z * dphi
    H_hand = torch.zeros(k + k * d, k + k * d, dtype=A.dtype)
    for i in range(k):
        rows = slice(k + i * d, k + (i + 1) * d)
        H_hand[i, rows] = H_hand[rows, i] = dphi[i] * x / math.sqrt(k)
        H_hand[rows, rows] = A[0, i] * ddphi[i] * torch.outer(x, x) / math.sqrt(k)
    assert_close(H, H_hand, rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_hessian_matches_finite_differences_of_the_gradient(gen, activation):
    # A third route: central differences of the §5 hand gradient (empirical.shallow_grad).
    k, d = 3, 2
    A, B = _net(gen, k=k, d=d)
    x = dev.randn(d, generator=gen)
    w0, h = network.flatten(A, B), 1e-5

    def grad(w):
        return empirical.shallow_grad(*network.unflatten(w, k=k, d=d), x[None], activation=activation)[0]

    columns = []
    for j in range(w0.shape[0]):
        e = torch.zeros_like(w0)
        e[j] = h
        columns.append((grad(w0 + e) - grad(w0 - e)) / (2 * h))
    H_fd = torch.stack(columns, 1)
    assert_close(hessian.hessian(A, B, x, activation=activation), H_fd, rtol=1e-8)


# ----------------------------------------------------------------------------- width scaling


@pytest.mark.parametrize("activation", SMOOTH)
def test_norm_slope_is_minus_one_half_for_bounded_weights(activation):
    res = hessian.norm_vs_width(WIDTHS, 1.0, activation=activation, generator=dev.make_generator(0),
                                num_draws=20, init="uniform")
    slope = scaling.loglog_slope(res["widths"], res["norm_mean"])
    assert -0.55 < slope < -0.45, slope


@pytest.mark.parametrize("activation", SMOOTH)
def test_norm_slope_for_gaussian_weights_has_a_log_factor(activation):
    # max_i |A_i| over k Gaussians grows like sqrt(2 log k): the raw slope is above -1/2,
    # the slope of ||H||_2 / sqrt(log k) is close to -1/2.
    res = hessian.norm_vs_width(WIDTHS, 1.0, activation=activation, generator=dev.make_generator(1),
                                num_draws=20)
    slope = scaling.loglog_slope(res["widths"], res["norm_mean"])
    corrected = scaling.loglog_slope(res["widths"], res["norm_mean"] / torch.log(res["widths"]) ** 0.5)
    assert -0.5 < slope < -0.3, slope
    assert -0.6 < corrected < -0.42, corrected


def test_ntk_stays_order_one_and_matches_the_erf_limit():
    # Limit at x: E[erf(u)^2] + x^2 E[erf'(u)^2], u ~ N(0, x^2), both in closed form.
    x, num_draws = 1.0, 40
    res = hessian.norm_vs_width(WIDTHS, x, activation="erf", generator=dev.make_generator(2),
                                num_draws=num_draws)
    limit = ((2 / math.pi) * math.asin(2 * x**2 / (1 + 2 * x**2))
             + x**2 * (4 / math.pi) / math.sqrt(1 + 4 * x**2))
    se = res["ntk_std"] / math.sqrt(num_draws)
    assert bool(((res["ntk_mean"] - limit).abs() < 5 * se).all())
    assert 0.8 * limit < float(res["ntk_mean"].min()) <= float(res["ntk_mean"].max()) < 1.2 * limit
    assert bool((res["ntk_std"][1:] < res["ntk_std"][:-1] * 1.2).all())  # spread shrinks with k


def test_norm_vs_width_matches_per_network_routes():
    # Same draws (A then B, num_draws x k) through spectral_norm and empirical.shallow_ntk.
    widths, num_draws, x = [5, 40], 3, -0.6
    res = hessian.norm_vs_width(widths, x, activation="sin", generator=dev.make_generator(3),
                                num_draws=num_draws)
    gen = dev.make_generator(3)
    for j, k in enumerate(widths):
        A, B = dev.randn(num_draws, k, generator=gen), dev.randn(num_draws, k, generator=gen)
        norms = [hessian.spectral_norm(A[r:r + 1], B[r][:, None], x, activation="sin")
                 for r in range(num_draws)]
        ntks = [empirical.shallow_ntk(A[r:r + 1], B[r][:, None], torch.tensor([[x]], dtype=A.dtype),
                                      activation="sin")[0, 0] for r in range(num_draws)]
        assert abs(float(res["norm_mean"][j]) - float(torch.stack(norms).mean())) < 1e-13
        assert abs(float(res["ntk_mean"][j]) - float(torch.stack(ntks).mean())) < 1e-13


# ----------------------------------------------------------------------------- training


def _data(n=8, seed=0):
    gen = dev.make_generator(seed)
    x = 2 * dev.rand(n, 1, generator=gen) - 1
    return torch.cat([x, torch.ones_like(x)], 1), torch.sin(3 * x[:, 0])


def test_training_drift_shrinks_with_width():
    X, y = _data()
    widths = [16, 128, 1024]
    res = hessian.training_drift(widths, X, y, generator=dev.make_generator(0), lr=0.1,
                                 num_steps=200, num_draws=2)
    weight, kernel = res["weight_change"].mean(1), res["kernel_change"].mean(1)
    assert bool((weight[1:] < weight[:-1]).all()) and bool((kernel[1:] < kernel[:-1]).all())
    assert float(weight[-1]) < 0.08 and float(kernel[-1]) < 0.02
    assert -0.6 < scaling.loglog_slope(widths, weight) < -0.4
    assert float(res["loss"].max()) < 0.2 and float(res["loss"].mean()) < 0.1 * float(res["loss0"].mean())


def test_stacked_training_equals_training_each_shallow_net():
    X, y = _data(n=5, seed=1)
    res = hessian.training_drift([3, 7], X, y, activation="softplus", generator=dev.make_generator(4),
                                 lr=0.05, num_steps=25)
    gen = dev.make_generator(4)
    for j, k in enumerate([3, 7]):
        net = network.ShallowNet.init(2, k, generator=gen, activation="softplus")
        w0, K0 = net.w(), empirical.empirical_ntk(net, X)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        for _ in range(25):
            opt.zero_grad()
            (0.5 * ((y - net(X)) ** 2).sum()).backward()
            opt.step()
        loss = 0.5 * float(((y - net(X).detach()) ** 2).sum())
        K = empirical.empirical_ntk(net, X)
        assert abs(float(res["loss"][j, 0]) - loss) < 1e-12
        assert abs(float(res["weight_change"][j, 0]) - float((net.w() - w0).norm() / w0.norm())) < 1e-12
        assert abs(float(res["kernel_change"][j, 0]) - float((K - K0).norm() / K0.norm())) < 1e-12


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs(gen):
    A, B = _net(gen, k=4)
    X, y = _data(n=4)
    with pytest.raises(ValueError, match="A"):
        hessian.hessian(torch.zeros(2, 4, dtype=torch.float64), B, 1.0, activation="tanh")
    with pytest.raises(TypeError, match="A"):
        hessian.hessian(torch.zeros(1, 4, dtype=torch.int64), B, 1.0, activation="tanh")
    with pytest.raises(ValueError, match="B"):
        hessian.hessian(A, B[:3], 1.0, activation="tanh")
    with pytest.raises(ValueError, match="x"):
        hessian.hessian(A, B, torch.ones(2, dtype=torch.float64), activation="tanh")
    with pytest.raises(ValueError, match="x"):
        hessian.spectral_norm(A, B, float("nan"), activation="tanh")
    with pytest.raises(ValueError, match="activation"):
        hessian.block_eigenvalues(A, B, 1.0, activation="swish")
    A2, B2 = _net(gen, k=4, d=2)
    with pytest.raises(ValueError, match="B: the closed form"):
        hessian.block_eigenvalues(A2, B2, torch.ones(2, dtype=torch.float64), activation="tanh")
    with pytest.raises(ValueError, match="k"):
        hessian.pair_order(0)
    with pytest.raises(ValueError, match="widths"):
        hessian.norm_vs_width([], 1.0, activation="tanh", generator=gen)
    with pytest.raises(TypeError, match="widths"):
        hessian.norm_vs_width([16, 2.5], 1.0, activation="tanh", generator=gen)
    with pytest.raises(ValueError, match="num_draws"):
        hessian.norm_vs_width([16], 1.0, activation="tanh", generator=gen, num_draws=1)
    with pytest.raises(ValueError, match="init"):
        hessian.norm_vs_width([16], 1.0, activation="tanh", generator=gen, init="normal")
    with pytest.raises(TypeError, match="generator"):
        hessian.norm_vs_width([16], 1.0, activation="tanh", generator=0)
    with pytest.raises(ValueError, match="lr"):
        hessian.training_drift([8], X, y, generator=gen, lr=-0.1)
    with pytest.raises(ValueError, match="y"):
        hessian.training_drift([8], X, y[:3], generator=gen)
    with pytest.raises(ValueError, match="lr: training diverged"):
        hessian.training_drift([8], X, y, generator=gen, lr=100.0, num_steps=100)
