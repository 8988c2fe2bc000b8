#!/usr/bin/env bash
# On a GPU machine: runs the test matrix, then again under compute-sanitizer
# (memcheck) when it is installed. Needs python3 with NumPy only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 run_cases.py "$@"
SANITIZER="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ -x "$SANITIZER" ]; then
  "$SANITIZER" --tool memcheck --error-exitcode 3 python3 run_cases.py "$@"
else
  echo "compute-sanitizer not found: skipped the memcheck run"
fi
