"""Conversion into the compact layout and the automatic gz cache.

Dopamine's own batches for the converted data are checked in
test_pipeline.py (every valid index, each layout); here: the writer, resume,
parallel workers, a full disk, another source, the cache and its lock.
"""

import errno
import json
import os
import re
import shutil
import threading

import numpy as np
import pytest
import tensorflow as tf
import zstandard

from batch_rl.data import __main__ as cli
from batch_rl.data import compact
from batch_rl.data import converted
from batch_rl.data import dopamine_replay
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
  np.testing.assert_array_equal(np.asarray(checkpoint.frames, np.int16),
                                data[0].astype(np.int16))
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


def test_checkpoints_of_other_block_sizes_are_not_read_together(tmp_path):
  frames = np.zeros((20, 3, 2), np.uint8)
  with pytest.raises(ReplayDataError) as error:
    compact.FrameReader([_write_frames(tmp_path / 'a', frames, 4),
                         _write_frames(tmp_path / 'b', frames, 8)])
  assert str(error.value) == (
      f'{tmp_path}/b/ckpt_0/frames.zst: blocks of 8 frames, but '
      f'{tmp_path}/a/ckpt_0/frames.zst has blocks of 4; checkpoints read '
      'together must be converted with one block size.')


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


def _fill(writer):
  """Appends the writer's 10 slots of (3, 2) frames."""
  writer.append(np.zeros((10, 3, 2), np.uint8), [0] * 10, [0.] * 10, [0] * 10)


@pytest.mark.parametrize('problem, message', [
    (lambda w: w.append(np.zeros((2, 3, 3), np.uint8), [0, 0], [0., 0.],
                        [0, 0]), r'observation chunk has shape \(3, 3\)'),
    (lambda w: w.append(np.zeros((1, 3, 2), np.uint8), [0.5], [0.], [0]),
     'action chunk .* dtype float64'),
    (lambda w: w.append(np.zeros((1, 3, 2), np.uint8), [0], [0.], [256]),
     'terminal of slot 0 is 256, which uint8 cannot hold'),
    (lambda w: w.append(np.zeros((2, 3, 2), np.uint8), [0], [0.], [0]),
     r"chunk arrays have different lengths \{'observation': 2, 'action': 1"),
    (lambda w: w.append(np.zeros((11, 3, 2), np.uint8), [0] * 11, [0.] * 11,
                        [0] * 11), '11 slots appended, more than the capacity'),
    (lambda w: w.close(10, [0]), '0 slots appended, expected the capacity 10'),
    (lambda w: (_fill(w), w.close(10, [10])),
     r'invalid_range holds 10, outside \[0, 10\)'),
    (lambda w: (_fill(w), w.close(10, [], {3, -1})),
     r'episode_end_indices holds -1, outside \[0, 10\)'),
    (lambda w: (_fill(w), w.close(-1, [])), 'add_count -1 < 0'),
    (lambda w: None, 'CheckpointWriter left without close'),
])
def test_writer_errors_name_the_checkpoint_and_publish_nothing(
    tmp_path, problem, message):
  with pytest.raises(ReplayDataError, match=f'ckpt_3: {message}'):
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
    """A frames file on a disk that fills after a few blocks (closing it
    then fails too, as flushing a buffered file does)."""

    def __init__(self, path, mode):
      self._file = real_open(path, mode)
      self.name = path
      self._room = 20_000

    def write(self, data):
      self._room -= len(data)
      if self._room < 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      return self._file.write(data)

    def close(self):
      self._file.close()
      if self._room < 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

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


def _copy(run_dir, source):
  """A copy of `run_dir`'s files in `source` (created)."""
  os.makedirs(source)
  for name in os.listdir(run_dir):
    shutil.copyfile(os.path.join(run_dir, name), source / name)


@pytest.mark.parametrize('damage', ['truncated', 'corrupt', 'other_shape'])
def test_bad_source_is_one_error_naming_the_file(run_dir, tmp_path, damage,
                                                 monkeypatch):
  source = tmp_path / 'source'
  _copy(run_dir, source)
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


@pytest.fixture(scope='module')
def converted_dir(run_dir, tmp_path_factory):
  path = str(tmp_path_factory.mktemp('converted') / 'out')
  converted.convert(run_dir, path, progress=False)
  return path


def _cut_short(path):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])


def _write_bytes(path, data):
  with open(path, 'wb') as f:
    f.write(data)


def _other_checkpoints_offsets(out):
  np.save(os.path.join(out, 'ckpt_1', 'frame_offsets.npy'),
          np.load(os.path.join(out, 'ckpt_0', 'frame_offsets.npy')))


def _edit_meta(edit):
  """A damage: checkpoint 1's meta.json rewritten with edit(meta)."""
  def damage(out):
    path = os.path.join(out, 'ckpt_1', 'meta.json')
    with open(path) as f:
      meta = json.load(f)
    edit(meta)
    _write_bytes(path, json.dumps(meta).encode())
  return damage


@pytest.mark.parametrize('damage, message', [
    (lambda out: _cut_short(os.path.join(out, 'manifest.json')),
     r'manifest.json: unreadable manifest \(.*\); convert the replay again '
     'into a new directory.'),
    (lambda out: _write_bytes(os.path.join(out, 'manifest.json'), b'[0, 1]'),
     r"manifest.json: not a manifest of a converted replay \(lacks "
     r"\['format', 'source', 'checkpoints'\]\)"),
    (lambda out: shutil.rmtree(os.path.join(out, 'ckpt_1')),
     'ckpt_1: converted checkpoint is missing; remove .*ckpt_1 and convert'),
    (lambda out: os.remove(os.path.join(out, 'ckpt_1', 'action.npy')),
     'ckpt_1/action.npy: No such file or directory; remove'),
    (lambda out: _write_bytes(os.path.join(out, 'ckpt_1', 'action.npy'),
                              b'\x00' * 100),
     r'ckpt_1/action.npy: truncated or not a .npy array \('),
    (lambda out: _cut_short(os.path.join(out, 'ckpt_1', 'reward.npy')),
     r'ckpt_1/reward.npy: truncated or not a .npy array \('),
    (_edit_meta(lambda meta: meta.pop('add_count')),
     r"ckpt_1/meta.json: not a meta.json of a converted replay \(lacks "
     r"\['add_count'\]\)"),
    (_edit_meta(lambda meta: meta.update(add_count=-1)),
     r'ckpt_1: add_count=-1, expected >= 0 \(the transitions ever added\).'),
    (_other_checkpoints_offsets,
     r'ckpt_1/frame_offsets.npy: offsets of shape \(126,\), expected \(76,\) '
     'for 600 frames in blocks of 8'),
    (lambda out: _cut_short(os.path.join(out, 'ckpt_1', 'frames.zst')),
     r'ckpt_1/frames.zst: \d+ bytes, the index expects \d+ \(truncated or '
     r'corrupt\); remove .*/ckpt_1 and convert the replay again into .*out '
     r'\(the other checkpoints are kept\).'),
], ids=['manifest_cut_short', 'foreign_manifest', 'checkpoint_missing',
        'action_missing', 'action_garbage', 'reward_cut_short',
        'meta_lacks_a_key', 'meta_add_count_negative',
        'offsets_of_another_checkpoint',
        'frames_cut_short'])
def test_damaged_converted_directory_is_one_line_naming_the_file(
    run_dir, converted_dir, tmp_path, capsys, damage, message):
  """A converted directory damaged by a partial copy or a full disk; where
  one checkpoint is damaged, doing what the message says repairs it."""
  out = str(tmp_path / 'out')
  shutil.copytree(converted_dir, out)
  damage(out)
  assert cli.main(['info', out]) == 2
  error = capsys.readouterr().err
  assert error.count('\n') == 1
  assert re.match(f'error: {re.escape(out)}/{message}', error), error
  if 'convert the replay again into' in error and 'new directory' not in error:
    shutil.rmtree(os.path.join(out, 'ckpt_1'), ignore_errors=True)
    assert cli.main(['convert', run_dir, out]) == 0
    assert cli.main(['info', out]) == 0
    assert _tree(out) == _tree(converted_dir)


def test_output_of_another_format_is_refused(run_dir, other_run_dir, tmp_path,
                                             capsys):
  out = str(tmp_path / 'out')
  converted.convert(other_run_dir, out, progress=False)
  manifest = compact.read_manifest(out)
  compact.write_json(os.path.join(out, 'manifest.json'),
                     {**manifest, 'format': 'batch_rl.compact.v0'})
  assert cli.main(['info', out]) == 2
  assert capsys.readouterr().err == (
      f"error: {out}/manifest.json: format 'batch_rl.compact.v0', expected "
      f"'{compact.FORMAT}'; convert {other_run_dir} again into a new "
      'directory.\n')
  assert cli.main(['convert', other_run_dir, out]) == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f'error: {out} holds format batch_rl.compact.v0, not {compact.FORMAT}; '
      'choose another output directory.')


def test_an_existing_empty_directory_becomes_the_output(other_run_dir,
                                                        tmp_path):
  os.makedirs(tmp_path / 'out')
  assert converted.convert(other_run_dir, str(tmp_path / 'out'),
                           progress=False) == [0]
  assert os.listdir(tmp_path) == ['out']
  assert converted.is_converted(str(tmp_path / 'out'))


def test_output_that_cannot_be_created_is_one_line(other_run_dir, tmp_path,
                                                   capsys):
  _write_bytes(str(tmp_path / 'file'), b'')
  out = tmp_path / 'file' / 'out'
  assert cli.main(['convert', other_run_dir, str(out)]) == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f'error: {out}.partial: cannot create (Not a directory).')


def test_full_disk_writing_the_manifest_is_one_line(other_run_dir, tmp_path,
                                                    monkeypatch, capsys):
  def full_disk(path, text):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(compact.storage, 'write_atomically', full_disk)
  out = tmp_path / 'out'
  assert cli.main(['convert', other_run_dir, str(out)]) == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f'error: {out}.partial/manifest.json: cannot write (No space left on '
      'device).')


def test_a_worker_error_is_one_line_and_publishes_nothing(run_dir, tmp_path,
                                                          capsys):
  source = tmp_path / 'source'
  _copy(run_dir, source)
  _cut_short(str(source / '$store$_observation_ckpt.1.gz'))
  out = str(tmp_path / 'out')
  assert cli.main(['convert', str(source), out, '--workers=2']) == 2
  assert capsys.readouterr().err.splitlines()[-1].startswith(
      f'error: {source}/$store$_observation_ckpt.1.gz: truncated or corrupt '
      'gzip file')
  assert not converted.is_converted(out)
  assert compact.finished_checkpoints(out + '.partial') in ([], [0])


def test_frames_in_fortran_order_are_refused_naming_the_file(
    other_run_dir, tmp_path, capsys):
  source = tmp_path / 'source'
  _copy(other_run_dir, source)
  path = dopamine_replay.store_filename(str(source), 'observation', 0)
  frames = dopamine_replay.read_array(path)
  with dopamine_replay.gzip_written_atomically(path) as f:
    np.save(f, np.asfortranarray(frames))
  assert cli.main(['convert', str(source), str(tmp_path / 'out')]) == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f'error: {path}: frames in Fortran order; expected C order (np.save of '
      'a C-contiguous array, as Dopamine writes them).')


def test_workers_must_be_at_least_one(other_run_dir, tmp_path):
  with pytest.raises(ValueError, match='workers=0: must be at least 1'):
    converted.convert(other_run_dir, str(tmp_path / 'out'), workers=0)
