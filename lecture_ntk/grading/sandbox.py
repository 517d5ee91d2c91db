"""Run one command in an isolated child process and make sure nothing it started survives.

- The child starts in a new session (its own process group), with a scrubbed environment,
  stdin from /dev/null, stdout and stderr into files of its own folder, and a wall-clock
  time limit. The resource limits (memory, CPU seconds, file size) are applied by the
  harness to itself before any submission code runs (``harness._apply_limits``), which
  avoids ``preexec_fn`` in a multi-threaded grader.
- Every child's environment carries a unique marker. When the child ends (or its time is
  up) ``reap`` kills, with SIGKILL and until none remain, every process that is in the
  child's session or process group, carries its marker, descends from it, or was
  re-parented to the grader (``become_subreaper``: orphans of a double fork or a
  ``setsid`` land on the grader instead of init, so they cannot hide).
- ``bwrap_prefix`` (with ``--sandbox``): bubblewrap gives the child new user, PID,
  network, IPC, UTS and cgroup namespaces, a read-only view of the Python installation
  only, and its own folder as the only writable (and only visible) files.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MARKER = "LECTURE_NTK_GRADING_RUN"
SANDBOX_ROOT = "/grading"           # where the child's folder appears inside bubblewrap
_LOCK = threading.Lock()            # guards _LIVE and spawning against reaping
_LIVE: set[int] = set()             # pids of children started here and not yet reaped
_TOKENS: set[str] = set()           # markers of the runs in progress
_STATE = {"subreaper": False}


@dataclass
class Outcome:
    """How a child run ended."""

    returncode: int | None
    timed_out: bool
    seconds: float
    killed: int          # processes that had to be killed after the child ended


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux prctl 36)."""
    try:
        ok = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        ok = False
    _STATE["subreaper"] = ok
    return ok


def scrubbed_env(home: str, token: str) -> dict:
    """The child's whole environment: nothing of the grader's leaks in."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": os.path.join(home, ".matplotlib"), "CUDA_VISIBLE_DEVICES": "",
            "PYTHONDONTWRITEBYTECODE": "1", MARKER: token}


@functools.lru_cache(maxsize=None)
def bwrap_available() -> str | None:
    """The bwrap executable when it is installed and can create namespaces here.

    Cached: it is asked once, before any child starts (``reap`` would take the probe, a
    child of the grader that is not a registered run, for an escaped orphan).
    """
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    probe = [exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return exe if ok else None


def _python_roots() -> list[str]:
    """Folders the interpreter and its packages live in (bound read-only in the sandbox)."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    for p in sys.path:  # site-packages outside the prefixes (e.g. a user site)
        if p.endswith("site-packages") and os.path.isdir(p):
            roots.add(os.path.realpath(p))
    roots.update(os.path.abspath(p) for p in (sys.prefix, sys.base_prefix))  # symlinked venvs
    return sorted(r for r in roots if r not in ("/", "/usr") and os.path.isdir(r))


def bwrap_prefix(exe: str, folder: str) -> list[str]:
    """The bwrap command line that shows the child only ``folder`` (read-write) and Python."""
    cmd = [exe, "--unshare-all", "--die-with-parent", "--new-session",
           "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for root in _python_roots():
        cmd += ["--ro-bind", root, root]
    return cmd + ["--bind", folder, SANDBOX_ROOT, "--chdir", SANDBOX_ROOT, "--"]


def _proc_info(pid: int):
    """(ppid, pgrp, session, state, has_marker_token) of a process, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        fields = stat[stat.rindex(")") + 2:].split()
        state, ppid, pgrp, sid = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read(1 << 20)
    except OSError:
        environ = b""
    return ppid, pgrp, sid, state, environ


def _token_of(environ: bytes) -> str | None:
    """The marker value in a raw /proc environ block, if any."""
    for item in environ.split(b"\0"):
        if item.startswith(MARKER.encode() + b"="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def _victims(root: int, token: str) -> tuple[list[int], list[int]]:
    """Processes to kill for the child ``root`` and zombies to collect (both as pids)."""
    me, needle = os.getpid(), f"{MARKER}={token}".encode()
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            info = _proc_info(int(entry))
            if info is not None:
                table[int(entry)] = info
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in tree:
                tree.add(child)
                stack.append(child)
    kill, zombies = [], []
    for pid, (ppid, pgrp, sid, state, environ) in table.items():
        if pid in _LIVE or _token_of(environ) in _TOKENS - {token}:
            continue  # another live run (its pid or session id may equal a reused `root`)
        orphan = _STATE["subreaper"] and ppid == me
        if pid == root or pid in tree or root in (pgrp, sid) or needle in environ or orphan:
            (zombies if state in "ZX" else kill).append(pid)
    return kill, [z for z in zombies if table[z][0] == me]


def reap(root: int, token: str, deadline_s: float = 20.0) -> int:
    """SIGKILL everything belonging to the child ``root`` until nothing is left."""
    killed, quiet, end = set(), 0, time.monotonic() + deadline_s
    while time.monotonic() < end:
        with _LOCK:
            kill, zombies = _victims(root, token)
        for pid in kill:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        for pid in zombies:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        quiet = quiet + 1 if not kill else 0
        if quiet >= 2:  # two scans in a row found nothing alive
            break
        time.sleep(0.02)
    return len(killed - {root})


def run(argv: list[str], *, cwd: str, env: dict, timeout_s: float, stdout: str,
        stderr: str) -> Outcome:
    """Run ``argv`` isolated as described in the module docstring; always clean up."""
    token = env[MARKER]
    start = time.monotonic()
    with open(stdout, "wb") as out, open(stderr, "wb") as err, _LOCK:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True, close_fds=True)
        _LIVE.add(proc.pid)
        _TOKENS.add(token)
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        seconds = time.monotonic() - start
        with _LOCK:
            _LIVE.discard(proc.pid)
        killed = reap(proc.pid, token)
        with _LOCK:
            _TOKENS.discard(token)
    return Outcome(proc.returncode, timed_out, seconds, killed)


def kill_live() -> None:
    """SIGKILL the process groups of every child still running (on Ctrl-C or an error)."""
    with _LOCK:
        live = list(_LIVE)
    for pid in live:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def new_token() -> str:
    """A fresh marker value for one child run."""
    return uuid.uuid4().hex


def ensure_folder(path) -> str:
    """Create ``path`` (mode 700) and return it as a string."""
    Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(path)
