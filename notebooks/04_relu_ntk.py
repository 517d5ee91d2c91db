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
# # 04 · Example 2: the ReLU NTK in closed form
#
# Lecture: §3, Example 2 and the Remarks after Theorem 1 (FORMULAS.md §6-§8).
#
# For the scaled ReLU $\phi(z) = \sqrt2\max(0, z)$ the dual activation has a closed form, and so
# does the infinite-width NTK. What you will see:
# 1. $\check\phi$, $\check\phi'$ and $K = \check\phi + \xi\check\phi'$ on $[-1, 1]$, with the values
#    $K(1) = 2$, $K(0) = 1/\pi$, $K(-1) = 0$;
# 2. the closed forms agree with Monte Carlo averages over Gaussian pairs $(u, v)$;
# 3. off the unit sphere the ReLU kernel is the sphere value times $\|x\|\,\|\tilde x\|$ (the
#    homework of §8), which fails for a non-homogeneous activation such as erf.

# %%
import math

import matplotlib.pyplot as plt
import torch

from lecture_ntk import activations, kernels, plots
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## Three functions of one number
#
# On the unit sphere everything depends on $x$ and $\tilde x$ only through $\xi = x^\top\tilde x$.
# With $\theta = \arccos\xi$, the angle between the two inputs,
# $$\check\phi(\xi) = \frac{1}{\pi}\Big(\xi\,(\pi - \arccos\xi) + \sqrt{1-\xi^2}\Big), \qquad
#   \check\phi'(\xi) = \frac{\pi - \arccos\xi}{\pi}, \qquad
#   K(\xi) = \check\phi(\xi) + \xi\,\check\phi'(\xi).$$
# The first is the NNGP of the ReLU network, the second is the dual of $\phi'$ (a step function:
# $\check\phi'(\xi)$ is twice the probability that both $u$ and $v$ are positive), and $K$ is
# Theorem 1's NTK. `kernels.relu_dual`, `kernels.drelu_dual` and `kernels.relu_ntk` compute them.

# %%
xi = torch.linspace(-1.0, 1.0, 401, dtype=torch.float64, device=device)
dual, ddual, K = kernels.relu_dual(xi), kernels.drelu_dual(xi), kernels.relu_ntk(xi)
special = {"K(1)": (kernels.relu_ntk(1.0), 2.0), "K(0)": (kernels.relu_ntk(0.0), 1 / math.pi),
           "K(-1)": (kernels.relu_ntk(-1.0), 0.0), "dual(1)": (kernels.relu_dual(1.0), 1.0)}
for name, (value, expected) in special.items():
    print(f"{name:>7} = {float(value):.6f}   (expected {expected:.6f})")
    assert abs(float(value) - expected) < 1e-15

# %% tags=["figure:relu_dual_and_ntk"]
ax = plots.plot_curves(xi, {"dual (NNGP)": dual, "derivative of the dual": ddual,
                            "NTK K = dual + xi * derivative": K},
                       xlabel="xi = x^T x~", ylabel="kernel value",
                       title="sqrt(2)-ReLU on the unit sphere (Example 2)")
plt.show()

# %% [markdown]
# The dual and its derivative increase from 0 to 1: the more aligned two inputs are, the more
# hidden units they share. At $\xi = 1$ (the same input twice) both terms of $K$ equal 1; at
# $\xi = -1$ the two inputs never switch on the same unit and both vanish. The NTK itself is
# not monotone: its second term $\xi\,\check\phi'(\xi)$ is negative for $\xi < 0$, and for
# strongly opposed inputs it outweighs the first, so $K$ dips below zero (minimum about
# $-0.14$ near $\xi \approx -0.79$) before returning to $0$ at $\xi = -1$.
#
# The derivative $\check\phi'$ has infinite slope at $\xi = \pm 1$ (like $\arccos$); the
# library evaluates it as $\operatorname{atan2}\big(\sqrt{(1-\xi)(1+\xi)}, -\xi\big)/\pi$ and keeps
# values and gradients
# finite there (see the `Numerics:` note of `kernels.relu_dual`).

# %%
i_min = int(K.argmin())
negative = xi[K < 0]
print(f"min K = {float(K[i_min]):.3f} at xi = {float(xi[i_min]):.3f}; on the grid K < 0 from "
      f"xi = {float(negative.min()):.3f} to {float(negative.max()):.3f}")
assert abs(float(K[i_min]) + 0.137) < 1e-3 and abs(float(xi[i_min]) + 0.79) < 0.01
assert bool((torch.diff(dual) >= 0).all()) and bool((torch.diff(ddual) >= 0).all())

# %% [markdown]
# The middle curve really is the derivative of the first: autograd of `relu_dual` matches
# `drelu_dual` everywhere on the grid, endpoints included.

# %%
xi_grad = xi.clone().requires_grad_(True)
(slope,) = torch.autograd.grad(kernels.relu_dual(xi_grad).sum(), xi_grad)
err = float((slope - ddual).abs().max())
print(f"max |d dual / d xi - drelu_dual| on the grid < 1e-13: {err < 1e-13}")
assert err < 1e-13

# %% [markdown]
# ## Monte Carlo check
#
# The dual is an expectation over a Gaussian pair with correlation $\xi$:
# $\check\phi(\xi) = \mathbb E[\phi(u)\phi(v)]$ with $(u, v) \sim N\big(0, [[1, \xi], [\xi, 1]]\big)$,
# i.e. $u = z_1$, $v = \xi z_1 + \sqrt{1-\xi^2}\, z_2$ for independent standard normals. We
# average $10^6$ draws at a few values of $\xi$ and compare with the closed forms, in units of
# the Monte Carlo standard error.

# %%
phi = activations.get("relu_normalized")
xi_mc = torch.tensor([-0.9, -0.5, 0.0, 0.5, 0.9], dtype=torch.float64, device=device)
z = dev.randn(10 ** 6, 2, generator=gen, device=device)
u = z[:, :1]
v = xi_mc * z[:, :1] + torch.sqrt(1 - xi_mc ** 2) * z[:, 1:]      # (draws, 5)
samples = {"dual": phi(u) * phi(v), "derivative": phi.dphi(u) * phi.dphi(v)}
samples["NTK"] = samples["dual"] + xi_mc * samples["derivative"]
closed = {"dual": kernels.relu_dual(xi_mc), "derivative": kernels.drelu_dual(xi_mc),
          "NTK": kernels.relu_ntk(xi_mc)}
mc_mean = {name: s.mean(0) for name, s in samples.items()}
for name, s in samples.items():
    z_scores = (mc_mean[name] - closed[name]) / (s.std(0) / math.sqrt(s.shape[0]))
    zmax = float(z_scores.abs().max())
    print(f"{name:>10}: largest |closed form - Monte Carlo| = {zmax:.1f} standard errors (< 5)")
    assert zmax < 5

# %% tags=["figure:relu_ntk_monte_carlo"]
ax = plots.plot_curves(xi, {"dual (NNGP)": dual, "NTK": K}, xlabel="xi = x^T x~",
                       ylabel="kernel value", title="closed forms (lines) and Monte Carlo (dots)")
plots.plot_curves(xi_mc, {"Monte Carlo, dual": mc_mean["dual"], "Monte Carlo, NTK": mc_mean["NTK"]},
                  ax=ax, xlabel="xi = x^T x~", ylabel="kernel value",
                  title="closed forms (lines) and Monte Carlo (dots)",
                  styles={"Monte Carlo, dual": {"ls": "", "marker": "o", "color": "C0"},
                          "Monte Carlo, NTK": {"ls": "", "marker": "o", "color": "C1"}})
plt.show()

# %% [markdown]
# ## Off the sphere
#
# The ReLU is positively homogeneous, $\phi(c z) = c\,\phi(z)$ for $c > 0$, and so is $\phi'$ of
# degree 0. Writing $x = \|x\|\hat x$, the pre-activations $u = w^\top x$ are $\|x\|$ times those
# of $\hat x$, so for any nonzero inputs
# $$K(x, \tilde x) = \|x\|\,\|\tilde x\|\; K_{\text{sphere}}(\cos\theta), \qquad
#   \cos\theta = \frac{x^\top\tilde x}{\|x\|\,\|\tilde x\|},$$
# and the same for the NNGP; a zero input gives a zero row. `kernels.ntk` takes inputs of any
# norm and computes this through the general Gaussian expectations of FORMULAS.md §12, not
# through the shortcut: below, the two routes agree.

# %%
X = dev.randn(6, 5, generator=gen, device=device)
X = X * torch.logspace(-2, 2, 6, dtype=torch.float64, device=device)[:, None]  # norms 0.01 .. 100
X[3] = 0.0                                                               # and one zero input
norms = X.norm(dim=1)
safe = torch.where(norms > 0, norms, torch.ones_like(norms))
cos = (X / safe[:, None]) @ (X / safe[:, None]).T
cos.diagonal().fill_(1.0)  # rounding may leave 1 - 1e-16 on the diagonal
K_shortcut = torch.outer(norms, norms) * kernels.relu_ntk(cos)
K_general = kernels.ntk(X)
err = float((K_general - K_shortcut).abs().max() / K_general.abs().max())
print(f"norms from {float(norms[norms > 0].min()):.2g} to {float(norms.max()):.2g}; "
      f"relative difference of the two routes < 1e-14: {err < 1e-14}")
print(f"row of the zero input is exactly zero: {bool((K_general[3] == 0).all())}")
assert err < 1e-14 and bool((K_general[3] == 0).all())

# %% [markdown]
# Scaling one input by $c$ scales its row by $c$, at any norm. A Monte Carlo check off the
# sphere: the NTK of one hidden unit with weight $w \sim N(0, I)$ is
# $\phi(w^\top x)\phi(w^\top\tilde x) + x^\top\tilde x\,\phi'(w^\top x)\phi'(w^\top\tilde x)$, and
# its average over $10^6$ units should match `kernels.ntk`.

# %%
x_pair = X[[0, 4]]                                  # a short and a long input
print(f"norms of the pair: {float(norms[0]):.2g} and {float(norms[4]):.2g}")
W = dev.randn(10 ** 6, 5, generator=gen, device=device)
U = W @ x_pair.T
unit_ntk = (phi(U[:, 0]) * phi(U[:, 1])
            + float(x_pair[0] @ x_pair[1]) * phi.dphi(U[:, 0]) * phi.dphi(U[:, 1]))
z_score = float((unit_ntk.mean() - K_general[0, 4]) / (unit_ntk.std() / math.sqrt(10 ** 6)))
print(f"|kernels.ntk - Monte Carlo| = {abs(z_score):.1f} standard errors (< 5)")
assert abs(z_score) < 5
for c in (1e-3, 7.0, 1e3):
    ratio = kernels.ntk(c * x_pair[:1], x_pair[1:]) / kernels.ntk(x_pair[:1], x_pair[1:])
    print(f"scale x by {c:g}: K scales by {float(ratio):.6g}")
    assert abs(float(ratio) / c - 1) < 1e-13

# %% [markdown]
# For an activation that is not homogeneous there is no such shortcut: the variances
# $\|x\|^2$ and $\|\tilde x\|^2$ enter the Gaussian expectation on their own. With erf, doubling
# both inputs does not multiply the kernel by 4 (and $K(x, x)$ is not $\|x\|^2 K(1)$).

# %%
x1 = torch.nn.functional.normalize(X[:1], dim=1)
ratios = {name: float(kernels.ntk(2 * x1, activation=name) / kernels.ntk(x1, activation=name))
          for name in ("relu_normalized", "erf")}
for name, ratio in ratios.items():
    print(f"{name:>15}: K(2x, 2x) / K(x, x) = {ratio:.4f}")
assert abs(ratios["relu_normalized"] - 4) < 1e-13 and abs(ratios["erf"] - 4) > 0.5

# %% [markdown]
# ## Summary
#
# - For $\phi(z) = \sqrt2\max(0, z)$ on the unit sphere the NNGP is
#   $\check\phi(\xi) = \frac1\pi(\xi(\pi - \arccos\xi) + \sqrt{1-\xi^2})$, its derivative is
#   $\frac1\pi(\pi - \arccos\xi)$, and the NTK is $K = \check\phi + \xi\check\phi'$:
#   $K(1) = 2$, $K(0) = 1/\pi$, $K(-1) = 0$.
# - Monte Carlo averages over $10^6$ Gaussian pairs agree with all three within a few standard
#   errors.
# - Off the sphere the ReLU kernel is $\|x\|\,\|\tilde x\|$ times the sphere value at the cosine of
#   the angle; `kernels.ntk` handles any norm (and zero inputs). A non-homogeneous activation
#   such as erf has no such shortcut.
#
# ## Exercises
#
# See `exercises/` (ReLU NTK off the sphere): derive the off-sphere NTK of the ReLU network from
# homogeneity, then check it against `kernels.ntk` and against a wide network's empirical NTK.
