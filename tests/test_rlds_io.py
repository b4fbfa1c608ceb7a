"""RLDS export/import round-trips replay written by dopamine-rl's own buffer.

The import (rlu.py, rlds_io.SlotMapper) gives exactly the exported
episodes' transitions, checked against conftest.reference_transitions.
"""

import collections
import dataclasses
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from dopamine.replay_memory import circular_replay_buffer

from batch_rl.data import __main__ as data_cli
from batch_rl.data import dopamine_replay
from batch_rl.data import rlds_io
from batch_rl.data import rlu
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection
from conftest import reference_transitions
from conftest import sampled_transitions

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
  last_add: int = -1  # Add number of its last slot.


def _random_episodes(plan, rng):
  return [Episode(rng.integers(1, 256, (steps,) + FRAME, dtype=np.uint8),
                  rng.integers(0, 6, steps, dtype=np.int32),
                  rng.normal(size=steps).astype(np.float32), ending)
          for steps, ending in plan]


def _play(buffer, episodes):
  for episode in episodes:
    for t, (frame, action, reward) in enumerate(
        zip(episode.frames, episode.actions, episode.rewards)):
      last = t == len(episode.frames) - 1
      buffer.add(frame, action, reward, last and episode.ending == 'terminal',
                 episode_end=last and episode.ending == 'cut')
    episode.last_add = int(buffer.add_count) - 1


def _dopamine_buffer(update_horizon):
  return circular_replay_buffer.OutOfGraphReplayBuffer(
      FRAME, STACK, CAPACITY, batch_size=8, update_horizon=update_horizon)


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


def _stored(episode):
  """conftest.reference_transitions' form of a played episode."""
  return (episode.frames, episode.actions, episode.rewards,
          episode.ending == 'terminal')


@pytest.mark.parametrize('update_horizon', [1, 3])
@pytest.mark.parametrize('suffix', [0, 1])
def test_reimported_split_samples_the_exported_episodes_transitions(
    exported, suffix, update_horizon):
  _, episodes = exported.checkpoints[suffix]
  want = reference_transitions(map(_stored, episodes), STACK, update_horizon,
                               0.99)
  assert len(want) >= 10  # Not vacuous.
  assert sampled_transitions(
      exported.path, STACK, update_horizon, 0.99,
      DataSelection(checkpoints=[suffix])) == want


def test_reimport_differs_from_dopamine_only_where_dopamine_is_wrong(
    exported):
  """Dopamine samples states ending in the padding after a cut episode
  (its stack check looks for terminals only); the re-import does not."""
  source = dopamine_replay.load_checkpoint(exported.replay_dirs[1], 0, STACK)
  arrays = source.arrays
  cut = np.zeros(CAPACITY, bool)
  cut[arrays.episode_end_indices] = True
  cut &= ~arrays.terminal.astype(bool)
  after_cut = np.zeros(CAPACITY, bool)
  for back in range(1, STACK):
    after_cut |= np.roll(cut, back)
  indices = source.valid_indices
  assert after_cut[indices].any()
  state, action, reward, next_state, _, _, terminal, _ = (
      source.sample_transition_batch(len(indices), indices=indices))
  dopamine = sorted(
      (s.tobytes(), a.tobytes(), round(float(r), 5),
       b'' if t else n.tobytes(), int(t)) for keep, s, a, r, n, t in zip(
           ~after_cut[indices], state, action, reward, next_state, terminal)
      if keep)
  # Checkpoint 0 ends in a terminal: Dopamine leaves its last transition
  # at the write cursor, the re-import keeps it.
  reimported = sampled_transitions(exported.path, STACK, 1, 0.99,
                                   DataSelection(checkpoints=[0]))
  assert len(reimported) == len(dopamine) + 1
  assert set(dopamine) < set(reimported)


def _write_rlds(path, episodes, step_features, nested=True):
  """A one-split RLDS dataset written with TFDS's own writer (with
  `nested=False`, a TFDS dataset of the steps as examples: not RLDS)."""
  os.makedirs(path)
  info = tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(
          name='hand_made', version=tfds.core.Version('1.0.0'),
          data_dir=path, module_name=__name__),
      features=tfds.features.FeaturesDict(
          {'steps': tfds.features.Dataset(step_features)} if nested else
          step_features))
  writer = tfds.core.SequentialWriter(info, max_examples_per_shard=10)
  writer.initialize_splits(['checkpoint_00'])
  writer.add_examples({'checkpoint_00': [{'steps': e} for e in episodes]
                                        if nested else episodes})
  writer.close_all()


def _hand_made_episode(first_frame, num_steps, terminal):
  last = np.arange(num_steps) == num_steps - 1
  return {'observation': first_frame + np.arange(num_steps, dtype=np.uint8)[
              :, None, None] * np.ones((1,) + FRAME, np.uint8),
          'action': np.arange(num_steps) + 1,
          'reward': np.arange(num_steps, dtype=np.float32) + 0.5,
          'is_first': np.arange(num_steps) == 0, 'is_last': last,
          'is_terminal': last & terminal}


def test_import_builds_hand_computed_layout(tmp_path):
  # (H, W) frames without a channel axis; stack_size 2 pads 1 slot.
  _write_rlds(str(tmp_path / 'ds'), [
      _hand_made_episode(10, 3, terminal=True),  # Slots 1, 2; then terminal.
      _hand_made_episode(50, 1, terminal=True),  # Only a terminal obs: no slot.
      _hand_made_episode(20, 2, terminal=False),  # Slots 4, 5; ends in a cut.
  ], {'observation': tfds.features.Tensor(shape=FRAME, dtype=np.uint8),
      'action': np.int64, 'reward': np.float32, 'is_first': np.bool_,
      'is_last': np.bool_, 'is_terminal': np.bool_})
  store = rlu.open_store(str(tmp_path / 'ds'), DataSelection(), stack_size=2)
  arrays = store.checkpoints[0]
  frames = arrays.observation[np.arange(arrays.capacity)]
  np.testing.assert_array_equal(frames[:, 0, 0],
                                [0, 10, 11, 0, 20, 21])
  np.testing.assert_array_equal(arrays.action, [0, 1, 2, 0, 1, 2])
  assert arrays.action.dtype == np.int32
  np.testing.assert_array_equal(arrays.reward, [0, .5, 1.5, 0, .5, 1.5])
  np.testing.assert_array_equal(arrays.terminal, [0, 0, 1, 0, 0, 0])
  np.testing.assert_array_equal(arrays.episode_end_indices, [2, 5])
  # Full: nothing at the end waits for a write cursor; padding is invalid.
  assert arrays.add_count == arrays.capacity == 6
  np.testing.assert_array_equal(arrays.invalid_range, [0, 3])


def _without_is_terminal(episodes, features):
  for episode in episodes:
    del episode['is_terminal']
  del features['is_terminal']


def _terminal_only(episodes, unused_features):
  episodes[:] = [_hand_made_episode(10, 1, terminal=True)]


@pytest.mark.parametrize('break_steps, message', [
    (_without_is_terminal,
     "steps lack the required feature(s) ['is_terminal']; steps laid out like "
     "rlu_atari have ['observation', 'action', 'reward', 'is_first', "
     "'is_last', 'is_terminal']."),
    (lambda episodes, _: episodes[1]['is_first'].fill(False),
     'step 3 (counting all steps of the checkpoint) breaks the episode '
     'structure: is_first must mark exactly the step after each is_last '
     'step.'),
    (lambda episodes, _: episodes[0]['is_terminal'].__setitem__(1, True),
     'step 1 has is_terminal without is_last.'),
    (lambda episodes, _: episodes[1]['is_last'].fill(False),
     'the last episode has no is_last step (the data ends mid-episode).'),
    (_terminal_only,
     'no step that is a transition (no episode, or only terminal '
     'observations).'),
], ids=['no_is_terminal', 'is_first_misplaced', 'terminal_not_last',
        'ends_mid_episode', 'terminal_observation_only'])
def test_malformed_steps_are_named(tmp_path, break_steps, message):
  episodes = [_hand_made_episode(10, 3, terminal=False),
              _hand_made_episode(20, 2, terminal=False)]
  features = {'observation': tfds.features.Tensor(shape=FRAME,
                                                  dtype=np.uint8),
              'action': np.int64, 'reward': np.float32, 'is_first': np.bool_,
              'is_last': np.bool_, 'is_terminal': np.bool_}
  break_steps(episodes, features)
  _write_rlds(str(tmp_path / 'ds'), episodes, features)
  with pytest.raises(ReplayDataError) as error:
    rlu.open_store(str(tmp_path / 'ds'), DataSelection())
  assert str(error.value).endswith(message)
  assert str(tmp_path / 'ds') in str(error.value)
  assert not any('ckpt_0' in dirs for _, dirs, _ in os.walk(
      os.environ['BATCH_RL_CACHE']))  # Nothing that looks converted.


def test_a_tfds_dataset_without_episodes_is_one_line(tmp_path, capsys):
  path = str(tmp_path / 'ds')
  _write_rlds(path, [{'observation': np.zeros(FRAME, np.uint8), 'action': 1}],
              {'observation': tfds.features.Tensor(shape=FRAME,
                                                   dtype=np.uint8),
               'action': np.int64}, nested=False)
  assert data_cli.main(['info', path]) == 2
  assert capsys.readouterr().err == (
      f'error: TFDS dataset {path}: not an RLDS dataset (no nested "steps" '
      "dataset feature; it has ['action', 'observation']).\n")


def test_export_refuses_to_write_into_the_replay_dir(exported):
  replay_dir = exported.replay_dirs[3]
  before = sorted(os.listdir(replay_dir))
  with pytest.raises(ValueError, match='outside the replay directory'):
    rlds_io.export_to_rlds(replay_dir, replay_dir, progress=False)
  assert sorted(os.listdir(replay_dir)) == before


def test_export_with_a_larger_stack_size_names_the_padding(exported, tmp_path):
  with pytest.raises(ValueError, match='stack_size=6'):
    rlds_io.export_to_rlds(exported.replay_dirs[1], str(tmp_path),
                           stack_size=6, progress=False)


def test_continuous_replay_round_trips_through_rlds(tmp_path):
  """Float observations and actions, a checkpoint filled exactly to
  capacity (as the MuJoCo logger writes them): every transition survives
  export and import, the newest (terminal) one included."""
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
  source = sampled_transitions(str(tmp_path / 'replay'), 1, 1, 0.99)
  assert len(source) == 50
  assert sampled_transitions(path, 1, 1, 0.99) == source
