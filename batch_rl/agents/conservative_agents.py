"""CQL(H) on the discrete agents: DQN, QR-DQN and REM with CQL's penalty.

Conservative Q-Learning (Kumar et al., 2020), its Atari form: the base agent's
TD loss plus cql_alpha * `offline_losses.cql_penalty` of the online Q-values
at the batch's states and logged actions. QR-DQN's Q is the mean of its
quantiles, as in CQL's official Atari code.
"""

import gin

from batch_rl.agents import dqn_agent
from batch_rl.agents import multi_head_dqn_agent
from batch_rl.agents import offline_losses
from batch_rl.agents import quantile_agent
from batch_rl.agents import registry

# What REM's penalty applies to (docs/AGENTS.md argues the default).
PENALTY_TARGETS = ('mixture', 'heads', 'mean')


class ConservativePenalty:
  """Adds cql_alpha * CQL(H) penalty to the TD loss of the Q agent after it.

  Mixed in before a Q agent with a `_bellman_loss(outputs, batch,
  step_inputs)`; loss = `_bellman_loss` + cql_alpha * penalty, both on one
  forward pass of the online network.
  """

  def __init__(self, *args, cql_alpha: float = 1.0, **kwargs):
    """See the Q agent; `cql_alpha` >= 0 weighs the penalty (0: the base)."""
    if cql_alpha < 0:
      raise ValueError(f'cql_alpha must be >= 0; got {cql_alpha}.')
    self.cql_alpha = cql_alpha
    super().__init__(*args, **kwargs)

  def _penalized_q_values(self, outputs, step_inputs):
    """[B, A, ...] the Q-values the penalty applies to: `_q_values`."""
    del step_inputs
    return self._q_values(outputs)

  def _per_example_loss(self, batch, step_inputs):
    outputs = self.online_network(batch['state'])
    penalty = offline_losses.cql_penalty(
        self._penalized_q_values(outputs, step_inputs), batch['action'])
    return (self._bellman_loss(outputs, batch, step_inputs) +
            self.cql_alpha * penalty)


@registry.register_agent('discrete_cql')
@gin.configurable
class DiscreteCQLAgent(ConservativePenalty, dqn_agent.DQNAgent):
  """DQN + CQL(H): L(y - Q(s, a)) + alpha (logsumexp_a' Q(s, a') - Q(s, a))."""


@registry.register_agent('quantile_cql')
@gin.configurable
class QuantileCQLAgent(ConservativePenalty, quantile_agent.QuantileAgent):
  """QR-DQN + CQL(H) on Q = mean of the quantiles (CQL's Atari agent)."""


@registry.register_agent('rem_cql')
@gin.configurable
class REMCQLAgent(ConservativePenalty,
                  multi_head_dqn_agent.MultiHeadDQNAgent):
  """REM + CQL(H); `penalty_on` picks the Q-function penalized.

  'mixture': the random convex combination Q_alpha the TD loss trains (the
  default); 'heads': every head, penalties averaged; 'mean': the mean of the
  heads, which the agent acts on.
  """

  def __init__(self, *args, transform_strategy: str = 'STOCHASTIC',
               penalty_on: str = 'mixture', **kwargs):
    """See `MultiHeadDQNAgent` and `ConservativePenalty`."""
    if penalty_on not in PENALTY_TARGETS:
      raise ValueError(f"penalty_on '{penalty_on}' is not one of "
                       f'{PENALTY_TARGETS}.')
    self.penalty_on = penalty_on
    super().__init__(*args, transform_strategy=transform_strategy, **kwargs)

  def _penalized_q_values(self, outputs, step_inputs):
    if self.penalty_on == 'mixture':
      return self._combine_heads(outputs, step_inputs)
    if self.penalty_on == 'heads':
      return outputs
    return self._q_values(outputs)
