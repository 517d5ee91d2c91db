"""The gradebook CSV and the per-student feedback files, written so that nothing is lost.

- One CSV row per student and question: student, exercise_set, question, points,
  max_points, status, reason, seconds.
- Every write goes to a temporary file in the same folder, is flushed to disk and then
  renamed over the old file (``os.replace``), so a reader (or a crash) sees either the old
  or the new gradebook, never half of one.
- ``load`` reads an existing gradebook back (malformed rows are dropped) so that an
  interrupted run resumes, and ``merge`` replaces exactly the rows of the students regraded.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

FIELDS = ("student", "exercise_set", "question", "points", "max_points", "status", "reason",
          "seconds")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean(text, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, safe in a spreadsheet cell."""
    text = " ".join(str(text).split())[:limit]
    return "'" + text if text.startswith(_FORMULA_START) else text


def atomic_write(path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path) -> dict[str, list[dict]]:
    """Rows of an existing gradebook grouped by student ({} if there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    rows: dict[str, list[dict]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path}: not a gradebook of this grader (columns "
                             f"{reader.fieldnames}); move it away or choose another --out")
        for row in reader:
            if all(isinstance(row.get(f), str) for f in FIELDS) and row["student"]:
                rows.setdefault(row["student"], []).append({f: row[f] for f in FIELDS})
    return rows


def render(rows_by_student: dict[str, list[dict]]) -> str:
    """The CSV text, students sorted by name, questions in their stored order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for student in sorted(rows_by_student):
        for row in rows_by_student[student]:
            writer.writerow({f: row[f] for f in FIELDS})
    return buf.getvalue()


def write(path, rows_by_student: dict[str, list[dict]]) -> None:
    """Write the whole gradebook atomically."""
    atomic_write(path, render(rows_by_student))


def row(student, set_name, question, points, max_points, status, reason, seconds) -> dict:
    """One gradebook row with every field formatted as text."""
    return {"student": clean(student, 200), "exercise_set": clean(set_name, 100),
            "question": clean(question, 100), "points": f"{points:g}",
            "max_points": f"{max_points:g}", "status": status, "reason": clean(reason),
            "seconds": f"{seconds:.3f}"}


def feedback_text(student: str, set_name: str, rows: list[dict], notes: list[str]) -> str:
    """Markdown feedback for one student: total, one line per question, remarks."""
    got = sum(float(r["points"]) for r in rows)
    most = sum(float(r["max_points"]) for r in rows)
    lines = [f"# Feedback for {student}", "", f"Exercise set: `{set_name}`", "",
             f"**Total: {got:g} / {most:g} points**", "",
             "| question | points | status | reason |", "| --- | --- | --- | --- |"]
    for r in rows:
        reason = r["reason"].replace("|", "/") or "-"
        lines.append(f"| {r['question']} | {r['points']} / {r['max_points']} | {r['status']} "
                     f"| {reason} |")
    if notes:
        lines += ["", "## Notes on your notebook", ""] + [f"- {clean(n, 400)}" for n in notes]
    return "\n".join(lines) + "\n"
