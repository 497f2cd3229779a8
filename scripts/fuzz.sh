#!/usr/bin/env bash
# Longer fuzzing of every decoder that takes bytes from the network or from disk (tests/fuzz/).
#
#   scripts/fuzz.sh                 # 20000 examples per decoder (a few minutes on 2 cores)
#   scripts/fuzz.sh 200000          # longer; any failure prints the shrunk input that triggers it
#
# CI runs the same tests with ENCLAVEFL_FUZZ_EXAMPLES=40 (the default). Hypothesis keeps failing inputs in
# .hypothesis/ and replays them first on every later run, so a bug found here stays a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-20000}"
PY="${PYTHON:-.venv/bin/python}"
ENCLAVEFL_FUZZ_EXAMPLES="$EXAMPLES" "$PY" -m pytest -q -p no:randomly --timeout=0 tests/fuzz "${@:2}"
