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
# Values of the wrong type or size: a string for q1, NaN for zero inputs in q2
# (dividing by the norms without a guard), a 3000 x 3000 matrix for q3.
# Expected: q1, q2, q3 wrong.

# %%
import math
import os
import sys

import torch

# %%
def sphere_terms(xi):
    return 'the answer'


def relu_nngp_off_sphere(X1, X2=None):
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    cos = ((X1 @ X2.T) / norms).clamp(-1, 1)
    return norms * (cos * (math.pi - torch.arccos(cos)) + torch.sqrt(1 - cos**2)) / math.pi


def relu_ntk_off_sphere(X1, X2=None):
    return torch.zeros(3000, 3000, dtype=torch.float64)
