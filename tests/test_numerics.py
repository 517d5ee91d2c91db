"""Numerical robustness: hard points against 60-digit references, angles, chunks, precision policy.

Hard points (the class of bug reports about arccos-based NTK code): xi exactly +-1, a unit
vector whose float64 self-dot is 1 + 2^-52, xi = 1 - 1e-12, -1 + 1e-12 and the float32
counterpart 1 - 2^-24, a zero input, inputs of norm 1e-8 and 1e8, d = 1. At every one of them,
for relu, relu_normalized, erf and sin (closed forms), depths 1-3, nngp and ntk:
- values and the gradients with respect to both inputs are finite;
- values match a 60-digit mpmath evaluation of the §12 recursion within VALUE_TOL[dtype]
  times sqrt(K(x, x) K(x~, x~));
- gradients (where the kernel is differentiable: not at x~ = +-x or a zero input, where the
  ReLU NTK has a cusp) match 60-digit central differences within GRAD_TOL[dtype] times
  sqrt(K(x, x) K(x~, x~)) / |x|.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from conftest import assert_close
from lecture_ntk import (activations, empirical, kernels, kernels_gram, kernels_quadrature,
                         network, precision, regression)

mpmath = pytest.importorskip("mpmath")

F32, F64 = torch.float32, torch.float64
VALUE_TOL = {F64: 1e-14, F32: 1e-6}
GRAD_TOL = {F64: 1e-13, F32: 1e-5}
_T12, _T24 = math.acos(1 - 1e-12), math.acos(1 - 2.0 ** -24)
# label: (x, x~, cusp)
HARD_POINTS = {
    "xi=1": ([0.6, -0.8, 0.0], [0.6, -0.8, 0.0], True),
    "xi=-1": ([0.6, -0.8, 0.0], [-0.6, 0.8, 0.0], True),
    "self-dot 1+2^-52": ([1.0, 2.0 ** -26], [1.0, 2.0 ** -26], True),
    "xi=1-1e-12": ([1.0, 0.0, 0.0], [math.cos(_T12), math.sin(_T12), 0.0], False),
    "xi=-1+1e-12": ([1.0, 0.0, 0.0], [-math.cos(_T12), math.sin(_T12), 0.0], False),
    "xi=1-2^-24": ([1.0, 0.0, 0.0], [math.cos(_T24), math.sin(_T24), 0.0], False),
    "zero input": ([0.0, 0.0, 0.0], [0.3, 0.2, -1.0], True),
    "norm 1e-8": ([3e-9, -4e-9, 1e-9], [0.3, 0.2, -1.0], False),
    "norm 1e8": ([3e8, -4e8, 1e8], [0.3, 0.2, -1.0], False),
    "norm 14, nearly parallel": ([10.0, 10.0], [10.0, 10.4714], False),
    "norm 14, nearly antiparallel": ([10.0, 10.0], [-10.0, -10.4714], False),
    "d=1 opposite": ([0.7], [-1.3], False),
    "d=1 same side": ([0.7], [2.3], False),
}


# ------------------------------------------------------------- 60-digit reference (mpmath)


def _mp_expect(name, s11, s22, s12):
    pi = mpmath.pi
    if name == "erf":
        ab = (1 + 2 * s11) * (1 + 2 * s22)
        return (2 / pi * mpmath.asin(2 * s12 / mpmath.sqrt(ab)),
                4 / pi / mpmath.sqrt(ab - 4 * s12 ** 2))
    if name == "sin":
        a = (s11 + s22) / 2
        return mpmath.exp(-a) * mpmath.sinh(s12), mpmath.exp(-a) * mpmath.cosh(s12)
    r = mpmath.sqrt(s11 * s22)
    if r == 0:
        return mpmath.mpf(0), mpmath.mpf(0)
    t = mpmath.acos(max(-1, min(1, s12 / r)))
    sig, dot = (r * mpmath.sin(t) + (pi - t) * s12) / pi, (pi - t) / pi
    return (sig / 2, dot / 2) if name == "relu" else (sig, dot)


def _mp_kernel(x, y, name, depth, which):
    """§12 in 60 digits; the ReLU's first angle from |u - v| and |u + v| (exact there)."""
    mpmath.mp.dps = 60
    x, y = [mpmath.mpf(v) for v in x], [mpmath.mpf(v) for v in y]
    s11, s22 = mpmath.fsum(a * a for a in x), mpmath.fsum(b * b for b in y)
    s12 = mpmath.fsum(a * b for a, b in zip(x, y))
    Theta = s12
    for h in range(depth):
        s, s_dot = _mp_expect(name, s11, s22, s12)
        if h == 0 and name.startswith("relu") and s11 > 0 and s22 > 0:
            nx, ny = mpmath.sqrt(s11), mpmath.sqrt(s22)
            u, v = [a / nx for a in x], [b / ny for b in y]
            t = 2 * mpmath.atan2(mpmath.sqrt(mpmath.fsum((a - b) ** 2 for a, b in zip(u, v))),
                                 mpmath.sqrt(mpmath.fsum((a + b) ** 2 for a, b in zip(u, v))))
            half = 2 if name == "relu" else 1
            s = (nx * ny * mpmath.sin(t) + (mpmath.pi - t) * s12) / mpmath.pi / half
            s_dot = (mpmath.pi - t) / mpmath.pi / half
        Theta = Theta * s_dot + s
        s11, s22, s12 = _mp_expect(name, s11, s11, s11)[0], _mp_expect(name, s22, s22, s22)[0], s
    return Theta if which == "ntk" else s12


def _mp_gradient(x, y, name, depth, which):
    x = [mpmath.mpf(v) for v in x]
    out = []
    for i in range(len(x)):
        h = mpmath.mpf(10) ** -25 * (abs(x[i]) if x[i] != 0 else 1)
        f = lambda t: _mp_kernel(x[:i] + [t] + x[i + 1:], y, name, depth, which)  # noqa: E731
        out.append(float((f(x[i] + h) - f(x[i] - h)) / (2 * h)))
    return torch.tensor(out, dtype=F64)


# ---------------------------------------------------------------------------- hard points


@pytest.mark.parametrize("label", list(HARD_POINTS))
@pytest.mark.parametrize("dtype", [F64, F32])
def test_hard_points_closed_forms_against_mpmath(label, dtype):
    x, y, cusp = HARD_POINTS[label]
    for name, depth, which in itertools.product(["relu", "relu_normalized", "erf", "sin"],
                                                (1, 2, 3), ("nngp", "ntk")):
        where = f"{label}, {name}, depth {depth}, {which}, {dtype}"
        X = torch.tensor([x], dtype=dtype, requires_grad=True)
        Y = torch.tensor([y], dtype=dtype, requires_grad=True)
        K = getattr(kernels, which)(X, Y, activation=name, depth=depth)
        gx, gy = torch.autograd.grad(K.sum(), (X, Y))
        assert all(torch.isfinite(t).all() for t in (K, gx, gy)), where
        xs, ys = X[0].detach().double().tolist(), Y[0].detach().double().tolist()
        scale = math.sqrt(abs(float(_mp_kernel(xs, xs, name, depth, which)
                                    * _mp_kernel(ys, ys, name, depth, which)))) or 1.0
        err = abs(float(K.detach()) - float(_mp_kernel(xs, ys, name, depth, which))) / scale
        assert err <= VALUE_TOL[dtype], f"{where}: value error {err:.1e}"
        if not cusp:
            g_ref = _mp_gradient(xs, ys, name, depth, which)
            g_err = float((gx[0].double() - g_ref).abs().max()) * math.hypot(*xs) / scale
            assert g_err <= GRAD_TOL[dtype], f"{where}: gradient error {g_err:.1e}"


def test_nearly_parallel_gradient_keeps_all_digits():
    """The arccos route kept ~1e-6 here (1 - cos known to eps absolute); the angle route ~eps."""
    for t in (1e-4, 1e-6, 1e-8):
        x, y = [1.0, 0.0, 0.0], [math.cos(t), math.sin(t), 0.0]
        X = torch.tensor([x], dtype=F64, requires_grad=True)
        (g,) = torch.autograd.grad(kernels.ntk(X, torch.tensor([y], dtype=F64)).sum(), X)
        assert_close(g[0], _mp_gradient(x, y, "relu_normalized", 1, "ntk"), rtol=1e-14)


@pytest.mark.parametrize("name", ["tanh", "softplus"])
def test_hard_points_quadrature_finite_and_converged(name):
    """Quadrature activations: finite everywhere; deg 32 = deg 64 to 1e-12 at unit variances."""
    for label, (x, y, _) in HARD_POINTS.items():
        X = torch.tensor([x], dtype=F64, requires_grad=True)
        Y = torch.tensor([y], dtype=F64, requires_grad=True)
        for depth in (1, 2):
            K = kernels.ntk(X, Y, activation=name, depth=depth)
            grads = torch.autograd.grad(K.sum(), (X, Y))
            assert torch.isfinite(K).all() and all(torch.isfinite(g).all() for g in grads), label
    s = torch.tensor([[1.0, 1.0, 1 - 1e-12], [1.0, 1.0, -1 + 1e-12], [1.0, 0.5, 0.3],
                      [1e-16, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=F64)
    lo = kernels.gaussian_expectations(name, s[:, 0], s[:, 1], s[:, 2], deg=32)
    hi = kernels.gaussian_expectations(name, s[:, 0], s[:, 1], s[:, 2], deg=64)
    for a, b in zip(lo, hi):
        assert float((a - b).abs().max()) < 1e-12


def test_diagonal_and_zero_row_conventions():
    """X2 = None: cos = 1 exactly on the diagonal (unit rows give L + 1, and gradient 2 (L + 1) x);
    a zero row gives a zero row and column with zero gradient."""
    X = torch.tensor([[1.0, 2.0 ** -26], [0.0, 0.0], [0.6, 0.8]], dtype=F64, requires_grad=True)
    for depth in (1, 2, 3):
        K = kernels.ntk(X, depth=depth)
        assert abs(float(K[0, 0].detach()) / ((depth + 1) * (1 + 2.0 ** -52)) - 1) <= 4.5e-16
        assert (K[1] == 0).all() and (K[:, 1] == 0).all()
        (g,) = torch.autograd.grad(K.diagonal().sum(), X)
        assert_close(g, 2 * (depth + 1) * X.detach(), rtol=1e-15)


# ------------------------------------------------------------------------ angle building blocks


def test_angle_j1_derivatives_and_branch_continuity():
    theta = torch.linspace(1e-3, math.pi - 1e-3, 37, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: kernels_quadrature.AngleJ1.apply(t), (theta,))
    assert torch.autograd.gradgradcheck(lambda t: kernels_quadrature.AngleJ1.apply(t), (theta,))
    mpmath.mp.dps = 40
    for t in (1e-9, 0.5, 1.0 - 1e-15, 1.0, 2.0, math.pi - 1.0, math.pi - 1.0 + 1e-15,
              math.pi - 1e-9, math.pi):
        J, W = kernels_quadrature.AngleJ1.apply(torch.tensor(t, dtype=F64))
        tm = mpmath.mpf(t)
        J_ref = mpmath.sin(tm) + (mpmath.pi - tm) * mpmath.cos(tm)
        # a float theta is theta to ~1.2e-16 (half an ulp of pi); J' = -(pi - theta) sin(theta)
        slope = float((mpmath.pi - tm) * mpmath.sin(tm))
        assert abs(float(J) - float(J_ref)) <= 1e-15 * float(J_ref) + 2.5e-16 * slope + 1e-40, t
        assert abs(float(W) / float(mpmath.pi - J_ref) - 1) < 4e-15, t


# torch.func's forward mode loads TorchScript decompositions, which warn in recent torch
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_forward_mode_and_second_derivatives_of_kernels(gen):
    """jvp (forward mode) agrees with the gradient; torch.func.hessian with autograd's."""
    theta = torch.linspace(1e-3, math.pi - 1e-3, 9, dtype=F64, requires_grad=True)
    c = torch.linspace(-0.99, 0.99, 9, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(kernels_quadrature.AngleJ1.apply, (theta,),
                                    check_forward_ad=True)
    assert torch.autograd.gradcheck(kernels_quadrature.ArcCosJ1.apply, (c,), check_forward_ad=True)
    X = torch.randn(3, 2, generator=gen, dtype=F64)
    for name in ("relu_normalized", "erf"):
        def f(z):
            return kernels.ntk(z[None], X[:1] + 0.3, activation=name, depth=2).sum()
        z = X[1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(z), z)
        t = torch.randn(2, generator=gen, dtype=F64)
        assert_close(torch.func.jvp(f, (X[1],), (t,))[1], g @ t, rtol=1e-13)
        assert_close(torch.func.hessian(f)(X[1]), torch.autograd.functional.hessian(f, X[1]),
                     rtol=1e-12)


def test_row_norms_any_magnitude_and_zero_gradient_at_zero():
    X = torch.tensor([[3e-200, 4e-200], [3e200, 4e200], [0.0, 0.0], [-1.0, 0.0]], dtype=F64,
                     requires_grad=True)
    N = kernels_quadrature.row_norms(X)
    (g,) = torch.autograd.grad(N.sum(), X)
    assert torch.isfinite(g).all() and (g[2] == 0).all()
    N = N.detach()
    assert N[2] == 0 and N[3] == 1
    for value, expected in ((N[0], 5e-200), (N[1], 5e200)):
        assert abs(float(value) / expected - 1) < 1e-15
    N32 = kernels_quadrature.row_norms(torch.tensor([[3e-30, 4e-30], [3e30, 4e30]], dtype=F32))
    assert abs(float(N32[0]) / 5e-30 - 1) < 1e-6 and abs(float(N32[1]) / 5e30 - 1) < 1e-6


def test_pair_angles_exact_for_tiny_and_near_pi_angles():
    for t in (1e-15, 1e-9, 1e-5, 0.3, math.pi - 1e-9):
        u = torch.tensor([[1.0, 0.0]], dtype=F64)
        v = torch.tensor([[math.cos(t), math.sin(t)]], dtype=F64)
        theta = kernels_quadrature.pair_angles(u, v, (u @ v.T).clamp(-1, 1))
        assert abs(float(theta) - t) <= 2e-16 * t + 1e-30, t


def test_sin_closed_form_matches_quadrature_and_is_overflow_free():
    s = torch.tensor([[1.0, 1.0, 0.3], [4.0, 0.25, -0.9], [1e-8, 1e-8, 1e-8], [9.0, 4.0, 5.9]],
                     dtype=F64)
    sin_q = activations.Activation("sin_q", torch.sin, torch.cos, lambda z: -torch.sin(z))
    closed = kernels.gaussian_expectations("sin", s[:, 0], s[:, 1], s[:, 2])
    quad = kernels.gaussian_expectations(sin_q, s[:, 0], s[:, 1], s[:, 2], deg=64)
    for a, b in zip(closed, quad):
        assert_close(a, b, rtol=1e-12)
    big = kernels.gaussian_expectations("sin", 1e6, 1e6, 1e6 - 1.0)
    assert_close(torch.stack(big), torch.tensor([0.5 * math.exp(-1.0)] * 2, dtype=F64), rtol=1e-12)


# ------------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("name", ["relu_normalized", "erf", "tanh"])
def test_row_blocks_and_pair_chunks_give_the_same_kernel(name, monkeypatch, gen):
    X = torch.randn(9, 3, generator=gen, dtype=F64)
    X[4] = X[2] * (1 + 1e-9)              # a nearly parallel pair (angle route)
    Y = torch.randn(7, 3, generator=gen, dtype=F64)
    # inputs tracked by autograd take the row-block route (untracked ReLU inputs: tiles, below)
    X.requires_grad_(True)
    full = [kernels.ntk(X, depth=2, activation=name), kernels.nngp(X, Y, depth=2, activation=name)]
    blocks = []
    real = kernels_gram._general_block if name != "relu_normalized" else kernels_gram._relu_block

    def spy(*args):
        out = real(*args)
        blocks.append(out[0].shape)
        return out

    monkeypatch.setattr(kernels_gram, "_BLOCK_ENTRIES", 10)
    monkeypatch.setattr(kernels_quadrature, "_PAIR_ELEMS", 4)
    monkeypatch.setattr(kernels_gram, "_relu_block" if name == "relu_normalized"
                        else "_general_block", spy)
    chunked = [kernels.ntk(X, depth=2, activation=name),
               kernels.nngp(X, Y, depth=2, activation=name)]
    for a, b in zip(full, chunked):
        assert_close(b, a, rtol=1e-14)
    assert torch.equal(chunked[0], chunked[0].T)
    assert len(blocks) == 9 + 9 and all(b[0] * b[1] <= max(10, b[1]) for b in blocks)


@pytest.mark.parametrize("want, depth", [("ntk", 1), ("ntk", 3), ("nngp", 1), ("nngp", 3),
                                         ("terms", 1)])
def test_fast_relu_tiles_match_the_angle_route(want, depth, monkeypatch, gen):
    """Untracked ReLU inputs take ``relu_gram_fast``: same values as the autograd-ready route,
    for any tiling, with nearly parallel, antiparallel, duplicate and zero rows."""
    X = torch.randn(23, 4, generator=gen, dtype=F64)
    X[4] = X[2] * (1 + 1e-9)
    X[5] = -3 * X[1]
    X[6] = X[7]
    X[8] = 0.0
    X[9] = X[10] + 0.05 * X[11]            # |cos| just around FAST_NEAR_COS
    Y = torch.cat([X[:5] * 2, torch.randn(6, 4, generator=gen, dtype=F64)])
    fns = {"ntk": lambda *a: [kernels.ntk(*a, depth=depth)],
           "nngp": lambda *a: [kernels.nngp(*a, depth=depth)],
           "terms": lambda *a: list(kernels.ntk_terms(*a))}
    fn = fns[want]
    reference = [[M.detach() for M in fn(X.clone().requires_grad_(True), *args)]
                 for args in ((), (Y,))]
    scale = kernels.ntk(X, depth=depth).diagonal().sqrt()
    for tile in ((512, 512), (4, 3), (1, 1)):
        monkeypatch.setattr(kernels_gram, "_TILE", tile)
        for args, ref in zip(((), (Y,)), reference):
            got = fn(X, *args)
            for M, R in zip(got, ref):
                assert M.shape == R.shape and M.dtype == F64
                assert float(((M - R).abs() / (scale[:, None] + 1e-300)).max()) < 1e-14 * len(scale)
            if not args:
                assert all(torch.equal(M, M.T) for M in got)
                assert all(float(M[8].abs().max()) == 0.0 for M in got)


def test_fast_relu_route_is_taken_only_without_autograd(monkeypatch, gen):
    X = torch.randn(6, 3, generator=gen, dtype=F64)
    calls = []
    real = kernels_gram.relu_gram_fast
    monkeypatch.setattr(kernels_gram, "relu_gram_fast", lambda *a: calls.append(1) or real(*a))
    kernels.ntk(X)
    with torch.no_grad():
        kernels.ntk(X.clone().requires_grad_(True))
    assert len(calls) == 2
    kernels.ntk(X.clone().requires_grad_(True))
    torch.func.grad(lambda Z: kernels.ntk(Z).sum())(X)
    torch.func.jvp(lambda Z: kernels.ntk(Z), (X,), (X,))
    assert len(calls) == 2


@pytest.mark.parametrize("depth", [60, 300])
def test_deep_relu_kernels_keep_their_digits(depth, gen):
    """Layer cosines creep towards 1 with depth (theta_h ~ 3 pi / h): both routes stay within
    2e-14 of the 60-digit recursion, relative to sqrt(K(x, x) K(x~, x~))."""
    X = torch.randn(5, 3, generator=gen, dtype=F64)
    rows = X.tolist()
    for which in ("ntk", "nngp"):
        ref = torch.tensor([[float(_mp_kernel(x, y, "relu_normalized", depth, which)) for y in rows]
                            for x in rows], dtype=F64)
        scale = ref.diagonal().sqrt()
        fast = getattr(kernels, which)(X, depth=depth)
        slow = getattr(kernels, which)(X.clone().requires_grad_(True), depth=depth).detach()
        for route, K in (("fast", fast), ("angle", slow)):
            err = float(((K - ref).abs() / (scale[:, None] * scale[None, :])).max())
            assert err < 2e-14, f"{which}, depth {depth}, {route} route: {err:.1e}"


@pytest.mark.parametrize("dtype", [F64, F32])
def test_rows_of_extreme_magnitude_keep_relative_accuracy(dtype):
    """Subnormal and huge rows: |x| of a subnormal row is itself rounded to a few bits, so the
    ReLU kernels are taken by homogeneity on rescaled rows (K(a x, b x~) = a b K(x, x~))."""
    tiny = torch.finfo(dtype).tiny
    if dtype == F64:
        rows = [[6 * 2.0 ** -1074, 2.0 ** -1074], [1e150, 0.0], [2.0 ** -1040, -2.0 ** -1041],
                [1e-200, 3e-200], [0.3, -0.2]]
    else:
        rows = [[6 * 2.0 ** -149, 2.0 ** -149], [1e18, 0.0], [2.0 ** -130, -2.0 ** -131],
                [1e-20, 3e-20], [0.3, -0.2]]
    X = torch.tensor(rows, dtype=dtype)
    exact = [[float(v) for v in r] for r in X.double().tolist()]   # the values as stored
    for which, depth in itertools.product(("ntk", "nngp"), (1, 2)):
        for K in (getattr(kernels, which)(X, depth=depth),
                  getattr(kernels, which)(X.clone().requires_grad_(True), depth=depth).detach()):
            assert torch.isfinite(K).all()
            for i, j in itertools.product(range(len(rows)), repeat=2):
                ref = float(_mp_kernel(exact[i], exact[j], "relu_normalized", depth, which))
                got = float(K[i, j])
                if abs(ref) > 2 ** 20 * tiny:       # a normal number: full relative accuracy
                    assert abs(got - ref) <= VALUE_TOL[dtype] * abs(ref), (which, depth, i, j)
                else:                               # underflows: at most a few subnormal ulps
                    assert abs(got - ref) <= 2 ** 21 * tiny, (which, depth, i, j)


@pytest.mark.parametrize("dtype, a", [(F32, 4.9e-21), (F32, 2e-20), (F64, 5e-156)])
@pytest.mark.parametrize("depth", [1, 12])
def test_tiny_rows_whose_kernel_is_normal_keep_every_digit(dtype, a, depth):
    """m m~ = a^2 is subnormal here while K(x, x) = (L + 1) d a^2 (x = a 1, theta = 0 at every
    layer) is a normal number: the rescaled route never forms m m~."""
    d = 800
    X = torch.full((2, d), a, dtype=dtype)
    X[1] = -X[1]                                    # antiparallel: K = 0 at depth 1
    rows = X.double().tolist()
    ref = torch.tensor([[float(_mp_kernel(x, y, "relu_normalized", depth, "ntk")) for y in rows]
                        for x in rows], dtype=F64)
    assert float(X[0, 0]) ** 2 < torch.finfo(dtype).tiny < float(ref.diagonal().min())
    for K in (kernels.ntk(X, depth=depth),
              kernels.ntk(X.clone().requires_grad_(True), depth=depth).detach()):
        err = ((K.double() - ref).abs() / ref.diagonal().min()).max()
        assert float(err) <= VALUE_TOL[dtype], (depth, float(err))
        if depth == 1:
            assert float(K[0, 1]) == 0.0 == float(K[1, 0])


@pytest.mark.parametrize("dtype", [F64, F32])
def test_sin_kernel_of_large_nearly_parallel_inputs(dtype):
    """sin's first layer needs |x -+ x~|^2; from |x|^2 + |x~|^2 -+ 2 x.x~ it would lose
    |x|^2 eps (1e-8 in float64 at |x| = 1e4), so nearly (anti-)parallel pairs use x -+ x~."""
    X = torch.tensor([[1e4, 1e4], [1e4, 1e4 + 1e-2], [-1e4, -1e4 - 0.5], [0.0, 0.0],
                      [3.0, -4.0]], dtype=dtype)
    rows = X.double().tolist()
    for which, depth in itertools.product(("nngp", "ntk"), (1, 2)):
        ref = torch.tensor([[float(_mp_kernel(x, y, "sin", depth, which)) for y in rows]
                            for x in rows], dtype=F64)
        scale = ref.diagonal().sqrt()
        Z = X.clone().requires_grad_(True)
        K = getattr(kernels, which)(Z, activation="sin", depth=depth)
        (g,) = torch.autograd.grad(K.sum(), Z)
        assert torch.isfinite(g).all()
        for M in (K.detach(), getattr(kernels, which)(X, activation="sin", depth=depth)):
            err = ((M.double() - ref).abs() / (scale[:, None] * scale[None, :]).clamp_min(1e-300))
            assert float(err.max()) <= VALUE_TOL[dtype], (which, depth, float(err.max()))


@pytest.mark.parametrize("dtype, e", [(F32, 59.5), (F64, 507.5)])
def test_rows_whose_squared_norm_overflows_but_kernel_does_not(dtype, e):
    """|x|^2 = d m^2 beyond the dtype's range while K(x, x~) = O(|x| |x~|) is not: the
    value is returned accurately, not an overflow error (nor inf)."""
    X = torch.full((1, 784), 2.0 ** e, dtype=dtype)
    Y = torch.cat([torch.full((1, 784), 1e-3, dtype=dtype), torch.ones(1, 784, dtype=dtype)])
    Y[1, ::2] = -1.0
    for which in ("ntk", "nngp"):
        got = getattr(kernels, which)(X, Y, depth=2)
        ref = getattr(kernels, which)(X.double() / 2.0 ** e, Y.double(), depth=2) * 2.0 ** e
        assert torch.isfinite(got).all()
        assert_close(got.double(), ref, rtol=VALUE_TOL[dtype] * 10)


@pytest.mark.parametrize("dtype, big", [(F64, 1e160), (F32, 1e20)])
def test_kernel_overflow_is_an_error_not_inf(dtype, big):
    X = torch.tensor([[big, 0.0], [1.0, 1.0]], dtype=dtype)
    for X_ in (X, X.clone().requires_grad_(True)):
        with pytest.raises(ValueError, match=r"^X1: the kernel overflows .*rescale"):
            kernels.ntk(X_)
    with pytest.raises(ValueError, match=r"^X1, X2: the kernel overflows"):
        kernels.nngp(X, X[:1].clone())
    assert torch.isfinite(kernels.ntk(X / big)).all()


@pytest.mark.parametrize("as_numpy", [False, True], ids=["tensor", "numpy"])
def test_the_same_input_twice_is_the_symmetric_case(gen, as_numpy):
    X = torch.randn(40, 5, generator=gen, dtype=F64) * 7
    X = X.numpy() if as_numpy else X
    K = kernels.ntk(X, X, depth=2)
    assert torch.equal(K, K.T) and torch.equal(K, kernels.ntk(X, depth=2))
    assert_close(K, kernels.ntk(X, X.copy() if as_numpy else X.clone(), depth=2), rtol=1e-14)


def test_meta_tensors_are_refused_by_name():
    with pytest.raises(ValueError, match="^X1: expected a tensor holding data .*meta"):
        kernels.ntk(torch.ones(3, 2, device="meta"))


# ------------------------------------------------------------------------- precision policy


def test_full_precision_sets_and_restores(loose_precision):
    assert loose_precision["float32_matmul_precision"] == "medium"
    with precision.full_precision():
        inside = precision.settings()
        with precision.full_precision():
            pass
        assert precision.settings() == inside
    assert inside == {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False,
                      "float32_matmul_precision": "highest"}
    assert precision.settings() == loose_precision
    with pytest.raises(RuntimeError):
        with precision.full_precision():
            raise RuntimeError("boom")
    assert precision.settings() == loose_precision


def test_library_functions_run_under_the_policy(loose_precision):
    seen = []

    def phi(z):
        seen.append(precision.settings())
        return torch.tanh(z)

    probe = activations.Activation("probe", phi, lambda z: 1 - torch.tanh(z) ** 2,
                                   lambda z: z)
    X = torch.randn(3, 2, dtype=F32, generator=torch.Generator().manual_seed(0))
    kernels.ntk(X, activation=probe)
    net = network.ShallowNet(*network.init_params(2, 4, generator=torch.Generator().manual_seed(1),
                                                  dtype=F32), activation=probe)
    empirical.empirical_ntk(net, X)
    empirical.shallow_ntk(net.A.detach(), net.B.detach(), X, activation=probe)
    assert len(seen) >= 3
    assert all(s["float32_matmul_precision"] == "highest" and not s["cuda.matmul.allow_tf32"]
               for s in seen)
    assert precision.settings() == loose_precision


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree_with_tf32_allowed(loose_precision):
    g = torch.Generator().manual_seed(3)
    X = torch.randn(64, 8, generator=g, dtype=F32) * 3
    for name in ("relu_normalized", "erf", "tanh"):
        K_cpu = kernels.ntk(X, activation=name, depth=2)
        K_gpu = kernels.ntk(X.cuda(), activation=name, depth=2).cpu()
        assert_close(K_gpu, K_cpu, rtol=1e-5)
    net = network.ShallowNet(*network.init_params(8, 512, generator=g, dtype=F32))
    K_cpu = empirical.empirical_ntk(net, X)
    assert_close(empirical.empirical_ntk(net.cuda(), X.cuda()).cpu(), K_cpu, rtol=1e-5)
    K = kernels.ntk(X.double())
    y = torch.randn(64, generator=g, dtype=F64)
    pred = regression.kernel_regression(K, y, K[:5], ridge=1e-6)
    pred_gpu = regression.kernel_regression(K.cuda(), y.cuda(), K[:5].cuda(), ridge=1e-6)
    assert_close(pred_gpu.cpu(), pred, rtol=1e-8)


# ---------------------------------------------------------------------- regression numerics


def test_nearly_singular_relu_kernel_float32_is_refused_with_advice():
    """Near-duplicate training points make the ReLU NTK singular: float32 must refuse, not NaN."""
    x = torch.linspace(-1, 1, 15, dtype=F64)
    X = torch.stack([x, torch.ones_like(x)], 1)
    X = torch.cat([X, X[3:4] * (1 + 1e-9)])          # a near duplicate
    K = kernels.ntk(X, depth=2)
    y = torch.sin(3 * X[:, 0])
    with pytest.raises(ValueError, match=r"K_train:.*condition number.*ridge.*float64"):
        regression.kernel_regression(K.float(), y.float(), K.float())
    out = regression.kernel_regression(K, y, K, ridge=1e-8 * float(K.diagonal().mean()))
    assert torch.isfinite(out).all()


def test_indefinite_kernel_reports_negative_eigenvalue():
    K = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)
    with pytest.raises(ValueError, match=r"smallest eigenvalue -1\.000e\+00.*infinite"):
        regression.kernel_regression(K, torch.ones(2, dtype=F64), K)


def test_non_finite_predictions_are_refused():
    K = 1e-30 * torch.eye(3, dtype=F32)          # well conditioned, but alpha = 1e40 overflows
    y = torch.full((3,), 1e10, dtype=F32)
    with pytest.raises(ValueError, match="predictions are not finite.*float64"):
        regression.kernel_regression(K, y, torch.ones(2, 3, dtype=F32))
    out = regression.kernel_regression(K.double(), y.double(), torch.ones(2, 3, dtype=F64))
    assert torch.isfinite(out).all()


# ------------------------------------------------------------------ several outputs: sum/mean


def test_sum_over_outputs_is_c_times_mean(gen):
    """§9 convention: the scalar NTK is the mean over outputs of K_aa; the sum is c times it."""
    fast_ntk = pytest.importorskip("lecture_ntk.fast_ntk")
    c = 3
    net = network.ShallowNet.init(2, 64, c, generator=gen)
    X = torch.randn(5, 2, generator=gen, dtype=F64)
    K_sum = fast_ntk.mlp_ntk(net, X, output="trace", reduce="sum")
    K_mean = fast_ntk.mlp_ntk(net, X, output="trace", reduce="mean")
    assert_close(K_sum, c * K_mean, rtol=1e-15)
    J = empirical.jacobian(net, X)                     # (n, c, p)
    assert_close(K_sum, torch.einsum("iap,jap->ij", J, J), rtol=1e-13)
    full = empirical.empirical_ntk(net, X)             # (n, n, c, c)
    assert_close(K_mean, full.diagonal(dim1=2, dim2=3).mean(-1), rtol=1e-13)
