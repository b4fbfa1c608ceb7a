"""Continuous-control tasks: gymnasium MuJoCo v5 and two fast test tasks.

Agents act in [-1, 1]^action_dim; the environment maps that box linearly
onto the task's own action bounds, so replay data and networks never see
task-specific scales. Observations are float32 vectors.
"""

import dataclasses
from typing import Optional

import gin
import gymnasium as gym
import numpy as np

MUJOCO_TASKS = ('HalfCheetah-v5', 'Hopper-v5', 'Walker2d-v5', 'Ant-v5')
TEST_TASKS = ('Pendulum-v1', 'InvertedPendulum-v5')
TASKS = MUJOCO_TASKS + TEST_TASKS
STACK_SIZE = 1


@dataclasses.dataclass(frozen=True)
class ContinuousEnvironmentSpec:
  """What a continuous-control agent is built for.

  `action_low`/`action_high` are the task's own bounds, which the
  environment's [-1, 1] actions are mapped onto. `action_dim`,
  `observation_shape`, `observation_dtype` and `stack_size` are the fields
  `registry.create_agent` reads to build a continuous agent.
  """
  name: str
  observation_dim: int
  action_dim: int
  action_low: np.ndarray
  action_high: np.ndarray
  max_episode_steps: int
  stack_size: int = STACK_SIZE
  observation_dtype: np.dtype = np.dtype(np.float32)

  @property
  def observation_shape(self) -> tuple[int]:
    return (self.observation_dim,)


def scale_to_bounds(action: np.ndarray, low: np.ndarray,
                    high: np.ndarray) -> np.ndarray:
  """Maps an action in [-1, 1] linearly onto [low, high] (clipping first)."""
  action = np.clip(action, -1.0, 1.0)
  return low + (action + 1.0) * 0.5 * (high - low)


class UnitActionEnvironment(gym.Wrapper):
  """Takes actions in [-1, 1] and returns float32 observations."""

  def __init__(self, env: gym.Env):
    super().__init__(env)
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or not np.all(
        np.isfinite(space.low) & np.isfinite(space.high)):
      raise ValueError(
          f'{env.spec.id}: action space {space} must be a bounded Box.')
    self._low = space.low.astype(np.float64)
    self._high = space.high.astype(np.float64)
    self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)
    self.observation_space = gym.spaces.Box(
        -np.inf, np.inf, env.observation_space.shape, np.float32)

  def reset(self, **kwargs):
    observation, info = self.env.reset(**kwargs)
    return np.asarray(observation, np.float32), info

  def step(self, action):
    observation, reward, terminated, truncated, info = self.env.step(
        scale_to_bounds(np.asarray(action, np.float64), self._low,
                        self._high).astype(self.env.action_space.dtype))
    return (np.asarray(observation, np.float32), float(reward), terminated,
            truncated, info)


@gin.configurable
def make_continuous_environment(
    name: str = gin.REQUIRED, max_episode_steps: Optional[int] = None
) -> tuple[gym.Env, ContinuousEnvironmentSpec]:
  """A task from TASKS taking [-1, 1] actions, and its spec.

  Args:
    name: e.g. 'Hopper-v5'; see TASKS.
    max_episode_steps: time limit; None keeps gymnasium's (1000 for MuJoCo).

  Returns:
    (environment, spec); seed the environment with `reset(seed=...)`.
  """
  if name not in TASKS:
    raise ValueError(f'Unknown continuous-control task {name!r}; valid: '
                     f'{", ".join(TASKS)}.')
  env = UnitActionEnvironment(gym.make(name,
                                       max_episode_steps=max_episode_steps))
  inner = env.env.action_space
  spec = ContinuousEnvironmentSpec(
      name=name,
      observation_dim=int(np.prod(env.observation_space.shape)),
      action_dim=int(np.prod(inner.shape)),
      action_low=inner.low.copy(),
      action_high=inner.high.copy(),
      max_episode_steps=int(env.spec.max_episode_steps))
  return env, spec
