"""Fan-out planning (who sends to whom) and the controller's chunk cache."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List

from build.cluster.config import HostSpec
from build.cluster.fanout import ChunkCache, FanOut, Receiver
from build.cluster.hosts.ssh import SshHost
from build.cluster.wheelhouse import WheelFile


def wheel(tmp_path: Path, name: str, size: int) -> WheelFile:
    path = tmp_path / name
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(data)
    return WheelFile(name=name, sha256=hashlib.sha256(data).hexdigest(), size=size, path=path)


def receiver(name: str, needs: List[WheelFile], can_relay: bool = True) -> Receiver:
    spec = HostSpec(name=name, address=f"10.0.0.{len(name)}", tf_port=1, transport="ssh", user="u", key=None,
                    ssh_port=22, known_hosts="/dev/null", connect_timeout=3.0, python=None, home=None)
    return Receiver(host=SshHost(spec, control_dir="/tmp/unused"), home="/h", needs=needs, can_relay=can_relay)


def test_chain_in_cluster_order(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 1000)
    a, b, c = receiver("a", [big]), receiver("b", [big]), receiver("c", [big])
    plan = FanOut([a, b, c], ChunkCache(tmp_path / "c"), report=lambda line: None)
    assert plan.parent_of(a, big) is None          # the controller feeds the head
    assert plan.parent_of(b, big) is a
    assert plan.parent_of(c, big) is b


def test_hosts_that_cannot_relay_or_failed_are_skipped(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 1000)
    a, b, c, d = (receiver("a", [big]), receiver("bb", [big], can_relay=False), receiver("ccc", [big]),
                  receiver("dddd", [big]))
    plan = FanOut([a, b, c, d], ChunkCache(tmp_path / "c"), report=lambda line: None)
    assert plan.parent_of(c, big) is a             # b has no scp: c hangs off a
    c.error = "down"
    assert plan.parent_of(d, big) is a             # c failed: d hangs off a too
    plan.broken.add(("a", "dddd"))
    assert plan.parent_of(d, big) is None          # a -> d broke once: from the controller


def test_only_hosts_needing_a_file_form_its_chain(tmp_path: Path) -> None:
    one, two = wheel(tmp_path, "one.whl", 10), wheel(tmp_path, "two.whl", 11)
    a, b, c = receiver("a", [one]), receiver("bb", [two]), receiver("ccc", [one, two])
    plan = FanOut([a, b, c], ChunkCache(tmp_path / "c"), report=lambda line: None)
    assert plan.parent_of(c, one) is a and plan.parent_of(c, two) is b


def test_no_relay_means_star(tmp_path: Path) -> None:
    big = wheel(tmp_path, "big.whl", 10)
    a, b = receiver("a", [big]), receiver("bb", [big])
    assert FanOut([a, b], ChunkCache(tmp_path / "c"), report=lambda line: None, relay=False).parent_of(b, big) is None


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
