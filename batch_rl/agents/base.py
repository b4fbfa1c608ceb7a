"""What every agent shares, discrete or continuous.

`Agent` owns acting (the frame stack, exploration as a pluggable piece, see
`exploration`), the two step counters, the train step on the batch keys of
`data.transitions.TRAINING_ELEMENTS` (one step, or many in one graph call via
`train_loop.MultiStepTraining`), the public evaluation API (`greedy_actions`,
`td_error`) and checkpoints. A subclass (`q_agent.QAgent`,
`continuous.agent.ContinuousAgent`) defines:

  ACTION_ARGUMENT              constructor argument naming the action space
                               ('num_actions' or 'action_dim')
  _greedy_actions(states)      stacked states -> the evaluation policy
  _train_ops(batch)            ops of one gradient step -> {'loss': ...}
  _td_error(batch)             [B] per-transition TD error
  _trackables()                networks and optimizers a checkpoint holds
  _gradient_step_counter       in-graph variable that `_train_ops` increments

Step counters:
  acting_steps    agent steps (`begin_episode`/`step`) taken in training mode,
                  Dopamine's `training_steps`; the exploration schedule's clock.
  gradient_steps  train steps taken (`train_step`, or one per step of
                  `train_steps`); restored from the TF checkpoint.
"""

import abc
import dataclasses
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from batch_rl.agents import seeds
from batch_rl.agents import train_loop
from batch_rl.data.transitions import TRAINING_ELEMENTS

CHECKPOINT_PREFIX = 'tf_ckpt'


def checkpoint_prefix(checkpoint_dir: str, iteration: int) -> str:
  """Path prefix of the agent's TF checkpoint files for `iteration`."""
  return os.path.join(checkpoint_dir, f'{CHECKPOINT_PREFIX}-{iteration}')


@dataclasses.dataclass(frozen=True)
class DiscreteActions:
  """Actions 0 .. num_actions - 1; an action is a Python int."""
  num_actions: int

  def uniform(self, rng: np.random.Generator) -> int:
    return int(rng.integers(self.num_actions))


@dataclasses.dataclass(frozen=True)
class ContinuousActions:
  """Actions in [-1, 1]^action_dim, float32 arrays; environments map the box
  onto their own bounds."""
  action_dim: int

  def uniform(self, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)


class Agent(train_loop.MultiStepTraining, abc.ABC):
  """Dopamine's agent interface, for offline training on transition batches.

  Args:
    actions: the action space, `DiscreteActions` or `ContinuousActions`.
    observation_shape: shape of one frame as stored in the replay.
    observation_dtype: dtype of the stored frames.
    stack_size: frames stacked on a new last axis to form a state.
    exploration: called to act (see `exploration`), e.g. `EpsilonGreedy()`.
    gamma: discount factor.
    update_horizon: n of the n-step returns in the batches; the bootstrap
      discount is gamma ** n on non-terminal transitions.
    seed: seeds the network initializers (drawn by subclasses from
      `self._seeds`), the in-graph generator of per-step draws and the acting
      RNG; None draws nondeterministic seeds.
    strategy: `tf.distribute.Strategy` of the train step; the current (by
      default the default) strategy if None.
  """

  ACTION_ARGUMENT = None

  def __init__(self, actions, observation_shape, observation_dtype,
               stack_size: int, exploration, gamma: float = 0.99,
               update_horizon: int = 1, seed: Optional[int] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.actions = actions
    self.observation_shape = tuple(observation_shape)
    self.observation_dtype = tf.as_dtype(observation_dtype)
    self.stack_size = stack_size
    self.exploration = exploration
    self.gamma = gamma
    self.update_horizon = update_horizon
    self.cumulative_gamma = gamma**update_horizon
    self.eval_mode = False
    self.acting_steps = 0
    self._seeds = seeds.SeedStream(seed)
    self._acting_rng = np.random.default_rng(self._seeds())
    # Per-step draws happen in the cross-replica context, outside the
    # strategy's scope, so every replica sees the same draw.
    self._generator = tf.random.Generator.from_seed(self._seeds())
    self._strategy = strategy or tf.distribute.get_strategy()
    self.state_shape = (1,) + self.observation_shape + (stack_size,)
    self.state = np.zeros(self.state_shape,
                          self.observation_dtype.as_numpy_dtype)
    self._greedy_actions_fn = tf.function(self._greedy_actions)
    self._td_error_fn = tf.function(self._td_error, reduce_retracing=True)
    self._train_step = tf.function(self.train_ops, reduce_retracing=True)

  # ---- What subclasses define. ----

  @abc.abstractmethod
  def _greedy_actions(self, states):
    """Stacked states [B, ...] -> actions [B] or [B, action_dim]."""

  @abc.abstractmethod
  def _train_ops(self, batch) -> dict:
    """The ops of one gradient step on a checked batch; increments
    `_gradient_step_counter`."""

  @abc.abstractmethod
  def _td_error(self, batch):
    """[B] TD error of each transition of a checked batch."""

  @abc.abstractmethod
  def _trackables(self) -> dict:
    """Networks, optimizers and variables, by name, that a checkpoint holds."""

  # ---- Evaluation API. ----

  def greedy_actions(self, states):
    """The evaluation policy, without exploration, on stacked states.

    Args:
      states: [B] + observation_shape + [stack_size].

    Returns:
      [B] int32 actions (discrete) or [B, action_dim] in [-1, 1].
    """
    return self._greedy_actions_fn(states)

  def td_error(self, batch):
    """[B] TD error y - Q(s, a) of each transition, as the loss sees it.

    Same rewards (clipped where the agent clips them), n-step discount and
    target networks as the train step; agents with several or distributional
    Q-functions report the error of the value they act on (see docs/AGENTS.md).
    Takes a batch dict of docs/DESIGN.md; keys beyond TRAINING_ELEMENTS are
    ignored. Does not train.
    """
    return self._td_error_fn(self._training_batch(batch))

  # ---- Acting. ----

  def _record_observation(self, observation):
    observation = np.asarray(observation)
    if observation.shape != self.observation_shape:
      raise ValueError(
          f'observation has shape {observation.shape}; this agent was built '
          f'for frames of shape {self.observation_shape}.')
    # The newest frame goes last, as in Dopamine's state stacking.
    self.state = np.roll(self.state, -1, axis=-1)
    self.state[0, ..., -1] = observation

  def _greedy_action(self):
    action = self.greedy_actions(self.state)[0].numpy()
    return action.item() if action.ndim == 0 else action

  def _act(self, observation):
    self._record_observation(observation)
    if not self.eval_mode:
      self.acting_steps += 1
    return self.exploration(self._greedy_action, self.actions,
                            self.acting_steps, self.eval_mode,
                            self._acting_rng)

  def begin_episode(self, observation):
    """Resets the frame stack, records the first frame and acts."""
    self.state = np.zeros_like(self.state)
    return self._act(observation)

  def step(self, reward, observation):
    """Records the next frame and acts; offline agents ignore the reward."""
    del reward
    return self._act(observation)

  def end_episode(self, reward, terminal: bool = True, observation=None):
    """Ends an episode in `observation` (after a terminal or a time-limit
    cut); offline agents learn only from logged data."""
    del reward, terminal, observation

  # ---- Training. ----

  @property
  def gradient_steps(self) -> int:
    """Gradient steps taken so far (restored from checkpoints)."""
    return int(self._gradient_step_counter.numpy())

  def _training_batch(self, batch) -> dict:
    """The TRAINING_ELEMENTS of `batch`; missing ones are a ValueError."""
    missing = [key for key in TRAINING_ELEMENTS if key not in batch]
    if missing:
      raise ValueError(
          f'batch lacks keys {missing}; expected at least '
          f'{list(TRAINING_ELEMENTS)} (docs/DESIGN.md).')
    return {key: batch[key] for key in TRAINING_ELEMENTS}

  def _check_states(self, batch):
    expected = self.state_shape[1:]
    for key in ('state', 'next_state'):
      # A distributed batch holds one tensor per replica.
      shape = tuple(
          self._strategy.experimental_local_results(batch[key])[0].shape[1:])
      if shape != expected:
        raise ValueError(
            f"batch['{key}'] has shape [B, {shape}]; this agent expects "
            f'[B, {expected}] (frame shape + stack_size).')

  def train_ops(self, batch) -> dict:
    """The ops of one gradient step on `batch`, for use in a tf.function."""
    batch = self._training_batch(batch)
    self._check_states(batch)
    return self._train_ops(batch)

  def train_step(self, batch) -> dict:
    """One gradient step on a transition batch (dict of docs/DESIGN.md).

    The batch is a dict of tensors or arrays, or of per-replica values from
    `strategy.experimental_distribute_dataset`; keys beyond
    TRAINING_ELEMENTS are ignored.

    Returns:
      Scalar tensors by name, including 'loss' (averaged over the global
      batch); not converted to floats here, so the caller decides when to
      wait for them.
    """
    return self._train_step(self._training_batch(batch))

  # ---- Checkpoints. ----

  def _checkpoint(self) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(
        generator=self._generator,
        gradient_step_counter=self._gradient_step_counter,
        **self._trackables())

  def bundle_and_checkpoint(self, checkpoint_dir: str, iteration: int) -> dict:
    """Writes networks, optimizers, generator and gradient step counter to
    `tf_ckpt-<iteration>` files.

    Returns:
      The Python state to pickle alongside (as Dopamine's agents return it):
      the frame stack, `acting_steps` and the acting RNG's state.
    """
    tf.io.gfile.makedirs(checkpoint_dir)
    self._checkpoint().write(checkpoint_prefix(checkpoint_dir, iteration))
    return {'state': self.state.copy(), 'acting_steps': self.acting_steps,
            'acting_rng': self._acting_rng.bit_generator.state}

  def unbundle(self, checkpoint_dir: str, iteration: int, bundle) -> bool:
    """Restores what `bundle_and_checkpoint` saved; False if there is none.

    Raises:
      ValueError: the checkpoint is another agent's (naming its prefix).
    """
    prefix = checkpoint_prefix(checkpoint_dir, iteration)
    if not tf.io.gfile.exists(prefix + '.index'):
      return False
    try:
      self._checkpoint().read(prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
      first_sentence = str(error).strip().splitlines()[0].split('. ')[0]
      raise ValueError(
          f'{prefix} is not a checkpoint of this {type(self).__name__} '
          f'(its networks or optimizers differ): {first_sentence}.'
      ) from error
    if bundle is not None:
      self.state = bundle['state'].copy()
      self.acting_steps = bundle['acting_steps']
      self._acting_rng.bit_generator.state = bundle['acting_rng']
    return True
