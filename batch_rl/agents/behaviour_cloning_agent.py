"""Discrete behaviour cloning: the floor every offline agent must beat."""

import functools

import gin

from batch_rl.agents import offline_losses
from batch_rl.agents import optimizers
from batch_rl.agents import q_agent
from batch_rl.agents import registry


@registry.register_agent('discrete_bc')
@gin.configurable
class BehaviourCloningAgent(q_agent.QAgent):
  """A softmax policy fit to the logged actions; acts on its likeliest action.

  The network's one output per action is a logit; the loss is the
  cross-entropy -log softmax(logits)(a_data). Rewards, the target network and
  the bootstrap are unused.
  """

  def __init__(self, num_actions, observation_shape, observation_dtype,
               stack_size,
               optimizer_fn=functools.partial(
                   optimizers.adam_optimizer, learning_rate=6.25e-5,
                   epsilon=1.5e-4),
               **kwargs):
    """See `QAgent`; by default discrete BCQ's Adam (6.25e-5, eps 1.5e-4)."""
    super().__init__(num_actions, observation_shape, observation_dtype,
                     stack_size, num_outputs=1, optimizer_fn=optimizer_fn,
                     **kwargs)

  def _per_example_loss(self, batch, step_inputs):
    del step_inputs
    return offline_losses.behaviour_cloning_loss(
        self.online_network(batch['state'])[..., 0], batch['action'])
