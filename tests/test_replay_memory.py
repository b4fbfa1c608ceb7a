"""The in-memory store holds its frames once: RSS against frame bytes."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import pipeline
from batch_rl.data import replay_store
from batch_rl.data.aligned import aligned_empty
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import ReplayStore
from conftest import fill_dopamine_buffer

CAPACITY = 20_000  # Two checkpoints of 84x84 frames: 282 MB.

# Runs in a fresh process: imports TensorFlow and compiles a small pipeline
# first, so that what the measured part adds to RSS is the store's.
_CHILD = r'''
import json, sys
import numpy as np
from batch_rl.data import pipeline, sources
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.dopamine_replay import ReplayArrays
from batch_rl.data.selection import DataSelection

def rss(field):
  with open('/proc/self/status') as f:
    return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))

warm = ReplayArrays(np.ones((500, 84, 84), np.uint8), np.zeros(500, np.int32),
                    np.zeros(500, np.float32), np.zeros(500, np.uint8), 500,
                    np.array([0]))
for _ in pipeline.transition_dataset(ReplayStore.from_arrays([warm]), 32).take(300):
  pass
base = rss('VmRSS:')
with open('/proc/self/clear_refs', 'w') as f:
  f.write('5')  # Resets VmHWM to the current RSS.
store = sources.open_store(sys.argv[1], DataSelection())
loaded = {'load_peak': rss('VmHWM:') - base, 'loaded': rss('VmRSS:') - base}
for _ in range(2):  # A second iterator must not copy the frames again.
  for _ in pipeline.transition_dataset(store, 32).take(200):
    pass
print(json.dumps({'peak': rss('VmHWM:') - base, 'settled': rss('VmRSS:') - base,
                  'frame_bytes': sum(a.observation.nbytes for a in store.checkpoints),
                  **loaded}))
'''


def _arrays(capacity, seed):
  rng = np.random.default_rng(seed)
  # Flat frames with a stripe: gzip compresses them fast.
  frames = np.repeat(rng.integers(0, 256, (capacity, 1, 84), np.uint8), 84, 1)
  return dopamine_replay.ReplayArrays(
      frames, rng.integers(0, 6, capacity).astype(np.int32),
      rng.normal(size=capacity).astype(np.float32),
      (rng.random(capacity) < 0.01).astype(np.uint8), capacity + 123,
      np.arange(122, 127))  # Dopamine: cursor - n .. cursor + K - 1.


@pytest.mark.skipif(not os.path.exists('/proc/self/clear_refs'),
                    reason='needs Linux /proc peak-RSS reset')
def test_in_memory_store_holds_frames_once(tmp_path):
  for suffix in range(2):
    dopamine_replay.write_checkpoint(str(tmp_path), suffix,
                                     _arrays(CAPACITY, suffix))
  out = subprocess.run([sys.executable, '-c', _CHILD, str(tmp_path)],
                       capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  rss = json.loads(out.stdout.strip().splitlines()[-1])
  frames = rss['frame_bytes']
  assert frames == 2 * CAPACITY * 84 * 84
  # Loading: the frames once (the old store's np.concatenate held 2x).
  assert rss['load_peak'] < 1.02 * frames, rss
  # Iterating adds the pipeline's buffers (a few stacks of STACK_BYTES,
  # whatever the store's size), not copies of the frames (the old store
  # held 3x settled, 4x at peak).
  buffers = 6 * pipeline.STACK_BYTES
  assert rss['peak'] < 1.02 * frames + buffers, rss
  assert rss['settled'] < 1.02 * frames + buffers, rss


def test_read_dopamine_equals_read_arrays(tmp_path):
  for suffix, (capacity, adds) in enumerate([(60, 40), (64, 150)]):
    fill_dopamine_buffer(capacity, adds, seed=suffix).save(str(tmp_path),
                                                          suffix)
  store = ReplayStore.read_dopamine(str(tmp_path), [0, 1])
  for suffix, got in enumerate(store.checkpoints):
    want = dopamine_replay.read_arrays(str(tmp_path), suffix)
    for name in ('observation', 'action', 'reward', 'terminal',
                 'invalid_range', 'episode_end_indices'):
      np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.add_count == want.add_count
  # One buffer per element, shared by both checkpoints' views.
  assert store.checkpoints[1].observation.base is not None
  assert (store.checkpoints[1].observation.ctypes.data ==
          store.checkpoints[0].observation.ctypes.data + 60 * 5 * 4)


def test_read_dopamine_names_the_inconsistent_checkpoint(tmp_path):
  fill_dopamine_buffer(50, 60).save(str(tmp_path), 0)
  fill_dopamine_buffer(50, 60, frame_shape=(5, 5)).save(str(tmp_path), 1)
  with pytest.raises(ReplayDataError, match=r'checkpoint 1: observation has '
                     r'shape \(5, 5\)'):
    ReplayStore.read_dopamine(str(tmp_path), [0, 1])
  with gzip.open(dopamine_replay.checkpoint_filename(
      str(tmp_path), '$store$_action', 0), 'wb') as f:
    np.save(f, np.zeros(49, np.int32))
  with pytest.raises(ReplayDataError, match=r'checkpoint 0: stored arrays '
                     r"have lengths \{'observation': 50, 'action': 49"):
    ReplayStore.read_dopamine(str(tmp_path), [0])


def test_shared_tensors_equal_their_arrays_shared_or_copied():
  """Aligned writable arrays are shared with TensorFlow; bool, read-only,
  strided and unaligned ones are copied: the values are the same."""
  aligned = aligned_empty((6, 4), np.uint8)
  aligned[...] = np.arange(24).reshape(6, 4)
  read_only = aligned.copy()
  read_only.flags.writeable = False
  unaligned = np.frombuffer(bytearray(b'x' + aligned.tobytes()), np.uint8, 24,
                            1).reshape(6, 4)
  assert unaligned.flags.writeable and unaligned.ctypes.data % 2
  for array, shared in ((aligned, True), (aligned[:, ::2], False),
                        (aligned.astype(bool), False), (read_only, False),
                        (unaligned, False)):
    assert replay_store._shares_with_tensorflow(array) == shared
    tensor = replay_store.shared_tensor(array)
    assert tensor.dtype.as_numpy_dtype == array.dtype
    np.testing.assert_array_equal(tensor.numpy(), array)


_ITERATE_AND_EXIT = r'''
import sys
from batch_rl.data import replay_dataset
replay = replay_dataset.open_replay(sys.argv[1], 4, 1, 0.99)
iterator = iter(replay.batches(32, seed=0))
for _ in range(10):
  next(iterator)
print('iterated')
'''


def test_process_exits_after_iterating_a_compact_dataset(tmp_path):
  """Issue 10: exit hung (threads on futexes) with host reads in flight."""
  os.makedirs(tmp_path / 'run')
  fill_dopamine_buffer(2000, 3000, frame_shape=(84, 84)).save(
      str(tmp_path / 'run'), 0)
  converted.convert(str(tmp_path / 'run'), str(tmp_path / 'compact'),
                    progress=False)
  out = subprocess.run(
      [sys.executable, '-c', _ITERATE_AND_EXIT, str(tmp_path / 'compact')],
      capture_output=True, text=True, timeout=120,
      cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.returncode == 0 and 'iterated' in out.stdout, out.stderr[-2000:]
