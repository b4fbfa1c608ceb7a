"""Flags and gin loading shared by the run entry points (train, log_data).

The flags are the original batch_rl release's; defining them here (not in
the `__main__` modules) lets every entry point import them once. An entry
point calls `flags.adopt_module_key_flags(command_line)` so that `--help`
lists them.
"""

import os
import tokenize

from absl import flags
from absl import logging
import gin

flags.DEFINE_string('agent_name', None, 'Registered agent name, e.g. dqn, '
                    'c51, quantile, multi_head_dqn, td3, bcq (default: the '
                    'gin binding create_agent.agent_name; both given must '
                    'agree).')
flags.DEFINE_string('replay_dir', None, 'Directory of the fixed replay data '
                    '(Dopamine gz checkpoints, a `convert`ed directory, or '
                    'an RLDS dataset).')
flags.DEFINE_string('base_dir', None, 'Run directory: logs, checkpoints.')
flags.DEFINE_multi_string('gin_files', [], 'Gin config files (also looked '
                          'up under the repository\'s gin/).')
flags.DEFINE_multi_string('gin_bindings', [], 'Gin bindings, e.g. '
                          '"Runner.num_iterations=10".')
flags.DEFINE_string('out', None, 'Output directory of policy_selection '
                    '(selection.csv), export_policy (the SavedModel) and '
                    'sweep (the study\'s output: a local directory, a '
                    'shared filesystem or a tf.io.gfile URL).')
FLAGS = flags.FLAGS
# Dopamine logs every replay-buffer argument at INFO; -v 0 shows it again.
FLAGS.set_default('verbosity', logging.WARNING)

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'gin')
# Where gin files are looked up: as given, then the repository's gin/ and root.
_GIN_SEARCH_PATH = ('', GIN_DIR, os.path.dirname(GIN_DIR))


def find_gin_file(name: str) -> str:
  """The path of gin file `name`, searched as given, then under the
  repository's gin/ and root.

  Raises:
    ValueError: naming the file and where it was looked for.
  """
  for folder in _GIN_SEARCH_PATH:
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      return path
  raise ValueError(f'gin file {name} not found (looked in the current '
                   "directory and the repository's gin/ and root).")


# What gin raises on a file or binding that does not parse; an unclosed
# bracket or quote reaches Python's tokenizer, which raises TokenError.
GIN_PARSE_ERRORS = (ValueError, OSError, SyntaxError, tokenize.TokenError)


def gin_error_line(error: Exception) -> str:
  """One line saying why gin could not parse a configuration."""
  if isinstance(error, tokenize.TokenError):
    return f'{error.args[0]} (an unclosed bracket or quote)'
  return str(error).strip().splitlines()[0]


def load_gin_configs(gin_files, gin_bindings) -> None:
  """Parses gin files (searched also under the repository's gin/) and bindings.

  Raises:
    ValueError: with a one-line message naming the bad file or binding.
  """
  try:
    paths = [find_gin_file(name) for name in gin_files]
  except ValueError as e:
    raise ValueError(f'bad gin configuration: {e}') from None
  for path in _GIN_SEARCH_PATH[1:]:  # For the files' own `include`s.
    gin.add_config_file_search_path(path)
  try:
    gin.parse_config_files_and_bindings(paths, list(gin_bindings))
  except GIN_PARSE_ERRORS as e:
    raise ValueError(f'bad gin configuration: {gin_error_line(e)}') from None


def require_flags(*names, flag_values: flags.FlagValues = FLAGS) -> None:
  """Raises ValueError naming every flag in `names` of `flag_values` that was
  not given or given empty (--out=, a list flag without items)."""
  missing = [name for name in names if not flag_values[name].value]
  if missing:
    raise ValueError(f'missing flags: --{", --".join(missing)}.')
