"""A build whose piforge process is SIGKILLed: no store entry, no phase process left
running, and the next build clears the orphaned staging dir and succeeds."""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from prerequisites import require_root
from spine_helpers import REPO, doit_command, last_line, run_doit

pytestmark = pytest.mark.slow

RECIPE = """
name = "victim"
version = "1"
[builder]
kind = "native"
[env]
MARKER = "{marker}"
[[phases]]
name = "work"
run = '''
echo $$ > "$MARKER"
if [ ! -e "$MARKER.once" ]; then touch "$MARKER.once"; sleep 300; fi
echo ok > "$PIFORGE_OUT/ok"
'''
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def _pids() -> list:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _runs_with(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:   # gone meanwhile, or a kernel thread
        return False


def test_sigkill_leaves_nothing_and_the_next_build_recovers(tmp_path: Path) -> None:
    require_root()
    home, recipes, marker = tmp_path / "home", tmp_path / "recipes", tmp_path / "phase.pid"
    recipes.mkdir()
    (recipes / "victim.toml").write_text(textwrap.dedent(RECIPE).replace("{marker}", str(marker)))
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(recipes), PYTHONPATH=str(REPO))
    process = subprocess.Popen(doit_command("build:victim"), cwd=str(REPO), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the phase never started"
        staging = list((home / "store").glob(".staging-*victim*"))
        assert len(staging) == 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The phase's shell (pid 1 of its PID namespace, seen from here by another pid) and its
    # sleep die with piforge: look for any process still running the phase script.
    deadline = time.monotonic() + 10
    survivors = [1]
    while survivors and time.monotonic() < deadline:
        survivors = [pid for pid in _pids() if _alive(pid) and _runs_with(pid, str(marker))]
        time.sleep(0.2)
    assert survivors == []
    assert not list((home / "store").glob("*-victim-1"))

    rebuilt = Path(last_line(run_doit("build:victim", home=home, recipes=recipes).stdout))
    assert (rebuilt / "ok").read_text() == "ok\n"
    assert not staging[0].exists()
