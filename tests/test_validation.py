"""Garbage in replay files is named (file, element, first index, value)."""

import gzip
import os
import pickle

import numpy as np
import pytest

from batch_rl.data import __main__ as cli
from batch_rl.data import dopamine_replay
from batch_rl.data import summary
from batch_rl.data import validation
from batch_rl.data.errors import ReplayDataError
from conftest import fill_dopamine_buffer

CAPACITY, ADDS = 50, 60


def _saved(tmp_path):
  fill_dopamine_buffer(CAPACITY, ADDS).save(str(tmp_path), 0)
  return str(tmp_path)


def _replace(replay_dir, name, edit):
  """Rewrites element `name` of checkpoint 0 with edit(array)."""
  path = dopamine_replay.checkpoint_filename(replay_dir, name, 0)
  array = dopamine_replay.read_array(path)
  array = edit(array.copy())
  with gzip.open(path, 'wb') as f:
    np.save(f, array)


def _set(index, value, dtype=None):
  def edit(array):
    if dtype is not None:
      array = array.astype(dtype)
    array[index] = value
    return array
  return edit


# (element file, edit, message naming element, index and value)
BAD_VALUES = [
    ('$store$_reward', _set(7, np.nan), r'reward\[7\] = nan'),
    ('$store$_reward', _set(11, np.inf), r'reward\[11\] = inf'),
    ('$store$_terminal', _set(3, 7), r'terminal\[3\] = 7: terminals must be 0 or 1'),
    ('$store$_action', _set(5, -2), r'action\[5\] = -2'),
    ('$store$_action', _set(4, np.nan, np.float32), r'action\[4\] = nan'),
    ('$store$_observation', _set((2, 1, 3), np.nan, np.float32),
     r'observation\[2, 1, 3\] = nan'),
    ('add_count', lambda a: np.array(10**15 + 3), 'add_count=1000000000000003 puts the write cursor'),
]


@pytest.mark.parametrize('name, edit, message', BAD_VALUES)
def test_bad_values_name_file_element_index_and_value(tmp_path, name, edit,
                                                      message):
  replay_dir = _saved(tmp_path)
  _replace(replay_dir, name, edit)
  with pytest.raises(ReplayDataError, match=message) as error:
    dopamine_replay.read_arrays(replay_dir, 0)
  assert 'ckpt.0.gz' in str(error.value)


def test_episode_end_index_outside_the_buffer(tmp_path):
  replay_dir = _saved(tmp_path)
  path = dopamine_replay.checkpoint_filename(replay_dir, 'episode_end_indices',
                                             0)
  with gzip.open(path, 'wb') as f:
    pickle.dump({3, 9, CAPACITY + 4}, f)
  with pytest.raises(ReplayDataError,
                     match=r'episode_end_indices\[2\] = 54: indices must lie '
                     r'in \[0, 50\)'):
    dopamine_replay.read_arrays(replay_dir, 0)


def test_info_checks_values_without_reading_frames(tmp_path, capsys):
  replay_dir = _saved(tmp_path)
  _replace(replay_dir, '$store$_reward', _set(9, np.nan))
  assert cli.main(['info', replay_dir]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and r'reward[9] = nan' in err


def test_info_detects_a_truncated_observation_file_from_its_trailer(tmp_path,
                                                                    capsys):
  replay_dir = _saved(tmp_path)
  path = dopamine_replay.checkpoint_filename(replay_dir, '$store$_observation',
                                             0)
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) * 2 // 3])
  assert cli.main(['info', replay_dir]) == 2
  assert 'observation_ckpt.0.gz: truncated or corrupt' in (
      capsys.readouterr().err)


def test_info_rejects_checkpoints_of_mixed_frame_shapes(tmp_path, capsys):
  replay_dir = _saved(tmp_path)
  fill_dopamine_buffer(CAPACITY, ADDS, frame_shape=(6, 4)).save(
      replay_dir, 1)
  assert cli.main(['info', replay_dir]) == 2
  err = capsys.readouterr().err
  assert 'checkpoint 1: observation has per-slot shape (6, 4)' in err


def test_verify_reads_everything_and_finds_a_late_nan(tmp_path, capsys):
  replay_dir = _saved(tmp_path)
  assert summary.verify(replay_dir, progress=False) > 0
  _replace(replay_dir, '$store$_observation',
           _set((CAPACITY - 1, 0, 0), np.inf, np.float32))
  # `info` alone reads headers and small arrays only; --verify reads frames.
  with pytest.raises(ReplayDataError, match=r'observation_ckpt.0.gz: \[49, 0, 0\] = inf'):
    summary.verify(replay_dir, progress=False)
  assert cli.main(['info', '--verify', replay_dir]) == 2
  assert 'values must be finite' in capsys.readouterr().err


def test_verify_names_a_missing_file(tmp_path, capsys):
  replay_dir = _saved(tmp_path)
  path = dopamine_replay.checkpoint_filename(replay_dir, '$store$_action', 0)
  os.remove(path)
  assert cli.main(['info', '--verify', replay_dir]) == 2
  errors = [line for line in capsys.readouterr().err.splitlines()
            if 'error' in line]  # The rest is the progress bar.
  assert errors == [f'error: {path}: file is missing.']


def test_verify_detects_a_corrupt_byte(tmp_path):
  replay_dir = _saved(tmp_path)
  path = dopamine_replay.checkpoint_filename(replay_dir, '$store$_reward', 0)
  data = bytearray(open(path, 'rb').read())
  data[-9] ^= 0xFF  # The CRC, the last bytes before the length.
  open(path, 'wb').write(bytes(data))
  with pytest.raises(ReplayDataError, match='reward_ckpt.0.gz: truncated or '
                     'corrupt'):
    summary.verify(replay_dir, progress=False)


def test_actions_beyond_the_environment_are_named():
  arrays = dopamine_replay.ReplayArrays(
      observation=np.zeros((4, 1), np.float32), action=np.array([0, 1, 5, 2]),
      reward=np.zeros(4, np.float32), terminal=np.zeros(4, np.uint8),
      add_count=4, invalid_range=np.zeros(0, np.int64))
  validation.check_actions_below(arrays, 6, 'src')
  with pytest.raises(ReplayDataError,
                     match=r'src: action\[2\] = 5: the environment has 3 '
                     r'actions'):
    validation.check_actions_below(arrays, 3, 'src')


def test_good_data_passes_untouched(tmp_path):
  replay_dir = _saved(tmp_path)
  before = {f: os.stat(os.path.join(replay_dir, f)).st_mtime_ns
            for f in os.listdir(replay_dir)}
  dopamine_replay.read_arrays(replay_dir, 0)
  summary.summarize(replay_dir)
  summary.verify(replay_dir, progress=False)
  assert before == {f: os.stat(os.path.join(replay_dir, f)).st_mtime_ns
                    for f in os.listdir(replay_dir)}


def test_training_data_with_actions_the_environment_lacks_is_refused():
  from batch_rl.data import replay_dataset  # pylint: disable=g-import-not-at-top
  from batch_rl.experiments import embedded_default  # pylint: disable=g-import-not-at-top
  replay = replay_dataset.open_replay(embedded_default.REPLAY_DIR, 1, 1, 0.99)
  replay.check_actions(2)  # CartPole's two actions.
  with pytest.raises(ReplayDataError,
                     match=r'checkpoint 0: action\[\d+\] = 1: the environment '
                     r'has 1 actions'):
    replay.check_actions(1)
