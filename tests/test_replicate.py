"""The replication driver: its plan, skip/resume logic, reference, smoke run."""

import csv
import json
import os
import subprocess

import pandas as pd
import pytest

from batch_rl.analysis import runs as run_logs
from batch_rl.data import dopamine_replay
from batch_rl.experiments import replicate

SMOKE = replicate.SCALES['smoke']
METRIC_ROW = dict(gradient_steps=1, eval_episodes=1, eval_return_std=0.0,
                  train_loss=0.0, wall_time_s=0.1)


def write_run_log(run, returns):
  """A run directory as the runner leaves it after len(returns) iterations."""
  os.makedirs(run.base_dir, exist_ok=True)
  with open(os.path.join(run.base_dir, run_logs.RUN_INFO), 'w') as f:
    json.dump({'agent_name': 'dqn', 'environment': f'minatar:{run.game}',
               'seed': run.seed}, f)
  pd.DataFrame([dict(iteration=i, eval_return_mean=r, **METRIC_ROW)
                for i, r in enumerate(returns)]).to_csv(
                    os.path.join(run.base_dir, run_logs.METRICS), index=False)


def find(runs, name):
  (run,) = [run for run in runs if run.name == os.path.join(*name.split('/'))]
  return run


def flag_values(command, flag):
  return [arg.split('=', 1)[1] for arg in command
          if arg.startswith(f'--{flag}=')]


def test_plan_has_every_run_with_its_command(tmp_path):
  runs = replicate.plan(str(tmp_path), SMOKE, ('breakout', 'freeway'),
                        seeds=range(2))
  assert [r.stage for r in runs] == ['logging'] * 4 + ['offline'] * 48
  assert len({r.base_dir for r in runs}) == len(runs)
  # Seed-major: all of seed 0 before seed 1, within each stage.
  assert [r.seed for r in runs[:4]] == [0, 0, 1, 1]
  assert {r.seed for r in runs[4:28]} == {0}

  logging = find(runs, 'logging/freeway/seed_1')
  assert logging.command[1:3] == ('-m', 'batch_rl.log_data')
  assert flag_values(logging.command, 'gin_bindings') == [
      'create_online_runner.environment_name="minatar:freeway"',
      'create_online_runner.seed=1']
  assert logging.num_iterations == 10  # smoke_logging.gin overrides 10 too.

  rem = find(runs, 'offline/freeway/rem/random_10pct/seed_1')
  assert rem.requires == logging
  assert rem.command[1:3] == ('-m', 'batch_rl.train')
  # The agent's name comes from its gin file alone.
  assert flag_values(rem.command, 'agent_name') == []
  assert flag_values(rem.command, 'replay_dir') == [
      os.path.join(logging.base_dir, 'replay_logs')]
  assert flag_values(rem.command, 'gin_files') == [
      'minatar/rem.gin', 'minatar/offline.gin', 'replication/offline.gin',
      'replication/smoke_offline.gin']
  assert flag_values(rem.command, 'gin_bindings') == [
      'create_runner.environment_name="minatar:freeway"',
      'create_runner.seed=1',
      'create_runner.selection=@DataSelection()',
      'DataSelection.seed=1', 'DataSelection.fraction=0.1']
  assert rem.num_iterations == 2  # smoke_offline.gin, read after offline.gin.
  # 10 logged checkpoints: the first 10% is the first one.
  first = find(runs, 'offline/freeway/qr_dqn/first_10pct/seed_0')
  assert 'minatar/quantile.gin' in flag_values(first.command, 'gin_files')
  assert flag_values(first.command, 'gin_bindings')[-1] == (
      'DataSelection.first_k=1')
  full = find(runs, 'offline/freeway/dqn/all/seed_0')
  assert flag_values(full.command, 'gin_bindings')[-1] == (
      'DataSelection.seed=0')


def test_full_scale_budget_and_estimate(tmp_path):
  runs = replicate.plan(str(tmp_path), replicate.SCALES['full'],
                        replicate.SCALES['full'].games, seeds=range(3))
  assert len(runs) == 5 * 3 + 5 * 4 * 3 * 3
  logging = runs[0]
  offline = runs[-1]
  assert (logging.num_iterations, offline.num_iterations) == (10, 10)
  assert logging.estimated_s == pytest.approx(replicate.STARTUP_S + 10 * (
      10_000 * replicate.ONLINE_STEP_S + 2000 * replicate.EVALUATION_STEP_S))
  assert offline.estimated_s == pytest.approx(replicate.STARTUP_S + 10 * (
      1000 * replicate.GRADIENT_STEP_S + 1000 * replicate.EVALUATION_STEP_S))


def test_budget_without_binding_names_the_files():
  with pytest.raises(replicate.ReplicationError,
                     match=r'minatar/dqn.gin: no binding of '
                     r'Runner.num_iterations'):
    replicate.Budget.from_gin(['minatar/dqn.gin'])


def test_execute_skips_finished_runs_and_resumes_the_rest(tmp_path,
                                                          monkeypatch):
  runs = replicate.plan(str(tmp_path), SMOKE, ('breakout',), seeds=[0],
                        agents=['dqn'])
  logging, first, second, third = runs
  write_run_log(logging, [0.0] * 10)
  write_run_log(second, [0.0])
  assert [r.finished for r in runs] == [True, False, False, False]
  assert second.remaining_s() == pytest.approx(second.estimated_s / 2)
  launched = []

  def fake_runner(command, stdout, stderr):
    """Finishes the run as the runner would, from where it stopped."""
    del stdout, stderr
    run = next(r for r in runs if r.command == tuple(command))
    launched.append(run.name)
    write_run_log(run, [1.0] * run.num_iterations)
    return 0

  monkeypatch.setattr(subprocess, 'call', fake_runner)
  replicate.execute(runs, str(tmp_path))
  assert launched == [first.name, second.name, third.name]
  assert all(r.finished for r in runs)
  with open(os.path.join(tmp_path, 'logs',
                         second.name.replace(os.sep, '__') + '.log')) as f:
    assert f.read().startswith('$ ')
  launched.clear()
  replicate.execute(runs, str(tmp_path))
  assert not launched


def test_execute_stops_at_a_failed_run(tmp_path, monkeypatch):
  runs = replicate.plan(str(tmp_path), SMOKE, ('breakout',), seeds=[0],
                        agents=['dqn'])
  write_run_log(runs[0], [0.0] * 10)

  def crash(command, stdout, stderr):
    del command, stderr
    stdout.write('Traceback: out of memory\n')
    return 1

  monkeypatch.setattr(subprocess, 'call', crash)
  with pytest.raises(replicate.ReplicationError,
                     match=r'(?s)offline/breakout/dqn/all/seed_0 exited with '
                     r'status 1 after 0 of 2 iterations.*out of memory'):
    replicate.execute(runs, str(tmp_path))


def test_offline_stage_needs_the_logged_replay(tmp_path, capsys):
  assert replicate.main(['--out', str(tmp_path), '--scale', 'smoke',
                         '--only', 'offline']) == 2
  assert 'logging/breakout/seed_0, which is not finished' in (
      capsys.readouterr().err)


def test_reference_normalizes_to_the_logging_runs(tmp_path):
  runs = replicate.plan(str(tmp_path), SMOKE, ('breakout', 'freeway'),
                        seeds=range(2), agents=[])
  best = {('breakout', 0): 3.0, ('breakout', 1): 5.0, ('freeway', 0): 0.5}
  for run in runs:
    if (run.game, run.seed) in best:  # freeway seed 1 is unfinished.
      score = best[run.game, run.seed]
      write_run_log(run, [0.0, score] + [score / 2] * 8)
  write_run_log(find(runs, 'logging/freeway/seed_1'), [9.0])
  budget = replicate.Budget.from_gin(SMOKE.offline_gin_files)
  with open(os.path.join(tmp_path, 'random_scores.csv'), 'w') as f:
    f.write('environment,random,episodes,seed,max_steps_per_episode\n')
    for environment, score in (('minatar:breakout', 0.7),
                               ('minatar:freeway', 0.5)):
      f.write(f'{environment},{score},{SMOKE.random_policy_episodes},0,'
              f'{budget.max_steps_per_episode}\n')

  path = replicate.write_reference(str(tmp_path), SMOKE, runs)
  reference = pd.read_csv(path, comment='#')
  assert list(reference.columns) == ['environment', 'random', 'dqn']
  # DQN's best iteration, averaged over the finished seeds; freeway's DQN
  # equals random, so it cannot normalize and is left out.
  assert reference.to_dict('records') == [
      {'environment': 'minatar:breakout', 'random': 0.7, 'dqn': 4.0}]


def test_random_policy_score_is_seeded_and_cached(tmp_path):
  score = replicate.random_policy_score('minatar:breakout', 30, 0, 500)
  assert score == replicate.random_policy_score('minatar:breakout', 30, 0, 500)
  assert score != replicate.random_policy_score('minatar:breakout', 30, 1, 500)
  assert replicate.random_policy_scores(
      str(tmp_path), ['minatar:breakout'], 30, 500) == {
          'minatar:breakout': replicate.random_policy_score(
              'minatar:breakout', 30, replicate.RANDOM_POLICY_SEED, 500)}
  with open(os.path.join(tmp_path, 'random_scores.csv')) as f:
    (row,) = csv.DictReader(f)
  assert row['episodes'] == '30'


def test_smoke_replication_end_to_end(tmp_path, capfd):
  out = str(tmp_path)
  argv = ['--out', out, '--scale', 'smoke', '--agents', 'rem',
          '--selections', 'first_10pct']
  assert replicate.main(argv) == 0
  runs = replicate.plan(out, SMOKE, SMOKE.games, [0], ['rem'], ['first_10pct'])
  logging, offline = runs
  assert logging.finished and offline.finished

  # 10 iterations of 200 slots: 10 full checkpoints and the remainder.
  replay_dir = os.path.join(logging.base_dir, 'replay_logs')
  assert dopamine_replay.list_checkpoints(replay_dir) == list(range(11))
  with open(os.path.join(offline.base_dir, run_logs.RUN_INFO)) as f:
    info = json.load(f)
  assert info['data_selection']['first_k'] == 1
  assert 190 <= info['transitions'] <= 200  # One checkpoint's, less invalid.

  reference = pd.read_csv(os.path.join(out, 'reference.csv'), comment='#')
  dqn_best = run_logs.read_metrics(logging.base_dir)['eval_return_mean'].max()
  if len(reference):  # Empty only if the tiny DQN scored exactly random.
    assert reference['dqn'].tolist() == [dqn_best]
  # The registered name the gin file binds is the report's label.
  assert 'agent_label' not in info
  with open(os.path.join(out, 'report', 'report.md')) as f:
    assert f'{info["agent_name"]} [first 1 ckpts]' in f.read()

  capfd.readouterr()
  assert replicate.main(argv) == 0
  assert '2 of 2 runs already finished.' in capfd.readouterr().out


def test_seed_ids_plan_exactly_those_seeds(tmp_path, capsys):
  assert replicate.main(['--out', str(tmp_path), '--scale', 'smoke',
                         '--seed_ids', '2', '--selections', 'all',
                         '--dry_run']) == 0
  printed = capsys.readouterr().out
  assert 'seed_2' in printed and 'seed_0' not in printed
  assert replicate.main(['--out', str(tmp_path), '--seed_ids', '-1',
                         '--dry_run']) == 2
