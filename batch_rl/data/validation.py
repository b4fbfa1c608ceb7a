"""Value checks of replay data: garbage is named, never trained on.

Each check is one vectorised pass over an array that was read anyway and
raises `ReplayDataError` naming the source, the element, the first
offending index and its value, and what was expected:

  .../$store$_*_ckpt.3.gz: reward[1207] = nan: rewards must be finite.

Frames are checked only when they are floats (uint8 Atari frames cannot
hold a bad value), so the cost stays small next to reading the data.
"""

from typing import Optional

import numpy as np

from batch_rl.data.errors import ReplayDataError


def first_index(bad: np.ndarray) -> Optional[tuple]:
  """The first index (a tuple, C order) where `bad` holds, or None."""
  flat = np.flatnonzero(np.asarray(bad).reshape(-1))
  if not len(flat):
    return None
  return np.unravel_index(flat[0], np.shape(bad))


def _raise(source: str, element: str, array: np.ndarray, index: tuple,
           expected: str):
  where = ', '.join(str(int(i)) for i in index)
  value = np.asarray(array)[index]
  raise ReplayDataError(f'{source}: {element}[{where}] = {value!r}: '
                        f'{expected}.')


def check_finite(source: str, element: str, array) -> None:
  """Float arrays must hold no nan or inf (integer arrays pass)."""
  array = np.asarray(array)
  if array.dtype.kind != 'f':
    return
  index = first_index(~np.isfinite(array))
  if index is not None:
    _raise(source, element, array, index, f'{element} values must be finite')


def check_in_range(source: str, element: str, array, low: int,
                   high: Optional[int], expected: str) -> None:
  """Integer values must lie in [low, high) (high None: no upper bound)."""
  array = np.asarray(array)
  bad = array < low
  if high is not None:
    bad |= array >= high
  index = first_index(bad)
  if index is not None:
    _raise(source, element, array, index, expected)


def check_replay_values(arrays, source: str, check_frames: bool = True) -> None:
  """Checks the values of one checkpoint's `ReplayArrays`.

  In the stored slots: rewards finite, terminals 0 or 1, integer actions
  non-negative and float actions finite, float frames finite (when
  `check_frames`), indices inside the buffer, and the write cursor
  (add_count modulo capacity) inside `invalid_range`, where Dopamine always
  puts it.
  """
  capacity, stored = arrays.capacity, arrays.num_stored
  # Slots past the cursor of a buffer that never filled hold whatever
  # np.empty gave Dopamine: only the stored slots are data.
  check_finite(source, 'reward', arrays.reward[:stored])
  check_in_range(source, 'terminal', arrays.terminal[:stored], 0, 2,
                 'terminals must be 0 or 1')
  if np.asarray(arrays.action).dtype.kind in 'iu':
    check_in_range(source, 'action', arrays.action[:stored], 0, None,
                   'discrete actions must be >= 0')
  else:
    check_finite(source, 'action', arrays.action[:stored])
  # Only float frames can be non-finite; reading integer ones (7 GB decoded
  # from a compact 1M checkpoint) would check nothing.
  if check_frames and np.dtype(arrays.observation.dtype).kind == 'f':
    check_finite(source, 'observation', arrays.observation[:stored])
  for name in ('invalid_range', 'episode_end_indices'):
    indices = getattr(arrays, name)
    if indices is not None:
      check_in_range(source, name, indices, 0, capacity,
                     f'indices must lie in [0, {capacity}), the capacity')
  if len(arrays.invalid_range) and arrays.add_count > 0 and (
      arrays.cursor not in set(np.asarray(arrays.invalid_range).tolist())):
    raise ReplayDataError(
        f'{source}: add_count={arrays.add_count} puts the write cursor at '
        f'slot {arrays.cursor}, but invalid_range holds '
        f'{_span(arrays.invalid_range)}; Dopamine always marks the cursor '
        'invalid, so the counter or the range is corrupt.')


def _span(indices) -> str:
  indices = np.asarray(indices).tolist()
  if len(indices) <= 8:
    return str(indices)
  return f'[{indices[0]}, ..., {indices[-1]}] ({len(indices)} slots)'


def check_actions_below(arrays, num_actions: int, source: str) -> None:
  """Stored discrete actions must be < the environment's `num_actions`."""
  check_in_range(
      source, 'action', arrays.action[:arrays.num_stored], 0, num_actions,
      f'the environment has {num_actions} actions, so actions must lie in '
      f'[0, {num_actions})')


def check_same_specs(specs) -> None:
  """`specs`: (source, element, shape, dtype) per checkpoint and element;
  an element's per-slot shape and dtype must agree across checkpoints."""
  first = {}
  for source, element, shape, dtype in specs:
    shape, dtype = tuple(shape), np.dtype(dtype)
    if element not in first:
      first[element] = (source, shape, dtype)
      continue
    first_source, first_shape, first_dtype = first[element]
    if (shape, dtype) != (first_shape, first_dtype):
      raise ReplayDataError(
          f'{source}: {element} has per-slot shape {shape} and dtype {dtype},'
          f' but {first_source} has {first_shape} and {first_dtype}; one run '
          'holds one kind of data.')
