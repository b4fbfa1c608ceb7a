r"""Offline policy selection: estimates per saved checkpoint, no environment.

  python -m batch_rl.policy_selection --base_dirs=RUN[,RUN...] --out=OUT \
      [--fqe_steps=5000] [--holdout_fraction=F] [--holdout_seed=S] \
      [--replay_dir=D]

For every checkpoint `base_dir/checkpoints/iteration_N` of a run of a
discrete agent:
- held-out TD error: mean L(agent.td_error(batch)) over held-out
  transitions, the TD error as the agent's own loss sees it (clipped
  rewards, n-step discount, the checkpoint's target network);
- Fitted Q Evaluation (FQE) of the checkpoint's greedy policy pi: a fresh
  Q-network trained on the logged one-step transitions towards
  y = r + gamma (1 - terminal) Q_fqe_target(s', pi(s')); the estimate is the
  mean of Q_fqe(s0, pi(s0)) over the first states of the stored episodes, a
  discounted return in the data's reward scale.

The agent is rebuilt from the run's operative gin config (run_info.json) and
scored through its public API only (`td_error`, `greedy_actions`), so every
registered discrete agent can be selected.
"""

import csv
import dataclasses
import math
import os
from typing import Callable, Optional, Sequence

from absl import flags
import numpy as np
from scipy import stats
import tensorflow as tf
import tqdm

from batch_rl import cli
from batch_rl import command_line
from batch_rl import experiment
from batch_rl.agents import base
from batch_rl.agents import dqn_agent
from batch_rl.agents import losses
from batch_rl.agents import networks
from batch_rl.analysis import runs
from batch_rl.analysis.errors import AnalysisError
from batch_rl.data import replay_dataset
from batch_rl.data import transitions
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_dataset import ReplayDataset
from batch_rl.data.replay_store import ReplayStore
from batch_rl.run_directory import AGENT_NAME
from batch_rl.run_directory import ENVIRONMENT
from batch_rl.run_directory import EVAL_RETURN_MEAN
from batch_rl.run_directory import ITERATION
from batch_rl.run_directory import REPLAY_DIR
from batch_rl.run_directory import RunDirectory

SELECTION_CSV = 'selection.csv'
COLUMNS = ('run', ITERATION, 'heldout_td_error', 'fqe_estimate',
           EVAL_RETURN_MEAN, 'heldout_disjoint', 'fqe_in_bounds')
# Held out when the run itself held nothing out (then not disjoint).
DEFAULT_HOLDOUT_FRACTION = 0.1
_EVAL_BATCH_SIZE = replay_dataset.READ_BATCH_SIZE


@dataclasses.dataclass(frozen=True)
class SelectionOptions:
  """Settings of `select`.

  Attributes:
    holdout_fraction: fraction of the valid transitions held out; None: the
      run's own `DataSelection.holdout_fraction`, or 0.1 if it held none out.
    seed: seed of the held-out set and of FQE; None: the run's
      `DataSelection.seed`.
    max_heldout: evaluate the TD error on at most this many held-out
      transitions (a seeded subset).
    td_loss: 'huber' or 'mse', the per-transition TD error.
    fqe_steps: gradient steps of FQE per checkpoint.
    fqe_batch_size: transitions per FQE step.
    fqe_learning_rate: Adam's step size for FQE.
    fqe_target_update_period: FQE steps between target-network copies.
    replay_dir: the data, when it moved since training (default: the
      replay_dir in run_info.json).
  """
  holdout_fraction: Optional[float] = None
  seed: Optional[int] = None
  max_heldout: int = 10_000
  td_loss: str = 'huber'
  fqe_steps: int = 5_000
  fqe_batch_size: int = 64
  fqe_learning_rate: float = 3e-4
  fqe_target_update_period: int = 100
  replay_dir: Optional[str] = None


# ---- Estimates, independent of run directories. ----


def mean_td_error(agent: base.Agent, dataset: tf.data.Dataset,
                  td_loss=losses.huber_loss) -> float:
  """Mean of L(agent.td_error(batch)) over one pass of `dataset`."""
  total, count = 0.0, 0
  for batch in dataset:
    errors = td_loss(agent.td_error(batch), 0.).numpy().astype(np.float64)
    total += errors.sum()
    count += len(errors)
  return total / count


def fitted_q_evaluation(policy: Callable, make_network: Callable,
                        dataset: tf.data.Dataset, initial_states: np.ndarray,
                        gamma: float, steps: int,
                        learning_rate: float = 3e-4,
                        target_update_period: int = 100,
                        progress: Optional[str] = None) -> float:
  """FQE: mean over s0 of Q(s0, pi(s0)) after `steps` TD steps towards pi.

  Q is trained with the Huber loss on L(y - Q(s, a)),
  y = r + gamma (1 - terminal) Q_target(s', pi(s')).

  Args:
    policy: states [B, ...] -> [B] int32 actions, the policy evaluated.
    make_network: name -> network mapping states to [B, A, 1].
    dataset: endless one-step transition batches (docs/DESIGN.md), rewards
      unclipped.
    initial_states: [N, ...] states whose values are averaged.
    gamma: discount of the estimate.
    steps: gradient steps.
    learning_rate: Adam's step size.
    target_update_period: steps between copies of Q into Q_target.
    progress: the label of a step counter shown on terminals (None: none).
  """
  q_network = make_network('fqe_online')
  target_network = make_network('fqe_target')
  probe = tf.constant(initial_states[:1])
  q_network(probe)
  target_network(probe)
  optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)

  def values(network, states, actions):
    return losses.select_actions(network(states)[..., 0], actions)

  def sync_target():
    for target, online in zip(target_network.variables, q_network.variables):
      target.assign(online)

  @tf.function
  def train_step(batch):
    next_value = values(target_network, batch['next_state'],
                        policy(batch['next_state']))
    discount = gamma * (1. - tf.cast(batch['terminal'], tf.float32))
    target = losses.bellman_target(batch['reward'], discount, next_value)
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(losses.huber_loss(
          target, values(q_network, batch['state'], batch['action'])))
    variables = q_network.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

  batches = iter(dataset)
  for step in tqdm.trange(steps, desc=progress, unit='step', leave=False,
                          disable=None if progress else True):
    if step % target_update_period == 0:
      sync_target()
    train_step(next(batches))
  chunks = np.array_split(initial_states,
                          math.ceil(len(initial_states) / _EVAL_BATCH_SIZE))
  estimates = [values(q_network, states, policy(states)).numpy()
               for states in map(tf.constant, chunks)]
  return float(np.concatenate(estimates).astype(np.float64).mean())


def value_bounds(store: ReplayStore, gamma: float) -> tuple[float, float]:
  """(low, high) bounding every policy's discounted return on the data.

  [min(r_min, 0), max(r_max, 0)] / (1 - gamma): an FQE estimate outside has
  diverged.
  """
  lowest = min(0.0, *(float(np.min(a.reward)) for a in store.checkpoints))
  highest = max(0.0, *(float(np.max(a.reward)) for a in store.checkpoints))
  store.release_pages()
  return lowest / (1. - gamma), highest / (1. - gamma)


def episode_start_indices(replay: ReplayDataset) -> np.ndarray:
  """Global indices of the first real slot of every stored episode.

  Starts that are no valid transition (at the write cursor) are left out.
  """
  starts = [episode.slots[0] for episode in replay.episodes()]
  valid = replay.store.valid_indices(replay.stack_size, replay.update_horizon)
  return np.intersect1d(np.asarray(starts, dtype=valid.dtype), valid)


# ---- Run directories. ----


@dataclasses.dataclass
class _RunData:
  """A run's agent (rebuilt from gin) and the data it trained on."""
  agent: base.Agent
  replay: ReplayDataset


def _load_run(run_dir: str, replay_dir: Optional[str]) -> _RunData:
  """Rebuilds the run's agent and opens its data; replaces the gin config."""
  run = RunDirectory(run_dir)
  info_path = run.run_info_path
  info = runs.read_run_info(
      run_dir, experiment.REBUILD_KEYS + (REPLAY_DIR,),
      'policy selection (of runs of batch_rl.train)')
  replay_dir = replay_dir or info[REPLAY_DIR]
  if not os.path.exists(replay_dir):
    raise AnalysisError(
        f'{info_path}: replay_dir {replay_dir!r} does not exist here (a '
        'relative path is relative to where training ran); pass --replay_dir.')
  agent, spec = experiment.rebuild_agent(run_dir, info=info)
  if not isinstance(agent.actions, base.DiscreteActions):
    raise AnalysisError(
        f'{info_path}: agent {info[AGENT_NAME]!r} has continuous actions; '
        'policy selection scores agents with discrete actions.')
  replay = replay_dataset.open_replay(
      replay_dir, spec.stack_size, agent.update_horizon, agent.gamma,
      run.data_selection(info))
  try:
    replay.check_frame_shape(spec.observation_shape, info[ENVIRONMENT])
  except ReplayDataError as e:
    raise AnalysisError(f'{e} ({info_path}); pass the run\'s data with '
                        '--replay_dir.') from e
  return _RunData(agent, replay)


def _checkpoints(run_dir: str):
  """The run's checkpoint folders; raises if there is none."""
  run_directory = RunDirectory(run_dir)
  checkpoints = run_directory.existing_checkpoints()
  if checkpoints is None or not checkpoints.iterations():
    raise AnalysisError(
        f'{run_directory.checkpoints_path}: no iteration_N checkpoint. Runs '
        'keep only the latest Runner.checkpoints_kept (default 3); train '
        'with e.g. --gin_bindings=Runner.checkpoints_kept=1000 to select '
        'among all iterations.')
  return checkpoints


def _heldout_indices(data: _RunData, options: SelectionOptions
                     ) -> tuple[np.ndarray, bool, int]:
  """(held-out indices to score, disjoint from training?, seed)."""
  replay = data.replay
  run = replay.selection
  fraction = options.holdout_fraction
  if fraction is None:
    fraction = run.holdout_fraction or DEFAULT_HOLDOUT_FRACTION
  seed = run.seed if options.seed is None else options.seed
  probe = dataclasses.replace(run, holdout_fraction=fraction, seed=seed)
  held_out = ReplayDataset(replay.store, replay.stack_size,
                           replay.update_horizon, replay.gamma,
                           probe).held_out_indices
  if len(held_out) > options.max_heldout:
    held_out = np.sort(np.random.default_rng(seed).choice(
        held_out, size=options.max_heldout, replace=False))
  disjoint = run.holdout_fraction == fraction and run.seed == seed
  return held_out, disjoint, seed


def evaluate_run(run_dir: str, options: SelectionOptions) -> list[dict]:
  """One row of COLUMNS per checkpoint of `run_dir`."""
  if options.td_loss not in dqn_agent.TD_LOSSES:
    raise AnalysisError(f'--td_loss {options.td_loss!r} is not one of '
                        f'{list(dqn_agent.TD_LOSSES)}.')
  checkpoints = _checkpoints(run_dir)
  eval_returns = runs.read_metrics(run_dir).set_index(ITERATION)[
      EVAL_RETURN_MEAN]
  data = _load_run(run_dir, options.replay_dir)
  agent = data.agent
  held_out, disjoint, seed = _heldout_indices(data, options)
  if not disjoint:
    print(f'warning: {run_dir} trained on the held-out transitions; bind '
          'DataSelection.holdout_fraction when training for an honest '
          'held-out TD error.')
  td_loss = dqn_agent.TD_LOSSES[options.td_loss]
  replay = data.replay
  heldout_dataset = replay.read(held_out)
  # FQE learns from one-step transitions of the data the run trained on.
  one_step = ReplayDataset(replay.store, replay.stack_size, 1, agent.gamma,
                           replay.selection)
  starts = episode_start_indices(one_step)
  low, high = value_bounds(replay.store, agent.gamma)
  initial_states = np.concatenate([
      batch['state'].numpy() for batch in one_step.read(starts)])
  fqe_dataset = one_step.batches(options.fqe_batch_size, seed,
                                 elements=transitions.TRANSITION_ELEMENTS
                                 ).unbatch()
  rows = []
  for iteration in checkpoints.iterations():
    path = checkpoints.path(iteration)
    if not agent.unbundle(path, iteration, None):
      raise AnalysisError(f'{path}: no {base.CHECKPOINT_PREFIX}-{iteration}'
                          '.index; the checkpoint is incomplete.')
    # The same FQE initialization and batches for every checkpoint.
    tf.random.set_seed(seed)
    fqe = fitted_q_evaluation(
        agent.greedy_actions,
        lambda name: networks.QHeadsNetwork(agent.num_actions, 1, name=name),
        fqe_dataset, initial_states, agent.gamma, options.fqe_steps,
        options.fqe_learning_rate, options.fqe_target_update_period,
        progress=f'{run_dir} iteration {iteration}: FQE')
    rows.append({
        'run': run_dir, ITERATION: iteration,
        'heldout_td_error': mean_td_error(agent, heldout_dataset, td_loss),
        'fqe_estimate': fqe,
        EVAL_RETURN_MEAN: float(eval_returns.get(iteration, float('nan'))),
        'heldout_disjoint': disjoint,
        'fqe_in_bounds': low <= fqe <= high,
    })
    print(f'{run_dir} iteration {iteration}: held-out TD error '
          f'{rows[-1]["heldout_td_error"]:.4g}, FQE {fqe:.4g}, online '
          f'return {rows[-1]["eval_return_mean"]:.4g}', flush=True)
  return rows


def spearman(rows: Sequence[dict], column: str) -> float:
  """Spearman rank correlation of `column` with eval_return_mean.

  nan where undefined: fewer than 3 finite pairs, or a constant column.
  """
  pairs = np.array([(r[column], r[EVAL_RETURN_MEAN]) for r in rows],
                   dtype=np.float64).reshape(-1, 2)
  pairs = pairs[np.isfinite(pairs).all(axis=1)]
  if len(pairs) < 3 or (pairs.std(axis=0) == 0).any():
    return float('nan')
  return float(stats.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)


def summary(rows: Sequence[dict]) -> str:
  """Per run, checkpoints ranked by FQE and rank correlations, as text.

  Out-of-bounds (diverged) FQE estimates rank last.
  """
  lines = []
  groups = {}
  for row in rows:
    groups.setdefault(row['run'], []).append(row)
  if len(groups) > 1:
    groups['all runs'] = list(rows)
  for run, run_rows in groups.items():
    lines.append(f'{run}: checkpoints ranked by FQE estimate')
    lines.append('  rank  iteration  fqe_estimate  heldout_td_error  '
                 'eval_return_mean')
    ranked = sorted(run_rows,
                    key=lambda r: (not r['fqe_in_bounds'], -r['fqe_estimate']))
    for rank, r in enumerate(ranked, 1):
      lines.append(f'  {rank:4d}  {r[ITERATION]:9d}  '
                   f'{r["fqe_estimate"]:12.4g}  {r["heldout_td_error"]:16.4g}'
                   f'  {r[EVAL_RETURN_MEAN]:16.4g}' +
                   ('' if r['fqe_in_bounds'] else
                    '  (FQE outside the feasible returns: diverged)'))
    in_bounds = [r for r in run_rows if r['fqe_in_bounds']]
    lines.append(
        '  Spearman with eval_return_mean: FQE '
        f'{spearman(run_rows, "fqe_estimate"):.3f} (in bounds only, '
        f'{len(in_bounds)} of {len(run_rows)}: '
        f'{spearman(in_bounds, "fqe_estimate"):.3f}), held-out TD error '
        f'{spearman(run_rows, "heldout_td_error"):.3f} (a useful TD error '
        'correlates negatively)')
  return '\n'.join(lines)


def write_selection(base_dirs: Sequence[str], out_dir: str,
                    options: SelectionOptions = SelectionOptions()
                    ) -> tuple[str, list[dict]]:
  """Scores every checkpoint of every run under `base_dirs`.

  Replaces the process's gin config (each run's is parsed in turn).

  Returns:
    (path of selection.csv in `out_dir`, its rows).
  """
  rows = []
  for run_dir in runs.find_run_dirs(base_dirs):
    rows.extend(evaluate_run(run_dir, options))
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, SELECTION_CSV)
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  return path, rows


flags.DEFINE_list('base_dirs', None, 'Directories searched recursively for '
                  'runs (run_info.json + metrics.csv + checkpoints/).')
flags.DEFINE_float('holdout_fraction', None, 'Fraction held out (default: '
                   "the run's DataSelection.holdout_fraction, else "
                   f'{DEFAULT_HOLDOUT_FRACTION}).')
flags.DEFINE_integer('holdout_seed', None, 'Seed of the held-out set and of '
                     "FQE (default: the run's DataSelection.seed).")
flags.DEFINE_integer('max_heldout', SelectionOptions.max_heldout,
                     'Held-out transitions scored at most.')
flags.DEFINE_enum('td_loss', SelectionOptions.td_loss,
                  list(dqn_agent.TD_LOSSES), 'Per-transition TD error.')
flags.DEFINE_integer('fqe_steps', SelectionOptions.fqe_steps,
                     'FQE gradient steps per checkpoint.')
flags.DEFINE_integer('fqe_batch_size', SelectionOptions.fqe_batch_size,
                     'Transitions per FQE step.')
flags.DEFINE_float('fqe_learning_rate', SelectionOptions.fqe_learning_rate,
                   "FQE's Adam step size.")
flags.DEFINE_integer('fqe_target_update_period',
                     SelectionOptions.fqe_target_update_period,
                     'FQE steps between target-network copies.')
flags.adopt_module_key_flags(command_line)
FLAGS = flags.FLAGS


def run(base_dirs: Sequence[str], out_dir: str,
        options: SelectionOptions) -> int:
  """Selects among the checkpoints of `base_dirs`, prints the summary."""
  path, rows = write_selection(base_dirs, out_dir, options)
  print(summary(rows))
  print(f'wrote {path}')
  return 0


def main(argv) -> int:
  del argv
  command_line.require_flags('base_dirs', 'out')
  return run(FLAGS.base_dirs, FLAGS.out, SelectionOptions(
      holdout_fraction=FLAGS.holdout_fraction, seed=FLAGS.holdout_seed,
      max_heldout=FLAGS.max_heldout, td_loss=FLAGS.td_loss,
      fqe_steps=FLAGS.fqe_steps, fqe_batch_size=FLAGS.fqe_batch_size,
      fqe_learning_rate=FLAGS.fqe_learning_rate,
      fqe_target_update_period=FLAGS.fqe_target_update_period,
      replay_dir=FLAGS.replay_dir))


if __name__ == '__main__':
  cli.run(main)
