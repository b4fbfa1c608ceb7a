"""One agent seed -> the distinct seeds of its initializers and generators."""

from typing import Optional

import numpy as np


class SeedStream:
  """Distinct, reproducible integer seeds for initializers and generators.

  Built from None, it draws nondeterministic seeds.
  """

  def __init__(self, seed: Optional[int]):
    self._rng = np.random.default_rng(seed)

  def __call__(self) -> int:
    return int(self._rng.integers(2**31 - 1))
