r"""Online agents that log every transition, as the DQN Replay Dataset was made.

  python -m batch_rl.log_data --base_dir=/tmp/dqn_cartpole \
      --gin_files=gin/baselines/cartpole_dqn.gin
  python -m batch_rl.log_data --agent_name=ddpg --base_dir=/tmp/hopper_ddpg \
      --gin_files=gin/mujoco/ddpg.gin \
      --gin_bindings="log_online_replay.env_name='Hopper-v5'"

One command for discrete and continuous agents, with the flags of
`batch_rl.train` less --replay_dir; the agent comes from --agent_name or the
gin binding `create_agent.agent_name`. The run directory gets
`replay_logs/` (Dopamine replay checkpoints 0, 1, ..., one per replay
capacity of slots added). Discrete agents run Dopamine's online loop in the
Runner (`create_online_runner.*`, `Runner.*` bindings; `metrics.csv`,
`run_info.json`, `tensorboard/`, resumable `checkpoints/`); continuous agents
(ddpg, td3 and their ensembles) run the TD3 reference loop of
`batch_rl.continuous.log_data` (`log_online_replay.*` bindings;
`episode_returns.csv`).
"""

from absl import flags

from batch_rl import cli
from batch_rl import command_line
from batch_rl.run_directory import RunDirectory

FLAGS = command_line.FLAGS
flags.adopt_module_key_flags(command_line)


def log_data(agent_name, base_dir: str, gin_files=(), gin_bindings=()):
  """Parses the gin configuration, then logs (or resumes logging).

  Returns:
    Discrete agents: the metrics rows of every finished iteration;
    continuous agents: the return of every logged episode.
  """
  # Imported here so `--help` answers without loading TensorFlow.
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  from batch_rl import continuous  # pylint: disable=g-import-not-at-top
  # Registers LoggedReplayBuffer and OnlineAgent with gin before parsing locks
  # the configuration (create_online_runner imports them otherwise).
  from batch_rl.baselines import logged_replay_buffer, online_agent  # pylint: disable=g-import-not-at-top,unused-import
  experiment.register_all_agents()
  command_line.load_gin_configs(list(gin_files), list(gin_bindings))
  agent_name = experiment.resolve_agent_name(agent_name)
  if agent_name in continuous.CONTINUOUS_AGENTS:
    from batch_rl.continuous import log_data as continuous_log  # pylint: disable=g-import-not-at-top
    return continuous_log.log_online_replay(base_dir, agent_name=agent_name)
  return experiment.create_online_runner(agent_name,
                                         base_dir).run_experiment()


def main(argv) -> int:
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags are '
                     '--name=value.')
  if FLAGS.replay_dir is not None:
    raise ValueError('--replay_dir is for offline training '
                     '(python -m batch_rl.train); online runs log their own.')
  command_line.require_flags('base_dir')
  log_data(FLAGS.agent_name, FLAGS.base_dir, FLAGS.gin_files,
           FLAGS.gin_bindings)
  print(f'logged replay in {RunDirectory(FLAGS.base_dir).replay_logs_path}')
  return 0


if __name__ == '__main__':
  cli.run(main)
