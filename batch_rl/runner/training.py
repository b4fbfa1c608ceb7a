"""The Runner's training functions: offline gradient steps, online acting.

A training function has three methods the Runner calls:
  begin(runner)                      once, after the run resumed (or not);
  train(runner, iteration, bar) -> (train_loss, gradient_steps, summaries)
                                     one iteration; calls runner.check_stop()
                                     at each train-call or episode boundary;
  finish(runner)                     after the last iteration.
"""

from typing import Optional

import gin
import numpy as np

from batch_rl.agents import train_loop
from batch_rl.data import replay_dataset
from batch_rl.runner import evaluation
from batch_rl.runner import run_state


@gin.configurable(denylist=['replay', 'batch_size', 'seed'])
class OfflineTraining:
  """Gradient steps on stacks of batches from one ReplayDataset.

  The batch stream is built once per run: iteration i reads stacks
  i * calls_per_iteration onwards of the stateless (seed, call) stream, so a
  resumed run reads exactly the batches an uninterrupted run reads.
  """

  def __init__(self, replay, batch_size: int, seed: int,
               log_every: int = 100,
               read_parallel_calls: Optional[int] = None):
    """Args:
      replay: a replay_dataset.ReplayDataset.
      batch_size: transitions per gradient step.
      seed: seed of the batch stream.
      log_every: gradient steps per train call, between progress-bar and
        loss updates (rounded up to whole stacks of batches).
      read_parallel_calls: host reads of frames in flight at once
        (converted and memory-mapped data; default: one per 4 cores,
        `pipeline.default_read_parallel_calls`).
    """
    self.replay = replay
    self.batch_size = batch_size
    self.seed = seed
    self.log_every = log_every
    self.read_parallel_calls = read_parallel_calls
    self._batches = None
    self._chunk = None

  def begin(self, runner) -> None:
    per_call = self.replay.batches_per_call(self.batch_size)
    calls = replay_dataset.calls_per_iteration(runner.training_steps,
                                               per_call)
    dataset = self.replay.batches(
        self.batch_size, self.seed,
        first_call=runner.start_iteration * calls,
        batches_per_call=per_call,
        read_parallel_calls=self.read_parallel_calls)
    self._batches = iter(dataset)
    self._chunk = train_loop.whole_stacks(self.log_every,
                                          dataset.element_spec)

  def train(self, runner, iteration: int, bar):
    losses = []
    for done in range(0, runner.training_steps, self._chunk):
      runner.check_stop()
      steps = min(self._chunk, runner.training_steps - done)
      losses.append(float(runner.agent.train_steps(self._batches,
                                                   steps)['loss']))
      bar.set_postfix(loss=f'{losses[-1]:.4g}')
      bar.update(steps)
    return (float(np.mean(losses)), (iteration + 1) * runner.training_steps,
            {})

  def finish(self, runner) -> None:
    del runner


@gin.configurable(denylist=['seed'])
class OnlineTraining:
  """Acting in the environment: Dopamine's online loop of store and train.

  The runner's agent is an OnlineAgent (its replay logs every transition,
  discrete or continuous); each iteration plays whole training episodes
  until `training_steps` agent steps. After the last iteration the replay's
  partial buffer is logged.
  """

  def __init__(self, seed: int):
    """`seed` seeds the environment and Dopamine's replay sampler (numpy's
    global RNG) at the start of each iteration, from (seed, iteration) alone,
    so that a resumed run plays the episodes of an uninterrupted one (the
    continuous replay's sampler is restored from the checkpoint instead)."""
    self.seed = seed

  def begin(self, runner) -> None:
    del runner

  def train(self, runner, iteration: int, bar):
    iteration_seed = run_state.iteration_seed(self.seed, 'training',
                                              iteration)
    runner.environment.reset(seed=iteration_seed)
    np.random.seed(iteration_seed)
    returns, steps = [], 0
    while steps < runner.training_steps:
      runner.check_stop()
      episode_return, episode_steps = evaluation.run_episode(
          runner.agent, runner.environment, runner.max_steps_per_episode)
      returns.append(episode_return)
      steps += episode_steps
      bar.update(episode_steps)
    losses = runner.agent.pop_losses()
    loss = float(losses.mean()) if len(losses) else float('nan')
    return loss, runner.agent.gradient_steps, {
        'train_return_mean': float(np.mean(returns)),
        'train_episodes': len(returns)}

  def finish(self, runner) -> None:
    runner.agent.replay.log_final_buffer()
    episodes = sum(summaries.get('train_episodes', 0)
                   for summaries in runner.summaries)
    print(f'logged {episodes} episodes ({runner.agent.acting_steps} agent '
          f'steps) in {runner.run_directory.replay_logs_path}', flush=True)
