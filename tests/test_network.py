"""The lecture's network: parameter order, forward pass, Example 1, and input checks."""
import math

import numpy as np
import pytest
import torch

from lecture_ntk import device as dev
from lecture_ntk import network
from conftest import assert_close


def test_init_is_reproducible_and_standard_normal():
    A1, B1 = network.init_params(3, 4000, generator=dev.make_generator(7))
    A2, B2 = network.init_params(3, 4000, generator=dev.make_generator(7))
    assert torch.equal(A1, A2) and torch.equal(B1, B2)
    assert A1.shape == (1, 4000) and B1.shape == (4000, 3) and A1.dtype == torch.float64
    w = torch.cat([A1.ravel(), B1.ravel()])
    # mean and variance of 16000 N(0, 1) draws, within 5 standard errors
    assert abs(float(w.mean())) < 5 / math.sqrt(w.numel())
    assert abs(float(w.var()) - 1.0) < 5 * math.sqrt(2 / w.numel())


def test_flatten_order_is_A_then_B_row_by_row():
    A = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    B = torch.tensor([[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]], dtype=torch.float64)
    w = network.flatten(A, B)
    assert w.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    A2, B2 = network.unflatten(w, k=2, d=3)
    assert torch.equal(A2, A) and torch.equal(B2, B)


def test_forward_matches_the_sum_over_units(gen):
    # f(w; x) = (1/sqrt(k)) sum_i A_1i phi(B_i . x), written out unit by unit.
    A, B = network.init_params(3, 5, generator=gen)
    X = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    out = network.forward(A, B, X, activation="tanh")
    by_hand = torch.stack([
        sum(A[0, i] * torch.tanh(B[i] @ x) for i in range(5)) / math.sqrt(5) for x in X])
    assert out.shape == (4, 1)
    assert_close(out[:, 0], by_hand)


def test_several_outputs_and_module(gen):
    net = network.ShallowNet.init(2, 6, 3, generator=gen, activation="erf")
    X = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    assert net(X).shape == (5, 3)
    assert [n for n, _ in net.named_parameters()] == ["A", "B"]
    single = network.ShallowNet(net.A[:1].detach(), net.B.detach(), activation="erf")
    assert_close(single(X), net(X)[:, 0])


def test_example1_has_no_width_scaling(gen):
    net = network.example1(generator=gen, activation="tanh")
    (a1, a2), (b1, b2) = net.A.detach()[0], net.B.detach()[:, 0]
    x = torch.tensor([[0.7]], dtype=torch.float64)
    expected = a1 * torch.tanh(b1 * 0.7) + a2 * torch.tanh(b2 * 0.7)
    assert_close(net(x)[0], expected)
    assert net.w().shape == (4,)


def test_numpy_input_and_device(device, gen):
    A, B = network.init_params(2, 3, generator=gen, device=device)
    assert A.device.type == device.type
    X = torch.randn(4, 2, generator=gen, dtype=torch.float64).to(device)
    assert network.forward(A, B, X).device.type == device.type
    if device.type == "cpu":
        out = network.forward(A, B, X.numpy())
        assert_close(out, network.forward(A, B, X))


@pytest.mark.parametrize("call, match", [
    (lambda A, B: network.forward(A, B, torch.zeros(3, 4, dtype=torch.float64)), "X: expected 2 feature"),
    (lambda A, B: network.forward(A, B, torch.zeros(3, dtype=torch.float64)), r"X: expected shape \(n, d\)"),
    (lambda A, B: network.forward(A, B, torch.full((3, 2), float("nan"), dtype=torch.float64)),
     "X: expected finite"),
    (lambda A, B: network.forward(A, B, torch.zeros(3, 2, dtype=torch.int64)), "X: expected a floating"),
    (lambda A, B: network.forward(A, B, torch.zeros(3, 2, dtype=torch.float32)), "X: expected dtype"),
    (lambda A, B: network.forward(A, B[:2], torch.zeros(3, 2, dtype=torch.float64)), r"B: expected shape \(k, d\) with k = 3"),
    (lambda A, B: network.forward(A, B, np.zeros((3, 2), dtype=np.int32)), "X: expected a floating"),
    (lambda A, B: network.forward(A, B, torch.zeros(3, 2, dtype=torch.float64), activation="nope"),
     "activation: unknown name"),
    (lambda A, B: network.unflatten(torch.zeros(5, dtype=torch.float64), k=3, d=2), "w: expected length"),
    (lambda A, B: network.init_params(2, 0, generator=torch.Generator()), "k: expected an int >= 1"),
    (lambda A, B: network.init_params(2, 3, generator=None), "generator: expected a torch.Generator"),
])
def test_bad_inputs_name_the_argument(call, match, gen):
    A, B = network.init_params(2, 3, generator=gen)
    with pytest.raises((ValueError, TypeError), match=match):
        call(A, B)
