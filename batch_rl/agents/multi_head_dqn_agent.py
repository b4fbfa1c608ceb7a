"""Multi-head DQN: Ensemble-DQN (`ensemble_dqn`) and REM (`rem`).

Agarwal et al. (2020). K heads share one torso; the agent acts on their mean.
Registered as `multi_head_dqn` (the strategy from gin or the arguments) and
as `ensemble_dqn` and `rem`, whose names preset the strategy.
"""

import functools

import gin
import tensorflow as tf

from batch_rl.agents import dqn_agent
from batch_rl.agents import losses
from batch_rl.agents import optimizers
from batch_rl.agents import registry

TRANSFORM_STRATEGIES = ('IDENTITY', 'STOCHASTIC')


@registry.register_agent('multi_head_dqn')
@gin.configurable
class MultiHeadDQNAgent(dqn_agent.DQNAgent):
  """DQN with K Q-heads.

  IDENTITY (Ensemble-DQN): every head has its own TD loss; the losses are
  averaged. STOCHASTIC (REM): each train step draws one
  alpha ~ random_convex_combination(K) and applies the TD loss to the mixtures
  Q_alpha = sum_k alpha_k Q_k of the online and of the target heads.
  """

  def __init__(self, num_actions, observation_shape, observation_dtype,
               stack_size, num_heads: int = 200,
               transform_strategy: str = 'IDENTITY',
               optimizer_fn=functools.partial(
                   optimizers.adam_optimizer, learning_rate=5e-5,
                   epsilon=3.125e-4),
               **kwargs):
    """See `DQNAgent`.

    Args:
      num_actions, observation_shape, observation_dtype, stack_size: as for
        `QAgent`.
      num_heads: K.
      transform_strategy: 'IDENTITY' (Ensemble-DQN) or 'STOCHASTIC' (REM).
      optimizer_fn: by default the release's Adam (5e-5, eps 3.125e-4).
      **kwargs: further `DQNAgent` arguments.
    """
    if transform_strategy not in TRANSFORM_STRATEGIES:
      raise ValueError(f"transform_strategy '{transform_strategy}' is not one "
                       f'of {TRANSFORM_STRATEGIES}.')
    self.num_heads = num_heads
    self.transform_strategy = transform_strategy
    super().__init__(num_actions, observation_shape, observation_dtype,
                     stack_size, optimizer_fn=optimizer_fn,
                     num_outputs=num_heads, **kwargs)

  def _sample_step_inputs(self):
    if self.transform_strategy == 'STOCHASTIC':
      return {'alpha': losses.random_convex_combination(
          self.num_heads, generator=self._generator)}
    return {}

  def _combine_heads(self, heads, step_inputs):
    if self.transform_strategy == 'STOCHASTIC':
      return tf.tensordot(heads, step_inputs['alpha'], axes=[[2], [0]])[
          ..., None]
    return heads


registry.register_agent('ensemble_dqn', MultiHeadDQNAgent,
                        transform_strategy='IDENTITY')
registry.register_agent('rem', MultiHeadDQNAgent,
                        transform_strategy='STOCHASTIC')
