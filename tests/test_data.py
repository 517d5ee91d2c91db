"""Example 3's data and the bias coordinate."""
import math

import pytest
import torch

from lecture_ntk import data, device as dev


def test_example3_shapes_and_ranges():
    d = data.example3(generator=dev.make_generator(0))
    assert d.x_train.shape == (15,) and d.y_train.shape == (15,)
    assert d.x_test.shape == (1000,) and d.y_test.shape == (1000,)
    assert d.x_train.dtype == torch.float64
    assert float(d.x_train.min()) >= -1.0 and float(d.x_train.max()) < 1.0
    assert float(d.x_test[0]) == -1.0 and float(d.x_test[-1]) == 1.0
    gaps = d.x_test.diff()
    assert float((gaps - 2.0 / 999).abs().max()) < 1e-14


def test_labels_are_g_computed_with_math():
    d = data.example3(generator=dev.make_generator(3), n_train=5, n_test=7)
    for x, y in zip(d.x_train.tolist(), d.y_train.tolist()):
        assert abs(y - (x + math.sin(10 * x))) < 1e-14
    for x, y in zip(d.x_test.tolist(), d.y_test.tolist()):
        assert abs(y - (x + math.sin(10 * x))) < 1e-14


def test_deterministic_per_generator_seed():
    a = data.example3(generator=dev.make_generator(7))
    b = data.example3(generator=dev.make_generator(7))
    c = data.example3(generator=dev.make_generator(8))
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_uniform_mean_and_variance():
    # Many points: mean 0 and variance 1/3 of U[-1, 1], within 5 standard errors.
    n = 20000
    x = data.example3(generator=dev.make_generator(1), n_train=n, n_test=2).x_train
    assert abs(float(x.mean())) < 5 * math.sqrt(1 / 3 / n)
    assert abs(float(x.var()) - 1 / 3) < 5 * math.sqrt(4 / 45 / n)


def test_with_bias():
    x = torch.tensor([-0.5, 0.0, 2.0], dtype=torch.float64)
    X = data.with_bias(x)
    assert X.shape == (3, 2) and X.dtype == torch.float64
    assert torch.equal(X[:, 0], x) and torch.equal(X[:, 1], torch.ones(3, dtype=torch.float64))
    assert torch.equal(data.with_bias(x[:, None]), X)
    assert data.with_bias(x.float()).dtype == torch.float32


def test_bad_inputs():
    with pytest.raises(ValueError, match="x: expected shape"):
        data.with_bias(torch.ones(2, 3))
    with pytest.raises(ValueError, match="x: expected finite"):
        data.with_bias(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="generator"):
        data.example3(generator=0)
    with pytest.raises(ValueError, match="n_train"):
        data.example3(generator=dev.make_generator(0), n_train=0)
    with pytest.raises(ValueError, match="n_test"):
        data.example3(generator=dev.make_generator(0), n_test=1)
