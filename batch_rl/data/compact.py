"""Compact random-access layout of replay checkpoints: zstd frame blocks.

A converted output directory OUT (what `python -m batch_rl.data convert`
writes, and the cache that training fills from a gz directory) holds

  OUT/manifest.json           {"format": FORMAT, "source": "...",
                               "checkpoints": [N, ...]}
  OUT/ckpt_N/frames.zst       frames in blocks of `block_frames` consecutive
                              slots, each block one zstd frame
  OUT/ckpt_N/frame_offsets.npy  int64 [num_blocks + 1]: byte offsets of the
                              blocks in frames.zst
  OUT/ckpt_N/action.npy, reward.npy, terminal.npy   plain arrays [capacity]
  OUT/ckpt_N/meta.json        CheckpointMeta: capacity, frame shape and
                              dtype, block_frames, add_count, invalid_range,
                              episode_end_indices

Atari frames take about 1.1x their gz size (docs/PERFORMANCE.md); a
transition's window of K+N slots touches one or two blocks, which the reader
decodes once per read (zstd releases the GIL).

Writing a checkpoint (the Dopamine converter and RL Unplugged streaming use
the same calls; `source` names what the data came from, and an output
never mixes two sources):

  work_dir = compact.begin_output(out_dir, source='tfds:rlu_atari/Pong_1')
  for suffix in suffixes:
    if suffix in compact.finished_checkpoints(work_dir):
      continue  # Resuming: published checkpoints are complete.
    with compact.CheckpointWriter(work_dir, suffix, capacity,
                                  frame_shape=(84, 84)) as writer:
      for observation, action, reward, terminal in chunks:  # slot order
        writer.append(observation, action, reward, terminal)
      writer.close(add_count, invalid_range, episode_end_indices)
  compact.finish_output(work_dir, out_dir)

`CheckpointWriter` writes into `work_dir/ckpt_N.partial` with plain writes
(no memory-mapped output) and `close()` fsyncs and renames it to
`work_dir/ckpt_N`; leaving the `with` block by an exception removes the
partial directory. Chunks may have any length; their lengths must add up to
`capacity`. `begin_output` returns `out_dir` itself when it already holds an
output of the same source (new checkpoints are added in place, each
published atomically), otherwise the sibling `out_dir + '.partial'`, which
`finish_output` renames to `out_dir` once every checkpoint is in. A full
disk or any other OSError becomes a ReplayDataError naming the file.
"""

import contextlib
import dataclasses
import io
import json
import mmap
import os
import shutil
import sys
import threading
from typing import Optional, Sequence

import numpy as np
import zstandard

from batch_rl.data.aligned import aligned_empty
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.errors import ReplayDataError
from batch_rl import storage
from batch_rl.storage import fsync_path

FORMAT = 'batch_rl.compact.v1'
MANIFEST = 'manifest.json'
PARTIAL = storage.PARTIAL
_CHECKPOINT_PREFIX = 'ckpt_'
# 8 Atari frames (56 KB) per block keep most of the cross-frame matches gzip
# finds (1.12x the gz size, docs/PERFORMANCE.md; single frames lose them
# and take several times more); a window of 5 slots touches 1.5 blocks on
# average, each decoded whole, once per read (FrameReader).
BLOCK_FRAMES = 8
LEVEL = 3
SMALL_ELEMENTS = ('action', 'reward', 'terminal')
# Output arrays a FrameReader keeps for reuse (reads in flight at once).
MAX_OUTPUT_BUFFERS = 16
# Blocks a FrameReader decodes per zstd call when reads overlap (3.6 MB of
# Atari frames).
GROUP_BLOCKS = 64


def checkpoint_dir(out_dir: str, suffix: int) -> str:
  return os.path.join(out_dir, f'{_CHECKPOINT_PREFIX}{suffix}')


def checkpoint_suffix(ckpt_dir: str) -> int:
  """The suffix N of a converted checkpoint directory OUT/ckpt_N."""
  return int(os.path.basename(ckpt_dir)[len(_CHECKPOINT_PREFIX):])


MANIFEST_KEYS = ('format', 'source', 'checkpoints')
META = 'meta.json'


@dataclasses.dataclass(frozen=True)
class CheckpointMeta:
  """OUT/ckpt_N/meta.json: what a checkpoint's array files do not hold."""
  capacity: int
  frame_shape: list  # One frame's, e.g. [84, 84].
  frame_dtype: str  # numpy's dtype.str, e.g. '|u1'.
  block_frames: int  # Consecutive slots per zstd block.
  add_count: int
  invalid_range: list
  episode_end_indices: Optional[list]  # None: the data has no record.


META_KEYS = tuple(field.name for field in dataclasses.fields(CheckpointMeta))


def redo_hint(ckpt_dir: str) -> str:
  """What to do about a damaged or missing converted checkpoint."""
  return (f'remove {ckpt_dir} and convert the replay again into '
          f'{os.path.dirname(ckpt_dir)} (the other checkpoints are kept)')


def _read_json_object(path: str, keys: Sequence[str], what: str,
                      hint: str) -> dict:
  """The JSON object in `path`, which must hold `keys`; ReplayDataError
  naming `path` (`what` it is) and saying what to do (`hint`) otherwise."""
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError) as e:
    raise ReplayDataError(f'{path}: unreadable {what} ({e}); {hint}.'
                          ) from None
  missing = ([] if isinstance(value, dict) else list(keys)) or [
      key for key in keys if key not in value]
  if missing:
    raise ReplayDataError(
        f'{path}: not a {what} of a converted replay (lacks {missing}); '
        f'{hint}.')
  return value


def read_manifest(out_dir: str) -> Optional[dict]:
  """The manifest of a converted directory, or None if it has none."""
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.isfile(path):
    return None
  return _read_json_object(path, MANIFEST_KEYS, 'manifest',
                           'convert the replay again into a new directory')


def write_json(path: str, value) -> None:
  """Writes `path` atomically (storage.write_atomically)."""
  try:
    storage.write_atomically(path, json.dumps(value))
  except OSError as e:
    raise ReplayDataError(
        f'{path}: cannot write ({e.strerror or e}).') from None


def finished_checkpoints(out_dir: str) -> list[int]:
  """Suffixes of the checkpoints published in `out_dir` (complete ones)."""
  if not os.path.isdir(out_dir):
    return []
  return storage.numbered(os.listdir(out_dir), _CHECKPOINT_PREFIX)


def begin_output(out_dir: str, source: str) -> str:
  """The directory to write checkpoints of `source` into (see module doc).

  Raises ReplayDataError when `out_dir` (or its unfinished sibling) holds
  data of another source or format, or is a non-empty directory that is not
  a converted output.
  """
  out_dir = os.path.abspath(out_dir)
  work_dir = out_dir + PARTIAL
  for path in (out_dir, work_dir):
    manifest = read_manifest(path)
    if manifest is None:
      continue
    if manifest.get('source') != source:
      raise ReplayDataError(
          f'{path} holds data converted from {manifest.get("source")}, not '
          f'from {source}; choose another output directory.')
    if manifest.get('format') != FORMAT:
      raise ReplayDataError(
          f'{path} holds format {manifest.get("format")}, not {FORMAT}; '
          'choose another output directory.')
    return path
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ReplayDataError(
        f'{out_dir}: exists and is not a converted replay directory (no '
        f'{MANIFEST}); choose a new or empty output directory.')
  try:
    os.makedirs(work_dir, exist_ok=True)
  except OSError as e:
    raise ReplayDataError(
        f'{work_dir}: cannot create ({e.strerror}).') from None
  write_json(os.path.join(work_dir, MANIFEST),
              {'format': FORMAT, 'source': source, 'checkpoints': []})
  return work_dir


def finish_output(work_dir: str, out_dir: str) -> list[int]:
  """Lists the published checkpoints in the manifest and moves `work_dir`
  to `out_dir` (when they differ); returns the checkpoints."""
  manifest = read_manifest(work_dir)
  manifest['checkpoints'] = finished_checkpoints(work_dir)
  write_json(os.path.join(work_dir, MANIFEST), manifest)
  out_dir = os.path.abspath(out_dir)
  if os.path.abspath(work_dir) != out_dir:
    if os.path.isdir(out_dir):  # Empty (begin_output checked).
      os.rmdir(out_dir)
    os.replace(work_dir, out_dir)
    fsync_path(os.path.dirname(out_dir))
  return manifest['checkpoints']


@contextlib.contextmanager
def writing(path: str):
  """Turns an OSError (a full disk, a read-only directory) into one line."""
  try:
    yield
  except OSError as e:
    raise ReplayDataError(
        f'{path}: {e.strerror or e} (nothing incomplete was published; '
        'rerunning resumes).') from None


@contextlib.contextmanager
def reading(path: str):
  """Turns an OSError reading a converted file (a partial copy) into one
  line naming it."""
  try:
    yield
  except OSError as e:
    raise ReplayDataError(
        f'{path}: {e.strerror or e}; {redo_hint(os.path.dirname(path))}.'
    ) from None


def load_array(path: str) -> np.ndarray:
  """The `.npy` array in `path`; ReplayDataError naming it if it is missing,
  cut short or not an array."""
  with reading(path):
    try:
      return np.load(path)
    except ValueError as e:
      raise ReplayDataError(
          f'{path}: truncated or not a .npy array ({e}); '
          f'{redo_hint(os.path.dirname(path))}.') from None


def npy_header(shape, dtype) -> bytes:
  """The `.npy` header of an array, for writing its data in chunks."""
  buffer = io.BytesIO()
  np.lib.format.write_array_header_1_0(buffer, {
      'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)),
      'fortran_order': False, 'shape': tuple(shape)})
  return buffer.getvalue()


class CheckpointWriter:
  """Writes one checkpoint in the compact layout from chunks in slot order."""

  def __init__(self, out_dir: str, suffix: int, capacity: int,
               frame_shape: Sequence[int], frame_dtype=np.uint8,
               action_shape: Sequence[int] = (), action_dtype=np.int32,
               reward_dtype=np.float32, terminal_dtype=np.uint8,
               block_frames: int = BLOCK_FRAMES, level: int = LEVEL):
    self.final_dir = checkpoint_dir(out_dir, suffix)
    self.partial_dir = self.final_dir + PARTIAL
    self.capacity = int(capacity)
    self.block_frames = int(block_frames)
    self.specs = {
        'observation': (tuple(frame_shape), np.dtype(frame_dtype)),
        'action': (tuple(action_shape), np.dtype(action_dtype)),
        'reward': ((), np.dtype(reward_dtype)),
        'terminal': ((), np.dtype(terminal_dtype)),
    }
    self.written = 0
    self._pending = []  # Frames of the unfinished block.
    self._pending_count = 0
    self._offsets = [0]
    self._compressor = zstandard.ZstdCompressor(level=level)
    self._files = {}
    shutil.rmtree(self.partial_dir, ignore_errors=True)
    self._guard(self.partial_dir, os.makedirs, self.partial_dir)
    self._files['frames'] = self._open('frames.zst')
    for name in SMALL_ELEMENTS:
      shape, dtype = self.specs[name]
      f = self._files[name] = self._open(f'{name}.npy')
      self._write(f, npy_header((self.capacity, *shape), dtype))

  def _open(self, filename):
    path = os.path.join(self.partial_dir, filename)
    return self._guard(path, open, path, 'wb')

  def _guard(self, path, function, *args):
    with writing(path):
      return function(*args)

  def _write(self, f, data) -> None:
    self._guard(f.name, f.write, data)

  def append(self, observation, action, reward, terminal) -> None:
    """Appends the next slots: arrays of equal length L (any L >= 0)."""
    chunk = {}
    for name, value in (('observation', observation), ('action', action),
                        ('reward', reward), ('terminal', terminal)):
      shape, dtype = self.specs[name]
      value = np.asarray(value)
      if value.shape[1:] != shape or (dtype.kind in 'iub' and
                                      value.dtype.kind not in 'iub'):
        raise ReplayDataError(
            f'{self.final_dir}: {name} chunk has shape {value.shape[1:]} and '
            f'dtype {value.dtype} per slot, expected {shape} and {dtype}.')
      chunk[name] = np.ascontiguousarray(value, dtype=dtype)
      if dtype.kind in 'iub' and not np.array_equal(chunk[name], value):
        bad = np.flatnonzero(
            (chunk[name] != value).reshape(len(value), -1).any(axis=1))[0]
        raise ReplayDataError(
            f'{self.final_dir}: {name} of slot {self.written + bad} is '
            f'{value[bad]}, which {dtype} cannot hold.')
    lengths = {len(v) for v in chunk.values()}
    if len(lengths) != 1:
      raise ReplayDataError(
          f'{self.final_dir}: chunk arrays have different lengths '
          f'{ {k: len(v) for k, v in chunk.items()} }.')
    length = lengths.pop()
    if self.written + length > self.capacity:
      raise ReplayDataError(
          f'{self.final_dir}: {self.written + length} slots appended, more '
          f'than the capacity {self.capacity}.')
    for name in SMALL_ELEMENTS:
      self._write(self._files[name], chunk[name].tobytes())
    self._add_frames(chunk['observation'])
    self.written += length

  def _add_frames(self, frames: np.ndarray) -> None:
    begin = 0
    if self._pending_count:
      take = min(len(frames), self.block_frames - self._pending_count)
      self._pending.append(frames[:take])
      self._pending_count += take
      begin = take
      if self._pending_count < self.block_frames:
        return
      self._write_block(np.concatenate(self._pending))
      self._pending, self._pending_count = [], 0
    whole = begin + (len(frames) - begin) // self.block_frames * (
        self.block_frames)
    for start in range(begin, whole, self.block_frames):
      self._write_block(frames[start:start + self.block_frames])
    if whole < len(frames):
      self._pending = [frames[whole:].copy()]
      self._pending_count = len(frames) - whole

  def _write_block(self, frames: np.ndarray) -> None:
    data = self._compressor.compress(frames.tobytes())
    self._write(self._files['frames'], data)
    self._offsets.append(self._offsets[-1] + len(data))

  def close(self, add_count: int, invalid_range,
            episode_end_indices=None) -> str:
    """Publishes the checkpoint (validated, fsynced, renamed into place)."""
    if self.written != self.capacity:
      raise ReplayDataError(
          f'{self.final_dir}: {self.written} slots appended, expected the '
          f'capacity {self.capacity}.')
    if self._pending_count:
      self._write_block(np.concatenate(self._pending))
    invalid_range = np.asarray(invalid_range, dtype=np.int64).reshape(-1)
    ends = (None if episode_end_indices is None else
            np.asarray(sorted(episode_end_indices), dtype=np.int64))
    for name, indices in (('invalid_range', invalid_range),
                          ('episode_end_indices', ends)):
      if indices is not None and len(indices) and (
          indices.min() < 0 or indices.max() >= self.capacity):
        bad = indices[(indices < 0) | (indices >= self.capacity)][0]
        raise ReplayDataError(
            f'{self.final_dir}: {name} holds {bad}, outside [0, '
            f'{self.capacity}).')
    if int(add_count) < 0:
      raise ReplayDataError(f'{self.final_dir}: add_count {add_count} < 0.')
    offsets_path = os.path.join(self.partial_dir, 'frame_offsets.npy')
    self._guard(offsets_path, np.save, offsets_path,
                np.array(self._offsets, dtype=np.int64))
    shape, dtype = self.specs['observation']
    meta = CheckpointMeta(
        capacity=self.capacity, frame_shape=list(shape),
        frame_dtype=dtype.str, block_frames=self.block_frames,
        add_count=int(add_count), invalid_range=invalid_range.tolist(),
        episode_end_indices=None if ends is None else ends.tolist())
    for f in self._files.values():
      self._guard(f.name, os.fsync, f.fileno())
      self._guard(f.name, f.close)
    write_json(os.path.join(self.partial_dir, META), dataclasses.asdict(meta))
    self._guard(self.final_dir, os.replace, self.partial_dir, self.final_dir)
    fsync_path(os.path.dirname(self.final_dir))
    return self.final_dir

  def abort(self) -> None:
    """Closes and removes the partial checkpoint."""
    for f in self._files.values():
      try:
        f.close()
      except OSError:
        pass  # Closing after a failed write may fail again: nothing to keep.
    shutil.rmtree(self.partial_dir, ignore_errors=True)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, traceback):
    if exc_type is not None:
      self.abort()
    elif os.path.isdir(self.partial_dir):
      self.abort()
      raise ReplayDataError(
          f'{self.final_dir}: CheckpointWriter left without close().')


class CompactFrames:
  """The frames of one compact checkpoint as a read-only array-like.

  `frames[slots]` (ints, slices or integer arrays) decodes the blocks it
  needs; `FrameReader` is the batched path the replay store uses.
  """

  def __init__(self, ckpt_dir: str, meta: CheckpointMeta):
    self.path = os.path.join(ckpt_dir, 'frames.zst')
    self.shape = (meta.capacity, *meta.frame_shape)
    self.dtype = np.dtype(meta.frame_dtype)
    self.ndim = len(self.shape)
    self.block_frames = meta.block_frames
    offsets_path = os.path.join(ckpt_dir, 'frame_offsets.npy')
    self.offsets = load_array(offsets_path)
    num_blocks = -(-self.shape[0] // self.block_frames)
    if self.offsets.shape != (num_blocks + 1,):
      raise ReplayDataError(
          f'{offsets_path}: offsets of shape {self.offsets.shape}, expected '
          f'({num_blocks + 1},) for {self.shape[0]} frames in blocks of '
          f'{self.block_frames}; {redo_hint(ckpt_dir)}.')
    with reading(self.path):
      size = os.path.getsize(self.path)
      if int(self.offsets[-1]) != size:
        raise ReplayDataError(
            f'{self.path}: {size} bytes, the index expects {self.offsets[-1]} '
            f'(truncated or corrupt); {redo_hint(ckpt_dir)}.')
      with open(self.path, 'rb') as f:
        self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    self.view = memoryview(self._mmap)

  def __len__(self):
    return self.shape[0]

  def __getitem__(self, key):
    slots = np.arange(self.shape[0])[key]
    column = np.reshape(slots, (-1, 1))
    frames = FrameReader([self]).read(
        np.zeros(len(column), np.int64), column)
    return frames.reshape(*np.shape(slots), *self.shape[1:])

  def __array__(self, dtype=None):
    return self[:] if dtype is None else self[:].astype(dtype)

  def release_pages(self) -> None:
    """Drops this process's resident pages of frames.zst (see ReplayStore)."""
    self._mmap.madvise(mmap.MADV_DONTNEED)


class CompactCheckpoint:
  """One published checkpoint: frames decoded on demand, the rest in RAM."""

  def __init__(self, ckpt_dir: str):
    fields = _read_json_object(os.path.join(ckpt_dir, META), META_KEYS, META,
                               redo_hint(ckpt_dir))
    meta = CheckpointMeta(**{key: fields[key] for key in META_KEYS})
    self.frames = CompactFrames(ckpt_dir, meta)
    small = {name: load_array(os.path.join(ckpt_dir, f'{name}.npy'))
             for name in SMALL_ELEMENTS}
    ends = meta.episode_end_indices
    self.arrays = ReplayArrays(
        observation=self.frames,
        add_count=int(meta.add_count),
        invalid_range=np.array(meta.invalid_range, dtype=np.int64),
        episode_end_indices=(None if ends is None else
                             np.array(ends, dtype=np.int64)),
        **small)
    self.arrays.validate(ckpt_dir)


class OutputBuffers:
  """Reused, TensorFlow-aligned output arrays of host reads.

  A fresh 9 MB array per batch read costs more in page faults than filling
  it, and TensorFlow copies an unaligned one. A `tf.numpy_function` result
  that TensorFlow shares (aligned) keeps a view of its memory until the
  tensor is freed, so an array is reused only when no view of its memory
  exists outside this pool (numpy views refer to the array owning the
  memory).
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._arrays = []  # (owner of the memory, array over it)

  def take(self, shape, dtype) -> np.ndarray:
    """An uninitialised array of `shape` and `dtype` no one else holds."""
    dtype = np.dtype(dtype)
    with self._lock:
      for i, (owner, array) in enumerate(self._arrays):
        # References: `array`'s base, the pair, `owner` and the argument.
        if (sys.getrefcount(owner) == 4 and array.shape == tuple(shape) and
            array.dtype == dtype):
          self._arrays.append(self._arrays.pop(i))
          return array[...]  # A view: a reference to the owner until freed.
      array = aligned_empty(shape, dtype)
      self._arrays.append((array.base, array))
      del self._arrays[:-MAX_OUTPUT_BUFFERS]
      return array[...]


class FrameReader:
  """Copies the frames of many slots out of their checkpoints' zstd blocks.

  A read decodes each block it needs once and copies runs of consecutive
  slots out of it. zstd releases the GIL while it decodes: a read alone
  decodes block by block (the least CPU), while reads on several threads at
  once (the pipeline's parallel host reads) decode GROUP_BLOCKS blocks per
  call, so that they do not hand the GIL to each other at every block
  (docs/PERFORMANCE.md).
  """

  def __init__(self, frames: Sequence[CompactFrames]):
    self.frames = list(frames)
    first = self.frames[0]
    for other in self.frames[1:]:
      if other.block_frames != first.block_frames:
        raise ReplayDataError(
            f'{other.path}: blocks of {other.block_frames} frames, but '
            f'{first.path} has blocks of {first.block_frames}; checkpoints '
            'read together must be converted with one block size.')
    self.block_frames = first.block_frames
    self.frame_shape, self.dtype = first.shape[1:], first.dtype
    self.frame_bytes = int(np.prod(self.frame_shape)) * self.dtype.itemsize
    # Block b of checkpoint c: bytes offsets[c, b]:offsets[c, b + 1] of its
    # file, decoding to block_bytes[c, b] bytes.
    self.stride = max(len(f.offsets) for f in self.frames)
    self.offsets = np.zeros((len(self.frames), self.stride), np.int64)
    self.block_bytes = np.zeros((len(self.frames), self.stride), np.int64)
    for c, f in enumerate(self.frames):
      self.offsets[c, :len(f.offsets)] = f.offsets
      blocks = np.arange(len(f.offsets) - 1)
      self.block_bytes[c, blocks] = self.frame_bytes * np.minimum(
          self.block_frames, len(f) - blocks * self.block_frames)
    self._local = threading.local()
    self._outputs = OutputBuffers()
    self._lock = threading.Lock()
    self._reading = 0  # Reads in progress.

  def _decompressor(self):
    if not hasattr(self._local, 'decompressor'):
      self._local.decompressor = zstandard.ZstdDecompressor()
    return self._local.decompressor

  def _decode(self, ckpt: int, block: int, begin: int, end: int,
              expected: int) -> memoryview:
    """The bytes of block `block` of checkpoint `ckpt` (file bytes
    begin:end), checked to be `expected` bytes."""
    frames = self.frames[ckpt]
    try:
      data = self._decompressor().decompress(frames.view[begin:end])
    except zstandard.ZstdError as e:
      raise ReplayDataError(
          f'{frames.path}: block {block} does not decode ({e}).') from None
    if len(data) != expected:
      raise ReplayDataError(
          f'{frames.path}: block {block} holds '
          f'{len(data) / self.frame_bytes:g} frames, expected '
          f'{expected // self.frame_bytes}.')
    return memoryview(data)

  def _decode_group(self, ckpt: int, blocks: np.ndarray) -> list[memoryview]:
    """The bytes of several blocks of one checkpoint by one zstd call."""
    begins = self.offsets[ckpt, blocks]
    segments = np.stack([begins, self.offsets[ckpt, blocks + 1] - begins], 1)
    try:
      decoded = self._decompressor().multi_decompress_to_buffer(
          zstandard.BufferWithSegments(self.frames[ckpt].view,
                                       segments.astype(np.uint64).tobytes()),
          decompressed_sizes=self.block_bytes[ckpt, blocks].astype(
              np.uint64).tobytes(), threads=0)
    except zstandard.ZstdError:
      for args in self._decode_args(np.full(len(blocks), ckpt), blocks):
        self._decode(*args)  # Raises, naming the damaged block.
      raise
    return [memoryview(decoded[i]) for i in range(len(blocks))]

  def _decode_args(self, ckpts: np.ndarray, blocks: np.ndarray) -> list:
    """`_decode`'s arguments for block blocks[i] of checkpoint ckpts[i]."""
    return list(zip(ckpts.tolist(), blocks.tolist(),
                    self.offsets[ckpts, blocks].tolist(),
                    self.offsets[ckpts, blocks + 1].tolist(),
                    self.block_bytes[ckpts, blocks].tolist()))

  def read(self, ckpt: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Frames at slots[i, j] of checkpoints ckpt[i]: [*slots.shape, *frame].

    Output rows in order form segments of consecutive slots of one block
    (a transition's window is one or two); segments are copied in block
    order, so each block is decoded once per read.
    """
    slots = np.asarray(slots, np.int64)
    ckpts = np.broadcast_to(np.asarray(ckpt, np.int64).reshape(
        -1, *[1] * (slots.ndim - 1)), slots.shape).reshape(-1)
    flat = slots.reshape(-1)
    out = self._outputs.take((len(flat), *self.frame_shape), self.dtype)
    if not len(flat):
      return out.reshape(*slots.shape, *self.frame_shape)
    keys = ckpts * self.stride + flat // self.block_frames
    starts = np.flatnonzero(np.concatenate(
        [[True], (keys[1:] != keys[:-1]) | (flat[1:] != flat[:-1] + 1)]))
    order = np.argsort(keys[starts], kind='stable')
    first = starts[order]
    lengths = np.diff(np.append(starts, len(flat)))[order]
    # The distinct blocks in order, and each segment's index among them.
    new_block = np.concatenate([[True], np.diff(keys[first]) != 0])
    block_ckpt, block = np.divmod(keys[first][new_block], self.stride)
    segment_block = np.cumsum(new_block) - 1
    fb = self.frame_bytes
    segments = list(zip(
        segment_block.tolist(), (first * fb).tolist(),
        ((flat[first] % self.block_frames) * fb).tolist(),
        (lengths * fb).tolist()))
    target = memoryview(out.reshape(-1).view(np.uint8))
    with self._lock:
      self._reading += 1
      alone = self._reading == 1
    try:
      if alone:
        blocks = self._decode_args(block_ckpt, block)
        decoded, last = None, -1
        for index, row, within, length in segments:
          if index != last:
            decoded, last = self._decode(*blocks[index]), index
          target[row:row + length] = decoded[within:within + length]
      else:
        # Groups of at most GROUP_BLOCKS blocks of one checkpoint, and the
        # segments of each group's blocks.
        bounds = np.union1d(
            np.arange(0, len(block), GROUP_BLOCKS),
            np.append(np.flatnonzero(np.diff(block_ckpt)) + 1, len(block)))
        cuts = np.searchsorted(segment_block, bounds).tolist()
        bounds = bounds.tolist()
        for g, begin in enumerate(bounds[:-1]):
          decoded = self._decode_group(block_ckpt[begin],
                                       block[begin:bounds[g + 1]])
          for index, row, within, length in segments[cuts[g]:cuts[g + 1]]:
            target[row:row + length] = decoded[index - begin][
                within:within + length]
    finally:
      with self._lock:
        self._reading -= 1
    return out.reshape(*slots.shape, *self.frame_shape)
