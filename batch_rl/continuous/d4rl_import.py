"""Imports D4RL or Minari HDF5 datasets as Dopamine replay checkpoints.

Two layouts are read:
  * D4RL: flat arrays `observations`, `actions`, `rewards`, `terminals`,
    `timeouts` and optionally `next_observations`, one row per step.
    An episode ends at a terminal, a timeout, or where
    `next_observations[i] != observations[i + 1]`. Without
    `next_observations` the final observation of a cut episode is unknown,
    so its last step is dropped and its observation ends the episode. Where
    the data ends in neither a terminal nor a timeout, its last episode is
    cut off by the end of the data, not by a time limit: it is stored
    unfinished (`EpisodeReplayWriter.close`), and `data info` reports it
    as `unfinished_episodes_at_end`, not as a complete episode (D4RL's
    `sequence_dataset` yields episodes only at a terminal or a timeout, so
    it leaves this one out too).
  * Minari: groups `episode_*` holding `observations` (T + 1 rows),
    `actions`, `rewards`, `terminations` and `truncations` (T rows).
Actions must lie in [-1, 1], the agents' action box; pass the task's
`action_bounds` to rescale data recorded in its own units.

  python -m batch_rl.continuous.d4rl_import hopper-medium-v2.hdf5 OUT_DIR \
      [--capacity=1000000] [--task=Hopper-v5]

(--task rescales actions from that task's bounds).
"""

import dataclasses
import os
from typing import Iterator, Optional, Sequence

from absl import flags
import h5py
import numpy as np

from batch_rl import cli
from batch_rl.continuous.replay_writer import EpisodeReplayWriter
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.dopamine_replay import write_checkpoint
from batch_rl.data.errors import ReplayDataError

D4RL_KEYS = ('observations', 'actions', 'rewards', 'terminals', 'timeouts')
MINARI_KEYS = ('observations', 'actions', 'rewards', 'terminations',
               'truncations')
_ACTION_TOLERANCE = 1e-5


@dataclasses.dataclass
class _Episode:
  """Steps of one episode and, unless its last step is terminal, the
  observation that follows that step."""
  observations: np.ndarray
  actions: np.ndarray
  rewards: np.ndarray
  terminal: bool
  final_observation: Optional[np.ndarray]
  unfinished: bool = False  # Cut off by the end of the data.


def _read(group: h5py.Group, key: str, path: str) -> np.ndarray:
  if key not in group:
    raise ReplayDataError(
        f'{path}: missing key {group.name.rstrip("/")}/{key}; expected '
        f'D4RL keys {", ".join(D4RL_KEYS)} (optional next_observations) or '
        f'Minari episode groups with {", ".join(MINARI_KEYS)}.')
  item = group[key]
  if not isinstance(item, h5py.Dataset):
    raise ReplayDataError(f'{path}: {item.name} is a group, expected an '
                          'array (dict observations are not supported).')
  return item[()]


def _check_rows(path: str, arrays: dict, expected: int, where: str) -> None:
  for key, array in arrays.items():
    if len(array) != expected:
      raise ReplayDataError(
          f'{path}: {where}{key} has {len(array)} rows, expected {expected} '
          f'(one per step).')


def _check_2d(path: str, name: str, array: np.ndarray) -> None:
  if array.ndim != 2:
    raise ReplayDataError(f'{path}: {name} has shape {array.shape}, expected '
                          f'(steps, dim).')


def _d4rl_episodes(f: h5py.File, path: str) -> Iterator[_Episode]:
  data = {key: _read(f, key, path) for key in D4RL_KEYS}
  if 'next_observations' in f:
    data['next_observations'] = _read(f, 'next_observations', path)
  num_steps = len(data['observations'])
  _check_rows(path, data, num_steps, '')
  for key in ('observations', 'actions', 'next_observations'):
    if key in data:
      _check_2d(path, key, data[key])
  if not num_steps:
    return
  observations = data['observations']
  terminals = data['terminals'].astype(bool)
  ends = terminals | data['timeouts'].astype(bool)
  unfinished = not ends[-1]
  ends[-1] = True
  next_observations = data.get('next_observations')
  if next_observations is not None:
    ends[:-1] |= np.any(next_observations[:-1] != observations[1:], axis=1)
  start = 0
  for last in np.flatnonzero(ends):
    stop = last + 1
    if terminals[last]:
      final = None
    elif next_observations is not None:
      final = next_observations[last]
    else:  # The step's next observation is unknown: it only ends the episode.
      final, stop = observations[last], last
    yield _Episode(observations[start:stop], data['actions'][start:stop],
                   data['rewards'][start:stop], bool(terminals[last]), final,
                   unfinished and last == num_steps - 1)
    start = last + 1


def _minari_episodes(f: h5py.File, path: str) -> Iterator[_Episode]:
  names = sorted((n for n in f if n.startswith('episode_')),
                 key=lambda n: int(n.split('_')[-1]))
  for name in names:
    group = f[name]
    data = {key: _read(group, key, path) for key in MINARI_KEYS}
    observations = data.pop('observations')
    _check_2d(path, f'{name}/observations', observations)
    _check_2d(path, f'{name}/actions', data['actions'])
    num_steps = len(data['actions'])
    _check_rows(path, data, num_steps, f'{name}/')
    if len(observations) != num_steps + 1:
      raise ReplayDataError(
          f'{path}: {name}/observations has {len(observations)} rows, '
          f'expected {num_steps + 1} (steps + final observation).')
    terminal = bool(num_steps and data['terminations'][-1])
    yield _Episode(observations[:-1], data['actions'], data['rewards'],
                   terminal, None if terminal else observations[-1])


def _scaled_actions(path: str, actions: np.ndarray,
                    action_bounds: Optional[Sequence]) -> np.ndarray:
  actions = np.asarray(actions, np.float64)
  if action_bounds is not None:
    low, high = (np.asarray(b, np.float64) for b in action_bounds)
    if low.shape != actions.shape[1:]:
      raise ReplayDataError(
          f'{path}: actions have {actions.shape[1]} dimensions, the action '
          f'bounds {low.shape}; are they the bounds of the data\'s task '
          '(--task)?')
    actions = 2.0 * (actions - low) / (high - low) - 1.0
  if len(actions) and np.abs(actions).max() > 1.0 + _ACTION_TOLERANCE:
    raise ReplayDataError(
        f'{path}: actions range over [{actions.min():.4g}, '
        f'{actions.max():.4g}], outside the agents\' [-1, 1]; pass the '
        'task\'s action_bounds=(low, high) to rescale them.')
  return np.clip(actions, -1.0, 1.0).astype(np.float32)


def _episodes(path: str) -> Iterator[_Episode]:
  try:
    f = h5py.File(path, 'r')
  except (OSError, ValueError) as e:
    raise ReplayDataError(f'{path}: not a readable HDF5 file ({e}).') from None
  with f:
    is_minari = any(name.startswith('episode_') for name in f)
    yield from (_minari_episodes(f, path) if is_minari
                else _d4rl_episodes(f, path))


def import_hdf5(path: str, capacity: int = 1_000_000,
                action_bounds: Optional[Sequence] = None
                ) -> list[ReplayArrays]:
  """Reads a D4RL or Minari HDF5 file into replay checkpoints (in memory).

  Args:
    path: the .hdf5 file.
    capacity: slots per checkpoint.
    action_bounds: (low, high) of the task, if actions are not in [-1, 1].

  Returns:
    The checkpoints, in order; together they make every step with a known
    next observation a sampleable transition.
  """
  checkpoints = []
  writer = final_observation = None
  for episode in _episodes(path):
    if writer is None:
      writer = EpisodeReplayWriter(
          capacity, episode.observations.shape[1], episode.actions.shape[1],
          lambda _, arrays: checkpoints.append(arrays))
    actions = _scaled_actions(path, episode.actions, action_bounds)
    last = len(actions) - 1
    for i, (observation, action, reward) in enumerate(
        zip(episode.observations, actions, episode.rewards)):
      writer.add_transition(observation, action, reward,
                            terminal=episode.terminal and i == last)
    if episode.unfinished:
      final_observation = episode.final_observation
    elif episode.final_observation is not None:
      writer.truncate_episode(episode.final_observation)
  if writer is None:
    raise ReplayDataError(f'{path}: holds no episode.')
  writer.close(final_observation)
  return checkpoints


def import_to_replay_dir(path: str, replay_dir: str,
                         capacity: int = 1_000_000,
                         action_bounds: Optional[Sequence] = None
                         ) -> list[int]:
  """Imports `path` and writes it to `replay_dir`; returns the suffixes."""
  checkpoints = import_hdf5(path, capacity, action_bounds)
  os.makedirs(replay_dir, exist_ok=True)
  for suffix, arrays in enumerate(checkpoints):
    write_checkpoint(replay_dir, suffix, arrays)
  return list(range(len(checkpoints)))


FLAGS = flags.FlagValues()
flags.DEFINE_integer('capacity', 1_000_000, 'Slots per checkpoint.',
                     flag_values=FLAGS)
flags.DEFINE_string('task', None, "Rescale actions from this task's bounds, "
                    'e.g. Hopper-v5.', flag_values=FLAGS)


def _run(positional) -> int:
  if len(positional) != 2:
    raise ValueError(f'expected HDF5_FILE REPLAY_DIR, got {positional}.')
  hdf5_file, replay_dir = positional
  bounds = None
  if FLAGS.task is not None:
    from batch_rl.continuous import environments  # pylint: disable=g-import-not-at-top
    _, spec = environments.make_continuous_environment(FLAGS.task)
    bounds = (spec.action_low, spec.action_high)
  suffixes = import_to_replay_dir(hdf5_file, replay_dir, FLAGS.capacity,
                                  bounds)
  print(f'wrote checkpoints {suffixes} to {replay_dir}')
  return 0


def main(argv=None) -> int:
  return cli.main_with_flags(_run, FLAGS, __doc__, argv)


if __name__ == '__main__':
  cli.run_with_flags(_run, FLAGS, __doc__)
