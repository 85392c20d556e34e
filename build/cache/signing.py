"""ed25519 keys and signatures in Nix's spelling: ``name:base64``.

A secret key file holds ``name:base64(32-byte seed)``, a public key ``name:base64(32
bytes)``. The name travels with each signature so a puller finds the matching trusted
key at once, and a key can be rotated by adding a second name.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, PrivateFormat, NoEncryption

from ..errors import ArtifactRejectedError, CacheError

KEY_BYTES = 32


def _split(text: str, what: str) -> Tuple[str, bytes]:
    name, sep, encoded = text.strip().partition(":")
    if not sep or not name or not encoded:
        raise CacheError(f"{what}: expected 'name:base64', got {text.strip()[:40]!r}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CacheError(f"{what}: the part after ':' is not base64") from None
    if len(raw) != KEY_BYTES:
        raise CacheError(f"{what}: expected a {KEY_BYTES}-byte ed25519 key, got {len(raw)} bytes")
    return name, raw


@dataclass(frozen=True)
class PublicKey:
    name: str
    key: Ed25519PublicKey

    @classmethod
    def parse(cls, text: str, what: str = "public key") -> "PublicKey":
        name, raw = _split(text, what)
        return cls(name, Ed25519PublicKey.from_public_bytes(raw))

    def spelling(self) -> str:
        raw = self.key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.name}:{base64.b64encode(raw).decode('ascii')}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class SecretKey:
    name: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> "SecretKey":
        if not name or ":" in name or any(c.isspace() for c in name):
            raise CacheError(f"key name {name!r}: use a short name without ':' or spaces, e.g. 'ci-1'")
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> "SecretKey":
        try:
            text = Path(path).read_text(encoding="ascii")
        except FileNotFoundError:
            raise CacheError(f"{path}: signing key file not found", hint="make one with `./piforge cache:keygen`") from None
        except (OSError, UnicodeDecodeError) as error:
            raise CacheError(f"{path}: cannot read the signing key: {error}") from None
        name, raw = _split(text, str(path))
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw))

    def spelling(self) -> str:
        raw = self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{self.name}:{base64.b64encode(raw).decode('ascii')}"

    def public(self) -> PublicKey:
        return PublicKey(self.name, self.key.public_key())

    def sign(self, message: bytes) -> Dict[str, str]:
        return {"key": self.name, "sig": base64.b64encode(self.key.sign(message)).decode("ascii")}

    def save(self, secret_path: Path, public_path: Path) -> None:
        """Write both halves; the secret file is created 0600 and never overwritten."""
        secret_path.parent.mkdir(parents=True, exist_ok=True)
        for path in (secret_path, public_path):
            if path.exists():
                raise CacheError(f"{path}: already exists; refusing to overwrite a key")
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(self.spelling() + "\n")
        public_path.write_text(self.public().spelling() + "\n", encoding="ascii")


class TrustedKeys:
    """The public keys a puller accepts signatures from, by name."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self.by_name: Dict[str, PublicKey] = {k.name: k for k in keys}

    @classmethod
    def parse(cls, spellings: Iterable[str], what: str = "trusted_keys") -> "TrustedKeys":
        return cls(PublicKey.parse(s, f"{what}[{i}]") for i, s in enumerate(spellings))

    def check(self, signatures: object, message: bytes, what: str) -> str:
        """Return the name of a trusted key that signed ``message``; else reject."""
        if not isinstance(signatures, list) or not signatures:
            raise ArtifactRejectedError(f"{what}: unsigned (no signatures in its metadata)")
        unknown = []
        for entry in signatures:
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not isinstance(entry.get("sig"), str):
                raise ArtifactRejectedError(f"{what}: malformed signature entry")
            key = self.by_name.get(entry["key"])
            if key is None:
                unknown.append(entry["key"])
                continue
            try:
                raw = base64.b64decode(entry["sig"], validate=True)
            except (binascii.Error, ValueError):
                raise ArtifactRejectedError(f"{what}: signature by {entry['key']!r} is not base64") from None
            if key.verify(raw, message):
                return key.name
            raise ArtifactRejectedError(f"{what}: signature by key {entry['key']!r} does not match the metadata (tampered or wrong key)")
        trusted = ", ".join(sorted(self.by_name)) or "none configured"
        raise ArtifactRejectedError(
            f"{what}: signed only by unknown key(s) {', '.join(unknown)} (trusted: {trusted})",
            hint="add the cache's public key to [cache] trusted_keys if you trust it")
