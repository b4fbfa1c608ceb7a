#!/usr/bin/env bash
# Runs tests under coverage, the processes they start included, and lists
# batch_rl's lines that no test executed (docs/RELIABILITY.md, "Coverage").
#
#   bash scripts/coverage.sh                       # the whole suite
#   bash scripts/coverage.sh tests/test_data_cli.py
#
# Needs .venv (scripts/setup.sh) and, the first time, pip's registry:
# coverage is installed into .coverage_work/site, beside .venv, not into it.
# The report is also written to .coverage_work/report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(pwd)/.coverage_work"
python=.venv/bin/python
if [[ ! -x "$python" ]]; then
  echo "error: $python is missing; run bash scripts/setup.sh first." >&2
  exit 2
fi
if [[ ! -d "$work/site/coverage" ]]; then
  "$python" -m pip install -q --target "$work/site" 'coverage>=7.10'
fi
# Every Python process with this directory on its path starts measuring.
echo 'import coverage; coverage.process_startup()' > "$work/site/sitecustomize.py"
cat > "$work/coveragerc" <<EOF
[run]
source = batch_rl
parallel = true
data_file = $work/data/.coverage
EOF
rm -rf "$work/data"
mkdir -p "$work/data"
status=0
COVERAGE_PROCESS_START="$work/coveragerc" PYTHONPATH="$work/site" \
  "$python" -m pytest -q "${@:-tests}" || status=$?
# The report even when a test failed; then the exit status is pytest's.
export PYTHONPATH="$work/site"
"$python" -m coverage combine --rcfile="$work/coveragerc" -q || true
"$python" -m coverage report --rcfile="$work/coveragerc" --sort=-miss \
  --skip-covered -m > "$work/report.txt" || status=$((status ? status : 1))
cat "$work/report.txt"
exit "$status"
