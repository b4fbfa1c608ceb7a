"""Behaviour cloning: a deterministic policy regressed onto the data actions."""

from typing import Sequence

import gin
import tensorflow as tf

from batch_rl.continuous import losses
from batch_rl.continuous import networks
from batch_rl.continuous.agent import adam
from batch_rl.continuous.agent import ContinuousAgent
from batch_rl.continuous.agent import gradient_step
from batch_rl.continuous.agent import Transitions


@gin.configurable
class BCAgent(ContinuousAgent):
  """min_pi mean (pi(s) - a)^2, the BC baseline of the TD3+BC paper.

  Args:
    action_dim, observation_shape: as in ContinuousAgent.
    hidden_sizes: the policy's hidden layers.
    learning_rate: Adam learning rate.
    **kwargs: ContinuousAgent's arguments.
  """

  def __init__(self, action_dim: int, observation_shape: Sequence[int],
               hidden_sizes: Sequence[int] = (256, 256),
               learning_rate: float = 3e-4, **kwargs):
    super().__init__(action_dim, observation_shape, **kwargs)
    self.actor = networks.built(
        networks.DeterministicActor(self.action_dim, hidden_sizes,
                                    self._seeds), self.observation_dim)
    self.optimizer = adam(learning_rate, self.actor.trainable_variables)

  def policy(self, states):
    return self.actor(states)

  def _trackables(self) -> dict:
    return dict(actor=self.actor, optimizer=self.optimizer)

  def _train(self, t: Transitions):
    variables = self.actor.trainable_variables
    with tf.GradientTape() as tape:
      loss = losses.mse_loss(t.action, self.actor(t.state))
    gradient_step(self.optimizer, tape, loss, variables)
    return {'loss': loss}
