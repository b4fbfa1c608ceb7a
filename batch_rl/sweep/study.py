"""A study (gin) and its plan: every run with its command and dependencies.

A study file binds `Study`'s parameters (see gin/studies/):

  Study.name = 'atari_paper'
  Study.environment = 'atari:{game}'
  Study.games = ['Pong', 'Breakout']
  Study.seeds = [1, 2, 3, 4, 5]
  Study.replay_dir = '{data_root}/{game}/{seed}/replay_logs'
  Study.agents = {'rem': ('rem', ['atari/rem.gin'])}
  Study.gin_files = ['atari/offline.gin']
  Study.selections = {'all': [], 'random_10pct': ['DataSelection.fraction=0.1']}
  Study.budgets = {'1x': 1, '5x': 5}

The plan has three kinds of runs, each a command line:
- logging: an online agent logs the data of (game, seed) when the study has
  a logging stage (`Study.logging_agent`), as the MinAtar replication does;
- staging: `python -m batch_rl.data convert` prepares one copy of a dataset
  that many runs read (`Study.convert_data`);
- offline: `python -m batch_rl.train`, one per game, agent, data selection,
  budget and seed, training on its seed's data.

Nothing here imports TensorFlow or Ray: planning and `--dry_run` are instant.
"""

import dataclasses
import os
from typing import Mapping, Optional, Sequence

import gin
from gin import config_parser

from batch_rl import command_line
from batch_rl import storage
from batch_rl import study_directory
from batch_rl.run_directory import REPLAY_LOGS
from batch_rl.run_directory import RunDirectory
from batch_rl.study_directory import LOGGING
from batch_rl.study_directory import OFFLINE
from batch_rl.study_directory import STAGING

# The commands and the gin names of their runners: one place to follow when
# the command lines change.
OFFLINE_MODULE, OFFLINE_RUNNER = 'batch_rl.train', 'Runner'
LOGGING_MODULE, LOGGING_RUNNER = 'batch_rl.log_data', 'Runner'
PYTHON = 'python'  # Replaced by the worker's interpreter when a run starts.


class StudyError(ValueError):
  """A study file or flag is wrong; the message says which and why."""


@gin.configurable
class Study:
  """What a study runs: games x agents x data selections x budgets x seeds."""

  def __init__(self,
               name: str = gin.REQUIRED,
               environment: str = gin.REQUIRED,
               games: Sequence[str] = gin.REQUIRED,
               seeds: Sequence[int] = gin.REQUIRED,
               agents: Mapping[str, tuple[str, Sequence[str]]] = gin.REQUIRED,
               gin_files: Sequence[str] = (),
               gin_bindings: Sequence[str] = (),
               selections: Optional[Mapping[str, Sequence[str]]] = None,
               budgets: Optional[Mapping[str, float]] = None,
               replay_dir: Optional[str] = None,
               data_root: Optional[str] = None,
               logging_agent: Optional[str] = None,
               logging_gin_files: Sequence[str] = (),
               convert_data: bool = False,
               staged_dir: str = '{out}/staged_data/{game}/seed_{seed}',
               reference: str = 'human',
               random_policy_episodes: int = 100):
    """Args:
      name: the study's name (in study.json and the report).
      environment: the environment of a game, '{game}' replaced, e.g.
        'atari:{game}' or 'minatar:{game}'.
      games: the games.
      seeds: seed s trains on the data of seed s (`{seed}` in `replay_dir`,
        the logging run of seed s) and seeds the agent and the data
        selection; the DQN Replay Dataset's runs are 1 to 5.
      agents: label -> (registered agent name, its gin files), e.g.
        {'rem': ('rem', ['atari/rem.gin'])}. The label names the
        agent in run directories, study.json and the study's report ('rem
        5x' with more than one budget).
      gin_files: gin files of every offline run, after the agent's own.
      gin_bindings: bindings of every offline run.
      selections: label -> DataSelection bindings, e.g.
        {'all': [], 'first_10pct': ['DataSelection.first_k=5']}; default all.
      budgets: label -> multiple of the iterations the gin files give the
        offline runner, e.g. {'1x': 1, '5x': 5}; default {'1x': 1}.
      replay_dir: where the data of (game, seed) is, with {data_root},
        {game}, {seed} and {repository} (this checkout) replaced; for
        studies without a logging stage.
      data_root: {data_root} of `replay_dir` (also the --data_root flag).
      logging_agent: the online agent whose logged replay is the data
        (`python -m batch_rl.log_data`), one run per game and seed.
      logging_gin_files: the logging runs' gin files.
      convert_data: prepare each dataset once with `python -m batch_rl.data
        convert` before its runs start; they read the converted copy.
      staged_dir: where a converted dataset goes ({out}, {game}, {seed}).
      reference: how the analysis normalizes: 'logging' (the study's logging
        runs = 100%, a random policy measured on the game = 0%) or any
        `python -m batch_rl.analysis --reference` ('human', 'dqn', a CSV).
      random_policy_episodes: episodes of the random policy ('logging').
    """
    self.name = name
    self.environment = environment
    self.games = tuple(games)
    self.seeds = tuple(int(s) for s in seeds)
    self.agents = {label: (agent_name, tuple(files))
                   for label, (agent_name, files) in dict(agents).items()}
    self.gin_files = tuple(gin_files)
    self.gin_bindings = tuple(gin_bindings)
    self.selections = {k: tuple(v) for k, v in
                       (selections or {'all': ()}).items()}
    self.budgets = {k: float(v) for k, v in (budgets or {'1x': 1}).items()}
    self.replay_dir = replay_dir
    self.data_root = data_root
    self.logging_agent = logging_agent
    self.logging_gin_files = tuple(logging_gin_files)
    self.convert_data = convert_data
    self.staged_dir = staged_dir
    self.reference = reference
    self.random_policy_episodes = random_policy_episodes
    self._check()

  def _check(self):
    for field in ('games', 'seeds', 'agents', 'selections', 'budgets'):
      if not getattr(self, field):
        raise StudyError(f'Study.{field} is empty; a study needs at least '
                         'one of each.')
    if (self.replay_dir is None) == (self.logging_agent is None):
      raise StudyError(
          'a study needs exactly one source of data: Study.replay_dir (a '
          'pattern like "{data_root}/{game}/{seed}/replay_logs") or '
          'Study.logging_agent (a logging stage); got '
          f'replay_dir={self.replay_dir!r}, '
          f'logging_agent={self.logging_agent!r}.')
    logging_reference = study_directory.LOGGING_REFERENCE
    if self.reference == logging_reference and self.logging_agent is None:
      raise StudyError(f'Study.reference = {logging_reference!r} needs a '
                       'logging stage (Study.logging_agent).')
    for label, multiple in self.budgets.items():
      if multiple <= 0:
        raise StudyError(f'Study.budgets[{label!r}] = {multiple:g}: a budget '
                         'is a positive multiple of the iterations.')
    names = set()
    for label in (*self.agents, *self.selections, *self.budgets):
      if not label or os.sep in label or label in names:
        raise StudyError(f'label {label!r} of Study.agents/selections/'
                         'budgets: labels are unique non-empty names '
                         'without "/", used in run directories.')


@dataclasses.dataclass(frozen=True)
class Run:
  """One command of the plan.

  Attributes:
    name: unique, and its directory under the study's output for logging and
      offline runs, e.g. 'offline/Pong/rem/all/seed_1'.
    kind: LOGGING, STAGING or OFFLINE.
    command: the command line ('python' stands for the worker's interpreter).
    run_dir: where it writes (the staged copy, for a staging run).
    num_iterations: the iterations of a finished run (None for staging).
    requires: names of the runs that must finish first.
    labels: what study.json records of it: game, environment, seed, agent,
      selection, budget, max_steps_per_episode (as they apply).
  """
  name: str
  kind: str
  command: tuple[str, ...]
  run_dir: str
  num_iterations: Optional[int] = None
  requires: tuple[str, ...] = ()
  labels: Mapping[str, object] = dataclasses.field(default_factory=dict)


def is_finished(run: Run) -> bool:
  """Whether `run` needs no (more) work; staging runs always run when a run
  that needs them does (conversion skips what is already converted)."""
  if run.num_iterations is None:
    return False
  return RunDirectory(run.run_dir).finished_iterations() >= run.num_iterations


def runs_to_start(runs: Sequence[Run]) -> list[Run]:
  """The unfinished logging and offline runs of `runs` and the runs they
  need that are not finished (staging runs only when a run needs them), in
  the plan's order (every run after the runs it needs)."""
  by_name = {run.name: run for run in runs}
  needed = set()

  def need(run):
    if run.name in needed or is_finished(run):
      return
    needed.add(run.name)
    for requirement in run.requires:
      need(by_name[requirement])

  for run in runs:
    if run.kind != STAGING:
      need(run)
  return [run for run in runs if run.name in needed]


def _gin_path(name: str) -> str:
  try:
    return command_line.find_gin_file(name)
  except ValueError as e:
    raise StudyError(str(e)) from None


def gin_literals(gin_files: Sequence[str], bindings: Sequence[str] = ()
                 ) -> dict:
  """'Configurable.parameter' -> value bound by `gin_files`, then `bindings`.

  Later statements override earlier ones, as when gin parses them; read
  without importing the configurables, which would load TensorFlow.
  """
  values = {}
  delegate = gin.config.ParserDelegate(skip_unknown=True)
  sources = []
  for name in gin_files:
    with open(_gin_path(name)) as f:
      sources.append(f.read())
  for text in sources + list(bindings):
    for statement in config_parser.ConfigParser(text, delegate):
      if isinstance(statement, config_parser.BindingStatement):
        values[f'{statement.selector}.{statement.arg_name}'] = statement.value
  return values


def num_iterations(literals: dict, gin_files: Sequence[str], runner: str
                   ) -> int:
  """`runner`.num_iterations in `literals` (of `gin_files` and bindings)."""
  key = f'{runner}.num_iterations'
  value = literals.get(key)
  if value is None:
    raise StudyError(f'{", ".join(gin_files)}: no binding of {key}; a study '
                     "reads each run's length from its gin files.")
  return int(value)


def _gin_flags(gin_files: Sequence[str], bindings: Sequence[str]
               ) -> list[str]:
  return ([f'--gin_files={f}' for f in gin_files] +
          [f'--gin_bindings={b}' for b in bindings])


def logging_command(agent_name: str, base_dir: str, gin_files: Sequence[str],
                    environment: str, seed: int) -> tuple[str, ...]:
  """The online run that logs the replay of (environment, seed)."""
  return (PYTHON, '-m', LOGGING_MODULE,
          f'--agent_name={agent_name}', f'--base_dir={base_dir}',
          *_gin_flags(gin_files, [
              f'create_online_runner.environment_name="{environment}"',
              f'create_online_runner.seed={seed}']))


def offline_command(agent_name: str, replay_dir: str, base_dir: str,
                    gin_files: Sequence[str], bindings: Sequence[str]
                    ) -> tuple[str, ...]:
  """`python -m batch_rl.train` of one offline run."""
  return (PYTHON, '-m', OFFLINE_MODULE, f'--agent_name={agent_name}',
          f'--replay_dir={replay_dir}', f'--base_dir={base_dir}',
          *_gin_flags(gin_files, bindings))


def staging_command(replay_dir: str, staged_dir: str) -> tuple[str, ...]:
  """Converts a dataset once for all the runs that read it."""
  return (PYTHON, '-m', 'batch_rl.data', 'convert', replay_dir, staged_dir)


def _check_local_data(path: str, what: str) -> None:
  """StudyError if the replay data at `path` would be on a URL: the data
  layer reads and converts replay data on a filesystem only."""
  if storage.is_url(path):
    raise StudyError(
        f'{what} is {path}, a URL: replay data is read and converted on a '
        'local or shared filesystem only; put the data (--data_root, '
        "Study.staged_dir='/disk/{game}/seed_{seed}') on one, and --out of a "
        'study that logs its data too.')


def plan(study: Study, out: str) -> list[Run]:
  """Every run of `study` under `out`: logging, staging, then offline runs,
  each seed by seed (an interrupted study has a complete first seed early).
  """
  out = storage.absolute(out)
  fields = {'out': out, 'data_root': study.data_root,
            'repository': os.path.dirname(command_line.GIN_DIR)}
  if study.replay_dir and '{data_root}' in study.replay_dir and (
      study.data_root is None):
    raise StudyError(f'Study.replay_dir {study.replay_dir!r} needs the data '
                     'root: pass --data_root=DIR (the directory holding '
                     '<game>/<run>/replay_logs).')
  logging = []
  staging = {}  # Staged copy -> the one staging run that prepares it.
  data = {}  # (game, seed) -> (replay_dir, the run producing it or None)
  for seed in study.seeds:
    for game in study.games:
      source = None
      if study.logging_agent:
        logging.append(_logging_run(study, out, game, seed))
        replay_dir = storage.join(logging[-1].run_dir, REPLAY_LOGS)
        source = logging[-1].name
      else:
        replay_dir = storage.absolute(
            study.replay_dir.format(game=game, seed=seed, **fields))
      _check_local_data(replay_dir, 'Study.logging_agent\'s replay under '
                        '--out' if source else 'Study.replay_dir')
      if study.convert_data:
        staged = storage.absolute(
            study.staged_dir.format(game=game, seed=seed, **fields))
        _check_local_data(staged, 'Study.staged_dir')
        if staged not in staging:
          staging[staged] = Run(
              f'{STAGING}/{game}/seed_{seed}', STAGING,
              staging_command(replay_dir, staged), staged,
              requires=(source,) if source else (),
              labels={study_directory.GAME: game,
                      study_directory.SEED: seed})
        replay_dir, source = staged, staging[staged].name
      data[game, seed] = replay_dir, source
  offline = [run for seed in study.seeds for game in study.games
             for run in _offline_runs(study, out, game, seed,
                                      *data[game, seed])]
  return logging + list(staging.values()) + offline


def _logging_run(study: Study, out: str, game: str, seed: int) -> Run:
  """The run of `study.logging_agent` that logs `game`'s data for `seed`."""
  name = f'{LOGGING}/{game}/seed_{seed}'
  run_dir = storage.join(out, name)
  environment = study.environment.format(game=game)
  iterations = num_iterations(gin_literals(study.logging_gin_files),
                              study.logging_gin_files, LOGGING_RUNNER)
  return Run(
      name, LOGGING,
      logging_command(study.logging_agent, run_dir, study.logging_gin_files,
                      environment, seed),
      run_dir, iterations,
      labels={study_directory.GAME: game,
              study_directory.ENVIRONMENT: environment,
              study_directory.SEED: seed,
              study_directory.AGENT: study.logging_agent})


def _offline_runs(study: Study, out: str, game: str, seed: int,
                  replay_dir: str, source: Optional[str]) -> list[Run]:
  """`study`'s offline runs of `game` and `seed` on `replay_dir` (which the
  run named `source` produces, if any): agents x selections x budgets."""
  environment = study.environment.format(game=game)
  labels_budgets = len(study.budgets) > 1
  runs = []
  for label, (agent_name, agent_gin) in study.agents.items():
    for selection, selection_bindings in study.selections.items():
      for budget, multiple in study.budgets.items():
        parts = [OFFLINE, game, label, selection]
        if labels_budgets:
          parts.append(budget)
        name = '/'.join(parts + [f'seed_{seed}'])
        run_dir = storage.join(out, name)
        gin_files = agent_gin + study.gin_files
        bindings = (
            f'create_runner.environment_name="{environment}"',
            f'create_runner.seed={seed}',
            'create_runner.selection=@DataSelection()',
            f'DataSelection.seed={seed}',
            *selection_bindings, *study.gin_bindings)
        literals = gin_literals(gin_files, bindings)
        iterations = num_iterations(literals, gin_files, OFFLINE_RUNNER)
        if multiple != 1:
          iterations = max(1, round(multiple * iterations))
          bindings += (f'{OFFLINE_RUNNER}.num_iterations={iterations}',)
        runs.append(Run(
            name, OFFLINE,
            offline_command(agent_name, replay_dir, run_dir, gin_files,
                            bindings),
            run_dir, iterations,
            requires=(source,) if source else (),
            labels={
                study_directory.GAME: game,
                study_directory.ENVIRONMENT: environment,
                study_directory.SEED: seed,
                study_directory.AGENT: (f'{label} {budget}' if labels_budgets
                                        else label),
                study_directory.SELECTION: selection,
                study_directory.BUDGET: budget,
                study_directory.MAX_STEPS_PER_EPISODE: literals.get(
                    f'{OFFLINE_RUNNER}.max_steps_per_episode')}))
  return runs


def describe(study: Study, runs: Sequence[Run],
             previous: Optional[dict] = None) -> dict:
  """study.json (batch_rl.study_directory): what the analysis needs to read
  the study's output.

  Runs of `previous` (the study.json already in the output) that this plan
  does not have are kept, so that parts of a study run one after another
  (--gin_bindings="Study.seeds=[2]") add up to the whole.
  """
  entries = {entry[study_directory.NAME]: entry
             for entry in (previous or {}).get(study_directory.RUNS, ())}
  for run in runs:
    if run.kind != STAGING:
      entries[run.name] = {study_directory.NAME: run.name,
                           study_directory.KIND: run.kind,
                           study_directory.NUM_ITERATIONS: run.num_iterations,
                           **run.labels}
  return {
      study_directory.NAME: study.name,
      study_directory.REFERENCE: study.reference,
      study_directory.RANDOM_POLICY_EPISODES: study.random_policy_episodes,
      study_directory.RUNS: list(entries.values()),
  }
