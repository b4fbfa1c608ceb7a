"""Builds an online logging experiment from gin: environment, agent, replay."""

import os

import gin
import tensorflow as tf

from batch_rl.agents import registry
from batch_rl.baselines.logged_replay_buffer import LoggedReplayBuffer
from batch_rl.baselines.online_agent import OnlineAgent
from batch_rl.baselines.online_runner import OnlineRunner
from batch_rl.environments import factory

REPLAY_LOG_DIR = 'replay_logs'


@gin.configurable(denylist=['agent_name', 'base_dir'])
def create_online_runner(agent_name: str, base_dir: str,
                         environment_name: str = gin.REQUIRED,
                         seed: int = 0) -> OnlineRunner:
  """An online run of `agent_name` that logs its replay under `base_dir`.

  Args:
    agent_name: registered agent name (see batch_rl.agents.registry).
    base_dir: run directory.
    environment_name: e.g. 'atari:Pong', 'minatar:breakout',
      'classic:CartPole-v1'.
    seed: seeds TensorFlow, the agent, the environment and Dopamine's replay
      sampler (see `OnlineRunner`).
  """
  tf.random.set_seed(seed)
  env, spec = factory.create_environment(environment_name)
  agent = registry.create_agent(agent_name, spec, seed=seed)
  replay = LoggedReplayBuffer(
      os.path.join(base_dir, REPLAY_LOG_DIR), spec.observation_shape,
      spec.stack_size, spec.observation_dtype,
      update_horizon=agent.update_horizon, gamma=agent.gamma)
  run_info = {
      'agent_name': agent_name, 'environment': environment_name,
      'seed': seed, 'replay_capacity': replay.replay_capacity,
      'replay_logs': os.path.join(base_dir, REPLAY_LOG_DIR),
  }
  return OnlineRunner(base_dir=base_dir, agent=OnlineAgent(agent, replay),
                      environment=env, run_info=run_info, seed=seed)
