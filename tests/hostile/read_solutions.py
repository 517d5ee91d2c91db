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
# No work of its own: looks for the solution masters (through the grader's command
# line and working folder, /proc/PPID/...) and executes their answer cells; zeros if none.
# Expected without --sandbox: graded on the answers it returns, i.e. full marks (the
# sandbox is what stops this); with --sandbox: the masters are invisible, 0 points.

# %%
import math
import os
import sys

import torch

# %%
from pathlib import Path


def candidates():
    found = [Path('/work/main/solutions')]
    try:
        args = Path(f'/proc/{os.getppid()}/cmdline').read_bytes().decode().split('\0')
        found += [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == '--solutions']
        cwd = Path(f'/proc/{os.getppid()}/cwd').resolve()
        found += [p / 'solutions' for p in [cwd, *cwd.parents]]
    except (OSError, IndexError):
        pass
    return found


def sphere_terms(xi):
    return torch.zeros_like(xi), torch.zeros_like(xi)


def relu_nngp_off_sphere(X1, X2=None):
    X2 = X1 if X2 is None else X2
    return torch.zeros(X1.shape[0], X2.shape[0], dtype=X1.dtype)


relu_ntk_off_sphere = relu_nngp_off_sphere
for folder in candidates():
    try:
        text = (folder / '01_relu_off_sphere.py').read_text()
    except OSError:
        continue
    for chunk in text.split('\n# %%'):
        chunk = chunk.partition('\n')[2]  # the rest of the cell marker line is not code
        if 'def ' in chunk:
            try:
                exec(chunk, globals())
            except Exception:
                pass
    print(f'copied the answers from {folder}')
    break
