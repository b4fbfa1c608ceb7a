"""DQN (Mnih et al., 2015): one Q-value per action, Huber TD loss."""

import gin
import tensorflow as tf

from batch_rl.agents import losses
from batch_rl.agents import optimizers
from batch_rl.agents import q_agent
from batch_rl.agents import registry

TD_LOSSES = {'huber': losses.huber_loss, 'mse': losses.mse_loss}


@registry.register_agent('dqn')
@gin.configurable
class DQNAgent(q_agent.QAgent):
  """DQN; its TD loss runs over a head axis so multi-head agents reuse it.

  With Q of shape [B, A, H], each head h has its own target
  y_h = r + gamma^n (1 - terminal) max_a' Q_target,h(s', a') and the loss is
  the mean over heads of L(y_h - Q_h(s, a)). DQN has H = 1.
  """

  def __init__(self, num_actions, observation_shape, observation_dtype,
               stack_size, td_loss: str = 'huber',
               optimizer_fn=optimizers.centered_rmsprop_optimizer,
               num_outputs: int = 1, **kwargs):
    """See `QAgent`.

    Args:
      num_actions, observation_shape, observation_dtype, stack_size: as for
        `QAgent`.
      td_loss: 'huber' (the release's) or 'mse'.
      optimizer_fn: by default Nature DQN's centered RMSProp.
      num_outputs: heads H of the network; 1 for DQN, more for subclasses.
      **kwargs: further `QAgent` arguments.
    """
    if td_loss not in TD_LOSSES:
      raise ValueError(f"td_loss '{td_loss}' is not one of {list(TD_LOSSES)}.")
    self._td_loss = TD_LOSSES[td_loss]
    super().__init__(num_actions, observation_shape, observation_dtype,
                     stack_size, num_outputs=num_outputs,
                     optimizer_fn=optimizer_fn, **kwargs)

  def _combine_heads(self, heads, step_inputs):
    """[B, A, H] -> [B, A, H']: the Q-functions the TD loss is applied to."""
    del step_inputs
    return heads

  def _per_example_loss(self, batch, step_inputs):
    return self._bellman_loss(self.online_network(batch['state']), batch,
                              step_inputs)

  def _bellman_loss(self, outputs, batch, step_inputs):
    """[B] TD loss of `outputs`, the online network's on batch['state']."""
    q = self._combine_heads(outputs, step_inputs)
    next_q = self._combine_heads(
        self.target_network(batch['next_state']), step_inputs)
    target = losses.bellman_target(batch['reward'],
                                   self._bootstrap_discount(batch),
                                   tf.reduce_max(next_q, axis=1))
    chosen_q = losses.select_actions(q, batch['action'])
    return tf.reduce_mean(
        self._td_loss(tf.stop_gradient(target), chosen_q), axis=-1)
