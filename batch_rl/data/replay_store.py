"""Replay checkpoints laid end to end in one global slot space.

Slot `g` of the store is slot `g - start[c]` of checkpoint `c`; transitions
never cross checkpoints (each is its own circular buffer). Two backends read
the windows of slots a batch of transitions needs:

* in memory: arrays become tensors and windows are `tf.gather`s, so the whole
  sampling step is TensorFlow ops (CPU, GPU or TPU);
* memory-mapped (`converted` directories): frames stay on disk and a batch's
  windows are read with one vectorised numpy gather per checkpoint; resident
  pages are dropped every few batches, so RAM does not grow with the number
  of checkpoints (see docs/PERFORMANCE.md).
"""

import mmap
from typing import Sequence

import numpy as np
import tensorflow as tf

from batch_rl.data import transitions
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.errors import ReplayDataError

WINDOW_ELEMENTS = ('observation', 'action', 'reward', 'terminal')


class ReplayStore:
  """Checkpoints of one run, addressed by global slot index."""

  def __init__(self, checkpoints: Sequence[ReplayArrays],
               names: Sequence[str], memory_mapped: bool = False,
               release_every: int = 2048):
    """`release_every`: transitions read between drops of resident pages
    (memory-mapped stores; 2048 = 64 batches of 32)."""
    if not checkpoints:
      raise ReplayDataError('no replay checkpoint selected.')
    first = checkpoints[0]
    for arrays, name in zip(checkpoints, names):
      for element in WINDOW_ELEMENTS:
        a, b = getattr(arrays, element), getattr(first, element)
        if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
          raise ReplayDataError(
              f'{name}: {element} has shape {a.shape[1:]} and dtype {a.dtype}'
              f', but {names[0]} has {b.shape[1:]} and {b.dtype}.')
    self.checkpoints = list(checkpoints)
    self.names = list(names)
    self.memory_mapped = memory_mapped
    capacities = np.array([a.capacity for a in checkpoints], dtype=np.int64)
    self.capacities = capacities
    self.starts = np.concatenate([[0], np.cumsum(capacities)[:-1]])
    self.num_slots = int(capacities.sum())
    self._release_every = release_every
    self._reads_since_release = 0

  @classmethod
  def from_arrays(cls, checkpoints: Sequence[ReplayArrays], names=None):
    names = names or [f'checkpoint {i}' for i in range(len(checkpoints))]
    return cls(checkpoints, names)

  @property
  def frame_shape(self) -> tuple[int, ...]:
    return tuple(self.checkpoints[0].observation.shape[1:])

  def element_spec(self, element: str) -> tuple[tuple[int, ...], np.dtype]:
    array = getattr(self.checkpoints[0], element)
    return tuple(array.shape[1:]), array.dtype

  def valid_indices(self, stack_size: int, update_horizon: int) -> np.ndarray:
    """Global indices of every transition Dopamine would sample."""
    parts = [
        np.flatnonzero(transitions.valid_mask(a, stack_size, update_horizon)) +
        start for a, start in zip(self.checkpoints, self.starts)
    ]
    self.release_pages()
    dtype = np.int32 if self.num_slots < 2**31 else np.int64
    return np.concatenate(parts).astype(dtype)

  def window_reader(self, stack_size: int, update_horizon: int):
    """Returns f(global_index [B] int64) -> (windows dict, local index [B])."""
    offsets = transitions.window_offsets(stack_size, update_horizon)
    starts = tf.constant(self.starts)
    capacities = tf.constant(self.capacities)

    def locate(global_index):
      ckpt = tf.searchsorted(starts, global_index, side='right') - 1
      return ckpt, global_index - tf.gather(starts, ckpt)

    if not self.memory_mapped:
      tensors = {
          name: tf.constant(
              np.concatenate([getattr(a, name) for a in self.checkpoints])
              if len(self.checkpoints) > 1 else getattr(self.checkpoints[0],
                                                        name))
          for name in WINDOW_ELEMENTS
      }

      def read(global_index):
        ckpt, local = locate(global_index)
        slots = tf.gather(starts, ckpt)[:, None] + tf.math.floormod(
            local[:, None] + offsets, tf.gather(capacities, ckpt)[:, None])
        return {n: tf.gather(t, slots) for n, t in tensors.items()}, local

      return read

    specs = [self.element_spec(n) for n in WINDOW_ELEMENTS]

    def read(global_index):
      ckpt, local = locate(global_index)
      windows = tf.numpy_function(
          lambda c, l: self._read_windows(c, l, offsets, specs), [ckpt, local],
          [tf.as_dtype(dtype) for _, dtype in specs], stateful=False)
      for window, (shape, _) in zip(windows, specs):
        window.set_shape([None, len(offsets), *shape])
      return dict(zip(WINDOW_ELEMENTS, windows)), local

    return read

  def _read_windows(self, ckpt: np.ndarray, local: np.ndarray,
                    offsets: np.ndarray, specs):
    """Windows of WINDOW_ELEMENTS; `specs` are their (shape, dtype)s."""
    slots = (local[:, None] + offsets) % self.capacities[ckpt][:, None]
    out = [np.empty(slots.shape + shape, dtype=dtype)
           for shape, dtype in specs]
    for c in np.unique(ckpt):
      rows = ckpt == c
      for window, name in zip(out, WINDOW_ELEMENTS):
        window[rows] = getattr(self.checkpoints[c], name)[slots[rows]]
    self._reads_since_release += len(local)
    if self._reads_since_release >= self._release_every:
      self.release_pages()
    return out

  def release_pages(self) -> None:
    """Drops this process's resident pages of memory-mapped files.

    The data stays in the OS page cache; only the process's resident set
    shrinks, which keeps RSS independent of how many checkpoints are read.
    """
    self._reads_since_release = 0
    if not self.memory_mapped:
      return
    for arrays in self.checkpoints:
      for name in WINDOW_ELEMENTS:
        mapped = getattr(getattr(arrays, name), '_mmap', None)
        if mapped is not None:
          mapped.madvise(mmap.MADV_DONTNEED)
