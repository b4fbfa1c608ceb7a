"""The Runner and `python -m batch_rl.train`: logs, resume, signals, errors."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import types

import gin
import numpy as np
import pytest
import tensorflow as tf

from batch_rl import command_line
from batch_rl import experiment

from batch_rl.data import replay_dataset
from batch_rl.data.selection import DataSelection
from batch_rl.run_directory import RunDirectory
from batch_rl.runner import runner as runner_lib
from batch_rl.runner import training
from conftest import TWO_CPU_REPLICAS_PREAMBLE
from conftest import load_fault_campaign
from conftest import log_continuous_replay

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_RUN = 'gin/testing/tiny_run.gin'
SHIPPED_CARTPOLE_REPLAY = os.path.join(REPO, 'batch_rl', 'experiments',
                                       'data', 'cartpole_dqn_replay')


@pytest.fixture(scope='module')
def cartpole_replay(tmp_path_factory):
  """Random-policy CartPole replay, two checkpoints, written by dopamine-rl."""
  path = str(tmp_path_factory.mktemp('cartpole_replay'))
  load_fault_campaign().write_replay(path)
  return path


def _train(replay_dir, base_dir, *bindings, agent='dqn', gin_file='dqn.gin'):
  return subprocess.Popen(
      [sys.executable, '-m', 'batch_rl.train', f'--agent_name={agent}',
       f'--replay_dir={replay_dir}', f'--base_dir={base_dir}',
       f'--gin_files=gin/classic/{gin_file}', f'--gin_files={TINY_RUN}']
      + [f'--gin_bindings={b}' for b in bindings],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _catches(pid, signum):
  """Whether process `pid` has a handler for `signum` (/proc SigCgt)."""
  with open(f'/proc/{pid}/status') as f:
    mask = next(int(l.split()[1], 16) for l in f if l.startswith('SigCgt:'))
  return bool(mask >> (signum - 1) & 1)


def _wait_for_checkpoint(process, base_dir, iteration):
  """Waits until `process` wrote checkpoint `iteration` of `base_dir`."""
  path = os.path.join(base_dir, 'checkpoints', f'iteration_{iteration}')
  deadline = time.time() + 240
  while not os.path.isdir(path) and time.time() < deadline:
    time.sleep(0.1)
  assert os.path.isdir(path), process.communicate()[0]


def test_killed_run_resumes_without_lost_rows(cartpole_replay, tmp_path):
  base_dir = str(tmp_path / 'run')
  first = _train(cartpole_replay, base_dir,
                 'Runner.num_iterations=100')
  _wait_for_checkpoint(first, base_dir, 1)
  first.send_signal(signal.SIGKILL)
  first.wait()
  run = RunDirectory(base_dir)
  latest = run.existing_checkpoints().latest()
  done = [int(r['iteration']) for r in run.read_metrics()]
  # metrics.csv is written after each checkpoint: the kill may come between.
  assert latest >= 1 and done in (list(range(latest)), list(range(latest + 1)))

  second = _train(cartpole_replay, base_dir,
                  f'Runner.num_iterations={latest + 3}')
  output = second.communicate(timeout=240)[0]
  assert second.returncode == 0, output
  assert f'Resuming {base_dir} after iteration {latest}' in output
  rows = run.read_metrics()
  assert [int(r['iteration']) for r in rows] == list(range(latest + 3))
  assert [int(r['gradient_steps']) for r in rows] == [
      50 * (i + 1) for i in range(latest + 3)]
  assert all(float(r['eval_return_mean']) > 0 for r in rows)
  kept = set(os.listdir(os.path.join(base_dir, 'checkpoints')))
  assert kept == {f'iteration_{i}' for i in range(latest, latest + 3)}
  assert os.listdir(os.path.join(base_dir, 'tensorboard'))


@pytest.mark.parametrize('args, message', [
    (['--agent_name=rem'], "--agent_name=rem disagrees with the gin "
     "binding create_agent.agent_name = 'dqn'; drop one or make them agree."),
    (['--agent_name=nope', '--gin_files=gin/classic/offline_cartpole.gin'],
     "Unknown agent_name 'nope'; valid names:"),
    (['--gin_bindings=Runner.no_such_parameter=1'],
     'bad gin configuration'),
    (['--gin_bindings=Runner.num_iterations=0'],
     'Runner.num_iterations=0: must be at least 1.'),
    (['--gin_bindings=NoSuchThing.x=1'], 'bad gin configuration'),
    (['--replay_dir={empty}'], 'no Dopamine replay checkpoints'),
    (['--gin_files=gin/classic/missing.gin'],
     'bad gin configuration: gin file gin/classic/missing.gin not found'),
])
def test_cli_errors_are_clear(cartpole_replay, tmp_path, args, message):
  os.makedirs(tmp_path / 'empty')
  argv = {'--agent_name': '--agent_name=dqn',
          '--replay_dir': f'--replay_dir={cartpole_replay}',
          '--gin_files': '--gin_files=gin/classic/dqn.gin'}
  for arg in args:
    argv[arg.split('=')[0]] = arg.format(empty=tmp_path / 'empty')
  result = subprocess.run(
      [sys.executable, '-m', 'batch_rl.train', *argv.values(),
       f'--base_dir={tmp_path / "run"}', '--gin_bindings=create_runner.'
       "environment_name='classic:CartPole-v1'"] + (
           [a for a in args if a.startswith('--gin_bindings')]),
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  assert message in lines[0]
  assert 'Traceback' not in result.stderr


def test_the_gin_file_alone_picks_the_agent(cartpole_replay, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'batch_rl.train',
       f'--replay_dir={cartpole_replay}', f'--base_dir={tmp_path}',
       '--gin_files=gin/classic/rem.gin', f'--gin_files={TINY_RUN}',
       '--gin_bindings=Runner.num_iterations=1'],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'run_info.json') as f:
    info = json.load(f)
  assert info['agent_name'] == 'rem'
  assert 'agent_label' not in info
  assert info['data_selection'] == {
      'checkpoints': None, 'first_k': None, 'last_k': None, 'fraction': 1.0,
      'seed': 0, 'holdout_fraction': 0.0}


def test_sigterm_stops_at_a_train_call_and_the_rerun_resumes(
    cartpole_replay, tmp_path):
  base_dir = str(tmp_path / 'run')
  first = _train(cartpole_replay, base_dir, 'Runner.num_iterations=1000',
                 'Runner.training_steps=2000')
  _wait_for_checkpoint(first, base_dir, 0)
  first.send_signal(signal.SIGTERM)
  output = first.communicate(timeout=120)[0]
  assert first.returncode == 128 + signal.SIGTERM, output
  last = output.strip().splitlines()[-1]
  assert last.startswith('stopped by SIGTERM: ') and 'rerun' in last, output
  assert 'Traceback' not in output
  done = len(RunDirectory(base_dir).read_metrics())
  assert done >= 1 and f'{done} of 1000 iterations finished' in last
  second = _train(cartpole_replay, base_dir,
                  f'Runner.num_iterations={done + 1}',
                  'Runner.training_steps=2000')
  output = second.communicate(timeout=240)[0]
  assert second.returncode == 0, output
  assert f'Resuming {base_dir} after iteration {done - 1}' in output
  assert [int(r['iteration']) for r in RunDirectory(base_dir).read_metrics()] == list(
      range(done + 1))


def test_sigint_during_start_up_stops_the_process(cartpole_replay, tmp_path):
  started = _train(cartpole_replay, str(tmp_path / 'run'),
                   'Runner.num_iterations=1')
  # The moment batch_rl's handlers are in (SIGTERM caught): before
  # TensorFlow is imported, long before any training (a fixed delay was
  # already past start-up on a quiet machine).
  deadline = time.time() + 60
  while not _catches(started.pid, signal.SIGTERM) and time.time() < deadline:
    time.sleep(0.005)
  started.send_signal(signal.SIGINT)
  output = started.communicate(timeout=60)[0]
  assert started.returncode == 128 + signal.SIGINT, output
  assert output.strip().splitlines()[-1] == (
      'stopped by SIGINT during start-up'), output
  assert 'Traceback' not in output


def test_replay_of_another_environment_is_rejected(cartpole_replay, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'batch_rl.train', '--agent_name=dqn',
       f'--replay_dir={cartpole_replay}', f'--base_dir={tmp_path}',
       '--gin_files=gin/classic/dqn.gin',
       "--gin_bindings=create_runner.environment_name='classic:Acrobot-v1'"],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert 'frames have shape (4,), but classic:Acrobot-v1 emits (6,)' in (
      result.stderr)


MIRRORED_SCRIPT = '''
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from batch_rl import command_line, experiment
experiment.make_strategy = lambda _: tf.distribute.MirroredStrategy(
    ['/cpu:0', '/cpu:1'])
experiment.register_all_agents()
command_line.load_gin_configs(['classic/rem.gin', 'testing/tiny_run.gin'],
                              sys.argv[3:])
runner = experiment.create_runner('rem', sys.argv[1], sys.argv[2])
rows = runner.run_experiment()
print('replicas', runner.agent._strategy.num_replicas_in_sync,
      'gradient_steps', runner.agent.gradient_steps, 'rows', len(rows))
'''


MIRRORED_STEPS_SCRIPT = TWO_CPU_REPLICAS_PREAMBLE + '''

def make(strategy):
  return registry.create_agent(
      'dqn', EnvironmentSpec(3, (4,), np.float32, 1), seed=3,
      strategy=strategy,
      target_update_period=2, optimizer_fn=functools.partial(
          optimizers.adam_optimizer, learning_rate=1e-2, epsilon=1e-4))

single = make(None)
mirrored = make(tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))
for network in ('online_network', 'target_network'):
  getattr(mirrored, network).set_weights(
      getattr(single, network).get_weights())
rng = np.random.default_rng(0)
stacks = {  # 3 stacks of 2 batches of 8 transitions.
    'state': rng.normal(size=(3, 2, 8, 4, 1)).astype(np.float32),
    'next_state': rng.normal(size=(3, 2, 8, 4, 1)).astype(np.float32),
    'action': rng.integers(0, 3, (3, 2, 8)).astype(np.int32),
    'reward': rng.normal(size=(3, 2, 8)).astype(np.float32),
    'terminal': rng.integers(0, 2, (3, 2, 8)).astype(np.uint8),
}
def steps(agent):
  dataset = tf.data.Dataset.from_tensor_slices(stacks)
  return float(agent.train_steps(iter(dataset), 5)['loss'])
np.testing.assert_allclose(steps(mirrored), steps(single), rtol=1e-5)
for x, y in zip(mirrored.online_network.get_weights(),
                single.online_network.get_weights()):
  np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
# Each replica reads half of each batch (not the whole batch twice).
from batch_rl.agents import train_loop
strategy = mirrored._strategy
def sizes(batch):
  per_replica = strategy.run(lambda b: tf.shape(b['reward'])[0], args=(batch,))
  return {'rows': strategy.reduce('SUM', per_replica, axis=None),
          'replicas': len(strategy.experimental_local_results(per_replica))}
read = train_loop.make_train_steps(sizes, strategy)(
    iter(tf.data.Dataset.from_tensor_slices(stacks)), tf.constant(1))
assert int(read['rows']) == 8 and read['replicas'] == 2, read
print('mirrored train_steps OK')
'''


def test_mirrored_train_steps_split_each_batch_over_the_replicas():
  """The one-branch train loop gives each replica half of every batch:
  the same steps as on one device."""
  result = subprocess.run([sys.executable, '-c', MIRRORED_STEPS_SCRIPT],
                          cwd=REPO, capture_output=True, text=True,
                          check=False, timeout=300)
  assert 'mirrored train_steps OK' in result.stdout, result.stderr[-3000:]


def test_mirrored_strategy_trains_on_two_replicas(cartpole_replay, tmp_path):
  result = subprocess.run(
      [sys.executable, '-c', MIRRORED_SCRIPT, cartpole_replay,
       str(tmp_path), 'Runner.num_iterations=1',
       "create_runner.distribution='mirrored'"],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'replicas 2 gradient_steps 50 rows 1' in result.stdout


def test_hopper_td3_through_the_cli_logs_checkpoints_and_resumes(tmp_path):
  """MuJoCo smoke run: the shared runner and CLI with a continuous agent."""
  log_continuous_replay(tmp_path / 'logger', 'Hopper-v5', 1500, 1000)
  replay_dir = RunDirectory(str(tmp_path / 'logger')).replay_logs_path
  base_dir = str(tmp_path / 'td3')

  def train(iterations):
    return subprocess.run(
        [sys.executable, '-m', 'batch_rl.train', '--agent_name=td3',
         f'--replay_dir={replay_dir}', f'--base_dir={base_dir}',
         '--gin_files=gin/mujoco/td3.gin', '--gin_files=gin/mujoco/offline.gin',
         "--gin_bindings=create_runner.environment_name='mujoco:Hopper-v5'",
         '--gin_bindings=Runner.training_steps=150',
         '--gin_bindings=Runner.evaluation_steps=100',
         '--gin_bindings=Runner.progress=False',
         f'--gin_bindings=Runner.num_iterations={iterations}'],
        cwd=REPO, capture_output=True, text=True, check=False)

  first = train(1)
  assert first.returncode == 0, first.stderr[-3000:]
  assert os.path.isdir(os.path.join(base_dir, 'checkpoints', 'iteration_0'))
  second = train(2)
  assert second.returncode == 0, second.stderr[-3000:]
  assert f'Resuming {base_dir} after iteration 0' in second.stdout
  rows = RunDirectory(base_dir).read_metrics()
  assert [int(r['iteration']) for r in rows] == [0, 1]
  assert [int(r['gradient_steps']) for r in rows] == [150, 300]


class _RecordingAgent:
  """Reads stacks as agents do; records the batches' indices it trains on."""

  def __init__(self):
    self.calls, self.used, self.eval_mode = [], [], True

  def train_steps(self, iterator, num_steps):
    self.calls.append(num_steps)
    left = num_steps
    while left > 0:
      stack = next(iterator)['indices'].numpy()
      self.used.extend(stack[:left])
      left -= len(stack)
    return {'loss': 0.}

  def bundle_and_checkpoint(self, unused_path, unused_iteration):
    return {}

  def unbundle(self, unused_path, unused_iteration, unused_bundle):
    return True


class _NoEvaluation(runner_lib.Runner):

  def _evaluate(self, iteration):
    return np.zeros(1)


class _IndexedReplay(replay_dataset.ReplayDataset):
  """Batches of the transitions' indices only (what the recorder reads)."""

  def batches(self, *args, **kwargs):
    return super().batches(*args, **{**kwargs, 'elements': ('indices',)})


@pytest.fixture(scope='module')
def cartpole_dataset(cartpole_replay):
  store = replay_dataset.open_replay(cartpole_replay, 1, 1, 0.99).store
  return _IndexedReplay(store, 1, 1, 0.99, DataSelection(fraction=0.5))


def _offline_runner(base_dir, replay, agent, iterations, **kwargs):
  return _NoEvaluation(
      str(base_dir), agent, environment=None,
      training=training.OfflineTraining(replay, 4, seed=3, log_every=3),
      run_info={}, num_iterations=iterations, progress=False, **kwargs)


def test_runner_trains_in_calls_of_whole_stacks(tmp_path, cartpole_dataset):
  agent = _RecordingAgent()
  k = cartpole_dataset.batches_per_call(4)
  runner = _offline_runner(tmp_path, cartpole_dataset, agent, 1,
                           training_steps=2 * k + 2)
  runner.run_experiment()
  whole = math.ceil(3 / k) * k  # log_every=3 rounded up to whole stacks.
  assert sum(agent.calls) == 2 * k + 2 and max(agent.calls) <= whole
  assert all(n % k == 0 for n in agent.calls[:-1])


def test_host_read_parallelism_reaches_the_pipeline(tmp_path,
                                                   cartpole_dataset):
  runner = _NoEvaluation(
      str(tmp_path), _RecordingAgent(), environment=None,
      training=training.OfflineTraining(cartpole_dataset, 4, seed=3,
                                        read_parallel_calls=-2),
      run_info={}, num_iterations=1, progress=False, training_steps=4)
  with pytest.raises(ValueError, match='read_parallel_calls=-2'):
    runner.run_experiment()


def test_resumed_run_reads_the_batches_of_an_uninterrupted_run(
    tmp_path, cartpole_dataset):
  k = cartpole_dataset.batches_per_call(4)
  steps = 2 * k + 3  # Iterations end inside a stack.
  whole = _RecordingAgent()
  _offline_runner(tmp_path / 'whole', cartpole_dataset, whole, 3,
                  training_steps=steps).run_experiment()
  resumed = _RecordingAgent()
  _offline_runner(tmp_path / 'parts', cartpole_dataset, resumed, 1,
                  training_steps=steps).run_experiment()
  again = _offline_runner(tmp_path / 'parts', cartpole_dataset, resumed, 3,
                          training_steps=steps)
  assert again.start_iteration == 1
  again.run_experiment()
  assert len(whole.used) == 3 * steps
  np.testing.assert_array_equal(np.stack(resumed.used), np.stack(whole.used))
  # Training only sees the selected half of the transitions.
  assert set(np.concatenate(whole.used)) <= set(
      cartpole_dataset.training_indices % 2000)


def _runner(agent, base_dir, *bindings):
  gin.clear_config()
  experiment.register_all_agents()
  command_line.load_gin_configs([f'gin/classic/{agent}.gin', TINY_RUN],
                                bindings)
  try:
    return experiment.create_runner(agent, SHIPPED_CARTPOLE_REPLAY, base_dir)
  finally:
    gin.clear_config()


def test_a_run_directory_of_another_agent_is_refused(tmp_path):
  base_dir = str(tmp_path / 'run')
  _runner('dqn', base_dir, 'Runner.num_iterations=1').run_experiment()
  prefix = os.path.join(base_dir, 'checkpoints', 'iteration_0', 'tf_ckpt-0')
  with pytest.raises(ValueError, match=re.escape(
      f'{prefix} is not a checkpoint of this C51Agent (its networks or '
      'optimizers differ)')):
    _runner('c51', base_dir, 'Runner.num_iterations=2')
  # Refused, not set aside as damaged.
  assert os.listdir(os.path.join(base_dir, 'checkpoints')) == ['iteration_0']


def test_a_resumed_run_rewrites_the_summaries_cut_off_its_event_file(
    tmp_path):
  base_dir = str(tmp_path / 'run')
  _runner('dqn', base_dir, 'Runner.num_iterations=1').run_experiment()
  tensorboard = RunDirectory(base_dir).tensorboard_path
  (events,) = os.listdir(tensorboard)
  path = os.path.join(tensorboard, events)
  os.truncate(path, os.path.getsize(path) - 5)  # A kill cut the last record.
  resumed = _runner('dqn', base_dir, 'Runner.num_iterations=1')
  expected = {(tag, 0) for tag in resumed.summaries[0]}
  assert len(expected) > 1 and expected <= resumed._summarized()  # pylint: disable=protected-access
  assert len(os.listdir(tensorboard)) == 2  # The rewritten ones: a new file.


def test_distribution_and_batch_size_bindings_are_checked(tmp_path,
                                                         monkeypatch):
  assert isinstance(experiment.make_strategy('mirrored'),
                    tf.distribute.MirroredStrategy)
  with pytest.raises(ValueError, match=re.escape(
      "create_runner.distribution must be 'default' or 'mirrored', got "
      "'tpu'.")):
    _runner('dqn', str(tmp_path), "create_runner.distribution='tpu'")
  monkeypatch.setattr(experiment, 'make_strategy',
                      lambda _: types.SimpleNamespace(num_replicas_in_sync=2))
  with pytest.raises(ValueError, match=re.escape(
      'create_runner.batch_size=17 must be a multiple of the 2 replicas.')):
    _runner('dqn', str(tmp_path), 'create_runner.batch_size=17')
