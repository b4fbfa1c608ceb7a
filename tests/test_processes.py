"""Child processes that die with their parent."""

import os
import signal
import subprocess
import sys
import time

import pytest

from batch_rl import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _alive(pid: int) -> bool:
  """Whether `pid` runs (a zombie waiting for its reaper does not)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except FileNotFoundError:
    return False


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='PR_SET_PDEATHSIG is Linux only')
@pytest.mark.parametrize('die_with_parent', [True, False])
def test_a_child_stops_when_its_parent_is_killed(tmp_path, die_with_parent):
  pid_file = tmp_path / 'child.pid'
  preexec = 'processes.die_with_parent' if die_with_parent else 'None'
  parent = subprocess.Popen([sys.executable, '-c', f'''
import subprocess, sys, time
from batch_rl import processes
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                         preexec_fn={preexec})
with open({str(pid_file)!r} + '.tmp', 'w') as f:
  f.write(str(child.pid))
import os; os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})
time.sleep(60)
'''], cwd=REPO)
  try:
    while not pid_file.exists():
      assert parent.poll() is None, 'the parent ended early'
      time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    # Killed at once, or (without the helper) still running a second on.
    deadline = time.time() + (10 if die_with_parent else 1)
    while _alive(child) and time.time() < deadline:
      time.sleep(0.05)
    assert _alive(child) != die_with_parent
  finally:
    parent.kill()
    if pid_file.exists() and _alive(int(pid_file.read_text())):
      os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_without_prctl_it_does_nothing(monkeypatch):
  monkeypatch.setattr(processes.ctypes, 'CDLL', lambda name: object())
  assert processes.die_with_parent() is None
