"""Which data an experiment trains on: the paper's subsampling ablations."""

import dataclasses
from typing import Optional, Sequence

import gin
import numpy as np


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataSelection:
  """Selects checkpoints, then a random fraction of their transitions.

  Attributes:
    checkpoints: explicit checkpoint suffixes (None: all found).
    first_k: keep only the first k checkpoints (the "first 10% of frames"
      low-quality data is first_k=5 of 50).
    last_k: keep only the last k checkpoints.
    fraction: keep this random fraction of all valid transitions (0.01 for the
      paper's 1% ablation); fixed for a run by `seed`.
    seed: seed of the random subset.
  """
  checkpoints: Optional[Sequence[int]] = None
  first_k: Optional[int] = None
  last_k: Optional[int] = None
  fraction: float = 1.0
  seed: int = 0

  def __post_init__(self):
    if self.first_k is not None and self.last_k is not None:
      raise ValueError('DataSelection: set first_k or last_k, not both.')
    for name in ('first_k', 'last_k'):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f'DataSelection.{name} must be >= 1, got {value}.')
    if not 0.0 < self.fraction <= 1.0:
      raise ValueError(
          f'DataSelection.fraction must be in (0, 1], got {self.fraction}.')

  def select_checkpoints(self, available: Sequence[int]) -> list[int]:
    """The chosen suffixes among `available` (sorted), with clear errors."""
    available = sorted(available)
    chosen = available
    if self.checkpoints is not None:
      missing = sorted(set(self.checkpoints) - set(available))
      if missing:
        raise ValueError(f'DataSelection.checkpoints {missing} not found; '
                         f'available: {available}.')
      chosen = sorted(self.checkpoints)
    if self.first_k is not None:
      chosen = chosen[:self.first_k]
    if self.last_k is not None:
      chosen = chosen[-self.last_k:]
    return chosen

  def subsample(self, indices: np.ndarray) -> np.ndarray:
    """A seeded random `fraction` of `indices` (at least one), sorted."""
    if self.fraction >= 1.0:
      return indices
    keep = max(1, int(round(self.fraction * len(indices))))
    rng = np.random.default_rng(self.seed)
    return np.sort(rng.choice(indices, size=keep, replace=False))

  def describe(self) -> str:
    parts = []
    if self.checkpoints is not None:
      parts.append(f'checkpoints={list(self.checkpoints)}')
    if self.first_k is not None:
      parts.append(f'first_{self.first_k}_checkpoints')
    if self.last_k is not None:
      parts.append(f'last_{self.last_k}_checkpoints')
    if self.fraction < 1.0:
      parts.append(f'random_{self.fraction:g}_of_transitions(seed={self.seed})')
    return ','.join(parts) or 'all'
