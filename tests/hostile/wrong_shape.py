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
# Right numbers in the wrong container: numpy arrays for q1, the transposed
# matrix for q2, float32 for q3. Expected: q1, q2, q3 wrong.

# %%
import math
import os
import sys

import torch

# %%
def _terms(xi):
    xi = xi.clamp(-1.0, 1.0)
    delta = math.pi - torch.arccos(xi)
    return (xi * delta + torch.sqrt((1 - xi) * (1 + xi))) / math.pi, delta / math.pi


def _kernel(X1, X2, ntk):
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    cos = (X1 @ X2.T) / torch.where(norms > 0, norms, torch.ones_like(norms))
    dual, ddual = _terms(cos)
    return norms * (dual + cos * ddual) if ntk else norms * dual


def sphere_terms(xi):
    return tuple(t.numpy() for t in _terms(xi))


def relu_nngp_off_sphere(X1, X2=None):
    return _kernel(X1, X2, ntk=False).T


def relu_ntk_off_sphere(X1, X2=None):
    return _kernel(X1, X2, ntk=True).float()
