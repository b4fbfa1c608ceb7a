r"""Online agents that log every transition, as the DQN Replay Dataset was made.

  python -m batch_rl.log_data --base_dir=runs/cartpole_dqn_logger \
      --gin_files=gin/baselines/cartpole_dqn.gin
  python -m batch_rl.log_data --base_dir=runs/hopper_ddpg \
      --gin_files=gin/mujoco/ddpg.gin --gin_files=gin/baselines/mujoco.gin \
      --gin_bindings="create_online_runner.environment_name='mujoco:Hopper-v5'"

One command for discrete and continuous agents, with the flags of
`batch_rl.train` less --replay_dir; the agent comes from --agent_name or the
gin binding `create_agent.agent_name`. Both run the online loop in the one
Runner (`create_online_runner.*`, `Runner.*`, `OnlineAgent.*` bindings):
`metrics.csv`, `run_info.json`, `tensorboard/`, resumable `checkpoints/`,
and `replay_logs/` (Dopamine replay checkpoints 0, 1, ..., one per replay
capacity of slots added; `LoggedReplayBuffer.*` or, for continuous agents,
`LoggedEpisodeReplay.*` bindings).
"""

from absl import flags

from batch_rl import cli
from batch_rl import command_line

FLAGS = command_line.FLAGS
flags.adopt_module_key_flags(command_line)


def log_data(agent_name, base_dir: str, gin_files=(), gin_bindings=()):
  """Parses the gin configuration, then logs (or resumes logging).

  Returns:
    The metrics rows of every finished iteration.
  """
  # Imported here so `--help` answers without loading TensorFlow; the online
  # loop's configurables must exist before gin parses their bindings.
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  from batch_rl.baselines import logged_replay_buffer  # pylint: disable=g-import-not-at-top,unused-import
  from batch_rl.baselines import online_agent  # pylint: disable=g-import-not-at-top,unused-import
  from batch_rl.continuous import replay_writer  # pylint: disable=g-import-not-at-top,unused-import
  experiment.register_all_agents()
  command_line.load_gin_configs(list(gin_files), list(gin_bindings))
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
  return 0


if __name__ == '__main__':
  cli.run(main)
