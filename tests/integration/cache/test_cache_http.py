"""Push and substitute through a real nginx WebDAV server on loopback."""
from __future__ import annotations

import json
import os
import re
import pytest
import requests

from build.cache.davserver import DavServer
from build.cache.metadata import metadata_key
from build.cache.push import push_closure, push_one
from build.cache.http import HttpRemote
from build.cache.signing import SecretKey, TrustedKeys
from build.cache.substitute import Substituter
from build.errors import CacheError
from build.store import Store
from prerequisites import require_tool

pytestmark = pytest.mark.slow


def quiet(_: str) -> None:
    pass


def entries(store: Store) -> list:
    return sorted(p.name for p in store.root.iterdir() if p.name != ".locks") if store.root.exists() else []


def test_push_pull_roundtrip_and_present_push_is_one_head(tmp_path, dav, drvs, install_fake, key, trusted) -> None:
    built = Store(tmp_path / "built")
    install_fake(built, drvs["dep"])
    original = install_fake(built, drvs["thing"], os.urandom(3 << 20))
    remote = HttpRemote(dav.url + "/piforge")
    report = push_closure(built, drvs["thing"], remote, key, log=quiet)
    assert len(report.uploaded) == 2 and report.bytes_uploaded > 3 << 20
    stored = dav.root / "piforge" / metadata_key(drvs["thing"].hash)
    assert json.loads(stored.read_text())["signatures"][0]["key"] == key.name

    remote.calls.clear()
    again = push_closure(built, drvs["thing"], remote, key, log=quiet)
    assert again.uploaded == [] and remote.calls == [
        ("HEAD", metadata_key(drvs["dep"].hash)), ("HEAD", metadata_key(drvs["thing"].hash))]

    fresh = Store(tmp_path / "fresh")
    substituter = Substituter([HttpRemote(dav.url + "/piforge")], trusted, log=quiet)
    assert substituter.pull(drvs["thing"], fresh)
    pulled = fresh.path_of(drvs["thing"])
    assert (pulled / "lib" / "data.bin").read_bytes() == (original / "lib" / "data.bin").read_bytes()
    assert fresh.manifest(pulled)["files"] == built.manifest(original)["files"]
    assert fresh.verify(pulled) == []


@pytest.mark.parametrize("damage", ["artifact byte", "metadata byte", "truncated", "unknown key", "wrong signature"])
def test_tampered_over_http_is_rejected_and_store_unchanged(tmp_path, dav, drvs, install_fake, key, trusted, damage) -> None:
    built = Store(tmp_path / "built")
    install_fake(built, drvs["dep"], os.urandom(1 << 20))
    remote = HttpRemote(dav.url)
    push_one(built, drvs["dep"], remote, key, log=quiet)
    meta = dav.root / metadata_key(drvs["dep"].hash)
    art = dav.root / json.loads(meta.read_text())["artifact"]["file"]
    if damage == "artifact byte":
        data = bytearray(art.read_bytes())
        data[len(data) // 3] ^= 0x40
        art.write_bytes(bytes(data))
    elif damage == "metadata byte":
        meta.write_text(meta.read_text().replace('"size": 1048576', '"size": 1048577'))
    elif damage == "truncated":
        art.write_bytes(art.read_bytes()[: art.stat().st_size * 2 // 3])
    elif damage == "unknown key":
        trusted = TrustedKeys([SecretKey.generate("other").public()])
    else:
        doc = json.loads(meta.read_text())
        doc["signatures"] = [SecretKey("test-1", SecretKey.generate("x").key).sign(b"something else")]
        meta.write_text(json.dumps(doc))
    fresh = Store(tmp_path / "fresh")
    before = entries(fresh)
    substituter = Substituter([HttpRemote(dav.url)], trusted, log=quiet)
    assert substituter.pull(drvs["dep"], fresh) is False
    assert entries(fresh) == before
    expected = {"artifact byte": "does not match|corrupt", "metadata byte": "does not match the metadata",
                "truncated": "truncated", "unknown key": "unknown key", "wrong signature": "does not match the metadata"}
    assert re.search(expected[damage], substituter.rejections[0]), substituter.rejections[0]


def test_credentials_are_sent_but_never_shown(tmp_path, drvs, install_fake, key, monkeypatch) -> None:
    require_tool("nginx")
    secret = "s3cr3t-pa55"
    with DavServer(tmp_path / "nginx", credentials=("ci", secret)) as server:
        built = Store(tmp_path / "built")
        install_fake(built, drvs["dep"])
        with pytest.raises(CacheError) as refused:
            push_one(built, drvs["dep"], HttpRemote(server.url), key, log=quiet)
        assert "401" in str(refused.value) and "PIFORGE_CACHE_USER" in str(refused.value)
        lines: list = []
        with_url_creds = HttpRemote(f"http://ci:{secret}@127.0.0.1:{server.port}/")
        assert secret not in with_url_creds.display
        push_one(built, drvs["dep"], with_url_creds, key, log=lines.append)
        monkeypatch.setenv("PIFORGE_CACHE_USER", "ci")
        monkeypatch.setenv("PIFORGE_CACHE_PASSWORD", secret)
        substituter = Substituter([HttpRemote(server.url)], TrustedKeys([key.public()]), log=lines.append)
        assert substituter.pull(drvs["dep"], Store(tmp_path / "fresh"))
        published = b"".join(p.read_bytes() for p in server.root.rglob("*") if p.is_file())
        assert secret.encode() not in published
        assert not any(secret in line for line in lines)
        assert requests.get(server.url + "/" + metadata_key(drvs["dep"].hash)).status_code == 401
