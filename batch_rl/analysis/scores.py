"""Per-game scores: a run's score and its normalization against a reference.

The paper normalizes so that online DQN scores 1 and a random policy 0, with
min/max so that games where DQN scores below random stay increasing in the
agent's score. Reference tables are CSV files with columns
`environment,random,<reference>` (e.g. `atari:pong,-20.7,14.6`), `#` lines
being comments that name the source.
"""

import dataclasses
import io
import os
import re
from typing import Sequence

import numpy as np
import pandas as pd

from batch_rl import storage
from batch_rl.analysis.errors import AnalysisError
from batch_rl.analysis.runs import Run
from batch_rl.run_directory import EVAL_RETURN_MEAN

_DATA = os.path.join(os.path.dirname(__file__), 'data')
# --reference keywords -> bundled tables (their headers name the sources).
BUNDLED = {
    'human': os.path.join(_DATA, 'atari_random_human.csv'),
    'dqn': os.path.join(_DATA, 'atari_dqn_dopamine.csv'),
}
PROTOCOLS = ('best', 'final')
# The reference table's first two columns; the third is named by the
# reference ('human', 'dqn', a study's logging agent).
ENVIRONMENT = 'environment'
RANDOM = 'random'


def baseline_normalized(score, random, baseline):
  """(score - min(b, r)) / (max(b, r) - min(b, r)), b = baseline, r = random."""
  low = np.minimum(baseline, random)
  high = np.maximum(baseline, random)
  return (np.asarray(score, np.float64) - low) / (high - low)


def human_normalized(score, random, human):
  """(score - random) / (human - random)."""
  return (np.asarray(score, np.float64) - random) / (human - random)


def environment_key(environment: str) -> str:
  """'atari:BankHeist' and 'atari:bank_heist' -> 'atari:bankheist'."""
  family, _, game = environment.partition(':')
  return f'{family.lower()}:{re.sub(r"[^a-z0-9]", "", game.lower())}'


@dataclasses.dataclass(frozen=True)
class ReferenceTable:
  """Random and reference scores per environment key.

  Attributes:
    name: the reference column ('human' uses the human-normalized formula,
      any other name, e.g. 'dqn', the paper's min/max formula).
    source: the CSV file the numbers come from.
    random: environment key -> random policy score.
    reference: environment key -> reference score (normalized to 1).
  """
  name: str
  source: str
  random: dict[str, float]
  reference: dict[str, float]

  def covers(self, environment: str) -> bool:
    return environment_key(environment) in self.reference

  def normalize(self, environment: str, score):
    key = environment_key(environment)
    if key not in self.reference:
      raise AnalysisError(
          f'{self.source}: no {self.name} reference score for {environment}.')
    formula = human_normalized if self.name == 'human' else baseline_normalized
    return formula(score, self.random[key], self.reference[key])


def _degenerate(random, reference) -> bool:
  """Whether a game cannot be normalized: the formula would divide by 0."""
  return random == reference


def _duplicates(keys: Sequence[str]) -> list[str]:
  return sorted({k for k in keys if keys.count(k) > 1})


def write_reference_csv(path: str, name: str,
                        rows: Sequence[tuple[str, float, float]],
                        comments: Sequence[str] = ()) -> list[str]:
  """Writes a table `read_reference_csv` accepts; returns the environments
  left out.

  Args:
    path: the CSV to write (a local path or URL).
    name: the reference column, e.g. 'dqn'.
    rows: (environment, random score, reference score) per game. A game whose
      random score equals its reference score is left out, with a comment
      line naming it.
    comments: lines written first as `# ` comments (the numbers' source).
  """
  duplicates = _duplicates([environment_key(e) for e, _, _ in rows])
  if duplicates:
    raise AnalysisError(f'{path}: environments given twice: {duplicates}.')
  left_out = [e for e, r, b in rows if _degenerate(r, b)]
  lines = [f'# {line}' for line in comments]
  if left_out:
    lines.append(f'# Left out (random equals {name}): '
                 f'{", ".join(left_out)}.')
  lines.append(f'{ENVIRONMENT},{RANDOM},{name}')
  lines += [f'{e},{float(r)!r},{float(b)!r}' for e, r, b in rows
            if not _degenerate(r, b)]
  storage.write_atomically(path, '\n'.join(lines) + '\n')
  return left_out


def read_reference_csv(path: str) -> ReferenceTable:
  """A table from a CSV with columns environment, random and one reference."""
  if not storage.isfile(path):
    raise AnalysisError(
        f'--reference {path}: not a file. Use "human" (bundled Atari-57 '
        'random/human scores), "dqn" (bundled online-DQN scores of some '
        'Atari games) or a CSV with columns environment,random,<reference> '
        '(see docs/ANALYSIS.md).')
  try:
    table = pd.read_csv(io.StringIO(storage.read_text(path)), comment='#',
                        skipinitialspace=True)
  except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
    raise AnalysisError(f'{path}: not a readable CSV ({e}).') from e
  others = [c for c in table.columns if c not in (ENVIRONMENT, RANDOM)]
  if ENVIRONMENT not in table.columns or RANDOM not in table.columns or (
      len(others) != 1):
    raise AnalysisError(
        f'{path}: columns {list(table.columns)}; expected exactly '
        'environment,random,<reference> (e.g. environment,random,dqn).')
  (name,) = others
  values = table[[RANDOM, name]].apply(pd.to_numeric, errors='coerce')
  if values.isna().to_numpy().any():
    row = int(np.flatnonzero(values.isna().any(axis=1).to_numpy())[0])
    raise AnalysisError(f'{path}: non-numeric or empty score in data row '
                        f'{row + 1} ({table.iloc[row][ENVIRONMENT]}).')
  keys = [environment_key(str(e)) for e in table[ENVIRONMENT]]
  duplicates = _duplicates(keys)
  if duplicates:
    raise AnalysisError(f'{path}: environments listed twice: {duplicates}.')
  degenerate = [k for k, r, b in zip(keys, values[RANDOM], values[name])
                if _degenerate(r, b)]
  if degenerate:
    raise AnalysisError(f'{path}: random equals {name} for {degenerate}; the '
                        'normalization would divide by zero.')
  return ReferenceTable(
      name=name, source=path,
      random=dict(zip(keys, values[RANDOM].astype(float))),
      reference=dict(zip(keys, values[name].astype(float))))


def load_reference(spec: str) -> ReferenceTable:
  """A bundled table ('human', 'dqn') or the path of a reference CSV."""
  return read_reference_csv(BUNDLED.get(spec, spec))


def run_score(metrics: pd.DataFrame, protocol: str = 'best') -> float:
  """A run's raw score: its best iteration (the paper's protocol) or last."""
  if protocol == 'best':
    return float(metrics[EVAL_RETURN_MEAN].max())
  if protocol == 'final':
    return float(metrics[EVAL_RETURN_MEAN].iloc[-1])
  raise AnalysisError(f'--protocol {protocol!r}: expected one of {PROTOCOLS}.')


def score_table(runs: Sequence[Run], reference: ReferenceTable,
                protocol: str = 'best') -> pd.DataFrame:
  """One row per run: variant, environment, game, seed, raw and normalized.

  `normalized` is NaN for environments the reference does not cover.
  """
  rows = []
  for run in runs:
    raw = run_score(run.metrics, protocol)
    rows.append({
        'variant': run.variant, 'agent_name': run.agent_name,
        'data_selection': run.data_selection.label,
        'environment': run.environment, 'game': run.game, 'seed': run.seed,
        'run_dir': run.run_dir, 'raw': raw,
        'normalized': (float(reference.normalize(run.environment, raw))
                       if reference.covers(run.environment) else np.nan)})
  return pd.DataFrame(rows).sort_values(
      ['variant', 'environment', 'seed', 'run_dir'], ignore_index=True)


def score_matrix(scores: pd.DataFrame, variant: str,
                 environments: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, list[str]]:
  """Normalized scores of one variant as [runs x games] and the game order.

  Only environments with a normalized score (and within `environments` if
  given) count. Games with more runs than the others contribute their
  lowest-seed runs, so that the matrix is rectangular as the aggregate
  metrics require.
  """
  rows = scores[(scores['variant'] == variant) & scores['normalized'].notna()]
  if environments is not None:
    rows = rows[rows['environment'].isin(environments)]
  if rows.empty:
    return np.zeros((0, 0)), []
  per_game = {env: group['normalized'].to_numpy()
              for env, group in rows.groupby('environment', sort=True)}
  num_runs = min(len(v) for v in per_game.values())
  matrix = np.stack([v[:num_runs] for v in per_game.values()], axis=1)
  return matrix, list(per_game)
