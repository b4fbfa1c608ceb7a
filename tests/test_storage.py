"""storage: the names of entries written aside and numbered."""

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
