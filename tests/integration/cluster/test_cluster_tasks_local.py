"""The doit tasks on the built-in kind of cluster (local hosts sharing one install):
deploy, cluster:check, tfconfig:<job>, rollback, and a broken cluster file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from cluster_helpers import doit

pytestmark = pytest.mark.slow

PROFILE = """
name = "test-local"
description = "test: the small x86 wheelhouse on local hosts"
os = "debian-12"
platform = "linux/x86_64"
python = "3.11"
glibc = "2.31"
pip = "24.3.1"
tensorflow = "none"
wheelhouse = "wheelhouse-test-x86"
host_python = "/usr/bin/python3"
check_import = "wrapt, six"
"""


def test_local_cluster_tasks(shared_home: Path, cluster_recipes: Path, build_output: Callable[[str], Path],
                             tmp_path: Path) -> None:
    build_output("wheelhouse-test-x86")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "test-local.toml").write_text(PROFILE)
    hosts_home = tmp_path / "hosts-home"
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(f"""
[cluster]
profile = "test-local"
home = "{hosts_home}"

[[hosts]]
name = "w0"
tf_port = 23460

[[hosts]]
name = "w1"
tf_port = 23461

[jobs.smoke]
roles = {{ w0 = "chief" }}
""")
    env = {"PIFORGE_PROFILES": str(profiles)}
    run = lambda *args, **kw: doit(*args, f"cluster={cluster}", home=shared_home, recipes=cluster_recipes,  # noqa: E731
                                   extra_env=env, **kw)

    deployed = run("deploy")
    rows = [line.split() for line in deployed.stdout.splitlines() if line.startswith(("w0 ", "w1 "))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("w0", "local", "installed"), ("w1", "local", "installed")]
    venvs = list((hosts_home / "venvs" / "test-local").glob("v-*"))
    assert len(venvs) == 1                       # one install serves both local hosts
    assert "copying" not in deployed.stderr      # no ssh fan-out for local hosts

    again = run("deploy")
    assert again.stdout.count("up to date") == 2

    checked = run("cluster:check")
    assert checked.stdout.count(" fit") == 2 and "wrapt 2.5.2, six 1.17.0" in checked.stdout

    printed = run("tfconfig:smoke")
    lines = [line for line in printed.stdout.splitlines() if line.startswith(("w0 ", "w1 "))]
    configs = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in lines}
    assert configs["w0"]["task"] == {"type": "chief", "index": 0}
    assert configs["w1"]["cluster"] == {"chief": ["127.0.0.1:23460"], "worker": ["127.0.0.1:23461"]}

    rolled = run("rollback", check=False)
    assert rolled.returncode != 0 and "no previous deployment" in rolled.stdout
    assert "rollback failed on 2 of 2 hosts: w0, w1" in rolled.stderr

    cluster.write_text(cluster.read_text().replace("tf_port = 23461", "tf_port = 99999"))
    broken = run("deploy", check=False)
    assert broken.returncode != 0
    assert f"{cluster}:12: hosts.1.tf_port: expected a port number 1-65535, got 99999" in broken.stderr
    assert "Traceback" not in broken.stderr
