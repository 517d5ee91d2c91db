"""Kernel matrices on samples: the §12 recursion, in blocks of rows, with accurate angles.

``gram`` is the engine behind ``kernels.nngp``, ``kernels.ntk`` and
``kernels.ntk_terms``; it expects validated inputs. ``CLOSED_FORMS`` holds the
closed-form Gaussian expectations (relu, relu_normalized, erf, sin) documented in
``kernels.gaussian_expectations``. Two routes:

- ReLU family (``relu``, ``relu_normalized``): by homogeneity (§8) every layer is
  a function of the norms |x|, |x~| and one angle per layer,
      theta_0 = angle(x, x~),  cos(theta_h) = J(theta_{h-1}) / pi,
      Sigma^(h) = |x| |x~| cos(theta_h),  Sigma_dot^(h) = (pi - theta_{h-1}) / pi,
  J(theta) = sin(theta) + (pi - theta) cos(theta); plain ReLU: divide by 2^L.
  The angles are carried as angles (never re-derived from a rounded cosine), so
  nearly parallel inputs keep full relative accuracy in values and gradients.
- any other activation: the Gaussian expectations of §12 on variances and
  covariances, the covariance of the first layer with det = (|x| |x~| sin(theta_0))^2
  taken from the accurate angle (erf uses it).

Memory: rows of X1 are processed in blocks of about _BLOCK_ENTRIES entries of
the output, so temporaries stay bounded whatever n1 and n2 (the output itself is
(n1, n2); under autograd the saved intermediates of every block are kept).

Lecture: §3 Theorem 1 and its Remarks; FORMULAS.md §6-§8, §12; notebooks 03, 04.
"""
from __future__ import annotations

import math

import torch

from .kernels_quadrature import (_PAIR_ELEMS, NEAR_COS, AngleJ1, ArcCosJ1, angles_at,
                                 near_angles, next_angle, norms_and_units, pair_angles, polar_cos,
                                 row_norms, row_scales, scaled_rows, sin_delta, unit_rows)
from .precision import full_precision

_BLOCK_ENTRIES = 2 ** 17


# ------------------------------------------- closed-form Gaussian expectations (§12)

def relu_normalized_expectations(s11, s22, s12, det=None):
    """(Sigma, Sigma_dot) of sqrt(2) max(0, z) (see ``kernels.gaussian_expectations``)."""
    r, c = polar_cos(s11, s22, s12)
    sigma = r * ArcCosJ1.apply(c) / math.pi
    sigma_dot = torch.where(r > 0, sin_delta(c)[1] / math.pi, torch.zeros_like(c))
    return sigma, sigma_dot


def relu_expectations(s11, s22, s12, det=None):
    """(Sigma, Sigma_dot) of max(0, z): half of the sqrt(2)-ReLU's."""
    sigma, sigma_dot = relu_normalized_expectations(s11, s22, s12)
    return sigma / 2, sigma_dot / 2


def erf_expectations(s11, s22, s12, det=None):
    """(Sigma, Sigma_dot) of erf; det = s11 s22 - s12^2 if the caller has it more accurately."""
    det = torch.clamp_min(s11 * s22 - s12 * s12 if det is None else det, 0.0)
    root = torch.sqrt(1 + 2 * (s11 + s22) + 4 * det)  # = sqrt((1 + 2 s11)(1 + 2 s22) - 4 s12^2)
    return (2 / math.pi) * torch.atan2(2 * s12, root), (4 / math.pi) / root


def sin_expectations(s11, s22, s12, det=None, dist=None):
    """(Sigma, Sigma_dot) of sin: exp(-a) sinh(s12) and exp(-a) cosh(s12), a = (s11 + s22) / 2.

    For |s12| >= 1 as (exp(-D_-/2) -+ exp(-D_+/2)) / 2, D_-+ = s11 + s22 -+ 2 s12 = |x -+ x~|^2;
    ``dist`` = (D_-, D_+) computed without cancellation (``_dists``) replaces s12 - a and
    -s12 - a, which cancel for large nearly (anti-)parallel inputs.
    """
    a = (s11 + s22) / 2
    small = s12.abs() < 1
    s = torch.where(small, s12, torch.zeros_like(s12))      # sinh/cosh finite in both branches
    if dist is None:
        plus, minus = torch.exp(s12 - a), torch.exp(-s12 - a)   # exponents <= 0 (|s12| <= a)
    else:
        plus, minus = torch.exp(-0.5 * dist[0]), torch.exp(-0.5 * dist[1])
    ea = torch.exp(-a)
    return (torch.where(small, ea * torch.sinh(s), (plus - minus) / 2),
            torch.where(small, ea * torch.cosh(s), (plus + minus) / 2))


CLOSED_FORMS = {"relu": relu_expectations, "relu_normalized": relu_normalized_expectations,
                "erf": erf_expectations, "sin": sin_expectations}


# ------------------------------------------------------------------ row blocks

def _pin(M: torch.Tensor, values: torch.Tensor, i0: int) -> torch.Tensor:
    """M (b, n) with M[r, i0 + r] = values[r]: the diagonal of a row block of a symmetric matrix."""
    rows = torch.arange(M.shape[0], device=M.device) + i0
    eye = torch.arange(M.shape[1], device=M.device)[None, :] == rows[:, None]
    return torch.where(eye, values[:, None], M)


def _cosines(G, r):
    pos = r > 0
    c = torch.where(pos, G / torch.where(pos, r, torch.ones_like(r)), torch.zeros_like(r))
    return c.clamp(-1, 1)


def _relu_block(X1b, X2, N1b, N2, U1b, U2, depth):
    """One row block of the sqrt(2)-ReLU recursion: (Sigma^(L), Theta^(L), depth-1 terms)."""
    G = X1b @ X2.T                                         # Sigma^(0) = Theta^(0)
    r = N1b[:, None] * N2[None, :]
    theta = pair_angles(U1b, U2, _cosines(G, r))           # theta_0
    return _relu_layers(theta, r, G, depth)


def _relu_layers(theta, r, G, depth):
    """The sqrt(2)-ReLU recursion from the first-layer angles theta = theta_0, elementwise.

    r = |x| |x~|, G = x^T x~ (Theta^(0)); any common shape. Returns (Sigma^(L),
    Theta^(L), (Sigma^(1), Sigma^(0) Sigma_dot^(1))), with exact derivatives
    (``AngleJ1``) and the versine carried between layers (``next_angle``).
    """
    zero = torch.zeros_like(r)
    Theta, first = G, None
    for h in range(depth):
        J, W = AngleJ1.apply(theta)
        sigma = r * (J / math.pi)
        sigma_dot = torch.where(r > 0, (math.pi - theta) / math.pi, zero)
        if h == 0:
            first = (sigma, G * sigma_dot)
        Theta = Theta * sigma_dot + sigma
        theta = next_angle(W)
    return sigma, Theta, first


# ------------------------------------------------ fast ReLU Gram (values only, no autograd)

# Tiles of the output computed at once by ``relu_gram_fast`` (rows x columns).
_TILE = (512, 512)
# Pairs whose cosine exceeds this in absolute value are recomputed on the angle route.
FAST_NEAR_COS = 0.98


def plain_inputs(*Xs) -> bool:
    """True when no autograd (backward, forward or torch.func) tracks any of the tensors Xs."""
    for X in Xs:
        if X is None:
            continue
        if X.requires_grad and torch.is_grad_enabled():
            return False
        if torch._C._functorch.is_functorch_wrapped_tensor(X):
            return False
        if torch.autograd.forward_ad.unpack_dual(X).tangent is not None:
            return False
    return True


class _TileBuffers:
    """Scratch tiles reused across the tiles of one Gram (fresh multi-MB allocations would be
    paid for again in page faults at every tile)."""

    def __init__(self, like: torch.Tensor, entries: int, want: str):
        names = ["gemm", "s0", "s1", "delta"] + {"ntk": ["theta"], "terms": ["first"]}.get(want, [])
        self._flat = {n: like.new_empty(entries) for n in names}

    def get(self, name: str, shape) -> torch.Tensor:
        return self._flat[name][:shape[0] * shape[1]].view(shape)


def _lean_tile(c, depth, want, bufs, thr):
    """The sqrt(2)-ReLU recursion on a tile of cosines c, per unit |x| |x~|, in place.

    cos(theta_h) = J(theta_{h-1}) / pi, J = sin(theta) + (pi - theta) cos(theta);
    Theta^(h) / r = Theta^(h-1) / r (pi - theta_{h-1}) / pi + cos(theta_h), Theta^(0) / r = c.
    About ten elementwise passes a layer on the scratch tiles of ``bufs`` (kept in cache);
    the input tile c is left as it is. Returns (outputs, near): the outputs are views of
    the scratch tiles (valid until the next tile), near = None or (i, j, c_ij) for the
    entries with sin(theta_h) < thr at some layer h (there sqrt(1 - c^2) of a rounded c
    would lose digits; cosines creep towards 1 with depth), whose values the caller
    replaces.
    """
    shape = c.shape
    Theta = first = mask = None
    c0 = c
    for h in range(depth):
        s = torch.mul(c, c, out=bufs.get(f"s{h % 2}", shape))
        s.neg_().add_(1.0).clamp_min_(0.0).sqrt_()           # sin(theta_h)
        if bool(s.amin() < thr):                           # one cheap pass; rarely true
            mask = (s < thr) if mask is None else mask.logical_or_(s < thr)
        delta = torch.neg(c, out=bufs.get("delta", shape)).clamp_(-1.0, 1.0).acos_()
        #       pi - theta_h = arccos(-c)
        if want == "terms":
            first = [None, torch.mul(c, delta, out=bufs.get("first", shape)).mul_(1 / math.pi)]
        if want == "ntk":
            Theta = torch.mul(c, delta, out=bufs.get("theta", shape)) if h == 0 else \
                Theta.mul_(delta)
        c = s.addcmul_(delta, c).mul_(1 / math.pi)           # cos(theta_{h+1}) = J / pi
        if Theta is not None:
            Theta.mul_(1 / math.pi).add_(c)
        if want == "terms":
            first[0] = c
    near = None
    if mask is not None:
        i, j = torch.nonzero(mask, as_tuple=True)
        near = (i, j, c0[i, j])
    return {"nngp": [c], "ntk": [Theta], "terms": first}[want], near


def relu_gram_fast(X1, X2, depth: int, want: str, relu_scale: float) -> list[torch.Tensor]:
    """The ReLU-family kernels of ``gram`` for inputs no autograd tracks: values only, fast.

    Same values as the angle route of ``gram`` (to a few ulp relative to
    sqrt(K(x, x) K(x~, x~))), computed tile by tile: one GEMM X1 X2^T scaled to
    cosines, then the recursion as about ten in-place elementwise passes per layer
    (``_lean_tile``), then one scaling by |x| |x~| relu_scale^L written straight into
    the output. Pairs with sin(theta_h) < sqrt(1 - FAST_NEAR_COS^2) at some layer,
    where sqrt(1 - c^2) of a rounded c would lose digits, are recomputed from
    difference vectors (``angles_at``) and carried through the layers on the angle
    route (``_relu_layers``). With X2 = None only the tiles on and above the diagonal
    are computed and mirrored: the result is exactly symmetric and costs about half a
    Gram. Expects rows of ordinary magnitude (``gram`` rescales extreme ones first).

    Memory: the output plus a few tiles of ``_TILE`` entries.
    """
    same = X2 is None
    X2 = X1 if same else X2
    n1, n2 = X1.shape[0], X2.shape[0]
    N1 = torch.linalg.vector_norm(X1, dim=1)    # rows of ordinary magnitude: no over/underflow
    N2 = N1 if same else torch.linalg.vector_norm(X2, dim=1)
    R1, R2 = _inverse(N1), (None if same else _inverse(N2))
    R2 = R1 if same else R2
    S1 = N1 * relu_scale ** (depth if want != "terms" else 1)
    outs = [X1.new_empty(n1, n2) for _ in range(2 if want == "terms" else 1)]
    tr, tc = _TILE
    if same:
        tc = tr
    thr = math.sqrt((1 - FAST_NEAR_COS) * (1 + FAST_NEAR_COS))
    bufs = _TileBuffers(X1, min(tr, n1) * min(tc, n2), want)
    for i0 in range(0, n1, tr):
        i1 = min(i0 + tr, n1)
        for j0 in range(i0 if same else 0, n2, tc):
            j1 = min(j0 + tc, n2)
            C = torch.matmul(X1[i0:i1], X2[j0:j1].T, out=bufs.get("gemm", (i1 - i0, j1 - j0)))
            C.mul_(R1[i0:i1, None]).mul_(R2[None, j0:j1])      # cosines; 0 for a zero row
            tiles, near = _lean_tile(C, depth, want, bufs, thr)
            if near is not None:
                i, j, c = near
                theta = torch.zeros_like(c)     # a row with itself: theta = 0 exactly
                other = (i + i0 != j + j0) if same else torch.ones_like(i, dtype=torch.bool)
                if bool(other.any()):
                    theta[other] = _near_angles(X1[i0:i1], X2[j0:j1], i[other], j[other], c)
                sigma, Theta, first = _relu_layers(theta, torch.ones_like(c), c.clamp(-1, 1),
                                                   depth)
                values = {"nngp": [sigma], "ntk": [Theta], "terms": list(first)}[want]
                for T, v in zip(tiles, values):
                    T.index_put_((i, j), v)
            for T, out in zip(tiles, outs):
                block = out[i0:i1, j0:j1]
                if same and j0 == i0:        # a diagonal tile: mirror its upper triangle
                    T.mul_(S1[i0:i1, None]).mul_(N2[None, j0:j1])
                    torch.add(torch.triu(T), torch.triu(T, 1).mT, out=block)
                    continue
                torch.mul(T.mul_(S1[i0:i1, None]), N2[None, j0:j1], out=block)  # one write
                if same:
                    out[j0:j1, i0:i1] = block.mT
    return outs


def _inverse(N: torch.Tensor) -> torch.Tensor:
    """1 / |x| per row, 0 for a zero row."""
    return torch.where(N > 0, 1.0 / torch.where(N > 0, N, torch.ones_like(N)), torch.zeros_like(N))


def _near_angles(X1b, X2b, i, j, like):
    """Accurate angles of the pairs (X1b[i], X2b[j]) of one tile, from the unit vectors of only
    the rows involved (at most one tile's rows): ``angles_at`` on ``unit_rows``."""
    rows_i, at_i = torch.unique(i, return_inverse=True)
    rows_j, at_j = torch.unique(j, return_inverse=True)
    return angles_at(unit_rows(X1b[rows_i]), unit_rows(X2b[rows_j]), at_i, at_j, like=like)


def _general_block(expect, G, diag1, diag2, det0, depth, i0, dist0=None):
    """One row block of the §12 recursion with Gaussian expectations ``expect``, G = X1b X2^T.

    det0: None, or s11 s22 - s12^2 of the first layer (then also passed for deeper
    layers, pinned to 0 on the diagonal when X2 is X1; see ``_diagonals``).
    dist0: None, or (|x - x~|^2, |x + x~|^2) of the first layer (``_dists``, for sin).
    """
    sigma = G
    if i0 is not None:  # X2 is X1: c = 1 exactly on the diagonal, at every layer
        sigma = _pin(sigma, diag1[0], i0)
    Theta, first, det = sigma, None, det0
    for h in range(depth):
        s11, s22 = diag1[h][:, None], diag2[h][None, :]
        if h > 0 and det0 is not None:
            det = s11 * s22 - sigma * sigma
            det = det if i0 is None else _pin(det, torch.zeros_like(diag1[h]), i0)
        if h == 0 and dist0 is not None:
            s, s_dot = expect(s11, s22, sigma, det=det, dist=dist0)
        else:
            s, s_dot = expect(s11, s22, sigma, det=det)
        if i0 is not None:
            s = _pin(s, diag1[h + 1], i0)
        if h == 0:
            first = (s, sigma * s_dot)
        Theta = Theta * s_dot + s
        sigma = s
    return sigma, Theta, first


def _dists(G, X1b, X2, sq1, sq2):
    """(|x - x~|^2, |x + x~|^2) for every pair: |x|^2 + |x~|^2 -+ 2 x.x~ where |cos| <= NEAR_COS
    (no cancellation there: the result is at least (|x|^2 + |x~|^2) / 2), and from the
    difference vectors x -+ x~ themselves for the nearly (anti-)parallel pairs.
    sq1, sq2: the squared norms (n1b,), (n2,)."""
    s = sq1[:, None] + sq2[None, :]
    dm, dp = s - 2 * G, s + 2 * G
    r = torch.sqrt(sq1)[:, None] * torch.sqrt(sq2)[None, :]
    i, j = torch.nonzero(_cosines(G, r).detach().abs() > NEAR_COS, as_tuple=True)
    if i.numel():
        step = max(1, _PAIR_ELEMS // X1b.shape[1])
        minus, plus = [G.new_zeros(0)], [G.new_zeros(0)]
        for k in range(0, i.numel(), step):
            u, v = X1b[i[k:k + step]], X2[j[k:k + step]]
            minus.append(row_norms(u - v) ** 2)
            plus.append(row_norms(u + v) ** 2)
        dm = dm.index_put((i, j), torch.cat(minus))
        dp = dp.index_put((i, j), torch.cat(plus))
    return dm.clamp_min(0.0), dp.clamp_min(0.0)


def _det(G, N1b, N2, U1b, U2):
    """s11 s22 - s12^2 = (|x| |x~| sin(theta))^2, from accurate angles where |cos| > NEAR_COS."""
    r = N1b[:, None] * N2[None, :]
    det = (r - G) * (r + G)
    i, j, near = near_angles(U1b, U2, _cosines(G, r))
    return det.index_put((i, j), (r[i, j] * torch.sin(near)) ** 2) if i.numel() else det


def _diagonals(expect, X, depth):
    """[Sigma^(h)(x, x) for h = 0..L], each (n,).

    Numerics: det = 0 is passed explicitly: s11 s22 - s12^2 with s11 = s22 = s12
    = s sends gradients s, s and -2 s into one tensor, which cancel only after
    rounding and would swamp its other, small gradient contributions (seen with
    erf at |x| = 1e8 in float32).
    """
    diag = [(X * X).sum(-1)]
    for _ in range(depth):
        d = diag[-1]
        diag.append(expect(d, d, d, det=torch.zeros_like(d))[0])
    return diag


def _pick(out, want):
    sigma, Theta, first = out
    return {"nngp": [sigma], "ntk": [Theta], "terms": list(first)}[want]


def _extreme(X1, X2) -> bool:
    """True if some row's largest |entry| m is outside [sqrt(tiny / eps), sqrt(max / (16 d))]
    (about [2^-485, 2^506] in float64 and [2^-51, 2^59] in float32 for d = 784): beyond
    it |x|^2 could overflow or lose digits to subnormal rounding, so the fast route's
    plain norms and products would be wrong."""
    info = torch.finfo(X1.dtype)
    lo = math.sqrt(info.tiny / info.eps)
    hi = math.sqrt(info.max / (16 * X1.shape[1]))
    for X in (X1,) if X2 is None else (X1, X2):
        m = row_scales(X)                   # a zero row counts as m = 1: never extreme
        if bool((m.amin() < lo) | (m.amax() > hi)):
            return True
    return False


def _rescaled_relu_gram(X1, X2, *, expect, depth, want, relu_scale):
    """ReLU-family kernels of rows with extreme magnitudes, by homogeneity (§8):
    K(x, x~) = m m~ K(x / m, x~ / m~), m = max_j |x_j| (a constant for autograd).

    The scaled rows have norms in [1, sqrt(d)]. m m~ itself may be subnormal (or overflow)
    where the kernel value is a normal number, so it is never formed: with m = f 2^e
    (``torch.frexp``, f in [1/2, 1)), K = (K(y, y~) f f~) 2^a 2^b, a + b = e + e~,
    a = floor((e + e~) / 2). Multiplying by an exact power of two is exact while the
    result is normal, and the intermediate lies between K(y, y~) f f~ and K in
    magnitude: one rounding in all (applied block by block).
    """
    m1, Y1 = scaled_rows(X1)
    m2, Y2 = (m1, None) if X2 is None else scaled_rows(X2)
    m1, m2 = m1[:, 0], m2[:, 0]
    out = gram(Y1, Y2, expect=expect, depth=depth, want=want, relu_scale=relu_scale)
    (f1, e1), (f2, e2) = torch.frexp(m1), torch.frexp(m2)
    two = torch.tensor(2.0, dtype=m1.dtype, device=m1.device)
    step = max(1, _BLOCK_ENTRIES // m2.numel())
    result = []
    for M in out:
        blocks = []
        for i0 in range(0, M.shape[0], step):
            E = e1[i0:i0 + step, None] + e2[None, :]
            a = torch.div(E, 2, rounding_mode="floor")
            blocks.append(M[i0:i0 + step] * torch.outer(f1[i0:i0 + step], f2)
                          * torch.pow(two, a.to(m1.dtype)) * torch.pow(two, (E - a).to(m1.dtype)))
        result.append(torch.cat(blocks) if len(blocks) > 1 else blocks[0])
    return result


def gram(X1, X2, *, expect, depth: int, want: str, relu_scale=None,
         needs_det: bool = False, needs_dist: bool = False) -> list[torch.Tensor]:
    """The §12 kernels on every pair of rows of X1 (n1, d) and X2 (n2, d) (None: X2 = X1).

    Args:
        X1, X2: validated sample matrices (same dtype, device and d).
        expect: (s11, s22, s12, det=None) -> (Sigma, Sigma_dot), the closed form or
            quadrature of the activation; ignored when relu_scale is given.
        depth: L >= 1.
        want: "nngp" -> [Sigma^(L)], "ntk" -> [Theta^(L)], "terms" -> [Sigma^(1),
            Sigma^(0) Sigma_dot^(1)].
        relu_scale: None, or the factor per layer of a ReLU (1 for sqrt(2) max(0, z),
            1/2 for max(0, z)): selects the angle route.
        needs_det: pass det = (|x| |x~| sin(theta_0))^2 from accurate angles to the
            first layer's ``expect`` (erf); otherwise det=None.
        needs_dist: pass dist = (|x - x~|^2, |x + x~|^2), from difference vectors for
            nearly (anti-)parallel pairs, to the first layer's ``expect`` (sin).

    Returns:
        list of (n1, n2) tensors. With X2 = None each is exactly symmetric.

    Numerics: float32 products run in full precision (``precision.full_precision``).
    """
    same = X2 is None
    X2 = X1 if same else X2
    n1, n2 = X1.shape[0], X2.shape[0]
    if n1 == 0 or n2 == 0:
        return [X1 @ X2.T for _ in range(2 if want == "terms" else 1)]
    if relu_scale is not None and _extreme(X1, None if same else X2):
        return _rescaled_relu_gram(X1, None if same else X2, expect=expect, depth=depth,
                                   want=want, relu_scale=relu_scale)
    step = max(1, _BLOCK_ENTRIES // n2)
    with full_precision():
        if relu_scale is not None and plain_inputs(X1, None if same else X2):
            return relu_gram_fast(X1, None if same else X2, depth, want, relu_scale)
        if relu_scale is not None or needs_det:
            N1, U1 = norms_and_units(X1)
            N2, U2 = (N1, U1) if same else norms_and_units(X2)
        if relu_scale is None:
            diag1 = _diagonals(expect, X1, depth)
            diag2 = diag1 if same else _diagonals(expect, X2, depth)
        parts = []
        for i0 in range(0, n1, step):
            i1 = min(i0 + step, n1)
            if relu_scale is not None:
                out = _relu_block(X1[i0:i1], X2, N1[i0:i1], N2, U1[i0:i1], U2, depth)
            else:
                G, det0, dist0 = X1[i0:i1] @ X2.T, None, None
                if needs_det:
                    det0 = _det(G, N1[i0:i1], N2, U1[i0:i1], U2)
                if needs_dist:
                    dist0 = _dists(G, X1[i0:i1], X2, diag1[0][i0:i1], diag2[0])
                out = _general_block(expect, G, [d[i0:i1] for d in diag1], diag2, det0, depth,
                                     i0 if same else None, dist0)
            parts.append(_pick(out, want))
    result = [torch.cat(p) if len(p) > 1 else p[0] for p in zip(*parts)]
    if relu_scale is not None and relu_scale != 1:
        powers = [relu_scale] * 2 if want == "terms" else [relu_scale ** depth]
        result = [M * f for M, f in zip(result, powers)]
    if same:
        result = [(M + M.mT) * 0.5 for M in result]
    return result
