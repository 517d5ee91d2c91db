"""Load a solution master and compute the reference answers (trusted code, grader's process).

From a master ``solutions/NN_slug.py`` this executes, in a fresh namespace, only:
the code cells tagged ``setup``, the answer cells (nbgrader ``solution: true``) and the
hidden-tests blocks of the graded cells, which build the ``spec.Question`` objects. The
points come from the graded cells' nbgrader metadata. For each question the probe inputs
are drawn with a generator seeded from (seed, set, grade_id), so they differ from the
public checks but are the same for every student; they go through the same plain-JSON
encoding the child receives, and the reference outputs through the same encoding the
child's outputs take, so both sides are compared like for like.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from . import compare, notebook, spec
from .harness import from_plain, to_plain

DEFAULT_SEED = 20240601
SETUP_TAG = "setup"


class SetupError(RuntimeError):
    """A solution master is inconsistent (an instructor's error, not a student's)."""


@dataclass
class RefQuestion:
    """One question with its probes and expected outputs."""

    grade_id: str
    points: float
    function: str
    cases: list            # plain keyword-argument dicts (sent to the child)
    expected: list         # compare.Value per case
    rtol: float
    atol: float
    postprocess: object
    max_numel: int


@dataclass
class SolutionSet:
    """A loaded master: its name and its graded questions in notebook order."""

    name: str
    path: Path
    questions: list

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions)

    def grade_ids(self) -> set:
        return {q.grade_id for q in self.questions}


def probe_seed(seed: int, set_name: str, grade_id: str) -> int:
    """The seed of one question's probes: a hash of (seed, set, question)."""
    digest = hashlib.sha256(f"{seed}:{set_name}:{grade_id}".encode()).hexdigest()
    return int(digest[:8], 16)


def _trusted_namespace(nb, where: str) -> tuple[dict, dict]:
    """Execute the master's setup, answer and hidden code; return (namespace, points)."""
    ns = {"__name__": f"lecture_ntk_solution_{Path(where).stem}"}
    points = {}
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        meta, text = notebook.nbgrader_meta(cell), notebook.source(cell)
        codes = []
        if SETUP_TAG in notebook.tags(cell) or meta.get("solution"):
            codes.append(text)
        if meta.get("grade"):
            points[meta.get("grade_id")] = float(meta.get("points", 0))
            codes += notebook.hidden_blocks(text, f"{where} cell {i}")
        for code in codes:
            try:
                exec(compile(code, f"<{where} cell {i}>", "exec"), ns)
            except Exception as exc:
                raise SetupError(f"{where} cell {i}: {type(exc).__name__}: {exc}") from exc
    return ns, points


def _questions(ns: dict, points: dict, where: str) -> list:
    found = {v.grade_id: v for v in ns.values() if isinstance(v, spec.Question)}
    graded = {g for g, p in points.items() if p > 0}
    if set(found) != graded:
        raise SetupError(f"{where}: graded cells with points {sorted(graded)} and hidden "
                         f"spec.question(...) {sorted(found)} must name the same grade_ids")
    order = [g for g in points if g in found]
    return [found[g] for g in order]


def _reference_question(q: spec.Question, ns: dict, points: float, name: str,
                        seed: int) -> RefQuestion:
    from ..device import make_generator

    ref_fn = q.reference or ns.get(q.function)
    if not callable(ref_fn):
        raise SetupError(f"{name} {q.grade_id}: no reference function {q.function!r}")
    cases = q.probes(make_generator(probe_seed(seed, name, q.grade_id)))
    if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
        raise SetupError(f"{name} {q.grade_id}: probes(gen) must return a non-empty list of dicts")
    plain = [to_plain(c, max_numel=10**7) for c in cases]
    expected = [compare.parse(to_plain(ref_fn(**from_plain(p)), max_numel=10**7))
                for p in plain]
    numel = max(math.prod(e.shape) if e.kind in compare.ARRAY_KINDS else 1 for e in expected)
    return RefQuestion(q.grade_id, points, q.function, plain, expected, q.rtol, q.atol,
                       q.postprocess, 4 * numel + 1000)


def load(path, seed: int = DEFAULT_SEED) -> SolutionSet:
    """Load one master and compute its reference answers."""
    path = Path(path)
    nb = notebook.read(path)
    ns, points = _trusted_namespace(nb, path.name)
    questions = [_reference_question(q, ns, points[q.grade_id], path.stem, seed)
                 for q in _questions(ns, points, path.name)]
    return SolutionSet(path.stem, path, questions)
