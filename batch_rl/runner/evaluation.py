"""Online evaluation: episodes of an agent in its environment."""

import numpy as np


def run_episode(agent, env, max_steps_per_episode: int) -> tuple[float, int]:
  """One episode (Dopamine's protocol); returns (undiscounted return, steps)."""
  observation, _ = env.reset()
  action = agent.begin_episode(observation)
  total, steps = 0.0, 0
  while True:
    observation, reward, terminated, truncated, _ = env.step(action)
    total += float(reward)
    steps += 1
    if terminated or truncated or steps >= max_steps_per_episode:
      agent.end_episode(reward, terminal=bool(terminated),
                        observation=observation)
      return total, steps
    action = agent.step(reward, observation)


def evaluate(agent, env, min_steps: int, max_steps_per_episode: int,
             progress=None) -> np.ndarray:
  """Whole episodes in eval mode until `min_steps` steps; their returns."""
  agent.eval_mode = True
  returns, steps = [], 0
  while steps < min_steps:
    episode_return, episode_steps = run_episode(agent, env,
                                                max_steps_per_episode)
    returns.append(episode_return)
    steps += episode_steps
    if progress is not None:
      progress(episode_steps, episode_return)
  return np.array(returns, dtype=np.float64)
