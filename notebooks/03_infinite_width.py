# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Theorem 1: the NTK at infinite width
#
# Lecture: §3, Theorem 1 and its proof, the remark on several outputs (FORMULAS.md §5, §6, §9).
#
# At initialisation the NTK of a finite network is random: it depends on the draw of $A$ and $B$.
# Theorem 1 says that, with the $1/\sqrt{k}$ scaling, it converges as the width $k \to \infty$ to
# a deterministic kernel built from the dual activation. What you will see:
# 1. empirical NTKs of networks of width 16 to 16384 approach
#    $K(\xi) = \check\phi(\xi) + \xi\,\check\phi'(\xi)$ on the unit sphere, for the scaled ReLU,
#    erf and tanh;
# 2. the error shrinks like $1/\sqrt{k}$ (slope $-1/2$ on log-log axes);
# 3. the limit splits into the NNGP term and a correction term, as Example 1 did at width 2;
# 4. a network with three outputs has one scalar kernel times the identity.

# %%
import math

import matplotlib.pyplot as plt
import torch

from lecture_ntk import activations, empirical, kernels, network, plots, scaling
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## From width $k$ to the limit
#
# For $f_x(w) = \frac{1}{\sqrt k} A\,\phi(Bx)$ the proof of Theorem 1 writes the kernel as two
# averages over the $k$ hidden units (FORMULAS.md §5):
# $$K_k(x, \tilde x) = \frac1k\sum_{i=1}^k \phi(B_i x)\,\phi(B_i\tilde x)
#   \;+\; x^\top\tilde x\;\frac1k\sum_{i=1}^k A_{1i}^2\,\phi'(B_i x)\,\phi'(B_i\tilde x).$$
# Each unit contributes an independent term, so by the law of large numbers the averages tend to
# their expectations. For $x, \tilde x$ on the unit sphere, $(B_i x, B_i\tilde x)$ is a Gaussian
# pair with correlation $\xi = x^\top\tilde x$ and $\mathbb E[A_{1i}^2] = 1$, hence
# $$K_k(x, \tilde x) \to \check\phi(\xi) + \xi\,\check{(\phi')}(\xi)
#   = \check\phi(\xi) + \xi\,\check\phi'(\xi),$$
# using that the dual of $\phi'$ is the derivative of the dual of $\phi$.
#
# We fix $x = e_1$ and move $\tilde x$ along a half circle, so that $\xi = \cos t$ sweeps
# $[-1, 1]$. The limits: closed forms for the ReLU (`kernels.relu_dual`, `drelu_dual`) and erf
# (`kernels.gaussian_expectations`), quadrature for tanh (`kernels.quadrature_dual`, applied to
# $\phi$ and to $\phi'$).

# %%
t = torch.linspace(0.0, math.pi, 61, dtype=torch.float64, device=device)
x0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64, device=device)
X_circle = torch.stack([torch.cos(t), torch.sin(t), torch.zeros_like(t)], dim=1)
xi = (x0 @ X_circle.T)[0]
d = 3


def erf_dual(xi):
    return kernels.gaussian_expectations("erf", 1.0, 1.0, xi)[0]


def erf_ddual(xi):
    return kernels.gaussian_expectations("erf", 1.0, 1.0, xi)[1]


tanh = activations.get("tanh")
duals = {"relu_normalized": (kernels.relu_dual, kernels.drelu_dual),
         "erf": (erf_dual, erf_ddual),
         "tanh": (lambda s: kernels.quadrature_dual(tanh, s),
                  lambda s: kernels.quadrature_dual(tanh.dphi, s))}
K_limit = {name: kernels.ntk_from_dual(dual, ddual, xi) for name, (dual, ddual) in duals.items()}
for name, K in K_limit.items():  # the same limit through the general recursion of kernels.ntk
    err = float((kernels.ntk(x0, X_circle, activation=name)[0] - K).abs().max())
    print(f"{name:>15}: Theorem 1 formula vs kernels.ntk, max difference < 1e-12: {err < 1e-12}")
    assert err < 1e-12

# %% [markdown]
# For tanh the derivative of the dual is computed as the dual of $\phi' = 1 - \tanh^2$. That
# differentiation and the dual commute can be checked directly: autograd through the quadrature
# of $\check\phi$ gives the quadrature of $\check{(\phi')}$.

# %%
xi_inner = torch.linspace(-0.95, 0.95, 39, dtype=torch.float64, device=device).requires_grad_(True)
(slope,) = torch.autograd.grad(kernels.quadrature_dual(tanh, xi_inner).sum(), xi_inner)
err = float((slope - kernels.quadrature_dual(tanh.dphi, xi_inner.detach())).abs().max())
print(f"tanh: max |d dual / d xi - dual of phi'| < 1e-10: {err < 1e-10}")
assert err < 1e-10

# %% [markdown]
# Now the finite networks. For each activation, width $k \in \{16, 64, \dots, 16384\}$ and 16
# seeds we draw $A, B$ with `network.init_params` and compute the $13 \times 13$ kernel matrix
# $K_k$ of 13 points of the half circle with the closed form of §5 (`empirical.shallow_ntk`).
# The error of one draw is the relative distance $\|K_k - K\|_F / \|K\|_F$ to the limit
# (`kernels.ntk`, checked against Theorem 1 above); we report its root mean square over the
# seeds, since one draw is noisy.

# %%
widths = [16, 64, 256, 1024, 4096, 16384]
seeds = range(16)
X_err = X_circle[::5]                      # 13 of the 61 points
errors = {}
for name in K_limit:
    K = kernels.ntk(X_err, activation=name)
    errors[name] = []
    for k in widths:
        sq = []
        for seed in seeds:
            A, B = network.init_params(d, k, generator=dev.make_generator(seed), device=device)
            K_k = empirical.shallow_ntk(A, B, X_err, activation=name)
            sq.append(float(torch.linalg.norm(K_k - K) / torch.linalg.norm(K)) ** 2)
        errors[name].append(math.sqrt(sum(sq) / len(sq)))
for name, err in errors.items():
    print(f"{name:>15}: RMS relative error at k = 16: {err[0]:.2f}, at k = 16384: {err[-1]:.3f}")

# %% tags=["figure:ntk_rows_by_width"]
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, name in zip(axes, K_limit):
    curves = {}
    for k in (16, 256, 16384):               # seed 0 of each width, on all 61 points
        A, B = network.init_params(d, k, generator=dev.make_generator(0), device=device)
        curves[f"k = {k}, seed 0"] = empirical.shallow_ntk(A, B, x0, X_circle, activation=name)[0]
    curves["limit (Theorem 1)"] = K_limit[name]
    plots.plot_curves(xi, curves, ax=ax, xlabel="xi = x^T x~", ylabel="K(x, x~)", title=name,
                      styles={"limit (Theorem 1)": {"color": "k", "lw": 2, "ls": "--"}})
plt.show()

# %% [markdown]
# At width 16 the kernel of one draw wanders around the limit (the ReLU's even jumps wherever
# one of its 16 units switches on or off along the circle, since $\phi'$ is a step); at width
# 16384 it is hard to tell apart from the limit. How fast? The fluctuation of an average of $k$
# independent terms is of order $1/\sqrt k$, so on log-log axes the error should fall along a
# line of slope $-1/2$.

# %%
slopes = {name: scaling.loglog_slope(widths, err) for name, err in errors.items()}
for name, slope in slopes.items():
    print(f"{name:>15}: fitted slope of error vs width = {slope:.2f}   (theory -0.5)")
    assert -0.65 < slope < -0.35

# %% tags=["figure:ntk_error_vs_width"]
ax = plots.plot_loglog(widths, errors, xlabel="width k",
                       ylabel="relative error of K_k (RMS over 16 seeds)",
                       title="empirical NTK -> infinite-width NTK", ref_slope=-0.5,
                       ref_label="slope -1/2")
plt.show()

# %% [markdown]
# ## Two terms: NNGP and correction
#
# The two averages of $K_k$ have separate limits: the first (training $A$ only) tends to the NNGP
# $\check\phi(\xi)$, the second (from training $B$) to $\xi\,\check\phi'(\xi)$.
# `kernels.ntk_terms` returns both limits; `empirical.shallow_ntk_terms` the two finite sums.
# For the scaled ReLU at width 16384:

# %%
nngp_limit, correction_limit = kernels.ntk_terms(x0, X_circle)
err_sum = float((nngp_limit + correction_limit - K_limit["relu_normalized"]).abs().max())
print(f"NNGP term + correction term = NTK, max difference < 1e-14: {err_sum < 1e-14}")
assert err_sum < 1e-14
A, B = network.init_params(d, 16384, generator=dev.make_generator(0), device=device)
nngp_k, correction_k = empirical.shallow_ntk_terms(A, B, x0, X_circle)
for label, finite, limit in (("NNGP term", nngp_k[0], nngp_limit[0]),
                             ("correction", correction_k[0], correction_limit[0])):
    err = float((finite - limit).abs().max())
    print(f"{label:>11}: max |width 16384 - limit| = {err:.3f}")
    assert err < 0.05

# %% tags=["figure:ntk_terms"]
ax = plots.plot_curves(
    xi, {"NNGP term, limit": nngp_limit[0], "correction term, limit": correction_limit[0],
         "NNGP term, k = 16384": nngp_k[0], "correction term, k = 16384": correction_k[0]},
    xlabel="xi = x^T x~", ylabel="kernel value", title="sqrt(2)-ReLU: the two terms of the NTK",
    styles={"NNGP term, k = 16384": {"ls": "", "marker": ".", "color": "C0"},
            "correction term, k = 16384": {"ls": "", "marker": ".", "color": "C1"}})
plt.show()

# %% [markdown]
# The correction term is $\xi$ times the dual of $\phi'$: it vanishes for orthogonal inputs, is
# negative for $\xi < 0$ and equals the NNGP term at $\xi = 1$. So training the hidden layer
# doubles the kernel on the diagonal ($K(x, x) = 2$) and lowers it, below zero, for opposed
# inputs.
#
# ## Several outputs share one kernel
#
# With $c$ outputs, $f_x(w) = \frac{1}{\sqrt k} A\,\phi(Bx)$ with $A \in \mathbb R^{c\times k}$, the
# NTK is a $c \times c$ matrix for every pair of inputs,
# $K_{ab}(x, \tilde x) = \langle \nabla f_{a,x}, \nabla f_{b,\tilde x}\rangle$. Output $a$ only
# depends on row $a$ of $A$, so the NNGP part is diagonal; the correction part is
# $x^\top\tilde x\,\frac1k\sum_i A_{ai}A_{bi}\,\phi'(B_ix)\phi'(B_i\tilde x)$, whose off-diagonal
# entries average terms of mean zero. In the limit $K_{ab} = K\,\delta_{ab}$ with the scalar $K$ of
# Theorem 1, so kernel regression with $c$ outputs uses one $n \times n$ kernel matrix for all
# of them. We check this with autograd (`empirical.empirical_ntk`) on 5 inputs, $c = 3$.

# %%
X5 = X_circle[::15]                                   # 5 points on the half circle
K_scalar = kernels.ntk(X5)
stats = {}
for k in (256, 4096):
    model = network.ShallowNet.init(d, k, 3, generator=dev.make_generator(1), device=device)
    K_blocks = empirical.empirical_ntk(model, X5)      # (5, 5, 3, 3)
    diag = K_blocks.diagonal(dim1=2, dim2=3)           # (5, 5, 3): K_aa
    off = K_blocks - torch.diag_embed(diag)            # entries a != b
    stats[k] = (float((diag - K_scalar[:, :, None]).abs().max()), float(off.abs().max()))
    print(f"k = {k:>4}: max |K_aa - K| = {stats[k][0]:.3f},  max |K_ab| (a != b) = "
          f"{stats[k][1]:.3f},  (max K = {float(K_scalar.max()):.1f})")
assert stats[4096][0] < 0.25 and stats[4096][1] < 0.1
assert stats[4096][0] < stats[256][0] / 2 and stats[4096][1] < stats[256][1] / 2

# %% [markdown]
# Both deviations shrink with the width, roughly by $\sqrt{16} = 4$ from $k = 256$ to $4096$:
# the $3\times 3$ blocks approach $K(x, \tilde x)\,I_3$. (The lecture notes that this is special to
# this architecture; e.g. for fully convolutional networks the outputs do not decouple.)
#
# ## Summary
#
# - At finite width the NTK is a random kernel: an average over hidden units of an NNGP-like
#   term and a correction from training $B$.
# - As $k \to \infty$ it converges to $K(\xi) = \check\phi(\xi) + \xi\,\check\phi'(\xi)$ on the
#   sphere (Theorem 1): closed forms for the ReLU and erf, quadrature for tanh; the derivative of
#   the dual equals the dual of $\phi'$.
# - The error falls like $1/\sqrt k$: fitted slopes near $-1/2$ for all three activations.
# - The two terms converge separately (`kernels.ntk_terms`); with $c$ outputs the kernel is
#   $K\,I_c$ with the same scalar $K$.
#
# ## Exercises
#
# See `exercises/` (infinite-width NTK): compute the dual of another activation (e.g. sin or
# softplus) by quadrature, check Theorem 1 against wide networks, and measure the $1/\sqrt k$ rate.
