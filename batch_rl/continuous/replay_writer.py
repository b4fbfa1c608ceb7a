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
    transition opens the next one), so no next state lies in another file;
    nor does the final observation of the episode logging stops in (a full
    buffer would sample it): a cut slot with it ends that checkpoint, and
    it opens a last one-slot checkpoint;
  * when the data ends in a terminal, `close` appends one zero slot marked
    as a cut, since a partly filled Dopamine buffer never samples its
    newest slot; readers of episodes (`data.episodes.EpisodeJoiner`) know
    it as no episode, so `info` and `export-rlds` count and write only the
    episodes played.
Checkpoint N is written each time `capacity` new slots have been added, so
checkpoints never overlap; `close` writes the remainder as a partly filled
checkpoint.

`LoggedEpisodeReplay` is the writer as the online replay of a continuous
logging run (`python -m batch_rl.log_data`): sampled from while it logs,
saved with each iteration's checkpoint and restored on resume.
"""

import json
import os
import zipfile
from typing import Callable

import gin
import numpy as np

from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.dopamine_replay import write_checkpoint

_REJECTION_ROUNDS = 64
# The writer's arrays (its state with the counters).
_ARRAYS = ('observation', 'action', 'reward', 'terminal', 'episode_end',
           'is_transition')


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
      if self.cursor == self.capacity - 1:
        self._append_cut(final_observation)
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
        raise ValueError(
            f'The replay holds no complete transition yet ({stored} slot(s) '
            'await their next state); sample after more steps, e.g. with '
            'OnlineAgent.min_replay_history >= 1.')
      indices = rng.choice(candidates, size=batch_size)
    following = (indices + 1) % self.capacity
    return {
        'state': self._observation[indices][..., None],
        'action': self._action[indices],
        'reward': self._reward[indices],
        'next_state': self._observation[following][..., None],
        'terminal': self._terminal[indices],
    }

  def state(self) -> dict:
    """Everything `restore` needs to continue exactly, as numpy arrays."""
    state = {name: getattr(self, f'_{name}') for name in _ARRAYS}
    state.update(add_count=self.add_count,
                 num_checkpoints=self.num_checkpoints,
                 num_transitions=self.num_transitions,
                 awaiting_next_state=self._awaiting_next_state)
    return {name: np.asarray(value) for name, value in state.items()}

  def restore(self, state) -> None:
    """Continues from `state()` of a writer of the same capacity and sizes.

    Raises:
      ValueError: naming the array whose shape or dtype differs.
    """
    for name in _ARRAYS:
      mine, theirs = getattr(self, f'_{name}'), np.asarray(state[name])
      if theirs.shape != mine.shape or theirs.dtype != mine.dtype:
        raise ValueError(
            f'the saved replay\'s {name} is {theirs.dtype}{list(theirs.shape)}'
            f', this one\'s {mine.dtype}{list(mine.shape)} (capacity, '
            'observation_dim, action_dim); was it saved with other settings?')
    for name in _ARRAYS:
      getattr(self, f'_{name}')[:] = state[name]
    self.add_count = int(state['add_count'])
    self.num_checkpoints = int(state['num_checkpoints'])
    self.num_transitions = int(state['num_transitions'])
    self._awaiting_next_state = bool(state['awaiting_next_state'])

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


@gin.configurable(denylist=['log_dir', 'observation_dim', 'action_dim',
                            'seed'])
class LoggedEpisodeReplay:
  """The replay of an online continuous-control run: logs every transition.

  An `EpisodeReplayWriter` writing its checkpoints into `log_dir`, plus
  uniform sampling of `batch_size` transitions with a seeded generator. It
  has the interface `baselines.online_agent.OnlineAgent` uses (that of
  Dopamine's `LoggedReplayBuffer`), and `save`/`load` keep the writer's
  whole state and the sampler's, so a resumed run logs and samples exactly
  as an uninterrupted one.

  Args:
    log_dir: where the replay checkpoints go (the run's `replay_logs`).
    observation_dim, action_dim: vector sizes.
    seed: seeds the sampler.
    replay_capacity: slots per replay checkpoint, and of the online replay.
    batch_size: transitions per sampled batch.
  """

  def __init__(self, log_dir: str, observation_dim: int, action_dim: int,
               seed: int, replay_capacity: int = 1_000_000,
               batch_size: int = 256):
    self._writer = EpisodeReplayWriter(
        replay_capacity, observation_dim, action_dim,
        lambda suffix, arrays: write_checkpoint(log_dir, suffix, arrays))
    self.batch_size = batch_size
    self._rng = np.random.default_rng(seed)

  @property
  def replay_capacity(self) -> int:
    return self._writer.capacity

  @property
  def add_count(self) -> int:
    return self._writer.add_count

  def add(self, observation, action, reward: float, terminal: bool,
          episode_end: bool = False) -> None:
    """Adds (s, a, r, terminal); a cut (`episode_end` without `terminal`)
    is completed by `truncate_episode`."""
    del episode_end  # A terminal ends its episode; a cut needs its observation.
    self._writer.add_transition(observation, action, reward, terminal)

  def truncate_episode(self, final_observation) -> None:
    """Stores a cut episode's final observation: its last transition's next
    state, so that the transition is sampled and logged."""
    if final_observation is None:
      raise ValueError('a cut episode\'s final observation is needed to '
                       'store its last transition; pass it to '
                       'end_episode(reward, terminal, observation).')
    self._writer.truncate_episode(final_observation)

  def sample_batch(self) -> dict:
    """`batch_size` uniformly sampled transitions (docs/DESIGN.md's keys)."""
    return self._writer.sample_batch(self.batch_size, self._rng)

  def log_final_buffer(self) -> None:
    """Writes the slots added since the last full checkpoint, if any."""
    self._writer.close()

  def _path(self, checkpoint_dir: str, iteration: int) -> str:
    return os.path.join(checkpoint_dir, f'episode_replay-{iteration}.npz')

  def save(self, checkpoint_dir: str, iteration: int) -> None:
    """Writes the writer's and the sampler's state into `checkpoint_dir`."""
    with open(self._path(checkpoint_dir, iteration), 'wb') as f:
      np.savez(f, sampler=json.dumps(self._rng.bit_generator.state),
               **self._writer.state())

  def load(self, checkpoint_dir: str, iteration: int) -> None:
    """Restores what `save` wrote.

    Raises:
      OSError: the file is missing or unreadable (a damaged checkpoint).
      ValueError: it holds a replay of other sizes.
    """
    path = self._path(checkpoint_dir, iteration)
    try:
      with np.load(path, allow_pickle=False) as saved:
        state = {name: saved[name] for name in saved.files}
      sampler = json.loads(str(state.pop('sampler')))
    except (OSError, ValueError, KeyError, EOFError,
            zipfile.BadZipFile) as e:
      raise OSError(f'{path}: unreadable ({e})') from e
    try:
      self._writer.restore(state)
    except KeyError as e:
      raise OSError(f'{path}: lacks {e}') from e
    except ValueError as e:
      raise ValueError(f'{path}: {e}') from e
    self._rng.bit_generator.state = sampler
