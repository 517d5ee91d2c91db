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
# # 05 · The Hessian shrinks with width: why wide networks are almost linear
#
# Lecture: §4, Proposition 1 and Appendix A (FORMULAS.md §10, §13).
#
# What you will see:
# 1. the Hessian of $f_x(w)$ with respect to the weights, from autograd, is the sparse matrix of
#    Proposition 1, and its eigenvalues are the closed-form pairs of Appendix A (to $10^{-10}$);
# 2. its spectral norm falls like $1/\sqrt{k}$ with the width $k$, while the NTK $K(x, x)$
#    stays of order one;
# 3. as a consequence, gradient descent on a wide network barely moves the weights and the
#    kernel, and the wider the network, the less they move.

# %%
import matplotlib.pyplot as plt
import torch

from lecture_ntk import hessian, network, plots, scaling
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## The Hessian of a one-hidden-layer network
#
# Take a scalar input ($d = 1$) and $f_x(w) = \frac{1}{\sqrt k} \sum_{i=1}^k A_{1i}\,\phi(B_i x)$,
# with $w = (A_{11}, \dots, A_{1k}, B_1, \dots, B_k)$. Unit $i$ only involves $A_{1i}$ and $B_i$, so a
# second derivative that mixes two different units is zero, and so is $\partial^2 f / \partial A_{1i}^2$
# (the network is linear in $A$). What is left:
# $$\frac{\partial^2 f}{\partial A_{1i}\,\partial B_i} = b_i = \frac{\phi'(B_i x)\,x}{\sqrt k},
# \qquad \frac{\partial^2 f}{\partial B_i^2} = c_i = \frac{A_{1i}\,\phi''(B_i x)\,x^2}{\sqrt k}.$$
# `hessian.hessian` differentiates the network twice with `torch.func` (it knows nothing of these
# formulas); `hessian.block_hessian` places $b_i$ and $c_i$ by hand. We need $\phi''$, so we use a
# smooth activation, $\tanh$.

# %%
k, x = 6, 0.8
A, B = network.init_params(1, k, generator=gen, device=device)
H_auto = hessian.hessian(A, B, x, activation="tanh")
H_hand = hessian.block_hessian(A, B, x, activation="tanh")
err = float((H_auto - H_hand).abs().max())
print(f"H is {H_auto.shape[0]} x {H_auto.shape[1]}; max |H_autograd - H_closed_form| < 1e-12: {err < 1e-12}")
assert err < 1e-12

# %% [markdown]
# In the lecture's order ($A$ first, then $B$) the nonzero entries sit on two off-diagonals and on
# the lower-right diagonal. Listing the weights in pairs $(A_{11}, B_1), (A_{12}, B_2), \dots$
# (`hessian.pair_order`) turns $H$ into a block-diagonal matrix of $k$ blocks
# $\begin{pmatrix} 0 & b_i \\ b_i & c_i \end{pmatrix}$.

# %% tags=["figure:hessian_blocks"]
perm = hessian.pair_order(k).to(device)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
plots.plot_matrix(H_auto, ax=axes[0], title="H in the lecture's order (A, then B)", cmap="RdBu_r")
plots.plot_matrix(H_auto[perm][:, perm], ax=axes[1], title="H with the pairs (A_1i, B_i) together",
                  cmap="RdBu_r")
vmax = float(H_auto.abs().max())
for ax in axes:
    ax.images[0].set_clim(-vmax, vmax)  # white = 0
plt.show()

# %% [markdown]
# ## Its eigenvalues in closed form (Appendix A)
#
# The eigenvalues of a block-diagonal matrix are those of its blocks. The block of unit $i$ has
# trace $c_i$ and determinant $-b_i^2$, hence the pair
# $$\lambda_{i,\pm} = \frac{c_i \pm \sqrt{c_i^2 + 4 b_i^2}}{2},$$
# one eigenvalue $\le 0$ and one $\ge 0$ per unit: $2k$ eigenvalues, all of them. Below,
# `torch.linalg.eigvalsh` of the autograd Hessian against `hessian.block_eigenvalues`, for four
# smooth activations and a wider network.

# %%
A, B = network.init_params(1, 40, generator=gen, device=device)
for name in ["tanh", "softplus", "sin", "erf"]:
    eig_auto = torch.linalg.eigvalsh(hessian.hessian(A, B, x, activation=name))
    eig_pairs = hessian.block_eigenvalues(A, B, x, activation=name).reshape(-1).sort().values
    err = float((eig_auto - eig_pairs).abs().max())
    print(f"{name:>8}: max |eigvalsh - closed form| < 1e-10: {err < 1e-10}")
    assert err < 1e-10

# %% [markdown]
# The spectral norm is the largest $|\lambda|$:
# $$\|H\|_2 = \max_i \frac{|c_i| + \sqrt{c_i^2 + 4 b_i^2}}{2}.$$
# The lecture writes this with $c_i$ instead of $|c_i|$; that is the same when $c_i \ge 0$, but when
# $c_i < 0$ the negative eigenvalue of the block is the larger one in size, so we keep the absolute value.
# For ReLU, $\phi'' = 0$ away from the kink, so $c_i = 0$ and the pairs are just $\pm |b_i|$.

# %%
norm_auto = float(torch.linalg.matrix_norm(hessian.hessian(A, B, x, activation="tanh"), 2))
norm_closed = float(hessian.spectral_norm(A, B, x, activation="tanh"))
print(f"||H||_2 = {norm_closed:.4f} (closed form) vs {norm_auto:.4f} (autograd)")
assert abs(norm_auto - norm_closed) < 1e-10

# %% [markdown]
# ## $\|H\|_2 = O(1/\sqrt k)$ while $K(x, x) = O(1)$
#
# Both $b_i$ and $c_i$ carry a factor $1/\sqrt k$, and $\|H\|_2$ is a *maximum* over units of a
# quantity of order one, so it falls like $1/\sqrt k$. The NTK
# $K(x, x) = \frac1k\sum_i \phi(B_i x)^2 + x^2\,\frac1k\sum_i A_{1i}^2\,\phi'(B_i x)^2$ is an *average*
# over units instead, and settles to a constant. The Hessian is governed by the largest single
# gradient entry, the kernel by the squared length of the whole gradient.
#
# One caveat. Proposition 1 assumes bounded weights. With the $N(0, 1)$ weights of Theorem 1,
# the largest of $k$ values $|A_{1i}|$ grows like $\sqrt{2\log k}$, so $\|H\|_2$ behaves like
# $\sqrt{\log k / k}$ and the fitted slope comes out a little above $-1/2$. We show both: Gaussian
# weights, and weights drawn uniformly from $[-\sqrt3, \sqrt3]$ (also mean 0 and variance 1, but
# bounded). `hessian.norm_vs_width` averages 20 networks per width at the input $x = 1$.

# %%
widths = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
res = {init: hessian.norm_vs_width(widths, 1.0, activation="tanh", generator=gen, num_draws=20,
                                   init=init, device=device)
       for init in ["uniform", "gaussian"]}
log_k = torch.log(res["gaussian"]["widths"].double())
slope_uniform = scaling.loglog_slope(widths, res["uniform"]["norm_mean"])
slope_gauss = scaling.loglog_slope(widths, res["gaussian"]["norm_mean"])
slope_gauss_log = scaling.loglog_slope(widths, res["gaussian"]["norm_mean"].cpu() / log_k.sqrt())
print(f"slope of ||H||_2, bounded weights:           {slope_uniform:.2f}")
print(f"slope of ||H||_2, Gaussian weights:          {slope_gauss:.2f}")
print(f"slope of ||H||_2 / sqrt(log k), Gaussian:    {slope_gauss_log:.2f}")
assert abs(slope_uniform + 0.5) < 0.05 and abs(slope_gauss_log + 0.5) < 0.05
assert -0.5 < slope_gauss < -0.3
ntk = res["gaussian"]["ntk_mean"]
print(f"K(x, x) over all widths: between {float(ntk.min()):.2f} and {float(ntk.max()):.2f}")
assert 0.7 < float(ntk.min()) and float(ntk.max()) < 1.0

# %% tags=["figure:hessian_norm_vs_width"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
plots.plot_loglog(widths, {"bounded weights": res["uniform"]["norm_mean"],
                           "Gaussian weights": res["gaussian"]["norm_mean"]},
                  ax=axes[0], xlabel="width k", ylabel="mean ||H||_2", ref_slope=-0.5,
                  title="Hessian norm at initialisation, x = 1")
mean, std = res["gaussian"]["ntk_mean"], res["gaussian"]["ntk_std"]
plots.plot_curves(widths, {"mean K(x, x)": mean, "mean +- std": mean + std, "_lower": mean - std},
                  ax=axes[1], xlabel="width k", ylabel="K(x, x)", title="NTK at initialisation, x = 1",
                  styles={"mean +- std": {"color": "gray", "ls": ":"},
                          "_lower": {"color": "gray", "ls": ":"}})
axes[1].set_xscale("log")
axes[1].set_ylim(0, 1.6)
plt.show()

# %% [markdown]
# ## Consequence: training hardly moves a wide network
#
# If the Hessian is small on a ball around $w_0$, the gradient $\nabla f_x(w)$, and with it the
# kernel, changes little as long as $w$ stays in that ball; and for wide networks gradient descent
# does reach a fit without leaving it (§4, points 1 to 3). We check this directly. Eight inputs
# $x \sim U[-1, 1]$, each with a constant second coordinate (a bias), targets $y = \sin(3x)$, and
# networks of widths 16 to 4096 (3 draws each) trained by full-batch gradient descent on
# $L = \frac12\sum_i (y_i - f(x_i))^2$ with the same learning rate 0.1 and 300 steps.
# `hessian.training_drift` reports the relative change of the weights $|w_T - w_0| / |w_0|$ and
# of the empirical NTK on the training inputs $\|K_T - K_0\|_F / \|K_0\|_F$.

# %%
x_train = 2 * dev.rand(8, 1, generator=gen, device=device) - 1
X = torch.cat([x_train, torch.ones_like(x_train)], dim=1)
y = torch.sin(3 * x_train[:, 0])
drift_widths = [16, 64, 256, 1024, 4096]
drift = hessian.training_drift(drift_widths, X, y, activation="tanh", generator=gen, lr=0.1,
                               num_steps=300, num_draws=3)

# %%
weight, kernel = drift["weight_change"].mean(1), drift["kernel_change"].mean(1)
print("    k   |w-w0|/|w0|   |K-K0|/|K0|   loss at w0   loss after 300 steps")
for j, k in enumerate(drift_widths):
    print(f"{k:5d}   {float(weight[j]):11.2g}   {float(kernel[j]):11.2g}   "
          f"{float(drift['loss0'][j].mean()):10.2g}   {float(drift['loss'][j].mean()):20.2g}")
slope_w, slope_K = scaling.loglog_slope(drift_widths, weight), scaling.loglog_slope(drift_widths, kernel)
print(f"fitted slopes: weights {slope_w:.1f}, kernel {slope_K:.1f}")
assert bool((weight[1:] < weight[:-1]).all()) and bool((kernel[1:] < kernel[:-1]).all())
assert -0.6 < slope_w < -0.4 and slope_K < -0.4
assert float(weight[-1]) < 0.05 and float(kernel[-1]) < 0.01
assert bool((drift["loss"].mean(1) < 0.05 * drift["loss0"].mean(1)).all())

# %% tags=["figure:linearisation_drift"]
curves = {"weights |w - w0| / |w0|": weight, "kernel ||K - K0|| / ||K0||": kernel}
ax = plots.plot_loglog(drift_widths, curves,
                       xlabel="width k", ylabel="relative change after training", ref_slope=-0.5,
                       title="How far gradient descent moves w and the NTK")
plt.show()

# %% [markdown]
# Every width fits the eight points about equally well, yet at $k = 4096$ the weights moved by a
# few percent of their length and the kernel by a fraction of a percent. The weight change falls
# like $1/\sqrt k$, as predicted: $|w_T - w_0|$ stays of order one while $|w_0| \approx \sqrt{3k}$.
# The kernel moves even less than the bound $\|H\|_2\,|w_T - w_0| = O(1/\sqrt k)$ suggests (the
# fitted slope is steeper than $-1/2$): the many small weight changes partly cancel in the average
# that defines $K$. This is why, for wide networks, training the network and training its
# linearisation (notebook 01) give nearly the same function.

# %% [markdown]
# ## Summary
#
# - For $d = 1$ the Hessian of $f_x(w)$ is block diagonal in the pairs $(A_{1i}, B_i)$, with blocks
#   $\begin{pmatrix} 0 & b_i \\ b_i & c_i \end{pmatrix}$; autograd and the closed form agree entry by entry,
#   and so do the eigenvalues $\tfrac12\big(c_i \pm \sqrt{c_i^2 + 4b_i^2}\big)$.
# - $\|H\|_2$ is a maximum over units of $1/\sqrt k$-sized terms: slope $-1/2$ on log-log axes for
#   bounded weights, with an extra $\sqrt{\log k}$ for Gaussian weights; the NTK, an average over
#   units, stays of order one.
# - Trained by gradient descent, wider networks move their weights (relative to $|w_0|$) and their
#   kernel less and less: in the wide limit the network behaves like its linearisation.
#
# ## Exercises
#
# See `exercises/` (topic: the Hessian of a one-hidden-layer network and lazy training). Ideas in
# that direction: derive the $(1 + d) \times (1 + d)$ blocks for a general input dimension and check
# them against `hessian.hessian`; say where the Hessian of a ReLU network is not defined; repeat the
# training experiment with a larger learning rate or more steps and watch the kernel start to move.
