"""FixedReplayRunner: offline training on fixed data, online evaluation.

Each iteration runs `training_steps` gradient steps on batches from the
replay pipeline, then evaluates the agent in its environment (epsilon_eval)
for at least `evaluation_steps` steps, logs one metrics row, and writes a
checkpoint. Batches of iteration i come from a dataset seeded with
(seed, i), so a resumed run sees exactly the data the killed one would have.
"""

import json
import os
import pickle
import time

import gin
import numpy as np
import tensorflow as tf
import tqdm

from batch_rl.agents import train_loop
from batch_rl.runner import evaluation
from batch_rl.runner import run_state

_BUNDLE = 'agent_bundle.pkl'
_STATE = 'runner_state.json'


@gin.configurable
class FixedReplayRunner:
  """Iterations of offline gradient steps followed by online evaluation."""

  def __init__(self, base_dir: str, agent, environment, make_dataset,
               run_info: dict, num_iterations: int = 200,
               training_steps: int = 62_500, evaluation_steps: int = 125_000,
               max_steps_per_episode: int = 27_000, checkpoints_kept: int = 3,
               log_every: int = 100, progress: bool = True,
               stacked_batches: bool = False):
    """Args:
      base_dir: the run directory (created; resumed if it holds checkpoints).
      agent: an agent with the interface of docs/DESIGN.md.
      environment: a gymnasium environment for evaluation.
      make_dataset: f(iteration) -> tf.data.Dataset of transition batches.
      run_info: facts about the run written to run_info.json.
      num_iterations: iterations in the whole run.
      training_steps: gradient steps per iteration.
      evaluation_steps: minimum environment steps of evaluation per
        iteration (whole episodes).
      max_steps_per_episode: evaluation episodes are cut here.
      checkpoints_kept: how many iteration checkpoints to keep.
      log_every: gradient steps per train call, between progress-bar and
        loss updates (rounded up to whole stacks of batches).
      progress: show progress bars.
      stacked_batches: whether make_dataset's elements are stacks of batches
        (`pipeline.transition_dataset(..., stacked=True)`).
    """
    self.base_dir = base_dir
    self.agent = agent
    self.environment = environment
    self.make_dataset = make_dataset
    self.num_iterations = num_iterations
    self.training_steps = training_steps
    self.evaluation_steps = evaluation_steps
    self.max_steps_per_episode = max_steps_per_episode
    self.log_every = log_every
    self.progress = progress
    self.stacked_batches = stacked_batches
    os.makedirs(base_dir, exist_ok=True)
    self.checkpoints = run_state.CheckpointDirectory(
        os.path.join(base_dir, 'checkpoints'), checkpoints_kept)
    self.summary_writer = tf.summary.create_file_writer(
        os.path.join(base_dir, 'tensorboard'))
    self.rows = []
    self.start_iteration = self._restore()
    run_state.write_json(os.path.join(base_dir, 'run_info.json'), {
        **run_info, 'gin_config': gin.config_str()})

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
    run_state.write_metrics_csv(
        os.path.join(self.base_dir, 'metrics.csv'), self.rows)
    print(f'Resuming {self.base_dir} after iteration {latest}.')
    return latest + 1

  def _progress_bar(self, total: int, desc: str) -> tqdm.tqdm:
    """A step counter on terminals (tqdm stays silent when not a TTY)."""
    return tqdm.tqdm(total=total, desc=desc, unit='step', leave=False,
                     disable=None if self.progress else True)

  def _train(self, iteration: int) -> float:
    self.agent.eval_mode = False
    batches = iter(self.make_dataset(iteration))
    losses = []
    bar = self._progress_bar(self.training_steps,
                             f'iteration {iteration} train')
    # Each call runs `log_every` steps (whole stacks) in one graph.
    chunk = (train_loop.whole_stacks(self.log_every, batches.element_spec)
             if self.stacked_batches else self.log_every)
    for done in range(0, self.training_steps, chunk):
      steps = min(chunk, self.training_steps - done)
      losses.append(float(self.agent.train_steps(
          batches, steps, self.stacked_batches)['loss']))
      bar.set_postfix(loss=f'{losses[-1]:.4g}')
      bar.update(steps)
    bar.close()
    return float(np.mean(losses)) if losses else float('nan')

  def _evaluate(self, iteration: int) -> np.ndarray:
    bar = self._progress_bar(self.evaluation_steps,
                             f'iteration {iteration} eval')
    returns = evaluation.evaluate(
        self.agent, self.environment, self.evaluation_steps,
        self.max_steps_per_episode,
        progress=lambda steps, _: bar.update(steps))
    bar.close()
    return returns

  def _checkpoint(self, iteration: int) -> None:
    def write(path):
      bundle = self.agent.bundle_and_checkpoint(path, iteration)
      with open(os.path.join(path, _BUNDLE), 'wb') as f:
        pickle.dump(bundle, f)
      run_state.write_json(os.path.join(path, _STATE), {'rows': self.rows})
    self.checkpoints.save(iteration, write)
    run_state.write_metrics_csv(
        os.path.join(self.base_dir, 'metrics.csv'), self.rows)

  def run_experiment(self) -> list[dict]:
    """Runs the remaining iterations; returns all metrics rows."""
    for iteration in range(self.start_iteration, self.num_iterations):
      start = time.time()
      loss = self._train(iteration)
      returns = self._evaluate(iteration)
      row = {
          'iteration': iteration,
          'gradient_steps': (iteration + 1) * self.training_steps,
          'eval_episodes': len(returns),
          'eval_return_mean': float(returns.mean()),
          'eval_return_std': float(returns.std()),
          'train_loss': loss,
          'wall_time_s': round(time.time() - start, 3),
      }
      self.rows.append(row)
      with self.summary_writer.as_default(step=iteration):
        for name in ('eval_return_mean', 'eval_return_std', 'train_loss'):
          tf.summary.scalar(name, row[name])
      self.summary_writer.flush()
      self._checkpoint(iteration)
      print(f'iteration {iteration}: eval return {row["eval_return_mean"]:.2f}'
            f' +- {row["eval_return_std"]:.2f} over {len(returns)} episodes, '
            f'train loss {loss:.4g}, {row["wall_time_s"]:.1f}s', flush=True)
    return self.rows
