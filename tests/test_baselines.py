"""Online logging baselines: replay checkpoints, the online loop, the CLI."""

import collections
import os
import subprocess

import gin
import numpy as np
import pytest
from conftest import exported_episodes
from conftest import reference_transitions
from conftest import sampled_transitions
from dopamine.replay_memory import circular_replay_buffer

from batch_rl import command_line
from batch_rl import experiment
from batch_rl import log_data
from batch_rl import run_directory
from batch_rl.baselines.logged_replay_buffer import LoggedReplayBuffer
from batch_rl.baselines.online_agent import OnlineAgent
from batch_rl.data import dopamine_replay
from batch_rl.data import replay_dataset
from batch_rl.data import rlds_io
from batch_rl.data import summary
from batch_rl.data import transitions
from batch_rl.data.episodes import STARTS
from batch_rl.data.episodes import EpisodeJoiner
from batch_rl.data.episodes import stored_episodes
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.selection import DataSelection
from conftest import assert_same_logging_run
from conftest import load_fault_campaign
from conftest import wait_for_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME_SHAPE = (5, 4)
GAMMA = 0.99
GIN_FILE = os.path.join(REPO, 'gin', 'baselines', 'cartpole_dqn.gin')
campaign = load_fault_campaign()


def frozen_copy(buffer):
  """A plain dopamine-rl buffer holding `buffer`'s current content."""
  copy = circular_replay_buffer.OutOfGraphReplayBuffer(
      FRAME_SHAPE, buffer._stack_size, buffer.replay_capacity, batch_size=1,
      update_horizon=buffer._update_horizon, gamma=buffer._gamma)
  copy._store = {name: array.copy() for name, array in buffer._store.items()}
  copy.add_count = np.array(buffer.add_count)
  copy.invalid_range = np.array(buffer.invalid_range)
  copy.episode_end_indices = set(buffer.episode_end_indices)
  return copy


class SnapshottingBuffer(LoggedReplayBuffer):
  """Keeps a copy of the live buffer at each moment it logs a checkpoint."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.snapshots = {}

  def _write_log(self, suffix, add_count):
    super()._write_log(suffix, add_count)
    self.snapshots[suffix] = frozen_copy(self)


def fill(buffer, num_adds, seed=0, episodes=None):
  """Adds random episodes (terminals and time-limit cuts); returns the slots
  Dopamine's padding rule puts in the buffer, in order, as frames.

  `episodes`, a list, gets the episodes played as dicts of their steps'
  frames, actions, rewards and slots (in the stream) and how they ended:
  'terminal', 'cut' or 'running' (the last one, cut off by the end).
  """
  rng = np.random.default_rng(seed)
  stream, episode_start = [], True
  for _ in range(num_adds):
    if episode_start:
      stream += [np.zeros(FRAME_SHAPE, np.uint8)] * (buffer._stack_size - 1)
      if episodes is not None:
        episodes.append({'frames': [], 'actions': [], 'rewards': [],
                         'slots': [], 'ending': 'running'})
    frame = rng.integers(1, 256, FRAME_SHAPE, dtype=np.uint8)
    terminal = rng.random() < 0.1
    cut = not terminal and rng.random() < 0.05
    action, reward = rng.integers(6), rng.normal()
    buffer.add(frame, action, reward, terminal, episode_end=cut)
    stream.append(frame)
    episode_start = terminal or cut
    if episodes is not None:
      for name, value in (('frames', frame), ('actions', action),
                          ('rewards', reward), ('slots', len(stream) - 1)):
        episodes[-1][name].append(value)
      if episode_start:
        episodes[-1]['ending'] = 'terminal' if terminal else 'cut'
  return np.stack(stream)


def assert_same_transitions(logged, live, indices):
  batch = logged.sample_transition_batch(len(indices), indices)
  expected = live.sample_transition_batch(len(indices), indices)
  for name, got, want in zip(transitions.TRANSITION_ELEMENTS, batch, expected):
    np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize('stack_size, update_horizon', [(4, 1), (1, 1),
                                                        (4, 3)])
def test_logged_checkpoints_hold_the_live_buffer(tmp_path, stack_size,
                                                 update_horizon):
  capacity = 40
  buffer = SnapshottingBuffer(
      str(tmp_path), FRAME_SHAPE, stack_size, replay_capacity=capacity,
      update_horizon=update_horizon)
  fill(buffer, 150)
  full = sorted(buffer.snapshots)
  assert full == list(range(int(buffer.add_count) // capacity))
  for suffix in full:
    live = buffer.snapshots[suffix]
    assert live.add_count == (suffix + 1) * capacity
    logged = dopamine_replay.load_checkpoint(str(tmp_path), suffix, stack_size,
                                             update_horizon)
    valid = [i for i in range(capacity) if live.is_valid_transition(i)]
    assert list(logged.valid_indices) == valid
    assert_same_transitions(logged, live, valid)

  # The partial last buffer: only the slots added since the last wrap.
  live = frozen_copy(buffer)
  last = buffer.log_final_buffer()
  assert last == full[-1] + 1
  logged = dopamine_replay.load_checkpoint(str(tmp_path), last, stack_size,
                                           update_horizon)
  cursor = int(buffer.add_count) % capacity
  assert logged.arrays.add_count == cursor
  valid = [i for i in range(stack_size - 1, cursor - update_horizon)
           if live.is_valid_transition(i)]
  assert list(logged.valid_indices) == valid
  assert_same_transitions(logged, live, valid)


@pytest.mark.parametrize('num_adds', [57, 60])
def test_every_slot_is_logged_once_in_order(tmp_path, num_adds):
  capacity = 10
  buffer = LoggedReplayBuffer(str(tmp_path), FRAME_SHAPE, 4,
                              replay_capacity=capacity)
  stream = fill(buffer, num_adds)
  assert len(stream) == buffer.add_count
  num_full = len(stream) // capacity
  assert dopamine_replay.list_checkpoints(str(tmp_path)) == list(
      range(num_full))
  last = buffer.log_final_buffer()
  assert last == (num_full if len(stream) % capacity else None)
  logged = []
  for suffix in dopamine_replay.list_checkpoints(str(tmp_path)):
    arrays = dopamine_replay.read_arrays(str(tmp_path), suffix)
    expected_add_count = ((suffix + 1) * capacity if suffix < num_full else
                          len(stream) % capacity)
    assert arrays.add_count == expected_add_count
    logged.append(arrays.observation[arrays.chronological_slots()])
  np.testing.assert_array_equal(np.concatenate(logged), stream)


def dopamine_rows(replay_dir, suffix, stack_size, capacity):
  """Every transition dopamine-rl's own buffer, loaded from the files of
  checkpoint `suffix`, samples; rows as conftest.sampled_transitions'."""
  buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
      FRAME_SHAPE, stack_size, capacity, batch_size=1, gamma=GAMMA)
  buffer.load(replay_dir, suffix)
  valid = [i for i in range(capacity) if buffer.is_valid_transition(i)]
  state, action, reward, next_state, _, _, terminal, _ = (
      buffer.sample_transition_batch(len(valid), indices=valid))
  return sorted((s.tobytes(), a.tobytes(), round(float(r), 5),
                 b'' if t else n.tobytes(), int(t))
                for s, a, r, n, t in zip(state, action, reward, next_state,
                                         terminal))


@pytest.mark.parametrize('stack_size, seed, num_adds', [(1, 0, 150),
                                                        (4, 3, 170)])
def test_logged_episodes_are_counted_exported_and_sampled_as_played(
    tmp_path, stack_size, seed, num_adds):
  """A logger's checkpoint after the first starts where the one before
  stopped: mostly in the middle of an episode (the final partial one too),
  with no padding of its own; or in the padding of an episode whose first
  padding slots end the one before; or right after an episode end."""
  capacity, replay_dir = 40, str(tmp_path / 'replay')
  buffer = LoggedReplayBuffer(replay_dir, FRAME_SHAPE, stack_size,
                              replay_capacity=capacity)
  played = []
  stream = fill(buffer, num_adds, seed, played)
  last = buffer.log_final_buffer()
  base, cursor = last * capacity, len(stream) - last * capacity
  # The cases the seeds were chosen for.
  starts = [e['slots'][0] for e in played]
  boundaries = range(capacity, len(stream), capacity)
  assert any(e['slots'][0] < base <= e['slots'][-1] for e in played)
  assert any(c - 1 == e['slots'][-1] for c in boundaries for e in played)
  assert stack_size == 1 or any(s - stack_size + 1 < c <= s
                                for c in boundaries for s in starts)
  assert played[-1]['ending'] == 'running'
  stored = [(np.array(e['frames']), np.int32(e['actions']), e['rewards'],
             e['ending'] == 'terminal') for e in played]  # Dopamine's dtypes.

  # (1) info counts each played episode once, the running one apart.
  info = summary.summarize(replay_dir, stack_size=stack_size)
  finished = [sum(e['rewards']) for e in played if e['ending'] != 'running']
  assert info['complete_episodes'] == len(finished)
  assert info['unfinished_episodes_at_end'] == 1
  assert info['episode_return']['mean'] == pytest.approx(np.mean(finished),
                                                         rel=1e-5)

  # (2) export-rlds writes each, whole, in the checkpoint where it ends
  # (the running one unfinished), and they hold the played transitions.
  path = rlds_io.export_to_rlds(replay_dir, str(tmp_path / 'rlds'),
                                stack_size=stack_size, progress=False)
  exported = list(exported_episodes(path))
  assert len(exported) == len(played)
  for e, (meta, steps) in zip(played, exported):
    num_stored, terminal = len(e['frames']), e['ending'] == 'terminal'
    num_steps = num_stored + terminal  # + the terminal observation's step.
    assert meta['checkpoint_id'] == e['slots'][-1] // capacity
    np.testing.assert_array_equal(steps['observation'][:num_stored, ..., 0],
                                  e['frames'])
    np.testing.assert_array_equal(steps['action'][:num_stored], e['actions'])
    np.testing.assert_array_equal(steps['reward'][:num_stored],
                                  np.float32(e['rewards']))
    position = np.arange(num_steps)
    np.testing.assert_array_equal(steps['is_first'], position == 0)
    np.testing.assert_array_equal(steps['is_last'],
                                  position == num_steps - 1)
    np.testing.assert_array_equal(steps['is_terminal'],
                                  (position == num_steps - 1) & terminal)
  assert sampled_transitions(path, stack_size, 1, GAMMA) == (
      reference_transitions(stored, stack_size, 1, GAMMA))

  # Policy selection's episodes (their starts) are the played ones too.
  replay = replay_dataset.open_replay(replay_dir, stack_size, 1, GAMMA)
  assert [e.slots.tolist() for e in replay.episodes()] == [
      e['slots'] for e in played]

  # (3) Training on the final partial checkpoint samples what dopamine-rl
  # samples from its files: the played transitions whose slots (state and
  # next state) lie in it, and, as Dopamine does, the padding after a cut.
  got = sampled_transitions(replay_dir, stack_size, 1, GAMMA,
                            DataSelection(checkpoints=[last]))
  assert got == dopamine_rows(replay_dir, last, stack_size, capacity)
  stack = lambda g: np.moveaxis(stream[g - stack_size + 1:g + 1], 0,
                                -1).tobytes()
  slot_of = {stack(g): g for e in played for g in e['slots']}
  want = collections.Counter(
      row for row in reference_transitions(stored, stack_size, 1, GAMMA)
      if base + stack_size - 1 <= slot_of[row[0]] < base + cursor - 1)
  assert len(want) > 10
  extra = collections.Counter(got) - want
  assert not want - collections.Counter(got)
  assert all(not np.frombuffer(state, np.uint8).reshape(
      FRAME_SHAPE + (stack_size,))[..., -1].any() for state, *_ in extra)


@pytest.mark.parametrize('stack_size, seed, num_adds', [(1, 0, 150),
                                                        (4, 3, 170)])
def test_a_selection_that_skips_checkpoints_joins_no_episode_across_a_gap(
    tmp_path, stack_size, seed, num_adds):
  """Checkpoints K - 2 and K of a logger (K its last, partly filled): the
  episode running at the end of K - 2 stops there, unfinished, and the
  rest of an episode K begins with (its start is in K - 1) is no episode;
  K alone is the same. Before, K - 2's newest episode was joined with K's
  oldest slots, and K alone counted these as an episode (stack 1) or failed
  on their 'padding' (stack 4)."""
  capacity, replay_dir = 40, str(tmp_path / 'replay')
  buffer = LoggedReplayBuffer(replay_dir, FRAME_SHAPE, stack_size,
                              replay_capacity=capacity)
  played = []
  fill(buffer, num_adds, seed, played)
  last = buffer.log_final_buffer()
  assert any(e['slots'][0] < last * capacity <= e['slots'][-1]
             for e in played)  # K begins in the middle of an episode.
  for selected in ([last - 2, last], [last]):
    position = {c: i for i, c in enumerate(selected)}
    # After a checkpoint not selected, the first episode reaching into the
    # next may have started before it: not counted.
    unknown_start = [next(e for e in played if e['slots'][-1] >= c * capacity)
                     for c in selected if c - 1 not in position]
    want = []
    for e in played:  # Each started in the selection, as far as it holds it.
      if (e['slots'][0] // capacity not in position or
          any(e is u for u in unknown_start)):
        continue
      kept = []
      for slot in e['slots']:
        if slot // capacity not in position:
          break
        kept.append(position[slot // capacity] * capacity + slot % capacity)
      want.append((kept, e['ending'] != 'running' and
                   len(kept) == len(e['slots'])))
    replay = replay_dataset.open_replay(
        replay_dir, stack_size, 1, GAMMA, DataSelection(checkpoints=selected))
    assert [(e.slots.tolist(), e.complete)
            for e in replay.episodes()] == want, selected
    assert any(not complete for _, complete in want[:-1]) or len(selected) == 1
    # A directory holding only these checkpoints: info and export-rlds agree.
    only = tmp_path / f'only_{len(selected)}'
    os.makedirs(only)
    for name in os.listdir(replay_dir):
      if int(name.split('.')[-2]) in selected:
        os.link(os.path.join(replay_dir, name), only / name)
    info = summary.summarize(str(only), stack_size=stack_size)
    assert info['complete_episodes'] == sum(c for _, c in want), selected
    path = rlds_io.export_to_rlds(str(only), str(tmp_path / f'{only}_rlds'),
                                  stack_size=stack_size, progress=False)
    assert len(list(exported_episodes(path))) == len(want), selected


class FakeAgent:
  """Acts 0, 1, 2, ...; records the batches it is trained on."""

  def __init__(self):
    self.eval_mode = False
    self.actions = 0
    self.batches = []

  def _act(self):
    self.actions += 1
    return self.actions % 3

  def begin_episode(self, observation):
    return self._act()

  def step(self, reward, observation):
    return self._act()

  def end_episode(self, reward, terminal=True, observation=None):
    pass

  def train_step(self, batch):
    self.batches.append(batch)
    return {'loss': float(len(self.batches))}


def test_online_agent_stores_and_trains_as_dopamine(tmp_path):
  fake = FakeAgent()
  replay = LoggedReplayBuffer(str(tmp_path), (2,), 1, np.float32,
                              replay_capacity=100, batch_size=3)
  agent = OnlineAgent(fake, replay, update_period=2, min_replay_history=5)
  frames = iter(np.arange(100, dtype=np.float32)[:, None].repeat(2, 1))
  train_points = []
  actions = []

  def record():
    if len(fake.batches) > len(train_points):
      train_points.append(agent.acting_steps - 1)

  for episode_length, terminal in ((4, True), (3, False), (5, True)):
    actions.append(agent.begin_episode(next(frames)))
    record()
    for t in range(1, episode_length):
      actions.append(agent.step(float(t), next(frames)))
      record()
    agent.end_episode(10., terminal=terminal)

  # Dopamine trains in begin_episode and step, at agent steps divisible by
  # update_period, once more than min_replay_history slots are stored (the
  # sixth slot is stored at agent step 6).
  assert train_points == [6, 8, 10]
  assert agent.gradient_steps == 3
  np.testing.assert_array_equal(agent.pop_losses(), [1., 2., 3.])
  assert list(fake.batches[0]) == list(transitions.TRANSITION_ELEMENTS)
  assert fake.batches[0]['state'].shape == (3, 2, 1)
  np.testing.assert_array_equal(replay._store['observation'][:12, 0],
                                np.arange(12))
  np.testing.assert_array_equal(replay._store['action'][:12], actions)
  np.testing.assert_array_equal(replay._store['reward'][:12],
                                [1, 2, 3, 10, 1, 2, 10, 1, 2, 3, 4, 10])
  np.testing.assert_array_equal(replay._store['terminal'][:12],
                                [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
  assert replay.episode_end_indices == {3, 6, 11}

  agent.eval_mode = True  # Acting only: nothing stored, no training.
  assert fake.eval_mode
  agent.begin_episode(next(frames))
  agent.step(1., next(frames))
  agent.end_episode(0.)
  assert replay.add_count == 12 and agent.gradient_steps == 3


def logged_slots(replay_dir, capacity):
  """Slots logged so far: full checkpoints plus the partial last one."""
  last = dopamine_replay.list_checkpoints(replay_dir)[-1]
  return last * capacity + int(dopamine_replay.read_array(
      dopamine_replay.checkpoint_filename(replay_dir, 'add_count', last)))


def test_cartpole_dqn_run_logs_replay_and_resumes(tmp_path):
  base_dir = str(tmp_path / 'run')
  replay_dir = run_directory.RunDirectory(base_dir).replay_logs_path
  bindings = [
      'LoggedReplayBuffer.replay_capacity = 1000',
      'Runner.training_steps = 1200',
      'Runner.evaluation_steps = 100',
      'MIN_REPLAY_HISTORY = 200',
  ]
  try:
    log_data.log_data(None, base_dir, [GIN_FILE],
                bindings + ['Runner.num_iterations = 2'])
    first_log = run_directory.RunDirectory(base_dir).read_metrics()
    first_slots = logged_slots(replay_dir, 1000)
    gin.clear_config()
    # Resuming with more iterations continues after the last checkpoint.
    log_data.log_data('dqn', base_dir, [GIN_FILE],
                bindings + ['Runner.num_iterations = 3'])
  finally:
    gin.clear_config()
  assert list(first_log[0]) == list(run_directory.METRIC_COLUMNS)
  assert [int(r['iteration']) for r in first_log] == [0, 1]
  metrics = run_directory.RunDirectory(base_dir).read_metrics()
  assert [int(r['iteration']) for r in metrics] == [0, 1, 2]
  assert metrics[:2] == first_log

  # CartPole frames are not stacked, so agent steps T = slots stored, and
  # agent step t trains when t % 4 == 0 and t > 200 slots are stored.
  slots = logged_slots(replay_dir, 1000)
  assert 2400 <= first_slots and 3600 <= slots - first_slots + 2400
  for row, steps in ((first_log[-1], first_slots), (metrics[-1], slots)):
    assert int(row['gradient_steps']) == (steps - 1) // 4 - 200 // 4

  suffixes = dopamine_replay.list_checkpoints(replay_dir)
  assert suffixes == list(range(slots // 1000 + 1))
  frames = []
  for suffix in suffixes:
    logged = dopamine_replay.load_checkpoint(
        replay_dir, suffix, stack_size=1, observation_shape=(4,),
        observation_dtype=np.float32)
    arrays = logged.arrays
    frames.append(arrays.observation[arrays.chronological_slots()])
  frames = np.concatenate(frames)
  assert len(frames) == slots
  # Each CartPole state is logged once: no checkpoint repeats another's.
  assert len(np.unique(frames, axis=0)) == slots


def test_info_counts_the_logged_episodes_once_across_checkpoints(tmp_path):
  base_dir = str(tmp_path / 'run')
  experiment.register_all_agents()
  try:
    command_line.load_gin_configs([GIN_FILE], [
        'LoggedReplayBuffer.replay_capacity = 300',
        'Runner.num_iterations = 2', 'Runner.training_steps = 400',
        'Runner.evaluation_steps = 20', 'MIN_REPLAY_HISTORY = 200',
        'MLPTorso.hidden_units = (16,)'])
    runner = experiment.create_online_runner(None, base_dir)
    runner.run_experiment()
  finally:
    gin.clear_config()
  logged = sum(s['train_episodes'] for s in runner.summaries)
  replay_dir = run_directory.RunDirectory(base_dir).replay_logs_path
  checkpoints = [dopamine_replay.read_arrays(replay_dir, s)
                 for s in dopamine_replay.list_checkpoints(replay_dir)]
  # Every slot is logged once and the runner plays whole episodes: each
  # episode ends (terminal or time-limit cut) in exactly one checkpoint.
  ends = [a.chronological_episode_ends() for a in checkpoints]
  assert len(checkpoints) >= 3 and not all(e[-1] for e in ends[:-1])
  assert logged == sum(int(e.sum()) for e in ends)

  info = summary.summarize(replay_dir, stack_size=1)
  assert info['complete_episodes'] == logged
  assert info['unfinished_episodes_at_end'] == 0
  # Joined episodes keep their whole return: the runner's sum of returns.
  assert info['episode_return']['mean'] * logged == pytest.approx(
      sum(s['train_return_mean'] * s['train_episodes']
          for s in runner.summaries))


# A DQN CartPole logging run that trains from agent step 101 on and updates
# its target network every 10 gradient steps: 4 iterations of at least 250
# agent steps (iteration 0 ends before slot 300) in 300-slot replay logs, so
# that iteration 1 wraps the buffer and writes log 0, and the run ends with
# a partial buffer.
RESUMED_RUN_BINDINGS = [
    'LoggedReplayBuffer.replay_capacity = 300', 'Runner.num_iterations = 4',
    'Runner.training_steps = 250', 'Runner.evaluation_steps = 50',
    'Runner.progress = False', 'MIN_REPLAY_HISTORY = 100',
    'DQNAgent.target_update_period = 10', 'MLPTorso.hidden_units = (16,)']


def log_resumed_run(base_dir, *bindings):
  try:
    log_data.log_data('dqn', str(base_dir), [GIN_FILE],
                      RESUMED_RUN_BINDINGS + list(bindings))
  finally:
    gin.clear_config()
  return run_directory.RunDirectory(str(base_dir))


@pytest.fixture(scope='module')
def uninterrupted_dqn_log(tmp_path_factory):
  return log_resumed_run(tmp_path_factory.mktemp('uninterrupted'))


def test_a_discrete_logging_run_stopped_after_an_iteration_resumes_alike(
    uninterrupted_dqn_log, tmp_path):
  """Stopped after iteration 0, the run logs its partial buffer as log 0;
  resumed, it rewrites log 0 whole when its buffer wraps: the same files in
  replay_logs, the same metrics, weights and acting state as a run never
  stopped."""
  stopped = log_resumed_run(tmp_path, 'Runner.num_iterations = 1')
  assert dopamine_replay.list_checkpoints(stopped.replay_logs_path) == [0]
  assert 250 <= logged_slots(stopped.replay_logs_path, 300) < 300
  log_resumed_run(tmp_path)
  assert len(dopamine_replay.list_checkpoints(stopped.replay_logs_path)) >= 4
  assert_same_logging_run(tmp_path, uninterrupted_dqn_log.path)


def test_a_killed_discrete_logging_run_resumes_as_an_uninterrupted_one(
    uninterrupted_dqn_log, tmp_path):
  """SIGKILLed while it checkpoints iteration 1, after its buffer wrapped
  and it wrote log 0; resumed from the end of iteration 0 (a part of log 0
  in its buffer), it logs, trains and evaluates as a run never stopped."""
  killed = subprocess.Popen(
      campaign.child_command(
          'log_data', ['--agent_name=dqn', f'--base_dir={tmp_path}',
                       f'--gin_files={GIN_FILE}',
                       *[f'--gin_bindings={b}' for b in RESUMED_RUN_BINDINGS]],
          slow_write_at=1),
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  line = wait_for_line(killed, campaign.SLOW_WRITE_MARK)
  killed.kill()
  killed.wait()
  assert line.strip() == f'{campaign.SLOW_WRITE_MARK}1'
  run = run_directory.RunDirectory(str(tmp_path))
  assert dopamine_replay.list_checkpoints(run.replay_logs_path) == [0]
  assert logged_slots(run.replay_logs_path, 300) == 300
  assert [int(r['iteration']) for r in run.read_metrics()] == [0]
  log_resumed_run(tmp_path)
  assert len(dopamine_replay.list_checkpoints(run.replay_logs_path)) >= 4
  assert_same_logging_run(tmp_path, uninterrupted_dqn_log.path)


@pytest.mark.parametrize('seed, stored_error, joined_error', [
    (0,  # The first episode is one step long.
     r'ckpt0: an episode ends at slot 0 within the 3 padding slots',
     r'ckpt0 slots \[0\]: an episode ends within the 3 padding slots'),
    (3,  # The first episode is five steps long.
     r'ckpt0: slots \[0, 1, 2\] should be the zero padding that starts an '
     r'episode for stack_size=4 \(zero observation, action, reward, '
     r'terminal\)',
     r'ckpt0 slots \[0, 1, 2, 3\]: the first 3 slots should be the zero '
     r'padding that starts an episode for stack_size=4 \(zero action, '
     r'reward, terminal\)')])
def test_episodes_read_with_another_stack_size_name_the_slots(
    tmp_path, seed, stored_error, joined_error):
  """Data logged with stack_size 1 (no padding) read as stack_size 4: one
  error naming the checkpoint and slots, from a checkpoint's episodes and
  from the episodes joined across checkpoints alike."""
  replay_dir = str(tmp_path / 'replay')
  buffer = LoggedReplayBuffer(replay_dir, FRAME_SHAPE, 1, replay_capacity=40)
  fill(buffer, 30, seed)
  buffer.log_final_buffer()
  arrays = dopamine_replay.read_arrays(replay_dir, 0)
  suffix = r'.*; was the data written with another stack_size\?$'
  with pytest.raises(ReplayDataError, match='^' + stored_error + suffix):
    stored_episodes(arrays, 4, 'ckpt0')
  joiner = EpisodeJoiner(4, ('action', 'reward', 'terminal'))
  with pytest.raises(ReplayDataError, match='^' + joined_error + suffix):
    list(joiner.add(arrays, STARTS, 'ckpt0'))
