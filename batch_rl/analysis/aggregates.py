"""Aggregate metrics over a [runs x games] score matrix, with bootstrap CIs.

Definitions follow rliable (Agarwal et al., 2021, "Deep RL at the Edge of the
Statistical Precipice"): every metric takes scores shaped [..., runs, games]
so that a whole batch of bootstrap resamples is evaluated at once. Intervals
are percentile intervals of a stratified bootstrap: within each game, runs
are resampled with replacement, games stay fixed.
"""

import dataclasses
from typing import Callable, Mapping

import numpy as np
import scipy.stats

Metric = Callable[[np.ndarray], np.ndarray]
# Resampled scores held in memory at once; bounds the chunk of repetitions.
_MAX_RESAMPLED_VALUES = 4_000_000


def aggregate_mean(scores: np.ndarray) -> np.ndarray:
  """Mean over games of the per-game mean over runs."""
  return np.mean(np.mean(scores, axis=-2), axis=-1)


def aggregate_median(scores: np.ndarray) -> np.ndarray:
  """Median over games of the per-game mean over runs."""
  return np.median(np.mean(scores, axis=-2), axis=-1)


def aggregate_iqm(scores: np.ndarray) -> np.ndarray:
  """Interquartile mean: the 25%-trimmed mean of all runs and games pooled."""
  pooled = scores.reshape(scores.shape[:-2] + (-1,))
  return scipy.stats.trim_mean(pooled, proportiontocut=0.25, axis=-1)


def aggregate_optimality_gap(scores: np.ndarray, gamma: float = 1.0
                             ) -> np.ndarray:
  """mean(max(gamma - x, 0)) over all runs and games."""
  return gamma - np.mean(np.minimum(scores, gamma), axis=(-2, -1))


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray
                               ) -> np.ndarray:
  """P(X > Y) averaged over games: per game, U / (n_x n_y) of Mann-Whitney.

  U counts the pairs (x_i, y_j) with x_i > y_j, ties counting one half.
  Shapes [..., runs_x, games] and [..., runs_y, games].
  """
  x = scores_x[..., :, None, :]
  y = scores_y[..., None, :, :]
  wins = (x > y) + 0.5 * (x == y)
  return np.mean(np.mean(wins, axis=(-3, -2)), axis=-1)


METRICS: Mapping[str, Metric] = {
    'Median': aggregate_median,
    'IQM': aggregate_iqm,
    'Mean': aggregate_mean,
    'Optimality Gap': aggregate_optimality_gap,
}


@dataclasses.dataclass(frozen=True)
class IntervalEstimate:
  """A point estimate and its confidence interval [lower, upper]."""
  point: float
  lower: float
  upper: float


def _check_matrix(scores: np.ndarray, name: str) -> np.ndarray:
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 2 or 0 in scores.shape:
    raise ValueError(f'{name} must be a non-empty [runs x games] matrix, got '
                     f'shape {scores.shape}.')
  if not np.isfinite(scores).all():
    raise ValueError(f'{name} has non-finite values.')
  return scores


def _stratified_resample(scores: np.ndarray, reps: int,
                         rng: np.random.Generator) -> np.ndarray:
  """[reps, runs, games]: each game's runs drawn with replacement."""
  num_runs, num_games = scores.shape
  rows = rng.integers(0, num_runs, size=(reps, num_runs, num_games))
  return scores[rows, np.arange(num_games)]


def _chunks(reps: int, values_per_rep: int):
  size = max(1, _MAX_RESAMPLED_VALUES // values_per_rep)
  for start in range(0, reps, size):
    yield min(size, reps - start)


def _interval(point, samples: np.ndarray, confidence: float
              ) -> IntervalEstimate:
  tail = 100 * (1 - confidence) / 2
  lower, upper = np.percentile(samples, [tail, 100 - tail])
  return IntervalEstimate(float(point), float(lower), float(upper))


def _check_bootstrap_args(reps: int, confidence: float):
  if reps < 1:
    raise ValueError(f'bootstrap reps must be >= 1, got {reps}.')
  if not 0 < confidence < 1:
    raise ValueError(f'confidence must be in (0, 1), got {confidence}.')


def interval_estimates(scores: np.ndarray,
                       metrics: Mapping[str, Metric] = METRICS,
                       reps: int = 50_000, confidence: float = 0.95,
                       seed: int = 0) -> dict[str, IntervalEstimate]:
  """Point estimates and stratified-bootstrap percentile CIs of `metrics`.

  All metrics are evaluated on the same resamples, seeded by `seed`.
  """
  scores = _check_matrix(scores, 'scores')
  _check_bootstrap_args(reps, confidence)
  rng = np.random.default_rng(seed)
  samples = {name: [] for name in metrics}
  for size in _chunks(reps, scores.size):
    resampled = _stratified_resample(scores, size, rng)
    for name, metric in metrics.items():
      samples[name].append(metric(resampled))
  return {name: _interval(metric(scores), np.concatenate(samples[name]),
                          confidence)
          for name, metric in metrics.items()}


def probability_of_improvement_estimate(
    scores_x: np.ndarray, scores_y: np.ndarray, reps: int = 50_000,
    confidence: float = 0.95, seed: int = 0) -> IntervalEstimate:
  """P(X > Y) with a CI; X's and Y's runs are resampled independently."""
  scores_x = _check_matrix(scores_x, 'scores_x')
  scores_y = _check_matrix(scores_y, 'scores_y')
  if scores_x.shape[1] != scores_y.shape[1]:
    raise ValueError(
        f'scores_x and scores_y must cover the same games, got '
        f'{scores_x.shape[1]} and {scores_y.shape[1]} columns.')
  _check_bootstrap_args(reps, confidence)
  rng = np.random.default_rng(seed)
  samples = []
  pairs = scores_x.shape[0] * scores_y.shape[0] * scores_x.shape[1]
  for size in _chunks(reps, pairs):
    samples.append(probability_of_improvement(
        _stratified_resample(scores_x, size, rng),
        _stratified_resample(scores_y, size, rng)))
  return _interval(probability_of_improvement(scores_x, scores_y),
                   np.concatenate(samples), confidence)
