"""The one owner of a study directory's description, study.json (no
TensorFlow, no gin).

`python -m batch_rl.sweep` writes study.json into a study's output;
`python -m batch_rl.analysis` reads it to find the study's offline runs,
their labels and its reference. It holds

  name                    the study's name
  reference               how the analysis normalizes: LOGGING_REFERENCE or
                          a --reference of the analysis ('human', 'dqn', ...)
  random_policy_episodes  episodes of the random policy (LOGGING_REFERENCE)
  runs                    one entry per logging and offline run: its name
                          (its run directory under the study's output),
                          kind, num_iterations (of a finished run) and labels
                          (game, environment, seed, agent, selection,
                          budget, max_steps_per_episode, as they apply)

Each run directory is a `batch_rl.run_directory.RunDirectory`.
"""

from batch_rl import storage
from batch_rl.runner import run_state

STUDY_FILE = 'study.json'

# The kinds of runs: an online agent logging data, the conversion of a
# dataset (not listed in study.json), an offline agent training on data.
LOGGING, STAGING, OFFLINE = 'logging', 'staging', 'offline'
KINDS = (LOGGING, STAGING, OFFLINE)

# The reference made from the study's logging runs (100%) and a random
# policy (0%).
LOGGING_REFERENCE = 'logging'

# The study's keys.
NAME = 'name'
REFERENCE = 'reference'
RANDOM_POLICY_EPISODES = 'random_policy_episodes'
RUNS = 'runs'
# A run entry's keys: NAME, then these.
KIND = 'kind'
NUM_ITERATIONS = 'num_iterations'
# A run entry's labels.
GAME = 'game'
ENVIRONMENT = 'environment'
SEED = 'seed'
AGENT = 'agent'  # The study's agent label, e.g. 'rem 5x'.
SELECTION = 'selection'
BUDGET = 'budget'
MAX_STEPS_PER_EPISODE = 'max_steps_per_episode'


class StudyDirectory:
  """study.json and the run directories of the study output `path`."""

  def __init__(self, path: str):
    self.path = path
    self.study_path = storage.join(path, STUDY_FILE)

  def exists(self) -> bool:
    return storage.isfile(self.study_path)

  def read(self) -> dict:
    """study.json as a dict; ValueError (one line) naming the file if it is
    not a JSON object with a list of runs."""
    study = run_state.read_json(self.study_path)
    if not isinstance(study, dict) or not isinstance(study.get(RUNS), list):
      raise ValueError(f'{self.study_path}: expected a JSON object with a '
                       f'list "{RUNS}" (as batch_rl.sweep writes it).')
    return study

  def write(self, study: dict) -> None:
    run_state.write_json(self.study_path, study)

  def run_dir(self, entry: dict) -> str:
    """The run directory of the run entry `entry`."""
    return storage.join(self.path, entry[NAME])
