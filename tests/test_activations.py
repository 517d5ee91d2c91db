"""phi', phi'' of every activation against autograd; the registry's errors."""
import math

import pytest
import torch

from lecture_ntk import activations
from conftest import assert_close


@pytest.mark.parametrize("name", activations.NAMES)
def test_derivatives_match_autograd(name):
    act = activations.get(name)
    # avoid z = 0 exactly, where ReLU has no derivative
    z = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)[1::2].requires_grad_(True)
    (g,) = torch.autograd.grad(act.phi(z).sum(), z, create_graph=True)
    assert_close(act.dphi(z).detach(), g.detach(), rtol=1e-13)
    if g.requires_grad:
        (gg,) = torch.autograd.grad(g.sum(), z)
    else:  # piecewise-linear activations: autograd sees a constant derivative
        gg = torch.zeros_like(z)
    assert torch.allclose(act.ddphi(z).detach(), gg, atol=1e-13)


def test_known_values():
    z = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    assert torch.equal(activations.get("relu").phi(z), torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64))
    assert_close(activations.get("relu_normalized").phi(z), math.sqrt(2) * torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64))
    assert_close(activations.get("erf").phi(z), torch.special.erf(z))
    assert activations.get("relu").homogeneous and not activations.get("tanh").homogeneous


def test_relu_normalized_has_unit_second_moment(gen):
    # E[phi(u)^2] = 1 for u ~ N(0, 1): the reason for the sqrt(2) (Example 2, dual(1) = 1).
    u = torch.randn(10**6, generator=gen, dtype=torch.float64)
    vals = activations.get("relu_normalized").phi(u) ** 2
    se = float(vals.std()) / math.sqrt(u.numel())
    assert abs(float(vals.mean()) - 1.0) < 5 * se


def test_get_passes_objects_through_and_rejects_bad_input():
    act = activations.get("tanh")
    assert activations.get(act) is act
    with pytest.raises(ValueError, match=r"activation: unknown name 'gelu'.*relu_normalized"):
        activations.get("gelu")
    with pytest.raises(TypeError, match="activation"):
        activations.get(3)
