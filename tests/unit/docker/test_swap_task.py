"""`doit swap`: the preflight's fix, run only after a yes, never over an existing file."""
from __future__ import annotations

from typing import List

import pytest

from build.errors import PrerequisiteError, ResourceError
from build.tasks.docker import add_swap


def test_runs_the_users_commands_after_confirmation() -> None:
    ran: List[List[str]] = []
    questions: List[str] = []

    def confirm(question: str) -> bool:
        questions.append(question)
        return True

    add_swap(6, "/swapfile", confirm=confirm, run=ran.append, exists=lambda p: False, is_root=True)
    assert ran == [["fallocate", "-l", "6G", "/swapfile"], ["chmod", "0600", "/swapfile"],
                   ["mkswap", "/swapfile"], ["swapon", "/swapfile"]]
    assert "fallocate -l 6G /swapfile" in questions[0]


def test_nothing_runs_without_a_yes() -> None:
    ran: List[List[str]] = []
    with pytest.raises(ResourceError, match="not confirmed"):
        add_swap(6, "/swapfile", confirm=lambda q: False, run=ran.append, exists=lambda p: False, is_root=True)
    assert ran == []


def test_refuses_an_existing_file_and_non_root() -> None:
    with pytest.raises(ResourceError, match="already exists"):
        add_swap(6, "/swapfile", confirm=lambda q: True, run=lambda c: None, exists=lambda p: True, is_root=True)
    with pytest.raises(PrerequisiteError, match="needs root"):
        add_swap(6, "/swapfile", confirm=lambda q: True, run=lambda c: None, exists=lambda p: False, is_root=False)
