"""The one place the binary cache is configured: the ``[cache]`` table of piforge.toml.

The file is ``$PIFORGE_CONFIG`` if set, else ``<piforge home>/piforge.toml`` (per user
and machine, like ~/.config/nix/nix.conf: keys and credentials do not belong in the
repository). Environment variables override single fields, which is how CI injects
its secret key path: PIFORGE_CACHE_URLS (space-separated), PIFORGE_CACHE_PUSH_URL,
PIFORGE_CACHE_TRUSTED_KEYS (space-separated), PIFORGE_CACHE_SIGNING_KEY.

    [cache]
    urls = ["https://cache.example.org/piforge"]   # pulled from, in order
    push_url = "https://cache.example.org/piforge" # `cache:push` and `ci` upload here
    trusted_keys = ["ci-1:BASE64..."]              # signatures accepted on pull
    signing_key = "~/.config/piforge/ci-1.secret"  # signs what this machine pushes
    bazel_remote_cache = "https://cache.example.org/bazel"  # default: <push_url or first url>/bazel
    endpoint = "http://minio.lan:9000"             # for s3://bucket/prefix urls (MinIO, Ceph); default AWS
    region = "eu-central-1"                        # for s3:// urls (default: AWS_REGION/AWS_DEFAULT_REGION)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ConfigError
from ..paths import piforge_home
from ..tomlfile import load_toml
from .backends import open_remote
from .remote import Remote, redact
from .signing import PublicKey, SecretKey, TrustedKeys

KNOWN_FIELDS = ("urls", "push_url", "trusted_keys", "signing_key", "bazel_remote_cache", "endpoint", "region")


def config_path() -> Path:
    env = os.environ.get("PIFORGE_CONFIG")
    return Path(env).expanduser() if env else piforge_home() / "piforge.toml"


@dataclass(frozen=True)
class CacheConfig:
    urls: Tuple[str, ...] = ()
    push_url: Optional[str] = None
    trusted_keys: Tuple[str, ...] = ()
    signing_key: Optional[Path] = None
    bazel_remote_cache: Optional[str] = None
    endpoint: Optional[str] = None   # S3 endpoint of s3:// urls
    region: Optional[str] = None     # S3 region of s3:// urls
    source: str = "(defaults)"

    def trusted(self) -> TrustedKeys:
        """Configured keys, plus this machine's own signing key (it trusts what it signs)."""
        keys = [PublicKey.parse(k, f"{self.source}: cache.trusted_keys[{i}]") for i, k in enumerate(self.trusted_keys)]
        if self.signing_key is not None and self.signing_key.exists():
            keys.append(SecretKey.load(self.signing_key).public())
        return TrustedKeys(keys)

    def remote(self, url: str) -> Remote:
        """The backend for one of this config's URLs (s3:// ones get endpoint and region)."""
        return open_remote(url, endpoint=self.endpoint, region=self.region)

    def bazel_cache_url(self) -> Optional[str]:
        """Where Bazel's HTTP remote cache lives: explicit, else beside the artifacts."""
        if self.bazel_remote_cache:
            return self.bazel_remote_cache
        web = ("http://", "https://")   # Bazel's remote cache speaks HTTP, not S3 or file://
        base = next((u for u in (self.push_url, *self.urls) if u and u.startswith(web)), None)
        return base.rstrip("/") + "/bazel" if base else None

    def describe(self) -> str:
        pulls = ", ".join(redact(u) for u in self.urls) or "none"
        push = redact(self.push_url) if self.push_url else "none"
        return f"cache config {self.source}: pull from {pulls}; push to {push}"


def _strings(doc: Any, value: Any, field: str) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise doc.error(ConfigError, ("cache", field), "expected a list of non-empty strings")
    return tuple(value)


def load_cache_config(path: Optional[Path] = None) -> CacheConfig:
    """Read the [cache] table (a missing file means: no caches), then apply env overrides."""
    path = path or config_path()
    fields: dict = {"source": str(path)}
    if path.exists():
        doc = load_toml(path, ConfigError)
        table = doc.data.get("cache", {})
        if not isinstance(table, dict):
            raise doc.error(ConfigError, ("cache",), "expected a table: [cache]")
        for key in table:
            if key not in KNOWN_FIELDS:
                raise doc.error(ConfigError, ("cache", key), f"unknown field (known: {', '.join(KNOWN_FIELDS)})")
        for key in ("urls", "trusted_keys"):
            if key in table:
                fields[key] = _strings(doc, table[key], key)
        for key in ("push_url", "signing_key", "bazel_remote_cache", "endpoint", "region"):
            if key in table:
                if not isinstance(table[key], str) or not table[key]:
                    raise doc.error(ConfigError, ("cache", key), "expected a non-empty string")
                fields[key] = table[key]
    env = os.environ
    if env.get("PIFORGE_CACHE_URLS"):
        fields["urls"] = tuple(env["PIFORGE_CACHE_URLS"].split())
    if env.get("PIFORGE_CACHE_TRUSTED_KEYS"):
        fields["trusted_keys"] = tuple(env["PIFORGE_CACHE_TRUSTED_KEYS"].split())
    for key in ("push_url", "signing_key"):
        if env.get(f"PIFORGE_CACHE_{key.upper()}"):
            fields[key] = env[f"PIFORGE_CACHE_{key.upper()}"]
    if fields.get("signing_key"):
        fields["signing_key"] = Path(str(fields["signing_key"])).expanduser()
    return CacheConfig(**fields)


def write_cache_config(config: CacheConfig, path: Optional[Path] = None) -> Path:
    """Write a [cache] table (used by cache:keygen for a first setup and by tests)."""
    path = path or config_path()
    lines: List[str] = ["[cache]"]
    lines.append("urls = [" + ", ".join(_quote(u) for u in config.urls) + "]")
    if config.push_url:
        lines.append(f"push_url = {_quote(config.push_url)}")
    lines.append("trusted_keys = [" + ", ".join(_quote(k) for k in config.trusted_keys) + "]")
    if config.signing_key:
        lines.append(f"signing_key = {_quote(str(config.signing_key))}")
    for key in ("bazel_remote_cache", "endpoint", "region"):
        if getattr(config, key):
            lines.append(f"{key} = {_quote(getattr(config, key))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bazel_remote_cache(environ: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The HTTP remote cache Bazel builds should use: ``$PIFORGE_BAZEL_REMOTE_CACHE``,
    else the [cache] table's (``bazel_remote_cache``, or ``<push_url>/bazel``)."""
    value = (environ if environ is not None else os.environ).get("PIFORGE_BAZEL_REMOTE_CACHE", "").strip()
    return value or load_cache_config().bazel_cache_url()
