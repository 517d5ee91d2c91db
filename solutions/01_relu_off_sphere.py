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
# # Exercise set 01 · The ReLU NTK for inputs of any length
#
# Lecture: Example 2 and the homework on inputs off the sphere (FORMULAS.md §7-§8); notebook 04.
#
# The lecture computes the infinite-width NTK of $f(w; x) = \frac{1}{\sqrt k} A\,\phi(Bx)$ with
# $\phi(z) = \sqrt2 \max(0, z)$ for inputs on the unit sphere. Here you extend it to inputs of any
# length, and check your kernel against a wide network and against the sphere formula.
#
# Conventions used by every function below: samples are the **rows** of `X` (shape `(n, d)`);
# inputs are `float64` tensors and your outputs must have the same dtype and device as the inputs;
# no loops over samples are needed. Total: 7 points.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import torch

from lecture_ntk import device as dev
from lecture_ntk import empirical, kernels, network, plots

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## Question 1 (2 points) · The dual activation and its derivative
#
# For unit vectors with $\xi = x^\top \tilde x$ the pre-activations $(u, v)$ are standard Gaussians
# with correlation $\xi$, and for the scaled ReLU
# $$\hat\phi(\xi) = \mathbb E[\phi(u)\phi(v)] = \tfrac1\pi\big(\xi(\pi - \arccos\xi) + \sqrt{1-\xi^2}\big),
# \qquad \hat\phi'(\xi) = \tfrac1\pi(\pi - \arccos\xi).$$
# Write `sphere_terms(xi)` returning both. Rounding can push a computed cosine just outside
# $[-1, 1]$, where `arccos` gives NaN: clamp `xi` into $[-1, 1]$ first.

# %% nbgrader={"grade": false, "grade_id": "q1_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sphere_terms(xi):
    """The dual activation of phi(z) = sqrt(2) max(0, z) and its derivative, on the sphere.

    phi_dual(xi) = (1/pi) (xi (pi - arccos xi) + sqrt(1 - xi^2)),
    phi_dual'(xi) = (1/pi) (pi - arccos xi).

    Args:
        xi: tensor of any shape holding cosines; clamp it into [-1, 1] first.

    Returns:
        (dual, ddual): two tensors with the shape, dtype and device of xi.
    """
    ### BEGIN SOLUTION
    xi = xi.clamp(-1.0, 1.0)
    delta = math.pi - torch.arccos(xi)           # pi minus the angle
    sin = torch.sqrt((1.0 - xi) * (1.0 + xi))    # avoids the cancellation in 1 - xi^2
    return (xi * delta + sin) / math.pi, delta / math.pi
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Known values ($\hat\phi(1) = 1$, and $K = \hat\phi + \xi\hat\phi'$ is $2$, $1/\pi$, $0$
# at $\xi = 1, 0, -1$), the derivative against autograd, and the values against `kernels.relu_dual`.
# Each error printed should be below about $10^{-12}$.

# %% nbgrader={"grade": true, "grade_id": "q1_sphere_terms", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
xi = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
dual, ddual = sphere_terms(xi)
K = dual + xi * ddual
err_known = (K - torch.tensor([2.0, 1 / math.pi, 0.0], dtype=torch.float64)).abs().max().item()
assert dual.shape == xi.shape and dual.dtype == torch.float64
assert abs(dual[0].item() - 1.0) < 1e-12 and err_known < 1e-12
print("known values: max |K - (2, 1/pi, 0)| < 1e-12")

xi = (2 * dev.rand(200, generator=gen, dtype=torch.float64) - 1).requires_grad_()
dual, ddual = sphere_terms(xi)
(grad,) = torch.autograd.grad(dual.sum(), xi)
err_grad = (grad - ddual).abs().max().item()
err_lib = (dual - kernels.relu_dual(xi)).abs().max().item()
assert err_grad < 1e-10 and err_lib < 1e-12
print("autograd of the dual vs your derivative: max error < 1e-10")
print("your dual vs kernels.relu_dual: max error < 1e-12")
assert torch.isfinite(torch.stack(sphere_terms(torch.tensor([1 + 2e-16, -1 - 2e-16],
                                                            dtype=torch.float64)))).all()
### BEGIN HIDDEN TESTS
from lecture_ntk.grading import spec


def _xi_probes(gen):
    edges = torch.tensor([1.0, -1.0, 0.0, 1 - 1e-12, -1 + 1e-12, 1 + 2.3e-16, -1 - 2.3e-16],
                         dtype=torch.float64)
    inside = 2 * dev.rand(40, generator=gen, dtype=torch.float64) - 1
    return [dict(xi=torch.cat([edges, inside])),
            dict(xi=2 * dev.rand(3, 4, generator=gen, dtype=torch.float64) - 1)]


GRADE_Q1 = spec.question("q1_sphere_terms", function="sphere_terms", probes=_xi_probes,
                         rtol=1e-7, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 2 (2 points) · The NNGP kernel off the sphere
#
# The scaled ReLU is positively homogeneous, $\phi(cz) = c\,\phi(z)$ for $c > 0$, so the length of
# each input factors out of the Gaussian expectation:
# $$\Sigma(x, \tilde x) = |x|\,|\tilde x|\;\hat\phi(\cos), \qquad
# \cos = \frac{x^\top\tilde x}{|x|\,|\tilde x|},$$
# and $\Sigma(x, \tilde x) = 0$ when $x = 0$ or $\tilde x = 0$ (the pre-activation is then $0$).
# Write `relu_nngp_off_sphere(X1, X2)` for all pairs of rows at once, using `sphere_terms`.
# A zero row must give a zero row of the kernel, not NaN.

# %% nbgrader={"grade": false, "grade_id": "q2_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_nngp_off_sphere(X1, X2=None):
    """The infinite-width NNGP kernel of the scaled-ReLU network for inputs of any length.

    Sigma(x, x~) = |x| |x~| phi_dual(cos),  cos = x^T x~ / (|x| |x~|);  0 if x or x~ is 0.

    Args:
        X1: (n1, d) tensor, rows are samples.
        X2: (n2, d) tensor, or None for X2 = X1.

    Returns:
        (n1, n2) tensor, dtype and device of X1.
    """
    ### BEGIN SOLUTION
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    cos = (X1 @ X2.T) / torch.where(norms > 0, norms, torch.ones_like(norms))
    dual, _ = sphere_terms(cos)
    return norms * dual
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Against the library's kernel (any input length), scaling an input by $c > 0$
# scales the kernel by $c$, and a zero input gives zeros. Errors should be below about $10^{-12}$.

# %% nbgrader={"grade": true, "grade_id": "q2_nngp_off_sphere", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
X1 = dev.randn(5, 3, generator=gen, dtype=torch.float64) * 2.5
X2 = dev.randn(4, 3, generator=gen, dtype=torch.float64)
S = relu_nngp_off_sphere(X1, X2)
err_lib = ((S - kernels.nngp(X1, X2)).abs().max() / S.abs().max()).item()
err_scale = (relu_nngp_off_sphere(3.0 * X1, X2) - 3.0 * S).abs().max().item()
assert S.shape == (5, 4) and S.dtype == torch.float64
assert err_lib < 1e-12 and err_scale < 1e-12
print("relative error vs kernels.nngp < 1e-12; Sigma(3 x, x~) - 3 Sigma(x, x~) < 1e-12")
X0 = torch.cat([X1[:2], torch.zeros(1, 3, dtype=torch.float64)])
S0 = relu_nngp_off_sphere(X0, X2)
assert torch.isfinite(S0).all() and (S0[2] == 0).all()
### BEGIN HIDDEN TESTS
def _pair_probes(gen):
    X1 = dev.randn(6, 3, generator=gen, dtype=torch.float64)
    X1 = X1 * (0.2 + 3 * dev.rand(6, 1, generator=gen, dtype=torch.float64))
    X1[2] = 0.0
    X2 = torch.cat([dev.randn(2, 3, generator=gen, dtype=torch.float64), X1[:1], -X1[1:2],
                    torch.zeros(1, 3, dtype=torch.float64)])
    X3 = dev.randn(4, 7, generator=gen, dtype=torch.float64)
    X4 = 10 * dev.randn(2, 7, generator=gen, dtype=torch.float64)
    return [dict(X1=X1, X2=X2), dict(X1=X2, X2=None), dict(X1=X3, X2=X4)]


GRADE_Q2 = spec.question("q2_nngp_off_sphere", function="relu_nngp_off_sphere",
                         probes=_pair_probes, rtol=1e-6, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 3 (3 points) · The NTK off the sphere
#
# Training the first layer adds the term $(x^\top\tilde x)\,\hat\phi'(\cos)$; the derivative of a
# ReLU does not see the input length. Together,
# $$K(x, \tilde x) = |x|\,|\tilde x|\,\big(\hat\phi(\cos) + \cos\,\hat\phi'(\cos)\big),$$
# again $0$ when an input is $0$. On the unit sphere this is the lecture's $K(\xi)$.
# Write `relu_ntk_off_sphere(X1, X2)`.
#
# *Why it matters:* the cosine term is why the NTK differs from the NNGP kernel; forgetting either
# norm factor gives a kernel that is right on the sphere and wrong everywhere else.

# %% nbgrader={"grade": false, "grade_id": "q3_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_ntk_off_sphere(X1, X2=None):
    """The infinite-width NTK of the scaled-ReLU network for inputs of any length.

    K(x, x~) = |x| |x~| (phi_dual(cos) + cos phi_dual'(cos)),  cos = x^T x~ / (|x| |x~|);
    0 if x or x~ is 0.

    Args:
        X1: (n1, d) tensor, rows are samples.
        X2: (n2, d) tensor, or None for X2 = X1.

    Returns:
        (n1, n2) tensor, dtype and device of X1.
    """
    ### BEGIN SOLUTION
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    cos = (X1 @ X2.T) / torch.where(norms > 0, norms, torch.ones_like(norms))
    dual, ddual = sphere_terms(cos)
    return norms * (dual + cos * ddual)
    ### END SOLUTION


# %% [markdown]
# **Public checks.** (a) On unit vectors your kernel is the sphere formula `kernels.relu_ntk(xi)`
# (up to about $10^{-8}$: where $x = \tilde x$ a computed cosine can be $1 - 10^{-16}$, and the
# arccos of that is $10^{-8}$, not $0$).
# (b) A wide network's finite-width NTK (the §5 formula at initialisation, `empirical.shallow_ntk`)
# approaches your kernel; its relative error shrinks like $1/\sqrt{k}$, about $0.01$ at
# $k = 20000$, so we only ask for $< 0.1$. (c) The library's kernel agrees to rounding.

# %% nbgrader={"grade": true, "grade_id": "q3_ntk_off_sphere", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
U = dev.randn(6, 4, generator=gen, dtype=torch.float64)
U = U / U.norm(dim=1, keepdim=True)
err_sphere = (relu_ntk_off_sphere(U) - kernels.relu_ntk(U @ U.T)).abs().max().item()
assert err_sphere < 1e-6
print("(a) unit inputs, vs the sphere formula: max error < 1e-6")

X = dev.randn(5, 4, generator=gen, dtype=torch.float64) * torch.tensor(
    [[0.3], [1.0], [2.0], [4.0], [0.0]], dtype=torch.float64)
K = relu_ntk_off_sphere(X)
A, B = network.init_params(4, 20000, generator=gen)
K_wide = empirical.shallow_ntk(A, B, X)
rel_wide = (torch.linalg.norm(K_wide - K) / torch.linalg.norm(K)).item()
print(f"(b) width 20000 vs infinite width: relative error {rel_wide:.2f} (expected ~0.01)")
assert rel_wide < 0.1 and (K[4] == 0).all()

rel_lib = (torch.linalg.norm(K - kernels.ntk(X)) / torch.linalg.norm(K)).item()
assert rel_lib < 1e-6
print("(c) vs kernels.ntk: relative error < 1e-6")
### BEGIN HIDDEN TESTS
GRADE_Q3 = spec.question("q3_ntk_off_sphere", function="relu_ntk_off_sphere",
                         probes=_pair_probes, rtol=1e-6, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## A worked figure
#
# Fix $\tilde x = e_1$ and move $x = r(\cos\theta, \sin\theta)$ around circles of radius $r$. The
# kernel grows linearly in $r$, dips slightly below zero at wide angles and is $0$ at $\theta = \pi$;
# the dots are one network of
# width $k = 4000$ at initialisation, already close.

# %%
theta = torch.linspace(0, math.pi, 61, dtype=torch.float64)
e1 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
A, B = network.init_params(2, 4000, generator=gen)
fig, ax = plt.subplots()
for r in (0.5, 1.0, 2.0):
    Xr = r * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    ax.plot(theta, relu_ntk_off_sphere(Xr, e1)[:, 0], label=f"|x| = {r}")
    ax.plot(theta[::6], empirical.shallow_ntk(A, B, Xr[::6], e1)[:, 0], "k.", ms=4)
ax.set_xlabel(r"angle $\theta$ between $x$ and $e_1$")
ax.set_ylabel(r"$K(x, e_1)$")
ax.legend()
plt.show()
