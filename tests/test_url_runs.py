"""Run directories on tf.io.gfile URLs, through TensorFlow's in-process ram://.

ram:// lives in one process, so every run here is built in this process (a
`python -m batch_rl.train` subprocess would not see the files).
"""

import json
import os
import socket
import subprocess
import sys
import uuid

import gin
import pytest

from batch_rl import cli
from batch_rl import command_line
from batch_rl import experiment
from batch_rl import export_policy
from batch_rl import storage
from batch_rl.analysis import report
from batch_rl.analysis import runs as runs_lib
from batch_rl.run_directory import RunDirectory
from batch_rl.sweep import __main__ as sweep_main
from batch_rl.sweep import study as study_lib
from test_reliability import _FakeRunner
from test_reliability import _FakeTraining
from test_runner import TINY_RUN
from test_runner import REPO

EMBEDDED_REPLAY = os.path.join(REPO, 'batch_rl', 'experiments', 'data',
                               'cartpole_dqn_replay')


@pytest.fixture
def url():
  """A fresh ram:// folder, deleted afterwards."""
  root = f'ram://{uuid.uuid4().hex}'
  yield root
  storage.rmtree(root)


def _train(base_dir, iterations):
  gin.clear_config()
  experiment.register_all_agents()
  command_line.load_gin_configs(
      ['gin/classic/dqn.gin', TINY_RUN],
      [f'Runner.num_iterations={iterations}'])
  return experiment.create_runner('dqn', EMBEDDED_REPLAY, base_dir)


def test_a_run_on_a_url_trains_resumes_and_is_analysed(url, capsys):
  base_dir = storage.join(url, 'runs', 'dqn')
  _train(base_dir, 2).run_experiment()
  run = RunDirectory(base_dir)
  assert [int(r['iteration']) for r in run.read_metrics()] == [0, 1]
  assert not storage.exists(run.lock_path)  # Deleted when the run ended.

  resumed = _train(base_dir, 3)
  assert resumed.start_iteration == 2
  rows = resumed.run_experiment()
  assert f'Resuming {base_dir} after iteration 1.' in capsys.readouterr().out
  assert [int(r['iteration']) for r in run.read_metrics()] == [0, 1, 2]
  assert [r['gradient_steps'] for r in rows] == [50, 100, 150]
  # Published whole: no .partial folder left.
  assert sorted(storage.listdir(run.checkpoints_path)) == [
      'iteration_0', 'iteration_1', 'iteration_2']
  # The agent's TensorFlow checkpoint of iteration 2 holds 150 steps.
  agent, iteration = export_policy.load_trained_agent(base_dir)
  assert iteration == 2 and agent.gradient_steps == 150
  # One summary per tag and iteration in the event files.
  summarized = resumed._summarized()  # pylint: disable=protected-access
  assert sorted(s for t, s in summarized if t == 'eval_return_mean') == [
      0, 1, 2]
  assert RunDirectory(base_dir).finished_iterations() == 3

  (loaded,) = runs_lib.load_runs([url])
  assert loaded.run_dir == base_dir and loaded.agent_name == 'dqn'
  assert list(loaded.metrics['gradient_steps']) == [50, 100, 150]
  reference = storage.join(url, 'reference.csv')
  storage.write_atomically(
      reference, 'environment,random,dqn\nclassic:CartPole-v1,20,500\n')
  out = storage.join(url, 'report')
  path = report.write_report([url], out,
                             report.ReportOptions(reference=reference))
  assert path == storage.join(out, report.REPORT)
  assert storage.read_text(path).startswith('# batch_rl analysis report')
  assert storage.read_bytes(storage.join(out, report.LEARNING_CURVES))[
      :4] == b'\x89PNG'


def test_an_unsupported_scheme_is_one_line_naming_the_url(capsys):
  code = cli.call(lambda _: _train('zz://bucket/run', 1), [])
  assert code == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1, err
  assert err.startswith('error: zz://bucket/run: TensorFlow has no '
                        'filesystem for zz:// (it knows '), err
  assert 'ram://' in err and 'tensorflow-io' in err


@pytest.fixture
def silent_proxy(monkeypatch):
  """An HTTPS proxy that takes connections and never answers: a bucket
  behind a firewall, without network (TensorFlow's GCS client, libcurl,
  goes through $https_proxy)."""
  server = socket.socket()
  server.bind(('127.0.0.1', 0))
  server.listen(16)
  monkeypatch.setenv('https_proxy',
                     f'http://127.0.0.1:{server.getsockname()[1]}')
  monkeypatch.setenv(storage.ANSWER_TIMEOUT_ENV, '2')
  yield
  server.close()


def test_an_unreachable_bucket_is_one_line_within_the_timeout(silent_proxy):
  # Unbounded, TensorFlow's one call took 877 s here (10 retries of 60 s).
  # In a process of its own: the call left waiting in TensorFlow must not
  # change how the command exits.
  url = f'gs://batch-rl-unreachable-{uuid.uuid4().hex}/run'
  code = ('import sys, time, tensorflow\n'
          'from batch_rl import cli\n'
          'from batch_rl.run_directory import RunDirectory\n'
          'start = time.time()\n'
          f'status = cli.call(lambda _: RunDirectory({url!r}).lock(), [])\n'
          'print(time.time() - start)\n'
          'sys.exit(status)\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert float(result.stdout.split()[-1]) < 10
  errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert errors == [
      'error: [Errno 110] no answer from its store within 2 s (network, '
      'proxy or credentials?; TensorFlow would retry for many minutes; '
      f"BATCH_RL_URL_TIMEOUT_S sets the wait): '{url}'"]


class _Agent:
  """Checkpoints its iteration in a file of the checkpoint folder."""
  eval_mode = True

  def bundle_and_checkpoint(self, path, iteration):
    storage.write_bytes(storage.join(path, 'agent.txt'), b'%d' % iteration)
    return {'iteration': iteration}

  def unbundle(self, path, iteration, bundle):
    return int(storage.read_text(storage.join(path, 'agent.txt'))) == (
        iteration) == bundle['iteration']


def _fake_runner(base_dir, iterations):
  return _FakeRunner(base_dir, _Agent(), environment=None,
                     training=_FakeTraining(),
                     run_info={}, num_iterations=iterations, progress=False)


def test_a_checkpoint_moved_in_part_is_set_aside_on_resume(url, capsys):
  """On an object store a checkpoint folder is renamed file by file; a crash
  in between leaves one with files missing: resume sets it aside and goes
  on from the previous one."""
  _fake_runner(url, 2).run_experiment()
  storage.remove(storage.join(url, 'checkpoints', 'iteration_1',
                              'runner_state.json'))
  resumed = _fake_runner(url, 3)
  assert resumed.start_iteration == 1
  err = capsys.readouterr().err
  assert f'checkpoint {url}/checkpoints/iteration_1 is damaged' in err
  assert 'resuming from iteration_0' in err
  assert storage.isfile(storage.join(url, 'checkpoints',
                                     'iteration_1.damaged', 'agent.txt'))
  resumed.run_experiment()
  assert [r['iteration'] for r in RunDirectory(url).read_metrics()] == [
      '0', '1', '2']


def test_the_lock_object_refuses_a_live_holder_of_this_host(url, capsys):
  run = RunDirectory(url)
  host = socket.gethostname()
  live = os.getppid()
  storage.write_atomically(run.lock_path, f'{live} on {host}\n')
  with pytest.raises(OSError, match=(
      rf'{url} is in use by process {live} on {host} \(run.lock\)')):
    run.lock()
  storage.write_atomically(run.lock_path, f'999999999 on {host}\n')
  run.lock()  # A dead holder: taken over.
  assert storage.read_text(run.lock_path) == f'{os.getpid()} on {host}\n'
  run.lock()  # Held by this process already.
  run.unlock()
  assert not storage.exists(run.lock_path)
  storage.write_atomically(run.lock_path, '12 on elsewhere\n')
  run.unlock()  # Not held here: another's lock stays.
  assert storage.read_text(run.lock_path) == '12 on elsewhere\n'
  run.lock()  # Another host cannot be checked: taken over, with a warning.
  assert capsys.readouterr().err == (
      f'warning: {run.lock_path} names process 12 on elsewhere, which cannot '
      'be checked from here; taking the run directory over (do not run two '
      'processes on one run directory).\n')
  run.unlock()


def test_a_study_on_a_url_keeps_its_data_on_a_filesystem(url, tmp_path):
  smoke = os.path.join(REPO, 'gin', 'studies', 'smoke.gin')
  gin.clear_config()  # Unlocks what an earlier run in this process locked.
  with pytest.raises(study_lib.StudyError, match=(
      rf'Study.staged_dir is {url}/staged_data/cartpole, a URL: replay data '
      'is read and converted on a local or shared filesystem only')):
    study_lib.plan(sweep_main.load_study(smoke, []), url)
  staged = str(tmp_path / 'staged')
  runs = study_lib.plan(sweep_main.load_study(
      smoke, [f'Study.staged_dir={json.dumps(staged)}']), url)
  offline = [r for r in runs if r.kind == study_lib.OFFLINE]
  assert offline and all(r.run_dir.startswith(f'{url}/offline/')
                         for r in offline)
  assert all(f'--base_dir={r.run_dir}' in r.command for r in offline)
  assert not any(study_lib.is_finished(r) for r in offline)


def test_a_logging_run_on_a_url_is_refused_in_one_line():
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=r'--base_dir=ram://log/run: a logging '
                     'run writes its replay with plain file I/O'):
    experiment.create_online_runner('dqn', 'ram://log/run',
                                    environment_name='classic:CartPole-v1')
