"""Notebook hygiene and the course runner.

For every jupytext source ``notebooks/*.py`` and ``solutions/*.py`` with a paired ``.ipynb``:
(a) both files hold the same cells; (b) the committed ``.ipynb`` was executed top to bottom
in one run (execution counts 1..N over the non-empty code cells); (c) it has ``## Summary``
and ``## Exercises`` sections at the end; (d) no output mentions cuda, ``device=``, a
Warning or a traceback, and only cells tagged ``nbval-ignore-output`` write to stderr.
Solution masters (solutions/) are exercise sets, not lecture notebooks: (c) does not apply,
and (b) only when the master was committed with outputs (a cleared master is fine).
nbval (configured in pyproject.toml) separately re-executes notebooks/*.ipynb and compares.

The checks are also run on tiny notebooks made in a temporary folder, and so is
``lecture_ntk.course`` (build, run, figures, error messages) with a real kernel.
"""
from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from lecture_ntk import course

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "solutions")
IGNORE_TAG = "nbval-ignore-output"
FORBIDDEN = [(re.compile(r"cuda", re.I), "cuda"), (re.compile(r"device="), "device="),
             (re.compile(r"Warning"), "a Warning"), (re.compile(r"Traceback"), "a traceback")]


# ----------------------------------------------------------------------------- checks


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_code(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.source.strip())


def _sync_hint(py: Path) -> str:
    return (f"bring the pair together: python -m lecture_ntk.course build {py} (re-executes), "
            f"or jupytext --sync {py}")


def pair_problems(py: Path, ipynb: Path) -> list[str]:
    """(a) The .py and the .ipynb hold the same cells: types, sources and tags."""
    text = [(c.cell_type, _tags(c), _norm(c.source)) for c in jupytext.read(py).cells]
    nb = [(c.cell_type, _tags(c), _norm(c.source)) for c in nbformat.read(ipynb, as_version=4).cells]
    for i, (a, b) in enumerate(zip(text, nb), start=1):
        if a != b:
            diff = difflib.unified_diff([f"{a[0]} cell, tags {a[1]}"] + a[2].splitlines(),
                                        [f"{b[0]} cell, tags {b[1]}"] + b[2].splitlines(),
                                        py.name, ipynb.name, lineterm="", n=1)
            return [f"cell {i} differs between {py.name} and {ipynb.name}:\n"
                    + "\n".join(list(diff)[:40])
                    + f"\n{_sync_hint(py)}"]
    if len(text) != len(nb):
        return [f"{py.name} has {len(text)} cells, {ipynb.name} has {len(nb)}; {_sync_hint(py)}"]
    return []


def execution_problems(nb) -> list[str]:
    """(b) Every non-empty code cell ran, in order, in one fresh run: counts 1, 2, ..., N."""
    cells = [(i, c) for i, c in enumerate(nb.cells, start=1) if _is_code(c)]
    counts = [c.get("execution_count") for _, c in cells]
    problems = [f"cell {i} was not executed" for i, c in cells if c.get("execution_count") is None]
    if not problems and counts != list(range(1, len(cells) + 1)):
        problems.append(f"execution counts {counts} are not 1..{len(cells)}: "
                        "execute the notebook top to bottom in a fresh kernel")
    problems += [f"cell {i} is empty but has outputs" for i, c in enumerate(nb.cells, start=1)
                 if c.cell_type == "code" and not c.source.strip() and c.get("outputs")]
    problems += [f"cell {i} carries execution timestamps (metadata 'execution'): rebuild with "
                 "python -m lecture_ntk.course build, which records none, so that a rebuild "
                 "leaves no metadata-only diff" for i, c in enumerate(nb.cells, start=1)
                 if "execution" in c.get("metadata", {})]
    return problems


def _heading(nb, title: str):
    pattern = re.compile(rf"^##\s+{title}\s*$", re.M)
    return next((i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and pattern.search(c.source)), None)


def section_problems(nb) -> list[str]:
    """(c) The notebook ends with a '## Summary' and then a '## Exercises' section."""
    summary, exercises = _heading(nb, "Summary"), _heading(nb, "Exercises")
    problems = [f"no '## {name}' heading" for name, at in
                (("Summary", summary), ("Exercises", exercises)) if at is None]
    if problems:
        return problems
    if exercises < summary:
        problems.append("'## Exercises' comes before '## Summary'")
    if any(_is_code(c) for c in nb.cells[summary:]):
        problems.append("code cells after '## Summary': Summary and Exercises end the notebook")
    return problems


def _output_texts(out):
    if out.get("output_type") == "stream":
        yield out.get("name", "stream"), out.get("text", "")
    for key, value in out.get("data", {}).items():
        if key.startswith("text/"):  # images are base64 and may contain any letters
            yield key, value if isinstance(value, str) else "".join(value)


def output_problems(nb) -> list[str]:
    """(d) Outputs are device-free and clean: no cuda, device=, Warning, traceback, stray stderr."""
    problems = []
    for i, cell in enumerate(nb.cells, start=1):
        ignored = IGNORE_TAG in _tags(cell) or "NBVAL_IGNORE_OUTPUT" in cell.source
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: error output {out.get('ename')}: {out.get('evalue')}")
            for kind, text in _output_texts(out):
                if kind == "stderr" and not ignored:
                    problems.append(f"cell {i}: writes to stderr (only cells tagged {IGNORE_TAG} "
                                    f"may): {text.strip()[:120]!r}")
                problems += [f"cell {i}: {kind} output contains {what}: "
                             f"{text[max(m.start() - 40, 0):m.end() + 40]!r}"
                             for pattern, what in FORBIDDEN if (m := pattern.search(text))]
    return problems


# ----------------------------------------------------------------------------- the real notebooks


def jupytext_sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if "# %%" in p.read_text(encoding="utf-8"))


def _pairs(folders):
    found = [(py, py.with_suffix(".ipynb")) for d in folders for py in jupytext_sources(ROOT / d)]
    params = [pytest.param(py, nb, id=f"{py.parent.name}/{py.stem}") for py, nb in found
              if nb.exists()]
    return params or [pytest.param(None, None, marks=pytest.mark.skip(
        reason=f"no paired notebooks yet in {' or '.join(f + '/' for f in folders)}"))]


PAIRS = _pairs(FOLDERS)
LECTURE = _pairs(["notebooks"])


def _assert_none(problems, where):
    assert not problems, f"{where}:\n" + "\n".join(problems)


@pytest.mark.parametrize("py, ipynb", PAIRS)
def test_pair_holds_the_same_cells(py, ipynb):
    _assert_none(pair_problems(py, ipynb), ipynb)


@pytest.mark.parametrize("py, ipynb", PAIRS)
def test_executed_top_to_bottom(py, ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    cleared = all(c.get("execution_count") is None and not c.get("outputs")
                  for c in nb.cells if c.cell_type == "code")
    if py.parent.name == "solutions" and cleared:
        pytest.skip("solution master committed without outputs")
    _assert_none(execution_problems(nb), ipynb)


@pytest.mark.parametrize("py, ipynb", LECTURE)
def test_summary_and_exercises(py, ipynb):
    _assert_none(section_problems(nbformat.read(ipynb, as_version=4)), ipynb)


@pytest.mark.parametrize("py, ipynb", PAIRS)
def test_outputs_are_clean(py, ipynb):
    _assert_none(output_problems(nbformat.read(ipynb, as_version=4)), ipynb)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_notebook_is_paired(folder):
    """Each jupytext source has its executed .ipynb and each .ipynb its source."""
    folder = ROOT / folder
    sources = {p.stem for p in jupytext_sources(folder)}
    notebooks = {p.stem for p in folder.glob("*.ipynb")}
    assert not sources - notebooks, (f"no .ipynb for {sorted(sources - notebooks)} in {folder}: "
                                     "python -m lecture_ntk.course build")
    assert not notebooks - sources, f"no jupytext .py for {sorted(notebooks - sources)} in {folder}"


# ----------------------------------------------------------------------------- tiny notebooks

HEADER = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
"""
GOOD = HEADER + '''
# %% [markdown]
# # A tiny notebook

# %%
import os
import sys
import matplotlib.pyplot as plt
print(open("data.txt").read().strip(), sys.executable)

# %% tags=["figure:figure1"]
plt.plot([0, 1], [1, 0])
plt.show()

# %%
fig, axes = plt.subplots(1, 2)
plt.show()

# %%

# %% [markdown]
# ## Summary
# It ran.
#
# ## Exercises
# See exercises/.
'''


def _fake_executed(py: Path) -> Path:
    """Write the .ipynb of ``py`` with counts 1..N and a printed line, without a kernel."""
    nb = jupytext.read(py)
    count = 0
    for cell in nb.cells:
        if _is_code(cell):
            count += 1
            cell.execution_count = count
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x = 1.0\n")]
    ipynb = py.with_suffix(".ipynb")
    jupytext.write(nb, ipynb, fmt="ipynb")
    return ipynb


@pytest.fixture
def good(tmp_path):
    py = tmp_path / "01_tiny.py"
    py.write_text(GOOD, encoding="utf-8")
    return py, _fake_executed(py)


def _problems(py, ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    return (pair_problems(py, ipynb) + execution_problems(nb) + section_problems(nb)
            + output_problems(nb))


def test_checks_accept_a_good_notebook(good):
    assert _problems(*good) == []


def _edit_source(py, nb):
    py.write_text(py.read_text().replace("plt.plot([0, 1]", "plt.plot([0, 2]"))


def _drop_tag(py, nb):
    py.write_text(py.read_text().replace(' tags=["figure:figure1"]', ""))


def _unexecuted(py, nb):
    nb.cells[2].execution_count = None


def _out_of_order(py, nb):
    nb.cells[1].execution_count, nb.cells[2].execution_count = 2, 1


def _second_run(py, nb):
    for cell in nb.cells:
        if cell.get("execution_count"):
            cell.execution_count += 3


def _no_summary(py, nb):
    nb.cells[-1].source = "## Exercises\nSee exercises/."


def _code_at_end(py, nb):
    nb.cells.append(nbformat.v4.new_code_cell("x = 1", execution_count=4))


def _text(text, name="stdout"):
    def mutate(py, nb):
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", name=name, text=text)]
    return mutate


def _error(py, nb):
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom",
                                                  traceback=["ValueError: boom"])]


def _timestamps(py, nb):
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-12-03T18:25:27.190806Z"}


def _repr(py, nb):
    nb.cells[1].outputs = [nbformat.v4.new_output(
        "execute_result", data={"text/plain": "tensor([1.], device='cuda:0')"}, execution_count=1)]


@pytest.mark.parametrize("mutate, expected", [
    (_edit_source, "differs"), (_drop_tag, "differs"), (_unexecuted, "not executed"),
    (_out_of_order, "not 1..3"), (_second_run, "not 1..3"), (_no_summary, "no '## Summary'"),
    (_code_at_end, "code cells after"), (_text("running on cuda\n"), "cuda"),
    (_text("UserWarning: careful\n"), "Warning"), (_text("Traceback (most recent"), "traceback"),
    (_text("Matplotlib is building the font cache\n", "stderr"), "stderr"),
    (_error, "error output"), (_repr, "device="), (_timestamps, "timestamps"),
])
def test_checks_catch_problems(good, mutate, expected):
    py, ipynb = good
    nb = nbformat.read(ipynb, as_version=4)
    mutate(py, nb)
    nbformat.write(nb, ipynb)
    problems = _problems(py, ipynb)
    assert any(expected in p for p in problems), problems


def test_stderr_allowed_in_ignored_cells(good):
    py, ipynb = good
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells[1].metadata["tags"] = [IGNORE_TAG]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stderr", text="10/10 [00:01]\n")]
    assert output_problems(nb) == []


# ----------------------------------------------------------------------------- lecture_ntk.course


def test_build_then_run_writes_named_figures(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "data.txt").write_text("found-in-notebook-folder\n")
    py = folder / "06_tiny.py"
    py.write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # elsewhere: the kernel must run in the notebook's folder
    monkeypatch.setenv("MPLBACKEND", "Agg")  # an inherited Agg must not drop the figures

    assert course.build([py]) == 0
    ipynb = py.with_suffix(".ipynb")
    assert _problems(py, ipynb) == []
    printed = nbformat.read(ipynb, as_version=4).cells[1].outputs[0]["text"]
    assert printed.split() == ["found-in-notebook-folder", sys.executable]

    out = tmp_path / "figures"
    assert course.run(folder, out) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["06_tiny-cell04.png", "figure1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in out.glob("*.png"))
    lines = capsys.readouterr().out.splitlines()
    assert any("06_tiny.ipynb" in line and "2 figure(s)" in line and "figure1.png" in line
               for line in lines), lines


def test_run_names_the_failing_notebook_and_cell(tmp_path, capsys):
    py = tmp_path / "03_broken.py"
    py.write_text(HEADER + "\n# %%\nx = 1\n\n# %% [markdown]\n# text\n\n# %%\n"
                  "raise ValueError('boom')\n", encoding="utf-8")
    assert course.run(tmp_path, tmp_path / "figures") == 1
    printed = capsys.readouterr().out
    assert "03_broken.py: code cell 2 (cell 3 of 3) failed" in printed
    assert "ValueError: boom" in printed and "FAILED: 03_broken.py" in printed


def test_build_refuses_to_overwrite_newer_ipynb_edits(good):
    py, ipynb = good
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells[0].source = "# An edit made in the .ipynb"
    nbformat.write(nb, ipynb)
    os.utime(py, (ipynb.stat().st_mtime - 10,) * 2)
    with pytest.raises(SystemExit, match="edited after"):
        course.build([py])


def test_figure_names_without_kernel():
    nb = nbformat.v4.new_notebook()
    png = "iVBORw0KGgo="  # base64 of the PNG signature
    image = nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<F>"})
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("", outputs=[image, image]),
                nbformat.v4.new_code_cell("", outputs=[image, image])]
    nb.cells[2].metadata["tags"] = ["figure:figure1"]
    names = [name for name, _ in course.figure_outputs(nb, "06_x")]
    assert names == ["06_x-cell02.png", "06_x-cell02-2.png", "figure1.png", "figure1_2.png"]
