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
# Wrong answers for q2 and q3, and every comparison function of numpy, torch and
# math patched to say 'equal'. Expected: q1 correct, q2 wrong, q3 wrong.

# %%
import math
import os
import sys

import torch

# %%
import builtins
import json

import numpy

always = lambda *a, **k: True  # noqa: E731
silent = lambda *a, **k: None  # noqa: E731
numpy.allclose = numpy.isclose = numpy.array_equal = always
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = silent
torch.allclose = torch.isclose = torch.equal = always
torch.testing.assert_close = silent
torch.Tensor.__eq__ = always
torch.Tensor.__ne__ = lambda *a, **k: False
math.isclose = always
builtins.abs = lambda x: 0.0
json.loads = lambda *a, **k: {'status': 'correct'}

# %%
def sphere_terms(xi):
    xi = xi.clamp(-1.0, 1.0)
    delta = math.pi - torch.arccos(xi)
    return (xi * delta + torch.sqrt((1 - xi) * (1 + xi))) / math.pi, delta / math.pi


def _norms_cos(X1, X2):
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    return norms, (X1 @ X2.T) / torch.where(norms > 0, norms, torch.ones_like(norms))



def relu_nngp_off_sphere(X1, X2=None):
    norms, cos = _norms_cos(X1, X2)
    return sphere_terms(cos)[0]            # forgets the norms


def relu_ntk_off_sphere(X1, X2=None):
    norms, cos = _norms_cos(X1, X2)
    return norms * sphere_terms(cos)[0]    # forgets the correction term
