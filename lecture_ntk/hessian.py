"""The Hessian of f_x(w) with respect to w, and why it vanishes as the width grows.

For f_x(w) = A phi(B x) / sqrt(k) with d = 1 the only nonzero second derivatives are
d2f/(dA_i dB_i) = b_i = phi'(B_i x) x / sqrt(k) and
d2f/dB_i^2 = c_i = A_i phi''(B_i x) x^2 / sqrt(k), so in the coordinates (A_i, B_i) H is a direct sum of k blocks [[0, b_i], [b_i, c_i]] with
eigenvalues (c_i -+ sqrt(c_i^2 + 4 b_i^2)) / 2. Hence ||H||_2 = O(1/sqrt(k)) while K(x, x) = O(1):
wide networks are nearly linear in w, and training barely moves w and K (``training_drift``).

Numerics: ``hessian`` runs with TF32 off (``precision.full_precision``).

Lecture: §4 Proposition 1 and Appendix A; FORMULAS.md §10, §13; notebook 05.
"""
from __future__ import annotations

import math

import torch

from . import activations, empirical, network
from ._checks import (as_samples, as_tensor, check_dtype, check_finite, check_int, check_ndim,
                      check_real)
from .device import rand, randn
from .precision import full_precision

INITS = ("gaussian", "uniform")


def _check_net(A, B, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate A (1, k), B (k, d) and one input x (d,) (a python number is read as d = 1)."""
    A = check_finite(check_ndim(as_tensor(A, "A"), 2, "A", "(1, k)"), "A")
    if A.shape[0] != 1:
        raise ValueError(f"A: expected shape (1, k) (one output, c = 1), "
                         f"got shape {tuple(A.shape)}")
    B = check_finite(check_ndim(as_tensor(B, "B", like=A), 2, "B", "(k, d)"), "B")
    if B.shape[0] != A.shape[1]:
        raise ValueError(f"B: expected {A.shape[1]} rows to match the width k of A, "
                         f"got shape {tuple(B.shape)}")
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = torch.tensor([float(x)], dtype=A.dtype, device=A.device)
    x = check_finite(check_ndim(as_tensor(x, "x", like=A), 1, "x", "(d,)"), "x")
    if x.shape[0] != B.shape[1]:
        raise ValueError(f"x: expected length d = {B.shape[1]} to match B, "
                         f"got shape {tuple(x.shape)}")
    return A, B, x


@full_precision()
def hessian(A, B, x, *, activation, scaled: bool = True) -> torch.Tensor:
    """The (p, p) Hessian of f_x(w) with respect to w, by automatic differentiation.

    H_jl = d2 f_x(w) / (dw_j dw_l),  w = (A_11 ... A_1k, B_11 ... B_1d, B_21 ...)  (§1 order)

    Any input dimension d is allowed; p = k + k d.

    Lecture: §4 Proposition 1; notebook 05.

    Args:
        A: (1, k) tensor; B: (k, d) tensor; x: (d,) tensor, one input (a number when d = 1).
        activation: name or ``Activation`` (for ReLU autograd returns phi'' = 0).
        scaled: include the 1/sqrt(k) factor (False gives Example 1's network).

    Returns:
        (p, p) symmetric tensor, dtype and device of A.
    """
    A, B, x = _check_net(A, B, x)
    (_, k), d = A.shape, B.shape[1]
    act = activations.get(activation)

    def f(w):
        Aw, Bw = network.unflatten(w, k=k, d=d)
        return network.forward(Aw, Bw, x[None, :], activation=act, scaled=scaled)[0, 0]

    # Reverse over reverse: torch.func.hessian (forward over reverse) loads TorchScript
    # decompositions that warn in recent torch; for the small p used here both are cheap.
    return torch.func.jacrev(torch.func.jacrev(f))(network.flatten(A, B))


def block_entries(A, B, x, *, activation, scaled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The entries b_i and c_i of the 2x2 Hessian blocks [[0, b_i], [b_i, c_i]] (d = 1).

    b_i = phi'(B_i x) x / sqrt(k),  c_i = A_i phi''(B_i x) x^2 / sqrt(k)

    Lecture: §4 Proposition 1, Appendix A; notebook 05.

    Args:
        A: (1, k) tensor; B: (k, 1) tensor; x: (1,) tensor or a number.

    Returns:
        (b, c), two (k,) tensors.

    Raises:
        ValueError: if d != 1 (use ``hessian`` for general d).
    """
    A, B, x = _check_net(A, B, x)
    if B.shape[1] != 1:
        raise ValueError(f"B: the closed form of Appendix A needs d = 1, i.e. shape (k, 1), "
                         f"got shape {tuple(B.shape)}; use hessian() for general d")
    return _blocks(A[0], B[:, 0], x[0], activations.get(activation), scaled)


def _blocks(a, beta, x, act, scaled):
    """b and c for weights a = A_1., beta = B_.1 of shape (..., k) and a scalar input x."""
    z = beta * x
    scale = 1.0 / math.sqrt(a.shape[-1]) if scaled else 1.0
    return act.dphi(z) * x * scale, a * act.ddphi(z) * x * x * scale


def _pair_eigs(b, c):
    """Eigenvalues (lambda_-, lambda_+) of [[0, b], [b, c]], stacked on a last axis of size 2.

    Numerics: the root with the sign of c is (c + sign(c) sqrt(c^2 + 4 b^2)) / 2; the other
    is -b^2 divided by it (their product is det = -b^2), which avoids the cancellation of
    c - sqrt(c^2 + 4 b^2) when |b| << |c|. A zero block (b = c = 0) gives two zeros.
    """
    s = torch.sqrt(c * c + 4.0 * b * b)
    big = 0.5 * (c + torch.where(c >= 0, s, -s))
    safe = torch.where(big == 0, torch.ones_like(big), big)
    small = torch.where(big == 0, torch.zeros_like(big), -b * b / safe)
    return torch.stack([torch.minimum(big, small), torch.maximum(big, small)], dim=-1)


def block_eigenvalues(A, B, x, *, activation, scaled: bool = True) -> torch.Tensor:
    """All 2k Hessian eigenvalues from the closed form of Appendix A (d = 1, c = 1).

    lambda_i,-+ = (c_i -+ sqrt(c_i^2 + 4 b_i^2)) / 2,  b_i, c_i as in ``block_entries``

    Row i holds unit i's pair (lambda_-, lambda_+), lambda_- <= 0 <= lambda_+. To compare with
    ``torch.linalg.eigvalsh(hessian(...))``, sort them: ``.reshape(-1).sort().values``.
    ReLU (phi'' = 0 almost everywhere) gives c_i = 0 and the pairs -+|b_i|.

    Lecture: §4 Proposition 1, Appendix A; notebook 05.

    Args:
        A: (1, k) tensor; B: (k, 1) tensor; x: (1,) tensor or a number.

    Returns:
        (k, 2) tensor.
    """
    return _pair_eigs(*block_entries(A, B, x, activation=activation, scaled=scaled))


def pair_order(k: int) -> torch.Tensor:
    """The permutation of w that lists the pairs (A_1i, B_i1) together: [0, k, 1, k+1, ...].

    With perm = pair_order(k), H[perm][:, perm] is block diagonal with 2x2 blocks (d = 1);
    ``torch.argsort(perm)`` undoes it.
    """
    k = check_int(k, "k")
    return torch.stack([torch.arange(k), torch.arange(k, 2 * k)], dim=1).reshape(-1)


def block_hessian(A, B, x, *, activation, scaled: bool = True) -> torch.Tensor:
    """The (2k, 2k) Hessian assembled from the closed-form blocks, in the lecture's w order.

    H[i, k+i] = H[k+i, i] = b_i,  H[k+i, k+i] = c_i,  all other entries 0   (d = 1)

    Lecture: §4 Proposition 1 (the sparse matrix shown there), Appendix A; notebook 05.

    Args:
        A: (1, k) tensor; B: (k, 1) tensor; x: (1,) tensor or a number.

    Returns:
        (2k, 2k) tensor, dtype and device of A.
    """
    b, c = block_entries(A, B, x, activation=activation, scaled=scaled)
    k, i = b.shape[0], torch.arange(b.shape[0], device=b.device)
    H = torch.zeros(2 * k, 2 * k, dtype=b.dtype, device=b.device)
    H[i, k + i], H[k + i, i], H[k + i, k + i] = b, b, c
    return H


def spectral_norm(A, B, x, *, activation, scaled: bool = True) -> torch.Tensor:
    """||H||_2 = max |lambda| from the closed form (d = 1).

    ||H||_2 = max_i (|c_i| + sqrt(c_i^2 + 4 b_i^2)) / 2

    The lecture writes the root with the + sign; when c_i < 0 the - root has the larger
    modulus, so the absolute value |c_i| is what makes the formula hold for every sign.

    Lecture: §4 Proposition 1; notebook 05. Returns a 0-d tensor.
    """
    return _block_norms(*block_entries(A, B, x, activation=activation, scaled=scaled)).max()


def _block_norms(b, c):
    """Spectral norm (|c| + sqrt(c^2 + 4 b^2)) / 2 of each block [[0, b], [b, c]]."""
    return 0.5 * (c.abs() + torch.sqrt(c * c + 4.0 * b * b))


def _draw(num_draws, k, init, generator, dtype, device):
    """num_draws rows of k iid weights, mean 0 and variance 1: N(0, 1) or U[-sqrt 3, sqrt 3]."""
    if init == "gaussian":
        return randn(num_draws, k, generator=generator, dtype=dtype, device=device)
    return math.sqrt(3.0) * (2.0 * rand(num_draws, k, generator=generator, dtype=dtype,
                                        device=device) - 1.0)


def _check_widths(widths) -> list[int]:
    """Validate a non-empty sequence of ints >= 1."""
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths: expected a sequence of ints >= 1, got {type(widths).__name__}")
    widths = [check_int(k, "widths") for k in widths]
    if not widths:
        raise ValueError("widths: expected at least one width, got an empty sequence")
    return widths


def norm_vs_width(widths, x, *, activation, generator: torch.Generator, num_draws: int = 20,
                  init: str = "gaussian", scaled: bool = True, dtype=torch.float64,
                  device=None) -> dict:
    """Mean ||H||_2 and mean NTK K(x, x) at initialisation for each width (d = 1, c = 1).

    ||H||_2 = max_i (|c_i| + sqrt(c_i^2 + 4 b_i^2)) / 2 = O(1/sqrt(k)),
    K(x, x) = (1/k) sum_i phi(B_i x)^2 + x^2 (1/k) sum_i A_1i^2 phi'(B_i x)^2 = O(1)

    Proposition 1 assumes bounded weights. ``init="uniform"`` draws A, B iid from
    U[-sqrt 3, sqrt 3] (mean 0, variance 1, bounded) and shows the clean slope -1/2; with
    ``init="gaussian"`` (the N(0, 1) of Theorem 1) the largest of k Gaussian weights grows like
    sqrt(2 log k), so ||H||_2 behaves like sqrt(log k / k).

    Lecture: §4 Proposition 1; FORMULAS.md §10; notebook 05.

    Args:
        widths: sequence of widths k; x: a real number, the input.
        activation: name or ``Activation`` (smooth: tanh, softplus, sin, erf).
        generator: CPU ``torch.Generator``; draws are made width by width, A then B.
        num_draws: networks per width (>= 2), averaged.
        init: "gaussian" or "uniform". scaled: include the 1/sqrt(k) factor.
        dtype, device: of the drawn weights.

    Returns:
        dict of (len(widths),) tensors: "widths", "norm_mean", "norm_std", "ntk_mean", "ntk_std"
        (std over the draws).
    """
    widths = _check_widths(widths)
    x = check_real(x, "x")
    num_draws = check_int(num_draws, "num_draws", minimum=2)
    dtype = check_dtype(dtype)
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    act = activations.get(activation)
    norms, ntks = [], []
    for k in widths:
        A = _draw(num_draws, k, init, generator, dtype, device)
        B = _draw(num_draws, k, init, generator, dtype, device)
        b, c = _blocks(A, B, x, act, scaled)
        norms.append(_block_norms(b, c).max(dim=1).values)
        z = B * x
        K = (act.phi(z) ** 2).sum(1) + x * x * (A ** 2 * act.dphi(z) ** 2).sum(1)
        ntks.append(K / k if scaled else K)
    norms, ntks = torch.stack(norms), torch.stack(ntks)
    return {"widths": torch.tensor(widths), "norm_mean": norms.mean(1), "norm_std": norms.std(1),
            "ntk_mean": ntks.mean(1), "ntk_std": ntks.std(1)}


def _stack(ks, X, generator, scaled):
    """Initial weights of one network per width in ``ks``, stacked unit by unit.

    Returns A (U,), B (U, d) with U = sum(ks), and S (U, m): unit u's output factor
    (1/sqrt(k_j), or 1 when not scaled) in the column of its network j, zeros elsewhere.
    """
    params = [network.init_params(X.shape[1], k, generator=generator, dtype=X.dtype,
                                  device=X.device) for k in ks]
    A, B = torch.cat([A[0] for A, _ in params]), torch.cat([B for _, B in params])
    owner = torch.repeat_interleave(torch.arange(len(ks)), torch.tensor(ks)).to(X.device)
    factor = torch.tensor([1.0 / math.sqrt(k) if scaled else 1.0 for k in ks], dtype=X.dtype,
                          device=X.device)
    S = torch.zeros(A.shape[0], len(ks), dtype=X.dtype, device=X.device)
    S[torch.arange(A.shape[0], device=X.device), owner] = factor[owner]
    return A, B, S


def _stacked_losses(A, B, S, X, y, act):
    """L_j = 1/2 sum_i (y_i - f_j(x_i))^2 for every stacked network j, f = (phi(X B^T) * A) S."""
    return 0.5 * ((y[:, None] - (act.phi(X @ B.T) * A) @ S) ** 2).sum(0)


def _train_stacked(A, B, S, X, y, act, lr, num_steps):
    """Full-batch gradient descent on all stacked networks at once; returns A, B, final losses.

    The gradient of sum_j L_j with respect to network j's units is the gradient of L_j alone
    (the networks share no weights), so each step is a plain GD step on every network.
    """
    A, B = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
    for _ in range(num_steps):
        gA, gB = torch.autograd.grad(_stacked_losses(A, B, S, X, y, act).sum(), (A, B))
        with torch.no_grad():
            A -= lr * gA
            B -= lr * gB
    A, B = A.detach(), B.detach()
    return A, B, _stacked_losses(A, B, S, X, y, act)


def training_drift(widths, X, y, *, activation="tanh", generator: torch.Generator, lr: float = 0.1,
                   num_steps: int = 300, num_draws: int = 1, scaled: bool = True) -> dict:
    """Train networks of several widths by gradient descent and measure how far w and K move.

    weight_change = |w_T - w0| / |w0|,  kernel_change = ||K_T - K_0||_F / ||K_0||_F,
    with K_s = K(X, X) the §5 NTK Gram matrix of the training inputs after s steps of
    full-batch GD on L = 1/2 sum_i (y_i - f(x_i))^2 (same lr and num_steps for every width).

    |w_T - w0| stays O(1) while |w0| ~ sqrt(p), so weight_change = O(1/sqrt(k)); K moves by
    at most about ||H||_2 |w_T - w0| = O(1/sqrt(k)). All networks train together in one
    stacked computation, which is the same as training each ``ShallowNet`` on its own.

    Lecture: §4 (consequences of Proposition 1); FORMULAS.md §10, §13; notebook 05.

    Args:
        widths: sequence of widths k.
        X: (n, d) tensor, rows are samples; y: (n,) tensor of targets, same dtype and device.
        activation: name or ``Activation``.
        generator: CPU ``torch.Generator``; ``network.init_params`` draws w0 width by width,
            draw by draw.
        lr: learning rate (> 0); num_steps: GD steps; num_draws: networks per width.

    Returns:
        dict: "widths" (len(widths),) and (len(widths), num_draws) tensors "weight_change",
        "kernel_change", "loss0" (loss at w0) and "loss" (after num_steps).

    Raises:
        ValueError: also if training diverges (a loss is not finite): lower ``lr``.
    """
    widths = _check_widths(widths)
    X = as_samples(X, "X")
    y = check_finite(check_ndim(as_tensor(y, "y", like=X), 1, "y", "(n,)"), "y")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} targets to match X, got shape {tuple(y.shape)}")
    lr = check_real(lr, "lr", minimum=0.0, strict=True)
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    num_draws = check_int(num_draws, "num_draws")
    act = activations.get(activation)
    ks = [k for k in widths for _ in range(num_draws)]
    A0, B0, S = _stack(ks, X, generator, scaled)
    AT, BT, loss = _train_stacked(A0, B0, S, X, y, act, lr, num_steps)
    if not bool(torch.isfinite(loss).all()):
        raise ValueError(f"lr: training diverged with lr = {lr} (a loss is not finite); lower lr")
    changes = []
    for start, k in zip(torch.tensor([0] + ks).cumsum(0).tolist(), ks):
        u = slice(start, start + k)
        K0, KT = (empirical.shallow_ntk(A[None, u], B[u], X, activation=act, scaled=scaled)
                  for A, B in ((A0, B0), (AT, BT)))
        w0, wT = network.flatten(A0[None, u], B0[u]), network.flatten(AT[None, u], BT[u])
        changes.append(torch.stack([torch.linalg.norm(wT - w0) / torch.linalg.norm(w0),
                                    torch.linalg.norm(KT - K0) / torch.linalg.norm(K0)]))
    changes, shape = torch.stack(changes), (len(widths), num_draws)
    return {"widths": torch.tensor(widths), "weight_change": changes[:, 0].reshape(shape),
            "kernel_change": changes[:, 1].reshape(shape),
            "loss0": _stacked_losses(A0, B0, S, X, y, act).reshape(shape),
            "loss": loss.reshape(shape)}
