"""Two processes building the same derivation at once: one builds, the other waits on
the store lock and reuses the entry."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spine_helpers import REPO, doit_command, last_line

pytestmark = pytest.mark.slow


def test_two_concurrent_builds_build_once(tmp_path: Path) -> None:
    home, recipes, counter = tmp_path / "home", tmp_path / "recipes", tmp_path / "builds.txt"
    recipes.mkdir()
    (recipes / "slow.toml").write_text(textwrap.dedent(f'''
        name = "slow"
        version = "1"
        [builder]
        kind = "native"
        [env]
        COUNTER = "{counter}"
        [[phases]]
        name = "build"
        run = "echo built >> \\"$COUNTER\\"; sleep 5; echo done > \\"$PIFORGE_OUT/out.txt\\""
    '''))
    env = dict(os.environ, PIFORGE_HOME=str(home), PIFORGE_RECIPES=str(recipes), PYTHONPATH=str(REPO))
    processes = [subprocess.Popen(doit_command("build:slow"), cwd=str(REPO),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    paths = {last_line(out) for out, _ in results}
    assert len(paths) == 1 and Path(paths.pop()).joinpath("out.txt").read_text() == "done\n"
    assert counter.read_text() == "built\n"
    messages = "".join(err for _, err in results)
    assert messages.count("building with native") == 1
    assert messages.count("built meanwhile by another process, reusing it") == 1
