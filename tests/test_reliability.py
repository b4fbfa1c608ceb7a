"""Fault injection: damaged checkpoints, kills, locks, full disks, seeds.

The kill campaign here is short (two kills of a 3-iteration run); the long
one is scripts/fault_campaign.py (docs/RELIABILITY.md).
"""

import errno
import glob
import importlib
import os
import shutil
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import tensorflow as tf

from batch_rl import cli
from batch_rl import command_line
from batch_rl import experiment
from batch_rl.data import dopamine_replay
from batch_rl.data import rlds_io
from batch_rl.data.errors import ReplayDataError
from batch_rl import run_directory
from batch_rl.run_directory import RunDirectory
from batch_rl.runner import runner as runner_lib
from conftest import load_fault_campaign
from conftest import wait_for_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
campaign = load_fault_campaign()
ITERATIONS = 3
COLUMNS = ('iteration', 'gradient_steps', 'eval_episodes', 'eval_return_mean',
           'eval_return_std', 'train_loss')


def _runner(replay_dir, base_dir, iterations=ITERATIONS, *bindings):
  """The run of campaign.train_command, built in this process."""
  gin.clear_config()
  experiment.register_all_agents()
  command_line.load_gin_configs(
      campaign.TINY_RUN_GIN_FILES,
      [f'Runner.num_iterations={iterations}', *bindings])
  return experiment.create_runner('dqn', replay_dir, str(base_dir))


def _metrics(base_dir):
  return [{c: row[c] for c in COLUMNS}
          for row in RunDirectory(base_dir).read_metrics()]


@pytest.fixture(scope='module')
def replay(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('replay'))
  campaign.write_replay(path)
  return path


@pytest.fixture(scope='module')
def finished_run(replay, tmp_path_factory):
  """An uninterrupted run of ITERATIONS iterations, seed 0."""
  base_dir = str(tmp_path_factory.mktemp('finished'))
  _runner(replay, base_dir).run_experiment()
  return base_dir


def _truncate_data(folder):
  data = glob.glob(os.path.join(folder, '*.data-*'))[0]
  os.truncate(data, os.path.getsize(data) // 2)


DAMAGES = {
    'truncated .data': (_truncate_data, 'Read less bytes than requested'),
    'missing .index': (lambda d: os.remove(glob.glob(f'{d}/*.index')[0]),
                       'has no .index'),
    'empty folder': (lambda d: [os.remove(p) for p in glob.glob(f'{d}/*')],
                     'runner_state.json: [Errno 2]'),
    'bad pickle': (lambda d: open(f'{d}/agent_bundle.pkl', 'wb').write(
        b'\x80\x04garbage'), 'agent_bundle.pkl: UnpicklingError'),
    'bad runner state': (lambda d: open(f'{d}/runner_state.json', 'w').write(
        '{"rows": ['), 'runner_state.json: Expecting value'),
}


@pytest.mark.parametrize('damage', DAMAGES)
def test_damaged_latest_checkpoint_is_set_aside_and_an_older_one_resumed(
    replay, finished_run, tmp_path, capsys, damage):
  base_dir = str(tmp_path / 'run')
  shutil.copytree(finished_run, base_dir)
  latest = os.path.join(base_dir, 'checkpoints', 'iteration_2')
  inject, reason = DAMAGES[damage]
  inject(latest)
  runner = _runner(replay, base_dir, ITERATIONS + 1)
  warning = [l for l in capsys.readouterr().err.splitlines()
             if l.startswith('warning: ')]
  assert len(warning) == 1 and reason in warning[0], warning
  assert f'{latest} is damaged' in warning[0]
  assert 'resuming from iteration_1' in warning[0]
  assert runner.start_iteration == 2
  assert sorted(os.listdir(os.path.dirname(latest))) == [
      'iteration_0', 'iteration_1', 'iteration_2.damaged']
  assert _metrics(base_dir) == _metrics(finished_run)[:2]
  runner.run_experiment()
  assert _metrics(base_dir) == _metrics(finished_run) + _metrics(base_dir)[3:]
  counts = campaign.summary_values(os.path.join(base_dir, 'tensorboard'))
  assert set(counts.values()) == {1} and {s for _, s in counts} == set(
      range(ITERATIONS + 1))


def test_a_checkpoint_damaged_again_is_set_aside_next_to_the_first(
    replay, finished_run, tmp_path, capsys):
  base_dir = str(tmp_path / 'run')
  shutil.copytree(finished_run, base_dir)
  latest = os.path.join(base_dir, 'checkpoints', 'iteration_2')
  shutil.copytree(latest, latest + '.damaged')  # Set aside by an earlier run.
  DAMAGES['missing .index'][0](latest)
  assert _runner(replay, base_dir, ITERATIONS + 1).start_iteration == 2
  assert f'{latest} is damaged' in capsys.readouterr().err
  assert sorted(os.listdir(os.path.dirname(latest))) == [
      'iteration_0', 'iteration_1', 'iteration_2.damaged',
      'iteration_2.damaged.1']
  assert glob.glob(f'{latest}.damaged/*.index')  # The earlier one, as it was.
  assert not glob.glob(f'{latest}.damaged.1/*.index')


def test_resumed_run_trains_and_evaluates_as_an_uninterrupted_one(
    replay, finished_run, tmp_path):
  _runner(replay, tmp_path, 1).run_experiment()
  resumed = _runner(replay, tmp_path)
  assert resumed.start_iteration == 1
  resumed.run_experiment()
  assert _metrics(tmp_path) == _metrics(finished_run)


def test_kills_during_and_between_checkpoint_writes_lose_nothing(
    replay, finished_run, tmp_path):
  """Killed while writing iteration_1, then at a random moment; resumed:
  each iteration once in metrics.csv and TensorBoard, every checkpoint
  loads, and the metrics are the uninterrupted run's."""
  base_dir = str(tmp_path / 'run')
  during_write = subprocess.Popen(
      campaign.train_command(replay, base_dir,
                             f'Runner.num_iterations={ITERATIONS}',
                             slow_write_at=1),
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  line = wait_for_line(during_write, campaign.SLOW_WRITE_MARK)
  assert line.strip() == f'{campaign.SLOW_WRITE_MARK}1'
  assert os.path.isdir(os.path.join(base_dir, 'checkpoints',
                                    'iteration_1.partial'))
  during_write.kill()
  during_write.wait()
  assert [r['iteration'] for r in _metrics(base_dir)] == ['0']
  anywhere = subprocess.Popen(
      campaign.train_command(replay, base_dir,
                             f'Runner.num_iterations={ITERATIONS}'),
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  campaign.wait_for_iteration(anywhere, base_dir, 1)
  time.sleep(np.random.default_rng().uniform(0, 1))
  anywhere.kill()
  anywhere.wait()
  _runner(replay, base_dir).run_experiment()
  assert campaign.run_checks(base_dir, ITERATIONS,
                             RunDirectory(finished_run).read_metrics()) == []


def _embedded_default(base_dir, seed):
  return subprocess.Popen(
      [sys.executable, '-m', 'batch_rl.train', f'--base_dir={base_dir}',
       *[f'--gin_bindings={b}' for b in (
           f'create_runner.seed={seed}', 'Runner.num_iterations=2',
           'Runner.training_steps=100', 'Runner.evaluation_steps=100',
           'Runner.progress=False', 'MLPTorso.hidden_units=(32,)')]],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_seed_decides_the_embedded_default_run(tmp_path):
  runs = {name: _embedded_default(tmp_path / name, seed)
          for name, seed in (('a', 7), ('b', 7), ('other', 8))}
  for name, process in runs.items():
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output[-3000:]
  first, second, other = (_metrics(tmp_path / n) for n in runs)
  assert len(first) == 2 and first == second
  assert [r['train_loss'] for r in other] != [r['train_loss'] for r in first]


HOLD_LOCK = '''
import sys, time
from batch_rl.run_directory import RunDirectory
RunDirectory(sys.argv[1]).lock()
print('locked', flush=True)
time.sleep(120)
'''


def test_a_second_process_on_a_run_directory_exits_naming_the_holder(
    tmp_path, capsys):
  base_dir = str(tmp_path / 'run')
  holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, base_dir],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == 'locked\n'
    code = cli.call(lambda _: _fake_runner(base_dir), [])
  finally:
    holder.kill()
    holder.wait()
  assert code == 2
  assert capsys.readouterr().err == (
      f'error: {base_dir} is in use by process {holder.pid} (run.lock); wait '
      'for it to finish, stop it, or give another --base_dir.\n')
  assert not os.path.exists(os.path.join(base_dir, 'checkpoints'))
  _fake_runner(base_dir)  # The holder's death released the lock.
  assert open(os.path.join(base_dir, 'run.lock')).read() == f'{os.getpid()}\n'
  RunDirectory(base_dir).unlock()


class _FakeAgent:
  """Checkpoints a counter; bundle_and_checkpoint can be made to fail."""

  def __init__(self, failure=None, fail_at=None):
    self.failure, self.fail_at, self.eval_mode = failure, fail_at, True

  def bundle_and_checkpoint(self, path, iteration):
    if iteration == self.fail_at:
      raise self.failure
    with open(os.path.join(path, 'agent.txt'), 'w') as f:
      f.write(str(iteration))
    return {'iteration': iteration}

  def unbundle(self, path, iteration, bundle):
    with open(os.path.join(path, 'agent.txt')) as f:
      return int(f.read()) == iteration == bundle['iteration']


class _FakeTraining:

  def begin(self, runner):
    del runner

  def train(self, runner, iteration, bar):
    del runner, bar
    return 0.5, iteration + 1, {}

  def finish(self, runner):
    del runner


class _FakeRunner(runner_lib.Runner):

  def _evaluate(self, iteration):
    return np.full(1, float(iteration))


def _fake_runner(base_dir, agent=None, iterations=3):
  return _FakeRunner(base_dir, agent or _FakeAgent(), environment=None,
                     training=_FakeTraining(), run_info={},
                     num_iterations=iterations, progress=False)


@pytest.mark.parametrize('failure, reason', [
    (OSError(errno.ENOSPC, 'No space left on device', 'x/tf_ckpt-1.data'),
     'No space left on device'),
    (OSError(errno.EROFS, 'Read-only file system', 'x/tf_ckpt-1.index'),
     'Read-only file system'),
    (PermissionError(errno.EACCES, 'Permission denied', 'x/tf_ckpt-1.index'),
     'Permission denied'),
    (tf.errors.ResourceExhaustedError(None, None, 'x/tf_ckpt-1.data; No '
                                      'space left on device'),
     'No space left on device'),
])
def test_a_failed_checkpoint_write_is_one_line_and_leaves_the_last_one(
    tmp_path, capsys, failure, reason):
  base_dir = str(tmp_path)
  agent = _FakeAgent(failure, fail_at=1)
  code = cli.call(lambda _: _fake_runner(base_dir, agent).run_experiment(), [])
  assert code == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith(f'error: {base_dir}: '), err
  assert reason in err and 'the checkpoint of iteration 0 is intact' in err
  assert [r['iteration'] for r in _metrics(base_dir)] == ['0']
  resumed = _fake_runner(base_dir)
  assert resumed.start_iteration == 1
  resumed.run_experiment()
  assert [r['iteration'] for r in _metrics(base_dir)] == ['0', '1', '2']


def test_an_unwritable_or_file_base_dir_is_one_line(tmp_path, capsys,
                                                    monkeypatch):
  a_file = tmp_path / 'file'
  a_file.write_text('')
  assert cli.call(lambda _: _fake_runner(str(a_file)), []) == 2
  assert capsys.readouterr().err == (
      f'error: {a_file} is a file; the run directory (--base_dir) must be a '
      'folder or not exist yet.\n')

  def read_only(path, *unused_args, **unused_kwargs):
    raise OSError(errno.EROFS, 'Read-only file system', path)
  monkeypatch.setattr(run_directory, 'open', read_only, raising=False)
  base_dir = tmp_path / 'run'
  assert cli.call(lambda _: _fake_runner(str(base_dir)), []) == 2
  assert capsys.readouterr().err == (
      f'error: cannot write the run directory {base_dir} (Read-only file '
      f'system: {base_dir}/run.lock); give a writable --base_dir.\n')


def test_summaries_are_written_after_the_checkpoint_and_once(tmp_path,
                                                            monkeypatch):
  """Killed between publishing a checkpoint and writing its summaries (here:
  the summary write fails), the rerun writes the missing ones only."""
  base_dir = str(tmp_path)
  write = runner_lib.Runner._write_summaries

  def dies_at_1(self, iteration, summaries, written=frozenset()):
    if iteration == 1 and not written:
      raise OSError(errno.EIO, 'Input/output error', 'events')
    write(self, iteration, summaries, written)
  monkeypatch.setattr(runner_lib.Runner, '_write_summaries', dies_at_1)
  with pytest.raises(OSError, match='Input/output error'):
    _fake_runner(base_dir).run_experiment()
  monkeypatch.setattr(runner_lib.Runner, '_write_summaries', write)
  assert os.path.isdir(os.path.join(base_dir, 'checkpoints', 'iteration_1'))
  _fake_runner(base_dir).run_experiment()
  counts = campaign.summary_values(os.path.join(base_dir, 'tensorboard'))
  assert counts == {(tag, step): 1 for step in range(3) for tag in (
      'eval_return_mean', 'eval_return_std', 'train_loss')}


def _tiny_replay(path, reward):
  terminal = np.zeros(20, np.uint8)
  terminal[[9, 19]] = 1
  for suffix in range(2):
    dopamine_replay.write_checkpoint(str(path), suffix,
                                     dopamine_replay.ReplayArrays(
        observation=np.zeros((20, 3), np.float32),
        action=np.zeros(20, np.int32),
        reward=np.full(20, reward, np.float32), terminal=terminal,
        add_count=20, invalid_range=np.zeros(0, np.int64)))


def test_export_rlds_is_published_only_when_complete(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source, other, out = tmp_path / 'source', tmp_path / 'other', tmp_path / 'out'
  _tiny_replay(source, 1.0)
  _tiny_replay(other, 2.0)
  read_arrays = dopamine_replay.read_arrays

  def fails_on_checkpoint_1(replay_dir, suffix, *args):
    if suffix == 1:
      raise OSError(errno.ENOSPC, 'No space left on device', 'shard')
    return read_arrays(replay_dir, suffix, *args)
  monkeypatch.setattr(dopamine_replay, 'read_arrays', fails_on_checkpoint_1)
  with pytest.raises(OSError):
    rlds_io.export_to_rlds(str(source), str(out), stack_size=1,
                           progress=False)
  path = rlds_io.builder_dir(str(out))
  assert not os.path.exists(path) and os.path.isdir(path + '.partial')
  monkeypatch.setattr(dopamine_replay, 'read_arrays', read_arrays)
  for _ in range(2):  # The rerun starts over; a second one redoes it.
    assert rlds_io.export_to_rlds(str(source), str(out), stack_size=1,
                                  progress=False) == path
    assert not os.path.exists(path + '.partial')
    assert sorted(tfds.builder_from_directory(path).info.splits) == [
        'checkpoint_00', 'checkpoint_01']
  with pytest.raises(ReplayDataError) as error:
    rlds_io.export_to_rlds(str(other), str(out), stack_size=1,
                           progress=False)
  assert str(error.value) == (
      f'{path}: holds the export of {os.path.realpath(source)}, not of '
      f'{other}; remove it or choose another out_dir.')


EMBEDDED_REPLAY = os.path.join(REPO, 'batch_rl', 'experiments', 'data',
                               'cartpole_dqn_replay')
CARTPOLE = "create_runner.environment_name='classic:CartPole-v1'"
ONLINE_CARTPOLE = (
    "create_online_runner.environment_name='classic:CartPole-v1'")


def _absl_main(module):
  """main(argv) of an entry point that parses the global absl FLAGS."""
  def main(argv):
    gin.clear_config()
    command_line.FLAGS.unparse_flags()
    command_line.FLAGS(['prog', *argv])
    return module.main(['prog'])
  return main


def _train_argv(base_dir, *bindings):
  return ['--agent_name=dqn', f'--replay_dir={EMBEDDED_REPLAY}',
          f'--base_dir={base_dir}', '--gin_files=gin/classic/dqn.gin',
          *[f'--gin_bindings={b}' for b in bindings]]


def _log_argv(base_dir, *bindings):
  return ['--agent_name=dqn', f'--base_dir={base_dir}',
          '--gin_files=gin/classic/dqn.gin',
          *[f'--gin_bindings={b}' for b in bindings]]


def _metrics_with_a_repeated_iteration(base_dir):
  rows = [dict(iteration=i, gradient_steps=i + 1, eval_episodes=1,
               eval_return_mean=1.0, eval_return_std=0.0, train_loss=0.1,
               wall_time_s=1.0) for i in (0, 1, 1)]
  run = RunDirectory(base_dir)
  run.write_run_info({'agent_name': 'dqn', 'seed': 0,
                      'environment': 'classic:CartPole-v1'})
  run.write_metrics(rows)
  return base_dir


ONE_LINE_CASES = {
    'train: missing binding': (
        'train', lambda d: _train_argv(d),
        'missing gin binding create_runner.environment_name: set it in a gin '
        'file or with --gin_bindings="create_runner.environment_name=..."'),
    "train: seed='abc'": (
        'train', lambda d: _train_argv(d, CARTPOLE, "create_runner.seed='abc'"),
        "create_runner.seed='abc': must be an integer, e.g. "
        '--gin_bindings=create_runner.seed=0.'),
    'train: base_dir is a file': (
        'train', lambda d: _train_argv(d + '/file', CARTPOLE),
        '/file is a file; the run directory (--base_dir) must be a folder'),
    'train: num_iterations=0': (
        'train', lambda d: _train_argv(d, CARTPOLE, 'Runner.num_iterations=0'),
        'Runner.num_iterations=0: must be at least 1.'),
    'train: evaluation_steps=0': (
        'train', lambda d: _train_argv(d, CARTPOLE,
                                       'Runner.evaluation_steps=0'),
        'Runner.evaluation_steps=0: must be at least 1.'),
    'log_data: missing binding': (
        'log_data', lambda d: _log_argv(d),
        'missing gin binding create_online_runner.environment_name'),
    "log_data: seed='abc'": (
        'log_data', lambda d: _log_argv(
            d, ONLINE_CARTPOLE, "create_online_runner.seed='abc'"),
        "create_online_runner.seed='abc': must be an integer"),
    'log_data: base_dir is a file': (
        'log_data', lambda d: _log_argv(d + '/file', ONLINE_CARTPOLE),
        '/file is a file; the run directory (--base_dir) must be a folder'),
    'log_data: training_steps=0': (
        'log_data', lambda d: _log_argv(d, ONLINE_CARTPOLE,
                                        'Runner.training_steps=0'),
        'Runner.training_steps=0: must be at least 1.'),
    'analysis: --bootstrap_reps -1': (
        'analysis', lambda d: ['report', f'--base_dirs={d}', f'--out={d}',
                               '--bootstrap_reps', '-1'],
        'flag --bootstrap_reps=-1: -1 is not a positive integer'),
    'analysis: --confidence 7': (
        'analysis', lambda d: ['report', f'--base_dirs={d}', f'--out={d}',
                               '--confidence', '7'],
        'flag --confidence=7: 7.0 is not a number in the range [0.0, 1.0]'),
    'analysis: repeated iteration rows': (
        'analysis', lambda d: [
            f'--base_dirs={_metrics_with_a_repeated_iteration(d + "/run")}',
            f'--out={d}/out'],
        '/run/metrics.csv: iteration 1 has more than one row; each iteration '
        'must appear once'),
    'data: replay_dir is a file': (
        'data', lambda d: ['info', d + '/file'], '/file'),
    'policy_selection: no --out': (
        'policy_selection', lambda d: [f'--base_dirs={d}'], '--out'),
}


def _entry_point(name):
  if name == 'analysis':
    from batch_rl.analysis import __main__ as analysis  # pylint: disable=g-import-not-at-top
    return analysis.main
  if name == 'data':
    from batch_rl.data import __main__ as data  # pylint: disable=g-import-not-at-top
    return data.main
  module = importlib.import_module(f'batch_rl.{name}')
  return lambda argv: cli.call(_absl_main(module), argv)


@pytest.mark.parametrize('case', ONE_LINE_CASES)
def test_user_errors_of_every_cli_are_one_line(case, tmp_path, capsys):
  entry_point, argv, message = ONE_LINE_CASES[case]
  (tmp_path / 'file').write_text('')
  code = _entry_point(entry_point)(argv(str(tmp_path)))
  err = capsys.readouterr().err
  assert code == 2, err
  assert err.count('\n') == 1 and err.startswith('error: '), err
  assert message in err


def test_a_bad_seed_through_the_command_line_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'batch_rl.log_data',
       *_log_argv(str(tmp_path), ONLINE_CARTPOLE,
                  "create_online_runner.seed='abc'")],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2 and result.stderr == (
      "error: create_online_runner.seed='abc': must be an integer, e.g. "
      '--gin_bindings=create_online_runner.seed=0.\n'), result.stderr
