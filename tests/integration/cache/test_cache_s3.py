"""S3 as the binary cache, against a real S3 server (moto, signatures checked by botocore),
through doit as a user runs it: substitute-only before anything is pushed fails naming the
cache; CI pushes the wrapt-native wheel to s3://; fresh machines get byte-identical files
without a builder; a tampered object is rejected; a wrong secret is a clear error. The
credentials never appear in any output or in the metadata."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from build.cache.config import CacheConfig, write_cache_config
from build.cache.s3 import S3Remote
from build.cache.signing import SecretKey
from build.derivation import derive
from build.recipe import load_recipes
from build.store import Store
from prerequisites import require_root
from tests.cli import run_piforge
from tests.moto_s3 import MotoS3, moto_s3  # noqa: F401

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
RECIPE = "wrapt-native"


class Doit:
    """Runs ``python -m doit`` like ./piforge does; keeps every output to check for leaks."""

    def __init__(self, aws: Dict[str, str]) -> None:
        self.aws = aws
        self.outputs: List[str] = []

    def __call__(self, *args: str, home: Path, config: Path, check: bool = True,
                 **env: str) -> subprocess.CompletedProcess:
        result = run_piforge(*args, home=home, recipes=REPO / "recipes", timeout=900,
                             env={"PIFORGE_CONFIG": str(config), **self.aws, **env})
        self.outputs += [result.stdout, result.stderr]
        assert result.returncode == 0 or not check, f"doit {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, result.stderr
        return result


def files_of(path: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_wrapt_native_through_s3(shared_home: Path, tmp_path: Path, moto_s3: MotoS3,  # noqa: F811
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()   # the native builder runs phases in private namespaces
    aws = {"AWS_ACCESS_KEY_ID": moto_s3.access_key, "AWS_SECRET_ACCESS_KEY": moto_s3.secret_key,
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_DEFAULT_REGION": "us-east-1"}
    doit = Doit(aws)
    key = SecretKey.generate("ci-s3")
    key.save(tmp_path / "ci.secret", tmp_path / "ci.public")
    cache = f"s3://{moto_s3.bucket}/piforge"
    ci = write_cache_config(CacheConfig(push_url=cache, signing_key=tmp_path / "ci.secret",
                                        endpoint=moto_s3.endpoint), tmp_path / "ci.toml")
    user = write_cache_config(CacheConfig(urls=(cache,), trusted_keys=(key.public().spelling(),),
                                          endpoint=moto_s3.endpoint), tmp_path / "user.toml")
    drv = derive(load_recipes(REPO / "recipes"), RECIPE)

    # Substitute-only while the cache is empty: both entry points refuse, naming the cache, and build nothing.
    for args in ([f"build:{RECIPE}"], ["wheel", f"recipe={RECIPE}"]):
        refused = doit(*args, "substitute_only=1", home=tmp_path / "early", config=user, check=False)
        assert refused.returncode != 0, refused.stdout
        assert f"cannot substitute {drv.store_name} (caches tried: {cache}/): none of them has it" in refused.stderr
        assert "building with" not in refused.stderr and not (tmp_path / "early" / "build").exists()
    assert Store(tmp_path / "early" / "store").entries() == []

    # CI: build (shared test home) and push to S3.
    pushed = doit("ci", f"targets={RECIPE}", home=shared_home, config=ci).stdout
    assert f"{RECIPE}: 1 uploaded" in pushed and f"to {cache}/" in pushed
    built = Path(doit(f"path:{RECIPE}", home=shared_home, config=ci).stdout.splitlines()[-1])
    assert "0 uploaded" in doit("cache:push", RECIPE, home=shared_home, config=ci).stdout

    # Fresh machines: the normal build path and the substitute-only wheel both pull, no builder runs.
    for name, args in (("fresh", [f"build:{RECIPE}"]), ("pi", ["wheel", f"recipe={RECIPE}", "substitute_only=1"])):
        result = doit(*args, home=tmp_path / name, config=user)
        pulled = Path(result.stdout.splitlines()[-1])
        assert "building with" not in result.stderr and not (tmp_path / name / "build").exists(), result.stderr
        store = Store(tmp_path / name / "store")
        assert [p.name for p in store.entries()] == [drv.store_name] and store.verify(pulled) == []
        assert files_of(pulled) == files_of(built)

    # The metadata names no credential and no endpoint.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_s3.secret_key)
    remote = S3Remote(cache, endpoint=moto_s3.endpoint)
    meta_bytes = remote.get_bytes(f"{drv.hash}.json")
    assert meta_bytes is not None
    for secret in (moto_s3.access_key, moto_s3.secret_key, moto_s3.endpoint, "127.0.0.1"):
        assert secret.encode() not in meta_bytes

    # Tampering: one flipped byte in the artifact object; substitute-only rejects it, store unchanged.
    artifact_name = json.loads(meta_bytes)["artifact"]["file"]
    artifact = bytearray(remote.get_bytes(artifact_name) or b"")
    artifact[len(artifact) // 2] ^= 0x01
    remote.put_bytes(artifact_name, bytes(artifact), content_type="application/octet-stream")
    rejected = doit(f"build:{RECIPE}", "substitute_only=1", home=tmp_path / "tampered", config=user, check=False)
    assert rejected.returncode != 0 and "cache: REJECTED" in rejected.stderr, rejected.stderr
    assert f"caches tried: {cache}/" in rejected.stderr
    assert Store(tmp_path / "tampered" / "store").entries() == []

    # A wrong secret: a clear error with a hint, no traceback, and the wrong secret is not echoed either.
    wrong = "WrongSecretWrongSecretWrongSecret0000000"
    denied = doit("cache:push", RECIPE, home=shared_home, config=ci, check=False, AWS_SECRET_ACCESS_KEY=wrong)
    assert denied.returncode != 0
    assert f"HEAD {cache}/{drv.hash}.json at {moto_s3.endpoint}: HTTP 403" in denied.stderr, denied.stderr
    assert "refused the credentials from environment" in denied.stderr
    assert wrong not in denied.stdout + denied.stderr

    for output in doit.outputs:
        assert moto_s3.secret_key not in output and moto_s3.access_key not in output
