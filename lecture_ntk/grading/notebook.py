"""Reading notebooks and handling nbgrader's markers, as plain text (nothing is executed).

A notebook is read from an ``.ipynb`` file or a Jupytext ``py:percent`` file. Solution
masters mark their answers the way nbgrader does, so a master can move into an nbgrader
course unchanged:

- in code, ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` surround the answer;
- ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` surround material students never see
  (here: the grading spec of a question, see ``spec.question``);
- cell metadata ``nbgrader`` = {"solution": true, ...} marks an answer cell and
  {"grade": true, "grade_id": ..., "points": ...} a graded (test) cell.

The functions here only parse text; reading a hostile submission cannot run its code.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
STUDENT_CODE = ("# YOUR CODE HERE", "raise NotImplementedError()")
STUDENT_TEXT = "YOUR ANSWER HERE"
# Submissions larger than this are refused unread (a notebook of code is a few hundred kB).
MAX_NOTEBOOK_BYTES = 20 * 2**20
SUFFIXES = (".ipynb", ".py")


class NotebookError(ValueError):
    """A notebook could not be read or its markers do not pair up."""


def read(path) -> "object":
    """Read an ``.ipynb`` or Jupytext ``.py`` file into an nbformat notebook (v4).

    Raises:
        NotebookError: unknown suffix, file too large, or text that is not a notebook.
    """
    import jupytext
    import nbformat

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise NotebookError(f"{path.name}: expected a .ipynb or .py notebook")
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path.name}: {size} bytes, more than the {MAX_NOTEBOOK_BYTES} "
                            "bytes allowed for a notebook")
    text = path.read_bytes().decode("utf-8", errors="replace")
    try:
        if path.suffix == ".ipynb":
            nb = nbformat.reads(text, as_version=4)
        else:
            nb = jupytext.reads(text, fmt="py:percent")
    except Exception as exc:  # any parse failure of an untrusted file
        raise NotebookError(f"{path.name}: not a readable notebook ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None
    if not isinstance(getattr(nb, "cells", None), list):
        raise NotebookError(f"{path.name}: not a readable notebook (no cell list)")
    return nb


def source(cell) -> str:
    """The text of a cell (nbformat stores either a string or a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def code_cells(nb) -> list[str]:
    """The sources of the code cells, in order (non-string sources become empty cells)."""
    return [source(c) for c in nb.cells if c.get("cell_type") == "code"]


def nbgrader_meta(cell) -> dict:
    """The cell's nbgrader metadata ({} when absent or malformed)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def tags(cell) -> list[str]:
    """The cell's tags ([] when absent or malformed)."""
    found = cell.get("metadata", {}).get("tags", [])
    return [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def _blocks(text: str, begin: str, end: str, where: str):
    """Yield (start, stop) line indices of each begin/end block (marker lines included)."""
    lines, start = text.splitlines(), None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == begin:
            if start is not None:
                raise NotebookError(f"{where}: '{begin}' inside another block (line {i + 1})")
            start = i
        elif stripped == end:
            if start is None:
                raise NotebookError(f"{where}: '{end}' without '{begin}' (line {i + 1})")
            yield start, i
            start = None
    if start is not None:
        raise NotebookError(f"{where}: '{begin}' (line {start + 1}) is never closed")


def hidden_blocks(text: str, where: str = "cell") -> list[str]:
    """The contents of every hidden-tests block, markers removed and dedented."""
    lines = text.splitlines()
    out = []
    for start, stop in _blocks(text, BEGIN_HIDDEN, END_HIDDEN, where):
        body = lines[start + 1:stop]
        indent = len(lines[start]) - len(lines[start].lstrip())
        out.append("\n".join(line[indent:] for line in body))
    return out


def strip_solutions(text: str, *, code: bool, where: str = "cell") -> str:
    """Replace each solution block by the student stub and delete each hidden-tests block.

    Code blocks become ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the
    indentation of the BEGIN marker; markdown blocks become ``YOUR ANSWER HERE``.
    """
    lines = text.splitlines()
    drop = {i: None for s, e in _blocks(text, BEGIN_HIDDEN, END_HIDDEN, where)
            for i in range(s, e + 1)}
    for s, e in _blocks(text, BEGIN_SOLUTION, END_SOLUTION, where):
        indent = lines[s][: len(lines[s]) - len(lines[s].lstrip())]
        stub = [indent + part for part in (STUDENT_CODE if code else (STUDENT_TEXT,))]
        drop[s] = stub
        drop.update({i: [] for i in range(s + 1, e + 1)})
    out = []
    for i, line in enumerate(lines):
        if i not in drop:
            out.append(line)
        elif drop[i]:
            out.extend(drop[i])
    return "\n".join(out)


def solution_lines(text: str, where: str = "cell") -> list[str]:
    """Every line inside a solution or hidden block (used to check exercises leak none)."""
    lines = text.splitlines()
    found = []
    for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
        for s, e in _blocks(text, begin, end, where):
            found.extend(lines[s + 1:e])
    return found


def set_name_of(nb) -> str | None:
    """The exercise-set name recorded in a notebook's metadata by ``assign``, if any."""
    meta = nb.get("metadata", {}).get("lecture_ntk", {})
    name = meta.get("exercise_set") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def grade_ids(nb) -> set[str]:
    """The grade_id of every cell that has nbgrader metadata."""
    found = set()
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str):
            found.add(gid)
    return found


def dumps_json(obj) -> str:
    """Deterministic JSON text (sorted keys, one-space indent, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-system-safe version of a student or set name."""
    cleaned = _SAFE.sub("_", name).strip("._") or "unnamed"
    return cleaned[:100]
