"""The one episode splitter of Dopamine replay buffers.

A checkpoint is a circular buffer; its episodes, in play order, are the runs
of slots between episode ends (terminal or `episode_end_indices`). Every
episode starts with stack_size - 1 zero padding slots that are not steps.
The oldest episode of a wrapped (full) buffer may have lost its start to the
write cursor, so it is never returned; the newest may be unfinished.
Summaries (`data info`), RLDS export and policy selection read episodes here;
`logged_episode_returns` joins the parts of an episode that a logger's
checkpoint boundary cut.
"""

import dataclasses

import numpy as np

from batch_rl.data import dopamine_replay
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.errors import ReplayDataError


@dataclasses.dataclass(frozen=True)
class StoredEpisode:
  """Buffer slots of one episode's real steps, oldest first."""
  slots: np.ndarray
  terminal: bool  # Ends in a terminal (else a time-limit cut or unfinished).
  complete: bool  # Ends in a terminal or a cut (not the unfinished newest).
  started: bool = True  # False: the wrapped buffer's oldest run, no start.


def stored_episodes(arrays: ReplayArrays, stack_size: int, source: str,
                    lost_start: bool = False) -> list[StoredEpisode]:
  """Episodes of a Dopamine buffer in play order, padding slots excluded.

  `lost_start` also returns a wrapped buffer's oldest run of slots (up to
  its first episode end), `started=False`: the rest of an episode whose
  start was overwritten or lies in the checkpoint before.

  Raises ReplayDataError naming `source` when the slots that must be padding
  for `stack_size` are not all zero.
  """
  order = arrays.chronological_slots()
  if not len(order):
    return []
  ends = arrays.chronological_episode_ends()
  end_positions = list(np.flatnonzero(ends))
  episodes = []
  if arrays.has_wrapped:
    if not end_positions:
      return ([StoredEpisode(order, False, complete=False, started=False)]
              if lost_start else [])
    start = end_positions.pop(0) + 1
    if lost_start:
      episodes.append(StoredEpisode(
          order[:start], bool(arrays.terminal[order[start - 1]]),
          complete=True, started=False))
  else:
    start = 0
  unfinished = not ends[-1]
  if unfinished:
    end_positions.append(len(order) - 1)
  for end in end_positions:
    first = start + stack_size - 1
    if first > end:
      raise ReplayDataError(
          f'{source}: an episode ends at slot {order[end]} within the '
          f'{stack_size - 1} padding slots that start every episode for '
          f'stack_size={stack_size}; was the data written with another '
          'stack_size?')
    _check_padding(arrays, order[start:first], stack_size, source)
    episodes.append(StoredEpisode(
        order[first:end + 1], bool(arrays.terminal[order[end]]),
        complete=not (unfinished and end == len(order) - 1)))
    start = end + 1
  return episodes


def _check_padding(arrays: ReplayArrays, slots: np.ndarray, stack_size: int,
                   source: str) -> None:
  if not len(slots):
    return
  if any(np.asarray(getattr(arrays, name)[slots]).any()
         for name in dopamine_replay.STORE_ELEMENTS):
    raise ReplayDataError(
        f'{source}: slots {slots.tolist()} should be the zero padding that '
        f'starts an episode for stack_size={stack_size} (zero observation, '
        'action, reward and terminal); was the data written with another '
        'stack_size?')


def continues_episode(previous: ReplayArrays, current: ReplayArrays,
                      same_observation) -> bool:
  """Whether `current`, the checkpoint a logger wrote after `previous`,
  begins with the rest of the episode running at the end of `previous`.

  Dopamine's logger (baselines/logged_replay_buffer.py) writes checkpoint k
  with add_count (k + 1) * capacity, the last one partly filled, and leaves
  an episode running at the boundary open: `previous`'s newest slot ends no
  episode. The continuous writer (continuous/replay_writer.py) ends a full
  checkpoint on a cut slot holding the observation the next one starts
  from; `same_observation()` compares the two (called only then).
  """
  ends = previous.chronological_episode_ends()
  if not len(ends) or current.capacity != previous.capacity:
    return False
  capacity = previous.capacity
  if not ends[-1]:
    return (previous.add_count % capacity == 0 and
            (current.add_count == previous.add_count + capacity or
             0 < current.add_count < capacity))
  newest = previous.chronological_slots()[-1]
  return (previous.add_count == capacity and current.add_count <= capacity
          and not previous.terminal[newest] and bool(same_observation()))


def logged_episode_returns(checkpoints, continues) -> tuple[list, bool]:
  """Returns of the episodes of a logger's checkpoints, joined across them.

  Args:
    checkpoints: ReplayArrays in the order they were logged.
    continues: per checkpoint, whether it begins with the rest of the
      episode running at the end of the one before (`continues_episode`).

  Returns:
    Per checkpoint, the returns (float64 array) of the finished episodes
    that end in it, an episode cut by a checkpoint boundary counted once
    where it ends; and whether the last checkpoint ends in an unfinished
    episode (cut off by the end of logging).
  """
  # The return so far of the episode running on into the next checkpoint;
  # None where its start is lost.
  per_checkpoint, carried, unfinished = [], None, False
  for i, arrays in enumerate(checkpoints):
    continued_next = i + 1 < len(checkpoints) and continues[i + 1]
    reward = np.asarray(arrays.reward, np.float64)
    runs = stored_episodes(arrays, 1, 'returns', lost_start=True)
    if i == len(checkpoints) - 1 and runs and _is_closing_slot(arrays,
                                                               runs[-1]):
      runs.pop()
    returns = []
    for j, run in enumerate(runs):
      total = reward[run.slots].sum()
      started = run.started
      if j == 0 and continues[i]:
        started = carried is not None
        total += carried or 0.
      if j == len(runs) - 1 and continued_next:
        carried = total if started else None
      elif started and run.complete:
        returns.append(total)
      elif started:
        unfinished = i == len(checkpoints) - 1
    per_checkpoint.append(np.array(returns, np.float64))
  return per_checkpoint, unfinished


def _is_closing_slot(arrays: ReplayArrays, run: StoredEpisode) -> bool:
  """Whether `run` is the continuous writer's closing slot: an observation
  after a terminal, only so that the terminal step is not the newest slot
  (continuous/replay_writer.py `close`); it holds no step. (A one-step
  episode cut by a time limit right after a terminal at the very end of
  stack-1 data looks the same.)"""
  slot = run.slots[0]
  return (len(run.slots) == 1 and run.complete and not run.terminal and
          slot == arrays.chronological_slots()[-1] and slot > 0 and
          bool(arrays.terminal[slot - 1]))


def episode_returns(arrays: ReplayArrays) -> np.ndarray:
  """Undiscounted returns of the complete episodes stored in a checkpoint.

  Padding slots hold reward 0, so splitting with stack_size 1 (no padding
  check) gives every stack size's returns.
  """
  reward = np.asarray(arrays.reward)
  return np.array([reward[e.slots].astype(np.float64).sum()
                   for e in stored_episodes(arrays, 1, 'returns')
                   if e.complete], dtype=np.float64)
