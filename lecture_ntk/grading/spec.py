"""How a solution master describes the grading of one question.

A graded cell of a master (nbgrader metadata ``grade: true``, ``grade_id``, ``points``)
holds, between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``, a call such as::

    from lecture_ntk.grading import spec
    Q_NTK = spec.question(
        "q3_ntk_off_sphere", function="relu_ntk_off_sphere", rtol=1e-8, atol=1e-10,
        probes=lambda gen: [dict(X1=..., X2=...), dict(X1=..., X2=...)])

The grader executes the master's trusted code (setup cells, solution cells, hidden blocks)
in its own process, finds every ``Question`` it defined, draws the probe inputs with a
seeded generator of its own, and computes the reference outputs with the solution's
function of the same name (or ``reference``). The student's function is called in the
child process on the same inputs and must match: same type, shape, dtype and device,
finite, and |student - reference| <= atol + rtol |reference| entrywise.

Inside an nbgrader course the hidden block runs too; it only builds this description.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Seed:
    """A probe argument that reaches the function as a fresh ``torch.Generator(seed)``."""

    seed: int

    def __plain__(self) -> dict:
        return {"kind": "generator", "seed": int(self.seed)}


@dataclass(frozen=True)
class Question:
    """The grading description of one question (see the module docstring).

    Attributes:
        grade_id: the nbgrader grade_id of the graded cell that carries the points.
        function: the name of the function the student writes.
        probes: probes(gen) -> list of keyword-argument dicts (tensors, numbers, strings,
            ``Seed``); ``gen`` is a seeded CPU ``torch.Generator`` owned by the grader.
        rtol, atol: entrywise tolerance |a - b| <= atol + rtol |b|.
        reference: the trusted function giving the expected output (default: the
            master's function named ``function``).
        postprocess: applied by the grader to both outputs (as float64 numpy arrays)
            before comparing, e.g. ``numpy.sort`` when the order is not part of the answer.
    """

    grade_id: str
    function: str
    probes: Callable
    rtol: float = 1e-8
    atol: float = 1e-10
    reference: Callable | None = None
    postprocess: Callable | None = None


def question(grade_id: str, *, function: str, probes: Callable, rtol: float = 1e-8,
             atol: float = 1e-10, reference: Callable | None = None,
             postprocess: Callable | None = None) -> Question:
    """Describe how one question is graded; see ``Question``."""
    if not isinstance(grade_id, str) or not grade_id:
        raise TypeError(f"grade_id: expected a non-empty string, got {grade_id!r}")
    if not isinstance(function, str) or not function.isidentifier():
        raise TypeError(f"function: expected a function name, got {function!r}")
    if not callable(probes):
        raise TypeError(f"probes: expected a callable probes(gen) -> list of dicts, "
                        f"got {type(probes).__name__}")
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol, atol: expected non-negative tolerances, got {rtol}, {atol}")
    return Question(grade_id, function, probes, float(rtol), float(atol), reference, postprocess)
