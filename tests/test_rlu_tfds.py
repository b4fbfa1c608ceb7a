"""RL Unplugged Atari prepared by TFDS's own builders, read as replay.

The datasets are made as TFDS makes the real ones (`rlu_builders`: RL
Unplugged-format tfrecords run through TFDS's rlu_atari_checkpoints_ordered
and rlu_atari builder code). The transitions batch_rl samples are compared
with a reference that enumerates them straight from the episodes.
"""

import json
import os
import threading

import gin
import numpy as np
import pytest

from batch_rl.data import __main__ as data_cli
from batch_rl.data import gz_cache
from batch_rl.data import replay_dataset
from batch_rl.data import rlds_io
from batch_rl.data import rlu
from batch_rl.data import transitions
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection
from conftest import reference_transitions
from conftest import sampled_transitions
from conftest import wait_until_told_to_wait_for_the_lock
import rlu_builders

STACK = 4
GAMMA = 0.9
CONFIG = 'Pong_run_1'
# Per checkpoint, episodes (steps, ending) in play order. A 'terminal'
# episode's last step holds only the terminal observation (RL Unplugged's
# discount 0); a 'truncated' one ends on a real step with no next frame.
PLAN = {
    0: [(6, 'terminal'), (5, 'truncated'), (7, 'terminal')],
    1: [(2, 'terminal'), (8, 'truncated'), (3, 'truncated')],
    2: [(5, 'truncated'), (1, 'terminal'), (6, 'terminal')],
}


@pytest.fixture(scope='module')
def rlu_data(tmp_path_factory):
  """Episodes per checkpoint, and both datasets prepared by TFDS."""
  root = tmp_path_factory.mktemp('rlu')
  rng = np.random.default_rng(0)
  episodes = {
      c: [(rng.integers(0, 256, (steps, 84, 84), dtype=np.uint8),
           rng.integers(0, 6, steps), rng.normal(size=steps).astype(
               np.float32), ending) for steps, ending in plan]
      for c, plan in PLAN.items()}
  data_dir = rlu_builders.prepare(str(root), [episodes[c] for c in PLAN])
  return episodes, data_dir


@pytest.fixture(scope='module')
def shared_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp('cache'))


def _bind(data_dir, cache_dir):
  """TFDS data dir and cache given as gin arguments, as a run gives them."""
  gin.bind_parameter('tfds_replay.data_dir', data_dir)
  gin.bind_parameter('tfds_replay.cache_dir', cache_dir)
  return rlu.TFDSReplayOptions()


@pytest.fixture
def options(rlu_data, shared_cache):
  """Conversions shared by the tests that only read them."""
  yield _bind(rlu_data[1], shared_cache)
  gin.clear_config()


@pytest.fixture
def fresh_options(rlu_data, tmp_path):
  yield _bind(rlu_data[1], str(tmp_path / 'cache'))
  gin.clear_config()


def _reference(episodes, update_horizon):
  """The episodes' transitions (conftest.reference_transitions): an RL
  Unplugged terminal episode's last step is only the terminal observation."""
  return reference_transitions(
      [(frames[:len(frames) - (ending == 'terminal')],
        actions[:len(frames) - (ending == 'terminal')].astype(np.int32),
        rewards, ending == 'terminal')
       for frames, actions, rewards, ending in episodes],
      STACK, update_horizon, GAMMA)


def _sampled(replay_dir, update_horizon, selection=None):
  return sampled_transitions(replay_dir, STACK, update_horizon, GAMMA,
                             selection)


def test_cache_dir_defaults_to_the_gz_cache_s(tmp_path, monkeypatch):
  monkeypatch.setenv(gz_cache.CACHE_ENV, str(tmp_path / 'env'))
  assert rlu.TFDSReplayOptions().resolved_cache_dir() == str(tmp_path / 'env')
  try:
    gin.bind_parameter('GzReplayCache.cache_dir', str(tmp_path / 'gz'))
    assert rlu.TFDSReplayOptions().resolved_cache_dir() == str(tmp_path / 'gz')
    gin.bind_parameter('tfds_replay.cache_dir', str(tmp_path / 'rlu'))
    assert rlu.TFDSReplayOptions().resolved_cache_dir() == str(
        tmp_path / 'rlu')
  finally:
    gin.clear_config()


@pytest.mark.parametrize('update_horizon', [1, 3])
@pytest.mark.parametrize('name', ['rlu_atari_checkpoints_ordered',
                                  'rlu_atari'])
def test_each_checkpoint_gives_exactly_its_episodes_transitions(
    rlu_data, options, name, update_horizon):
  del options
  episodes, _ = rlu_data
  compared = 0
  for checkpoint, checkpoint_episodes in episodes.items():
    want = _reference(checkpoint_episodes, update_horizon)
    got = _sampled(f'tfds:{name}/{CONFIG}', update_horizon,
                   DataSelection(checkpoints=[checkpoint]))
    assert got == want, (name, checkpoint)
    compared += len(want)
  assert compared >= 25  # Not vacuous.


def test_slot_layout_of_checkpoint_0_by_hand(rlu_data):
  """Padding is never a transition (after a truncation, Dopamine's rules
  alone would sample states ending in it) and the buffer's end is no write
  cursor (a split's last terminal transitions are kept)."""
  episodes, _ = rlu_data
  sink = rlu._ArraySink()
  mapper = rlds_io.SlotMapper(STACK, sink, 'test')
  for frames, actions, rewards, ending in episodes[0]:
    last = np.arange(len(actions)) == len(actions) - 1
    mapper.add({'action': actions, 'reward': rewards,
                'is_first': np.arange(len(actions)) == 0, 'is_last': last,
                'is_terminal': last & (ending == 'terminal')})
  metadata = mapper.close()
  arrays = sink.arrays(metadata, (84, 84), np.uint8)
  # Terminal (6 steps, 5 slots), truncated (5 slots), terminal (6 slots).
  pad = STACK - 1
  np.testing.assert_array_equal(arrays.terminal.nonzero()[0],
                                [pad + 4, 3 * pad + 15])
  np.testing.assert_array_equal(metadata.episode_end_indices,
                                [pad + 4, 2 * pad + 9, 3 * pad + 15])
  np.testing.assert_array_equal(
      metadata.invalid_range,
      np.concatenate([np.arange(pad) + start for start in (0, 5 + pad,
                                                           10 + 2 * pad)]))
  assert metadata.add_count == arrays.capacity == 3 * pad + 16
  valid = np.flatnonzero(transitions.valid_mask(arrays, STACK, 1))
  assert 3 * pad + 15 in valid  # The split's last (terminal) transition.
  assert not {2 * pad + 9, 2 * pad + 10, 2 * pad + 11, 2 * pad + 12} & set(
      valid)  # Truncated episode's last step, the next episode's padding.


def test_selection_applies_to_checkpoints_and_transitions(rlu_data, options):
  del options
  episodes, _ = rlu_data
  name = f'tfds:rlu_atari/{CONFIG}'
  first_two = _reference(episodes[0] + episodes[1], 1)
  assert _sampled(name, 1, DataSelection(first_k=2)) == first_two
  assert _sampled(name, 1, DataSelection(last_k=1)) == _reference(
      episodes[2], 1)
  everything = _reference(sum(episodes.values(), []), 1)
  half = _sampled(name, 1, DataSelection(fraction=0.5, seed=3))
  assert len(half) == round(0.5 * len(everything))
  assert set(half) <= set(everything)


def test_three_ways_to_name_a_dataset_share_one_conversion(
    rlu_data, fresh_options, monkeypatch):
  _, data_dir = rlu_data
  config_dir = os.path.join(data_dir, 'rlu_atari_checkpoints_ordered', CONFIG)
  names = [f'tfds:rlu_atari_checkpoints_ordered/{CONFIG}',
           f'tfds:rlu_atari_checkpoints_ordered/{CONFIG}:1.1.0',
           config_dir, os.path.join(config_dir, '1.1.0')]
  assert {rlu.resolve(n, data_dir) for n in names} == {
      os.path.join(config_dir, '1.1.0')}
  want = _sampled(names[0], 1)
  # Converted once: later opens never decode.
  monkeypatch.setattr(rlds_io, 'step_chunks', None)
  for name in names[1:]:
    assert _sampled(name, 1) == want
  caches = os.path.join(fresh_options.cache_dir, 'tfds',
                        'rlu_atari_checkpoints_ordered', CONFIG, '1.1.0')
  assert len([n for n in os.listdir(caches)
              if os.path.isdir(os.path.join(caches, n))]) == 1


def test_a_second_converter_waits_for_the_cache_lock_and_names_its_holder(
    rlu_data, fresh_options, capsys):
  replay_dir = f'tfds:rlu_atari_checkpoints_ordered/{CONFIG}'
  cache = rlu._cache_path(rlu.resolve(replay_dir, rlu_data[1]), STACK,
                          fresh_options.resolved_cache_dir())
  converted = {}
  with gz_cache.CacheLock(cache):  # Another process is converting.
    waiter = threading.Thread(target=lambda: converted.update(result=rlu.convert(
        replay_dir, STACK, options=fresh_options, progress=False)))
    waiter.start()
    wait_until_told_to_wait_for_the_lock(capsys, cache)
    assert waiter.is_alive() and not os.path.exists(cache)
  waiter.join(60)
  assert converted['result'] == (cache, [0, 1, 2])


def test_info_summarizes_episodes_and_transitions(rlu_data, capsys):
  episodes, data_dir = rlu_data
  assert data_cli.main(['info', f'tfds:rlu_atari/{CONFIG}',
                        '--tfds_data_dir', data_dir,
                        '--update_horizon', '3']) == 0
  info = json.loads(capsys.readouterr().out)
  assert info['layout'] == 'tfds'
  assert info['checkpoints'] == ['0', '1', '2']
  for checkpoint, checkpoint_episodes in episodes.items():
    summary = info['per_checkpoint'][str(checkpoint)]
    # An episode of only a terminal observation holds no step.
    assert summary['complete_episodes'] == sum(
        len(actions) > (ending == 'terminal')
        for _, actions, _, ending in checkpoint_episodes)
    assert summary['valid_transitions'] == len(
        _reference(checkpoint_episodes, 3))
  assert info['observation_shape'] == [84, 84]
  returns = [r.sum() - (e == 'terminal') * r[-1]
             for _, _, r, e in sum(episodes.values(), [])]
  assert info['episode_return']['max'] == pytest.approx(max(returns),
                                                        rel=1e-5)


@pytest.mark.parametrize('replay_dir, match', [
    ('tfds:rlu_atari_checkpoints_ordered/Nope_run_1', 'no prepared TFDS'),
    ('tfds:rlu_atari_checkpoints_ordered/Pong_run_1:9.9.9',
     r'version 9.9.9 is not prepared.*1\.1\.0'),
])
def test_unknown_dataset_is_named(rlu_data, options, replay_dir, match):
  del rlu_data, options
  with pytest.raises(ReplayDataError, match=match):
    replay_dataset.open_replay(replay_dir, STACK, 1, 0.99)


@pytest.mark.parametrize('name, build', [
    ('rlu_atari/Pong_run_1', 'tfds build rlu_atari --config Pong_run_1'),
    ('rlu_atari_checkpoints_ordered/Breakout_run_2',
     'tfds build rlu_atari_checkpoints_ordered --config Breakout_run_2'),
])
def test_an_unprepared_dataset_names_the_command_that_prepares_it(
    tmp_path, name, build):
  with pytest.raises(ReplayDataError, match=f'no prepared TFDS.*`{build}`'):
    rlu.resolve(f'tfds:{name}', str(tmp_path))


def test_missing_data_dir_is_named(tmp_path):
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(ReplayDataError, match=f'{missing} does not exist'):
    rlu.resolve('tfds:rlu_atari/Pong_run_1', missing)
  assert data_cli.main(['info', 'tfds:rlu_atari/Pong_run_1',
                        '--tfds_data_dir', missing]) == 2


def test_dataset_without_checkpoints_is_named(tmp_path, options):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'no_checkpoints' / '1.0.0')
  os.makedirs(path)
  info = tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(
          name='no_checkpoints', version=tfds.core.Version('1.0.0'),
          data_dir=path, module_name=__name__),
      features=tfds.features.FeaturesDict({'steps': tfds.features.Dataset({
          'observation': np.float32, 'action': np.int64,
          'reward': np.float32, 'is_first': np.bool_, 'is_last': np.bool_,
          'is_terminal': np.bool_})}))
  writer = tfds.core.SequentialWriter(info, max_examples_per_shard=10)
  writer.initialize_splits(['test'])
  writer.add_examples({'test': [{'steps': {
      'observation': [1.], 'action': [0], 'reward': [0.], 'is_first': [True],
      'is_last': [True], 'is_terminal': [False]}}]})
  writer.close_all()
  with pytest.raises(ReplayDataError, match=r"splits \['test'\]"):
    rlu.open_store(os.path.dirname(path), DataSelection(), STACK, options)


@pytest.mark.parametrize('name', ['rlu_atari_checkpoints_ordered',
                                  'rlu_atari'])
def test_interrupted_conversion_resumes(rlu_data, fresh_options, monkeypatch,
                                        name):
  """Interrupted while writing its second split (ordered) or its only one
  (rlu_atari): nothing incomplete is published, and the next run finishes
  the conversion."""
  original = rlds_io.step_chunks
  written = []

  def fail_while_writing(builder, split, observations=True, **kwargs):
    chunks = original(builder, split, observations, **kwargs)
    if not observations:  # The counting pass.
      yield from chunks
      return
    written.append(split)
    if len(written) < 2 and split != 'train':
      yield from chunks
      return
    yield next(chunks)
    raise KeyboardInterrupt

  monkeypatch.setattr(rlds_io, 'step_chunks', fail_while_writing)
  replay_dir = f'tfds:{name}/{CONFIG}'
  with pytest.raises(KeyboardInterrupt):
    rlu.convert(replay_dir, STACK, options=fresh_options, progress=False)
  published = [name for _, dirs, _ in os.walk(fresh_options.cache_dir)
               for name in dirs if name.startswith('ckpt_') and
               not name.endswith('.partial')]
  assert published == (['ckpt_0'] if name == 'rlu_atari_checkpoints_ordered'
                       else [])
  monkeypatch.setattr(rlds_io, 'step_chunks', original)
  _, chosen = rlu.convert(replay_dir, STACK, options=fresh_options,
                          progress=False)
  assert chosen == [0, 1, 2]
  assert _sampled(replay_dir, 1) == _reference(
      sum(rlu_data[0].values(), []), 1)
