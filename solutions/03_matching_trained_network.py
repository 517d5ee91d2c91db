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
# # Exercise set 03 · A trained wide network is kernel regression with corrected labels
#
# Lecture: Definition 1 and its remarks, Theorem 1 (FORMULAS.md §2, §13); notebooks 01, 06.
#
# Train the real network $f(w; x) = \frac1{\sqrt k} A\,\phi(Bx)$ by gradient descent. If the width
# is large its weights barely move, so it behaves like its linearisation, and the linearisation
# trained to convergence predicts
# $$p(x) = f_{x}(w_0) + K_0(x, X)\,K_0(X, X)^{-1}\big(y - f_X(w_0)\big),$$
# kernel regression with the empirical NTK $K_0$ at initialisation on labels corrected by the
# initial outputs. You will train the network, compute $p$, and measure how close they are.
#
# Conventions: `A` is `(1, k)`, `B` is `(k, d)`, samples are rows of `X` `(n, d)`, labels `(n,)`,
# all `float64`; outputs keep dtype and device. Total: 7 points.

# %% tags=["setup"]
import matplotlib.pyplot as plt
import torch

from lecture_ntk import activations, empirical, linearize, network, plots, scaling
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# The data of the public checks: 4 training points and 4 test points in $\mathbb R^3$. All tensors
# here are tiny, so one CPU thread is faster than several that must keep synchronising.

# %%
torch.set_num_threads(1)
X, y = dev.randn(4, 3, generator=gen), dev.randn(4, generator=gen)
X_test = dev.randn(4, 3, generator=gen)

# %% [markdown]
# ## Question 1 (3 points) · Train the network
#
# Full-batch gradient descent on $L = \frac12\sum_i (y_i - f(w; x_i))^2$ from $(A, B)$:
# $w \leftarrow w - \eta\,\nabla L(w)$, `num_steps` times, with the gradients of §5
# ($\partial f/\partial A_{1i} = \phi(B_i x)/\sqrt k$, $\partial f/\partial B_{ij} = A_{1i}\phi'(B_i x)x_j/\sqrt k$)
# or with autograd. Write `train_shallow(A, B, X, y, lr, num_steps, activation)` returning the
# trained `(A, B)`; do not modify the tensors passed in.

# %% nbgrader={"grade": false, "grade_id": "q1_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_shallow(A, B, X, y, lr, num_steps, activation):
    """Full-batch gradient descent on L = 1/2 sum_i (y_i - f(w; x_i))^2.

    f(w; x) = A phi(B x) / sqrt(k);  A <- A - lr dL/dA,  B <- B - lr dL/dB.

    Args:
        A: (1, k) tensor; B: (k, d) tensor; X: (n, d) samples; y: (n,) labels.
        lr: learning rate; num_steps: int >= 0; activation: a name.

    Returns:
        (A, B) after num_steps steps, new tensors of the same shapes.
    """
    ### BEGIN SOLUTION
    act = activations.get(activation)
    scale = A.shape[1] ** -0.5
    A, B = A.clone(), B.clone()
    for _ in range(num_steps):
        Z = X @ B.T
        r = y - (act.phi(Z) @ A[0]) * scale                    # residuals y - f
        grad_A = -(r @ act.phi(Z)) * scale
        grad_B = -((r[:, None] * act.dphi(Z) * A[0]).T @ X) * scale
        A, B = A - lr * grad_A[None, :], B - lr * grad_B
    return A, B
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Step for step your training equals gradient descent with autograd gradients
# (relative error below $10^{-10}$ after 20 steps), and the loss goes down.

# %% nbgrader={"grade": true, "grade_id": "q1_train_shallow", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
A0, B0 = network.init_params(3, 30, generator=gen)
A1, B1 = train_shallow(A0, B0, X, y, 0.05, 20, "tanh")
A_t, B_t = A0.clone().requires_grad_(), B0.clone().requires_grad_()
for _ in range(20):
    loss = 0.5 * ((y - network.forward(A_t, B_t, X, activation="tanh")[:, 0]) ** 2).sum()
    gA, gB = torch.autograd.grad(loss, (A_t, B_t))
    A_t = (A_t - 0.05 * gA).detach().requires_grad_()
    B_t = (B_t - 0.05 * gB).detach().requires_grad_()
rel = max((torch.linalg.norm(A1 - A_t) / torch.linalg.norm(A_t)).item(),
          (torch.linalg.norm(B1 - B_t) / torch.linalg.norm(B_t)).item())


def loss_of(A, B):
    return 0.5 * ((y - network.forward(A, B, X, activation="tanh")[:, 0]) ** 2).sum().item()


assert A1.shape == A0.shape and B1.shape == B0.shape and rel < 1e-10
assert loss_of(A1, B1) < loss_of(A0, B0)
print(f"vs autograd: relative error < 1e-10; loss {loss_of(A0, B0):.2f} -> {loss_of(A1, B1):.2f}")
### BEGIN HIDDEN TESTS
from lecture_ntk.grading import spec


def _train_probes(gen):
    cases = []
    for (n, d, k, steps, lr), name in zip(((5, 2, 12, 15, 0.05), (3, 1, 4, 3, 0.1),
                                           (4, 3, 20, 0, 0.1)), ("tanh", "relu_normalized", "erf")):
        A, B = network.init_params(d, k, generator=gen)
        cases.append(dict(A=A, B=B, X=dev.randn(n, d, generator=gen), y=dev.randn(n, generator=gen),
                          lr=lr, num_steps=steps, activation=name))
    return cases


GRADE_Q1 = spec.question("q1_train_shallow", function="train_shallow", probes=_train_probes,
                         rtol=1e-7, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 2 (2 points) · The prediction of the linearised model
#
# Write `corrected_prediction(K_train, K_test_train, f0_train, f0_test, y)` returning
# $p = f_0(X_{\text{test}}) + K_0(X_{\text{test}}, X)\,K_0(X, X)^{-1}(y - f_0(X))$ with a Cholesky solve.

# %% nbgrader={"grade": false, "grade_id": "q2_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def corrected_prediction(K_train, K_test_train, f0_train, f0_test, y):
    """Kernel regression on labels corrected by the network's initial outputs.

    p = f0_test + K_test_train K_train^{-1} (y - f0_train), by a Cholesky factorisation.

    Args:
        K_train: (n, n) kernel; K_test_train: (m, n); f0_train: (n,); f0_test: (m,); y: (n,).

    Returns:
        (m,) tensor.
    """
    ### BEGIN SOLUTION
    L = torch.linalg.cholesky(K_train)
    return f0_test + K_test_train @ torch.cholesky_solve((y - f0_train)[:, None], L)[:, 0]
    ### END SOLUTION


# %% [markdown]
# **Public check.** It is the limit of training the linearisation: the minimum-norm solution of
# `linearize.solve_linear` on the features $\psi$ predicts the same (relative error below $10^{-8}$).

# %% nbgrader={"grade": true, "grade_id": "q2_corrected_prediction", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
net = network.ShallowNet(A0, B0, activation="tanh")
psi, psi_test = empirical.psi(net, X).detach(), empirical.psi(net, X_test).detach()
f0, f0_test = net(X).detach(), net(X_test).detach()
p = corrected_prediction(psi @ psi.T, psi_test @ psi.T, f0, f0_test, y)
p_lin = linearize.predict_linear(psi_test, linearize.solve_linear(psi, y, f0), f0_test)
rel = (torch.linalg.norm(p - p_lin) / torch.linalg.norm(p_lin)).item()
assert p.shape == (4,) and rel < 1e-8
print("vs the converged linearisation: relative error < 1e-8")
### BEGIN HIDDEN TESTS
def _kernel_probes(gen):
    cases = []
    for n, m, d, k in ((5, 3, 2, 30), (3, 1, 4, 10)):
        A, B = network.init_params(d, k, generator=gen)
        X, X_t = dev.randn(n, d, generator=gen), dev.randn(m, d, generator=gen)
        cases.append(dict(K_train=empirical.shallow_ntk(A, B, X, activation="tanh"),
                          K_test_train=empirical.shallow_ntk(A, B, X_t, X, activation="tanh"),
                          f0_train=network.forward(A, B, X, activation="tanh")[:, 0],
                          f0_test=network.forward(A, B, X_t, activation="tanh")[:, 0],
                          y=dev.randn(n, generator=gen)))
    return cases


GRADE_Q2 = spec.question("q2_corrected_prediction", function="corrected_prediction",
                         probes=_kernel_probes, rtol=1e-7, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 3 (2 points) · How close are they?
#
# Write `network_vs_kernel_gap(A, B, X, y, X_test, lr, num_steps, activation)`: train the network
# from $(A, B)$ with Question 1, compute $p$ with Question 2 using the empirical NTK at the
# **initial** weights (`empirical.shallow_ntk(A, B, X1, X2, activation=...)`, the §5 formula) and
# the initial outputs, and return the relative gap on the test points as a python float:
# $$\text{gap} = \frac{|f_{\text{trained}}(X_{\text{test}}) - p|}{|p|}.$$

# %% nbgrader={"grade": false, "grade_id": "q3_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def network_vs_kernel_gap(A, B, X, y, X_test, lr, num_steps, activation):
    """Relative gap between the trained network and corrected empirical-NTK regression.

    gap = |f_trained(X_test) - p| / |p|,  p = f0_test + K0(X_test, X) K0(X, X)^{-1} (y - f0(X)),
    with K0 and f0 at the initial weights (A, B).

    Args:
        A: (1, k); B: (k, d); X: (n, d); y: (n,); X_test: (m, d); lr; num_steps; activation.

    Returns:
        the gap as a python float.
    """
    ### BEGIN SOLUTION
    A_T, B_T = train_shallow(A, B, X, y, lr, num_steps, activation)
    f0 = network.forward(A, B, X, activation=activation)[:, 0]
    f0_test = network.forward(A, B, X_test, activation=activation)[:, 0]
    p = corrected_prediction(empirical.shallow_ntk(A, B, X, activation=activation),
                             empirical.shallow_ntk(A, B, X_test, X, activation=activation),
                             f0, f0_test, y)
    f_T = network.forward(A_T, B_T, X_test, activation=activation)[:, 0]
    return (torch.linalg.norm(f_T - p) / torch.linalg.norm(p)).item()
    ### END SOLUTION


# %% [markdown]
# **Public check.** Trained long enough (200 steps of size 0.5 here), a width-2000 network is
# within a few percent of $p$.

# %% nbgrader={"grade": true, "grade_id": "q3_network_vs_kernel_gap", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
A, B = network.init_params(3, 2000, generator=gen)
gap = network_vs_kernel_gap(A, B, X, y, X_test, 0.5, 200, "tanh")
assert isinstance(gap, float) and gap < 0.05
print(f"width 2000, 200 steps: relative gap {gap:.3f}")
### BEGIN HIDDEN TESTS
def _gap_probes(gen):
    cases = []
    for n, m, d, k, steps in ((4, 3, 2, 25, 30), (3, 2, 3, 60, 10)):
        A, B = network.init_params(d, k, generator=gen)
        cases.append(dict(A=A, B=B, X=dev.randn(n, d, generator=gen), y=dev.randn(n, generator=gen),
                          X_test=dev.randn(m, d, generator=gen), lr=0.05, num_steps=steps,
                          activation="tanh"))
    return cases


GRADE_Q3 = spec.question("q3_network_vs_kernel_gap", function="network_vs_kernel_gap",
                         probes=_gap_probes, rtol=1e-6, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## A worked figure
#
# The gap against the width (mean of 4 draws, 200 steps of size 0.5, enough to converge here),
# with and without the label correction. With it the gap falls at least like $1/\sqrt k$ (dashed
# line); with the shortcut $f(w_0) = 0$ (plain kernel regression on $y$) it stays large, because
# the trained network keeps its random initial function.

# %%
widths = [50, 200, 800, 3200]
gaps = {"with label correction": [], "shortcut f(w0) = 0": []}
for k in widths:
    g_corr, g_short = [], []
    for _ in range(4):
        A, B = network.init_params(3, k, generator=gen)
        A_T, B_T = train_shallow(A, B, X, y, 0.5, 200, "tanh")
        f_T = network.forward(A_T, B_T, X_test, activation="tanh")[:, 0]
        K_train = empirical.shallow_ntk(A, B, X, activation="tanh")
        K_test_train = empirical.shallow_ntk(A, B, X_test, X, activation="tanh")
        f0 = network.forward(A, B, X, activation="tanh")[:, 0]
        f0_test = network.forward(A, B, X_test, activation="tanh")[:, 0]
        for store, (a, b) in ((g_corr, (f0, f0_test)), (g_short, (0 * f0, 0 * f0_test))):
            p = corrected_prediction(K_train, K_test_train, a, b, y)
            store.append((torch.linalg.norm(f_T - p) / torch.linalg.norm(p)).item())
    gaps["with label correction"].append(sum(g_corr) / 4)
    gaps["shortcut f(w0) = 0"].append(sum(g_short) / 4)
slope = scaling.loglog_slope(widths, gaps["with label correction"])
short, corr = gaps["shortcut f(w0) = 0"], gaps["with label correction"]
assert slope < -0.5 and min(short) > 0.15 and short[-1] > 10 * corr[-1]
print(f"slope of the corrected gap against k: {slope:.1f}; the shortcut's gap stays above "
      f"{min(gaps['shortcut f(w0) = 0']):.1f}")
fig, ax = plt.subplots()
plots.plot_loglog(widths, gaps, ax=ax, xlabel="width k", ref_slope=-0.5)
plt.show()
