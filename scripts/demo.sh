#!/usr/bin/env bash
# Sets up .venv and runs the main job on the embedded default (the README's
# first command): offline REM on the shipped CartPole DQN replay
# (batch_rl/experiments/data/cartpole_dqn_replay), evaluated online.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m batch_rl.train "$@"
