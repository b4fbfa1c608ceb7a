"""What a run keeps on disk to resume: atomic writes, iteration checkpoints.

The run directory's files are named in `batch_rl.run_directory`. Each
iteration's checkpoint is written into a temporary folder and renamed into
place, then `metrics.csv` is rewritten atomically from the rows stored in
that checkpoint, so a run killed at any moment resumes from the last
finished iteration without lost or duplicated rows.
"""

import json
import os
import shutil

_PREFIX = 'iteration_'


def write_atomically(path: str, text: str) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path: str, value) -> None:
  write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


class CheckpointDirectory:
  """Per-iteration checkpoint folders under `root`, the latest `keep` kept."""

  def __init__(self, root: str, keep: int = 3):
    self.root = root
    self.keep = keep
    os.makedirs(root, exist_ok=True)

  def path(self, iteration: int) -> str:
    return os.path.join(self.root, f'{_PREFIX}{iteration}')

  def iterations(self) -> list[int]:
    return sorted(
        int(name[len(_PREFIX):]) for name in os.listdir(self.root)
        if name.startswith(_PREFIX) and name[len(_PREFIX):].isdigit())

  def latest(self):
    iterations = self.iterations()
    return iterations[-1] if iterations else None

  def save(self, iteration: int, write) -> None:
    """Calls write(tmp_dir), then publishes it as `iteration`'s checkpoint."""
    final = self.path(iteration)
    tmp = final + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in self.iterations()[:-self.keep]:
      shutil.rmtree(self.path(old), ignore_errors=True)
