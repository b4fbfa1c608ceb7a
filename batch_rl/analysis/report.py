"""`report.md` with its PNG figures for every run found under some directories.

Per variant (agent name, qualified by its data selection unless all data):
aggregate normalized scores with stratified-bootstrap CIs, probabilities of
improvement between variants, per-game scores, learning curves, score against
gradient steps, and data-selection ablations when runs trained on subsets.
"""

import dataclasses
import itertools
from typing import Optional, Sequence

import pandas as pd

from batch_rl import storage
from batch_rl.analysis import aggregates
from batch_rl.analysis import plots
from batch_rl.analysis import runs as runs_lib
from batch_rl.analysis import scores as scores_lib
from batch_rl.analysis import study as study_lib
from batch_rl.run_directory import EVAL_RETURN_MEAN
from batch_rl.run_directory import GRADIENT_STEPS
from batch_rl.run_directory import ITERATION

LEARNING_CURVES = 'learning_curves.png'
AGGREGATES = 'aggregate_metrics.png'
SCORE_VS_STEPS = 'score_vs_gradient_steps.png'
DATA_SELECTIONS = 'data_selection.png'
DATA_FRACTION = 'score_vs_data_fraction.png'
REPORT = 'report.md'
SCORES = 'scores.csv'
PER_GAME_SCORES = 'per_game_scores.csv'
NORMALIZATION = 'normalization.csv'


@dataclasses.dataclass(frozen=True)
class ReportOptions:
  """How scores are computed and summarized.

  Attributes:
    reference: 'human', 'dqn' or the path of a reference CSV (see scores.py);
      None: a study's own reference, else 'human'.
    protocol: 'best' (the paper's: best iteration) or 'final' iteration.
    bootstrap_reps: stratified bootstrap repetitions per interval.
    confidence: coverage of the percentile intervals.
    seed: seed of the bootstrap.
    comparisons: (X, Y) agent pairs whose probability of improvement
      P(X > Y) is reported within each data selection both ran on; empty:
      every pair of the all-data variants.
  """
  reference: Optional[str] = None
  protocol: str = 'best'
  bootstrap_reps: int = 2000
  confidence: float = 0.95
  seed: int = 0
  comparisons: tuple[tuple[str, str], ...] = ()


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]
                    ) -> str:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join(' --- ' for _ in header) + '|']
  lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
  return '\n'.join(lines)


def _percent(estimate: aggregates.IntervalEstimate) -> str:
  return (f'{100 * estimate.point:.1f} '
          f'[{100 * estimate.lower:.1f}, {100 * estimate.upper:.1f}]')


def _scaled(estimate: aggregates.IntervalEstimate, factor: float
            ) -> aggregates.IntervalEstimate:
  return aggregates.IntervalEstimate(*(factor * v for v in (
      estimate.point, estimate.lower, estimate.upper)))


def _curve_rows(runs: Sequence[runs_lib.Run]) -> pd.DataFrame:
  """Every iteration of every run with its run's identity."""
  return pd.concat([
      run.metrics.assign(variant=run.variant, environment=run.environment,
                         seed=run.seed, run_dir=run.run_dir)
      for run in runs], ignore_index=True)


class _Report:
  """Builds the sections of one report; each returns markdown lines."""

  def __init__(self, runs, reference, options, out_dir):
    self.runs = runs
    self.reference = reference
    self.options = options
    self.out_dir = out_dir
    self.scores = scores_lib.score_table(runs, reference, options.protocol)
    self.variants = sorted(self.scores['variant'].unique())
    # Learning curves and comparisons use the all-data runs; the subsets
    # have their own section.
    full = sorted({run.variant for run in runs if run.data_selection.is_full})
    self.main_variants = full or self.variants
    self.colors = plots.color_map(self.variants)
    self.unit = f'{reference.name}-normalized score (%)'
    self.matrices = {}
    for variant in self.variants:
      matrix, environments = scores_lib.score_matrix(self.scores, variant)
      if environments:
        self.matrices[variant] = (matrix, environments)

  def _estimates(self, matrix, metrics=aggregates.METRICS):
    return aggregates.interval_estimates(
        matrix, metrics, reps=self.options.bootstrap_reps,
        confidence=self.options.confidence, seed=self.options.seed)

  def _path(self, name):
    return storage.join(self.out_dir, name)

  def header(self):
    reference = self.reference
    return [
        '# batch_rl analysis report', '',
        f'- Runs: {len(self.runs)} ({len(self.variants)} variants, '
        f'{self.scores["environment"].nunique()} environments).',
        f'- Run score: the {self.options.protocol} iteration\'s mean '
        'evaluation return' + (' (the paper\'s protocol).'
                               if self.options.protocol == 'best' else '.'),
        f'- Normalization: {reference.name} = 100%, random = 0% '
        f'(reference table: `{reference.source}`).',
        f'- Intervals: {100 * self.options.confidence:g}% stratified '
        f'bootstrap percentile CIs, {self.options.bootstrap_reps} '
        f'repetitions, seed {self.options.seed}.', '']

  def aggregate_section(self):
    lines = ['## Aggregate normalized scores', '']
    if not self.matrices:
      return lines + [
          f'No environment of these runs has a {self.reference.name} '
          f'reference score in `{self.reference.source}`; pass --reference '
          'with a CSV of environment,random,<reference> scores for them.', '']
    estimates, rows = {}, []
    for variant, (matrix, environments) in self.matrices.items():
      estimates[variant] = self._estimates(matrix)
      counts = self.scores[(self.scores['variant'] == variant) &
                           self.scores['normalized'].notna()].groupby(
                               'environment').size()
      runs_per_game = (str(matrix.shape[0]) if counts.min() == counts.max()
                       else f'{matrix.shape[0]} (of {counts.min()}-'
                       f'{counts.max()}; lowest seeds)')
      rows.append([variant, str(len(environments)), runs_per_game] +
                  [_percent(e) for e in estimates[variant].values()])
    plots.aggregate_intervals(
        {v: {m: _scaled(e, 100) for m, e in per.items()}
         for v, per in estimates.items()},
        self._path(AGGREGATES), self.unit, colors=self.colors)
    lines.append(_markdown_table(
        ['variant', 'games', 'runs/game'] + list(aggregates.METRICS), rows))
    uncovered = sorted(set(self.scores.loc[self.scores['normalized'].isna(),
                                           'environment']))
    if uncovered:
      lines += ['', f'Without a {self.reference.name} reference score (raw '
                f'scores only): {", ".join(uncovered)}.']
    return lines + ['', f'![aggregate metrics]({AGGREGATES})', '']

  def _compared_pairs(self):
    """(X variant, Y variant) pairs: options.comparisons within each data
    selection, else every pair of the all-data variants."""
    if not self.options.comparisons:
      compared = [v for v in self.main_variants if v in self.matrices]
      return list(itertools.combinations(compared, 2))
    variants = {(run.agent_name, run.data_selection.label): run.variant
                for run in self.runs}
    agents = sorted({agent for agent, _ in variants})
    unknown = sorted({agent for pair in self.options.comparisons
                      for agent in pair} - set(agents))
    if unknown:
      raise runs_lib.AnalysisError(
          f'--compare names {", ".join(unknown)}, which no run has; the '
          f'runs\' agents: {", ".join(agents)}.')
    selections = sorted({label for _, label in variants})
    return [(variants[x, label], variants[y, label])
            for label in selections for x, y in self.options.comparisons
            if (x, label) in variants and (y, label) in variants]

  def improvement_section(self):
    pairs, uncomparable = [], []
    for x, y in self._compared_pairs():
      common = (sorted(set(self.matrices[x][1]) & set(self.matrices[y][1]))
                if x in self.matrices and y in self.matrices else [])
      if common:
        pairs.append((x, y, common))
      else:
        uncomparable.append(f'{x} vs {y}')
    # Pairs the user asked for are named when they cannot be compared.
    unreported = ([f'Not compared (no common game with a '
                   f'{self.reference.name} reference score): '
                   f'{", ".join(uncomparable)}.', '']
                  if self.options.comparisons and uncomparable else [])
    if not pairs:
      return (['## Probability of improvement', ''] + unreported
              if unreported else [])
    rows = []
    for x, y, common in pairs:
      estimate = aggregates.probability_of_improvement_estimate(
          scores_lib.score_matrix(self.scores, x, common)[0],
          scores_lib.score_matrix(self.scores, y, common)[0],
          reps=self.options.bootstrap_reps,
          confidence=self.options.confidence, seed=self.options.seed)
      rows.append([x, y, str(len(common)),
                   f'{estimate.point:.2f} [{estimate.lower:.2f}, '
                   f'{estimate.upper:.2f}]'])
    return ['## Probability of improvement', '',
            'P(X > Y): chance that a run of X beats a run of Y on a game, '
            'averaged over their common games.', '',
            _markdown_table(['X', 'Y', 'games', 'P(X > Y)'], rows), ''
            ] + unreported

  def per_game_section(self):
    rows = []
    for environment, group in self.scores.groupby('environment', sort=True):
      row = [environment]
      for variant in self.variants:
        runs = group[group['variant'] == variant]
        if runs.empty:
          row.append('')
          continue
        cell = f'{runs["raw"].mean():.1f} ± {runs["raw"].std(ddof=0):.1f}'
        if runs['normalized'].notna().all():
          cell += f' ({100 * runs["normalized"].mean():.0f}%)'
        row.append(cell + f' n={len(runs)}')
      rows.append(row)
    return ['## Per-game scores', '',
            f'Raw score mean ± std over runs, ({self.reference.name}-'
            'normalized mean), number of runs.', '',
            _markdown_table(['environment'] + self.variants, rows), '']

  def learning_curve_section(self):
    rows = _curve_rows(self.runs)
    plots.learning_curves(rows[rows['variant'].isin(self.main_variants)],
                          self._path(LEARNING_CURVES), colors=self.colors)
    return ['## Learning curves', '',
            'Mean evaluation return over seeds; the band spans min to max.',
            '', f'![learning curves]({LEARNING_CURVES})', '']

  def gradient_steps_section(self):
    """IQM over runs and games of the normalized return at each iteration."""
    if not self.matrices:
      return []
    rows = _curve_rows(self.runs)
    rows = rows[rows['environment'].map(self.reference.covers)]
    curves = {}
    for variant in self.main_variants:
      if variant not in self.matrices:
        continue
      environments = self.matrices[variant][1]
      mine = rows[(rows['variant'] == variant) &
                  rows['environment'].isin(environments)]
      points = []
      for iteration, at in mine.groupby(ITERATION, sort=True):
        if set(at['environment']) != set(environments):
          continue
        normalized = at.assign(normalized=[
            float(self.reference.normalize(e, r))
            for e, r in zip(at['environment'], at[EVAL_RETURN_MEAN])])
        matrix, _ = scores_lib.score_matrix(
            normalized.sort_values(['environment', 'seed']), variant)
        iqm = self._estimates(matrix, {'IQM': aggregates.aggregate_iqm})['IQM']
        points.append({'x': at[GRADIENT_STEPS].mean(),
                       **dataclasses.asdict(_scaled(iqm, 100))})
      if points:
        curves[variant] = pd.DataFrame(points)
    plots.interval_curves(curves, self._path(SCORE_VS_STEPS),
                          'gradient steps', f'IQM {self.unit}',
                          colors=self.colors)
    return ['## Score vs gradient steps', '',
            'IQM over runs and games of each iteration\'s normalized return '
            '(overfitting shows as a decline with more gradient steps).', '',
            f'![score vs gradient steps]({SCORE_VS_STEPS})', '']

  def data_selection_section(self):
    selections = {run.variant: (run.agent_name, run.data_selection)
                  for run in self.runs}
    if all(s.is_full for _, s in selections.values()):
      return []
    lines = ['## Data selection ablations', '']
    by_agent = {}
    for variant, (agent, selection) in selections.items():
      if variant in self.matrices:
        by_agent.setdefault(agent, []).append((variant, selection))
    if not by_agent:
      return lines + ['No normalized scores for the ablation runs.', '']
    estimates, fraction_curves = {}, {}
    for agent, members in sorted(by_agent.items()):
      ordered = sorted(members, key=lambda m: (
          not m[1].is_full, -m[1].fraction, m[1].label))
      estimates[agent] = {
          selection.label: self._estimates(
              self.matrices[variant][0],
              {'IQM': aggregates.aggregate_iqm})['IQM']
          for variant, selection in ordered}
      fractions = [(s.fraction, estimates[agent][s.label])
                   for _, s in ordered
                   if s.first_k is None and s.last_k is None and
                   s.checkpoints is None]
      if len(fractions) > 1:
        fraction_curves[agent] = pd.DataFrame(
            [{'x': f, **dataclasses.asdict(_scaled(e, 100))}
             for f, e in sorted(fractions, key=lambda p: p[0])])
    plots.grouped_intervals(
        {a: {l: _scaled(e, 100) for l, e in per.items()}
         for a, per in estimates.items()},
        self._path(DATA_SELECTIONS), f'IQM {self.unit}')
    lines += ['IQM normalized score per agent and data selection (first k '
              'checkpoints, random fractions of the transitions, all data).',
              '', f'![data selection]({DATA_SELECTIONS})', '']
    if fraction_curves:
      plots.interval_curves(fraction_curves, self._path(DATA_FRACTION),
                            'fraction of transitions', f'IQM {self.unit}',
                            log_x=True)
      lines += [f'![score vs data fraction]({DATA_FRACTION})', '']
    return lines


  def score_tables_section(self):
    """The numbers behind the report as CSV files.

    - scores.csv: every run's raw score (its protocol iteration's mean
      return) and normalized score, with variant, environment, seed, run_dir;
    - per_game_scores.csv: per game and variant, the runs' raw mean and std
      and the normalized mean;
    - normalization.csv: the random and reference score of every game of the
      runs that the reference covers (the constants of the normalized score).
    """
    storage.write_atomically(self._path(SCORES),
                             self.scores.to_csv(index=False))
    per_game = self.scores.groupby(['environment', 'variant'], sort=True).agg(
        runs=('raw', 'size'), raw_mean=('raw', 'mean'),
        raw_std=('raw', lambda x: x.std(ddof=0)),
        normalized_mean=('normalized', 'mean')).reset_index()
    storage.write_atomically(self._path(PER_GAME_SCORES),
                             per_game.to_csv(index=False))
    reference = self.reference
    covered = {}  # One row per game, however its runs spell it.
    for environment in sorted(self.scores['environment'].unique()):
      if reference.covers(environment):
        covered.setdefault(scores_lib.environment_key(environment),
                           environment)
    scores_lib.write_reference_csv(
        self._path(NORMALIZATION), reference.name,
        [(environment, reference.random[key], reference.reference[key])
         for key, environment in covered.items()])
    return ['## Tables', '',
            f'- `{SCORES}`: every run\'s raw and normalized score.',
            f'- `{PER_GAME_SCORES}`: per game and variant, raw mean and std '
            'over runs and the normalized mean.',
            f'- `{NORMALIZATION}`: the random and {reference.name} score of '
            f'each game (from `{reference.source}`).', '']


def write_report(base_dirs: Sequence[str], out_dir: str,
                 options: ReportOptions = ReportOptions()) -> str:
  """Writes report.md, its PNGs and CSV tables into `out_dir`; returns
  report.md's path.

  A base directory holding a study's output (study.json) stands for its
  offline runs, named by the study's agent labels; a reference of None is
  the study's (else 'human').
  """
  run_dirs, reference_spec, labels = study_lib.resolve(base_dirs,
                                                       options.reference)
  runs = [dataclasses.replace(run, agent_name=labels.get(run.run_dir,
                                                         run.agent_name))
          for run in runs_lib.load_runs(run_dirs)]
  reference = scores_lib.load_reference(reference_spec)
  storage.makedirs(out_dir)
  report = _Report(runs, reference, options, out_dir)
  sections = (report.header, report.aggregate_section,
              report.improvement_section, report.per_game_section,
              report.learning_curve_section, report.gradient_steps_section,
              report.data_selection_section, report.score_tables_section)
  lines = [line for section in sections for line in section()]
  path = storage.join(out_dir, REPORT)
  storage.write_atomically(path, '\n'.join(lines))
  return path
