"""MinAtar games (Young & Tian, 2019) behind the gymnasium API.

Observations are the game's (10, 10, channels) boolean grids as uint8, so
they store and stack like Atari frames; actions index the minimal action set.
"""

from typing import Optional

import gin
import gymnasium as gym
import minatar
import numpy as np
from gymnasium.wrappers import TimeLimit

GAMES = ('asterix', 'breakout', 'freeway', 'seaquest', 'space_invaders')
STACK_SIZE = 1


class MinAtarEnv(gym.Env):
  """A MinAtar game with sticky actions and its minimal action set."""

  metadata = {'render_modes': []}

  def __init__(self, game: str, sticky_action_probability: float = 0.1,
               difficulty_ramping: bool = True):
    if game not in GAMES:
      raise ValueError(
          f'Unknown MinAtar game {game!r}; valid games: {", ".join(GAMES)}.')
    self.game = minatar.Environment(
        game, sticky_action_prob=sticky_action_probability,
        difficulty_ramping=difficulty_ramping)
    self._action_set = self.game.minimal_action_set()
    self.action_space = gym.spaces.Discrete(len(self._action_set))
    self.observation_space = gym.spaces.Box(
        0, 1, shape=self.game.state_shape(), dtype=np.uint8)

  def _observation(self) -> np.ndarray:
    return self.game.state().astype(np.uint8)

  def reset(self, *, seed: Optional[int] = None, options=None):
    super().reset(seed=seed)
    if seed is not None:
      self.game.seed(seed)  # Drives both the game and its sticky actions.
    # As in ALE, a new episode does not repeat the last episode's action.
    self.game.last_action = 0
    self.game.reset()
    return self._observation(), {}

  def step(self, action):
    reward, terminated = self.game.act(self._action_set[int(action)])
    return self._observation(), float(reward), bool(terminated), False, {}


@gin.configurable
def make_minatar_environment(game: str,
                             sticky_action_probability: float = 0.1,
                             difficulty_ramping: bool = True,
                             max_episode_steps: Optional[int] = None
                             ) -> gym.Env:
  """One MinAtar game; `max_episode_steps=None` keeps its own episode ends."""
  env = MinAtarEnv(game, sticky_action_probability, difficulty_ramping)
  if max_episode_steps is not None:
    env = TimeLimit(env, max_episode_steps=max_episode_steps)
  return env
