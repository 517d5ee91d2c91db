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
# # Exercise set 02 · Networks with several outputs
#
# Lecture: the NTK with several outputs (FORMULAS.md §9, §5); notebooks 03, 06.
#
# With $A \in \mathbb R^{c \times k}$ the network $f(x) = \frac1{\sqrt k} A\,\phi(Bx)$ has $c$ outputs,
# and its tangent kernel is a $c \times c$ matrix for every pair of inputs,
# $K_{ab}(x, \tilde x) = \langle \nabla_w f_a(x), \nabla_w f_b(\tilde x)\rangle$. You will write it at finite
# width, see that it becomes $K(x, \tilde x)\, I_c$ as the width grows, and use that structure to
# run kernel regression with $c$ labels per sample.
#
# Conventions: samples are rows (`X` has shape `(n, d)`); a kernel over two sets of inputs with
# $c$ outputs has shape `(n1, n2, c, c)` (the layout of `empirical.empirical_ntk`); inputs are
# `float64` tensors and outputs must keep their dtype and device. Total: 7 points.

# %% tags=["setup"]
import matplotlib.pyplot as plt
import torch

from lecture_ntk import activations, empirical, kernels, network, plots, regression, scaling
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## Question 1 (3 points) · The finite-width kernel, by hand
#
# Output $a$ depends on $A$ only through its row $a$, so
# $\partial f_a / \partial A_{bl} = \delta_{ab}\,\phi(B_l x)/\sqrt k$ and
# $\partial f_a / \partial B_{lj} = A_{al}\,\phi'(B_l x)\,x_j/\sqrt k$. Summing products of these,
# $$K_{ab}(x, \tilde x) = \delta_{ab}\,\frac1k\sum_l \phi(B_l x)\phi(B_l\tilde x)
# + (x^\top\tilde x)\,\frac1k\sum_l A_{al}A_{bl}\,\phi'(B_l x)\phi'(B_l\tilde x).$$
# Write `several_outputs_ntk(A, B, X1, X2, activation)` without a loop over samples
# (`torch.einsum` helps). `activation` is a name such as `"relu_normalized"` or `"tanh"`; get
# $\phi$ and $\phi'$ with `activations.get(activation).phi` and `.dphi`.

# %% nbgrader={"grade": false, "grade_id": "q1_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def several_outputs_ntk(A, B, X1, X2, activation):
    """The finite-width NTK of f(x) = A phi(B x) / sqrt(k) with c outputs.

    K[i, j, a, b] = delta_ab (1/k) sum_l phi(B_l x_i) phi(B_l x_j)
                    + (x_i^T x_j) (1/k) sum_l A_al A_bl phi'(B_l x_i) phi'(B_l x_j).

    Args:
        A: (c, k) tensor; B: (k, d) tensor.
        X1: (n1, d) tensor; X2: (n2, d) tensor (rows are samples).
        activation: a name from lecture_ntk.activations.NAMES.

    Returns:
        (n1, n2, c, c) tensor.
    """
    ### BEGIN SOLUTION
    act = activations.get(activation)
    c, k = A.shape
    Z1, Z2 = X1 @ B.T, X2 @ B.T
    nngp_term = act.phi(Z1) @ act.phi(Z2).T / k
    corr = torch.einsum("il,jl,al,bl->ijab", act.dphi(Z1), act.dphi(Z2), A, A) / k
    eye = torch.eye(c, dtype=A.dtype, device=A.device)
    return nngp_term[:, :, None, None] * eye + (X1 @ X2.T)[:, :, None, None] * corr
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Against automatic differentiation of the network
# (`empirical.empirical_ntk`, which contracts the `torch.func` Jacobians) for two activations:
# relative error below $10^{-10}$.

# %% nbgrader={"grade": true, "grade_id": "q1_several_outputs_ntk", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
X1, X2 = dev.randn(4, 3, generator=gen), dev.randn(2, 3, generator=gen)
for name in ("tanh", "relu_normalized"):
    net = network.ShallowNet.init(3, 30, 3, generator=gen, activation=name)
    K_hand = several_outputs_ntk(net.A.detach(), net.B.detach(), X1, X2, name)
    K_auto = empirical.empirical_ntk(net, X1, X2).detach()
    rel = (torch.linalg.norm(K_hand - K_auto) / torch.linalg.norm(K_auto)).item()
    assert K_hand.shape == (4, 2, 3, 3) and K_hand.dtype == torch.float64 and rel < 1e-10
    print(f"{name}: by hand vs autograd, relative error < 1e-10")
### BEGIN HIDDEN TESTS
from lecture_ntk.grading import spec


def _net_probes(gen):
    cases = []
    for (c, k, d, n1, n2), name in zip(((3, 20, 4, 5, 3), (2, 7, 1, 2, 4), (1, 9, 2, 3, 3)),
                                       ("tanh", "relu_normalized", "erf")):
        A, B = network.init_params(d, k, c, generator=gen)
        cases.append(dict(A=A, B=B, X1=dev.randn(n1, d, generator=gen),
                          X2=dev.randn(n2, d, generator=gen), activation=name))
    return cases


GRADE_Q1 = spec.question("q1_several_outputs_ntk", function="several_outputs_ntk",
                         probes=_net_probes, rtol=1e-8, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 2 (1 point) · Infinite width: $K(x, \tilde x)\, I_c$
#
# The off-diagonal entries ($a \ne b$) average $A_{al}A_{bl}$ over independent rows of $A$, which
# tends to $0$; the diagonal ones tend to the one-output NTK. So in the limit the kernel is the
# scalar NTK times the identity. Write `ntk_several_outputs(X1, X2, c)` for the scaled ReLU
# (`kernels.ntk` gives the scalar kernel).

# %% nbgrader={"grade": false, "grade_id": "q2_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ntk_several_outputs(X1, X2, c):
    """The infinite-width NTK of the scaled-ReLU network with c outputs: K(x, x~) I_c.

    Args:
        X1: (n1, d) tensor; X2: (n2, d) tensor; c: number of outputs (int).

    Returns:
        (n1, n2, c, c) tensor.
    """
    ### BEGIN SOLUTION
    K = kernels.ntk(X1, X2, activation="relu_normalized")
    return K[:, :, None, None] * torch.eye(c, dtype=K.dtype, device=K.device)
    ### END SOLUTION


# %% [markdown]
# **Public check.** A network of width 20000 with 3 outputs: its kernel is within about $0.01$
# (relative) of yours, and its largest off-diagonal entry is small next to the diagonal.

# %% nbgrader={"grade": true, "grade_id": "q2_ntk_several_outputs", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
X = dev.randn(4, 3, generator=gen)
A, B = network.init_params(3, 20000, 3, generator=gen)
K_wide = several_outputs_ntk(A, B, X, X, "relu_normalized")
K_inf = ntk_several_outputs(X, X, 3)
rel = (torch.linalg.norm(K_wide - K_inf) / torch.linalg.norm(K_inf)).item()
off = (K_wide * (1 - torch.eye(3, dtype=torch.float64))).abs().max().item()
assert K_inf.shape == (4, 4, 3, 3) and rel < 0.1 and off < 0.1 * K_inf.abs().max().item()
print(f"width 20000 vs K I_c: relative error {rel:.2f}; largest off-diagonal entry "
      f"{off / K_inf.abs().max().item():.3f} of the largest entry")
### BEGIN HIDDEN TESTS
def _inf_probes(gen):
    X = dev.randn(5, 3, generator=gen) * 2
    return [dict(X1=X, X2=dev.randn(3, 3, generator=gen), c=4), dict(X1=X[:2], X2=X, c=1)]


GRADE_Q2 = spec.question("q2_ntk_several_outputs", function="ntk_several_outputs",
                         probes=_inf_probes, rtol=1e-6, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 3 (3 points) · Kernel regression with $c$ labels per sample
#
# With the kernel $K\,I_c$ the regression for labels $Y \in \mathbb R^{n \times c}$ does not mix
# outputs: one matrix $K(X, X)$ serves every column,
# $$\hat Y(X_{\text{test}}) = K(X_{\text{test}}, X)\,(K(X, X) + \text{ridge}\, I)^{-1}\,Y.$$
# Write `kernel_regression_several(K_train, Y, K_test_train, ridge)` with **one** Cholesky
# factorisation (`torch.linalg.cholesky`, `torch.cholesky_solve` accepts several right-hand sides).

# %% nbgrader={"grade": false, "grade_id": "q3_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def kernel_regression_several(K_train, Y, K_test_train, ridge=0.0):
    """Kernel regression for c outputs sharing one kernel matrix.

    Y_hat = K_test_train (K_train + ridge I)^{-1} Y, by one Cholesky factorisation.

    Args:
        K_train: (n, n) symmetric positive definite; Y: (n, c) labels;
        K_test_train: (m, n); ridge: float >= 0.

    Returns:
        (m, c) tensor of predictions.
    """
    ### BEGIN SOLUTION
    n = K_train.shape[0]
    eye = torch.eye(n, dtype=K_train.dtype, device=K_train.device)
    L = torch.linalg.cholesky(K_train + ridge * eye)
    return K_test_train @ torch.cholesky_solve(Y, L)
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Column by column your predictions equal `regression.kernel_regression`; and
# solving the full $(nc) \times (nc)$ system with the block kernel of Question 2 gives the same
# numbers (relative errors below $10^{-10}$): the outputs really decouple.

# %% nbgrader={"grade": true, "grade_id": "q3_kernel_regression_several", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
X, X_test = dev.randn(6, 2, generator=gen), dev.randn(4, 2, generator=gen)
Y = torch.stack([torch.sin(2 * X[:, 0]), X[:, 1] ** 2, X.sum(1)], dim=1)
K_train, K_test_train = kernels.ntk(X, X), kernels.ntk(X_test, X)
Y_hat = kernel_regression_several(K_train, Y, K_test_train)
cols = torch.stack([regression.kernel_regression(K_train, Y[:, a], K_test_train)
                    for a in range(3)], dim=1)
big = ntk_several_outputs(X, X, 3).permute(0, 2, 1, 3).reshape(18, 18)
big_test = ntk_several_outputs(X_test, X, 3).permute(0, 2, 1, 3).reshape(12, 18)
Y_big = (big_test @ torch.linalg.solve(big, Y.reshape(18))).reshape(4, 3)
rel_cols = (torch.linalg.norm(Y_hat - cols) / torch.linalg.norm(cols)).item()
rel_big = (torch.linalg.norm(Y_hat - Y_big) / torch.linalg.norm(Y_big)).item()
assert Y_hat.shape == (4, 3) and rel_cols < 1e-10 and rel_big < 1e-10
print("column by column: relative error < 1e-10; full block system: relative error < 1e-10")
### BEGIN HIDDEN TESTS
def _regression_probes(gen):
    cases = []
    for n, m, c, ridge in ((6, 3, 2, 0.0), (4, 5, 3, 0.1), (3, 1, 1, 0.0)):
        X = dev.randn(n, 3, generator=gen)
        cases.append(dict(K_train=kernels.ntk(X, X),
                          Y=dev.randn(n, c, generator=gen),
                          K_test_train=kernels.ntk(dev.randn(m, 3, generator=gen), X),
                          ridge=ridge))
    return cases


GRADE_Q3 = spec.question("q3_kernel_regression_several", function="kernel_regression_several",
                         probes=_regression_probes, rtol=1e-7, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## A worked figure
#
# How fast do the off-diagonal blocks vanish? For each width we measure the size of the
# off-diagonal part ($a \ne b$) relative to the diagonal part (Frobenius norms, mean of 5 draws);
# a slope of $-1/2$ on log-log axes is the $1/\sqrt k$ of the lecture.

# %%
widths = [50, 200, 800, 3200, 12800]
X = dev.randn(4, 3, generator=gen)
mask = torch.eye(3, dtype=torch.float64)
ratios = []
for k in widths:
    draws = []
    for _ in range(5):
        A, B = network.init_params(3, k, 3, generator=gen)
        K = several_outputs_ntk(A, B, X, X, "relu_normalized")
        draws.append((torch.linalg.norm(K * (1 - mask)) / torch.linalg.norm(K * mask)).item())
    ratios.append(sum(draws) / 5)
slope = scaling.loglog_slope(widths, ratios)
assert -0.7 < slope < -0.3
print(f"log-log slope of |off-diagonal| / |diagonal| against k: {slope:.1f}")
fig, ax = plt.subplots()
plots.plot_loglog(widths, {"|off-diagonal| / |diagonal|": ratios}, ax=ax, xlabel="width k",
                  ref_slope=-0.5)
plt.show()
