"""ReplayDataset and its pipeline: Dopamine's transitions, uniform, seeded,
subsampled, resumable."""

import os
import time

import numpy as np
import pytest
import tensorflow as tf

from batch_rl.agents import train_loop
from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import pipeline
from batch_rl.data import replay_dataset
from batch_rl.data import replay_store
from batch_rl.data import sources
from batch_rl.data import transitions
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection
from conftest import fill_dopamine_buffer

GAMMA = 0.9


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  """Three checkpoints of different sizes, wrapped and not, n-step data."""
  path = tmp_path_factory.mktemp('run')
  buffers = {}
  for suffix, (capacity, adds) in enumerate([(60, 40), (64, 150), (48, 200)]):
    buffers[suffix] = fill_dopamine_buffer(
        capacity, adds, update_horizon=3, gamma=GAMMA, seed=suffix,
        short_episodes=True, episode_end_prob=0.03)
    buffers[suffix].save(str(path), suffix)
  return str(path), buffers


@pytest.fixture(scope='module')
def converted_dirs(run_dir, tmp_path_factory):
  """{layout: the run in that layout}."""
  out = str(tmp_path_factory.mktemp('converted') / 'compact')
  converted.convert(run_dir[0], out, progress=False)
  return {'gz': run_dir[0], 'compact': out}


def _expected(buffers, suffix, local):
  buffer = buffers[suffix]
  batch = buffer.sample_transition_batch(1, indices=[local])
  names = [e.name for e in buffer.get_transition_elements(1)]
  return {n: v[0] for n, v in zip(names, batch)}


@pytest.mark.parametrize('layout', ['gz', 'compact'])
def test_every_global_index_gives_dopamines_transition(run_dir, converted_dirs,
                                                       layout):
  _, buffers = run_dir
  store = sources.open_store(converted_dirs[layout], DataSelection())
  assert store.memory_mapped == (layout != 'gz')
  indices = store.valid_indices(4, 3)
  read = store.window_reader(4, 3)
  windows, local = read(tf.constant(indices, tf.int64))
  batch = transitions.transitions_from_windows(windows, local, 4, 3, GAMMA)
  suffixes = np.searchsorted(store.starts, indices, side='right') - 1
  expected_count = sum(
      sum(b.is_valid_transition(i) for i in range(b._replay_capacity))
      for b in buffers.values())
  assert len(indices) == expected_count
  for row, (suffix, index) in enumerate(zip(suffixes, indices)):
    want = _expected(buffers, suffix, index - store.starts[suffix])
    for name, value in want.items():
      got = batch[name][row].numpy()
      assert got.dtype == value.dtype, name
      np.testing.assert_array_equal(got, value, err_msg=f'{name} @ {row}')


@pytest.mark.parametrize('layout', ['gz', 'compact'])
def test_dataset_batches_are_seeded_and_uniform(converted_dirs, layout):
  source = converted_dirs[layout]
  replay = replay_dataset.open_replay(source, 4, 3, GAMMA)
  store, indices = replay.store, replay.training_indices

  def batches(seed):
    return replay.batches(32, seed, batches_per_call=2,
                          elements=transitions.TRANSITION_ELEMENTS).unbatch()

  dataset = batches(7)
  first = [b['indices'].numpy() for b in dataset.take(5)]
  again = [b['indices'].numpy() for b in batches(7).take(5)]
  other = [b['indices'].numpy() for b in batches(8).take(5)]
  np.testing.assert_array_equal(np.stack(first), np.stack(again))
  assert not np.array_equal(np.stack(first), np.stack(other))
  batch = next(iter(dataset))
  assert batch['state'].shape == (32, 5, 4, 4)
  assert batch['state'].dtype == tf.uint8
  # Uniform over valid transitions: with 150 batches every one shows up,
  # and no count is far from the mean.
  locals_seen = np.concatenate(
      [b['indices'].numpy() for b in dataset.take(150)])
  valid_locals = indices - store.starts[
      np.searchsorted(store.starts, indices, side='right') - 1]
  assert set(locals_seen) <= set(valid_locals)
  assert set(locals_seen) == set(valid_locals)


def test_selection_first_last_and_fraction(run_dir):
  replay_dir, _ = run_dir
  full = sources.open_store(replay_dir, DataSelection())
  first = sources.open_store(replay_dir, DataSelection(first_k=1))
  last = sources.open_store(replay_dir, DataSelection(last_k=2))
  assert first.num_slots == 60
  assert last.num_slots == 64 + 48
  valid = full.valid_indices(4, 1)
  tenth = DataSelection(fraction=0.1, seed=3).subsample(valid)
  assert len(tenth) == round(0.1 * len(valid))
  assert set(tenth) <= set(valid)
  np.testing.assert_array_equal(
      tenth, DataSelection(fraction=0.1, seed=3).subsample(valid))
  assert not np.array_equal(
      tenth, DataSelection(fraction=0.1, seed=4).subsample(valid))
  replay = replay_dataset.open_replay(
      replay_dir, 4, 1, GAMMA, DataSelection(fraction=0.1, seed=3))
  np.testing.assert_array_equal(replay.training_indices, tenth)
  sampled = np.concatenate([
      stack['indices'].numpy().ravel() for stack in replay.batches(
          4, seed=0, elements=('indices',)).take(2)])
  assert len(set(sampled)) > 1


def test_holdout_is_disjoint_from_training_and_seeded(run_dir):
  selection = DataSelection(holdout_fraction=0.2, fraction=0.5, seed=1)
  replay = replay_dataset.open_replay(run_dir[0], 4, 3, GAMMA, selection)
  valid = replay.store.valid_indices(4, 3)
  held_out = replay.held_out_indices
  assert len(held_out) == round(0.2 * len(valid))
  assert not set(held_out) & set(replay.training_indices)
  assert len(replay.training_indices) == round(
      0.5 * (len(valid) - len(held_out)))
  # The data layer's global indices are those the training stream samples.
  stack = next(iter(replay.batches(8, seed=0, elements=('indices',))))
  locals_seen = stack['indices'].numpy().ravel()
  train_locals = replay.training_indices - replay.store.starts[
      np.searchsorted(replay.store.starts, replay.training_indices,
                      side='right') - 1]
  assert set(locals_seen) <= set(train_locals)


def test_a_stream_started_at_call_c_continues_the_uninterrupted_one(run_dir):
  """What lets a resumed run read exactly an uninterrupted run's batches."""
  replay = replay_dataset.open_replay(run_dir[0], 4, 3, GAMMA)
  whole = [s['indices'].numpy() for s in replay.batches(
      8, seed=5, batches_per_call=3, elements=('indices',)).take(7)]
  resumed = [s['indices'].numpy() for s in replay.batches(
      8, seed=5, first_call=4, batches_per_call=3,
      elements=('indices',)).take(3)]
  np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[4:]))
  assert replay_dataset.calls_per_iteration(10, 3) == 4
  assert replay_dataset.calls_per_iteration(9, 3) == 3


def test_episodes_have_global_slots_and_ordered_reads_follow_indices(run_dir):
  replay = replay_dataset.open_replay(run_dir[0], 4, 1, GAMMA)
  episodes = replay.episodes()
  assert episodes and all(e.slots.dtype.kind == 'i' for e in episodes)
  starts = np.array([e.slots[0] for e in episodes])
  assert (starts >= 0).all() and (starts < replay.store.num_slots).all()
  # Each checkpoint's episodes cover slots of that checkpoint only.
  owner = np.searchsorted(replay.store.starts, starts, side='right') - 1
  ends = np.array([e.slots[-1] for e in episodes])
  np.testing.assert_array_equal(
      owner, np.searchsorted(replay.store.starts, ends, side='right') - 1)
  indices = replay.training_indices[::7]
  read = np.concatenate([b['indices'].numpy()
                         for b in replay.read(indices, batch_size=5)])
  np.testing.assert_array_equal(
      read, indices - replay.store.starts[owner_of(replay, indices)])


def owner_of(replay, indices):
  return np.searchsorted(replay.store.starts, indices, side='right') - 1


@pytest.mark.parametrize('kwargs, message', [
    ({'first_k': 1, 'last_k': 1}, 'not both'),
    ({'fraction': 0.0}, 'fraction'),
    ({'first_k': 0}, 'first_k'),
    ({'checkpoints': []}, 'DataSelection.checkpoints is empty: name at least '
     'one checkpoint, or None for all.'),
])
def test_selection_rejects_bad_values(kwargs, message):
  with pytest.raises(ValueError, match=message):
    DataSelection(**kwargs)


def test_selection_of_missing_checkpoint(run_dir):
  with pytest.raises(ValueError, match=r'\[9\] not found'):
    sources.open_store(run_dir[0], DataSelection(checkpoints=[0, 9]))


def test_data_without_a_valid_transition_is_named(tmp_path):
  fill_dopamine_buffer(50, 0).save(str(tmp_path), 0)
  fill_dopamine_buffer(50, 0).save(str(tmp_path), 1)
  message = (f'{tmp_path}/checkpoint 0 and 1 more: no valid '
             'transition for stack_size=4, update_horizon=1 (too few steps '
             'stored, or a selection that keeps none).')
  with pytest.raises(ReplayDataError) as error:
    replay_dataset.open_replay(str(tmp_path), 4, 1, GAMMA)
  assert str(error.value) == message
  with pytest.raises(ReplayDataError) as error:
    pipeline.transition_dataset(
        sources.open_store(str(tmp_path), DataSelection()), 8)
  assert str(error.value) == message


def test_convert_resumes_and_never_writes_into_source(run_dir, tmp_path):
  replay_dir, _ = run_dir
  before = sorted(os.listdir(replay_dir))
  out = str(tmp_path / 'out')
  assert converted.convert(replay_dir, out, suffixes=[0], progress=False) == [0]
  mtime = os.stat(os.path.join(out, 'ckpt_0', 'frames.zst')).st_mtime_ns
  converted.convert(replay_dir, out, progress=False)
  assert os.stat(os.path.join(out, 'ckpt_0',
                              'frames.zst')).st_mtime_ns == mtime
  assert sorted(d for d in os.listdir(out) if d.startswith('ckpt_')) == [
      'ckpt_0', 'ckpt_1', 'ckpt_2']
  assert sorted(os.listdir(replay_dir)) == before
  with pytest.raises(ReplayDataError, match='outside the replay directory'):
    converted.convert(replay_dir, os.path.join(replay_dir, 'x'))


def test_convert_refuses_an_output_reached_through_a_link_into_the_source(
    run_dir, tmp_path):
  replay_dir, _ = run_dir
  before = sorted(os.listdir(replay_dir))
  link = tmp_path / 'link'
  os.symlink(replay_dir, link)
  with pytest.raises(ReplayDataError, match='outside the replay directory'):
    converted.convert(replay_dir, str(link / 'out'), progress=False)
  assert sorted(os.listdir(replay_dir)) == before


def test_convert_reports_truncated_source(run_dir, tmp_path):
  replay_dir, buffers = run_dir
  broken = tmp_path / 'broken'
  os.makedirs(broken)
  buffers[1].save(str(broken), 0)
  path = dopamine_replay.checkpoint_filename(
      str(broken), '$store$_observation', 0)
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) // 2])
  with pytest.raises(ReplayDataError, match='observation_ckpt.0.gz'):
    converted.convert(str(broken), str(tmp_path / 'out'), progress=False)
  assert not os.path.exists(tmp_path / 'out' / 'ckpt_0')


def test_rlds_export_feeds_the_same_transitions(tmp_path):
  """Dopamine gz -> RLDS -> pipeline gives the source's transitions, less
  those Dopamine samples from the padding after a cut episode."""
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  from batch_rl.data import rlu  # pylint: disable=g-import-not-at-top
  source = fill_dopamine_buffer(400, 150, update_horizon=3, gamma=GAMMA,
                                short_episodes=True, episode_end_prob=0.03)
  assert not source.is_full()  # So every stored episode is exported.
  assert not source._store['terminal'][source.cursor() - 1]  # pylint: disable=protected-access
  os.makedirs(tmp_path / 'replay')
  source.save(str(tmp_path / 'replay'), 0)
  path = rlds_io.export_to_rlds(str(tmp_path / 'replay'), str(tmp_path / 'rlds'),
                                stack_size=4, progress=False)
  assert rlu.is_tfds_dataset(path)
  replay = replay_dataset.open_replay(path, 4, 3, GAMMA)
  store, indices = replay.store, replay.training_indices
  windows, local = store.window_reader(4, 3)(tf.constant(indices, tf.int64))
  batch = transitions.transitions_from_windows(windows, local, 4, 3, GAMMA)
  cuts = {i for i in source.episode_end_indices
          if not source._store['terminal'][i]}  # pylint: disable=protected-access
  valid = [i for i in range(source._replay_capacity)
           if source.is_valid_transition(i) and
           not cuts & set(range(i - 3, i))]
  assert len(valid) < sum(map(source.is_valid_transition,
                              range(source._replay_capacity)))
  want = source.sample_transition_batch(len(valid), indices=valid)

  def rows(state, action, reward, next_state, terminal):
    return sorted(
        (s.tobytes(), int(a), round(float(r), 5), n.tobytes(), int(t))
        for s, a, r, n, t in zip(state, action, reward, next_state, terminal))

  assert rows(*(batch[k].numpy() for k in (
      'state', 'action', 'reward', 'next_state', 'terminal'))) == rows(
          want[0], want[1], want[2], want[3], want[6])


@pytest.mark.parametrize('jit_compile', [True, False])
def test_dataset_batches_equal_dopamines_transitions(run_dir, jit_compile):
  replay_dir, buffers = run_dir
  store = sources.open_store(replay_dir, DataSelection(checkpoints=[1]))
  dataset = pipeline.transition_dataset(
      store, 16, 4, 3, GAMMA, seed=3, jit_compile=jit_compile,
      batches_per_call=2).unbatch()
  for batch in dataset.take(4):
    for row, local in enumerate(batch['indices'].numpy()):
      for name, value in _expected(buffers, 1, local).items():
        np.testing.assert_array_equal(batch[name][row].numpy(), value,
                                      err_msg=name)


def _store(frame_shape, dtype, num=64):
  return ReplayStore.from_arrays([dopamine_replay.ReplayArrays(
      observation=np.zeros((num, *frame_shape), dtype),
      action=np.zeros(num, np.int32), reward=np.zeros(num, np.float32),
      terminal=np.zeros(num, np.uint8), add_count=num,
      invalid_range=np.zeros(0, np.int64))])


@pytest.mark.parametrize('frame_shape, dtype, batch_size, stack, expected', [
    ((11,), np.float32, 256, 1, 128),  # Hopper-sized rows: the cap.
    ((84, 84), np.uint8, 32, 4, 8),  # Atari: 5 slots of 7,065 bytes.
    ((84, 84), np.uint8, 512, 4, 1),  # One batch is over the budget.
])
def test_auto_stacks_fit_the_byte_budget(frame_shape, dtype, batch_size,
                                         stack, expected):
  store = _store(frame_shape, dtype)
  count = pipeline.auto_batches_per_call(store, batch_size, stack, 1)
  assert count == expected
  window_bytes = batch_size * (stack + 1) * (
      np.dtype(dtype).itemsize * np.prod(frame_shape) + 9)
  assert count == 1 or count * window_bytes <= pipeline.STACK_BYTES
  if count < pipeline.MAX_BATCHES_PER_CALL:  # Twice as many would not fit.
    assert 2 * count * window_bytes > pipeline.STACK_BYTES


def test_dataset_yields_auto_stacks_of_batches():
  store = _store((3,), np.float32)
  kwargs = dict(batch_size=4, stack_size=1, update_horizon=1, seed=1)
  stack = next(iter(pipeline.transition_dataset(store, **kwargs)))
  assert stack['reward'].shape == [pipeline.MAX_BATCHES_PER_CALL, 4]
  small = next(iter(pipeline.transition_dataset(store, batches_per_call=3,
                                                **kwargs)))
  assert small['reward'].shape == [3, 4]
  spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, stack)
  assert train_loop.whole_stacks(128, spec) == 128
  assert train_loop.whole_stacks(130, spec) == 256


@pytest.mark.parametrize('kwargs, message', [
    (dict(batch_size=0), 'batch_size=0: must be at least 1.'),
    (dict(batch_size=4, batches_per_call=-2),
     'batches_per_call=-2: must be at least 1.'),
    (dict(batch_size=4, read_parallel_calls=-1),
     'read_parallel_calls=-1: must be at least 1.'),
])
def test_dataset_rejects_empty_batches_and_stacks(kwargs, message):
  with pytest.raises(ValueError, match=message):
    pipeline.transition_dataset(_store((3,), np.float32), stack_size=1,
                                **kwargs)


def test_parallel_host_reads_give_the_same_batches(converted_dirs):
  store = sources.open_store(converted_dirs['compact'], DataSelection())
  assert store.memory_mapped

  def stacks(read_parallel_calls):
    dataset = pipeline.transition_dataset(
        store, 8, update_horizon=3, gamma=GAMMA, seed=3, batches_per_call=2,
        read_parallel_calls=read_parallel_calls)
    return [{k: v.numpy() for k, v in stack.items()}
            for stack in dataset.take(6)]

  one, three = stacks(1), stacks(3)
  for a, b in zip(one, three):
    assert a.keys() == b.keys()
    for name in a:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert pipeline.default_read_parallel_calls() >= 1


def test_host_reads_release_resident_pages_every_release_every_reads(
    converted_dirs, monkeypatch):
  store = sources.open_store(converted_dirs['compact'], DataSelection())
  indices = tf.constant(store.valid_indices(4, 3)[:6], tf.int64)
  read = store.window_reader(4, 3)
  monkeypatch.setattr(replay_store, 'RELEASE_EVERY', 10)
  released = []
  release_pages = store.release_pages
  monkeypatch.setattr(store, 'release_pages',
                      lambda: released.append(release_pages()))
  for reads in range(1, 6):
    windows, _ = read(indices)
    assert len(released) == reads // 2, reads  # At 12 reads, not 6.
  np.testing.assert_array_equal(  # Released pages read again alike.
      windows['observation'], read(indices)[0]['observation'])


def test_a_pipeline_that_waits_reads_ahead_a_bounded_number_of_calls(
    converted_dirs, monkeypatch):
  """Phases of reading faster than the host reads, then pauses (a training
  run evaluating; tf.data's AUTOTUNE prefetch depth doubled at each, to 64
  stacks here): after a pause the pipeline has read ahead at most its
  prefetch depth, the assembly's parallel calls (one per core) and the host
  reads in flight."""
  store = sources.open_store(converted_dirs['compact'], DataSelection())
  calls = []
  read_windows = store._read_windows

  def slow_read(*args):
    calls.append(1)
    time.sleep(0.01)
    return read_windows(*args)

  monkeypatch.setattr(store, '_read_windows', slow_read)
  stacks = iter(pipeline.transition_dataset(store, 4, batches_per_call=1,
                                            update_horizon=3))
  consumed = 0
  for _ in range(7):
    for _ in range(40):
      next(stacks)
    consumed += 40
    time.sleep(0.5)
  assert len(calls) - consumed <= pipeline.max_calls_ahead()
