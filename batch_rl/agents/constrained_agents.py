"""Discrete BCQ (Fujimoto et al., 2019) on DQN and on REM.

"Benchmarking batch deep reinforcement learning algorithms": an imitation
head pi(a|s) = softmax(logits) on the Q-network's torso, trained by
cross-entropy on the logged actions with `logit_penalty_weight` * mean
logits^2; the agent acts on, and bootstraps from, the best action among
those with pi(a|s) / max_a' pi(a|s) > threshold.
"""

import gin
import tensorflow as tf

from batch_rl.agents import dqn_agent
from batch_rl.agents import losses
from batch_rl.agents import multi_head_dqn_agent
from batch_rl.agents import networks
from batch_rl.agents import offline_losses
from batch_rl.agents import registry


class BatchConstrained:
  """Discrete BCQ's imitation head and action constraint on a DQN agent.

  Mixed in before `DQNAgent` or a subclass: the network gets one more output
  per action, the imitation logits (outputs[..., -1]); the Q outputs before
  it are combined by the agent's `_combine_heads` as in its own TD loss.
  With Q_h the combined Q-functions, the loss is

    mean_h L(r + gamma^n (1 - terminal) Q_target,h(s', a*_h) - Q_h(s, a))
    - log pi(a|s) + logit_penalty_weight * mean_a' logits(s, a')^2

  where a*_h = argmax of the online Q_h(s', .) over the actions allowed by
  the online imitation head at s' (double-DQN style, as in the official
  code), and L the agent's TD loss (Huber by default).
  """

  def __init__(self, *args, threshold: float = 0.3,
               logit_penalty_weight: float = 1e-2, **kwargs):
    """See the DQN agent.

    Args:
      *args: the DQN agent's arguments.
      threshold: tau in [0, 1); actions with pi(a|s) / max pi <= tau are
        excluded (0 allows every action).
      logit_penalty_weight: weight of mean_a logits^2 in the loss.
      **kwargs: the DQN agent's keyword arguments.
    """
    if not 0. <= threshold < 1.:
      raise ValueError(f'BCQ threshold must be in [0, 1); got {threshold}.')
    self.threshold = threshold
    self.logit_penalty_weight = logit_penalty_weight
    super().__init__(*args, **kwargs)

  def _create_network(self, name: str):
    """Q outputs and, last, the imitation logits: [B, A, num_outputs + 1]."""
    return networks.QHeadsNetwork(self.num_actions, self.num_outputs + 1,
                                  seeds=self._seeds, name=name)

  def _q_values(self, outputs):
    return super()._q_values(outputs[..., :-1])

  def _allowed_actions(self, outputs):
    """[B, A] bool: the actions the imitation head allows."""
    return offline_losses.bcq_action_mask(outputs[..., -1], self.threshold)

  def _greedy_from_outputs(self, outputs):
    return offline_losses.constrained_greedy_actions(
        self._q_values(outputs), self._allowed_actions(outputs))

  def _bellman_loss(self, outputs, batch, step_inputs):
    next_outputs = self.online_network(batch['next_state'])
    next_actions = offline_losses.constrained_greedy_actions(
        self._combine_heads(next_outputs[..., :-1], step_inputs),
        self._allowed_actions(next_outputs))
    next_q = self._combine_heads(
        self.target_network(batch['next_state'])[..., :-1], step_inputs)
    next_values = tf.reduce_sum(
        tf.one_hot(next_actions, self.num_actions, axis=1) * next_q, axis=1)
    target = losses.bellman_target(batch['reward'],
                                   self._bootstrap_discount(batch),
                                   next_values)
    chosen_q = losses.select_actions(
        self._combine_heads(outputs[..., :-1], step_inputs), batch['action'])
    return tf.reduce_mean(
        self._td_loss(tf.stop_gradient(target), chosen_q), axis=-1)

  def _imitation_loss(self, outputs, batch):
    """[B] cross-entropy of the imitation head plus its logit penalty."""
    logits = outputs[..., -1]
    return (offline_losses.behaviour_cloning_loss(logits, batch['action']) +
            self.logit_penalty_weight * offline_losses.logit_penalty(logits))

  def _per_example_loss(self, batch, step_inputs):
    outputs = self.online_network(batch['state'])
    return (self._bellman_loss(outputs, batch, step_inputs) +
            self._imitation_loss(outputs, batch))


@registry.register_agent('discrete_bcq')
@gin.configurable
class DiscreteBCQAgent(BatchConstrained, dqn_agent.DQNAgent):
  """Discrete BCQ: one Q-value and one imitation logit per action."""


@registry.register_agent('rem_bcq')
@gin.configurable
class REMBCQAgent(BatchConstrained, multi_head_dqn_agent.MultiHeadDQNAgent):
  """REM + BCQ: the constraint restricts each random mixture's bootstrap.

  a* = argmax of the online Q_alpha(s', .) over the allowed actions; the
  agent acts on the best allowed action of the heads' mean.
  """

  def __init__(self, *args, transform_strategy: str = 'STOCHASTIC',
               **kwargs):
    """See `MultiHeadDQNAgent` and `BatchConstrained`."""
    super().__init__(*args, transform_strategy=transform_strategy, **kwargs)
