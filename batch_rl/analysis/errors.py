"""The one error type the analysis layer raises for bad input."""


class AnalysisError(ValueError):
  """A run log, reference table or option is missing or malformed.

  The message always names the offending file (or flag) and what was expected
  instead.
  """
