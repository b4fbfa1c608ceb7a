"""Multi-network DQN: K separate Q-networks (the paper's online REM)."""

import functools

import gin

from batch_rl.agents import multi_head_dqn_agent
from batch_rl.agents import networks
from batch_rl.agents import optimizers
from batch_rl.agents import registry


@registry.register_agent('multi_network_dqn')
@gin.configurable
class MultiNetworkDQNAgent(multi_head_dqn_agent.MultiHeadDQNAgent):
  """`MultiHeadDQNAgent` whose K heads are independent networks.

  One optimizer over all K networks' variables equals the release's K
  optimizers: Adam's update is per parameter.
  """

  def __init__(self, num_actions, observation_shape, observation_dtype,
               stack_size, num_networks: int = 4,
               transform_strategy: str = 'STOCHASTIC',
               optimizer_fn=functools.partial(
                   optimizers.adam_optimizer, learning_rate=5e-5,
                   epsilon=3.125e-5),
               **kwargs):
    """See `MultiHeadDQNAgent`; `num_networks` is K."""
    super().__init__(num_actions, observation_shape, observation_dtype,
                     stack_size, num_heads=num_networks,
                     transform_strategy=transform_strategy,
                     optimizer_fn=optimizer_fn, **kwargs)

  def _create_network(self, name):
    return networks.EnsembleQNetwork(self.num_actions, self.num_heads,
                                     seeds=self._seeds, name=name)
