"""Run a command slowed down like a straggling host: once its TF port (from TF_CONFIG)
opens, stop it (SIGSTOP) for ``stopped`` of every 100 ms and let it run (SIGCONT) the
rest. Usage: throttle.py 0.75 -- python job.py ...  (exit status: the command's)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

stopped = float(sys.argv[1])
command = sys.argv[sys.argv.index("--") + 1:]
child = subprocess.Popen(command)  # same process group: the supervisor's signals reach both


def leave(signum: int, frame: object) -> None:
    child.send_signal(signal.SIGCONT)  # never leave it stopped
    child.send_signal(signum)
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, leave)
signal.signal(signal.SIGINT, leave)
config = json.loads(os.environ.get("TF_CONFIG") or "{}")
task = config.get("task", {})
address = config.get("cluster", {}).get(task.get("type", "worker"), [None])[int(task.get("index", 0))]
while address and child.poll() is None:  # TF import untouched: only training is slowed
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
        break
    except OSError:
        time.sleep(0.2)
while child.poll() is None:
    child.send_signal(signal.SIGSTOP)
    time.sleep(0.1 * stopped)
    child.send_signal(signal.SIGCONT)
    time.sleep(0.1 * (1 - stopped))
sys.exit(child.returncode if child.returncode >= 0 else 128 - child.returncode)
