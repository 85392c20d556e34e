"""Push and substitute through a file:// cache; the same paths run over real nginx in
tests/integration/cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from build.cache.metadata import metadata_key
from build.cache.push import push_closure, push_one
from build.cache.filesystem import FileRemote
from build.cache.signing import SecretKey
from build.cache.substitute import Substituter
from build.errors import CacheError
from build.store import Store


def snapshot(store: Store) -> list:
    """Entries and leftovers (staging dirs); the lock files dir is not content."""
    return sorted(p.name for p in store.root.iterdir() if p.name != ".locks") if store.root.exists() else []


def test_push_then_substitute_gives_identical_files(tmp_path, drvs, install_fake, key, trusted) -> None:
    built = Store(tmp_path / "a")
    install_fake(built, drvs["dep"], b"dep")
    original = install_fake(built, drvs["thing"], b"x" * 100000)
    remote = FileRemote(f"file://{tmp_path}/cache")
    report = push_closure(built, drvs["thing"], remote, key, log=lambda _: None)
    assert report.uploaded == [drvs["dep"].store_name, drvs["thing"].store_name]
    fresh = Store(tmp_path / "b")
    substituter = Substituter([remote], trusted, log=lambda _: None)
    assert substituter(drvs["thing"], fresh)
    pulled = fresh.path_of(drvs["thing"])
    assert fresh.manifest(pulled)["files"] == built.manifest(original)["files"]
    assert (pulled / ".piforge" / "build.log").read_text() == "built thing\n"
    assert fresh.verify(pulled) == []
    assert not fresh.is_valid(drvs["dep"])  # no reference to it: not pulled


def test_present_artifact_costs_one_head(tmp_path, drvs, install_fake, key) -> None:
    store = Store(tmp_path / "a")
    install_fake(store, drvs["dep"])
    remote = FileRemote(f"file://{tmp_path}/cache")
    assert push_one(store, drvs["dep"], remote, key, log=lambda _: None)
    remote.calls.clear()
    assert not push_one(store, drvs["dep"], remote, key, log=lambda _: None)
    assert remote.calls == [("HEAD", metadata_key(drvs["dep"].hash))]


def test_reference_to_another_store_path_is_recorded_and_pulled_first(tmp_path, drvs, install_fake, key, trusted) -> None:
    built = Store(tmp_path / "a")
    dep_path = install_fake(built, drvs["dep"])
    install_fake(built, drvs["thing"], f"#!/bin/sh\nexec {dep_path}/bin/run\n".encode())
    remote = FileRemote(f"file://{tmp_path}/cache")
    push_closure(built, drvs["thing"], remote, key, log=lambda _: None)
    meta = json.loads((tmp_path / "cache" / metadata_key(drvs["thing"].hash)).read_text())
    assert meta["references"] == [drvs["dep"].store_name]
    fresh = Store(tmp_path / "b")
    assert Substituter([remote], trusted, log=lambda _: None)(drvs["thing"], fresh)
    assert fresh.is_valid(drvs["dep"]) and fresh.is_valid(drvs["thing"])


def pushed(tmp_path, drvs, install_fake, key):
    built = Store(tmp_path / "a")
    install_fake(built, drvs["dep"], bytes(range(256)) * 400)
    remote = FileRemote(f"file://{tmp_path}/cache")
    push_one(built, drvs["dep"], remote, key, log=lambda _: None)
    meta = tmp_path / "cache" / metadata_key(drvs["dep"].hash)
    return remote, tmp_path / "cache" / json.loads(meta.read_text())["artifact"]["file"], meta


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def resign(meta_path: Path, key: SecretKey, change) -> None:
    from build.cache.metadata import ArtifactMetadata
    doc = json.loads(meta_path.read_text())
    change(doc)
    meta = ArtifactMetadata(**{k: doc[k] for k in ("hash", "store_name", "name", "version", "artifact",
                                                      "files", "references", "log", "derivation")})
    meta.sign(key)
    meta_path.write_bytes(meta.to_bytes())


TAMPERINGS = {
    "artifact byte": (lambda art, meta, key: flip(art, art.stat().st_size // 2), "does not match|corrupt"),
    "metadata byte": (lambda art, meta, key: meta.write_text(meta.read_text().replace('"version": "1"', '"version": "0"')), "does not match"),
    "wrong signature": (lambda art, meta, key: meta.write_text(json.dumps(dict(json.loads(meta.read_text()), signatures=[
        {"key": "test-1", "sig": json.loads(meta.read_text())["signatures"][0]["sig"][:-8] + "AAAAAAA="}]))), "does not match"),
    "unknown key": (lambda art, meta, key: resign(meta, SecretKey.generate("stranger"), lambda d: None), "unknown key"),
    "unsigned": (lambda art, meta, key: meta.write_text(json.dumps(dict(json.loads(meta.read_text()), signatures=[]))), "unsigned"),
    "truncated": (lambda art, meta, key: art.write_bytes(art.read_bytes()[: art.stat().st_size - 100]), "truncated"),
    "file hash in signed metadata": (lambda art, meta, key: resign(meta, key, lambda d: d["files"]["lib/data.bin"].update(sha256="0" * 64)), "does not match the signed metadata"),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_artifacts_are_rejected_and_store_unchanged(tmp_path, drvs, install_fake, key, trusted, name) -> None:
    remote, art, meta = pushed(tmp_path, drvs, install_fake, key)
    tamper, message = TAMPERINGS[name]
    tamper(art, meta, key)
    fresh = Store(tmp_path / "b")
    install_fake(fresh, drvs["thing"])  # something already there must stay as is
    before = snapshot(fresh)
    lines = []
    substituter = Substituter([remote], trusted, log=lines.append)
    assert substituter(drvs["dep"], fresh) is False
    assert snapshot(fresh) == before
    assert len(substituter.rejections) == 1
    assert __import__("re").search(message, substituter.rejections[0]), substituter.rejections[0]
    assert any("REJECTED" in line for line in lines)


def test_missing_artifact_or_cache_falls_through_to_next_remote(tmp_path, drvs, install_fake, key, trusted) -> None:
    remote, art, meta = pushed(tmp_path, drvs, install_fake, key)
    empty = FileRemote(f"file://{tmp_path}/empty")
    fresh = Store(tmp_path / "b")
    assert Substituter([empty, remote], trusted, log=lambda _: None)(drvs["dep"], fresh)
    art.unlink()
    other = Store(tmp_path / "c")
    substituter = Substituter([remote], trusted, log=lambda _: None)
    assert not substituter(drvs["dep"], other)
    assert "artifact" in substituter.rejections[0] and snapshot(other) == []


def test_push_refuses_a_corrupted_local_entry(tmp_path, drvs, install_fake, key) -> None:
    store = Store(tmp_path / "a")
    path = install_fake(store, drvs["dep"])
    (path / "lib" / "data.bin").write_bytes(b"changed")
    with pytest.raises(CacheError, match="fails verification"):
        push_one(store, drvs["dep"], FileRemote(f"file://{tmp_path}/cache"), key, log=lambda _: None)
