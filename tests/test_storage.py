"""storage: entries written aside and numbered, files removed and renamed
locally and on URLs, errors of a URL's store as OSErrors naming the URL."""

import uuid

import pytest
import tensorflow as tf

from batch_rl import cli
from batch_rl import storage


def test_numbered_entries_are_the_digits_after_the_prefix_sorted():
  names = ['ckpt_10', 'ckpt_2', 'ckpt_3' + storage.PARTIAL, 'ckpt_x',
           'ckpt_', 'manifest.json', 'ckpt_0']
  assert storage.numbered(names, 'ckpt_') == [0, 2, 10]
  assert storage.numbered([], 'iteration_') == []


def test_an_atomic_write_leaves_no_temporary_file(tmp_path):
  path = str(tmp_path / 'sub' / 'a.json')
  storage.write_atomically(path, '{}')
  storage.write_atomically(path, '[]')
  assert storage.read_text(path) == '[]'
  assert sorted(storage.listdir(str(tmp_path / 'sub'))) == ['a.json']


def test_remove_and_rename_files_locally_and_on_a_url(tmp_path):
  url = f'ram://{uuid.uuid4().hex}'
  for root in (str(tmp_path), url):
    a, b = storage.join(root, 'a'), storage.join(root, 'b')
    storage.write_atomically(a, 'A')
    storage.write_atomically(b, 'old')
    storage.rename(a, b)  # Over an existing file.
    assert sorted(storage.listdir(root)) == ['b']
    assert storage.read_text(b) == 'A'
    storage.remove(b)
    assert storage.listdir(root) == []
    with pytest.raises(FileNotFoundError):
      storage.remove(b)
  storage.rmtree(url)


class _Store:
  """tf.io.gfile whose store answers `exists` with `error`."""

  def __init__(self, error):
    self.error = error

  def exists(self, path):
    raise self.error


@pytest.mark.parametrize('error, os_error', [
    (tf.errors.PermissionDeniedError(None, None, 'Error executing an HTTP '
                                     'request: HTTP response code 403\nmore'),
     PermissionError),
    (tf.errors.UnavailableError(None, None, 'Could not resolve host'),
     OSError),
])
def test_a_store_answering_with_an_error_is_one_line_naming_the_url(
    capsys, error, os_error):
  url = 'gs://bucket/run'
  with pytest.raises(os_error) as raised:
    storage._first_answer(_Store(error), url)
  assert raised.value.filename == url
  assert cli.call(lambda _: storage._first_answer(_Store(error), url),
                  []) == 2
  first_line = error.message.splitlines()[0]
  assert capsys.readouterr().err == (
      f'error: [Errno {raised.value.errno}] {first_line}: {url!r}\n')
