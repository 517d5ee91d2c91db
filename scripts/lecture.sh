#!/usr/bin/env bash
# Set up (scripts/setup.sh), then execute every notebook headlessly and write its figures
# into figures/ (Figure 1 of the lecture: figures/example3_figure1.png). One line per notebook.
# Extra arguments go to `python -m lecture_ntk.course run` (e.g. --notebooks notebooks/06_x.ipynb).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$PY" -m lecture_ntk.course run "$@"
