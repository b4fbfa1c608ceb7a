"""MirroredStrategy on two logical devices of one physical device.

  python benchmarks/mirrored_check.py [--cpu]

Splits the first GPU (with --cpu: the CPU) into two logical devices, builds
a Nature DQN under `tf.distribute.MirroredStrategy` over both, and trains
it as `experiment.create_runner(distribution='mirrored')` does (each global
batch split into one equal part per replica), next to a one-device copy
with the same weights trained on the same global batches. Prints one line: replicas, the
largest relative loss difference, steps/s; exits 1 if they differ.
"""

import argparse
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

BATCH = 32
STEPS = 20


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--cpu', action='store_true')
  args = parser.parse_args()
  kind = 'CPU' if args.cpu else 'GPU'
  physical = tf.config.list_physical_devices(kind)
  if not physical:
    print(f'error: no {kind} device visible to TensorFlow {tf.__version__}.')
    sys.exit(2)
  config = (tf.config.LogicalDeviceConfiguration() if args.cpu else
            tf.config.LogicalDeviceConfiguration(memory_limit=4096))
  tf.config.set_logical_device_configuration(physical[0], [config] * 2)
  devices = [d.name for d in tf.config.list_logical_devices(kind)][:2]

  import gin  # pylint: disable=g-import-not-at-top
  from batch_rl.agents import registry  # pylint: disable=g-import-not-at-top
  from batch_rl.environments.environment_spec import EnvironmentSpec  # pylint: disable=g-import-not-at-top
  repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
  with gin.config.unlock_config():
    gin.parse_config_file(os.path.join(repo, 'gin', 'atari', 'dqn.gin'))
  spec = EnvironmentSpec(num_actions=18, observation_shape=(84, 84),
                         observation_dtype=np.dtype(np.uint8), stack_size=4)
  make = lambda strategy: registry.create_agent(
      'dqn', spec, seed=0, strategy=strategy)
  strategy = tf.distribute.MirroredStrategy(devices)
  mirrored, single = make(strategy), make(None)
  for network in ('online_network', 'target_network'):
    getattr(mirrored, network).set_weights(
        getattr(single, network).get_weights())
  rng = np.random.default_rng(0)
  batches = [{
      'state': rng.integers(0, 256, (BATCH, 84, 84, 4), np.uint8),
      'next_state': rng.integers(0, 256, (BATCH, 84, 84, 4), np.uint8),
      'action': rng.integers(0, 18, BATCH).astype(np.int32),
      'reward': rng.normal(size=BATCH).astype(np.float32),
      'terminal': rng.integers(0, 2, BATCH).astype(np.uint8),
  } for _ in range(STEPS)]
  # Replica r of global batch i reads rows [16r, 16r + 16) of batch i.
  halves = iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(
          {k: np.stack([b[k] for b in batches]) for k in batches[0]})))
  worst = 0.0
  start = time.perf_counter()
  for batch in batches:
    got = float(mirrored.train_step(next(halves))['loss'])
    want = float(single.train_step(batch)['loss'])
    worst = max(worst, abs(got - want) / max(abs(want), 1e-6))
  seconds = time.perf_counter() - start
  ok = worst < 1e-3
  print(f'mirrored {"OK" if ok else "MISMATCH"}: {strategy.num_replicas_in_sync}'
        f' replicas on {",".join(devices)}, max relative loss difference '
        f'{worst:.2e} over {STEPS} steps, {STEPS / seconds:.1f} paired '
        'steps/s')
  sys.exit(0 if ok else 1)


if __name__ == '__main__':
  main()
