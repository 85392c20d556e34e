"""Stat-cached hashing: unchanged files are not re-read; any change is seen."""
from __future__ import annotations

import os
import time
from pathlib import Path

from build.filehash_cache import FileHashCache, tree_hash, tree_listing
from build.hashing import sha256_file


def old_file(path: Path, text: str) -> Path:
    path.write_text(text)
    past = time.time() - 60   # older than the racy window: cacheable
    os.utime(path, (past, past))
    return path


def test_unchanged_files_come_from_the_cache(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(20):
        old_file(tree / f"f{index}.c", f"int x{index};")
    cache_file = tmp_path / "cache.marshal"
    first = FileHashCache(cache_file)
    digest = tree_hash(tree, first)
    assert first.hashed == 20
    second = FileHashCache(cache_file)
    assert tree_hash(tree, second) == digest and second.hashed == 0
    old_file(tree / "f3.c", "int changed;")
    third = FileHashCache(cache_file)
    assert tree_hash(tree, third) != digest and third.hashed == 1


def test_a_same_size_rewrite_within_the_racy_window_is_rehashed(tmp_path: Path) -> None:
    path = tmp_path / "a.c"
    path.write_text("aaaa")
    cache = FileHashCache(tmp_path / "cache.marshal")
    assert cache.sha256(path) == sha256_file(path)
    stat = os.stat(path)
    path.write_text("bbbb")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert cache.sha256(path) == sha256_file(path)


def test_listing_covers_modes_symlinks_and_empty_dirs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "empty").mkdir(parents=True)
    script = old_file(tree / "run.sh", "#!/bin/sh")
    os.chmod(script, 0o755)
    os.symlink("run.sh", tree / "link")
    listing = tree_listing(tree, FileHashCache(None))
    kinds = {entry[0]: entry[1] for entry in listing}
    assert kinds == {"empty": "d", "link": "l", "run.sh": "x"}
    before = tree_hash(tree)
    os.chmod(script, 0o644)
    assert tree_hash(tree) != before
