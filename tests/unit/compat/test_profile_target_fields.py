"""Profiles state what their hosts' installer accepts: glibc and the shipped pip."""
from __future__ import annotations

from pathlib import Path

import pytest

from build.errors import ProfileError
from build.profiles import list_profiles, load_profile

GOOD = """name = "t"
description = "d"
os = "ubuntu-20.04"
platform = "linux/aarch64"
python = "3.8"
glibc = "2.31"
pip = "24.3.1"
tensorflow = "2.13.1"
wheelhouse = "w"
host_python = "/usr/bin/python3"
"""


def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    (tmp_path / "t.toml").write_text(text)
    monkeypatch.setenv("PIFORGE_PROFILES", str(tmp_path))


def test_every_shipped_profile_states_glibc_and_pip() -> None:
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.glibc.startswith("2.") and profile.pip == "24.3.1", name


def test_good_profile_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, monkeypatch, GOOD)
    profile = load_profile("t")
    assert (profile.glibc, profile.pip) == ("2.31", "24.3.1")


@pytest.mark.parametrize("field", ["glibc", "pip"])
def test_missing_field_names_file_line_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 field: str) -> None:
    write(tmp_path, monkeypatch, "\n".join(line_ for line_ in GOOD.splitlines() if not line_.startswith(field + " ")))
    with pytest.raises(ProfileError) as error:
        load_profile("t")
    assert str(error.value) == f"profiles/t.toml:1: {field}: missing (a required field)"


@pytest.mark.parametrize("field, bad, line", [("glibc", '"2.31.x"', 6), ("glibc", '"glibc-2.31"', 6),
                                              ("pip", '"latest"', 7), ("pip", "24", 7)])
def test_bad_field_names_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  field: str, bad: str, line: int) -> None:
    text = GOOD.replace(f'{field} = "{"2.31" if field == "glibc" else "24.3.1"}"', f"{field} = {bad}")
    write(tmp_path, monkeypatch, text)
    with pytest.raises(ProfileError) as error:
        load_profile("t")
    assert str(error.value).startswith(f"profiles/t.toml:{line}: {field}: ")
