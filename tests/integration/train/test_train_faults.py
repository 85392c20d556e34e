"""Fault handling with real TensorFlow workers: a worker killed with SIGKILL mid-training,
a peer that never comes up, and a user's own script job run like the built-in ones.
Each failure stops the whole job quickly, non-zero, names the cause, keeps the logs and
leaves no TF port open."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from processes import worker_pids

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
LONG = ("dataset=fashion_mnist", "optimizer=adam", "epochs=50", "steps=40", "batch=64")


def wait_for_event(piforge_home: Path, kind: str, timeout: float = 180) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events in (piforge_home / "runs").glob("*/events.jsonl"):
            if any(json.loads(line)["kind"] == kind for line in events.read_text().splitlines() if line):
                return events.parent
        time.sleep(0.5)
    raise AssertionError(f"no {kind} event within {timeout} s")


def ports_of(cluster: Path) -> List[int]:
    return [int(line.split("=")[1]) for line in cluster.read_text().splitlines() if line.startswith("tf_port")]


def assert_ports_free(ports: List[int]) -> None:
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def finish(process: subprocess.Popen, timeout: float = 60) -> str:
    out, _ = process.communicate(timeout=timeout)
    print(out[-5000:])
    return out


def test_sigkill_of_one_worker_stops_the_job(test_cluster, piforge_home: Path, start_piforge):
    cluster = test_cluster.write('[jobs.mnist]\nhosts = ["h0", "h1"]\n')
    process = start_piforge("train:mnist", f"cluster={cluster}", *LONG)
    run = wait_for_event(piforge_home, "epoch")
    (victim,) = worker_pids(test_cluster.root / "hosts" / "h1")
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    out = finish(process)
    assert time.monotonic() - killed < 30
    assert process.returncode != 0
    assert "worker on h1 killed by signal 9 (SIGKILL)" in out
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and info["failed_host"] == "h1"
    # max_restarts = 0 (the default) keeps the fail-fast: one attempt, no restart
    assert [a["attempt"] for a in info["attempts"]] == [1] and "piforge: restart" not in out
    assert "Epoch 1/" in (run / "logs" / "h0.log").read_text()
    assert info["busy_ports"] == [] and worker_pids(test_cluster.root / "hosts") == []
    assert_ports_free(ports_of(cluster))


def price_cluster(test_cluster, **params: object) -> Path:
    """A cluster file whose job `price` is the user-style script jobs/price_job.py."""
    rows = "\n".join(f"{x / 10:.1f},{3 * x / 10 + 2:.2f}" for x in range(-20, 20))
    (test_cluster.root / "prices.csv").write_text(rows + "\n")
    extra = "".join(f"{key} = {value}\n" for key, value in params.items())
    return test_cluster.write(f'''
        [jobs.price]
        description = "a user's own script"
        hosts = ["h0", "h1"]
        [jobs.price.params]
        script = "{HERE / 'jobs' / 'price_job.py'}"
        files = ["prices.csv"]
    ''' + extra)


def test_peer_that_never_starts_fails_the_job_at_the_deadline(test_cluster, run_piforge, piforge_home: Path):
    cluster = price_cluster(test_cluster, hang_worker=1)
    result = run_piforge("train:price", f"cluster={cluster}", "startup_timeout=25")
    assert result.returncode != 0
    assert "startup deadline: h1 did not come up within 25 s" in result.stdout
    assert "every worker was stopped" in result.stdout
    (run,) = (piforge_home / "runs").iterdir()
    assert "hangs before TensorFlow starts" in (run / "logs" / "h1.log").read_text()
    assert_ports_free(ports_of(cluster))


def test_custom_script_job_from_cluster_toml(test_cluster, run_piforge):
    cluster = price_cluster(test_cluster, epochs=4)
    result = run_piforge("train:price", f"cluster={cluster}", "epochs=6")
    assert result.returncode == 0, result.stdout
    for worker in ("h0 | worker 0", "h1 | worker 1"):
        line = next(text for text in result.stdout.splitlines() if worker in text)
        weight = float(line.split("= ")[1].split(" *")[0])
        assert abs(weight - 3.0) < 0.3, line
    assert result.stdout.count("Epoch 6/6") == 2


def test_ctrl_c_stops_every_worker(test_cluster, piforge_home: Path, start_piforge):
    cluster = test_cluster.write('[jobs.mnist]\nhosts = ["h0", "h1"]\n')
    process = start_piforge("train:mnist", f"cluster={cluster}", *LONG)
    run = wait_for_event(piforge_home, "epoch")
    process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal delivers to piforge
    pressed = time.monotonic()
    out = finish(process)
    assert time.monotonic() - pressed < 30
    assert process.returncode != 0 and "interrupted by the user (Ctrl-C)" in out
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert worker_pids(test_cluster.root / "hosts") == []
    assert_ports_free(ports_of(cluster))
