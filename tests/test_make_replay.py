"""benchmarks/make_replay.py: the 1M-size benchmark data is dopamine-rl's."""

import os
import subprocess
import sys

from dopamine.replay_memory import circular_replay_buffer
import numpy as np

from batch_rl.data import dopamine_replay

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                       'benchmarks', 'make_replay.py')
_CAPACITY = 3000


def _make_replay(out_dir, *flags):
  return subprocess.run(
      [sys.executable, _SCRIPT, str(out_dir), '--capacity', str(_CAPACITY),
       *flags], capture_output=True, text=True, timeout=300)


def test_checkpoints_load_in_dopamine_as_a_logging_run_leaves_them(tmp_path):
  result = _make_replay(tmp_path, '--checkpoints', '2', '--first_suffix', '3',
                        '--pool_steps', '1', '--gzip_level', '1')
  assert result.returncode == 0, result.stderr
  assert 'checkpoint 4: 3000 transitions' in result.stdout
  assert not [name for name in os.listdir(tmp_path) if 'tmp' in name]
  assert dopamine_replay.list_checkpoints(str(tmp_path)) == [3, 4]
  for suffix in (3, 4):
    buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
        (84, 84), 4, _CAPACITY, batch_size=32)
    buffer.load(str(tmp_path), suffix)
    # Full and gone round, as checkpoint N of a logging run.
    assert (suffix + 1) * _CAPACITY <= buffer.add_count < (
        suffix + 2) * _CAPACITY
    store = buffer._store  # pylint: disable=protected-access
    ours = dopamine_replay.read_arrays(str(tmp_path), suffix)
    for name in ('observation', 'action', 'reward', 'terminal'):
      np.testing.assert_array_equal(getattr(ours, name), store[name])
    # Each episode ends in a terminal slot (the pool's episodes end with the
    # game) and the next one begins after 3 padding slots of zeros.
    ends = sorted(buffer.episode_end_indices)
    np.testing.assert_array_equal(ends, np.flatnonzero(store['terminal']))
    cursor = buffer.cursor()
    for end in ends:
      after = [(end + i) % _CAPACITY for i in (1, 2, 3)]
      if any((slot - cursor) % _CAPACITY < 3 for slot in after):
        continue  # The newest episode's padding is not written yet.
      assert not store['observation'][after].any()
      assert not store['action'][after].any()
      assert not store['terminal'][after].any()
    # Real frames: ALE's screens, not zeros.
    assert store['observation'].mean() > 10
    batch = buffer.sample_transition_batch(32)
    assert batch[0].shape == (32, 84, 84, 4)


def test_flags_out_of_range_are_refused(tmp_path):
  for flags, message in ((('--gzip_level', '0'), '--gzip_level=0: must be'),
                         (('--checkpoints', '0'), '--checkpoints=0: must be')):
    result = _make_replay(tmp_path, *flags)
    assert result.returncode == 2
    assert f'error: {message}' in result.stderr
