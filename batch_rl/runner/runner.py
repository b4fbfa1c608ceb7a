"""Runner: iterations of training then online evaluation, resumable.

Each iteration trains for `training_steps` with the run's training function
(`training.OfflineTraining`: gradient steps on a ReplayDataset;
`training.OnlineTraining`: acting in the environment with a logging replay),
then evaluates the agent (eval mode) for at least `evaluation_steps`
environment steps, logs one metrics row and writes a checkpoint. The run
directory's files are `batch_rl.run_directory`'s.

SIGINT and SIGTERM (see `batch_rl.cli`) stop the run at the next train-call
(or episode) boundary: the unfinished iteration is dropped, the checkpoints
of the finished ones stay, and rerunning the command resumes.
"""

import json
import os
import pickle
import signal
import time

import gin
import numpy as np
import tensorflow as tf
import tqdm

from batch_rl import cli
from batch_rl.run_directory import RunDirectory
from batch_rl.runner import evaluation
from batch_rl.runner import run_state

_BUNDLE = 'agent_bundle.pkl'
_STATE = 'runner_state.json'


@gin.configurable(denylist=['base_dir', 'agent', 'environment', 'training',
                            'run_info', 'selection'])
class Runner:
  """Iterations of a pluggable training function and online evaluation."""

  def __init__(self, base_dir: str, agent, environment, training,
               run_info: dict, selection=None, num_iterations: int = 200,
               training_steps: int = 62_500, evaluation_steps: int = 125_000,
               max_steps_per_episode: int = 27_000, checkpoints_kept: int = 3,
               progress: bool = True):
    """Args:
      base_dir: the run directory (created; resumed if it holds checkpoints).
      agent: an agent with the interface of docs/DESIGN.md.
      environment: a gymnasium environment for evaluation.
      training: the training function, with `begin(runner)`,
        `train(runner, iteration, bar) -> (train_loss, gradient_steps,
        summaries)` and `finish(runner)` (see batch_rl.runner.training).
      run_info: facts about the run written to run_info.json.
      selection: the DataSelection trained on (stored as data), if any.
      num_iterations: iterations in the whole run.
      training_steps: gradient steps (offline) or agent steps (online) of
        training per iteration.
      evaluation_steps: minimum environment steps of evaluation per
        iteration (whole episodes).
      max_steps_per_episode: episodes are cut here.
      checkpoints_kept: how many iteration checkpoints to keep.
      progress: show progress bars.
    """
    for name, value in (('num_iterations', num_iterations),
                        ('training_steps', training_steps),
                        ('evaluation_steps', evaluation_steps)):
      if value < 1:
        raise ValueError(f'Runner.{name}={value}: must be at least 1.')
    self.run_directory = RunDirectory(base_dir)
    self.base_dir = base_dir
    self.agent = agent
    self.environment = environment
    self.training = training
    self.num_iterations = num_iterations
    self.training_steps = training_steps
    self.evaluation_steps = evaluation_steps
    self.max_steps_per_episode = max_steps_per_episode
    self.progress = progress
    os.makedirs(base_dir, exist_ok=True)
    self.checkpoints = self.run_directory.checkpoints(checkpoints_kept)
    self.summary_writer = tf.summary.create_file_writer(
        self.run_directory.tensorboard_path)
    self.rows = []
    self.start_iteration = self._restore()
    self.run_directory.write_run_info(
        {**run_info, 'gin_config': gin.config_str()}, selection)

  def _restore(self) -> int:
    """Loads the latest checkpoint, if any; returns the next iteration."""
    latest = self.checkpoints.latest()
    if latest is None:
      return 0
    path = self.checkpoints.path(latest)
    with open(os.path.join(path, _BUNDLE), 'rb') as f:
      bundle = pickle.load(f)
    if not self.agent.unbundle(path, latest, bundle):
      raise RuntimeError(f'{path}: the agent could not restore its state.')
    with open(os.path.join(path, _STATE)) as f:
      self.rows = json.load(f)['rows']
    # metrics.csv may lag behind the checkpoint if the kill came in between.
    self.run_directory.write_metrics(self.rows)
    print(f'Resuming {self.base_dir} after iteration {latest}.')
    return latest + 1

  def progress_bar(self, total: int, desc: str) -> tqdm.tqdm:
    """A step counter on terminals (tqdm stays silent when not a TTY)."""
    return tqdm.tqdm(total=total, desc=desc, unit='step', leave=False,
                     disable=None if self.progress else True)

  def check_stop(self) -> None:
    """Raises cli.Stopped if SIGINT or SIGTERM arrived (a safe point)."""
    signum = cli.stop_requested()
    if signum is not None:
      finished = len(self.rows)
      resume = (f'after iteration {finished - 1}' if finished
                else 'from the start')
      raise cli.Stopped(
          signum, f'stopped by {signal.Signals(signum).name}: '
          f'{finished} of {self.num_iterations} iterations finished and '
          f'checkpointed in {self.base_dir}; rerun the command to resume '
          f'{resume}.')

  def _evaluate(self, iteration: int) -> np.ndarray:
    bar = self.progress_bar(self.evaluation_steps,
                            f'iteration {iteration} eval')

    def progress(steps, unused_return):
      bar.update(steps)
      self.check_stop()

    returns = evaluation.evaluate(
        self.agent, self.environment, self.evaluation_steps,
        self.max_steps_per_episode, progress=progress)
    bar.close()
    return returns

  def _checkpoint(self, iteration: int) -> None:
    def write(path):
      bundle = self.agent.bundle_and_checkpoint(path, iteration)
      with open(os.path.join(path, _BUNDLE), 'wb') as f:
        pickle.dump(bundle, f)
      run_state.write_json(os.path.join(path, _STATE), {'rows': self.rows})
    self.checkpoints.save(iteration, write)
    self.run_directory.write_metrics(self.rows)

  def _iteration(self, iteration: int) -> dict:
    start = time.time()
    self.agent.eval_mode = False
    bar = self.progress_bar(self.training_steps,
                            f'iteration {iteration} train')
    loss, gradient_steps, summaries = self.training.train(self, iteration,
                                                          bar)
    bar.close()
    returns = self._evaluate(iteration)
    row = {
        'iteration': iteration,
        'gradient_steps': gradient_steps,
        'eval_episodes': len(returns),
        'eval_return_mean': float(returns.mean()),
        'eval_return_std': float(returns.std()),
        'train_loss': loss,
        'wall_time_s': round(time.time() - start, 3),
    }
    self.rows.append(row)
    summaries.update((name, row[name]) for name in (
        'eval_return_mean', 'eval_return_std', 'train_loss'))
    with self.summary_writer.as_default(step=iteration):
      for name, value in summaries.items():
        tf.summary.scalar(name, value)
    self.summary_writer.flush()
    self._checkpoint(iteration)
    print(f'iteration {iteration}: eval return {row["eval_return_mean"]:.2f}'
          f' +- {row["eval_return_std"]:.2f} over {len(returns)} episodes, '
          f'train loss {loss:.4g}, {row["wall_time_s"]:.1f}s', flush=True)
    return row

  def run_experiment(self) -> list[dict]:
    """Runs the remaining iterations; returns all metrics rows.

    Raises:
      cli.Stopped: SIGINT or SIGTERM arrived; finished iterations are saved.
    """
    with cli.deferred_signals():
      self.training.begin(self)
      for iteration in range(self.start_iteration, self.num_iterations):
        self._iteration(iteration)
        self.check_stop()
      self.training.finish(self)
    return self.rows
