"""Reference scores from published learning curves.

Dopamine publishes its baseline agents' training curves as JSON files,
`baselines/atari/data/<game>.json` in github.com/google/dopamine: a list of
`{"Iteration": i, "Value": mean return, "Agent": "DQN"}` entries, the runs of
one agent one after another (the iteration restarts at 0 for each run). Its
DQN is the agent and protocol (sticky actions, 200 iterations of 1M frames)
that logged the DQN Replay Dataset, so its curves give the online-DQN
reference of the paper's normalized score.
"""

import json
import os
from typing import Sequence

import numpy as np
import pandas as pd

from batch_rl.analysis import scores
from batch_rl.analysis.errors import AnalysisError
from batch_rl.run_directory import EVAL_RETURN_MEAN

AGENT = 'DQN'  # The agent whose curves give the paper's reference.


def dopamine_runs(path: str, agent: str = AGENT) -> list[np.ndarray]:
  """The per-iteration returns of each run of `agent` in a Dopamine JSON."""
  try:
    with open(path) as f:
      entries = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise AnalysisError(f'{path}: not a readable JSON file ({e}).') from e
  if not isinstance(entries, list) or not all(
      isinstance(e, dict) and {'Iteration', 'Value', 'Agent'} <= set(e)
      for e in entries):
    raise AnalysisError(
        f'{path}: expected a list of {{"Iteration", "Value", "Agent"}} '
        "entries (Dopamine's baselines/atari/data/<game>.json).")
  runs = []
  for entry in entries:
    if entry['Agent'] != agent:
      continue
    if entry['Iteration'] == 0:
      runs.append([])
    elif not runs or entry['Iteration'] != len(runs[-1]):
      raise AnalysisError(
          f'{path}: {agent} iteration {entry["Iteration"]} follows '
          f'{len(runs[-1]) - 1 if runs else "nothing"}; expected runs of '
          'consecutive iterations from 0.')
    runs[-1].append(float(entry['Value']))
  if not runs:
    agents = sorted({e['Agent'] for e in entries})
    raise AnalysisError(f'{path}: no entry of agent {agent!r}; it has '
                        f'{agents}.')
  return [np.array(run) for run in runs]


def reference_score(runs: Sequence[np.ndarray], protocol: str = 'best'):
  """Mean over runs of each run's score (scores.run_score's protocol)."""
  return float(np.mean([
      scores.run_score(pd.DataFrame({EVAL_RETURN_MEAN: run}), protocol)
      for run in runs]))


def write_reference_csv(json_paths: Sequence[str], out: str,
                        agent: str = AGENT, protocol: str = 'best'
                        ) -> pd.DataFrame:
  """Writes `environment,random,<agent>` for the games of `json_paths`.

  A game is named by its file (`bank_heist.json` -> `atari:bank_heist`);
  random scores come from the bundled Atari-57 table, and games it lacks, or
  where the agent scores what a random policy does, are left out with a note
  in the file's header.
  """
  randoms = scores.load_reference('human').random
  name = agent.lower()
  rows, missing = [], []
  for path in sorted(json_paths):
    game = os.path.splitext(os.path.basename(path))[0]
    environment = f'atari:{game}'
    key = scores.environment_key(environment)
    if key not in randoms:
      missing.append(game)
      continue
    runs = dopamine_runs(path, agent)
    rows.append({scores.ENVIRONMENT: environment, scores.RANDOM: randoms[key],
                 name: round(reference_score(runs, protocol), 4),
                 'runs': len(runs)})
  if not rows:
    raise AnalysisError(f'none of {list(json_paths)} names a game of the '
                        'bundled random-score table.')
  table = pd.DataFrame(rows)
  header = [
      f'Online {agent} reference: mean over runs of each run\'s '
      f'{protocol} iteration,',
      'from Dopamine baseline curves (github.com/google/dopamine, '
      'baselines/atari/data/<game>.json);',
      'random: bundled Atari-57 table (DQN Zoo). Runs per game: ' +
      ', '.join(f'{r[scores.ENVIRONMENT]} {r["runs"]}' for r in rows) + '.',
  ]
  if missing:
    header.append(f'Left out (no random score): {", ".join(missing)}.')
  scores.write_reference_csv(
      out, name, [(r[scores.ENVIRONMENT], r[scores.RANDOM], r[name])
                  for r in rows], header)
  return table
