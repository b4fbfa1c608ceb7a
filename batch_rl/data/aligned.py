"""Host arrays TensorFlow can share without copying (no TensorFlow import)."""

from typing import Sequence

import numpy as np

# TensorFlow shares host memory aligned like this without copying it.
TENSOR_ALIGNMENT = 64


def aligned_empty(shape: Sequence[int], dtype) -> np.ndarray:
  """An uninitialised C-contiguous array starting on a TENSOR_ALIGNMENT
  boundary."""
  dtype = np.dtype(dtype)
  size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = np.empty(size + TENSOR_ALIGNMENT, dtype=np.uint8)
  start = -raw.ctypes.data % TENSOR_ALIGNMENT
  return raw[start:start + size].view(dtype).reshape(shape)
