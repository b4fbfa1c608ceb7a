"""The analysis of a study's output: its runs, its logging reference, the
score tables as CSV, and the random policy's score."""

import csv
import json
import os
import re

import pandas as pd
import pytest

from batch_rl import study_directory
from batch_rl.analysis import random_policy
from batch_rl.analysis import report
from batch_rl.analysis import runs as run_logs
from batch_rl.analysis import study
from batch_rl.analysis.errors import AnalysisError

METRIC_ROW = dict(gradient_steps=1, eval_episodes=1, eval_return_std=0.0,
                  train_loss=0.0, wall_time_s=0.1)
CAP = 100
EPISODES = 5


def write_run(out, name, environment, seed, returns, agent='dqn'):
  run_dir = os.path.join(out, name)
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, run_logs.RUN_INFO), 'w') as f:
    json.dump({'agent_name': agent, 'environment': environment,
               'seed': seed}, f)
  pd.DataFrame([dict(iteration=i, eval_return_mean=r, **METRIC_ROW)
                for i, r in enumerate(returns)]).to_csv(
                    os.path.join(run_dir, run_logs.METRICS), index=False)


def study_entry(name, kind, game, seed, agent, iterations):
  return {'name': name, 'kind': kind, 'num_iterations': iterations,
          'game': game, 'environment': f'minatar:{game}', 'seed': seed,
          'agent': agent, 'max_steps_per_episode': (
              CAP if kind == 'offline' else None)}


@pytest.fixture
def study_dir(tmp_path):
  """Two games x two seeds logged; some offline runs finished, some not."""
  out = str(tmp_path / 'study')
  entries = []
  best = {('breakout', 0): 3.0, ('breakout', 1): 5.0, ('freeway', 0): 7.0}
  for game in ('breakout', 'freeway'):
    for seed in (0, 1):
      name = f'logging/{game}/seed_{seed}'
      entries.append(study_entry(name, 'logging', game, seed, 'dqn', 3))
      if (game, seed) in best:
        write_run(out, name, f'minatar:{game}', seed,
                  [0.0, best[game, seed], 1.0])
      else:  # Unfinished: left out of the reference.
        write_run(out, name, f'minatar:{game}', seed, [9.0])
      offline = f'offline/{game}/rem/all/seed_{seed}'
      entries.append(study_entry(offline, 'offline', game, seed, 'rem', 2))
      if seed == 0:
        write_run(out, offline, f'minatar:{game}', seed, [1.0, 2.0],
                  agent='multi_head_dqn')
  os.makedirs(os.path.join(out, 'offline/breakout/rem/all/seed_1'))
  with open(os.path.join(out, study_directory.STUDY_FILE), 'w') as f:
    json.dump({'name': 'test', 'reference': 'logging',
               'random_policy_episodes': EPISODES, 'runs': entries}, f)
  return out


def test_study_stands_for_its_offline_runs_and_logging_reference(study_dir):
  run_dirs, reference, labels = study.resolve([study_dir], None)
  assert run_dirs == [os.path.join(study_dir, f'offline/{g}/rem/all/seed_0')
                      for g in ('breakout', 'freeway')]
  assert labels == {run_dir: 'rem' for run_dir in run_dirs}
  assert reference == os.path.join(study_dir, 'reference.csv')
  table = pd.read_csv(reference, comment='#')
  random = {g: random_policy.random_policy_score(
      f'minatar:{g}', EPISODES, random_policy.SEED, CAP)
            for g in ('breakout', 'freeway')}
  # The logging runs' best iterations, averaged over the finished seeds.
  assert table.to_dict('records') == [
      {'environment': 'minatar:breakout', 'random': random['breakout'],
       'dqn': 4.0},
      {'environment': 'minatar:freeway', 'random': random['freeway'],
       'dqn': 7.0}]
  with open(os.path.join(study_dir, random_policy.RANDOM_SCORES)) as f:
    assert len(list(csv.DictReader(f))) == 2
  # An explicit reference wins over the study's.
  assert study.resolve([study_dir], 'human')[1] == 'human'


def test_report_of_a_study_writes_scores_and_constants(study_dir, tmp_path):
  out = str(tmp_path / 'report')
  report.write_report([study_dir], out)
  reference = pd.read_csv(os.path.join(study_dir, 'reference.csv'),
                          comment='#')
  constants = pd.read_csv(os.path.join(out, report.NORMALIZATION))
  assert constants.to_dict('records') == reference.to_dict('records')
  per_game = pd.read_csv(os.path.join(out, report.PER_GAME_SCORES))
  breakout = per_game[per_game['environment'] == 'minatar:breakout']
  (row,) = breakout.to_dict('records')
  random = float(reference['random'][0])
  # Named by the study's label, not the run's registered agent name.
  assert (row['variant'], row['runs'], row['raw_mean']) == ('rem', 1, 2.0)
  low, high = min(random, 4.0), max(random, 4.0)
  assert row['normalized_mean'] == pytest.approx((2.0 - low) / (high - low))
  scores = pd.read_csv(os.path.join(out, report.SCORES))
  assert scores['raw'].tolist() == [2.0, 2.0]
  with open(os.path.join(out, report.REPORT)) as f:
    assert '`normalization.csv`' in f.read()


def test_study_without_offline_results_says_so(study_dir):
  with open(os.path.join(study_dir, study_directory.STUDY_FILE)) as f:
    description = json.load(f)
  description['runs'] = [r for r in description['runs']
                         if r['kind'] == 'logging']
  with open(os.path.join(study_dir, study_directory.STUDY_FILE), 'w') as f:
    json.dump(description, f)
  with pytest.raises(AnalysisError, match='no offline run of the study'):
    study.resolve([study_dir], None)


def _rewrite_study(study_dir, change):
  path = os.path.join(study_dir, study_directory.STUDY_FILE)
  with open(path) as f:
    description = json.load(f)
  for run in description['runs']:
    change(run)
  with open(path, 'w') as f:
    json.dump(description, f)
  return path


def test_a_logging_reference_without_finished_logging_runs_says_so(
    study_dir):
  for game in ('breakout', 'freeway'):
    for seed in (0, 1):
      write_run(study_dir, f'logging/{game}/seed_{seed}', f'minatar:{game}',
                seed, [1.0])
  with pytest.raises(AnalysisError, match=re.escape(
      f"{study_dir}: no logging run of the study has finished; its reference "
      "'logging' needs them.")):
    study.resolve([study_dir], None)


def test_a_logging_reference_needs_one_episode_cap(study_dir):
  def change(run):
    if run['name'] == 'offline/freeway/rem/all/seed_0':
      run['max_steps_per_episode'] = 2 * CAP
  path = _rewrite_study(study_dir, change)
  with pytest.raises(AnalysisError, match=re.escape(
      f'{path}: the offline runs have episode caps {CAP}, {2 * CAP}; the '
      'random policy is measured with the one cap they share.')):
    study.resolve([study_dir], None)
  _rewrite_study(study_dir, lambda run: run.update(max_steps_per_episode=None))
  with pytest.raises(AnalysisError, match='have episode caps none; the'):
    study.resolve([study_dir], None)


def test_a_game_where_the_logging_agent_scores_as_random_is_left_out(
    study_dir, capsys):
  random = random_policy.random_policy_score(
      'minatar:freeway', EPISODES, random_policy.SEED, CAP)
  write_run(study_dir, 'logging/freeway/seed_0', 'minatar:freeway', 0,
            [random] * 3)
  reference = study.resolve([study_dir], None)[1]
  assert (f'minatar:freeway: the logging dqn scores what a random policy '
          f'does ({random:g}); left out of the normalized scores.'
          in capsys.readouterr().out)
  assert pd.read_csv(reference, comment='#')['environment'].tolist() == [
      'minatar:breakout']


@pytest.mark.parametrize('content, message', [
    ('{"runs": [', 'not valid JSON'),
    ('[]', 'expected a JSON object with a list "runs"'),
    ('{"name": "test"}', 'expected a JSON object with a list "runs"'),
])
def test_a_damaged_study_json_is_named(study_dir, content, message):
  path = os.path.join(study_dir, study_directory.STUDY_FILE)
  with open(path, 'w') as f:
    f.write(content)
  with pytest.raises(AnalysisError) as error:
    study.resolve([study_dir], None)
  assert str(error.value).startswith(f'{path}: {message}')


def test_random_policy_score_is_seeded_and_cached(tmp_path, capsys):
  score = random_policy.random_policy_score('minatar:breakout', 30, 0, 500)
  assert score == random_policy.random_policy_score(
      'minatar:breakout', 30, 0, 500)
  assert score != random_policy.random_policy_score(
      'minatar:breakout', 30, 1, 500)
  assert random_policy.random_policy_scores(
      str(tmp_path), ['minatar:breakout'], 30, 500) == {
          'minatar:breakout': random_policy.random_policy_score(
              'minatar:breakout', 30, random_policy.SEED, 500)}
  with open(os.path.join(tmp_path, random_policy.RANDOM_SCORES)) as f:
    (row,) = csv.DictReader(f)
  assert row['episodes'] == '30'
  # Read back, not measured again, for the same settings; remeasured for
  # others.
  capsys.readouterr()
  row['random'] = '123.5'
  with open(os.path.join(tmp_path, random_policy.RANDOM_SCORES), 'w') as f:
    writer = csv.DictWriter(f, list(row))
    writer.writeheader()
    writer.writerow(row)
  assert random_policy.random_policy_scores(
      str(tmp_path), ['minatar:breakout'], 30, 500) == {
          'minatar:breakout': 123.5}
  assert 'measuring' not in capsys.readouterr().out
  assert random_policy.random_policy_scores(
      str(tmp_path), ['minatar:breakout'], 30, 400)['minatar:breakout'] != (
          123.5)
  assert 'measuring a random policy on minatar:breakout' in (
      capsys.readouterr().out)
