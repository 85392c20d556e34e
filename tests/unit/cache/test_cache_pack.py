from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from build.cache.pack import pack_tree, unpack_verified
from build.store import file_manifest as list_tree
from build.errors import ArtifactRejectedError


def make_tree(root: Path) -> Path:
    (root / "lib" / "sub").mkdir(parents=True)
    (root / "a.whl").write_bytes(b"wheel bytes " * 1000)
    (root / "lib" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "lib" / "tool", 0o755)
    (root / "lib" / "sub" / "empty").write_bytes(b"")
    os.symlink("../a.whl", root / "lib" / "link")
    return root


def packed(root: Path, **kwargs) -> bytes:
    out = io.BytesIO()
    pack_tree(root, out, **kwargs)
    return out.getvalue()


def test_same_tree_packs_to_same_bytes_whatever_mtimes_and_creation_order(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one")
    second = tmp_path / "two"
    (second / "lib" / "sub").mkdir(parents=True)
    os.symlink("../a.whl", second / "lib" / "link")
    (second / "lib" / "sub" / "empty").write_bytes(b"")
    (second / "lib" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(second / "lib" / "tool", 0o755)
    (second / "a.whl").write_bytes(b"wheel bytes " * 1000)
    os.utime(second / "a.whl", (1, 1))
    assert packed(first) == packed(second)
    (second / "a.whl").write_bytes(b"wheel bytes " * 999)
    assert packed(first) != packed(second)


def test_roundtrip_restores_files_modes_and_symlinks(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    data = packed(root)
    dest = tmp_path / "dest"
    dest.mkdir()
    expected = list_tree(root)
    unpack_verified(io.BytesIO(data), dest, expected, 10 << 20, "test")
    assert list_tree(dest) == expected
    assert os.stat(dest / "lib" / "tool").st_mode & 0o777 == 0o755
    assert os.readlink(dest / "lib" / "link") == "../a.whl"


def test_pack_reports_sizes_and_references(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "script").write_bytes(b"x" * (1 << 20) + b"/store/" + b"h" * 32 + b"-dep-1/bin")
    out = io.BytesIO()
    result = pack_tree(root, out, reference_candidates={"h" * 32: "hhh-dep-1", "z" * 32: "zzz-other-1"})
    assert result.references == ("hhh-dep-1",)
    assert result.compressed_size == len(out.getvalue())
    assert result.uncompressed_size >= (1 << 20)


def test_reference_split_across_read_chunks_is_found(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    needle = "k" * 32
    (root / "big").write_bytes(b"." * ((1 << 20) - 10) + needle.encode() + b".")
    result = pack_tree(root, io.BytesIO(), reference_candidates={needle: "kkk-x-1"})
    assert result.references == ("kkk-x-1",)


@pytest.mark.parametrize("change, message", [
    (lambda e: {**e, "a.whl": dict(e["a.whl"], sha256="0" * 64)}, "sha256"),
    (lambda e: {**e, "a.whl": dict(e["a.whl"], size=5)}, "bytes"),
    (lambda e: {k: v for k, v in e.items() if k != "a.whl"}, "not in the signed metadata"),
    (lambda e: {**e, "extra": {"type": "file", "sha256": "0" * 64, "size": 1, "mode": 0o644}}, "missing"),
    (lambda e: {**e, "lib/link": {"type": "symlink", "target": "/etc/passwd"}}, "symlink"),
    (lambda e: {**e, "lib/tool": {"type": "symlink", "target": "x"}}, "another type"),
])
def test_unpack_rejects_anything_the_file_list_does_not_promise(tmp_path: Path, change, message: str) -> None:
    root = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactRejectedError, match=message):
        unpack_verified(io.BytesIO(packed(root)), dest, change(list_tree(root)), 10 << 20, "test")


def test_unpack_rejects_truncated_and_oversized_streams(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    data = packed(root)
    expected = list_tree(root)
    for cut in (len(data) // 2, len(data) - 3):
        dest = tmp_path / f"cut{cut}"
        dest.mkdir()
        with pytest.raises(ArtifactRejectedError):
            unpack_verified(io.BytesIO(data[:cut]), dest, expected, 10 << 20, "test", compressed_size=len(data))
    dest = tmp_path / "small"
    dest.mkdir()
    with pytest.raises(ArtifactRejectedError, match="more bytes"):
        unpack_verified(io.BytesIO(data), dest, expected, 1000, "test")


def test_unpack_rejects_member_escaping_the_destination(tmp_path: Path) -> None:
    import tarfile
    import zstandard
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    data = zstandard.ZstdCompressor().compress(raw.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactRejectedError, match="escape"):
        unpack_verified(io.BytesIO(data), dest, {"../evil": {"type": "file", "sha256": "0" * 64, "size": 1}}, 1 << 20, "test")
    assert not (tmp_path / "evil").exists()


def test_fifos_travel_and_sockets_cannot_be_packed(tmp_path: Path) -> None:
    import socket
    from build.errors import CacheError
    root = tmp_path / "src"
    root.mkdir()
    os.mkfifo(root / "pipe", 0o640)
    expected = dict(list_tree(root))
    expected["pipe"] = dict(expected["pipe"], rdev=[0, 0])
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_verified(io.BytesIO(packed(root)), dest, expected, 1 << 20, "test")
    assert list_tree(dest) == list_tree(root)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        with pytest.raises(CacheError, match="socket"):
            pack_tree(root, io.BytesIO())
