"""What is in a replay directory: the `info` command's JSON summary."""

import os

import numpy as np

from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import transitions
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.selection import DataSelection


def episode_returns(arrays: ReplayArrays) -> np.ndarray:
  """Undiscounted returns of the complete episodes stored in a checkpoint.

  The oldest episode of a wrapped buffer was partly overwritten and the
  newest may be unfinished: neither is complete, so neither counts.
  """
  slots = arrays.chronological_slots()
  end_positions = np.flatnonzero(arrays.chronological_episode_ends())
  if not len(end_positions):
    return np.zeros(0, dtype=np.float64)
  cumulative = np.concatenate(
      [[0.0], np.cumsum(np.asarray(arrays.reward)[slots].astype(np.float64))])
  totals = np.diff(cumulative[end_positions + 1])
  if not arrays.has_wrapped:  # The first episode starts at slot 0: complete.
    totals = np.concatenate([[cumulative[end_positions[0] + 1]], totals])
  return totals


def _checkpoint_summary(arrays: ReplayArrays, frame_shape, frame_dtype,
                        stack_size: int, update_horizon: int) -> dict:
  returns = episode_returns(arrays)
  valid = transitions.valid_mask(arrays, stack_size, update_horizon)
  return {
      'capacity': arrays.capacity,
      'add_count': arrays.add_count,
      'stored_slots': arrays.num_stored,
      'valid_transitions': int(valid.sum()),
      'complete_episodes': int(len(returns)),
      'observation_shape': list(frame_shape),
      'observation_dtype': str(frame_dtype),
      'action_dtype': str(arrays.action.dtype),
      '_returns': returns,
  }


def _return_stats(returns: np.ndarray) -> dict:
  if not len(returns):
    return {'mean': None, 'std': None, 'min': None, 'max': None}
  return {'mean': float(returns.mean()), 'std': float(returns.std()),
          'min': float(returns.min()), 'max': float(returns.max())}


def summarize(replay_dir: str, stack_size: int = 4,
              update_horizon: int = 1) -> dict:
  """JSON-ready summary of every checkpoint in `replay_dir` (never writes).

  Checkpoints are named by their suffix ('3') in both layouts, so the
  summaries of a gz directory and of its conversion compare key by key.
  """
  per_checkpoint = {}
  if converted.is_converted(replay_dir):
    store = converted.open_store(replay_dir, DataSelection())
    items = [(str(converted.checkpoint_suffix(name)), a,
              a.observation.shape[1:], a.observation.dtype)
             for name, a in zip(store.names, store.checkpoints)]
  else:
    items = []
    for suffix in dopamine_replay.list_checkpoints(replay_dir):
      shape, dtype = dopamine_replay.read_array_header(
          dopamine_replay.checkpoint_filename(
              replay_dir, dopamine_replay.STORE_PREFIX + 'observation',
              suffix))
      small = {
          name: dopamine_replay.read_array(
              dopamine_replay.checkpoint_filename(
                  replay_dir, dopamine_replay.STORE_PREFIX + name, suffix))
          for name in ('action', 'reward', 'terminal')
      }
      # Frames are not needed for the summary: a shape-only stand-in keeps
      # the 7 GB observation array of an Atari checkpoint on disk.
      frames = np.broadcast_to(np.zeros((), dtype), shape)
      arrays = ReplayArrays(
          observation=frames,
          **small, **dopamine_replay.read_small_elements(replay_dir, suffix))
      arrays.validate(dopamine_replay.checkpoint_filename(
          replay_dir, dopamine_replay.STORE_PREFIX + '*', suffix))
      items.append((str(suffix), arrays, shape[1:], dtype))
  all_returns = []
  for suffix, arrays, frame_shape, frame_dtype in items:
    summary = _checkpoint_summary(arrays, frame_shape, frame_dtype,
                                  stack_size, update_horizon)
    returns = summary.pop('_returns')
    all_returns.append(returns)
    summary['episode_return'] = _return_stats(returns)
    per_checkpoint[suffix] = summary
  returns = np.concatenate(all_returns)
  first = next(iter(per_checkpoint.values()))
  return {
      'replay_dir': os.path.abspath(replay_dir),
      'layout': ('compact' if converted.is_converted(replay_dir)
                 else 'dopamine_gz'),
      'checkpoints': list(per_checkpoint),
      'num_checkpoints': len(items),
      'stored_slots': sum(c['stored_slots'] for c in per_checkpoint.values()),
      'valid_transitions': sum(
          c['valid_transitions'] for c in per_checkpoint.values()),
      'complete_episodes': int(len(returns)),
      'episode_return': _return_stats(returns),
      'observation_shape': first['observation_shape'],
      'observation_dtype': first['observation_dtype'],
      'stack_size': stack_size,
      'update_horizon': update_horizon,
      'per_checkpoint': per_checkpoint,
  }
