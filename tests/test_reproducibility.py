"""Reproducibility: one seed, one result, on any run, thread count and device.

Notebook text outputs are compared with the committed ones by nbval in CI, which re-executes
every notebook once: a notebook whose output changed from one execution to the next fails
there. Executing every notebook a second time would double that cost (minutes on 2 cores) for
little more, so this file checks the ingredients instead, cheaply:
- the notebook sources never seed globally and pass an explicit generator to every draw;
- the seeded library routines the notebooks call give bit-identical results when run twice
  in one process, and results within 1e-12 of each other with 1 or 2 threads (so the few
  printed digits cannot change);
- the same seed gives the same networks and data on CPU and CUDA (draws on a CPU generator,
  then moved; skipped without a GPU).
"""
from __future__ import annotations

import pathlib
import re

import pytest
import torch

from conftest import assert_close
from lecture_ntk import data, device, empirical, hessian, kernels, linearize, network, regression

F64 = torch.float64
NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
_GLOBAL_SEEDING = re.compile(r"\b(torch\.manual_seed|torch\.random\.manual_seed|torch\.cuda\."
                             r"manual_seed(_all)?|np\.random\.seed|random\.seed|"
                             r"np\.random\.(rand|randn|normal|uniform)\b)")
_TORCH_DRAW = re.compile(r"\b(torch\.(randn|rand|randint|randperm|normal|bernoulli|multinomial)|"
                         r"dev\.(randn|rand))\(")


def _calls(source: str, start: int) -> str:
    """The text of the call whose '(' ends at ``start`` (balanced parentheses)."""
    depth, i = 0, start
    while i < len(source):
        depth += {"(": 1, ")": -1}.get(source[i], 0)
        if depth == 0:
            return source[start:i + 1]
        i += 1
    return source[start:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_draws_use_explicit_generators(path):
    code = "\n".join(line for line in path.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    assert not _GLOBAL_SEEDING.search(code), f"{path.name}: global seeding or global RNG"
    for m in _TORCH_DRAW.finditer(code):
        call = _calls(code, m.end() - 1)
        assert "generator=" in call, f"{path.name}: draw without an explicit generator: {call}"
    assert "make_generator(" in code, f"{path.name}: no dev.make_generator"


def _seeded_pipeline(seed: int) -> dict:
    """The seeded computations the notebooks rely on, small."""
    gen = device.make_generator(seed)
    out = {}
    A, B = network.init_params(2, 64, generator=gen)
    ex = data.example3(generator=gen, n_test=50)
    X, X_test = data.with_bias(ex.x_train), data.with_bias(ex.x_test)
    out["A"], out["B"], out["x_train"] = A, B, ex.x_train
    net = network.ShallowNet(A, B)
    out["K_emp"] = empirical.empirical_ntk(net, X)
    out["K_inf"] = kernels.ntk(X, depth=2)
    out["pred"] = regression.kernel_regression(kernels.ntk(X), ex.y_train, kernels.ntk(X_test, X),
                                               ridge=1e-10)
    psi = empirical.psi(net, X)
    out["w_tilde"], out["losses"] = linearize.train_linear(psi, ex.y_train, lr=1e-3, num_steps=50)
    z = device.randn(10 ** 4, 2, generator=gen)
    out["mc"] = (torch.relu(z[:, 0]) * torch.relu(z[:, 1])).mean()
    res = hessian.norm_vs_width([4, 16], 1.0, activation="tanh", generator=gen, num_draws=4)
    out["hessian"] = res["norm_mean"]
    return out


def test_same_seed_same_results_bitwise():
    first, second = _seeded_pipeline(7), _seeded_pipeline(7)
    for name in first:
        assert torch.equal(first[name], second[name]), name
    other = _seeded_pipeline(8)
    assert not torch.equal(first["A"], other["A"])


def test_thread_count_changes_nothing_printed():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _seeded_pipeline(3)
        torch.set_num_threads(2)
        two = _seeded_pipeline(3)
    finally:
        torch.set_num_threads(before)
    for name in one:
        assert_close(two[name], one[name], rtol=1e-12, msg=name)


def test_draws_are_made_on_the_cpu_generator():
    gen = device.make_generator(0)
    assert gen.device.type == "cpu"
    A, B = network.init_params(3, 5, generator=device.make_generator(0))
    A2, B2 = network.init_params(3, 5, generator=device.make_generator(0), device="cpu")
    assert torch.equal(A, A2) and torch.equal(B, B2)
    with pytest.raises(TypeError, match="generator"):
        network.init_params(3, 5, generator=None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_seed_same_draws_on_cpu_and_cuda():
    cuda = torch.device("cuda")
    A, B = network.init_params(3, 50, generator=device.make_generator(5))
    Ag, Bg = network.init_params(3, 50, generator=device.make_generator(5), device=cuda)
    assert torch.equal(Ag.cpu(), A) and torch.equal(Bg.cpu(), B)
    ex = data.example3(generator=device.make_generator(5))
    exg = data.example3(generator=device.make_generator(5), device=cuda)
    assert torch.equal(exg.x_train.cpu(), ex.x_train)
    net, netg = network.ShallowNet(A, B), network.ShallowNet(Ag, Bg)
    X = data.with_bias(ex.x_train)
    assert_close(empirical.empirical_ntk(netg, X.to(cuda)).cpu(), empirical.empirical_ntk(net, X),
                 rtol=1e-12)
