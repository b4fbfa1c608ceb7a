"""Agent names -> agent classes and their presets, for `create_agent`.

A module registers its agents with `@register_agent('name')`, or registers a
variant that differs only in settings as a name with presets:
`register_agent('rem', MultiHeadDQNAgent, transform_strategy='STOCHASTIC')`.
Importing `batch_rl.agents` registers the discrete agents, and
`batch_rl.continuous` registers its own when imported.

The registered name is the agent's one name: in `--agent_name`, in gin
(`create_agent.agent_name`) and in reports. A preset is what the name means:
a gin binding or argument that contradicts it is an error naming both (bind
the name without the preset, e.g. `multi_head_dqn` or `ddpg`, to choose the
setting freely).
"""

from typing import Optional

import gin

_AGENTS = {}  # name -> (agent class, presets)


def register_agent(name: str, agent_class=None, **presets):
  """Registers `agent_class` under `name`, built with `presets`.

  Without `agent_class`, returns a class decorator (no presets).

  Raises:
    ValueError: `name` is registered to another class or other presets.
  """

  def register(cls):
    if name in _AGENTS and _AGENTS[name] != (cls, presets):
      registered, registered_presets = _AGENTS[name]
      raise ValueError(
          f"agent name '{name}' is already registered to "
          f'{registered.__module__}.{registered.__name__}'
          f'{_describe(registered_presets)}.')
    _AGENTS[name] = (cls, presets)
    return cls

  return register if agent_class is None else register(agent_class)


def _describe(presets: dict) -> str:
  return ''.join(f' {key}={value!r}' for key, value in presets.items())


def agent_names() -> list[str]:
  """The registered agent names, sorted."""
  return sorted(_AGENTS)


def _entry(agent_name: str):
  if agent_name not in _AGENTS:
    raise ValueError(f"Unknown agent_name '{agent_name}'; valid names: "
                     f"{', '.join(agent_names())}.")
  return _AGENTS[agent_name]


def _gin_bindings(cls) -> dict:
  """parameter -> (class name, value) bound in gin for `cls` and its
  gin-configurable base classes (a base class's binding reaches the
  parameters its `__init__` receives from a subclass)."""
  bindings = {}
  for klass in reversed(cls.__mro__):
    try:
      bound = gin.get_bindings(klass)
    except ValueError:  # Not gin-configurable.
      continue
    bindings.update({key: (klass.__name__, value)
                     for key, value in bound.items()})
  return bindings


def _check_presets(agent_name: str, cls, fixed: dict, kwargs: dict) -> None:
  """Raises if an argument or a gin binding contradicts a preset."""
  bindings = _gin_bindings(cls)
  for key, value in fixed.items():
    if key in kwargs and kwargs[key] != value:
      raise ValueError(
          f"create_agent got {key}={kwargs[key]!r}, but agent '{agent_name}' "
          f'presets {key}={value!r}.')
    if key in bindings and bindings[key][1] != value:
      klass, bound = bindings[key]
      raise ValueError(
          f'gin binds {klass}.{key} = {bound!r}, but agent '
          f"'{agent_name}' presets {key}={value!r}; drop the binding, or pick "
          'the agent name whose presets you want.')


def bound_agent_name() -> Optional[str]:
  """`create_agent.agent_name` in the parsed gin config, or None."""
  return gin.get_bindings(create_agent).get('agent_name')


def resolve_agent_name(flag_name: Optional[str],
                       gin_name: Optional[str]) -> str:
  """The run's one agent name, from a flag and/or gin's binding.

  Args:
    flag_name: e.g. `--agent_name`, or None when not given.
    gin_name: `bound_agent_name()`, or None.

  Raises:
    ValueError: a name is unknown, they disagree, or neither is given.
  """
  for name in (flag_name, gin_name):
    if name:
      _entry(name)
  if flag_name and gin_name and flag_name != gin_name:
    raise ValueError(
        f"--agent_name={flag_name} disagrees with the gin binding "
        f"create_agent.agent_name = '{gin_name}'; drop one or make them "
        'agree.')
  if not (flag_name or gin_name):
    raise ValueError('no agent: pass --agent_name or bind '
                     'create_agent.agent_name in a gin file.')
  return flag_name or gin_name


@gin.configurable
def create_agent(agent_name: str, spec, **kwargs):
  """Builds the agent registered as `agent_name` for an environment.

  Args:
    agent_name: a registered name, e.g. 'dqn', 'rem' or 'td3'.
    spec: the environment's spec: `observation_shape`, `observation_dtype`,
      `stack_size` and the agent's action argument (`num_actions` for
      discrete agents, `action_dim` for continuous ones).
    **kwargs: further constructor arguments (e.g. seed, strategy).

  Raises:
    ValueError: `agent_name` is not registered or disagrees with gin's
      `create_agent.agent_name`, the spec lacks the agent's kind of actions,
      or an argument or gin binding contradicts a preset.
  """
  cls, fixed = _entry(resolve_agent_name(agent_name, bound_agent_name()))
  _check_presets(agent_name, cls, fixed, kwargs)
  argument = cls.ACTION_ARGUMENT
  if getattr(spec, argument, None) is None:
    raise ValueError(
        f"agent '{agent_name}' acts on an environment with {argument}; the "
        f'{type(spec).__name__} given has none (discrete agents take '
        'num_actions, continuous ones action_dim).')
  return cls(**{argument: getattr(spec, argument)},
             observation_shape=spec.observation_shape,
             observation_dtype=spec.observation_dtype,
             stack_size=spec.stack_size, **{**fixed, **kwargs})
