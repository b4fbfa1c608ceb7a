"""Flags and gin loading shared by the `train` entry points.

The flags are the original batch_rl release's; defining them here (not in
the `__main__` modules) lets every entry point import them once.
"""

import os

from absl import flags
from absl import logging
import gin

flags.DEFINE_string('agent_name', None, 'Agent to train, e.g. dqn, c51, '
                    'quantile, multi_head_dqn, multi_network_dqn, td3, bcq.')
flags.DEFINE_string('replay_dir', None, 'Directory of the fixed replay data '
                    '(Dopamine gz checkpoints, a `convert`ed directory, or '
                    'an RLDS dataset).')
flags.DEFINE_string('base_dir', None, 'Run directory: logs, checkpoints.')
flags.DEFINE_multi_string('gin_files', [], 'Gin config files (also looked '
                          'up under the repository\'s gin/).')
flags.DEFINE_multi_string('gin_bindings', [], 'Gin bindings, e.g. '
                          '"FixedReplayRunner.num_iterations=10".')
FLAGS = flags.FLAGS
# Dopamine logs every replay-buffer argument at INFO; -v 0 shows it again.
FLAGS.set_default('verbosity', logging.WARNING)

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'gin')


def load_gin_configs(gin_files, gin_bindings) -> None:
  """Parses gin files (searched also under the repository's gin/) and bindings.

  Raises:
    ValueError: with a one-line message naming the bad file or binding.
  """
  gin.add_config_file_search_path(GIN_DIR)
  gin.add_config_file_search_path(os.path.dirname(GIN_DIR))
  try:
    gin.parse_config_files_and_bindings(list(gin_files), list(gin_bindings))
  except (ValueError, OSError, SyntaxError) as e:
    message = str(e).strip().splitlines()[0]
    raise ValueError(f'bad gin configuration: {message}') from None


def require_flags(*names) -> None:
  """Raises ValueError naming every flag in `names` that was not given."""
  missing = [name for name in names if getattr(FLAGS, name) is None]
  if missing:
    raise ValueError(f'missing flags: --{", --".join(missing)}.')
