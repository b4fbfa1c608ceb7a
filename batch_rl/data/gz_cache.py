"""Bounded memory for Dopamine gz directories: a one-time compact cache.

A DQN Replay run is 50 checkpoints of 7 GB of frames each; loading them
into RAM is out of reach. When the selected checkpoints' frames exceed
`memory_budget_gib`, `open_gz` converts them once (in parallel, with a
progress bar) into a compact cache directory and reads frames from there
(`compact_store.CompactStore`: RAM about 9 bytes a slot); smaller data is
loaded into memory as before. Either way it first prints one line saying
what will be read and how much RAM, disk and time that takes, and refuses,
naming what it needs and what to run instead, when the cache's disk lacks
the space.

The cache lives in `cache_dir` (default $BATCH_RL_CACHE, else
~/.cache/batch_rl), in a directory named after the replay directory and a
hash of its path and its files' names, sizes and modification times: a
changed source gets a new cache. Processes converting the same source take
turns on a file lock; the later one finds the checkpoints done.
"""

import dataclasses
import fcntl
import hashlib
import os
import shutil
import sys
from typing import Optional

import gin

from batch_rl.data import compact
from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data.dopamine_replay import STORE_ELEMENTS
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection

CACHE_ENV = 'BATCH_RL_CACHE'
# Planning figures, from 1M-transition Atari checkpoints (docs/
# PERFORMANCE.md, with margins): the compact layout's size next to the gz
# files' (1.12x measured), and frame bytes converted (7.06 GB in 24.6 CPU
# seconds) or loaded into memory per second and process.
COMPACT_TO_GZ = 1.3
CONVERT_BYTES_PER_S = 250e6
LOAD_BYTES_PER_S = 250e6


@gin.configurable
@dataclasses.dataclass(frozen=True)
class GzReplayCache:
  """How training reads a Dopamine gz directory.

  Attributes:
    memory_budget_gib: selected frames up to this size are loaded into RAM;
      larger selections are converted once into the cache.
    cache_dir: where compact caches live (default: $BATCH_RL_CACHE, else
      ~/.cache/batch_rl).
    workers: conversion processes (default: one per core).
  """
  memory_budget_gib: float = 2.0
  cache_dir: Optional[str] = None
  workers: Optional[int] = None

  def root(self) -> str:
    return os.path.abspath(os.path.expanduser(
        self.cache_dir or os.environ.get(CACHE_ENV) or
        os.path.join('~', '.cache', 'batch_rl')))

  def cache_path(self, replay_dir: str) -> str:
    """The cache directory of `replay_dir` as its files are now."""
    replay_dir = os.path.abspath(replay_dir)
    digest = hashlib.sha256(replay_dir.encode())
    for entry in sorted(os.scandir(replay_dir), key=lambda e: e.name):
      if entry.is_file():
        stat = entry.stat()
        digest.update(f'\0{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}'
                      .encode())
    name = os.path.basename(replay_dir.rstrip(os.sep)) or 'replay'
    return os.path.join(self.root(), 'replay',
                        f'{name}-{digest.hexdigest()[:16]}')


def _gb(nbytes: float) -> str:
  return (f'{nbytes / 1e9:.1f} GB' if nbytes >= 1e9 else
          f'{nbytes / 1e6:.1f} MB')


def _minutes(seconds: float) -> str:
  return f'{seconds / 60:.0f} min' if seconds >= 90 else f'{seconds:.0f} s'


def _existing_parent(path: str) -> str:
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return path


class CacheLock:
  """An exclusive flock on `<cache>.lock`, held while one process fills the
  compact cache `cache` (gz or TFDS); says whom it waits for."""

  def __init__(self, cache: str):
    self.cache = cache
    self.path = cache + '.lock'

  def __enter__(self):
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(self._fd, 32, 0).decode(errors='replace').strip()
      print(f'replay: waiting for process {holder or "?"}, which is filling '
            f'{self.cache}', file=sys.stderr, flush=True)
      fcntl.flock(self._fd, fcntl.LOCK_EX)
    os.ftruncate(self._fd, 0)
    os.pwrite(self._fd, str(os.getpid()).encode(), 0)
    return self

  def __exit__(self, *exc):
    os.ftruncate(self._fd, 0)
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)


def open_gz(replay_dir: str, selection: DataSelection,
            cache: Optional[GzReplayCache] = None) -> ReplayStore:
  """The selected checkpoints of a gz directory, in RAM or from the cache."""
  cache = cache or GzReplayCache()
  suffixes = selection.select_checkpoints(
      dopamine_replay.list_checkpoints(replay_dir))
  sizes = converted.frame_bytes(replay_dir, suffixes)
  frame_bytes = sum(sizes.values())
  slots = sum(dopamine_replay.read_array_header(
      dopamine_replay.store_filename(replay_dir, 'terminal', s))[0][0]
      for s in suffixes)
  what = (f'replay: {len(suffixes)} checkpoints of {replay_dir} ({slots:,} '
          f'slots, {_gb(frame_bytes)} of frames)')
  if frame_bytes <= cache.memory_budget_gib * 2**30:
    print(f'{what}: loading into memory (~{_gb(frame_bytes)} RAM, '
          f'~{_minutes(frame_bytes / LOAD_BYTES_PER_S)}).', flush=True)
    return ReplayStore.read_dopamine(replay_dir, suffixes)
  path = cache.cache_path(replay_dir)
  with CacheLock(path):
    todo = [s for s in suffixes
            if s not in compact.finished_checkpoints(path)]
    todo_frames = sum(sizes[s] for s in todo)
    disk = COMPACT_TO_GZ * sum(
        os.path.getsize(dopamine_replay.store_filename(replay_dir, name, s))
        for s in todo for name in STORE_ELEMENTS)
    workers = min(cache.workers or os.cpu_count() or 1, max(1, len(todo)))
    plan = (f'converting {len(todo)} of them once into {path} (~{_gb(disk)} '
            f'of disk, under 1 GiB RAM per worker, ~'
            f'{_minutes(todo_frames / CONVERT_BYTES_PER_S / workers)} with '
            f'{workers} workers), then' if todo else
            f'already converted in {path}:')
    print(f'{what} exceed GzReplayCache.memory_budget_gib='
          f'{cache.memory_budget_gib:g}: {plan} reading frames from disk '
          f'(~{_gb(9 * slots)} RAM).', flush=True)
    free = shutil.disk_usage(_existing_parent(path)).free
    if disk > free:
      raise ReplayDataError(
          f'{path}: the compact cache of {replay_dir} needs ~{_gb(disk)} of '
          f'disk, {_gb(free)} is free; set ${CACHE_ENV} (or '
          'GzReplayCache.cache_dir) to a disk with room, or run `python -m '
          f'batch_rl.data convert {replay_dir} OUT` and train with '
          '--replay_dir=OUT.')
    if todo:
      converted.convert(replay_dir, path, suffixes, workers=workers)
  return converted.open_store(path, DataSelection(checkpoints=suffixes))
