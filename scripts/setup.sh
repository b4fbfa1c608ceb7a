#!/usr/bin/env bash
# Creates .venv at the repository root and installs batch_rl with its pinned
# dependencies (idempotent: a second run only checks the pins).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
