"""Timing of the training-loop benchmarks (atari_loop.py, continuous.py).

A call runs several steps; its time per step is wall-clock and CPU time
(this process, all threads). Kinds of call are timed in alternating blocks,
a round being one block of each kind, so that load from other processes
hits every kind alike.
"""

import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

# The kind whose blocks' total time decides when the rounds end.
PIPELINE = 'pipeline'


def seconds_per_step(step_fn, steps: int) -> tuple[float, float]:
  """Wall-clock and CPU seconds per step of `step_fn()`, a call that runs
  `steps` steps."""
  start, cpu = time.perf_counter(), time.process_time()
  result = step_fn()
  tf.nest.map_structure(np.asarray, result)  # Waits for asynchronous devices.
  return ((time.perf_counter() - start) / steps,
          (time.process_time() - cpu) / steps)


def alternating_blocks(
    time_block: Callable[[str], tuple[float, float]], kinds: Sequence[str],
    steps: int, rounds: int, seconds: float, rotate: bool = False,
    after_round: Optional[Callable[[dict], None]] = None
) -> dict[str, list[tuple[float, float]]]:
  """Rounds of one block of each of `kinds`, until there are at least
  `rounds` and the PIPELINE blocks took `seconds` in all.

  Args:
    time_block: runs one block of `steps` steps of a kind; returns its
      `seconds_per_step`.
    kinds: the kinds, in the order of a round.
    steps: steps per block.
    rounds: least rounds.
    seconds: least time of the PIPELINE blocks in all.
    rotate: each round starts with the kind after the one the round before
      started with.
    after_round: called with the times so far after each round.

  Returns:
    kind -> its blocks' (wall-clock, CPU) seconds per step, one per round.
  """
  times = {kind: [] for kind in kinds}
  while (len(times[PIPELINE]) < rounds or
         sum(wall for wall, _ in times[PIPELINE]) * steps < seconds):
    first = len(times[PIPELINE]) if rotate else 0
    for i in range(len(kinds)):
      kind = kinds[(first + i) % len(kinds)]
      times[kind].append(time_block(kind))
    if after_round is not None:
      after_round(times)
  return times
