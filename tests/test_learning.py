"""Offline agents learn from logged DQN replay alone (CartPole-v1).

The fixture is the shipped replay of an online DQN run
(batch_rl/experiments/data/cartpole_dqn_replay: 40k transitions, average
episode return 61.5). Offline DQN and offline REM, seeded, must reach an
evaluation return at least that of the behaviour data within 4 iterations of
1,000 gradient steps (best iteration, as in the paper's protocol). Seen
here with seed 0: DQN 20, 176, 95, 168 and REM 9, 223, 164, 131; over
seeds 0-4 the best iterations were 130-234 (DQN) and 114-264 (REM).

The behaviour-regularized agents get 2 iterations, BCQ 3 (its first
iteration often returns 9-20: one action throughout). Best iteration within
that budget, with this budget and create_runner.seed = s: discrete_cql
126-198 (seeds 0-3), quantile_cql 144-383, rem_cql 166-192 and discrete_bc
134-151 (seeds 0-2), discrete_bcq 129-319 and rem_bcq 114-298 (seeds 0-4;
seed 3 of both stayed below 61.3 for 2 iterations); these figures predate
the seeded network initialisation. With it, rem_bcq's seed 0 returned 9,
12, 23, 16, 141 over 5 iterations (seeds 1 and 2: 130 and 114 by the
third), so rem_bcq gets 5.
"""

import gin
import pytest

from batch_rl import command_line
from batch_rl import experiment
from batch_rl.experiments import embedded_default

BUDGET = [
    'Runner.training_steps = 1000',
    'Runner.evaluation_steps = 1000',
    'Runner.progress = False',
    'create_runner.seed = 0',
]


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.mark.parametrize('agent_name, gin_file, iterations', [
    ('dqn', 'classic/dqn.gin', 4),
    ('rem', 'classic/rem.gin', 4),
    ('discrete_cql', 'classic/discrete_cql.gin', 2),
    ('quantile_cql', 'classic/quantile_cql.gin', 2),
    ('rem_cql', 'classic/rem_cql.gin', 2),
    ('discrete_bcq', 'classic/discrete_bcq.gin', 3),
    ('rem_bcq', 'classic/rem_bcq.gin', 5),
    ('discrete_bc', 'classic/discrete_bc.gin', 2),
])
def test_offline_agent_beats_behaviour_data(tmp_path, agent_name, gin_file,
                                            iterations):
  data_return = embedded_default.behaviour_return(embedded_default.REPLAY_DIR)
  assert data_return == pytest.approx(61.54, abs=0.01)
  experiment.register_all_agents()
  command_line.load_gin_configs(
      [gin_file, 'classic/offline_cartpole.gin'],
      BUDGET + [f'Runner.num_iterations = {iterations}'])
  rows = experiment.create_runner(agent_name, embedded_default.REPLAY_DIR,
                                  str(tmp_path)).run_experiment()
  returns = [row['eval_return_mean'] for row in rows]
  assert max(returns) >= data_return, returns
