"""Substitute-only (cache:pull, build:X substitute_only=1): a trusted artifact or a clear
failure naming every cache tried and why; the store is left as it was, nothing is built.
The doit path (build:X and wheel with substitute_only=1) runs in
tests/integration/cache/test_cache_s3.py against a real S3 server."""
from __future__ import annotations


import pytest

from build.cache.config import CacheConfig
from build.cache.push import push_one
from build.cache.filesystem import FileRemote
from build.cache.signing import SecretKey
from build.cache.substitute import substitute_or_fail
from build.errors import CacheError
from build.store import Store


def test_substitute_only_names_the_caches_tried_and_each_reason(tmp_path, drvs, install_fake, key) -> None:
    built = Store(tmp_path / "built")
    install_fake(built, drvs["dep"])
    push_one(built, drvs["dep"], FileRemote(f"file://{tmp_path}/signed"), key, log=lambda _: None)
    stranger = SecretKey.generate("stranger").public().spelling()
    config = CacheConfig(urls=(f"file://{tmp_path}/empty", f"file://{tmp_path}/signed"), trusted_keys=(stranger,))
    fresh = Store(tmp_path / "fresh")
    with pytest.raises(CacheError) as error:
        substitute_or_fail(drvs["dep"], fresh, config, log=lambda _: None)
    message = str(error.value)
    assert f"caches tried: file://{tmp_path}/empty/, file://{tmp_path}/signed/" in message
    assert "unknown key(s) test-1" in message and "build it instead: ./piforge build:dep" in message
    assert fresh.entries() == []

    with pytest.raises(CacheError, match="none of them has it"):
        substitute_or_fail(drvs["thing"], fresh, config, log=lambda _: None)
    with pytest.raises(CacheError, match=r"substitute only, but no cache urls in the \[cache\] table of /x.toml"):
        substitute_or_fail(drvs["dep"], fresh, CacheConfig(source="/x.toml"), log=lambda _: None)

    trusting = CacheConfig(urls=config.urls, trusted_keys=(key.public().spelling(),))
    path = substitute_or_fail(drvs["dep"], fresh, trusting, log=lambda _: None)
    assert path == fresh.path_of(drvs["dep"]) and fresh.verify(path) == []
