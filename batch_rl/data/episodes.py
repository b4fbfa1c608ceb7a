"""The one episode splitter of Dopamine replay buffers.

A checkpoint is a circular buffer; its episodes, in play order, are the runs
of slots between episode ends (terminal or `episode_end_indices`). Every
episode starts with stack_size - 1 zero padding slots that are not steps.
The oldest episode of a wrapped (full) buffer may have lost its start to the
write cursor, so it is never returned; the newest may be unfinished.
Policy selection reads one checkpoint's episodes here (`stored_episodes`);
summaries (`data info`) and RLDS export read the episodes of a logger's
checkpoints as played (`EpisodeJoiner`), joining the parts of an episode
that checkpoint boundaries cut.
"""

import dataclasses
from typing import Iterator, Optional

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
      raise _ends_in_padding(f'{source}: an episode ends at slot '
                             f'{order[end]}', stack_size)
    padding = order[start:first]
    if len(padding):  # Frames (maybe compact, decoded on read) only then.
      _check_padding({name: getattr(arrays, name)[padding]
                      for name in dopamine_replay.STORE_ELEMENTS},
                     f'{source}: slots {padding.tolist()}', stack_size)
    episodes.append(StoredEpisode(
        order[first:end + 1], bool(arrays.terminal[order[end]]),
        complete=not (unfinished and end == len(order) - 1)))
    start = end + 1
  return episodes


def _ends_in_padding(episode: str, stack_size: int) -> ReplayDataError:
  """The error for `episode` ("FILE: an episode ends ...") ending within the
  padding that starts every episode."""
  return ReplayDataError(
      f'{episode} within the {stack_size - 1} padding slots that start every '
      f'episode for stack_size={stack_size}; was the data written with '
      'another stack_size?')


def _check_padding(values: dict, slots: str, stack_size: int) -> None:
  """Raises ReplayDataError naming `slots` unless `values` (element name:
  its values at an episode's first stack_size - 1 slots) are all zero."""
  if any(np.asarray(value).any() for value in values.values()):
    raise ReplayDataError(
        f'{slots} should be the zero padding that starts an episode for '
        f'stack_size={stack_size} (zero {", ".join(values)}); was the data '
        'written with another stack_size?')


# How a checkpoint begins, next to the checkpoint logged just before it.
STARTS = 'starts'          # With a new episode (or its padding).
CONTINUES = 'continues'    # With the rest of the episode running at the end
                           # of the checkpoint before.
LOST_START = 'lost_start'  # With the rest of an episode whose start is not
                           # at hand (a wrapped buffer's oldest slots).


def _dopamine_logged_after(previous: ReplayArrays,
                           current: ReplayArrays) -> bool:
  """Whether Dopamine's logger can have written `current` right after
  `previous`: checkpoint k holds add_count (k + 1) * capacity, the last one
  the cursor's slots (baselines/logged_replay_buffer.py)."""
  capacity = previous.capacity
  return (current.capacity == capacity and previous.add_count >= capacity and
          previous.add_count % capacity == 0 and
          (current.add_count == previous.add_count + capacity or
           0 < current.add_count < capacity))


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
  if not ends[-1]:
    return _dopamine_logged_after(previous, current)
  newest = previous.chronological_slots()[-1]
  return (previous.add_count == previous.capacity and
          current.add_count <= current.capacity and
          not previous.terminal[newest] and bool(same_observation()))


def checkpoint_before(previous_suffix, previous: Optional[ReplayArrays],
                      suffix) -> tuple[Optional[ReplayArrays], bool]:
  """`how_checkpoint_begins`'s (previous, after_gap) for checkpoint `suffix`,
  read after checkpoint `previous_suffix` (`previous`; None for the first
  read): `previous` only if it is suffix N - 1 of N, the one a logger wrote
  just before; else a gap unless `suffix` is 0."""
  if previous_suffix is not None and int(suffix) == int(previous_suffix) + 1:
    return previous, False
  return None, int(suffix) > 0


def newest_frame(arrays: ReplayArrays, frames=None) -> np.ndarray:
  """The newest stored frame of `arrays` (`frames`: its observations, where
  `arrays.observation` is only a stand-in)."""
  frames = arrays.observation if frames is None else frames
  return frames[arrays.chronological_slots()[-1]]


def same_boundary_frame(previous_newest_frame: np.ndarray,
                        current: ReplayArrays, current_frames=None) -> bool:
  """Whether the newest frame of the checkpoint before (`newest_frame`) is
  `current`'s oldest: `how_checkpoint_begins`'s `same_observation`."""
  frames = current.observation if current_frames is None else current_frames
  return np.array_equal(previous_newest_frame,
                        frames[current.chronological_slots()[0]])


def how_checkpoint_begins(previous: Optional[ReplayArrays],
                          current: ReplayArrays, same_observation,
                          after_gap: bool = False) -> str:
  """STARTS, CONTINUES or LOST_START: how `current` begins.

  `previous`: the checkpoint logged just before `current` (suffix N - 1 of
  N: `checkpoint_before`), or None. `same_observation()`: see
  `continues_episode` (`same_boundary_frame`). `after_gap`: `previous` is
  None though checkpoints were logged before `current` (a selection
  skipped suffix N - 1); a partly filled `current`, the last a logger
  wrote, then begins with the rest of an episode whose start is not at
  hand. A buffer that never wrapped starts at its slot 0, unless it
  continues `previous`'s episode (`continues_episode`); a wrapped one's
  oldest slots start an episode only where Dopamine's logger wrote it
  right after `previous` ended one.
  """
  if previous is not None and continues_episode(previous, current,
                                                same_observation):
    return CONTINUES
  if after_gap and not current.is_full:
    return LOST_START
  if (not current.has_wrapped or previous is not None and
      _dopamine_logged_after(previous, current) and
      previous.chronological_episode_ends()[-1]):
    return STARTS
  return LOST_START


@dataclasses.dataclass(frozen=True)
class LoggedEpisode:
  """One episode as played, joined across the checkpoints a logger cut it
  into.

  `steps` maps each element asked for ('reward', ...) to its values at the
  episode's real steps, padding excluded, oldest first; those steps lie at
  `slots` of the checkpoints at `slot_checkpoints` (positions in the order
  fed); `checkpoint`, the last of these, holds its last step.
  """
  steps: dict
  terminal: bool  # Ends in a terminal (else a time-limit cut or unfinished).
  complete: bool  # Ends in a terminal or a cut (not where the data stops).
  checkpoint: int
  slots: np.ndarray
  slot_checkpoints: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Run:
  """Consecutive slots up to an episode end, padding included: `slots` of
  the checkpoints at `slot_checkpoints`. Its values are `prefix` (copied
  from checkpoints before, or None) followed by those of `arrays` at
  `own_slots` (None once copied)."""
  slots: np.ndarray
  slot_checkpoints: np.ndarray
  prefix: Optional[dict]
  arrays: Optional[ReplayArrays]
  own_slots: np.ndarray
  started: bool  # Holds its episode's first slot.
  ended: bool  # Its last slot ends the episode.
  terminal: bool
  source: str  # Its first slots, for errors.
  closing: bool  # The continuous writer's closing slot (`_is_closing_slot`).


class EpisodeJoiner:
  """Splits a logger's checkpoints, fed in play order, into the episodes
  played.

  An episode that checkpoint boundaries cut is returned once, whole, with
  the checkpoint where it ends; the continuous writer's cut slot that ends
  a full checkpoint (its observation opens the next) is no step of it, and
  its closing slot after a final terminal is no episode. An episode whose
  start is not at hand (`LOST_START`) is not returned. Episodes are copied
  out of the arrays one at a time, as they are iterated, and only each
  checkpoint's newest run is kept (copied) until the next checkpoint says
  whether it goes on: one checkpoint's arrays are needed at a time.

  Args:
    stack_size: the replay's; every episode's first stack_size - 1 slots
      must be zero padding, and are not steps.
    elements: the store elements `LoggedEpisode.steps` holds.
  """

  def __init__(self, stack_size: int,
               elements=dopamine_replay.STORE_ELEMENTS):
    self._padding = stack_size - 1
    self._elements = tuple(elements)
    self._held = None  # The newest run of the last checkpoint fed, copied.
    self._fed = 0

  def add(self, arrays: ReplayArrays, begins: str,
          source: str) -> Iterator[LoggedEpisode]:
    """The episodes known once `arrays` (how it `begins`) is fed: the held
    run of the checkpoint before unless `arrays` continues it (finished or
    unfinished there), then those that end in `arrays`; in play order.

    Iterating raises ReplayDataError naming `source` where padding is not
    zero; `arrays` must stay unchanged until then.
    """
    position, self._fed = self._fed, self._fed + 1
    runs = [
        _Run(run.slots, np.full(len(run.slots), position), None, arrays,
             run.slots,
             started=(begins == STARTS if j == 0 and begins != CONTINUES
                      else run.started),
             ended=run.complete, terminal=run.terminal,
             source=f'{source} slots '
                    f'{run.slots[:self._padding + 1].tolist()}',
             closing=_is_closing_slot(arrays, run))
        for j, run in enumerate(stored_episodes(arrays, 1, source,
                                                lost_start=True))]
    ended = []
    if runs and begins == CONTINUES and self._held is not None:
      runs[0] = self._joined(self._held, runs[0])
    elif runs and self._held is not None:
      ended.append(self._held)
    if runs:
      ended += runs[:-1]
      self._held = dataclasses.replace(
          runs[-1], prefix=self._values(runs[-1]), arrays=None,
          own_slots=runs[-1].own_slots[:0])
    return (episode for run in ended for episode in self._episode(run))

  def finish(self) -> list[LoggedEpisode]:
    """The episode of the last checkpoint's newest run, if any."""
    held, self._held = self._held, None
    if held is None or held.closing:
      return []
    return self._episode(held)

  def _values(self, run: _Run) -> dict:
    """The run's values of `elements`, copied out of its arrays."""
    if run.arrays is None:
      return run.prefix
    own = {name: np.asarray(getattr(run.arrays, name))[run.own_slots]
           for name in self._elements}
    if run.prefix is None:
      return own
    return {name: np.concatenate([run.prefix[name], own[name]])
            for name in self._elements}

  def _joined(self, held: _Run, run: _Run) -> _Run:
    # A continuous writer's boundary cut slot repeats the next step's
    # observation: it is no step.
    keep = len(held.slots) - held.ended
    return dataclasses.replace(
        run, started=held.started, source=held.source,
        prefix={name: value[:keep] for name, value in held.prefix.items()},
        slots=np.concatenate([held.slots[:keep], run.slots]),
        slot_checkpoints=np.concatenate([held.slot_checkpoints[:keep],
                                         run.slot_checkpoints]))

  def _episode(self, run: _Run) -> list[LoggedEpisode]:
    if not run.started:
      return []
    if len(run.slots) <= self._padding:
      raise _ends_in_padding(f'{run.source}: an episode ends',
                             self._padding + 1)
    values = self._values(run)
    _check_padding({name: value[:self._padding]
                    for name, value in values.items()},
                   f'{run.source}: the first {self._padding} slots',
                   self._padding + 1)
    return [LoggedEpisode(
        {name: value[self._padding:] for name, value in values.items()},
        run.terminal, run.ended, int(run.slot_checkpoints[-1]),
        run.slots[self._padding:], run.slot_checkpoints[self._padding:])]


def logged_episode_returns(checkpoints, begins) -> tuple[list, bool]:
  """Returns of the episodes of a logger's checkpoints, joined across them.

  Args:
    checkpoints: ReplayArrays in the order they were logged.
    begins: per checkpoint, `how_checkpoint_begins`.

  Returns:
    Per checkpoint, the returns (float64 array) of the finished episodes
    that end in it, an episode cut by checkpoint boundaries counted once
    where it ends; and whether the last checkpoint ends in an unfinished
    episode (cut off by the end of logging).
  """
  # Padding slots hold reward 0: stack_size 1 gives every stack size's sums.
  joiner = EpisodeJoiner(1, ('reward',))
  found = []
  for arrays, how in zip(checkpoints, begins):
    found += joiner.add(arrays, how, 'returns')
  found += joiner.finish()
  per_checkpoint = [[] for _ in checkpoints]
  unfinished = False
  for episode in found:
    if episode.complete:
      per_checkpoint[episode.checkpoint].append(
          episode.steps['reward'].sum(dtype=np.float64))
    elif episode.checkpoint == len(checkpoints) - 1:
      unfinished = True
  return [np.array(r, np.float64) for r in per_checkpoint], unfinished


def _is_closing_slot(arrays: ReplayArrays, run: StoredEpisode) -> bool:
  """Whether `run` may be the continuous writer's closing slot: one slot
  of action and reward 0 ending an episode right after a terminal, the
  newest of a buffer that never wrapped, there only so that the terminal
  step is not the newest slot (continuous/replay_writer.py `close`); it
  holds no step. `EpisodeJoiner` drops it where the data ends (a one-step
  episode of action and reward 0 cut by a time limit right after a
  terminal, at the very end, would look the same)."""
  slot = run.slots[0]
  return (len(run.slots) == 1 and run.complete and not run.terminal and
          not arrays.has_wrapped and
          slot == arrays.chronological_slots()[-1] and slot > 0 and
          bool(arrays.terminal[slot - 1]) and
          not np.asarray(arrays.action[slot]).any() and
          not arrays.reward[slot])
