"""Private /tmp per local worker: the command wrapping, the fallback, the cleanup, and (as
root) real tiny workers in their own mount namespaces under the real supervisor."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import List

import pytest

from build.cluster.config import HostSpec
from build.cluster.hosts.local import LocalHost
from build.train import isolation
from build.train.isolation import LocalIsolation, namespace_argv, paths_to_keep, private_dir
from build.train.records import RunRecord
from build.train.supervisor import Supervisor, WorkerSpec

needs_namespace = pytest.mark.skipif(isolation.namespace_problem() is not None,
                                     reason=f"no private mount namespace: {isolation.namespace_problem()}")


@pytest.fixture(autouse=True)
def private_root(tmp_path: Path, monkeypatch) -> Path:
    """Private dirs of these tests go to their tmp_path, never the shared /var/tmp root."""
    root = tmp_path / "private-root"
    monkeypatch.setattr(isolation, "PRIVATE_ROOT", str(root))
    return root


def host(name: str, home: Path, transport: str = "local") -> LocalHost:
    return LocalHost(HostSpec(name=name, address="127.0.0.1", tf_port=1, transport=transport, user=None, key=None,
                              ssh_port=22, known_hosts="", connect_timeout=5.0, python="python3", home=str(home)))


def test_only_real_paths_under_tmp_are_kept_outermost_first(tmp_path: Path) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    kept = paths_to_keep([str(inner), str(tmp_path / "a"), "/usr/bin", "relative/x", str(tmp_path / "gone")])
    real = os.path.realpath(str(tmp_path / "a"))
    assert kept == ([real] if real.startswith("/tmp/") else [])


def test_namespace_command_binds_back_then_covers_tmp_and_execs_argv() -> None:
    argv = namespace_argv("/w/h0/tmp/r1", ["/tmp/it's here"], ["/venv/bin/python", "-u", "job.py", "a=1"])
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert "--net" not in argv and "-n" not in argv  # peers stay on loopback
    script = argv[7]
    assert "mount --bind '/tmp/it'\"'\"'s here' '/w/h0/tmp/r1/it'\"'\"'s here'" in script
    assert script.index("mount --bind") < script.index("mount --rbind /w/h0/tmp/r1 /tmp")
    assert script.endswith('exec "$@"')  # same pid: the supervisor's signals reach the worker
    assert argv[-4:] == ["/venv/bin/python", "-u", "job.py", "a=1"]


def test_private_dir_is_never_inside_tmp_itself() -> None:
    assert private_dir("/home/u/.piforge/hosts/h0", "r1") == "/home/u/.piforge/hosts/h0/tmp/r1"
    under = private_dir("/tmp/pytest-1/hosts/h0", "r1")  # PRIVATE_ROOT: this test's own
    assert under.startswith(isolation.PRIVATE_ROOT + "/r1-h0-") and under.endswith("/tmp")
    assert under != private_dir("/tmp/pytest-2/hosts/h0", "r1")


def test_ssh_hosts_and_the_off_switch_leave_the_command_alone(tmp_path: Path, monkeypatch) -> None:
    argv = ["python", "job.py"]
    assert LocalIsolation().wrap(host("pi", tmp_path, "ssh"), "r", str(tmp_path), argv, {}, print) == (argv, {})
    monkeypatch.setenv(isolation.SWITCH, "off")
    chosen = LocalIsolation()
    assert chosen.wrap(host("h0", tmp_path), "r", str(tmp_path), argv, {}, print) == (argv, {})
    assert chosen.mode("r") == isolation.OFF


def test_without_namespace_each_worker_gets_its_tmpdir_and_one_note(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(isolation, "namespace_problem", lambda: "not running as root")
    said: List[str] = []
    chosen = LocalIsolation()
    results = [chosen.wrap(host(name, tmp_path / "home"), "r1", str(tmp_path), ["python", "job.py"],
                           {"TMPDIR": "/elsewhere"}, said.append) for name in ("h0", "h1")]
    dirs = [env["TMPDIR"] for _, env in results]
    assert all(argv == ["python", "job.py"] for argv, _ in results)
    assert len(set(dirs)) == 2 and all(Path(d).is_dir() for d in dirs)
    assert len(said) == 1 and "share /tmp (not running as root" in said[0]
    chosen.release("r1", said.append)
    assert not any(Path(d).exists() for d in dirs)


def test_release_never_deletes_through_a_mount(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(isolation, "namespace_problem", lambda: "not running as root")
    chosen = LocalIsolation()
    _, env = chosen.wrap(host("h0", tmp_path / "home"), "r1", str(tmp_path), ["python"], {}, print)
    monkeypatch.setattr(isolation, "mounts_under", lambda path: [path + "/x"])
    said: List[str] = []
    chosen.release("r1", said.append)
    assert Path(env["TMPDIR"]).is_dir() and "still mounted" in said[0]


# A worker writing one fixed /tmp path, waiting until its peer has written too, then
# reading it back: with a shared /tmp one of the two reads the other's token.
FIXED_PATH_WORKER = r"""
import os, sys, time
me, peer = sys.argv[1], sys.argv[2]
os.makedirs('/tmp/piforge-unit-fixed', exist_ok=True)
with open('/tmp/piforge-unit-fixed/token', 'w') as f:
    f.write(me); f.flush(); os.fsync(f.fileno())
open(os.path.join(os.environ['MARKS'], me), 'w').close()
while not os.path.exists(os.path.join(os.environ['MARKS'], peer)):
    time.sleep(0.02)
got = open('/tmp/piforge-unit-fixed/token').read()
print('read', got, 'tmpdir', os.environ.get('TMPDIR'), flush=True)
sys.exit(0 if got == me else 3)
"""


def _fixed_path_run(tmp_path: Path, chosen: LocalIsolation, run_id: str) -> dict:
    marks = tmp_path / f"marks-{run_id}"
    marks.mkdir()
    record = RunRecord.create(run_id, tmp_path / "runs")
    specs = []
    for me, peer in (("h0", "h1"), ("h1", "h0")):
        worker_host = host(me, tmp_path / "home")
        cwd = f"{worker_host.workdir}/runs/{run_id}"
        os.makedirs(cwd)
        argv, env = chosen.wrap(worker_host, run_id, cwd, [sys.executable, "-c", FIXED_PATH_WORKER, me, peer],
                                {"MARKS": str(marks)}, print)
        specs.append(WorkerSpec(host=worker_host, argv=argv, env=env, cwd=cwd))
    outcome = Supervisor(specs, record, echo=lambda h, line: None).run()
    record.close()
    chosen.release(run_id, print)
    return {"status": outcome.status, "cause": outcome.cause}


@needs_namespace
def test_two_workers_writing_one_fixed_tmp_path_collide_only_without_isolation(tmp_path: Path,
                                                                               monkeypatch) -> None:
    assert _fixed_path_run(tmp_path, LocalIsolation(), "isolated")["status"] == "succeeded"
    assert not (isolation.PRIVATE_ROOT and list(Path(isolation.PRIVATE_ROOT).glob("isolated-*")))
    monkeypatch.setenv(isolation.SWITCH, "off")
    shared = _fixed_path_run(tmp_path, LocalIsolation(), "shared")
    assert shared["status"] == "failed" and "exited with code 3" in shared["cause"]


@needs_namespace
def test_the_supervisor_stops_the_real_process_inside_the_namespace(tmp_path: Path) -> None:
    worker_host = host("h0", tmp_path / "home")
    cwd = f"{worker_host.workdir}/runs/r1"
    os.makedirs(cwd)
    script = ("import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('pid', os.getpid(), 'pgid', os.getpgid(0), flush=True)\ntime.sleep(600)\n")
    chosen = LocalIsolation()
    argv, env = chosen.wrap(worker_host, "r1", cwd, [sys.executable, "-c", script], {}, print)
    process = worker_host.spawn(argv, env=env, cwd=cwd)
    assert process.stdout is not None
    line = process.stdout.readline().decode().split()
    assert int(line[1]) == process.pid and int(line[3]) == process.pid  # unshare and sh exec'd
    os.killpg(process.pid, signal.SIGKILL)  # what the supervisor does after TERM's grace
    assert process.wait(timeout=10) == -signal.SIGKILL
    chosen.release("r1", print)
    time.sleep(0.1)
    assert not os.path.exists(isolation.private_dir(worker_host.workdir, "r1"))
