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
# # Exercise set 04 · The Hessian of a wide network is small
#
# Lecture: §4, Proposition 1 and Appendix A (FORMULAS.md §10); notebook 05.
#
# For $f_x(w) = \frac1{\sqrt k}\sum_i A_i\,\phi(B_i x)$ with a scalar input $x$ ($d = 1$) and a
# twice-differentiable $\phi$, only two kinds of second derivatives are nonzero:
# $$\frac{\partial^2 f}{\partial A_i\,\partial B_i} = b_i = \frac{\phi'(B_i x)\,x}{\sqrt k}, \qquad
# \frac{\partial^2 f}{\partial B_i^2} = c_i = \frac{A_i\,\phi''(B_i x)\,x^2}{\sqrt k}.$$
# In the coordinates $(A_i, B_i)$ the Hessian is a direct sum of $k$ blocks
# $\big[\begin{smallmatrix} 0 & b_i \\ b_i & c_i \end{smallmatrix}\big]$. You will compute the blocks, their
# eigenvalues, and see that $\|H\|_2$ shrinks like $1/\sqrt k$ while the NTK does not.
#
# Conventions: `A` has shape `(1, k)`, `B` shape `(k, 1)`, `x` shape `(1,)`, all `float64`;
# `activation` is a name from `lecture_ntk.activations.NAMES` (use a smooth one: ReLU has
# $\phi'' = 0$). Outputs keep dtype and device. Total: 7 points.

# %% tags=["setup"]
import matplotlib.pyplot as plt
import torch

from lecture_ntk import activations, hessian, network, plots, scaling
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## Question 1 (2 points) · The blocks
#
# Write `hessian_blocks(A, B, x, activation)` returning the two vectors $b$ and $c$ of length $k$.
# $\phi'$ and $\phi''$ are `activations.get(activation).dphi` and `.ddphi`.

# %% nbgrader={"grade": false, "grade_id": "q1_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def hessian_blocks(A, B, x, activation):
    """The entries of the 2x2 Hessian blocks [[0, b_i], [b_i, c_i]] of f_x(w) (d = 1).

    b_i = phi'(B_i x) x / sqrt(k),   c_i = A_i phi''(B_i x) x^2 / sqrt(k).

    Args:
        A: (1, k) tensor; B: (k, 1) tensor; x: (1,) tensor; activation: a name.

    Returns:
        (b, c): two (k,) tensors.
    """
    ### BEGIN SOLUTION
    act = activations.get(activation)
    k = A.shape[1]
    z = B[:, 0] * x[0]
    b = act.dphi(z) * x[0] / k**0.5
    c = A[0] * act.ddphi(z) * x[0] ** 2 / k**0.5
    return b, c
    ### END SOLUTION


# %% [markdown]
# **Public check.** The Hessian by automatic differentiation (`hessian.hessian`, in the lecture's
# order $A_1 \dots A_k, B_1 \dots B_k$) has $b_i$ at positions $(i, k+i)$ and $(k+i, i)$, $c_i$ at
# $(k+i, k+i)$, and zeros elsewhere (errors below $10^{-12}$).

# %% nbgrader={"grade": true, "grade_id": "q1_hessian_blocks", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
k = 6
A, B = network.init_params(1, k, generator=gen)
x = torch.tensor([0.8], dtype=torch.float64)
H = hessian.hessian(A, B, x, activation="tanh")
b, c = hessian_blocks(A, B, x, "tanh")
i = torch.arange(k)
H_blocks = torch.zeros_like(H)
H_blocks[i, k + i], H_blocks[k + i, i], H_blocks[k + i, k + i] = b, b, c
assert b.shape == (k,) and c.shape == (k,) and (H - H_blocks).abs().max().item() < 1e-12
print("autograd Hessian = the block matrix built from b and c (max error < 1e-12)")
### BEGIN HIDDEN TESTS
from lecture_ntk.grading import spec


def _net_probes(gen):
    cases = []
    for k, name, x in ((5, "tanh", 0.7), (12, "softplus", -1.3), (3, "sin", 2.0), (4, "erf", 0.0)):
        A, B = network.init_params(1, k, generator=gen)
        cases.append(dict(A=A, B=B, x=torch.tensor([x], dtype=torch.float64), activation=name))
    return cases


GRADE_Q1 = spec.question("q1_hessian_blocks", function="hessian_blocks", probes=_net_probes,
                         rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 2 (3 points) · The eigenvalues
#
# A block $\big[\begin{smallmatrix} 0 & b \\ b & c \end{smallmatrix}\big]$ has trace $c$ and determinant
# $-b^2$, so its eigenvalues are $\lambda_\pm = \big(c \pm \sqrt{c^2 + 4b^2}\big)/2$, one $\ge 0$ and
# one $\le 0$. Write `block_eigenvalues(b, c)` returning all $2k$ eigenvalues of $H$ as one vector,
# **sorted in increasing order**.
#
# *Numerics:* when $|b| \ll |c|$ one root is a difference of nearly equal numbers; computing it
# as $-b^2/\lambda_{\text{other}}$ (the product of the roots is $-b^2$) keeps it accurate.

# %% nbgrader={"grade": false, "grade_id": "q2_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def block_eigenvalues(b, c):
    """All eigenvalues of the direct sum of the blocks [[0, b_i], [b_i, c_i]], sorted.

    lambda_i,+- = (c_i +- sqrt(c_i^2 + 4 b_i^2)) / 2.

    Args:
        b, c: (k,) tensors.

    Returns:
        (2k,) tensor in increasing order.
    """
    ### BEGIN SOLUTION
    s = torch.sqrt(c * c + 4 * b * b)
    big = 0.5 * (c + torch.where(c >= 0, s, -s))
    small = torch.where(big == 0, torch.zeros_like(big), -b * b / torch.where(big == 0, 1.0, big))
    return torch.cat([big, small]).sort().values
    ### END SOLUTION


# %% [markdown]
# **Public check.** Against `torch.linalg.eigvalsh` of the autograd Hessian (below $10^{-12}$), for
# two widths and two activations.

# %% nbgrader={"grade": true, "grade_id": "q2_block_eigenvalues", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
for k, name in ((6, "tanh"), (40, "softplus")):
    A, B = network.init_params(1, k, generator=gen)
    x = torch.tensor([1.3], dtype=torch.float64)
    ours = block_eigenvalues(*hessian_blocks(A, B, x, name))
    auto = torch.linalg.eigvalsh(hessian.hessian(A, B, x, activation=name))
    assert ours.shape == (2 * k,) and (ours - auto).abs().max().item() < 1e-12
    print(f"k = {k}, {name}: closed form vs eigvalsh, max error < 1e-12")
### BEGIN HIDDEN TESTS
def _eig_probes(gen):
    b, c = dev.randn(7, generator=gen), dev.randn(7, generator=gen)
    b[0], c[1], b[2], c[2] = 1e-9, 0.0, 0.0, 0.0          # tiny b, zero c, a zero block
    return [dict(b=b, c=c), dict(b=dev.randn(3, generator=gen), c=-5 * dev.rand(3, generator=gen))]


GRADE_Q2 = spec.question("q2_block_eigenvalues", function="block_eigenvalues",
                         probes=_eig_probes, rtol=1e-8, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 3 (2 points) · The NTK and the Hessian norm side by side
#
# Write `ntk_and_hessian_norm(A, B, x, activation)` returning the pair
# $\big(K(x, x),\ \|H\|_2\big)$ as two python floats, where
# $K(x, x) = |\nabla_w f_x|^2 = \frac1k\sum_i \phi(B_i x)^2 + x^2\,\frac1k\sum_i A_i^2\,\phi'(B_i x)^2$
# and $\|H\|_2 = \max|\lambda|$ over the eigenvalues of Question 2.

# %% nbgrader={"grade": false, "grade_id": "q3_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ntk_and_hessian_norm(A, B, x, activation):
    """(K(x, x), ||H||_2) for the network f_x(w) = A phi(B x) / sqrt(k) with d = 1.

    K(x, x) = (1/k) sum_i phi(B_i x)^2 + x^2 (1/k) sum_i A_i^2 phi'(B_i x)^2;
    ||H||_2 = max |lambda| over the 2k Hessian eigenvalues.

    Args:
        A: (1, k) tensor; B: (k, 1) tensor; x: (1,) tensor; activation: a name.

    Returns:
        (K, norm): two python floats.
    """
    ### BEGIN SOLUTION
    act = activations.get(activation)
    k = A.shape[1]
    z = B[:, 0] * x[0]
    K = ((act.phi(z) ** 2).sum() + x[0] ** 2 * (A[0] ** 2 * act.dphi(z) ** 2).sum()) / k
    norm = block_eigenvalues(*hessian_blocks(A, B, x, activation)).abs().max()
    return K.item(), norm.item()
    ### END SOLUTION


# %% [markdown]
# **Public checks.** $K(x, x)$ equals the squared length of the autograd gradient, and the norm
# equals `hessian.spectral_norm` (both below $10^{-12}$ relative).

# %% nbgrader={"grade": true, "grade_id": "q3_ntk_and_hessian_norm", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
A, B = network.init_params(1, 50, generator=gen)
x = torch.tensor([0.9], dtype=torch.float64)
K, norm = ntk_and_hessian_norm(A, B, x, "tanh")
w = network.flatten(A, B).requires_grad_()
A_w, B_w = network.unflatten(w, k=50, d=1)
(grad,) = torch.autograd.grad(network.forward(A_w, B_w, x[None], activation="tanh")[0, 0], w)
assert isinstance(K, float) and isinstance(norm, float)
assert abs(K - (grad @ grad).item()) < 1e-12 * K
assert abs(norm - hessian.spectral_norm(A, B, x, activation="tanh").item()) < 1e-12 * norm
print("K(x, x) = |grad f|^2 and ||H|| = hessian.spectral_norm, relative errors < 1e-12")
### BEGIN HIDDEN TESTS
GRADE_Q3 = spec.question("q3_ntk_and_hessian_norm", function="ntk_and_hessian_norm",
                         probes=_net_probes, rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## A worked figure
#
# Over widths $k = 10 \dots 10^4$ (mean of 20 draws each), $K(x, x)$ settles to a constant while
# $\|H\|_2$ falls with slope close to $-1/2$ on log-log axes. The norm is a maximum over $k$
# blocks, so it falls a little slower than $1/\sqrt k$ (the largest of $k$ Gaussian-like terms
# grows slowly with $k$).

# %%
widths = [10, 100, 1000, 10000]
x = torch.tensor([1.0], dtype=torch.float64)
K_mean, norm_mean = [], []
for k in widths:
    pairs = [ntk_and_hessian_norm(*network.init_params(1, k, generator=gen), x, "tanh")
             for _ in range(20)]
    K_mean.append(sum(p[0] for p in pairs) / 20)
    norm_mean.append(sum(p[1] for p in pairs) / 20)
slope = scaling.loglog_slope(widths, norm_mean)
assert -0.6 < slope < -0.3
print(f"log-log slope of ||H|| against k: {slope:.1f}; K(x, x) stays near {K_mean[-1]:.1f}")
fig, ax = plt.subplots()
plots.plot_loglog(widths, {"||H||_2": norm_mean, "K(x, x)": K_mean}, ax=ax, xlabel="width k",
                  ref_slope=-0.5)
plt.show()
