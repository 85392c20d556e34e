"""The host-side scripts of deploy, run for real by /bin/sh through a LocalHost on temp
dirs: hop verification, chunk assembly, the atomic switch and rollback."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from build.cluster.config import HostSpec
from build.cluster.hosts.local import LocalHost
from build.cluster.hostscripts import (ASSEMBLE, EXIT_HASH_MISMATCH, EXIT_NO_PREVIOUS, INSTALL, PROBE, ROLLBACK,
                                       VERIFY, parse_probe, run_script)


def local_host(home: Path) -> LocalHost:
    return LocalHost(HostSpec(name="l", address="127.0.0.1", tf_port=1, transport="local", user=None, key=None,
                              ssh_port=22, known_hosts="/dev/null", connect_timeout=3.0, python=None,
                              home=str(home)))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_verify_moves_only_matching_files(tmp_path: Path) -> None:
    host = local_host(tmp_path)
    part, final = tmp_path / "x.part", tmp_path / "d" / "x"
    part.write_bytes(b"good")
    bad = run_script(host, VERIFY, [part, final, sha(b"other")], timeout=30)
    assert bad.returncode == EXIT_HASH_MISMATCH and "hash mismatch" in bad.stderr
    assert not part.exists() and not final.exists()
    part.write_bytes(b"good")
    assert run_script(host, VERIFY, [part, final, sha(b"good")], timeout=30).ok
    assert final.read_bytes() == b"good"


def test_assemble_joins_in_order_and_checks_the_size(tmp_path: Path) -> None:
    host = local_host(tmp_path)
    pieces = [tmp_path / "0", tmp_path / "1"]
    pieces[0].write_bytes(b"hello ")
    pieces[1].write_bytes(b"world")
    final = tmp_path / "wheels" / "abc" / "w.whl"
    short = run_script(host, ASSEMBLE, [final, 11, pieces[0]], timeout=30)      # a chunk missing
    assert short.returncode == EXIT_HASH_MISMATCH and "size mismatch" in short.stderr
    assert not final.exists() and not Path(f"{final}.part").exists()
    assert run_script(host, ASSEMBLE, [final, 11, *pieces], timeout=30).ok
    assert final.read_bytes() == b"hello world"


def test_probe_reports_state(tmp_path: Path) -> None:
    host = local_host(tmp_path)
    (tmp_path / "wheels" / "f00").mkdir(parents=True)
    (tmp_path / "wheels" / "f00" / "a.whl").write_bytes(b"a")
    (tmp_path / "wheels" / ".incoming" / "b11").mkdir(parents=True)
    (tmp_path / "wheels" / ".incoming" / "b11" / "0").write_bytes(b"c")
    (tmp_path / "wheels" / ".incoming" / "b11" / "1.part").write_bytes(b"c")
    found = parse_probe(run_script(host, PROBE, [tmp_path, "p", sys.executable], timeout=30).check().stdout)
    assert found["have"] == [f"{tmp_path}/wheels/f00/a.whl"]
    assert found["chunk"] == [f"{tmp_path}/wheels/.incoming/b11/0"]   # .part files are not there yet
    assert found["ok"] == ["0"] and found["current"] == [""]
    assert found["python"][0].count(".") == 2


def fake_venv(pdir: Path, name: str, ok: bool = True) -> None:
    (pdir / name).mkdir(parents=True)
    if ok:
        (pdir / name / ".piforge-ok").write_text("")


def test_rollback_swaps_current_and_previous(tmp_path: Path) -> None:
    host = local_host(tmp_path)
    pdir = tmp_path / "venvs" / "p"
    fake_venv(pdir, "v-old")
    fake_venv(pdir, "v-new")
    (pdir / "current").symlink_to("v-new")
    (pdir / "previous").symlink_to("v-old")
    result = run_script(host, ROLLBACK, [pdir], timeout=30).check()
    assert result.stdout.strip() == "v-old"
    assert (pdir / "current").resolve().name == "v-old" and (pdir / "previous").resolve().name == "v-new"


def test_rollback_refuses_without_a_complete_previous(tmp_path: Path) -> None:
    host = local_host(tmp_path)
    pdir = tmp_path / "venvs" / "p"
    fake_venv(pdir, "v-new")
    fake_venv(pdir, "v-half", ok=False)
    (pdir / "current").symlink_to("v-new")
    assert run_script(host, ROLLBACK, [pdir], timeout=30).returncode == EXIT_NO_PREVIOUS
    (pdir / "previous").symlink_to("v-half")                 # never completed its check
    assert run_script(host, ROLLBACK, [pdir], timeout=30).returncode == EXIT_NO_PREVIOUS
    assert (pdir / "current").resolve().name == "v-new"


def test_install_with_a_python_that_cannot_make_venvs_leaves_nothing(tmp_path: Path) -> None:
    host = local_host(tmp_path)
    pdir = tmp_path / "venvs" / "p"
    fake_venv(pdir, "v-old")
    (pdir / "current").symlink_to("v-old")
    (pdir / ".lock-v-new.txt").write_text("")
    result = run_script(host, INSTALL, [pdir, "v-new", "/bin/false", "pip.whl", "json", "0"], timeout=60)
    assert result.returncode == 8 and "cannot create a venv" in result.stderr
    assert not (pdir / "v-new").exists()
    assert (pdir / "current").resolve().name == "v-old"
