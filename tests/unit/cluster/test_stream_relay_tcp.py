"""The stream relay's tcp transport, run for real on this machine over loopback: relays
listen, get their wiring line on stdin as the controller writes it, and pass the stream
on over plain sockets opened with the token. The deploy path over simulated hosts is in
tests/integration/cluster/test_deploy_simhosts.py."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

from build.cluster import stream_relay

RELAY = stream_relay.__file__
TOKEN = "ab12" * 8


def record(name: str, data: bytes) -> Tuple[bytes, str]:
    sha = hashlib.sha256(data).hexdigest()
    return f"F {sha} {len(data)} {name}\n".encode() + data, sha


class Relay:
    """One relay process with --tcp, as a host runs it."""

    def __init__(self, home: Path, wanted: List[str], stall_s: float = 20) -> None:
        self.process = subprocess.Popen([sys.executable, RELAY, str(home), "--tcp", ",".join(wanted), str(stall_s), "5"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline().split()
        assert first[0] == "listen", first
        self.port = int(first[1])

    def wire(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self) -> Tuple[int, List[str], str]:
        """Wait for the relay (stdin held open until then, as the controller does)."""
        assert self.process.stdout is not None and self.process.stderr is not None
        out = self.process.stdout.read()
        code = self.process.wait(timeout=60)
        err = self.process.stderr.read()
        assert self.process.stdin is not None
        self.process.stdin.close()
        return code, out.splitlines(), err


def send(port: int, payload: bytes, token: str = TOKEN) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(token.encode() + b"\n" + payload)


def test_two_hops_over_tcp_write_verify_and_forward(tmp_path: Path) -> None:
    big = os.urandom(3 << 20)
    big_record, big_sha = record("big-1.0-py3-none-any.whl", big)
    small_record, small_sha = record("small-1.0-py3-none-any.whl", b"small wheel")
    first, second = tmp_path / "a", tmp_path / "b"
    relay_b = Relay(second, [big_sha, small_sha])
    relay_a = Relay(first, [big_sha])
    relay_b.wire(TOKEN)                                     # the last host
    relay_a.wire(f"{TOKEN} 127.0.0.1 {relay_b.port}")
    send(relay_a.port, big_record + small_record + b"E\n")
    code_a, out_a, err_a = relay_a.finish()
    code_b, out_b, err_b = relay_b.finish()
    assert code_a == 0 and code_b == 0, (err_a, err_b)
    for out in (out_a, out_b):
        assert out[0] == "ready" and out[-1] == "end"
        assert f"ok {big_sha}" in out
    assert f"ok {small_sha}" in out_b and f"ok {small_sha}" not in out_a
    assert (first / "wheels" / big_sha / "big-1.0-py3-none-any.whl").read_bytes() == big
    assert (second / "wheels" / big_sha / "big-1.0-py3-none-any.whl").read_bytes() == big
    assert (second / "wheels" / small_sha / "small-1.0-py3-none-any.whl").read_bytes() == b"small wheel"
    assert not list(tmp_path.rglob("*.part"))


def test_a_connection_without_the_token_is_ignored(tmp_path: Path) -> None:
    data_record, sha = record("one-1.0-py3-none-any.whl", b"the real bytes")
    relay = Relay(tmp_path, [sha])
    relay.wire(TOKEN)
    forged, _ = record("one-1.0-py3-none-any.whl", b"forged bytes")
    send(relay.port, forged + b"E\n", token="cd34" * 8)    # closed unread: not this deploy's stream
    send(relay.port, data_record + b"E\n")
    code, out, err = relay.finish()
    assert code == 0, err
    assert out.count(f"ok {sha}") == 1 and not any(line.startswith("bad") for line in out)
    assert (tmp_path / "wheels" / sha / "one-1.0-py3-none-any.whl").read_bytes() == b"the real bytes"


def test_a_stream_closed_mid_file_leaves_nothing(tmp_path: Path) -> None:
    full, sha = record("cut-1.0-py3-none-any.whl", os.urandom(1 << 20))
    relay = Relay(tmp_path, [sha])
    relay.wire(TOKEN)
    send(relay.port, full[: len(full) // 2])
    code, out, err = relay.finish()
    assert code == 4 and "ended before its end record" in err
    assert not list(tmp_path.rglob("*.whl")) and not list(tmp_path.rglob("*.part"))


def test_an_unreachable_next_host_does_not_stop_this_one(tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()                                           # nothing listens there now
    data_record, sha = record("one-1.0-py3-none-any.whl", b"bytes")
    relay = Relay(tmp_path, [sha])
    relay.wire(f"{TOKEN} 127.0.0.1 {port}")
    send(relay.port, data_record + b"E\n")
    code, out, err = relay.finish()
    assert code == 0, err
    assert any(line.startswith(f"next-failed cannot connect to 127.0.0.1 port {port}") for line in out), out
    assert f"ok {sha}" in out and out[-1] == "end"


def test_the_controller_hanging_up_ends_the_relay(tmp_path: Path) -> None:
    full, sha = record("wait-1.0-py3-none-any.whl", os.urandom(1 << 20))
    relay = Relay(tmp_path, [sha], stall_s=60)
    relay.wire(TOKEN)
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        sock.sendall(TOKEN.encode() + b"\n" + full[: len(full) // 2])
        time.sleep(0.5)
        began = time.monotonic()
        assert relay.process.stdin is not None
        relay.process.stdin.close()                          # the controller's ssh went away
        code = relay.process.wait(timeout=30)
    assert code == 143 and time.monotonic() - began < 10     # not its 60 s stall time
    assert not list(tmp_path.rglob("*.part"))
