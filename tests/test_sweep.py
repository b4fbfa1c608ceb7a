"""Studies: plans from the shipped study files, the CLI, progress estimates,
and a smoke study on a local Ray instance (kill, retry, resume, failure,
rerun)."""

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import gin
import pytest
import ray

from batch_rl import command_line
from batch_rl import study_directory
from batch_rl.analysis import report
from batch_rl.analysis import runs as run_logs
from batch_rl.analysis import study as analysis_study
from batch_rl.run_directory import RunDirectory
from batch_rl.sweep import execution
from batch_rl.sweep import progress
from batch_rl.sweep import study as study_lib
from batch_rl.sweep import __main__ as sweep_main

STUDIES = os.path.join(command_line.GIN_DIR, 'studies')


def load(name, *bindings):
  gin.clear_config()
  command_line.load_gin_configs([os.path.join(STUDIES, name)], bindings)
  try:
    return study_lib.Study()
  finally:
    gin.clear_config()


def flag_values(command, flag):
  return [arg.split('=', 1)[1] for arg in command
          if arg.startswith(f'--{flag}=')]


def write_metrics(run_dir, returns):
  os.makedirs(run_dir, exist_ok=True)
  with open(RunDirectory(run_dir).metrics_path, 'w') as f:
    f.write(','.join(run_logs.METRIC_COLUMNS) + '\n')
    for i, value in enumerate(returns):
      f.write(f'{i},1,1,{value},0.0,0.0,0.1\n')


def test_replication_plan_keeps_the_replication_commands(tmp_path):
  runs = study_lib.plan(load('minatar_replication.gin'), str(tmp_path))
  kinds = [run.kind for run in runs]
  assert kinds == ['logging'] * 15 + ['offline'] * 180
  assert len({run.run_dir for run in runs}) == len(runs)
  # Seed-major: every run of seed 0 before seed 1.
  assert [run.labels['seed'] for run in runs[15:75]] == [0] * 60
  logging = next(r for r in runs if r.name == 'logging/freeway/seed_1')
  assert logging.command[1:] == (
      '-m', 'batch_rl.log_data', '--agent_name=dqn',
      f'--base_dir={tmp_path}/logging/freeway/seed_1',
      '--gin_files=minatar/dqn.gin', '--gin_files=replication/logging.gin',
      '--gin_bindings=create_online_runner.environment_name='
      '"minatar:freeway"', '--gin_bindings=create_online_runner.seed=1')
  assert logging.num_iterations == 10
  rem = next(r for r in runs
             if r.name == 'offline/freeway/rem/random_10pct/seed_1')
  assert rem.requires == (logging.name,)
  assert rem.run_dir == os.path.join(tmp_path, rem.name)
  assert flag_values(rem.command, 'agent_name') == ['rem']
  assert flag_values(rem.command, 'replay_dir') == [
      os.path.join(logging.run_dir, 'replay_logs')]
  assert flag_values(rem.command, 'gin_files') == [
      'minatar/rem.gin', 'minatar/offline.gin', 'replication/offline.gin']
  # The runs of docs/RESULTS.md, in their directories, so that the
  # replication's existing runs resume under the study; the agent's name in
  # reports is the study's label (study.json), no longer a binding.
  assert rem.labels['agent'] == 'rem'
  assert flag_values(rem.command, 'gin_bindings') == [
      'create_runner.environment_name="minatar:freeway"',
      'create_runner.seed=1',
      'create_runner.selection=@DataSelection()',
      'DataSelection.seed=1', 'DataSelection.fraction=0.1']
  assert rem.num_iterations == 10
  first = next(r for r in runs
               if r.name == 'offline/asterix/qr_dqn/first_10pct/seed_0')
  assert flag_values(first.command, 'agent_name') == ['quantile']
  assert flag_values(first.command, 'gin_bindings')[-1] == (
      'DataSelection.first_k=1')


def test_smoke_replication_reads_its_budget_from_the_smoke_files(tmp_path):
  runs = study_lib.plan(load('minatar_replication_smoke.gin'), str(tmp_path))
  assert [run.name for run in runs] == [
      'logging/breakout/seed_0'] + [
          f'offline/breakout/{agent}/{selection}/seed_0'
          for agent in ('dqn', 'qr_dqn', 'ensemble_dqn', 'rem')
          for selection in ('all', 'random_10pct', 'first_10pct')]
  assert runs[0].num_iterations == 10  # smoke_logging.gin overrides 10 too.
  assert {run.num_iterations for run in runs[1:]} == {2}


def test_atari_study_is_the_papers(tmp_path):
  study = load('atari_paper.gin', "Study.data_root='/data/dqn'")
  assert len(set(study.games)) == 60
  human = analysis_study.scores.load_reference('human')
  covered = [g for g in study.games if human.covers(f'atari:{g}')]
  # The Atari-57 table lacks five of the dataset's games (docs/ANALYSIS.md).
  assert sorted(set(study.games) - set(covered)) == [
      'AirRaid', 'Carnival', 'ElevatorAction', 'JourneyEscape', 'Pooyan']
  runs = study_lib.plan(study, str(tmp_path))
  staging = [run for run in runs if run.kind == 'staging']
  offline = [run for run in runs if run.kind == 'offline']
  assert (len(staging), len(offline)) == (300, 60 * 5 * 6 * 2)
  rem = next(r for r in offline if r.name == 'offline/Pong/rem/all/5x/seed_3')
  convert = next(r for r in staging if r.name == rem.requires[0])
  assert convert.command[1:5] == ('-m', 'batch_rl.data', 'convert',
                                  '/data/dqn/Pong/3/replay_logs')
  assert flag_values(rem.command, 'replay_dir') == [convert.run_dir]
  assert flag_values(rem.command, 'gin_files') == [
      'atari/rem.gin', 'atari/offline.gin']
  assert rem.labels['agent'] == 'rem 5x'
  assert rem.num_iterations == 1000
  assert rem.command[-1] == (
      '--gin_bindings=Runner.num_iterations=1000')
  one_x = next(r for r in offline if r.name == 'offline/Pong/rem/all/1x/seed_3')
  assert one_x.num_iterations == 200  # atari/offline.gin.
  assert one_x.command[-1] == '--gin_bindings=DataSelection.seed=3'
  assert one_x.requires == rem.requires  # One prepared copy per dataset.


def test_regularized_study_plans_nine_agents_on_four_selections_at_5x(
    tmp_path):
  from batch_rl.agents import registry  # pylint: disable=g-import-not-at-top
  runs = study_lib.plan(load('minatar_regularized.gin'), str(tmp_path))
  logging = [run for run in runs if run.kind == 'logging']
  offline = [run for run in runs if run.kind == 'offline']
  assert [run.name for run in logging] == [
      f'logging/{game}/seed_0'
      for game in ('breakout', 'freeway', 'space_invaders')]
  agents = {'dqn': 'dqn', 'qr_dqn': 'quantile', 'rem': 'rem',
            'bc': 'discrete_bc', 'cql': 'discrete_cql',
            'qr_cql': 'quantile_cql', 'bcq': 'discrete_bcq',
            'rem_cql': 'rem_cql', 'rem_bcq': 'rem_bcq'}
  selections = {'all': [], 'random_10pct': ['DataSelection.fraction=0.1'],
                'random_1pct': ['DataSelection.fraction=0.01'],
                'first_10pct': ['DataSelection.first_k=1']}
  assert len(offline) == 3 * 9 * 4
  assert {(run.labels['agent'], run.labels['selection']) for run in offline
          } == {(a, s) for a in agents for s in selections}
  cql_alphas = ['DiscreteCQLAgent.cql_alpha=4.0',
                'QuantileCQLAgent.cql_alpha=4.0', 'REMCQLAgent.cql_alpha=4.0']
  for run in offline:
    label, selection = run.labels['agent'], run.labels['selection']
    name = agents[label]
    assert name in registry.agent_names()
    assert flag_values(run.command, 'agent_name') == [name]
    assert flag_values(run.command, 'gin_files') == [
        f'minatar/{name}.gin', 'minatar/offline.gin', 'replication/offline.gin']
    # 5x the replication's 10 iterations: the budget of docs/RESULTS.md at
    # which offline REM beat the logging DQN.
    assert run.num_iterations == 50
    game = run.labels['game']
    assert run.requires == (f'logging/{game}/seed_0',)
    bindings = flag_values(run.command, 'gin_bindings')
    assert bindings[4:] == (
        selections[selection]
        + (cql_alphas if selection == 'random_1pct' else [])
        + ['Runner.num_iterations=50'])


@pytest.mark.parametrize('bindings, message', [
    (["Study.logging_agent='dqn'"], 'exactly one source of data'),
    (['Study.seeds=[]'], r'Study.seeds is empty'),
    (["Study.selections={'all': [], 'a/b': []}"], r"label 'a/b'"),
    (["Study.reference='logging'"], 'needs a logging stage'),
    (["Study.budgets={'half': 0}"], r"Study.budgets\['half'\] = 0"),
])
def test_study_errors_name_the_parameter(bindings, message):
  with pytest.raises(study_lib.StudyError, match=message):
    load('smoke.gin', *bindings)


def test_data_root_is_required_by_the_pattern(tmp_path):
  with pytest.raises(study_lib.StudyError, match='--data_root'):
    study_lib.plan(load('atari_paper.gin'), str(tmp_path))


def test_a_missing_gin_file_of_a_study_is_a_study_error():
  with pytest.raises(study_lib.StudyError, match=re.escape(
      'gin file classic/missing.gin not found (looked in the current '
      "directory and the repository's gin/ and root).")):
    study_lib.gin_literals(['classic/dqn.gin', 'classic/missing.gin'])
  assert study_lib.gin_literals(['classic/dqn.gin'], ['a.b=1'])['a.b'] == 1


def test_finished_iterations_decide_what_is_finished(tmp_path):
  run = study_lib.Run('r', 'offline', ('python',), str(tmp_path / 'r'), 3)
  assert RunDirectory(run.run_dir).finished_iterations() == 0
  write_metrics(run.run_dir, [1.0, 2.0])
  assert RunDirectory(run.run_dir).finished_iterations() == 2
  assert not study_lib.is_finished(run)
  write_metrics(run.run_dir, [1.0, 2.0, 3.0])
  assert study_lib.is_finished(run)


def run_cli(*args):
  return subprocess.run(
      [sys.executable, '-m', 'batch_rl.sweep', *args], capture_output=True,
      text=True, check=False)


def test_dry_run_prints_status_resources_and_commands(tmp_path):
  out = str(tmp_path)
  write_metrics(os.path.join(out, 'offline/CartPole-v1/dqn/all/seed_0'), [0.])
  write_metrics(os.path.join(out, 'offline/CartPole-v1/rem/all/seed_0'),
                [0., 0.])
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'), f'--out={out}',
                   '--dry_run', '--gpus_per_run=0.25')
  assert result.returncode == 0, result.stderr
  printed = result.stdout
  assert ('[2/5] offline/CartPole-v1/dqn/all/seed_0: resumes after iteration '
          '0 of 2 (1 CPU, 0.25 GPU, after staging/CartPole-v1/seed_0)'
          in printed)
  assert 'offline/CartPole-v1/rem/all/seed_0: finished' in printed
  assert 'python -m batch_rl.train --agent_name=rem' in printed
  assert printed.rstrip().endswith('3 of 4 runs to do.')
  assert not os.path.exists(os.path.join(out, 'study.json'))  # No Ray.


def test_cli_errors_exit_2_with_one_line(tmp_path):
  result = run_cli(os.path.join(STUDIES, 'atari_paper.gin'),
                   f'--out={tmp_path}', '--dry_run')
  assert result.returncode == 2
  assert result.stderr.startswith('error: Study.replay_dir')
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'), '--dry_run')
  assert (result.returncode, result.stderr) == (
      2, "error: missing flag --out (the study's output).\n")
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'), f'--out={tmp_path}',
                   '--dry_run', '--gpus_per_run=1.5')
  assert (result.returncode, result.stderr) == (
      2, 'error: --gpus_per_run=1.5: Ray shares a GPU between runs (a value '
      'up to 1, e.g. 0.25) or gives a run whole GPUs (2, 3, ...), not '
      'both.\n')


def sweep_in_process(*args):
  """`python -m batch_rl.sweep ARGS` in this process: its exit code."""
  argv = sweep_main.FLAGS(['sweep', *args])
  try:
    return sweep_main.main(argv)
  finally:
    sweep_main.FLAGS.unparse_flags()


@pytest.mark.parametrize('args, message', [
    (['smoke.gin', 'atari_paper.gin', '--out=OUT'],
     'expected one study file, e.g. python -m batch_rl.sweep '
     'gin/studies/minatar_replication.gin --out=DIR; got '
     "['STUDIES/smoke.gin', 'STUDIES/atari_paper.gin']."),
    (['smoke.gin', '--out=OUT', '--cpus_per_run=0'],
     '--cpus_per_run=0 --gpus_per_run=0: expected a positive CPU share and a '
     'non-negative GPU share.'),
    (['smoke.gin', '--out=gs://bucket/study',
      '--gin_bindings=Study.convert_data=False'],
     '--out=gs://bucket/study is a URL: pass --run_logs, a directory on a '
     'filesystem every worker can write to.'),
])
def test_cli_flag_errors_name_the_flag(tmp_path, capsys, args, message):
  args = [os.path.join(STUDIES, a) if a.endswith('.gin') else
          a.replace('OUT', str(tmp_path)) for a in args]
  assert sweep_in_process(*args) == 2
  assert capsys.readouterr().err == (
      f'error: {message.replace("STUDIES", STUDIES)}\n')


def test_data_root_flag_fills_the_pattern(tmp_path, capsys):
  assert sweep_in_process(os.path.join(STUDIES, 'atari_paper.gin'),
                          f'--out={tmp_path}', '--data_root=/data/dqn',
                          '--dry_run') == 0
  assert (f'python -m batch_rl.data convert /data/dqn/Pong/1/replay_logs '
          f'{tmp_path}/staged_data/Pong/seed_1\n') in capsys.readouterr().out


def test_an_unwritable_out_is_one_error_line(tmp_path):
  not_a_folder = tmp_path / 'file'
  not_a_folder.write_text('')
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'),
                   f'--out={not_a_folder}/study', '--noreport')
  assert (result.returncode, result.stderr) == (
      2, f"error: [Errno 20] Not a directory: '{not_a_folder}/study'\n")


def test_a_damaged_study_json_is_named_in_one_line(tmp_path):
  study_json = tmp_path / study_directory.STUDY_FILE
  study_json.write_text('{"runs": [')  # A write cut short.
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'), f'--out={tmp_path}')
  assert result.returncode == 2
  (line,) = result.stderr.splitlines()
  assert line.startswith(f'error: {study_json}: not valid JSON (')
  assert 'repair it, or remove it' in line
  assert study_json.read_text() == '{"runs": ['  # Left as it was.


def test_time_left_comes_from_the_runs_measured_here():
  now = [100.0]
  board = progress.Board({'a': 'offline', 'b': 'offline', 'c': 'offline',
                          'd': 'offline', 's': 'staging'},
                         skipped={'z': 'offline'}, clock=lambda: now[0])
  board.started({'s': 100.0})
  assert board.time_left() is None  # Nothing measured yet.
  board.finished('s', 5.0)
  board.started({'a': 105.0, 'b': 105.0})
  now[0] = 125.0
  assert board.time_left() is None  # No offline run has finished.
  board.finished('a', 20.0)
  board.failed('b')
  board.started({'c': 125.0})
  now[0] = 130.0
  # c: 20 - 5 s left, d: 20 s; two ran at once.
  assert board.time_left() == pytest.approx((15.0 + 20.0) / 2)
  table = board.table()
  assert re.search(r'offline +1 +1 +1 +1 +1 +20s', table)
  assert re.search(r'staging +1 +0 +0 +0 +0 +5s', table)
  assert table.endswith('elapsed 30s, time left: about 18s')


@pytest.mark.parametrize('seconds, printed', [
    (44.6, '45s'), (59.4, '59s'), (60, '1m00s'), (725, '12m05s'),
    (3599.6, '1h00m'), (11220, '3h07m'), (90061, '25h01m')])
def test_durations_print_in_the_two_largest_units(seconds, printed):
  assert progress.format_duration(seconds) == printed


# A local Ray instance with two CPUs and one (logical) GPU, shared by the
# tests below.
@pytest.fixture(scope='module')
def local_ray():
  execution.init_ray(None, num_cpus=2, num_gpus=1, dashboard=False)
  yield
  ray.shutdown()


def worker_pids(log_file):
  with open(log_file) as f:
    return [int(p) for p in re.findall(r'worker pid (\d+)', f.read())]


def test_smoke_study_on_ray_survives_a_killed_worker_and_a_failed_run(
    tmp_path, local_ray, monkeypatch, capsys):
  out = str(tmp_path / 'study')
  log_dir = os.path.join(out, 'logs')
  runs = study_lib.plan(load('smoke.gin'), out)
  assert [r.kind for r in runs] == ['staging'] + ['offline'] * 4
  # The run to kill gets 4 iterations, time to kill it after the first.
  target = runs[-1]
  runs[-1] = dataclasses.replace(
      target, num_iterations=4,
      command=target.command + ('--gin_bindings='
                                'Runner.num_iterations=4',))
  broken = study_lib.Run(
      'offline/broken', 'offline',
      ('python', '-c', "print('the broken run'); raise SystemExit(3)"),
      os.path.join(out, 'offline/broken'), 1)
  after_broken = study_lib.Run(
      'offline/after_broken', 'offline', ('python', '-c', ''),
      os.path.join(out, 'offline/after_broken'), 1, requires=(broken.name,))
  runs += [broken, after_broken]
  printed = []
  outcome = {}
  thread = threading.Thread(target=lambda: outcome.update(
      result=execution.execute(runs, log_dir, max_retries=2,
                               progress_every_s=5, printer=printed.append)))
  thread.start()
  target_log = execution.log_path(log_dir, target.name)
  deadline = time.time() + 400
  while RunDirectory(target.run_dir).finished_iterations() < 1:
    assert time.time() < deadline and thread.is_alive(), printed
    time.sleep(0.05)
  (pid,) = worker_pids(target_log)
  os.kill(pid, signal.SIGKILL)
  thread.join(timeout=600)
  result = outcome['result']

  # The killed run was retried on another worker and resumed.
  assert len(worker_pids(target_log)) == 2
  with open(target_log) as f:
    assert f'Resuming {target.run_dir} after iteration' in f.read()
  metrics = run_logs.read_metrics(target.run_dir)
  assert metrics['iteration'].tolist() == [0, 1, 2, 3]
  # The others finished; the broken run is reported with its log's end.
  assert sorted(result.finished) == sorted(r.name for r in runs[:5])
  assert all(study_lib.is_finished(r) for r in runs[1:5])
  assert set(result.failed) == {broken.name, after_broken.name}
  assert 'exited with status 3' in result.failed[broken.name]
  assert result.failed[broken.name].rstrip().endswith('the broken run')
  assert result.failed[after_broken.name] == (
      f'not run: {broken.name} failed (exited with status 3).')
  assert not os.path.exists(execution.log_path(log_dir, after_broken.name))
  summary = execution.failure_summary(result)
  assert summary.startswith('2 run(s) failed:')
  assert printed[-1].splitlines()[2].split()[:5] == [
      'offline', '4', '0', '2', '0']
  # The converted copy was made once and read by every run.
  with open(os.path.join(runs[1].run_dir, run_logs.RUN_INFO)) as f:
    assert json.load(f)['replay_dir'] == runs[0].run_dir

  # Rerunning skips every finished run: nothing starts.
  rerun = execution.execute(runs[:5], log_dir, printer=printed.append)
  assert (rerun.finished, rerun.failed) == ([], {})
  assert sorted(rerun.skipped) == sorted(r.name for r in runs[1:5])

  # The CLI on the finished study starts nothing and writes the report of
  # the study's output as it is.
  monkeypatch.setattr(execution, 'init_ray', None)  # Ray is not needed.
  capsys.readouterr()
  assert sweep_in_process(os.path.join(STUDIES, 'smoke.gin'),
                          f'--out={out}') == 0
  printed = capsys.readouterr().out.splitlines()
  assert printed[0] == 'All 4 runs of the study are finished.'
  path = os.path.join(out, 'report', report.REPORT)
  assert printed[-1] == f'wrote {path}'
  with open(os.path.join(os.path.dirname(path), report.SCORES)) as f:
    rows = list(csv.DictReader(f))
  assert sorted(row['run_dir'] for row in rows) == sorted(
      r.run_dir for r in runs[1:5])


def test_runs_killed_or_ending_early_are_reported_with_their_logs(
    tmp_path, local_ray):
  log_dir = str(tmp_path / 'logs')
  killed = study_lib.Run(
      'offline/killed', 'offline',
      ('python', '-c', "import os; print('about to die', flush=True); "
       'os.kill(os.getpid(), 9)'), str(tmp_path / 'killed'))
  early = study_lib.Run('offline/early', 'offline', ('python', '-c', ''),
                        str(tmp_path / 'early'), num_iterations=2)
  outcome = execution.execute([killed, early], log_dir, max_retries=0,
                              printer=lambda _: None)
  killed_log = execution.log_path(log_dir, killed.name)
  report = outcome.failed[killed.name]
  assert report.startswith(
      f'RunInterrupted: offline/killed: killed by signal 9; {killed_log} '
      'ends:\n')
  assert report.rstrip().endswith('about to die')
  assert outcome.failed[early.name].startswith(
      'exited normally after 0 of 2 iterations')
  # A task that failed before its run wrote a log (e.g. on a node that
  # cannot import batch_rl) says so.
  assert execution.log_tail(str(tmp_path / 'never.log')) == '(no log)\n'


def test_a_study_whose_runs_failed_exits_1_naming_them(
    tmp_path, local_ray, monkeypatch, capsys):
  monkeypatch.setattr(execution, 'init_ray', lambda *_: None)  # Ray is up.
  sigterm = signal.getsignal(signal.SIGTERM)
  missing = tmp_path / 'missing'
  try:
    code = sweep_in_process(
        os.path.join(STUDIES, 'smoke.gin'), f'--out={tmp_path / "study"}',
        f'--gin_bindings=Study.replay_dir="{missing}"', '--max_retries=0')
  finally:
    signal.signal(signal.SIGTERM, sigterm)
  assert code == 1
  printed = capsys.readouterr()
  assert printed.out.endswith('0 run(s) done, 0 finished before, 5 failed.\n')
  lines = printed.err.splitlines()
  assert lines[0] == '5 run(s) failed:'
  assert lines[1].startswith(
      '- staging/CartPole-v1/seed_0: exited with status 2; ')
  assert any(str(missing) in line and line.startswith('error: ')
             for line in lines)
  assert ('- offline/CartPole-v1/dqn/all/seed_0: not run: '
          'staging/CartPole-v1/seed_0 failed (exited with status 2).') in lines
  assert not os.path.exists(tmp_path / 'study' / 'report')


def test_study_json_of_parts_adds_up_to_the_whole(tmp_path):
  seed_0 = load('minatar_replication_smoke.gin')
  seed_2 = load('minatar_replication_smoke.gin', 'Study.seeds=[2]')
  first = study_lib.describe(seed_0, study_lib.plan(seed_0, str(tmp_path)))
  both = study_lib.describe(seed_2, study_lib.plan(seed_2, str(tmp_path)),
                            json.loads(json.dumps(first)))
  assert sorted({entry['seed'] for entry in both['runs']}) == [0, 2]
  assert len(both['runs']) == 2 * len(first['runs'])
  rem = next(e for e in both['runs']
             if e['name'] == 'offline/breakout/rem/all/seed_2')
  assert rem == {'name': rem['name'], 'kind': 'offline', 'num_iterations': 2,
                 'game': 'breakout', 'environment': 'minatar:breakout',
                 'seed': 2, 'agent': 'rem', 'selection': 'all',
                 'budget': '1x', 'max_steps_per_episode': 500}


def test_runs_to_start_are_the_unfinished_and_the_data_they_need(tmp_path):
  runs = study_lib.plan(load('minatar_replication_smoke.gin'), str(tmp_path))
  logging, offline = runs[0], runs[1:]
  assert study_lib.runs_to_start(runs) == runs
  write_metrics(logging.run_dir, [0.0] * 10)
  for run in offline[1:]:
    write_metrics(run.run_dir, [0.0, 0.0])
  assert study_lib.runs_to_start(runs) == [offline[0]]
  write_metrics(offline[0].run_dir, [0.0, 0.0])
  assert not study_lib.runs_to_start(runs)
  # Staging runs start only for a run that needs them.
  smoke = study_lib.plan(load('smoke.gin'), str(tmp_path / 'smoke'))
  for run in smoke[1:4]:
    write_metrics(run.run_dir, [0.0, 0.0])
  assert study_lib.runs_to_start(smoke) == [smoke[0], smoke[4]]
  write_metrics(smoke[4].run_dir, [0.0, 0.0])
  assert not study_lib.runs_to_start(smoke)
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'),
                   f'--out={tmp_path / "smoke"}', '--noreport')
  assert (result.returncode, result.stdout) == (
      0, 'All 4 runs of the study are finished.\n')


def test_sigterm_stops_the_driver_with_the_resume_hint(tmp_path):
  out = str(tmp_path / 'study')
  driver = subprocess.Popen(
      [sys.executable, '-m', 'batch_rl.sweep',
       os.path.join(STUDIES, 'smoke.gin'), f'--out={out}', '--num_cpus=1',
       '--noreport'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  first_log = execution.log_path(os.path.join(out, 'logs'),
                                 'staging/CartPole-v1/seed_0')
  deadline = time.time() + 300
  while not os.path.exists(first_log):  # Ray is up and a run started.
    assert time.time() < deadline and driver.poll() is None
    time.sleep(0.1)
  driver.send_signal(signal.SIGTERM)
  _, stderr = driver.communicate(timeout=120)
  assert driver.returncode == 143, stderr
  assert stderr.rstrip().splitlines()[-1] == (
      'interrupted: rerun the same command to resume the study.')
  assert 'SIGTERM received' not in stderr  # Not Ray's stack dump.


# A run that records when it ran and the GPUs it sees: it marks its start in
# FOLDER, waits (up to PATIENCE s) until EXPECTED runs have started, holds
# HOLD s, and writes its times.
PACKED_RUN = r"""
import json, os, sys, time
folder, name, expected, patience, hold = sys.argv[1:]
start = time.time()
open(os.path.join(folder, name + '.started'), 'w').close()
while (sum(f.endswith('.started') for f in os.listdir(folder)) < int(expected)
       and time.time() < start + float(patience)):
  time.sleep(0.02)
time.sleep(float(hold))
with open(os.path.join(folder, name + '.json'), 'w') as f:
  json.dump({'start': start, 'end': time.time(),
             'visible_gpus': os.environ.get('CUDA_VISIBLE_DEVICES')}, f)
"""


@pytest.mark.parametrize('gpus_per_run, expected, hold, most, gpus', [
    (0.25, 4, 0.0, 4, '0'),  # Four runs share the GPU.
    (0.5, 2, 2.0, 2, '0'),  # Two at a time (a third would overlap a hold).
    (0.0, 4, 0.0, 4, ''),  # CPU runs (0.5 CPU each) see no GPU.
])
def test_gpu_shares_pack_runs_on_the_gpu_ray_assigns(
    tmp_path, local_ray, gpus_per_run, expected, hold, most, gpus):
  folder = str(tmp_path)
  runs = [study_lib.Run(
      f'offline/packed_{i}', 'offline',
      ('python', '-c', PACKED_RUN, folder, str(i), str(expected), '120',
       str(hold)), os.path.join(folder, f'run_{i}')) for i in range(4)]
  log_dir = os.path.join(folder, 'logs')
  outcome = execution.execute(
      runs, log_dir, execution.Resources(num_cpus=0.5, num_gpus=gpus_per_run),
      printer=lambda _: None)
  assert sorted(outcome.finished) == [run.name for run in runs]
  times = []
  for i, run in enumerate(runs):
    with open(os.path.join(folder, f'{i}.json')) as f:
      record = json.load(f)
    times.append((record['start'], record['end']))
    # The run sees the GPU Ray assigned to its task (the log's header).
    with open(execution.log_path(log_dir, run.name)) as f:
      assigned = re.search(r', GPUs (\S+)\n', f.read()).group(1)
    assert assigned == (gpus or 'none')
    assert record['visible_gpus'] == gpus
  at_once = max(sum(start <= t < end for start, end in times)
                for t, _ in times)
  assert at_once == most


def test_a_run_no_node_can_hold_fails_at_once_naming_the_flag(
    tmp_path, local_ray):
  runs = study_lib.plan(load('smoke.gin'), str(tmp_path))
  with pytest.raises(study_lib.StudyError, match=re.escape(
      '--gpus_per_run=2: no node of the Ray cluster can hold a run (it has 2 '
      'CPUs and 1 GPUs, its largest node 2 CPUs and 1 GPUs); ask for less')):
    execution.execute(runs, str(tmp_path / 'logs'),
                      execution.Resources(num_cpus=1, num_gpus=2))
  address = ray.get_runtime_context().gcs_address
  result = run_cli(os.path.join(STUDIES, 'smoke.gin'), f'--out={tmp_path}',
                   f'--address={address}', '--cpus_per_run=3',
                   '--gpus_per_run=0.5', '--noreport')
  assert result.returncode == 2, result.stderr
  # Ray's own lines (joining the cluster), then ours.
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error:')]
  assert errors == [result.stderr.splitlines()[-1]]
  assert errors[0].startswith(
      'error: --cpus_per_run=3: no node of the Ray cluster can hold a run')
