"""Unit tests of the grading package: markers, generation, plain data, comparison,
gradebook, the harness and the process cleanup (fast: no submission notebook is run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lecture_ntk.grading import assign, compare, gradebook, notebook, reference, sandbox
from lecture_ntk.grading.harness import from_plain, to_plain

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"


# ------------------------------------------------------------------ markers and generation

CELL = """def f(x):
    \"\"\"Doc.\"\"\"
    ### BEGIN SOLUTION
    y = x + 1
    return y
    ### END SOLUTION
assert f(1) == 2
### BEGIN HIDDEN TESTS
secret = 42
### END HIDDEN TESTS"""


def test_strip_solutions_keeps_indentation_and_drops_hidden():
    out = notebook.strip_solutions(CELL, code=True)
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in out
    assert "y = x + 1" not in out and "secret" not in out and "###" not in out
    assert out.startswith('def f(x):\n    """Doc."""') and "assert f(1) == 2" in out


def test_strip_solutions_in_markdown():
    text = "Explain.\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"
    assert notebook.strip_solutions(text, code=False) == "Explain.\nYOUR ANSWER HERE"


def test_hidden_blocks_are_dedented():
    assert notebook.hidden_blocks("if True:\n    ### BEGIN HIDDEN TESTS\n    a = 1\n"
                                  "    ### END HIDDEN TESTS") == ["a = 1"]


@pytest.mark.parametrize("text", ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION",
                                  "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unbalanced_markers_are_refused(text):
    with pytest.raises(notebook.NotebookError, match="cell"):
        notebook.strip_solutions(text, code=True)


def test_masters_exist_with_paired_executed_notebooks():
    masters = assign.masters(SOLUTIONS)
    assert masters, "no exercise set in solutions/"
    for master in masters:
        nb = json.loads(master.with_suffix(".ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
        assert all(c["execution_count"] is not None for c in code), f"{master.name}: not executed"


def test_committed_exercises_are_what_solutions_generate():
    assert assign.check(SOLUTIONS, EXERCISES) == []


def test_no_exercise_contains_solution_text():
    assert assign.leaks(SOLUTIONS, EXERCISES) == []


def test_check_and_leaks_notice_a_hand_edited_exercise(tmp_path):
    assign.generate(SOLUTIONS, tmp_path)
    assert assign.check(SOLUTIONS, tmp_path) == []
    master = assign.masters(SOLUTIONS)[0]
    secret = next(line for cell in notebook.read(master).cells
                  for line in notebook.solution_lines(notebook.source(cell))
                  if len(line.strip()) >= 12)
    target = tmp_path / f"{master.stem}.py"
    target.write_text(target.read_text() + "\n# %%\n" + secret.strip() + "\n")
    assert any("differs" in p for p in assign.check(SOLUTIONS, tmp_path))
    assert any("solution line" in p for p in assign.leaks(SOLUTIONS, tmp_path))
    (tmp_path / "99_stale.py").write_text("# stale\n")
    assert any("no master" in p for p in assign.check(SOLUTIONS, tmp_path))


def test_exercises_have_header_metadata_and_no_outputs():
    for master in assign.masters(SOLUTIONS):
        nb = notebook.read(EXERCISES / f"{master.stem}.ipynb")
        assert "do not edit" in notebook.source(nb.cells[0])
        assert notebook.set_name_of(nb) == master.stem
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert "NotImplementedError" in "".join(notebook.code_cells(nb))


# ------------------------------------------------------------------ plain data and comparison

def test_plain_round_trip_is_exact():
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    case = {"X": x, "n": 3, "name": "relu", "none": None, "pair": (x[0], 2.5)}
    back = from_plain(json.loads(json.dumps(to_plain(case))))
    assert torch.equal(back["X"], x) and back["X"].dtype == torch.float64
    assert back["n"] == 3 and back["name"] == "relu" and back["none"] is None
    assert isinstance(back["pair"], tuple) and torch.equal(back["pair"][0], x[0])
    from lecture_ntk.grading.spec import Seed
    g1, g2 = from_plain(to_plain(Seed(7))), torch.Generator().manual_seed(7)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))


def _value(x):
    return compare.parse(json.loads(json.dumps(to_plain(x))))


REF = torch.arange(6, dtype=torch.float64).reshape(2, 3)


@pytest.mark.parametrize("got, words", [
    (REF.float(), "wrong dtype"), (REF.T.contiguous(), "wrong shape"),
    (REF.numpy(), "numpy array"), ("text", "expected a torch.Tensor"),
    (REF + 1, "entries differ"), (REF * float("nan"), "NaN or inf"),
    (torch.empty(2, 3, device="meta", dtype=torch.float64), "wrong device")])
def test_compare_names_what_is_wrong(got, words):
    ok, why = compare.compare(_value(REF), _value(got), rtol=1e-8, atol=1e-10)
    assert not ok and words in why


def test_compare_accepts_within_tolerance_and_tuples():
    ok, why = compare.compare(_value((REF, 1.0)), _value((REF * (1 + 1e-12), 1.0 + 1e-13)),
                              rtol=1e-8, atol=0)
    assert ok, why
    ok, why = compare.compare(_value((REF, 1.0)), _value((REF,)), rtol=1e-8, atol=0)
    assert not ok and "tuple of 2" in why


@pytest.mark.parametrize("obj", [
    None, [], {"kind": 3}, {"kind": "tensor", "dtype": "torch.float64", "device": "cpu",
                            "shape": [2], "data": [1.0]},
    {"kind": "tensor", "dtype": "x", "device": "cpu", "shape": [1], "data": ["1"]},
    {"kind": "tensor", "dtype": "x", "device": "cpu", "shape": [-1], "data": []},
    {"kind": "number", "value": True}, {"kind": "unknown"}])
def test_parse_rejects_malformed_values(obj):
    with pytest.raises(compare.Invalid):
        compare.parse(obj)


# ------------------------------------------------------------------ references

def test_reference_questions_and_points_come_from_the_master():
    master = assign.masters(SOLUTIONS)[0]
    a, b = reference.load(master), reference.load(master)
    nb = notebook.read(master)
    points = {notebook.nbgrader_meta(c)["grade_id"]: notebook.nbgrader_meta(c)["points"]
              for c in nb.cells if notebook.nbgrader_meta(c).get("grade")}
    assert {q.grade_id: q.points for q in a.questions} == points
    assert a.max_points == sum(points.values()) and len(a.questions) >= 2
    assert [q.cases for q in a.questions] == [q.cases for q in b.questions]   # seeded
    other = reference.load(master, seed=1)
    assert [q.cases for q in a.questions] != [q.cases for q in other.questions]


# ------------------------------------------------------------------ gradebook

def _rows(student, reason=""):
    return [gradebook.row(student, "01", "q1", 1, 2, "wrong", reason, 0.5)]


def test_gradebook_round_trip_and_cleaning(tmp_path):
    path = tmp_path / "gb.csv"
    book = {"bob": _rows("bob", "=HYPERLINK(\"x\")\nsecond line"), "al,ice": _rows("al,ice")}
    gradebook.write(path, book)
    back = gradebook.load(path)
    assert set(back) == {"bob", "al,ice"}
    assert back["bob"][0]["reason"] == "'=HYPERLINK(\"x\") second line"
    assert list(tmp_path.iterdir()) == [path]


def test_gradebook_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "gb.csv"
    gradebook.write(path, {"a": _rows("a")})
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        gradebook.write(path, {"a": _rows("a"), "b": _rows("b")})
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path]


def test_gradebook_refuses_a_foreign_csv(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("name,score\nx,1\n")
    with pytest.raises(ValueError, match="columns"):
        gradebook.load(path)


# ------------------------------------------------------------------ harness and cleanup

def _run_harness(tmp_path, cells, questions):
    work = tmp_path / "work"
    work.mkdir()
    job = {"cells": cells, "skip_cells": [], "skip_questions": [], "questions": questions,
           "limits": {"RLIMIT_AS": 2**31, "RLIMIT_FSIZE": 2**20, "RLIMIT_CPU": 30}}
    (work / "job.json").write_text(json.dumps(job))
    harness = Path(sandbox.__file__).with_name("harness.py")
    env = sandbox.scrubbed_env(str(work), sandbox.new_token())
    out = sandbox.run([sys.executable, "-I", str(harness), str(work), str(tmp_path)],
                      cwd=str(work), env=env, timeout_s=30, stdout=str(tmp_path / "out"),
                      stderr=str(tmp_path / "err"))
    lines = (work / "results.jsonl").read_text().splitlines()
    return out, [json.loads(line) for line in lines]


def test_harness_runs_cells_past_errors_and_reports_plain_values(tmp_path):
    cells = ["x = 1", "raise ValueError('boom')", "import sys; sys.exit(2)",
             "def f(a):\n    return a + x", "%matplotlib inline\ng = 3"]
    questions = [{"grade_id": "q", "function": "f", "max_numel": 10,
                  "cases": [to_plain({"a": 2})]},
                 {"grade_id": "m", "function": "missing", "max_numel": 10,
                  "cases": [to_plain({"a": 2})]}]
    out, events = _run_harness(tmp_path, cells, questions)
    assert out.returncode == 0 and not out.timed_out
    errors = [e["error"] for e in events if e["event"] == "cell_end"]
    assert errors[0] is None and "ValueError: boom" in errors[1] and "SystemExit" in errors[2]
    assert errors[4] is None  # the magic became `pass`
    answer = next(e for e in events if e.get("grade_id") == "q" and e["event"] == "question")
    assert answer["cases"] == [{"ok": True, "value": {"kind": "number", "value": 3}}]
    missing = next(e for e in events if e.get("grade_id") == "m" and e["event"] == "question")
    assert missing["cases"][0]["missing"] and events[-1] == {"event": "done"}


LEAVER = """
import os, subprocess, sys, time
MARK = "lecture-ntk-unit-leftover"
code = "import time; time.sleep(300)  # " + MARK
subprocess.Popen([sys.executable, "-c", code], env={}, start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, [sys.executable, "-c", code], {})
    os._exit(0)
time.sleep(SECONDS)
"""

SUPERVISOR = """
import sys
from lecture_ntk.grading import sandbox
sandbox.become_subreaper()
env = sandbox.scrubbed_env(sys.argv[2], sandbox.new_token())
out = sandbox.run([sys.executable, "-c", open(sys.argv[1]).read()], cwd=sys.argv[2], env=env,
                  timeout_s=float(sys.argv[3]), stdout=sys.argv[2] + "/o",
                  stderr=sys.argv[2] + "/e")
print(out.killed, out.timed_out)
"""


def _leftovers(mark: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("sleep_s, timeout_s", [(1, 60), (300, 5)])
def test_nothing_survives_a_run(tmp_path, sleep_s, timeout_s):
    """Escapes by setsid, a clean environment and a double fork are all killed, whether the
    child ends by itself or is stopped by the time limit."""
    (tmp_path / "leaver.py").write_text(LEAVER.replace("SECONDS", str(sleep_s)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SUPERVISOR, str(tmp_path / "leaver.py"),
                           str(tmp_path), str(timeout_s)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    killed, timed_out = done.stdout.split()
    assert timed_out == str(sleep_s > timeout_s) and int(killed) >= 2
    assert _leftovers("lecture-ntk-unit-leftover") == []


def test_bwrap_command_shows_only_the_folder_and_python():
    cmd = sandbox.bwrap_prefix("bwrap", "/tmp/x")
    assert cmd[:2] == ["bwrap", "--unshare-all"] and "--die-with-parent" in cmd
    writable = [cmd[i + 1:i + 3] for i, a in enumerate(cmd) if a == "--bind"]
    assert writable == [["/tmp/x", sandbox.SANDBOX_ROOT]]
    readable = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--ro-bind"]
    assert str(ROOT) not in readable and str(SOLUTIONS) not in readable


def test_result_file_replaced_by_a_fifo_or_link_is_not_followed(tmp_path):
    from lecture_ntk.grading import attempt
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to("/dev/zero")
    (tmp_path / "big").write_bytes(b"x" * 5000)
    assert attempt.read_capped(tmp_path / "fifo", 100) is None      # would block forever
    assert attempt.read_capped(tmp_path / "link", 100) is None
    assert attempt.read_capped(tmp_path / "missing", 100) is None
    assert attempt.read_capped(tmp_path / "big", 100) == b"x" * 100
