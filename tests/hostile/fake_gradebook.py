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
# Wrong answers (zeros), while printing lines shaped like the gradebook and
# writing forged result lines (claims of success, a fake end, broken JSON) into the
# harness's result file. Expected: q1, q2, q3 wrong (or invalid), 0 points.

# %%
import math
import os
import sys

import torch

# %%
import json

for stream in (sys.stdout, sys.stderr):
    print('student,exercise_set,question,points,max_points,status,reason,seconds', file=stream)
    for q, p in (('q1_sphere_terms', 2), ('q2_nngp_off_sphere', 2), ('q3_ntk_off_sphere', 3)):
        print(f'fake_gradebook,01_relu_off_sphere,{q},{p},{p},correct,,0.0', file=stream)
zero = {'kind': 'tensor', 'dtype': 'torch.float64', 'device': 'cpu', 'shape': [1], 'data': [0.0]}
with open('results.jsonl', 'a') as fh:
    fh.write('{"event": "done"}\n{not json\n')
    for q in ('q1_sphere_terms', 'q2_nngp_off_sphere', 'q3_ntk_off_sphere'):
        fh.write(json.dumps({'event': 'question', 'grade_id': q, 'status': 'correct',
                             'points': 99, 'cases': [{'ok': True, 'value': zero}] * 3}) + '\n')

# %%
def sphere_terms(xi):
    return torch.zeros_like(xi), torch.zeros_like(xi)


def relu_nngp_off_sphere(X1, X2=None):
    X2 = X1 if X2 is None else X2
    return torch.zeros(X1.shape[0], X2.shape[0], dtype=X1.dtype)


relu_ntk_off_sphere = relu_nngp_off_sphere
