from __future__ import annotations

from pathlib import Path

import pytest

from build.cache.config import CacheConfig, load_cache_config, write_cache_config
from build.cache.backends import open_remote
from build.cache.filesystem import FileRemote
from build.cache.http import HttpRemote
from build.cache.remote import redact
from build.cache.signing import SecretKey
from build.errors import CacheError, ConfigError


def test_missing_file_means_no_caches(piforge_home: Path) -> None:
    config = load_cache_config()
    assert config.urls == () and config.push_url is None and config.bazel_cache_url() is None
    assert str(piforge_home / "piforge.toml") in config.source


def test_written_config_reads_back_and_trusts_its_own_signing_key(piforge_home: Path) -> None:
    key = SecretKey.generate("me")
    key.save(piforge_home / "me.secret", piforge_home / "me.public")
    other = SecretKey.generate("ci").public().spelling()
    write_cache_config(CacheConfig(urls=("http://127.0.0.1:9/c", "file:///srv/c"), push_url="http://127.0.0.1:9/c",
                                   trusted_keys=(other,), signing_key=piforge_home / "me.secret"))
    config = load_cache_config()
    assert config.urls == ("http://127.0.0.1:9/c", "file:///srv/c")
    assert sorted(config.trusted().by_name) == ["ci", "me"]
    assert config.bazel_cache_url() == "http://127.0.0.1:9/c/bazel"


def test_environment_overrides_single_fields(piforge_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cache_config(CacheConfig(urls=("http://a/",)))
    monkeypatch.setenv("PIFORGE_CACHE_URLS", "http://b/ file:///c")
    monkeypatch.setenv("PIFORGE_CACHE_PUSH_URL", "http://b/")
    monkeypatch.setenv("PIFORGE_CACHE_SIGNING_KEY", "~/k.secret")
    config = load_cache_config()
    assert config.urls == ("http://b/", "file:///c") and config.push_url == "http://b/"
    assert config.signing_key == Path("~/k.secret").expanduser()


@pytest.mark.parametrize("text, where", [
    ('[cache]\nurls = "http://x"\n', ":2: cache.urls: expected a list"),
    ('[cache]\nurl = ["http://x"]\n', ":2: cache.url: unknown field"),
    ('[cache]\npush_url = 3\n', ":2: cache.push_url: expected a non-empty string"),
    ('cache = 1\n', ":1: cache: expected a table"),
    ('[cache\n', "invalid TOML"),
])
def test_bad_config_names_file_line_and_field(piforge_home: Path, text: str, where: str) -> None:
    (piforge_home / "piforge.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_cache_config()
    assert str(piforge_home / "piforge.toml") in str(error.value) and where in str(error.value)


def test_bad_trusted_key_names_its_position(piforge_home: Path) -> None:
    write_cache_config(CacheConfig(trusted_keys=("ok:AAAA",)))
    with pytest.raises(CacheError, match=r"trusted_keys\[0\].*32-byte"):
        load_cache_config().trusted()


def test_credentials_never_in_display_and_schemes_checked() -> None:
    assert redact("https://user:pw@cache.example:8443/p?q") == "https://cache.example:8443/p?q"
    remote = open_remote("http://user:pw@127.0.0.1:9/c")
    assert isinstance(remote, HttpRemote) and "pw" not in remote.display and remote.session.auth == ("user", "pw")
    assert isinstance(open_remote("file:///srv/cache"), FileRemote)
    with pytest.raises(CacheError, match="absolute path"):
        open_remote("file://relative/dir")
    with pytest.raises(CacheError, match="unsupported scheme 'ftp'") as error:
        open_remote("ftp://user:secret@host/x")
    assert "secret" not in str(error.value)


def test_unreachable_cache_is_a_cache_error_without_credentials() -> None:
    from build.cache.davserver import free_port
    remote = HttpRemote(f"http://user:hunter2@127.0.0.1:{free_port()}/c")
    with pytest.raises(CacheError, match="cannot reach") as error:
        remote.head("x.json")
    assert "hunter2" not in str(error.value)


def test_bazel_remote_cache_from_environment_else_config(piforge_home: Path) -> None:
    from build.cache.config import bazel_remote_cache
    assert bazel_remote_cache({}) is None
    write_cache_config(CacheConfig(urls=("file:///srv/c", "http://127.0.0.1:9/c/"),))
    assert bazel_remote_cache({}) == "http://127.0.0.1:9/c/bazel"
    write_cache_config(CacheConfig(push_url="http://127.0.0.1:9/p", bazel_remote_cache="http://127.0.0.1:9/b"))
    assert bazel_remote_cache({}) == "http://127.0.0.1:9/b"
    assert bazel_remote_cache({"PIFORGE_BAZEL_REMOTE_CACHE": "http://x/y"}) == "http://x/y"
