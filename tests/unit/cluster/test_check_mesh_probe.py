"""cluster:check at scale without hosts: the mesh probe script connects to many peers a
bounded number at once (a silent peer costs one timeout), and the table puts unfit hosts first."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

from build.cluster.check import CONNECT, HostCheck, check_table
from build.cluster.config import HostSpec


def spec(name: str) -> HostSpec:
    return HostSpec(name=name, address="127.0.0.1", tf_port=1, transport="local", user=None, key=None, ssh_port=22,
                    known_hosts="", connect_timeout=3.0, python=None, home=None)


def test_probe_script_reports_every_peer() -> None:
    with socket.socket() as listener, socket.socket() as closed:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        closed.bind(("127.0.0.1", 0))      # bound, never listening: refused
        good, bad = listener.getsockname()[1], closed.getsockname()[1]
        targets = [f"p{i}|127.0.0.1|{good}" for i in range(34)] + [f"gone|127.0.0.1|{bad}"]
        result = subprocess.run([sys.executable, "-c", CONNECT, "2", "16", *targets], capture_output=True,
                                text=True, timeout=60, check=True)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(outcome) == 35
    assert all(outcome[f"p{i}"] == "ok" for i in range(34))
    assert outcome["gone"] != "ok"


def test_table_lists_unfit_hosts_first() -> None:
    checks = [HostCheck(spec(f"s{i}"), reachable=True, tf_ok=True, port="free") for i in range(5)]
    checks[3].problems.append("TF port 1 unreachable from s0 (timed out)")
    checks.append(HostCheck(spec("s5")))      # unreachable
    rows = [line.split()[0] for line in check_table(checks).splitlines()[2:] if line and not line.startswith(" ")]
    assert rows == ["s3", "s5", "s0", "s1", "s2", "s4"]
