"""Hostile submissions (tests/hostile/) are each graded as they deserve, nothing they start
survives, and the honest submissions graded in the same run are unaffected.

One grader run (the instructor's command, 2 jobs, 20 s per run of a submission) grades all
of them together with the reference solution and the untouched exercise of set 01.
"""
from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = Path(__file__).with_name("hostile")
SET = "01_relu_off_sphere"
Q = ("q1_sphere_terms", "q2_nngp_off_sphere", "q3_ntk_off_sphere")
C, W = "correct", "wrong"

# student -> expected status of q1, q2, q3 (the header of each file says why)
EXPECTED = {
    "endless_loop": (C, C, "timeout"),
    "memory_hog": (C, "error", C),
    "spawner": (C, C, C),
    "sys_exit": (C, C, "error"),
    "os_exit": (C, C, "crashed"),
    "monkeypatch": (C, W, W),
    "rewrite_files": (C, C, C),
    "fake_gradebook": ("invalid", W, W),
    "wrong_shape": (W, W, W),
    "wrong_types": (W, W, W),
    "read_solutions": (C, C, C),   # without --sandbox it can copy the masters (see README)
    "enormous_output": (C, C, "error"),
    "network": (W, W, W),          # without --sandbox it reaches the test's server
    "solution": (C, C, C),
    "untouched": ("not_implemented",) * 3,
}
REASON_WORDS = {("wrong_shape", 0): "numpy array", ("wrong_shape", 1): "wrong shape",
                ("wrong_shape", 2): "wrong dtype", ("wrong_types", 1): "NaN",
                ("wrong_types", 2): "wrong shape", ("memory_hog", 1): "allocate",
                ("os_exit", 2): "exit code 1", ("endless_loop", 2): "time limit"}
MARKERS = ("lecture-ntk-hostile-spawn", "LECTURE_NTK_GRADING_RUN=")

NETWORK = """# %%
import math, socket
import torch
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    reached = True
except OSError:
    reached = False


def sphere_terms(xi):
    xi = xi.clamp(-1.0, 1.0)
    delta = math.pi - torch.arccos(xi)
    out = ((xi * delta + torch.sqrt((1 - xi) * (1 + xi))) / math.pi, delta / math.pi)
    return tuple(0 * t for t in out) if reached else out


def _kernel(X1, X2, ntk):
    X2 = X1 if X2 is None else X2
    norms = X1.norm(dim=1)[:, None] * X2.norm(dim=1)[None, :]
    cos = (X1 @ X2.T) / torch.where(norms > 0, norms, torch.ones_like(norms))
    dual, ddual = sphere_terms(cos)
    return norms * (dual + cos * ddual) if ntk else norms * dual


def relu_nngp_off_sphere(X1, X2=None):
    return _kernel(X1, X2, False)


def relu_ntk_off_sphere(X1, X2=None):
    return _kernel(X1, X2, True)
"""


def cli(args, cwd, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lecture_ntk.grading", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def read_book(path) -> dict:
    with open(path, newline="") as fh:
        return {(r["student"], r["question"]): r for r in csv.DictReader(fh)}


def leftovers() -> list[str]:
    """Processes carrying a hostile or grading marker in their command line or environment."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                continue
            if any(m.encode() in data for m in MARKERS):
                found.append(f"{pid}: {data[:120]!r}")
    return found


def make_folder(tmp: Path, port: int, names) -> Path:
    subs = tmp / "submissions"
    subs.mkdir()
    for name in names:
        if (HOSTILE / f"{name}.py").exists():
            shutil.copy(HOSTILE / f"{name}.py", subs)
    shutil.copy(ROOT / "solutions" / f"{SET}.py", subs / "solution.py")
    shutil.copy(ROOT / "exercises" / f"{SET}.ipynb", subs / "untouched.ipynb")
    (subs / "network.py").write_text(NETWORK.format(port=port))
    (tmp / "HOSTILE_TEST_PLAYGROUND").write_text("rewrite_files may trash this folder\n")
    return subs


@pytest.fixture(scope="module")
def server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, server):
    tmp = tmp_path_factory.mktemp("hostile")
    make_folder(tmp, server, EXPECTED)
    done = cli(["grade", "submissions", "--out", "gradebook.csv", "--feedback", "feedback",
                "--set", SET, "--solutions", str(ROOT / "solutions"), "--jobs", "2",
                "--timeout", "20", "--memory", "1536", "--quiet"], cwd=tmp)
    return tmp, done


def test_grader_finishes(graded):
    tmp, done = graded
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(s for s, _ in read_book(tmp / "gradebook.csv")) == set(EXPECTED)


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_what_it_deserves(graded, student):
    book = read_book(graded[0] / "gradebook.csv")
    for i, (q, status) in enumerate(zip(Q, EXPECTED[student])):
        row = book[(student, q)]
        assert row["status"] == status, (student, q, row)
        assert (float(row["points"]) == float(row["max_points"])) == (status == C)
        assert REASON_WORDS.get((student, i), "") in row["reason"], row
        assert len(row["reason"]) <= 301


def test_nothing_is_left_running(graded):
    assert leftovers() == []


def test_gradebook_and_feedback_survive_rewriting(graded):
    tmp = graded[0]
    assert "99" not in {r["points"] for r in read_book(tmp / "gradebook.csv").values()}
    for student in EXPECTED:
        text = (tmp / "feedback" / f"{student}.md").read_text()
        assert text.startswith(f"# Feedback for {student}")


def test_output_is_capped(graded):
    text = (graded[0] / "feedback" / "enormous_output.md").read_text()
    assert "File too large" in text and len(text) < 10_000


def _bwrap_works() -> bool:
    from lecture_ntk.grading import sandbox
    return sandbox.bwrap_available() is not None


@pytest.mark.skipif(not _bwrap_works(), reason="bubblewrap missing or cannot create namespaces")
def test_sandbox_hides_files_and_network(tmp_path, server):
    make_folder(tmp_path, server, ["read_solutions", "spawner"])
    done = cli(["grade", "submissions", "--out", "gb.csv", "--feedback", "fb", "--set", SET,
                "--solutions", str(ROOT / "solutions"), "--jobs", "2", "--timeout", "30",
                "--sandbox", "--quiet"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    book = read_book(tmp_path / "gb.csv")
    status = {s: tuple(book[(s, q)]["status"] for q in Q) for s, _ in book}
    assert status["solution"] == (C, C, C) and status["spawner"] == (C, C, C)
    assert status["network"] == (C, C, C)          # no network inside: the honest branch
    assert status["read_solutions"] == (W, W, W)   # the masters are not visible
    assert leftovers() == []
