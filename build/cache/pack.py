"""Reproducible artifacts: a store path as a zstd-compressed tar, and back.

The same tree always packs to the same bytes (sorted members, fixed mtime, uid/gid 0,
no user names), so two CI runs that build the same derivation upload the same artifact.
Unpacking is the dangerous direction: it only writes members the *signed* metadata
lists, checks every file's sha256 and size while it writes, and never lets more bytes
out of the decompressor than the metadata announced.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Iterable, Iterator, List, Mapping, Optional, Tuple

import zstandard

from ..epoch import EPOCH
from ..errors import ArtifactRejectedError, CacheError

# 1980-01-01, the same SOURCE_DATE_EPOCH the builders use: zip (wheels) cannot go earlier.
FIXED_MTIME = EPOCH
CHUNK = 1 << 20
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class PackResult:
    """What a pack produced: the compressed bytes' identity and the tar's size."""

    sha256: str
    compressed_size: int
    uncompressed_size: int
    references: Tuple[str, ...]


class _HashingWriter(io.RawIOBase):
    """Write-through file wrapper that counts (and, if asked, hashes) what passes."""

    def __init__(self, target: BinaryIO, hashing: bool = True) -> None:
        self.target = target
        self.digest = hashlib.sha256() if hashing else None
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data)
        if self.digest is not None:
            self.digest.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


class _ReferenceScanner:
    """Finds which candidate strings (store path hash parts) occur in the packed bytes.

    Nix discovers runtime references the same way: a store path that mentions another
    path's hash needs that path at run time. Chunks overlap so a hit split across two
    reads is still seen.
    """

    def __init__(self, candidates: Mapping[str, str]) -> None:
        self.needles = {needle.encode("ascii"): name for needle, name in candidates.items()}
        self.overlap = max((len(n) for n in self.needles), default=1) - 1
        self.found: set = set()

    def scan(self, tail: bytes, block: bytes) -> bytes:
        window = tail + block
        for needle, name in self.needles.items():
            if name not in self.found and needle in window:
                self.found.add(name)
        return window[-self.overlap:] if self.overlap else b""


def _members(root: Path) -> Iterator[Path]:
    """Every path under root, sorted by its relative POSIX name (the tar order)."""
    entries: List[Tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(directory) / name
            entries.append((full.relative_to(root).as_posix(), full))
    for _, full in sorted(entries):
        yield full


def _tarinfo(root: Path, path: Path) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    st = os.lstat(path)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        # a debootstrapped rootfs has a few device nodes; they travel, unpacking needs root
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        raise CacheError(f"{path}: cannot pack a socket into a cache artifact")
    return info


def pack_tree(root: Path, out: BinaryIO, reference_candidates: Optional[Mapping[str, str]] = None,
              level: int = ZSTD_LEVEL, exclude: Iterable[str] = ()) -> PackResult:
    """Stream ``root`` as tar+zstd into ``out``; return the compressed sha256/sizes.

    ``reference_candidates`` maps a string to look for (a store path's hash part) to
    the store name it stands for; the names found in any file are returned.
    ``exclude`` lists relative names left out (the store's own manifest/derivation files).
    """
    skipped = set(exclude)
    counted = _HashingWriter(out)
    scanner = _ReferenceScanner(reference_candidates or {})
    # the frame checksum (xxh64 of the tar) catches corruption outside file contents too
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with compressor.stream_writer(counted, closefd=False) as zwriter:  # type: ignore[arg-type]  # a file-like writer
        tar_counter = _HashingWriter(zwriter, hashing=False)  # the uncompressed tar's size
        with tarfile.open(fileobj=tar_counter, mode="w|", format=tarfile.GNU_FORMAT) as tar:  # type: ignore[call-overload]
            for path in _members(root):
                info = _tarinfo(root, path)
                if info.name in skipped:
                    continue
                if info.type == tarfile.REGTYPE:
                    with open(path, "rb") as handle:
                        tar.addfile(info, _ScanningReader(handle, scanner))
                else:
                    if info.type == tarfile.SYMTYPE:
                        scanner.scan(b"", info.linkname.encode("utf-8", "surrogateescape"))
                    tar.addfile(info)
        uncompressed = tar_counter.size
    assert counted.digest is not None
    return PackResult(counted.digest.hexdigest(), counted.size, uncompressed, tuple(sorted(scanner.found)))


class _ScanningReader:
    """File wrapper that feeds what tarfile reads to the reference scanner."""

    def __init__(self, handle: BinaryIO, scanner: _ReferenceScanner) -> None:
        self.handle = handle
        self.scanner = scanner
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        if block and self.scanner.needles:
            self.tail = self.scanner.scan(self.tail, block)
        return block


class _LimitedReader:
    """Refuses to yield more than ``limit`` bytes: a decompression bomb stops here."""

    def __init__(self, source: BinaryIO, limit: int, what: str) -> None:
        self.source = source
        self.remaining = limit
        self.what = what

    def read(self, size: int = -1) -> bytes:
        want = self.remaining + 1 if size is None or size < 0 else min(size, self.remaining + 1)
        block = self.source.read(want)
        self.remaining -= len(block)
        if self.remaining < 0:
            raise ArtifactRejectedError(f"{self.what}: unpacks to more bytes than its metadata says")
        return block


class _CountingReader:
    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        block = self.source.read(size)
        self.size += len(block)
        return block


def _safe_relpath(name: str, what: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name in ("", "."):
        raise ArtifactRejectedError(f"{what}: member {name!r} would escape the store path")
    return path


def unpack_verified(source: BinaryIO, dest: Path, expected: Mapping[str, Mapping[str, Any]],
                    uncompressed_size: int, what: str, compressed_size: Optional[int] = None) -> None:
    """Decompress and extract ``source`` into ``dest``, verifying against ``expected``.

    ``expected`` is a store manifest's file list (relpath -> {type: file, sha256, size,
    mode} | {type: symlink, target} | {type: special, mode, rdev}). Every non-directory
    member must be listed with the same content, and every listed one must appear;
    directories are created as met. ``compressed_size`` (from the metadata) is checked
    too: python-zstandard's stream reader ends quietly on a truncated frame, so a cut
    stream is caught by counting. Raises ArtifactRejectedError on any difference; the
    caller discards ``dest``.
    """
    seen: set = set()
    decompressor = zstandard.ZstdDecompressor()
    counted = _CountingReader(source)
    try:
        with decompressor.stream_reader(counted, read_size=CHUNK, closefd=False) as raw:  # type: ignore[arg-type]
            limited = _LimitedReader(raw, uncompressed_size, what)
            with tarfile.open(fileobj=limited, mode="r|", bufsize=CHUNK) as tar:  # type: ignore[call-overload]
                for member in tar:
                    _extract_member(tar, member, dest, expected, seen, what)
            # tarfile stops at the end-of-archive marker: drain so truncation/trailing junk shows.
            while limited.read(CHUNK):
                pass
        while counted.read(CHUNK):
            pass
    except zstandard.ZstdError as error:
        raise ArtifactRejectedError(f"{what}: corrupt or truncated zstd stream ({error})") from None
    except tarfile.TarError as error:
        raise ArtifactRejectedError(f"{what}: corrupt or truncated tar stream ({error})") from None
    except EOFError as error:
        raise ArtifactRejectedError(f"{what}: truncated ({error})") from None
    if compressed_size is not None and counted.size != compressed_size:
        raise ArtifactRejectedError(f"{what}: truncated or padded: {counted.size} compressed bytes, metadata says {compressed_size}")
    missing = sorted(set(expected) - seen)
    if missing:
        raise ArtifactRejectedError(f"{what}: missing {len(missing)} file(s) its metadata lists, e.g. {missing[0]}")


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path,
                    expected: Mapping[str, Mapping[str, Any]], seen: set, what: str) -> None:
    rel = _safe_relpath(member.name, what)
    name = rel.as_posix()
    target = dest.joinpath(*rel.parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, (member.mode & 0o7777) | 0o700)
        return
    promise = expected.get(name)
    if promise is None:
        raise ArtifactRejectedError(f"{what}: member {name!r} is not in the signed metadata")
    if name in seen:
        raise ArtifactRejectedError(f"{what}: member {name!r} appears twice")
    seen.add(name)
    kind = promise.get("type")
    target.parent.mkdir(parents=True, exist_ok=True)
    if member.issym():
        if kind != "symlink" or promise.get("target") != member.linkname:
            raise ArtifactRejectedError(f"{what}: symlink {name} -> {member.linkname!r} differs from the signed metadata")
        os.symlink(member.linkname, target)
        return
    if member.ischr() or member.isblk() or member.isfifo():
        mode = _special_mode(member)
        if kind != "special" or promise.get("mode") != mode or list(promise.get("rdev") or [0, 0]) != [member.devmajor, member.devminor]:
            raise ArtifactRejectedError(f"{what}: special file {name} differs from the signed metadata")
        os.mknod(target, mode, os.makedev(member.devmajor, member.devminor))
        return
    if not member.isreg() or kind != "file":
        raise ArtifactRejectedError(f"{what}: member {name!r} has another type than the signed metadata says")
    if member.size != promise.get("size"):
        raise ArtifactRejectedError(f"{what}: {name} is {member.size} bytes, the signed metadata says {promise.get('size')}")
    handle = tar.extractfile(member)
    assert handle is not None
    with open(target, "wb") as out:
        digest = _copy_hashing(handle, out)  # type: ignore[arg-type]  # tarfile hands out IO[bytes]
    if digest.hexdigest() != promise.get("sha256"):
        raise ArtifactRejectedError(f"{what}: {name}: sha256 {digest.hexdigest()} does not match the signed metadata ({promise.get('sha256')})")
    os.chmod(target, int(promise.get("mode", 0o644)) & 0o7777)


def _copy_hashing(source: BinaryIO, out: BinaryIO) -> "hashlib._Hash":
    # Inline on purpose: a hashing thread measured slower on a busy 2-core machine
    # (queue and GIL hand-offs cost more than the overlap gains).
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(CHUNK), b""):
        digest.update(block)
        out.write(block)
    return digest


def _special_mode(member: tarfile.TarInfo) -> int:
    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
    return kind | (member.mode & 0o7777)
