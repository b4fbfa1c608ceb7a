"""Reads a study's output (`python -m batch_rl.sweep`) for the report.

A study directory holds `study.json` (written by the sweep: its runs, their
kind and labels, and how to normalize). The report reads its offline runs
that finished at least one iteration (logging runs are the data, not
results), and its reference:
- 'logging': `reference.csv` in the study directory, made here from the
  study's finished logging runs (online agent = 100%, their best iteration's
  return averaged over seeds) and a seeded uniformly random policy measured
  on each game (= 0%, cached in `random_scores.csv`);
- anything else: a `--reference` of the analysis ('human', 'dqn', a CSV).
"""

import json
from typing import Optional, Sequence

import numpy as np

from batch_rl import storage
from batch_rl.analysis import runs as runs_lib
from batch_rl.analysis import scores
from batch_rl.analysis.errors import AnalysisError
from batch_rl.run_directory import RunDirectory

STUDY_FILE = 'study.json'  # batch_rl.sweep.study.STUDY_FILE
REFERENCE = 'reference.csv'
PROTOCOL = 'best'  # The logging agent's score: its best iteration.


def is_study(path: str) -> bool:
  return storage.isfile(storage.join(path, STUDY_FILE))


def read_study(path: str) -> dict:
  file = storage.join(path, STUDY_FILE)
  try:
    return json.loads(storage.read_text(file))
  except json.JSONDecodeError as e:
    raise AnalysisError(f'{file}: not valid JSON ({e}).') from e


def _runs(path: str, study: dict, kind: str, complete: bool) -> list[dict]:
  """The runs of `kind` with a run log (every iteration if `complete`)."""
  found = []
  for run in study['runs']:
    run_dir = storage.join(path, run['name'])
    done = RunDirectory(run_dir).finished_iterations()
    if run['kind'] == kind and storage.isfile(
        storage.join(run_dir, runs_lib.RUN_INFO)) and done and (
            not complete or done >= run['num_iterations']):
      found.append({**run, 'run_dir': run_dir})
  return found


def offline_runs(path: str) -> dict[str, str]:
  """Run directory -> agent label of the study's offline runs that finished
  at least one iteration."""
  runs = _runs(path, read_study(path), 'offline', complete=False)
  if not runs:
    raise AnalysisError(f'{path}: no offline run of the study has finished '
                        'an iteration yet; nothing to report.')
  return {storage.normpath(run['run_dir']): run['agent'] for run in runs}


def write_logging_reference(path: str, study: dict) -> str:
  """reference.csv (environment,random,<logging agent>) of the study."""
  # Environments load here only: other references need none of them.
  from batch_rl.analysis import random_policy  # pylint: disable=g-import-not-at-top
  logging = _runs(path, study, 'logging', complete=True)
  if not logging:
    raise AnalysisError(f'{path}: no logging run of the study has finished; '
                        "its reference 'logging' needs them.")
  per_environment = {}
  for run in logging:
    metrics = runs_lib.read_metrics(run['run_dir'])
    per_environment.setdefault(run['environment'], []).append(
        scores.run_score(metrics, PROTOCOL))
  caps = {run['max_steps_per_episode'] for run in study['runs']
          if run['kind'] == 'offline'}
  if len(caps) != 1 or None in caps:
    raise AnalysisError(
        f'{path}/{STUDY_FILE}: the offline runs have episode caps {caps}; the '
        'random policy is measured with the one cap they share.')
  (cap,) = caps
  random = random_policy.random_policy_scores(
      path, sorted(per_environment), study['random_policy_episodes'],
      int(cap))
  agent = logging[0]['agent']
  seeds = sorted({run['seed'] for run in logging})
  reference = storage.join(path, REFERENCE)
  left_out = scores.write_reference_csv(
      reference, agent,
      [(environment, random[environment], float(np.mean(values)))
       for environment, values in sorted(per_environment.items())],
      [f'random: uniformly random policy (seed {random_policy.SEED}), mean '
       f'return over {study["random_policy_episodes"]} episodes, episodes '
       f'cut at {cap} steps',
       f'{agent}: the online runs that logged the data, {PROTOCOL} '
       "iteration's eval_return_mean, mean over the finished runs of seeds "
       f'{", ".join(map(str, seeds))}'])
  for environment in left_out:
    print(f'{environment}: the logging {agent} scores what a random policy '
          f'does ({random[environment]:g}); left out of the normalized '
          'scores.')
  return reference


def resolve(base_dirs: Sequence[str], reference: Optional[str]
            ) -> tuple[list[str], str, dict[str, str]]:
  """Run directories, reference and agent labels of `base_dirs`.

  A base directory that holds study.json stands for its offline runs, whose
  agents are named by the study's labels (run directory -> label; 'rem',
  'rem 5x'), so that agents of one class (Ensemble-DQN and REM) and budgets
  are told apart. A reference of None is the study's (one study among
  `base_dirs`), else 'human'.
  """
  studies = [d for d in base_dirs if is_study(d)]
  resolved, labels = [], {}
  for base_dir in base_dirs:
    if base_dir in studies:
      labels.update(offline_runs(base_dir))
      resolved += sorted(offline_runs(base_dir))
    else:
      resolved.append(base_dir)
  if reference is None and len(studies) == 1:
    study = read_study(studies[0])
    reference = (write_logging_reference(studies[0], study)
                 if study['reference'] == 'logging' else study['reference'])
  return resolved, reference or 'human', labels
