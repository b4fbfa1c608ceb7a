"""Opens a replay directory of any supported layout as a ReplayStore.

Layouts: Dopamine gz checkpoints (loaded into memory, or converted once into
a compact cache when larger than a memory budget: `gz_cache`), `convert`ed
checkpoints (the compact layout, decoded from disk per batch), and
TFDS/RLDS datasets laid out like RL Unplugged Atari (`rlu`: converted once
into a compact cache).
"""

from typing import Optional

from batch_rl.data import converted
from batch_rl.data import gz_cache
from batch_rl.data import rlu
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection


def open_store(replay_dir: str, selection: DataSelection,
               stack_size: int = 4, update_horizon: int = 1,
               cache: Optional[gz_cache.GzReplayCache] = None) -> ReplayStore:
  """The selected checkpoints of `replay_dir` (never writes to it).

  `cache` says how a gz directory is read (default: `GzReplayCache()`, with
  its gin bindings).
  """
  if converted.is_converted(replay_dir):
    return converted.open_store(replay_dir, selection)
  if rlu.is_tfds_dataset(replay_dir):
    return rlu.open_store(replay_dir, selection, stack_size)
  return gz_cache.open_gz(replay_dir, selection, cache)
