"""A multi-worker job's network behaviour without TensorFlow, light enough for 35 workers
on two cores: bind the TF port of this task in TF_CONFIG (as TF's gRPC server does), keep
accepting on it (the supervisor probes it every second), connect to every peer's TF port
until all of them answer, then idle for ``idle=`` seconds. A worker that cannot reach all
peers within ``wait=`` seconds exits 4, naming the ones it missed.

Runs on Python 3.8+ (the hosts' interpreter); SIGTERM ends it at once (default handler).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

params = dict(arg.split("=", 1) for arg in sys.argv[1:] if "=" in arg)
idle = float(params.get("idle", "120"))
wait = float(params.get("wait", "120"))

config = json.loads(os.environ["TF_CONFIG"])
task = config["task"]
everyone = [address for role in ("chief", "worker") for address in config["cluster"].get(role, [])]
mine = config["cluster"][task["type"]][task["index"]]
host, port = mine.rsplit(":", 1)

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port)))
server.listen(256)


def accept_forever() -> None:
    while True:
        try:
            connection, _ = server.accept()
            connection.close()
        except OSError:
            return


threading.Thread(target=accept_forever, daemon=True).start()

started = time.monotonic()
pending = [address for address in everyone if address != mine]
while pending and time.monotonic() - started < wait:
    for address in list(pending):
        peer_host, peer_port = address.rsplit(":", 1)
        try:
            socket.create_connection((peer_host, int(peer_port)), timeout=1).close()
            pending.remove(address)
        except OSError:
            pass
    if pending:
        time.sleep(0.2)
if pending:
    sys.exit(f"{task['type']} {task['index']}: peers never reached within {wait:g} s: {', '.join(pending)}")
print(f"{task['type']} {task['index']}: all {len(everyone) - 1} peers reached in "
      f"{time.monotonic() - started:.1f} s", flush=True)
time.sleep(idle)
print(f"{task['type']} {task['index']}: idled {idle:g} s", flush=True)
