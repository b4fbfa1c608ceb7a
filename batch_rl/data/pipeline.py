"""The low-level tf.data builder of uniformly sampled transition batches.

Runs read it through `replay_dataset.ReplayDataset.batches`. Sampling is
uniform over the valid transitions of all selected checkpoints (what
Dopamine's rejection sampler converges to), deterministic for a seed,
batched and prefetched; everything but the host read of memory-mapped and
compact stores is TensorFlow ops. A host read is a stage of its own (its own
parallelism, `read_parallel_calls`), ahead of the compiled assembly of
its windows into transitions.
"""

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from batch_rl.data import transitions
from batch_rl.data.errors import ReplayDataError
from batch_rl.data.replay_store import WINDOW_ELEMENTS
from batch_rl.data.replay_store import ReplayStore

# Automatic stacks hold about this many bytes of windows, and at most
# MAX_BATCHES_PER_CALL batches: few calls for small rows (vector
# observations), few big stacks in memory for frames.
STACK_BYTES = 16 * 2**20
MAX_BATCHES_PER_CALL = 128

# Elements prefetched beyond those the parallel maps hold (the assembly at
# most one per core, the host reads `read_parallel_calls`). A fixed depth:
# tf.data's AUTOTUNE depth grows whenever the consumer finds the buffer
# empty and never shrinks; a pipeline left waiting (an evaluation phase,
# another process on the cores) then filled it with hundreds of stacks
# (3.9 GiB of Atari stacks after 12 pauses, docs/PERFORMANCE.md). Two keep
# the consumer fed: the map's calls run ahead of it.
PREFETCH_ELEMENTS = 2

# tf.data's default graph rewrites serialize the dataset, which copies every
# tensor its functions capture: the in-memory store's frames, once more per
# iterator. This pipeline gains nothing from them (it is already parallel
# and prefetched), so they are off.
DATASET_OPTIONS = tf.data.Options()
DATASET_OPTIONS.experimental_optimization.apply_default_optimizations = False

# Cores per parallel host read (memory-mapped and compact stores). Reads
# hold the GIL for part of their time: on 2 cores one read at a time gave
# the most batches (reads on more threads than the cores can carry wait for
# each other); with cores to spare, overlapping compact reads decode in
# groups and two threads read 1.5x as fast as one (docs/PERFORMANCE.md).
CORES_PER_HOST_READ = 4


def default_read_parallel_calls() -> int:
  """Host reads in flight at once: one per CORES_PER_HOST_READ usable
  cores, at least one."""
  return max(1, len(os.sched_getaffinity(0)) // CORES_PER_HOST_READ)


def max_calls_ahead(read_parallel_calls: Optional[int] = None) -> int:
  """At most how many sampler calls a waiting pipeline has made beyond
  those its consumer took: the prefetched elements, the assembly's parallel
  calls (one per core), the host reads in flight, and one more that may
  start as the consumer takes an element."""
  return (PREFETCH_ELEMENTS + os.cpu_count() +
          (read_parallel_calls or default_read_parallel_calls()) + 1)


def auto_batches_per_call(store: ReplayStore, batch_size: int,
                          stack_size: int, update_horizon: int) -> int:
  """The largest power of two <= MAX_BATCHES_PER_CALL whose batches' slot
  windows fit in STACK_BYTES (at least 1)."""
  slot_bytes = sum(np.dtype(dtype).itemsize * int(np.prod(shape))
                   for shape, dtype in map(store.element_spec,
                                           WINDOW_ELEMENTS))
  batch_bytes = batch_size * (stack_size + update_horizon) * slot_bytes
  fitting = max(1, STACK_BYTES // batch_bytes)
  return min(MAX_BATCHES_PER_CALL, 2**(int(fitting).bit_length() - 1))


def check_transitions(store: ReplayStore, indices, stack_size: int,
                      update_horizon: int) -> None:
  """Raises ReplayDataError naming the store's checkpoints if `indices`,
  the transitions to sample, is empty."""
  if not len(indices):
    more = len(store.names) - 1
    raise ReplayDataError(
        f'{store.names[0]}{f" and {more} more" if more else ""}: '
        f'no valid transition for stack_size={stack_size}, update_horizon='
        f'{update_horizon} (too few steps stored, or a selection that keeps '
        'none).')


def transition_dataset(store: ReplayStore, batch_size: int,
                       stack_size: int = 4, update_horizon: int = 1,
                       gamma: float = 0.99, seed: int = 0,
                       indices: Optional[np.ndarray] = None,
                       num_parallel_calls: int = tf.data.AUTOTUNE,
                       jit_compile: bool = True,
                       elements=transitions.TRANSITION_ELEMENTS,
                       batches_per_call: Optional[int] = None,
                       first_call: int = 0,
                       read_parallel_calls: Optional[int] = None
                       ) -> tf.data.Dataset:
  """An endless dataset of stacks of transition batches.

  Each element is a dict (keys `elements`, see docs/DESIGN.md) of stacks
  [batches_per_call, batch_size, ...]: the batches of one sampler call.

  Args:
    store: the replay data.
    batch_size: transitions per batch.
    stack_size, update_horizon, gamma: Dopamine's transition parameters.
    seed: fixes the sequence of batches: call c draws from the stateless
      stream (seed, c).
    indices: global slot indices to sample from (default: every valid one).
    num_parallel_calls: parallel batch assembly; order stays deterministic.
    jit_compile: XLA-compile batch assembly (about 2x faster on CPU).
    elements: the keys each batch holds (transitions.TRANSITION_ELEMENTS).
    batches_per_call: batches assembled by one call of the (compiled)
      sampler; fewer, larger calls cut the per-call cost and the producer's
      interference with training (default: `auto_batches_per_call`).
    first_call: the call index of the first element: a dataset started at
      c yields what one started at 0 yields from its c-th element on.
    read_parallel_calls: host reads in flight at once (stores with
      `memory_mapped`; default: `default_read_parallel_calls()`).
  """
  for name, value in (('batch_size', batch_size),
                      ('batches_per_call', batches_per_call or 1),
                      ('read_parallel_calls', read_parallel_calls or 1)):
    if value < 1:
      raise ValueError(f'{name}={value}: must be at least 1.')
  if indices is None:
    indices = store.valid_indices(stack_size, update_horizon)
  check_transitions(store, indices, stack_size, update_horizon)
  batches_per_call = batches_per_call or auto_batches_per_call(
      store, batch_size, stack_size, update_horizon)
  table = tf.constant(indices)
  read_windows = store.window_reader(stack_size, update_horizon)
  # XLA fuses the gathers, the frame transposes and slices: several times
  # fewer passes over the bytes. A memory-mapped read is a numpy_function,
  # which XLA cannot compile, so there only the transition math is.
  compile_all = jit_compile and not store.memory_mapped
  assemble = tf.function(
      lambda windows, local: transitions.transitions_from_windows(
          windows, local, stack_size, update_horizon, gamma),
      jit_compile=jit_compile and store.memory_mapped)

  def picks(call_index):
    # Stateless draws keyed by (seed, call): the same batches for a seed,
    # whatever the parallelism.
    drawn = tf.random.stateless_uniform(
        [batches_per_call * batch_size],
        seed=tf.stack([tf.constant(seed, tf.int64), call_index]),
        minval=0, maxval=tf.size(table, out_type=tf.int64), dtype=tf.int64)
    return tf.cast(tf.gather(table, drawn), tf.int64)

  def stacked(batch):
    return {name: tf.reshape(batch[name], [batches_per_call, batch_size,
                                           *batch[name].shape[1:]])
            for name in elements}

  calls = tf.data.Dataset.counter(start=first_call)
  if compile_all:
    dataset = calls.map(
        tf.function(lambda c: stacked(assemble(*read_windows(picks(c)))),
                    jit_compile=True),
        num_parallel_calls=num_parallel_calls, deterministic=True)
  else:
    # Host reads and the (compiled) assembly are two stages: the reads run
    # on their own thread(s), holding the GIL for part of their time, while
    # TensorFlow's threads assemble the previous call's windows.
    dataset = calls.map(
        lambda c: read_windows(picks(c)),
        num_parallel_calls=(read_parallel_calls or
                            default_read_parallel_calls()),
        deterministic=True).map(
            lambda windows, local: stacked(assemble(windows, local)),
            num_parallel_calls=num_parallel_calls, deterministic=True)
  return dataset.prefetch(PREFETCH_ELEMENTS).with_options(DATASET_OPTIONS)
