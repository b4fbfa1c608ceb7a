"""Atari 2600 games through ALE with the protocol of the DQN Replay Dataset.

Machado et al. (2018) / Dopamine settings: sticky actions with probability
0.25, 4 emulator frames per agent step with a max-pool over the last two,
84x84 grayscale frames, the minimal action set, no no-op starts, no terminal
on life loss, and at most 27,000 agent steps (108,000 frames) per episode.
"""

import ale_py
import gin
import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing
from gymnasium.wrappers import TimeLimit

gym.register_envs(ale_py)

STACK_SIZE = 4


def atari_games() -> list[str]:
  """Game names ale-py ships ROMs for, as `ALE/<Game>-v5` spells them."""
  return sorted(
      env_id[len('ALE/'):-len('-v5')] for env_id in gym.registry
      if env_id.startswith('ALE/') and env_id.endswith('-v5'))


@gin.configurable
def make_atari_environment(game: str,
                           sticky_action_probability: float = 0.25,
                           frame_skip: int = 4,
                           screen_size: int = 84,
                           max_episode_steps: int = 27_000) -> gym.Env:
  """One Atari game emitting single (84, 84) uint8 frames.

  Args:
    game: ALE game name in CamelCase, e.g. 'Pong' or 'SpaceInvaders'.
    sticky_action_probability: chance that the emulator repeats the previous
      action on each frame instead of the chosen one.
    frame_skip: emulator frames per agent step.
    screen_size: side of the square grayscale frame.
    max_episode_steps: agent steps after which an episode is truncated.

  Returns:
    A gymnasium environment; seed it with `reset(seed=...)`.
  """
  env_id = f'ALE/{game}-v5'
  if env_id not in gym.registry:
    raise ValueError(f'Unknown Atari game {game!r}; valid games: '
                     f'{", ".join(atari_games())}.')
  env = gym.make(
      env_id,
      frameskip=1,  # AtariPreprocessing skips frames and max-pools.
      repeat_action_probability=sticky_action_probability,
      full_action_space=False,
      # The episode limit counts agent steps, applied by TimeLimit below.
      max_num_frames_per_episode=0)
  env = AtariPreprocessing(
      env,
      noop_max=0,
      frame_skip=frame_skip,
      screen_size=screen_size,
      terminal_on_life_loss=False,
      grayscale_obs=True,
      grayscale_newaxis=False,
      scale_obs=False)
  return TimeLimit(env, max_episode_steps=max_episode_steps)
