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

from typing import Optional, Sequence

import numpy as np

from batch_rl import storage
from batch_rl.analysis import runs as runs_lib
from batch_rl.analysis import scores
from batch_rl.analysis.errors import AnalysisError
from batch_rl.run_directory import RunDirectory
from batch_rl.study_directory import AGENT
from batch_rl.study_directory import ENVIRONMENT
from batch_rl.study_directory import KIND
from batch_rl.study_directory import LOGGING
from batch_rl.study_directory import LOGGING_REFERENCE
from batch_rl.study_directory import MAX_STEPS_PER_EPISODE
from batch_rl.study_directory import NUM_ITERATIONS
from batch_rl.study_directory import OFFLINE
from batch_rl.study_directory import RANDOM_POLICY_EPISODES
from batch_rl.study_directory import REFERENCE
from batch_rl.study_directory import RUNS
from batch_rl.study_directory import SEED
from batch_rl.study_directory import StudyDirectory

REFERENCE_CSV = 'reference.csv'
PROTOCOL = 'best'  # The logging agent's score: its best iteration.
_RUN_DIR = 'run_dir'  # Added to the study's run entries here.


def is_study(path: str) -> bool:
  return StudyDirectory(path).exists()


def read_study(path: str) -> dict:
  try:
    return StudyDirectory(path).read()
  except ValueError as e:
    raise AnalysisError(str(e)) from e


def _runs(path: str, study: dict, kind: str, complete: bool) -> list[dict]:
  """The runs of `kind` with a run log (every iteration if `complete`)."""
  found = []
  study_directory = StudyDirectory(path)
  for run in study[RUNS]:
    run_directory = RunDirectory(study_directory.run_dir(run))
    done = run_directory.finished_iterations()
    if run[KIND] == kind and storage.isfile(
        run_directory.run_info_path) and done and (
            not complete or done >= run[NUM_ITERATIONS]):
      found.append({**run, _RUN_DIR: run_directory.path})
  return found


def offline_runs(path: str) -> dict[str, str]:
  """Run directory -> agent label of the study's offline runs that finished
  at least one iteration."""
  runs = _runs(path, read_study(path), OFFLINE, complete=False)
  if not runs:
    raise AnalysisError(f'{path}: no offline run of the study has finished '
                        'an iteration yet; nothing to report.')
  return {storage.normpath(run[_RUN_DIR]): run[AGENT] for run in runs}


def write_logging_reference(path: str, study: dict) -> str:
  """reference.csv (environment,random,<logging agent>) of the study."""
  # Environments load here only: other references need none of them.
  from batch_rl.analysis import random_policy  # pylint: disable=g-import-not-at-top
  logging = _runs(path, study, LOGGING, complete=True)
  if not logging:
    raise AnalysisError(
        f'{path}: no logging run of the study has finished; its reference '
        f'{LOGGING_REFERENCE!r} needs them.')
  per_environment = {}
  for run in logging:
    metrics = runs_lib.read_metrics(run[_RUN_DIR])
    per_environment.setdefault(run[ENVIRONMENT], []).append(
        scores.run_score(metrics, PROTOCOL))
  caps = {run[MAX_STEPS_PER_EPISODE] for run in study[RUNS]
          if run[KIND] == OFFLINE}
  if len(caps) != 1 or None in caps:
    listed = ', '.join('none' if cap is None else str(cap) for cap in sorted(
        caps, key=lambda cap: (cap is None, cap or 0)))
    raise AnalysisError(
        f'{StudyDirectory(path).study_path}: the offline runs have episode '
        f'caps {listed}; the random policy is measured with the one cap they '
        'share.')
  (cap,) = caps
  random = random_policy.random_policy_scores(
      path, sorted(per_environment), study[RANDOM_POLICY_EPISODES],
      int(cap))
  agent = logging[0][AGENT]
  seeds = sorted({run[SEED] for run in logging})
  reference = storage.join(path, REFERENCE_CSV)
  left_out = scores.write_reference_csv(
      reference, agent,
      [(environment, random[environment], float(np.mean(values)))
       for environment, values in sorted(per_environment.items())],
      [f'random: uniformly random policy (seed {random_policy.SEED}), mean '
       f'return over {study[RANDOM_POLICY_EPISODES]} episodes, episodes '
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
    reference = study[REFERENCE]
    if reference == LOGGING_REFERENCE:
      reference = write_logging_reference(studies[0], study)
  return resolved, reference or 'human', labels
