"""The ReplayStore of compact checkpoints: frames decoded per batch.

Actions, rewards and terminals (9 bytes a slot for Atari) are held in RAM;
a batch's frame windows are read by one host call that decodes the zstd
blocks they touch (`compact.FrameReader`). Like the
memory-mapped stores, reads are `tf.numpy_function`s (`memory_mapped` is
True), and RAM does not grow with the number of checkpoints beyond the small
arrays.
"""

from typing import Optional, Sequence

import numpy as np

from batch_rl.data import compact
from batch_rl.data.replay_store import ReplayStore


class CompactStore(ReplayStore):
  """Compact checkpoints of one run, addressed by global slot index."""

  def __init__(self, checkpoints: Sequence[compact.CompactCheckpoint],
               names: Sequence[str],
               suffixes: Optional[Sequence[int]] = None):
    super().__init__([c.arrays for c in checkpoints], names,
                     memory_mapped=True, suffixes=suffixes)
    self._frames = compact.FrameReader([c.frames for c in checkpoints])
    # One array per element over all checkpoints; each checkpoint's arrays
    # become views of it, so the small elements are held once.
    self._small = {}
    for name in compact.SMALL_ELEMENTS:
      whole = np.concatenate([getattr(a, name) for a in self.checkpoints])
      for arrays, start in zip(self.checkpoints, self.starts):
        setattr(arrays, name, whole[start:start + arrays.capacity])
      self._small[name] = whole

  def _read_windows(self, ckpt: np.ndarray, local: np.ndarray,
                    offsets: np.ndarray, specs):
    del specs  # The arrays' own dtypes.
    slots = (local[:, None] + offsets) % self.capacities[ckpt][:, None]
    global_slots = self.starts[ckpt][:, None] + slots
    return [self._frames.read(ckpt, slots)] + [
        self._small[name][global_slots] for name in compact.SMALL_ELEMENTS]

  def release_pages(self) -> None:
    """Drops this process's resident pages of the compressed frame files."""
    super().release_pages()
    for frames in self._frames.frames:
      frames.release_pages()
