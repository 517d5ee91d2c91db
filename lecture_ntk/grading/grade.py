"""Grade submissions: one isolated child per submission, comparison in this process.

For each submission (an ``.ipynb`` or Jupytext ``.py`` file; student = file stem):

1. its code cells are read as text and written, with the probe inputs of every question,
   to job.json in a fresh temporary folder that holds nothing else of the course;
2. ``harness.py`` runs there in a child process (``sandbox.run``: new session, scrubbed
   environment, time/memory/file-size limits, every leftover process killed afterwards,
   optionally inside bubblewrap) and writes the student's outputs as plain numbers;
3. those outputs are validated and compared here with the references computed from the
   solution master (``reference.load``), question by question.

If the child dies or runs out of time inside a cell, that cell is skipped in a rerun; if it
happens inside a question, that question gets zero and the rerun starts at the next one.
So one broken question costs only that question.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from . import assign, attempt, compare, gradebook, notebook, reference, sandbox


@dataclass
class Options:
    """How to grade (the CLI's flags)."""

    solutions: Path = attempt.PACKAGE_DIR.parent / "solutions"
    timeout_s: float = 120.0
    memory_mb: int = 3072
    output_mb: int = 32
    jobs: int = max(1, len(os.sched_getaffinity(0)))
    sandbox: bool = False
    seed: int = reference.DEFAULT_SEED
    max_attempts: int = 4
    set_name: str | None = None
    keep: bool = False
    progress: bool = True


def find_submissions(target) -> dict[str, Path]:
    """{student: file} for one file or every notebook in a folder (student = file stem)."""
    target = Path(target)
    files = [target] if target.is_file() else sorted(
        p for p in target.iterdir() if p.is_file() and p.suffix in notebook.SUFFIXES
        and not p.name.startswith("."))
    found: dict[str, Path] = {}
    for path in files:
        if path.stem in found:
            raise ValueError(f"two submissions for student {path.stem!r}: {found[path.stem].name} "
                             f"and {path.name}; keep one")
        found[path.stem] = path
    return found


def detect_set(nb, known: dict, forced: str | None) -> str | None:
    """The exercise set of a submission: --set, the notebook's metadata, or its grade_ids."""
    if forced:
        return forced
    name = notebook.set_name_of(nb)
    if name in known:
        return name
    ids = notebook.grade_ids(nb)
    best = max(known, key=lambda s: len(known[s] & ids), default=None)
    return best if best is not None and known[best] & ids else None


def _judge(q, event) -> tuple[str, float, str]:
    """(status, points, reason) for one question from the harness's record of it."""
    cases = event.get("cases")
    if not isinstance(cases, list) or len(cases) != len(q.cases):
        return "invalid", 0.0, "the result record of this question was malformed"
    for i, case in enumerate(cases, 1):
        if not isinstance(case, dict):
            return "invalid", 0.0, "the result record of this question was malformed"
        if case.get("ok") is not True:
            status = ("missing" if case.get("missing") else
                      "not_implemented" if case.get("not_implemented") else "error")
            return status, 0.0, f"probe {i}: {case.get('error', 'failed')}"
        try:
            got = compare.parse(case.get("value"))
        except compare.Invalid as exc:
            return "invalid", 0.0, f"probe {i}: unreadable output ({exc})"
        ok, why = compare.compare(q.expected[i - 1], got, rtol=q.rtol, atol=q.atol,
                                  postprocess=q.postprocess)
        if not ok:
            return "wrong", 0.0, f"probe {i}: {why}"
    return "correct", q.points, ""


def _human(index) -> str:
    return str(index + 1) if isinstance(index, int) else "?"


def _seconds(event, default=0.0) -> float:
    s = event.get("seconds", default)
    return min(max(float(s), 0.0), 1e6) if isinstance(s, (int, float)) else default


def _running(events, n_cells, questions) -> tuple[str, object]:
    """What the child was doing when it stopped: ("cell", i), ("question", id) or ("", None)."""
    open_cell, open_q = None, None
    for e in events:
        kind = e["event"]
        if kind == "cell_start" and isinstance(e.get("cell"), int) and 0 <= e["cell"] < n_cells:
            open_cell, open_q = e["cell"], None
        elif kind == "cell_end":
            open_cell = None
        elif kind == "question_start" and e.get("grade_id") in questions:
            open_cell, open_q = None, e["grade_id"]
        elif kind == "question":
            open_q = None
    if open_q is not None:
        return "question", open_q
    return ("cell", open_cell) if open_cell is not None else ("", None)


@dataclass
class Submission:
    """One submission as read before any child runs (so no child can alter it)."""

    student: str
    set_name: str | None
    cells: list | None      # code cell sources; None if unreadable
    problem: str = ""       # why it could not be read or matched to a set


def read_submission(student: str, path: Path, known: dict, forced: str | None) -> Submission:
    """Read a submission's code cells and find its exercise set (text only)."""
    try:
        nb = notebook.read(path)
    except notebook.NotebookError as exc:
        return Submission(student, forced, None, str(exc))
    name = detect_set(nb, known, forced)
    problem = "" if name else "no exercise set recognised (use --set)"
    return Submission(student, name, notebook.code_cells(nb), problem)


def grade_submission(sub: Submission, sset, opts: Options) -> tuple[list, list]:
    """Grade one submission; return (gradebook rows, notes for the feedback file)."""
    qs = {q.grade_id: q for q in sset.questions}
    if sub.cells is None:
        return [gradebook.row(sub.student, sset.name, q.grade_id, 0, q.points, "unreadable",
                              sub.problem, 0) for q in sset.questions], [sub.problem]
    cells = sub.cells
    answers, notes, skip_cells, last_why = {}, [], set(), "the notebook was not run"
    for run_no in range(opts.max_attempts):
        events, outcome, read_notes = attempt.run(cells, sset, skip_cells, set(answers), opts)
        notes += read_notes
        for e in events:
            gid = e.get("grade_id")
            if e["event"] == "cell_end" and e.get("error") and run_no == 0:
                notes.append(f"code cell {_human(e.get('cell'))} raised {e['error']}")
            if e["event"] == "question" and gid in qs and gid not in answers:
                answers[gid] = (*_judge(qs[gid], e), _seconds(e))
        if any(e["event"] == "done" for e in events) or len(answers) == len(qs):
            break
        last_why = attempt.why(outcome, opts.timeout_s)
        kind, what = _running(events, len(cells), qs)
        if kind == "cell" and what not in skip_cells:
            skip_cells.add(what)
            notes.append(f"code cell {what + 1}: {last_why}; it was skipped in a rerun")
        elif kind == "question" and what not in answers:
            status = "timeout" if outcome.timed_out else "crashed"
            answers[what] = (status, 0.0, f"{last_why} while this question ran",
                             outcome.seconds)
        else:
            notes.append(f"the submission stopped before any question was asked: {last_why}")
            break
    rows = []
    for q in sset.questions:
        status, points, reason, secs = answers.get(
            q.grade_id, ("not_run", 0.0, f"not reached: {last_why}", 0.0))
        rows.append(gradebook.row(sub.student, sset.name, q.grade_id, points, q.points, status,
                                  reason, secs))
    return rows, notes


def load_sets(solutions_dir, names, seed: int) -> dict:
    """Load the masters of the named sets and compute their references (before any child)."""
    paths = {p.stem: p for p in assign.masters(solutions_dir)}
    unknown = sorted(set(names) - set(paths))
    if unknown:
        raise ValueError(f"unknown exercise set(s) {unknown}; known: {sorted(paths)}")
    return {name: reference.load(paths[name], seed) for name in sorted(names)}


def _task(sub: Submission, sets: dict, opts: Options):
    if sub.set_name is None:
        row = gradebook.row(sub.student, "?", "-", 0, 0,
                            "unreadable" if sub.cells is None else "unknown_set", sub.problem, 0)
        return sub.student, "?", [row], [sub.problem]
    rows, notes = grade_submission(sub, sets[sub.set_name], opts)
    return sub.student, sub.set_name, rows, notes


def grade(target, out, feedback_dir, opts: Options, regrade=()) -> dict[str, list[dict]]:
    """Grade ``target`` (file or folder) into the gradebook ``out``; resume and regrade.

    Students already in ``out`` are skipped unless named in ``regrade``. Every submission
    is read and every reference computed before the first child starts; the gradebook and
    the student's feedback file are rewritten atomically after each student, and all of
    this run's files once more at the end (a submission may have overwritten them).
    """
    from tqdm.auto import tqdm

    paths = find_submissions(target)
    unknown = sorted(set(regrade) - set(paths))
    if unknown:
        raise ValueError(f"--regrade: no submission for {unknown}")
    book = gradebook.load(out)
    known = {p.stem: notebook.grade_ids(notebook.read(p)) for p in assign.masters(opts.solutions)}
    subs = [read_submission(s, paths[s], known, opts.set_name) for s in paths
            if s not in book or s in regrade]
    sets = load_sets(opts.solutions, {s.set_name for s in subs if s.set_name}, opts.seed)
    if opts.sandbox and sandbox.bwrap_available() is None:
        raise ValueError("--sandbox needs bubblewrap (bwrap) installed and able to create "
                         "namespaces on this machine")
    sandbox.become_subreaper()
    pool, feedback = ThreadPoolExecutor(max_workers=max(1, opts.jobs)), {}
    try:
        with tqdm(total=len(subs), desc="grading", unit="student", disable=not opts.progress,
                  file=sys.stderr) as bar:
            futures = [pool.submit(_task, sub, sets, opts) for sub in subs]
            for fut in as_completed(futures):
                _record(fut.result(), book, out, feedback_dir, feedback)
                bar.update(1)
    except BaseException:  # Ctrl-C or an error: stop the children, keep what is written
        pool.shutdown(wait=False, cancel_futures=True)
        sandbox.kill_live()
        raise
    pool.shutdown()
    gradebook.write(out, book)
    for path, text in feedback.items():
        gradebook.atomic_write(path, text)
    return book


def _record(result, book: dict, out, feedback_dir, feedback: dict) -> None:
    """Store one student's rows; write the gradebook and the feedback file atomically."""
    student, set_name, rows, notes = result
    book[student] = rows
    gradebook.write(out, book)
    if feedback_dir is not None:
        path = Path(feedback_dir) / f"{notebook.safe_name(student)}.md"
        feedback[path] = gradebook.feedback_text(student, set_name, rows, notes)
        gradebook.atomic_write(path, feedback[path])
