"""Offline policy selection: held-out split, held-out TD error, FQE, the CLI."""

import csv
import dataclasses
import functools
import glob
import json
import os
import shutil
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf
from dopamine.replay_memory import circular_replay_buffer

from batch_rl import cli
from batch_rl import command_line
from batch_rl import experiment
from batch_rl import policy_selection
from batch_rl.agents import dqn_agent
from batch_rl.agents import networks
from batch_rl.agents import optimizers
from batch_rl.data import dopamine_replay
from batch_rl.data import sources
from batch_rl.data import transitions
from batch_rl.data.replay_dataset import ReplayDataset
from batch_rl.data.replay_store import ReplayStore
from batch_rl.data.selection import DataSelection
from conftest import fill_dopamine_buffer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARTPOLE_REPLAY = os.path.join(REPO, 'batch_rl', 'experiments', 'data',
                               'cartpole_dqn_replay')


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


# ---- DataSelection.holdout_fraction ----


def test_holdout_splits_valid_transitions_and_training_never_sees_it():
  indices = np.arange(3, 1003, dtype=np.int32)
  selection = DataSelection(holdout_fraction=0.1, seed=5)
  kept, held_out = selection.split_holdout(indices)
  assert len(held_out) == 100 and len(kept) == 900
  np.testing.assert_array_equal(np.sort(np.concatenate([kept, held_out])),
                                indices)
  # Seeded: the same set again, another set for another seed.
  np.testing.assert_array_equal(selection.split_holdout(indices)[1], held_out)
  assert set(DataSelection(holdout_fraction=0.1, seed=6).split_holdout(
      indices)[1]) != set(held_out)
  np.testing.assert_array_equal(selection.subsample(indices), kept)
  half = DataSelection(holdout_fraction=0.1, seed=5, fraction=0.5)
  trained = half.subsample(indices)
  assert len(trained) == 450 and not set(trained) & set(held_out)


def test_no_holdout_keeps_the_previous_subsample():
  indices = np.arange(500, dtype=np.int32)
  kept, held_out = DataSelection().split_holdout(indices)
  assert kept is indices and not len(held_out)
  previous = np.sort(np.random.default_rng(3).choice(indices, 50, False))
  np.testing.assert_array_equal(
      DataSelection(fraction=0.1, seed=3).subsample(indices), previous)


@pytest.mark.parametrize('fraction', [-0.1, 1.0])
def test_holdout_fraction_out_of_range_is_rejected(fraction):
  with pytest.raises(ValueError, match='holdout_fraction must be in'):
    DataSelection(holdout_fraction=fraction)


# ---- Held-out TD error ----


def _numpy_q(network, states):
  """[B, A] Q-values of a single-output QHeadsNetwork with an MLP torso."""
  weights = network.get_weights()
  net = states.reshape(len(states), -1).astype(np.float64)
  for i in range(0, len(weights) - 2, 2):
    net = np.maximum(net @ weights[i] + weights[i + 1], 0.)
  return net @ weights[-2] + weights[-1]


@pytest.mark.parametrize('td_loss', ['huber', 'mse'])
def test_heldout_td_error_matches_numpy_reference(tmp_path, td_loss):
  stack_size, horizon, gamma = 4, 3, 0.9
  fill_dopamine_buffer(300, 400, stack_size=stack_size,
                       update_horizon=horizon, gamma=gamma,
                       terminal_prob=0.05, episode_end_prob=0.03).save(
                           str(tmp_path), 0)
  arrays = dopamine_replay.read_arrays(str(tmp_path), 0)
  store = ReplayStore.from_arrays([arrays])
  gin.parse_config(['QHeadsNetwork.torso = @MLPTorso',
                    'MLPTorso.hidden_units = (8,)'])
  agent = dqn_agent.DQNAgent(
      6, (5, 4), np.uint8, stack_size, update_horizon=horizon, gamma=gamma,
      optimizer_fn=functools.partial(optimizers.adam_optimizer, 1e-3, 1e-8),
      seed=0)
  rng = np.random.default_rng(0)
  for variable in agent.target_network.variables:  # Target != online.
    variable.assign(rng.normal(0, 0.3, variable.shape))
  held_out = DataSelection(holdout_fraction=0.2, seed=1).split_holdout(
      store.valid_indices(stack_size, horizon))[1]
  assert len(held_out) > 40
  # A batch size that leaves a partial last batch.
  replay = ReplayDataset(store, stack_size, horizon, gamma)
  got = policy_selection.mean_td_error(
      agent, replay.read(held_out, batch_size=7),
      dqn_agent.TD_LOSSES[td_loss])

  batch = transitions.gather_from_arrays(arrays, held_out, stack_size,
                                         horizon, gamma)
  reward = np.clip(batch['reward'], -1, 1)
  target = reward + gamma**horizon * (1 - batch['terminal']) * _numpy_q(
      agent.target_network, batch['next_state']).max(axis=1)
  q = _numpy_q(agent.online_network, batch['state'])
  error = np.abs(target - q[np.arange(len(q)), batch['action']])
  per_example = (np.where(error <= 1, 0.5 * error**2, error - 0.5)
                 if td_loss == 'huber' else error**2)
  assert np.abs(batch['reward']).max() > 1  # The clip matters.
  np.testing.assert_allclose(got, per_example.mean(), rtol=1e-5)


# ---- Fitted Q Evaluation ----

CHAIN_GAMMA = 0.9


def _chain_replay(path):
  """Chain 0 -> 1 -> 2 -> end under a uniform random behaviour policy.

  Action 1 moves right (reward 1; terminal from state 2), action 0 stays
  (reward 0.1). Episodes start in state 0 and are cut after 30 steps.
  """
  rng = np.random.default_rng(0)
  buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
      (3,), 1, 3000, 32, update_horizon=1, gamma=CHAIN_GAMMA,
      observation_dtype=np.float32)
  state, steps = 0, 0
  while buffer.add_count < 3000:
    action = int(rng.integers(2))
    terminal = state == 2 and action == 1
    steps += 1
    cut = not terminal and steps == 30
    buffer.add(np.eye(3, dtype=np.float32)[state], action,
               1.0 if action else 0.1, terminal, episode_end=cut)
    state = 0 if terminal or cut else state + action
    steps = 0 if terminal or cut else steps
  buffer.save(path, 0)
  return sources.open_store(path, DataSelection(), 1, 1)


def test_fqe_converges_to_the_value_of_a_fixed_policy(tmp_path):
  store = _chain_replay(str(tmp_path))
  # Right in states 0 and 2, stay in 1: V(0) = 1 + 0.9 * 0.1 / (1 - 0.9) = 1.9,
  # neither the optimal value (1 + 0.9 + 0.81) nor the behaviour's.
  policy = lambda states: tf.cast(  # pylint: disable=g-long-lambda
      tf.argmax(states[..., 0], axis=1) != 1, tf.int32)
  replay = ReplayDataset(store, 1, 1, CHAIN_GAMMA)
  starts = policy_selection.episode_start_indices(replay)
  initial_states = np.concatenate([
      b['state'].numpy() for b in replay.read(starts)])
  assert len(initial_states) > 50
  np.testing.assert_array_equal(initial_states[:, :, 0],
                                np.eye(3)[np.zeros(len(starts), int)])
  tf.random.set_seed(0)
  estimate = policy_selection.fitted_q_evaluation(
      policy,
      lambda name: networks.QHeadsNetwork(  # pylint: disable=g-long-lambda
          2, 1, torso=functools.partial(networks.MLPTorso, (32,)), name=name),
      replay.batches(64, seed=0,
                     elements=transitions.TRANSITION_ELEMENTS).unbatch(),
      initial_states, CHAIN_GAMMA, steps=1200, learning_rate=1e-3,
      target_update_period=25)
  assert estimate == pytest.approx(1.9, abs=0.02)
  # Rewards 0 (padding) to 1: every return lies in [0, 1 / (1 - gamma)].
  assert policy_selection.value_bounds(store, CHAIN_GAMMA) == pytest.approx(
      (0., 10.))


# ---- `select` on runs of the real runner ----

TINY_RUN = 'gin/testing/tiny_run.gin'
KEPT_CHECKPOINTS_AND_HOLDOUT = [
    'Runner.num_iterations = 3',
    'Runner.checkpoints_kept = 10',
    'create_runner.selection = @DataSelection()',
    'DataSelection.holdout_fraction = 0.1',
    'DataSelection.seed = 2',
]


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """Offline DQN on the shipped CartPole replay, 3 kept checkpoints."""
  base_dir = str(tmp_path_factory.mktemp('runs') / 'dqn_cartpole')
  gin.clear_config()
  experiment.register_all_agents()
  command_line.load_gin_configs(
      ['gin/classic/dqn.gin', TINY_RUN], KEPT_CHECKPOINTS_AND_HOLDOUT)
  experiment.create_runner('dqn', CARTPOLE_REPLAY, base_dir).run_experiment()
  gin.clear_config()
  return base_dir


def test_select_writes_one_finite_row_per_checkpoint(tiny_run, tmp_path,
                                                     capsys):
  out = str(tmp_path / 'selection')
  options = policy_selection.SelectionOptions(fqe_steps=40, max_heldout=600)
  assert policy_selection.run([tiny_run], out, options) == 0
  with open(os.path.join(out, 'selection.csv')) as f:
    rows = list(csv.DictReader(f))
  with open(os.path.join(tiny_run, 'metrics.csv')) as f:
    online = {r['iteration']: float(r['eval_return_mean'])
              for r in csv.DictReader(f)}
  assert [r['iteration'] for r in rows] == ['0', '1', '2']
  for row in rows:
    assert np.isfinite(float(row['heldout_td_error']))
    assert np.isfinite(float(row['fqe_estimate']))
    # pandas parses metrics.csv to within an ulp.
    assert float(row['eval_return_mean']) == pytest.approx(
        online[row['iteration']], rel=1e-12)
    # Trained with DataSelection.holdout_fraction: an honest held-out set.
    assert row['heldout_disjoint'] == 'True'
    assert row['fqe_in_bounds'] in ('True', 'False')
  # The checkpoints differ, so their TD errors do.
  assert len({row['heldout_td_error'] for row in rows}) == 3
  printed = capsys.readouterr().out
  assert 'ranked by FQE' in printed and 'Spearman' in printed


def test_select_scores_every_checkpoint_of_a_rem_bcq_run(tmp_path):
  base_dir = str(tmp_path / 'rem_bcq_cartpole')
  experiment.register_all_agents()
  command_line.load_gin_configs(
      ['gin/classic/rem_bcq.gin', TINY_RUN], KEPT_CHECKPOINTS_AND_HOLDOUT)
  experiment.create_runner('rem_bcq', CARTPOLE_REPLAY,
                           base_dir).run_experiment()
  gin.clear_config()
  out = str(tmp_path / 'selection')
  options = policy_selection.SelectionOptions(fqe_steps=40, max_heldout=300)
  assert policy_selection.run([base_dir], out, options) == 0
  with open(os.path.join(out, 'selection.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['iteration'] for r in rows] == ['0', '1', '2']
  for row in rows:
    assert np.isfinite(float(row['heldout_td_error']))
    assert np.isfinite(float(row['fqe_estimate']))


def test_select_errors_name_the_run(tiny_run, tmp_path, capsys):
  bare = tmp_path / 'bare_run'
  bare.mkdir()
  for name in ('run_info.json', 'metrics.csv'):
    (bare / name).write_bytes(open(os.path.join(tiny_run, name), 'rb').read())
  options = policy_selection.SelectionOptions()
  out = str(tmp_path / 'out')
  assert cli.call(
      lambda _: policy_selection.run([str(bare)], out, options), []) == 2
  error = capsys.readouterr().err
  assert f'{bare}/checkpoints: no iteration_N checkpoint' in error
  assert 'checkpoints_kept' in error
  assert not (bare / 'checkpoints').exists()  # Reading created nothing.

  os.symlink(os.path.join(tiny_run, 'checkpoints'), bare / 'checkpoints')
  info = json.loads((bare / 'run_info.json').read_text())
  del info['gin_config']
  (bare / 'run_info.json').write_text(json.dumps(info))
  assert cli.call(
      lambda _: policy_selection.run([str(bare)], out, options), []) == 2
  error = capsys.readouterr().err
  assert f'{bare}/run_info.json: missing keys [\'gin_config\']' in error

  assert cli.call(lambda _: policy_selection.run(
      [str(tmp_path / 'none')], out, options), []) == 2
  assert 'no such directory' in capsys.readouterr().err


def test_command_line_lists_its_flags_and_rejects_missing_ones():
  command = [sys.executable, '-m', 'batch_rl.policy_selection']
  usage = subprocess.run(command + ['--help'], capture_output=True,
                         text=True, cwd=REPO, check=False)
  assert '--fqe_steps' in usage.stdout and '--base_dirs' in usage.stdout
  missing = subprocess.run(command + ['--out=/nonexistent'],
                           capture_output=True, text=True, cwd=REPO,
                           check=False)
  assert missing.returncode == 2
  assert missing.stderr.strip() == 'error: missing flags: --base_dirs.'


def test_analysis_imports_no_agents_or_experiments():
  code = ('import sys; import batch_rl.analysis.__main__ as m; m.FLAGS.get_help(); '
          'import batch_rl.analysis.report, batch_rl.analysis.runs; '
          'loaded = [n for n in sys.modules if n.startswith(('
          '"tensorflow", "batch_rl.agents", "batch_rl.experiment"))]; '
          'assert not loaded, loaded')
  subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO)


def _copy_of_run(run_dir, copy, **info_changes):
  """`copy`: run_dir's run_info.json (with `info_changes`), metrics.csv and
  a copy of its checkpoints."""
  shutil.copytree(os.path.join(run_dir, 'checkpoints'), copy / 'checkpoints')
  shutil.copy(os.path.join(run_dir, 'metrics.csv'), copy / 'metrics.csv')
  with open(os.path.join(run_dir, 'run_info.json')) as f:
    info = json.load(f)
  (copy / 'run_info.json').write_text(json.dumps({**info, **info_changes}))
  return str(copy)


def _error_of(run_dirs, out, options, capsys):
  assert cli.call(lambda _: policy_selection.run(run_dirs, out, options),
                  []) == 2
  (line,) = capsys.readouterr().err.splitlines()
  return line


def test_select_errors_name_the_file_and_what_is_wrong(tiny_run, tmp_path,
                                                       capsys):
  out = str(tmp_path / 'out')
  options = policy_selection.SelectionOptions(fqe_steps=1, max_heldout=50)
  assert _error_of([tiny_run], out, dataclasses.replace(
      options, td_loss='l1'), capsys) == (
          "error: --td_loss 'l1' is not one of ['huber', 'mse'].")

  moved = _copy_of_run(tiny_run, tmp_path / 'moved',
                       replay_dir='elsewhere/replay')
  assert _error_of([moved], out, options, capsys) == (
      f"error: {moved}/run_info.json: replay_dir 'elsewhere/replay' does not "
      'exist here (a relative path is relative to where training ran); pass '
      '--replay_dir.')

  # A run of a continuous-action agent (its gin_config binds nothing else).
  continuous = _copy_of_run(tiny_run, tmp_path / 'continuous',
                            agent_name='ddpg', environment='mujoco:Hopper-v5',
                            gin_config="create_agent.agent_name = 'ddpg'")
  assert _error_of([continuous], out, options, capsys) == (
      f"error: {continuous}/run_info.json: agent 'ddpg' has continuous "
      'actions; policy selection scores agents with discrete actions.')

  other_data = str(tmp_path / 'other_data')
  os.makedirs(other_data)
  fill_dopamine_buffer(100, 60, stack_size=1, frame_shape=(5,)).save(
      other_data, 0)
  line = _error_of([tiny_run], out, dataclasses.replace(
      options, replay_dir=other_data), capsys)
  assert line.startswith(f'error: {other_data}/')
  assert line.endswith(
      'frames have shape (5,), but classic:CartPole-v1 emits (4,); is this '
      f'the replay of that environment? ({tiny_run}/run_info.json); pass the '
      "run's data with --replay_dir.")

  incomplete = _copy_of_run(tiny_run, tmp_path / 'incomplete')
  (index,) = glob.glob(f'{incomplete}/checkpoints/iteration_1/*.index')
  os.remove(index)
  assert _error_of([incomplete], out, options, capsys) == (
      f'error: {incomplete}/checkpoints/iteration_1: no tf_ckpt-1.index; the '
      'checkpoint is incomplete.')


def test_select_warns_when_the_held_out_set_was_trained_on(tiny_run, tmp_path,
                                                          capsys):
  # Another --holdout_fraction than the run's: its held-out set overlaps the
  # training data. Two runs are also ranked together.
  twin = _copy_of_run(tiny_run, tmp_path / 'twin')
  argv = policy_selection.FLAGS([
      'policy_selection', f'--base_dirs={tiny_run},{twin}',
      f'--out={tmp_path / "out"}', '--holdout_fraction=0.3', '--fqe_steps=1',
      '--max_heldout=50'])
  try:
    assert policy_selection.main(argv) == 0
  finally:
    policy_selection.FLAGS.unparse_flags()
  printed = capsys.readouterr().out
  for run_dir in (tiny_run, twin):
    assert (f'warning: {run_dir} trained on the held-out transitions; bind '
            'DataSelection.holdout_fraction when training for an honest '
            'held-out TD error.') in printed
  assert printed.count('checkpoints ranked by FQE estimate') == 3
  assert 'all runs: checkpoints ranked by FQE estimate' in printed


def test_summary_of_checkpoints_whose_fqe_all_diverged():
  rows = [{'run': 'r', 'iteration': i, 'fqe_estimate': 1e9 * i,
           'heldout_td_error': 0.1 * i, 'eval_return_mean': float(i),
           'fqe_in_bounds': False} for i in range(3)]
  assert np.isnan(policy_selection.spearman([], 'fqe_estimate'))
  text = policy_selection.summary(rows)
  assert 'FQE 1.000 (in bounds only, 0 of 3: nan)' in text
  assert text.count('(FQE outside the feasible returns: diverged)') == 3
