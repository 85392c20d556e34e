"""A cluster file with several mistakes: every one is reported, with its line, at once."""
from __future__ import annotations

from pathlib import Path

import pytest

from build.cluster.config import load_cluster
from build.errors import ClusterConfigError

BROKEN = """\
[cluster]
transport = "lokal"
colour = "blue"

[[hosts]]
name = "a"
tf_port = 70000

[[hosts]]
name = "b"
tf_prt = 1

[[hosts]]
name = "c"

[jobs.mnist]
hosts = ["a", "c"]

[jobs.other]
hosts = ["c", "zed"]
strategy = "mirror"
"""


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(BROKEN)
    with pytest.raises(ClusterConfigError) as error:
        load_cluster(path)
    lines = [str(p).splitlines()[0] for p in error.value.problems]
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in lines] == ["2", "3", "7", "11", "20"]
    assert "cluster.transport: expected one of local, ssh, got 'lokal'" in lines[0]
    assert lines[1].endswith("cluster.colour: unknown field")
    assert "hosts.0.tf_port: expected a port number" in lines[2]
    assert lines[3].endswith("hosts.1.tf_prt: unknown field")
    assert "jobs.other.hosts: unknown host 'zed'" in lines[4]
    # jobs.mnist uses host a, whose own problem is said already: no second, derived complaint
    assert not any("jobs.mnist" in line for line in lines)
    assert error.value.exit_code == 2


def test_a_good_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[[hosts]]\nname = "a"\n[jobs.x]\n')
    assert list(load_cluster(path).jobs) == ["x"]


def test_ssh_kex_is_fast_or_default(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nssh_kex = "default"\n[[hosts]]\nname = "a"\n[[hosts]]\nname = "b"\nssh_kex = "quantum"\n')
    with pytest.raises(ClusterConfigError) as error:
        load_cluster(path)
    (line,) = [str(p).splitlines()[0] for p in error.value.problems]
    assert line.endswith(":7: hosts.1.ssh_kex: expected one of fast, default, got 'quantum'")
    path.write_text('[cluster]\nssh_kex = "default"\n[[hosts]]\nname = "a"\n[[hosts]]\nname = "b"\nssh_kex = "fast"\n')
    assert [h.ssh_kex for h in load_cluster(path).hosts] == ["default", "fast"]


def test_deploy_stream_is_cluster_wide_ssh_or_tcp(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[[hosts]]\nname = "a"\n')
    assert load_cluster(path).deploy_stream == "ssh"
    path.write_text('[cluster]\ndeploy_stream = "tcp"\n[[hosts]]\nname = "a"\n')
    assert load_cluster(path).deploy_stream == "tcp"
    path.write_text('[cluster]\ndeploy_stream = "udp"\n[[hosts]]\nname = "a"\ndeploy_stream = "tcp"\n')
    with pytest.raises(ClusterConfigError) as error:
        load_cluster(path)
    lines = str(error.value).splitlines()
    assert any(line.endswith(":2: cluster.deploy_stream: expected one of ssh, tcp, got 'udp'") for line in lines), lines
    assert any(":5: hosts.0.deploy_stream: unknown field" in line for line in lines), lines   # not a per-host field
