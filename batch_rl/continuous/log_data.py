"""Trains an online DDPG or TD3 agent and logs its full replay.

Every transition the agent sees is written as Dopamine replay checkpoints
(`<base_dir>/replay_logs/$store$_*_ckpt.N.gz`, checkpoint N each time
`replay_capacity` slots have filled, the remainder at the end), the data
layout of the paper's MuJoCo experiments. Episode returns of the logging
agent go to `<base_dir>/episode_returns.csv`. The command is
`python -m batch_rl.log_data --agent_name=ddpg ...` (batch_rl/log_data.py).
"""

import csv
import os
import signal

from absl import logging
import gin
import numpy as np

from batch_rl import cli
from batch_rl.agents import registry
from batch_rl.continuous.actor_critic import DDPGAgent
from batch_rl.continuous.environments import make_continuous_environment
from batch_rl.continuous.replay_writer import EpisodeReplayWriter
from batch_rl.data.dopamine_replay import write_checkpoint
from batch_rl.run_directory import RunDirectory

RETURNS_FILE = 'episode_returns.csv'


@gin.configurable
def log_online_replay(base_dir: str, env_name: str = 'Hopper-v5',
                      agent_name: str = 'ddpg', num_steps: int = 1_000_000,
                      replay_capacity: int = 1_000_000,
                      random_steps: int = 25_000, batch_size: int = 256,
                      seed: int = 0) -> list[float]:
  """Runs the online agent for `num_steps` environment steps, logging all.

  As in the TD3 reference loop: `random_steps` uniform random actions first,
  then (once a batch of data is in) one gradient step per environment step
  on a batch from the replay, and exploration noise on the agent's actions.
  Time-limit ends are not terminals.

  Returns:
    The undiscounted return of every finished episode.
  """
  if not issubclass(registry.agent_class(agent_name), DDPGAgent):
    raise ValueError(f'--agent_name={agent_name}: the logger trains '
                     'deterministic actor-critic agents (ddpg, td3 and their '
                     'ensembles).')
  env, spec = make_continuous_environment(env_name)
  agent = registry.create_agent(agent_name, spec, seed=seed)
  replay_dir = RunDirectory(base_dir).replay_logs_path
  writer = EpisodeReplayWriter(
      replay_capacity, spec.observation_dim, spec.action_dim,
      lambda suffix, arrays: write_checkpoint(replay_dir, suffix, arrays))
  rng = np.random.default_rng(seed)
  os.makedirs(base_dir, exist_ok=True)
  train_start = max(random_steps, batch_size)
  returns = []
  with open(os.path.join(base_dir, RETURNS_FILE), 'w', newline='') as f, \
       cli.deferred_signals():
    log = csv.writer(f)
    log.writerow(['step', 'episode_return', 'episode_length'])
    observation, _ = env.reset(seed=seed)
    reward, episode_return, episode_length = 0.0, 0.0, 0
    for step in range(num_steps):
      if cli.stop_requested() is not None:
        break  # SIGINT/SIGTERM: log what was played, then stop.
      if step < random_steps:
        action = rng.uniform(-1.0, 1.0, spec.action_dim).astype(np.float32)
      elif episode_length == 0:
        action = agent.begin_episode(observation)
      else:
        action = agent.step(reward, observation)
      next_observation, reward, terminated, truncated, _ = env.step(action)
      writer.add_transition(observation, action, reward, terminated)
      episode_return += reward
      episode_length += 1
      if step >= train_start:
        agent.train_step(writer.sample_batch(batch_size, rng))
      if terminated or truncated:
        writer.truncate_episode(next_observation)
        agent.end_episode(reward, terminated)
        returns.append(episode_return)
        log.writerow([step + 1, episode_return, episode_length])
        logging.info('step %d: episode return %.1f over %d steps', step + 1,
                     episode_return, episode_length)
        observation, _ = env.reset()
        episode_return, episode_length = 0.0, 0
      else:
        observation = next_observation
  writer.close(observation)  # The episode running, if any, is unfinished.
  signum = cli.stop_requested()
  if signum is not None:
    raise cli.Stopped(signum, f'stopped by {signal.Signals(signum).name} '
                      f'after {step} of {num_steps} steps; the replay of '
                      f'those steps is in {replay_dir}.')
  return returns
