"""The one owner of a run directory's files and columns (no TensorFlow).

A run directory holds

  run_info.json   facts about the run (agent_name, environment, seed, ...,
                  data_selection as a dict of DataSelection's fields,
                  gin_config)
  metrics.csv     one row of METRIC_COLUMNS per finished iteration
  checkpoints/    iteration_N folders (see runner.run_state)
  tensorboard/    summaries
  replay_logs/    the logged replay (online logging runs)
  run.lock        held while a process runs it

The runner writes these; analysis, policy selection and the study driver
read them here.
"""

import csv
import dataclasses
import fcntl
import io
import json
import os
from typing import Optional

from batch_rl.runner import run_state

RUN_INFO = 'run_info.json'
METRICS = 'metrics.csv'
CHECKPOINTS = 'checkpoints'
TENSORBOARD = 'tensorboard'
REPLAY_LOGS = 'replay_logs'
LOCK = 'run.lock'
METRIC_COLUMNS = ('iteration', 'gradient_steps', 'eval_episodes',
                  'eval_return_mean', 'eval_return_std', 'train_loss',
                  'wall_time_s')
DATA_SELECTION = 'data_selection'

# Locks this process holds, by real path of the lock file (flock locks
# belong to open files, so a second open in this process would conflict).
_HELD_LOCKS = {}


class RunDirectory:
  """Paths and records of the run directory `path` (created on writes)."""

  def __init__(self, path: str):
    self.path = path
    self.run_info_path = os.path.join(path, RUN_INFO)
    self.metrics_path = os.path.join(path, METRICS)
    self.checkpoints_path = os.path.join(path, CHECKPOINTS)
    self.tensorboard_path = os.path.join(path, TENSORBOARD)
    self.replay_logs_path = os.path.join(path, REPLAY_LOGS)
    self.lock_path = os.path.join(path, LOCK)

  def has_run_info(self) -> bool:
    return os.path.isfile(self.run_info_path)

  def write_run_info(self, info: dict, selection=None) -> None:
    """Writes `info`, with the DataSelection dataclass `selection` as a dict."""
    os.makedirs(self.path, exist_ok=True)
    if selection is not None:
      info = {**info, DATA_SELECTION: dataclasses.asdict(selection)}
    run_state.write_json(self.run_info_path, info)

  def read_run_info(self) -> dict:
    """run_info.json as a dict; ValueError naming the file if malformed."""
    try:
      with open(self.run_info_path) as f:
        info = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{self.run_info_path}: not valid JSON ({e}).') from e
    if not isinstance(info, dict):
      raise ValueError(f'{self.run_info_path}: expected a JSON object.')
    return info

  def data_selection(self, info: Optional[dict] = None) -> dict:
    """The run's DataSelection fields ({} for all data)."""
    info = self.read_run_info() if info is None else info
    value = info.get(DATA_SELECTION) or {}
    if not isinstance(value, dict):
      raise ValueError(
          f'{self.run_info_path}: {DATA_SELECTION} must be a dict of '
          f'DataSelection fields, got {value!r}.')
    return value

  def write_metrics(self, rows) -> None:
    """Rewrites metrics.csv atomically from `rows` (dicts with the columns)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_COLUMNS,
                            extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    run_state.write_atomically(self.metrics_path, out.getvalue())

  def read_metrics(self) -> list[dict]:
    """metrics.csv's rows as dicts of strings ([] when there is no file)."""
    if not os.path.isfile(self.metrics_path):
      return []
    with open(self.metrics_path, newline='') as f:
      return list(csv.DictReader(f))

  def finished_iterations(self) -> int:
    return len(self.read_metrics())

  def is_complete(self, num_iterations: int) -> bool:
    """Whether metrics.csv holds every iteration 0 .. num_iterations - 1."""
    done = {int(row['iteration']) for row in self.read_metrics()}
    return set(range(num_iterations)) <= done

  def lock(self) -> None:
    """Takes the exclusive lock `run.lock` (held until `unlock` or exit).

    The file holds the holder's PID. Raises OSError (one line) if another
    process holds it or the directory cannot be written.
    """
    key = os.path.realpath(self.lock_path)
    if key in _HELD_LOCKS:
      return
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      raise OSError(f'{self.path} is a file; the run directory (--base_dir) '
                    'must be a folder or not exist yet.')
    try:
      os.makedirs(self.path, exist_ok=True)
      lock_file = open(self.lock_path, 'a+')  # pylint: disable=consider-using-with
    except OSError as e:
      raise OSError(
          f'cannot write the run directory {self.path} '
          f'({e.strerror}: {e.filename}); give a writable --base_dir.'
      ) from e
    try:
      fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      lock_file.seek(0)
      holder = lock_file.read().strip() or 'unknown'
      lock_file.close()
      raise OSError(  # pylint: disable=raise-missing-from
          f'{self.path} is in use by process {holder} ({LOCK});'
          ' wait for it to finish, stop it, or give another --base_dir.')
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f'{os.getpid()}\n')
    lock_file.flush()
    _HELD_LOCKS[key] = lock_file

  def unlock(self) -> None:
    """Releases the lock `lock` took (the file stays, unlocked)."""
    lock_file = _HELD_LOCKS.pop(os.path.realpath(self.lock_path), None)
    if lock_file is not None:
      lock_file.close()

  def checkpoints(self, keep: int = 3) -> run_state.CheckpointDirectory:
    """The iteration checkpoints (the folder is created)."""
    return run_state.CheckpointDirectory(self.checkpoints_path, keep)
