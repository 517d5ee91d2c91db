#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite: the package tests and nbval,
# which re-executes notebooks/*.ipynb and compares their outputs with the committed ones.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/test_kernels.py -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
set +e
"$PY" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests; that counts as a failure." >&2
    exit 1
fi
exit "$status"
