"""An artifact's metadata: what a store path is, what it contains, and who vouches for it.

The signature covers the canonical JSON of every field but ``signatures`` itself, so
one flipped byte anywhere (a file hash, a size, a reference) breaks it. The file list
is what the puller checks each unpacked byte against.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping

from ..errors import ArtifactRejectedError
from ..hashing import canonical_json
from .pack import PackResult
from .signing import SecretKey, TrustedKeys

if TYPE_CHECKING:
    from ..derivation import Derivation

FORMAT = "piforge-cache/1"
COMPRESSION = "zstd"
LOG_MEMBER = ".piforge/build.log"  # the only member of the store's .piforge/ that travels


def metadata_key(drv_hash: str) -> str:
    """Remote name of the metadata of a derivation's output."""
    return f"{drv_hash}.json"


def artifact_key(compressed_sha256: str) -> str:
    """Remote name of a packed store path: addressed by its own bytes (as Nix's nar/),
    so two machines pushing the same derivation at once can never pair one's metadata
    with the other's artifact."""
    return f"artifacts/{compressed_sha256}.tar.zst"


@dataclass
class ArtifactMetadata:
    hash: str
    store_name: str
    name: str
    version: str
    artifact: Dict[str, Any]
    files: Dict[str, Dict[str, Any]]
    references: List[str]
    log: Dict[str, Any] = field(default_factory=dict)
    derivation: Any = None
    signatures: List[Dict[str, str]] = field(default_factory=list)

    @classmethod
    def describe(cls, drv: "Derivation", packed: PackResult, files: Mapping[str, Dict[str, Any]],
                 log: Dict[str, Any]) -> "ArtifactMetadata":
        return cls(
            hash=drv.hash, store_name=drv.store_name, name=drv.name, version=drv.version,
            artifact={"file": artifact_key(packed.sha256), "compression": COMPRESSION, "sha256": packed.sha256,
                      "compressed_size": packed.compressed_size, "uncompressed_size": packed.uncompressed_size},
            files=dict(files), references=sorted(packed.references), log=log, derivation=drv.to_json())

    def unsigned(self) -> Dict[str, Any]:
        return {"format": FORMAT, "hash": self.hash, "store_name": self.store_name, "name": self.name,
                "version": self.version, "artifact": self.artifact, "files": self.files,
                "references": self.references, "log": self.log, "derivation": self.derivation}

    def signed_bytes(self) -> bytes:
        return canonical_json(self.unsigned()).encode("utf-8")

    def sign(self, key: SecretKey) -> None:
        self.signatures = [s for s in self.signatures if s.get("key") != key.name] + [key.sign(self.signed_bytes())]

    def to_bytes(self) -> bytes:
        document = dict(self.unsigned(), signatures=self.signatures)
        return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode("utf-8")

    def expected_files(self) -> Dict[str, Dict[str, Any]]:
        """Every member the artifact must hold: the outputs plus the build log."""
        return dict(self.files, **{LOG_MEMBER: self.log})

    def manifest_files(self) -> Dict[str, Dict[str, Any]]:
        """The file list as the store's manifest spells it (device numbers dropped)."""
        return {rel: {k: v for k, v in entry.items() if k != "rdev"} for rel, entry in self.files.items()}

    @classmethod
    def parse_verified(cls, data: bytes, expected_hash: str, trusted: TrustedKeys, what: str) -> "ArtifactMetadata":
        """Parse downloaded metadata; reject it unless a trusted key signed exactly these bytes' content."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ArtifactRejectedError(f"{what}: metadata is not valid JSON ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ArtifactRejectedError(f"{what}: metadata is not in the {FORMAT} format")
        try:
            meta = cls(hash=document["hash"], store_name=document["store_name"], name=document["name"],
                       version=document["version"], artifact=document["artifact"], files=document["files"],
                       references=document["references"], log=document["log"], derivation=document.get("derivation"),
                       signatures=document.get("signatures") or [])
        except KeyError as missing:
            raise ArtifactRejectedError(f"{what}: metadata lacks field {missing}") from None
        # Signature first: nothing below is trusted until it holds.
        trusted.check(meta.signatures, meta.signed_bytes(), what)
        if meta.hash != expected_hash:
            raise ArtifactRejectedError(f"{what}: metadata describes derivation {meta.hash[:32]}, not {expected_hash[:32]}")
        meta._check_shape(what)
        return meta

    def _check_shape(self, what: str) -> None:
        art = self.artifact
        ok = (isinstance(art, dict) and art.get("compression") == COMPRESSION
              and isinstance(art.get("sha256"), str) and art.get("file") == artifact_key(art["sha256"])
              and isinstance(art.get("compressed_size"), int) and isinstance(art.get("uncompressed_size"), int)
              and isinstance(self.files, dict) and isinstance(self.references, list)
              and all(isinstance(e, dict) for e in self.files.values())
              and isinstance(self.log, dict) and self.log.get("type") == "file")
        if not ok:
            raise ArtifactRejectedError(f"{what}: metadata fields have unexpected types")

