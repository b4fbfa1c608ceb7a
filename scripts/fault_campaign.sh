#!/bin/bash
# Fault-injection campaign (docs/RELIABILITY.md): 20 random SIGKILLs of a
# tiny CartPole run, the bad-input table and the full-disk case.
# Usage: scripts/fault_campaign.sh [--kills=20] [--iterations=60] [--seed=0]
#     [--work_dir=DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
[[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
exec "$PYTHON" scripts/fault_campaign.py "$@"
