"""Our transitions as TF-Agents experience: `Trajectory` batches [B, T=2].

TF-Agents' `DqnAgent`, `SacAgent`, `CqlSacAgent` and `Td3Agent` train on
trajectories of two steps (`train_sequence_length == 2`) and turn them into
one transition each: reward and discount of step 0 are those of the
transition, and the TD target is

  y = reward_scale * reward[:, 0] + gamma * discount[:, 0] * V'(observation[:, 1]).

A Dopamine transition (docs/DESIGN.md) with n-step return R_n, terminal flag
and next state s_{t+n} maps onto it exactly:

  observation  [state, next_state]  (the stack axis kept; dropped if K = 1)
  action       [action, next_action]
  reward       [R_n, 0]
  discount     [gamma^(n-1) (1 - terminal), 1]
  step_type    [MID, LAST if terminal else MID]

so that gamma * discount[:, 0] = gamma^n (1 - terminal), our bootstrap
discount. Build the agent with the same gamma and `n_step_update=1` for
every update_horizon n: DqnAgent's own `n_step_update=n` expects T = n + 1
raw steps and folds them with `trajectory.to_n_step_transition` (reward
sum_j gamma^j prod_{i<j} d_i r_j, discount gamma^(n-1) prod d); our n-step
window is already folded, with Dopamine's cut at terminals. Step 1's reward
and discount are never read with T = 2. Rewards are not clipped (our
discrete agents clip the n-step return to [-1, 1] as Dopamine does; clip
`reward` yourself, or use TF-Agents' `reward_scale_factor`, if you want
that). Frame stacks stay what Dopamine made them: K frames on the last
axis, zero-padded at episode starts, so an agent acting in an environment
must stack frames the same way.
"""

from typing import Optional

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from batch_rl.data import replay_dataset
from batch_rl.data.selection import DataSelection

# What a trajectory batch reads from a transition batch.
TRAJECTORY_ELEMENTS = ('state', 'action', 'reward', 'next_state',
                       'next_action', 'terminal')


def observation_shape(frame_shape, stack_size: int) -> tuple:
  """A state's shape for TF-Agents: the frame if K = 1, else frame + (K,)."""
  return tuple(frame_shape) + ((stack_size,) if stack_size > 1 else ())


def specs(environment_spec):
  """(time_step_spec, action_spec) of one of our environment specs.

  Discrete specs (num_actions actions, `EnvironmentSpec`) give a scalar
  int32 action in [0, num_actions - 1]; continuous ones
  (`ContinuousEnvironmentSpec`, which has `action_dim`) a float32 vector in
  [-1, 1], the range our environments and replays use.
  """
  observation_spec = tf.TensorSpec(
      observation_shape(environment_spec.observation_shape,
                        environment_spec.stack_size),
      tf.as_dtype(environment_spec.observation_dtype), name='observation')
  if hasattr(environment_spec, 'action_dim'):
    action_spec = tensor_spec.BoundedTensorSpec(
        (environment_spec.action_dim,), tf.float32, -1.0, 1.0, name='action')
  else:
    action_spec = tensor_spec.BoundedTensorSpec(
        (), tf.int32, 0, environment_spec.num_actions - 1, name='action')
  return ts.time_step_spec(observation_spec), action_spec


def as_trajectory(batch, data_spec, update_horizon: int = 1,
                  gamma: float = 0.99) -> trajectory.Trajectory:
  """A transition batch (dict of TRAJECTORY_ELEMENTS) -> Trajectory [B, 2].

  Args:
    batch: our transition batch; `reward` is the n-step return.
    data_spec: the agent's `training_data_spec` (or `collect_data_spec`),
      a Trajectory of specs; observations and actions are reshaped and cast
      to it.
    update_horizon, gamma: the n and gamma the batch's returns were built
      with.

  Raises:
    ValueError: if the spec wants policy info (we log none) or the
      observations or actions do not fit its shapes.
  """
  if tf.nest.flatten(data_spec.policy_info):
    raise ValueError(
        f'data_spec.policy_info is {data_spec.policy_info}; replays hold no '
        'policy info, so only agents whose collect policy emits none '
        '(policy_info=()) train on them.')

  def pair(first, second, spec):
    size = int(np.prod(spec.shape))
    for name, value in (('first', first), ('second', second)):
      if int(np.prod(value.shape[1:])) != size:
        raise ValueError(
            f'{spec.name or "element"}: {name} step has shape '
            f'{tuple(value.shape[1:])} per transition; the spec wants '
            f'{tuple(spec.shape)}.')
    steps = tf.stack([tf.reshape(first, [-1, *spec.shape]),
                      tf.reshape(second, [-1, *spec.shape])], axis=1)
    return tf.cast(steps, spec.dtype)

  terminal = tf.cast(batch['terminal'], tf.bool)
  not_terminal = 1.0 - tf.cast(terminal, tf.float32)
  mid = tf.fill(tf.shape(terminal), ts.StepType.MID)
  last_or_mid = tf.where(terminal, ts.StepType.LAST, ts.StepType.MID)
  ones = tf.ones_like(not_terminal)
  return trajectory.Trajectory(
      step_type=tf.stack([mid, last_or_mid], axis=1),
      observation=pair(batch['state'], batch['next_state'],
                       data_spec.observation),
      action=pair(batch['action'], batch['next_action'], data_spec.action),
      policy_info=(),
      next_step_type=tf.stack([last_or_mid, mid], axis=1),
      reward=tf.stack([tf.cast(batch['reward'], tf.float32),
                       tf.zeros_like(not_terminal)], axis=1),
      discount=tf.stack(
          [gamma**(update_horizon - 1) * not_terminal, ones], axis=1))


def transition_batches(replay_dir: str, batch_size: int, stack_size: int,
                       update_horizon: int = 1, gamma: float = 0.99,
                       seed: int = 0,
                       selection: Optional[DataSelection] = None
                       ) -> tf.data.Dataset:
  """Our endless dataset of transition batches (dicts of TRAJECTORY_ELEMENTS).

  Sampling is the pipeline's: uniform over the valid transitions of the
  selected data (any layout `batch_rl.data` opens), deterministic for a seed.
  """
  replay = replay_dataset.open_replay(replay_dir, stack_size, update_horizon,
                                      gamma, selection)
  return replay.batches(batch_size, seed, elements=TRAJECTORY_ELEMENTS
                        ).unbatch()


def trajectory_dataset(replay_dir: str, data_spec, batch_size: int,
                       stack_size: int, update_horizon: int = 1,
                       gamma: float = 0.99, seed: int = 0,
                       selection: Optional[DataSelection] = None
                       ) -> tf.data.Dataset:
  """An endless dataset of Trajectory [batch_size, 2] from `replay_dir`.

  Feed it to an agent built with `n_step_update=1` and this `gamma`:

    dataset = trajectory_dataset(replay_dir, agent.training_data_spec, 32,
                                 stack_size=1)
    for experience in dataset.take(1000):
      agent.train(experience)

  Args:
    replay_dir: replay data (Dopamine checkpoints, converted, RLDS).
    data_spec: the agent's `training_data_spec`.
    batch_size: trajectories per batch.
    stack_size, update_horizon, gamma: Dopamine's transition parameters.
    seed: fixes the sequence of batches.
    selection: which checkpoints / fraction of the data (default: all).
  """
  return transition_batches(
      replay_dir, batch_size, stack_size, update_horizon, gamma, seed,
      selection).map(
          lambda batch: as_trajectory(batch, data_spec, update_horizon, gamma))
