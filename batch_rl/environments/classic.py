"""Classic-control tasks with float32 vector observations."""

from typing import Optional

import gin
import gymnasium as gym

GAMES = ('CartPole-v1', 'Acrobot-v1')
STACK_SIZE = 1


@gin.configurable
def make_classic_environment(name: str,
                             max_episode_steps: Optional[int] = None
                             ) -> gym.Env:
  """CartPole-v1 or Acrobot-v1; `max_episode_steps=None` keeps the 500 limit."""
  if name not in GAMES:
    raise ValueError(
        f'Unknown classic-control task {name!r}; valid: {", ".join(GAMES)}.')
  return gym.make(name, max_episode_steps=max_episode_steps)
