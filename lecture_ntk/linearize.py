"""The linearised network f~ (Definition 1) and its training as linear regression on psi.

    f~_x(w) = f_x(w0) + grad f_x(w0)^T (w - w0)

Writing w = w0 + w~, training f~ with L = 1/2 sum_i (y_i - f~_{x_i}(w))^2 is
linear regression of the corrected labels y_i - f_{x_i}(w0) on the features
psi(x_i) = grad f_{x_i}(w0). The common shortcut pretends f(w0) = 0 and
regresses y itself (``f0_train=None`` below).

Parameters travel as dicts name -> tensor, as in ``dict(model.named_parameters())``;
``params_to_vector`` / ``params_from_vector`` convert to the flat w of
``empirical.psi`` (``model.parameters()`` order).

Numerics: float32 products run with TF32 off (``precision.full_precision``).

Lecture: Definition 1 and its Remarks (§2), §13; notebook 01.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, jvp

from ._checks import as_samples, as_tensor, check_finite, check_int, check_ndim, check_real
from .empirical import _check_model
from .precision import full_precision


def _check_params(model: nn.Module, params, name: str) -> dict:
    """Validate a dict name -> tensor with the names, shapes, dtype and device of the model."""
    first = _check_model(model)
    if not isinstance(params, dict):
        raise TypeError(f"{name}: expected a dict name -> tensor (like "
                        f"dict(model.named_parameters())), got {type(params).__name__}")
    names = [n for n, _ in model.named_parameters()]
    if set(params) != set(names):
        raise ValueError(f"{name}: expected the keys {names}, got {list(params)}")
    out = {}
    for n, p in model.named_parameters():
        t = check_finite(as_tensor(params[n], f"{name}[{n!r}]", like=first), f"{name}[{n!r}]")
        if t.shape != p.shape:
            raise ValueError(f"{name}[{n!r}]: expected shape {tuple(p.shape)}, "
                             f"got {tuple(t.shape)}")
        out[n] = t
    return out


def params_to_vector(params: dict) -> torch.Tensor:
    """Flatten a parameter dict into w (dict order; for ShallowNet: A, then B row by row)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def params_from_vector(model: nn.Module, w) -> dict:
    """Split a flat vector w (length p, ``model.parameters()`` order) into a parameter dict."""
    first = _check_model(model)
    w = check_ndim(as_tensor(w, "w", like=first), 1, "w", "(p,)")
    shapes = {n: p.shape for n, p in model.named_parameters()}
    total = sum(s.numel() for s in shapes.values())
    if w.shape[0] != total:
        raise ValueError(f"w: expected length p = {total} (the model's parameter count), "
                         f"got {w.shape[0]}")
    sizes = [s.numel() for s in shapes.values()]
    return {n: piece.reshape(s) for (n, s), piece in zip(shapes.items(), w.split(sizes))}


@full_precision()
def f_lin(model: nn.Module, params0: dict, X, params: dict) -> torch.Tensor:
    """Evaluate the linearisation of ``model`` around params0 at the parameters ``params``.

    f~_x(w) = f_x(w0) + grad f_x(w0)^T (w - w0), the second term as a
    Jacobian-vector product (``torch.func.jvp``), without forming grad f.

    Lecture: Definition 1 (§2); notebook 01.

    Args:
        model: a ``torch.nn.Module`` (its own parameters are not used, only its architecture).
        params0: dict name -> tensor, the expansion point w0.
        X: (n, d) tensor, rows are samples.
        params: dict name -> tensor, the point w; gradients flow back to it.

    Returns:
        A tensor shaped like the model's output, (n,) or (n, c).
    """
    params0 = {n: t.detach() for n, t in _check_params(model, params0, "params0").items()}
    params = _check_params(model, params, "params")
    X = as_samples(X, "X", like=next(iter(params0.values())))
    tangent = {n: params[n] - params0[n] for n in params0}
    out0, out_dot = jvp(lambda p: functional_call(model, p, (X,)), (params0,), (tangent,))
    return out0 + out_dot


def linearize(model: nn.Module) -> Callable[[dict, torch.Tensor], torch.Tensor]:
    """Freeze the model's current parameters as w0 and return x -> f~ as ``f(params, X)``.

    Lecture: Definition 1 (§2); notebook 01.

    Returns:
        A function (params, X) -> f~_X(params) that calls ``f_lin`` with a detached
        copy of the parameters the model had when ``linearize`` was called.
    """
    _check_model(model)
    params0 = {n: p.detach().clone() for n, p in model.named_parameters()}

    def f(params: dict, X) -> torch.Tensor:
        return f_lin(model, params0, X, params)

    return f


def _check_regression(psi_train, y, f0_train):
    psi_train = as_samples(psi_train, "psi_train")
    y = check_finite(check_ndim(as_tensor(y, "y", like=psi_train), 1, "y", "(n,)"), "y")
    if y.shape[0] != psi_train.shape[0]:
        raise ValueError(f"y: expected {psi_train.shape[0]} labels (one per row of psi_train), "
                         f"got {y.shape[0]}")
    if f0_train is None:
        return psi_train, y
    f0 = check_finite(check_ndim(as_tensor(f0_train, "f0_train", like=psi_train), 1, "f0_train",
                                 "(n,)"), "f0_train")
    if f0.shape != y.shape:
        raise ValueError(f"f0_train: expected shape {tuple(y.shape)} like y, got {tuple(f0.shape)}")
    return psi_train, y - f0


@full_precision()
def train_linear(psi_train, y, f0_train=None, *, lr: float,
                 num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient descent from w~ = 0 on the linear regression that trains f~.

    L(w~) = 1/2 sum_i (y_i - f0_i - psi_i^T w~)^2,   w~ <- w~ + lr psi^T (y - f0 - psi w~).
    f0_train=None is the shortcut f(w0) = 0 (no label correction). Along an
    eigenvector of K = psi psi^T with eigenvalue lambda the residual shrinks
    by (1 - lr lambda) per step (§13).

    Lecture: Remarks after Example 1 (§2), §13; notebook 01.

    Args:
        psi_train: (n, p) tensor of features psi(x_i); y: (n,) labels;
        f0_train: (n,) outputs f_{x_i}(w0) of the network at initialisation, or None.
        lr: learning rate > 0 (stable iff lr < 2 / lambda_max(K)); num_steps: int >= 0.

    Returns:
        (w_tilde (p,), losses (num_steps + 1,)), losses[s] = L after s steps.

    Raises:
        ValueError: naming ``lr`` if the iteration diverged to inf/NaN.
    """
    psi_train, r0 = _check_regression(psi_train, y, f0_train)
    lr = check_real(lr, "lr", minimum=0.0, strict=True)
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    w_tilde = torch.zeros(psi_train.shape[1], dtype=psi_train.dtype, device=psi_train.device)
    losses = torch.empty(num_steps + 1, dtype=psi_train.dtype, device=psi_train.device)
    for s in range(num_steps + 1):
        r = r0 - psi_train @ w_tilde
        losses[s] = 0.5 * (r @ r)
        if s < num_steps:
            w_tilde = w_tilde + lr * (psi_train.T @ r)
    if not bool(torch.isfinite(losses).all()):
        lam_max = float(torch.linalg.eigvalsh(psi_train @ psi_train.T)[-1])
        raise ValueError(f"lr: gradient descent diverged; lr = {lr:g} but stability needs "
                         f"lr < 2 / lambda_max(psi psi^T) = {2.0 / lam_max:.3g}")
    return w_tilde, losses


@full_precision()
def solve_linear(psi_train, y, f0_train=None) -> torch.Tensor:
    """The minimum-norm least-squares solution reached by gradient descent from w~ = 0.

    w~* = psi^T (psi psi^T)^{-1} (y - f0), i.e. kernel regression with the
    empirical NTK K = psi psi^T; solved by Cholesky of K, never an inverse.

    Lecture: Remarks after Example 1 (§2), §13; notebook 01.

    Args:
        psi_train: (n, p) features; y: (n,) labels; f0_train: (n,) or None (shortcut).

    Returns:
        (p,) tensor w~*.

    Raises:
        ValueError: naming ``psi_train`` if psi psi^T is not positive definite
            (n > p, or rows of psi_train linearly dependent).
    """
    psi_train, r0 = _check_regression(psi_train, y, f0_train)
    L, info = torch.linalg.cholesky_ex(psi_train @ psi_train.T)
    if int(info) != 0:
        n, p = psi_train.shape
        raise ValueError(f"psi_train: the kernel matrix psi psi^T ({n} x {n}) is singular or not "
                         f"positive definite (n = {n} samples, p = {p} features); the features "
                         "of the training points must be linearly independent")
    alpha = torch.cholesky_solve(r0[:, None], L)[:, 0]
    return psi_train.T @ alpha


@full_precision()
def predict_linear(psi_test, w_tilde, f0_test=None) -> torch.Tensor:
    """Predictions of the trained linearisation at test points: f0(x) + psi(x)^T w~.

    f0_test=None gives the shortcut predictor psi(x)^T w~ (f(w0) taken as 0).

    Lecture: Definition 1 (§2); notebook 01.

    Args:
        psi_test: (m, p) features; w_tilde: (p,) weights; f0_test: (m,) or None.

    Returns:
        (m,) tensor.
    """
    psi_test = as_samples(psi_test, "psi_test")
    w_tilde = check_finite(check_ndim(as_tensor(w_tilde, "w_tilde", like=psi_test), 1, "w_tilde",
                                      "(p,)"), "w_tilde")
    if w_tilde.shape[0] != psi_test.shape[1]:
        raise ValueError(f"w_tilde: expected length {psi_test.shape[1]} (columns of psi_test), "
                         f"got {w_tilde.shape[0]}")
    out = psi_test @ w_tilde
    if f0_test is None:
        return out
    f0 = check_finite(check_ndim(as_tensor(f0_test, "f0_test", like=psi_test), 1, "f0_test",
                                 "(m,)"), "f0_test")
    if f0.shape != out.shape:
        raise ValueError(f"f0_test: expected shape {tuple(out.shape)}, got {tuple(f0.shape)}")
    return f0 + out


@full_precision()
def train_f_lin(model: nn.Module, X, y, *, lr: float,
                num_steps: int) -> tuple[dict, torch.Tensor]:
    """Gradient descent on the parameters of f~ itself, gradients by autograd through ``f_lin``.

    L(w) = 1/2 sum_i (y_i - f~_{x_i}(w))^2,  w <- w - lr grad L(w),  from w = w0
    (the model's current parameters). Step for step this is ``train_linear`` with
    the label correction, since grad L = -psi^T (y - f0 - psi (w - w0)).

    Lecture: Definition 1 and its Remarks (§2); notebook 01.

    Args:
        model: scalar-output ``torch.nn.Module``; X: (n, d) samples; y: (n,) labels.
        lr: learning rate > 0; num_steps: int >= 0.

    Returns:
        (params dict after training, losses (num_steps + 1,)).
    """
    first = _check_model(model)
    X = as_samples(X, "X", like=first)
    y = check_finite(check_ndim(as_tensor(y, "y", like=first), 1, "y", "(n,)"), "y")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} labels (one per row of X), got {y.shape[0]}")
    lr = check_real(lr, "lr", minimum=0.0, strict=True)
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    f = linearize(model)
    with torch.no_grad():
        out_shape = tuple(f(dict(model.named_parameters()), X).shape)
    if out_shape not in ((X.shape[0],), (X.shape[0], 1)):
        raise ValueError(f"model: expected a scalar output per sample, "
                         f"got output shape {out_shape}")

    def loss_fn(p):
        return 0.5 * ((y - f(p, X).reshape(y.shape)) ** 2).sum()

    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = torch.empty(num_steps + 1, dtype=first.dtype, device=first.device)
    for s in range(num_steps + 1):
        grads, loss = grad_and_value(loss_fn)(params)
        losses[s] = loss.detach()
        if s < num_steps:
            params = {n: params[n] - lr * grads[n] for n in params}
    return params, losses
