"""QR-DQN (Dabney et al., 2018): N quantiles of the return per action."""

import functools

import gin
import tensorflow as tf

from batch_rl.agents import losses
from batch_rl.agents import optimizers
from batch_rl.agents import q_agent
from batch_rl.agents import registry


@registry.register_agent('quantile')
@gin.configurable
class QuantileAgent(q_agent.QAgent):
  """QR-DQN as in the batch_rl release (uniform replay, 1-step returns).

  Outputs are quantiles theta_i(s, a); Q(s, a) is their mean. The loss is the
  quantile Huber loss against r + gamma^n (1 - terminal) theta_target,j(s', a*)
  with a* = argmax_a' Q_target(s', a').
  """

  def __init__(self, num_actions, observation_shape, observation_dtype,
               stack_size, num_quantiles: int = 200, kappa: float = 1.0,
               optimizer_fn=functools.partial(
                   optimizers.adam_optimizer, learning_rate=5e-5,
                   epsilon=3.125e-4),
               **kwargs):
    """See `QAgent`; `kappa` is the Huber threshold of the quantile loss."""
    self.num_quantiles = num_quantiles
    self.kappa = kappa
    super().__init__(num_actions, observation_shape, observation_dtype,
                     stack_size, num_outputs=num_quantiles,
                     optimizer_fn=optimizer_fn, **kwargs)

  def _per_example_loss(self, batch, step_inputs):
    return self._bellman_loss(self.online_network(batch['state']), batch,
                              step_inputs)

  def _bellman_loss(self, outputs, batch, step_inputs):
    """[B] TD loss of `outputs`, the online network's on batch['state']."""
    del step_inputs
    target = losses.bellman_target(
        batch['reward'], self._bootstrap_discount(batch),
        self._greedy_outputs(self.target_network(batch['next_state'])))
    chosen = losses.select_actions(outputs, batch['action'])
    return losses.quantile_huber_loss(
        tf.stop_gradient(target), chosen, kappa=self.kappa)
