"""The one episode splitter of Dopamine replay buffers.

A checkpoint is a circular buffer; its episodes, in play order, are the runs
of slots between episode ends (terminal or `episode_end_indices`). Every
episode starts with stack_size - 1 zero padding slots that are not steps.
The oldest episode of a wrapped (full) buffer may have lost its start to the
write cursor, so it is never returned; the newest may be unfinished.
Summaries (`data info`), RLDS export and policy selection read episodes here.
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


def stored_episodes(arrays: ReplayArrays, stack_size: int,
                    source: str) -> list[StoredEpisode]:
  """Episodes of a Dopamine buffer in play order, padding slots excluded.

  Raises ReplayDataError naming `source` when the slots that must be padding
  for `stack_size` are not all zero.
  """
  order = arrays.chronological_slots()
  if not len(order):
    return []
  ends = arrays.chronological_episode_ends()
  end_positions = list(np.flatnonzero(ends))
  if arrays.has_wrapped:
    if not end_positions:
      return []
    start = end_positions.pop(0) + 1
  else:
    start = 0
  unfinished = not ends[-1]
  if unfinished:
    end_positions.append(len(order) - 1)
  episodes = []
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


def episode_returns(arrays: ReplayArrays) -> np.ndarray:
  """Undiscounted returns of the complete episodes stored in a checkpoint.

  Padding slots hold reward 0, so splitting with stack_size 1 (no padding
  check) gives every stack size's returns.
  """
  reward = np.asarray(arrays.reward)
  return np.array([reward[e.slots].astype(np.float64).sum()
                   for e in stored_episodes(arrays, 1, 'returns')
                   if e.complete], dtype=np.float64)
