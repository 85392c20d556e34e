"""The stream relay program, run for real on this machine: two relays chained by the same
shell feed command the hosts use (``sh`` in place of ssh), fed from here. The ssh-hop
version of the same path runs on simulated hosts in tests/integration/cluster."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

from build.cluster import stream_relay
from build.cluster.stream import feed_command

RELAY = stream_relay.__file__


def record(name: str, data: bytes, claimed_sha: str = "") -> Tuple[bytes, str]:
    sha = claimed_sha or hashlib.sha256(data).hexdigest()
    return f"F {sha} {len(data)} {name}\n".encode() + data, sha


def start(home: Path, fifo: Path, wanted: List[str], next_fifo: Path = None,  # type: ignore[assignment]
          stall_s: float = 20, next_command: str = "") -> "subprocess.Popen[str]":
    """A relay; its next hop feeds ``next_fifo`` (as on the hosts) or runs ``next_command``."""
    argv = [sys.executable, RELAY, str(home), str(fifo), ",".join(wanted), str(stall_s)]
    if next_fifo is not None:
        next_command = feed_command(str(next_fifo))
    if next_command:
        argv += ["sh", "-c", next_command]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def feed(fifo: Path, payload: bytes) -> None:
    subprocess.run(["sh", "-c", feed_command(str(fifo))], input=payload, check=True, timeout=60)


def test_two_hops_write_verify_and_forward(tmp_path: Path) -> None:
    big = os.urandom(3 << 20)          # several reads' worth, so blocks are forwarded as they come
    small = b"small wheel"
    big_record, big_sha = record("big-1.0-py3-none-any.whl", big)
    small_record, small_sha = record("small-1.0-py3-none-any.whl", small)
    first, second = tmp_path / "a", tmp_path / "b"
    # a wants only the big file; b wants both and already has the small one.
    (second / "wheels" / small_sha).mkdir(parents=True)
    (second / "wheels" / small_sha / "small-1.0-py3-none-any.whl").write_bytes(small)
    relay_b = start(second, second / ".relay" / "in-x", [big_sha, small_sha])
    relay_a = start(first, first / ".relay" / "in-x", [big_sha], next_fifo=second / ".relay" / "in-x")
    feed(first / ".relay" / "in-x", big_record + small_record + b"E\n")
    out_a, err_a = relay_a.communicate(timeout=60)
    out_b, err_b = relay_b.communicate(timeout=60)
    assert relay_a.returncode == 0 and relay_b.returncode == 0, (err_a, err_b)
    for out in (out_a, out_b):
        lines = out.splitlines()
        assert lines[0] == "ready" and lines[-1] == "end"
        assert f"ok {big_sha}" in lines
        assert f"ok {small_sha}" not in lines      # a did not want it, b had it
    assert (first / "wheels" / big_sha / "big-1.0-py3-none-any.whl").read_bytes() == big
    assert (second / "wheels" / big_sha / "big-1.0-py3-none-any.whl").read_bytes() == big
    assert not (first / "wheels" / small_sha).exists()
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("in-x"))   # no partial file, no FIFO


def test_corrupted_file_is_dropped_and_the_rest_continues(tmp_path: Path) -> None:
    good_record, good_sha = record("good-1.0-py3-none-any.whl", b"good bytes")
    bad_record, bad_sha = record("bad-1.0-py3-none-any.whl", b"flipped bytes", claimed_sha="ab" * 32)
    relay = start(tmp_path, tmp_path / "in-x", [good_sha, bad_sha])
    feed(tmp_path / "in-x", bad_record + good_record + b"E\n")
    out, err = relay.communicate(timeout=60)
    assert relay.returncode == 0, err
    assert f"bad {bad_sha} {hashlib.sha256(b'flipped bytes').hexdigest()}" in out.splitlines()
    assert f"ok {good_sha}" in out.splitlines()
    assert not list((tmp_path / "wheels" / bad_sha).glob("*"))


def test_a_stream_cut_mid_file_leaves_nothing(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    full, sha = record("cut-1.0-py3-none-any.whl", data)
    relay = start(tmp_path, tmp_path / "in-x", [sha], stall_s=1)
    feed(tmp_path / "in-x", full[: len(full) // 2])        # the previous host died half way
    out, err = relay.communicate(timeout=60)
    assert relay.returncode == 3 and "stalled" in err
    assert "end" not in out.splitlines()
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.whl"))
    assert not (tmp_path / "in-x").exists()


def test_a_dead_next_host_does_not_stop_this_one(tmp_path: Path) -> None:
    data = os.urandom(2 << 20)
    full, sha = record("w-1.0-py3-none-any.whl", data)
    relay = start(tmp_path, tmp_path / "in-x", [sha], next_command="exit 255")
    feed(tmp_path / "in-x", full + b"E\n")
    out, err = relay.communicate(timeout=60)
    assert relay.returncode == 0, err
    lines = out.splitlines()
    assert any(line.startswith("next-failed") for line in lines) and lines[-1] == "end"
    assert (tmp_path / "wheels" / sha / "w-1.0-py3-none-any.whl").read_bytes() == data


def test_a_hostile_name_is_refused(tmp_path: Path) -> None:
    payload, sha = record("../../evil.whl", b"x")
    relay = start(tmp_path, tmp_path / "in-x", [sha])
    feed(tmp_path / "in-x", payload + b"E\n")
    out, err = relay.communicate(timeout=60)
    assert relay.returncode == 4 and "bad record header" in err
    assert not list(tmp_path.parent.glob("evil.whl"))


def test_a_slow_disk_drops_its_file_and_keeps_the_stream_going(tmp_path: Path) -> None:
    """A host whose disk cannot keep up must not slow the hosts after it: here a's disk
    never takes a byte (its partial file is a FIFO nobody reads); a drops the file, b
    still gets it whole from a, at the stream's pace."""
    data = os.urandom(48 << 20)      # more than the writer's backlog (512 reads of <= 64 KB)
    full, sha = record("big-1.0-py3-none-any.whl", data)
    first, second = tmp_path / "a", tmp_path / "b"
    stuck = first / "wheels" / sha / "big-1.0-py3-none-any.whl.part"
    stuck.parent.mkdir(parents=True)
    os.mkfifo(stuck)
    relay_b = start(second, second / "in-x", [sha])
    relay_a = start(first, first / "in-x", [sha], next_fifo=second / "in-x", stall_s=2)
    feed(first / "in-x", full + b"E\n")
    out_b, err_b = relay_b.communicate(timeout=60)
    out_a, err_a = relay_a.communicate(timeout=60)
    assert relay_a.returncode == 0 and relay_b.returncode == 0, (err_a, err_b)
    assert f"behind {sha}" in out_a.splitlines() and f"ok {sha}" not in out_a.splitlines()
    assert f"ok {sha}" in out_b.splitlines()
    assert (second / "wheels" / sha / "big-1.0-py3-none-any.whl").read_bytes() == data
    assert not stuck.exists() and not (first / "wheels" / sha / "big-1.0-py3-none-any.whl").exists()


def test_a_next_host_that_takes_nothing_is_given_up(tmp_path: Path) -> None:
    """The next relay died before reading (its FIFO has no reader): this host must not hang."""
    data = os.urandom(4 << 20)       # far more than the pipe to the next hop holds
    full, sha = record("w-1.0-py3-none-any.whl", data)
    relay = start(tmp_path, tmp_path / "in-x", [sha], stall_s=1, next_command="exec sleep 30")
    feed(tmp_path / "in-x", full + b"E\n")
    out, err = relay.communicate(timeout=60)
    assert relay.returncode == 0, err
    assert "next-failed the next host took no data for 1 s" in out.splitlines()
    assert (tmp_path / "wheels" / sha / "w-1.0-py3-none-any.whl").read_bytes() == data


def waits_of(out: str) -> Tuple[float, float, float]:
    (line,) = [line for line in out.splitlines() if line.startswith("waits ")]
    waited_in, waited_out, seconds = (float(value) for value in line.split()[1:])
    return waited_in, waited_out, seconds


def test_a_slow_next_host_shows_as_time_waiting_to_send(tmp_path: Path) -> None:
    """The relay reports its waits, which the controller reads to name what paced the chain:
    behind a next hop taking ~1.3 MB/s, nearly all of this relay's time is spent sending."""
    data = os.urandom(2 << 20)
    full, sha = record("w-1.0-py3-none-any.whl", data)
    slow_reader = "import sys, time\nwhile sys.stdin.buffer.read(65536): time.sleep(0.05)"
    relay = start(tmp_path, tmp_path / "in-x", [sha], next_command=f"exec {sys.executable} -c '{slow_reader}'")
    feed(tmp_path / "in-x", full + b"E\n")
    out, err = relay.communicate(timeout=60)
    assert relay.returncode == 0, err
    waited_in, waited_out, seconds = waits_of(out)
    assert seconds > 0.5 and waited_out > 0.6 * seconds and waited_in < 0.3 * seconds, out
