"""Run logs written by the runner: discovery and loading.

Each run's directory (see batch_rl.run_directory) holds `run_info.json`
(agent_name, environment like 'atari:Pong', seed, data_selection as a dict
of DataSelection's fields, ...) and `metrics.csv` with one row per finished
iteration. Run directories may be local or tf.io.gfile URLs
(batch_rl.storage).
"""

import dataclasses
import io
from typing import Sequence

import numpy as np
import pandas as pd

from batch_rl import storage
from batch_rl.analysis.errors import AnalysisError
from batch_rl.data.selection import DataSelection
from batch_rl.run_directory import AGENT_NAME
from batch_rl.run_directory import ENVIRONMENT
from batch_rl.run_directory import EVAL_RETURN_MEAN
from batch_rl.run_directory import ITERATION
from batch_rl.run_directory import METRIC_COLUMNS
from batch_rl.run_directory import METRICS
from batch_rl.run_directory import RUN_INFO
from batch_rl.run_directory import RunDirectory
from batch_rl.run_directory import SEED

# The run_info.json keys a run needs to be analysed.
REQUIRED_INFO = (AGENT_NAME, ENVIRONMENT, SEED)


@dataclasses.dataclass(frozen=True)
class Run:
  """One run: identity from run_info.json, per-iteration rows of metrics.csv."""
  run_dir: str
  agent_name: str
  environment: str
  seed: int
  data_selection: DataSelection
  metrics: pd.DataFrame

  @property
  def game(self) -> str:
    return self.environment.partition(':')[2]

  @property
  def variant(self) -> str:
    """The agent name, qualified by the data selection unless it is all data."""
    if self.data_selection.is_full:
      return self.agent_name
    return f'{self.agent_name} [{self.data_selection.label}]'


def find_run_dirs(base_dirs: Sequence[str]) -> list[str]:
  """Sorted directories under `base_dirs` (at any depth) with run_info.json."""
  found = set()
  for base_dir in base_dirs:
    if not storage.isdir(base_dir):
      raise AnalysisError(f'--base_dirs {base_dir}: no such directory.')
    for root, _, files in storage.walk(base_dir):
      if RUN_INFO in files:
        found.add(storage.normpath(root))
  if not found:
    raise AnalysisError(
        f'No runs under {", ".join(base_dirs)}: no {RUN_INFO} found in any '
        'subdirectory (each run directory needs run_info.json and '
        'metrics.csv).')
  return sorted(found)


def read_run_info(run_dir: str, required=REQUIRED_INFO,
                  purpose: str = 'the analysis') -> dict:
  """run_info.json with the keys `required` (AnalysisError otherwise)."""
  try:
    return RunDirectory(run_dir).read_run_info(required, purpose)
  except ValueError as e:
    raise AnalysisError(str(e)) from e


def read_metrics(run_dir: str) -> pd.DataFrame:
  """metrics.csv sorted by iteration; raises naming the file if malformed."""
  path = RunDirectory(run_dir).metrics_path
  if not storage.isfile(path):
    raise AnalysisError(f'{path}: missing (every run directory with '
                        f'{RUN_INFO} needs {METRICS}).')
  try:
    metrics = pd.read_csv(io.StringIO(storage.read_text(path)))
  except (pd.errors.ParserError, pd.errors.EmptyDataError,
          UnicodeDecodeError) as e:
    raise AnalysisError(f'{path}: not a readable CSV ({e}).') from e
  missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
  if missing:
    raise AnalysisError(
        f'{path}: missing columns {missing}; expected '
        f'{", ".join(METRIC_COLUMNS)}.')
  if metrics.empty:
    raise AnalysisError(f'{path}: no rows (no finished iteration).')
  numeric = metrics[list(METRIC_COLUMNS)].apply(pd.to_numeric, errors='coerce')
  bad = numeric.isna() & metrics[list(METRIC_COLUMNS)].notna()
  if bad.to_numpy().any():
    row, column = np.argwhere(bad.to_numpy())[0]
    value = metrics.iloc[row][METRIC_COLUMNS[column]]
    raise AnalysisError(
        f'{path}: non-numeric value {value!r}'
        f' in column {METRIC_COLUMNS[column]} (data row {row + 1}).')
  if numeric[EVAL_RETURN_MEAN].isna().any():
    raise AnalysisError(f'{path}: empty {EVAL_RETURN_MEAN} in some rows.')
  repeated = numeric[ITERATION][numeric[ITERATION].duplicated()]
  if len(repeated):
    raise AnalysisError(
        f'{path}: iteration {int(repeated.iloc[0])} has more than one row; '
        'each iteration must appear once (as the Runner writes it).')
  return numeric.sort_values(ITERATION, ignore_index=True)


def load_run(run_dir: str) -> Run:
  info = read_run_info(run_dir)
  directory = RunDirectory(run_dir)
  path = directory.run_info_path
  environment = str(info[ENVIRONMENT])
  if ':' not in environment:
    raise AnalysisError(f'{path}: environment {environment!r} must be '
                        '<family>:<game>, e.g. atari:Pong or minatar:breakout.')
  try:
    seed = int(info[SEED])
  except (TypeError, ValueError) as e:
    raise AnalysisError(
        f'{path}: seed {info[SEED]!r} is not an integer.') from e
  try:
    data_selection = directory.data_selection(info)
  except ValueError as e:
    raise AnalysisError(str(e)) from e
  return Run(
      run_dir=run_dir,
      agent_name=str(info[AGENT_NAME]),
      environment=environment,
      seed=seed,
      data_selection=data_selection,
      metrics=read_metrics(run_dir))


def load_runs(base_dirs: Sequence[str]) -> list[Run]:
  """Every run found under `base_dirs`."""
  return [load_run(run_dir) for run_dir in find_run_dirs(base_dirs)]
