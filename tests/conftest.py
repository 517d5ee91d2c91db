"""Shared test helpers: tolerances per dtype, a relative-error assert, device and precision fixtures."""
from __future__ import annotations

import pytest
import torch

# Relative Frobenius tolerances for quantities computed two ways in one dtype.
RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


def rel_error(actual, expected) -> float:
    """||actual - expected||_F / max(||expected||_F, tiny)."""
    actual = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    expected = torch.as_tensor(expected).detach().to("cpu", torch.float64)
    denom = max(float(torch.linalg.norm(expected)), 1e-300)
    return float(torch.linalg.norm(actual - expected)) / denom


def assert_close(actual, expected, rtol=None, dtype=None, msg=""):
    """Assert the relative Frobenius error is below ``rtol`` (default: RTOL of ``dtype``)."""
    if rtol is None:
        dtype = dtype or (actual.dtype if isinstance(actual, torch.Tensor) else torch.float64)
        rtol = RTOL[dtype]
    err = rel_error(actual, expected)
    assert err <= rtol, f"{msg} relative error {err:.3e} > rtol {rtol:.1e}"
    return err


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test on the CPU, and on CUDA when one is present."""
    return torch.device(request.param)


@pytest.fixture
def gen():
    """A fresh CPU generator with a fixed seed."""
    g = torch.Generator()
    g.manual_seed(1234)
    return g


@pytest.fixture
def loose_precision():
    """TF32 and reduced float32 matmul precision switched on, as a speed-minded user might;
    the settings before are restored afterwards."""
    from lecture_ntk import precision
    saved = precision.settings()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")
    yield precision.settings()
    precision._apply(saved)
