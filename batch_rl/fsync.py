"""Flushing to disk, for the atomic writes of every layer (no dependencies).

A file renamed into place survives a crash only if its bytes and the
folder entry naming it reached the disk: writers fsync the file, rename,
then fsync the folder.
"""

import os


def fsync_path(path: str) -> None:
  """Flushes a file, or a folder's entries, to disk."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)
