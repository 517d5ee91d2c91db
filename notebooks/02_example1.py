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
# # 02 · Example 1: the NTK of a width-2 network, by hand and by autograd
#
# Lecture: §2, Definition 2 and Example 1 (FORMULAS.md §3-§5).
#
# What you will see:
# 1. the four partial derivatives of a tiny network, written out by hand, match autograd;
# 2. its neural tangent kernel from the hand formula matches the Gram matrix of autograd
#    gradients to about $10^{-12}$ in float64;
# 3. the kernel splits into an NNGP-like term (from training $A$) and a correction term
#    (from training $B$); we plot both as functions of $\tilde x$ for a fixed $x$.

# %%
import matplotlib.pyplot as plt
import torch

from lecture_ntk import activations, empirical, network, plots
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## The network
#
# Scalar input $x$, two hidden units, no $1/\sqrt{k}$ factor:
# $$f_x(w) = A_{11}\,\phi(B_{11}x) + A_{12}\,\phi(B_{21}x), \qquad w = (A_{11}, A_{12}, B_{11}, B_{21}).$$
# `network.example1` draws the four weights iid $N(0, 1)$. We take $\phi = \tanh$ and, for
# comparison, the scaled ReLU $\phi(z) = \sqrt2\max(0, z)$ with the *same* weights.

# %%
net = network.example1(generator=gen, activation="tanh", device=device)
A, B = net.A.detach(), net.B.detach()
A11, A12, B11, B21 = (float(A[0, 0]), float(A[0, 1]), float(B[0, 0]), float(B[1, 0]))
print(f"A11 = {A11:.3f}, A12 = {A12:.3f}, B11 = {B11:.3f}, B21 = {B21:.3f}")
nets = {name: network.ShallowNet(A, B, activation=name, scaled=False)
        for name in ("tanh", "relu_normalized")}

# %% [markdown]
# ## The gradient, by hand
#
# Differentiating each term,
# $$\nabla f_x(w) = \big(\phi(B_{11}x),\ \phi(B_{21}x),\ A_{11}\,x\,\phi'(B_{11}x),\ A_{12}\,x\,\phi'(B_{21}x)\big).$$
# `empirical.psi` gets the same vector from `torch.func` without knowing the formula.

# %%
x = torch.tensor([-1.5, -0.3, 0.8, 2.0], dtype=torch.float64, device=device)
for name, model in nets.items():
    act = activations.get(name)
    grad_hand = torch.stack([act.phi(B11 * x), act.phi(B21 * x),
                             A11 * x * act.dphi(B11 * x), A12 * x * act.dphi(B21 * x)], dim=1)
    grad_auto = empirical.psi(model, x[:, None])
    rel = float(torch.linalg.norm(grad_auto - grad_hand) / torch.linalg.norm(grad_hand))
    print(f"{name:>15}: relative error of autograd vs hand gradient < 1e-12: {rel < 1e-12}")
    assert rel < 1e-12

# %% [markdown]
# ## The kernel, by hand
#
# The NTK is the inner product of two such gradients (Definition 2):
# $$K(x, \tilde x) = \underbrace{\sum_{i=1}^2 \phi(B_{i1}x)\,\phi(B_{i1}\tilde x)}_{\text{NNGP-like term}}
#   \;+\; \underbrace{x\tilde x \sum_{i=1}^2 A_{1i}^2\, \phi'(B_{i1}x)\,\phi'(B_{i1}\tilde x)}_{\text{correction term}}.$$
# Below, the hand formula on a grid of 41 points, against the Gram matrix of autograd gradients
# (`empirical.empirical_ntk`) and against the closed form of `empirical.shallow_ntk` with `scaled=False`.

# %%
grid = torch.linspace(-2.0, 2.0, 41, dtype=torch.float64, device=device)
xs, xt = grid[:, None], grid[None, :]
K_hand = {}
for name, model in nets.items():
    act = activations.get(name)
    K_hand[name] = (act.phi(B11 * xs) * act.phi(B11 * xt) + act.phi(B21 * xs) * act.phi(B21 * xt)
                    + xs * xt * (A11 ** 2 * act.dphi(B11 * xs) * act.dphi(B11 * xt)
                                 + A12 ** 2 * act.dphi(B21 * xs) * act.dphi(B21 * xt)))
    K_auto = empirical.empirical_ntk(model, grid[:, None])
    K_closed = empirical.shallow_ntk(A, B, grid[:, None], activation=name, scaled=False)
    err_auto = float(torch.linalg.norm(K_auto - K_hand[name]) / torch.linalg.norm(K_hand[name]))
    err_closed = float(torch.linalg.norm(K_closed - K_hand[name]) / torch.linalg.norm(K_hand[name]))
    print(f"{name:>15}: rel. error autograd vs hand < 1e-12: {err_auto < 1e-12}; "
          f"closed form vs hand < 1e-12: {err_closed < 1e-12}")
    assert err_auto < 1e-12 and err_closed < 1e-12

# %% [markdown]
# Example 1 leaves out the factor $1/\sqrt{k}$ of Theorem 1. With it, every gradient shrinks by
# $1/\sqrt{k}$ and the kernel by $1/k$; so at $k = 2$ the kernel above is twice the kernel of
# the scaled network (FORMULAS.md §5).

# %%
K_scaled = empirical.empirical_ntk(network.ShallowNet(A, B, activation="tanh", scaled=True),
                                   grid[:, None])
err = float(torch.linalg.norm(K_hand["tanh"] - 2.0 * K_scaled) / torch.linalg.norm(K_hand["tanh"]))
print(f"rel. error of K_example1 vs 2 * K_scaled < 1e-12: {err < 1e-12}")
assert err < 1e-12

# %% [markdown]
# ## The two terms
#
# The first sum only involves the hidden features $\phi(Bx)$: it is what we would get by
# training the last layer $A$ alone (the NNGP-like term). The second comes from the gradients
# with respect to $B$. Fix $x = 1$ and look at both as functions of $\tilde x$.

# %%
i1 = int(torch.argmin((grid - 1.0).abs()))  # the grid point x = 1
x0 = grid[i1:i1 + 1, None]
terms = {}
for name in nets:
    nngp_term, correction = empirical.shallow_ntk_terms(A, B, x0, grid[:, None], activation=name,
                                                        scaled=False)
    terms[name] = (nngp_term[0], correction[0])
    row = K_hand[name][i1]  # K(1, x~) from the hand formula
    err = float((nngp_term[0] + correction[0] - row).abs().max() / row.abs().max())
    print(f"{name:>15}: NNGP term + correction term = K(1, x~) to < 1e-12: {err < 1e-12}")
    assert err < 1e-12

# %% tags=["figure:example1_terms"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, name in zip(axes, nets):
    nngp_row, correction_row = terms[name]
    plots.plot_curves(grid, {"NNGP-like term": nngp_row, "correction term": correction_row,
                             "K(1, x~)": nngp_row + correction_row}, ax=ax, xlabel="x~",
                      ylabel="kernel value", title=f"Example 1, phi = {name}, x = 1",
                      styles={"K(1, x~)": {"color": "k", "lw": 2}})
plt.show()

# %% [markdown]
# With this draw $B_{11} < 0 < B_{21}$. For the ReLU, unit 1 is switched off at $x = 1$, and unit 2
# is switched off at every $\tilde x < 0$: the kernel $K(1, \tilde x)$ is exactly zero there, and for
# $\tilde x > 0$ both terms are straight lines through the origin (the correction is
# $\tilde x\, A_{12}^2\, \phi'(B_{21})^2$). With tanh every unit contributes at every $\tilde x$; the
# correction is small here because unit 1 is saturated at $x = 1$ ($|B_{11}|$ is large, so
# $\phi'(B_{11})$ is tiny) and $A_{12}$ is small. At width 2 the kernel depends heavily on the four
# random weights; Theorem 1 says it settles down as $k \to \infty$.

# %%
K_relu_row = terms["relu_normalized"][0] + terms["relu_normalized"][1]
zero_part = float(K_relu_row[grid < 0].abs().max())
print(f"B11 < 0 < B21: {B11 < 0 < B21};  max |K_relu(1, x~)| over x~ < 0: {zero_part:.1f}")
assert B11 < 0 < B21 and zero_part == 0.0

# %% [markdown]
# ## Summary
#
# - For Example 1 the gradient is a four-vector we can write by hand; autograd agrees to
#   rounding error, and so does its Gram matrix with the hand formula for $K(x, \tilde x)$.
# - $K$ is the sum of an NNGP-like term (training $A$) and a correction term (training $B$).
# - Dropping the $1/\sqrt{k}$ factor multiplies the kernel by $k$; Theorem 1 keeps the factor so
#   that both terms become averages over the hidden units and converge as $k$ grows.
#
# ## Exercises
#
# See `exercises/` (the NTK of small networks): derive the gradient and the kernel for a
# variant of Example 1 (e.g. two inputs or a bias), and check your formula against
# `empirical.empirical_ntk`.
