"""What is in a replay directory: the `info` command's JSON summary."""

import functools
import os
from typing import Optional

import numpy as np
import tqdm

from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import episodes
from batch_rl.data import rlu
from batch_rl.data import transitions
from batch_rl.data import validation
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection


def _checkpoint_summary(arrays: ReplayArrays, returns: np.ndarray,
                        frame_shape, frame_dtype, stack_size: int,
                        update_horizon: int) -> dict:
  valid = transitions.valid_mask(arrays, stack_size, update_horizon)
  return {
      'capacity': arrays.capacity,
      'add_count': arrays.add_count,
      'stored_slots': arrays.num_stored,
      'valid_transitions': int(valid.sum()),
      'complete_episodes': int(len(returns)),
      'episode_return': _return_stats(returns),
      'observation_shape': list(frame_shape),
      'observation_dtype': str(frame_dtype),
      'action_dtype': str(arrays.action.dtype),
  }


def _checkpoint_beginnings(items, frame_readers) -> list[str]:
  """Per checkpoint, `episodes.how_checkpoint_begins` next to the one
  before it (suffixes N - 1 and N).

  TFDS datasets (no `frame_readers`) have no predecessors: RL Unplugged
  keeps each episode within one checkpoint.
  """
  beginnings = []
  for i, (b, current, _, _) in enumerate(items):
    a, previous, _, _ = items[i - 1] if i else (None, None, None, None)
    previous, after_gap = (episodes.checkpoint_before(a, previous, b)
                           if b in frame_readers else (None, False))
    beginnings.append(episodes.how_checkpoint_begins(
        previous, current,
        lambda a=a, b=b, previous=previous, current=current: (
            episodes.same_boundary_frame(
                episodes.newest_frame(previous, frame_readers[a]()),
                current, frame_readers[b]())), after_gap))
  return beginnings


def _return_stats(returns: np.ndarray) -> dict:
  if not len(returns):
    return {'mean': None, 'std': None, 'min': None, 'max': None}
  return {'mean': float(returns.mean()), 'std': float(returns.std()),
          'min': float(returns.min()), 'max': float(returns.max())}


def summarize(replay_dir: str, stack_size: int = 4,
              update_horizon: int = 1,
              tfds_data_dir: Optional[str] = None) -> dict:
  """JSON-ready summary of every checkpoint in `replay_dir` (never writes).

  Checkpoints are named by their suffix ('3') in every layout, so the
  summaries of a gz directory and of its conversion compare key by key.
  `tfds_data_dir`: the TFDS data directory of a `tfds:` name.

  Episodes are counted as played: one cut by a checkpoint boundary once,
  in the checkpoint where it ends (`complete_episodes`, `episode_return`);
  one cut off by the end of logging apart (`unfinished_episodes_at_end`).
  """
  frame_readers = {}  # Per checkpoint suffix; none for tfds (not needed).
  if rlu.is_tfds_dataset(replay_dir):
    layout = 'tfds'
    items = [(str(checkpoint), *rest) for checkpoint, *rest in
             rlu.summary_checkpoints(replay_dir, stack_size,
                                     rlu.TFDSReplayOptions(tfds_data_dir))]
  elif converted.is_converted(replay_dir):
    layout = 'compact'
    store = converted.open_store(replay_dir, DataSelection())
    items = [(str(converted.checkpoint_suffix(name)), a,
              a.observation.shape[1:], a.observation.dtype)
             for name, a in zip(store.names, store.checkpoints)]
    frame_readers = {suffix: lambda a=a: a.observation
                     for suffix, a, _, _ in items}
  else:
    layout = 'dopamine_gz'
    items = []
    for suffix in dopamine_replay.list_checkpoints(replay_dir):
      # Frames are read only to compare two checkpoints' boundary frames.
      arrays = dopamine_replay.read_arrays_without_frames(replay_dir, suffix)
      items.append((str(suffix), arrays, arrays.observation.shape[1:],
                    arrays.observation.dtype))
      frame_readers[str(suffix)] = functools.partial(
          dopamine_replay.read_array,
          dopamine_replay.store_filename(replay_dir, 'observation', suffix))
  validation.check_same_specs(
      (f'{replay_dir} checkpoint {suffix}', name,
       np.shape(getattr(arrays, name))[1:], getattr(arrays, name).dtype)
      for suffix, arrays, _, _ in items
      for name in dopamine_replay.STORE_ELEMENTS)
  all_returns, unfinished = episodes.logged_episode_returns(
      [arrays for _, arrays, _, _ in items],
      _checkpoint_beginnings(items, frame_readers))
  per_checkpoint = {
      suffix: _checkpoint_summary(arrays, returns, frame_shape, frame_dtype,
                                  stack_size, update_horizon)
      for (suffix, arrays, frame_shape, frame_dtype), returns
      in zip(items, all_returns)}
  returns = np.concatenate(all_returns)
  first = next(iter(per_checkpoint.values()))
  return {
      'replay_dir': (replay_dir if replay_dir.startswith(rlu.TFDS_PREFIX)
                     else os.path.abspath(replay_dir)),
      'layout': layout,
      'checkpoints': list(per_checkpoint),
      'num_checkpoints': len(items),
      'stored_slots': sum(c['stored_slots'] for c in per_checkpoint.values()),
      'valid_transitions': sum(
          c['valid_transitions'] for c in per_checkpoint.values()),
      'complete_episodes': int(len(returns)),
      'unfinished_episodes_at_end': int(unfinished),
      'episode_return': _return_stats(returns),
      'observation_shape': first['observation_shape'],
      'observation_dtype': first['observation_dtype'],
      'stack_size': stack_size,
      'update_horizon': update_horizon,
      'per_checkpoint': per_checkpoint,
  }


def verify(replay_dir: str, progress: bool = True) -> int:
  """Reads every byte of a gz replay directory's arrays; returns the bytes.

  gzip checks each file's CRC and length at its end; the stored slots of
  float arrays are checked for nan and inf chunk by chunk, so RAM stays at
  one chunk however large the frames. Raises ReplayDataError naming the
  first bad file, element and value.
  """
  suffixes = dopamine_replay.list_checkpoints(replay_dir)
  paths = {(suffix, name): dopamine_replay.store_filename(replay_dir, name,
                                                          suffix)
           for suffix in suffixes for name in dopamine_replay.STORE_ELEMENTS}
  total = sum(map(dopamine_replay.uncompressed_size_hint, paths.values()))
  with tqdm.tqdm(total=total, unit='B', unit_scale=True, desc='verify',
                 disable=not progress) as bar:
    for suffix in suffixes:
      add_count = dopamine_replay.read_small_elements(
          replay_dir, suffix)['add_count']
      for name in dopamine_replay.STORE_ELEMENTS:
        path = paths[suffix, name]
        dopamine_replay.stream_array(
            path, lambda chunk, offset, shape, path=path: _check_chunk(
                path, chunk, offset, shape, add_count, bar))
  return total


def _check_chunk(path: str, chunk: np.ndarray, offset: int, shape,
                 add_count: int, bar) -> None:
  """Finite values in the chunk's part of the stored slots, if floats."""
  bar.update(chunk.nbytes)
  if chunk.dtype.kind != 'f':
    return
  per_slot = int(np.prod(shape[1:], dtype=np.int64))
  stored_end = min(add_count, shape[0]) * per_slot - offset
  bad = validation.first_index(~np.isfinite(chunk[:max(0, stored_end)]))
  if bad is not None:
    index = np.unravel_index(offset + int(bad[0]), shape)
    raise ReplayDataError(
        f'{path}: [{", ".join(map(str, index))}] = {chunk[bad]!r}: values '
        'must be finite.')
