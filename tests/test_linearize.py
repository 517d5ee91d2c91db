"""Tests for lecture_ntk.linearize: f~ by jvp against psi, and training f~ as linear regression."""
from __future__ import annotations

import pytest
import torch
from torch.func import hessian, jacrev

from conftest import assert_close
from lecture_ntk import device as dev, empirical, linearize, network, scaling

# torch's forward-mode AD (behind torch.func.jvp) loads decompositions with torch.jit.script
# on first use, which this torch version flags as deprecated; nothing in our code to change.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def _setup(gen, device="cpu", *, d=2, k=10, n=6, activation="tanh"):
    net = network.ShallowNet.init(d, k, generator=gen, activation=activation, device=device)
    X = dev.randn(n, d, generator=gen, device=device)
    y = dev.randn(n, generator=gen, device=device)
    params0 = {name: p.detach().clone() for name, p in net.named_parameters()}
    return net, X, y, params0


def test_f_lin_at_w0_equals_f_with_equal_gradients(gen, device):
    net, X, y, params0 = _setup(gen, device)
    out = linearize.f_lin(net, params0, X, params0)
    assert_close(out, net(X).detach(), rtol=1e-14)
    # d f~ / d w at w0, per sample (autograd through the jvp), equals psi = grad f(w0).
    jac = jacrev(lambda p: linearize.f_lin(net, params0, X, p))(params0)
    J = torch.cat([jac[name].reshape(X.shape[0], -1) for name in params0], dim=1)
    assert_close(J, empirical.psi(net, X), rtol=1e-12)


def test_f_lin_with_several_outputs(gen):
    # c = 2 outputs: f~ at w0 + w~ is f(w0) + J w~ with the (n, c, p) Jacobian.
    net = network.ShallowNet.init(2, 5, 2, generator=gen, activation="sin")
    X = dev.randn(3, 2, generator=gen)
    params0 = {name: p.detach().clone() for name, p in net.named_parameters()}
    w_tilde = dev.randn(2 * 5 + 5 * 2, generator=gen)
    params = linearize.params_from_vector(net, linearize.params_to_vector(params0) + w_tilde)
    expected = net(X).detach() + empirical.jacobian(net, X) @ w_tilde
    assert_close(linearize.f_lin(net, params0, X, params), expected, rtol=1e-12)


def test_f_lin_equals_f0_plus_psi_times_displacement(gen):
    net, X, y, params0 = _setup(gen)
    w_tilde = dev.randn(10 + 10 * 2, generator=gen)
    w = linearize.params_to_vector(params0) + w_tilde
    out = linearize.linearize(net)(linearize.params_from_vector(net, w), X)
    expected = net(X).detach() + empirical.psi(net, X) @ w_tilde
    assert_close(out, expected, rtol=1e-12)


def test_linearize_freezes_w0(gen):
    net, X, y, params0 = _setup(gen)
    f = linearize.linearize(net)
    with torch.no_grad():
        net.A.add_(1.0)  # moving the model afterwards must not move the expansion point
    assert_close(f(params0, X), linearize.f_lin(net, params0, X, params0), rtol=1e-14)
    assert_close(f(params0, X), network.forward(params0["A"], params0["B"], X,
                                                activation="tanh")[:, 0], rtol=1e-14)


def test_gap_to_f_is_quadratic_and_matches_hessian(gen):
    # f(w0 + t v) - f~(w0 + t v) = t^2 v^T H v / 2 + O(t^3) for a smooth activation.
    net, X, y, params0 = _setup(gen, d=2, k=8, n=1, activation="tanh")
    w0 = linearize.params_to_vector(params0)
    v = dev.randn(w0.shape[0], generator=gen)
    v = v / torch.linalg.norm(v)
    ts = torch.logspace(-3, -1, 5, dtype=torch.float64)
    gaps = []
    for t in ts:
        p = linearize.params_from_vector(net, w0 + t * v)
        f_true = network.forward(p["A"], p["B"], X, activation="tanh")[0, 0]
        gaps.append(float((f_true - linearize.f_lin(net, params0, X, p)[0]).abs()))
    gaps = torch.tensor(gaps, dtype=torch.float64)
    assert abs(scaling.loglog_slope(ts, gaps) - 2.0) < 0.05

    def f_of_w(w):
        A, B = network.unflatten(w, k=8, d=2)
        return network.forward(A, B, X, activation="tanh")[0, 0]

    curvature = 0.5 * float(v @ hessian(f_of_w)(w0) @ v).__abs__()
    assert_close(gaps[0] / ts[0] ** 2, torch.tensor(curvature), rtol=1e-2)


def _regression_problem(gen, n=5, k=12):
    # d = 5: random inputs in 5-D keep psi psi^T well conditioned, so GD converges in few steps.
    net, X, y, params0 = _setup(gen, d=5, k=k, n=n)
    P = empirical.psi(net, X)
    return net, X, y, P, net(X).detach()


def test_gradient_descent_reaches_minimum_norm_solution(gen):
    net, X, y, P, f0 = _regression_problem(gen)
    lam = torch.linalg.eigvalsh(P @ P.T)
    lr = 1.0 / float(lam[-1])
    num_steps = int(40.0 / (lr * float(lam[0]))) + 1  # (1 - lr lambda_min)^s < e^-40
    assert num_steps < 5_000
    w_gd, losses = linearize.train_linear(P, y, f0, lr=lr, num_steps=num_steps)
    assert losses.shape == (num_steps + 1,) and float(losses[-1]) < 1e-20
    w_star = linearize.solve_linear(P, y, f0)
    assert_close(w_star, torch.linalg.pinv(P) @ (y - f0), rtol=1e-10)  # pseudo-inverse route
    assert_close(w_gd, w_star, rtol=1e-10)


def test_residual_decays_along_eigenvectors(gen):
    # §13: after s steps, u^T (y - f0 - psi w~_s) = (1 - lr lambda)^s u^T (y - f0).
    net, X, y, P, f0 = _regression_problem(gen)
    lam, U = torch.linalg.eigh(P @ P.T)
    lr, s = 1.5 / float(lam[-1]), 7
    w_s, _ = linearize.train_linear(P, y, f0, lr=lr, num_steps=s)
    r0 = y - f0
    predicted = (1.0 - lr * lam) ** s * (U.T @ r0)
    assert_close(U.T @ (r0 - P @ w_s), predicted, rtol=1e-12)


def test_corrected_predictor_is_kernel_regression_plus_f0(gen):
    net, X, y, P, f0 = _regression_problem(gen)
    X_test = dev.randn(4, 5, generator=gen)
    P_test, f0_test = empirical.psi(net, X_test), net(X_test).detach()
    K_train = empirical.empirical_ntk(net, X)
    K_test_train = empirical.empirical_ntk(net, X_test, X)
    corrected = linearize.predict_linear(P_test, linearize.solve_linear(P, y, f0), f0_test)
    assert_close(corrected, f0_test + K_test_train @ torch.linalg.solve(K_train, y - f0),
                 rtol=1e-10)
    shortcut = linearize.predict_linear(P_test, linearize.solve_linear(P, y))
    assert_close(shortcut, K_test_train @ torch.linalg.solve(K_train, y), rtol=1e-10)
    # The two differ by f0 minus the kernel interpolant of f0.
    gap = f0_test - K_test_train @ torch.linalg.solve(K_train, f0)
    assert_close(corrected - shortcut, gap, rtol=1e-8)
    assert float(gap.abs().max()) > 1e-3


def test_training_f_lin_is_corrected_linear_regression(gen):
    net, X, y, P, f0 = _regression_problem(gen, n=4, k=6)
    lr, num_steps = 0.5 / float(torch.linalg.eigvalsh(P @ P.T)[-1]), 15
    params, losses = linearize.train_f_lin(net, X, y, lr=lr, num_steps=num_steps)
    w_tilde, losses_lin = linearize.train_linear(P, y, f0, lr=lr, num_steps=num_steps)
    displacement = linearize.params_to_vector(params) - net.w()
    assert_close(displacement, w_tilde, rtol=1e-12)
    assert_close(losses, losses_lin, rtol=1e-12)
    w_short, _ = linearize.train_linear(P, y, lr=lr, num_steps=num_steps)
    assert float((w_short - w_tilde).abs().max()) > 1e-3


def test_bad_inputs(gen):
    net, X, y, params0 = _setup(gen)
    P = empirical.psi(net, X)
    with pytest.raises(ValueError, match="params"):
        linearize.f_lin(net, params0, X, {"A": params0["A"]})
    with pytest.raises(ValueError, match="params"):
        linearize.f_lin(net, params0, X, {"A": params0["A"], "B": params0["B"][:3]})
    with pytest.raises(TypeError, match="params0"):
        linearize.f_lin(net, [params0["A"], params0["B"]], X, params0)
    with pytest.raises(TypeError, match="model"):
        linearize.linearize(lambda x: x)
    with pytest.raises(ValueError, match="w"):
        linearize.params_from_vector(net, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y"):
        linearize.train_linear(P, y[:3], lr=0.1, num_steps=2)
    with pytest.raises(ValueError, match="f0_train"):
        linearize.solve_linear(P, y, y[:2])
    with pytest.raises(ValueError, match="lr"):
        linearize.train_linear(P, y, lr=-1.0, num_steps=2)
    lam_max = float(torch.linalg.eigvalsh(P @ P.T)[-1])
    with pytest.raises(ValueError, match="lr"):  # diverges instead of returning NaN
        linearize.train_linear(P, y, lr=3.0 / lam_max, num_steps=5000)
    with pytest.raises(TypeError, match="num_steps"):
        linearize.train_linear(P, y, lr=0.1, num_steps=2.5)
    with pytest.raises(ValueError, match="psi_train"):  # n > p: psi psi^T is singular
        linearize.solve_linear(torch.ones(4, 3, dtype=torch.float64), y[:4])
    with pytest.raises(ValueError, match="w_tilde"):
        linearize.predict_linear(P, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y"):
        linearize.train_f_lin(net, X, y[:2], lr=0.1, num_steps=1)
