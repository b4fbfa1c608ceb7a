"""What an agent needs to know about an environment to be built for it."""

import dataclasses

import gymnasium as gym
import numpy as np


@dataclasses.dataclass(frozen=True)
class EnvironmentSpec:
  """Action count and the single-frame observation layout of an environment.

  `stack_size` is how many frames the agent stacks into a state (Dopamine's
  agents and replay stack frames themselves; environments emit one frame).
  """
  num_actions: int
  observation_shape: tuple[int, ...]
  observation_dtype: np.dtype
  stack_size: int


def spec_of(env: gym.Env, stack_size: int) -> EnvironmentSpec:
  """The spec of a discrete-action gymnasium environment."""
  if not isinstance(env.action_space, gym.spaces.Discrete):
    raise ValueError(
        f'{env}: action space is {env.action_space}, expected Discrete.')
  return EnvironmentSpec(
      num_actions=int(env.action_space.n),
      observation_shape=tuple(env.observation_space.shape),
      observation_dtype=np.dtype(env.observation_space.dtype),
      stack_size=stack_size)
