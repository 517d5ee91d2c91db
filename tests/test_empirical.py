"""Tests for lecture_ntk.empirical: autograd (torch.func) against the hand formulas of §4-§5."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import assert_close
from lecture_ntk import activations, device as dev, empirical, network

SMOOTH_AND_RELU = ["relu_normalized", "tanh", "erf", "softplus"]


def _net_and_data(gen, device, *, d=3, k=7, c=1, n=5, activation="tanh", scaled=True):
    net = network.ShallowNet.init(d, k, c, generator=gen, activation=activation, scaled=scaled,
                                  device=device)
    X = dev.randn(n, d, generator=gen, device=device)
    return net, X, net.A.detach(), net.B.detach()


@pytest.mark.parametrize("activation", SMOOTH_AND_RELU)
@pytest.mark.parametrize("scaled", [True, False])
def test_psi_matches_hand_gradients(gen, device, activation, scaled):
    net, X, A, B = _net_and_data(gen, device, activation=activation, scaled=scaled)
    P = empirical.psi(net, X)
    assert P.shape == (5, 7 + 7 * 3)
    G = empirical.shallow_grad(A, B, X, activation=activation, scaled=scaled)
    assert_close(P, G, rtol=1e-12)


def test_psi_matches_finite_differences(gen):
    # A third route for one sample: central differences of f along each coordinate of w.
    net, X, A, B = _net_and_data(gen, "cpu", d=2, k=3, n=1, activation="tanh")
    w0 = network.flatten(A, B)
    h = 1e-6
    fd = []
    for j in range(w0.shape[0]):
        e = torch.zeros_like(w0)
        e[j] = h
        plus = network.forward(*network.unflatten(w0 + e, k=3, d=2), X, activation="tanh")
        minus = network.forward(*network.unflatten(w0 - e, k=3, d=2), X, activation="tanh")
        fd.append(float((plus - minus)[0, 0]) / (2 * h))
    assert_close(empirical.psi(net, X)[0], torch.tensor(fd, dtype=torch.float64), rtol=1e-8)


def test_psi_in_blocks_of_rows(gen):
    # More rows than one jacrev block: the blocks must be stitched in order.
    net, X, A, B = _net_and_data(gen, "cpu", n=150, activation="relu_normalized")
    assert_close(empirical.psi(net, X), empirical.shallow_grad(A, B, X), rtol=1e-12)


def test_psi_of_a_generic_module_matches_per_sample_autograd(gen):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    with torch.no_grad():  # replace nn.Linear's own draws by the test generator's
        for p in model.parameters():
            p.copy_(dev.randn(*p.shape, generator=gen))
    X = dev.randn(6, 3, generator=gen)
    rows = []
    for i in range(X.shape[0]):
        grads = torch.autograd.grad(model(X[i:i + 1]).sum(), list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    assert_close(empirical.psi(model, X), torch.stack(rows), rtol=1e-12)


@pytest.mark.parametrize("activation", SMOOTH_AND_RELU)
def test_empirical_ntk_matches_closed_form(gen, device, activation):
    net, X1, A, B = _net_and_data(gen, device, activation=activation)
    X2 = dev.randn(4, 3, generator=gen, device=device)
    K = empirical.empirical_ntk(net, X1, X2)
    assert K.shape == (5, 4)
    assert_close(K, empirical.shallow_ntk(A, B, X1, X2, activation=activation), rtol=1e-12)
    assert_close(empirical.empirical_ntk(net, X1),
                 empirical.shallow_ntk(A, B, X1, activation=activation), rtol=1e-12)


def test_shallow_ntk_terms_match_explicit_sums(gen):
    # §5 written as double loops over samples and hidden units.
    net, X, A, B = _net_and_data(gen, "cpu", d=2, k=4, n=3, activation="erf")
    act = activations.get("erf")
    k = 4
    nngp = torch.zeros(3, 3, dtype=torch.float64)
    corr = torch.zeros(3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):
            for i in range(k):
                za, zb = B[i] @ X[a], B[i] @ X[b]
                nngp[a, b] += act.phi(za) * act.phi(zb) / k
                corr[a, b] += (X[a] @ X[b]) * A[0, i] ** 2 * act.dphi(za) * act.dphi(zb) / k
    nngp_term, correction = empirical.shallow_ntk_terms(A, B, X, activation="erf")
    assert_close(nngp_term, nngp, rtol=1e-12)
    assert_close(correction, corr, rtol=1e-12)
    assert_close(empirical.shallow_ntk(A, B, X, activation="erf"), nngp + corr, rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu_normalized", "tanh"])
def test_example1_hand_formula(gen, activation):
    # §4: K(x, x~) = sum_i phi(B_i1 x) phi(B_i1 x~) + x x~ sum_i A_1i^2 phi'(B_i1 x) phi'(B_i1 x~)
    net = network.example1(generator=gen, activation=activation)
    act = activations.get(activation)
    A, B = net.A.detach(), net.B.detach()
    A11, A12, B11, B21 = float(A[0, 0]), float(A[0, 1]), float(B[0, 0]), float(B[1, 0])
    x = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    xs, xt = x[:, None], x[None, :]
    K_hand = (act.phi(B11 * xs) * act.phi(B11 * xt) + act.phi(B21 * xs) * act.phi(B21 * xt)
              + xs * xt * (A11 ** 2 * act.dphi(B11 * xs) * act.dphi(B11 * xt)
                           + A12 ** 2 * act.dphi(B21 * xs) * act.dphi(B21 * xt)))
    X = x[:, None]
    assert_close(empirical.empirical_ntk(net, X), K_hand, rtol=1e-12)
    assert_close(empirical.shallow_ntk(A, B, X, activation=activation, scaled=False), K_hand,
                 rtol=1e-12)
    # Example 1 drops the 1/sqrt(k): its kernel is k = 2 times the scaled §5 kernel.
    scaled_net = network.ShallowNet(A, B, activation=activation, scaled=True)
    assert_close(empirical.empirical_ntk(net, X), 2.0 * empirical.empirical_ntk(scaled_net, X),
                 rtol=1e-12)


def test_several_outputs(gen):
    net, X1, A, B = _net_and_data(gen, "cpu", c=3, activation="tanh")
    X2 = dev.randn(2, 3, generator=gen)
    K = empirical.empirical_ntk(net, X1, X2)
    assert K.shape == (5, 2, 3, 3)
    for a in range(3):  # diagonal blocks: the scalar kernel of output a (row a of A)
        assert_close(K[:, :, a, a], empirical.shallow_ntk(A[a:a + 1], B, X1, X2,
                                                          activation="tanh"), rtol=1e-12)
    # Off-diagonal blocks: only B is shared, giving (x^T x~)(1/k) sum_i A_ai A_bi phi' phi'.
    act, k = activations.get("tanh"), A.shape[1]
    D1, D2 = act.dphi(X1 @ B.T), act.dphi(X2 @ B.T)
    off = (X1 @ X2.T) * ((D1 * A[0]) @ (D2 * A[1]).T) / k
    assert_close(K[:, :, 0, 1], off, rtol=1e-12)
    assert float(off.abs().max()) > 1e-3  # not zero at finite width (§9 holds only as k -> inf)


def test_bad_inputs(gen):
    net, X, A, B = _net_and_data(gen, "cpu")
    with pytest.raises(TypeError, match="model"):
        empirical.psi("not a module", X)
    with pytest.raises(ValueError, match="model"):
        empirical.psi(nn.Tanh(), X)
    with pytest.raises(ValueError, match="X"):
        empirical.psi(net, X[0])
    with pytest.raises(ValueError, match="X"):
        empirical.psi(net, torch.full((2, 3), float("nan"), dtype=torch.float64))
    with pytest.raises(TypeError, match="X"):
        empirical.psi(net, X.float())
    with pytest.raises(ValueError, match="X2"):
        empirical.empirical_ntk(net, X, X[:, :2])
    with pytest.raises(ValueError, match="model"):  # output (n, 2, 2): not (n,) or (n, c)
        empirical.psi(nn.Sequential(nn.Linear(3, 4), nn.Unflatten(1, (2, 2))).double(), X)
    multi = network.ShallowNet.init(3, 4, 2, generator=gen)
    with pytest.raises(ValueError, match="model"):
        empirical.psi(multi, X)
    with pytest.raises(ValueError, match="A"):
        empirical.shallow_grad(multi.A.detach(), multi.B.detach(), X)
    with pytest.raises(ValueError, match="X2"):
        empirical.shallow_ntk(A, B, X, X[:, :2])
    with pytest.raises(ValueError, match="activation"):
        empirical.shallow_ntk(A, B, X, activation="nope")
