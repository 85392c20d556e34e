"""TF_CONFIG rendering: every role, index order = file order, one distinct task per host."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from build.cluster.config import load_cluster
from build.cluster.tfconfig import render_tf_config, tf_config_lines

FIVE = """
[[hosts]]
name = "a"
tf_port = 1001
[[hosts]]
name = "b"
tf_port = 1002
[[hosts]]
name = "c"
tf_port = 1003
[[hosts]]
name = "d"
tf_port = 1004
[[hosts]]
name = "e"
address = "::1"
tf_port = 1005
"""


def cluster_of(tmp_path: Path, jobs: str):
    path = tmp_path / "cluster.toml"
    path.write_text(textwrap.dedent(FIVE + jobs))
    return load_cluster(path)


def test_mirrored_workers_in_job_order(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, '[jobs.j]\nhosts = ["c", "a", "b"]\n')
    rendered = render_tf_config(cluster, "j")
    assert list(rendered) == ["c", "a", "b"]
    assert rendered["c"]["cluster"] == {"worker": ["127.0.0.1:1003", "127.0.0.1:1001", "127.0.0.1:1002"]}
    assert [rendered[h]["task"] for h in "cab"] == [{"type": "worker", "index": i} for i in range(3)]


def test_mirrored_with_chief(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, '[jobs.j]\nhosts = ["a", "b", "c"]\nroles = { b = "chief" }\n')
    rendered = render_tf_config(cluster, "j")
    assert rendered["a"]["cluster"] == {"chief": ["127.0.0.1:1002"], "worker": ["127.0.0.1:1001", "127.0.0.1:1003"]}
    assert rendered["b"]["task"] == {"type": "chief", "index": 0}
    assert rendered["c"]["task"] == {"type": "worker", "index": 1}


def test_parameter_server_all_roles(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, textwrap.dedent("""
        [jobs.ps]
        roles = { a = "chief", b = "ps", d = "ps", e = "evaluator" }
        """))
    rendered = render_tf_config(cluster, "ps")
    spec = rendered["a"]["cluster"]
    assert spec == {"chief": ["127.0.0.1:1001"], "worker": ["127.0.0.1:1003"],
                    "ps": ["127.0.0.1:1002", "127.0.0.1:1004"]}
    assert "evaluator" not in spec  # TensorFlow: the evaluator is not part of the cluster
    assert rendered["d"]["task"] == {"type": "ps", "index": 1}
    assert rendered["e"]["task"] == {"type": "evaluator", "index": 0}
    assert all(config["cluster"] == spec for config in rendered.values())


def test_every_host_has_a_unique_task(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, '[jobs.ps]\nroles = { a = "chief", b = "ps" }\n')
    tasks = [(c["task"]["type"], c["task"]["index"]) for c in render_tf_config(cluster, "ps").values()]
    assert len(set(tasks)) == len(tasks) == 5


def test_ipv6_endpoint_is_bracketed(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, '[jobs.j]\nhosts = ["e"]\n')
    assert render_tf_config(cluster, "j")["e"]["cluster"]["worker"] == ["[::1]:1005"]


def test_lines_are_host_then_compact_json(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, '[jobs.j]\nhosts = ["b", "a"]\n')
    lines = tf_config_lines(cluster, "j")
    name, payload = lines[0].split(" ", 1)
    assert name == "b" and " " not in payload
    assert json.loads(payload)["task"] == {"type": "worker", "index": 0}
