"""Our checkpoint reader samples exactly what dopamine-rl's buffer samples."""

import dataclasses
import gzip
import os
import pickle
import re

import numpy as np
import pytest
from dopamine.replay_memory import circular_replay_buffer

from batch_rl.data import dopamine_replay
from batch_rl.data.errors import ReplayDataError
from conftest import fill_dopamine_buffer

SCENARIOS = {
    # name: (capacity, num_adds, stack_size, update_horizon, extra kwargs)
    'not_full': (60, 40, 4, 1, {}),
    'wrapped': (50, 137, 4, 1, {}),
    'wrapped_nstep': (50, 137, 4, 3, {}),
    'short_episodes': (64, 200, 4, 1, {'short_episodes': True}),
    'short_episodes_nstep': (64, 200, 4, 5, {'short_episodes': True}),
    'episode_end_cuts': (64, 300, 4, 3, {'episode_end_prob': 0.05}),
    'no_stack': (40, 95, 1, 1, {}),
}


def _dopamine_and_ours(tmp_path, scenario):
  capacity, num_adds, stack, horizon, kwargs = SCENARIOS[scenario]
  buffer = fill_dopamine_buffer(capacity, num_adds, stack, horizon, 0.9,
                                **kwargs)
  buffer.save(str(tmp_path), 3)
  ours = dopamine_replay.load_checkpoint(str(tmp_path), 3, stack_size=stack,
                                         update_horizon=horizon, gamma=0.9)
  return buffer, ours


@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_same_valid_transitions_and_batches_as_dopamine(tmp_path, scenario):
  buffer, ours = _dopamine_and_ours(tmp_path, scenario)
  capacity = buffer._replay_capacity
  for index in range(-2, capacity + 2):
    assert ours.is_valid_transition(index) == buffer.is_valid_transition(
        index), index
  indices = [i for i in range(capacity) if buffer.is_valid_transition(i)]
  assert indices, 'scenario must have valid transitions'
  expected = buffer.sample_transition_batch(len(indices), indices=indices)
  actual = ours.sample_transition_batch(len(indices), indices=indices)
  names = [e.name for e in buffer.get_transition_elements(len(indices))]
  assert list(ours.get_transition_elements()) == names
  for name, want, got in zip(names, expected, actual):
    assert got.dtype == want.dtype, name
    assert got.shape == want.shape, name
    np.testing.assert_array_equal(got, want, err_msg=name)


def test_short_episode_states_hold_zero_frames_from_padding(tmp_path):
  buffer, ours = _dopamine_and_ours(tmp_path, 'short_episodes')
  # The first step of every episode is stacked on 3 zero (padding) frames.
  terminal = buffer._store['terminal']
  starts = [i for i in ours.valid_indices
            if not ours.arrays.observation[(i - 1) % len(terminal)].any()]
  assert starts
  state = ours.sample_transition_batch(len(starts), indices=starts)[0]
  assert not state[..., :3].any()
  assert state[..., 3].all()


def test_uniform_sampling_draws_only_valid_indices(tmp_path):
  _, ours = _dopamine_and_ours(tmp_path, 'wrapped')
  rng = np.random.default_rng(0)
  indices = ours.sample_transition_batch(4000, rng=rng)[-1]
  assert set(indices) == set(ours.valid_indices)


def test_written_checkpoint_loads_in_dopamine(tmp_path):
  buffer = fill_dopamine_buffer(50, 137, episode_end_prob=0.05)
  os.makedirs(tmp_path / 'a')  # Dopamine's save() silently skips a missing dir.
  buffer.save(str(tmp_path / 'a'), 0)
  arrays = dopamine_replay.read_arrays(str(tmp_path / 'a'), 0)
  dopamine_replay.write_checkpoint(str(tmp_path / 'b'), 7, arrays)
  assert sorted(os.listdir(tmp_path / 'a')) == sorted(
      f.replace('.7.', '.0.') for f in os.listdir(tmp_path / 'b'))
  reloaded = circular_replay_buffer.OutOfGraphReplayBuffer(
      (5, 4), 4, 50, batch_size=8)
  reloaded.load(str(tmp_path / 'b'), 7)
  assert reloaded.add_count == buffer.add_count
  assert reloaded.episode_end_indices == buffer.episode_end_indices
  np.testing.assert_array_equal(reloaded.invalid_range, buffer.invalid_range)
  for name, array in buffer._store.items():
    np.testing.assert_array_equal(reloaded._store[name], array)


def _corrupt(path, how):
  if how == 'missing':
    os.remove(path)
  elif how == 'truncated':
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
  elif how == 'garbage':
    open(path, 'wb').write(b'not a gzip file at all')
  elif how == 'not_npy':
    with gzip.open(path, 'wb') as f:
      f.write(b'plain text, not np.save output')


@pytest.mark.parametrize('how', ['missing', 'truncated', 'garbage', 'not_npy'])
def test_bad_file_errors_name_the_file(tmp_path, how):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  path = dopamine_replay.checkpoint_filename(
      str(tmp_path), '$store$_reward', 0)
  _corrupt(path, how)
  before = {f: os.stat(tmp_path / f).st_mtime_ns for f in os.listdir(tmp_path)}
  with pytest.raises(ReplayDataError, match='reward_ckpt.0.gz'):
    dopamine_replay.read_arrays(str(tmp_path), 0)
  after = {f: os.stat(tmp_path / f).st_mtime_ns for f in os.listdir(tmp_path)}
  assert before == after  # Reading never writes into the dataset.


def test_read_array_into_names_the_file_and_both_shapes_once(tmp_path):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  path = dopamine_replay.checkpoint_filename(
      str(tmp_path), '$store$_reward', 0)
  dtype = dopamine_replay.read_array(path).dtype
  with pytest.raises(ReplayDataError) as error:
    dopamine_replay.read_array_into(path, np.empty(49, dtype))
  assert str(error.value) == (f'{path}: holds a {dtype} array of shape (50,), '
                              f'expected {dtype} of shape (49,).')
  with pytest.raises(ValueError, match='`out` is not C-contiguous'):
    dopamine_replay.read_array_into(path, np.empty(100, dtype)[::2])


def _gzip_npy_bytes(path, edit):
  """Rewrites the gzip file `path` (a complete gzip stream) with
  edit(its np.save bytes)."""
  with gzip.open(path, 'rb') as f:
    data = f.read()
  with gzip.open(path, 'wb') as f:
    f.write(edit(data))


_READERS = {
    'read_array': dopamine_replay.read_array,
    'read_array_into': lambda path: dopamine_replay.read_array_into(
        path, np.empty(50, np.float32)),
    'stream_array': lambda path: dopamine_replay.stream_array(
        path, lambda *unused: None),
    'check_gzip_size': dopamine_replay.check_gzip_size,
}


@pytest.mark.parametrize('reader, message', [
    ('read_array', 'not an np.save array, or cut short (EOF: reading array '
     'data, expected 200 bytes got 160).'),
    ('read_array_into', 'truncated or corrupt gzip file (data ends after 160 '
     'of 200 bytes).'),
    ('stream_array', 'truncated or corrupt gzip file (array data ends '
     'early).'),
    ('check_gzip_size', 'truncated or corrupt gzip file (its trailer records '
     '288 bytes modulo 2**32, the array needs 328).'),
])
def test_array_data_cut_short_inside_the_gzip_stream_is_named(
    tmp_path, reader, message):
  """A writer that died while producing the np.save bytes but closed its
  gzip stream: every reader names the file (the gzip CRC is intact)."""
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  path = dopamine_replay.store_filename(str(tmp_path), 'reward', 0)
  _gzip_npy_bytes(path, lambda data: data[:-40])
  with pytest.raises(ReplayDataError) as error:
    _READERS[reader](path)
  assert str(error.value) == f'{path}: {message}'


def test_bytes_after_the_array_are_found_by_verify_and_the_trailer(tmp_path):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  path = dopamine_replay.store_filename(str(tmp_path), 'reward', 0)
  _gzip_npy_bytes(path, lambda data: data + b'xx')
  with pytest.raises(ReplayDataError, match=re.escape(
      f'{path}: holds bytes after its float32 array of shape (50,) (corrupt, '
      'or not written by np.save).')):
    _READERS['stream_array'](path)
  with pytest.raises(ReplayDataError, match=re.escape(
      f'{path}: truncated or corrupt gzip file (its trailer records 330 bytes '
      'modulo 2**32, the array needs 328).')):
    dopamine_replay.check_gzip_size(path)


@pytest.mark.parametrize('indices, message', [
    ([3, 9], 'holds a pickled list, not a pickled set of slot indices, as '
     'Dopamine writes.'),
    (np.array([3, 9]), 'not a pickled set of slot indices, as Dopamine '
     'writes, or cut short (refusing to unpickle numpy.core.multiarray._reconstruct).'),
])
def test_episode_end_indices_other_than_a_set_are_named(tmp_path, indices,
                                                        message):
  fill_dopamine_buffer(50, 60, episode_end_prob=0.1).save(str(tmp_path), 0)
  path = dopamine_replay.checkpoint_filename(str(tmp_path),
                                             'episode_end_indices', 0)
  with gzip.open(path, 'wb') as f:
    pickle.dump(indices, f)
  with pytest.raises(ReplayDataError) as error:
    dopamine_replay.read_arrays(str(tmp_path), 0)
  assert str(error.value) == f'{path}: {message}'


def test_sampling_errors_name_the_checkpoint_and_the_sizes(tmp_path):
  fill_dopamine_buffer(50, 0).save(str(tmp_path), 0)
  empty = dopamine_replay.load_checkpoint(str(tmp_path), 0)
  with pytest.raises(ReplayDataError) as error:
    empty.sample_transition_batch(4)
  assert str(error.value) == (
      f'{dopamine_replay.store_filename(str(tmp_path), "*", 0)}: no valid '
      'transition to sample for stack_size=4, update_horizon=1 '
      '(add_count=0).')
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 1)
  full = dopamine_replay.load_checkpoint(str(tmp_path), 1)
  with pytest.raises(ValueError, match='got 3 indices for batch_size 4'):
    full.sample_transition_batch(4, indices=full.valid_indices[:3])


def test_without_frames_reads_the_rest_and_finds_a_cut_frame_file(tmp_path):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  full = dopamine_replay.read_arrays(str(tmp_path), 0)
  light = dopamine_replay.read_arrays_without_frames(str(tmp_path), 0)
  for field in dataclasses.fields(full):
    if field.name != 'observation':
      np.testing.assert_array_equal(getattr(light, field.name),
                                    getattr(full, field.name))
  assert light.observation.shape == full.observation.shape
  assert light.observation.dtype == full.observation.dtype
  assert light.observation.strides == (0, 0, 0)  # No memory, no frame read.
  path = dopamine_replay.checkpoint_filename(
      str(tmp_path), '$store$_observation', 0)
  _corrupt(path, 'truncated')
  with pytest.raises(ReplayDataError,
                     match='observation_ckpt.0.gz: truncated or corrupt'):
    dopamine_replay.read_arrays_without_frames(str(tmp_path), 0)


def _rewrite(tmp_path, name, array):
  with gzip.open(dopamine_replay.checkpoint_filename(
      str(tmp_path), name, 0), 'wb') as f:
    np.save(f, array)


@pytest.mark.parametrize('name, array, message', [
    ('$store$_action', np.zeros(49, np.int32), 'mismatched lengths'),
    ('$store$_reward', np.zeros(50, np.complex64), 'unexpected dtype'),
    ('$store$_terminal', np.zeros((50, 2), np.uint8), 'has shape'),
    ('add_count', np.zeros(3, np.int64),
     r'add_count_ckpt.0.gz: expected an integer scalar >= 0 \(the transitions '
     r'ever added\), got int64 \(3,\)'),
    ('add_count', np.array(-3), 'add_count_ckpt.0.gz: expected an integer '
     'scalar >= 0 .* got int64 -3'),
    ('invalid_range', np.array([60]), 'invalid_range'),
    ('invalid_range', np.zeros((2, 2), np.int64),
     r'ckpt.0.gz: invalid_range has shape \(2, 2\), expected a list of '
     r'indices in \[0, 50\)'),
    ('$store$_observation', np.zeros(50, np.uint8),
     r'ckpt.0.gz: \$store\$_observation has shape \(50,\), expected '
     r'\(capacity, \*frame_shape\)'),
])
def test_inconsistent_arrays_are_reported(tmp_path, name, array, message):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  _rewrite(tmp_path, name, array)
  with pytest.raises(ReplayDataError, match=message):
    dopamine_replay.read_arrays(str(tmp_path), 0)


def test_unexpected_frame_shape_and_dtype(tmp_path):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  with pytest.raises(ReplayDataError, match=r'shape \(5, 4\), expected \(84, 84\)'):
    dopamine_replay.read_arrays(str(tmp_path), 0, observation_shape=(84, 84))
  with pytest.raises(ReplayDataError, match='dtype uint8, expected float32'):
    dopamine_replay.read_arrays(str(tmp_path), 0, observation_dtype='float32')


def test_directory_without_checkpoints(tmp_path):
  with pytest.raises(ReplayDataError, match='no Dopamine replay checkpoints'):
    dopamine_replay.list_checkpoints(str(tmp_path))
  with pytest.raises(ReplayDataError, match='does not exist'):
    dopamine_replay.list_checkpoints(str(tmp_path / 'nope'))
