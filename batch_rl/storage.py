"""Files of run directories and studies: local paths or `tf.io.gfile` URLs.

A path with a scheme (`gs://bucket/runs`, `s3://...` with tensorflow-io,
TensorFlow's in-process `ram://`) goes through `tf.io.gfile`, loaded on first
use only, so that modules reading run directories (run_directory, the study
planner) import no TensorFlow; any other path is a local or shared
filesystem path and uses `os`. Failures are OSError (FileNotFoundError,
PermissionError) naming the path, whatever the scheme.

The guarantees differ (docs/RELIABILITY.md):
* local: `write_atomically` writes a temporary file, fsyncs it, renames it
  into place and fsyncs the folder; `rename` of a folder is one atomic
  rename; `fsync_tree` flushes files and folders to disk.
* URL: no fsync (object stores have none; an object is whole once its
  write returned). `write_atomically` writes a temporary object and renames
  it over the target (`gfile.rename(overwrite=True)`: a copy then a delete
  on GCS and S3), so a reader sees the old or the new content, whole.
  `rename` of a folder moves it file by file, which is not atomic: a crash
  in between leaves part of it under each name, and the reader must detect
  a folder with files missing.
"""

import contextlib
import errno
import importlib.util
import os
import posixpath
import shutil
import sys
import threading

SCHEME_SEPARATOR = '://'
# Seconds the first call to a URL's store may take (TensorFlow retries an
# unreachable store for many minutes); the environment variable changes it.
ANSWER_TIMEOUT_ENV = 'BATCH_RL_URL_TIMEOUT_S'
ANSWER_TIMEOUT_S = 60.0
_CHECKED_SCHEMES = set()
# Written aside, then published by a rename: a folder as PATH + PARTIAL, a
# file as PATH + TMP.
PARTIAL = '.partial'
TMP = '.tmp'


def is_url(path: str) -> bool:
  """'gs://b/x', 's3://b/x', 'ram://x' are URLs; anything else is local."""
  return SCHEME_SEPARATOR in str(path)


def join(root: str, *parts: str) -> str:
  """`root`/`parts` with the URL's or the local separator."""
  if is_url(root):
    return posixpath.join(root, *parts)
  return os.path.join(root, *parts)


def normpath(path: str) -> str:
  """`path` without redundant separators and up-level references."""
  if is_url(path):
    scheme, rest = path.split(SCHEME_SEPARATOR, 1)
    return f'{scheme}{SCHEME_SEPARATOR}{posixpath.normpath(rest)}'
  return os.path.normpath(path)


def absolute(path: str) -> str:
  """A local path made absolute (so that every worker resolves it alike);
  a URL as it is."""
  return path if is_url(path) else os.path.abspath(path)


def _gfile(path: str):
  """tf.io.gfile, once `path`'s scheme is known to it (tensorflow-io, if
  installed, is imported for s3://, hdfs://, az://; ValueError if not) and
  its store answered about `path` in time (`_first_answer`)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scheme = path.split(SCHEME_SEPARATOR, 1)[0]
  if scheme not in _CHECKED_SCHEMES:
    registered = tf.io.gfile.get_registered_schemes()
    if (scheme not in registered and
        importlib.util.find_spec('tensorflow_io') is not None):
      import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
      registered = tf.io.gfile.get_registered_schemes()
    if scheme not in registered:
      known = sorted(s for s in registered if s not in ('', 'file'))
      raise ValueError(
          f'{path}: TensorFlow has no filesystem for {scheme}{SCHEME_SEPARATOR}'
          f' (it knows {", ".join(s + SCHEME_SEPARATOR for s in known)}); '
          'give a local path or a supported URL (s3://, hdfs:// and az:// '
          'need `pip install tensorflow-io`).')
    _first_answer(tf.io.gfile, path)
    _CHECKED_SCHEMES.add(scheme)
  return tf.io.gfile


def _first_answer(gfile, path: str) -> None:
  """Asks the store whether `path` exists; raises the OSError of its answer,
  or TimeoutError if none came within the timeout (the call goes on in a
  daemon thread, which ends with the process)."""
  timeout = float(os.environ.get(ANSWER_TIMEOUT_ENV, ANSWER_TIMEOUT_S))
  answer = []

  def ask():
    try:
      with _os_errors(path):
        gfile.exists(path)
      answer.append(None)
    except Exception as e:  # pylint: disable=broad-except
      answer.append(e)

  thread = threading.Thread(target=ask, daemon=True)
  thread.start()
  thread.join(timeout)
  if not answer:
    raise TimeoutError(
        errno.ETIMEDOUT, f'no answer from its store within {timeout:g} s '
        '(network, proxy or credentials?; TensorFlow would retry for many '
        f'minutes; {ANSWER_TIMEOUT_ENV} sets the wait)', path)
  if answer[0] is not None:
    raise answer[0]


@contextlib.contextmanager
def _os_errors(path: str):
  """Turns tf.io.gfile's errors into the OSError a local call raises, its
  message the first line of TensorFlow's (which names the path on the
  next)."""
  tf_errors = sys.modules['tensorflow'].errors
  try:
    yield
  except tf_errors.NotFoundError as e:
    raise FileNotFoundError(errno.ENOENT, _first_line(e), path) from e
  except tf_errors.PermissionDeniedError as e:
    raise PermissionError(errno.EACCES, _first_line(e), path) from e
  except tf_errors.OpError as e:
    raise OSError(errno.EIO, _first_line(e), path) from e


def _first_line(error) -> str:
  lines = (error.message or '').strip().splitlines()
  return lines[0] if lines else type(error).__name__


def _url_call(path: str, name: str, *args, **kwargs):
  gfile = _gfile(path)
  with _os_errors(path):
    return getattr(gfile, name)(path, *args, **kwargs)


def exists(path: str) -> bool:
  return _url_call(path, 'exists') if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return _url_call(path, 'isdir') if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
  if is_url(path):
    return exists(path) and not isdir(path)
  return os.path.isfile(path)


def makedirs(path: str) -> None:
  if is_url(path):
    _url_call(path, 'makedirs')
  else:
    os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
  """The names in folder `path` (no trailing '/' for an object store's
  folders)."""
  if is_url(path):
    return [name.rstrip('/') for name in _url_call(path, 'listdir')]
  return os.listdir(path)


def walk(root: str):
  """(folder, subfolders, files) under `root`, top-down, as os.walk."""
  if not is_url(root):
    yield from os.walk(root)
    return
  gfile = _gfile(root)
  with _os_errors(root):
    for folder, folders, files in gfile.walk(root):
      yield (folder, [name.rstrip('/') for name in folders],
             [name.rstrip('/') for name in files])


def read_bytes(path: str) -> bytes:
  if is_url(path):
    gfile = _gfile(path)
    with _os_errors(path), gfile.GFile(path, 'rb') as f:
      return f.read()
  with open(path, 'rb') as f:
    return f.read()


def read_text(path: str) -> str:
  return read_bytes(path).decode(errors='replace')


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` as it goes (no temporary name, no fsync): for
  files inside a folder that is published whole afterwards."""
  if is_url(path):
    gfile = _gfile(path)
    with _os_errors(path), gfile.GFile(path, 'wb') as f:
      f.write(data)
    return
  with open(path, 'wb') as f:
    f.write(data)


def write_atomically(path: str, data) -> None:
  """Replaces `path` with `data` (str or bytes) whole, creating its folder:
  locally through a fsynced temporary file, rename and fsynced folder; on
  a URL through a temporary object renamed over it (module docstring)."""
  data = data.encode() if isinstance(data, str) else data
  folder = posixpath.dirname(path) if is_url(path) else os.path.dirname(path)
  tmp = path + TMP
  if is_url(path):
    makedirs(folder)
    write_bytes(tmp, data)
    gfile = _gfile(path)
    with _os_errors(path):
      gfile.rename(tmp, path, overwrite=True)
    return
  os.makedirs(folder or '.', exist_ok=True)
  with open(tmp, 'wb') as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
  fsync_path(folder or '.')


def numbered(names, prefix: str) -> list[int]:
  """The numbers N of the names PREFIX + N (N digits) among `names`, sorted."""
  return sorted(int(name[len(prefix):]) for name in names
                if name.startswith(prefix) and name[len(prefix):].isdigit())


def remove(path: str) -> None:
  """Deletes the file `path` (FileNotFoundError if there is none)."""
  if is_url(path):
    _url_call(path, 'remove')
  else:
    os.remove(path)


def rmtree(path: str) -> None:
  """Deletes the folder `path` and its contents, if it exists."""
  if is_url(path):
    try:
      _url_call(path, 'rmtree')
    except FileNotFoundError:
      pass
  else:
    shutil.rmtree(path, ignore_errors=True)


def rename(source: str, target: str) -> None:
  """Renames the file or folder `source` to `target` (which must not be a
  non-empty folder): atomic locally, file by file for a URL's folder."""
  if not is_url(source):
    os.replace(source, target)
    return
  gfile = _gfile(source)
  if not isdir(source):
    with _os_errors(source):
      gfile.rename(source, target, overwrite=True)
    return
  for folder, _, files in list(walk(source)):
    destination = target + folder[len(source):]
    makedirs(destination)
    for name in sorted(files):
      with _os_errors(posixpath.join(folder, name)):
        gfile.rename(posixpath.join(folder, name),
                     posixpath.join(destination, name), overwrite=True)
  rmtree(source)


def fsync_path(path: str) -> None:
  """Flushes a local file, or a local folder's entries, to disk (nothing to
  do for a URL)."""
  if is_url(path):
    return
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def fsync_tree(root: str) -> None:
  """fsyncs every file and folder under a local `root`, then `root`."""
  if is_url(root):
    return
  for folder, _, files in os.walk(root, topdown=False):
    for name in files:
      fsync_path(os.path.join(folder, name))
    fsync_path(folder)
