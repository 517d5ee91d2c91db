"""Numerical building blocks of ``kernels``: safe angles, J1, and Gaussian quadrature.

``safe_sqrt``, ``angle``, ``sin_delta`` and ``polar_cos`` turn variances and a
covariance into an angle with finite gradients; ``ArcCosJ1`` is the arc-cosine
function behind the ReLU dual, with its exact derivative. ``row_norms``,
``pair_angles`` and ``AngleJ1`` / ``next_angle`` compute angles between sample
vectors and carry them through the layers of the ReLU recursion at full relative
accuracy (``kernels_gram``). ``expectations`` computes E[f(u) g(v)] by
quadrature, the generic route of ``kernels``:

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


# 2n / (2n + 1)! for n = 1..10: sin(t) - t cos(t) = t^3 (1/3 - t^2/30 + t^4/840 - ...).
_SERIES = [(-1) ** (n + 1) * 2 * n / math.factorial(2 * n + 1) for n in range(1, 11)]
# Below this t the series replaces sin(t) - t cos(t), whose two terms cancel (a fraction
# ~t^2 / 3 of them survives); series truncation error at SERIES_MAX: ~1e-18 relative.
SERIES_MAX = 1.0


def _series(t: torch.Tensor) -> torch.Tensor:
    """sin(t) - t cos(t) by its series, full relative accuracy for 0 <= t < SERIES_MAX."""
    t2, series = t * t, torch.zeros_like(t)
    for coef in reversed(_SERIES):
        series = series * t2 + coef
    return series * t2 * t


class ArcCosJ1(torch.autograd.Function):
    """J(c) = sin(theta) + (pi - theta) c, cos(theta) = c, with the exact J'(c) = pi - theta.

    Plain autograd gets J' as -c/sin(theta) + c/sin(theta) + (pi - theta): two huge
    terms cancelling near c = +-1. Backward and forward mode (``jvp``) are written
    with torch ops, so second derivatives (J'' = 1/sin(theta)) still work. Near c = -1 the two
    terms of J cancel (J = sin(t) - t cos(t) ~ t^3 / 3, t = pi - theta): a series
    is used for t < SERIES_MAX, so J keeps full relative accuracy there too.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(c):
        sin, delta = sin_delta(c)
        return torch.where(delta < SERIES_MAX, _series(delta), sin + delta * c)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (c,) = ctx.saved_tensors
        return grad * sin_delta(c)[1]

    @staticmethod
    def jvp(ctx, tangent):
        (c,) = ctx.saved_tensors
        return tangent * sin_delta(c)[1]


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


# ------------------------------------------------- angles from vectors (ReLU family, §8, §12)

# Pairs with |cos| above this get their angle from difference vectors (``pair_angles``).
NEAR_COS = 0.5
# Entries (pairs x features) of the difference vectors formed at once by ``pair_angles``.
_PAIR_ELEMS = 2 ** 20


def row_scales(X: torch.Tensor) -> torch.Tensor:
    """m = max_j |x_j| for every row of X (n, d), 1 for a zero row; shape (n, 1), detached
    (a constant for autograd)."""
    D = X.detach()
    m = torch.maximum(D.amax(-1, keepdim=True), -D.amin(-1, keepdim=True))
    return torch.where(m > 0, m, torch.ones_like(m))


def scaled_rows(X: torch.Tensor):
    """(m, X / m) with m = ``row_scales(X)``: every nonzero row of X / m has largest |entry| 1."""
    m = row_scales(X)
    return m, X / m


def norms_and_units(X: torch.Tensor):
    """(|x_i|, x_i / |x_i|) for every row, from one scaling: ``row_norms`` and ``unit_rows``."""
    m, Y = scaled_rows(X)
    r = safe_sqrt((Y * Y).sum(-1, keepdim=True))
    return (m * r)[..., 0], Y / torch.where(r > 0, r, torch.ones_like(r))


def row_norms(X: torch.Tensor) -> torch.Tensor:
    """|x_i| for every row of X (n, d): no overflow or underflow of x^2, zero gradient at x = 0.

    Numerics: each row is divided by its largest |entry| (a constant for autograd)
    before squaring, so any finite row gives a finite, accurate norm (a norm below the
    smallest normal number, 2^-1022 in float64, is itself rounded to a subnormal).
    """
    m, Y = scaled_rows(X)
    return m[..., 0] * safe_sqrt((Y * Y).sum(-1))


def unit_rows(X: torch.Tensor) -> torch.Tensor:
    """x / |x| row by row, a zero row stays zero; = y / |y| with y = x / max_j |x_j|, so that
    rows of subnormal or huge entries still give unit vectors to rounding."""
    return norms_and_units(X)[1]


def near_angles(U1: torch.Tensor, U2: torch.Tensor, c: torch.Tensor):
    """(i, j, theta) for the pairs with |c| > NEAR_COS: theta = 2 atan2(|u - v|, |u + v|).

    U1 (n1, d), U2 (n2, d) are unit (or zero) rows, c (n1, n2) their cosines.
    """
    i, j = torch.nonzero(c.detach().abs() > NEAR_COS, as_tuple=True)
    return i, j, angles_at(U1, U2, i, j, like=c)


def angles_at(U1: torch.Tensor, U2: torch.Tensor, i: torch.Tensor, j: torch.Tensor, *,
              like: torch.Tensor) -> torch.Tensor:
    """theta_m = 2 atan2(|u - v|, |u + v|), u = U1[i_m], v = U2[j_m]: angles of chosen pairs.

    Full relative accuracy for any angle in [0, pi] (see ``pair_angles``); at most
    _PAIR_ELEMS entries of difference vectors at a time. ``like``: dtype and device
    of the (possibly empty) result.
    """
    step = max(1, _PAIR_ELEMS // max(1, U1.shape[1]))
    parts = [like.new_zeros(0)]
    for s in range(0, i.numel(), step):
        u, v = U1[i[s:s + step]], U2[j[s:s + step]]
        parts.append(2 * torch.atan2(row_norms(u - v), row_norms(u + v)))
    return torch.cat(parts)


def pair_angles(U1: torch.Tensor, U2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Angles theta in [0, pi] between unit rows U1 (n1, d) and U2 (n2, d), given their cosines c.

    theta = atan2(sqrt((1 - c)(1 + c)), c) where |c| <= NEAR_COS, and
    theta = 2 atan2(|u - v|, |u + v|) for the nearly (anti-)parallel pairs.

    Numerics: 1 - c from a rounded dot product is known only to ~eps absolute, so
    near c = 1 the angle (and, above all, gradients through 1/sin(theta)) would keep
    only half the digits: at 1 - c = 1e-12, 5e-5 relative error in theta. The
    difference vectors u - v and u + v carry the small angle to full relative
    accuracy (~eps / theta). They cost O(d) per pair, so only pairs with
    |c| > NEAR_COS are recomputed (``near_angles``), at most _PAIR_ELEMS entries at
    a time. Zero rows (c = 0) keep the Gram route. Gradients are finite
    everywhere: zero for u = v or u = -v exactly (the NTK has a cusp there), exact
    elsewhere.
    """
    i, j, near = near_angles(U1, U2, c)
    theta = angle(c)[1]
    return theta.index_put((i, j), near) if i.numel() else theta


class AngleJ1(torch.autograd.Function):
    """(J, pi - J) for J(theta) = sin(theta) + (pi - theta) cos(theta), theta in [0, pi].

    J(theta) / pi is the cosine of the next layer's angle for the sqrt(2)-ReLU
    (FORMULAS.md §12); W = pi - J is pi times its versine 1 - cos, needed to full
    relative accuracy when theta is small. dJ/dtheta = -(pi - theta) sin(theta) = -dW/dtheta.

    Numerics: J = sin(t) - t cos(t), t = pi - theta, by its series for t < SERIES_MAX;
    W = 2 pi sin(theta/2)^2 - (sin(theta) - theta cos(theta)) for theta < 1 (series
    for theta < SERIES_MAX), a sum without cancellation (the second term is at most 0.21
    times the first), and pi - J otherwise (J <= 2 there). The derivative is
    supplied exactly (plain autograd would cancel cos(theta) - cos(theta)), for
    backward and forward mode, in torch ops, so second derivatives work.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(theta):
        sin, cos, t = torch.sin(theta), torch.cos(theta), math.pi - theta
        J = torch.where(t < SERIES_MAX, _series(t), sin + t * cos)
        small = torch.where(theta < SERIES_MAX, _series(theta), sin - theta * cos)
        W = torch.where(theta < 1.0, 2 * math.pi * torch.sin(theta / 2) ** 2 - small, math.pi - J)
        return J, W

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad_J, grad_W):
        (theta,) = ctx.saved_tensors
        return (grad_W - grad_J) * (math.pi - theta) * torch.sin(theta)

    @staticmethod
    def jvp(ctx, tangent):
        (theta,) = ctx.saved_tensors
        dW = tangent * (math.pi - theta) * torch.sin(theta)
        return -dW, dW


def next_angle(W: torch.Tensor) -> torch.Tensor:
    """The angle whose versine is W / pi: 2 asin(sqrt(W / (2 pi))), accurate for small W."""
    return 2 * torch.asin(safe_sqrt(W / (2 * math.pi)))


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
