"""Exported policies load and act in a Python that cannot import batch_rl."""

import os
import re
import subprocess
import sys
import textwrap

import gin
import numpy as np
import pytest

from batch_rl import command_line
from batch_rl import experiment
from batch_rl import export_policy
from batch_rl.agents import registry
from batch_rl.continuous import make_continuous_environment
from batch_rl.environments.environment_spec import EnvironmentSpec
from batch_rl.experiments import embedded_default
from batch_rl.interop import saved_policy
from batch_rl.interop import tf_agents as interop

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a temporary directory with `python -I` (no PYTHONPATH, no script
# or working directory on sys.path) and without the editable install's
# finder, so that `import batch_rl` fails.
LOAD_AND_ACT = textwrap.dedent('''
    import importlib.util, sys
    sys.meta_path[:] = [f for f in sys.meta_path
                        if 'editable' not in getattr(f, '__module__', '')]
    assert importlib.util.find_spec('batch_rl') is None, sys.path
    import numpy as np, tensorflow as tf
    policy = tf.saved_model.load('policy')
    np.save('actions.npy', policy.action(np.load('states.npy')).numpy())
    serving = policy.signatures['action']
    np.save('served.npy', list(serving(tf.constant(np.load('states.npy')))
                               .values())[0].numpy())
''')


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def act_elsewhere(policy_dir, states, tmp_path):
  """The exported policy's actions on `states`, from a fresh process."""
  work = tmp_path / 'elsewhere'
  work.mkdir()
  os.symlink(policy_dir, work / 'policy')
  np.save(work / 'states.npy', states)
  subprocess.run([sys.executable, '-I', '-c', LOAD_AND_ACT], cwd=work,
                 check=True, capture_output=True, timeout=120)
  actions = np.load(work / 'actions.npy')
  np.testing.assert_array_equal(actions, np.load(work / 'served.npy'))
  return actions


def test_exported_dqn_run_reproduces_the_greedy_actions(tmp_path):
  base_dir, out = str(tmp_path / 'run'), str(tmp_path / 'policy')
  experiment.register_all_agents()
  command_line.load_gin_configs(
      ['classic/dqn.gin', 'classic/offline_cartpole.gin'],
      ['Runner.num_iterations = 2',
       'Runner.training_steps = 100',
       'Runner.evaluation_steps = 10',
       'Runner.progress = False'])
  runner = experiment.create_runner('dqn', embedded_default.REPLAY_DIR,
                                    base_dir)
  runner.run_experiment()
  trained = runner.agent
  gin.clear_config()
  result = subprocess.run(
      [sys.executable, '-m', 'batch_rl.export_policy',
       f'--base_dir={base_dir}', f'--out={out}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert 'after iteration 1' in result.stdout

  restored, iteration = export_policy.load_trained_agent(base_dir)
  assert iteration == 1 and restored.gradient_steps == 200
  states = next(iter(interop.transition_batches(
      embedded_default.REPLAY_DIR, 256, trained.stack_size)))['state'].numpy()
  expected = np.argmax(trained.q_values(states).numpy(), axis=1)
  assert 0 < expected.sum() < len(expected)  # Both actions occur.
  np.testing.assert_array_equal(act_elsewhere(out, states, tmp_path),
                                expected)


def test_exported_cql_policy_reproduces_its_actions(tmp_path):
  _, spec = make_continuous_environment('Pendulum-v1')
  agent = registry.create_agent('cql', spec, seed=0, hidden_sizes=(32,))
  rng = np.random.default_rng(0)
  batch = {
      'state': rng.normal(size=(64, 3, 1)).astype(np.float32),
      'action': rng.uniform(-1, 1, size=(64, 1)).astype(np.float32),
      'reward': rng.normal(size=64).astype(np.float32),
      'next_state': rng.normal(size=(64, 3, 1)).astype(np.float32),
      'terminal': np.zeros(64, np.uint8)}
  agent.train_step(batch)
  states = rng.normal(size=(128, 3)).astype(np.float32)
  saved_policy.save(agent, str(tmp_path / 'policy'))
  np.testing.assert_allclose(
      act_elsewhere(str(tmp_path / 'policy'), states, tmp_path),
      agent.policy(states).numpy(), atol=1e-6)


def test_export_of_a_run_without_checkpoints_names_the_directory(tmp_path):
  (tmp_path / 'run_info.json').write_text(
      '{"agent_name": "dqn", "environment": "classic:CartPole-v1", '
      '"seed": 0, "gin_config": ""}')
  with pytest.raises(ValueError, match='checkpoints: no iteration_N'):
    export_policy.load_trained_agent(str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()  # Reading created nothing.


def test_export_of_a_checkpoint_without_the_agent_names_it(tmp_path):
  (tmp_path / 'run_info.json').write_text(
      '{"agent_name": "dqn", "environment": "classic:CartPole-v1", '
      '"seed": 0, "gin_config": "QHeadsNetwork.torso = @MLPTorso"}')
  (tmp_path / 'checkpoints' / 'iteration_0').mkdir(parents=True)
  with pytest.raises(ValueError, match=re.escape(
      f'{tmp_path}/checkpoints/iteration_0: no agent checkpoint of iteration '
      '0.')):
    export_policy.load_trained_agent(str(tmp_path))


def test_rebuild_of_a_damaged_gin_config_names_the_file(tmp_path):
  (tmp_path / 'run_info.json').write_text(
      '{"agent_name": "dqn", "environment": "classic:CartPole-v1", '
      '"seed": 0, "gin_config": "Runner.num_iterations = (1,"}')
  with pytest.raises(ValueError, match=re.escape(
      f'{tmp_path}/run_info.json: gin_config does not parse: EOF in '
      'multi-line statement (an unclosed bracket or quote)')):
    experiment.rebuild_agent(str(tmp_path))


def test_rebuild_without_gin_config_names_the_file_and_the_key(tmp_path):
  (tmp_path / 'run_info.json').write_text(
      '{"agent_name": "dqn", "environment": "classic:CartPole-v1", '
      '"seed": 0}')
  with pytest.raises(ValueError) as error:
    experiment.rebuild_agent(str(tmp_path))
  assert str(error.value).startswith(
      f"{tmp_path}/run_info.json: missing keys ['gin_config']; rebuilding "
      "the agent needs ['gin_config', 'agent_name', 'environment', 'seed'].")


def test_every_registered_agent_exports_its_evaluation_policy(tmp_path):
  """In-process round trip of every agent (untrained, small networks)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from batch_rl.agents import networks  # pylint: disable=g-import-not-at-top
  from batch_rl.continuous import CONTINUOUS_AGENTS  # pylint: disable=g-import-not-at-top
  experiment.register_all_agents()
  gin.bind_parameter('QHeadsNetwork.torso', networks.MLPTorso)
  gin.bind_parameter('MLPTorso.hidden_units', (16,))
  rng = np.random.default_rng(0)
  _, pendulum = make_continuous_environment('Pendulum-v1')
  for name in registry.agent_names():
    out = str(tmp_path / name)
    if name in CONTINUOUS_AGENTS:
      agent = registry.create_agent(name, pendulum, seed=0)
      states = rng.normal(size=(16, 3)).astype(np.float32)
      saved_policy.save(agent, out)
      expected = agent.policy(states).numpy()
    else:
      agent = registry.create_agent(
          name, EnvironmentSpec(3, (4,), np.float32, 2), seed=0)
      states = rng.normal(size=(16, 4, 2)).astype(np.float32)
      saved_policy.save(agent, out)
      expected = agent.greedy_actions(states).numpy()
    # Kept in a name: a loaded model's variables die with the object.
    loaded = tf.saved_model.load(out)
    if name not in CONTINUOUS_AGENTS:
      np.testing.assert_allclose(loaded.q_values(states).numpy(),
                                 agent.q_values(states).numpy(), atol=1e-6,
                                 err_msg=name)
    np.testing.assert_allclose(loaded.action(states), expected, atol=1e-6,
                               err_msg=name)


def test_export_command_without_base_dir_is_a_user_error(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'batch_rl.export_policy',
       f'--out={tmp_path / "policy"}'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip() == 'error: missing flags: --base_dir.'
