"""Continuous logging runs (DDPG/TD3 online) in the one Runner.

`python -m batch_rl.log_data` with gin/baselines/mujoco.gin: every played
transition logged, resumable runs that log exactly what an uninterrupted
run logs, SIGTERM at an episode boundary, the episode count it reports.
"""

import collections
import os
import re
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import pytest

from batch_rl import cli
from batch_rl import log_data
from batch_rl import train
from batch_rl.data import dopamine_replay
from batch_rl.data import rlds_io
from batch_rl.data import summary
from batch_rl.data import transitions
from batch_rl.run_directory import RunDirectory
from conftest import assert_same_logging_run
from conftest import continuous_logging_config
from conftest import exported_episodes
from conftest import log_continuous_replay

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A TD3 run that trains: 3 iterations of three 50-step Pendulum episodes,
# random actions for 100 steps, 128-slot replay checkpoints.
TRAINING_RUN = dict(environment='Pendulum-v1', steps_per_iteration=150,
                    replay_capacity=128, random_steps=100, iterations=3,
                    agent_name='td3', max_episode_steps=50)


def checkpoints(base_dir):
  replay_dir = RunDirectory(str(base_dir)).replay_logs_path
  return [dopamine_replay.read_arrays(replay_dir, suffix)
          for suffix in dopamine_replay.list_checkpoints(replay_dir)]


def sampleable_transitions(arrays_list):
  """(state, action, reward, next state, terminal) of every transition
  Dopamine's sampler can return, counted."""
  keys = []
  for arrays in arrays_list:
    indices = np.flatnonzero(transitions.valid_mask(arrays, 1, 1))
    b = transitions.gather_from_arrays(arrays, indices, 1, 1, 0.99)
    keys += [(b['state'][i].tobytes(), b['action'][i].tobytes(),
              float(b['reward'][i]), b['next_state'][i].tobytes(),
              int(b['terminal'][i])) for i in range(len(indices))]
  return collections.Counter(keys)


@pytest.fixture(scope='module')
def uninterrupted_run(tmp_path_factory):
  base_dir = tmp_path_factory.mktemp('uninterrupted')
  runner = log_continuous_replay(base_dir, **TRAINING_RUN)
  return base_dir, runner


def test_the_logging_run_writes_every_transition_it_plays(tmp_path):
  """Two iterations of two 50-step Pendulum episodes, random actions."""
  runner = log_continuous_replay(tmp_path, 'Pendulum-v1', 75, 64,
                                 iterations=2, max_episode_steps=50)
  assert runner.agent.acting_steps == 200
  assert [s['train_episodes'] for s in runner.summaries] == [2, 2]
  logged = checkpoints(tmp_path)
  # 200 transitions plus a final-observation slot per (time-limit) episode
  # and one per episode cut by a checkpoint boundary, in 64-slot files.
  assert len(logged) == 4 and logged[-1].add_count < 64
  assert sum(sampleable_transitions(logged).values()) == 200
  assert all(np.abs(a.action).max() <= 1.0 for a in logged)
  # Rewards in the replay are the environment's: they sum to the returns.
  played = sum(s['train_return_mean'] * s['train_episodes']
               for s in runner.summaries)
  logged_sum = sum(a.reward[:a.add_count].astype(np.float64).sum()
                   for a in logged)
  assert logged_sum == pytest.approx(played, rel=1e-5)
  run = RunDirectory(str(tmp_path))
  assert run.read_run_info()['replay_capacity'] == 64
  assert [int(r['iteration']) for r in run.read_metrics()] == [0, 1]


def test_one_logging_command_runs_continuous_agents(tmp_path, capsys):
  """`python -m batch_rl.log_data` (its main, in this process): the agent
  from the gin file, the run's settings from gin bindings."""
  gin_files, bindings = continuous_logging_config('Pendulum-v1', 400, 256)
  gin.clear_config()
  argv = log_data.FLAGS(
      ['log_data', f'--base_dir={tmp_path}']
      + [f'--gin_files={name}' for name in gin_files]
      + [f'--gin_bindings={binding}' for binding in bindings])
  try:
    assert log_data.main(argv) == 0
  finally:
    log_data.FLAGS.unparse_flags()
    gin.clear_config()
  assert [row['iteration'] for row in RunDirectory(
      str(tmp_path)).read_metrics()] == ['0']
  assert RunDirectory(str(tmp_path)).read_run_info()['agent_name'] == 'ddpg'
  replay_dir = RunDirectory(str(tmp_path)).replay_logs_path
  assert dopamine_replay.list_checkpoints(replay_dir) == [0, 1]
  assert (f'logged 2 episodes (400 agent steps) in {replay_dir}'
          in capsys.readouterr().out)


def test_a_resumed_logging_run_logs_as_an_uninterrupted_one(
    uninterrupted_run, tmp_path):
  """TD3 trains from agent step 101 on; the run stops after iteration 0
  (whose partial last buffer it logs) and is resumed to 3 iterations."""
  want_dir, want = uninterrupted_run
  assert want.agent.gradient_steps > 0
  first = log_continuous_replay(tmp_path, **dict(TRAINING_RUN, iterations=1))
  assert first.rows[0] == want.rows[0] | {'wall_time_s':
                                          first.rows[0]['wall_time_s']}
  resumed = log_continuous_replay(tmp_path, **TRAINING_RUN)
  assert resumed.start_iteration == 1
  assert resumed.summaries == want.summaries
  assert_same_logging_run(tmp_path, want_dir)


def test_sigterm_stops_the_logging_run_at_an_episode_and_it_resumes(
    uninterrupted_run, tmp_path):
  want_dir, _ = uninterrupted_run
  gin_files, bindings = continuous_logging_config(**TRAINING_RUN)
  logger = subprocess.Popen(
      [sys.executable, '-m', 'batch_rl.log_data', f'--base_dir={tmp_path}',
       *[f'--gin_files={f}' for f in gin_files],
       *[f'--gin_bindings={b}' for b in bindings]],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  first_checkpoint = os.path.join(tmp_path, 'checkpoints', 'iteration_0')
  deadline = time.time() + 240
  while time.time() < deadline and not os.path.isdir(first_checkpoint):
    time.sleep(0.01)
  logger.send_signal(signal.SIGTERM)
  _, stderr = logger.communicate(timeout=120)
  assert logger.returncode == 128 + signal.SIGTERM, stderr
  last_line = stderr.strip().splitlines()[-1]
  assert re.fullmatch(
      r'stopped by SIGTERM: [12] of 3 iterations finished and checkpointed '
      rf'in {tmp_path}; rerun the command to resume after iteration [01]\.',
      last_line), stderr
  resumed = log_continuous_replay(tmp_path, **TRAINING_RUN)
  assert resumed.start_iteration in (1, 2)
  assert_same_logging_run(tmp_path, want_dir)


def test_hopper_episode_count_is_the_episodes_played(tmp_path, capsys):
  """Random Hopper episodes end in a terminal (it falls) long before the
  time limit; 1,000-slot checkpoints cut some of them in two. The count the
  run reports is the episodes played: the terminals in the replay, `info`'s
  complete episodes (the log ends in a terminal: none unfinished) and the
  episodes export-rlds writes, with the run's returns."""
  runner = log_continuous_replay(tmp_path, 'Hopper-v5', 1500, 1000)
  episodes = sum(s['train_episodes'] for s in runner.summaries)
  logged = checkpoints(tmp_path)
  assert len(logged) == 2
  assert episodes == sum(int(a.terminal[:a.add_count].sum()) for a in logged)
  replay_dir = RunDirectory(str(tmp_path)).replay_logs_path
  info = summary.summarize(replay_dir, stack_size=1)
  assert (info['complete_episodes'], info['unfinished_episodes_at_end']) == (
      episodes, 0)
  total_return = sum(s['train_return_mean'] * s['train_episodes']
                     for s in runner.summaries)
  assert info['episode_return']['mean'] * episodes == pytest.approx(
      total_return, rel=1e-4)
  exported = list(exported_episodes(rlds_io.export_to_rlds(
      replay_dir, str(tmp_path / 'rlds'), stack_size=1, progress=False)))
  assert len(exported) == episodes
  assert all(steps['is_terminal'][-1] for _, steps in exported)
  assert sum(meta['episode_return'] for meta, _ in exported) == (
      pytest.approx(total_return, rel=1e-4))
  assert sum(sampleable_transitions(logged).values()) == (
      runner.agent.acting_steps)
  assert f'logged {episodes} episodes ({runner.agent.acting_steps} agent ' \
      'steps)' in capsys.readouterr().out


def test_logging_refuses_offline_only_agents(tmp_path):
  with pytest.raises(ValueError, match='--agent_name=bcq: continuous logging'):
    log_continuous_replay(tmp_path, 'Pendulum-v1', 10, 256,
                          agent_name='bcq')
  with pytest.raises(ValueError, match=re.escape(
      'DDPGAgent.update_horizon=3: a continuous logging run samples one-step '
      'transitions; use 1.')):
    log_continuous_replay(tmp_path, 'Pendulum-v1', 10, 256,
                          bindings=['DDPGAgent.update_horizon=3'])


def test_training_before_any_complete_transition_names_the_binding(
    tmp_path):
  # min_replay_history = RANDOM_STEPS = 0: a gradient step after the first
  # agent step, whose transition awaits its next state.
  with pytest.raises(ValueError, match=re.escape(
      'The replay holds no complete transition yet (1 slot(s) await their '
      'next state); sample after more steps, e.g. with '
      'OnlineAgent.min_replay_history >= 1.')):
    log_continuous_replay(tmp_path / 'zero', 'Pendulum-v1', 10, 256,
                          random_steps=0)
  runner = log_continuous_replay(tmp_path / 'one', 'Pendulum-v1', 10, 256,
                                 random_steps=1, max_episode_steps=10)
  assert runner.agent.gradient_steps > 0


def test_resuming_with_another_replay_capacity_names_the_saved_replay(
    tmp_path):
  log_continuous_replay(tmp_path, 'Pendulum-v1', 10, 64, max_episode_steps=10)
  saved = tmp_path / 'checkpoints' / 'iteration_0' / 'episode_replay-0.npz'
  with pytest.raises(ValueError, match=re.escape(
      f"{saved}: the saved replay's observation is float32[64, 3], this "
      "one's float32[32, 3] (capacity, observation_dim, action_dim); was it "
      'saved with other settings?')):
    log_continuous_replay(tmp_path, 'Pendulum-v1', 10, 32, iterations=2,
                          max_episode_steps=10)


@pytest.mark.parametrize('main', [log_data.main, train.main])
def test_positional_arguments_are_refused_naming_them(main, capsys):
  assert cli.call(main, ['prog', 'Pendulum-v1']) == 2
  assert capsys.readouterr().err == (
      "error: unexpected arguments ['Pendulum-v1']; flags are --name=value.\n")
