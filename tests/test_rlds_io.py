"""RLDS export/import round-trips replay written by dopamine-rl's own buffer."""

import collections
import dataclasses
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from dopamine.replay_memory import circular_replay_buffer

from batch_rl.data import dopamine_replay
from batch_rl.data import rlds_io
from batch_rl.data.errors import ReplayDataError

STACK = 4
CAPACITY = 64
FRAME = (8, 8)
# (steps, ending): 'terminal', 'cut' (time limit, no terminal) or None.
CHECKPOINT_0 = [(12, 'terminal'), (2, 'terminal'), (5, 'cut'),
                (4, 'terminal')]
# Played after checkpoint 0: 35 + 34 adds wrap the 64-slot buffer, which
# overwrites the first 5 slots of the first episode, not its valid end.
CHECKPOINT_1 = [(7, 'terminal'), (1, 'terminal'), (9, 'cut'), (5, None)]


@dataclasses.dataclass
class Episode:
  frames: np.ndarray
  actions: np.ndarray
  rewards: np.ndarray
  ending: str
  first_add: int = -1  # Add number of its first padding slot.
  last_add: int = -1


def _random_episodes(plan, rng):
  return [Episode(rng.integers(1, 256, (steps,) + FRAME, dtype=np.uint8),
                  rng.integers(0, 6, steps, dtype=np.int32),
                  rng.normal(size=steps).astype(np.float32), ending)
          for steps, ending in plan]


def _play(buffer, episodes, cut_unfinished=False):
  for episode in episodes:
    episode.first_add = int(buffer.add_count)
    for t, (frame, action, reward) in enumerate(
        zip(episode.frames, episode.actions, episode.rewards)):
      last = t == len(episode.frames) - 1
      cut = episode.ending == 'cut' or (cut_unfinished and not episode.ending)
      buffer.add(frame, action, reward, last and episode.ending == 'terminal',
                 episode_end=last and cut)
    episode.last_add = int(buffer.add_count) - 1


def _dopamine_buffer(update_horizon, capacity=CAPACITY):
  return circular_replay_buffer.OutOfGraphReplayBuffer(
      FRAME, STACK, capacity, batch_size=8, update_horizon=update_horizon)


def _exported_episodes(played, add_count):
  """The episodes a checkpoint holds whole: all, unless the buffer wrapped."""
  if add_count <= CAPACITY:
    return played
  return [e for previous, e in zip(played, played[1:])
          if previous.last_add >= add_count - CAPACITY]


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """Two checkpoints per update horizon, and the RLDS export of one set."""
  root = tmp_path_factory.mktemp('rlds')
  rng = np.random.default_rng(0)
  plans = (_random_episodes(CHECKPOINT_0, rng),
           _random_episodes(CHECKPOINT_1, rng))
  replay_dirs = {}
  for update_horizon in (1, 3):
    buffer = _dopamine_buffer(update_horizon)
    replay_dirs[update_horizon] = str(root / f'replay_n{update_horizon}')
    os.makedirs(replay_dirs[update_horizon])
    for suffix, episodes in enumerate(plans):
      _play(buffer, episodes)
      buffer.save(replay_dirs[update_horizon], suffix)
  played = {0: plans[0], 1: plans[0] + plans[1]}
  checkpoints = {
      suffix: (episodes[-1].last_add + 1,
               _exported_episodes(episodes, episodes[-1].last_add + 1))
      for suffix, episodes in played.items()}
  path = rlds_io.export_to_rlds(replay_dirs[1], str(root / 'out'),
                                progress=False)
  return collections.namedtuple('Exported', 'path replay_dirs checkpoints')(
      path, replay_dirs, checkpoints)


def _read_episodes(path, split):
  builder = tfds.builder_from_directory(path)
  for episode in builder.as_dataset(split=split, shuffle_files=False):
    steps = next(iter(tfds.as_numpy(episode['steps'].batch(1000))))
    metadata = {k: v for k, v in episode.items() if k != 'steps'}
    yield tfds.as_numpy(metadata), steps


def test_export_writes_each_checkpoint_as_rlds_episodes(exported):
  builder = tfds.builder_from_directory(exported.path)
  assert set(builder.info.splits) == {'checkpoint_00', 'checkpoint_01'}
  assert builder.info.features['steps']['observation'].shape == FRAME + (1,)
  for suffix, (_, want_episodes) in exported.checkpoints.items():
    got_episodes = list(_read_episodes(exported.path,
                                       rlds_io.split_name(suffix)))
    assert len(got_episodes) == len(want_episodes)
    for episode_id, ((meta, steps), want) in enumerate(
        zip(got_episodes, want_episodes)):
      stored, terminal = len(want.frames), want.ending == 'terminal'
      num_steps = stored + terminal  # + the terminal observation's step.
      assert (meta['checkpoint_id'], meta['episode_id']) == (suffix, episode_id)
      np.testing.assert_array_equal(steps['is_first'],
                                    np.arange(num_steps) == 0)
      np.testing.assert_array_equal(steps['is_last'],
                                    np.arange(num_steps) == num_steps - 1)
      np.testing.assert_array_equal(
          steps['is_terminal'], (np.arange(num_steps) == num_steps - 1) &
          terminal)
      # No padding: the first step holds the episode's first real frame.
      np.testing.assert_array_equal(steps['observation'][:stored, ..., 0],
                                    want.frames)
      np.testing.assert_array_equal(steps['action'][:stored], want.actions)
      np.testing.assert_array_equal(steps['reward'][:stored], want.rewards)
      want_discount = np.ones(num_steps, np.float32)
      if terminal:
        want_discount[-2:] = 0.
      np.testing.assert_array_equal(steps['discount'], want_discount)
      np.testing.assert_allclose(meta['episode_return'], want.rewards.sum(),
                                 rtol=1e-6)
  wrapped_add_count, wrapped_episodes = exported.checkpoints[1]
  assert wrapped_add_count > CAPACITY
  assert len(wrapped_episodes) == len(CHECKPOINT_0 + CHECKPOINT_1) - 1


def _transitions(checkpoint, indices):
  batch = checkpoint.sample_transition_batch(len(indices), indices=indices)
  state, action, reward, next_state, _, _, terminal, _ = batch
  return collections.Counter(
      (s.tobytes(), int(a), float(r), n.tobytes(), int(t))
      for s, a, r, n, t in zip(state, action, reward, next_state, terminal))


@pytest.mark.parametrize('update_horizon', [1, 3])
@pytest.mark.parametrize('suffix', [0, 1])
def test_reimported_split_samples_the_source_transitions(
    exported, suffix, update_horizon):
  source = dopamine_replay.load_checkpoint(
      exported.replay_dirs[update_horizon], suffix, STACK, update_horizon)
  arrays = rlds_io.read_rlds_as_replay_arrays(
      exported.path, rlds_io.split_name(suffix), STACK,
      update_horizon=update_horizon)
  reimported = dopamine_replay.ReplayCheckpoint(arrays, STACK, update_horizon)
  add_count, episodes = exported.checkpoints[suffix]
  # Transitions whose state starts in an exported episode; of a buffer that
  # never wrapped, that is all of them.
  last_add_to_slot = add_count - 1 - (add_count - 1 - source.valid_indices) % (
      CAPACITY)
  from_exported = last_add_to_slot >= episodes[0].first_add + STACK - 1
  assert from_exported.all() == (add_count <= CAPACITY)
  want = _transitions(source, source.valid_indices[from_exported])
  assert sum(want.values()) >= 10  # Not vacuous.
  assert _transitions(reimported, reimported.valid_indices) == want


def _assert_same_buffer(got, want):
  written = min(want.add_count, want.capacity)
  for name in dopamine_replay.STORE_ELEMENTS:
    np.testing.assert_array_equal(getattr(got, name)[:written],
                                  getattr(want, name)[:written], err_msg=name)
    assert getattr(got, name).dtype == getattr(want, name).dtype, name
  assert got.add_count == want.add_count
  np.testing.assert_array_equal(got.invalid_range, want.invalid_range)
  np.testing.assert_array_equal(got.episode_end_indices,
                                want.episode_end_indices)


def test_reimport_with_source_capacity_rebuilds_dopamine_layout(exported):
  source = dopamine_replay.read_arrays(exported.replay_dirs[3], 0)
  # By name, as `tfds.builder(name, data_dir=...)` finds it.
  out_dir = os.path.dirname(os.path.dirname(exported.path))
  arrays = rlds_io.read_rlds_as_replay_arrays(
      rlds_io.DATASET_NAME, 'checkpoint_00', STACK, data_dir=out_dir,
      update_horizon=3, capacity=CAPACITY)
  _assert_same_buffer(arrays, source)


def test_reimport_into_small_capacity_wraps_as_dopamine(exported, tmp_path):
  # Dopamine fed the exported episodes (the unfinished one ending in a cut,
  # as the RLDS episode ends there) into 40 slots.
  buffer = _dopamine_buffer(3, capacity=40)
  _play(buffer, list(map(dataclasses.replace, exported.checkpoints[1][1])),
        cut_unfinished=True)
  assert buffer.add_count > 40
  buffer.save(str(tmp_path), 0)
  arrays = rlds_io.read_rlds_as_replay_arrays(
      exported.path, 'checkpoint_01', STACK, update_horizon=3, capacity=40)
  _assert_same_buffer(arrays, dopamine_replay.read_arrays(str(tmp_path), 0))


def test_unknown_split_is_named(exported):
  with pytest.raises(ValueError,
                     match=r"no split 'checkpoint_07'.*checkpoint_00"):
    rlds_io.read_rlds_as_replay_arrays(exported.path, 'checkpoint_07')


def _write_rlds(path, episodes, step_features):
  """A one-split RLDS dataset written with TFDS's own writer."""
  os.makedirs(path)
  info = tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(
          name='hand_made', version=tfds.core.Version('1.0.0'),
          data_dir=path, module_name=__name__),
      features=tfds.features.FeaturesDict(
          {'steps': tfds.features.Dataset(step_features)}))
  writer = tfds.core.SequentialWriter(info, max_examples_per_shard=10)
  writer.initialize_splits(['checkpoint_00'])
  writer.add_examples({'checkpoint_00': [{'steps': e} for e in episodes]})
  writer.close_all()


def _hand_made_episode(first_frame, num_steps, terminal):
  last = np.arange(num_steps) == num_steps - 1
  return {'observation': first_frame + np.arange(num_steps, dtype=np.uint8)[
              :, None, None] * np.ones((1,) + FRAME, np.uint8),
          'action': np.arange(num_steps) + 1,
          'reward': np.arange(num_steps, dtype=np.float32) + 0.5,
          'is_first': np.arange(num_steps) == 0, 'is_last': last,
          'is_terminal': last & terminal}


def test_import_rebuilds_hand_computed_dopamine_layout(tmp_path):
  # (H, W) frames without a channel axis; stack_size 2 pads 1 slot.
  _write_rlds(str(tmp_path / 'ds'), [
      _hand_made_episode(10, 3, terminal=True),  # Slots 1, 2; then terminal.
      _hand_made_episode(50, 1, terminal=True),  # Only a terminal obs: no slot.
      _hand_made_episode(20, 2, terminal=False),  # Slots 4, 5; ends in a cut.
  ], {'observation': tfds.features.Tensor(shape=FRAME, dtype=np.uint8),
      'action': np.int64, 'reward': np.float32, 'is_first': np.bool_,
      'is_last': np.bool_, 'is_terminal': np.bool_})
  arrays = rlds_io.read_rlds_as_replay_arrays(str(tmp_path / 'ds'),
                                              'checkpoint_00', stack_size=2)
  np.testing.assert_array_equal(arrays.observation[:, 0, 0],
                                [0, 10, 11, 0, 20, 21, 0])
  np.testing.assert_array_equal(arrays.action, [0, 1, 2, 0, 1, 2, 0])
  np.testing.assert_array_equal(arrays.reward, [0, .5, 1.5, 0, .5, 1.5, 0])
  np.testing.assert_array_equal(arrays.terminal, [0, 0, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(arrays.episode_end_indices, [2, 5])
  assert arrays.add_count == 6
  np.testing.assert_array_equal(arrays.invalid_range, [5, 6, 0])


def test_missing_step_feature_is_named(tmp_path):
  episode = _hand_made_episode(10, 2, terminal=False)
  del episode['is_terminal']
  _write_rlds(str(tmp_path / 'ds'), [episode], {
      'observation': tfds.features.Tensor(shape=FRAME, dtype=np.uint8),
      'action': np.int64, 'reward': np.float32, 'is_first': np.bool_,
      'is_last': np.bool_})
  with pytest.raises(ValueError, match=r"\['is_terminal'\]"):
    rlds_io.read_rlds_as_replay_arrays(str(tmp_path / 'ds'), 'checkpoint_00')


def test_export_refuses_to_write_into_the_replay_dir(exported):
  replay_dir = exported.replay_dirs[3]
  before = sorted(os.listdir(replay_dir))
  with pytest.raises(ValueError, match='inside the replay directory'):
    rlds_io.export_to_rlds(replay_dir, replay_dir, progress=False)
  assert sorted(os.listdir(replay_dir)) == before


def test_export_with_a_larger_stack_size_names_the_padding(exported, tmp_path):
  with pytest.raises(ValueError, match='stack_size=6'):
    rlds_io.export_to_rlds(exported.replay_dirs[1], str(tmp_path),
                           stack_size=6, progress=False)


def test_continuous_replay_round_trips_through_rlds(tmp_path):
  """Float observations and actions, checkpoints filled exactly to capacity
  (as the MuJoCo logger writes them): every transition survives export but
  the newest, which the re-imported buffer leaves invalid as Dopamine leaves
  the slot before its write cursor (its `invalid_range`)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from batch_rl.data import replay_dataset  # pylint: disable=g-import-not-at-top
  from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  terminal = np.zeros(50, np.uint8)
  terminal[[9, 29, 49]] = 1
  arrays = dopamine_replay.ReplayArrays(
      observation=rng.normal(size=(50, 3)).astype(np.float32),
      action=rng.uniform(-1, 1, (50, 2)).astype(np.float32),
      reward=rng.normal(size=50).astype(np.float32), terminal=terminal,
      add_count=50, invalid_range=np.zeros(0, np.int64))
  dopamine_replay.write_checkpoint(str(tmp_path / 'replay'), 0, arrays)
  path = rlds_io.export_to_rlds(str(tmp_path / 'replay'),
                                str(tmp_path / 'rlds'), stack_size=1,
                                progress=False)

  def rows(replay_dir, skip=()):
    replay = replay_dataset.open_replay(replay_dir, 1, 1, 0.99)
    store, indices = replay.store, replay.training_indices
    indices = np.setdiff1d(indices, skip)
    windows, local = store.window_reader(1, 1)(tf.constant(indices, tf.int64))
    batch = transitions.transitions_from_windows(windows, local, 1, 1, 0.99)
    # Dopamine leaves next_state undefined after a terminal: not compared.
    return sorted(
        tuple(batch[k][i].numpy().tobytes() for k in (
            'state', 'action', 'reward', 'terminal')) +
        ((batch['next_state'][i].numpy().tobytes()
          if not batch['terminal'][i] else b''),)
        for i in range(len(indices)))

  assert rows(str(tmp_path / 'replay'), skip=[49]) == rows(path)
