"""Agent names -> agent classes, for the runner's `create_agent`.

A module registers its agents with `@register_agent('name')`; importing
`batch_rl.agents` registers the discrete agents, and another branch (e.g.
`batch_rl.continuous`) registers its own the same way when imported.
"""

import gin

_AGENTS = {}


def register_agent(name: str):
  """Class decorator adding an agent class to the registry under `name`."""

  def register(agent_class):
    if name in _AGENTS and _AGENTS[name] is not agent_class:
      raise ValueError(
          f"agent name '{name}' is already registered to "
          f'{_AGENTS[name].__module__}.{_AGENTS[name].__name__}.')
    _AGENTS[name] = agent_class
    return agent_class

  return register


def agent_names() -> list[str]:
  """The registered agent names, sorted."""
  return sorted(_AGENTS)


@gin.configurable
def create_agent(agent_name: str, num_actions: int, observation_shape,
                 observation_dtype, stack_size: int, **kwargs):
  """Builds the agent registered as `agent_name`; gin supplies the rest.

  Args:
    agent_name: a registered name, e.g. 'dqn' or 'multi_head_dqn'.
    num_actions: number of discrete actions (or action dimensions).
    observation_shape: shape of one stored frame.
    observation_dtype: dtype of the stored frames.
    stack_size: frames per state.
    **kwargs: further constructor arguments (e.g. strategy, eval_mode).

  Raises:
    ValueError: `agent_name` is not registered.
  """
  if agent_name not in _AGENTS:
    raise ValueError(f"Unknown agent_name '{agent_name}'; valid names: "
                     f"{', '.join(agent_names())}.")
  return _AGENTS[agent_name](
      num_actions=num_actions, observation_shape=observation_shape,
      observation_dtype=observation_dtype, stack_size=stack_size, **kwargs)
