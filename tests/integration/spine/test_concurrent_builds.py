"""Two processes building the same derivation at once: one builds, the other waits on
the store lock and reuses the entry."""
from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from spine_helpers import REPO, doit_command, last_line

pytestmark = pytest.mark.slow


def _holds_open(pid: int, fragment: str) -> bool:
    try:
        return any(fragment in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_two_concurrent_builds_build_once(tmp_path: Path) -> None:
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    counter, go = tmp_path / "builds.txt", tmp_path / "go"
    recipes.mkdir()
    # The phase waits for the test's go-ahead, so both processes surely overlap.
    (recipes / "slow.toml").write_text(textwrap.dedent(f'''
        name = "slow"
        version = "1"
        [builder]
        kind = "native"
        [env]
        COUNTER = "{counter}"
        GO = "{go}"
        [[phases]]
        name = "build"
        run = """
        echo built >> "$COUNTER"
        for i in $(seq 600); do [ -e "$GO" ] && break; sleep 0.1; done
        echo done > "$PIFORGE_OUT/out.txt"
        """
    '''))
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(recipes), PYTHONPATH=str(REPO))
    processes = [subprocess.Popen(doit_command("build:slow"), cwd=str(REPO), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        # One is building; both hold the derivation's lock file open (one owns the lock,
        # the other is blocked on it), seen twice in a row to skip a passing glance.
        seen = 0
        while time.monotonic() < deadline and seen < 2:
            both = counter.exists() and all(_holds_open(p.pid, "-slow-1.lock") for p in processes)
            seen = seen + 1 if both else 0
            time.sleep(0.2)
        go.touch()
        results = [p.communicate(timeout=300) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0, 0], results
    paths = {last_line(out) for out, _ in results}
    assert len(paths) == 1 and Path(paths.pop()).joinpath("out.txt").read_text() == "done\n"
    assert counter.read_text() == "built\n"
    messages = "".join(err for _, err in results)
    assert messages.count("building with native") == 1
    assert messages.count("built meanwhile by another process, reusing it") == 1
