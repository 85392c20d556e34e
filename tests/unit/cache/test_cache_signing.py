from __future__ import annotations

from pathlib import Path

import pytest

from build.cache.signing import PublicKey, SecretKey, TrustedKeys
from build.errors import ArtifactRejectedError, CacheError


def test_keygen_save_load_and_verify(tmp_path: Path) -> None:
    key = SecretKey.generate("ci-1")
    key.save(tmp_path / "ci-1.secret", tmp_path / "ci-1.public")
    assert (tmp_path / "ci-1.secret").stat().st_mode & 0o777 == 0o600
    loaded = SecretKey.load(tmp_path / "ci-1.secret")
    public = PublicKey.parse((tmp_path / "ci-1.public").read_text())
    trusted = TrustedKeys([public])
    assert trusted.check([loaded.sign(b"message")], b"message", "x") == "ci-1"
    with pytest.raises(CacheError, match="already exists"):
        key.save(tmp_path / "ci-1.secret", tmp_path / "other.public")


def test_wrong_signature_unknown_key_and_unsigned_are_rejected() -> None:
    good = SecretKey.generate("ci-1")
    impostor = SecretKey("ci-1", SecretKey.generate("x").key)  # same name, other key
    stranger = SecretKey.generate("someone")
    trusted = TrustedKeys([good.public()])
    with pytest.raises(ArtifactRejectedError, match="does not match"):
        trusted.check([impostor.sign(b"m")], b"m", "x")
    with pytest.raises(ArtifactRejectedError, match="does not match"):
        trusted.check([good.sign(b"m")], b"m2", "x")
    with pytest.raises(ArtifactRejectedError, match="unknown key"):
        trusted.check([stranger.sign(b"m")], b"m", "x")
    with pytest.raises(ArtifactRejectedError, match="unsigned"):
        trusted.check([], b"m", "x")


@pytest.mark.parametrize("text, problem", [
    ("nocolon", "name:base64"),
    ("k:!!!", "not base64"),
    ("k:AAAA", "32-byte"),
])
def test_bad_key_spellings_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(CacheError, match=problem):
        PublicKey.parse(text)


def test_missing_secret_key_file_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(CacheError) as error:
        SecretKey.load(tmp_path / "nope.secret")
    assert "cache:keygen" in str(error.value)
