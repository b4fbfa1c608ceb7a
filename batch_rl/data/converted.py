"""One-time conversion of gz checkpoints into the compact layout.

A 1M-transition Atari checkpoint holds about 7 GB of frames, so loading all
50 checkpoints of a run is out of reach. `convert` decompresses each
checkpoint once, streaming (bounded memory, plain writes), into OUT in the
compact layout (`compact.py`): frames in zstd blocks, about 1.1-1.2x the gz
files on disk, decoded in parallel when sampled. (An uncompressed,
memory-mapped layout was 10-40x the gz files, slower to write and, once
larger than the page cache, 5x slower to sample: docs/PERFORMANCE.md.)

Checkpoints convert in parallel worker processes (`workers`), each reading
with isal's gzip (about 1.8x the standard library's) and holding one chunk of
frames at a time. A new output is written to the sibling `OUT.partial` and
renamed when complete; each checkpoint is published atomically, so a rerun
skips finished checkpoints and redoes partial ones. The manifest records the
source: converting another source into OUT is refused.
"""

import contextlib
import multiprocessing
import os
import sys
from concurrent import futures
from typing import Callable

import numpy as np
import tqdm

from batch_rl import processes
from batch_rl.data import compact
from batch_rl.data import dopamine_replay
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection

MANIFEST = compact.MANIFEST
_CHUNK_BYTES = 64 << 20
checkpoint_suffix = compact.checkpoint_suffix


def is_converted(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MANIFEST))


def _frame_chunks(replay_dir: str, suffix: int):
  """The frames of checkpoint `suffix`, decompressed in chunks of about
  `_CHUNK_BYTES` (whole compact blocks)."""
  gz_path = dopamine_replay.store_filename(replay_dir, 'observation', suffix)
  with dopamine_replay.open_gzip(gz_path) as f:
    # Shape and dtype were validated (read_arrays_without_frames).
    shape, fortran, dtype = dopamine_replay.read_npy_header(f)
    if fortran:
      raise ReplayDataError(
          f'{gz_path}: frames in Fortran order; expected C order (np.save of '
          'a C-contiguous array, as Dopamine writes them).')
    row_bytes = dtype.itemsize * int(np.prod(shape[1:]))
    rows = (max(1, _CHUNK_BYTES // row_bytes) // compact.BLOCK_FRAMES *
            compact.BLOCK_FRAMES or compact.BLOCK_FRAMES)
    for begin in range(0, shape[0], rows):
      chunk = np.empty((min(rows, shape[0] - begin), *shape[1:]), dtype)
      # A file cut short was found from its gzip trailer, unless its size
      # agrees modulo 2**32 by chance: never leave frames unread.
      if f.readinto(chunk.reshape(-1).view(np.uint8)) != chunk.nbytes:
        raise EOFError('array data ends early')
      yield chunk


def _convert_compact(replay_dir: str, suffix: int, work_dir: str,
                     progress: Callable[[int], None]) -> None:
  # Checked before a frame is decompressed.
  arrays = dopamine_replay.read_arrays_without_frames(replay_dir, suffix)
  with compact.CheckpointWriter(
      work_dir, suffix, arrays.capacity, arrays.observation.shape[1:],
      arrays.observation.dtype, action_shape=arrays.action.shape[1:],
      action_dtype=arrays.action.dtype, reward_dtype=arrays.reward.dtype,
      terminal_dtype=arrays.terminal.dtype) as writer:
    begin = 0
    for chunk in _frame_chunks(replay_dir, suffix):
      end = begin + len(chunk)
      writer.append(chunk, arrays.action[begin:end],
                    arrays.reward[begin:end], arrays.terminal[begin:end])
      progress(chunk.nbytes)
      begin = end
    writer.close(arrays.add_count, arrays.invalid_range,
                 arrays.episode_end_indices)


_worker_progress = None  # The shared byte counter, in worker processes.


def _init_worker(counter) -> None:
  global _worker_progress
  _worker_progress = counter
  # Linux: stop with the converting process, not a checkpoint later;
  # elsewhere a worker finishes its checkpoint first.
  processes.die_with_parent()


def _count(nbytes: int) -> None:
  with _worker_progress.get_lock():
    _worker_progress.value += nbytes


def _convert_in_worker(replay_dir, suffix, work_dir) -> int:
  _convert_compact(replay_dir, suffix, work_dir, _count)
  return suffix


def frame_bytes(replay_dir: str, suffixes) -> dict[int, int]:
  """{suffix: bytes of its frames}, from the files' headers; raises if the
  checkpoints' frame shapes or dtypes differ."""
  sizes, first = {}, None
  for suffix in suffixes:
    path = dopamine_replay.store_filename(replay_dir, 'observation', suffix)
    shape, dtype = dopamine_replay.read_array_header(path)
    if first is None:
      first = (path, shape[1:], dtype)
    elif (shape[1:], dtype) != first[1:]:
      raise ReplayDataError(
          f'{path}: frames of shape {shape[1:]} and dtype {dtype}, but '
          f'{first[0]} has {first[1]} and {first[2]}; one output holds one '
          'frame shape.')
    sizes[suffix] = dtype.itemsize * int(np.prod(shape))
  return sizes


def convert(replay_dir: str, out_dir: str, suffixes=None,
            progress: bool = True, workers: int = 1) -> list[int]:
  """Converts checkpoints of `replay_dir` into `out_dir`; returns suffixes.

  Args:
    replay_dir: a Dopamine gz replay directory (never written to).
    out_dir: the output (created; an existing output of the same source
      gets the missing checkpoints).
    suffixes: checkpoints to convert (default: all).
    progress: show a progress bar on stderr.
    workers: checkpoints converted at once, each in its own process.
  """
  if workers < 1:
    raise ValueError(f'workers={workers}: must be at least 1.')
  replay_dir, out_dir = os.path.abspath(replay_dir), os.path.abspath(out_dir)
  dopamine_replay.check_outside_replay(replay_dir, out_dir, 'output')
  available = dopamine_replay.list_checkpoints(replay_dir)
  suffixes = sorted(suffixes) if suffixes is not None else available
  missing = sorted(set(suffixes) - set(available))
  if missing:
    raise ReplayDataError(f'{replay_dir}: checkpoints {missing} not found '
                          f'(it has {available}).')
  sizes = frame_bytes(replay_dir, suffixes)
  work_dir = compact.begin_output(out_dir, replay_dir)
  done = set(compact.finished_checkpoints(work_dir))
  todo = [s for s in suffixes if s not in done]
  total = sum(sizes[s] for s in todo)
  with tqdm.tqdm(total=total, unit='B', unit_scale=True, disable=not progress,
                 desc=f'convert {len(todo)} checkpoints') as bar:
    if workers == 1 or len(todo) <= 1:
      for suffix in todo:
        _convert_compact(replay_dir, suffix, work_dir, bar.update)
    else:
      _convert_in_processes(replay_dir, todo, work_dir,
                            min(workers, len(todo)), bar)
  compact.finish_output(work_dir, out_dir)
  return suffixes


@contextlib.contextmanager
def _workers_import_only_this_module():
  """Spawned processes import the parent's main module first (for `python
  -m batch_rl.train`, TensorFlow: 15 s and 0.6 GB each); while they start,
  this module stands in for it."""
  main = sys.modules['__main__']
  sys.modules['__main__'] = sys.modules[__name__]
  try:
    yield
  finally:
    sys.modules['__main__'] = main


def _convert_in_processes(replay_dir, todo, work_dir, workers, bar) -> None:
  context = multiprocessing.get_context('spawn')  # No TensorFlow state forked.
  counter = context.Value('q', 0)
  with futures.ProcessPoolExecutor(workers, context, _init_worker,
                                   (counter,)) as pool:
    with _workers_import_only_this_module():  # Submitting starts them.
      pending = {pool.submit(_convert_in_worker, replay_dir, s, work_dir)
                 for s in todo}
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


def open_store(out_dir: str, selection: DataSelection):
  """The selected checkpoints of a converted directory as a ReplayStore.

  Frames stay on disk and are decoded per batch.
  """
  # TensorFlow only for reading: conversion workers never import it.
  from batch_rl.data import compact_store  # pylint: disable=g-import-not-at-top
  manifest = compact.read_manifest(out_dir)
  if manifest.get('format') != compact.FORMAT:
    raise ReplayDataError(
        f'{os.path.join(out_dir, MANIFEST)}: format '
        f'{manifest.get("format")!r}, expected {compact.FORMAT!r}; convert '
        f'{manifest.get("source", "the replay directory")} again into a new '
        'directory.')
  suffixes = selection.select_checkpoints(manifest['checkpoints'])
  dirs = [compact.checkpoint_dir(out_dir, s) for s in suffixes]
  for ckpt_dir in dirs:
    if not os.path.isdir(ckpt_dir):
      raise ReplayDataError(f'{ckpt_dir}: converted checkpoint is missing; '
                            f'{compact.redo_hint(ckpt_dir)}.')
  return compact_store.CompactStore(
      [compact.CompactCheckpoint(d) for d in dirs], dirs, suffixes)
