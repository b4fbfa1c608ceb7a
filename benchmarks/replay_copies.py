"""Replay directories of N checkpoints made of links to fewer (convert.py,
pipeline.py).

How RAM and speed grow with the number of checkpoints is measured without
N times the disk: checkpoint i of a copy links the files of the source's
checkpoint i mod K (hard links; symbolic ones across file systems), so the
page cache holds only the K distinct ones.
"""

import os

from batch_rl.data import compact
from batch_rl.data import dopamine_replay


def link(src: str, dst: str) -> None:
  """`dst`: a hard link of `src`, or a symbolic one where that fails."""
  try:
    os.link(src, dst)
  except OSError:
    os.symlink(os.path.abspath(src), dst)


def gz_with_copies(gz_dir: str, out_dir: str, copies: int) -> str:
  """`out_dir` holding `copies` checkpoints: links of `gz_dir`'s, cycled."""
  available = dopamine_replay.list_checkpoints(gz_dir)
  os.makedirs(out_dir, exist_ok=True)
  for suffix in range(copies):
    source = available[suffix % len(available)]
    for name in (*(dopamine_replay.STORE_PREFIX + element
                   for element in dopamine_replay.STORE_ELEMENTS),
                 *dopamine_replay.METADATA_ELEMENTS):
      original = dopamine_replay.checkpoint_filename(gz_dir, name, source)
      target = dopamine_replay.checkpoint_filename(out_dir, name, suffix)
      if os.path.exists(original) and not os.path.exists(target):
        link(original, target)
  return out_dir


def converted_with_copies(converted_dir: str, out_dir: str,
                          copies: int) -> str:
  """`out_dir`, a converted directory listing checkpoints 0..`copies` - 1:
  links of `converted_dir`'s, cycled. Checkpoints `out_dir` already holds
  are kept (`out_dir` may be `converted_dir`)."""
  manifest = compact.read_manifest(converted_dir)
  available = manifest['checkpoints']
  os.makedirs(out_dir, exist_ok=True)
  for suffix in range(copies):
    target = compact.checkpoint_dir(out_dir, suffix)
    if os.path.exists(target):
      continue
    source = compact.checkpoint_dir(converted_dir,
                                    available[suffix % len(available)])
    os.makedirs(target)
    for name in os.listdir(source):
      link(os.path.join(source, name), os.path.join(target, name))
  compact.write_json(os.path.join(out_dir, compact.MANIFEST),
                     {**manifest, 'checkpoints': list(range(copies))})
  return out_dir


def du(path: str) -> int:
  """Bytes of the files under `path` (each hard link counted once)."""
  seen, total = set(), 0
  for root, _, files in os.walk(path):
    for name in files:
      stat = os.lstat(os.path.join(root, name))
      if stat.st_ino not in seen:
        seen.add(stat.st_ino)
        total += stat.st_size
  return total
