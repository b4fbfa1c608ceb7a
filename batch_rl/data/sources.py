"""Opens a replay directory of any supported layout as a ReplayStore.

Layouts: Dopamine gz checkpoints (loaded into memory), `convert`ed
memory-mapped checkpoints (streamed from disk), and TFDS/RLDS datasets laid
out like RL Unplugged Atari (`rlu.py`: converted once into a cache).
"""

import os

from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import rlu
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection


def open_store(replay_dir: str, selection: DataSelection,
               stack_size: int = 4, update_horizon: int = 1) -> ReplayStore:
  """The selected checkpoints of `replay_dir` (never writes to it)."""
  if converted.is_converted(replay_dir):
    return converted.open_store(replay_dir, selection)
  if rlu.is_tfds_dataset(replay_dir):
    return rlu.open_store(replay_dir, selection, stack_size)
  suffixes = selection.select_checkpoints(
      dopamine_replay.list_checkpoints(replay_dir))
  return ReplayStore(
      [dopamine_replay.read_arrays(replay_dir, s) for s in suffixes],
      [os.path.join(replay_dir, f'checkpoint {s}') for s in suffixes])
