"""S3 backend, fast parts: the SigV4 key derivation (AWS's published example), the
credential chain, how s3:// URLs map to endpoints, and that secrets stay out of reprs
and messages. The real signing is tested against moto's S3 server in
tests/integration/cache/test_cache_s3.py (it verifies signatures with botocore)."""
from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from build.cache.config import CacheConfig, load_cache_config, write_cache_config
from build.cache.s3 import S3Remote
from build.cache.sigv4 import AwsCredentials, load_aws_credentials, sign_headers, signing_key
from build.errors import CacheError, ConfigError

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NO_AWS = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def test_signing_key_matches_the_aws_documentation_example() -> None:
    key = signing_key(SECRET, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_signed_headers_carry_scope_and_token_but_never_the_secret() -> None:
    credentials = AwsCredentials("AKIDEXAMPLE", SECRET, "TOKEN123")
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    headers = sign_headers("GET", "http://127.0.0.1:9000/bucket/a%20b.json", "e3b0", credentials, "eu-west-1", now=when)
    assert headers["x-amz-date"] == "20260102T030405Z" and headers["x-amz-security-token"] == "TOKEN123"
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=")
    assert SECRET not in repr(credentials) and "TOKEN123" not in repr(credentials)
    assert SECRET not in str(headers)
    other = sign_headers("PUT", "http://127.0.0.1:9000/bucket/a%20b.json", "e3b0", credentials, "eu-west-1", now=when)
    assert other["Authorization"] != headers["Authorization"]   # the method is signed


def test_credentials_from_environment_then_profile_file(tmp_path: Path) -> None:
    assert load_aws_credentials(NO_AWS) is None
    env = dict(NO_AWS, AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="s3cr3t", AWS_SESSION_TOKEN="tok")
    assert load_aws_credentials(env) == AwsCredentials("AKID", "s3cr3t", "tok", "environment")
    file = tmp_path / "credentials"
    file.write_text("[default]\naws_access_key_id = AKDEF\naws_secret_access_key = d3f\n"
                    "[ci]\naws_access_key_id = AKCI\naws_secret_access_key = c1\n")
    found = load_aws_credentials({"AWS_SHARED_CREDENTIALS_FILE": str(file), "AWS_PROFILE": "ci"})
    assert found is not None and (found.access_key, found.secret_key) == ("AKCI", "c1") and "[ci]" in found.source
    file.write_text("[default]\naws_access_key_id = AKDEF\n")
    with pytest.raises(CacheError, match=r"profile \[default\] needs aws_access_key_id and aws_secret_access_key"):
        load_aws_credentials({"AWS_SHARED_CREDENTIALS_FILE": str(file)})


def test_s3_urls_map_to_path_style_endpoints_or_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    minio = S3Remote("s3://cache/pi forge", endpoint="http://127.0.0.1:9000", region="eu-west-1")
    assert minio._url("x.json") == "http://127.0.0.1:9000/cache/pi%20forge/x.json"
    assert minio.display == "s3://cache/pi forge/" and minio.region == "eu-west-1"
    aws = S3Remote("s3://cache")
    assert aws._url("artifacts/a.tar.zst") == "https://cache.s3.us-east-1.amazonaws.com/artifacts/a.tar.zst"
    nix_style = S3Remote("s3://cache/p?endpoint=minio.lan:9000&region=local", endpoint="http://ignored:1")
    assert nix_style._url("k") == "https://minio.lan:9000/cache/p/k" and nix_style.region == "local"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    from_env = S3Remote("s3://cache/p")
    assert from_env._url("k") == "http://127.0.0.1:7000/cache/p/k" and from_env.region == "ap-south-1"
    with pytest.raises(CacheError, match="expected s3://BUCKET/PREFIX"):
        S3Remote("s3://AKID:secret@cache/p")


def test_cache_table_endpoint_and_region_reach_s3_remotes(piforge_home: Path) -> None:
    write_cache_config(CacheConfig(urls=("s3://cache/piforge",), push_url="s3://cache/piforge",
                                   endpoint="http://127.0.0.1:9000", region="local"))
    config = load_cache_config()
    remote = config.remote(config.urls[0])
    assert isinstance(remote, S3Remote) and remote.region == "local"
    assert remote._url("k").startswith("http://127.0.0.1:9000/cache/piforge/")
    assert config.bazel_cache_url() is None   # Bazel speaks HTTP, not S3
    (piforge_home / "piforge.toml").write_text('[cache]\nurls = ["s3://c/p"]\nendpoint = 9000\n')
    with pytest.raises(ConfigError, match=r"piforge.toml:3: cache.endpoint: expected a non-empty string"):
        load_cache_config()


def test_netrc_basic_auth_never_replaces_the_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    remote = S3Remote("s3://cache/p", endpoint="http://127.0.0.1:9000")
    headers = sign_headers("GET", remote._url("k"), "e3b0", remote.credentials, remote.region)  # type: ignore[arg-type]
    prepared = remote.session.prepare_request(requests.Request("GET", remote._url("k"), headers=headers))
    assert prepared.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    plain = requests.Session().prepare_request(requests.Request("GET", remote._url("k"), headers=headers))
    assert plain.headers["Authorization"].startswith("Basic ")   # what the hook prevents
