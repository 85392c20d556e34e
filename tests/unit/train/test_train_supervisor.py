"""The supervisor's rules with real, tiny processes (sh, python sockets) instead of TF:
fail-fast, TERM then KILL, startup deadline, a silent TF port = a dropped host."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import List, Optional

from build.cluster.config import HostSpec
from build.cluster.hosts.local import LocalHost
from build.train.records import RunRecord
from build.train.supervisor import Deadlines, Supervisor, WorkerSpec, port_open


def host(name: str) -> LocalHost:
    return LocalHost(HostSpec(name=name, address="127.0.0.1", tf_port=1, transport="local", user=None, key=None,
                              ssh_port=22, known_hosts="", connect_timeout=5.0, python="python3", home=None))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker(name: str, script: str, tmp_path: Path, port: Optional[int] = None) -> WorkerSpec:
    return WorkerSpec(host=host(name), argv=[sys.executable, "-c", script], env={}, cwd=str(tmp_path),
                      endpoint=("127.0.0.1", port) if port else None)


def listener(port: int, then: str = "time.sleep(600)") -> str:
    """A fake TF worker: opens its port, then does ``then``; ignores SIGTERM like TF."""
    return ("import signal, socket, time, sys\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('127.0.0.1', {port})); s.listen(8)\n"
            "print('PIFORGE_EVENT first_step {\"t\": 0}', flush=True)\n"
            f"{then}\n")


def supervise(specs: List[WorkerSpec], tmp_path: Path, **deadlines: float):
    record = RunRecord.create("run", tmp_path / "runs")
    lines: List[str] = []
    supervisor = Supervisor(specs, record, Deadlines(**{"term_grace": 2.0, **deadlines}),
                            echo=lambda h, line: lines.append(f"{h}|{line}"))
    outcome = supervisor.run()
    record.close()
    return outcome, lines, record


def test_all_succeed_and_output_is_prefixed_and_logged(tmp_path: Path):
    specs = [worker(f"w{i}", f"print('hello from {i}')", tmp_path) for i in range(2)]
    outcome, lines, record = supervise(specs, tmp_path)
    assert outcome.status == "succeeded"
    assert sorted(lines) == ["w0|hello from 0", "w1|hello from 1"]
    assert (record.path / "logs" / "w1.log").read_text() == "hello from 1\n"


def test_tensorflow_banners_reach_the_log_file_but_not_the_console(tmp_path: Path):
    banner = ("I0000 00:00:1796225686.674178   26974 cpu_feature_guard.cc:227] This TensorFlow binary is "
              "optimized to use available CPU instructions in performance-critical operations.")
    specs = [worker("w0", f"print({banner!r}); print('Epoch 1/3')", tmp_path)]
    outcome, lines, record = supervise(specs, tmp_path)
    assert outcome.status == "succeeded"
    assert lines == ["w0|Epoch 1/3"]
    assert (record.path / "logs" / "w0.log").read_text() == f"{banner}\nEpoch 1/3\n"


def test_one_failure_stops_a_worker_that_ignores_sigterm(tmp_path: Path):
    port = free_port()
    survivor = worker("w0", listener(port), tmp_path, port)
    failing = worker("w1", "import time, sys; time.sleep(1); print('boom'); sys.exit(3)", tmp_path)
    outcome, _, _ = supervise([survivor, failing], tmp_path)
    assert outcome.status == "failed" and outcome.host == "w1"
    assert "w1 exited with code 3" in outcome.cause and "boom" in outcome.cause
    assert outcome.exit_codes["w0"] == -9  # TERM ignored, so KILL after the grace period
    assert outcome.busy_ports == [] and not port_open(("127.0.0.1", port))


def test_killed_worker_is_named_with_its_signal(tmp_path: Path):
    specs = [worker("w0", "import os, time; time.sleep(0.5); os.kill(os.getpid(), 9)", tmp_path),
             worker("w1", "import time; time.sleep(600)", tmp_path)]
    outcome, _, _ = supervise(specs, tmp_path)
    assert outcome.host == "w0" and "killed by signal 9 (SIGKILL)" in outcome.cause


def test_startup_deadline_names_the_peer_that_never_came_up(tmp_path: Path):
    up, never = free_port(), free_port()
    specs = [worker("w0", listener(up), tmp_path, up),
             worker("w1", "import time; time.sleep(600)", tmp_path, never)]
    outcome, _, _ = supervise(specs, tmp_path, startup=2.0)
    assert outcome.status == "failed" and outcome.host == "w1"
    assert "startup deadline: w1 did not come up within 2 s" in outcome.cause
    assert f"127.0.0.1:{never}" in outcome.cause


def test_a_worker_whose_port_goes_silent_counts_as_a_dropped_host(tmp_path: Path):
    port, other = free_port(), free_port()
    closes = listener(port, then="time.sleep(1); s.close(); time.sleep(600)")
    specs = [worker("w0", listener(other), tmp_path, other), worker("w1", closes, tmp_path, port)]
    outcome, _, _ = supervise(specs, tmp_path, drop_after=1.5, probe_every=0.3)
    assert outcome.host == "w1" and "host w1 dropped" in outcome.cause


def test_ctrl_c_stops_everything(tmp_path: Path, monkeypatch):
    port = free_port()
    specs = [worker("w0", listener(port), tmp_path, port)]
    calls = {"n": 0}
    real_sleep = time.sleep

    def interrupting_sleep(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr("build.train.supervisor.time.sleep", interrupting_sleep)
    outcome, _, _ = supervise(specs, tmp_path)
    assert outcome.status == "interrupted" and outcome.exit_codes["w0"] is not None
    assert not port_open(("127.0.0.1", port))
