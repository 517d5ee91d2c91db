"""The feature map psi(x) = grad_w f_x(w0) and the finite-width (empirical) NTK.

Two routes to the same numbers:

- generic: ``jacobian`` and ``psi`` differentiate any ``torch.nn.Module`` with
  ``torch.func`` (no knowledge of the architecture); ``empirical_ntk`` contracts
  them, or, for fully connected networks, uses the layer-by-layer route of
  ``fast_ntk`` that never forms a per-sample Jacobian;
- by hand: ``shallow_grad``, ``shallow_ntk`` and ``shallow_ntk_terms`` write out
  the gradients of the lecture's one-hidden-layer network (§5) and its kernel.

Parameters are flattened in ``model.parameters()`` order; for
``network.ShallowNet`` that is the lecture's order (A first, then B row by row).

Numerics: float32 products run with TF32 off (``precision.full_precision``).

Lecture: Definitions 1-2, Example 1, proof of Theorem 1; FORMULAS.md §2-§5; notebooks 01, 02.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, jacrev

from . import activations
from ._checks import as_samples, check_same_d
from .network import _check_AB
from .precision import full_precision

# Rows of X differentiated together by ``jacobian``; see its Numerics note.
_CHUNK = 64


def _check_model(model) -> torch.Tensor:
    """Validate ``model`` and return its first parameter (for dtype and device)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    if not params:
        raise ValueError("model: expected a module with at least one parameter, got none")
    first = params[0]
    for name, p in model.named_parameters():
        if not p.is_floating_point() or p.dtype != first.dtype or p.device != first.device:
            raise TypeError(f"model: expected all parameters to share one floating dtype and "
                            f"device ({first.dtype}, {first.device}); parameter {name!r} has "
                            f"{p.dtype} on {p.device}")
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"model: expected finite parameters, got NaN/inf entries in {name!r}")
    for name, m in model.named_modules():
        if m.training and isinstance(m, _STOCHASTIC_IN_TRAINING):
            raise ValueError(
                f"model: expected a model in eval mode, got {type(m).__name__} "
                f"{name or '(the model)'!r} in training mode (dropout would make the kernel "
                f"random; batch norm would use the statistics of each batch and update its "
                f"running averages); call model.eval() first")
    return first


# Layers whose training-mode forward is random or depends on (and changes) batch statistics.
_STOCHASTIC_IN_TRAINING = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)


@full_precision()
def jacobian(model: nn.Module, X) -> torch.Tensor:
    """Jacobian of every output of ``model`` with respect to all its parameters.

    J[i, a, :] = grad_w f_a(x_i) at the model's current parameters w0.

    Lecture: Definition 1 (psi), §9 (several outputs); notebook 01.

    Args:
        model: a ``torch.nn.Module`` mapping X (n, d) to (n,) or (n, c).
        X: (n, d) tensor, rows are samples, same dtype and device as the parameters.

    Returns:
        (n, c, p) tensor, p = total number of parameter entries (c = 1 for scalar output).

    Numerics: ``jacrev`` differentiates a block of rows at once with one
    (vectorised) backward pass per output entry of the block, whose cost grows
    with the block size; blocks of 64 rows keep the total cost linear in n.
    """
    first = _check_model(model)
    X = as_samples(X, "X", like=first)
    params = {name: p.detach() for name, p in model.named_parameters()}

    def outputs(p, Xb):
        out = functional_call(model, p, (Xb,))
        if out.ndim == 1 and out.shape[0] == Xb.shape[0]:
            return out[:, None]
        if out.ndim == 2 and out.shape[0] == Xb.shape[0]:
            return out
        raise ValueError(f"model: expected an output of shape (n,) or (n, c) with n = "
                         f"{Xb.shape[0]}, got shape {tuple(out.shape)}")

    blocks = []
    for start in range(0, X.shape[0], _CHUNK):
        Xb = X[start:start + _CHUNK]
        jac = jacrev(outputs)(params, Xb)  # name -> (nb, c, *shape of the parameter)
        blocks.append(torch.cat([j.reshape(j.shape[0], j.shape[1], -1) for j in jac.values()],
                                dim=-1))
    return torch.cat(blocks, dim=0)


def psi(model: nn.Module, X) -> torch.Tensor:
    """The feature map psi(x) = grad_w f_x(w0) of a scalar-output model, one row per sample.

    psi(x) = grad f_x(w0), w flattened in ``model.parameters()`` order (for
    ``network.ShallowNet``: A_11 ... A_1k, then B row by row).

    Lecture: Definition 1 and Remarks on training the linearisation; notebook 01.

    Args:
        model: a ``torch.nn.Module`` with output (n,) or (n, 1); w0 = its current parameters.
        X: (n, d) tensor, rows are samples.

    Returns:
        (n, p) tensor.

    Raises:
        ValueError: if the model has more than one output (use ``jacobian``).
    """
    J = jacobian(model, X)
    if J.shape[1] != 1:
        raise ValueError(f"model: psi needs a scalar output, got {J.shape[1]} outputs "
                         "(use empirical.jacobian or empirical_ntk for several outputs)")
    return J[:, 0, :]


@full_precision()
def empirical_ntk(model: nn.Module, X1, X2=None, *, method: str = "auto",
                  memory_budget: int | None = None) -> torch.Tensor:
    """The neural tangent kernel of a finite network at its current parameters w0.

    K(x, x~) = < grad f_x(w0), grad f_x~(w0) >, i.e. K = psi(X1) psi(X2)^T.
    With c outputs: K[i, j, a, b] = < grad f_a(x_i), grad f_b(x_j) >.

    Lecture: Definition 2, Example 1, §9 (several outputs); notebooks 01, 02.

    Args:
        model: a ``torch.nn.Module`` with output (n,), (n, 1) or (n, c).
        X1: (n1, d) tensor; X2: (n2, d) tensor or None (then X2 = X1).
        method: "auto" picks the structured route (``fast_ntk.mlp_ntk``: layer by
            layer, no per-sample Jacobian) for ``network.ShallowNet``, ``nn.Linear``
            and ``nn.Sequential`` stacks of linear layers and elementwise activations,
            and the Jacobian contraction J1 J2^T (``fast_ntk.jacobian_ntk``, torch.func,
            any module) otherwise; "structured", "jacobian" or "ntk_vp" (NTK-vector
            products) force a route.
        memory_budget: bytes of working memory (the kernel itself excluded); None
            means ``fast_ntk.MEMORY_BUDGET``. Large n is computed in tiles under it.

    Returns:
        (n1, n2) tensor for a scalar output; (n1, n2, c, c) tensor for c > 1 outputs,
        no autograd graph. At finite width the off-diagonal blocks a != b are not zero
        in general; only in the infinite-width limit does the kernel become
        K(x, x~) I_c (§9). With X2 = None the result is exactly symmetric.

    The gradient is over every parameter of the model, ``requires_grad=False`` ones
    included (freeze a layer by leaving it out of the model). The model must be in eval
    mode if it has dropout or batch-norm layers (ValueError otherwise); a model with
    hooks takes the Jacobian route under "auto", since hooks can change its forward.

    Numerics: every route runs under ``precision.full_precision``; the routes agree
    to rounding (tests/test_fast_ntk.py, float64, 1e-10).
    """
    from . import fast_ntk  # fast_ntk builds on this module's jacobian

    return fast_ntk.empirical_ntk_auto(model, X1, X2, method=method, output="full",
                                       memory_budget=memory_budget)


def _check_shallow(A, B, X, name):
    A, B = _check_AB(A, B)
    if A.shape[0] != 1:
        raise ValueError(f"A: expected shape (1, k) (the hand formulas of §5 are for c = 1), "
                         f"got shape {tuple(A.shape)}")
    X = as_samples(X, name, like=A)
    if X.shape[1] != B.shape[1]:
        raise ValueError(f"{name}: expected {B.shape[1]} feature columns to match B "
                         f"{tuple(B.shape)}, got shape {tuple(X.shape)}")
    return A, B, X


@full_precision()
def shallow_grad(A, B, X, *, activation="relu_normalized", scaled: bool = True) -> torch.Tensor:
    """The hand-derived gradient of f(w; x) = A phi(B x) / sqrt(k) at every row of X.

    df/dA_1i = phi(B_i x) / sqrt(k);   df/dB_ij = A_1i phi'(B_i x) x_j / sqrt(k)
    (without the 1/sqrt(k) when scaled=False, as in Example 1).

    Lecture: Example 1, proof of Theorem 1 (FORMULAS.md §4-§5); notebooks 01, 02.

    Args:
        A: (1, k) tensor; B: (k, d) tensor; X: (n, d) tensor, rows are samples.
        activation: a name from ``activations.NAMES`` or an ``Activation``.
        scaled: include the 1/sqrt(k) factor.

    Returns:
        (n, k + k d) tensor, columns in the lecture's w order (A_11..A_1k, B_11, B_12, ..).
    """
    A, B, X = _check_shallow(A, B, X, "X")
    act = activations.get(activation)
    k = A.shape[1]
    Z = X @ B.T                                            # (n, k) pre-activations
    grad_A = act.phi(Z)
    grad_B = (act.dphi(Z) * A[0])[:, :, None] * X[:, None, :]  # (n, k, d)
    G = torch.cat([grad_A, grad_B.reshape(X.shape[0], -1)], dim=1)
    return G / math.sqrt(k) if scaled else G


@full_precision()
def shallow_ntk_terms(A, B, X1, X2=None, *, activation="relu_normalized",
                      scaled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the finite-width NTK of the one-hidden-layer network.

    nngp_term(x, x~) = (1/k) sum_i phi(B_i x) phi(B_i x~)
    correction(x, x~) = (x^T x~) (1/k) sum_i A_1i^2 phi'(B_i x) phi'(B_i x~)
    (no 1/k when scaled=False, as in Example 1). On batches:
    nngp_term = phi(X1 B^T) phi(X2 B^T)^T / k,
    correction = (X1 X2^T) * ((phi'(X1 B^T) * A)(phi'(X2 B^T) * A)^T) / k.

    Lecture: Example 1, proof of Theorem 1 (FORMULAS.md §4-§5); notebook 02.

    Args:
        A: (1, k) tensor; B: (k, d) tensor.
        X1: (n1, d) tensor; X2: (n2, d) tensor or None (then X2 = X1).
        activation: a name from ``activations.NAMES`` or an ``Activation``.
        scaled: include the 1/k factor (the network's 1/sqrt(k), squared).

    Returns:
        (nngp_term, correction), two (n1, n2) tensors.
    """
    A, B, X1 = _check_shallow(A, B, X1, "X1")
    X2 = X1 if X2 is None else _check_shallow(A, B, X2, "X2")[2]
    act = activations.get(activation)
    Z1, Z2 = X1 @ B.T, X2 @ B.T
    nngp_term = act.phi(Z1) @ act.phi(Z2).T
    correction = (X1 @ X2.T) * ((act.dphi(Z1) * A[0]) @ (act.dphi(Z2) * A[0]).T)
    if scaled:
        k = A.shape[1]
        nngp_term, correction = nngp_term / k, correction / k
    return nngp_term, correction


def shallow_ntk(A, B, X1, X2=None, *, activation="relu_normalized",
                scaled: bool = True) -> torch.Tensor:
    """The finite-width NTK of the one-hidden-layer network in closed form.

    K(x, x~) = (1/k) sum_i phi(B_i x) phi(B_i x~)
               + (x^T x~) (1/k) sum_i A_1i^2 phi'(B_i x) phi'(B_i x~)
    (no 1/k when scaled=False, as in Example 1). See ``shallow_ntk_terms``.

    Lecture: Example 1, proof of Theorem 1 (FORMULAS.md §4-§5); notebook 02.

    Args:
        A: (1, k) tensor; B: (k, d) tensor.
        X1: (n1, d) tensor; X2: (n2, d) tensor or None (then X2 = X1).

    Returns:
        (n1, n2) tensor.
    """
    nngp_term, correction = shallow_ntk_terms(A, B, X1, X2, activation=activation,
                                              scaled=scaled)
    return nngp_term + correction
