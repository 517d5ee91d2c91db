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
# os._exit in the middle of the notebook, and inside q3.
# Expected: the cell is skipped in a rerun; q1, q2 correct; q3 crashed.

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
os._exit(0)

# %%
def relu_nngp_off_sphere(X1, X2=None):
    norms, cos = _norms_cos(X1, X2)
    return norms * sphere_terms(cos)[0]



def relu_ntk_off_sphere(X1, X2=None):
    os._exit(1)
