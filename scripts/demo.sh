#!/usr/bin/env bash
# Sets up .venv and runs the main job on the embedded default (the README's
# first command): log a small CartPole DQN replay, then train offline REM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m batch_rl.train "$@"
