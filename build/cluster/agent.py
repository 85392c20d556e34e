"""A private ssh-agent holding the cluster key for one deploy, so relay hops (a host
copying to the next host with scp) authenticate with the same key, forwarded, without
the private key ever leaving the controller."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from typing import Iterator, Optional, Sequence


@contextlib.contextmanager
def relay_agent(keys: Sequence[str], report=print) -> Iterator[Optional[str]]:  # type: ignore[no-untyped-def]
    """Yield an agent socket with ``keys`` loaded (or the user's agent when no key is
    configured); None if neither is available: fan-out then copies from the controller."""
    if not keys:
        yield os.environ.get("SSH_AUTH_SOCK") or None
        return
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        report("deploy: ssh-agent not found: every host gets its files from this machine (no relays)")
        yield None
        return
    directory = tempfile.mkdtemp(prefix="pfagent-")
    socket = os.path.join(directory, "agent.sock")
    pid: Optional[int] = None
    try:
        started = subprocess.run(["ssh-agent", "-s", "-a", socket], capture_output=True, text=True, timeout=10)
        found = re.search(r"SSH_AGENT_PID=(\d+)", started.stdout)
        pid = int(found.group(1)) if found else None
        env = dict(os.environ, SSH_AUTH_SOCK=socket)
        env.pop("DISPLAY", None)
        env.pop("SSH_ASKPASS", None)
        added = subprocess.run(["ssh-add", "-q", *[os.path.expanduser(k) for k in keys]], env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=10)
        if started.returncode != 0 or added.returncode != 0:
            report(f"deploy: cannot load {', '.join(keys)} into an ssh-agent ({(added.stderr or started.stderr).strip()}): "
                   "no relays, every host gets its files from this machine")
            yield None
        else:
            yield socket
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(directory, ignore_errors=True)
