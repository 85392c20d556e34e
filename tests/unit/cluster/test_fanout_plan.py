"""Fan-out planning (who sends to whom) and the controller's chunk cache."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List

from build.cluster.config import HostSpec
from build.cluster.fanout import ChunkCache, FanOut, Receiver, progress_line
from build.cluster.hosts.ssh import SshHost
from build.cluster.wheelhouse import WheelFile
from build.errors import HostError


def wheel(tmp_path: Path, name: str, size: int) -> WheelFile:
    path = tmp_path / name
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(data)
    return WheelFile(name=name, sha256=hashlib.sha256(data).hexdigest(), size=size, path=path)


def receiver(name: str, needs: List[WheelFile], can_relay: bool = True) -> Receiver:
    spec = HostSpec(name=name, address=f"10.0.0.{len(name)}", tf_port=1, transport="ssh", user="u", key=None,
                    ssh_port=22, known_hosts="/dev/null", connect_timeout=3.0, python=None, home=None)
    return Receiver(host=SshHost(spec, control_dir="/tmp/unused"), home="/h", needs=needs, can_relay=can_relay)


def plan_of(tmp_path: Path, receivers: List[Receiver], relay: bool = True) -> FanOut:
    return FanOut(receivers, ChunkCache(tmp_path / "c", chunk_bytes=100), report=lambda line: None, relay=relay)


def keys(chunks) -> List[int]:  # type: ignore[no-untyped-def]
    return [c.index for c in chunks]


def test_controller_sends_only_what_no_host_holds(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 1000)          # 10 chunks of 100 bytes
    a, b, c = receiver("a", [big]), receiver("bb", [big]), receiver("ccc", [big])
    plan = plan_of(tmp_path, [a, b, c])
    chunks = plan.cache.chunks(big)
    sender, batch = plan._acquire(a, chunks)
    assert sender is None and keys(batch) == [0]    # nobody has anything: the controller, one chunk
    assert plan.busy[""] is True
    a.has_chunks.add((big.sha256, 0))
    options = plan._options(b, chunks)
    assert [(s.host.name if s else None, keys(bt)) for s, bt in options] == [("a", [0])]   # controller busy
    plan._release(None)
    options = plan._options(b, chunks)
    assert [(s.host.name if s else None, keys(bt)) for s, bt in options] == [("a", [0]), (None, [1])]


def test_rarest_chunk_first_and_batches_from_hosts(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 1000)
    a, b, c = receiver("a", [big]), receiver("bb", [big]), receiver("ccc", [big])
    plan = plan_of(tmp_path, [a, b, c])
    chunks = plan.cache.chunks(big)
    a.has_chunks.update((big.sha256, i) for i in range(6))
    b.has_chunks.update((big.sha256, i) for i in range(3))
    plan.sends["a"] = 3
    sender, batch = plan._acquire(c, chunks)
    assert sender is b and keys(batch) == [0, 1, 2]         # the least used idle host first
    sender2, batch2 = plan._acquire(c, [x for x in chunks if x.index >= 3])
    assert sender2 is a and keys(batch2) == [3, 4, 5]       # b is busy; a holds the rarest ones


def test_hosts_that_cannot_relay_failed_or_broke_are_skipped(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 100)
    a, b, c, d = (receiver("a", [big]), receiver("bb", [big], can_relay=False), receiver("ccc", [big]),
                  receiver("dddd", [big]))
    key = (big.sha256, 0)
    for host in (a, b, c):
        host.has_chunks.add(key)
    plan = plan_of(tmp_path, [a, b, c, d])
    chunks = plan.cache.chunks(big)
    senders = lambda: [s.host.name if s else None for s, _ in plan._options(d, chunks)]  # noqa: E731
    assert senders() == ["a", "ccc"]                # b has no scp; the controller: a host has it
    c.error = "down"
    assert senders() == ["a"]
    plan._relay_failed(a, d, HostError("a: scp: connection refused"))
    assert senders() == [None] and a.can_relay      # that pair only: now the controller sends
    plan._relay_failed(a, b, HostError("a: scp: connection refused"))
    assert not a.can_relay                          # ... a failing towards two hosts stops relaying
    assert "relay a->dddd failed" in d.notes[0]


def test_without_relays_everyone_copies_from_the_controller_at_once(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 100)
    a, b = receiver("a", [big]), receiver("bb", [big])
    a.has_chunks.add((big.sha256, 0))
    plan = plan_of(tmp_path, [a, b], relay=False)
    chunks = plan.cache.chunks(big)
    assert plan._acquire(a, chunks)[0] is None and plan._acquire(b, chunks)[0] is None


def test_chunks_cover_the_file_exactly_and_are_reused(tmp_path: Path) -> None:
    item = wheel(tmp_path, "w.whl", 2500)
    cache = ChunkCache(tmp_path / "cache", chunk_bytes=1000)
    chunks = cache.chunks(item)
    assert [c.size for c in chunks] == [1000, 1000, 500]
    assert b"".join(c.local.read_bytes() for c in chunks) == item.path.read_bytes()
    assert all(hashlib.sha256(c.local.read_bytes()).hexdigest() == c.sha256 for c in chunks)
    item.path.write_bytes(b"changed")              # cut once per sha256: not re-read
    assert [c.sha256 for c in cache.chunks(item)] == [c.sha256 for c in chunks]


def test_exact_multiple_and_empty_file(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache", chunk_bytes=1000)
    assert [c.size for c in cache.chunks(wheel(tmp_path, "even.whl", 2000))] == [1000, 1000]
    assert [c.size for c in cache.chunks(wheel(tmp_path, "empty.whl", 0))] == [0]


def test_a_store_file_that_changed_is_not_cut(tmp_path: Path) -> None:
    import pytest
    from build.errors import StoreError
    item = wheel(tmp_path, "w.whl", 100)
    item.path.write_bytes(b"tampered")
    with pytest.raises(StoreError, match="does not match its manifest sha256"):
        ChunkCache(tmp_path / "cache", chunk_bytes=1000).chunks(item)
    assert not list((tmp_path / "cache").glob("*"))


def test_progress_names_each_host_up_to_eight_then_summarises(tmp_path: Path) -> None:
    few = [receiver(f"h{i}", []) for i in range(3)]
    for index, r in enumerate(few):
        r.bytes_total, r.bytes_done = 100_000_000, index * 50_000_000
    assert progress_line(few, 12.4) == \
        "deploy: copying: h0 0/100 MB, h1 50/100 MB, h2 100/100 MB, 12 MB/s in all"
    many = [receiver(f"pi{i:02d}", []) for i in range(35)]
    for index, r in enumerate(many):
        r.bytes_total, r.bytes_done = 100_000_000, 100_000_000 if index >= 5 else index * 10_000_000
    many[7].error = "pi07: ssh failed"
    line = progress_line(many)
    assert line == ("deploy: copying: 3,100/3,500 MB (89%), 29/35 hosts complete; "
                    "furthest behind: pi00 0/100 MB, pi01 10/100 MB, pi02 20/100 MB; FAILED: pi07")
