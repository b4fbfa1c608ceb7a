"""RL Unplugged Atari (and any RLDS dataset laid out like it), as TFDS prepares it.

A dataset is named in one of three ways (`--replay_dir`, `python -m
batch_rl.data info`):

  tfds:rlu_atari_checkpoints_ordered/Pong_run_1[:1.1.0]   in the TFDS data dir
  DATA_DIR/rlu_atari_checkpoints_ordered/Pong_run_1        config directory
  DATA_DIR/rlu_atari_checkpoints_ordered/Pong_run_1/1.1.0  versioned directory

The data dir of a `tfds:` name is `tfds_replay.data_dir` (gin) or the
`info --tfds_data_dir` flag, else TFDS's default ($TFDS_DATA_DIR or
~/tensorflow_datasets); without a version, and for a config directory, the
newest prepared version is read.

Replay checkpoint N is split `checkpoint_NN` (rlu_atari_checkpoints_ordered,
`export-rlds` output) or, in a dataset with one `train` split (rlu_atari),
the episodes whose checkpoint_id is N. Each checkpoint is converted once,
streamed episode chunk by chunk with frames decoded in parallel, into
Dopamine's slot layout (`rlds_io.SlotMapper`: exactly the episodes'
transitions) in the cache directory (`tfds_replay.cache_dir`, default
$BATCH_RL_CACHE_DIR or ~/.cache/batch_rl); later opens read the cache.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from typing import Optional

import gin
import numpy as np
import tqdm

from batch_rl.data import converted
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection

TFDS_PREFIX = 'tfds:'
DATASET_INFO = 'dataset_info.json'
_CHECKPOINT_SPLIT = re.compile(r'^checkpoint_(\d+)$')
_VERSION = re.compile(r'^\d+\.\d+\.\d+$')
# The episode feature that groups a `train` split into checkpoints.
CHECKPOINT_ID = 'checkpoint_id'


@gin.configurable('tfds_replay')
@dataclasses.dataclass(frozen=True)
class TFDSReplayOptions:
  """Where TFDS datasets are read from and converted to.

  Attributes:
    data_dir: TFDS data directory for `tfds:` names (None: TFDS's default).
    cache_dir: where converted checkpoints go (None: $BATCH_RL_CACHE_DIR or
      ~/.cache/batch_rl).
  """
  data_dir: Optional[str] = None
  cache_dir: Optional[str] = None

  def resolved_cache_dir(self) -> str:
    return self.cache_dir or os.environ.get(
        'BATCH_RL_CACHE_DIR', os.path.expanduser('~/.cache/batch_rl'))


def _is_dataset_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, DATASET_INFO))


def _versions(config_dir: str) -> list[str]:
  """Prepared versions in a config directory, oldest first."""
  if not os.path.isdir(config_dir):
    return []
  found = [name for name in os.listdir(config_dir)
           if _VERSION.match(name) and
           _is_dataset_dir(os.path.join(config_dir, name))]
  return sorted(found, key=lambda v: tuple(map(int, v.split('.'))))


def is_tfds_dataset(replay_dir: str) -> bool:
  """A `tfds:` name, a TFDS dataset directory or a config directory."""
  return (replay_dir.startswith(TFDS_PREFIX) or _is_dataset_dir(replay_dir)
          or bool(_versions(replay_dir)))


def resolve(replay_dir: str, data_dir: Optional[str] = None) -> str:
  """The versioned dataset directory that `replay_dir` names."""
  if replay_dir.startswith(TFDS_PREFIX):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    name, _, version = replay_dir[len(TFDS_PREFIX):].partition(':')
    data_dir = os.path.expanduser(data_dir or tfds.core.constants.DATA_DIR)
    if not os.path.isdir(data_dir):
      raise ReplayDataError(
          f'{replay_dir}: the TFDS data directory {data_dir} does not exist; '
          'set it with --tfds_data_dir or tfds_replay.data_dir (gin).')
    config_dir = os.path.join(data_dir, *name.split('/'))
    if version:
      path = os.path.join(config_dir, version)
      if not _is_dataset_dir(path):
        raise ReplayDataError(
            f'{replay_dir}: version {version} is not prepared in {data_dir} '
            f'(prepared: {_versions(config_dir) or "none"}).')
      return path
  else:
    config_dir = replay_dir
    if _is_dataset_dir(replay_dir):
      return replay_dir
  versions = _versions(config_dir)
  if not versions:
    raise ReplayDataError(
        f'{replay_dir}: no prepared TFDS dataset at {config_dir} (expected '
        f'VERSION/{DATASET_INFO} inside, e.g. 1.1.0/); prepare it with TFDS '
        '(`tfds build rlu_atari_checkpoints_ordered --config Pong_run_1`) '
        'or name another data directory.')
  return os.path.join(config_dir, versions[-1])


def _checkpoint_splits(builder, source: str) -> Optional[dict[int, str]]:
  """{checkpoint: split} for checkpoint_NN splits; None for a grouped
  `train` split (its checkpoints are known once read)."""
  splits = sorted(builder.info.splits)
  found = {int(m.group(1)): name
           for name in splits if (m := _CHECKPOINT_SPLIT.match(name))}
  if found:
    return found
  if splits == ['train'] and CHECKPOINT_ID in builder.info.features:
    return None
  raise ReplayDataError(
      f'{source}: no replay checkpoints: expected checkpoint_NN splits '
      f'(rlu_atari_checkpoints_ordered) or one train split whose episodes '
      f'carry {CHECKPOINT_ID} (rlu_atari); the dataset has splits {splits} '
      f'and episode features {sorted(builder.info.features.keys())}.')


def _cache_path(dataset_dir: str, stack_size: int, cache_dir: str) -> str:
  """Cache of one prepared dataset for one stack size; a re-prepared or
  moved dataset gets a new one."""
  with open(os.path.join(dataset_dir, DATASET_INFO), 'rb') as f:
    info_bytes = f.read()
  info = json.loads(info_bytes)
  fingerprint = hashlib.sha1(os.path.realpath(dataset_dir).encode() +
                             info_bytes).hexdigest()[:12]
  return os.path.join(cache_dir, 'tfds', info['name'],
                      info.get('configName', ''), info['version'],
                      f'{fingerprint}_stack{stack_size}')


class _NpyCheckpointWriter:
  """Writes one checkpoint of the `converted` layout from slot chunks.

  Plain appends (no memory-mapped writes); each .npy header is rewritten
  with the final length on close, which publishes the checkpoint atomically.
  """
  _HEADER_BYTES = 128

  def __init__(self, out_dir: str, suffix: int):
    self._final = os.path.join(out_dir, f'ckpt_{suffix}')
    self._partial = self._final + '.partial'
    shutil.rmtree(self._partial, ignore_errors=True)
    os.makedirs(self._partial)
    self._files = {}  # name -> [file, dtype, item shape, rows]

  def append(self, observation, action, reward, terminal) -> None:
    for name, value in zip(converted.STORE_ELEMENTS,
                           (observation, action, reward, terminal)):
      if name not in self._files:
        f = open(os.path.join(self._partial, f'{name}.npy'), 'wb')
        f.write(b'\0' * self._HEADER_BYTES)
        self._files[name] = [f, value.dtype, value.shape[1:], 0]
      entry = self._files[name]
      entry[0].write(np.ascontiguousarray(value, entry[1]).tobytes())
      entry[3] += len(value)

  def close(self, metadata) -> None:
    for f, dtype, item_shape, rows in self._files.values():
      header = repr({'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)),
                     'fortran_order': False,
                     'shape': (rows,) + tuple(item_shape)})
      text = header.ljust(self._HEADER_BYTES - 11) + '\n'
      f.seek(0)
      f.write(b'\x93NUMPY\x01\x00' + len(text).to_bytes(2, 'little') +
              text.encode('latin1'))
      f.close()
    with open(os.path.join(self._partial, 'meta.json'), 'w') as f:
      json.dump({'add_count': metadata.add_count,
                 'invalid_range': metadata.invalid_range.tolist(),
                 'episode_end_indices':
                     metadata.episode_end_indices.tolist()}, f)
    os.replace(self._partial, self._final)

  def abort(self) -> None:
    for entry in self._files.values():
      entry[0].close()
    shutil.rmtree(self._partial, ignore_errors=True)


def _checkpoint_writer(cache: str, suffix: int):
  """The one place that picks the cache's on-disk layout."""
  return _NpyCheckpointWriter(cache, suffix)


class _ArraySink:
  """Keeps a checkpoint's small slot arrays in memory, frames dropped."""

  def __init__(self):
    self.parts = {'action': [], 'reward': [], 'terminal': []}

  def append(self, observation, action, reward, terminal) -> None:
    del observation
    for name, value in zip(self.parts, (action, reward, terminal)):
      self.parts[name].append(value)

  def arrays(self, metadata, frame_shape,
             frame_dtype) -> ReplayArrays:
    small = {name: np.concatenate(parts) for name, parts in self.parts.items()}
    return ReplayArrays(
        observation=np.broadcast_to(np.zeros((), frame_dtype),
                                    (metadata.add_count,) + frame_shape),
        add_count=metadata.add_count, invalid_range=metadata.invalid_range,
        episode_end_indices=metadata.episode_end_indices, **small)


def _map_split(builder, split: str, stack_size: int, new_sink, source: str,
               group: bool, observations: bool, progress: bool) -> dict:
  """Streams `split` through SlotMappers: {checkpoint: (sink, metadata)}.

  Checkpoint `split`'s suffix, or, when `group`, each episode's
  checkpoint_id; `new_sink(checkpoint)` makes the sink of a checkpoint.
  """
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  mappers, sinks = {}, {}
  own = None if group else int(_CHECKPOINT_SPLIT.match(split).group(1))
  total = builder.info.splits[split].num_examples
  with tqdm.tqdm(total=total, unit='episode', disable=not progress,
                 desc=f'{source}: {split}', file=sys.stderr) as bar:
    for chunk in rlds_io.step_chunks(
        builder, split, observations,
        episode_features=(CHECKPOINT_ID,) if group else ()):
      ids = chunk[CHECKPOINT_ID] if group else np.full(len(chunk['action']),
                                                       own)
      for checkpoint in np.unique(ids):
        if checkpoint not in mappers:
          sinks[checkpoint] = new_sink(int(checkpoint))
          mappers[checkpoint] = rlds_io.SlotMapper(
              stack_size, sinks[checkpoint],
              f'{source}, checkpoint {checkpoint}')
        rows = ids == checkpoint
        mappers[checkpoint].add({n: v[rows] for n, v in chunk.items()
                                 if n != CHECKPOINT_ID})
      bar.update(int(np.sum(chunk['is_last'])))
  if not mappers:
    raise ReplayDataError(f'{source}: split {split} holds no episode.')
  return {int(c): (sinks[c], mappers[c].close()) for c in sorted(mappers)}


def _write_manifest(cache: str, dataset_dir: str, checkpoints) -> None:
  tmp = os.path.join(cache, converted.MANIFEST + '.tmp')
  with open(tmp, 'w') as f:
    json.dump({'format': converted.FORMAT, 'source': dataset_dir,
               'checkpoints': sorted(checkpoints)}, f)
  os.replace(tmp, os.path.join(cache, converted.MANIFEST))


def _converted_checkpoints(cache: str) -> list[int]:
  path = os.path.join(cache, converted.MANIFEST)
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return json.load(f)['checkpoints']


def convert(replay_dir: str, stack_size: int = 4,
            selection: Optional[DataSelection] = None,
            options: Optional[TFDSReplayOptions] = None,
            progress: bool = True) -> tuple[str, list[int]]:
  """Converts the selected checkpoints once; returns (cache, checkpoints).

  A `train` split is converted whole in one pass (its checkpoints are only
  known once read). Holds one chunk of frames per checkpoint in memory.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  options = options or TFDSReplayOptions()
  selection = selection or DataSelection()
  dataset_dir = resolve(replay_dir, options.data_dir)
  builder = tfds.builder_from_directory(dataset_dir)
  source = f'TFDS dataset {dataset_dir}'
  rlds_io.check_rlds_layout(builder, source)
  splits = _checkpoint_splits(builder, source)
  cache = _cache_path(dataset_dir, stack_size, options.resolved_cache_dir())
  os.makedirs(cache, exist_ok=True)
  with open(os.path.join(cache, '.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # One converter per cache at a time.
    done = _converted_checkpoints(cache)
    if splits is None:
      todo = [] if done else ['train']
    else:
      chosen = selection.select_checkpoints(splits)
      todo = [splits[c] for c in chosen if c not in done]
    if todo:
      print(f'converting {len(todo)} split(s) of {dataset_dir} into {cache} '
            '(once; later runs read the cache)', file=sys.stderr)
    for split in todo:
      writers = {}

      def new_writer(checkpoint, writers=writers):
        writers[checkpoint] = _checkpoint_writer(cache, checkpoint)
        return writers[checkpoint]

      try:
        mapped = _map_split(builder, split, stack_size, new_writer, source,
                            group=splits is None, observations=True,
                            progress=progress)
        for writer, metadata in mapped.values():
          writer.close(metadata)
      except BaseException:
        for writer in writers.values():
          writer.abort()
        raise
      done = sorted(set(done) | set(mapped))
      _write_manifest(cache, dataset_dir, done)
  chosen = selection.select_checkpoints(done)
  return cache, chosen


def open_store(replay_dir: str, selection: DataSelection,
               stack_size: int = 4,
               options: Optional[TFDSReplayOptions] = None) -> ReplayStore:
  """The selected checkpoints of a TFDS dataset, converted once."""
  cache, chosen = convert(replay_dir, stack_size, selection, options)
  return converted.open_store(cache, DataSelection(checkpoints=chosen))


def summary_checkpoints(replay_dir: str, stack_size: int = 4,
                        options: Optional[TFDSReplayOptions] = None):
  """[(checkpoint, ReplayArrays with shape-only frames, frame shape, dtype)]
  of every checkpoint, read without decoding a frame (for `info`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  options = options or TFDSReplayOptions()
  dataset_dir = resolve(replay_dir, options.data_dir)
  builder = tfds.builder_from_directory(dataset_dir)
  source = f'TFDS dataset {dataset_dir}'
  rlds_io.check_rlds_layout(builder, source)
  splits = _checkpoint_splits(builder, source)
  feature = builder.info.features['steps']['observation']
  frame_shape = tuple(feature.shape)
  if frame_shape[-1:] == (1,) and len(frame_shape) == 3:
    frame_shape = frame_shape[:-1]
  items = []
  for split in (['train'] if splits is None else
                [splits[c] for c in sorted(splits)]):
    mapped = _map_split(builder, split, stack_size, lambda _: _ArraySink(),
                        source, group=splits is None, observations=False,
                        progress=False)
    items += [(checkpoint, sink.arrays(metadata, frame_shape,
                                       np.dtype(feature.np_dtype)),
               frame_shape, np.dtype(feature.np_dtype))
              for checkpoint, (sink, metadata) in mapped.items()]
  return items
