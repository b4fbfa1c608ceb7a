"""A replay buffer that logs every transition it ever holds, as the DQN Replay
Dataset was logged.

`LoggedReplayBuffer` is dopamine-rl's `OutOfGraphReplayBuffer` (same adds,
zero padding of stack_size - 1 frames at each episode start, same sampling).
Each time `add_count` reaches a multiple k * capacity, the buffer holds
exactly the capacity slots added since the previous multiple, and it is
written whole as checkpoint k - 1 into `log_dir`. `log_final_buffer` writes
the slots added since the last full checkpoint as one more checkpoint whose
`add_count` is that number of slots, so readers see a buffer that is not full
and ignore the stale slots beyond it. Every added slot thus lands in exactly
one checkpoint.
"""

import gin
import numpy as np
from dopamine.replay_memory import circular_replay_buffer

from batch_rl.data import dopamine_replay


@gin.configurable(denylist=['log_dir', 'observation_shape', 'stack_size',
                            'observation_dtype'])
class LoggedReplayBuffer(circular_replay_buffer.OutOfGraphReplayBuffer):
  """Dopamine's circular buffer plus checkpoints of its content on each wrap."""

  def __init__(self, log_dir: str, observation_shape, stack_size: int,
               observation_dtype=np.uint8, replay_capacity: int = 1_000_000,
               batch_size: int = 32, update_horizon: int = 1,
               gamma: float = 0.99):
    super().__init__(
        observation_shape=tuple(observation_shape),
        stack_size=stack_size,
        replay_capacity=replay_capacity,
        batch_size=batch_size,
        update_horizon=update_horizon,
        gamma=gamma,
        observation_dtype=observation_dtype)
    self._log_dir = log_dir

  @property
  def replay_capacity(self) -> int:
    return self._replay_capacity

  def _add_transition(self, transition):
    # Every slot, padding included, passes here, so no multiple is skipped.
    super()._add_transition(transition)
    if self.add_count % self._replay_capacity == 0:
      self._write_log(int(self.add_count) // self._replay_capacity - 1,
                      int(self.add_count))

  def truncate_episode(self, final_observation) -> None:
    """Nothing to store: Dopamine's buffer keeps no final observation, so
    the last transition of a cut episode is never sampled (its
    `episode_end_indices` rule), as in the DQN Replay Dataset."""
    del final_observation

  def log_final_buffer(self):
    """Writes the slots added since the last full checkpoint; their suffix.

    Returns None when there are none (the last add completed a checkpoint).
    """
    if self.cursor() == 0:
      return None
    suffix = int(self.add_count) // self._replay_capacity
    self._write_log(suffix, int(self.cursor()))
    return suffix

  def _write_log(self, suffix: int, add_count: int) -> None:
    arrays = dopamine_replay.ReplayArrays(
        observation=self._store['observation'],
        action=self._store['action'],
        reward=self._store['reward'],
        terminal=self._store['terminal'],
        add_count=add_count,
        invalid_range=np.asarray(self.invalid_range, dtype=np.int64),
        episode_end_indices=np.array(sorted(self.episode_end_indices),
                                     dtype=np.int64))
    dopamine_replay.write_checkpoint(self._log_dir, suffix, arrays)

  def sample_batch(self) -> dict:
    """A uniformly sampled batch as the dict of docs/DESIGN.md."""
    names = [element.name for element in self.get_transition_elements()]
    return dict(zip(names, self.sample_transition_batch()))
