"""RLDS export and import of Dopamine replay, laid out like TFDS `rlu_atari`.

`export_to_rlds(replay_dir, out_dir)` writes the TFDS dataset directory
`OUT_DIR/dopamine_replay/1.0.0` and returns that path; read it with
`tfds.builder_from_directory('OUT_DIR/dopamine_replay/1.0.0')` or
`tfds.builder('dopamine_replay', data_dir='OUT_DIR')`. Checkpoint N is split
`checkpoint_NN`, one example per episode that ends in it, in the order they
were played (a checkpoint where no episode ends has no split):

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
without a terminal (`episode_end_indices`) and an unfinished one (the newest,
or the last of a checkpoint whose successor is not exported) end with
is_last=True, is_terminal=False on their last stored slot, whose action and
reward are kept.

Episodes are read as `data info` counts them (`episodes.EpisodeJoiner`): an
episode that a logger's checkpoint boundaries cut (Dopamine's logger and the
continuous writer start each checkpoint where the one before stopped) is
exported once, whole, in the split of the checkpoint where it ends, when the
checkpoints it spans are exported together; the continuous writer's closing
slot after a final terminal is no episode. The oldest episode of a wrapped
buffer whose start is in no exported checkpoint is not exported.

Reading (`step_chunks`, `SlotMapper`; rlu.py names datasets and converts
them) streams any dataset laid out like rlu_atari, episode chunk by chunk,
into Dopamine's slot layout such that the valid transitions are exactly the
episodes' own.
"""

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

from batch_rl import storage
from batch_rl.data import dopamine_replay
from batch_rl.data import episodes
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.episodes import EpisodeJoiner
from batch_rl.data.episodes import how_checkpoint_begins
from batch_rl.data.episodes import LoggedEpisode
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


def builder_dir(out_dir: str) -> str:
  """Where `export_to_rlds` writes: pass it to `tfds.builder_from_directory`."""
  return os.path.join(out_dir, DATASET_NAME, VERSION)


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


def _rlds_episode(arrays: ReplayArrays, episode: LoggedEpisode,
                  checkpoint_id: int, episode_id: int, encode_frames) -> dict:
  steps = episode.steps
  observation = steps['observation']
  action = steps['action'].astype(_action_dtype(arrays))
  reward = steps['reward'].astype(np.float32)
  discount = np.ones(len(reward), np.float32)
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


def _boundary_view(arrays: ReplayArrays) -> ReplayArrays:
  """`arrays` without its frames: what `how_checkpoint_begins` reads of the
  checkpoint before (its newest frame is kept apart)."""
  return dataclasses.replace(arrays, observation=(
      dopamine_replay.shape_only_frames(arrays.observation.shape,
                                        arrays.observation.dtype)))


EXPORT_SOURCE = 'batch_rl_export_source.json'


def _export_source(replay_dir: str, suffixes) -> dict:
  return {'replay_dir': os.path.realpath(replay_dir),
          'checkpoints': [int(s) for s in suffixes]}


def _check_output_dir(replay_dir: str, path: str) -> None:
  """Refuses an out_dir inside the replay or holding another source's
  dataset; a complete export of the same replay may be redone."""
  dopamine_replay.check_outside_replay(replay_dir, path, 'RLDS output')
  replay = os.path.realpath(replay_dir)
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


def _new_writer(path: str, features):
  os.makedirs(path, exist_ok=True)
  info = tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(
          name=DATASET_NAME, version=tfds.core.Version(VERSION),
          data_dir=path, module_name=__name__),
      description='Dopamine replay checkpoints as RLDS episodes (rlu_atari '
                  'layout), one split per checkpoint.',
      features=features,
      disable_shuffling=True)  # Episodes stay in play order, as rlu_atari.
  return tfds.core.SequentialWriter(
      info, max_examples_per_shard=_EPISODES_PER_SHARD)


def export_to_rlds(replay_dir: str, out_dir: str,
                   suffixes: Optional[Sequence[int]] = None,
                   stack_size: int = 4, progress: bool = True) -> str:
  """Writes checkpoints `suffixes` (default: all) of `replay_dir` as RLDS.

  Holds one checkpoint in memory at a time (and the steps of the episode
  running on into the next) and never writes into `replay_dir`. The dataset
  is written to a `.partial` sibling and renamed when complete, with
  `EXPORT_SOURCE` naming the replay it came from: a rerun after a failure
  starts over, an export of the same replay replaces it, and an out_dir
  holding another source's export is refused.
  `stack_size` must be the one the replay was written with: a larger one is
  reported (its padding is missing), a smaller one would export padding
  slots as steps. Returns the dataset directory `builder_dir(out_dir)`
  to pass to `tfds.builder_from_directory`.
  """
  if suffixes is None:
    suffixes = dopamine_replay.list_checkpoints(replay_dir)
  path = builder_dir(out_dir)
  _check_output_dir(replay_dir, path)
  # Written aside and renamed when complete: a failed export leaves only
  # `<path>.partial`, which the next export removes.
  tmp = path + storage.PARTIAL
  shutil.rmtree(tmp, ignore_errors=True)
  writer = encode_frames = frame_shape = frame_dtype = None
  joiner = EpisodeJoiner(stack_size)
  previous = previous_suffix = newest_frame = None
  # Position -> (suffix, episodes written), until no more episode can end
  # there. A split is made for a checkpoint's first episode: TFDS cannot
  # read an empty one.
  open_splits = {}
  written = []

  def write(found, arrays):
    for episode in found:
      suffix, count = open_splits[episode.checkpoint]
      if not count:
        writer.initialize_splits([split_name(suffix)])
        written.append(split_name(suffix))
      writer.add_examples({split_name(suffix): [_rlds_episode(
          arrays, episode, suffix, count, encode_frames)]})
      open_splits[episode.checkpoint] = suffix, count + 1
      bar.update(len(episode.steps['reward']))

  def close(positions):
    done = [open_splits.pop(p) for p in positions]
    writer.close_splits([split_name(suffix) for suffix, count in done
                         if count])

  with tqdm.tqdm(unit='step', disable=not progress) as bar:
    for position, suffix in enumerate(suffixes):
      arrays = dopamine_replay.read_arrays(replay_dir, suffix, frame_shape,
                                           frame_dtype)
      source = dopamine_replay.store_filename(replay_dir, '*', suffix)
      if writer is None:
        frame_shape = arrays.observation.shape[1:]
        frame_dtype = arrays.observation.dtype
        observation_feature, encode_frames = _observation_codec(frame_shape,
                                                                frame_dtype)
        writer = _new_writer(
            tmp, _episode_features(arrays, observation_feature))
      open_splits[position] = suffix, 0
      bar.set_description(split_name(suffix))
      bar.total = (bar.total or 0) + arrays.num_stored
      before, after_gap = episodes.checkpoint_before(previous_suffix,
                                                     previous, suffix)
      begins = how_checkpoint_begins(
          before, arrays, lambda current=arrays: episodes.same_boundary_frame(
              newest_frame, current), after_gap)
      write(joiner.add(arrays, begins, source), arrays)
      # Episodes ending in the checkpoints before are all written now.
      close([p for p in open_splits if p < position])
      previous, previous_suffix = _boundary_view(arrays), suffix
      newest_frame = episodes.newest_frame(arrays)
      del arrays  # Before the next checkpoint is read.
    write(joiner.finish(), previous)
    close(list(open_splits))
  if not written:
    raise ReplayDataError(
        f'{replay_dir}: no episode to export in checkpoints {list(suffixes)} '
        '(only the rest of episodes whose start is in no checkpoint given).')
  _publish(tmp, path, _export_source(replay_dir, suffixes))
  return path


# ---- Reading: RLDS steps, streamed into Dopamine's slot order. ----

REQUIRED_STEP_FEATURES = ('observation', 'action', 'reward', 'is_first',
                          'is_last', 'is_terminal')
# Steps per chunk read: ~14 MB of decoded 84x84 frames.
READ_CHUNK_STEPS = 2048


def check_rlds_layout(builder, source: str) -> None:
  """Raises ReplayDataError unless episodes hold `steps` like rlu_atari's."""
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


def step_chunks(builder, split: str, observations: bool = True,
                episode_features: Sequence[str] = ()) -> Iterator[dict]:
  """The split's steps in play order, as dicts of numpy arrays [T, ...].

  A chunk holds up to READ_CHUNK_STEPS consecutive steps of one episode, so
  memory is bounded whatever the episode or split length. Episodes are read
  undecoded (one tensor per step feature, not TFDS's per-step nested
  dataset, which costs ~100 us a step) and frames are decoded chunk by chunk
  in parallel with the feature's own decoder; (H, W, 1) frames are squeezed
  to Dopamine's (H, W). `observations=False` never decodes frames. Each step
  also carries the `episode_features` of its episode (e.g. checkpoint_id).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  observation = builder.info.features['steps']['observation']
  names = [n for n in REQUIRED_STEP_FEATURES
           if observations or n != 'observation']
  episodes = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={'steps': tfds.decode.SkipDecoding()})

  def chunks_of(episode):
    steps = {n: episode['steps'][n] for n in names}
    length = tf.shape(steps['action'], out_type=tf.int64)[0]

    def chunk(begin):
      end = tf.minimum(begin + READ_CHUNK_STEPS, length)
      return {**{n: value[begin:end] for n, value in steps.items()},
              **{n: tf.fill([end - begin], episode[n])
                 for n in episode_features}}

    return tf.data.Dataset.range(0, length, READ_CHUNK_STEPS).map(chunk)

  squeeze = observation.shape[-1:] == (1,) and len(observation.shape) == 3

  def decode(chunk):
    frames = observation.decode_batch_example(chunk['observation'])
    return {**chunk, 'observation': frames[..., 0] if squeeze else frames}

  chunks = episodes.flat_map(chunks_of)
  if observations:
    chunks = chunks.map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  return iter(tfds.as_numpy(chunks.prefetch(2)))


@dataclasses.dataclass(frozen=True)
class SlotLayoutMetadata:
  """What a checkpoint's slots need besides the slot arrays (see SlotMapper)."""
  add_count: int
  invalid_range: np.ndarray        # Every padding slot.
  episode_end_indices: np.ndarray  # The last slot of every episode.


class SlotMapper:
  """Streams one checkpoint's RLDS steps into Dopamine's slot layout.

  Every episode gets stack_size - 1 zero padding slots, then one slot
  (o_t, a_t, r_t, terminal_t) per step. A step with is_terminal only holds
  the terminal observation (RLDS): it gets no slot and sets terminal on the
  slot before it. Every episode's last slot is in `episode_end_indices`, so
  an episode cut without a terminal (is_last only) ends n-step windows, as
  Dopamine's `episode_end`; its last step is no transition (no next frame).

  The buffer is laid out full (add_count = capacity = slots), so nothing is
  lost at its end, and `invalid_range` lists every padding slot, so no
  transition's state ends in padding: with `transitions.valid_mask` the
  valid transitions are exactly the episodes' own (for update_horizon <=
  stack_size; Dopamine's rule that an episode cut within an n-step window
  invalidates it, terminal or not, can drop the transitions before an even
  shorter cut episode).

  `add(chunk)` takes consecutive steps (dicts of arrays, `observation`
  optional) and hands finished slots to `sink.append(observation, action,
  reward, terminal)` (observation None without frames); the newest slot is
  held back until the next step says whether it is terminal. `close()`
  flushes it and returns the SlotLayoutMetadata.
  """

  def __init__(self, stack_size: int, sink, source: str):
    self._padding = stack_size - 1
    self._sink = sink
    self._source = source
    self._pending = None  # The newest slot: dict of arrays of length 1.
    self._added = 0       # Slots emitted, the pending one included.
    self._steps = 0
    self._after_last = True  # The previous step ended an episode.
    self._padding_slots = []
    self._episode_ends = []

  def add(self, steps: dict) -> None:
    first, last, terminal = (np.asarray(steps[n], bool) for n in (
        'is_first', 'is_last', 'is_terminal'))
    previous_last = np.concatenate([[self._after_last], last[:-1]])
    misplaced = np.flatnonzero(first != previous_last)
    if len(misplaced):
      raise ReplayDataError(
          f'{self._source}: step {self._steps + misplaced[0]} (counting all '
          'steps of the checkpoint) breaks the episode structure: is_first '
          'must mark exactly the step after each is_last step.')
    if (terminal & ~last).any():
      raise ReplayDataError(
          f'{self._source}: step '
          f'{self._steps + np.flatnonzero(terminal & ~last)[0]} has '
          'is_terminal without is_last.')
    observation_only = last & terminal
    real = ~observation_only
    counts = self._padding * (first & real) + real
    ends_after = np.cumsum(counts)  # Slots emitted by steps <= t, this chunk.
    emitted = int(ends_after[-1])
    # Chunk positions relative to the new slots; -1 is the pending slot.
    real_positions = ends_after[real] - 1
    padding_positions = ((ends_after[first & real] - 1)[:, None] -
                         np.arange(self._padding, 0, -1)[None, :]).ravel()
    terminal_positions = ends_after[observation_only & ~first] - 1
    end_positions = np.concatenate([terminal_positions,
                                    ends_after[last & real] - 1])
    self._padding_slots.append(self._added + padding_positions)
    self._episode_ends.append(self._added + end_positions)

    held = 0 if self._pending is None else 1
    slots = {
        'action': np.zeros((held + emitted,) + np.shape(steps['action'])[1:],
                           self._action_dtype(steps['action'])),
        'reward': np.zeros(held + emitted, np.float32),
        'terminal': np.zeros(held + emitted, np.uint8),
    }
    if 'observation' in steps:
      frames = np.asarray(steps['observation'])
      slots['observation'] = np.zeros((held + emitted,) + frames.shape[1:],
                                      frames.dtype)
      slots['observation'][held + real_positions] = frames[real]
    slots['action'][held + real_positions] = np.asarray(steps['action'])[real]
    slots['reward'][held + real_positions] = np.asarray(steps['reward'])[real]
    if held:
      for name, value in self._pending.items():
        slots[name][:1] = value
    slots['terminal'][held + terminal_positions] = 1
    if held + emitted:
      self._emit({name: value[:-1] for name, value in slots.items()})
      self._pending = {name: value[-1:] for name, value in slots.items()}
    self._added += emitted
    self._steps += len(first)
    self._after_last = bool(last[-1])

  @staticmethod
  def _action_dtype(action) -> np.dtype:
    return np.int32 if np.asarray(action).dtype.kind in 'iub' else np.float32

  def _emit(self, slots: dict) -> None:
    if len(slots['terminal']):
      self._sink.append(slots.get('observation'), slots['action'],
                        slots['reward'], slots['terminal'])

  def close(self) -> SlotLayoutMetadata:
    if not self._after_last:
      raise ReplayDataError(f'{self._source}: the last episode has no '
                            'is_last step (the data ends mid-episode).')
    if self._pending is None:
      raise ReplayDataError(f'{self._source}: no step that is a transition '
                            '(no episode, or only terminal observations).')
    self._emit(self._pending)
    return SlotLayoutMetadata(
        add_count=self._added,
        invalid_range=np.concatenate(self._padding_slots).astype(np.int64),
        episode_end_indices=np.sort(np.concatenate(
            self._episode_ends)).astype(np.int64))
