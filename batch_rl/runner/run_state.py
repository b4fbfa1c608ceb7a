"""What a run keeps on disk to resume: durable writes, iteration checkpoints.

The run directory's files are named in `batch_rl.run_directory`; they are
written through `batch_rl.storage` (a local path or a tf.io.gfile URL). Each
iteration's checkpoint is written into a temporary folder, every file and
the folder are fsynced, and only then is the folder renamed into place (and
its parent fsynced), so a published checkpoint is complete even after a
power loss. `metrics.csv` is then rewritten atomically from the rows
stored in that checkpoint, so a run killed at any moment resumes from the
last finished iteration without lost or duplicated rows. A checkpoint that
cannot be read on resume is renamed aside (`iteration_N.damaged`) and the
newest intact one is used (`CheckpointDirectory.restore_latest`). On an
object store (a URL) the rename moves file by file: a crash in between
leaves a checkpoint with files missing, which restoring finds damaged like
any other.
"""

import json
import sys
import zlib

from batch_rl import storage
# A name of this module: scripts/fault_campaign.py patches it.
from batch_rl.storage import fsync_tree

ITERATION_PREFIX = 'iteration_'  # Iteration N's folder: iteration_N.
DAMAGED_SUFFIX = '.damaged'  # A folder set aside as unreadable.


def iteration_seed(seed: int, phase: str, iteration: int) -> int:
  """A seed for `phase` ('evaluation', 'training') of `iteration` of a run
  seeded `seed`: a function of the three alone, so that what an iteration
  draws does not depend on whether the run was resumed."""
  return zlib.crc32(f'{seed}/{phase}/{iteration}'.encode())


def write_json(path: str, value) -> None:
  storage.write_atomically(
      path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def read_json(path: str):
  """The JSON value `write_json` wrote to `path`; ValueError naming the
  file if it holds no JSON (bytes that are no text read as U+FFFD)."""
  try:
    return json.loads(storage.read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: not valid JSON ({e}).') from e


class DamagedCheckpoint(Exception):
  """A checkpoint folder that cannot be restored; the message says why."""


class CheckpointDirectory:
  """Per-iteration checkpoint folders under `root`, the latest `keep` kept."""

  def __init__(self, root: str, keep: int = 3):
    self.root = root
    self.keep = keep
    storage.makedirs(root)

  def path(self, iteration: int) -> str:
    return storage.join(self.root, f'{ITERATION_PREFIX}{iteration}')

  def iterations(self) -> list[int]:
    return storage.numbered(storage.listdir(self.root), ITERATION_PREFIX)

  def latest(self):
    iterations = self.iterations()
    return iterations[-1] if iterations else None

  def save(self, iteration: int, write) -> None:
    """Calls write(tmp_dir), then publishes it as `iteration`'s checkpoint.

    If `write` raises (a full disk), the published checkpoints are intact.
    """
    final = self.path(iteration)
    tmp = final + storage.PARTIAL
    storage.rmtree(tmp)
    storage.makedirs(tmp)
    write(tmp)
    fsync_tree(tmp)
    storage.rmtree(final)
    storage.rename(tmp, final)
    storage.fsync_path(self.root)
    for old in self.iterations()[:-self.keep]:
      storage.rmtree(self.path(old))

  def _set_aside(self, iteration: int) -> str:
    """Renames a damaged checkpoint to iteration_N.damaged[.k]; its name."""
    aside = self.path(iteration) + DAMAGED_SUFFIX
    count = 1
    while storage.exists(aside):
      aside = f'{self.path(iteration)}{DAMAGED_SUFFIX}.{count}'
      count += 1
    storage.rename(self.path(iteration), aside)
    storage.fsync_path(self.root)
    return aside

  def restore_latest(self, restore):
    """Calls restore(path, iteration) on the newest checkpoint it accepts.

    `restore` raises DamagedCheckpoint for a checkpoint it cannot read; that
    folder is renamed aside with a one-line warning on stderr and the next
    older one is tried. Returns the restored iteration, or None if there is
    no intact checkpoint.
    """
    for iteration in reversed(self.iterations()):
      try:
        restore(self.path(iteration), iteration)
        return iteration
      except DamagedCheckpoint as damage:
        aside = self._set_aside(iteration)
        older = [i for i in self.iterations() if i < iteration]
        fallback = (f'resuming from iteration_{older[-1]}' if older
                    else 'no older checkpoint: starting over')
        print(f'warning: checkpoint {self.path(iteration)} is damaged '
              f'({damage}); moved to {aside}; {fallback}.',
              file=sys.stderr, flush=True)
    return None
