"""One run of a submission: its private folder, its job file, the child, what it reported.

The folder (a fresh ``tempfile.mkdtemp``) holds ``work/`` (the child's working directory:
job.json with the code cells and probe inputs, harness.py, results.jsonl, a HOME) and
``lib/lecture_ntk`` (a copy of the course package without the grader), and is deleted
afterwards. With ``--sandbox`` the folder is the only part of the file system the child
sees (at ``sandbox.SANDBOX_ROOT``), besides the Python installation, read-only.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from . import sandbox

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MAX_RESULTS_BYTES = 32 * 2**20


def _limits(opts) -> dict:
    limits = {"RLIMIT_AS": opts.memory_mb * 2**20, "RLIMIT_FSIZE": opts.output_mb * 2**20,
              "RLIMIT_CPU": int(opts.timeout_s) + 5, "RLIMIT_CORE": 0}
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC, so it is only set for other users
        limits["RLIMIT_NPROC"] = _threads_now() + 256 * max(1, opts.jobs)
    return limits


def _threads_now() -> int:
    """Threads running on the machine now (RLIMIT_NPROC counts all threads of the user)."""
    total = 0
    for pid in os.listdir("/proc"):
        try:
            total += len(os.listdir(f"/proc/{pid}/task")) if pid.isdigit() else 0
        except OSError:
            pass
    return total


def _prepare(root: Path, cells, sset, skip_cells, skip_questions, opts) -> None:
    work = root / "work"
    (work / "home").mkdir(parents=True)
    shutil.copy2(Path(__file__).with_name("harness.py"), work / "harness.py")
    shutil.copytree(PACKAGE_DIR, root / "lib" / "lecture_ntk",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "grading"))
    job = {"cells": cells, "skip_cells": sorted(skip_cells),
           "skip_questions": sorted(skip_questions),
           "limits": _limits(opts),
           "questions": [{"grade_id": q.grade_id, "function": q.function, "cases": q.cases,
                          "max_numel": q.max_numel} for q in sset.questions]}
    (work / "job.json").write_text(json.dumps(job), encoding="utf-8")


def _command(root: Path, opts) -> tuple[list[str], str]:
    """(argv, home folder as the child sees it)."""
    if not opts.sandbox:
        work = root / "work"
        return [sys.executable, "-I", str(work / "harness.py"), str(work), str(root / "lib")], \
            str(work / "home")
    exe = sandbox.bwrap_available()
    if exe is None:
        raise RuntimeError("--sandbox needs bubblewrap (bwrap) installed and able to create "
                           "namespaces on this machine")
    inner = sandbox.SANDBOX_ROOT
    return sandbox.bwrap_prefix(exe, str(root)) + [
        sys.executable, "-I", f"{inner}/work/harness.py", f"{inner}/work", f"{inner}/lib"], \
        f"{inner}/work/home"


def read_capped(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of a regular file; None if it is missing or not a regular file.

    The submission owns the folder: the file may have been replaced by a FIFO (a plain
    read would block forever), a device or a symbolic link, none of which is followed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size < limit and (chunk := os.read(fd, min(1 << 20, limit - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_events(path: Path) -> tuple[list[dict], list[str]]:
    """The harness's JSON lines (at most MAX_RESULTS_BYTES); malformed lines are noted."""
    raw = read_capped(path, MAX_RESULTS_BYTES + 1)
    if raw is None:
        return [], ["no readable result file was left"]
    notes = ["the result file was larger than allowed; the rest was ignored"] \
        if len(raw) > MAX_RESULTS_BYTES else []
    events = []
    for line in raw[:MAX_RESULTS_BYTES].splitlines():
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            notes.append("a result line was not valid JSON and was ignored")
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            events.append(event)
    return events, notes


def run(cells, sset, skip_cells, skip_questions, opts) -> tuple[list, sandbox.Outcome, list]:
    """Run the harness once on ``cells``; return (events, outcome, notes on the results)."""
    root = Path(tempfile.mkdtemp(prefix="lecture_ntk_grade_"))
    try:
        _prepare(root, cells, sset, skip_cells, skip_questions, opts)
        argv, home = _command(root, opts)
        env = sandbox.scrubbed_env(home, sandbox.new_token())
        outcome = sandbox.run(argv, cwd=str(root / "work"), env=env, timeout_s=opts.timeout_s,
                              stdout=str(root / "stdout.txt"), stderr=str(root / "stderr.txt"))
        events, notes = _read_events(root / "work" / "results.jsonl")
        return events, outcome, notes
    finally:
        if not opts.keep:
            _remove(root)


def _remove(root: Path) -> None:
    """Delete the run's folder, even where the submission took away permissions."""
    for folder, _dirs, _files in os.walk(root):
        try:
            os.chmod(folder, 0o700)
        except OSError:
            pass
    shutil.rmtree(root, ignore_errors=True)


def why(outcome: sandbox.Outcome, timeout_s: float) -> str:
    """Why a run ended before it was done, in words."""
    if outcome.timed_out:
        return f"the time limit of {timeout_s:g} s was reached"
    code = outcome.returncode
    if code is not None and code < 0:
        return f"the process was killed by signal {-code}"
    return f"the process ended early (exit code {code})"
