"""Offline learning from a logged replay: TD3 far outperforms its data.

A logging run plays Pendulum-v1 for 30,000 steps with a uniformly random
behaviour policy (GaussianNoise.random_steps covers them all), split over
three checkpoint files; its episodes return -1228 on average. Offline TD3
(64-64 MLPs, Adam 1e-3, tau 0.02 so that values propagate within a CI-sized
budget) trains for 3,072 steps on batches of 256 from the tf.data pipeline,
512 steps per `train_steps` call as the runner trains, and is evaluated on
five episodes after each call; as in the paper's protocol its score is the
best evaluation. Seeds 0-4 (agent and batches) score between -138 and -141
(on the replay of the earlier, Runner-less logger seeds 0-9 scored -137 to
-152, single evaluations swinging up to about -630 while a swing-up fails
in some episodes); the test asks for better than -400. With a third of the
data (10,000 steps) two seeds of five stayed near -530 for 3,000 steps.
"""


import numpy as np
import pytest

from batch_rl.agents import registry
from batch_rl.continuous import make_continuous_environment
from batch_rl.data import dopamine_replay
from batch_rl.data.replay_dataset import ReplayDataset
from batch_rl.data.replay_store import ReplayStore
from batch_rl.run_directory import RunDirectory
from batch_rl.runner.runner import Runner
from batch_rl.runner.training import OfflineTraining
from conftest import log_continuous_replay

NUM_STEPS = 30_000
TRAINING_STEPS = 3_072
EVALUATION_PERIOD = 512
RETURN_THRESHOLD = -400.0


@pytest.fixture(scope='module')
def random_pendulum_replay(tmp_path_factory):
  base_dir = str(tmp_path_factory.mktemp('pendulum'))
  runner = log_continuous_replay(base_dir, 'Pendulum-v1', NUM_STEPS, 12_288)
  replay_dir = RunDirectory(base_dir).replay_logs_path
  checkpoints = [dopamine_replay.read_arrays(replay_dir, suffix)
                 for suffix in dopamine_replay.list_checkpoints(replay_dir)]
  return (ReplayStore.from_arrays(checkpoints),
          runner.summaries[0]['train_return_mean'])


def evaluate(agent, env, num_episodes=5):
  agent.eval_mode = True
  returns = []
  for episode in range(num_episodes):
    observation, _ = env.reset(seed=1000 + episode)
    action = agent.begin_episode(observation)
    total, done = 0.0, False
    while not done:
      observation, reward, terminated, truncated, _ = env.step(action)
      total += reward
      done = terminated or truncated
      action = agent.step(reward, observation)
    agent.end_episode(reward, terminated)
    returns.append(total)
  return float(np.mean(returns))


def test_offline_td3_outperforms_random_data(random_pendulum_replay):
  store, data_return = random_pendulum_replay
  assert len(store.checkpoints) == 3
  assert len(store.valid_indices(1, 1)) == NUM_STEPS
  env, spec = make_continuous_environment('Pendulum-v1')
  agent = registry.create_agent(
      'td3', spec, seed=0, hidden_sizes=(64, 64), actor_learning_rate=1e-3,
      critic_learning_rate=1e-3, tau=0.02)
  stacks = iter(ReplayDataset(store, 1, 1, 0.99).batches(256, seed=0))
  scores = []
  for _ in range(TRAINING_STEPS // EVALUATION_PERIOD):
    agent.train_steps(stacks, EVALUATION_PERIOD)
    scores.append(evaluate(agent, env))
  assert agent.gradient_steps == TRAINING_STEPS
  assert data_return < -1000
  assert max(scores) > RETURN_THRESHOLD, (
      f'offline TD3 evaluations {np.round(scores)} every '
      f'{EVALUATION_PERIOD} steps; the data averaged '
      f'{data_return:.0f}.')


def test_shared_runner_trains_evaluates_and_resumes_a_continuous_agent(
    random_pendulum_replay, tmp_path):
  store, _ = random_pendulum_replay
  env, spec = make_continuous_environment('Pendulum-v1')

  def runner(num_iterations):
    agent = registry.create_agent('bc', spec, seed=0, hidden_sizes=(16,))
    return Runner(
        str(tmp_path), agent, env,
        OfflineTraining(ReplayDataset(store, 1, 1, 0.99), 32, seed=0),
        run_info={'agent_name': 'bc'}, num_iterations=num_iterations,
        training_steps=10, evaluation_steps=200, max_steps_per_episode=200,
        progress=False)

  rows = runner(1).run_experiment()
  assert [r['gradient_steps'] for r in rows] == [10]
  resumed = runner(2)
  assert resumed.start_iteration == 1
  assert resumed.agent.gradient_steps == 10
  rows = resumed.run_experiment()
  assert [r['iteration'] for r in rows] == [0, 1]
  assert all(np.isfinite(r['train_loss']) and r['eval_episodes'] == 1
             for r in rows)
