"""PNG figures drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes already computed numbers and writes one PNG at `path`.
"""

import io
import math
from typing import Mapping, Optional

from matplotlib import colormaps
from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from batch_rl import storage
from batch_rl.analysis.aggregates import IntervalEstimate
from batch_rl.run_directory import EVAL_RETURN_MEAN
from batch_rl.run_directory import ITERATION

_DPI = 100


def color_map(names) -> dict[str, tuple]:
  """A color per name; pass the same map to every figure of a report."""
  cmap = colormaps['tab10' if len(names) <= 10 else 'tab20']
  return {name: cmap(i % cmap.N) for i, name in enumerate(sorted(names))}


def _save(fig: Figure, path: str):
  png = io.BytesIO()
  fig.savefig(png, format='png', dpi=_DPI, bbox_inches='tight')
  storage.write_atomically(path, png.getvalue())


def learning_curves(curves: pd.DataFrame, path: str,
                    colors: Optional[Mapping[str, tuple]] = None):
  """One panel per environment: per variant, the mean evaluation return over
  seeds by iteration and a min-max band.

  Args:
    curves: rows of (variant, environment, seed, ITERATION, EVAL_RETURN_MEAN).
    path: PNG to write.
    colors: variant -> color (default: `color_map` of the variants).
  """
  environments = sorted(curves['environment'].unique())
  colors = colors or color_map(curves['variant'].unique())
  ncols = min(4, len(environments))
  nrows = math.ceil(len(environments) / ncols)
  fig = Figure(figsize=(4 * ncols, 3 * nrows + 0.6))
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for ax, environment in zip(axes, environments):
    rows = curves[curves['environment'] == environment]
    for variant, group in rows.groupby('variant', sort=True):
      stats = group.groupby(ITERATION)[EVAL_RETURN_MEAN].agg(
          ['mean', 'min', 'max'])
      ax.plot(stats.index, stats['mean'], color=colors[variant],
              label=f'{variant} ({group["seed"].nunique()} seeds)')
      ax.fill_between(stats.index, stats['min'], stats['max'],
                      color=colors[variant], alpha=0.2, linewidth=0)
    ax.set_title(environment)
    ax.set_xlabel(ITERATION)
    ax.set_ylabel('return')
    ax.grid(alpha=0.3)
  for ax in axes[len(environments):]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  for ax in axes[1:len(environments)]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  fig.legend(handles, labels, loc='upper center', ncol=min(3, len(labels)),
             bbox_to_anchor=(0.5, 1.0), frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (3 * nrows + 0.6)))
  _save(fig, path)


def aggregate_intervals(
    estimates: Mapping[str, Mapping[str, IntervalEstimate]], path: str,
    xlabel: str, colors: Optional[Mapping[str, tuple]] = None):
  """One panel per metric: per variant, its CI as a bar and the point as a tick.

  Args:
    estimates: variant -> metric name -> estimate.
    path: PNG to write.
    xlabel: horizontal axis label (the score's unit).
    colors: variant -> color (default: `color_map` of the variants).
  """
  variants = sorted(estimates)
  metrics = list(next(iter(estimates.values())))
  colors = colors or color_map(variants)
  fig = Figure(figsize=(3.2 * len(metrics), 0.5 * len(variants) + 1.2))
  axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
  for ax, metric in zip(axes, metrics):
    for row, variant in enumerate(variants):
      estimate = estimates[variant][metric]
      ax.barh(row, estimate.upper - estimate.lower, left=estimate.lower,
              height=0.6, color=colors[variant], alpha=0.75)
      ax.vlines(estimate.point, row - 0.3, row + 0.3, color='black',
                linewidth=1.5)
    ax.set_title(metric)
    ax.set_xlabel(xlabel)
    ax.grid(axis='x', alpha=0.3)
  axes[0].set_yticks(range(len(variants)), variants)
  axes[0].invert_yaxis()  # First variant on top, as the table reads.
  fig.tight_layout()
  _save(fig, path)


def interval_curves(curves: Mapping[str, pd.DataFrame], path: str,
                    xlabel: str, ylabel: str, log_x: bool = False,
                    colors: Optional[Mapping[str, tuple]] = None):
  """Per name, a line through the point estimates and a band for the CIs.

  Args:
    curves: name -> rows of (x, point, lower, upper), sorted by x.
    path: PNG to write.
    xlabel: horizontal axis label.
    ylabel: vertical axis label.
    log_x: logarithmic horizontal axis (dataset fractions).
    colors: name -> color (default: `color_map` of the names).
  """
  colors = colors or color_map(curves)
  fig = Figure(figsize=(6.5, 4))
  ax = fig.subplots()
  for name in sorted(curves):
    curve = curves[name]
    ax.plot(curve['x'], curve['point'], marker='o', markersize=3,
            color=colors[name], label=name)
    ax.fill_between(curve['x'], curve['lower'], curve['upper'],
                    color=colors[name], alpha=0.2, linewidth=0)
  if log_x:
    ax.set_xscale('log')
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend(fontsize='small')
  fig.tight_layout()
  _save(fig, path)


def grouped_intervals(estimates: Mapping[str, Mapping[str, IntervalEstimate]],
                      path: str, ylabel: str):
  """Bars with CI whiskers: one group per agent, one bar per data selection.

  Args:
    estimates: agent -> selection label -> estimate (labels in plot order).
    path: PNG to write.
    ylabel: vertical axis label.
  """
  labels = list(dict.fromkeys(
      label for per_agent in estimates.values() for label in per_agent))
  colors = color_map(labels)
  agents = sorted(estimates)
  width = 0.8 / len(labels)
  fig = Figure(figsize=(max(5.0, 1.5 * len(agents) * len(labels) ** 0.5), 4))
  ax = fig.subplots()
  for i, label in enumerate(labels):
    positions, points, errors = [], [], []
    for j, agent in enumerate(agents):
      if label in estimates[agent]:
        estimate = estimates[agent][label]
        positions.append(j - 0.4 + (i + 0.5) * width)
        points.append(estimate.point)
        errors.append((estimate.point - estimate.lower,
                       estimate.upper - estimate.point))
    ax.bar(positions, points, width=width, color=colors[label], label=label,
           yerr=np.array(errors).T.reshape(2, -1), capsize=3)
  ax.set_xticks(range(len(agents)), agents)
  ax.set_ylabel(ylabel)
  ax.grid(axis='y', alpha=0.3)
  ax.legend(title='data', fontsize='small')
  fig.tight_layout()
  _save(fig, path)
