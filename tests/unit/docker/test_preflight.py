"""Preflight: refuse a build the machine cannot finish, with the exact fix."""
from __future__ import annotations

import pytest

from build.errors import ResourceError
from build.preflight import (GIB, MachineFigures, bazel_limits, check, missing_swap_gb, read_meminfo,
                             swap_commands)
from build.recipe import Resources

TF = Resources(ram_gb=4, swap_gb=6, disk_gb=20)
PI4_RAM = int(3.7 * GIB)    # what a 4 GB Pi 4 reports as MemTotal


def pi(swap_gb: float = 0.0, disk_gb: float = 100.0, cpus: int = 4) -> MachineFigures:
    return MachineFigures(ram_bytes=PI4_RAM, swap_bytes=int(swap_gb * GIB),
                          disk_free_bytes=int(disk_gb * GIB), cpus=cpus)


def test_read_meminfo() -> None:
    text = "MemTotal:        3884532 kB\nMemFree:  100 kB\nSwapTotal:       6291452 kB\n"
    assert read_meminfo(text) == (3884532 * 1024, 6291452 * 1024)


def test_a_4gb_pi_without_swap_is_refused_with_the_swap_commands() -> None:
    with pytest.raises(ResourceError) as caught:
        check(TF, pi(swap_gb=0.1), "tensorflow", swapfile="/swapfile")
    message = str(caught.value)
    assert "tensorflow" in message and "RAM + swap is 3.8 GB" in message and "needs 10 GB" in message
    # The user's own fix from their notes, sized to the shortfall (6 GB, as they found).
    for command in swap_commands(6, "/swapfile"):
        assert command in message
    assert "sudo fallocate -l 6G /swapfile" in message
    assert "./piforge swap size=6" in message


def test_a_pi_with_the_users_6gb_swap_passes() -> None:
    check(TF, pi(swap_gb=6), "tensorflow")
    assert missing_swap_gb(pi(swap_gb=6), 4, 6) == 0


def test_too_little_disk_is_named() -> None:
    with pytest.raises(ResourceError) as caught:
        check(TF, pi(swap_gb=6, disk_gb=8), "tensorflow")
    assert "8.0 GB free disk" in str(caught.value) and "needs 20 GB" in str(caught.value)
    assert "swap" not in str(caught.value).split("hint")[0].replace("RAM + swap", "")


def test_recipes_without_resources_always_pass() -> None:
    check(Resources(), pi(), "tiny")


def test_bazel_limits_leave_a_core_and_a_quarter_of_ram() -> None:
    assert bazel_limits(pi(cpus=4)) == (3, int(PI4_RAM * 3 / 4 / (1024 * 1024)))   # the user's 3 cores
    assert bazel_limits(pi(cpus=2))[0] == 2
    assert bazel_limits(pi(cpus=64), cpus_wanted=8)[0] == 8
