"""How an agent explores while it acts in training mode: a pluggable piece.

An exploration object is called as
  exploration(greedy_action, actions, acting_steps, eval_mode, rng)
with `greedy_action` a zero-argument function returning the evaluation
policy's action (called only when needed), the agent's `actions` space
(`base.DiscreteActions` or `base.ContinuousActions`), its training-mode
acting steps so far, whether it is evaluating, and its acting RNG (a numpy
Generator, saved in the agent's checkpoints). Agents take one as their
`exploration` argument; gin binds it (`DQNAgent.exploration = @EpsilonGreedy()`)
or its parameters (`EpsilonGreedy.epsilon_train = 0.01`).
"""

import gin
import numpy as np


def linearly_decaying_epsilon(decay_period, step, warmup_steps, epsilon):
  """1 for `warmup_steps`, then linearly down to `epsilon` over `decay_period`.

  Dopamine's Nature DQN schedule, with the same argument order.
  """
  steps_left = decay_period + warmup_steps - step
  bonus = (1.0 - epsilon) * steps_left / decay_period
  return epsilon + float(np.clip(bonus, 0.0, 1.0 - epsilon))


@gin.configurable
class EpsilonGreedy:
  """A uniformly random action with probability epsilon, else the greedy one.

  Epsilon follows `epsilon_fn` in training mode, counted in acting steps
  (Dopamine's), and is `epsilon_eval` in eval mode.

  Args:
    epsilon_train: final epsilon of the schedule.
    epsilon_eval: epsilon in eval mode.
    epsilon_decay_period: acting steps over which epsilon decays.
    min_replay_history: acting steps at epsilon 1 before the decay starts.
    epsilon_fn: schedule (decay_period, step, warmup_steps, epsilon) -> eps.
  """

  def __init__(self, epsilon_train: float = 0.01, epsilon_eval: float = 0.001,
               epsilon_decay_period: int = 250_000,
               min_replay_history: int = 20_000,
               epsilon_fn=linearly_decaying_epsilon):
    self.epsilon_train = epsilon_train
    self.epsilon_eval = epsilon_eval
    self.epsilon_decay_period = epsilon_decay_period
    self.min_replay_history = min_replay_history
    self.epsilon_fn = epsilon_fn

  def epsilon(self, acting_steps: int, eval_mode: bool) -> float:
    if eval_mode:
      return self.epsilon_eval
    return self.epsilon_fn(self.epsilon_decay_period, acting_steps,
                           self.min_replay_history, self.epsilon_train)

  def __call__(self, greedy_action, actions, acting_steps: int,
               eval_mode: bool, rng: np.random.Generator):
    if rng.random() <= self.epsilon(acting_steps, eval_mode):
      return actions.uniform(rng)
    return greedy_action()


@gin.configurable
class GaussianNoise:
  """The greedy action plus N(0, stddev^2) noise, clipped to [-1, 1].

  For continuous actions; no noise in eval mode. The first `random_steps`
  acting steps (`acting_steps` counts the current one) take uniformly
  random actions instead, as the TD3 reference loop's `start_timesteps`.
  """

  def __init__(self, stddev: float = 0.1, random_steps: int = 0):
    self.stddev = stddev
    self.random_steps = random_steps

  def __call__(self, greedy_action, actions, acting_steps: int,
               eval_mode: bool, rng: np.random.Generator):
    if not hasattr(actions, 'action_dim'):
      raise ValueError(f'GaussianNoise explores continuous actions; got '
                       f'{actions} (use EpsilonGreedy).')
    if not eval_mode and 0 < acting_steps <= self.random_steps:
      return actions.uniform(rng)
    action = greedy_action()
    if eval_mode or self.stddev <= 0:
      return action
    noise = self.stddev * rng.standard_normal(actions.action_dim)
    return np.clip(action + noise, -1.0, 1.0).astype(np.float32)
