"""Kernel regression: Cholesky route vs torch.linalg.solve / lstsq, interpolation, bad inputs."""
import pytest
import torch

from conftest import assert_close
from lecture_ntk import regression

F64 = torch.float64


def _rbf_problem(gen, n=12, m=7, c=None, dtype=torch.float64):
    X = torch.randn(n + m, 3, generator=gen, dtype=dtype)
    K = torch.exp(-0.5 * torch.cdist(X, X) ** 2)
    y = torch.randn((n,) if c is None else (n, c), generator=gen, dtype=dtype)
    return K[:n, :n], y, K[n:, :n], K[:n, :n]


def test_matches_linalg_solve(gen):
    K_train, y, K_test_train, _ = _rbf_problem(gen)
    expected = K_test_train @ torch.linalg.solve(K_train, y)
    assert_close(regression.kernel_regression(K_train, y, K_test_train), expected, rtol=1e-8)


def test_ridge_matches_lstsq(gen):
    K_train, y, K_test_train, _ = _rbf_problem(gen)
    ridge = 0.3
    n = K_train.shape[0]
    # An independent solver (QR-based least squares) on the same system K + ridge I.
    M = K_train + ridge * torch.eye(n, dtype=K_train.dtype)
    alpha = torch.linalg.lstsq(M, y[:, None]).solution
    expected = (K_test_train @ alpha)[:, 0]
    assert_close(regression.kernel_regression(K_train, y, K_test_train, ridge=ridge), expected,
                 rtol=1e-10)


def test_interpolates_training_points(gen):
    K_train, y, _, _ = _rbf_problem(gen, n=8)
    pred = regression.kernel_regression(K_train, y, K_train)
    assert_close(pred, y, rtol=1e-8)


def test_multi_output_equals_per_column(gen):
    K_train, Y, K_test_train, _ = _rbf_problem(gen, c=3)
    out = regression.kernel_regression(K_train, Y, K_test_train, ridge=1e-3)
    assert out.shape == (K_test_train.shape[0], 3)
    for j in range(3):
        col = regression.kernel_regression(K_train, Y[:, j], K_test_train, ridge=1e-3)
        assert_close(out[:, j], col)


def test_float32_and_numpy(gen):
    K_train, y, K_test_train, _ = _rbf_problem(gen, n=6, m=4)
    expected = regression.kernel_regression(K_train, y, K_test_train, ridge=1e-2)
    out32 = regression.kernel_regression(K_train.float(), y.float(), K_test_train.float(),
                                         ridge=1e-2)
    assert out32.dtype == torch.float32
    assert_close(out32, expected, rtol=1e-4)
    out_np = regression.kernel_regression(K_train.numpy(), y.numpy(), K_test_train.numpy(),
                                          ridge=1e-2)
    assert_close(out_np, expected)


def test_device(device, gen):
    K_train, y, K_test_train, _ = _rbf_problem(gen, n=6, m=4)
    expected = regression.kernel_regression(K_train, y, K_test_train)
    out = regression.kernel_regression(K_train.to(device), y.to(device), K_test_train.to(device))
    assert out.device.type == device.type
    assert_close(out, expected, rtol=1e-8)


def test_singular_kernel_says_so_and_ridge_fixes_it(gen):
    Z = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    K = Z @ Z.T  # rank 2, not positive definite
    y = torch.randn(5, generator=gen, dtype=torch.float64)
    message = "K_train: expected a positive definite.*smallest eigenvalue.*condition number"
    with pytest.raises(ValueError, match=message + ".*ridge.*float64"):
        regression.kernel_regression(K, y, K)
    out = regression.kernel_regression(K, y, K, ridge=1e-6)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("bad, match", [
    (dict(K_train=torch.ones(3, 4, dtype=F64)), "K_train: expected a square"),
    (dict(K_test_train=torch.ones(2, 5, dtype=F64)), "K_test_train: expected shape"),
    (dict(y=torch.ones(4, dtype=F64)), "y: expected shape"),
    (dict(y=torch.ones(3, 2, 1, dtype=F64)), "y: expected shape"),
    (dict(ridge=-1.0), "ridge"),
    (dict(K_train=torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                               dtype=torch.float64)), "K_train: expected a symmetric"),
    (dict(y=torch.tensor([1.0, float("nan"), 0.0], dtype=torch.float64)), "y: expected finite"),
])
def test_bad_inputs_raise_value_error(bad, match):
    args = dict(K_train=torch.eye(3, dtype=torch.float64), y=torch.ones(3, dtype=torch.float64),
                K_test_train=torch.ones(2, 3, dtype=torch.float64), ridge=0.0)
    args.update(bad)
    ridge = args.pop("ridge")
    with pytest.raises(ValueError, match=match):
        regression.kernel_regression(**args, ridge=ridge)


def test_mismatched_dtype_raises_type_error():
    with pytest.raises(TypeError, match="y: expected dtype"):
        regression.kernel_regression(torch.eye(3, dtype=torch.float64), torch.ones(3),
                                     torch.ones(2, 3, dtype=torch.float64))
