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

Crash safety (docs/RELIABILITY.md): the run holds `run.lock` while it runs;
a checkpoint is published durably (`run_state`) before the iteration's
TensorBoard summaries are written, and a resumed run writes the summaries
the event files lack, so each iteration has exactly one value per tag; a
damaged latest checkpoint is set aside and the newest intact one resumed.
An evaluation re-seeds the environment from (seed, iteration) and acts with
the agent's acting RNG, restored from the checkpoint, so a resumed run
evaluates exactly as an uninterrupted one.
"""

import dataclasses
import json
import pickle
import signal
import time

import gin
import numpy as np
import tensorflow as tf
import tqdm

from batch_rl import cli
from batch_rl import storage
from batch_rl.run_directory import EVAL_RETURN_MEAN
from batch_rl.run_directory import EVAL_RETURN_STD
from batch_rl.run_directory import GIN_CONFIG
from batch_rl.run_directory import ITERATION
from batch_rl.run_directory import MetricsRow
from batch_rl.run_directory import RunDirectory
from batch_rl.run_directory import TRAIN_LOSS
from batch_rl.runner import evaluation
from batch_rl.runner import run_state

# An iteration's checkpoint folder holds the agent's own files and these.
BUNDLE_FILE = 'agent_bundle.pkl'  # The agent's bundle (pickled).
STATE_FILE = 'runner_state.json'  # The metrics rows and summaries so far.


@gin.configurable(denylist=['base_dir', 'agent', 'environment', 'training',
                            'run_info', 'selection', 'seed'])
class Runner:
  """Iterations of a pluggable training function and online evaluation."""

  def __init__(self, base_dir: str, agent, environment, training,
               run_info: dict, selection=None, seed: int = 0,
               num_iterations: int = 200,
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
      seed: the run's seed; evaluation i re-seeds the environment from
        (seed, i) (`run_state.iteration_seed`).
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
    self.run_directory.lock()
    self.base_dir = base_dir
    self.seed = seed
    self.agent = agent
    self.environment = environment
    self.training = training
    self.num_iterations = num_iterations
    self.training_steps = training_steps
    self.evaluation_steps = evaluation_steps
    self.max_steps_per_episode = max_steps_per_episode
    self.progress = progress
    self.checkpoints = self.run_directory.checkpoints(checkpoints_kept)
    self.summary_writer = tf.summary.create_file_writer(
        self.run_directory.tensorboard_path)
    self.rows = []
    self.summaries = []  # Each row's TensorBoard scalars.
    self.start_iteration = self._restore()
    self.run_directory.write_run_info(
        {**run_info, GIN_CONFIG: gin.config_str()}, selection)

  def _restore_checkpoint(self, path: str, iteration: int) -> None:
    """Restores agent, rows and summaries from `path`, or raises
    run_state.DamagedCheckpoint naming what cannot be read."""
    try:
      state = json.loads(storage.read_text(storage.join(path, STATE_FILE)))
      rows = state['rows']
      # Checkpoints written before summaries were kept have none to rewrite.
      summaries = state.get('summaries') or [{} for _ in rows]
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise run_state.DamagedCheckpoint(f'{STATE_FILE}: {e}') from e
    try:
      bundle = pickle.loads(
          storage.read_bytes(storage.join(path, BUNDLE_FILE)))
    except Exception as e:  # pylint: disable=broad-except
      raise run_state.DamagedCheckpoint(f'{BUNDLE_FILE}: {e!r}') from e
    try:
      restored = self.agent.unbundle(path, iteration, bundle)
    except ValueError:
      raise  # Another agent's checkpoint: a wrong run directory.
    except Exception as e:  # pylint: disable=broad-except
      # TensorFlow's reader reports truncated files as OpError or IndexError.
      raise run_state.DamagedCheckpoint(
          f'agent checkpoint: {cli.error_line(e)[len("error: "):]}') from e
    if not restored:
      raise run_state.DamagedCheckpoint('the agent checkpoint has no .index')
    self.rows, self.summaries = rows, summaries

  def _restore(self) -> int:
    """Restores the newest intact checkpoint, if any; writes the metrics
    and summaries it holds that the files lack; returns the next iteration."""
    latest = self.checkpoints.restore_latest(self._restore_checkpoint)
    # metrics.csv and the event files may lag behind the checkpoint if the
    # kill came in between (or be ahead of an older, intact checkpoint).
    self.run_directory.write_metrics(self.rows)
    self._summarized_before = self._summarized()
    for row, summaries in zip(self.rows, self.summaries):
      self._write_summaries(row[ITERATION], summaries,
                            self._summarized_before)
    if latest is None:
      return 0
    print(f'Resuming {self.base_dir} after iteration {latest}.')
    return latest + 1

  def _summarized(self) -> set:
    """(tag, step) pairs the run's event files hold."""
    written = set()
    folder = self.run_directory.tensorboard_path
    for name in sorted(tf.io.gfile.listdir(folder)):
      try:
        for record in tf.data.TFRecordDataset(storage.join(folder, name)):
          event = tf.compat.v1.Event.FromString(record.numpy())
          written.update((value.tag, event.step)
                         for value in event.summary.value)
      except tf.errors.DataLossError:
        pass  # A record cut by a kill: the values before it count.
    return written

  def _write_summaries(self, iteration: int, summaries: dict,
                       written=frozenset()) -> None:
    with self.summary_writer.as_default(step=iteration):
      for name, value in summaries.items():
        if (name, iteration) not in written:
          tf.summary.scalar(name, value)
    self.summary_writer.flush()

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

    self.environment.reset(
        seed=run_state.iteration_seed(self.seed, 'evaluation', iteration))
    returns = evaluation.evaluate(
        self.agent, self.environment, self.evaluation_steps,
        self.max_steps_per_episode, progress=progress)
    bar.close()
    return returns

  def _publish(self, iteration: int) -> None:
    """Checkpoints the finished `iteration`, then writes its metrics row
    and summaries; a failed write (full disk, read-only) is one OSError
    and leaves the previous checkpoint as it was."""
    def write(path):
      bundle = self.agent.bundle_and_checkpoint(path, iteration)
      storage.write_bytes(storage.join(path, BUNDLE_FILE),
                          pickle.dumps(bundle))
      run_state.write_json(storage.join(path, STATE_FILE),
                           {'rows': self.rows, 'summaries': self.summaries})
    try:
      self.checkpoints.save(iteration, write)
      self.run_directory.write_metrics(self.rows)
      # After a damaged checkpoint, the event files may already hold this
      # iteration (from the run that wrote the damaged one): kept, not
      # repeated.
      self._write_summaries(iteration, self.summaries[-1],
                            self._summarized_before)
    except (OSError, tf.errors.OpError) as e:
      latest = self.checkpoints.latest()
      kept = (f'the checkpoint of iteration {latest} is intact'
              if latest is not None else 'no iteration was checkpointed')
      reason = cli.error_line(e)[len('error: '):]
      raise OSError(
          f'{self.base_dir}: could not write iteration {iteration}\'s '
          f'checkpoint or metrics ({reason}); {kept}: free space or make '
          'the run directory writable, then rerun to resume.') from e

  def _iteration(self, iteration: int) -> dict:
    start = time.time()
    self.agent.eval_mode = False
    bar = self.progress_bar(self.training_steps,
                            f'iteration {iteration} train')
    loss, gradient_steps, summaries = self.training.train(self, iteration,
                                                          bar)
    bar.close()
    returns = self._evaluate(iteration)
    metrics = MetricsRow(
        iteration=iteration, gradient_steps=gradient_steps,
        eval_episodes=len(returns), eval_return_mean=float(returns.mean()),
        eval_return_std=float(returns.std()), train_loss=loss,
        wall_time_s=round(time.time() - start, 3))
    row = dataclasses.asdict(metrics)
    self.rows.append(row)
    self.summaries.append({**summaries, **{
        name: row[name]
        for name in (EVAL_RETURN_MEAN, EVAL_RETURN_STD, TRAIN_LOSS)}})
    self._publish(iteration)
    print(f'iteration {iteration}: eval return '
          f'{metrics.eval_return_mean:.2f} +- {metrics.eval_return_std:.2f} '
          f'over {len(returns)} episodes, train loss {loss:.4g}, '
          f'{metrics.wall_time_s:.1f}s', flush=True)
    return row

  def run_experiment(self) -> list[dict]:
    """Runs the remaining iterations; returns all metrics rows.

    Raises:
      cli.Stopped: SIGINT or SIGTERM arrived; finished iterations are saved.
    """
    try:
      with cli.deferred_signals():
        self.training.begin(self)
        for iteration in range(self.start_iteration, self.num_iterations):
          self._iteration(iteration)
          self.check_stop()
        self.training.finish(self)
    finally:
      self.run_directory.unlock()
    return self.rows
