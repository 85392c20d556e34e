"""The x86_64 `local` profile's wheelhouse offered to an arm64 host: deploy refuses it
before copying anything, naming host, arch and profile, and the host's home is unchanged."""
from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from arm64_helpers import doit

pytestmark = [pytest.mark.slow, pytest.mark.root]


def tree(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_x86_wheelhouse_is_refused_on_an_arm64_host(fresh_arm64_cluster: Path, arm64_ready: Path) -> None:
    homes = sorted((fresh_arm64_cluster.parent / "cluster.sim" / "hosts").glob("*/home"))
    before = {str(h): tree(h) for h in homes}
    result = doit("deploy", f"cluster={fresh_arm64_cluster}", "profile=local", home=arm64_ready, check=False)
    assert result.returncode != 0
    for host in ("sim0", "sim1"):
        line = next(line_ for line_ in result.stdout.splitlines() if host in line_ and "architecture" in line_)
        assert "aarch64" in line and "profile local" in line and "linux/x86_64" in line, line
    assert "refused before copying" in result.stdout
    assert {str(h): tree(h) for h in homes} == before
