"""RLDS export and import of Dopamine replay, laid out like TFDS `rlu_atari`.

`export_to_rlds(replay_dir, out_dir)` writes the TFDS dataset directory
`OUT_DIR/dopamine_replay/1.0.0` and returns that path; read it with
`tfds.builder_from_directory('OUT_DIR/dopamine_replay/1.0.0')` or
`tfds.builder('dopamine_replay', data_dir='OUT_DIR')`. Checkpoint N is split
`checkpoint_NN`, one example per episode, in the order they were played:

  steps/observation   one frame; 2-D frames get a trailing channel axis
                      (84, 84, 1); uint8 frames with 1 or 3 channels are PNG
  steps/action        int64 (float32 for continuous actions)
  steps/reward        float32, received after taking `action`
  steps/discount      float32, 0 where the step's action ended the episode
  steps/is_first, is_last, is_terminal    bool
  checkpoint_id, episode_id (order within the checkpoint), episode_return

Each real Dopamine slot (o_t, a_t, r_t, terminal_t) is one step; the
stack_size - 1 zero padding slots before every episode are not exported. An
episode that ends in a terminal gets one more step for the terminal
observation, with dummy action and reward 0 and is_terminal=True, as RLDS
wants; Dopamine never stores that observation, so it is a zero frame (what
Dopamine's next_state holds there when stack_size > 1). An episode cut
without a terminal (`episode_end_indices`) and the newest, unfinished episode
end with is_last=True, is_terminal=False on their last stored slot, whose
action and reward are kept. The oldest episode of a wrapped (full) buffer may
have lost its start to the write cursor, so it is never exported.

`read_rlds_as_replay_arrays` inverts this mapping for any dataset laid out
like rlu_atari and rebuilds Dopamine's circular buffer, padding included.
"""

import collections
import dataclasses
import io
import json
import os
import shutil
from typing import Iterator, Optional, Sequence

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
import tqdm

from batch_rl.data import dopamine_replay
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.episodes import StoredEpisode
from batch_rl.data.episodes import stored_episodes
from batch_rl.data.errors import ReplayDataError

DATASET_NAME = 'dopamine_replay'
VERSION = '1.0.0'
REQUIRED_STEP_FEATURES = ('observation', 'action', 'reward', 'is_first',
                          'is_last', 'is_terminal')
# Atari episodes are up to ~30k PNG frames of 1-3 KB: shards of tens of MB.
_EPISODES_PER_SHARD = 32
_READ_BATCH_STEPS = 4096


def split_name(suffix: int) -> str:
  """RLDS split of Dopamine checkpoint `suffix`, named as rlu_atari does."""
  return f'checkpoint_{suffix:02d}'


def builder_dir(out_dir: str, dataset_name: str = DATASET_NAME) -> str:
  """Where `export_to_rlds` writes: pass it to `tfds.builder_from_directory`."""
  return os.path.join(out_dir, dataset_name, VERSION)


def _png(frame: np.ndarray) -> bytes:
  # PIL is several times faster than the TF op TFDS would run per frame.
  buffer = io.BytesIO()
  Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(
      buffer, format='png')
  return buffer.getvalue()


def _observation_codec(frame_shape: Sequence[int], dtype: np.dtype):
  """(TFDS feature, frames -> encoded steps) for Dopamine frames."""
  shape = tuple(frame_shape) + ((1,) if len(frame_shape) == 2 else ())
  with_channel = lambda frames: frames.reshape((len(frames),) + shape)
  if dtype == np.uint8 and len(shape) == 3 and shape[-1] in (1, 3):
    feature = tfds.features.Image(shape=shape, dtype=np.uint8,
                                  encoding_format='png')
    return feature, lambda frames: [_png(f) for f in with_channel(frames)]
  return tfds.features.Tensor(shape=shape, dtype=dtype), with_channel


def _action_dtype(arrays: ReplayArrays):
  return np.int64 if arrays.action.dtype.kind in 'iu' else np.float32


def _episode_features(arrays: ReplayArrays, observation_feature):
  return tfds.features.FeaturesDict({
      'steps': tfds.features.Dataset({
          'observation': observation_feature,
          'action': tfds.features.Tensor(shape=arrays.action.shape[1:],
                                         dtype=_action_dtype(arrays)),
          'reward': np.float32,
          'discount': np.float32,
          'is_first': np.bool_,
          'is_last': np.bool_,
          'is_terminal': np.bool_,
      }),
      'checkpoint_id': np.int64,
      'episode_id': np.int64,
      'episode_return': np.float32,
  })


def _rlds_episode(arrays: ReplayArrays, episode: StoredEpisode,
                  checkpoint_id: int, episode_id: int, encode_frames) -> dict:
  observation = arrays.observation[episode.slots]
  action = arrays.action[episode.slots].astype(_action_dtype(arrays))
  reward = arrays.reward[episode.slots].astype(np.float32)
  discount = np.ones(len(episode.slots), np.float32)
  if episode.terminal:
    discount[-1] = 0.
    # The step holding the (never stored) terminal observation.
    observation, action, reward, discount = (
        np.concatenate([x, np.zeros_like(x[:1])])
        for x in (observation, action, reward, discount))
  position = np.arange(len(observation))
  is_last = position == len(observation) - 1
  return {
      'steps': {
          'observation': encode_frames(observation),
          'action': action,
          'reward': reward,
          'discount': discount,
          'is_first': position == 0,
          'is_last': is_last,
          'is_terminal': is_last & episode.terminal,
      },
      'checkpoint_id': checkpoint_id,
      'episode_id': episode_id,
      'episode_return': reward.sum(dtype=np.float32),
  }


EXPORT_SOURCE = 'batch_rl_export_source.json'
_PARTIAL = '.partial'


def _export_source(replay_dir: str, suffixes) -> dict:
  return {'replay_dir': os.path.realpath(replay_dir),
          'checkpoints': [int(s) for s in suffixes]}


def _check_output_dir(replay_dir: str, path: str) -> None:
  """Refuses an out_dir inside the replay or holding another source's
  dataset; a complete export of the same replay may be redone."""
  replay = os.path.realpath(replay_dir)
  if os.path.commonpath([os.path.realpath(path), replay]) == replay:
    raise ReplayDataError(
        f'{path}: the RLDS output would be inside the replay directory '
        f'{replay_dir}, which is never written; choose an out_dir elsewhere.')
  if not (os.path.isdir(path) and os.listdir(path)):
    return
  try:
    with open(os.path.join(path, EXPORT_SOURCE)) as f:
      source = json.load(f)['replay_dir']
  except (OSError, ValueError, KeyError, TypeError):
    raise ReplayDataError(
        f'{path}: already holds a dataset not exported by batch_rl (no '
        f'readable {EXPORT_SOURCE}); remove it or choose another out_dir.'
    ) from None
  if source != replay:
    raise ReplayDataError(
        f'{path}: holds the export of {source}, not of {replay_dir}; remove '
        'it or choose another out_dir.')


def _publish(tmp: str, path: str, source: dict) -> None:
  """Marks the finished export in `tmp` with its source, then renames it
  to `path` (replacing an earlier export of the same source)."""
  with open(os.path.join(tmp, EXPORT_SOURCE), 'w') as f:
    json.dump(source, f, indent=2)
    f.flush()
    os.fsync(f.fileno())
  if os.path.isdir(path):
    shutil.rmtree(path)
  os.replace(tmp, path)


def _new_writer(path: str, dataset_name: str, features):
  os.makedirs(path, exist_ok=True)
  info = tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(
          name=dataset_name, version=tfds.core.Version(VERSION),
          data_dir=path, module_name=__name__),
      description='Dopamine replay checkpoints as RLDS episodes (rlu_atari '
                  'layout), one split per checkpoint.',
      features=features,
      disable_shuffling=True)  # Episodes stay in play order, as rlu_atari.
  return tfds.core.SequentialWriter(
      info, max_examples_per_shard=_EPISODES_PER_SHARD)


def export_to_rlds(replay_dir: str, out_dir: str,
                   suffixes: Optional[Sequence[int]] = None,
                   stack_size: int = 4, progress: bool = True,
                   dataset_name: str = DATASET_NAME) -> str:
  """Writes checkpoints `suffixes` (default: all) of `replay_dir` as RLDS.

  Holds one checkpoint in memory at a time and never writes into
  `replay_dir`. The dataset is written to a `.partial` sibling and renamed
  when complete, with `EXPORT_SOURCE` naming the replay it came from: a
  rerun after a failure starts over, an export of the same replay replaces
  it, and an out_dir holding another source's export is refused.
  `stack_size` must be the one the replay was written with: a larger one is
  reported (its padding is missing), a smaller one would export padding
  slots as steps. Returns the dataset directory `builder_dir(out_dir)`
  to pass to `tfds.builder_from_directory`.
  """
  if suffixes is None:
    suffixes = dopamine_replay.list_checkpoints(replay_dir)
  path = builder_dir(out_dir, dataset_name)
  _check_output_dir(replay_dir, path)
  # Written aside and renamed when complete: a failed export leaves only
  # `<path>.partial`, which the next export removes.
  tmp = path + _PARTIAL
  shutil.rmtree(tmp, ignore_errors=True)
  writer = encode_frames = frame_shape = frame_dtype = None
  with tqdm.tqdm(unit='step', disable=not progress) as bar:
    for suffix in suffixes:
      arrays = dopamine_replay.read_arrays(replay_dir, suffix, frame_shape,
                                           frame_dtype)
      source = dopamine_replay.checkpoint_filename(
          replay_dir, dopamine_replay.STORE_PREFIX + '*', suffix)
      episodes = stored_episodes(arrays, stack_size, source)
      if writer is None:
        frame_shape = arrays.observation.shape[1:]
        frame_dtype = arrays.observation.dtype
        observation_feature, encode_frames = _observation_codec(frame_shape,
                                                                frame_dtype)
        writer = _new_writer(tmp, dataset_name,
                             _episode_features(arrays, observation_feature))
      split = split_name(suffix)
      writer.initialize_splits([split])
      bar.set_description(split)
      bar.total = (bar.total or 0) + sum(len(e.slots) for e in episodes)
      for episode_id, episode in enumerate(episodes):
        writer.add_examples({split: [_rlds_episode(
            arrays, episode, suffix, episode_id, encode_frames)]})
        bar.update(len(episode.slots))
      writer.close_splits([split])
      del arrays, episodes  # Before the next checkpoint is read.
  _publish(tmp, path, _export_source(replay_dir, suffixes))
  return path


def dopamine_invalid_range(cursor: int, capacity: int, stack_size: int,
                           update_horizon: int) -> np.ndarray:
  """Dopamine's `invalid_range`: slots cursor-N .. cursor+K-1, modulo C."""
  return (cursor - update_horizon +
          np.arange(stack_size + update_horizon)) % capacity


def _open_builder(builder_dir_or_name: str, data_dir: Optional[str]):
  if os.path.isdir(builder_dir_or_name):
    return tfds.builder_from_directory(builder_dir_or_name)
  return tfds.builder(builder_dir_or_name, data_dir=data_dir)


def _check_rlds_layout(builder, split: str, source: str) -> None:
  splits = builder.info.splits
  if split not in splits:
    raise ReplayDataError(
        f'{source}: no split {split!r}; the dataset has splits '
        f'{sorted(splits)}.')
  features = builder.info.features
  if 'steps' not in features or not isinstance(features['steps'],
                                               tfds.features.Dataset):
    raise ReplayDataError(
        f'{source}: not an RLDS dataset (no nested "steps" dataset feature; '
        f'it has {sorted(features.keys())}).')
  step_features = features['steps'].feature.keys()
  missing = [name for name in REQUIRED_STEP_FEATURES
             if name not in step_features]
  if missing:
    raise ReplayDataError(
        f'{source}: steps lack the required feature(s) {missing}; steps laid '
        f'out like rlu_atari have {list(REQUIRED_STEP_FEATURES)}.')


def _step_batches(builder, split: str) -> Iterator[dict]:
  episodes = builder.as_dataset(split=split, shuffle_files=False)
  steps = episodes.flat_map(lambda episode: episode['steps']).map(
      lambda step: {name: step[name] for name in REQUIRED_STEP_FEATURES})
  return iter(tfds.as_numpy(steps.batch(_READ_BATCH_STEPS)))


@dataclasses.dataclass(frozen=True)
class _SlotLayout:
  """Where each RLDS step of a split lands among Dopamine's added slots."""
  slot: np.ndarray      # Add number of the step's slot; -1: not a slot.
  terminal: np.ndarray  # The step's slot has terminal=1.
  end: np.ndarray       # The step's slot ends an episode.
  num_slots: int        # Slots added, padding included.


def _slot_layout(is_first: np.ndarray, is_last: np.ndarray,
                 is_terminal: np.ndarray, stack_size: int,
                 source: str) -> _SlotLayout:
  """Dopamine's add order for a split's steps, padding inserted."""
  misplaced = np.flatnonzero(is_first != np.concatenate([[True], is_last[:-1]]))
  if len(misplaced) or not is_last[-1]:
    step = misplaced[0] if len(misplaced) else len(is_last) - 1
    raise ReplayDataError(
        f'{source}: step {step} (counting all steps of the split) breaks the '
        'episode structure: is_first must mark exactly the step after each '
        'is_last step.')
  if (is_terminal & ~is_last).any():
    raise ReplayDataError(
        f'{source}: step {np.flatnonzero(is_terminal & ~is_last)[0]} has '
        'is_terminal without is_last.')
  # A terminal episode's last step only holds the terminal observation.
  observation_only = is_last & is_terminal
  starts = is_first & ~observation_only  # An episode with a transition.
  added = np.cumsum((stack_size - 1) * starts + ~observation_only)
  terminal = np.zeros_like(is_first)
  terminal[:-1] = observation_only[1:] & ~is_first[1:]
  return _SlotLayout(
      slot=np.where(observation_only, -1, added - 1),
      terminal=terminal,
      end=terminal | (is_last & ~observation_only),
      num_slots=int(added[-1]))


def read_rlds_as_replay_arrays(builder_dir_or_name: str, split: str,
                               stack_size: int = 4,
                               data_dir: Optional[str] = None,
                               update_horizon: int = 1,
                               capacity: Optional[int] = None) -> ReplayArrays:
  """One split of an rlu_atari-like RLDS dataset as a Dopamine buffer.

  Replays the split's steps into a circular buffer as Dopamine's `add` would:
  stack_size - 1 zero padding slots before each episode, terminal=1 on the
  slot before a terminal step (which only holds the terminal observation),
  `episode_end_indices` on every episode's last slot (an is_last step without
  is_terminal is a cut, as Dopamine's `episode_end`), `add_count` the slots
  added and `invalid_range` as Dopamine computes it for `update_horizon`.
  `capacity` defaults to one slot more than added, so the buffer is not full
  and its valid transitions are the split's for any update horizon; a smaller
  capacity keeps the newest slots, as a wrapped buffer. (H, W, 1) frames are
  squeezed to Dopamine's (H, W); integer actions become int32.

  Args:
    builder_dir_or_name: a dataset directory (`tfds.builder_from_directory`)
      or a TFDS name with its config and version (`tfds.builder`).
    split: e.g. 'checkpoint_00'.
    stack_size, update_horizon: as in Dopamine.
    data_dir: TFDS data directory, for a dataset name.
    capacity: replay capacity.
  """
  builder = _open_builder(builder_dir_or_name, data_dir)
  source = f'RLDS dataset {builder_dir_or_name}'
  _check_rlds_layout(builder, split, source)
  source = f'{source}, split {split}'
  batches = collections.deque(_step_batches(builder, split))
  if not batches:
    raise ReplayDataError(f'{source}: the split holds no episode.')
  layout = _slot_layout(
      *(np.concatenate([batch[name] for batch in batches])
        for name in ('is_first', 'is_last', 'is_terminal')),
      stack_size, source)
  if capacity is None:
    capacity = layout.num_slots + 1
  if capacity < stack_size + update_horizon:
    raise ReplayDataError(
        f'{source}: capacity {capacity} is below stack_size + update_horizon '
        f'= {stack_size + update_horizon}, the least Dopamine accepts.')

  first = batches[0]
  frame_shape = first['observation'].shape[1:]
  if len(frame_shape) == 3 and frame_shape[-1] == 1:
    frame_shape = frame_shape[:-1]
  action = first['action']
  arrays = ReplayArrays(
      observation=np.zeros((capacity,) + frame_shape,
                           first['observation'].dtype),
      action=np.zeros((capacity,) + action.shape[1:],
                      np.int32 if action.dtype.kind in 'iu' else np.float32),
      reward=np.zeros(capacity, np.float32),
      terminal=np.zeros(capacity, np.uint8),
      add_count=layout.num_slots,
      invalid_range=dopamine_invalid_range(layout.num_slots % capacity,
                                           capacity, stack_size,
                                           update_horizon))
  oldest_kept = layout.num_slots - capacity  # Older slots were overwritten.
  step = 0
  while batches:  # Frees each batch once it is copied.
    batch = batches.popleft()
    added = layout.slot[step:step + len(batch['action'])]
    kept = added >= max(oldest_kept, 0)
    slots = added[kept] % capacity
    arrays.observation[slots] = batch['observation'][kept].reshape(
        (-1,) + frame_shape)
    arrays.action[slots] = batch['action'][kept]
    arrays.reward[slots] = batch['reward'][kept]
    arrays.terminal[slots] = layout.terminal[step:step + len(added)][kept]
    step += len(added)
  ends = layout.slot[layout.end]
  arrays.episode_end_indices = np.sort(ends[ends >= oldest_kept] % capacity)
  arrays.validate(source)
  return arrays
