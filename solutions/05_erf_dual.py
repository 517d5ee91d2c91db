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
# # Exercise set 05 · The erf network: kernels by Gaussian expectation
#
# Lecture: Theorem 1, dual activations, inputs off the sphere (FORMULAS.md §6, §8, §12); notebook 03.
#
# For a non-homogeneous activation the input lengths do not factor out: the infinite-width
# kernels of $f(x) = \frac1{\sqrt k} A\,\phi(Bx)$ are Gaussian expectations over
# $(u, v) \sim \mathcal N\big(0, \big[\begin{smallmatrix} s_{11} & s_{12} \\ s_{12} & s_{22}\end{smallmatrix}\big]\big)$
# with $s_{11} = |x|^2$, $s_{22} = |\tilde x|^2$, $s_{12} = x^\top\tilde x$:
# $$\Sigma = \mathbb E[\phi(u)\phi(v)], \qquad \dot\Sigma = \mathbb E[\phi'(u)\phi'(v)], \qquad
# K = \Sigma + s_{12}\,\dot\Sigma.$$
# For $\phi = \operatorname{erf}$ both expectations have closed forms. You will write them, check
# them against numerical quadrature (which works for any smooth $\phi$), and build the NTK.
#
# Conventions: `float64` tensors in, same dtype and device out; samples are rows. Total: 7 points.

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from lecture_ntk import activations, empirical, kernels, network, plots
from lecture_ntk import device as dev

device = dev.get_device()
gen = dev.make_generator(0)
plots.set_style()

# %% [markdown]
# ## Question 1 (2 points) · The closed forms for erf
#
# $$\Sigma = \frac2\pi \arcsin\frac{2 s_{12}}{\sqrt{(1 + 2 s_{11})(1 + 2 s_{22})}}, \qquad
# \dot\Sigma = \frac4\pi\,\frac1{\sqrt{(1 + 2 s_{11})(1 + 2 s_{22}) - 4 s_{12}^2}}.$$
# Write `erf_expectations(s11, s22, s12)` for tensors of one common shape (entrywise).

# %% nbgrader={"grade": false, "grade_id": "q1_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def erf_expectations(s11, s22, s12):
    """E[erf(u) erf(v)] and E[erf'(u) erf'(v)] for (u, v) ~ N(0, [[s11, s12], [s12, s22]]).

    Sigma = (2/pi) arcsin(2 s12 / sqrt((1 + 2 s11)(1 + 2 s22))),
    Sigma_dot = (4/pi) / sqrt((1 + 2 s11)(1 + 2 s22) - 4 s12^2).

    Args:
        s11, s22, s12: tensors of one shape (variances >= 0, |s12| <= sqrt(s11 s22)).

    Returns:
        (Sigma, Sigma_dot): two tensors of that shape.
    """
    ### BEGIN SOLUTION
    q = (1 + 2 * s11) * (1 + 2 * s22)
    sigma = (2 / math.pi) * torch.asin(2 * s12 / torch.sqrt(q))
    return sigma, (4 / math.pi) / torch.sqrt(q - 4 * s12**2)
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Against a Monte Carlo estimate from $10^6$ draws (within 5 standard errors)
# and against `kernels.gaussian_expectations` (below $10^{-12}$).

# %% nbgrader={"grade": true, "grade_id": "q1_erf_expectations", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
s11, s22, s12 = (torch.tensor([v], dtype=torch.float64) for v in (1.5, 0.7, 0.6))
S, S_dot = erf_expectations(s11, s22, s12)
z = dev.randn(10**6, 2, generator=gen)
u = z[:, 0] * math.sqrt(1.5)
v = (0.6 / math.sqrt(1.5)) * z[:, 0] + math.sqrt(0.7 - 0.36 / 1.5) * z[:, 1]
erf = activations.get("erf")
for name, ours, samples in (("Sigma", S, torch.erf(u) * torch.erf(v)),
                            ("Sigma_dot", S_dot, erf.dphi(u) * erf.dphi(v))):
    se = samples.std().item() / 1000
    assert abs(ours.item() - samples.mean().item()) < 5 * se
    print(f"{name}: closed form {ours.item():.3f}, Monte Carlo within 5 standard errors")
lib = kernels.gaussian_expectations("erf", s11, s22, s12)
assert max((S - lib[0]).abs().item(), (S_dot - lib[1]).abs().item()) < 1e-12
print("vs kernels.gaussian_expectations: max error < 1e-12")
### BEGIN HIDDEN TESTS
from lecture_ntk.grading import spec


def _cov_probes(gen):
    X1, X2 = dev.randn(12, 3, generator=gen), dev.randn(12, 3, generator=gen)
    X2[:3] = X1[:3]                          # equal inputs: s12^2 = s11 s22
    X2[3] = 0.0
    X1 = X1 * (0.1 + 3 * dev.rand(12, 1, generator=gen))
    s11, s22, s12 = (X1 * X1).sum(1), (X2 * X2).sum(1), (X1 * X2).sum(1)
    return [dict(s11=s11, s22=s22, s12=s12),
            dict(s11=s11[:4].reshape(2, 2), s22=s22[:4].reshape(2, 2), s12=s12[:4].reshape(2, 2))]


GRADE_Q1 = spec.question("q1_erf_expectations", function="erf_expectations", probes=_cov_probes,
                         rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 2 (2 points) · Any smooth activation, by Gauss-Hermite quadrature
#
# Write $u = \sqrt{s_{11}}\,z_1$ and $v = \frac{s_{12}}{\sqrt{s_{11}}} z_1 + \sqrt{s_{22} - s_{12}^2/s_{11}}\; z_2$
# with independent standard Gaussians $z_1, z_2$ (a Cholesky factor of the covariance). With
# probabilists' Hermite nodes and weights `z, w = numpy.polynomial.hermite_e.hermegauss(deg)`,
# normalised so that the weights sum to 1, $\mathbb E[g(z_1, z_2)] \approx \sum_{i,j} w_i w_j\, g(z_i, z_j)$.
# Write `quadrature_expectations(activation, s11, s22, s12, deg)` for scalars (python floats)
# and return two python floats. Clamp $s_{22} - s_{12}^2/s_{11}$ at $0$ (equal inputs make it
# zero up to rounding) and assume $s_{11} > 0$.

# %% nbgrader={"grade": false, "grade_id": "q2_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quadrature_expectations(activation, s11, s22, s12, deg=40):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) by tensor-product Gauss-Hermite quadrature.

    u = sqrt(s11) z1,  v = (s12 / sqrt(s11)) z1 + sqrt(max(s22 - s12^2 / s11, 0)) z2,
    E[g] ~ sum_ij w_i w_j g(z_i, z_j) with normalised probabilists' Hermite weights.

    Args:
        activation: a name from lecture_ntk.activations.NAMES (a smooth one).
        s11 > 0, s22 >= 0, s12: python floats; deg: number of nodes per axis.

    Returns:
        (Sigma, Sigma_dot) as python floats.
    """
    ### BEGIN SOLUTION
    act = activations.get(activation)
    nodes, weights = np.polynomial.hermite_e.hermegauss(deg)
    z = torch.as_tensor(nodes, dtype=torch.float64)
    w = torch.as_tensor(weights / weights.sum(), dtype=torch.float64)
    z1, z2, ww = z[:, None], z[None, :], w[:, None] * w[None, :]
    u = math.sqrt(s11) * z1 + 0 * z2
    v = (s12 / math.sqrt(s11)) * z1 + math.sqrt(max(s22 - s12**2 / s11, 0.0)) * z2
    sigma = (ww * act.phi(u) * act.phi(v)).sum().item()
    sigma_dot = (ww * act.dphi(u) * act.dphi(v)).sum().item()
    return sigma, sigma_dot
    ### END SOLUTION


# %% [markdown]
# **Public checks.** For erf your quadrature matches Question 1 (below $10^{-8}$ at `deg=80`; at 40
# nodes the error is still about $10^{-7}$ for equal inputs),
# and for tanh it matches `kernels.gaussian_expectations` (below $10^{-6}$ at 80 nodes).

# %% nbgrader={"grade": true, "grade_id": "q2_quadrature_expectations", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
for s11, s22, s12 in ((1.5, 0.7, 0.6), (0.3, 2.0, -0.7), (1.0, 1.0, 1.0)):
    quad = quadrature_expectations("erf", s11, s22, s12, 80)
    exact = erf_expectations(*(torch.tensor(v, dtype=torch.float64) for v in (s11, s22, s12)))
    assert max(abs(q - e.item()) for q, e in zip(quad, exact)) < 1e-8
quad = quadrature_expectations("tanh", 1.5, 0.7, 0.6, 80)
lib = kernels.gaussian_expectations("tanh", *(torch.tensor([v], dtype=torch.float64)
                                              for v in (1.5, 0.7, 0.6)))
assert isinstance(quad[0], float) and max(abs(q - e.item()) for q, e in zip(quad, lib)) < 1e-6
print("erf: quadrature vs closed form < 1e-8; tanh: vs kernels.gaussian_expectations < 1e-6")
### BEGIN HIDDEN TESTS
def _quad_probes(gen):
    cases = []
    for name, deg in (("erf", 40), ("tanh", 30), ("sin", 24), ("erf", 8)):
        x, y = dev.randn(2, 3, generator=gen)
        cases.append(dict(activation=name, s11=(x @ x).item(), s22=(y @ y).item(),
                          s12=(x @ y).item(), deg=deg))
    x = dev.randn(3, generator=gen)
    cases.append(dict(activation="tanh", s11=(x @ x).item(), s22=(x @ x).item(),
                      s12=(x @ x).item(), deg=20))
    return cases


GRADE_Q2 = spec.question("q2_quadrature_expectations", function="quadrature_expectations",
                         probes=_quad_probes, rtol=1e-7, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Question 3 (3 points) · The NTK of the erf network
#
# Put the pieces together for all pairs of rows at once:
# $K(x, \tilde x) = \Sigma + (x^\top\tilde x)\,\dot\Sigma$ with $s_{11} = |x|^2$, $s_{22} = |\tilde x|^2$,
# $s_{12} = x^\top\tilde x$. Write `erf_ntk(X1, X2)` using `erf_expectations`.

# %% nbgrader={"grade": false, "grade_id": "q3_code", "locked": false, "schema_version": 3, "solution": true, "task": false}
def erf_ntk(X1, X2):
    """The infinite-width NTK of f(x) = A erf(B x) / sqrt(k) for inputs of any length.

    K(x, x~) = Sigma + (x^T x~) Sigma_dot, with the expectations of erf_expectations at
    s11 = |x|^2, s22 = |x~|^2, s12 = x^T x~.

    Args:
        X1: (n1, d) tensor; X2: (n2, d) tensor.

    Returns:
        (n1, n2) tensor.
    """
    ### BEGIN SOLUTION
    s12 = X1 @ X2.T
    s11 = (X1 * X1).sum(1)[:, None].expand_as(s12)
    s22 = (X2 * X2).sum(1)[None, :].expand_as(s12)
    sigma, sigma_dot = erf_expectations(s11, s22, s12)
    return sigma + s12 * sigma_dot
    ### END SOLUTION


# %% [markdown]
# **Public checks.** Against `kernels.ntk(..., activation="erf")` (below $10^{-12}$), and against
# a network of width 20000 (the §5 formula at initialisation): relative error about $0.01$.

# %% nbgrader={"grade": true, "grade_id": "q3_erf_ntk", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
X = dev.randn(5, 3, generator=gen) * torch.tensor([[0.2], [0.5], [1.0], [2.0], [4.0]],
                                                    dtype=torch.float64)
K = erf_ntk(X, X)
rel_lib = (torch.linalg.norm(K - kernels.ntk(X, X, activation="erf")) / torch.linalg.norm(K)).item()
A, B = network.init_params(3, 20000, generator=gen)
K_wide = empirical.shallow_ntk(A, B, X, activation="erf")
rel_wide = (torch.linalg.norm(K_wide - K) / torch.linalg.norm(K)).item()
assert K.shape == (5, 5) and rel_lib < 1e-12 and rel_wide < 0.1
print(f"vs kernels.ntk: relative error < 1e-12; width 20000: relative error {rel_wide:.2f}")
### BEGIN HIDDEN TESTS
def _ntk_probes(gen):
    X1 = dev.randn(5, 3, generator=gen) * (0.1 + 3 * dev.rand(5, 1, generator=gen))
    X1[1] = 0.0
    X2 = torch.cat([dev.randn(2, 3, generator=gen), X1[:1], -X1[2:3]])
    zero = torch.zeros(1, 6, dtype=torch.float64)
    return [dict(X1=X1, X2=X2), dict(X1=dev.randn(3, 6, generator=gen), X2=zero)]


GRADE_Q3 = spec.question("q3_erf_ntk", function="erf_ntk", probes=_ntk_probes,
                         rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## A worked figure
#
# Unlike ReLU, erf saturates: scaling both inputs by $r$ does not scale the kernel by $r^2$. Along
# a circle of radius $r$ around the origin (angle $\theta$ to a fixed input of the same length) the
# normalised kernel $K/r^2$ changes shape with $r$; the dots are a network of width 4000.

# %%
theta = torch.linspace(0, math.pi, 61, dtype=torch.float64)
A, B = network.init_params(2, 4000, generator=gen)
fig, ax = plt.subplots()
for r in (0.5, 1.0, 3.0):
    Xr = r * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    ax.plot(theta, erf_ntk(Xr, Xr[:1])[:, 0] / r**2, label=f"|x| = {r}")
    ax.plot(theta[::6], empirical.shallow_ntk(A, B, Xr[::6], Xr[:1], activation="erf")[:, 0] / r**2,
            "k.", ms=4)
ax.set_xlabel(r"angle $\theta$ between $x$ and $\tilde x$")
ax.set_ylabel(r"$K(x, \tilde x) / r^2$")
ax.legend()
plt.show()
