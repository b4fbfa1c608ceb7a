"""Continuous replay data: writer layout and state, D4RL/Minari import, envs.

The logging run that writes it: tests/test_continuous_logging.py.
"""

import collections
import re

import gymnasium as gym
import h5py
import numpy as np
import pytest
from conftest import exported_episodes

from batch_rl.continuous import d4rl_import
from batch_rl.continuous import environments
from batch_rl.continuous.replay_writer import EpisodeReplayWriter
from batch_rl.continuous.replay_writer import LoggedEpisodeReplay
from batch_rl.data import dopamine_replay
from batch_rl.data import pipeline
from batch_rl.data import rlds_io
from batch_rl.data import summary
from batch_rl.data import transitions
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore

OBS_DIM, ACTION_DIM = 3, 2


def make_episodes(lengths_and_terminal, seed=0):
  """Episodes as dicts: observations [T + 1], actions, rewards, terminal."""
  rng = np.random.default_rng(seed)
  return [{
      'observations': rng.normal(size=(t + 1, OBS_DIM)).astype(np.float32),
      'actions': rng.uniform(-1, 1, (t, ACTION_DIM)).astype(np.float32),
      'rewards': rng.normal(size=t).astype(np.float32),
      'terminal': terminal,
  } for t, terminal in lengths_and_terminal]


EPISODES = make_episodes([(5, True), (4, False), (1, True), (6, False),
                          (3, False), (7, True), (2, False)])


def transition_key(state, action, reward, next_state, terminal):
  """Hashable transition; a terminal one's next state does not matter."""
  return (state.tobytes(), action.tobytes(), float(reward),
          None if terminal else next_state.tobytes(), bool(terminal))


def expected_transitions(episodes, drop_last_of_truncated=False):
  keys = []
  for e in episodes:
    length = len(e['rewards'])
    if drop_last_of_truncated and not e['terminal']:
      length -= 1
    for t in range(length):
      terminal = e['terminal'] and t == length - 1
      keys.append(transition_key(e['observations'][t], e['actions'][t],
                                 e['rewards'][t], e['observations'][t + 1],
                                 terminal))
  return collections.Counter(keys)


def sampleable_transitions(checkpoints):
  """Every transition Dopamine's sampler can return, counted."""
  keys = []
  for arrays in checkpoints:
    indices = np.flatnonzero(transitions.valid_mask(arrays, 1, 1))
    b = transitions.gather_from_arrays(arrays, indices, 1, 1, 0.99)
    for i in range(len(indices)):
      keys.append(transition_key(b['state'][i, :, 0], b['action'][i],
                                 b['reward'][i], b['next_state'][i, :, 0],
                                 b['terminal'][i]))
  return collections.Counter(keys)


def write_episodes(episodes, capacity, last_running=False):
  """Checkpoints of `episodes`; `last_running`: logging stops in the last."""
  checkpoints = []
  writer = EpisodeReplayWriter(capacity, OBS_DIM, ACTION_DIM,
                               lambda _, arrays: checkpoints.append(arrays))
  for e in episodes:
    length = len(e['rewards'])
    for t in range(length):
      writer.add_transition(e['observations'][t], e['actions'][t],
                            e['rewards'][t], e['terminal'] and t == length - 1)
    if not e['terminal'] and not (last_running and e is episodes[-1]):
      writer.truncate_episode(e['observations'][-1])
  writer.close(episodes[-1]['observations'][-1])
  return writer, checkpoints


@pytest.mark.parametrize('capacity', [2, 3, 7, 1000])
@pytest.mark.parametrize('last_running', [False, True])
def test_writer_makes_every_transition_sampleable_exactly_once(capacity,
                                                               last_running):
  # Capacities 2 and 3 put the running episode's final observation on a
  # checkpoint's last slot.
  writer, checkpoints = write_episodes(EPISODES, capacity, last_running)
  assert sampleable_transitions(checkpoints) == expected_transitions(EPISODES)
  assert writer.num_transitions == sum(len(e['rewards']) for e in EPISODES)
  # Full checkpoints are complete buffers; only the last is partly filled.
  assert all(a.add_count == capacity for a in checkpoints[:-1])
  assert all(a.capacity == capacity for a in checkpoints)


def test_writer_checkpoints_round_trip_through_dopamine_files(tmp_path):
  _, checkpoints = write_episodes(EPISODES, 7)
  for suffix, arrays in enumerate(checkpoints):
    dopamine_replay.write_checkpoint(str(tmp_path), suffix, arrays)
  assert dopamine_replay.list_checkpoints(str(tmp_path)) == list(
      range(len(checkpoints)))
  read = [dopamine_replay.read_arrays(str(tmp_path), s)
          for s in range(len(checkpoints))]
  assert sampleable_transitions(read) == expected_transitions(EPISODES)
  assert read[0].observation.dtype == np.float32
  assert read[0].action.shape == (7, ACTION_DIM)


def test_pipeline_batches_of_written_replay_are_logged_transitions():
  _, checkpoints = write_episodes(EPISODES, 7)
  store = ReplayStore.from_arrays(checkpoints)
  expected = expected_transitions(EPISODES)
  assert len(store.valid_indices(1, 1)) == sum(expected.values())
  batch = next(iter(pipeline.transition_dataset(
      store, batch_size=64, stack_size=1, update_horizon=1, seed=3).unbatch()))
  assert batch['state'].shape == (64, OBS_DIM, 1)
  assert batch['action'].shape == (64, ACTION_DIM)
  assert batch['terminal'].dtype == np.uint8
  for i in range(64):
    assert transition_key(
        batch['state'][i, :, 0].numpy(), batch['action'][i].numpy(),
        batch['reward'][i].numpy(), batch['next_state'][i, :, 0].numpy(),
        batch['terminal'][i].numpy()) in expected


def test_online_samples_are_complete_transitions():
  writer = EpisodeReplayWriter(5, OBS_DIM, ACTION_DIM, lambda *_: None)
  e = EPISODES[3]  # 6 steps, truncated: wraps the 5-slot buffer mid-episode.
  for t in range(6):
    writer.add_transition(e['observations'][t], e['actions'][t],
                          e['rewards'][t], False)
  batch = writer.sample_batch(200, np.random.default_rng(0))
  expected = expected_transitions([e])
  # The newest step has no next state yet, so it is never sampled.
  newest = e['observations'][5].tobytes()
  for i in range(200):
    key = transition_key(batch['state'][i, :, 0], batch['action'][i],
                         batch['reward'][i], batch['next_state'][i, :, 0],
                         batch['terminal'][i])
    assert key in expected and key[0] != newest


@pytest.mark.parametrize('capacity', [2, 3, 7, 1000])
@pytest.mark.parametrize('last', ['terminal', 'time_limit', 'running'])
def test_info_counts_each_written_episode_once(tmp_path, capacity, last):
  episodes = EPISODES + make_episodes([(4, last == 'terminal')], seed=1)
  _, checkpoints = write_episodes(episodes, capacity,
                                  last_running=last == 'running')
  for suffix, arrays in enumerate(checkpoints):
    dopamine_replay.write_checkpoint(str(tmp_path), suffix, arrays)
  info = summary.summarize(str(tmp_path), stack_size=1)
  finished = [float(np.sum(e['rewards'], dtype=np.float64))
              for e in episodes[:-1 if last == 'running' else None]]
  assert info['complete_episodes'] == len(finished)
  assert info['unfinished_episodes_at_end'] == (last == 'running')
  for stat, value in (('mean', np.mean(finished)), ('min', min(finished)),
                      ('max', max(finished))):
    assert info['episode_return'][stat] == pytest.approx(value, rel=1e-5)
@pytest.mark.parametrize('capacity', [3, 1000])
@pytest.mark.parametrize('last', ['terminal', 'running'])
def test_info_and_export_see_the_written_episodes(tmp_path, capacity, last):
  """Data ending in a terminal gets a closing slot (no episode); data ending
  mid-episode an unfinished one. Export writes each episode once, whole
  (joined across checkpoints), as played."""
  episodes = EPISODES + make_episodes([(4, last == 'terminal')], seed=1)
  _, checkpoints = write_episodes(episodes, capacity,
                                  last_running=last == 'running')
  replay_dir = str(tmp_path / 'replay')
  for suffix, arrays in enumerate(checkpoints):
    dopamine_replay.write_checkpoint(replay_dir, suffix, arrays)
  info = summary.summarize(replay_dir, stack_size=1)
  assert info['complete_episodes'] == len(episodes) - (last == 'running')
  assert info['unfinished_episodes_at_end'] == (last == 'running')

  path = rlds_io.export_to_rlds(replay_dir, str(tmp_path / 'rlds'),
                                stack_size=1, progress=False)
  exported = list(exported_episodes(path))
  assert len(exported) == len(episodes)
  for e, (meta, steps) in zip(episodes, exported):
    # After the last step: the final observation, or a zero terminal one.
    observations = (np.concatenate([e['observations'][:-1],
                                    np.zeros((1, OBS_DIM))])
                    if e['terminal'] else e['observations'])
    np.testing.assert_array_equal(steps['observation'], observations)
    np.testing.assert_array_equal(steps['action'], np.concatenate(
        [e['actions'], np.zeros((1, ACTION_DIM))]))
    np.testing.assert_array_equal(steps['reward'],
                                  np.append(e['rewards'], 0.))
    assert steps['is_last'][-1] and not steps['is_last'][:-1].any()
    assert steps['is_terminal'][-1] == e['terminal']
    assert meta['episode_return'] == pytest.approx(
        np.sum(e['rewards'], dtype=np.float64), rel=1e-5)


@pytest.mark.parametrize('split', [1, 9, 17])
def test_a_restored_writer_continues_as_an_uninterrupted_one(split):
  """A writer stopped after `split` transitions (mid-episode too) and
  restored from `state()` into a fresh one writes the same checkpoints."""
  steps = [(e['observations'][t], e['actions'][t], e['rewards'][t],
            e['terminal'] and t == len(e['rewards']) - 1,
            None if e['terminal'] or t < len(e['rewards']) - 1
            else e['observations'][-1])
           for e in EPISODES for t in range(len(e['rewards']))]

  def write(writer, part):
    for observation, action, reward, terminal, final in part:
      writer.add_transition(observation, action, reward, terminal)
      if final is not None:
        writer.truncate_episode(final)

  expected, resumed = [], []
  uninterrupted = EpisodeReplayWriter(7, OBS_DIM, ACTION_DIM,
                                      lambda _, a: expected.append(a))
  write(uninterrupted, steps)
  uninterrupted.close()
  first = EpisodeReplayWriter(7, OBS_DIM, ACTION_DIM,
                              lambda _, a: resumed.append(a))
  write(first, steps[:split])
  second = EpisodeReplayWriter(7, OBS_DIM, ACTION_DIM,
                               lambda _, a: resumed.append(a))
  second.restore(first.state())
  write(second, steps[split:])
  second.close()
  assert len(resumed) == len(expected)
  for got, want in zip(resumed, expected):
    for name in ('observation', 'action', 'reward', 'terminal',
                 'episode_end_indices'):
      np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.add_count == want.add_count
  with pytest.raises(ValueError, match=r'observation is float32\[7, 3\], '
                     r'this one.s float32\[8, 3\]'):
    EpisodeReplayWriter(8, OBS_DIM, ACTION_DIM, print).restore(first.state())


def test_a_damaged_saved_replay_is_named(tmp_path):
  replay = LoggedEpisodeReplay(str(tmp_path / 'logs'), OBS_DIM, ACTION_DIM,
                               seed=0, replay_capacity=8)
  replay.add(np.zeros(OBS_DIM), np.zeros(ACTION_DIM), 0., False)
  replay.save(str(tmp_path), 0)
  path = tmp_path / 'episode_replay-0.npz'
  with np.load(path) as saved:
    arrays = dict(saved)
  with pytest.raises(OSError, match=re.escape(
      f'{tmp_path}/episode_replay-1.npz: unreadable ([Errno 2]')):
    replay.load(str(tmp_path), 1)  # Never saved.
  path.write_bytes(path.read_bytes()[:100])  # Cut short.
  with pytest.raises(OSError, match=re.escape(f'{path}: unreadable (')):
    replay.load(str(tmp_path), 0)
  del arrays['reward']
  np.savez(path, **arrays)
  with pytest.raises(OSError, match=re.escape(f"{path}: lacks 'reward'")):
    replay.load(str(tmp_path), 0)
  with pytest.raises(ValueError, match=re.escape(
      "a cut episode's final observation is needed")):
    replay.truncate_episode(None)


def test_writer_capacity_of_one_slot_is_refused():
  with pytest.raises(ValueError, match=re.escape(
      'replay capacity must be at least 2, got 1.')):
    EpisodeReplayWriter(1, OBS_DIM, ACTION_DIM, print)


def test_writer_close_refuses_a_running_episode():
  writer = EpisodeReplayWriter(5, OBS_DIM, ACTION_DIM, lambda *_: None)
  writer.add_transition(np.zeros(OBS_DIM), np.zeros(ACTION_DIM), 0., False)
  with pytest.raises(ValueError, match=r'close\(final_observation\)'):
    writer.close()


# D4RL and Minari import.


def write_d4rl(path, episodes, next_observations=True, flag_timeouts=True):
  steps = lambda key: np.concatenate([e[key] for e in episodes])
  ends = [np.arange(len(e['rewards'])) == len(e['rewards']) - 1
          for e in episodes]
  with h5py.File(path, 'w') as f:
    f['observations'] = np.concatenate(
        [e['observations'][:-1] for e in episodes])
    f['actions'] = steps('actions')
    f['rewards'] = steps('rewards')
    f['terminals'] = np.concatenate(
        [end & e['terminal'] for end, e in zip(ends, episodes)])
    f['timeouts'] = np.concatenate(
        [end & (not e['terminal']) & flag_timeouts
         for end, e in zip(ends, episodes)])
    if next_observations:
      f['next_observations'] = np.concatenate(
          [e['observations'][1:] for e in episodes])


def write_minari(path, episodes):
  with h5py.File(path, 'w') as f:
    for i, e in enumerate(episodes):
      g = f.create_group(f'episode_{i}')
      g['observations'] = e['observations']
      g['actions'] = e['actions']
      g['rewards'] = e['rewards']
      last = np.arange(len(e['rewards'])) == len(e['rewards']) - 1
      g['terminations'] = last & e['terminal']
      g['truncations'] = last & (not e['terminal'])


@pytest.mark.parametrize('flag_timeouts', [True, False])
def test_d4rl_import_with_next_observations_keeps_every_step(
    tmp_path, flag_timeouts):
  # Unflagged cuts are found where next_observations breaks continuity.
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, EPISODES, flag_timeouts=flag_timeouts)
  checkpoints = d4rl_import.import_hdf5(path, capacity=8)
  assert sampleable_transitions(checkpoints) == expected_transitions(EPISODES)


def test_d4rl_import_without_next_observations_drops_cut_last_steps(tmp_path):
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, EPISODES, next_observations=False)
  checkpoints = d4rl_import.import_hdf5(path, capacity=1000)
  assert sampleable_transitions(checkpoints) == expected_transitions(
      EPISODES, drop_last_of_truncated=True)


@pytest.mark.parametrize('next_observations', [True, False])
@pytest.mark.parametrize('last_timeout', [True, False])
def test_d4rl_data_that_stops_mid_episode_ends_unfinished(
    tmp_path, next_observations, last_timeout):
  """The end of the data is no time limit: without a timeout (or terminal)
  there, the last episode is unfinished, as with a logging run's."""
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, EPISODES, next_observations)
  with h5py.File(path, 'r+') as f:
    f['timeouts'][-1] = last_timeout
  d4rl_import.import_to_replay_dir(path, str(tmp_path / 'replay'), capacity=6)
  info = summary.summarize(str(tmp_path / 'replay'), stack_size=1)
  # Without next_observations a cut episode's last step only ends it.
  finished = [np.sum(e['rewards'][:None if e['terminal'] or next_observations
                                  else -1], dtype=np.float64)
              for e in EPISODES[:None if last_timeout else -1]]
  assert not EPISODES[-1]['terminal']
  assert info['complete_episodes'] == len(finished)
  assert info['unfinished_episodes_at_end'] == (not last_timeout)
  assert info['episode_return']['mean'] == pytest.approx(np.mean(finished),
                                                         rel=1e-5)


def test_minari_import_keeps_every_step(tmp_path):
  path = str(tmp_path / 'minari.hdf5')
  write_minari(path, EPISODES)
  checkpoints = d4rl_import.import_hdf5(path, capacity=6)
  assert sampleable_transitions(checkpoints) == expected_transitions(EPISODES)


def test_import_to_replay_dir_writes_readable_checkpoints(tmp_path):
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, EPISODES)
  replay_dir = str(tmp_path / 'replay')
  suffixes = d4rl_import.import_to_replay_dir(path, replay_dir, capacity=10)
  assert dopamine_replay.list_checkpoints(replay_dir) == suffixes
  read = [dopamine_replay.read_arrays(replay_dir, s) for s in suffixes]
  assert sampleable_transitions(read) == expected_transitions(EPISODES)


def test_import_rescales_actions_to_unit_box(tmp_path):
  episodes = make_episodes([(4, True)])
  scaled = [dict(episodes[0], actions=episodes[0]['actions'] * 2 + 1)]
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, scaled)
  with pytest.raises(ReplayDataError, match=r'data\.hdf5: actions range.*'
                     'action_bounds'):
    d4rl_import.import_hdf5(path)
  checkpoints = d4rl_import.import_hdf5(path, capacity=10,
                                        action_bounds=([-1, -1], [3, 3]))
  np.testing.assert_allclose(checkpoints[0].action[:4],
                             episodes[0]['actions'], atol=1e-6)


def test_import_errors_name_file_and_key(tmp_path):
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, EPISODES)
  with h5py.File(path, 'a') as f:
    del f['timeouts']
  with pytest.raises(ReplayDataError, match=r'data\.hdf5: missing key '
                     '/timeouts'):
    d4rl_import.import_hdf5(path)

  write_d4rl(path, EPISODES)
  with h5py.File(path, 'a') as f:
    rewards = f['rewards'][:-1]
    del f['rewards']
    f['rewards'] = rewards
  n = sum(len(e['rewards']) for e in EPISODES)
  with pytest.raises(ReplayDataError, match=rf'data\.hdf5: rewards has '
                     rf'{n - 1} rows, expected {n}'):
    d4rl_import.import_hdf5(path)

  minari = str(tmp_path / 'minari.hdf5')
  write_minari(minari, EPISODES[:2])
  with h5py.File(minari, 'a') as f:
    del f['episode_1/truncations']
  with pytest.raises(ReplayDataError, match=r'minari\.hdf5: missing key '
                     '/episode_1/truncations'):
    d4rl_import.import_hdf5(minari)

  garbage = tmp_path / 'garbage.hdf5'
  garbage.write_bytes(b'not hdf5')
  with pytest.raises(ReplayDataError, match=r'garbage\.hdf5: not a readable '
                     'HDF5 file'):
    d4rl_import.import_hdf5(str(garbage))


def test_import_errors_name_the_array_and_its_expected_shape(tmp_path):
  path = str(tmp_path / 'data.hdf5')
  write_d4rl(path, EPISODES)
  with h5py.File(path, 'a') as f:
    del f['observations']
    f.create_group('observations')['position'] = np.zeros((28, 3))
  with pytest.raises(ReplayDataError, match=re.escape(
      f'{path}: /observations is a group, expected an array (dict '
      'observations are not supported).')):
    d4rl_import.import_hdf5(path)

  write_d4rl(path, EPISODES)
  with h5py.File(path, 'a') as f:
    actions = f['actions'][:, 0]
    del f['actions']
    f['actions'] = actions
  with pytest.raises(ReplayDataError, match=re.escape(
      f'{path}: actions has shape (28,), expected (steps, dim).')):
    d4rl_import.import_hdf5(path)

  with h5py.File(path, 'w') as f:
    for key in d4rl_import.D4RL_KEYS:
      f[key] = np.zeros({'observations': (0, OBS_DIM),
                         'actions': (0, ACTION_DIM)}.get(key, 0))
  with pytest.raises(ReplayDataError, match=re.escape(
      f'{path}: holds no episode.')):
    d4rl_import.import_hdf5(path)

  minari = str(tmp_path / 'minari.hdf5')
  write_minari(minari, EPISODES[:2])
  with h5py.File(minari, 'a') as f:
    observations = f['episode_1/observations'][:-1]
    del f['episode_1/observations']
    f['episode_1/observations'] = observations
  with pytest.raises(ReplayDataError, match=re.escape(
      f'{minari}: episode_1/observations has 4 rows, expected 5 (steps + '
      'final observation).')):
    d4rl_import.import_hdf5(minari)


def test_import_command_line(tmp_path, capsys):
  path = str(tmp_path / 'data.hdf5')
  replay_dir = str(tmp_path / 'replay')
  write_d4rl(path, EPISODES)
  assert d4rl_import.main([path]) == 2
  assert capsys.readouterr().err == (
      f"error: expected HDF5_FILE REPLAY_DIR, got ['{path}'].\n")
  # Hopper-v5's actions have 3 dimensions, these 2.
  assert d4rl_import.main([path, replay_dir, '--task=Hopper-v5']) == 2
  assert capsys.readouterr().err == (
      f'error: {path}: actions have 2 dimensions, the action bounds (3,); '
      "are they the bounds of the data's task (--task)?\n")
  assert d4rl_import.main([path, replay_dir, '--capacity=10']) == 0
  assert capsys.readouterr().out == (
      f'wrote checkpoints [0, 1, 2, 3] to {replay_dir}\n')
  hopper = [dict(e, actions=np.tile(e['actions'][:, :1], 3))
            for e in EPISODES]
  write_d4rl(path, hopper)
  assert d4rl_import.main([path, replay_dir, '--task=Hopper-v5']) == 0
  read = dopamine_replay.read_arrays(replay_dir, 0)
  np.testing.assert_array_equal(read.action[:5], hopper[0]['actions'])


# Environments and the online logger.


def test_environment_maps_unit_actions_onto_task_bounds():
  env, spec = environments.make_continuous_environment('Pendulum-v1')
  assert (spec.observation_dim, spec.action_dim) == (3, 1)
  np.testing.assert_array_equal(spec.action_low, [-2.0])
  assert spec.max_episode_steps == 200
  raw = gym.make('Pendulum-v1')
  observation, _ = env.reset(seed=7)
  raw_observation, _ = raw.reset(seed=7)
  np.testing.assert_allclose(observation, raw_observation, rtol=1e-6)
  for unit, task in ((0.5, 1.0), (-1.0, -2.0), (3.0, 2.0)):
    observation, reward, *_ = env.step(np.array([unit], np.float32))
    raw_observation, raw_reward, *_ = raw.step(np.array([task], np.float32))
    assert observation.dtype == np.float32
    np.testing.assert_allclose(observation, raw_observation, rtol=1e-6)
    assert reward == pytest.approx(raw_reward)
  with pytest.raises(ValueError, match="'Hopper-v4'.*Hopper-v5"):
    environments.make_continuous_environment('Hopper-v4')


def test_mujoco_tasks_have_unit_action_boxes():
  for name in environments.MUJOCO_TASKS:
    env, spec = environments.make_continuous_environment(name)
    assert env.action_space.low.min() == -1 and spec.max_episode_steps == 1000
    observation, _ = env.reset(seed=0)
    assert observation.shape == (spec.observation_dim,)
