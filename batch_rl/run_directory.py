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
read them here. The path may be local or any tf.io.gfile URL
(`batch_rl.storage`; docs/RELIABILITY.md says what differs on object
stores, notably the lock).
"""

import csv
import dataclasses
import fcntl
import io
import os
import socket
import sys
from typing import Optional, Sequence

from batch_rl import storage
from batch_rl.data.selection import DataSelection
from batch_rl.runner import run_state

RUN_INFO = 'run_info.json'
METRICS = 'metrics.csv'
CHECKPOINTS = 'checkpoints'
TENSORBOARD = 'tensorboard'
REPLAY_LOGS = 'replay_logs'
LOCK = 'run.lock'


@dataclasses.dataclass(frozen=True)
class MetricsRow:
  """One row of metrics.csv: what the runner logs of a finished iteration."""
  iteration: int
  gradient_steps: int  # The agent's gradient steps so far.
  eval_episodes: int
  eval_return_mean: float
  eval_return_std: float
  train_loss: float  # The iteration's mean training loss.
  wall_time_s: float  # The iteration's duration.


# metrics.csv's columns, and a name for each, as MetricsRow has them.
METRIC_COLUMNS = tuple(field.name for field in dataclasses.fields(MetricsRow))
(ITERATION, GRADIENT_STEPS, EVAL_EPISODES, EVAL_RETURN_MEAN, EVAL_RETURN_STD,
 TRAIN_LOSS, WALL_TIME_S) = METRIC_COLUMNS

# run_info.json's keys that other modules read (batch_rl.experiment writes
# more facts of its own). Offline runs have all of them; logging runs have
# no REPLAY_DIR and no DATA_SELECTION (all data).
AGENT_NAME = 'agent_name'
ENVIRONMENT = 'environment'  # '<family>:<game>', e.g. 'atari:Pong'.
SEED = 'seed'
REPLAY_DIR = 'replay_dir'
DATA_SELECTION = 'data_selection'  # A dict of DataSelection's fields.
GIN_CONFIG = 'gin_config'  # The operative gin config (the runner writes it).

# Locks this process holds, by real path of the lock file (flock locks
# belong to open files, so a second open in this process would conflict),
# or by URL (None: the lock object is deleted on unlock).
_HELD_LOCKS = {}


class RunDirectory:
  """Paths and records of the run directory `path` (created on writes)."""

  def __init__(self, path: str):
    self.path = path
    self.run_info_path = storage.join(path, RUN_INFO)
    self.metrics_path = storage.join(path, METRICS)
    self.checkpoints_path = storage.join(path, CHECKPOINTS)
    self.tensorboard_path = storage.join(path, TENSORBOARD)
    self.replay_logs_path = storage.join(path, REPLAY_LOGS)
    self.lock_path = storage.join(path, LOCK)

  def write_run_info(self, info: dict,
                     selection: Optional[DataSelection] = None) -> None:
    """Writes `info`, with `selection` as a dict of its fields."""
    if selection is not None:
      info = {**info, DATA_SELECTION: dataclasses.asdict(selection)}
    run_state.write_json(self.run_info_path, info)

  def read_run_info(self, required: Sequence[str] = (),
                    purpose: str = '') -> dict:
    """run_info.json as a dict.

    Raises ValueError naming the file if it is malformed or lacks a key of
    `required` (`purpose` names what needs them, e.g. 'policy selection').
    """
    info = run_state.read_json(self.run_info_path)
    if not isinstance(info, dict):
      raise ValueError(f'{self.run_info_path}: expected a JSON object.')
    missing = [key for key in required if key not in info]
    if missing:
      needs = f'{purpose} needs' if purpose else 'expected'
      raise ValueError(f'{self.run_info_path}: missing keys {missing}; '
                       f'{needs} {list(required)}.')
    return info

  def data_selection(self, info: Optional[dict] = None) -> DataSelection:
    """The run's DataSelection (all data if run_info.json has none)."""
    info = self.read_run_info() if info is None else info
    return parse_data_selection(info.get(DATA_SELECTION), self.run_info_path)

  def write_metrics(self, rows) -> None:
    """Rewrites metrics.csv atomically from `rows` (dicts with the columns)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_COLUMNS,
                            extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    storage.write_atomically(self.metrics_path, out.getvalue())

  def read_metrics(self) -> list[dict]:
    """metrics.csv's rows as dicts of strings ([] when there is no file)."""
    if not storage.isfile(self.metrics_path):
      return []
    return list(csv.DictReader(io.StringIO(
        storage.read_text(self.metrics_path), newline='')))

  def finished_iterations(self) -> int:
    """The iterations metrics.csv holds (0 without one): what decides
    whether a run is finished, for studies and analyses alike."""
    return len(self.read_metrics())

  def lock(self) -> None:
    """Takes the exclusive lock `run.lock` (held until `unlock` or exit).

    The file holds the holder's PID. Raises OSError (one line) if another
    process holds it or the directory cannot be written. On a URL the lock
    is an object written after a check (`_lock_object`), not an atomic one.
    """
    key = self._lock_key()
    if key in _HELD_LOCKS:
      return
    if storage.exists(self.path) and not storage.isdir(self.path):
      raise OSError(f'{self.path} is a file; the run directory (--base_dir) '
                    'must be a folder or not exist yet.')
    if storage.is_url(self.path):
      self._lock_object()
      _HELD_LOCKS[key] = None
      return
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

  def _lock_object(self) -> None:
    """run.lock on an object store, which has no atomic create: the object
    names its holder ('PID on HOST'); a holder on this host that still runs
    refuses the lock; one on another host cannot be checked and is taken
    over with a warning (a study driver must start one process per run
    directory, as batch_rl.sweep does; its retries after a lost node land
    here)."""
    host = socket.gethostname()
    if storage.isfile(self.lock_path):
      holder = storage.read_text(self.lock_path).strip() or 'unknown'
      pid, _, holder_host = holder.partition(' on ')
      if holder_host != host:
        print(f'warning: {self.lock_path} names process {holder}, which '
              'cannot be checked from here; taking the run directory over '
              '(do not run two processes on one run directory).',
              file=sys.stderr, flush=True)
      elif pid.isdigit() and _is_running(int(pid)):
        raise OSError(
            f'{self.path} is in use by process {holder} ({LOCK});'
            ' wait for it to finish, stop it, or give another --base_dir.')
    storage.write_atomically(self.lock_path, f'{os.getpid()} on {host}\n')

  def _lock_key(self) -> str:
    if storage.is_url(self.lock_path):
      return self.lock_path
    return os.path.realpath(self.lock_path)

  def unlock(self) -> None:
    """Releases the lock `lock` took (the local file stays, unlocked; the
    lock object on a URL is deleted)."""
    key = self._lock_key()
    if key not in _HELD_LOCKS:
      return
    lock_file = _HELD_LOCKS.pop(key)
    if lock_file is not None:
      lock_file.close()
    elif storage.isfile(self.lock_path):
      storage.remove(self.lock_path)

  def checkpoints(self, keep: int = 3) -> run_state.CheckpointDirectory:
    """The iteration checkpoints (the folder is created)."""
    return run_state.CheckpointDirectory(self.checkpoints_path, keep)

  def existing_checkpoints(self) -> Optional[run_state.CheckpointDirectory]:
    """The iteration checkpoints to read, or None without a checkpoints
    folder (which is not created: readers leave the run as it is)."""
    if not storage.isdir(self.checkpoints_path):
      return None
    return self.checkpoints()


def parse_data_selection(value, path: str) -> DataSelection:
  """run_info.json's DATA_SELECTION `value` (a dict of DataSelection's
  fields; absent: all data) as a DataSelection; ValueError naming the file
  `path` if it is not one."""
  if value is None:
    return DataSelection()
  if not isinstance(value, dict):
    raise ValueError(
        f'{path}: {DATA_SELECTION} must be a dict of DataSelection fields, '
        f'got {value!r}.')
  fields = [field.name for field in dataclasses.fields(DataSelection)]
  unknown = sorted(set(value) - set(fields))
  if unknown:
    raise ValueError(f'{path}: {DATA_SELECTION} has unknown fields {unknown}; '
                     f'DataSelection has {fields}.')
  try:
    return DataSelection(**value)
  except (TypeError, ValueError) as e:
    raise ValueError(f'{path}: {DATA_SELECTION} {value!r} is not a data '
                     f'selection: {e}') from e


def _is_running(pid: int) -> bool:
  """Whether process `pid` of this host exists."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Another user's process.
  return True
