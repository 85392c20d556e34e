"""Archive members that would escape the destination are refused; good archives unpack."""
from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest

from build.errors import UnsafeArchiveError
from build.unpack import unpack


def make_tar(path: Path, members: List[Tuple[str, str, str]]) -> Path:
    """members: (name, kind, payload) with kind file|dir|symlink|hardlink|fifo|chr."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            data = b""
            if kind == "file":
                data = payload.encode()
                info.size = len(data)
                info.mode = 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return path


def test_a_normal_sdist_unpacks_to_its_top_level_dir(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "pkg-1.0.tar.gz", [
        ("pkg-1.0", "dir", ""), ("pkg-1.0/setup.py", "file", "print(1)"),
        ("pkg-1.0/link", "symlink", "setup.py"), ("pkg-1.0/hard", "hardlink", "pkg-1.0/setup.py")])
    root = unpack(archive, tmp_path / "out")
    assert root == tmp_path / "out" / "pkg-1.0"
    assert (root / "setup.py").read_text() == "print(1)"
    assert os.readlink(root / "link") == "setup.py"
    assert (root / "hard").read_text() == "print(1)"


@pytest.mark.parametrize("members, complaint", [
    ([("../evil", "file", "x")], "contains '..'"),
    ([("pkg/../../evil", "file", "x")], "contains '..'"),
    ([("/etc/evil", "file", "x")], "absolute path"),
    ([("pkg/link", "symlink", "/etc/passwd")], "points outside"),
    ([("pkg/link", "symlink", "../../outside")], "points outside"),
    ([("pkg/hard", "hardlink", "/etc/passwd")], "absolute path"),
    ([("pkg/hard", "hardlink", "../x")], "contains '..'"),
    ([("pkg/dev", "chr", "")], "device file"),
    ([("pkg/pipe", "fifo", "")], "device file"),
    # Two symlinks each harmless on paper: d -> ".", then d/l -> "../x" escapes for real.
    ([("d", "symlink", "."), ("d/l", "symlink", "../x")], "points outside"),
    # A file written through a symlink to a directory outside.
    ([("up", "symlink", "sub/../.."), ("up/evil", "file", "x")], "points outside"),
])
def test_escaping_members_are_refused(tmp_path: Path, members: List[Tuple[str, str, str]],
                                      complaint: str) -> None:
    archive = make_tar(tmp_path / "bad.tar.gz", members)
    destination = tmp_path / "nested" / "out"
    with pytest.raises(UnsafeArchiveError, match=complaint) as caught:
        unpack(archive, destination)
    assert "bad.tar.gz" in str(caught.value)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "nested" / "evil").exists()


def test_zip_with_dotdot_is_refused_and_exec_bits_kept(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zipped:
        info = zipfile.ZipInfo("tool/run.sh")
        info.external_attr = (0o100755 << 16)
        zipped.writestr(info, "#!/bin/sh\n")
    root = unpack(good, tmp_path / "good")
    assert os.access(root / "run.sh", os.X_OK)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zipped:
        zipped.writestr("../evil", "x")
    with pytest.raises(UnsafeArchiveError, match="contains '..'"):
        unpack(bad, tmp_path / "bad")


def test_a_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not an archive at all")
    with pytest.raises(UnsafeArchiveError, match="not a readable archive"):
        unpack(broken, tmp_path / "out")
