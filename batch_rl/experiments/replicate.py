r"""Small-scale replication of Agarwal et al. (2020) on MinAtar, one command.

  python -m batch_rl.experiments.replicate --out=runs/replication \
      [--scale=full|smoke] [--games=breakout --games=freeway ...] \
      [--seeds=3 | --seed_ids=1 --seed_ids=2] \
      [--agents=dqn --agents=rem ...] \
      [--selections=all --selections=first_10pct ...] \
      [--only=logging|offline|report] [--dry_run]

Stages (all three unless --only names one):
1. logging: online DQN logs its replay, per game and seed
   (`python -m batch_rl.log_data`, gin/replication/logging.gin).
2. offline: DQN, QR-DQN, Ensemble-DQN and REM, per game and seed, on that
   seed's logged replay: all of it, a random 10% of its transitions and its
   first 10% of checkpoints (`python -m batch_rl.train`,
   gin/replication/offline.gin).
3. report: a seeded uniformly random policy's score per game (measured here)
   and the online DQN's score go to `reference.csv`, then
   `python -m batch_rl.analysis` writes `report/report.md` with scores
   normalized to them.

Runs execute one after another as subprocesses whose commands are printed, so
any run can be reproduced by hand. Finished runs (metrics.csv holds every
iteration) are skipped and unfinished ones resume from their checkpoints:
interrupt the command at any time and rerun it.

Layout under --out:
  logging/<game>/seed_<s>/                      replay in replay_logs/
  offline/<game>/<agent>/<selection>/seed_<s>/
  logs/                                         each run's output
  random_scores.csv, reference.csv
  report/report.md
"""

import csv
import dataclasses
import os
import shlex
import subprocess
import sys
import time
from typing import Optional, Sequence

from absl import flags
import gin
from gin import config_parser
import numpy as np

from batch_rl import cli
from batch_rl import command_line
from batch_rl.analysis import runs as run_logs
from batch_rl.analysis import scores
from batch_rl.environments import factory
from batch_rl.environments import minatar
from batch_rl.run_directory import RunDirectory
from batch_rl.runner import evaluation

STAGES = ('logging', 'offline', 'report')
# The data of the paper's ablations: all of it, a random 10% of its
# transitions, and its first 10% of checkpoints (the "first 10% of frames").
SELECTIONS = ('all', 'random_10pct', 'first_10pct')
SUBSET_FRACTION = 0.1
PROTOCOL = 'best'  # A run's score is its best iteration, as in the paper.
RANDOM_POLICY_SEED = 0

# Time model: wall seconds measured on the shared 2-core development machine
# at a load average of 5 to 7 (docs/RESULTS.md). The progress lines rescale
# it by how long the finished runs took.
STARTUP_S = 15.0           # interpreter, TensorFlow, data loading, tracing
ONLINE_STEP_S = 0.0035     # agent step of the logging DQN, with its updates
GRADIENT_STEP_S = 0.006    # offline gradient step, batch pipeline included
EVALUATION_STEP_S = 0.0015  # greedy agent step, whole episodes' overshoot too


@dataclasses.dataclass(frozen=True)
class OfflineAgent:
  """An offline agent of the replication.

  Attributes:
    label: its run directories' name.
    gin_file: its hyperparameters under gin/, binding the registered name
      (`create_agent.agent_name`) the report shows.
  """
  label: str
  gin_file: str


AGENTS = {agent.label: agent for agent in (
    OfflineAgent('dqn', 'minatar/dqn.gin'),
    OfflineAgent('qr_dqn', 'minatar/quantile.gin'),
    OfflineAgent('ensemble_dqn', 'minatar/ensemble_dqn.gin'),
    OfflineAgent('rem', 'minatar/rem.gin'),
)}
LOGGING_AGENT = 'dqn'


@dataclasses.dataclass(frozen=True)
class Scale:
  """Gin files (under gin/) and defaults of one replication scale."""
  logging_gin_files: tuple[str, ...]
  offline_gin_files: tuple[str, ...]  # After the agent's own file.
  random_policy_episodes: int
  games: tuple[str, ...]
  seeds: int


_LOGGING_GIN = ('minatar/dqn.gin', 'replication/logging.gin')
_OFFLINE_GIN = ('minatar/offline.gin', 'replication/offline.gin')
SCALES = {
    'full': Scale(_LOGGING_GIN, _OFFLINE_GIN, random_policy_episodes=1000,
                  games=minatar.GAMES, seeds=3),
    'smoke': Scale(_LOGGING_GIN + ('replication/smoke_logging.gin',),
                   _OFFLINE_GIN + ('replication/smoke_offline.gin',),
                   random_policy_episodes=20, games=('breakout',), seeds=1),
}


class ReplicationError(ValueError):
  """A run failed or cannot start; the message says which and why."""


def gin_literals(gin_files: Sequence[str]) -> dict:
  """'Configurable.parameter' -> value of the bindings in `gin_files`.

  Later files override earlier ones, as when gin parses them; read without
  importing the configurables, which would load TensorFlow.
  """
  values = {}
  delegate = gin.config.ParserDelegate(skip_unknown=True)
  for name in gin_files:
    with open(os.path.join(command_line.GIN_DIR, name)) as f:
      for statement in config_parser.ConfigParser(f, delegate):
        if isinstance(statement, config_parser.BindingStatement):
          values[f'{statement.selector}.{statement.arg_name}'] = statement.value
  return values


@dataclasses.dataclass(frozen=True)
class Budget:
  """What one run of a runner does, from its gin files."""
  num_iterations: int
  training_steps: int
  evaluation_steps: int
  max_steps_per_episode: int

  @classmethod
  def from_gin(cls, gin_files: Sequence[str], runner: str = 'Runner'
               ) -> 'Budget':
    values = gin_literals(gin_files)
    fields = [f.name for f in dataclasses.fields(cls)]
    missing = [f'{runner}.{f}' for f in fields if f'{runner}.{f}' not in values]
    if missing:
      raise ReplicationError(
          f'{", ".join(gin_files)}: no binding of {", ".join(missing)}; the '
          'replication reads each run\'s budget from its gin files.')
    return cls(*(int(values[f'{runner}.{f}']) for f in fields))


@dataclasses.dataclass(frozen=True)
class Run:
  """One subprocess of the plan.

  Attributes:
    stage: 'logging' or 'offline'.
    game: the MinAtar game.
    seed: the run's seed (offline runs train on that seed's logged replay).
    name: its directory relative to --out, e.g. 'logging/breakout/seed_0'.
    base_dir: its run directory.
    label: the agent's directory name (see OfflineAgent.label).
    command: the command line that runs (or resumes) it.
    num_iterations: the iterations of a finished run.
    estimated_s: its expected duration when started from scratch.
    requires: the run whose replay it trains on (offline runs).
  """
  stage: str
  game: str
  seed: int
  name: str
  base_dir: str
  label: str
  command: tuple[str, ...]
  num_iterations: int
  estimated_s: float
  requires: Optional['Run'] = None

  def finished_iterations(self) -> int:
    return RunDirectory(self.base_dir).finished_iterations()

  @property
  def finished(self) -> bool:
    return RunDirectory(self.base_dir).is_complete(self.num_iterations)

  def remaining_s(self) -> float:
    done = min(self.finished_iterations(), self.num_iterations)
    return self.estimated_s * (1 - done / self.num_iterations)


def _gin_flags(gin_files: Sequence[str], bindings: Sequence[str]) -> list[str]:
  return ([f'--gin_files={f}' for f in gin_files] +
          [f'--gin_bindings={b}' for b in bindings])


def _run_time(budget: Budget, training_step_s: float) -> float:
  return STARTUP_S + budget.num_iterations * (
      budget.training_steps * training_step_s +
      budget.evaluation_steps * EVALUATION_STEP_S)


def selection_bindings(selection: str, logged_checkpoints: int
                       ) -> tuple[str, ...]:
  """The DataSelection bindings of one of SELECTIONS."""
  if selection == 'all':
    return ()
  if selection == 'random_10pct':
    return (f'DataSelection.fraction={SUBSET_FRACTION}',)
  if selection == 'first_10pct':
    first_k = max(1, round(SUBSET_FRACTION * logged_checkpoints))
    return (f'DataSelection.first_k={first_k}',)
  raise ValueError(f'selection {selection!r}: expected one of {SELECTIONS}.')


def plan(out: str, scale: Scale, games: Sequence[str], seeds: Sequence[int],
         agents: Sequence[str] = tuple(AGENTS),
         selections: Sequence[str] = SELECTIONS) -> list[Run]:
  """Every run, logging runs first, each stage seed by seed.

  Seed-major order gives a complete first seed of every game and agent
  early, so an interrupted replication already has something to report.
  """
  logging_budget = Budget.from_gin(scale.logging_gin_files)
  offline_budget = Budget.from_gin(scale.offline_gin_files)
  python = sys.executable
  logging_runs = {}
  for seed in seeds:
    for game in games:
      name = os.path.join('logging', game, f'seed_{seed}')
      base_dir = os.path.join(out, name)
      command = [python, '-m', 'batch_rl.log_data',
                 f'--agent_name={LOGGING_AGENT}', f'--base_dir={base_dir}']
      command += _gin_flags(scale.logging_gin_files, [
          f'create_online_runner.environment_name="minatar:{game}"',
          f'create_online_runner.seed={seed}'])
      logging_runs[game, seed] = Run(
          'logging', game, seed, name, base_dir, LOGGING_AGENT, tuple(command),
          logging_budget.num_iterations,
          _run_time(logging_budget, ONLINE_STEP_S))
  offline_runs = []
  for seed in seeds:
    for game in games:
      source = logging_runs[game, seed]
      for label in agents:
        agent = AGENTS[label]
        for selection in selections:
          name = os.path.join('offline', game, label, selection,
                              f'seed_{seed}')
          base_dir = os.path.join(out, name)
          command = [
              python, '-m', 'batch_rl.train',
              f'--replay_dir={RunDirectory(source.base_dir).replay_logs_path}',
              f'--base_dir={base_dir}']
          command += _gin_flags((agent.gin_file,) + scale.offline_gin_files, [
              f'create_runner.environment_name="minatar:{game}"',
              f'create_runner.seed={seed}',
              'create_runner.selection=@DataSelection()',
              f'DataSelection.seed={seed}',
              # One checkpoint per logging iteration (replication/logging.gin).
              *selection_bindings(selection, logging_budget.num_iterations)])
          offline_runs.append(Run(
              'offline', game, seed, name, base_dir, label, tuple(command),
              offline_budget.num_iterations,
              _run_time(offline_budget, GRADIENT_STEP_S), source))
  return list(logging_runs.values()) + offline_runs


def format_duration(seconds: float) -> str:
  """'45s', '12m05s', '3h07m'."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'


def _status(run: Run) -> str:
  done = run.finished_iterations()
  if done >= run.num_iterations:
    return 'finished'
  if done:
    return f'resumes after iteration {done - 1}'
  return 'new'


def print_plan(runs: Sequence[Run]) -> None:
  """Every run with its status, estimate and command (--dry_run)."""
  for i, run in enumerate(runs, 1):
    print(f'[{i}/{len(runs)}] {run.name}: {_status(run)}, '
          f'~{format_duration(run.remaining_s())}')
    print(f'  {shlex.join(run.command)}')
  pending = [run for run in runs if not run.finished]
  print(f'{len(pending)} of {len(runs)} runs to do, estimated '
        f'{format_duration(sum(run.remaining_s() for run in pending))}.')


def _log_tail(path: str, lines: int = 20) -> str:
  with open(path, errors='replace') as f:
    return ''.join(f.readlines()[-lines:])


def execute(runs: Sequence[Run], out: str) -> None:
  """Runs the unfinished runs one after another, printing progress."""
  pending = [run for run in runs if not run.finished]
  if runs:
    print(f'{len(runs) - len(pending)} of {len(runs)} runs already finished.')
  waiting = [run for run in pending if run.requires is not None and
             not run.requires.finished and run.requires not in pending]
  if waiting:
    raise ReplicationError(
        f'{waiting[0].name} trains on the replay of '
        f'{waiting[0].requires.name}, which is not finished; run the logging '
        'stage first (--only logging, or no --only).')
  log_dir = os.path.join(out, 'logs')
  os.makedirs(log_dir, exist_ok=True)
  start, estimated_done = time.time(), 0.0
  for i, run in enumerate(pending, 1):
    estimate = run.remaining_s()
    print(f'[{i}/{len(pending)}] {run.name} ({_status(run)}, '
          f'~{format_duration(estimate)})\n  {shlex.join(run.command)}',
          flush=True)
    log_path = os.path.join(log_dir, run.name.replace(os.sep, '__') + '.log')
    run_start = time.time()
    with open(log_path, 'a') as log:
      log.write(f'$ {shlex.join(run.command)}\n')
      log.flush()
      code = subprocess.call(run.command, stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not run.finished:
      raise ReplicationError(
          f'{run.name} exited with status {code} after '
          f'{run.finished_iterations()} of {run.num_iterations} iterations; '
          f'its output is in {log_path}, ending:\n{_log_tail(log_path)}'
          'Rerunning the replication skips the finished runs and resumes '
          'this one.')
    estimated_done += estimate
    elapsed = time.time() - start
    left = sum(r.remaining_s() for r in pending[i:]) * elapsed / estimated_done
    print(f'  done in {format_duration(time.time() - run_start)}; elapsed '
          f'{format_duration(elapsed)}, about {format_duration(left)} left',
          flush=True)


class UniformRandomAgent:
  """Uniformly random actions from a seeded generator; learns nothing."""

  def __init__(self, num_actions: int, seed: int):
    self.num_actions = num_actions
    self.eval_mode = True
    self._rng = np.random.default_rng(seed)

  def _act(self) -> int:
    return int(self._rng.integers(self.num_actions))

  def begin_episode(self, observation) -> int:
    del observation
    return self._act()

  def step(self, reward, observation) -> int:
    del reward, observation
    return self._act()

  def end_episode(self, reward, terminal: bool = True) -> None:
    del reward, terminal


def random_policy_score(environment_name: str, episodes: int, seed: int,
                        max_steps_per_episode: int) -> float:
  """Mean return of a uniformly random policy over `episodes` episodes."""
  env, spec = factory.create_environment(environment_name)
  env.reset(seed=seed)  # Later resets continue this seeded stream.
  agent = UniformRandomAgent(spec.num_actions, seed)
  return float(np.mean([
      evaluation.run_episode(agent, env, max_steps_per_episode)[0]
      for _ in range(episodes)]))


def random_policy_scores(out: str, environments: Sequence[str],
                         episodes: int, max_steps_per_episode: int
                         ) -> dict[str, float]:
  """Random scores per environment, measured once and kept in --out."""
  path = os.path.join(out, 'random_scores.csv')
  fields = ('environment', 'random', 'episodes', 'seed',
            'max_steps_per_episode')
  wanted = {'episodes': episodes, 'seed': RANDOM_POLICY_SEED,
            'max_steps_per_episode': max_steps_per_episode}
  rows = {}
  if os.path.isfile(path):
    with open(path, newline='') as f:
      rows = {row['environment']: row for row in csv.DictReader(f)}
  for environment in environments:
    row = rows.get(environment)
    if row is None or any(int(row[k]) != v for k, v in wanted.items()):
      print(f'measuring a random policy on {environment} over {episodes} '
            'episodes', flush=True)
      score = random_policy_score(environment, episodes, RANDOM_POLICY_SEED,
                                  max_steps_per_episode)
      rows[environment] = {'environment': environment, 'random': score,
                           **wanted}
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fields)
    writer.writeheader()
    writer.writerows(rows[e] for e in sorted(rows))
  return {e: float(rows[e]['random']) for e in environments}


def dqn_scores(logging_runs: Sequence[Run]) -> dict[str, float]:
  """Per environment, the finished online DQN runs' mean score."""
  per_environment = {}
  for run in logging_runs:
    if run.finished:
      log = run_logs.load_run(run.base_dir)
      per_environment.setdefault(log.environment, []).append(
          scores.run_score(log.metrics, PROTOCOL))
  return {e: float(np.mean(v)) for e, v in per_environment.items()}


def write_reference(out: str, scale: Scale, logging_runs: Sequence[Run]
                    ) -> str:
  """reference.csv (environment,random,dqn) for the analysis; its path."""
  dqn = dqn_scores(logging_runs)
  budget = Budget.from_gin(scale.offline_gin_files)
  random = random_policy_scores(out, sorted(dqn), scale.random_policy_episodes,
                                budget.max_steps_per_episode)
  rows = []
  for environment in sorted(dqn):
    if dqn[environment] == random[environment]:
      print(f'{environment}: online DQN scores what a random policy does '
            f'({random[environment]:g}); left out of the normalized scores.')
    else:
      rows.append((environment, random[environment], dqn[environment]))
  seeds = sorted({run.seed for run in logging_runs})
  path = os.path.join(out, 'reference.csv')
  with open(path, 'w', newline='') as f:
    f.write(
        '# random: uniformly random policy (seed '
        f'{RANDOM_POLICY_SEED}), mean return over '
        f'{scale.random_policy_episodes} episodes with sticky actions\n'
        '# dqn: the online DQN runs that logged the data '
        f'({", ".join(scale.logging_gin_files)}), {PROTOCOL} iteration\'s '
        f'eval_return_mean, mean over the finished runs of seeds '
        f'{", ".join(map(str, seeds))}\n')
    writer = csv.writer(f)
    writer.writerow(('environment', 'random', 'dqn'))
    writer.writerows(rows)
  return path


def report(out: str, scale: Scale, runs: Sequence[Run]) -> None:
  """Reference scores, then `python -m batch_rl.analysis` on the offline runs."""
  reference = write_reference(
      out, scale, [run for run in runs if run.stage == 'logging'])
  offline = os.path.join(out, 'offline')
  if not any(run.finished_iterations() for run in runs
             if run.stage == 'offline'):
    raise ReplicationError(f'{out}: no offline run has finished an iteration '
                           'yet; nothing to report.')
  command = [sys.executable, '-m', 'batch_rl.analysis', 'report',
             f'--base_dirs={offline}', f'--out={os.path.join(out, "report")}',
             f'--reference={reference}', f'--protocol={PROTOCOL}']
  print(shlex.join(command), flush=True)
  if subprocess.call(command) != 0:
    raise ReplicationError(f'the analysis failed: {shlex.join(command)}')


FLAGS = flags.FlagValues()
flags.DEFINE_string('out', None, 'Directory of all runs, logs and the report.',
                    flag_values=FLAGS)
flags.DEFINE_enum('scale', 'full', sorted(SCALES),
                  'full (docs/RESULTS.md) or smoke (minutes).',
                  flag_values=FLAGS)
flags.DEFINE_multi_enum('games', [], minatar.GAMES, "MinAtar games (default: "
                        "the scale's); repeat the flag.", flag_values=FLAGS)
flags.DEFINE_integer('seeds', None, "Seeds 0..N-1 (default: the scale's).",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_multi_integer('seed_ids', [], 'Exactly these seeds, e.g. 2 to '
                           'run a third seed beside a running replication '
                           '(overrides --seeds); repeat the flag.',
                           flag_values=FLAGS)
flags.DEFINE_multi_enum('agents', list(AGENTS), list(AGENTS),
                        'Offline agents; repeat the flag.', flag_values=FLAGS)
flags.DEFINE_multi_enum('selections', list(SELECTIONS), SELECTIONS,
                        'Data the offline agents train on; repeat the flag.',
                        flag_values=FLAGS)
flags.DEFINE_enum('only', None, STAGES, 'Run one stage only.',
                  flag_values=FLAGS)
flags.DEFINE_boolean('dry_run', False, 'Print the plan, its commands and time '
                     'estimates.', flag_values=FLAGS)


def _run(positional) -> int:
  if positional:
    raise ValueError(f'unexpected arguments {positional}; flags are '
                     '--name=value.')
  if not FLAGS.out:
    raise ValueError('missing flags: --out.')
  scale = SCALES[FLAGS.scale]
  seeds = range(scale.seeds if FLAGS.seeds is None else FLAGS.seeds)
  if FLAGS.seed_ids:
    if min(FLAGS.seed_ids) < 0:
      raise ValueError(f'--seed_ids {FLAGS.seed_ids}: seeds are '
                       'non-negative.')
    seeds = sorted(set(FLAGS.seed_ids))
  runs = plan(FLAGS.out, scale, FLAGS.games or scale.games, seeds,
              FLAGS.agents, FLAGS.selections)
  stages = [FLAGS.only] if FLAGS.only else STAGES
  to_run = [run for run in runs if run.stage in stages]
  if FLAGS.dry_run:
    print_plan(to_run)
    if 'report' in stages:
      print('Then the report: random policy scores (once per game), '
            'reference.csv and python -m batch_rl.analysis, a few minutes.')
    return 0
  execute(to_run, FLAGS.out)
  if 'report' in stages:
    report(FLAGS.out, scale, runs)
  return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
  return cli.main_with_flags(_run, FLAGS, __doc__, argv)


if __name__ == '__main__':
  cli.run_with_flags(_run, FLAGS, __doc__)
