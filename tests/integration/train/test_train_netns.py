"""Two workers in two network namespaces (pft-a, pft-b) on our own bridge pftbr0
(10.232.0.0/24): real sockets between them, as between two Pis on a LAN. Then the
same job with one worker's link taken down mid-training."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.root]

BRIDGE = "pftbr0"
NAMESPACES = {"pft-a": "10.232.0.11", "pft-b": "10.232.0.12"}
FAST = ("dataset=fashion_mnist", "optimizer=adam", "epochs=3", "steps=40", "batch=64")


def ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _teardown() -> None:
    for name in NAMESPACES:
        ip("netns", "del", name, check=False)
        ip("link", "del", f"{name}-h", check=False)
    ip("link", "del", BRIDGE, check=False)


@pytest.fixture
def namespaces() -> Iterator[Dict[str, str]]:
    """Namespace name -> address; the host side of each veth is ``<name>-h``."""
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.fail("iproute2 missing: run scripts/setup-host.sh")
    _teardown()  # leftovers of a killed run
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", "10.232.0.1/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for name, address in NAMESPACES.items():
            ip("netns", "add", name)
            ip("link", "add", f"{name}-h", "type", "veth", "peer", "name", f"{name}-n")
            ip("link", "set", f"{name}-n", "netns", name)
            ip("link", "set", f"{name}-h", "master", BRIDGE, "up")
            ip("-n", name, "addr", "add", f"{address}/24", "dev", f"{name}-n")
            ip("-n", name, "link", "set", f"{name}-n", "up")
            ip("-n", name, "link", "set", "lo", "up")
        yield dict(NAMESPACES)
    finally:
        _teardown()


def netns_cluster(test_cluster, namespaces: Dict[str, str]) -> Path:
    return test_cluster.write('[jobs.mnist]\nhosts = ["h0", "h1"]\n',
                              addresses=list(namespaces.values()),
                              wrappers=[f"ip netns exec {name}" for name in namespaces])


def test_two_workers_in_two_namespaces(test_cluster, namespaces, run_piforge, piforge_home: Path):
    cluster = netns_cluster(test_cluster, namespaces)
    result = run_piforge("train:mnist", f"cluster={cluster}", *FAST)
    assert result.returncode == 0, result.stdout
    accuracy = float(result.stdout.split("test_accuracy=")[-1].split()[0])
    assert accuracy >= 0.80
    (run,) = (piforge_home / "runs").iterdir()
    config = json.loads((run / "tf_config" / "h1.json").read_text())
    assert config["cluster"]["worker"][0].startswith("10.232.0.11:")
    assert config["task"] == {"type": "worker", "index": 1}


def test_link_down_mid_training_stops_the_job(test_cluster, namespaces, start_piforge, piforge_home: Path):
    cluster = netns_cluster(test_cluster, namespaces)
    process = start_piforge("train:mnist", f"cluster={cluster}", "dataset=fashion_mnist", "optimizer=adam",
                            "epochs=50", "steps=40", "batch=64")
    deadline = time.monotonic() + 180
    run = None
    while time.monotonic() < deadline and run is None:
        for events in (piforge_home / "runs").glob("*/events.jsonl"):
            if '"kind": "epoch"' in events.read_text():
                run = events.parent
        time.sleep(0.5)
    assert run is not None, "training never reached its first epoch"
    ip("link", "set", "pft-b-h", "down")
    cut = time.monotonic()
    out, _ = process.communicate(timeout=90)
    print(out[-5000:])
    assert time.monotonic() - cut < 30
    assert process.returncode != 0
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed"
    assert "every worker was stopped" in out
    # Whoever notices first (our probe of h1's TF port, or TF's own collective
    # timeout in a worker), the cause is named and every worker is gone.
    assert info["failed_host"] in ("h0", "h1") and info["cause"]
    assert all(code is not None for code in info["exit_codes"].values())
    assert (run / "logs" / "h1.log").read_text().count("Epoch 1/") == 1
