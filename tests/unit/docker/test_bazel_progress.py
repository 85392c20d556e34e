"""Bazel's [N / M] lines -> progress bar with an ETA."""
from __future__ import annotations

from build.bazel.progress import ProgressMeter, format_duration, parse_progress


def test_parse_progress_reads_counts_with_thousands_separators() -> None:
    assert parse_progress("[1,234 / 5,678] Compiling tensorflow/core/kernels/conv_ops.cc; 41s local") == (1234, 5678)
    assert parse_progress("[3 / 10] [Prepa] BazelWorkspaceStatusAction stable-status.txt") == (3, 10)


def test_parse_progress_ignores_other_lines() -> None:
    for line in ("INFO: Analyzed target //:hello", "", "Loading: 0 packages loaded", "[a / b]", "x [1 / 2]"):
        assert parse_progress(line) is None


def test_meter_eta_uses_rate_since_first_line() -> None:
    meter = ProgressMeter(label="tf")
    assert meter.feed("[100 / 1,100] Compiling a.cc", now=1000.0).endswith("ETA --")
    bar = meter.feed("[200 / 1,100] Compiling b.cc", now=1100.0)   # 100 actions in 100 s
    assert bar is not None
    assert "200/1100" in bar and "18.2%" in bar
    assert bar.endswith("ETA 15m00s")                               # 900 left at 1/s
    assert meter.feed("INFO: something", now=1200.0) is None
    assert meter.last == (200, 1100)


def test_meter_handles_growing_total_and_completion() -> None:
    meter = ProgressMeter()
    meter.feed("[1 / 10] a", now=0.0)
    bar = meter.feed("[10 / 40] b", now=9.0)
    assert "10/40" in bar and "ETA 30s" in bar
    done = meter.feed("[40 / 40] c", now=39.0)
    assert "100.0%" in done and "ETA 0s" in done and "#" * 30 in done


def test_format_duration() -> None:
    assert format_duration(59) == "59s"
    assert format_duration(61) == "1m01s"
    assert format_duration(20 * 3600 + 5 * 60) == "20h05m"
