"""Numerical building blocks of ``kernels``: safe angles, J1, and Gaussian quadrature.

``safe_sqrt``, ``angle``, ``sin_delta`` and ``polar_cos`` turn variances and a
covariance into an angle with finite gradients; ``ArcCosJ1`` is the arc-cosine
function behind the ReLU dual, with its exact derivative. ``expectations``
computes E[f(u) g(v)] by quadrature, the generic route of ``kernels``:

For (u, v) ~ N(0, [[s11, s12], [s12, s22]]) write a standard normal pair z in
polar coordinates, z = rho (cos(alpha), sin(alpha)). Then

    u = sigma1 rho cos(alpha),   v = sigma2 rho cos(alpha - theta),
    sigma_i = sqrt(s_ii),   cos(theta) = s12 / (sigma1 sigma2),

and, pairing the rays alpha and alpha + pi,

    E[f(u) g(v)] = (1/2pi) int_{-pi/2}^{pi/2} dalpha int_0^inf rho exp(-rho^2/2)
                   [f(rho a) g(rho b) + f(-rho a) g(-rho b)] drho,
    a = sigma1 cos(alpha),   b = sigma2 cos(alpha - theta).

Both integrals use Gauss-Legendre rules (numpy nodes, float64): rho on
[0, RHO_MAX] and alpha on the two arcs [-pi/2, theta - pi/2] and
[theta - pi/2, pi/2].

Why not Gauss-Hermite on (z1, z2): ReLU-like phi have a kink (or, for phi', a
jump) at 0, and a tensor Gauss-Hermite rule converges slowly across it (error
~5e-4 for the sqrt(2)-ReLU dual with 256^2 nodes). In polar coordinates the
kinks u = 0 and v = 0 are the rays alpha = +-pi/2 and alpha = theta +- pi/2,
i.e. the ends of the arcs above, so the integrand is smooth on every piece and
the rules converge geometrically. With the default deg = 32 (2 * 32 * 32 = 2048
nodes per entry, f and g each evaluated at +-u, +-v) the float64 error is ~1e-14 for the
ReLU family (its kink and jump at 0 lie on arc ends) and ~1e-13 for erf, tanh, sin
and softplus with variances up to 1; larger variances make a smooth phi steeper
near 0 and need a larger deg (tanh with s22 = 9: ~3e-10 at deg 32, ~1e-14 at 48).

Lecture: §3 Theorem 1 (dual activation), FORMULAS.md §6, §12; notebooks 03, 04.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numpy.polynomial.legendre import leggauss

DEFAULT_DEG = 32
# exp(-RHO_MAX^2 / 2) ~ 2e-22: the radial tail beyond it is below float64 resolution
# for activations of at most polynomial growth.
RHO_MAX = 10.0
# Grid points (entries x angles x radii) evaluated at once by ``expectations``.
_CHUNK_NODES = 2 ** 20


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt(x) for x >= 0 whose gradient at x = 0 is zero instead of infinite.

    Numerics: torch.sqrt has derivative 1/(2 sqrt(x)) = inf at 0, and inf * 0
    = NaN later in the chain rule. Both ``where`` branches are evaluated, so
    the argument of sqrt is replaced by 1 where x <= 0 and the zero branch is
    selected there; the gradient flowing into the unused branch is exactly 0.
    """
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))),
                       torch.zeros_like(x))


def angle(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin(theta), theta) for cos(theta) = c, c already in [-1, 1].

    theta = atan2(sqrt((1 - c)(1 + c)), c): sine and angle come from the same
    number, (1 - c)(1 + c) loses no digits near c = +-1 (unlike 1 - c^2), and
    the gradient stays finite (zero at c = +-1, see ``safe_sqrt``).
    """
    sin = safe_sqrt((1 - c) * (1 + c))
    return sin, torch.atan2(sin, c)


def sin_delta(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin(theta), pi - theta) for cos(theta) = c in [-1, 1], both accurate near c = +-1.

    pi - theta = atan2(sin(theta), -c) directly: subtracting theta ~ pi from pi
    would leave only ~1e-10 relative accuracy at c = -1 + 1e-12.
    """
    sin = safe_sqrt((1 - c) * (1 + c))
    return sin, torch.atan2(sin, -c)


# 2n / (2n + 1)! for n = 1..5: sin(t) - t cos(t) = t^3 (1/3 - t^2/30 + t^4/840 - ...).
_SERIES = [(-1) ** (n + 1) * 2 * n / math.factorial(2 * n + 1) for n in range(1, 6)]


class ArcCosJ1(torch.autograd.Function):
    """J(c) = sin(theta) + (pi - theta) c, cos(theta) = c, with the exact J'(c) = pi - theta.

    Plain autograd gets J' as -c/sin(theta) + c/sin(theta) + (pi - theta): two huge
    terms cancelling near c = +-1. The backward below is written with torch ops,
    so second derivatives (J'' = 1/sin(theta)) still work. Near c = -1 the two
    terms of J cancel (J = sin(t) - t cos(t) ~ t^3 / 3, t = pi - theta): a series
    is used for t < 0.1, so J keeps full relative accuracy there too.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(c):
        sin, delta = sin_delta(c)
        t2, series = delta * delta, torch.zeros_like(c)
        for coef in reversed(_SERIES):
            series = series * t2 + coef
        return torch.where(delta < 0.1, series * t2 * delta, sin + delta * c)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (c,) = ctx.saved_tensors
        return grad * sin_delta(c)[1]


def polar_cos(s11: torch.Tensor, s22: torch.Tensor, s12: torch.Tensor):
    """(r, c) with r = sqrt(s11 s22) and c = s12 / r clamped into [-1, 1] (c = 0 where r = 0).

    Numerics: sqrt(s11 * s22) is used (one rounding, so sqrt(s^2) = s exactly and
    c = 1 exactly on a diagonal s11 = s22 = s12); where s11 * s22 overflows it
    falls back to sqrt(s11) sqrt(s22). The clamp absorbs rounding (e.g. a float
    dot product of 1 + 2^-52 for a unit vector).
    """
    prod = s11 * s22
    r = torch.where(torch.isfinite(prod), safe_sqrt(prod), safe_sqrt(s11) * safe_sqrt(s22))
    pos = r > 0
    c = torch.where(pos, s12 / torch.where(pos, r, torch.ones_like(r)), torch.zeros_like(r))
    return r, c.clamp(-1.0, 1.0)


def _rules(deg: int, like: torch.Tensor):
    """Gauss-Legendre nodes/weights on [-1, 1] and the radial rule, as tensors like ``like``."""
    g, w = leggauss(deg)
    rho = (g + 1.0) * RHO_MAX / 2.0
    w_rho = w * (RHO_MAX / 2.0) * rho * np.exp(-rho ** 2 / 2.0) / (2.0 * math.pi)
    return [torch.as_tensor(a, dtype=like.dtype, device=like.device) for a in (g, w, rho, w_rho)]


def _expectations_flat(pairs, s11, s22, s12, deg):
    """``expectations`` on 1-D tensors of m entries, all nodes at once: grids (m, 2 deg, deg)."""
    _, c = polar_cos(s11, s22, s12)
    theta = angle(c)[1][:, None]
    sigma1, sigma2 = safe_sqrt(s11)[:, None], safe_sqrt(s22)[:, None]
    g, w, rho, w_rho = _rules(deg, c)
    half1, half2 = theta / 2, (math.pi - theta) / 2  # half-lengths of the two arcs
    alpha = torch.cat([-math.pi / 2 + half1 * (g + 1), theta - math.pi / 2 + half2 * (g + 1)], -1)
    w_alpha = torch.cat([half1 * w, half2 * w], -1)
    U = (sigma1 * torch.cos(alpha))[:, :, None] * rho           # u at (entry, angle, radius)
    V = (sigma2 * torch.cos(alpha - theta))[:, :, None] * rho
    W = w_alpha[:, :, None] * w_rho
    return [(W * (f(U) * h(V) + f(-U) * h(-V))).sum((1, 2)) for f, h in pairs]


def expectations(pairs, s11, s22, s12, deg: int = DEFAULT_DEG) -> list[torch.Tensor]:
    """[E[f(u) g(v)] for (f, g) in pairs], (u, v) ~ N(0, [[s11, s12], [s12, s22]]).

    Args:
        pairs: list of (f, g), elementwise functions of a tensor.
        s11, s22, s12: tensors broadcastable to one shape S (validated by the caller;
            s11, s22 >= 0).
        deg: nodes per Gauss-Legendre rule (4 deg^2 evaluations of f and of g per entry).

    Returns:
        list of tensors of shape S, one per pair.

    Numerics: entries are processed in chunks of at most _CHUNK_NODES grid points
    (a few tens of MB of temporaries), each chunk in a handful of large tensor ops.
    """
    s11, s22, s12 = torch.broadcast_tensors(s11, s22, s12)
    flat = [t.reshape(-1) for t in (s11, s22, s12)]
    step = max(1, _CHUNK_NODES // (2 * deg * deg))
    parts = [_expectations_flat(pairs, *(t[i:i + step] for t in flat), deg)
             for i in range(0, flat[0].numel(), step)]
    if not parts:
        return [torch.zeros_like(s12) for _ in pairs]
    return [torch.cat(p).reshape(s11.shape) for p in zip(*parts)]
