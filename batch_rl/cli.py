"""The one command-line convention of every batch_rl entry point.

Entry points define absl flags (plus --gin_files/--gin_bindings where a run is
configured) and end with `cli.run(main)`; commands with subcommands (`python
-m batch_rl.data info DIR`) keep their flags in a module `flags.FlagValues`
(so that entry points imported together never clash), take the subcommand
and other positional arguments after absl parsed the flags, and call
`cli.main_with_flags`. Both

* turns user errors (ValueError and its subclasses ReplayDataError and
  AnalysisError, OSError, gin's errors, TensorFlow's OpError) into one line
  `error: ...` and exit code 2; set BATCH_RL_TRACEBACK=1 to see the
  traceback instead;
* handles SIGINT and SIGTERM: during start-up the process stops at once;
  while a run is between its safe points (`deferred_signals`), the signal
  is recorded and the runner stops at its next train-call boundary, keeping
  the checkpoints of the iterations that finished. Either way the process
  prints one line and exits with 128 + the signal number (130 for SIGINT,
  143 for SIGTERM).

This module imports neither TensorFlow nor gin.
"""

import contextlib
import os
import re
import signal
import sys

from absl import app
from absl import flags

TRACEBACK_ENV = 'BATCH_RL_TRACEBACK'
USAGE_ERROR = 2
HELP_FLAGS = frozenset({'-h', '--help', '--helpshort', '--helpfull'})
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
  """A run stopped on a signal; `signum` is the signal's number."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum


class _SignalState:
  deferring = False
  received = None  # The first signal received while deferring.


def _handle(signum, unused_frame):
  if _SignalState.deferring:
    if _SignalState.received is None:
      _SignalState.received = signum
    return
  # Start-up or shutdown: nothing half-written to protect, stop now.
  sys.stdout.flush()
  print(f'stopped by {signal.Signals(signum).name} during start-up',
        file=sys.stderr, flush=True)
  os._exit(128 + signum)  # pylint: disable=protected-access


def install_signal_handlers() -> None:
  """Makes SIGINT and SIGTERM stop the process as the module docstring says."""
  for signum in _SIGNALS:
    signal.signal(signum, _handle)


@contextlib.contextmanager
def deferred_signals():
  """While inside, SIGINT/SIGTERM are only recorded (see `stop_requested`)."""
  _SignalState.deferring, _SignalState.received = True, None
  try:
    yield
  finally:
    _SignalState.deferring = False


def stop_requested():
  """The signal number received inside `deferred_signals`, or None."""
  return _SignalState.received


def is_user_error(error: BaseException) -> bool:
  """Whether `error` is shown as one `error:` line (else a traceback)."""
  if isinstance(error, (ValueError, OSError, SyntaxError)):
    return True  # Gin's parse errors are SyntaxErrors.
  if isinstance(error, RuntimeError) and str(error).startswith(
      'Required bindings for'):
    return True  # Gin's missing gin.REQUIRED binding.
  tf_errors = sys.modules.get('tensorflow.python.framework.errors_impl')
  return tf_errors is not None and isinstance(error, tf_errors.OpError)


_GIN_REQUIRED = re.compile(
    r'Required bindings for `(\S+)` not provided in config: \[(.*)\]')


def error_line(error: BaseException) -> str:
  """The first line of an error's message (gin appends its call chain);
  gin's missing required bindings are named as bindings to give."""
  lines = str(error).strip().splitlines()
  message = lines[0] if lines else type(error).__name__
  required = _GIN_REQUIRED.match(message)
  if required:
    function = required.group(1)
    names = [name.strip(" '") for name in required.group(2).split(',')]
    bindings = ', '.join(f'{function}.{name}' for name in names)
    message = (f'missing gin binding {bindings}: set it in a gin file or '
               f'with --gin_bindings="{function}.{names[0]}=..."')
  return f'error: {message}'


def call(main, argv) -> int:
  """main(argv) with the convention applied; returns the exit code."""
  try:
    return main(argv) or 0
  except Stopped as stopped:
    # First line only: gin appends its call chain to errors raised inside.
    print(str(stopped).strip().splitlines()[0], file=sys.stderr, flush=True)
    return 128 + stopped.signum
  except Exception as e:  # pylint: disable=broad-except
    if os.environ.get(TRACEBACK_ENV) or not is_user_error(e):
      raise
    print(error_line(e), file=sys.stderr, flush=True)
    return USAGE_ERROR


def parse_flags(flag_values: flags.FlagValues, argv) -> list[str]:
  """Parses `argv` (no program name) into `flag_values` from their
  defaults; returns the positional arguments."""
  flag_values.unparse_flags()
  return flag_values(['prog', *argv])[1:]


def main_with_flags(main, flag_values: flags.FlagValues, doc: str,
                    argv=None) -> int:
  """main(positional arguments) after parsing `flag_values`; --help prints
  `doc` and the flags. Returns the exit code (2 for bad flags)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if HELP_FLAGS & set(argv):
    print(doc.strip() + '\n\nflags:\n' + flag_values.get_help())
    return 0
  try:
    positional = parse_flags(flag_values, argv)
  except flags.Error as e:
    print(error_line(e), file=sys.stderr, flush=True)
    return USAGE_ERROR
  return call(main, positional)


def run_with_flags(main, flag_values: flags.FlagValues, doc: str) -> None:
  """`main_with_flags` as a program: signals handled, exits with its code."""
  install_signal_handlers()
  sys.exit(main_with_flags(main, flag_values, doc))


def run_app(main) -> None:
  """absl's app.run(main), `main` returning the exit code; a help flag
  prints absl's usage and exits 0 (absl's own exits 1)."""
  if HELP_FLAGS & set(sys.argv[1:]):
    app.usage(shorthelp='--helpfull' not in sys.argv[1:], writeto_stdout=True)
    sys.exit(0)
  app.run(lambda argv: sys.exit(main(argv)))


def run(main) -> None:
  """`run_app(main)` with signals handled and one-line user errors."""
  install_signal_handlers()
  run_app(lambda argv: call(main, argv))
