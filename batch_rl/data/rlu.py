"""RL Unplugged Atari as TFDS prepares it, and RLDS datasets laid out alike.

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
transitions), in the compact layout (`compact.py`) under the cache
directory (`tfds_replay.cache_dir`, default the gz cache's:
$BATCH_RL_CACHE or ~/.cache/batch_rl); later opens read the cache.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
from typing import Optional

import gin
import numpy as np
import tqdm

from batch_rl.data import compact
from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import gz_cache
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
# Conversion cost for the plan line: 90 CPU-s per 1M Atari steps, both
# passes (benchmarks/rlu_conversion.py, docs/RL_UNPLUGGED.md).
CONVERT_CPU_S_PER_SLOT = 90e-6


@gin.configurable('tfds_replay')
@dataclasses.dataclass(frozen=True)
class TFDSReplayOptions:
  """Where TFDS datasets are read from and converted to.

  Attributes:
    data_dir: TFDS data directory for `tfds:` names (None: TFDS's default).
    cache_dir: where converted checkpoints go (None: the gz cache's,
      `GzReplayCache.cache_dir`, $BATCH_RL_CACHE or ~/.cache/batch_rl).
  """
  data_dir: Optional[str] = None
  cache_dir: Optional[str] = None

  def resolved_cache_dir(self) -> str:
    # Without a cache_dir of its own, the gz cache's as gin configures it.
    cache = (gz_cache.GzReplayCache() if self.cache_dir is None else
             gz_cache.GzReplayCache(cache_dir=self.cache_dir))
    return cache.root()


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
    tfds_name = name
    if version:
      path = os.path.join(config_dir, version)
      if not _is_dataset_dir(path):
        raise ReplayDataError(
            f'{replay_dir}: version {version} is not prepared in {data_dir} '
            f'(prepared: {_versions(config_dir) or "none"}).')
      return path
  else:
    config_dir = replay_dir
    tfds_name = 'rlu_atari_checkpoints_ordered/Pong_run_1'  # an example
    if _is_dataset_dir(replay_dir):
      return replay_dir
  versions = _versions(config_dir)
  if not versions:
    dataset, _, config = tfds_name.partition('/')
    build = f'tfds build {dataset}' + (f' --config {config}' if config else '')
    raise ReplayDataError(
        f'{replay_dir}: no prepared TFDS dataset at {config_dir} (expected '
        f'VERSION/{DATASET_INFO} inside, e.g. 1.1.0/); prepare it with TFDS '
        f'(`{build}`) or name another data directory.')
  return os.path.join(config_dir, versions[-1])


def _open_builder(replay_dir: str, options: TFDSReplayOptions):
  """(dataset_dir, builder, source, splits) of the TFDS dataset named by
  `replay_dir`, its RL Unplugged layout checked (`source` names it in
  errors; `splits` as `_checkpoint_splits`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  dataset_dir = resolve(replay_dir, options.data_dir)
  builder = tfds.builder_from_directory(dataset_dir)
  source = f'TFDS dataset {dataset_dir}'
  rlds_io.check_rlds_layout(builder, source)
  return dataset_dir, builder, source, _checkpoint_splits(builder, source)


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


class _NullSink:
  """Drops slots: a pass that only counts them."""

  def append(self, *slots) -> None:
    del slots


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
        observation=dopamine_replay.shape_only_frames(
            (metadata.add_count,) + frame_shape, frame_dtype),
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
                 desc=f'convert {split}', file=sys.stderr) as bar:
    # A chunk holds steps of one episode, so of one checkpoint.
    for chunk in rlds_io.step_chunks(
        builder, split, observations,
        episode_features=(CHECKPOINT_ID,) if group else ()):
      checkpoint = int(chunk.pop(CHECKPOINT_ID)[0]) if group else own
      if checkpoint not in mappers:
        sinks[checkpoint] = new_sink(checkpoint)
        mappers[checkpoint] = rlds_io.SlotMapper(
            stack_size, sinks[checkpoint],
            f'{source}, checkpoint {checkpoint}')
      mappers[checkpoint].add(chunk)
      bar.update(int(np.sum(chunk['is_last'])))
  if not mappers:
    raise ReplayDataError(f'{source}: split {split} holds no episode.')
  return {c: (sinks[c], mappers[c].close()) for c in sorted(mappers)}


def _slot_specs(builder) -> dict:
  """CheckpointWriter's frame and action shapes and dtypes for `builder`."""
  steps = builder.info.features['steps']
  frame_shape = tuple(steps['observation'].shape)
  if len(frame_shape) == 3 and frame_shape[-1] == 1:
    frame_shape = frame_shape[:-1]  # Dopamine's (H, W).
  action = steps['action']
  return {'frame_shape': frame_shape,
          'frame_dtype': np.dtype(steps['observation'].np_dtype),
          'action_shape': tuple(action.shape),
          'action_dtype': (np.int32 if np.dtype(action.np_dtype).kind in 'iub'
                           else np.float32)}


def convert(replay_dir: str, stack_size: int = 4,
            selection: Optional[DataSelection] = None,
            options: Optional[TFDSReplayOptions] = None,
            progress: bool = True) -> tuple[str, list[int]]:
  """Converts the selected checkpoints once; returns (cache, checkpoints).

  Two passes per split: one without decoding frames counts each
  checkpoint's slots (the writer's capacity) for the plan line, the other
  decodes and writes. A `train` split is converted whole (its checkpoints
  are only known once read). Holds a chunk of frames in memory at a time.
  """
  options = options or TFDSReplayOptions()
  selection = selection or DataSelection()
  dataset_dir, builder, source, splits = _open_builder(replay_dir, options)
  cache = _cache_path(dataset_dir, stack_size, options.resolved_cache_dir())
  with gz_cache.CacheLock(cache):  # One converter per cache at a time.
    # The cache, or its .partial sibling holding an interrupted first run.
    work_dir = compact.begin_output(cache, source=dataset_dir)
    done = compact.finished_checkpoints(work_dir)
    if splits is None:
      todo = [] if done else ['train']
    else:
      todo = [splits[c] for c in selection.select_checkpoints(splits)
              if c not in done]
    for split in todo:
      _convert_split(builder, split, stack_size, work_dir, cache, source,
                     group=splits is None, progress=progress)
    if todo or work_dir != cache:
      done = compact.finish_output(work_dir, cache)
  return cache, selection.select_checkpoints(done)


def _convert_split(builder, split: str, stack_size: int, work_dir: str,
                   cache: str, source: str, group: bool,
                   progress: bool) -> None:
  counted = _map_split(builder, split, stack_size, lambda _: _NullSink(),
                       source, group, observations=False, progress=False)
  specs = _slot_specs(builder)
  slots = sum(metadata.add_count for _, metadata in counted.values())
  frame_bytes = slots * int(np.prod(specs['frame_shape'])) * (
      specs['frame_dtype'].itemsize)
  split_bytes = builder.info.splits[split].num_bytes
  print(f'replay: {source}, split {split}: {len(counted)} checkpoint(s), '
        f'{slots:,} slots, {frame_bytes / 1e9:.1f} GB of frames; converting '
        f'once into {cache} (disk: the split holds '
        f'{split_bytes / 1e9:.1f} GB, its cache 0.24x that on Seaquest; '
        'under 1 GiB RAM; ~'
        f'{slots * CONVERT_CPU_S_PER_SLOT / 60:.0f} CPU-minutes, PNG '
        'decoding on every core), then reading frames from disk.',
        file=sys.stderr, flush=True)
  with contextlib.ExitStack() as writers:
    mapped = _map_split(
        builder, split, stack_size,
        lambda c: writers.enter_context(compact.CheckpointWriter(
            work_dir, c, counted[c][1].add_count, **specs)),
        source, group, observations=True, progress=progress)
    for writer, metadata in mapped.values():
      writer.close(metadata.add_count, metadata.invalid_range,
                   metadata.episode_end_indices)


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
  _, builder, source, splits = _open_builder(
      replay_dir, options or TFDSReplayOptions())
  specs = _slot_specs(builder)
  items = []
  for split in (['train'] if splits is None else
                [splits[c] for c in sorted(splits)]):
    mapped = _map_split(builder, split, stack_size, lambda _: _ArraySink(),
                        source, group=splits is None, observations=False,
                        progress=False)
    items += [(checkpoint, sink.arrays(metadata, specs['frame_shape'],
                                       specs['frame_dtype']),
               specs['frame_shape'], specs['frame_dtype'])
              for checkpoint, (sink, metadata) in mapped.items()]
  return items
