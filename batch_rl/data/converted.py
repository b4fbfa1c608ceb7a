"""One-time conversion of gz checkpoints to memory-mappable `.npy` files.

A 1M-transition Atari checkpoint holds about 7 GB of frames, so loading all
50 checkpoints of a run is out of reach. `convert` decompresses each
checkpoint once, streaming (bounded memory), into

  OUT/manifest.json
  OUT/ckpt_N/{observation,action,reward,terminal}.npy
  OUT/ckpt_N/meta.json          add_count, invalid_range, episode_end_indices

and `open_store` maps them read-only, so training reads frames from disk and
RAM stays flat however many checkpoints are selected. Conversion resumes:
finished checkpoints (moved into place atomically) are skipped.
"""

import gzip
import json
import os
import shutil
import zlib

import numpy as np
import tqdm

from batch_rl.data import dopamine_replay
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.dopamine_replay import STORE_ELEMENTS
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection

MANIFEST = 'manifest.json'
FORMAT = 'batch_rl.memmap.v1'
_CHUNK_BYTES = 64 << 20


def is_converted(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MANIFEST))


def _checkpoint_dir(out_dir: str, suffix: int) -> str:
  return os.path.join(out_dir, f'ckpt_{suffix}')


def checkpoint_suffix(ckpt_dir: str) -> int:
  """The suffix N of a converted checkpoint directory OUT/ckpt_N."""
  return int(os.path.basename(ckpt_dir)[len('ckpt_'):])


def _stream_array(gz_path: str, out_path: str, progress: tqdm.tqdm):
  """Copies the `np.save` array in `gz_path` to `out_path` chunk by chunk."""
  if not os.path.exists(gz_path):
    raise ReplayDataError(f'{gz_path}: file is missing.')
  try:
    with gzip.open(gz_path, 'rb') as f:
      version = np.lib.format.read_magic(f)
      shape, fortran, dtype = (
          np.lib.format.read_array_header_1_0(f) if version == (1, 0) else
          np.lib.format.read_array_header_2_0(f))
      if fortran or dtype.hasobject:
        raise ReplayDataError(f'{gz_path}: unsupported array layout.')
      out = np.lib.format.open_memmap(out_path, 'w+', dtype, shape)
      buffer = out.reshape(-1).view(np.uint8)
      for begin in range(0, buffer.size, _CHUNK_BYTES):
        chunk = buffer[begin:begin + _CHUNK_BYTES]
        if f.readinto(chunk) != chunk.size:
          raise EOFError('array data ends early')
        progress.update(chunk.size)
      out.flush()
      del out
  except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
    raise ReplayDataError(
        f'{gz_path}: truncated or corrupt gzip file ({e}).') from None
  except ValueError as e:
    raise ReplayDataError(f'{gz_path}: not a valid array file ({e}).') from None
  return shape


def _convert_checkpoint(replay_dir: str, suffix: int, out_dir: str,
                        progress: tqdm.tqdm) -> None:
  final = _checkpoint_dir(out_dir, suffix)
  partial = final + '.partial'
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  for name in STORE_ELEMENTS:
    _stream_array(
        dopamine_replay.checkpoint_filename(
            replay_dir, dopamine_replay.STORE_PREFIX + name, suffix),
        os.path.join(partial, f'{name}.npy'), progress)
  metadata = _read_metadata(replay_dir, suffix)
  # Validate the whole checkpoint (lengths, dtypes, metadata) before publishing.
  _load_arrays(partial, metadata).validate(dopamine_replay.checkpoint_filename(
      replay_dir, dopamine_replay.STORE_PREFIX + '*', suffix))
  with open(os.path.join(partial, 'meta.json'), 'w') as f:
    json.dump(metadata, f)
  os.replace(partial, final)


def _read_metadata(replay_dir: str, suffix: int) -> dict:
  small = dopamine_replay.read_small_elements(replay_dir, suffix)
  return {
      'add_count': small['add_count'],
      'invalid_range': small['invalid_range'].tolist(),
      'episode_end_indices': (None if small['episode_end_indices'] is None
                              else small['episode_end_indices'].tolist()),
  }


def _load_arrays(ckpt_dir: str, metadata=None) -> ReplayArrays:
  if metadata is None:
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


def convert(replay_dir: str, out_dir: str, suffixes=None,
            progress: bool = True) -> list[int]:
  """Converts checkpoints of `replay_dir` into `out_dir`; returns suffixes."""
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
  os.makedirs(out_dir, exist_ok=True)
  todo = [s for s in suffixes
          if not os.path.isdir(_checkpoint_dir(out_dir, s))]
  total = sum(
      _uncompressed_size_hint(replay_dir, s) for s in todo)
  with tqdm.tqdm(total=total, unit='B', unit_scale=True, disable=not progress,
                 desc=f'convert {len(todo)} checkpoints') as bar:
    for suffix in todo:
      _convert_checkpoint(replay_dir, suffix, out_dir, bar)
  done = sorted(set(suffixes) | set(_converted_suffixes(out_dir)))
  with open(os.path.join(out_dir, MANIFEST + '.tmp'), 'w') as f:
    json.dump({'format': FORMAT, 'source': replay_dir, 'checkpoints': done}, f)
  os.replace(os.path.join(out_dir, MANIFEST + '.tmp'),
             os.path.join(out_dir, MANIFEST))
  return suffixes


def _uncompressed_size_hint(replay_dir: str, suffix: int) -> int:
  """gzip's trailer holds the size modulo 2**32: good enough for a progress bar."""
  total = 0
  for name in STORE_ELEMENTS:
    path = dopamine_replay.checkpoint_filename(
        replay_dir, dopamine_replay.STORE_PREFIX + name, suffix)
    if os.path.exists(path) and os.path.getsize(path) >= 4:
      with open(path, 'rb') as f:
        f.seek(-4, os.SEEK_END)
        total += int.from_bytes(f.read(4), 'little')
  return total


def _converted_suffixes(out_dir: str) -> list[int]:
  return sorted(
      int(name[len('ckpt_'):]) for name in os.listdir(out_dir)
      if name.startswith('ckpt_') and name[len('ckpt_'):].isdigit())


def open_store(out_dir: str, selection: DataSelection) -> ReplayStore:
  """Memory-maps the selected checkpoints of a converted directory."""
  with open(os.path.join(out_dir, MANIFEST)) as f:
    manifest = json.load(f)
  if manifest.get('format') != FORMAT:
    raise ReplayDataError(
        f'{os.path.join(out_dir, MANIFEST)}: format {manifest.get("format")!r}'
        f', expected {FORMAT!r}.')
  suffixes = selection.select_checkpoints(manifest['checkpoints'])
  checkpoints = []
  for suffix in suffixes:
    ckpt_dir = _checkpoint_dir(out_dir, suffix)
    if not os.path.isdir(ckpt_dir):
      raise ReplayDataError(f'{ckpt_dir}: converted checkpoint is missing.')
    arrays = _load_arrays(ckpt_dir)
    arrays.validate(ckpt_dir)
    checkpoints.append(arrays)
  return ReplayStore(checkpoints,
                     [_checkpoint_dir(out_dir, s) for s in suffixes],
                     memory_mapped=True)
