"""Analysis layer: normalization, aggregate metrics and CIs, report, CLI."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image
import pytest

from batch_rl.analysis import __main__ as cli
from batch_rl.analysis import aggregates
from batch_rl.analysis import report
from batch_rl.analysis import runs as runs_lib
from batch_rl.analysis import scores
from batch_rl.analysis.errors import AnalysisError
from batch_rl.data.selection import DataSelection
from batch_rl import run_directory
from batch_rl.run_directory import RunDirectory

_HEADER = ('iteration,gradient_steps,eval_episodes,eval_return_mean,'
           'eval_return_std,train_loss,wall_time_s')
# Bundled DQN Zoo table: (random, human).
_PONG = (-20.7, 14.6)
_BREAKOUT = (1.7, 30.5)


def write_run(base_dir, agent, environment, seed, returns,
              data_selection=None, steps_per_iteration=100):
  """A fake run directory as the runner writes it; returns its path."""
  name = f'{agent}_{environment.replace(":", "_")}_{seed}'
  if data_selection is not None:
    name += '_' + ''.join(c for c in str(data_selection) if c.isalnum())
  run_dir = os.path.join(base_dir, agent, name)
  os.makedirs(run_dir)
  info = {'agent_name': agent, 'environment': environment, 'seed': seed,
          'gin_config': ''}
  if data_selection is not None:
    info['data_selection'] = data_selection
  with open(os.path.join(run_dir, 'run_info.json'), 'w') as f:
    json.dump(info, f)
  rows = [f'{i},{(i + 1) * steps_per_iteration},5,{r},1.0,0.1,{i}.0'
          for i, r in enumerate(returns)]
  with open(os.path.join(run_dir, 'metrics.csv'), 'w') as f:
    f.write('\n'.join([_HEADER] + rows) + '\n')
  return run_dir


def _human_scores(fraction, reference):
  random, human = reference
  return random + fraction * (human - random)


@pytest.fixture
def fake_runs(tmp_path):
  """Two agents on Pong and Breakout (3 seeds), REM also on 10% of the data,
  and one MinAtar run that the human table does not cover."""
  base = tmp_path / 'runs'
  for seed in range(3):
    for env, reference in (('atari:Pong', _PONG),
                           ('atari:Breakout', _BREAKOUT)):
      # 'expert' peaks exactly at the human score, then falls: best = 100%.
      write_run(base, 'expert', env, seed, [
          _human_scores(f, reference) for f in (0.2, 1.0, 0.5)])
      write_run(base, 'rem', env, seed, [
          _human_scores(f, reference) for f in (0.1, 0.3 + 0.1 * seed, 0.2)])
      write_run(base, 'rem', env, seed, [
          _human_scores(f, reference) for f in (0.1, 0.2)],
                data_selection={'fraction': 0.1, 'seed': seed})
  write_run(base, 'rem', 'minatar:breakout', 0, [1.0, 3.0])
  return str(base)


def _assert_png(path):
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n', path
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    assert min(image.size) > 100, (path, image.size)


# Normalization.


def test_baseline_normalized_maps_dqn_to_one_and_random_to_zero():
  random, dqn = -20.7, 14.6
  np.testing.assert_allclose(
      scores.baseline_normalized([random, dqn, -3.05, 50.0], random, dqn),
      [0.0, 1.0, 0.5, (50.0 + 20.7) / 35.3])


def test_baseline_normalized_guard_when_dqn_scores_below_random():
  # DQN at 4 below random at 10: min/max swap, so the normalized score stays
  # increasing in the agent's score with the range [4, 10] mapped to [0, 1].
  normalized = scores.baseline_normalized([4.0, 7.0, 10.0, 13.0], 10.0, 4.0)
  np.testing.assert_allclose(normalized, [0.0, 0.5, 1.0, 1.5])
  unguarded = (np.array([4.0, 13.0]) - 10.0) / (4.0 - 10.0)
  assert unguarded[1] < unguarded[0]  # What the guard prevents.


def test_human_reference_uses_bundled_dqn_zoo_table():
  table = scores.load_reference('human')
  assert table.name == 'human' and len(table.reference) == 57
  assert table.covers('atari:BankHeist') and table.covers('atari:UpNDown')
  assert not table.covers('minatar:breakout')
  np.testing.assert_allclose(table.normalize('atari:Pong', 0.0),
                             20.7 / (14.6 + 20.7))
  np.testing.assert_allclose(
      table.normalize('atari:MontezumaRevenge', 4753.3), 1.0)


def test_bundled_dqn_reference_shares_the_random_scores_of_the_human_table():
  dqn, human = scores.load_reference('dqn'), scores.load_reference('human')
  assert dqn.name == 'dqn'
  assert {'atari:pong', 'atari:breakout', 'atari:spaceinvaders'} <= set(
      dqn.reference)
  for key, score in dqn.reference.items():
    assert dqn.random[key] == human.random[key]
    assert dqn.random[key] < score < human.reference[key] * 10
  assert dqn.normalize('atari:space_invaders',
                       dqn.reference['atari:spaceinvaders']) == 1.0


def test_user_reference_csv_uses_the_guarded_formula(tmp_path):
  path = tmp_path / 'minatar_dqn.csv'
  path.write_text('# source: my online DQN runs\n'
                  'environment,random,dqn\n'
                  'minatar:breakout,0.5,10.5\n'
                  'minatar:freeway,3.0,1.0\n')
  table = scores.load_reference(str(path))
  assert table.name == 'dqn'
  np.testing.assert_allclose(table.normalize('minatar:breakout', 5.5), 0.5)
  np.testing.assert_allclose(table.normalize('minatar:freeway', 2.5), 0.75)
  with pytest.raises(AnalysisError, match='no dqn reference score for '
                     'atari:Pong'):
    table.normalize('atari:Pong', 1.0)


@pytest.mark.parametrize('text, message', [
    ('environment,random\natari:pong,1\n', 'expected exactly'),
    ('environment,random,dqn,human\natari:pong,1,2,3\n', 'expected exactly'),
    ('environment,random,dqn\natari:pong,1,x\n', 'non-numeric .* row 1'),
    ('environment,random,dqn\natari:Pong,1,2\natari:pong,1,3\n',
     r"listed twice: \['atari:pong'\]"),
    ('environment,random,dqn\natari:pong,2,2\n', 'divide by zero'),
    ('', r'not a readable CSV \(No columns to parse from file\)'),
    ('environment,random,dqn\n"atari:pong,1,2\n', 'not a readable CSV'),
])
def test_reference_csv_errors_name_the_file(tmp_path, text, message):
  path = tmp_path / 'reference.csv'
  path.write_text(text)
  with pytest.raises(AnalysisError, match=message) as error:
    scores.load_reference(str(path))
  assert str(path) in str(error.value)


def test_reference_that_is_not_a_file_says_what_is_accepted():
  with pytest.raises(AnalysisError, match='not a file.*"human".*"dqn"'):
    scores.load_reference('dqn_scores.csv')


def test_run_score_best_or_final_iteration():
  metrics = pd.DataFrame({'eval_return_mean': [1.0, 5.0, 2.0]})
  assert scores.run_score(metrics, 'best') == 5.0
  assert scores.run_score(metrics, 'final') == 2.0
  with pytest.raises(AnalysisError, match='protocol'):
    scores.run_score(metrics, 'mean')


# Aggregate metrics.

_MATRIX = np.array([[0.0, 1.0, 2.0, 0.5],
                    [1.0, 3.0, 0.0, 0.5]])


def test_aggregates_match_hand_computed_values():
  # Per-game means: 0.5, 2, 1, 0.5.
  assert aggregates.aggregate_mean(_MATRIX) == 1.0
  assert aggregates.aggregate_median(_MATRIX) == 0.75
  # Pooled and sorted: 0 0 .5 .5 1 1 2 3; drop 2 at each end.
  assert aggregates.aggregate_iqm(_MATRIX) == 0.75
  # min(x, 1) sums to 5 over 8 scores.
  assert aggregates.aggregate_optimality_gap(_MATRIX) == 1 - 5 / 8
  # Game 1: X {1, 3} vs Y {2, 0} wins 3 of 4 pairs; game 2: all ties.
  x = np.array([[1.0, 0.0], [3.0, 0.0]])
  y = np.array([[2.0, 0.0], [0.0, 0.0]])
  assert aggregates.probability_of_improvement(x, y) == (0.75 + 0.5) / 2


def test_aggregates_equal_rliable_point_estimates():
  rliable_metrics = pytest.importorskip('rliable.metrics')
  rng = np.random.default_rng(3)
  x = rng.lognormal(0, 1, (5, 17))
  y = np.round(rng.normal(1, 0.5, (3, 17)), 1)  # Ties with rounded x below.
  x[:3, :4] = y[:, :4]
  for mine, theirs in (
      (aggregates.aggregate_mean, rliable_metrics.aggregate_mean),
      (aggregates.aggregate_median, rliable_metrics.aggregate_median),
      (aggregates.aggregate_iqm, rliable_metrics.aggregate_iqm),
      (aggregates.aggregate_optimality_gap,
       rliable_metrics.aggregate_optimality_gap)):
    assert mine(x) == theirs(x), mine.__name__
  np.testing.assert_allclose(
      aggregates.probability_of_improvement(x, y),
      rliable_metrics.probability_of_improvement(x, y), rtol=1e-12)


def test_bootstrap_interval_contains_point_and_is_seeded():
  rng = np.random.default_rng(0)
  matrix = rng.normal(1.0, 0.3, (5, 8))
  estimates = aggregates.interval_estimates(matrix, reps=2000, seed=7)
  for name, estimate in estimates.items():
    assert estimate.lower <= estimate.point <= estimate.upper, name
    assert estimate.lower < estimate.upper, name
  assert aggregates.interval_estimates(matrix, reps=2000, seed=7) == estimates
  assert aggregates.interval_estimates(matrix, reps=2000, seed=8) != estimates


def test_bootstrap_interval_shrinks_with_more_runs():
  rng = np.random.default_rng(1)
  game_means = rng.uniform(0, 2, 10)
  widths = []
  for num_runs in (3, 30):
    matrix = game_means + rng.normal(0, 0.5, (num_runs, 10))
    estimates = aggregates.interval_estimates(matrix, reps=2000)
    widths.append({n: e.upper - e.lower for n, e in estimates.items()})
  for name in aggregates.METRICS:
    assert widths[1][name] < 0.6 * widths[0][name], name


def test_bootstrap_is_stratified_over_games():
  # Runs agree within each game: resampling runs changes nothing, while
  # resampling games would move every metric.
  matrix = np.tile([0.1, 0.5, 1.5, 3.0], (4, 1))
  for name, estimate in aggregates.interval_estimates(matrix,
                                                      reps=500).items():
    assert estimate.lower == estimate.point == estimate.upper, name


def test_bootstrap_spread_of_the_mean_matches_theory():
  # A stratified resample's mean over games has variance
  # sum_m var_m / (N M^2) (var with ddof=0): the 95% interval spans about
  # 2 * 1.96 of its standard deviations.
  rng = np.random.default_rng(2)
  matrix = rng.normal(0, 1, (6, 30)) * rng.uniform(0.5, 2, 30)
  std = np.sqrt(matrix.var(axis=0).sum() / 6) / 30
  estimate = aggregates.interval_estimates(
      matrix, {'Mean': aggregates.aggregate_mean}, reps=20000)['Mean']
  np.testing.assert_allclose(estimate.upper - estimate.lower, 2 * 1.96 * std,
                             rtol=0.05)
  np.testing.assert_allclose((estimate.upper + estimate.lower) / 2,
                             estimate.point, atol=0.1 * std)


def test_probability_of_improvement_interval():
  rng = np.random.default_rng(4)
  x = rng.normal(1, 1, (5, 12))
  y = rng.normal(0.5, 1, (4, 12))
  estimate = aggregates.probability_of_improvement_estimate(x, y, reps=2000)
  assert estimate.point == aggregates.probability_of_improvement(x, y)
  assert estimate.lower < estimate.point < estimate.upper
  dominated = aggregates.probability_of_improvement_estimate(x + 100, x,
                                                             reps=200)
  assert (dominated.lower, dominated.point, dominated.upper) == (1, 1, 1)
  with pytest.raises(ValueError, match='same games'):
    aggregates.probability_of_improvement_estimate(x, y[:, :5])


def test_aggregates_reject_empty_or_non_finite_matrices():
  with pytest.raises(ValueError, match=r'shape \(0, 3\)'):
    aggregates.interval_estimates(np.zeros((0, 3)))
  with pytest.raises(ValueError, match='non-finite'):
    aggregates.interval_estimates(np.array([[np.nan, 1.0]]))
  with pytest.raises(ValueError, match=re.escape(
      'bootstrap reps must be >= 1, got 0.')):
    aggregates.interval_estimates(np.ones((2, 3)), reps=0)


# Run logs.


@pytest.mark.parametrize('value, label, fraction', [
    (None, 'all', 1.0),
    ({'fraction': 0.1, 'seed': 3}, '10%', 0.1),
    ({'first_k': 5, 'fraction': 1.0}, 'first 5 ckpts', 1.0),
    ({'first_k': 5, 'fraction': 0.01}, 'first 5 ckpts, 1%', 0.01),
    ({'checkpoints': [0, 3]}, 'ckpts 0,3', 1.0),
    ({'holdout_fraction': 0.1, 'seed': 0}, 'all', 1.0),
    ({'fraction': 0.5, 'holdout_fraction': 0.1}, '50%', 0.5),
])
def test_data_selection_from_its_fields(value, label, fraction):
  selection = run_directory.parse_data_selection(value, 'run_info.json')
  assert (selection.label, selection.fraction) == (label, fraction)
  assert selection.is_full == (label == 'all')


def test_data_selection_written_by_the_run_directory_reads_back(tmp_path):
  run = RunDirectory(str(tmp_path))
  written = DataSelection(last_k=2, fraction=0.25, seed=3,
                          holdout_fraction=0.1)
  run.write_run_info({'agent_name': 'rem', 'environment': 'minatar:asterix',
                      'seed': 1}, written)
  assert run.data_selection() == written
  assert run.data_selection().label == 'last 2 ckpts, 25%'


@pytest.mark.parametrize('value, message', [
    ('first_5_checkpoints', 'must be a dict of DataSelection fields'),
    (['all'], 'must be a dict of DataSelection fields'),
    (3, 'must be a dict of DataSelection fields'),
    ([], 'must be a dict of DataSelection fields'),
    (0, 'must be a dict of DataSelection fields'),
    ({'fraction': 0.1, 'last': 2}, r"unknown fields \['last'\]"),
    ({'fraction': 2.0}, r'is not a data selection: .*fraction must be in'),
    ({'first_k': 1, 'last_k': 1}, 'set first_k or last_k, not both'),
])
def test_a_data_selection_that_is_not_one_names_the_file(value, message,
                                                         tmp_path):
  run = RunDirectory(str(tmp_path))
  run.write_run_info({'agent_name': 'rem', 'environment': 'minatar:asterix',
                      'seed': 1, 'data_selection': value})
  pattern = f'{re.escape(run.run_info_path)}: data_selection .*{message}'
  # Policy selection reads it through the run directory, the analysis
  # through load_run: the same rule, one line naming the file.
  with pytest.raises(ValueError, match=pattern):
    run.data_selection()
  with pytest.raises(AnalysisError, match=pattern):
    runs_lib.load_run(run.path)


def test_load_runs_finds_nested_runs(fake_runs):
  runs = runs_lib.load_runs([fake_runs])
  assert len(runs) == 19
  variants = {r.variant for r in runs}
  assert variants == {'expert', 'rem', 'rem [10%]'}
  pong = [r for r in runs if r.variant == 'expert' and r.game == 'Pong']
  assert [r.seed for r in pong] == [0, 1, 2]
  assert list(pong[0].metrics['gradient_steps']) == [100, 200, 300]


@pytest.mark.parametrize('content, message', [
    ('', 'not a readable CSV'),
    ('iteration,eval_return_mean\n0,1.0\n', r"missing columns \['gradient"),
    (_HEADER + '\n', 'no rows'),
    (_HEADER + '\n0,100,5,oops,1,0.1,0\n',
     "non-numeric value 'oops' in column eval_return_mean"),
    (_HEADER + '\n0,100,5,,1,0.1,0\n1,200,5,2.0,1,0.1,0\n',
     'empty eval_return_mean in some rows'),
    (None, r'missing \(every run directory with run_info.json needs '
     r'metrics.csv\)'),
])
def test_malformed_metrics_csv_is_named(tmp_path, content, message):
  run_dir = write_run(tmp_path, 'dqn', 'atari:Pong', 0, [1.0])
  path = os.path.join(run_dir, 'metrics.csv')
  os.remove(path)
  if content is not None:
    with open(path, 'w') as f:
      f.write(content)
  with pytest.raises(AnalysisError, match=message) as error:
    runs_lib.load_runs([str(tmp_path)])
  assert path in str(error.value)


def test_malformed_run_info_is_named(tmp_path):
  run_dir = write_run(tmp_path, 'dqn', 'atari:Pong', 0, [1.0])
  path = os.path.join(run_dir, 'run_info.json')
  with open(path, 'w') as f:
    json.dump({'agent_name': 'dqn', 'seed': 0}, f)
  with pytest.raises(AnalysisError, match=r"missing keys \['environment'\]"):
    runs_lib.load_runs([str(tmp_path)])
  with open(path, 'w') as f:
    json.dump({'agent_name': 'dqn', 'environment': 'Pong', 'seed': 0}, f)
  with pytest.raises(AnalysisError, match='<family>:<game>'):
    runs_lib.load_runs([str(tmp_path)])
  with open(path, 'w') as f:
    json.dump({'agent_name': 'dqn', 'environment': 'atari:Pong',
               'seed': 'zero'}, f)
  with pytest.raises(AnalysisError, match=f"{path}: seed 'zero' is not an "
                     'integer.'):
    runs_lib.load_runs([str(tmp_path)])
  with open(path, 'w') as f:
    json.dump([{'agent_name': 'dqn'}], f)
  with pytest.raises(AnalysisError, match=f'{path}: expected a JSON object.'):
    runs_lib.load_runs([str(tmp_path)])
  for damaged in (b'{"agent_name": ', b'\xff\xfe'):  # Cut short; not text.
    with open(path, 'wb') as f:
      f.write(damaged)
    with pytest.raises(AnalysisError, match=f'{path}: not valid JSON'):
      runs_lib.load_runs([str(tmp_path)])


# Report and command line.


def test_report_writes_markdown_and_valid_pngs(fake_runs, tmp_path):
  out = tmp_path / 'report'
  path = report.write_report([fake_runs], str(out),
                             report.ReportOptions(bootstrap_reps=300))
  text = open(path).read()
  for png in (report.LEARNING_CURVES, report.AGGREGATES, report.SCORE_VS_STEPS,
              report.DATA_SELECTIONS, report.DATA_FRACTION):
    assert f']({png})' in text
    _assert_png(out / png)
  # Best iteration at exactly the human score on every game and seed.
  assert ('| expert | 2 | 3 | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] | '
          '100.0 [100.0, 100.0] | 0.0 [0.0, 0.0] |') in text
  # rem's best is 30%, 40%, 50% on both games.
  assert '| rem | 2 | 3 | 40.0 [' in text
  assert '| expert | rem | 2 | 1.00 [1.00, 1.00] |' in text
  assert 'raw scores only): minatar:breakout' in text
  assert '| minatar:breakout |  | 3.0 ± 0.0 n=1 |  |' in text


def test_report_final_protocol(fake_runs, tmp_path):
  write_run(fake_runs, 'rem', 'atari:Pong', 0, [_PONG[1]],
            data_selection={'fraction': 0.01})
  write_run(fake_runs, 'rem', 'atari:Breakout', 0, [_BREAKOUT[1]],
            data_selection={'fraction': 0.01})
  out = tmp_path / 'report'
  text = open(report.write_report(
      [fake_runs], str(out),
      report.ReportOptions(protocol='final', bootstrap_reps=200))).read()
  # The expert's last iteration is at 50% of human.
  assert '| expert | 2 | 3 | 50.0 [50.0, 50.0] |' in text
  assert '| rem [1%] | 2 | 1 | 100.0 [100.0, 100.0] |' in text


def test_compared_pairs_are_reported_within_each_data_selection(
    fake_runs, tmp_path):
  for seed in range(3):
    for env, reference in (('atari:Pong', _PONG),
                           ('atari:Breakout', _BREAKOUT)):
      # On 10% the expert's best (10%) is below rem's (20%) everywhere.
      write_run(fake_runs, 'expert', env, seed,
                [_human_scores(0.1, reference)],
                data_selection={'fraction': 0.1, 'seed': seed})
  text = open(report.write_report(
      [fake_runs], str(tmp_path / 'report'),
      report.ReportOptions(bootstrap_reps=100,
                           comparisons=(('expert', 'rem'),)))).read()
  section = text.split('## Probability of improvement')[1].split('##')[0]
  rows = [line for line in section.splitlines() if line.startswith('| ')]
  assert rows[2:] == ['| expert [10%] | rem [10%] | 2 | 0.00 [0.00, 0.00] |',
                      '| expert | rem | 2 | 1.00 [1.00, 1.00] |']
  with pytest.raises(AnalysisError, match='--compare names bcq, which no run '
                     'has; the runs\' agents: expert, rem.'):
    report.write_report([fake_runs], str(tmp_path / 'other'),
                        report.ReportOptions(comparisons=(('rem', 'bcq'),)))


def test_a_compared_pair_without_common_normalized_games_is_named(tmp_path):
  base = tmp_path / 'runs'
  write_run(base, 'rem', 'atari:Pong', 0, [-20.0, 0.0])
  write_run(base, 'dqn', 'minatar:breakout', 0, [1.0, 2.0])
  text = open(report.write_report(
      [str(base)], str(tmp_path / 'report'),
      report.ReportOptions(bootstrap_reps=100,
                           comparisons=(('rem', 'dqn'),)))).read()
  section = text.split('## Probability of improvement')[1].split('##')[0]
  assert section.strip() == ('Not compared (no common game with a human '
                             'reference score): rem vs dqn.')


def test_report_over_runs_of_partly_covered_games_and_lengths(
    tmp_path, monkeypatch):
  # rem stopped early on Breakout; bc ran only on games without a human
  # score; five games leave three of the 2 x 4 learning-curve panels empty.
  base = tmp_path / 'runs'
  for seed in range(2):
    for agent, env, reference, fractions in (
        ('dqn', 'atari:Pong', _PONG, (0.1, 0.2, 0.3)),
        ('dqn', 'atari:Breakout', _BREAKOUT, (0.1, 0.2, 0.3)),
        ('rem', 'atari:Pong', _PONG, (0.2, 0.3, 0.4)),
        ('rem', 'atari:Breakout', _BREAKOUT, (0.2, 0.3))):
      write_run(base, agent, env, seed,
                [_human_scores(f, reference) for f in fractions])
    for game in ('asterix', 'breakout', 'freeway'):
      write_run(base, 'bc', f'minatar:{game}', seed, [1.0, 2.0])
  curves = {}
  interval_curves = report.plots.interval_curves
  def record(named_curves, path, *args, **kwargs):
    if path.endswith(report.SCORE_VS_STEPS):
      curves.update(named_curves)
    interval_curves(named_curves, path, *args, **kwargs)
  monkeypatch.setattr(report.plots, 'interval_curves', record)
  out = tmp_path / 'report'
  text = open(report.write_report([str(base)], str(out), report.ReportOptions(
      bootstrap_reps=50, comparisons=(('bc', 'rem'), ('dqn', 'rem'))))).read()
  section = text.split('## Probability of improvement')[1].split('##')[0]
  assert [line.split(' | ')[:2] for line in section.splitlines()
          if line.startswith('| ')][2:] == [['| dqn', 'rem']]
  # Score vs gradient steps: rem's iterations on both games only; no bc.
  assert sorted(curves) == ['dqn', 'rem']
  assert curves['dqn']['x'].tolist() == [100, 200, 300]
  assert curves['rem']['x'].tolist() == [100, 200]
  _assert_png(out / report.LEARNING_CURVES)


def test_report_without_reference_scores_keeps_raw_scores(tmp_path):
  base = tmp_path / 'runs'
  for seed in range(2):
    write_run(base, 'dqn', 'minatar:breakout', seed, [1.0, 2.0 + seed])
  write_run(base, 'dqn', 'minatar:breakout', 0, [1.0],
            data_selection={'fraction': 0.1, 'seed': 0})
  out = tmp_path / 'report'
  text = open(report.write_report([str(base)], str(out))).read()
  assert 'No environment of these runs has a human reference score' in text
  assert 'No normalized scores for the ablation runs.' in text
  assert '| minatar:breakout | 2.5 ± 0.5 n=2 |' in text
  _assert_png(out / report.LEARNING_CURVES)
  assert not (out / report.AGGREGATES).exists()


def test_cli_report_is_the_default_command(fake_runs, tmp_path, capsys):
  out = tmp_path / 'out'
  assert cli.main(['--base_dirs', fake_runs, '--out', str(out),
                   '--bootstrap_reps', '100']) == 0
  assert 'report.md' in capsys.readouterr().out
  assert (out / 'report.md').exists()


def test_cli_errors_for_missing_runs_and_bad_reference(tmp_path, fake_runs,
                                                       capsys):
  empty = tmp_path / 'empty'
  empty.mkdir()
  assert cli.main(['report', '--base_dirs', str(empty), '--out',
                   str(tmp_path / 'out')]) == 2
  assert f'No runs under {empty}: no run_info.json' in capsys.readouterr().err
  assert cli.main(['--base_dirs', str(tmp_path / 'absent'), '--out',
                   str(tmp_path / 'out')]) == 2
  assert 'no such directory' in capsys.readouterr().err
  assert cli.main(['--base_dirs', fake_runs, '--out', str(tmp_path / 'out'),
                   '--reference', 'dqn_scores.csv']) == 2
  assert '--reference dqn_scores.csv: not a file' in capsys.readouterr().err


@pytest.mark.parametrize('argv, message', [
    (['--bootstrap_reps', '-1'], 'flag --bootstrap_reps=-1: -1 is not a '
     'positive integer'),
    (['--confidence', '7'], 'flag --confidence=7: 7.0 is not a number in '
     'the range [0.0, 1.0]'),
    (['--protocol', 'worst'], 'flag --protocol=worst: value should be one of'),
    (['frob'], 'expected at most one command'),
    ([], 'missing flags: --base_dirs, --out.'),
    (['--compare', 'rem'], '--compare=rem: expected X:Y'),
])
def test_cli_rejects_bad_options_in_one_line(argv, message, capsys):
  assert cli.main(argv) == 2
  error = capsys.readouterr().err
  assert error.startswith('error: ') and len(error.strip().splitlines()) == 1
  assert message in error, error


@pytest.mark.parametrize('confidence', ['0', '1'])
def test_cli_rejects_a_confidence_that_is_no_interval(fake_runs, tmp_path,
                                                      capsys, confidence):
  # Within the flag's bounds [0, 1], but no interval has confidence 0 or 1.
  out = tmp_path / 'out'
  assert cli.main(['--base_dirs', fake_runs, '--out', str(out),
                   '--confidence', confidence]) == 2
  assert capsys.readouterr().err == (
      f'error: confidence must be in (0, 1), got {float(confidence)}.\n')
  assert not (out / 'report.md').exists()


def test_cli_does_not_import_tensorflow():
  code = ('import sys; from batch_rl.analysis import __main__; '
          'assert "tensorflow" not in sys.modules, "tensorflow imported"')
  subprocess.run([sys.executable, '-c', code], check=True)


def _dopamine_json(path, runs, agent='DQN', other_agents=True):
  """A file in the layout of Dopamine's baselines/atari/data/<game>.json."""
  entries = [{'Iteration': i, 'Value': v, 'Agent': agent}
             for run in runs for i, v in enumerate(run)]
  if other_agents:
    entries += [{'Iteration': 0, 'Value': 1e6, 'Agent': 'C51'}]
  path.write_text(json.dumps(entries))
  return str(path)


def test_reference_from_dopamine_curves_averages_each_runs_score(tmp_path,
                                                                 capsys):
  pong = _dopamine_json(tmp_path / 'pong.json',
                        [[-21.0, 5.0, 3.0], [-20.0, -2.0, 9.0]])
  heist = _dopamine_json(tmp_path / 'bank_heist.json', [[10.0, 30.0, 20.0]])
  unknown = _dopamine_json(tmp_path / 'air_raid.json', [[1.0, 2.0]])
  out = tmp_path / 'dqn.csv'
  assert cli.main(['reference', '--dopamine_json', pong, '--dopamine_json',
                   heist, '--dopamine_json', unknown, '--out', str(out)]) == 0
  assert 'wrote' in capsys.readouterr().out
  reference = scores.load_reference(str(out))
  human = scores.load_reference('human')
  assert reference.name == 'dqn'
  # Best iteration per run (5 and 9), then the mean over runs; the C51
  # entries are not DQN's.
  assert reference.reference['atari:pong'] == pytest.approx(7.0)
  assert reference.reference['atari:bankheist'] == pytest.approx(30.0)
  assert reference.random['atari:pong'] == human.random['atari:pong']
  assert not reference.covers('atari:air_raid')
  assert 'Left out (no random score): air_raid' in out.read_text()
  assert reference.normalize('atari:Pong', 7.0) == pytest.approx(1.0)

  final = tmp_path / 'final.csv'
  assert cli.main(['reference', '--dopamine_json', pong, '--out', str(final),
                   '--protocol', 'final']) == 0
  assert scores.load_reference(str(final)).reference[
      'atari:pong'] == pytest.approx(6.0)


def test_reference_leaves_out_a_game_where_it_scores_as_random(tmp_path):
  random_pong = scores.load_reference('human').random['atari:pong']
  pong = _dopamine_json(tmp_path / 'pong.json', [[random_pong] * 3])
  heist = _dopamine_json(tmp_path / 'bank_heist.json', [[10.0, 30.0]])
  out = tmp_path / 'dqn.csv'
  assert cli.main(['reference', '--dopamine_json', pong, '--dopamine_json',
                   heist, '--out', str(out)]) == 0
  # The written table is one the reader accepts, without pong.
  reference = scores.load_reference(str(out))
  assert list(reference.reference) == ['atari:bankheist']
  assert '# Left out (random equals dqn): atari:pong.' in out.read_text()


def test_reference_writer_refuses_a_game_given_twice(tmp_path):
  with pytest.raises(AnalysisError, match=re.escape(
      "environments given twice: ['atari:bankheist']")):
    scores.write_reference_csv(
        str(tmp_path / 'x.csv'), 'dqn',
        [('atari:BankHeist', 1.0, 2.0), ('atari:bank_heist', 1.0, 3.0)])


@pytest.mark.parametrize('entries, message', [
    ([{'Iteration': 0, 'Value': 1.0, 'Agent': 'DQN'},
      {'Iteration': 2, 'Value': 1.0, 'Agent': 'DQN'}],
     'DQN iteration 2 follows 0'),
    ([{'Iteration': 0, 'Value': 1.0, 'Agent': 'C51'}],
     "no entry of agent 'DQN'; it has ['C51']"),
    ({'Iteration': 0}, 'expected a list of'),
])
def test_reference_from_malformed_dopamine_file_is_named(tmp_path, capsys,
                                                         entries, message):
  path = tmp_path / 'pong.json'
  path.write_text(json.dumps(entries))
  assert cli.main(['reference', '--dopamine_json', str(path), '--out',
                   str(tmp_path / 'dqn.csv')]) == 2
  error = capsys.readouterr().err
  assert str(path) in error and message in error


def test_reference_from_unreadable_or_unknown_game_files_is_named(tmp_path,
                                                                  capsys):
  out = str(tmp_path / 'dqn.csv')
  missing = str(tmp_path / 'pong.json')
  assert cli.main(['reference', '--dopamine_json', missing, '--out',
                   out]) == 2
  assert capsys.readouterr().err.startswith(
      f'error: {missing}: not a readable JSON file ([Errno 2]')
  (tmp_path / 'pong.json').write_text('[{"Iteration": 0,')  # Cut short.
  assert cli.main(['reference', '--dopamine_json', missing, '--out',
                   out]) == 2
  assert capsys.readouterr().err.startswith(
      f'error: {missing}: not a readable JSON file (Expecting')
  unknown = _dopamine_json(tmp_path / 'air_raid.json', [[1.0, 2.0]])
  assert cli.main(['reference', '--dopamine_json', unknown, '--out',
                   out]) == 2
  assert capsys.readouterr().err == (
      f"error: none of ['{unknown}'] names a game of the bundled "
      'random-score table.\n')
  assert not os.path.exists(out)
