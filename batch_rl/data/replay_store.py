"""Replay checkpoints laid end to end in one global slot space.

Slot `g` of the store is slot `g - start[c]` of checkpoint `c`; transitions
never cross checkpoints (each is its own circular buffer). Two backends read
the windows of slots a batch of transitions needs:

* in memory: each element's slots of all checkpoints are one 64-byte-aligned
  array, shared with TensorFlow without a copy (DLPack), and windows are
  `tf.gather`s, so the whole sampling step is TensorFlow ops (CPU, GPU or
  TPU). Dopamine gz checkpoints are decompressed straight into that array
  (`read_dopamine`): RAM holds the frames once (see docs/PERFORMANCE.md);
* host reads (`memory_mapped` stores: `converted` directories in the compact
  layout, `compact_store`): frames stay compressed in memory-mapped files,
  and a batch's windows are decoded on the host, in a pipeline stage of
  their own; resident pages are dropped every few batches, so RAM does not
  grow with the number of checkpoints (see docs/PERFORMANCE.md).
"""

import atexit
import dataclasses
import functools
import os
import threading
import time
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from batch_rl.data import dopamine_replay
from batch_rl.data import transitions
from batch_rl.data.aligned import TENSOR_ALIGNMENT
from batch_rl.data.aligned import aligned_empty
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.errors import ReplayDataError

WINDOW_ELEMENTS = ('observation', 'action', 'reward', 'terminal')
# Transitions a memory-mapped store reads between drops of its resident
# pages (`release_pages`): 2048 = 64 batches of 32.
RELEASE_EVERY = 2048


def _shares_with_tensorflow(array: np.ndarray) -> bool:
  return (array.flags.c_contiguous and array.flags.writeable and
          array.dtype != bool and array.ctypes.data % TENSOR_ALIGNMENT == 0)


def shared_tensor(array: np.ndarray) -> tf.Tensor:
  """A tensor over `array`'s memory (DLPack), or a copy where TensorFlow
  cannot share it (bool, read-only, unaligned or strided arrays)."""
  if _shares_with_tensorflow(array):
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
  return tf.constant(array)


def _check_same_layout(specs: Sequence[dict], names: Sequence[str]) -> None:
  """`specs[i][element]` = (shape, dtype) of checkpoint `names[i]`'s
  element; every checkpoint must match the first but for its capacity."""
  for spec, name in zip(specs, names):
    for element in WINDOW_ELEMENTS:
      (a_shape, a_dtype), (b_shape, b_dtype) = spec[element], specs[0][element]
      if a_shape[1:] != b_shape[1:] or a_dtype != b_dtype:
        raise ReplayDataError(
            f'{name}: {element} has shape {a_shape[1:]} and dtype {a_dtype}'
            f', but {names[0]} has {b_shape[1:]} and {b_dtype}.')


def _layout(arrays: ReplayArrays) -> dict:
  return {element: (getattr(arrays, element).shape,
                    getattr(arrays, element).dtype)
          for element in WINDOW_ELEMENTS}


def _views(checkpoints: Sequence[ReplayArrays], slot_arrays: dict):
  """`checkpoints` with their WINDOW_ELEMENTS replaced by views of their
  slots in `slot_arrays`."""
  views, start = [], 0
  for arrays in checkpoints:
    end = start + arrays.capacity
    views.append(dataclasses.replace(
        arrays, **{name: slot_arrays[name][start:end]
                   for name in WINDOW_ELEMENTS}))
    start = end
  return views


class _HostReads:
  """Host reads (numpy_functions) in flight, waited out at exit.

  At interpreter exit, Python ends a tf.data thread that enters Python (a
  numpy_function read) mid-call; the dataset iterator's destructor then
  waits forever for that call, and the process hangs with its threads on
  futexes. So before exit (atexit runs before the iterators are destroyed)
  this waits until no read is in flight and none started for QUIET_SECONDS:
  the pipeline's buffers are full and it launches no more reads.
  """

  QUIET_SECONDS = 0.5
  MAX_WAIT_SECONDS = 60

  def __init__(self):
    self._lock = threading.Lock()
    self._in_flight = 0
    self._last_start = 0.0
    atexit.register(self.wait_until_quiet)

  def run(self, read, *args):
    with self._lock:
      self._in_flight += 1
      self._last_start = time.monotonic()
    try:
      return read(*args)
    finally:
      with self._lock:
        self._in_flight -= 1

  def wait_until_quiet(self) -> None:
    deadline = time.monotonic() + self.MAX_WAIT_SECONDS
    while time.monotonic() < deadline:
      with self._lock:
        if (not self._in_flight and
            time.monotonic() - self._last_start > self.QUIET_SECONDS):
          return
      time.sleep(0.05)


_HOST_READS = None


def _host_reads() -> _HostReads:
  global _HOST_READS
  if _HOST_READS is None:
    _HOST_READS = _HostReads()
  return _HOST_READS


class ReplayStore:
  """Checkpoints of one run, addressed by global slot index."""

  def __init__(self, checkpoints: Sequence[ReplayArrays],
               names: Sequence[str], memory_mapped: bool = False,
               slot_arrays: Optional[dict] = None,
               suffixes: Optional[Sequence[int]] = None):
    """`suffixes`: the checkpoints' numbers in their run (default 0, 1,
    ...: logged one after the other). `slot_arrays`: in memory, per
    WINDOW_ELEMENTS name, every checkpoint's slots end to end in one aligned
    array (`aligned_empty`), of which `checkpoints` hold views; when not
    given, built by copying `checkpoints` once (a single checkpoint already
    laid out so is used as it is)."""
    if not checkpoints:
      raise ReplayDataError('no replay checkpoint selected.')
    _check_same_layout([_layout(a) for a in checkpoints], names)
    if not memory_mapped and slot_arrays is None:
      slot_arrays = self._gather_slots(checkpoints)
      checkpoints = _views(checkpoints, slot_arrays)
    self.checkpoints = list(checkpoints)
    self.names = list(names)
    self.suffixes = (list(range(len(checkpoints))) if suffixes is None else
                     [int(s) for s in suffixes])
    self.memory_mapped = memory_mapped
    self._slot_arrays = slot_arrays
    self._slot_tensors = None
    self._window_readers = {}
    capacities = np.array([a.capacity for a in checkpoints], dtype=np.int64)
    self.capacities = capacities
    self.starts = np.concatenate([[0], np.cumsum(capacities)[:-1]])
    self.num_slots = int(capacities.sum())
    self._reads_since_release = 0

  @staticmethod
  def _gather_slots(checkpoints: Sequence[ReplayArrays]) -> dict:
    slot_arrays = {}
    for name in WINDOW_ELEMENTS:
      parts = [getattr(a, name) for a in checkpoints]
      if len(parts) == 1 and _shares_with_tensorflow(parts[0]):
        slot_arrays[name] = parts[0]
      else:
        slot_arrays[name] = aligned_empty(
            (sum(len(p) for p in parts), *parts[0].shape[1:]), parts[0].dtype)
        np.concatenate(parts, out=slot_arrays[name])
    return slot_arrays

  @classmethod
  def from_arrays(cls, checkpoints: Sequence[ReplayArrays]):
    return cls(checkpoints,
               [f'checkpoint {i}' for i in range(len(checkpoints))])

  @classmethod
  def read_dopamine(cls, replay_dir: str, suffixes: Sequence[int]):
    """Checkpoints `suffixes` of a Dopamine gz directory, in memory.

    Each store file is decompressed straight into its checkpoint's part of
    one preallocated array per element: RAM holds the data once, at peak
    too, and TensorFlow shares it.
    """
    names = [os.path.join(replay_dir, f'checkpoint {s}') for s in suffixes]
    filename = functools.partial(dopamine_replay.store_filename, replay_dir)
    specs = [{name: dopamine_replay.read_array_header(filename(name, s))
              for name in WINDOW_ELEMENTS} for s in suffixes]
    for spec, name in zip(specs, names):
      lengths = {e: shape[0] if shape else None
                 for e, (shape, _) in spec.items()}
      if len(set(lengths.values())) != 1 or None in lengths.values():
        raise ReplayDataError(
            f'{name}: stored arrays have lengths {lengths}; all must equal '
            'the replay capacity.')
    _check_same_layout(specs, names)
    slot_arrays = {}
    for name in WINDOW_ELEMENTS:
      shape, dtype = specs[0][name]
      slot_arrays[name] = aligned_empty(
          (sum(spec[name][0][0] for spec in specs), *shape[1:]), dtype)
    checkpoints, start = [], 0
    for suffix, spec in zip(suffixes, specs):
      end = start + spec['observation'][0][0]
      for name in WINDOW_ELEMENTS:
        dopamine_replay.read_array_into(filename(name, suffix),
                                        slot_arrays[name][start:end])
      arrays = ReplayArrays(
          **{name: slot_arrays[name][start:end] for name in WINDOW_ELEMENTS},
          **dopamine_replay.read_small_elements(replay_dir, suffix))
      arrays.validate(filename('*', suffix))
      checkpoints.append(arrays)
      start = end
    return cls(checkpoints, names, slot_arrays=slot_arrays,
               suffixes=suffixes)

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
    """Returns f(global_index [B] int64) -> (windows dict, local index [B]).

    Built once per (stack_size, update_horizon) and store."""
    key = (stack_size, update_horizon)
    if key not in self._window_readers:
      self._window_readers[key] = self._build_window_reader(*key)
    return self._window_readers[key]

  def _build_window_reader(self, stack_size: int, update_horizon: int):
    offsets = transitions.window_offsets(stack_size, update_horizon)
    starts = tf.constant(self.starts)
    capacities = tf.constant(self.capacities)

    def locate(global_index):
      ckpt = tf.searchsorted(starts, global_index, side='right') - 1
      return ckpt, global_index - tf.gather(starts, ckpt)

    if not self.memory_mapped:
      if self._slot_tensors is None:
        self._slot_tensors = {name: shared_tensor(array)
                              for name, array in self._slot_arrays.items()}
      tensors = self._slot_tensors

      def read(global_index):
        ckpt, local = locate(global_index)
        slots = tf.gather(starts, ckpt)[:, None] + tf.math.floormod(
            local[:, None] + offsets, tf.gather(capacities, ckpt)[:, None])
        return {n: tf.gather(t, slots) for n, t in tensors.items()}, local

      return read

    specs = [self.element_spec(n) for n in WINDOW_ELEMENTS]
    host_reads = _host_reads()

    def read(global_index):
      ckpt, local = locate(global_index)
      windows = tf.numpy_function(
          lambda c, l: host_reads.run(self._read_and_release, c, l,
                                      offsets, specs), [ckpt, local],
          [tf.as_dtype(dtype) for _, dtype in specs], stateful=False)
      for window, (shape, _) in zip(windows, specs):
        window.set_shape([None, len(offsets), *shape])
      return dict(zip(WINDOW_ELEMENTS, windows)), local

    return read

  def _read_windows(self, ckpt: np.ndarray, local: np.ndarray,
                    offsets: np.ndarray, specs):
    """Windows of WINDOW_ELEMENTS read on the host; `specs` are their
    (shape, dtype)s. Stores with `memory_mapped` reads define it."""
    raise NotImplementedError(
        f'{type(self).__name__} reads in-graph; only host-read stores '
        'define _read_windows.')

  def _read_and_release(self, ckpt, local, offsets, specs):
    """`_read_windows`, releasing resident pages every RELEASE_EVERY
    transitions read."""
    out = self._read_windows(ckpt, local, offsets, specs)
    self._reads_since_release += len(local)
    if self._reads_since_release >= RELEASE_EVERY:
      self.release_pages()
    return out

  def release_pages(self) -> None:
    """Drops this process's resident pages of the files a host-read store
    reads (the data stays in the OS page cache), so RSS does not grow with
    the number of checkpoints read; nothing to drop in memory."""
    self._reads_since_release = 0
