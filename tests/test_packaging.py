"""Packaging stays consistent: pyproject.toml vs environment.yml, imports vs declared
dependencies, and the entry points the README and CI rely on."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
SELF = PROJECT["name"]
CONDA_NAME = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ
IMPORT_NAME = {"jupyter_client": "jupyter_client"}  # PyPI name -> import name where they differ
CONDA_ONLY = {"pip"}  # tooling that environment.yml lists for its own sake
# Modules that handle notebooks may use the notebooks extra (imported inside functions).
NOTEBOOK_TOOLS = {"course.py", "__main__.py", "grading"}


def _split(requirement: str) -> tuple[str, str]:
    """'torch>=2.1' -> ('torch', '>=2.1'); names normalised as PEP 503 (lower case, '-')."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*?)\s*", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(3).replace(" ", "")


def pip_requirements() -> dict[str, str]:
    """Every direct requirement of pyproject.toml (runtime and extras), self-references left out."""
    reqs = list(PROJECT["dependencies"])
    for extra in PROJECT.get("optional-dependencies", {}).values():
        reqs += extra
    pairs = [_split(r) for r in reqs]
    out = {name: spec for name, spec in pairs if name != _split(SELF)[0]}
    assert len(out) == len({n for n, _ in pairs if n != _split(SELF)[0]}), "listed twice"
    return out


def conda_requirements() -> dict[str, str]:
    """The dependencies of environment.yml (a flat list of 'name spec' strings)."""
    lines = (ROOT / "environment.yml").read_text(encoding="utf-8").splitlines()
    start = lines.index("dependencies:") + 1
    out = {}
    for line in lines[start:]:
        if not line.strip() or line.strip().startswith("#"):
            continue
        match = re.fullmatch(r"  - ([^\s:#]+)\s*(#.*)?", line)
        assert match, f"environment.yml: expected '  - name<spec>' under dependencies, got {line!r}"
        name, spec = _split(match.group(1))
        assert name not in out, f"environment.yml lists {name} twice"
        out[name] = spec
    return out


def test_environment_yml_matches_pyproject():
    conda = conda_requirements()
    python = conda.pop("python", None)
    assert python == PROJECT["requires-python"].replace(" ", ""), (
        f"python{python} in environment.yml vs requires-python {PROJECT['requires-python']}")
    for name in CONDA_ONLY:
        conda.pop(name, None)
    expected = {_split(CONDA_NAME.get(name, name))[0]: spec
                for name, spec in pip_requirements().items()}
    missing = {n: s for n, s in expected.items() if conda.get(n) != s}
    extra = {n: s for n, s in conda.items() if expected.get(n) != s}
    assert not missing and not extra, (
        f"pyproject.toml wants {missing} that environment.yml lacks or pins differently; "
        f"environment.yml has {extra} that pyproject.toml does not")


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != SELF}


def _importable(requirements) -> set[str]:
    return {IMPORT_NAME.get(n, n.replace("-", "_")) for n in (_split(r)[0] for r in requirements)}


@pytest.mark.parametrize("path", sorted((ROOT / SELF).rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT / SELF)))
def test_package_imports_only_declared_dependencies(path):
    allowed = _importable(PROJECT["dependencies"])
    if NOTEBOOK_TOOLS & {path.name, *path.relative_to(ROOT / SELF).parts}:
        allowed |= _importable(PROJECT["optional-dependencies"]["notebooks"])
    undeclared = _third_party_imports(path) - allowed
    assert not undeclared, (f"{path.name} imports {sorted(undeclared)}, not declared in "
                            "pyproject.toml [project] dependencies (nor environment.yml)")


def test_tests_import_only_declared_dependencies():
    reqs = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        reqs += extra
    allowed = _importable(reqs) | {"conftest"}
    used = set().union(*(_third_party_imports(p) for p in (ROOT / "tests").rglob("*.py")))
    assert not used - allowed, f"tests import undeclared packages: {sorted(used - allowed)}"


def test_entry_points_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("bash scripts/lecture.sh", "bash scripts/test.sh"):
        assert command in readme, f"README.md no longer shows {command!r}"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert setup.index("torch==2.13.0") < setup.index("pip install --quiet -e"), (
        "setup.sh must install the CPU torch before the package (else pip may pick a CUDA build)")
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == [SELF, SELF + ".*"]


def test_figures_named_in_readme_exist():
    """Every figures/NAME.png the README names is drawn by a cell tagged figure:NAME."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"figures/([a-z0-9_]+)\.png", readme))  # not the NAME placeholder
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "notebooks").glob("*.py"))
    missing = sorted(n for n in named if f'"figure:{n}"' not in sources)
    assert not missing, f"README.md names figures/{missing}.png but no notebook cell is tagged so"
