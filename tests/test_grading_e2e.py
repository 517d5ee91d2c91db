"""The instructor's commands end to end: every solution master gets full marks, every
untouched exercise gets zero without a crash, and the gradebook resumes, regrades one
student only, and survives an interrupted run."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lecture_ntk.grading import assign, grade, notebook

ROOT = Path(__file__).resolve().parents[1]
MASTERS = assign.masters(ROOT / "solutions")


def cli(args, cwd, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(cwd)}
    return subprocess.run([sys.executable, "-m", "lecture_ntk.grading", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def read_rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def by_student(rows) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["student"], []).append(r)
    return out


def test_assign_check_passes():
    done = cli(["assign", "--check"], cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def all_sets(tmp_path_factory):
    """Each master's executed .ipynb and each untouched exercise, graded in one run."""
    tmp = tmp_path_factory.mktemp("sets")
    subs = tmp / "subs"
    subs.mkdir()
    for master in MASTERS:
        shutil.copy(master.with_suffix(".ipynb"), subs / f"sol_{master.stem}.ipynb")
        shutil.copy(ROOT / "exercises" / f"{master.stem}.ipynb", subs / f"ex_{master.stem}.ipynb")
    shutil.copy(ROOT / "exercises" / f"{MASTERS[0].stem}.py", subs / "ex_as_py.py")
    done = cli(["grade", "subs", "--out", "gb.csv", "--feedback", "fb", "--jobs", "2",
                "--timeout", "120", "--quiet"], cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, by_student(read_rows(tmp / "gb.csv"))


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_solutions_get_full_marks(all_sets, master):
    rows = all_sets[1][f"sol_{master.stem}"]
    assert len(rows) >= 2 and all(r["exercise_set"] == master.stem for r in rows)
    assert all(r["status"] == "correct" and r["points"] == r["max_points"] for r in rows), rows


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_untouched_exercises_get_zero(all_sets, master):
    rows = all_sets[1][f"ex_{master.stem}"]
    assert len(rows) >= 2 and all(float(r["max_points"]) > 0 for r in rows)
    assert all(r["points"] == "0" and r["status"] == "not_implemented" for r in rows), rows
    feedback = (all_sets[0] / "fb" / f"ex_{master.stem}.md").read_text()
    assert "**Total: 0 /" in feedback


def test_jupytext_submission_is_read(all_sets):
    rows = all_sets[1]["ex_as_py"]
    assert [r["question"] for r in rows] == [r["question"] for r in
                                            all_sets[1][f"ex_{MASTERS[0].stem}"]]


def _light(path: Path) -> str:
    """Only the setup and answer cells of a notebook (fast to run), as Jupytext text."""
    import jupytext

    nb = notebook.read(path)
    nb.cells = [c for c in nb.cells if "setup" in notebook.tags(c)
                or notebook.nbgrader_meta(c).get("solution")]
    return jupytext.writes(nb, fmt="py:percent")


def _folder(tmp: Path, students) -> Path:
    subs = tmp / "subs"
    subs.mkdir(exist_ok=True)
    stem = MASTERS[0].stem
    for name, good in students.items():
        src = ROOT / ("solutions" if good else "exercises") / f"{stem}.py"
        (subs / f"{name}.py").write_text(_light(src))
    return subs


def _mark(path, student, text):
    rows = read_rows(path)
    for r in rows:
        if r["student"] == student:
            r["reason"] = text
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_resume_and_regrade_replace_only_that_student(tmp_path):
    _folder(tmp_path, {"alice": True, "bob": False})
    args = ["grade", "subs", "--out", "gb.csv", "--feedback", "fb", "--jobs", "2", "--quiet"]
    assert cli(args, cwd=tmp_path).returncode == 0
    _mark(tmp_path / "gb.csv", "alice", "MARK_A")
    _mark(tmp_path / "gb.csv", "bob", "MARK_B")
    _folder(tmp_path, {"carol": True})
    assert cli(args, cwd=tmp_path).returncode == 0                 # resume: only carol is new
    rows = by_student(read_rows(tmp_path / "gb.csv"))
    assert {r["reason"] for r in rows["alice"]} == {"MARK_A"}
    assert {r["reason"] for r in rows["bob"]} == {"MARK_B"}
    assert all(r["status"] == "correct" for r in rows["carol"])
    assert cli(args + ["--regrade", "alice"], cwd=tmp_path).returncode == 0
    after = by_student(read_rows(tmp_path / "gb.csv"))
    assert all(r["status"] == "correct" and r["reason"] == "" for r in after["alice"])
    assert after["bob"] == rows["bob"] and after["carol"] == rows["carol"]


def test_regrading_an_unknown_student_is_refused(tmp_path):
    _folder(tmp_path, {"alice": True})
    with pytest.raises(ValueError, match="nobody"):
        grade.grade(tmp_path / "subs", tmp_path / "gb.csv", None, grade.Options(), ["nobody"])


def test_interrupted_run_resumes(tmp_path):
    _folder(tmp_path, {"s1": True, "s2": False})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    args = [sys.executable, "-m", "lecture_ntk.grading", "grade", "subs", "--out", "gb.csv",
            "--feedback", "fb", "--jobs", "1", "--quiet"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    gb, end = tmp_path / "gb.csv", time.monotonic() + 300
    while time.monotonic() < end and not (gb.exists() and read_rows(gb)):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    end = time.monotonic() + 10                  # the running child dies with the grader
    while time.monotonic() < end and _children_alive():
        time.sleep(0.2)
    assert not _children_alive()
    first = by_student(read_rows(gb))
    assert len(first) == 1                                         # a valid, partial gradebook
    done = cli(args[3:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    final = by_student(read_rows(gb))
    assert set(final) == {"s1", "s2"}
    assert all(final[s] == rows for s, rows in first.items())      # graded once, kept


def _children_alive() -> bool:
    """Whether any process carries the grader's marker in its environment."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"LECTURE_NTK_GRADING_RUN=" in Path(f"/proc/{pid}/environ").read_bytes():
                return True
        except OSError:
            pass
    return False
