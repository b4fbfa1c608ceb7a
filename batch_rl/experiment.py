"""Builds an offline experiment from gin: environment, agent, data, runner."""

import zlib
from typing import Optional

import gin
import numpy as np
import tensorflow as tf

from batch_rl.agents import registry
from batch_rl.data import pipeline
from batch_rl.data import transitions
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection
from batch_rl.environments import factory
from batch_rl.runner.fixed_replay_runner import FixedReplayRunner


def register_all_agents() -> None:
  """Imports the agent modules, which register their names."""
  import batch_rl.agents  # pylint: disable=g-import-not-at-top,unused-import
  import batch_rl.continuous  # pylint: disable=g-import-not-at-top,unused-import


def make_strategy(distribution: str) -> tf.distribute.Strategy:
  """'default': one device; 'mirrored': data-parallel over local GPUs."""
  if distribution == 'default':
    return tf.distribute.get_strategy()
  if distribution == 'mirrored':
    return tf.distribute.MirroredStrategy()
  raise ValueError(f"create_runner.distribution must be 'default' or "
                   f"'mirrored', got {distribution!r}.")


def iteration_seed(seed: int, iteration: int) -> int:
  """Seed of iteration `iteration`'s batches: fixed, distinct per iteration."""
  return zlib.crc32(f'{seed}/{iteration}'.encode())


@gin.configurable
def create_runner(agent_name: str, replay_dir: str, base_dir: str,
                  environment_name: str = gin.REQUIRED, seed: int = 0,
                  batch_size: int = 32,
                  selection: DataSelection = DataSelection(),
                  distribution: str = 'default',
                  agent_label: Optional[str] = None,
                  runner_fn=FixedReplayRunner) -> FixedReplayRunner:
  """An offline run of `agent_name` on `replay_dir`, evaluated online.

  Args:
    agent_name: registered agent name (see batch_rl.agents.registry).
    replay_dir: fixed replay data (any layout batch_rl.data opens).
    base_dir: run directory.
    environment_name: e.g. 'atari:Pong', 'minatar:breakout',
      'classic:CartPole-v1' (the environment the data was logged in).
    seed: seeds TensorFlow, numpy, the environment and the batches.
    batch_size: transitions per gradient step.
    selection: which checkpoints / fraction of the data to train on.
    distribution: 'default' (one device) or 'mirrored' (MirroredStrategy:
      the global batch is split over the local GPUs, each replica fed by
      its own seeded input pipeline).
    agent_label: the agent's name in reports (default `agent_name`); tells
      apart variants of one agent class, e.g. 'ensemble_dqn' and 'rem' are
      both `multi_head_dqn`.
    runner_fn: the runner class.
  """
  tf.random.set_seed(seed)
  np.random.seed(seed)
  env, spec = factory.create_environment(environment_name)
  env.reset(seed=seed)
  env.action_space.seed(seed)
  strategy = make_strategy(distribution)
  agent = registry.create_agent(agent_name, spec, seed=seed, strategy=strategy)
  store, indices = pipeline.open_replay(replay_dir, spec.stack_size,
                                        agent.update_horizon, selection)
  if store.frame_shape != tuple(spec.observation_shape):
    raise ReplayDataError(
        f'{replay_dir}: frames have shape {store.frame_shape}, but '
        f'{environment_name} emits {tuple(spec.observation_shape)}; is this '
        'the replay of that environment?')

  # One device reads stacks of batches: one iterator read per stack.
  stacked = strategy.num_replicas_in_sync == 1

  def make_dataset(iteration):
    if stacked:
      return pipeline.transition_dataset(
          store, batch_size, spec.stack_size, agent.update_horizon,
          agent.gamma, iteration_seed(seed, iteration), indices,
          elements=transitions.TRAINING_ELEMENTS, stacked=True)
    return strategy.distribute_datasets_from_function(
        lambda context: pipeline.transition_dataset(
            store, context.get_per_replica_batch_size(batch_size),
            spec.stack_size, agent.update_horizon, agent.gamma,
            iteration_seed(seed, iteration) + context.input_pipeline_id,
            indices, elements=transitions.TRAINING_ELEMENTS))

  run_info = {
      'agent_name': agent_name, 'agent_label': agent_label or agent_name,
      'environment': environment_name,
      'seed': seed, 'replay_dir': replay_dir,
      'data_selection': selection.describe(),
      'transitions': int(len(indices)), 'batch_size': batch_size,
      'replicas': strategy.num_replicas_in_sync,
  }
  return runner_fn(base_dir=base_dir, agent=agent, environment=env,
                   make_dataset=make_dataset, run_info=run_info,
                   stacked_batches=stacked)
