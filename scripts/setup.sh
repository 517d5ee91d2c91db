#!/usr/bin/env bash
# Create .venv if missing and install lecture_ntk with its notebook and test tools.
# Sourced by scripts/lecture.sh and scripts/test.sh; run it alone to only set up.
#   PYTHON=python3.12 bash scripts/setup.sh   choose the interpreter for a new .venv
#   VENV=/path/to/venv                        use another virtual environment
#   TORCH_SPEC='torch==2.13.0'                torch installed when the venv has none
# A GPU: install the CUDA build of torch you want into the venv first; it is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SETUP_START=$SECONDS
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$PY" ]; then
    BASE="${PYTHON:-python3}"
    if ! "$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "setup: Python >= 3.11 is needed; '$BASE' is $("$BASE" -V 2>&1 || echo missing)." >&2
        echo "setup: set PYTHON=/path/to/python3.11 (or newer) and run again." >&2
        exit 1
    fi
    echo "setup: creating $VENV with $("$BASE" -V 2>&1)"
    "$BASE" -m venv "$VENV"
fi

# torch first, so that pip does not resolve it to a large CUDA build on a CPU machine.
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "setup: installing ${TORCH_SPEC:-torch==2.13.0}"
    "$PY" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi

# Reinstall the package only when pyproject.toml changed since the last install.
STAMP="$VENV/.lecture_ntk-installed"
WANT="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$ROOT/pyproject.toml")"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! "$PY" -c 'import lecture_ntk, nbval' 2>/dev/null; then
    echo "setup: installing lecture_ntk[notebooks,test] (editable)"
    "$PY" -m pip install --quiet -e "$ROOT[notebooks,test]"
    echo "$WANT" > "$STAMP"
fi

# Matplotlib writes a notice to stderr the first time it builds its font cache; inside a
# notebook that notice becomes an output and breaks the comparison, so build it now.
if [ ! -w "${HOME:-/nonexistent}" ]; then
    export MPLCONFIGDIR="$VENV/mplconfig"
fi
MPLBACKEND=Agg "$PY" -c 'import matplotlib.pyplot' >/dev/null 2>&1
# Notebook kernels must use the inline backend (an inherited Agg would drop every figure).
unset MPLBACKEND
echo "setup: $("$PY" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")') (ready in $((SECONDS - SETUP_START)) s)"
