"""Child processes that stop with the process that started them."""

import ctypes
import signal

_PR_SET_PDEATHSIG = 1  # Linux's prctl option: a signal when the parent dies.


def die_with_parent() -> None:
  """In a child process: receive SIGTERM when its parent dies (Linux).

  Elsewhere (no prctl) this does nothing, and the child runs on to its end.
  Usable as subprocess's `preexec_fn` or a process pool's initializer.
  """
  try:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
  except (OSError, AttributeError):
    pass
