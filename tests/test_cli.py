"""The one command-line convention: absl flags, --help, one-line errors."""

import os
import re
import subprocess
import sys

from absl import flags
import gin
import pytest

from batch_rl import cli
from batch_rl import command_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARTPOLE_REPLAY = os.path.join(REPO, 'batch_rl', 'experiments', 'data',
                               'cartpole_dqn_replay')


def _run(*argv, env=None):
  return subprocess.run([sys.executable, '-m', *argv], cwd=REPO,
                        capture_output=True, text=True, check=False,
                        env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize('module, flags', [
    ('batch_rl.train', ('--agent_name', '--replay_dir', '--gin_bindings')),
    ('batch_rl.log_data', ('--agent_name', '--base_dir', '--gin_files')),
    ('batch_rl.data', ('--stack_size', '--update_horizon', '--checkpoints')),
    ('batch_rl.analysis', ('--base_dirs', '--out', '--reference')),
    ('batch_rl.policy_selection', ('--base_dirs', '--out', '--fqe_steps')),
    ('batch_rl.continuous.d4rl_import', ('--capacity', '--task')),
    ('batch_rl.sweep', ('--out', '--address', '--gpus_per_run')),
])
def test_help_lists_the_flags_of_every_entry_point(module, flags):
  result = _run(module, '--help')
  assert result.returncode == 0, result.stderr
  for flag in flags:
    assert flag in result.stdout, (module, result.stdout + result.stderr)


@pytest.mark.parametrize('argv, message', [
    (('batch_rl.data', 'info'), 'info takes REPLAY_DIR, got 0 arguments.'),
    (('batch_rl.data', '--stack_size=x', 'info', '.'),
     "flag --stack_size=x: invalid literal for int() with base 10: 'x'"),
    (('batch_rl.continuous.d4rl_import', 'missing.hdf5', 'out'),
     'missing.hdf5'),
    (('batch_rl.sweep', 'gin/studies/smoke.gin'), 'missing flag --out'),
    (('batch_rl.log_data', '--base_dir=x', '--replay_dir=y'),
     '--replay_dir is for offline training'),
])
def test_user_errors_are_one_line_and_exit_2(argv, message):
  result = _run(*argv)
  assert result.returncode == 2, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  assert message in lines[0]


def test_a_missing_required_gin_binding_is_one_line(tmp_path):
  argv = ('batch_rl.train', f'--replay_dir={CARTPOLE_REPLAY}',
          f'--base_dir={tmp_path}', '--gin_files=gin/classic/dqn.gin')
  result = _run(*argv)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip() == (
      'error: missing gin binding create_runner.environment_name: set it in '
      'a gin file or with --gin_bindings="create_runner.environment_name=..."')
  # The environment variable shows the traceback instead.
  result = _run(*argv, env={cli.TRACEBACK_ENV: '1'})
  assert result.returncode == 1 and 'Traceback' in result.stderr


def test_a_binding_cut_inside_brackets_is_a_bad_gin_configuration(capsys):
  # Python's tokenizer, not gin, sees the unclosed bracket (TokenError).
  def load(_):
    command_line.load_gin_configs([], ['Runner.num_iterations = (1,'])
  try:
    assert cli.call(load, []) == 2
  finally:
    gin.clear_config()
  assert capsys.readouterr().err == (
      'error: bad gin configuration: EOF in multi-line statement (an '
      'unclosed bracket or quote)\n')


def test_call_maps_user_errors_and_lets_bugs_through(capsys):
  def failing(error):
    def main(unused_argv):
      raise error
    return main

  assert cli.call(failing(ValueError('bad value\n  In call to x')), []) == 2
  assert capsys.readouterr().err == 'error: bad value\n'
  assert cli.call(failing(FileNotFoundError(2, 'No such file', 'f')), []) == 2
  assert "error: [Errno 2] No such file: 'f'" in capsys.readouterr().err
  assert cli.call(failing(cli.Stopped(15, 'stopped by SIGTERM')), []) == 143
  assert capsys.readouterr().err == 'stopped by SIGTERM\n'
  with pytest.raises(KeyError):
    cli.call(failing(KeyError('a bug')), [])
  with pytest.raises(RuntimeError):
    cli.call(failing(RuntimeError('a bug')), [])


def test_require_flags_counts_a_flag_given_empty_as_missing():
  values = flags.FlagValues()
  flags.DEFINE_string('out', None, 'output', flag_values=values)
  flags.DEFINE_list('base_dirs', None, 'inputs', flag_values=values)
  flags.DEFINE_string('agent', 'DQN', 'agent', flag_values=values)
  cli.parse_flags(values, ['--out=', '--base_dirs='])
  with pytest.raises(ValueError, match=re.escape(
      'missing flags: --out, --base_dirs.')):
    command_line.require_flags('out', 'base_dirs', 'agent',
                               flag_values=values)
  cli.parse_flags(values, ['--out=o', '--base_dirs=a,b'])
  command_line.require_flags('out', 'base_dirs', 'agent', flag_values=values)
