"""The cache's nginx doubles as Bazel's HTTP remote cache (/ac/, /cas/): a second build
with a fresh output base (nothing local) gets its compile and link actions from it."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

from build.cache.config import CacheConfig
from prerequisites import require_tool

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
PROJECT = REPO / "examples" / "bazel-hello"
MOCK_REPOS = Path("/usr/src/bazel-bootstrap/mock_repos")  # Debian's bazel-bootstrap-source: offline rules


def bazel_build(workspace: Path, user_root: Path, output_base: Path, remote_cache: str) -> str:
    overrides = [f"--override_repository={name}={MOCK_REPOS / name}"
                 for name in ("rules_cc", "rules_java", "rules_proto", "platforms")]
    command: List[str] = [
        "bazel", "--batch", f"--output_user_root={user_root}", f"--output_base={output_base}",
        "build", "//:hello", *overrides, f"--remote_cache={remote_cache}",
        "--curses=no", "--color=no", "--noshow_progress"]
    result = subprocess.run(command, cwd=str(workspace), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def test_second_build_with_fresh_output_base_hits_the_remote_cache(tmp_path: Path, dav) -> None:
    require_tool("bazel")
    if not MOCK_REPOS.is_dir():
        pytest.fail(f"{MOCK_REPOS} missing: scripts/setup-host.sh installs bazel-bootstrap-source")
    workspace = tmp_path / "bazel-hello"
    shutil.copytree(PROJECT, workspace)
    # The URL piforge hands Bazel builds: <cache>/bazel on the same server as the artifacts.
    remote = CacheConfig(urls=(dav.url + "/piforge",), push_url=dav.url + "/piforge").bazel_cache_url()
    assert remote == dav.url + "/piforge/bazel"
    user_root = tmp_path / "user-root"   # shared: only Bazel's unpacked install, no action results

    first = bazel_build(workspace, user_root, tmp_path / "output-base-1", remote)
    assert "remote cache hit" not in first
    built = (workspace / "bazel-bin" / "hello").read_bytes()
    assert any((dav.root / "piforge" / "bazel" / "cas").iterdir())
    assert any((dav.root / "piforge" / "bazel" / "ac").iterdir())

    second = bazel_build(workspace, user_root, tmp_path / "output-base-2", remote)
    hits = re.search(r"(\d+) remote cache hit", second)
    assert hits and int(hits.group(1)) >= 5, second[-2000:]   # 4 compiles + 1 link at least
    assert "linux-sandbox" not in second.split("processes:")[-1]  # nothing ran locally
    assert (workspace / "bazel-bin" / "hello").read_bytes() == built
    assert subprocess.run([str(workspace / "bazel-bin" / "hello")], stdout=subprocess.PIPE,
                          text=True, check=True).stdout.startswith("hello from bazel")
