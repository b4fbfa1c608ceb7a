"""One-time conversion of gz checkpoints into a random-access layout.

A 1M-transition Atari checkpoint holds about 7 GB of frames, so loading all
50 checkpoints of a run is out of reach. `convert` decompresses each
checkpoint once, streaming (bounded memory, plain writes), into OUT in one of
two layouts:

* `compact` (default, see `compact.py`): frames in zstd blocks, about 1.2x
  the gz files on disk, decoded in parallel when sampled;
* `npy`: uncompressed `OUT/ckpt_N/{observation,action,reward,terminal}.npy`
  and `meta.json`, memory-mapped when sampled (about 10x the gz files).

Checkpoints convert in parallel worker processes (`workers`), each reading
with isal's gzip (about 1.8x the standard library's) and holding one chunk of
frames at a time. A new output is written to the sibling `OUT.partial` and
renamed when complete; each checkpoint is published atomically, so a rerun
skips finished checkpoints and redoes partial ones. The manifest records the
source: converting another source into OUT is refused.
"""

import contextlib
import gzip
import json
import multiprocessing
import os
import shutil
import zlib
from concurrent import futures
from typing import Callable, Optional

import numpy as np
import tqdm

from batch_rl.data import compact
from batch_rl.data import dopamine_replay
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.dopamine_replay import STORE_ELEMENTS
from batch_rl.data.dopamine_replay import STORE_PREFIX
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection

try:
  from isal import igzip as _gzip  # pylint: disable=g-import-not-at-top
except ImportError:  # The standard library's reader: slower, same bytes.
  _gzip = gzip

MANIFEST = compact.MANIFEST
LAYOUTS = {'compact': compact.FORMAT, 'npy': 'batch_rl.memmap.v1'}
_CHUNK_BYTES = 64 << 20
checkpoint_suffix = compact.checkpoint_suffix


def is_converted(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MANIFEST))


def layout_of(path: str) -> str:
  """'compact' or 'npy' for a converted directory."""
  manifest = compact.read_manifest(path)
  for name, fmt in LAYOUTS.items():
    if manifest.get('format') == fmt:
      return name
  raise ReplayDataError(
      f'{os.path.join(path, MANIFEST)}: format {manifest.get("format")!r}, '
      f'expected one of {sorted(LAYOUTS.values())}.')


@contextlib.contextmanager
def _reading(gz_path: str):
  """Turns read errors into one line naming the gz file."""
  if not os.path.exists(gz_path):
    raise ReplayDataError(f'{gz_path}: file is missing.')
  try:
    yield
  except ReplayDataError:
    raise
  except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
    raise ReplayDataError(
        f'{gz_path}: truncated or corrupt gzip file ({e}).') from None
  except ValueError as e:
    raise ReplayDataError(f'{gz_path}: not a valid array file ({e}).') from None


def _array_chunks(gz_path: str, chunk_rows: Callable[[int], int]):
  """Yields (shape, dtype), then the rows of the `np.save` array in `gz_path`
  in chunks of `chunk_rows(row_bytes)` rows."""
  with _reading(gz_path), _gzip.open(gz_path, 'rb') as f:
    version = np.lib.format.read_magic(f)
    shape, fortran, dtype = (
        np.lib.format.read_array_header_1_0(f) if version == (1, 0) else
        np.lib.format.read_array_header_2_0(f))
    if fortran or dtype.hasobject or not shape:
      raise ReplayDataError(f'{gz_path}: unsupported array layout.')
    yield shape, dtype
    row_bytes = dtype.itemsize * int(np.prod(shape[1:]))
    rows = max(1, chunk_rows(row_bytes))
    for begin in range(0, shape[0], rows):
      chunk = np.empty((min(rows, shape[0] - begin), *shape[1:]), dtype)
      if f.readinto(chunk.reshape(-1).view(np.uint8)) != chunk.nbytes:
        raise EOFError('array data ends early')
      yield chunk


def _read_checkpoint_without_frames(replay_dir: str, suffix: int):
  """(ReplayArrays with a shape-only frame stand-in, frame chunk iterator);
  validated before any frame is decompressed."""
  frames = _array_chunks(
      dopamine_replay.checkpoint_filename(
          replay_dir, STORE_PREFIX + 'observation', suffix),
      lambda row_bytes: max(1, _CHUNK_BYTES // row_bytes) //
      compact.BLOCK_FRAMES * compact.BLOCK_FRAMES or compact.BLOCK_FRAMES)
  shape, dtype = next(frames)
  arrays = ReplayArrays(
      observation=np.broadcast_to(np.zeros((), dtype), shape),
      **{name: dopamine_replay.read_array(dopamine_replay.checkpoint_filename(
          replay_dir, STORE_PREFIX + name, suffix))
         for name in ('action', 'reward', 'terminal')},
      **dopamine_replay.read_small_elements(replay_dir, suffix))
  arrays.validate(dopamine_replay.checkpoint_filename(
      replay_dir, STORE_PREFIX + '*', suffix))
  return arrays, frames


def _convert_compact(replay_dir: str, suffix: int, work_dir: str,
                     progress: Callable[[int], None]) -> None:
  arrays, frames = _read_checkpoint_without_frames(replay_dir, suffix)
  with compact.CheckpointWriter(
      work_dir, suffix, arrays.capacity, arrays.observation.shape[1:],
      arrays.observation.dtype, action_shape=arrays.action.shape[1:],
      action_dtype=arrays.action.dtype, reward_dtype=arrays.reward.dtype,
      terminal_dtype=arrays.terminal.dtype) as writer:
    begin = 0
    for chunk in frames:
      end = begin + len(chunk)
      writer.append(chunk, arrays.action[begin:end],
                    arrays.reward[begin:end], arrays.terminal[begin:end])
      progress(chunk.nbytes)
      begin = end
    writer.close(arrays.add_count, arrays.invalid_range,
                 arrays.episode_end_indices)


def _convert_npy(replay_dir: str, suffix: int, work_dir: str,
                 progress: Callable[[int], None]) -> None:
  arrays, frames = _read_checkpoint_without_frames(replay_dir, suffix)
  final = compact.checkpoint_dir(work_dir, suffix)
  partial = final + compact.PARTIAL
  shutil.rmtree(partial, ignore_errors=True)
  try:
    with compact.writing(partial):
      os.makedirs(partial)
    for name in STORE_ELEMENTS:
      path = os.path.join(partial, f'{name}.npy')
      if name == 'observation':
        chunks = frames
      else:
        chunks = [getattr(arrays, name)]
      with compact.writing(path), open(path, 'wb') as f:
        f.write(compact.npy_header(getattr(arrays, name).shape,
                                   getattr(arrays, name).dtype))
        for chunk in chunks:
          f.write(chunk.tobytes())
          progress(chunk.nbytes)
        f.flush()
        os.fsync(f.fileno())
    compact.write_json(os.path.join(partial, 'meta.json'), {
        'add_count': arrays.add_count,
        'invalid_range': arrays.invalid_range.tolist(),
        'episode_end_indices': (
            None if arrays.episode_end_indices is None else
            arrays.episode_end_indices.tolist()),
    })
    with compact.writing(final):
      os.replace(partial, final)
  except BaseException:
    shutil.rmtree(partial, ignore_errors=True)
    raise


_CONVERTERS = {'compact': _convert_compact, 'npy': _convert_npy}
_worker_progress = None  # The shared byte counter, in worker processes.


def _init_worker(counter) -> None:
  global _worker_progress
  _worker_progress = counter


def _count(nbytes: int) -> None:
  with _worker_progress.get_lock():
    _worker_progress.value += nbytes


def _convert_in_worker(layout, replay_dir, suffix, work_dir) -> int:
  _CONVERTERS[layout](replay_dir, suffix, work_dir, _count)
  return suffix


def _uncompressed_size_hint(replay_dir: str, suffix: int) -> int:
  """gzip's trailer holds the size modulo 2**32: good enough for a progress bar."""
  total = 0
  for name in STORE_ELEMENTS:
    path = dopamine_replay.checkpoint_filename(
        replay_dir, STORE_PREFIX + name, suffix)
    if os.path.exists(path) and os.path.getsize(path) >= 4:
      with open(path, 'rb') as f:
        f.seek(-4, os.SEEK_END)
        total += int.from_bytes(f.read(4), 'little')
  return total


def convert(replay_dir: str, out_dir: str, suffixes=None,
            progress: bool = True, workers: int = 1,
            layout: str = 'compact') -> list[int]:
  """Converts checkpoints of `replay_dir` into `out_dir`; returns suffixes.

  Args:
    replay_dir: a Dopamine gz replay directory (never written to).
    out_dir: the output (created; an existing output of the same source and
      layout gets the missing checkpoints).
    suffixes: checkpoints to convert (default: all).
    progress: show a progress bar on stderr.
    workers: checkpoints converted at once, each in its own process.
    layout: 'compact' or 'npy'.
  """
  if layout not in LAYOUTS:
    raise ValueError(f'layout={layout!r}: expected one of {sorted(LAYOUTS)}.')
  if workers < 1:
    raise ValueError(f'workers={workers}: must be at least 1.')
  replay_dir, out_dir = os.path.abspath(replay_dir), os.path.abspath(out_dir)
  if out_dir == replay_dir or out_dir.startswith(replay_dir + os.sep):
    raise ReplayDataError(
        f'{out_dir}: output must be outside the replay directory {replay_dir} '
        '(the dataset being read is never written to).')
  available = dopamine_replay.list_checkpoints(replay_dir)
  suffixes = sorted(suffixes) if suffixes is not None else available
  missing = sorted(set(suffixes) - set(available))
  if missing:
    raise ReplayDataError(f'{replay_dir}: checkpoints {missing} not found.')
  work_dir = compact.begin_output(out_dir, replay_dir, LAYOUTS[layout])
  done = set(compact.finished_checkpoints(work_dir))
  todo = [s for s in suffixes if s not in done]
  total = sum(_uncompressed_size_hint(replay_dir, s) for s in todo)
  with tqdm.tqdm(total=total, unit='B', unit_scale=True, disable=not progress,
                 desc=f'convert {len(todo)} checkpoints') as bar:
    if workers == 1 or len(todo) <= 1:
      for suffix in todo:
        _CONVERTERS[layout](replay_dir, suffix, work_dir, bar.update)
    else:
      _convert_in_processes(layout, replay_dir, todo, work_dir,
                            min(workers, len(todo)), bar)
  compact.finish_output(work_dir, out_dir)
  return suffixes


def _convert_in_processes(layout, replay_dir, todo, work_dir, workers,
                          bar) -> None:
  context = multiprocessing.get_context('spawn')  # No TensorFlow state forked.
  counter = context.Value('q', 0)
  with futures.ProcessPoolExecutor(workers, context, _init_worker,
                                   (counter,)) as pool:
    pending = {pool.submit(_convert_in_worker, layout, replay_dir, s,
                           work_dir) for s in todo}
    try:
      while pending:
        finished, pending = futures.wait(
            pending, timeout=0.5, return_when=futures.FIRST_EXCEPTION)
        bar.update(counter.value - bar.n)
        for future in finished:
          future.result()  # Raises the worker's error.
    except BaseException:
      for future in pending:
        future.cancel()
      raise


def open_store(out_dir: str, selection: DataSelection,
               decode_threads: Optional[int] = None):
  """The selected checkpoints of a converted directory as a ReplayStore.

  Frames stay on disk: compact checkpoints are decoded per batch on
  `decode_threads` threads (default: one per core), npy ones memory-mapped.
  """
  # TensorFlow only for reading: conversion workers never import it.
  from batch_rl.data import compact_store  # pylint: disable=g-import-not-at-top
  from batch_rl.data.replay_store import ReplayStore  # pylint: disable=g-import-not-at-top
  layout = layout_of(out_dir)
  suffixes = selection.select_checkpoints(
      compact.read_manifest(out_dir)['checkpoints'])
  dirs = [compact.checkpoint_dir(out_dir, s) for s in suffixes]
  for ckpt_dir in dirs:
    if not os.path.isdir(ckpt_dir):
      raise ReplayDataError(f'{ckpt_dir}: converted checkpoint is missing.')
  if layout == 'compact':
    return compact_store.CompactStore(
        [compact.CompactCheckpoint(d) for d in dirs], dirs, decode_threads)
  checkpoints = []
  for ckpt_dir in dirs:
    arrays = _load_npy_arrays(ckpt_dir)
    arrays.validate(ckpt_dir)
    checkpoints.append(arrays)
  return ReplayStore(checkpoints, dirs, memory_mapped=True)


def _load_npy_arrays(ckpt_dir: str) -> ReplayArrays:
  with open(os.path.join(ckpt_dir, 'meta.json')) as f:
    metadata = json.load(f)
  store = {
      name: np.load(os.path.join(ckpt_dir, f'{name}.npy'), mmap_mode='r')
      for name in STORE_ELEMENTS
  }
  episode_ends = metadata['episode_end_indices']
  return ReplayArrays(
      add_count=int(metadata['add_count']),
      invalid_range=np.array(metadata['invalid_range'], dtype=np.int64),
      episode_end_indices=(None if episode_ends is None else np.array(
          episode_ends, dtype=np.int64)),
      **store)
