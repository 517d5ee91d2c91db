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
# # 01 · Linearising a network around its initial weights
#
# Lecture: §2, Definition 1 and the remarks on training the linearisation (FORMULAS.md §1-§2, §13).
#
# What you will see:
# 1. the network $f_x(w)$ and its first-order Taylor model $\tilde f_x(w)$ agree to second order
#    as $w$ leaves $w^{(0)}$: the gap shrinks like $|w - w^{(0)}|^2$;
# 2. training $\tilde f$ by gradient descent is linear regression on the feature map
#    $\psi(x) = \nabla f_x(w^{(0)})$, and from $\tilde w = 0$ it lands on the minimum-norm solution;
# 3. the label correction $y_i - f_{x_i}(w^{(0)})$: with it, regression on $\psi$ reproduces the
#    trained $\tilde f$ exactly; the popular shortcut $f(w^{(0)}) = 0$ predicts something else.

# %%
import matplotlib.pyplot as plt
import torch

from lecture_ntk import device as dev
from lecture_ntk import empirical, linearize, network, plots, scaling

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# **Rows, not columns.** The lecture stacks the samples as the columns of $X \in \mathbb{R}^{d \times n}$.
# In code every sample is a *row*: `X` has shape `(n, d)`, and all of `lecture_ntk` keeps to that.
#
# The network is the lecture's one-hidden-layer model
# $f(w; x) = \frac{1}{\sqrt{k}} A\,\phi(Bx)$ with $A \in \mathbb{R}^{1\times k}$, $B \in \mathbb{R}^{k \times d}$,
# and $w \in \mathbb{R}^{k + kd}$ lists $A$ first, then $B$ row by row. We use $\phi = \tanh$ here:
# it is smooth, so the second-order term of the Taylor expansion is really there to be seen.

# %%
d, k = 2, 50
net = network.ShallowNet.init(d, k, generator=gen, activation="tanh", device=device)
params0 = {name: p.detach().clone() for name, p in net.named_parameters()}
w0 = linearize.params_to_vector(params0)
print(f"width k = {k}, input dimension d = {d}, number of parameters p = k + k d = {w0.numel()}")

# %% [markdown]
# ## 1. The linearisation (Definition 1)
#
# Fix a sample $x$ and expand $w \mapsto f_x(w)$ to first order around $w^{(0)}$:
# $$\tilde f_x(w) = f_x(w^{(0)}) + \nabla f_x(w^{(0)})^\top (w - w^{(0)}).$$
# `linearize.f_lin` evaluates this with a Jacobian-vector product (`torch.func.jvp`), without
# ever forming the gradient. We walk away from $w^{(0)}$ along a random unit direction $v$,
# $w = w^{(0)} + t v$, and compare $f$ with $\tilde f$ at one input $x$.

# %%
x = dev.randn(1, d, generator=gen, device=device)
v = dev.randn(w0.numel(), generator=gen, device=device)
v = v / torch.linalg.norm(v)


def f_and_f_lin(t):
    params = linearize.params_from_vector(net, w0 + t * v)
    f = network.forward(params["A"], params["B"], x, activation="tanh")[0, 0]
    return float(f), float(linearize.f_lin(net, params0, x, params)[0])


f_at_w0, f_lin_at_w0 = f_and_f_lin(0.0)
err = abs(f_at_w0 - f_lin_at_w0)
print(f"f(w0) = {f_at_w0:.3f};  |f(w0) - f_lin(w0)| < 1e-14: {err < 1e-14}")
assert err < 1e-14

# %% [markdown]
# Taylor's theorem says the gap $|f_x(w) - \tilde f_x(w)|$ is
# $\tfrac12 t^2\, |v^\top \nabla^2 f_x(w^{(0)})\, v| + O(t^3)$: on log-log axes a line of slope 2.

# %%
ts_wide = torch.linspace(-4.0, 4.0, 81, dtype=torch.float64)
f_wide, f_lin_wide = zip(*(f_and_f_lin(float(t)) for t in ts_wide))
ts = torch.logspace(-3, 0, 10, dtype=torch.float64)
gaps = torch.tensor([abs(a - b) for a, b in (f_and_f_lin(float(t)) for t in ts)])
slope = scaling.loglog_slope(ts[:6], gaps[:6])  # t <= 0.05: where the t^3 term is negligible
print(f"fitted slope of log gap against log t (t <= 0.05): {slope:.2f}")
assert abs(slope - 2.0) < 0.05

# %% tags=["figure:linearisation_gap"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
plots.plot_curves(ts_wide, {"network f": f_wide, "linearisation f_lin": f_lin_wide}, ax=ax1,
                  xlabel="t  (w = w0 + t v, |v| = 1)", ylabel="output at x",
                  title="f and its tangent line in the direction v")
plots.plot_loglog(ts, {"|f - f_lin|": gaps}, ax=ax2, xlabel="t", ylabel="gap",
                  title="the gap is quadratic in |w - w0|", ref_slope=2.0)
plt.show()

# %% [markdown]
# ## 2. Training $\tilde f$ is linear regression on $\psi$
#
# Write $w = w^{(0)} + \tilde w$. The squared loss of the linearisation is
# $$L(\tilde w) = \tfrac12 \sum_{i=1}^n \big(y_i - f_{x_i}(w^{(0)}) - \psi(x_i)^\top \tilde w\big)^2,
# \qquad \psi(x) = \nabla f_x(w^{(0)}),$$
# ordinary least squares with features $\psi(x_i)$ and *corrected* labels $y_i - f_{x_i}(w^{(0)})$.
# Our training set: five points $x \in [-2, 2]$ with labels $\sin(1.5x)$. A network without bias
# maps $x = 0$ to $0$, so each scalar $x$ enters as the row $(x, 1)$ (the constant acts as a bias).

# %%
x_train = torch.linspace(-2.0, 2.0, 5, dtype=torch.float64, device=device)
X_train = torch.stack([x_train, torch.ones_like(x_train)], dim=1)
y_train = torch.sin(1.5 * x_train)
psi_train = empirical.psi(net, X_train)
f0_train = net(X_train).detach()
lam = torch.linalg.eigvalsh(psi_train @ psi_train.T)
print(f"psi_train: {psi_train.shape[0]} samples x {psi_train.shape[1]} features")
print(f"eigenvalues of K = psi psi^T: smallest {float(lam[0]):.1e}, largest {float(lam[-1]):.2f}")
assert float(lam[0]) > 1e-6

# %% [markdown]
# There are more features ($p = 150$) than samples ($n = 5$), so infinitely many $\tilde w$ fit the data.
# Gradient descent started at $\tilde w = 0$ only moves inside the row space of $\psi$, so it
# converges to the minimum-norm solution $\tilde w^* = \psi^\top (\psi\psi^\top)^{-1}(y - f(w^{(0)}))$
# (`linearize.solve_linear`, a Cholesky solve). Along an eigenvector of $K = \psi\psi^\top$ with
# eigenvalue $\lambda$ the residual shrinks by $1 - \eta\lambda$ per step (§13), so the smallest
# eigenvalue sets the number of steps.

# %%
lr = 1.0 / float(lam[-1])
num_steps = int(25.0 / (lr * float(lam[0])))  # (1 - lr lambda_min)^s < e^-25
w_gd, losses = linearize.train_linear(psi_train, y_train, f0_train, lr=lr, num_steps=num_steps)
w_star = linearize.solve_linear(psi_train, y_train, f0_train)
rel = float(torch.linalg.norm(w_gd - w_star) / torch.linalg.norm(w_star))
print(f"{num_steps} steps with lr = 1/lambda_max: final loss < 1e-15: {float(losses[-1]) < 1e-15}")
print(f"|w_gd - w_star| / |w_star| < 1e-8: {rel < 1e-8}")
assert float(losses[-1]) < 1e-15 and rel < 1e-8
# Late in training only the slowest direction is left: the loss shrinks by (1 - lr lambda_min)^2.
s_mid = num_steps // 2
rate, predicted = float(losses[s_mid + 1] / losses[s_mid]), (1.0 - lr * float(lam[0])) ** 2
print(f"loss ratio per step at s = {s_mid}: {rate:.4f}; "
      f"predicted (1 - lr lambda_min)^2 = {predicted:.4f}")
assert abs(rate - predicted) < 1e-6

# %% tags=["figure:linear_gd_loss"]
ax = plots.plot_curves(torch.arange(num_steps + 1), {"L(w~)": losses}, xlabel="step s",
                       ylabel="training loss", title="gradient descent on the linearisation")
ax.set_yscale("log")
plt.show()

# %% [markdown]
# The same fit is kernel regression with the empirical NTK $K(x, \tilde x) = \psi(x)^\top\psi(\tilde x)$
# (Definition 2): at a test point, $f(w^{(0)}; x) + K(x, X) K(X, X)^{-1} (y - f(w^{(0)}; X))$.

# %%
x_grid = torch.linspace(-3.0, 3.0, 121, dtype=torch.float64, device=device)
X_grid = torch.stack([x_grid, torch.ones_like(x_grid)], dim=1)
psi_grid = empirical.psi(net, X_grid)
f0_grid = net(X_grid).detach()
pred_corrected = linearize.predict_linear(psi_grid, w_star, f0_grid)
K_train = empirical.empirical_ntk(net, X_train)
K_grid_train = empirical.empirical_ntk(net, X_grid, X_train)
pred_kernel = f0_grid + K_grid_train @ torch.linalg.solve(K_train, y_train - f0_train)
err = float((pred_corrected - pred_kernel).abs().max())
print(f"max |f0 + psi w~* - (f0 + kernel regression on corrected labels)| < 1e-8: {err < 1e-8}")
assert err < 1e-8

# %% [markdown]
# ## 3. The label correction against the shortcut
#
# In practice one often drops $f_{x_i}(w^{(0)})$, i.e. regresses $y$ itself on $\psi$ and predicts
# $\psi(x)^\top\tilde w$. The two predictors differ by
# $f(w^{(0)}; x) - K(x, X) K(X, X)^{-1} f(w^{(0)}; X)$: the initial function minus its own
# kernel interpolant. Both still pass through the training points; between and beyond them they differ.

# %%
w_short = linearize.solve_linear(psi_train, y_train)
pred_short = linearize.predict_linear(psi_grid, w_short)
gap_formula = f0_grid - K_grid_train @ torch.linalg.solve(K_train, f0_train)
err = float((pred_corrected - pred_short - gap_formula).abs().max())
size = float((pred_corrected - pred_short).abs().max())
print(f"max |corrected - shortcut| on the grid: {size:.2f}")
print(f"difference equals f0 - K(x, X) K^-1 f0(X) to < 1e-8: {err < 1e-8}")
assert err < 1e-8 and size > 0.05

# %% [markdown]
# Now train $\tilde f$ itself: gradient descent on its parameters $w$, with gradients taken by
# autograd through `f_lin` (`linearize.train_f_lin`; no $\psi$ is formed). Step for step it
# coincides with the corrected regression, not with the shortcut. Autograd through the
# Jacobian-vector product is slower, so we compare after a modest 100 steps.

# %%
steps = 100
params_trained, _ = linearize.train_f_lin(net, X_train, y_train, lr=lr, num_steps=steps)
pred_f_lin = linearize.linearize(net)(params_trained, X_grid).detach()
w_c, _ = linearize.train_linear(psi_train, y_train, f0_train, lr=lr, num_steps=steps)
w_s, _ = linearize.train_linear(psi_train, y_train, lr=lr, num_steps=steps)
err_c = float((pred_f_lin - linearize.predict_linear(psi_grid, w_c, f0_grid)).abs().max())
err_s = float((pred_f_lin - linearize.predict_linear(psi_grid, w_s)).abs().max())
print(f"after {steps} steps: max |trained f_lin - corrected regression| < 1e-10: {err_c < 1e-10}")
print(f"after {steps} steps: max |trained f_lin - shortcut regression| = {err_s:.2f}")
assert err_c < 1e-10 and err_s > 0.05

# %% tags=["figure:label_correction"]
ax = plots.plot_curves(x_grid, {"network at init f(w0)": f0_grid,
                                "corrected: f0 + psi w~*": pred_corrected,
                                "shortcut: psi w~* (f0 := 0)": pred_short},
                       xlabel="x", ylabel="prediction",
                       title="trained linearisation: with and without label correction",
                       styles={"network at init f(w0)": {"color": "gray", "ls": ":"}})
ax.scatter(x_train.cpu(), y_train.cpu(), color="k", zorder=3, label="training data")
ax.legend()
plt.show()

# %% [markdown]
# ## Summary
#
# - $\tilde f_x(w)$ is the tangent of $f_x$ at $w^{(0)}$; the gap is quadratic in $|w - w^{(0)}|$
#   for a smooth activation (slope 2 on log-log axes).
# - Training $\tilde f$ with the squared loss is least squares on the features $\psi(x) = \nabla f_x(w^{(0)})$;
#   gradient descent from $\tilde w = 0$ converges to the minimum-norm solution, which is kernel
#   regression with the empirical NTK $\psi(x)^\top\psi(\tilde x)$.
# - Reproducing the trained $\tilde f$ needs the corrected labels $y_i - f_{x_i}(w^{(0)})$ and adding
#   $f(w^{(0)}; x)$ back at test points; the shortcut $f(w^{(0)}) = 0$ gives a different predictor.
#
# ## Exercises
#
# See `exercises/` (linearisation and label correction): match the predictions of a trained
# network with NTK regression, with and without the correction, and watch how the gap between
# $f$ and $\tilde f$ after training depends on the width $k$.
