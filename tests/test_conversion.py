"""Conversion into the compact layout and the automatic gz cache.

Dopamine's own batches for the converted data are checked in
test_pipeline.py (every valid index, each layout); here: the writer, resume,
parallel workers, a full disk, another source, the cache and its lock.
"""

import errno
import os
import threading

import numpy as np
import pytest
import tensorflow as tf
import zstandard

from batch_rl.data import __main__ as cli
from batch_rl.data import compact
from batch_rl.data import converted
from batch_rl.data import gz_cache
from batch_rl.data import sources
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection
from conftest import fill_dopamine_buffer
from conftest import wait_until_told_to_wait_for_the_lock


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  """Two checkpoints of 84x84 frames: one wrapped, one not full."""
  path = tmp_path_factory.mktemp('run')
  for suffix, (capacity, adds) in enumerate([(1000, 1300), (600, 400)]):
    fill_dopamine_buffer(capacity, adds, frame_shape=(84, 84), seed=suffix,
                         episode_end_prob=0.01).save(str(path), suffix)
  return str(path)


@pytest.fixture(scope='module')
def other_run_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp('other_run')
  fill_dopamine_buffer(50, 70, seed=9).save(str(path), 0)
  return str(path)


def _tree(path):
  """{relative file path: bytes} of a directory."""
  files = {}
  for root, _, names in os.walk(path):
    for name in names:
      full = os.path.join(root, name)
      with open(full, 'rb') as f:
        files[os.path.relpath(full, path)] = f.read()
  return files


def _same_transitions(store_a, store_b, stack_size=4, update_horizon=1):
  indices = store_a.valid_indices(stack_size, update_horizon)
  np.testing.assert_array_equal(
      indices, store_b.valid_indices(stack_size, update_horizon))
  index = tf.constant(indices, tf.int64)
  windows_a, local_a = store_a.window_reader(stack_size, update_horizon)(index)
  windows_b, local_b = store_b.window_reader(stack_size, update_horizon)(index)
  np.testing.assert_array_equal(local_a, local_b)
  for name in windows_a:
    assert windows_a[name].dtype == windows_b[name].dtype, name
    np.testing.assert_array_equal(windows_a[name], windows_b[name],
                                  err_msg=name)


def test_writer_accepts_chunks_of_any_length(tmp_path):
  rng = np.random.default_rng(0)
  capacity = 45  # Not a multiple of the block size.
  data = (rng.integers(0, 255, (capacity, 3, 2), np.uint8),
          rng.integers(0, 6, capacity), rng.normal(size=capacity),
          rng.integers(0, 2, capacity))
  for name, cuts in (('whole', [capacity]), ('ragged', [1, 0, 7, 13, 3, 21])):
    with compact.CheckpointWriter(str(tmp_path / name), 0, capacity,
                                  (3, 2), block_frames=4) as writer:
      begin = 0
      for length in cuts:
        writer.append(*(a[begin:begin + length] for a in data))
        begin += length
      writer.close(capacity + 3, [2, 3], {10, 20})
  assert _tree(tmp_path / 'whole') == _tree(tmp_path / 'ragged')
  checkpoint = compact.CompactCheckpoint(str(tmp_path / 'whole' / 'ckpt_0'))
  np.testing.assert_array_equal(checkpoint.frames[:], data[0])
  np.testing.assert_array_equal(checkpoint.frames[[44, 0, 5]],
                                data[0][[44, 0, 5]])
  assert checkpoint.arrays.action.dtype == np.int32
  np.testing.assert_array_equal(checkpoint.arrays.action, data[1])
  np.testing.assert_array_equal(checkpoint.arrays.episode_end_indices,
                                [10, 20])


def _write_frames(path, frames, block_frames):
  """One compact checkpoint of `frames` at path/ckpt_0; its CompactFrames."""
  capacity = len(frames)
  with compact.CheckpointWriter(str(path), 0, capacity, frames.shape[1:],
                                block_frames=block_frames) as writer:
    writer.append(frames, np.zeros(capacity, np.int32), np.zeros(capacity),
                  np.zeros(capacity, np.uint8))
    writer.close(capacity, [])
  return compact.CompactCheckpoint(str(path / 'ckpt_0')).frames


def _overlap(reader, monkeypatch):
  """Makes `reader` read as while another read is in progress (decoding
  groups of blocks), with groups of 3 blocks."""
  reader._reading = 1
  monkeypatch.setattr(compact, 'GROUP_BLOCKS', 3)


@pytest.mark.parametrize('overlapping', [False, True])
@pytest.mark.parametrize('block_frames', [1, 4, 8])
def test_frame_reader_reads_any_slots_of_several_checkpoints(
    tmp_path, monkeypatch, block_frames, overlapping):
  """Random slots, windows of consecutive slots (wrapping at the end, as the
  store's are), repeats and a block shared by many rows, across checkpoints
  with a short last block, against numpy indexing of the frames; a read
  alone and one overlapping another (blocks decoded in groups)."""
  rng = np.random.default_rng(block_frames)
  data = [rng.integers(0, 255, (capacity, 3, 2), np.uint8)
          for capacity in (45, 64, 7)]
  reader = compact.FrameReader([_write_frames(tmp_path / str(i), frames,
                                              block_frames)
                                for i, frames in enumerate(data)])
  if overlapping:
    _overlap(reader, monkeypatch)
  for trial in range(60):
    rows = int(rng.integers(0, 25))
    ckpt = rng.integers(0, len(data), rows)
    capacity = np.array([len(d) for d in data])[ckpt][:, None]
    if trial % 3 == 0:
      slots = rng.integers(0, capacity, (rows, 5))
    elif trial % 3 == 1:
      slots = (rng.integers(0, capacity, (rows, 1)) + np.arange(5)) % capacity
    else:
      slots = np.full((rows, 5), rng.integers(0, 7))
      ckpt = np.zeros(rows, np.int64)
    got = reader.read(ckpt, slots)
    assert got.shape == (rows, 5, 3, 2)
    want = [data[c][s] for c, s in zip(ckpt, slots)]
    np.testing.assert_array_equal(
        got, np.stack(want) if rows else np.zeros((0, 5, 3, 2)))


@pytest.mark.parametrize('overlapping', [False, True])
def test_damaged_frame_blocks_are_named_when_read(tmp_path, monkeypatch,
                                                  overlapping):
  frames = np.random.default_rng(0).integers(0, 255, (20, 3, 2), np.uint8)
  reader = compact.FrameReader([_write_frames(tmp_path, frames, 4)])
  if overlapping:
    _overlap(reader, monkeypatch)
  path = str(tmp_path / 'ckpt_0' / 'frames.zst')
  offsets = np.load(str(tmp_path / 'ckpt_0' / 'frame_offsets.npy'))
  with open(path, 'r+b') as f:  # Block 2: garbage of the same length.
    f.seek(offsets[2])
    f.write(b'\xff' * int(offsets[3] - offsets[2]))
  np.testing.assert_array_equal(reader.read(np.zeros(1, np.int64),
                                            np.array([[0, 7, 12]])),
                                frames[[[0, 7, 12]]])
  with pytest.raises(ReplayDataError,
                     match=r'frames.zst: block 2 does not decode'):
    reader.read(np.zeros(1, np.int64), np.array([[9]]))
  # Block 3 (frames 12-15) replaced by a valid block of 3 frames.
  short = zstandard.ZstdCompressor().compress(frames[12:15].tobytes())
  data = open(path, 'rb').read()
  data = data[:offsets[3]] + short + data[offsets[4]:]
  offsets[4:] += len(short) - (offsets[4] - offsets[3])
  with open(path, 'wb') as f:
    f.write(data)
  np.save(str(tmp_path / 'ckpt_0' / 'frame_offsets.npy'), offsets)
  reader = compact.FrameReader(
      [compact.CompactCheckpoint(str(tmp_path / 'ckpt_0')).frames])
  if overlapping:
    _overlap(reader, monkeypatch)
  with pytest.raises(ReplayDataError,
                     match=r'frames.zst: block 3 holds 3 frames, expected 4'):
    reader.read(np.zeros(1, np.int64), np.array([[1, 13, 14]]))


def test_reused_read_buffers_never_change_a_batch_still_held(tmp_path):
  rng = np.random.default_rng(0)
  capacity = 64
  frames = rng.integers(0, 255, (capacity, 3, 2), np.uint8)
  with compact.CheckpointWriter(str(tmp_path), 0, capacity, (3, 2),
                                block_frames=4) as writer:
    writer.append(frames, np.zeros(capacity, np.int32), np.zeros(capacity),
                  np.zeros(capacity, np.uint8))
    writer.close(capacity, [])
  reader = compact.FrameReader(
      [compact.CompactCheckpoint(str(tmp_path / 'ckpt_0')).frames])
  ckpt = np.zeros(40, np.int64)
  held = []  # Numpy views and tensors TensorFlow shares with the reader.
  for _ in range(3):
    slots = rng.integers(0, capacity, (40, 5))
    held.append((slots, reader.read(ckpt, slots)))
    slots = rng.integers(0, capacity, (40, 5))
    held.append((slots, tf.numpy_function(
        lambda s: reader.read(ckpt, s), [slots], tf.uint8)))
  for slots, batch in held:
    np.testing.assert_array_equal(np.asarray(batch), frames[slots])
  del held
  slots = rng.integers(0, capacity, (40, 5))
  np.testing.assert_array_equal(reader.read(ckpt, slots), frames[slots])


@pytest.mark.parametrize('problem, message', [
    (lambda w: w.append(np.zeros((2, 3, 3), np.uint8), [0, 0], [0., 0.],
                        [0, 0]), r'observation chunk has shape \(3, 3\)'),
    (lambda w: w.append(np.zeros((1, 3, 2), np.uint8), [0.5], [0.], [0]),
     'action chunk .* dtype float64'),
    (lambda w: w.close(10, [0]), '0 slots appended, expected the capacity 10'),
])
def test_writer_errors_name_the_checkpoint_and_publish_nothing(
    tmp_path, problem, message):
  with pytest.raises(ReplayDataError, match=message):
    with compact.CheckpointWriter(str(tmp_path), 3, 10, (3, 2)) as writer:
      problem(writer)
  assert os.listdir(tmp_path) == []


def test_interrupted_conversion_resumes_to_the_same_bytes(
    run_dir, tmp_path, monkeypatch):
  clean = str(tmp_path / 'clean')
  converted.convert(run_dir, clean, progress=False)
  out = str(tmp_path / 'out')
  convert_compact = converted._convert_compact

  def fail_on_second(replay_dir, suffix, work_dir, progress):
    if suffix == 1:  # Dies halfway through checkpoint 1.
      os.makedirs(compact.checkpoint_dir(work_dir, 1) + '.partial')
      raise KeyboardInterrupt
    convert_compact(replay_dir, suffix, work_dir, progress)

  monkeypatch.setattr(converted, '_convert_compact', fail_on_second)
  with pytest.raises(KeyboardInterrupt):
    converted.convert(run_dir, out, progress=False)
  assert not os.path.exists(out)  # Nothing that looks complete.
  assert compact.finished_checkpoints(out + '.partial') == [0]
  mtime = os.stat(os.path.join(out + '.partial', 'ckpt_0',
                               'frames.zst')).st_mtime_ns
  monkeypatch.undo()
  assert converted.convert(run_dir, out, progress=False) == [0, 1]
  assert not os.path.exists(out + '.partial')
  assert os.stat(os.path.join(out, 'ckpt_0',
                              'frames.zst')).st_mtime_ns == mtime
  assert _tree(out) == _tree(clean)


def test_parallel_conversion_equals_serial(run_dir, tmp_path):
  converted.convert(run_dir, str(tmp_path / 'serial'), progress=False)
  converted.convert(run_dir, str(tmp_path / 'parallel'), progress=False,
                    workers=2)
  assert _tree(tmp_path / 'serial') == _tree(tmp_path / 'parallel')
  _same_transitions(
      sources.open_store(run_dir, DataSelection()),
      converted.open_store(str(tmp_path / 'parallel'), DataSelection()))


def test_full_disk_is_one_line_and_leaves_nothing_complete(
    run_dir, tmp_path, monkeypatch, capsys):
  real_open = open

  class FullDisk:
    """A frames file on a disk that fills after a few blocks."""

    def __init__(self, path, mode):
      self._file = real_open(path, mode)
      self.name = path
      self._room = 20_000

    def write(self, data):
      self._room -= len(data)
      if self._room < 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      return self._file.write(data)

    def __getattr__(self, name):
      return getattr(self._file, name)

  monkeypatch.setattr(
      compact, 'open',
      lambda path, mode='r': (FullDisk(path, mode) if path.endswith('.zst')
                              else real_open(path, mode)), raising=False)
  out = tmp_path / 'out'
  assert cli.main(['convert', run_dir, str(out), '--workers', '1']) == 2
  errors = [line for line in capsys.readouterr().err.splitlines()
            if 'error' in line]  # The rest is the progress bar.
  assert len(errors) == 1
  error = errors[0]
  assert error.startswith('error: ')
  assert 'frames.zst: No space left on device' in error
  assert not converted.is_converted(str(out))
  assert os.listdir(tmp_path) == ['out.partial']
  assert os.listdir(tmp_path / 'out.partial') == ['manifest.json']
  monkeypatch.undo()
  assert cli.main(['convert', run_dir, str(out)]) == 0  # Then it resumes.
  assert converted.is_converted(str(out))


def test_output_of_another_source_is_refused(run_dir, other_run_dir,
                                             tmp_path):
  out = str(tmp_path / 'out')
  converted.convert(run_dir, out, suffixes=[0], progress=False)
  manifest = compact.read_manifest(out)
  with pytest.raises(ReplayDataError) as error:
    converted.convert(other_run_dir, out, progress=False)
  assert f'holds data converted from {run_dir}, not from {other_run_dir}' in (
      str(error.value))
  assert compact.read_manifest(out) == manifest
  # The same source adds checkpoints in place.
  assert converted.convert(run_dir, out, progress=False) == [0, 1]
  assert compact.read_manifest(out)['checkpoints'] == [0, 1]
  os.makedirs(tmp_path / 'busy')
  open(tmp_path / 'busy' / 'notes.txt', 'w').close()
  with pytest.raises(ReplayDataError, match='not a converted replay'):
    converted.convert(run_dir, str(tmp_path / 'busy'), progress=False)


def test_large_gz_selection_is_converted_once_into_the_cache(
    run_dir, tmp_path, capsys):
  cache = gz_cache.GzReplayCache(memory_budget_gib=1e-3,
                                 cache_dir=str(tmp_path), workers=1)
  store = sources.open_store(run_dir, DataSelection(), cache=cache)
  plan = capsys.readouterr().out.strip()
  assert '\n' not in plan
  assert plan.startswith(f'replay: 2 checkpoints of {run_dir} (1,600 slots, '
                         '11.3 MB of frames) exceed GzReplayCache.'
                         'memory_budget_gib=0.001: converting 2 of them')
  assert type(store).__name__ == 'CompactStore'
  path = cache.cache_path(run_dir)
  assert compact.read_manifest(path)['checkpoints'] == [0, 1]
  in_memory = sources.open_store(
      run_dir, DataSelection(),
      cache=gz_cache.GzReplayCache(memory_budget_gib=1.0))
  assert 'loading into memory' in capsys.readouterr().out
  assert type(in_memory) is ReplayStore
  _same_transitions(store, in_memory)
  again = sources.open_store(run_dir, DataSelection(last_k=1), cache=cache)
  assert f'already converted in {path}' in capsys.readouterr().out
  assert again.num_slots == 600


def test_cache_refuses_when_the_disk_is_too_small(run_dir, tmp_path,
                                                  monkeypatch):
  cache = gz_cache.GzReplayCache(memory_budget_gib=0, cache_dir=str(tmp_path))
  monkeypatch.setattr(gz_cache.shutil, 'disk_usage',
                      lambda path: type('Usage', (), {'free': 1000}))
  with pytest.raises(ReplayDataError) as error:
    sources.open_store(run_dir, DataSelection(), cache=cache)
  assert 'of disk, 0.0 MB is free' in str(error.value)
  assert f'python -m batch_rl.data convert {run_dir} OUT' in str(error.value)
  assert not os.path.exists(cache.cache_path(run_dir))


def test_a_second_process_waits_for_the_cache_and_does_not_convert_again(
    run_dir, tmp_path, capsys):
  cache = gz_cache.GzReplayCache(memory_budget_gib=0, cache_dir=str(tmp_path),
                                 workers=1)
  path = cache.cache_path(run_dir)
  opened = {}
  with gz_cache.CacheLock(path):  # Another process is converting.
    waiter = threading.Thread(target=lambda: opened.update(
        store=sources.open_store(run_dir, DataSelection(), cache=cache)))
    waiter.start()
    wait_until_told_to_wait_for_the_lock(capsys, path)
    assert waiter.is_alive()
    converted.convert(run_dir, path, progress=False)
  waiter.join(60)
  assert f'already converted in {path}' in capsys.readouterr().out
  assert opened['store'].num_slots == 1600


@pytest.mark.parametrize('damage', ['truncated', 'corrupt', 'other_shape'])
def test_bad_source_is_one_error_naming_the_file(run_dir, tmp_path, damage,
                                                 monkeypatch):
  source = tmp_path / 'source'
  os.makedirs(source)
  for name in os.listdir(run_dir):
    with open(os.path.join(run_dir, name), 'rb') as f:
      data = f.read()
    with open(source / name, 'wb') as f:
      f.write(data)
  bad = source / '$store$_observation_ckpt.1.gz'
  if damage == 'other_shape':
    fill_dopamine_buffer(50, 70, frame_shape=(84, 83)).save(str(source), 1)
    message = r'observation_ckpt.1.gz: frames of shape \(84, 83\)'
  else:
    data = bytearray(bad.read_bytes())
    if damage == 'truncated':
      data = data[:len(data) // 2]
    else:
      data[len(data) // 2] ^= 0xff
    bad.write_bytes(bytes(data))
    message = 'observation_ckpt.1.gz: truncated or corrupt gzip file'
  with pytest.raises(ReplayDataError, match=message):
    converted.convert(str(source), str(tmp_path / 'out'), progress=False)
  assert not converted.is_converted(str(tmp_path / 'out'))
  if damage == 'truncated':  # Found from the gzip trailer, before decoding.
    monkeypatch.setattr(converted, '_frame_chunks', None)
    with pytest.raises(ReplayDataError, match=message):
      converted.convert(str(source), str(tmp_path / 'out2'), suffixes=[1],
                        progress=False)
  assert compact.finished_checkpoints(str(tmp_path / 'out.partial')) in (
      [], [0])
