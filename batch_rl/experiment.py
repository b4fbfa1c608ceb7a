"""Builds runs from gin: environment, agent, data or logging replay, runner.

`create_runner` builds an offline run (a ReplayDataset opened once, trained
on by `OfflineTraining`); `create_online_runner` an online logging run (an
`OnlineAgent` whose replay logs every transition, `OnlineTraining`), for
discrete and continuous agents alike. Both run in the one `Runner`. The
agent's name comes from one place: `--agent_name` or the gin binding
`create_agent.agent_name` (they must agree when both given).
"""

from typing import Optional

import gin
import numpy as np
import tensorflow as tf

from batch_rl import command_line
from batch_rl import storage
from batch_rl.agents import base
from batch_rl.agents import registry
from batch_rl.data import replay_dataset
from batch_rl.data.selection import DataSelection
from batch_rl.environments import factory
from batch_rl.run_directory import AGENT_NAME
from batch_rl.run_directory import ENVIRONMENT
from batch_rl.run_directory import GIN_CONFIG
from batch_rl.run_directory import REPLAY_DIR
from batch_rl.run_directory import RunDirectory
from batch_rl.run_directory import SEED
from batch_rl.runner import training
from batch_rl.runner.runner import Runner

# The run_info.json keys `rebuild_agent` reads.
REBUILD_KEYS = (GIN_CONFIG, AGENT_NAME, ENVIRONMENT, SEED)


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


def resolve_agent_name(agent_name: Optional[str]) -> str:
  """The run's registered agent name: `--agent_name` and/or gin's binding
  `create_agent.agent_name` (registry.resolve_agent_name's errors)."""
  return registry.resolve_agent_name(agent_name, registry.bound_agent_name())


def _seeded_environment(environment_name: str, seed: int, configurable: str):
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f'{configurable}.seed={seed!r}: must be an integer, e.g. '
                     f'--gin_bindings={configurable}.seed=0.')
  tf.random.set_seed(seed)
  np.random.seed(seed)
  env, spec = factory.create_environment(environment_name)
  env.reset(seed=seed)
  env.action_space.seed(seed)
  return env, spec


@gin.configurable(denylist=['agent_name', 'replay_dir', 'base_dir'])
def create_runner(agent_name: Optional[str], replay_dir: str, base_dir: str,
                  environment_name: str = gin.REQUIRED, seed: int = 0,
                  batch_size: int = 32,
                  selection: Optional[DataSelection] = None,
                  distribution: str = 'default') -> Runner:
  """An offline run on `replay_dir`, evaluated online.

  Args:
    agent_name: registered agent name, or None for the gin binding
      `create_agent.agent_name` (see `resolve_agent_name`).
    replay_dir: fixed replay data (any layout batch_rl.data opens).
    base_dir: run directory.
    environment_name: e.g. 'atari:Pong', 'minatar:breakout',
      'classic:CartPole-v1' (the environment the data was logged in).
    seed: seeds TensorFlow, numpy, the environment and the batches.
    batch_size: transitions per gradient step (the global batch, split over
      the replicas).
    selection: which checkpoints / fraction of the data to train on
      (default: a DataSelection built under the gin config, so bindings
      like `DataSelection.first_k = 5` apply without binding this).
    distribution: 'default' (one device) or 'mirrored' (MirroredStrategy:
      each batch is split over the local GPUs).
  """
  selection = selection or DataSelection()
  agent_name = resolve_agent_name(agent_name)
  env, spec = _seeded_environment(environment_name, seed, 'create_runner')
  strategy = make_strategy(distribution)
  if batch_size % strategy.num_replicas_in_sync:
    raise ValueError(
        f'create_runner.batch_size={batch_size} must be a multiple of the '
        f'{strategy.num_replicas_in_sync} replicas.')
  agent = registry.create_agent(agent_name, spec, seed=seed, strategy=strategy)
  replay = replay_dataset.open_replay(replay_dir, spec.stack_size,
                                      agent.update_horizon, agent.gamma,
                                      selection)
  replay.check_frame_shape(spec.observation_shape, environment_name)
  if getattr(spec, 'num_actions', None) is not None:
    replay.check_actions(spec.num_actions)
  run_info = {
      AGENT_NAME: agent_name, ENVIRONMENT: environment_name,
      SEED: seed, REPLAY_DIR: replay_dir,
      'transitions': int(len(replay.training_indices)),
      'batch_size': batch_size,
      'replicas': strategy.num_replicas_in_sync,
  }
  return Runner(base_dir=base_dir, agent=agent, environment=env,
                training=training.OfflineTraining(replay, batch_size, seed),
                run_info=run_info, selection=selection, seed=seed)


def _logging_replay(agent_name: str, agent, spec, log_dir: str, seed: int):
  """The replay an online run learns from and logs through: for discrete
  agents Dopamine's buffer (the DQN Replay Dataset's layout), for continuous
  ones the episode writer, which keeps every transition (docs/CONTINUOUS.md).
  """
  if isinstance(agent.actions, base.ContinuousActions):
    from batch_rl.continuous.actor_critic import DDPGAgent  # pylint: disable=g-import-not-at-top
    from batch_rl.continuous.replay_writer import LoggedEpisodeReplay  # pylint: disable=g-import-not-at-top
    if not isinstance(agent, DDPGAgent):
      raise ValueError(f'--agent_name={agent_name}: continuous logging runs '
                       'train deterministic actor-critic agents (ddpg, td3 '
                       'and their ensembles).')
    if agent.update_horizon != 1:
      raise ValueError(
          f'{type(agent).__name__}.update_horizon={agent.update_horizon}: '
          'a continuous logging run samples one-step transitions; use 1.')
    return LoggedEpisodeReplay(log_dir, spec.observation_dim, spec.action_dim,
                               seed)
  # Imported here: dopamine-rl is only needed by discrete logging runs.
  from batch_rl.baselines.logged_replay_buffer import LoggedReplayBuffer  # pylint: disable=g-import-not-at-top
  return LoggedReplayBuffer(
      log_dir, spec.observation_shape, spec.stack_size,
      spec.observation_dtype, update_horizon=agent.update_horizon,
      gamma=agent.gamma)


@gin.configurable(denylist=['agent_name', 'base_dir'])
def create_online_runner(agent_name: Optional[str], base_dir: str,
                         environment_name: str = gin.REQUIRED,
                         seed: int = 0) -> Runner:
  """An online run that logs its replay under `base_dir`/replay_logs.

  Args:
    agent_name: registered agent name, or None for the gin binding.
    base_dir: run directory.
    environment_name: e.g. 'atari:Pong', 'minatar:breakout',
      'classic:CartPole-v1', 'mujoco:Hopper-v5'.
    seed: seeds TensorFlow, the agent, the environment and the replay's
      sampler (see `OnlineTraining`).
  """
  from batch_rl.baselines.online_agent import OnlineAgent  # pylint: disable=g-import-not-at-top
  if storage.is_url(base_dir):
    raise ValueError(
        f'--base_dir={base_dir}: a logging run writes its replay with plain '
        'file I/O (the data layer reads files), so it needs a filesystem '
        'path; copy the run to object storage afterwards if needed.')
  agent_name = resolve_agent_name(agent_name)
  env, spec = _seeded_environment(environment_name, seed,
                                  'create_online_runner')
  agent = registry.create_agent(agent_name, spec, seed=seed)
  replay_logs = RunDirectory(base_dir).replay_logs_path
  replay = _logging_replay(agent_name, agent, spec, replay_logs, seed)
  run_info = {
      AGENT_NAME: agent_name, ENVIRONMENT: environment_name,
      SEED: seed, 'replay_capacity': replay.replay_capacity,
      'replay_logs': replay_logs,
  }
  return Runner(base_dir=base_dir, agent=OnlineAgent(agent, replay),
                environment=env, training=training.OnlineTraining(seed),
                run_info=run_info, seed=seed)


def rebuild_agent(run_dir: str, gin_files=(), gin_bindings=(),
                  info: Optional[dict] = None):
  """(agent, spec): a run's agent, rebuilt as the run built it.

  Replaces the process's gin config with the run's own (run_info.json's
  gin_config), then applies `gin_files` and `gin_bindings` on top; the agent
  holds fresh weights until a checkpoint is restored into it. `info` is the
  run's run_info.json when the caller has read it already (with
  `required=REBUILD_KEYS` or more).

  Raises:
    ValueError: naming run_info.json when it lacks what a rebuild needs.
  """
  run = RunDirectory(run_dir)
  if info is None:
    info = run.read_run_info(REBUILD_KEYS, 'rebuilding the agent')
  register_all_agents()
  gin.clear_config()
  try:
    gin.parse_config(info[GIN_CONFIG])
  except command_line.GIN_PARSE_ERRORS + (ImportError,) as e:
    raise ValueError(f'{run.run_info_path}: {GIN_CONFIG} does not parse: '
                     f'{command_line.gin_error_line(e)}') from None
  command_line.load_gin_configs(gin_files, gin_bindings)
  env, spec = factory.create_environment(info[ENVIRONMENT])
  env.close()
  agent = registry.create_agent(info[AGENT_NAME], spec,
                                seed=int(info[SEED]))
  return agent, spec
