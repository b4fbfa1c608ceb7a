"""A replay directory opened once per run: the one way from data to batches.

  replay = open_replay(replay_dir, stack_size, update_horizon, gamma,
                       selection)
  stacks = replay.batches(batch_size, seed)        # training, [K, B, ...]
  for batch in replay.read(replay.held_out_indices): ...  # ordered reads
  replay.episodes()                                 # episodes as played

`ReplayDataset` owns the data selection: the store holds the selected
checkpoints (`sources.open_store`), and the dataset splits their valid
transitions into the held-out set and the (subsampled) training set once.
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from batch_rl.data import episodes
from batch_rl.data import pipeline
from batch_rl.data import sources
from batch_rl.data import transitions
from batch_rl.data import validation
from batch_rl.data.episodes import EpisodeJoiner
from batch_rl.data.episodes import how_checkpoint_begins
from batch_rl.data.episodes import StoredEpisode
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection

READ_BATCH_SIZE = 512


class ReplayDataset:
  """The selected transitions of one replay store, for one transition shape.

  Attributes:
    store: the selected checkpoints (a ReplayStore).
    stack_size, update_horizon, gamma: Dopamine's transition parameters.
    selection: the DataSelection applied.
    training_indices: sorted global slot indices training samples from.
    held_out_indices: sorted global slot indices held out of training.
  """

  def __init__(self, store: ReplayStore, stack_size: int,
               update_horizon: int, gamma: float,
               selection: Optional[DataSelection] = None):
    self.store = store
    self.stack_size = stack_size
    self.update_horizon = update_horizon
    self.gamma = gamma
    self.selection = selection or DataSelection()
    valid = store.valid_indices(stack_size, update_horizon)
    self.held_out_indices = self.selection.split_holdout(valid)[1]
    self.training_indices = self.selection.subsample(valid)
    pipeline.check_transitions(store, self.training_indices, stack_size,
                               update_horizon)

  @property
  def frame_shape(self) -> tuple[int, ...]:
    return self.store.frame_shape

  def check_frame_shape(self, expected, environment_name: str) -> None:
    """Raises ReplayDataError unless frames have the environment's shape."""
    if self.frame_shape != tuple(expected):
      raise ReplayDataError(
          f'{self.store.names[0]}: frames have shape {self.frame_shape}, but '
          f'{environment_name} emits {tuple(expected)}; is this the replay '
          'of that environment?')

  def check_actions(self, num_actions: int) -> None:
    """Raises ReplayDataError naming the checkpoint, index and value of the
    first stored discrete action outside [0, num_actions)."""
    for arrays, name in zip(self.store.checkpoints, self.store.names):
      validation.check_actions_below(arrays, num_actions, name)

  def batches_per_call(self, batch_size: int) -> int:
    """K, the batches in each stack `batches` yields by default."""
    return pipeline.auto_batches_per_call(self.store, batch_size,
                                          self.stack_size,
                                          self.update_horizon)

  def batches(self, batch_size: int, seed: int, first_call: int = 0,
              elements=transitions.TRAINING_ELEMENTS,
              batches_per_call: Optional[int] = None,
              read_parallel_calls: Optional[int] = None) -> tf.data.Dataset:
    """Endless stacks [K, batch_size, ...] of uniformly sampled batches.

    Stack c is drawn from the stateless stream (seed, c); the dataset
    starts at stack `first_call`, so a run resumed at stack c reads what an
    uninterrupted run reads from its c-th stack on. `read_parallel_calls`:
    see `pipeline.transition_dataset`.
    """
    return pipeline.transition_dataset(
        self.store, batch_size, self.stack_size, self.update_horizon,
        self.gamma, seed, self.training_indices, elements=elements,
        batches_per_call=batches_per_call, first_call=first_call,
        read_parallel_calls=read_parallel_calls)

  def read(self, indices: np.ndarray, batch_size: int = READ_BATCH_SIZE,
           update_horizon: Optional[int] = None) -> tf.data.Dataset:
    """One ordered pass over the transitions at global `indices`, batched.

    `update_horizon` overrides the dataset's (e.g. 1 for one-step reads).
    """
    horizon = update_horizon or self.update_horizon
    read_windows = self.store.window_reader(self.stack_size, horizon)

    def gather(index):
      windows, local = read_windows(tf.cast(index, tf.int64))
      return transitions.transitions_from_windows(
          windows, local, self.stack_size, horizon, self.gamma)

    return (tf.data.Dataset.from_tensor_slices(np.asarray(indices))
            .batch(batch_size).map(gather)
            .prefetch(pipeline.PREFETCH_ELEMENTS)
            .with_options(pipeline.DATASET_OPTIONS))

  def episodes(self) -> list[StoredEpisode]:
    """Every episode of the selected checkpoints as played, slots global.

    The checkpoints are read in order as a logger's (`EpisodeJoiner`;
    `how_checkpoint_begins` checks their counters and boundary frames): an
    episode that checkpoint boundaries cut is one episode whose slots lie in
    several checkpoints; one whose start is in no selected checkpoint is
    left out.
    """
    # Padding is checked on the small elements: frames are not read.
    joiner = EpisodeJoiner(self.stack_size, ('action', 'reward', 'terminal'))
    found, previous, previous_suffix = [], None, None
    for arrays, name, suffix in zip(self.store.checkpoints, self.store.names,
                                    self.store.suffixes):
      before, after_gap = episodes.checkpoint_before(previous_suffix,
                                                     previous, suffix)
      begins = how_checkpoint_begins(
          before, arrays, lambda p=before, c=arrays: (
              episodes.same_boundary_frame(episodes.newest_frame(p), c)),
          after_gap)
      found += joiner.add(arrays, begins, name)
      previous, previous_suffix = arrays, suffix
    found += joiner.finish()
    starts = np.asarray(self.store.starts)
    return [StoredEpisode(starts[e.slot_checkpoints] + e.slots, e.terminal,
                          e.complete) for e in found]


def calls_per_iteration(training_steps: int, batches_per_call: int) -> int:
  """Stacks one iteration of `training_steps` steps reads (the last one's
  unused batches are dropped)."""
  return math.ceil(training_steps / batches_per_call)


def open_replay(replay_dir: str, stack_size: int, update_horizon: int,
                gamma: float, selection: Optional[DataSelection] = None
                ) -> ReplayDataset:
  """The selected data of `replay_dir` (any layout sources.open_store reads)."""
  selection = selection or DataSelection()
  store = sources.open_store(replay_dir, selection, stack_size,
                             update_horizon)
  return ReplayDataset(store, stack_size, update_horizon, gamma, selection)
