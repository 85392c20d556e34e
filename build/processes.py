"""Stopping the helper processes piforge starts (nginx, ssh probes, test servers)."""
from __future__ import annotations

import subprocess


def stop_process(process: "subprocess.Popen", grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace_s``; always reaped."""
    if process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(timeout=grace_s)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
