"""The program that runs INSIDE the child process, next to one submission.

Usage (by the grader only): ``python -I harness.py WORKDIR LIBDIR``.

It reads WORKDIR/job.json (written by the grader before the child starts), applies the
resource limits to itself (inherited by everything it starts), runs the submission's
code cells one by one (an exception ends only its cell), then calls the student's
function of each question on the grader's probe inputs. Everything it reports goes to
WORKDIR/results.jsonl, one JSON object per line:

    {"event": "cell_start", "cell": i}      {"event": "cell_end", "cell": i, "error": ...}
    (i counts code cells from 0; messages name them from 1, "code cell i+1")
    {"event": "question_start", "grade_id": ...}
    {"event": "question", "grade_id": ..., "cases": [{"ok": true, "value": PLAIN}, ...],
     "seconds": ...}
    {"event": "done"}

Nothing here is trusted by the grader: the lines only carry the student's outputs as
plain numbers (``to_plain``), which the grader validates and compares in its own process.
This file imports only the standard library at start (torch and numpy when needed), so
that the grader can also import ``to_plain``/``from_plain`` from it.
"""
from __future__ import annotations

import builtins
import json
import os
import sys
import time

MAX_ITEMS = 64        # items of a returned tuple/list
MAX_DEPTH = 4         # nesting of returned tuples/lists
MAX_TEXT = 500        # characters of an error message


def to_plain(value, max_numel: int = 10**6, depth: int = 0):
    """Describe a value with JSON types only: tensors/arrays become shape + flat data."""
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if hasattr(type(value), "__plain__") and not isinstance(value, type):
        return value.__plain__()
    if torch is not None and isinstance(value, torch.Tensor):
        return _tensor_plain(value, max_numel)
    if np is not None and isinstance(value, np.ndarray):
        return _array_plain(value, max_numel)
    if np is not None and isinstance(value, np.generic) and value.dtype.kind in "fiu":
        return {"kind": "number", "value": value.item()}
    if isinstance(value, bool):
        return {"kind": "bool", "value": value}
    if isinstance(value, (int, float)):
        return {"kind": "number", "value": int(value) if isinstance(value, int) else float(value)}
    if isinstance(value, str):
        return {"kind": "str", "value": value[:MAX_TEXT]}
    if value is None:
        return {"kind": "none"}
    if isinstance(value, (tuple, list)) and depth < MAX_DEPTH:
        items = [to_plain(v, max_numel, depth + 1) for v in list(value)[:MAX_ITEMS]]
        return {"kind": "sequence", "type": type(value).__name__[:20], "length": len(value),
                "items": items}
    if isinstance(value, dict) and depth < MAX_DEPTH:
        return {"kind": "dict", "items": {str(k): to_plain(v, max_numel, depth + 1)
                                          for k, v in list(value.items())[:MAX_ITEMS]}}
    return {"kind": "other", "type": type(value).__name__[:80]}


def _tensor_plain(t, max_numel):
    out = {"kind": "tensor", "dtype": str(t.dtype), "device": str(t.device),
           "shape": [int(s) for s in t.shape], "data": None}
    if t.numel() > max_numel or t.device.type == "meta" or t.is_complex():
        return out
    flat = t.detach().to("cpu").reshape(-1)
    out["data"] = flat.double().tolist() if t.is_floating_point() else flat.long().tolist()
    return out


def _array_plain(a, max_numel):
    out = {"kind": "ndarray", "dtype": str(a.dtype), "device": "cpu",
           "shape": [int(s) for s in a.shape], "data": None}
    if a.size <= max_numel and a.dtype.kind in "fiub":
        out["data"] = a.reshape(-1).astype(float if a.dtype.kind == "f" else int).tolist()
    return out


def from_plain(obj):
    """Inverse of ``to_plain`` for probe inputs (tensors come back on the CPU)."""
    kind = obj["kind"]
    if kind == "tensor":
        import torch
        dtype = getattr(torch, obj["dtype"].replace("torch.", ""))
        return torch.tensor(obj["data"], dtype=dtype).reshape(obj["shape"])
    if kind == "ndarray":
        import numpy as np
        return np.asarray(obj["data"], dtype=obj["dtype"]).reshape(obj["shape"])
    if kind == "generator":
        import torch
        gen = torch.Generator()
        gen.manual_seed(int(obj["seed"]))
        return gen
    if kind in ("number", "bool", "str"):
        return obj["value"]
    if kind == "none":
        return None
    if kind == "sequence":
        items = [from_plain(v) for v in obj["items"]]
        return tuple(items) if obj.get("type") == "tuple" else items
    if kind == "dict":
        return {k: from_plain(v) for k, v in obj["items"].items()}
    raise ValueError(f"cannot rebuild a value of kind {kind!r}")


def _apply_limits(limits: dict) -> None:
    """Set this process's resource limits (inherited by every process it starts)."""
    import resource
    import signal
    for name, value in limits.items():
        res = getattr(resource, name, None)
        if res is not None and value is not None:
            resource.setrlimit(res, (int(value), int(value)))
    # Writing past RLIMIT_FSIZE then fails with an error instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:  # die with the grader: PR_SET_PDEATHSIG = 1
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _describe(exc: BaseException) -> str:
    """'Type: message (code cell 3, line 7)', short, never raising."""
    try:
        message = str(exc)
        text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        tb, where = exc.__traceback__, ""
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename
            if name.startswith("<code cell"):
                where = f" ({name.strip('<>')}, line {tb.tb_lineno})"
            tb = tb.tb_next
        text = " ".join(text.split())
        return (text[:MAX_TEXT] + where)[:MAX_TEXT + 40]
    except BaseException:  # a hostile __str__
        return "an exception that could not be described"


def _strip_magics(src: str) -> str:
    """Turn IPython magics and shell escapes (%..., !...) into `pass` lines."""
    out = []
    for line in src.splitlines():
        body = line.lstrip()
        out.append(line[: len(line) - len(body)] + "pass" if body[:1] in ("%", "!") else line)
    return "\n".join(out)


class _Reporter:
    """Appends JSON lines to results.jsonl through a raw file descriptor."""

    def __init__(self, path):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._write, self._dumps = os.write, json.dumps

    def emit(self, **record) -> None:
        data = (self._dumps(record) + "\n").encode()
        while data:
            data = data[self._write(self._fd, data):]


def _run_cells(cells, skip, ns, report) -> None:
    for i, src in enumerate(cells):
        if i in skip:
            continue
        report.emit(event="cell_start", cell=i)
        error = None
        try:
            exec(compile(_strip_magics(src), f"<code cell {i + 1}>", "exec"), ns)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt end only the cell
            error = _describe(exc)
        _flush_and_close_figures()
        report.emit(event="cell_end", cell=i, error=error)


def _flush_and_close_figures() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    plt = sys.modules.get("matplotlib.pyplot")
    try:
        if plt is not None:
            plt.close("all")
    except BaseException:
        pass


def _ask(question: dict, ns: dict, report) -> None:
    gid, name = question["grade_id"], question["function"]
    report.emit(event="question_start", grade_id=gid)
    fn, cases, clock = ns.get(name), [], time.perf_counter
    start = clock()
    for case in question["cases"]:
        if not callable(fn):
            what = "not defined" if fn is None else f"a {type(fn).__name__}, not a function"
            cases.append({"ok": False, "missing": True, "error": f"{name} is {what}"})
            continue
        try:
            value = fn(**from_plain(case))
            cases.append({"ok": True, "value": to_plain(value, question["max_numel"])})
        except BaseException as exc:
            cases.append({"ok": False, "error": _describe(exc),
                          "not_implemented": isinstance(exc, NotImplementedError)})
    report.emit(event="question", grade_id=gid, cases=cases, seconds=clock() - start)


def main(argv) -> None:
    work, lib = argv[1], argv[2]
    with open(os.path.join(work, "job.json"), encoding="utf-8") as fh:
        job = json.load(fh)
    _apply_limits(job["limits"])
    sys.path.insert(0, lib)
    report = _Reporter(os.path.join(work, "results.jsonl"))
    ns = {"__name__": "__main__", "__builtins__": builtins,
          "display": lambda *objs, **kw: print(*objs)}
    _run_cells(job["cells"], set(job["skip_cells"]), ns, report)
    for question in job["questions"]:
        if question["grade_id"] not in job["skip_questions"]:
            _ask(question, ns, report)
    report.emit(event="done")
    _flush_and_close_figures()
    os._exit(0)  # no atexit handlers or lingering threads of the submission


if __name__ == "__main__":
    main(sys.argv)
