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
# Hostile submission for exercise set 01 (tests/test_grading_hostile.py).
# Allocates until the memory limit stops it, in a cell and in q2.
# Expected: q1 correct, q2 error (out of memory), q3 correct.

# %%
import math
import os
import sys

import torch

# %%
def sphere_terms(xi):
    xi = xi.clamp(-1.0, 1.0)
    delta = math.pi - torch.arccos(xi)
    return (xi * delta + torch.sqrt((1 - xi) * (1 + xi))) / math.pi, delta / math.pi


def _norms_cos(X1, X2):
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    return norms, (X1 @ X2.T) / torch.where(norms > 0, norms, torch.ones_like(norms))


# %%
hog = []
while True:
    hog.append(bytearray(128 * 2**20))

# %%
del hog


def relu_nngp_off_sphere(X1, X2=None):
    return torch.empty(2**40, dtype=torch.float64)


# %%
def relu_ntk_off_sphere(X1, X2=None):
    norms, cos = _norms_cos(X1, X2)
    dual, ddual = sphere_terms(cos)
    return norms * (dual + cos * ddual)

