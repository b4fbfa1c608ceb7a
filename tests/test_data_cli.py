"""`python -m batch_rl.data`: JSON summaries and clean errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from batch_rl.data import __main__ as cli
from batch_rl.data import converted
from batch_rl.data import dopamine_replay
from batch_rl.data import episodes
from conftest import fill_dopamine_buffer


def test_info_summarizes_checkpoints(tmp_path, capsys):
  buffer = fill_dopamine_buffer(200, 60, seed=1)  # Not wrapped.
  buffer.save(str(tmp_path), 0)
  fill_dopamine_buffer(40, 130, seed=2).save(str(tmp_path), 1)  # Wrapped.
  assert cli.main(['info', str(tmp_path)]) == 0
  info = json.loads(capsys.readouterr().out)
  assert info['checkpoints'] == ['0', '1']
  assert info['observation_shape'] == [5, 4]
  assert info['observation_dtype'] == 'uint8'
  assert info['per_checkpoint']['0']['stored_slots'] == buffer.add_count
  # Returns of complete episodes, recomputed the slow way from the buffer.
  rewards, terminals = buffer._store['reward'], buffer._store['terminal']
  returns, total = [], 0.0
  for i in range(int(buffer.add_count)):
    total += rewards[i]
    if terminals[i]:
      returns.append(total)
      total = 0.0
  first = info['per_checkpoint']['0']
  assert first['complete_episodes'] == len(returns)
  assert first['episode_return']['mean'] == pytest.approx(np.mean(returns))
  assert first['episode_return']['max'] == pytest.approx(np.max(returns))


def test_info_names_checkpoints_alike_before_and_after_conversion(
    tmp_path, capsys):
  run, out = tmp_path / 'run', tmp_path / 'converted'
  os.makedirs(run)
  fill_dopamine_buffer(200, 60, seed=1).save(str(run), 0)
  fill_dopamine_buffer(40, 130, seed=2).save(str(run), 3)  # Wrapped.
  assert cli.main(['convert', str(run), str(out)]) == 0
  capsys.readouterr()

  def info(path):
    assert cli.main(['info', str(path)]) == 0
    return json.loads(capsys.readouterr().out)

  gz, compact = info(run), info(out)
  assert (gz['layout'], compact['layout']) == ('dopamine_gz', 'compact')
  assert gz['checkpoints'] == compact['checkpoints'] == ['0', '3']
  assert compact['per_checkpoint'] == gz['per_checkpoint']


def returns_of(arrays):
  """The returns `info` reports for one checkpoint logged alone."""
  (returns,), _ = episodes.logged_episode_returns(
      [arrays], [episodes.how_checkpoint_begins(None, arrays, None)])
  return returns


def test_episode_returns_skip_the_overwritten_first_episode():
  arrays = dopamine_replay.ReplayArrays(
      observation=np.zeros((6, 1, 1), np.uint8),
      action=np.zeros(6, np.int32),
      reward=np.array([1., 2., 4., 8., 16., 32.], np.float32),
      terminal=np.array([0, 1, 0, 0, 1, 0], np.uint8),
      add_count=8, invalid_range=np.array([2]))
  # Chronological order from the cursor (2): slots 2,3,4 | 5,0,1 ; the part
  # before the end at slot 4 lost its start, so only slots 5,0,1 count.
  np.testing.assert_allclose(returns_of(arrays), [32 + 1 + 2])


@pytest.mark.parametrize('argv, message', [
    (['info', '{missing}'], 'does not exist'),
    (['info', '{empty}'], 'no Dopamine replay checkpoints'),
    (['convert', '{run}', '{run}/inside'], 'outside the replay directory'),
])
def test_cli_errors_are_one_line_and_nonzero(tmp_path, argv, message):
  run = tmp_path / 'run'
  os.makedirs(run)
  fill_dopamine_buffer(40, 50).save(str(run), 0)
  os.makedirs(tmp_path / 'empty')
  paths = {'missing': tmp_path / 'nope', 'empty': tmp_path / 'empty',
           'run': run}
  argv = [a.format(**paths) for a in argv]
  result = subprocess.run([sys.executable, '-m', 'batch_rl.data', *argv],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('argv, message', [
    ([], 'expected a command, one of info, convert, export-rlds; got none.'),
    (['infos', '{run}'], "expected a command, one of info, convert, "
                         "export-rlds; got ['infos']."),
    (['info'], 'info takes REPLAY_DIR, got 0 arguments.'),
    (['convert', '{run}', '{out}', '--checkpoints=0,x'],
     '--checkpoints=0,x: expected integer suffixes, e.g. --checkpoints=0,3.'),
    (['convert', '{run}', '{out}', '--checkpoints=0,7'],
     '{run}: checkpoints [7] not found (it has [0, 1]).'),
    (['export-rlds', '{run}', '{out}', '--checkpoints=1'],
     '{run}: no episode to export in checkpoints [1] (only the rest of '
     'episodes whose start is in no checkpoint given).'),
    (['export-rlds', '{run}', '{foreign}'],
     '{foreign}/dopamine_replay/1.0.0: already holds a dataset not exported '
     'by batch_rl (no readable batch_rl_export_source.json); remove it or '
     'choose another out_dir.'),
])
def test_usage_and_data_errors_are_one_line(tmp_path, capsys, argv, message):
  run, foreign = tmp_path / 'run', tmp_path / 'foreign'
  os.makedirs(run)
  fill_dopamine_buffer(40, 50).save(str(run), 0)
  # Checkpoint 1: the middle of one long episode, begun in no checkpoint.
  fill_dopamine_buffer(40, 70, terminal_prob=0).save(str(run), 1)
  os.makedirs(foreign / 'dopamine_replay' / '1.0.0')
  open(foreign / 'dopamine_replay' / '1.0.0' / 'features.json', 'w').close()
  paths = {'run': run, 'out': tmp_path / 'out', 'foreign': foreign}
  assert cli.main([a.format(**paths) for a in argv]) == 2
  errors = [line for line in capsys.readouterr().err.splitlines()
            if 'error' in line]  # The rest is a progress bar.
  assert errors == ['error: ' + message.format(**paths)]
  assert not os.path.exists(tmp_path / 'out' / 'dopamine_replay' / '1.0.0')
  assert not converted.is_converted(str(tmp_path / 'out'))


def test_export_rlds_writes_the_checkpoints_given(tmp_path, capsys):
  os.makedirs(tmp_path / 'run')
  fill_dopamine_buffer(40, 50).save(str(tmp_path / 'run'), 0)
  fill_dopamine_buffer(40, 30, seed=1).save(str(tmp_path / 'run'), 1)
  assert cli.main(['export-rlds', str(tmp_path / 'run'), str(tmp_path / 'out'),
                   '--checkpoints=1', '--stack_size=4']) == 0
  path = tmp_path / 'out' / 'dopamine_replay' / '1.0.0'
  assert capsys.readouterr().out == (
      'wrote RLDS dataset; read it with tfds.builder_from_directory('
      f"'{path}')\n")
  assert list(tfds.builder_from_directory(str(path)).info.splits) == [
      'checkpoint_01']


def test_cli_reports_truncated_file(tmp_path, capsys):
  fill_dopamine_buffer(40, 50).save(str(tmp_path), 0)
  path = dopamine_replay.checkpoint_filename(str(tmp_path), '$store$_terminal',
                                             0)
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:20])
  assert cli.main(['info', str(tmp_path)]) == 2
  assert 'terminal_ckpt.0.gz: truncated or corrupt' in capsys.readouterr().err


def test_a_buffer_filled_exactly_to_capacity_keeps_its_first_episode():
  arrays = dopamine_replay.ReplayArrays(
      observation=np.zeros((4, 1, 1), np.uint8),
      action=np.zeros(4, np.int32),
      reward=np.array([1., 2., 4., 8.], np.float32),
      terminal=np.array([0, 1, 0, 1], np.uint8),
      add_count=4, invalid_range=np.array([0]))
  assert arrays.is_full and not arrays.has_wrapped
  np.testing.assert_allclose(returns_of(arrays), [3., 12.])
