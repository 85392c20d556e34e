"""Unpack source archives without letting a member escape the destination.

Rejected (UnsafeArchiveError, nothing trusted): absolute member names, ``..`` parts,
symlinks or hard links pointing outside, members written through a symlink that leads
outside, device files and FIFOs. Checks use the real, already-extracted tree, so a
chain of individually harmless-looking symlinks cannot be combined into an escape.
"""
from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import List

from .errors import UnsafeArchiveError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".zip")


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, destination: Path) -> Path:
    """Extract ``archive`` into ``destination``; return the source root (its single
    top-level directory if it has exactly one, else ``destination``)."""
    destination.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    if name.endswith(".zip"):
        _unzip(archive, destination)
    elif name.endswith(".tar.zst"):
        _untar_zstd(archive, destination)
    else:
        try:
            with tarfile.open(archive, "r:*") as tar:
                _untar(tar, archive, destination)
        except tarfile.TarError as error:
            raise UnsafeArchiveError(f"{archive.name}: not a readable archive: {error}") from None
    return source_root(destination)


def source_root(destination: Path) -> Path:
    children = [c for c in destination.iterdir()]
    if len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
        return children[0]
    return destination


def _member_path(archive: Path, name: str, destination: Path) -> Path:
    """Lexical checks on a member name: relative, no ``..``."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member '{name}' has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive.name}: member '{name}' contains '..'")
    return destination.joinpath(*[p for p in pure.parts if p not in ("", ".")])


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_parent(archive: Path, name: str, target: Path, root: str) -> None:
    """The directory a member lands in, symlinks resolved, must be inside the root."""
    if not _inside(os.path.realpath(target.parent), root):
        raise UnsafeArchiveError(f"{archive.name}: member '{name}' would be written through a symlink outside")


def _untar(tar: tarfile.TarFile, archive: Path, destination: Path) -> None:
    root = os.path.realpath(destination)
    for member in tar:
        target = _member_path(archive, member.name, destination)
        if target == destination:
            continue
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise UnsafeArchiveError(f"{archive.name}: member '{member.name}' is a device file or FIFO")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchiveError(f"{archive.name}: member '{member.name}' has an unsupported type")
        _check_parent(archive, member.name, target, root)
        if member.issym():
            if os.path.isabs(member.linkname):
                raise UnsafeArchiveError(f"{archive.name}: symlink '{member.name}' -> '{member.linkname}' "
                                         "points outside (absolute)")
            pointed = os.path.realpath(os.path.join(os.path.realpath(target.parent), member.linkname))
            if not _inside(pointed, root):
                raise UnsafeArchiveError(f"{archive.name}: symlink '{member.name}' -> '{member.linkname}' "
                                         "points outside the archive")
        if member.islnk():
            linked = _member_path(archive, member.linkname, destination)
            if not _inside(os.path.realpath(linked), root):
                raise UnsafeArchiveError(f"{archive.name}: hard link '{member.name}' -> '{member.linkname}' "
                                         "points outside the archive")
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()   # a later member replaces an earlier one, never writes through it
        # Ownership is not restored (we may be root); setuid/setgid bits are dropped.
        member.mode &= 0o777
        _extract(tar, member, destination)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    if hasattr(tarfile, "tar_filter"):  # Python >= 3.12 and patched 3.8+: our checks ran already
        tar.extract(member, str(destination), set_attrs=True, numeric_owner=False,
                    filter="fully_trusted")  # type: ignore[call-arg]
    else:
        tar.extract(member, str(destination), set_attrs=True, numeric_owner=False)
    if os.geteuid() == 0:
        os.lchown(os.path.join(str(destination), member.name), 0, 0)


def _untar_zstd(archive: Path, destination: Path) -> None:
    import zstandard

    with open(archive, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            _untar(tar, archive, destination)


def _unzip(archive: Path, destination: Path) -> None:
    root = os.path.realpath(destination)
    try:
        with zipfile.ZipFile(archive) as zipped:
            infos: List[zipfile.ZipInfo] = zipped.infolist()
            for info in infos:
                target = _member_path(archive, info.filename, destination)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeArchiveError(f"{archive.name}: member '{info.filename}' is a symlink "
                                             "(not supported in zip sources)")
                if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise UnsafeArchiveError(f"{archive.name}: member '{info.filename}' is a device file or FIFO")
                _check_parent(archive, info.filename, target, root)
                zipped.extract(info, str(destination))
                if mode & 0o111 and not info.is_dir():
                    os.chmod(target, 0o755)
    except zipfile.BadZipFile as error:
        raise UnsafeArchiveError(f"{archive.name}: not a readable zip: {error}") from None
