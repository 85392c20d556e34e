"""Everything sent to a host's shell is quoted: hostile names and paths stay data.

The strings are run by a real /bin/sh here (no ssh needed): what the host's login
shell would execute is exactly argv, nothing else.
"""
from __future__ import annotations

import subprocess
import time
import sys
from pathlib import Path

import pytest

from build.cluster.config import HostSpec
from build.cluster.hosts.ssh import SshHost, remote_command, stop_on_hangup
from build.errors import HostError

HOSTILE = ["$(touch pwned)", "`touch pwned`", "a; touch pwned", "x' 'y", 'q"uote', "new\nline", "-rf", "*", "~root"]


def shell(command: str, cwd: Path) -> str:
    return subprocess.run(["/bin/sh", "-c", command], cwd=str(cwd), capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("word", HOSTILE)
def test_argv_survives_the_remote_shell(tmp_path: Path, word: str) -> None:
    printer = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"]
    out = shell(remote_command([*printer, word, "plain"], env={"PF_VALUE": word}, cwd=str(tmp_path)), tmp_path)
    import json
    assert json.loads(out) == [word, "plain"]
    assert not (tmp_path / "pwned").exists()


def test_env_values_are_data(tmp_path: Path) -> None:
    command = remote_command([sys.executable, "-c", "import os; print(os.environ['PF_X'])"],
                             env={"PF_X": "$(touch pwned); `id`"})
    assert shell(command, tmp_path).strip() == "$(touch pwned); `id`"
    assert not (tmp_path / "pwned").exists()


def test_bad_env_name_is_refused() -> None:
    with pytest.raises(HostError, match="invalid environment variable name"):
        remote_command(["true"], env={"A=B; touch x": "1"})


def test_cwd_with_spaces_and_quotes(tmp_path: Path) -> None:
    odd = tmp_path / "it's a dir; $(x)"
    odd.mkdir()
    assert shell(remote_command(["pwd"], cwd=str(odd)), tmp_path).strip() == str(odd)


def test_stop_on_hangup_passes_exit_status(tmp_path: Path) -> None:
    wrapped = stop_on_hangup(remote_command(["sh", "-c", "exit 7"]))
    # stdin stays open, as an ssh session's does while the controller runs
    session = subprocess.Popen(["/bin/sh", "-c", wrapped], stdin=subprocess.PIPE)
    try:
        assert session.wait(timeout=30) == 7
    finally:
        session.stdin.close()


def test_ssh_argv_is_strict_and_ends_options() -> None:
    spec = HostSpec(name="pi01", address="192.168.1.101", tf_port=12345, transport="ssh", user="pi",
                    key="/k/id", ssh_port=2222, known_hosts="/k/known_hosts", connect_timeout=4.0,
                    python=None, home=None)
    host = SshHost(spec, control_dir="/tmp/pf-test-cm")
    argv = host.ssh_argv("true")
    joined = " ".join(argv)
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/k/known_hosts",
                   "ConnectTimeout=4", "IdentitiesOnly=yes"):
        assert option in joined
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-3:] == ["--", "pi@192.168.1.101", "true"]   # "--": nothing after is an option


def test_fast_key_exchange_by_default_and_openssh_own_on_request() -> None:
    """curve25519 first (sntrup761 cost 88 ms of CPU per connection here, curve25519 12 ms);
    ``ssh_kex = "default"`` leaves the choice to OpenSSH. Every name is one `ssh -Q kex` knows."""
    import dataclasses
    import shutil

    spec = HostSpec(name="pi01", address="192.168.1.101", tf_port=12345, transport="ssh", user="pi",
                    key=None, ssh_port=22, known_hosts="/k/known_hosts", connect_timeout=4.0,
                    python=None, home=None)
    fast = SshHost(spec, control_dir="/tmp/pf-test-cm").ssh_argv("true")
    (chosen,) = [value for value in fast if value.startswith("KexAlgorithms=")]
    names = chosen.split("=", 1)[1].split(",")
    assert names[0] == "curve25519-sha256" and not any("sntrup" in n or "mlkem" in n for n in names)
    if shutil.which("ssh"):
        known = subprocess.run(["ssh", "-Q", "kex"], capture_output=True, text=True).stdout.split()
        assert set(names) <= set(known)
    default = SshHost(dataclasses.replace(spec, ssh_kex="default"), control_dir="/tmp/pf-test-cm").ssh_argv("true")
    assert not any(value.startswith("KexAlgorithms=") for value in default)


def test_hangup_kills_a_command_that_ignores_sigterm(tmp_path: Path) -> None:
    # TensorFlow ignores SIGTERM: closing the session must still stop the worker.
    pidfile = tmp_path / "pid"
    stubborn = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 1; done"
    wrapped = stop_on_hangup(remote_command(["sh", "-c", stubborn]))
    session = subprocess.Popen(["/bin/sh", "-c", wrapped], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    worker = int(pidfile.read_text())
    session.stdin.close()  # the ssh connection goes away
    session.wait(timeout=30)
    deadline = time.monotonic() + 10  # a SIGKILLed process needs a moment to be gone
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    # A killed orphan may linger as a zombie until init reaps it: that is dead too.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
