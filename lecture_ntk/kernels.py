"""Infinite-width kernels: dual activations, the NNGP and the NTK.

- Sphere scalars of Example 2 (phi(z) = sqrt(2) max(0, z)): ``relu_dual``,
  ``drelu_dual`` (its derivative, equal to the dual of phi'), ``relu_ntk``;
  ``ntk_from_dual`` (Theorem 1 for any phi); ``quadrature_dual`` (any phi).
- ``gaussian_expectations``: Sigma = E[phi(u) phi(v)], Sigma_dot = E[phi'(u) phi'(v)]
  for any covariance; closed forms for relu, relu_normalized, erf and sin,
  quadrature (``kernels_quadrature``) for every other activation.
- ``nngp``, ``ntk``, ``ntk_terms``: Gram matrices on samples X (rows), any input
  norm, depth L >= 1 by the recursion of FORMULAS.md §12 (weights N(0, 1), no
  biases, no 1/sqrt(d) on the input layer, 1/sqrt(width) on later layers),
  computed in row blocks by ``kernels_gram`` (bounded memory, accurate angles).

Lecture: §3 Theorem 1, Example 2, NTK with several outputs; FORMULAS.md §6-§8, §12;
notebooks 03, 04.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import activations
from ._checks import as_samples, as_tensor, check_finite, check_int, check_same_d
from .kernels_gram import (CLOSED_FORMS, erf_expectations, gram, relu_expectations,
                           relu_normalized_expectations, sin_expectations)
from .kernels_quadrature import DEFAULT_DEG, ArcCosJ1, expectations, row_norms, sin_delta

_PI = math.pi


# ----------------------------------------------------------------- sphere scalars (Example 2)

def _xi(xi) -> torch.Tensor:
    """Validate xi (tensor, array or float) and clamp it into [-1, 1]."""
    return check_finite(as_tensor(xi, "xi"), "xi").clamp(-1.0, 1.0)


def relu_dual(xi) -> torch.Tensor:
    """Dual activation of phi(z) = sqrt(2) max(0, z) on the sphere (the NNGP).

    phi_dual(xi) = (1/pi) (xi (pi - arccos xi) + sqrt(1 - xi^2)),  xi = x^T x~.

    Lecture: Example 2; FORMULAS.md §7; notebook 04.

    Args:
        xi: tensor, array or float; entries are clamped into [-1, 1].

    Returns:
        tensor of the shape of xi (float64 for python floats).

    Numerics: arccos xi and sqrt(1 - xi^2) have infinite slope at xi = +-1.
    Here pi - arccos xi = atan2(sqrt((1 - xi)(1 + xi)), -xi) (no 1 - xi^2, no
    pi - arccos cancellation), a series replaces the cancelling sum near xi = -1,
    and the derivative is supplied exactly (phi_dual' = (pi - arccos xi) / pi): value
    and gradient are finite and accurate to a few ulp up to and at +-1 (the
    gradient is 0 outside [-1, 1], where the clamp is flat).
    """
    return ArcCosJ1.apply(_xi(xi)) / _PI


def drelu_dual(xi) -> torch.Tensor:
    """Derivative of ``relu_dual``, equal to the dual of phi' (§6: they commute).

    phi_dual'(xi) = (1/pi) (pi - arccos xi).

    Lecture: Example 2; FORMULAS.md §6-§7; notebook 04.

    Args, Returns: as in ``relu_dual``.

    Numerics: as in ``relu_dual``; its own derivative 1/(pi sqrt(1 - xi^2)) is
    infinite at xi = +-1, where autograd returns 0 (one-sided limits differ).
    """
    return sin_delta(_xi(xi))[1] / _PI


def relu_ntk(xi) -> torch.Tensor:
    """The infinite-width NTK of the sqrt(2)-ReLU network on the sphere.

    K(xi) = phi_dual(xi) + xi phi_dual'(xi);  K(1) = 2, K(0) = 1/pi, K(-1) = 0.

    Lecture: Example 2, Theorem 1; FORMULAS.md §7; notebook 04.

    Numerics: see ``relu_dual``; xi is clamped into [-1, 1] first.
    """
    c = _xi(xi)
    return relu_dual(c) + c * drelu_dual(c)


def ntk_from_dual(dual, ddual, xi) -> torch.Tensor:
    """Theorem 1 for any activation: K(xi) = phi_dual(xi) + xi phi_dual'(xi).

    Lecture: §3 Theorem 1; FORMULAS.md §6; notebook 03.

    Args:
        dual, ddual: callables xi -> tensor, the dual activation and its derivative
            (e.g. ``relu_dual`` and ``drelu_dual``).
        xi: tensor, array or float in [-1, 1] (clamped).
    """
    if not (callable(dual) and callable(ddual)):
        raise TypeError("dual, ddual: expected two callables xi -> tensor, got "
                        f"{type(dual).__name__} and {type(ddual).__name__}")
    c = _xi(xi)
    return dual(c) + c * ddual(c)


def quadrature_dual(activation, xi, deg: int = DEFAULT_DEG) -> torch.Tensor:
    """Dual activation of any phi by quadrature (reference route for smooth phi).

    phi_dual(xi) = E[phi(u) phi(v)],  (u, v) ~ N(0, [[1, xi], [xi, 1]]).

    Lecture: §3 Theorem 1 (dual activation); FORMULAS.md §6; notebooks 03, 04.

    Args:
        activation: a name from ``activations.NAMES``, an ``Activation``, or any
            elementwise callable phi (e.g. ``activations.get("tanh").dphi`` for the
            dual of phi', which by §6 is phi_dual').
        xi: tensor, array or float; clamped into [-1, 1].
        deg: Gauss-Legendre nodes per rule (see ``kernels_quadrature``).

    Returns:
        tensor of the shape of xi. Float64 accuracy at the default deg = 32: ~1e-14
        for the ReLU family, ~1e-13 for erf, tanh, sin, softplus (``kernels_quadrature``).
    """
    if callable(activation) and not isinstance(activation, (str, activations.Activation)):
        phi = activation
    else:
        phi = activations.get(activation).phi
    deg = check_int(deg, "deg", minimum=2)
    c = _xi(xi)
    one = torch.ones_like(c)
    return expectations([(phi, phi)], one, one, c, deg)[0]


# ------------------------------------------------------------ Gaussian expectations (§12)

def _closed(act):
    """The closed form of a registered activation, else None (custom Activations: quadrature)."""
    closed = CLOSED_FORMS.get(act.name)
    if closed is not None and act.name in activations.NAMES and activations.get(act.name) is act:
        return closed
    return None


def _expectations(act, s11, s22, s12, deg=DEFAULT_DEG, det=None, dist=None):
    closed = _closed(act)
    if closed is not None:
        return closed(s11, s22, s12, det) if dist is None else closed(s11, s22, s12, det, dist)
    sigma, sigma_dot = expectations([(act.phi, act.phi), (act.dphi, act.dphi)], s11, s22, s12, deg)
    return sigma, sigma_dot


def _coerce(values: dict) -> list[torch.Tensor]:
    """Validated tensors; python numbers take the dtype and device of the first tensor/array."""
    given = {n: isinstance(v, (torch.Tensor, np.ndarray)) for n, v in values.items()}
    tensors = {n: as_tensor(v, n) for n, v in values.items()}
    ref = next((tensors[n] for n in values if given[n]), None)
    out = []
    for n, t in tensors.items():
        if ref is not None:
            t = as_tensor(t if given[n] else t.to(ref), n, like=ref)
        out.append(check_finite(t, n))
    return out


def gaussian_expectations(activation, s11, s22, s12, *, deg: int = DEFAULT_DEG):
    """The two Gaussian expectations of §12 for one covariance (or a tensor of them).

    Sigma = E[phi(u) phi(v)],  Sigma_dot = E[phi'(u) phi'(v)],
    (u, v) ~ N(0, [[s11, s12], [s12, s22]]).

    Closed forms (FORMULAS.md §12), theta the angle with cos(theta) = s12 / sqrt(s11 s22):
      relu_normalized: Sigma = (1/pi) (sqrt(s11 s22 - s12^2) + (pi - theta) s12),
                       Sigma_dot = (pi - theta) / pi;   relu: half of both;
      erf: Sigma = (2/pi) arcsin(2 s12 / sqrt((1 + 2 s11)(1 + 2 s22))),
           Sigma_dot = (4/pi) / sqrt((1 + 2 s11)(1 + 2 s22) - 4 s12^2);
      sin: Sigma = exp(-(s11 + s22)/2) sinh(s12), Sigma_dot = exp(-(s11 + s22)/2) cosh(s12).
    Any other activation: quadrature (``kernels_quadrature.expectations``).

    Lecture: §3 proof of Theorem 1; FORMULAS.md §8, §12; notebook 03.

    Args:
        activation: a name from ``activations.NAMES`` or an ``Activation``.
        s11, s22, s12: tensors, arrays or floats, broadcast together; s11, s22 >= 0.
        deg: quadrature nodes per rule (ignored for the closed forms).

    Returns:
        (Sigma, Sigma_dot), two tensors of the broadcast shape.

    Numerics: for the ReLU family sqrt(s11 s22 - s12^2) = r sin(theta) with
    r = sqrt(s11 s22), c = cos(theta) = s12 / r clamped into [-1, 1], and
    sin(theta) = sqrt((1 - c)(1 + c)), pi - theta = atan2(sin(theta), -c) from the
    same c (as in ``relu_dual``); sqrt has a zero gradient at 0 (``safe_sqrt``), so
    values and gradients are finite at c = +-1; where r = 0 (a zero input) Sigma and
    Sigma_dot are 0 (phi'(0) = 0), with zero gradients. For erf, arcsin(rho) is
    computed as atan2(2 s12, root) with root^2 = 1 + 2 (s11 + s22) + 4 max(s11 s22 -
    s12^2, 0) >= 1: no clamp of arcsin's argument, no cancellation of two large
    products, finite gradients. For sin, exp(-a) sinh(s12) (a = (s11 + s22)/2) is
    used for |s12| < 1 and (exp(s12 - a) - exp(-s12 - a)) / 2 otherwise: no overflow
    (both exponents are <= 0 since |s12| <= a), full relative accuracy near 0.
    Passing the same tensor as s11, s22 and s12 works, but its gradient then sums
    large terms that cancel (s22 + s11 - 2 s12 for erf): ``nngp``/``ntk`` avoid it.
    """
    act = activations.get(activation)
    deg = check_int(deg, "deg", minimum=2)
    s11, s22, s12 = _coerce({"s11": s11, "s22": s22, "s12": s12})
    for name, s in (("s11", s11), ("s22", s22)):
        if bool((s < 0).any()):
            raise ValueError(f"{name}: expected variances >= 0, got min {float(s.min()):.3g}")
    # a covariance: s12^2 <= s11 s22, up to rounding of the caller's dot products
    slack = 100 * torch.finfo(s12.dtype).eps ** 0.5
    excess = s12.abs() - torch.sqrt(s11 * s22) * (1 + slack)
    if bool((excess > 0).any()):
        raise ValueError(f"s12: expected |s12| <= sqrt(s11 s22) (a covariance), got an excess of "
                         f"{float(excess.max()):.3g}")
    return _expectations(act, s11, s22, s12, deg)


# ---------------------------------------------------------------- kernels on samples

def _recursion(X1, X2, activation, depth, want):
    """Validate and run §12 in row blocks (``kernels_gram.gram``)."""
    if X2 is X1:      # the same tensor or array: the symmetric route (exactly symmetric, half the work)
        X2 = None
    X1 = as_samples(X1, "X1")
    if X2 is not None:
        X2 = as_samples(X2, "X2", like=X1)
        check_same_d(X1, X2)
    act = activations.get(activation)
    depth = check_int(depth, "depth", minimum=1)
    closed = _closed(act)
    relu_scale = {relu_normalized_expectations: 1.0, relu_expectations: 0.5}.get(closed)

    def expect(s11, s22, s12, det=None, dist=None):
        return _expectations(act, s11, s22, s12, det=det, dist=dist)

    out = gram(X1, X2, expect=expect, depth=depth, want=want, relu_scale=relu_scale,
               needs_det=closed is erf_expectations, needs_dist=closed is sin_expectations)
    if relu_scale is None or not _relu_bounded(X1, X2, depth):
        for K in out:
            _check_range(K, X1, X2)
    return out[0] if want != "terms" else tuple(out)


def _relu_bounded(X1, X2, depth) -> bool:
    """True if no ReLU-family kernel value can overflow: |Theta^(L)| <= (L + 1) |x| |x~|
    (each layer adds Sigma^(h) <= |x| |x~| and Sigma_dot <= 1), so the output need not be
    scanned."""
    n1, n2 = (float(torch.linalg.vector_norm(X.detach(), dim=1).amax()) if X.shape[0] else 0.0
              for X in (X1, X1 if X2 is None else X2))     # inf if |x|^2 overflows: then scan
    return (depth + 1) * n1 * n2 < torch.finfo(X1.dtype).max / 4


def _check_range(K, X1, X2):
    """Raise if K overflowed its dtype (finite inputs whose kernel is beyond the range)."""
    D = K.detach()
    if D.numel() and not bool(torch.isfinite(D.amax()) & torch.isfinite(D.amin())):
        big = max(float(row_norms(X.detach()).amax()) for X in (X1, X1 if X2 is None else X2))
        names = "X1" if X2 is None else "X1, X2"
        raise ValueError(
            f"{names}: the kernel overflows {K.dtype} (largest row norm |x| = {big:.3g}; kernel "
            f"values grow like |x| |x~|, up to {torch.finfo(K.dtype).max:.3g} here): rescale the "
            f"inputs (the ReLU kernels are homogeneous, K(a x, b x~) = a b K(x, x~))"
            + (" or use float64" if K.dtype == torch.float32 else ""))


def nngp(X1, X2=None, *, activation="relu_normalized", depth: int = 1) -> torch.Tensor:
    """The infinite-width NNGP kernel Sigma^(L)(x, x~) on every pair of rows.

    Sigma^(0) = X1 X2^T;  Sigma^(h) = E[phi(u) phi(v)],
    (u, v) ~ N(0, [[Sigma^(h-1)(x, x), Sigma^(h-1)(x, x~)], [., Sigma^(h-1)(x~, x~)]]).
    On the unit sphere with L = 1: Sigma = phi_dual(x^T x~).

    Lecture: §3 Theorem 1 and the Remarks after it (inputs off the sphere);
    FORMULAS.md §6, §8, §12; notebooks 03, 04.

    Args:
        X1: (n1, d) tensor or numpy array, rows are samples (any norm).
        X2: (n2, d) tensor or array, same dtype and device; None means X1.
        activation: "relu_normalized" (sqrt(2) max(0, z)), "relu", "erf", "sin"
            (closed forms), another name from ``activations.NAMES`` or an
            ``Activation`` (quadrature, slower: 8192 evaluations of phi and of phi'
            per entry and layer).
        depth: number of hidden layers L >= 1.

    Returns:
        (n1, n2) torch tensor, dtype and device of X1; exactly symmetric when X2 is
        None. For the ReLU family a zero input gives a zero row (or column).

    Numerics: values and input gradients are finite for every finite input
    (zero rows, x~ = +-x, d = 1, any norm that does not overflow |x| |x~|). For the
    ReLU family the first-layer angle of nearly (anti-)parallel rows (|cos| > 1/2)
    comes from |u - v| and |u + v| (u = x/|x|, v = x~/|x~|), and each later angle
    from the previous one with the versine 1 - cos kept to full relative accuracy
    (``kernels_quadrature.AngleJ1``): values and gradients keep all digits at
    1 - cos = 1e-12, instead of the half that arccos of a rounded cosine keeps. At
    x~ = +-x exactly (the NTK has a cusp there) and at a zero row the gradient is
    the zero subgradient. erf takes s11 s22 - s12^2 = (|x| |x~| sin(theta))^2 from
    the same accurate angles. With X2 = None, cos = 1 exactly on the diagonal at
    every layer. Rows are processed in blocks (``kernels_gram``): memory is the
    output plus O(_BLOCK_ENTRIES) per temporary. Speed: for the ReLU family on
    inputs that no autograd tracks (the usual case) the Gram is built tile by tile
    from one GEMM and a few in-place elementwise passes, with only the nearly
    (anti-)parallel pairs recomputed on the angle route and, for X2 = None, only the
    upper triangle computed (``kernels_gram.relu_gram_fast``): about the cost of one
    X X^T; same values to a few ulp. float32 products run with TF32
    off (``precision.full_precision``). Quadrature activations (tanh, softplus,
    custom) stay finite at any norm, but their accuracy falls with the input norm:
    relative to sqrt(K(x, x) K(x~, x~)), tanh's NTK is good to ~1e-12 at |x| = 1,
    ~1e-10 at 3, ~1e-7 at 10 and only ~1e-3 to 1e-2 for |x| >= 100 (its integrands
    then have layers thinner than the quadrature nodes; softplus: <= 2e-7). For large
    inputs prefer erf or sin (closed forms), or rescale the inputs. Rows of subnormal
    or huge entries are taken by homogeneity for the ReLU family (full relative accuracy
    wherever the value is a normal number); a kernel beyond the dtype's range raises a
    ValueError. The route is chosen from the data, so ``torch.func.vmap`` over these
    functions is not supported (they take every row at once; ``grad``/``jacrev`` work).
    """
    return _recursion(X1, X2, activation, depth, "nngp")


def ntk(X1, X2=None, *, activation="relu_normalized", depth: int = 1) -> torch.Tensor:
    """The infinite-width NTK Theta^(L)(x, x~) on every pair of rows.

    Theta^(0) = Sigma^(0) = X1 X2^T;  Theta^(h) = Theta^(h-1) Sigma_dot^(h) + Sigma^(h),
    Sigma_dot^(h) = E[phi'(u) phi'(v)] with (u, v) as in ``nngp``.
    On the unit sphere with L = 1: K = phi_dual(xi) + xi phi_dual'(xi), xi = x^T x~.
    For c outputs the NTK is K I_c with this same K (§9).

    Lecture: §3 Theorem 1, Example 2; FORMULAS.md §6-§9, §12; notebooks 03, 04.

    Args, Returns, Numerics: as in ``nngp``.
    """
    return _recursion(X1, X2, activation, depth, "ntk")


def ntk_terms(X1, X2=None, *, activation="relu_normalized") -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the depth-1 NTK: (NNGP term, correction from training B).

    ntk = Sigma^(1) + Sigma^(0) * Sigma_dot^(1), Sigma^(0) = X1 X2^T; on the sphere
    the terms are phi_dual(xi) and xi phi_dual'(xi): the infinite-width limits of
    Example 1's two sums (FORMULAS.md §4-§5).

    Lecture: §3 Example 1, Theorem 1 and its proof; notebook 03.

    Args, Numerics: as in ``nngp`` (depth is 1).

    Returns:
        (nngp_term, correction), two (n1, n2) tensors.
    """
    return _recursion(X1, X2, activation, 1, "terms")
