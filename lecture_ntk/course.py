"""Run the course: execute the notebooks headlessly, save their figures, rebuild the pairs.

Two commands (``python -m lecture_ntk.course --help``):

``run``    execute every notebook in notebooks/ (in memory: the committed files are not
           touched) and write every image output as a PNG into figures/. A code cell tagged
           ``figure:NAME`` names its image ``NAME.png`` (``NAME_2.png``, ... for further
           images of that cell); any other image is ``<notebook>-cell<NN>[-<k>].png``.
           One line per notebook with its runtime; exit status 1 if any notebook failed.
``build``  for developers: read each ``NN_slug.py`` (the jupytext source), execute it and
           write the paired ``NN_slug.ipynb`` with fresh outputs, keeping cell tags
           (default: every notebook in notebooks/).

Every notebook runs in a fresh kernel of the current Python interpreter, with the
notebook's own folder as working directory, with the inline matplotlib backend.
Needs the ``notebooks`` extra (nbclient, nbformat, jupytext, ipykernel).
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import sys
import tempfile
import time
from pathlib import Path

FIGURE_TAG = "figure:"
# The checkout this package was installed from (editable install), else the working directory.
ROOT = Path(__file__).resolve().parents[1]
ROOT = ROOT if (ROOT / "notebooks").is_dir() else Path.cwd()
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


def _require_notebook_tools():
    try:
        import jupytext  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"lecture_ntk.course needs the notebook tools ({err.name} is missing): "
                         "pip install -e '.[notebooks]'") from err


def kernel_env() -> dict:
    """The environment of a notebook kernel: the caller's, with the inline plot backend.

    An inherited MPLBACKEND (e.g. Agg in a CI shell) would make plt.show() silent and
    drop every figure, so it is removed; ipykernel then selects its inline backend.
    """
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugger's frozen-modules notice
    return env


def _kernel_manager():
    """A kernel manager that always starts ipykernel on this interpreter (sys.executable)."""
    import ipykernel.kernelspec as ipk
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    class _ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return self.kernel_spec_class(resource_dir=ipk.RESOURCES, **ipk.get_kernel_dict())

    return KernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())


def _describe_failure(path: Path, nb, index: int, err: Exception, kernel_log: str) -> str:
    cell = nb.cells[index] if 0 <= index < len(nb.cells) else None
    code_no = sum(c.cell_type == "code" for c in nb.cells[:index + 1])
    lines = [f"{path}: code cell {code_no} (cell {index + 1} of {len(nb.cells)}) failed: "
             f"{type(err).__name__}"]
    if cell is not None and cell.source.strip() not in str(err):  # nbclient may show it
        src = cell.source.splitlines()
        lines += ["--- cell source" + (" (first 15 lines)" if len(src) > 15 else "") + " ---"]
        lines += src[:15]
    lines += ["--- error ---", _ANSI.sub("", str(err)).strip()]
    log = [line for line in kernel_log.splitlines() if "without encryption" not in line]
    if log:
        lines += ["--- kernel log (last lines) ---"] + log[-15:]
    return "\n".join(lines)


def execute(nb, path: Path, timeout: int = 1800):
    """Execute notebook ``nb`` (read from ``path``) top to bottom in a fresh kernel, in place.

    The working directory is the notebook's folder. Raises NotebookError naming the
    notebook and the failing cell.
    """
    from nbclient import NotebookClient

    path = Path(path)
    current = {"index": -1}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    km = _kernel_manager()
    client = NotebookClient(nb, km=km, timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(path.resolve().parent)}},
                            on_cell_start=on_cell_start)
    # The kernel's own stderr (start-up notices, a crash) goes to a log, shown on failure.
    with tempfile.TemporaryFile("w+") as log:
        try:
            client.execute(env=kernel_env(), stderr=log)
        except Exception as err:  # nbclient raises several kinds: cell error, timeout, dead kernel
            log.seek(0)
            raise NotebookError(_describe_failure(path, nb, current["index"], err,
                                                  log.read())) from err
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


def read_notebook(path: Path):
    """Read an .ipynb or a jupytext .py as a notebook."""
    import jupytext

    return jupytext.read(path)


def figure_outputs(nb, stem: str):
    """Yield (file name, PNG bytes) for every image/png output of ``nb``, in order."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        names = [t[len(FIGURE_TAG):] for t in cell.metadata.get("tags", [])
                 if t.startswith(FIGURE_TAG) and len(t) > len(FIGURE_TAG)]
        base = names[0] if names else f"{stem}-cell{index + 1:02d}"
        pngs = [out["data"]["image/png"] for out in cell.get("outputs", [])
                if "image/png" in out.get("data", {})]
        for k, png in enumerate(pngs, start=1):
            suffix = "" if k == 1 else ("_" if names else "-") + str(k)
            yield f"{base}{suffix}.png", base64.b64decode(png)


def _is_jupytext(path: Path) -> bool:
    return "# %%" in path.read_text(encoding="utf-8")


def find_notebooks(folder: Path) -> list[Path]:
    """The notebooks of a folder: each .ipynb, plus each jupytext .py that has none yet."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    found = {p.stem: p for p in folder.glob("*.py") if _is_jupytext(p)}
    found.update({p.stem: p for p in folder.glob("*.ipynb")})
    return [found[s] for s in sorted(found)]


def run(folder: Path, out: Path, timeout: int = 1800) -> int:
    """Execute every notebook in ``folder`` and write its figures to ``out``; return 0 or 1."""
    _require_notebook_tools()
    paths = find_notebooks(folder)
    if not paths:
        print(f"no notebooks found in {folder}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    failed, written, start = [], set(), time.perf_counter()
    for i, path in enumerate(paths, start=1):
        t0 = time.perf_counter()
        try:
            nb = execute(read_notebook(path), path, timeout=timeout)
        except NotebookError as err:
            failed.append(path.name)
            print(f"[{i}/{len(paths)}] {path.name:<34} FAILED after "
                  f"{time.perf_counter() - t0:6.1f} s\n{err}\n", flush=True)
            continue
        for old in out.glob(f"{path.stem}-cell*.png"):
            old.unlink()
        names = []
        for name, png in figure_outputs(nb, path.stem):
            if name in written:  # a figure:NAME tag used twice: keep both
                print(f"note: figure name {name} used again in {path.name}", flush=True)
                name = f"{path.stem}-{name}"
            written.add(name)
            (out / name).write_bytes(png)
            names.append(name)
        named = [n for n in names if not n.startswith(path.stem + "-")]
        print(f"[{i}/{len(paths)}] {path.name:<34} {time.perf_counter() - t0:6.1f} s  "
              f"{len(names)} figure(s)" + (f"  ({', '.join(named)})" if named else ""),
              flush=True)
    total = (time.perf_counter() - start) / 60
    print(f"{len(paths) - len(failed)} of {len(paths)} notebooks ran in {total:.1f} min; "
          f"figures in {out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


def build(paths: list[Path], timeout: int = 1800) -> int:
    """Write each ``.ipynb`` from its jupytext ``.py`` source, executed top to bottom."""
    _require_notebook_tools()
    import jupytext

    if not paths:
        paths = sorted(p for p in (ROOT / "notebooks").glob("*.py") if _is_jupytext(p))
    for i, given in enumerate(paths, start=1):
        src, dst = Path(given).with_suffix(".py"), Path(given).with_suffix(".ipynb")
        if not src.exists():
            raise SystemExit(f"{src}: no jupytext source next to {given}")
        if dst.exists() and dst.stat().st_mtime > src.stat().st_mtime and \
                _cells(jupytext.read(dst)) != _cells(jupytext.read(src)):
            raise SystemExit(f"{dst} was edited after {src.name}; bring the edits into the source "
                             f"first: jupytext --to py:percent {dst}")
        t0 = time.perf_counter()
        nb = jupytext.read(src)
        if dst.exists():
            _keep_cell_ids(nb, jupytext.read(dst))
        try:
            execute(nb, src, timeout=timeout)
        except NotebookError as err:
            raise SystemExit(f"build stopped, {dst.name} left unchanged:\n{err}") from None
        jupytext.write(nb, dst, fmt="ipynb")
        print(f"[{i}/{len(paths)}] {dst} {time.perf_counter() - t0:6.1f} s", flush=True)
    return 0


def _keep_cell_ids(nb, old) -> None:
    """Reuse the ids of unchanged cells, so that a rebuild does not rewrite every cell id."""
    ids = {}
    for cell in old.cells:
        ids.setdefault((cell.cell_type, cell.source), cell.get("id"))
    used = set()
    for cell in nb.cells:
        cid = ids.get((cell.cell_type, cell.source))
        if cid and cid not in used and "id" in cell:
            cell.id = cid
            used.add(cid)


def _cells(nb) -> list:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecture_ntk.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the notebooks and write their figures")
    p_run.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                       help="folder of notebooks, or one notebook (default: notebooks/)")
    p_run.add_argument("--out", type=Path, default=ROOT / "figures",
                       help="folder for the PNG figures (default: figures/)")
    p_build = sub.add_parser("build", help="write executed .ipynb files from their .py sources")
    p_build.add_argument("paths", nargs="*", type=Path,
                         help="notebooks to rebuild, e.g. solutions/01_x.py (default: notebooks/*.py)")
    for p in (p_run, p_build):
        p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.notebooks, args.out, timeout=args.timeout)
    return build(args.paths, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
