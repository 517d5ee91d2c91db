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
# # Exercise set 06 · Training the linearisation is linear regression on $\psi$
#
# Lecture: Definition 1 and the remarks on training $\tilde f$ (FORMULAS.md §2, §13); notebook 01.
#
# The linearisation $\tilde f_x(w) = f_x(w_0) + \psi(x)^\top (w - w_0)$, with
# $\psi(x) = \nabla_w f_x(w_0)$, is linear in $w$. Gradient descent on
# $L(w) = \frac12\sum_i (y_i - \tilde f_{x_i}(w))^2$ is therefore gradient descent for a linear
# least-squares problem in the displacement $\tilde w = w - w_0$, with features $\psi(x_i)$ and
# labels corrected to $y_i - f_{x_i}(w_0)$. You will write it in weight space, find where it ends,
# and write the same training in function space, where only the kernel $K = \psi\psi^\top$ appears.
#
# Conventions: `psi_train` has shape `(n, p)` (one row $\psi(x_i)^\top$ per sample), labels and
# network outputs have shape `(n,)`; all inputs are `float64` tensors and your outputs must have
# the same dtype and device. Total: 7 points.

# %% tags=["setup"]
import matplotlib.pyplot as plt
import torch

from lecture_ntk import device as dev
from lecture_ntk import empirical, linearize, network, plots, regression

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# A small problem used by the public checks: a network of width 40 on 8 points in $\mathbb R^2$,
# its features $\psi$ at initialisation (by `torch.func`), its outputs $f(w_0)$ and labels $y$.
# The learning rate is $1/\lambda_{\max}(K)$, safely below the stability limit $2/\lambda_{\max}$.

# %%
net = network.ShallowNet.init(2, 40, generator=gen)
X = dev.randn(8, 2, generator=gen)
X_test = dev.randn(5, 2, generator=gen)
psi_train, psi_test = empirical.psi(net, X).detach(), empirical.psi(net, X_test).detach()
f0_train, f0_test = net(X).detach(), net(X_test).detach()
y = torch.sin(3 * X[:, 0]) + X[:, 1]
K_train, K_test_train = psi_train @ psi_train.T, psi_test @ psi_train.T
eigs = torch.linalg.eigvalsh(K_train)
lr = 1.0 / eigs[-1].item()
print(f"n = {psi_train.shape[0]} samples, p = {psi_train.shape[1]} parameters")
print(f"lr * lambda_min(K) = {lr * eigs[0].item():.2g} (sets the slowest rate of convergence)")

# %% [markdown]
# ## Question 1 (2 points) · Gradient descent in weight space
#
# Start from $\tilde w = 0$ (that is, $w = w_0$) and take `num_steps` steps
# $$\tilde w \leftarrow \tilde w + \eta\, \psi^\top\big(y - f_0 - \psi\tilde w\big),$$
# which is $w \leftarrow w - \eta\nabla L(w)$ for the linearised model. Write
# `gd_on_psi(psi_train, y, f0_train, lr, num_steps)` returning $\tilde w$ after the last step.

# %% nbgrader={"grade": false, "grade_id": "q1_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gd_on_psi(psi_train, y, f0_train, lr, num_steps):
    """Gradient descent on the linearised model's loss, from w~ = w - w0 = 0.

    L(w~) = 1/2 |y - f0 - psi w~|^2,   w~ <- w~ + lr psi^T (y - f0 - psi w~).

    Args:
        psi_train: (n, p) tensor, row i is psi(x_i) = grad_w f_{x_i}(w0).
        y: (n,) labels; f0_train: (n,) outputs f_{x_i}(w0) of the network at w0.
        lr: learning rate (a float); num_steps: number of steps (an int >= 0).

    Returns:
        (p,) tensor: the displacement w~ after num_steps steps.
    """
    ### BEGIN SOLUTION
    w_tilde = torch.zeros(psi_train.shape[1], dtype=psi_train.dtype, device=psi_train.device)
    for _ in range(num_steps):
        w_tilde = w_tilde + lr * (psi_train.T @ (y - f0_train - psi_train @ w_tilde))
    return w_tilde
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Zero steps leave $\tilde w = 0$; after 200 steps your $\tilde w$ matches
# `linearize.train_linear` to rounding (relative error below $10^{-10}$) and the loss has gone down.

# %% nbgrader={"grade": true, "grade_id": "q1_gd_on_psi", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
w0_steps = gd_on_psi(psi_train, y, f0_train, lr, 0)
assert w0_steps.shape == (psi_train.shape[1],) and (w0_steps == 0).all()
w_200 = gd_on_psi(psi_train, y, f0_train, lr, 200)
w_lib, losses = linearize.train_linear(psi_train, y, f0_train, lr=lr, num_steps=200)
rel = (torch.linalg.norm(w_200 - w_lib) / torch.linalg.norm(w_lib)).item()
assert w_200.dtype == torch.float64 and rel < 1e-10
loss_200 = 0.5 * ((y - f0_train - psi_train @ w_200) ** 2).sum().item()
assert loss_200 < losses[0].item()
print(f"vs linearize.train_linear: relative error < 1e-10; "
      f"loss {losses[0].item():.3f} -> {loss_200:.3f} after 200 steps")
### BEGIN HIDDEN TESTS
from lecture_ntk.grading import spec


def _weight_probes(gen):
    cases = []
    for n, p, steps in ((6, 20, 50), (4, 9, 7), (5, 30, 0)):
        psi = dev.randn(n, p, generator=gen)
        lam_max = torch.linalg.eigvalsh(psi @ psi.T)[-1].item()
        cases.append(dict(psi_train=psi, y=dev.randn(n, generator=gen),
                          f0_train=dev.randn(n, generator=gen), lr=0.9 / lam_max,
                          num_steps=steps))
    return cases


GRADE_Q1 = spec.question("q1_gd_on_psi", function="gd_on_psi", probes=_weight_probes,
                         rtol=1e-8, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 2 (2 points) · Where gradient descent ends
#
# Every step adds a vector of the form $\psi^\top r$, so $\tilde w$ stays in the row space of $\psi$.
# When the $n$ rows are linearly independent ($n \le p$) the iteration converges to the one
# interpolating displacement in that space, the minimum-norm solution
# $$\tilde w^* = \psi^\top(\psi\psi^\top)^{-1}(y - f_0).$$
# Write `min_norm_solution(psi_train, y, f0_train)`. Solve with a Cholesky factorisation of
# $K = \psi\psi^\top$ (`torch.linalg.cholesky`, `torch.cholesky_solve`), never an inverse.

# %% nbgrader={"grade": false, "grade_id": "q2_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def min_norm_solution(psi_train, y, f0_train):
    """The minimum-norm displacement that fits the corrected labels exactly.

    w~* = psi^T (psi psi^T)^{-1} (y - f0), solved with a Cholesky factor of psi psi^T.

    Args:
        psi_train: (n, p) tensor with linearly independent rows (n <= p).
        y: (n,) labels; f0_train: (n,) outputs of the network at w0.

    Returns:
        (p,) tensor w~*.
    """
    ### BEGIN SOLUTION
    L = torch.linalg.cholesky(psi_train @ psi_train.T)
    alpha = torch.cholesky_solve((y - f0_train)[:, None], L)[:, 0]
    return psi_train.T @ alpha
    ### END SOLUTION


# %% [markdown]
# **Public checks.** $\tilde w^*$ interpolates ($f_0 + \psi\tilde w^* = y$), agrees with
# `linearize.solve_linear`, and gradient descent gets there: after 20000 steps of Question 1 the
# gap is below $10^{-6}$ of $|\tilde w^*|$.

# %% nbgrader={"grade": true, "grade_id": "q2_min_norm_solution", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
w_star = min_norm_solution(psi_train, y, f0_train)
fit = (f0_train + psi_train @ w_star - y).abs().max().item()
rel_lib = (torch.linalg.norm(w_star - linearize.solve_linear(psi_train, y, f0_train))
           / torch.linalg.norm(w_star)).item()
w_long = gd_on_psi(psi_train, y, f0_train, lr, 20000)
rel_gd = (torch.linalg.norm(w_long - w_star) / torch.linalg.norm(w_star)).item()
assert w_star.shape == (psi_train.shape[1],) and fit < 1e-8 and rel_lib < 1e-10 and rel_gd < 1e-6
print("interpolates: max |f0 + psi w* - y| < 1e-8; vs linearize.solve_linear < 1e-10; "
      "gradient descent after 20000 steps: relative gap < 1e-6")
### BEGIN HIDDEN TESTS
def _solve_probes(gen):
    cases = []
    for n, p in ((6, 20), (3, 3), (7, 40)):
        cases.append(dict(psi_train=dev.randn(n, p, generator=gen), y=dev.randn(n, generator=gen),
                          f0_train=dev.randn(n, generator=gen)))
    return cases


GRADE_Q2 = spec.question("q2_min_norm_solution", function="min_norm_solution",
                         probes=_solve_probes, rtol=1e-8, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 3 (3 points) · The same training in function space
#
# The outputs move by $\psi\,\Delta\tilde w$, so one step changes the training and test predictions by
# $$f_{\text{train}} \leftarrow f_{\text{train}} + \eta\,K(X, X)\,(y - f_{\text{train}}), \qquad
# f_{\text{test}} \leftarrow f_{\text{test}} + \eta\,K(X_{\text{test}}, X)\,(y - f_{\text{train}}),$$
# starting from the network's outputs $f_0$. Only kernel values appear: this is how an
# infinitely wide network is trained, where $\psi$ no longer exists but $K$ does. Write
# `function_space_predict(K_train, K_test_train, f0_train, f0_test, y, lr, num_steps)`
# returning the test predictions after `num_steps` steps. (Closed form, for reference:
# $f_{\text{test}} = f_0 + K_{\text{test},X}K^{-1}(I - (I - \eta K)^s)(y - f_0)$.)

# %% nbgrader={"grade": false, "grade_id": "q3_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def function_space_predict(K_train, K_test_train, f0_train, f0_test, y, lr, num_steps):
    """Test predictions of the linearised model after gradient descent, using kernels only.

    f_train <- f_train + lr K_train (y - f_train),
    f_test  <- f_test  + lr K_test_train (y - f_train),   both from the outputs at w0.

    Args:
        K_train: (n, n) kernel matrix K(X, X); K_test_train: (m, n) kernel K(X_test, X).
        f0_train: (n,) and f0_test: (m,) outputs of the network at w0; y: (n,) labels.
        lr: learning rate; num_steps: number of steps (an int >= 0).

    Returns:
        (m,) tensor of test predictions after num_steps steps.
    """
    ### BEGIN SOLUTION
    f_train, f_test = f0_train.clone(), f0_test.clone()
    for _ in range(num_steps):
        residual = y - f_train
        f_train = f_train + lr * (K_train @ residual)
        f_test = f_test + lr * (K_test_train @ residual)
    return f_test
    ### END SOLUTION


# %% [markdown]
# **Public checks.** (a) Weight space and function space agree: $f_0 + \psi_{\text{test}}\tilde w$
# with $\tilde w$ from Question 1 equals your function-space prediction (relative error below
# $10^{-10}$). (b) After many steps the prediction is kernel regression on the *corrected* labels,
# `regression.kernel_regression(K_train, y - f0_train, K_test_train)` plus $f_0$ (below $10^{-6}$).

# %% nbgrader={"grade": true, "grade_id": "q3_function_space_predict", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
pred_fs = function_space_predict(K_train, K_test_train, f0_train, f0_test, y, lr, 200)
pred_ws = f0_test + psi_test @ gd_on_psi(psi_train, y, f0_train, lr, 200)
rel_ws = (torch.linalg.norm(pred_fs - pred_ws) / torch.linalg.norm(pred_ws)).item()
pred_long = function_space_predict(K_train, K_test_train, f0_train, f0_test, y, lr, 20000)
pred_kr = f0_test + regression.kernel_regression(K_train, y - f0_train, K_test_train)
rel_kr = (torch.linalg.norm(pred_long - pred_kr) / torch.linalg.norm(pred_kr)).item()
assert pred_fs.shape == (5,) and rel_ws < 1e-10 and rel_kr < 1e-6
print("(a) function space vs weight space: relative error < 1e-10")
print("(b) after 20000 steps vs kernel regression on corrected labels: relative error < 1e-6")
### BEGIN HIDDEN TESTS
def _function_probes(gen):
    cases = []
    for n, m, p, steps in ((6, 4, 20, 40), (3, 1, 5, 5), (5, 3, 12, 0)):
        psi, psi_t = dev.randn(n, p, generator=gen), dev.randn(m, p, generator=gen)
        K = psi @ psi.T
        cases.append(dict(K_train=K, K_test_train=psi_t @ psi.T,
                          f0_train=dev.randn(n, generator=gen),
                          f0_test=dev.randn(m, generator=gen), y=dev.randn(n, generator=gen),
                          lr=0.9 / torch.linalg.eigvalsh(K)[-1].item(), num_steps=steps))
    return cases


GRADE_Q3 = spec.question("q3_function_space_predict", function="function_space_predict",
                         probes=_function_probes, rtol=1e-8, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## A worked figure
#
# How fast does $\tilde w_s$ approach $\tilde w^*$? Along the eigenvector of $K$ with eigenvalue
# $\lambda$ the residual shrinks by $(1 - \eta\lambda)$ per step, so the slowest direction,
# $\lambda_{\min}$, sets the rate: the gap falls like $(1 - \eta\lambda_{\min})^s$ (dashed).

# %%
steps = list(range(0, 4001, 250))
gaps = [(torch.linalg.norm(gd_on_psi(psi_train, y, f0_train, lr, s) - w_star)
         / torch.linalg.norm(w_star)).item() for s in steps]
rate = [(1 - lr * eigs[0].item()) ** s for s in steps]
fig, ax = plt.subplots()
ax.semilogy(steps, gaps, "o-", label=r"$|\tilde w_s - \tilde w^*| / |\tilde w^*|$")
ax.semilogy(steps, rate, "k--", label=r"$(1 - \eta\lambda_{\min})^s$")
ax.set_xlabel("gradient descent steps $s$")
ax.legend()
plt.show()
