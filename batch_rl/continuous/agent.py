"""What every continuous-control agent adds to `base.Agent`.

Subclasses define their networks, `policy` (the evaluation policy, a batch
of observation vectors to actions in [-1, 1]), `_train`, the ops of one
gradient step on a `Transitions` batch of float32 vectors, and
`_trackables`. Outside eval mode (as when an online agent logs data) they
explore with `exploration.GaussianNoise` unless given another piece.
"""

import collections
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from batch_rl.agents import base
from batch_rl.agents import exploration as exploration_lib
from batch_rl.continuous import losses
from batch_rl.data.transitions import TRAINING_ELEMENTS

Transitions = collections.namedtuple('Transitions', TRAINING_ELEMENTS)


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


class ContinuousAgent(base.Agent):
  """An agent for vector observations and actions in [-1, 1]^action_dim.

  Args:
    action_dim: A, the action dimension.
    observation_shape: (observation_dim,), one stored observation.
    observation_dtype: dtype of the stored observations (a float type).
    stack_size: must be 1: states are single observations.
    gamma: discount factor.
    update_horizon: n of the n-step returns in the batches; the bootstrap
      discount is gamma^n.
    exploration: how to act outside eval mode; None: `GaussianNoise()`
      (its stddev from gin).
    seed: fixes network initialisation, training noise and exploration
      (None: nondeterministic).
    strategy: a `tf.distribute.Strategy` with one replica, or None; these
      small networks train on one device.
  """

  ACTION_ARGUMENT = 'action_dim'

  def __init__(self, action_dim: int, observation_shape: Sequence[int],
               observation_dtype=np.float32, stack_size: int = 1,
               gamma: float = 0.99, update_horizon: int = 1,
               exploration=None, seed: Optional[int] = None,
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
    super().__init__(base.ContinuousActions(int(action_dim)),
                     observation_shape, observation_dtype, stack_size,
                     exploration or exploration_lib.GaussianNoise(),
                     gamma=gamma, update_horizon=update_horizon, seed=seed,
                     strategy=strategy)
    self.observation_dim = int(observation_shape[0])
    self.action_dim = int(action_dim)
    # In-graph, so multi-step calls can branch on it (TD3's delayed actor).
    self._gradient_step_counter = tf.Variable(0, dtype=tf.int64,
                                              trainable=False)

  def policy(self, states):
    """The evaluation policy: [B, observation_dim] -> [B, action_dim]."""
    raise NotImplementedError

  def _train(self, transitions: Transitions) -> dict:
    """The ops of one gradient step; returns scalar tensors, incl. 'loss'."""
    raise NotImplementedError

  def _next_state_value(self, next_states):
    """[K, B] or [B] V'(s') of the TD target, without the train step's random
    draws; agents without critics (`self.critics`, [K, B]) have none."""
    raise NotImplementedError(
        f'{type(self).__name__} has no Q-function, so no TD error.')

  def _greedy_actions(self, states):
    return self.policy(self._vectors(states))

  def _td_error(self, batch):
    """mean_k (y_k - Q_k(s, a)), y = r + gamma^n (1 - terminal) V'(s')."""
    t = self._as_vectors(batch)
    targets = losses.td_target(t.reward, t.terminal,
                               self._next_state_value(t.next_state),
                               self.cumulative_gamma)
    return tf.reduce_mean(targets - self.critics(t.state, t.action), axis=0)

  def _train_ops(self, batch) -> dict:
    outputs = self._train(self._as_vectors(batch))
    self._gradient_step_counter.assign_add(1)
    return outputs

  def _vectors(self, states):
    """[B, observation_dim] float32 from stacked [B, observation_dim, 1]."""
    return tf.reshape(tf.cast(states, tf.float32), [-1, self.observation_dim])

  def _as_vectors(self, batch) -> Transitions:
    """A batch dict as `Transitions` of float32 vectors."""
    return Transitions(
        state=self._vectors(batch['state']),
        action=tf.reshape(tf.cast(batch['action'], tf.float32),
                          [-1, self.action_dim]),
        reward=tf.cast(batch['reward'], tf.float32),
        next_state=self._vectors(batch['next_state']),
        terminal=tf.cast(batch['terminal'], tf.float32))
