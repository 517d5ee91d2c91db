"""Command line: ``python -m lecture_ntk.grading assign|grade`` (see ``--help``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import assign, attempt, grade, sandbox

ROOT = attempt.PACKAGE_DIR.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lecture_ntk.grading",
                                description="Generate exercises and grade submissions.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assign", help="regenerate exercises/ from solutions/")
    a.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    a.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    a.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if exercises/ differs from what solutions/ "
                        "generates or contains solution text")
    g = sub.add_parser("grade", help="grade one submission or a folder of them")
    g.add_argument("submissions", type=Path, help="a .ipynb/.py file or a folder of them")
    g.add_argument("--out", type=Path, default=Path("gradebook.csv"), help="gradebook CSV")
    g.add_argument("--feedback", type=Path, default=Path("feedback"),
                   help="folder for one markdown feedback file per student")
    g.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    g.add_argument("--set", dest="set_name", help="exercise set (default: detected)")
    g.add_argument("--timeout", type=float, default=grade.Options.timeout_s,
                   help="seconds per run of a submission (default %(default)s)")
    g.add_argument("--memory", type=int, default=grade.Options.memory_mb,
                   help="address-space limit in MB (default %(default)s)")
    g.add_argument("--output", type=int, default=grade.Options.output_mb,
                   help="largest file a submission may write, in MB (default %(default)s)")
    g.add_argument("--jobs", type=int, default=grade.Options.jobs,
                   help="submissions graded at once (default: the CPUs, %(default)s)")
    g.add_argument("--sandbox", action="store_true",
                   help="run each submission in bubblewrap: no network, no files outside "
                        "its folder")
    g.add_argument("--regrade", action="append", default=[], metavar="STUDENT",
                   help="grade STUDENT again and replace only their rows (repeatable)")
    g.add_argument("--seed", type=int, default=grade.Options.seed, help="probe seed")
    g.add_argument("--keep", action="store_true", help="keep the temporary folders")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _assign(args) -> int:
    if args.check:
        problems = assign.check(args.solutions, args.exercises)
        problems += assign.leaks(args.solutions, args.exercises)
        for line in problems:
            print(line, file=sys.stderr)
        print("exercises/ is up to date" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    written = assign.generate(args.solutions, args.exercises)
    print(f"wrote {len(written)} files to {args.exercises}")
    return 0


def _grade(args) -> int:
    if args.sandbox and sandbox.bwrap_available() is None:
        print("--sandbox: bubblewrap (bwrap) is not installed or cannot create namespaces "
              "here (apt-get install bubblewrap)", file=sys.stderr)
        return 2
    opts = grade.Options(solutions=args.solutions, timeout_s=args.timeout, memory_mb=args.memory,
                         output_mb=args.output, jobs=args.jobs, sandbox=args.sandbox,
                         seed=args.seed, set_name=args.set_name, keep=args.keep,
                         progress=not args.quiet)
    try:
        book = grade.grade(args.submissions, args.out, args.feedback, opts, args.regrade)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for student in sorted(book):
        got = sum(float(r["points"]) for r in book[student])
        most = sum(float(r["max_points"]) for r in book[student])
        print(f"{student}: {got:g} / {most:g}")
    print(f"gradebook: {args.out}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return _assign(args) if args.command == "assign" else _grade(args)


if __name__ == "__main__":
    sys.exit(main())
