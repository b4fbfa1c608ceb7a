"""The live progress table of a study and its estimate of the time left.

The estimate uses only the run times measured in this execution: per kind
of run (logging, staging, offline), the mean duration of the runs that
finished, applied to the runs not finished yet and divided by the most
runs seen going on at once (at least 1). Until a run of a kind has
finished, its estimate is unknown.
"""

import time
from typing import Mapping, Optional

from batch_rl.study_directory import KINDS


def format_duration(seconds: float) -> str:
  """'45s', '12m05s', '3h07m'."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'


class Board:
  """Run states by kind: pending, running, done, failed, skipped."""

  def __init__(self, kinds: Mapping[str, str],
               skipped: Optional[Mapping[str, str]] = None,
               clock=time.time):
    """Args:
      kinds: run name -> kind, of the runs this execution starts.
      skipped: run name -> kind, of the runs finished before it started.
      clock: seconds (injectable for tests).
    """
    self.kinds = dict(kinds)
    self.skipped = dict(skipped or {})
    self.clock = clock
    self.start = clock()
    self.starts = {}
    self.durations = {}
    self.failures = set()
    self.parallel = 1  # The most runs seen running at once.

  def started(self, start_times: Mapping[str, float]) -> None:
    for name, when in start_times.items():
      if name in self.kinds:
        self.starts.setdefault(name, when)
    running = sum(self.state(name) == 'running' for name in self.starts)
    self.parallel = max(self.parallel, running)

  def finished(self, name: str, duration_s: float) -> None:
    self.durations[name] = duration_s

  def failed(self, name: str) -> None:
    self.failures.add(name)

  def state(self, name: str) -> str:
    if name in self.durations:
      return 'done'
    if name in self.failures:
      return 'failed'
    if name in self.starts:
      return 'running'
    return 'pending'

  def mean_duration(self, kind: str) -> Optional[float]:
    """Mean duration of the runs of `kind` that ran to the end here."""
    measured = [d for n, d in self.durations.items()
                if self.kinds[n] == kind and d > 0]
    return sum(measured) / len(measured) if measured else None

  def time_left(self) -> Optional[float]:
    """Seconds until the last run ends, or None while unknown."""
    now = self.clock()
    work = 0.0
    for name, kind in self.kinds.items():
      state = self.state(name)
      if state in ('done', 'failed'):
        continue
      mean = self.mean_duration(kind)
      if mean is None:
        return None
      if state == 'running':
        work += max(mean - (now - self.starts[name]), 0.0)
      else:
        work += mean
    return work / self.parallel

  def table(self) -> str:
    """A fixed-width table: one row per kind of run, then the estimate."""
    header = ('kind', 'done', 'running', 'failed', 'pending', 'skipped',
              'mean run')
    rows = []
    for kind in KINDS:
      names = [n for n, k in self.kinds.items() if k == kind]
      skipped = sum(1 for k in self.skipped.values() if k == kind)
      if not names and not skipped:
        continue
      states = [self.state(n) for n in names]
      mean = self.mean_duration(kind)
      rows.append((kind, *(str(states.count(s)) for s in (
          'done', 'running', 'failed', 'pending')), str(skipped),
                   format_duration(mean) if mean is not None else '-'))
    widths = [max(len(r[i]) for r in [header] + rows)
              for i in range(len(header))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths))
             for row in [header] + rows]
    left = self.time_left()
    elapsed = format_duration(self.clock() - self.start)
    estimate = ('unknown until a run of each kind has finished'
                if left is None else f'about {format_duration(left)}')
    lines.append(f'elapsed {elapsed}, time left: {estimate}')
    return '\n'.join(lines)
