"""The one error type the data layer raises for bad input."""


class ReplayDataError(ValueError):
  """A replay file or directory is missing, corrupt or inconsistent.

  The message always names the offending file (or directory) and what was
  expected instead.
  """
