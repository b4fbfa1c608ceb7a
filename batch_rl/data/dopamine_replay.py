"""Dopamine replay checkpoints: the on-disk layout of the DQN Replay Dataset.

A checkpoint N of one run is a set of gzip files in one directory, each an
`np.save` array (or, for `episode_end_indices`, a pickled set of ints):

  $store$_observation_ckpt.N.gz  [capacity, *observation_shape]
  $store$_action_ckpt.N.gz       [capacity]
  $store$_reward_ckpt.N.gz       [capacity]
  $store$_terminal_ckpt.N.gz     [capacity]
  add_count_ckpt.N.gz            scalar: transitions ever added (with padding)
  invalid_range_ckpt.N.gz        indices straddling the write cursor
  episode_end_indices_ckpt.N.gz  (newer Dopamine only)

`load_checkpoint` returns a `ReplayCheckpoint` whose `is_valid_transition`
and `sample_transition_batch` return exactly what dopamine-rl's
`OutOfGraphReplayBuffer` returns for the same files and indices.
"""

import contextlib
import dataclasses
import gzip
import os
import pickle
import re
import zlib
from typing import Optional, Sequence

import numpy as np

from batch_rl import storage
from batch_rl.data import validation
from batch_rl.data.errors import ReplayDataError

try:  # isal's gzip reads about 1.8x faster than the standard library's.
  from isal import igzip as fast_gzip  # pylint: disable=g-import-not-at-top
  from isal import isal_zlib  # pylint: disable=g-import-not-at-top
  _DECODER_ERRORS = (isal_zlib.error,)
except ImportError:  # Same bytes, slower.
  fast_gzip = gzip
  _DECODER_ERRORS = ()
# What reading a truncated or corrupt gzip file raises.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError,
               *_DECODER_ERRORS)

STORE_PREFIX = '$store$_'
STORE_ELEMENTS = ('observation', 'action', 'reward', 'terminal')
# A checkpoint's other files (episode_end_indices: newer Dopamine only).
METADATA_ELEMENTS = ('add_count', 'invalid_range', 'episode_end_indices')
_CHECKPOINT_RE = re.compile(
    '^' + re.escape(STORE_PREFIX + 'observation') + r'_ckpt\.(\d+)\.gz$')


def checkpoint_filename(replay_dir: str, name: str, suffix: int) -> str:
  """Path of one element of checkpoint `suffix`, named as Dopamine names it."""
  return os.path.join(replay_dir, f'{name}_ckpt.{suffix}.gz')


def store_filename(replay_dir: str, element: str, suffix: int) -> str:
  """Path of stored element `element` (one of STORE_ELEMENTS; '*' names
  them all in messages) of checkpoint `suffix`."""
  return checkpoint_filename(replay_dir, STORE_PREFIX + element, suffix)


def check_outside_replay(replay_dir: str, out_dir: str, what: str) -> None:
  """Raises ReplayDataError unless `out_dir` (`what`: 'output', ...) lies
  outside `replay_dir`, symlinks resolved: the dataset read is never
  written to."""
  replay = os.path.realpath(replay_dir)
  if os.path.commonpath([os.path.realpath(out_dir), replay]) == replay:
    raise ReplayDataError(
        f'{out_dir}: the {what} must be outside the replay directory '
        f'{replay_dir} (the dataset being read is never written to).')


def list_checkpoints(replay_dir: str) -> list[int]:
  """Sorted checkpoint suffixes found in `replay_dir`; raises if none."""
  if not os.path.isdir(replay_dir):
    raise ReplayDataError(f'{replay_dir}: replay directory does not exist.')
  suffixes = sorted(
      int(m.group(1))
      for m in map(_CHECKPOINT_RE.match, os.listdir(replay_dir)) if m)
  if not suffixes:
    raise ReplayDataError(
        f'{replay_dir}: no Dopamine replay checkpoints found (expected files '
        f'like {STORE_PREFIX}observation_ckpt.0.gz).')
  return suffixes


class _SetUnpickler(pickle.Unpickler):
  """Unpickles Dopamine's `episode_end_indices` (a set of integers) only."""

  _ALLOWED = {
      ('builtins', 'set'): set,
      ('builtins', 'frozenset'): frozenset,
      ('numpy', 'dtype'): np.dtype,
      # Dopamine stores numpy integer scalars (its cursor) in the set.
      ('numpy.core.multiarray', 'scalar'): np.core.multiarray.scalar,
      ('numpy._core.multiarray', 'scalar'): np.core.multiarray.scalar,
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refusing to unpickle {module}.{name}')
    return self._ALLOWED[module, name]


@contextlib.contextmanager
def open_gzip(path: str, content: str = 'an np.save array'):
  """The gzip file `path`, open for reading; a missing, truncated or corrupt
  file, or one whose payload is not `content`, is one ReplayDataError naming
  `path` (one raised inside passes unchanged)."""
  if not os.path.exists(path):
    raise ReplayDataError(f'{path}: file is missing.')
  try:
    with fast_gzip.open(path, 'rb') as f:
      yield f
  except ReplayDataError:
    raise
  except GZIP_ERRORS as e:
    raise ReplayDataError(
        f'{path}: truncated or corrupt gzip file ({e}).') from None
  except (ValueError, pickle.UnpicklingError) as e:
    raise ReplayDataError(f'{path}: not {content}, or cut short ({e}).'
                          ) from None


def _read_gzip_payload(path: str, reader, content: str = 'an np.save array'):
  with open_gzip(path, content) as f:
    return reader(f)


def read_array(path: str) -> np.ndarray:
  """Reads one `np.save` array from a gzip file, with errors naming the file."""
  return _read_gzip_payload(path, lambda f: np.load(f, allow_pickle=False))


def read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
  """(shape, fortran_order, dtype) of the `np.save` array starting at `f`."""
  version = np.lib.format.read_magic(f)
  read = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
          np.lib.format.read_array_header_2_0)
  shape, fortran_order, dtype = read(f)
  return tuple(shape), fortran_order, dtype


def read_array_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
  """(shape, dtype) of the `np.save` array in a gzip file, without its data."""
  shape, _, dtype = _read_gzip_payload(path, read_npy_header)
  return shape, dtype


_READ_CHUNK = 2**20


def read_array_into(path: str, out: np.ndarray) -> None:
  """Reads the `np.save` array of a gzip file into `out`, a C-contiguous
  array of the same shape and dtype (no intermediate copy of the data)."""

  if not out.flags.c_contiguous:
    raise ValueError(f'read_array_into({path}): `out` is not C-contiguous.')

  def read(f):
    shape, fortran_order, dtype = read_npy_header(f)
    if shape != out.shape or dtype != out.dtype or fortran_order:
      raise ReplayDataError(
          f'{path}: holds a {dtype} array of shape {shape}'
          f'{" (Fortran order)" if fortran_order else ""}, expected '
          f'{out.dtype} of shape {out.shape}.')
    target = memoryview(out.reshape(-1).view(np.uint8))
    filled = 0
    while filled < len(target):
      count = f.readinto(target[filled:filled + _READ_CHUNK])
      if not count:
        raise EOFError(f'data ends after {filled} of {len(target)} bytes')
      filled += count

  _read_gzip_payload(path, read)


def check_gzip_size(path: str) -> None:
  """Detects a truncated `np.save` gzip file without decompressing it.

  gzip's trailer holds the uncompressed size modulo 2**32, and the array's
  header gives the size it must have; a file cut short ends in other bytes.
  """

  def expected_size(f):
    shape, _, dtype = read_npy_header(f)
    return f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

  expected = _read_gzip_payload(path, expected_size)
  trailer = uncompressed_size_hint(path)
  if trailer != expected % 2**32:
    raise ReplayDataError(
        f'{path}: truncated or corrupt gzip file (its trailer records '
        f'{trailer} bytes modulo 2**32, the array needs {expected}).')


def uncompressed_size_hint(path: str) -> int:
  """A gz file's uncompressed size modulo 2**32 (its trailer); 0 if absent."""
  if not os.path.exists(path) or os.path.getsize(path) < 4:
    return 0
  with open(path, 'rb') as f:
    f.seek(-4, os.SEEK_END)
    return int.from_bytes(f.read(4), 'little')


# Bytes of array data per chunk `stream_array` hands over.
_STREAM_CHUNK_BYTES = 64 << 20


def stream_array(path: str, consume) -> None:
  """Decompresses the `np.save` array in `path` chunk by chunk.

  Calls consume(chunk, offset, shape) with flat arrays of whole elements,
  `offset` the flat index of the chunk's first element, `shape` the
  array's; gzip verifies the CRC and length at the end. Errors name the
  file.
  """

  def read(f):
    shape, _, dtype = read_npy_header(f)
    count = int(np.prod(shape, dtype=np.int64))
    per_chunk = max(1, _STREAM_CHUNK_BYTES // dtype.itemsize)
    for offset in range(0, count, per_chunk):
      size = min(per_chunk, count - offset) * dtype.itemsize
      data = f.read(size)
      if len(data) != size:
        raise EOFError('array data ends early')
      consume(np.frombuffer(data, dtype), offset, shape)
    if f.read(1):
      raise ReplayDataError(
          f'{path}: holds bytes after its {dtype} array of shape {shape} '
          '(corrupt, or not written by np.save).')

  _read_gzip_payload(path, read)


_INDEX_SET = 'a pickled set of slot indices, as Dopamine writes'


def _read_index_set(path: str) -> np.ndarray:
  indices = _read_gzip_payload(path, lambda f: _SetUnpickler(f).load(),
                               _INDEX_SET)
  if not isinstance(indices, (set, frozenset)):
    raise ReplayDataError(
        f'{path}: holds a pickled {type(indices).__name__}, not '
        f'{_INDEX_SET}.')
  return np.array(sorted(indices), dtype=np.int64)


@dataclasses.dataclass
class ReplayArrays:
  """The stored content of one replay checkpoint (a circular buffer)."""
  observation: np.ndarray
  action: np.ndarray
  reward: np.ndarray
  terminal: np.ndarray
  add_count: int
  invalid_range: np.ndarray
  episode_end_indices: Optional[np.ndarray] = None

  @property
  def capacity(self) -> int:
    return len(self.terminal)

  @property
  def cursor(self) -> int:
    return self.add_count % self.capacity

  @property
  def is_full(self) -> bool:
    return self.add_count >= self.capacity

  @property
  def has_wrapped(self) -> bool:
    """Whether the cursor went round: the oldest slots were overwritten.

    A buffer filled exactly to capacity is full but still holds its first
    slot, so its oldest episode is complete.
    """
    return self.add_count > self.capacity

  @property
  def num_stored(self) -> int:
    """Slots holding data (padding included)."""
    return min(self.add_count, self.capacity)

  def chronological_slots(self) -> np.ndarray:
    """Slot indices from the oldest stored transition to the newest."""
    start = self.cursor if self.is_full else 0
    return (start + np.arange(self.num_stored)) % self.capacity

  def chronological_episode_ends(self) -> np.ndarray:
    """Per `chronological_slots()` entry: does an episode end there?

    Episodes end at a terminal or, in newer Dopamine, at an
    `episode_end_indices` slot (a time-limit cut without terminal).
    """
    slots = self.chronological_slots()
    ends = np.asarray(self.terminal)[slots].astype(bool)
    if self.episode_end_indices is not None:
      is_end = np.zeros(self.capacity, dtype=bool)
      is_end[self.episode_end_indices] = True
      ends |= is_end[slots]
    return ends

  def validate(self, source: str, check_frames: bool = True) -> None:
    """Raises ReplayDataError naming `source` if the arrays are inconsistent
    or hold bad values (validation.check_replay_values; frames only when
    `check_frames`)."""
    lengths = {name: len(getattr(self, name)) for name in STORE_ELEMENTS}
    if len(set(lengths.values())) != 1:
      raise ReplayDataError(
          f'{source}: stored arrays have mismatched lengths {lengths}; all '
          'must equal the replay capacity.')
    for name, kinds in (('action', 'iuf'), ('reward', 'f'),
                        ('terminal', 'iub'), ('observation', 'iufb')):
      dtype = getattr(self, name).dtype
      if dtype.kind not in kinds:
        raise ReplayDataError(
            f'{source}: {STORE_PREFIX}{name} has unexpected dtype {dtype}.')
    for name in ('reward', 'terminal'):
      if getattr(self, name).ndim != 1:
        raise ReplayDataError(
            f'{source}: {STORE_PREFIX}{name} has shape '
            f'{getattr(self, name).shape}, expected ({self.capacity},).')
    if self.observation.ndim < 2:
      raise ReplayDataError(
          f'{source}: {STORE_PREFIX}observation has shape '
          f'{self.observation.shape}, expected (capacity, *frame_shape).')
    if self.add_count < 0:
      raise ReplayDataError(
          f'{source}: add_count={self.add_count}, expected >= 0 (the '
          'transitions ever added).')
    if self.invalid_range.ndim != 1:
      raise ReplayDataError(
          f'{source}: invalid_range has shape {self.invalid_range.shape}, '
          f'expected a list of indices in [0, {self.capacity}).')
    validation.check_replay_values(self, source, check_frames)


def read_small_elements(replay_dir: str, suffix: int) -> dict:
  """add_count, invalid_range and episode_end_indices (None when absent)."""
  add_count_file = checkpoint_filename(replay_dir, 'add_count', suffix)
  add_count = read_array(add_count_file)
  if add_count.shape != () or add_count.dtype.kind not in 'iu' or (
      add_count < 0):
    raise ReplayDataError(
        f'{add_count_file}: expected an integer scalar >= 0 (the transitions '
        f'ever added), got {add_count.dtype} '
        f'{add_count if add_count.shape == () else add_count.shape}.')
  invalid_range = read_array(
      checkpoint_filename(replay_dir, 'invalid_range', suffix))
  episode_end_file = checkpoint_filename(replay_dir, 'episode_end_indices',
                                         suffix)
  return {
      'add_count': int(add_count),
      'invalid_range': np.asarray(invalid_range).astype(np.int64),
      'episode_end_indices': (_read_index_set(episode_end_file)
                              if os.path.exists(episode_end_file) else None),
  }


def read_arrays(replay_dir: str, suffix: int,
                observation_shape: Optional[Sequence[int]] = None,
                observation_dtype=None) -> ReplayArrays:
  """Reads and validates checkpoint `suffix` of `replay_dir` (never writes)."""
  store = {
      name: read_array(
          store_filename(replay_dir, name, suffix))
      for name in STORE_ELEMENTS
  }
  small = read_small_elements(replay_dir, suffix)
  arrays = ReplayArrays(**small, **store)
  source = store_filename(replay_dir, '*', suffix)
  arrays.validate(source)
  frame_shape = tuple(arrays.observation.shape[1:])
  if observation_shape is not None and frame_shape != tuple(observation_shape):
    raise ReplayDataError(
        f'{store_filename(replay_dir, "observation", suffix)}'
        f': frames have shape {frame_shape}, expected '
        f'{tuple(observation_shape)}.')
  if (observation_dtype is not None and
      arrays.observation.dtype != np.dtype(observation_dtype)):
    raise ReplayDataError(
        f'{store_filename(replay_dir, "observation", suffix)}'
        f': frames have dtype {arrays.observation.dtype}, expected '
        f'{np.dtype(observation_dtype)}.')
  return arrays


def shape_only_frames(shape, dtype) -> np.ndarray:
  """A stand-in for a checkpoint's frames that holds no memory: their shape
  and dtype, every value zero."""
  return np.broadcast_to(np.zeros((), dtype), tuple(shape))


def read_arrays_without_frames(replay_dir: str, suffix: int) -> ReplayArrays:
  """Checkpoint `suffix` of `replay_dir` with `shape_only_frames`, validated
  but for frame values: an Atari checkpoint's 7 GB of frames stay on disk
  (a frame file cut short is still found, from its gzip trailer)."""
  observation_file = store_filename(replay_dir, 'observation', suffix)
  check_gzip_size(observation_file)
  arrays = ReplayArrays(
      observation=shape_only_frames(*read_array_header(observation_file)),
      **{name: read_array(
          store_filename(replay_dir, name, suffix))
         for name in STORE_ELEMENTS if name != 'observation'},
      **read_small_elements(replay_dir, suffix))
  arrays.validate(store_filename(replay_dir, '*', suffix),
                  check_frames=False)
  return arrays


@contextlib.contextmanager
def gzip_written_atomically(path: str, level: int = 9):
  """A gzip file to write (level 9, as Dopamine's); it becomes `path` when
  the block ends without error (it is written as `path` + storage.TMP)."""
  tmp = path + storage.TMP
  with open(tmp, 'wb') as raw, gzip.GzipFile(
      fileobj=raw, mode='wb', compresslevel=level) as f:
    yield f
  os.replace(tmp, path)


def _write_gzip(path: str, write) -> None:
  with gzip_written_atomically(path) as f:
    write(f)


def write_checkpoint(replay_dir: str, suffix: int,
                     arrays: ReplayArrays) -> None:
  """Writes `arrays` as checkpoint `suffix`, file for file as Dopamine does."""
  arrays.validate(replay_dir)
  os.makedirs(replay_dir, exist_ok=True)
  for name in STORE_ELEMENTS:
    _write_gzip(
        store_filename(replay_dir, name, suffix),
        lambda f, a=getattr(arrays, name): np.save(f, a, allow_pickle=False))
  _write_gzip(
      checkpoint_filename(replay_dir, 'add_count', suffix),
      lambda f: np.save(f, np.array(arrays.add_count), allow_pickle=False))
  _write_gzip(
      checkpoint_filename(replay_dir, 'invalid_range', suffix),
      lambda f: np.save(f, arrays.invalid_range, allow_pickle=False))
  if arrays.episode_end_indices is not None:
    indices = {int(i) for i in arrays.episode_end_indices}
    _write_gzip(
        checkpoint_filename(replay_dir, 'episode_end_indices', suffix),
        lambda f: pickle.dump(indices, f))


class ReplayCheckpoint:
  """One checkpoint with Dopamine's sampling semantics (numpy in, numpy out)."""

  def __init__(self, arrays: ReplayArrays, stack_size: int = 4,
               update_horizon: int = 1, gamma: float = 0.99,
               source: str = 'replay checkpoint'):
    """`source` names the checkpoint in errors."""
    # Imported here: the file format above stays free of TensorFlow, so
    # conversion worker processes start in a second, not fifteen.
    from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
    self._transitions = transitions
    self.arrays = arrays
    self.stack_size = stack_size
    self.update_horizon = update_horizon
    self.gamma = gamma
    self.source = source
    self.valid_mask = transitions.valid_mask(arrays, stack_size, update_horizon)
    self.valid_indices = np.flatnonzero(self.valid_mask)

  def is_valid_transition(self, index: int) -> bool:
    return bool(0 <= index < self.arrays.capacity and self.valid_mask[index])

  def get_transition_elements(self) -> tuple[str, ...]:
    return self._transitions.TRANSITION_ELEMENTS

  def sample_transition_batch(self, batch_size: int, indices=None,
                              rng: Optional[np.random.Generator] = None):
    """Dopamine's tuple (state, action, reward, next_state, next_action,
    next_reward, terminal, indices) for `indices`, or for uniformly sampled
    valid indices when `indices` is None."""
    if indices is None:
      if not len(self.valid_indices):
        raise ReplayDataError(
            f'{self.source}: no valid transition to sample for stack_size='
            f'{self.stack_size}, update_horizon={self.update_horizon} '
            f'(add_count={self.arrays.add_count}).')
      rng = rng or np.random.default_rng()
      indices = rng.choice(self.valid_indices, size=batch_size)
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) != batch_size:
      raise ValueError(
          f'got {len(indices)} indices for batch_size {batch_size}')
    batch = self._transitions.gather_from_arrays(
        self.arrays, indices, self.stack_size, self.update_horizon, self.gamma)
    return tuple(batch[name]
                 for name in self._transitions.TRANSITION_ELEMENTS)


def load_checkpoint(replay_dir: str, suffix: int, stack_size: int = 4,
                    update_horizon: int = 1, gamma: float = 0.99,
                    **read_kwargs) -> ReplayCheckpoint:
  """Reads checkpoint `suffix` of `replay_dir` for Dopamine-style sampling."""
  return ReplayCheckpoint(
      read_arrays(replay_dir, suffix, **read_kwargs), stack_size,
      update_horizon, gamma, store_filename(replay_dir, '*', suffix))
