"""OnlineRunner: Dopamine's online train/evaluate iterations, logging replay.

Each iteration acts in training mode for whole episodes until at least
`training_steps` agent steps (the `OnlineAgent` stores and learns as it
goes), then evaluates with epsilon_eval. Metrics, TensorBoard summaries,
checkpoints and resumption are `FixedReplayRunner`'s; the checkpoints also
hold the live replay. After the last iteration the replay's partial last
buffer is logged too.
"""

import gin
import numpy as np
import tensorflow as tf

from batch_rl import experiment
from batch_rl.runner import evaluation
from batch_rl.runner.fixed_replay_runner import FixedReplayRunner


@gin.configurable(
    denylist=['base_dir', 'agent', 'environment', 'run_info', 'seed'])
class OnlineRunner(FixedReplayRunner):
  """Online iterations of an `OnlineAgent` with a `LoggedReplayBuffer`."""

  def __init__(self, base_dir: str, agent, environment, run_info: dict,
               seed: int, num_iterations: int = 200,
               training_steps: int = 250_000, evaluation_steps: int = 125_000,
               max_steps_per_episode: int = 27_000,
               checkpoints_kept: int = 3, progress: bool = True):
    """Args:
      base_dir: the run directory (created; resumed if it holds checkpoints).
      agent: an `OnlineAgent`.
      environment: a gymnasium environment for training and evaluation.
      run_info: facts about the run written to run_info.json.
      seed: seeds the environment and Dopamine's replay sampler (numpy's
        global RNG), differently for each iteration the run starts from.
      num_iterations: iterations in the whole run.
      training_steps: minimum agent steps of training per iteration (whole
        episodes; 250k agent steps = 1M Atari frames).
      evaluation_steps: minimum agent steps of evaluation per iteration.
      max_steps_per_episode: episodes are cut here (as well as by the
        environment's own time limit).
      checkpoints_kept: how many iteration checkpoints to keep.
      progress: show progress bars.
    """
    super().__init__(
        base_dir=base_dir, agent=agent, environment=environment,
        make_dataset=None, run_info=run_info, num_iterations=num_iterations,
        training_steps=training_steps, evaluation_steps=evaluation_steps,
        max_steps_per_episode=max_steps_per_episode,
        checkpoints_kept=checkpoints_kept, progress=progress)
    # A resumed run must not replay the episodes and batches it started with.
    start_seed = experiment.iteration_seed(seed, self.start_iteration)
    environment.reset(seed=start_seed)
    np.random.seed(start_seed)

  def _train(self, iteration: int) -> float:
    self.agent.eval_mode = False
    returns, steps = [], 0
    bar = self._progress_bar(self.training_steps,
                             f'iteration {iteration} train')
    while steps < self.training_steps:
      episode_return, episode_steps = evaluation.run_episode(
          self.agent, self.environment, self.max_steps_per_episode)
      returns.append(episode_return)
      steps += episode_steps
      bar.update(episode_steps)
    bar.close()
    with self.summary_writer.as_default(step=iteration):
      tf.summary.scalar('train_return_mean', np.mean(returns))
      tf.summary.scalar('train_episodes', len(returns))
    losses = self.agent.pop_losses()
    return float(losses.mean()) if len(losses) else float('nan')

  def _checkpoint(self, iteration: int) -> None:
    # The base class counts training_steps gradient steps per iteration;
    # online, only every update_period-th agent step after the warm-up is one.
    self.rows[-1]['gradient_steps'] = self.agent.gradient_steps
    super()._checkpoint(iteration)

  def run_experiment(self) -> list[dict]:
    """Runs the remaining iterations, then logs the partial last buffer."""
    rows = super().run_experiment()
    self.agent.replay.log_final_buffer()
    return rows
