"""Generators, device choice and the log-log slope."""
import numpy as np
import pytest
import torch

from lecture_ntk import device as dev
from lecture_ntk import scaling


def test_generator_is_cpu_and_reproducible():
    g1, g2 = dev.make_generator(3), dev.make_generator(3)
    assert g1.device.type == "cpu"
    assert torch.equal(dev.randn(5, generator=g1), dev.randn(5, generator=g2))


def test_same_numbers_on_every_device(device):
    a = dev.randn(4, 3, generator=dev.make_generator(1), device=device)
    b = dev.randn(4, 3, generator=dev.make_generator(1))
    assert a.device.type == device.type and torch.equal(a.cpu(), b)


def test_get_device_follows_cuda_availability():
    assert dev.get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        dev.make_generator(seed)


def test_loglog_slope_recovers_a_power_law():
    x = np.array([16, 64, 256, 1024.0])
    assert abs(scaling.loglog_slope(x, 3.0 * x ** -0.5) + 0.5) < 1e-12
    assert abs(scaling.loglog_slope(torch.tensor(x), torch.tensor(x) ** 2) - 2.0) < 1e-12
    with pytest.raises(ValueError, match="positive"):
        scaling.loglog_slope([1, 2], [1, -1])
    with pytest.raises(ValueError, match="equal length"):
        scaling.loglog_slope([1, 2, 3], [1, 2])
