"""Which data an experiment trains on: the paper's subsampling ablations."""

import dataclasses
from typing import Optional, Sequence

import gin
import numpy as np

# Seeds the held-out draw apart from the `fraction` draw of the same seed.
_HOLDOUT_STREAM = 1


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataSelection:
  """Selects checkpoints, holds out a random set, subsamples the rest.

  Attributes:
    checkpoints: explicit checkpoint suffixes (None: all found).
    first_k: keep only the first k checkpoints (the "first 10% of frames"
      low-quality data is first_k=5 of 50).
    last_k: keep only the last k checkpoints.
    fraction: keep this random fraction of all valid transitions (0.01 for the
      paper's 1% ablation); fixed for a run by `seed`.
    seed: seed of the random subset and of the held-out set.
    holdout_fraction: hold out this random fraction of the valid transitions
      (before `fraction` applies) for offline model selection: training never
      sees them and `python -m batch_rl.policy_selection` measures TD errors
      on them.
  """
  checkpoints: Optional[Sequence[int]] = None
  first_k: Optional[int] = None
  last_k: Optional[int] = None
  fraction: float = 1.0
  seed: int = 0
  holdout_fraction: float = 0.0

  def __post_init__(self):
    if self.first_k is not None and self.last_k is not None:
      raise ValueError('DataSelection: set first_k or last_k, not both.')
    if self.checkpoints is not None and not len(self.checkpoints):
      raise ValueError('DataSelection.checkpoints is empty: name at least one '
                       'checkpoint, or None for all.')
    for name in ('first_k', 'last_k'):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f'DataSelection.{name} must be >= 1, got {value}.')
    if not 0.0 < self.fraction <= 1.0:
      raise ValueError(
          f'DataSelection.fraction must be in (0, 1], got {self.fraction}.')
    if not 0.0 <= self.holdout_fraction < 1.0:
      raise ValueError('DataSelection.holdout_fraction must be in [0, 1), '
                       f'got {self.holdout_fraction}.')

  @property
  def is_full(self) -> bool:
    """Whether the data variant is all the data (a held-out set aside)."""
    return (self.checkpoints is None and self.first_k is None and
            self.last_k is None and self.fraction >= 1.0)

  @property
  def label(self) -> str:
    """The data variant, e.g. 'all', '10%', 'first 5 ckpts, 1%'.

    The seed and the held-out set do not change it: runs that differ only
    in them are seeds of one variant.
    """
    parts = []
    if self.checkpoints is not None:
      parts.append(f'ckpts {",".join(map(str, self.checkpoints))}')
    if self.first_k is not None:
      parts.append(f'first {self.first_k} ckpts')
    if self.last_k is not None:
      parts.append(f'last {self.last_k} ckpts')
    if self.fraction < 1.0:
      parts.append(f'{100 * self.fraction:g}%')
    return ', '.join(parts) or 'all'

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

  def split_holdout(self, indices: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out): a seeded `holdout_fraction` of `indices` held out.

    Both keep the order of `indices`; held_out is empty at fraction 0.
    """
    if self.holdout_fraction == 0.0:
      return indices, indices[:0]
    size = max(1, int(round(self.holdout_fraction * len(indices))))
    rng = np.random.default_rng([self.seed, _HOLDOUT_STREAM])
    held_out = np.zeros(len(indices), dtype=bool)
    held_out[rng.choice(len(indices), size=size, replace=False)] = True
    return indices[~held_out], indices[held_out]

  def subsample(self, indices: np.ndarray) -> np.ndarray:
    """The training transitions among `indices`.

    `indices` less the held-out set, then a seeded random `fraction` of the
    rest (at least one), sorted.
    """
    indices = self.split_holdout(indices)[0]
    if self.fraction >= 1.0:
      return indices
    keep = max(1, int(round(self.fraction * len(indices))))
    rng = np.random.default_rng(self.seed)
    return np.sort(rng.choice(indices, size=keep, replace=False))
