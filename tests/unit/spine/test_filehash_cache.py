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


def old_tree(root: Path, count: int) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    for index in range(count):
        old_file(root / ("sub" if index % 2 else "sub/deeper") / f"f{index}.c", f"int x{index};")
    return root


def test_a_small_save_appends_to_the_journal_and_a_new_load_replays_it(tmp_path: Path) -> None:
    tree = old_tree(tmp_path / "tree", 10)
    cache_file = tmp_path / "cache.marshal"
    digest = tree_hash(tree, FileHashCache(cache_file))
    base = cache_file.read_bytes()
    old_file(tree / "sub" / "f1.c", "int touched;")
    touched = tree_hash(tree, FileHashCache(cache_file))
    assert touched != digest
    assert cache_file.read_bytes() == base          # the base was not rewritten...
    journal = cache_file.with_name(cache_file.name + ".journal")
    assert 0 < journal.stat().st_size < 200         # ...one small record was appended
    again = FileHashCache(cache_file)
    assert tree_hash(tree, again) == touched and again.hashed == 0


def test_a_torn_journal_record_is_only_a_slower_cache(tmp_path: Path) -> None:
    tree = old_tree(tmp_path / "tree", 6)
    cache_file = tmp_path / "cache.marshal"
    tree_hash(tree, FileHashCache(cache_file))
    old_file(tree / "sub" / "f1.c", "int touched;")
    expected = tree_hash(tree, FileHashCache(cache_file))
    journal = cache_file.with_name(cache_file.name + ".journal")
    journal.write_bytes(journal.read_bytes()[:-3])  # a crash mid-append
    cache = FileHashCache(cache_file)
    assert tree_hash(tree, cache) == expected and cache.hashed == 1


def test_a_long_journal_is_folded_into_the_base(tmp_path: Path, monkeypatch) -> None:
    import build.filehash_cache as module
    monkeypatch.setattr(module, "JOURNAL_FOLD", 2)
    tree = old_tree(tmp_path / "tree", 6)
    cache_file = tmp_path / "cache.marshal"
    tree_hash(tree, FileHashCache(cache_file))
    journal = cache_file.with_name(cache_file.name + ".journal")
    for round_ in range(3):
        old_file(tree / "sub" / "f1.c", f"int touched{round_};")
        tree_hash(tree, FileHashCache(cache_file))
    assert not journal.exists()                     # folded on the third save
    cache = FileHashCache(cache_file)
    tree_hash(tree, cache)
    assert cache.hashed == 0


def test_a_damaged_or_old_format_cache_is_ignored(tmp_path: Path) -> None:
    import marshal
    tree = old_tree(tmp_path / "tree", 4)
    expected = tree_hash(tree)
    cache_file = tmp_path / "cache.marshal"
    cache_file.write_bytes(marshal.dumps({"sub/f1.c": (1, 2, 3, "0" * 64)}))   # format 1
    cache = FileHashCache(cache_file)
    assert tree_hash(tree, cache) == expected and cache.hashed == 4
    cache_file.write_bytes(b"\x00garbage")
    assert tree_hash(tree, FileHashCache(cache_file)) == expected


def test_the_tree_hash_format_is_unchanged(tmp_path: Path) -> None:
    """Recipes pin this hash: sorted 'KIND VALUE RELPATH' lines, '.' sorting before '/'."""
    import hashlib
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    old_file(tree / "a" / "b", "x")
    old_file(tree / "a.c", "y")
    os.symlink("a.c", tree / "l")
    lines = (f"f {sha256_file(tree / 'a.c')} a.c\n" f"f {sha256_file(tree / 'a' / 'b')} a/b\n"
             "l a.c l\n")
    assert tree_hash(tree) == hashlib.sha256(lines.encode()).hexdigest()


def test_a_symlinked_directory_is_a_link_not_walked(tmp_path: Path) -> None:
    tree = old_tree(tmp_path / "tree", 2)
    os.symlink("sub", tree / "alias")
    listing = tree_listing(tree, FileHashCache(None))
    assert ["alias", "l", "sub"] in listing
    assert not any(row[0].startswith("alias/") for row in listing)


def test_each_tree_has_its_own_cache_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIFORGE_HOME", str(tmp_path / "home"))
    first = FileHashCache.for_tree(tmp_path / "one")
    second = FileHashCache.for_tree(tmp_path / "two")
    assert first.path != second.path
    assert first.path == FileHashCache.for_tree(str(tmp_path / "one")).path
