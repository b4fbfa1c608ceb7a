"""Writes episodes of vector observations as Dopamine replay checkpoints.

Layout (stack_size 1, update_horizon 1): slot i holds (s_i, a_i, r_i,
terminal_i) and the next state of its transition is the observation in
slot i + 1. So that every transition can be sampled:
  * an episode cut without a terminal (time limit) gets one extra slot
    holding its final observation, marked in `episode_end_indices` and not
    itself a transition; an episode cut off by the end of logging gets the
    same slot unmarked (`close`), so it reads as unfinished;
  * a non-terminal transition never takes a checkpoint's last slot (a cut
    slot with its observation ends the checkpoint instead, and the
    transition opens the next one), so no next state lies in another file.
Checkpoint N is written each time `capacity` new slots have been added, so
checkpoints never overlap; `close` writes the remainder as a partly filled
checkpoint.
"""

from typing import Callable

import numpy as np

from batch_rl.data.dopamine_replay import ReplayArrays

_REJECTION_ROUNDS = 64


class EpisodeReplayWriter:
  """A circular buffer of episodes, saved chunk by chunk, sampleable online.

  Args:
    capacity: slots per checkpoint (and of the online replay).
    observation_dim, action_dim: vector sizes.
    on_checkpoint: called as on_checkpoint(suffix, arrays) for each
      checkpoint, e.g. to write it with `write_checkpoint`.
  """

  def __init__(self, capacity: int, observation_dim: int, action_dim: int,
               on_checkpoint: Callable[[int, ReplayArrays], None]):
    if capacity < 2:
      raise ValueError(f'replay capacity must be at least 2, got {capacity}.')
    self.capacity = capacity
    self._on_checkpoint = on_checkpoint
    self._observation = np.zeros((capacity, observation_dim), np.float32)
    self._action = np.zeros((capacity, action_dim), np.float32)
    self._reward = np.zeros(capacity, np.float32)
    self._terminal = np.zeros(capacity, np.uint8)
    self._episode_end = np.zeros(capacity, bool)
    self._is_transition = np.zeros(capacity, bool)
    self.add_count = 0
    self.num_checkpoints = 0
    self.num_transitions = 0
    # Whether the newest slot is a transition still waiting for its next state.
    self._awaiting_next_state = False

  @property
  def cursor(self) -> int:
    return self.add_count % self.capacity

  def add_transition(self, observation, action, reward: float,
                     terminal: bool) -> None:
    """Appends (s, a, r, terminal); s is also the previous one's next state."""
    if not terminal and self.cursor == self.capacity - 1:
      self._append_cut(observation)
    self._append(observation, action, reward, terminal, episode_end=terminal,
                 is_transition=True)
    self.num_transitions += 1
    self._awaiting_next_state = not terminal

  def truncate_episode(self, final_observation) -> None:
    """Ends an episode without a terminal; its last next state is given.

    A no-op when no transition awaits a next state (after a terminal).
    """
    if self._awaiting_next_state:
      self._append_cut(final_observation)
      self._awaiting_next_state = False

  def close(self, final_observation=None) -> None:
    """Writes the slots added since the last checkpoint, if any.

    An episode still running (logging stopped in it) is left unfinished:
    `final_observation`, the next state of its last transition, takes one
    more slot that ends no episode, so readers see an episode cut off by
    the end of the data rather than a time-limit cut.
    """
    if self._awaiting_next_state:
      if final_observation is None:
        raise ValueError('An episode is still running: pass its final '
                         'observation, close(final_observation), or end it '
                         'with truncate_episode(final_observation).')
      self._append(final_observation, 0.0, 0.0, False, episode_end=False,
                   is_transition=False)
      self._awaiting_next_state = False
    elif self.cursor and self._terminal[self.cursor - 1]:
      # A partly filled Dopamine buffer never samples its newest slot.
      self._append_cut(np.zeros_like(self._observation[0]))
    if self.cursor:
      self._write_checkpoint(self.cursor)

  def sample_batch(self, batch_size: int, rng: np.random.Generator) -> dict:
    """Uniformly sampled transitions, in the pipeline's batch format."""
    stored = min(self.add_count, self.capacity)
    indices = rng.integers(stored, size=batch_size)
    for _ in range(_REJECTION_ROUNDS):  # Rejection keeps sampling O(batch).
      rejected = ~self._is_sampleable(indices)
      if not rejected.any():
        break
      indices[rejected] = rng.integers(stored, size=int(rejected.sum()))
    else:
      candidates = np.flatnonzero(self._is_sampleable(np.arange(stored)))
      if not len(candidates):
        raise ValueError('The replay holds no complete transition yet.')
      indices = rng.choice(candidates, size=batch_size)
    following = (indices + 1) % self.capacity
    return {
        'state': self._observation[indices][..., None],
        'action': self._action[indices],
        'reward': self._reward[indices],
        'next_state': self._observation[following][..., None],
        'terminal': self._terminal[indices],
    }

  def _is_sampleable(self, slots: np.ndarray) -> np.ndarray:
    sampleable = self._is_transition[slots]
    if self._awaiting_next_state:
      sampleable &= slots != self.cursor - 1
    return sampleable

  def _append_cut(self, observation) -> None:
    self._append(observation, 0.0, 0.0, False, episode_end=True,
                 is_transition=False)

  def _append(self, observation, action, reward, terminal, episode_end,
              is_transition) -> None:
    slot = self.cursor
    self._observation[slot] = observation
    self._action[slot] = action
    self._reward[slot] = reward
    self._terminal[slot] = terminal
    self._episode_end[slot] = episode_end
    self._is_transition[slot] = is_transition
    self.add_count += 1
    if self.cursor == 0:
      self._write_checkpoint(self.capacity)

  def _write_checkpoint(self, num_slots: int) -> None:
    """Saves slots [0, num_slots) of the current chunk; the rest is zeros."""
    def chunk(array):
      copy = array.copy()
      copy[num_slots:] = 0
      return copy
    arrays = ReplayArrays(
        observation=chunk(self._observation),
        action=chunk(self._action),
        reward=chunk(self._reward),
        terminal=chunk(self._terminal),
        add_count=num_slots,
        invalid_range=np.zeros(0, np.int64),
        episode_end_indices=np.flatnonzero(self._episode_end[:num_slots]))
    self._on_checkpoint(self.num_checkpoints, arrays)
    self.num_checkpoints += 1
