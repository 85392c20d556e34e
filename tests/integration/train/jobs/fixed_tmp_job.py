"""A user's script that keeps its output at one fixed absolute path under /tmp, as the
user's own scripts save to /tmp/keras_save. No TensorFlow: it writes its own token there
(fsync'd), waits until every peer has written too (a barrier over the TF ports of
TF_CONFIG, so the workers overlap for sure and reach each other on loopback), then reads
the file back. Workers sharing /tmp read a neighbour's token and fail: exit 3."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid

PATH = "/tmp/piforge_fixed_path/model.txt"

config = json.loads(os.environ["TF_CONFIG"])
me = int(config["task"]["index"])
addresses = config["cluster"]["worker"]
token = f"worker{me}-{uuid.uuid4().hex}"
os.makedirs(os.path.dirname(PATH), exist_ok=True)
with open(PATH, "w") as handle:
    handle.write(token)
    handle.flush()
    os.fsync(handle.fileno())

host, port = addresses[me].rsplit(":", 1)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port)))
server.listen(16)
server.settimeout(0.2)
heard, told = set(), set()
deadline = time.time() + 120
while (len(heard) < len(addresses) - 1 or len(told) < len(addresses) - 1) and time.time() < deadline:
    for index, address in enumerate(addresses):  # tell every peer "I have written"
        if index != me and index not in told:
            peer_host, peer_port = address.rsplit(":", 1)
            try:
                with socket.create_connection((peer_host, int(peer_port)), timeout=1) as peer:
                    peer.sendall(f"wrote {me}\n".encode())
                told.add(index)
            except OSError:
                pass
    try:
        connection, _ = server.accept()  # the supervisor's port probes send nothing
    except socket.timeout:
        continue
    with connection:
        connection.settimeout(1)
        try:
            words = connection.recv(64).decode().split()
        except OSError:
            words = []
        if len(words) == 2 and words[0] == "wrote":
            heard.add(int(words[1]))
if len(heard) < len(addresses) - 1:
    sys.exit(f"worker{me}: peers never reached on loopback (heard {sorted(heard)})")
time.sleep(0.3)
with open(PATH) as handle:
    got = handle.read()
if got != token:
    print(f"collision: worker{me} wrote {token} to {PATH} but read {got}", flush=True)
    sys.exit(3)
print(f"worker{me}: {PATH} is its own (TMPDIR={os.environ.get('TMPDIR')})", flush=True)
