"""What every continuous-control agent shares: acting, batches, checkpoints.

Subclasses define their networks, `policy` (the evaluation policy, a batch
of states to actions in [-1, 1]) and `_train`, the ops of one gradient step
on a `Transitions` batch of float32 vectors. Outside evaluation
(`eval_mode = False`, as when an online agent logs data) actions get
N(0, exploration_noise^2) noise.
"""

import collections
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from batch_rl.agents import train_loop
from batch_rl.continuous import networks

Transitions = collections.namedtuple(
    'Transitions', ['state', 'action', 'reward', 'next_state', 'terminal'])


def adam(learning_rate: float, variables) -> tf.keras.optimizers.Adam:
  """Adam with its slots created now, so restores and tf.functions see them."""
  optimizer = tf.keras.optimizers.Adam(learning_rate)
  optimizer.build(variables)
  return optimizer


def gradient_step(optimizer, tape: tf.GradientTape, loss, variables) -> None:
  optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


def soft_update(target: tf.keras.Model, source: tf.keras.Model,
                tau: float) -> None:
  """theta' <- tau * theta + (1 - tau) * theta'."""
  for target_variable, variable in zip(target.variables, source.variables):
    target_variable.assign(tau * variable + (1.0 - tau) * target_variable)


class ContinuousAgent(train_loop.MultiStepTraining):
  """Dopamine's agent interface for vector observations and [-1, 1] actions.

  The constructor takes the arguments `registry.create_agent` passes to
  every agent; for continuous control `num_actions` is the action dimension.

  Args:
    num_actions: action dimension, A.
    observation_shape: (observation_dim,), one stored observation.
    observation_dtype: dtype of the stored observations (a float type).
    stack_size: must be 1: states are single observations.
    gamma: discount factor.
    update_horizon: n of the n-step returns in the batches; the bootstrap
      discount is gamma^n.
    exploration_noise: std of the Gaussian noise added to actions outside
      eval mode.
    seed: fixes network initialisation, training noise and exploration
      (None: nondeterministic).
    strategy: a `tf.distribute.Strategy` with one replica, or None; these
      small networks train on one device.
  """

  def __init__(self, num_actions: int, observation_shape: Sequence[int],
               observation_dtype=np.float32, stack_size: int = 1,
               gamma: float = 0.99, update_horizon: int = 1,
               exploration_noise: float = 0.1, seed: Optional[int] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    if strategy is not None and strategy.num_replicas_in_sync != 1:
      raise ValueError(
          f'{type(self).__name__} trains on one device; got a strategy with '
          f'{strategy.num_replicas_in_sync} replicas (use '
          "create_runner.distribution='default').")
    if stack_size != 1 or len(observation_shape) != 1:
      raise ValueError(
          f'{type(self).__name__} takes vector observations: got '
          f'observation_shape={tuple(observation_shape)}, stack_size='
          f'{stack_size}; expected (observation_dim,) and 1.')
    if not np.issubdtype(np.dtype(observation_dtype), np.floating):
      raise ValueError(f'{type(self).__name__}: observation_dtype='
                       f'{np.dtype(observation_dtype)}, expected a float type.')
    self.observation_dim = int(observation_shape[0])
    self.action_dim = int(num_actions)
    self.gamma = gamma
    self.update_horizon = update_horizon
    self.cumulative_gamma = gamma**update_horizon
    self.exploration_noise = exploration_noise
    self.eval_mode = False
    # Gradient steps taken; in-graph, so multi-step calls can branch on it.
    self._step_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
    self._seeds = networks.SeedStream(seed)
    self._generator = tf.random.Generator.from_seed(self._seeds())
    self._exploration_rng = np.random.default_rng(self._seeds())
    self._policy = tf.function(self.policy)
    self._train_step = tf.function(self.train_ops)

  def policy(self, states):
    """The evaluation policy: [B, observation_dim] -> [B, action_dim]."""
    raise NotImplementedError

  def _train(self, transitions: Transitions) -> dict:
    """The ops of one gradient step; returns scalar tensors, incl. 'loss'."""
    raise NotImplementedError

  def _trackables(self) -> dict:
    """Networks and optimizers, by name, that a checkpoint holds."""
    raise NotImplementedError

  # Acting.

  def begin_episode(self, observation) -> np.ndarray:
    return self._select_action(observation)

  def step(self, reward, observation) -> np.ndarray:
    del reward  # Offline agents learn from batches only.
    return self._select_action(observation)

  def end_episode(self, reward, terminal: bool = True) -> None:
    del reward, terminal

  def _select_action(self, observation) -> np.ndarray:
    state = np.asarray(observation, np.float32).reshape(
        1, self.observation_dim)
    action = self._policy(tf.constant(state))[0].numpy()
    if not self.eval_mode and self.exploration_noise > 0:
      action = np.clip(
          action + self.exploration_noise *
          self._exploration_rng.standard_normal(self.action_dim),
          -1.0, 1.0).astype(np.float32)
    return action

  # Training.

  @property
  def training_steps(self) -> int:
    """Gradient steps taken so far (restored from checkpoints)."""
    return int(self._step_counter.numpy())

  def train_ops(self, batch) -> dict:
    """The ops of one gradient step on a batch dict, for use in a tf.function.
    """
    outputs = self._train(self._as_vectors(
        Transitions(*(batch[name] for name in Transitions._fields))))
    self._step_counter.assign_add(1)
    return outputs

  def train_step(self, batch) -> dict:
    """One gradient step on a batch dict (docs/DESIGN.md).

    Returns:
      Scalar tensors by name, including 'loss'; `float()` them when needed
      (not here, so that an accelerator need not wait every step).
    """
    return self._train_step(
        {name: batch[name] for name in Transitions._fields})

  def _as_vectors(self, transitions: Transitions) -> Transitions:
    """Flattens stacked [B, obs, 1] states and casts everything to float32."""
    def vectors(states):
      return tf.reshape(tf.cast(states, tf.float32),
                        [-1, self.observation_dim])
    return Transitions(
        state=vectors(transitions.state),
        action=tf.reshape(tf.cast(transitions.action, tf.float32),
                          [-1, self.action_dim]),
        reward=tf.cast(transitions.reward, tf.float32),
        next_state=vectors(transitions.next_state),
        terminal=tf.cast(transitions.terminal, tf.float32))

  # Checkpoints.

  def _checkpoint(self) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(generator=self._generator,
                               step_counter=self._step_counter,
                               **self._trackables())

  @staticmethod
  def _checkpoint_prefix(checkpoint_dir: str, iteration: int) -> str:
    return os.path.join(checkpoint_dir, f'tf_ckpt-{iteration}')

  def bundle_and_checkpoint(self, checkpoint_dir: str,
                            iteration: int) -> Optional[dict]:
    """Saves the networks and optimizers; returns the Python-side state."""
    if not tf.io.gfile.isdir(checkpoint_dir):
      return None
    self._checkpoint().write(
        self._checkpoint_prefix(checkpoint_dir, iteration))
    return {'exploration_rng': self._exploration_rng.bit_generator.state}

  def unbundle(self, checkpoint_dir: str, iteration: int,
               bundle: Optional[dict]) -> bool:
    """Restores what `bundle_and_checkpoint` saved; False if it is absent."""
    prefix = self._checkpoint_prefix(checkpoint_dir, iteration)
    if not tf.io.gfile.exists(prefix + '.index'):
      return False
    self._checkpoint().read(prefix).assert_existing_objects_matched()
    if bundle is not None:
      self._exploration_rng.bit_generator.state = bundle['exploration_rng']
    return True
