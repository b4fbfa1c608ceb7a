"""Shared fixtures: replay data written by dopamine-rl's own buffer."""

import importlib.util
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top


def fill_dopamine_buffer(capacity, num_adds, stack_size=4, update_horizon=1,
                         gamma=0.99, frame_shape=(5, 4), seed=0,
                         terminal_prob=0.15, episode_end_prob=0.0,
                         short_episodes=False):
  """A dopamine-rl OutOfGraphReplayBuffer filled with random episodes.

  `short_episodes` makes every third episode end after 1 or 2 steps, shorter
  than the frame stack; `episode_end_prob` adds time-limit cuts (episode end
  without terminal, newer Dopamine's `episode_end_indices`).
  """
  rng = np.random.default_rng(seed)
  buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
      frame_shape, stack_size, capacity, batch_size=8,
      update_horizon=update_horizon, gamma=gamma)
  episode, step = 0, 0
  for _ in range(num_adds):
    step += 1
    limit = rng.integers(1, 3) if short_episodes and episode % 3 == 0 else None
    terminal = (step == limit) or rng.random() < terminal_prob
    cut = not terminal and rng.random() < episode_end_prob
    buffer.add(rng.integers(1, 256, frame_shape, dtype=np.uint8),
               rng.integers(0, 6), rng.normal(), terminal, episode_end=cut)
    if terminal or cut:
      episode, step = episode + 1, 0
  return buffer


@pytest.fixture
def dopamine_buffer_factory():
  return fill_dopamine_buffer


def load_fault_campaign():
  """scripts/fault_campaign.py as a module: its tiny run and CartPole replay
  serve the runner and reliability tests too."""
  path = os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), 'scripts', 'fault_campaign.py')
  spec = importlib.util.spec_from_file_location('fault_campaign', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def wait_until_told_to_wait_for_the_lock(capsys, cache, seconds=30):
  """Waits until a reader (another thread) says it waits for this process,
  which holds gz_cache.CacheLock(cache); fails after `seconds`."""
  deadline = time.time() + seconds
  while f'waiting for process {os.getpid()}, which is filling {cache}' not in (
      capsys.readouterr().err):
    assert time.time() < deadline
    time.sleep(0.05)


def wait_for_line(process, prefix, timeout=300):
  """The first line of `process`'s stdout starting with `prefix` (or the
  line read when `timeout` seconds have passed; '' at the end of output)."""
  deadline = time.time() + timeout
  for line in process.stdout:
    if line.startswith(prefix) or time.time() > deadline:
      return line
  return ''


@pytest.fixture(autouse=True)
def _batch_rl_cache_in_tmp(tmp_path, monkeypatch):
  """Replay caches go to the test's directory, not ~/.cache."""
  monkeypatch.setenv('BATCH_RL_CACHE', str(tmp_path / 'batch_rl_cache'))


def reference_transitions(episodes, stack_size, update_horizon, gamma):
  """Every transition of `episodes`, enumerated straight from them.

  An episode is (frames, actions, rewards, terminal) of its stored steps;
  a terminal episode ends in a terminal after its last step, any other
  (time-limit cut, unfinished) has no frame after its last step. A state
  stacks the last `stack_size` frames, zeros before the episode's start;
  the n-step return stops at a terminal; no window runs past a
  non-terminal episode's last frame. Rows as `sampled_transitions` gives
  them (a terminal transition's next state, which no loss reads, as b'').
  """
  from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
  discounts = transitions.discount_vector(gamma, update_horizon)
  rows = []
  for frames, actions, rewards, terminal_episode in episodes:
    frames = np.asarray(frames)
    steps = len(frames)
    padded = np.concatenate(
        [np.zeros((stack_size - 1,) + frames.shape[1:], frames.dtype), frames])
    stack = lambda t: np.moveaxis(padded[t:t + stack_size], 0, -1).tobytes()
    for t in range(steps):
      terminal = terminal_episode and t + update_horizon >= steps
      length = steps - t if terminal else update_horizon
      if not terminal and t + length > steps - 1:
        continue  # The window runs past the episode's last frame.
      discounted = np.float32(0.)
      for j in range(length):
        discounted += discounts[j] * np.float32(rewards[t + j])
      rows.append((stack(t), np.asarray(actions[t]).tobytes(),
                   round(float(discounted), 5),
                   b'' if terminal else stack(t + length), int(terminal)))
  return sorted(rows)


def sampled_transitions(replay_dir, stack_size, update_horizon, gamma,
                        selection=None):
  """Every transition the pipeline samples from `replay_dir`, as rows."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from batch_rl.data import replay_dataset  # pylint: disable=g-import-not-at-top
  from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
  replay = replay_dataset.open_replay(replay_dir, stack_size, update_horizon,
                                      gamma, selection)
  store, indices = replay.store, replay.training_indices
  windows, local = store.window_reader(stack_size, update_horizon)(
      tf.constant(indices, tf.int64))
  batch = {k: v.numpy() for k, v in transitions.transitions_from_windows(
      windows, local, stack_size, update_horizon, gamma).items()}
  return sorted(
      (s.tobytes(), a.tobytes(), round(float(r), 5),
       b'' if t else n.tobytes(), int(t))
      for s, a, r, n, t in zip(*(batch[k] for k in (
          'state', 'action', 'reward', 'next_state', 'terminal'))))
def exported_episodes(path):
  """(metadata, steps) of every episode of an RLDS dataset directory, split
  by split in name order, as numpy."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder_from_directory(path)
  for split in sorted(builder.info.splits):
    for episode in builder.as_dataset(split=split, shuffle_files=False):
      steps = next(iter(tfds.as_numpy(episode['steps'].batch(100_000))))
      yield tfds.as_numpy({k: v for k, v in episode.items() if k != 'steps'}
                          ), steps


# Start of the scripts of the two-replica tests (run in their own process:
# logical devices are fixed at TensorFlow's start): two CPU replicas and
# small Q-networks.
TWO_CPU_REPLICAS_PREAMBLE = '''
import functools
import gin
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from batch_rl.agents import networks, optimizers, registry
from batch_rl.environments.environment_spec import EnvironmentSpec
gin.bind_parameter('QHeadsNetwork.torso', networks.MLPTorso)
gin.bind_parameter('MLPTorso.hidden_units', (16,))
'''


def continuous_logging_config(environment, steps_per_iteration,
                              replay_capacity, random_steps=None,
                              iterations=1, agent_name='ddpg',
                              max_episode_steps=None, bindings=()):
  """(gin files, bindings) of a small continuous logging run.

  gin/mujoco/<agent>.gin and gin/baselines/mujoco.gin with `iterations` of
  at least `steps_per_iteration` agent steps, each evaluated on one
  episode; uniformly random actions (and no training) for the first
  `random_steps` agent steps, all of them if None; batches of 32, 16-unit
  networks; the task's own time limit unless `max_episode_steps` is given;
  `bindings` last.
  """
  if random_steps is None:
    random_steps = iterations * steps_per_iteration * 2
  return ([f'gin/mujoco/{agent_name}.gin', 'gin/baselines/mujoco.gin'],
          [f"create_online_runner.environment_name='mujoco:{environment}'",
           f'Runner.num_iterations={iterations}',
           f'Runner.training_steps={steps_per_iteration}',
           'Runner.evaluation_steps=1', 'Runner.progress=False',
           f'RANDOM_STEPS={random_steps}',
           f'LoggedEpisodeReplay.replay_capacity={replay_capacity}',
           'LoggedEpisodeReplay.batch_size=32',
           'DDPGAgent.hidden_sizes=(16,)',
           f'make_continuous_environment.max_episode_steps={max_episode_steps}',
           *bindings])


def log_continuous_replay(base_dir, *args, agent_name='ddpg', **kwargs):
  """Builds and runs the logging run of `continuous_logging_config(*args,
  agent_name=agent_name, **kwargs)` in `base_dir` as
  `python -m batch_rl.log_data` does; returns the Runner (its `rows`,
  `summaries`)."""
  import gin  # pylint: disable=g-import-not-at-top
  from batch_rl import command_line  # pylint: disable=g-import-not-at-top
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  gin_files, bindings = continuous_logging_config(
      *args, agent_name=agent_name, **kwargs)
  gin.clear_config()
  try:
    experiment.register_all_agents()
    command_line.load_gin_configs(gin_files, bindings)
    runner = experiment.create_online_runner(agent_name, str(base_dir))
    runner.run_experiment()
  finally:
    gin.clear_config()
  return runner


def _gunzipped_if_gz(path):
  """A file's bytes, decompressed if gzip (whose header holds a time stamp)."""
  import gzip  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    content = f.read()
  return gzip.decompress(content) if path.endswith('.gz') else content


def _runner_state_without_wall_time(path):
  import json  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    state = json.load(f)
  for row in state['rows']:
    del row['wall_time_s']
  return state


def _checkpoint_tensors(prefix):
  """A TF checkpoint's tensors by name, less its object graph: that names
  Keras layers in the order the process created them, which is no state."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH'}


def assert_same_files(got_dir, want_dir):
  """`got_dir` holds the files of `want_dir`, no more, with the same bytes
  (the same decompressed bytes for .gz files, the same tensors for TF
  checkpoints); in a run's checkpoint folder, runner_state.json's rows may
  differ in their wall time only."""
  names = sorted(os.listdir(want_dir))
  assert sorted(os.listdir(got_dir)) == names
  for name in names:
    got, want = os.path.join(got_dir, name), os.path.join(want_dir, name)
    if name == 'runner_state.json':
      assert (_runner_state_without_wall_time(got) ==
              _runner_state_without_wall_time(want)), got
    elif name.endswith('.index'):  # Read together with its .data files.
      got, want = (_checkpoint_tensors(p[:-len('.index')])
                   for p in (got, want))
      assert sorted(got) == sorted(want)
      for tensor in want:
        np.testing.assert_array_equal(got[tensor], want[tensor],
                                      err_msg=f'{got_dir}: {tensor}')
    elif '.data-' not in name:
      assert _gunzipped_if_gz(got) == _gunzipped_if_gz(want), got


def assert_same_logging_run(got_dir, want_dir):
  """Two logging runs logged, trained and evaluated alike: every replay log
  file (`assert_same_files`), metrics.csv but for the wall times, and the
  latest checkpoint (weights, optimizer, step counters, acting RNG, the
  live replay, every iteration's metrics and summaries, train returns and
  episode counts among them)."""
  from batch_rl import run_directory  # pylint: disable=g-import-not-at-top
  got, want = (run_directory.RunDirectory(str(d)) for d in (got_dir, want_dir))
  assert_same_files(got.replay_logs_path, want.replay_logs_path)
  without_wall_time = lambda run: [
      {k: v for k, v in row.items() if k != 'wall_time_s'}
      for row in run.read_metrics()]
  assert without_wall_time(got) == without_wall_time(want)
  latest = want.checkpoints().latest()
  assert got.checkpoints().latest() == latest
  assert_same_files(got.checkpoints().path(latest),
                    want.checkpoints().path(latest))
