"""Opens a replay directory of any supported layout as a ReplayStore.

Layouts: Dopamine gz checkpoints (loaded into memory, or converted once into
a compact cache when larger than a memory budget: `gz_cache`), `convert`ed
checkpoints (compact zstd blocks, decoded per batch), and RLDS
datasets laid out like TFDS `rlu_atari`, splits `checkpoint_NN` (rebuilt
into Dopamine's layout in memory).
"""

import os
import re
from typing import Optional

from batch_rl.data import converted
from batch_rl.data import gz_cache
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection

_RLDS_SPLIT = re.compile(r'^checkpoint_(\d+)$')


def is_rlds(path: str) -> bool:
  """A TFDS dataset directory (what `tfds.builder_from_directory` opens)."""
  return os.path.isfile(os.path.join(path, 'dataset_info.json'))


def _open_rlds(path: str, selection: DataSelection, stack_size: int,
               update_horizon: int) -> ReplayStore:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  splits = {int(m.group(1)): name
            for name in tfds.builder_from_directory(path).info.splits
            if (m := _RLDS_SPLIT.match(name))}
  if not splits:
    raise ReplayDataError(f'{path}: RLDS dataset has no checkpoint_NN split.')
  suffixes = selection.select_checkpoints(splits)
  return ReplayStore(
      [rlds_io.read_rlds_as_replay_arrays(path, splits[s], stack_size,
                                          update_horizon=update_horizon)
       for s in suffixes],
      [f'{path} split {splits[s]}' for s in suffixes])


def open_store(replay_dir: str, selection: DataSelection,
               stack_size: int = 4, update_horizon: int = 1,
               cache: Optional[gz_cache.GzReplayCache] = None) -> ReplayStore:
  """The selected checkpoints of `replay_dir` (never writes to it).

  `cache` says how a gz directory is read (default: `GzReplayCache()`, with
  its gin bindings).
  """
  if converted.is_converted(replay_dir):
    return converted.open_store(replay_dir, selection)
  if is_rlds(replay_dir):
    return _open_rlds(replay_dir, selection, stack_size, update_horizon)
  return gz_cache.open_gz(replay_dir, selection, cache)
