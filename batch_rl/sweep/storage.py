"""Where a study's files go: one place that knows local paths from URLs.

A study's output may be a local directory, a shared filesystem, or any path
`tf.io.gfile` understands (`gs://bucket/study`). Local paths use `os`; URLs
load TensorFlow's gfile on first use only, so planning and `--dry_run` stay
free of TensorFlow.
"""

import os
import posixpath


def is_url(path: str) -> bool:
  """'gs://b/x', 's3://b/x', 'hdfs://...' are URLs; anything else is local."""
  return '://' in path


def join(root: str, *parts: str) -> str:
  """`root`/`parts` with the URL's or the local separator; local roots are
  made absolute, so that every worker resolves them alike."""
  if is_url(root):
    return posixpath.join(root, *parts)
  return os.path.join(os.path.abspath(root), *parts)


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def exists(path: str) -> bool:
  return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def makedirs(path: str) -> None:
  if is_url(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
  if is_url(path):
    with _gfile().GFile(path) as f:
      return f.read()
  with open(path, errors='replace') as f:
    return f.read()


def write_text(path: str, text: str) -> None:
  """Writes `text` whole (atomically for local paths)."""
  if is_url(path):
    with _gfile().GFile(path, 'w') as f:
      f.write(text)
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)
