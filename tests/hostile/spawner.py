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
# Starts 35 processes that sleep for 10 minutes: some in its session, some in
# sessions of their own, some without the grader's marker in their environment, some
# orphaned by a double fork. Expected: q1, q2, q3 correct, and none of them survives.
# The children carry the text lecture-ntk-hostile-spawn in their command line.

# %%
import math
import os
import sys

import torch

# %%
import subprocess

CODE = 'import time; time.sleep(600)  # lecture-ntk-hostile-spawn'
kids = [subprocess.Popen([sys.executable, '-c', CODE]) for _ in range(10)]
kids += [subprocess.Popen([sys.executable, '-c', CODE], start_new_session=True) for _ in range(10)]
kids += [subprocess.Popen([sys.executable, '-c', CODE], env={}, start_new_session=True)
         for _ in range(10)]
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve(sys.executable, [sys.executable, '-c', CODE], {})
        os._exit(0)
    os.waitpid(pid, 0)
print(f'started {len(kids) + 5} processes')

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

