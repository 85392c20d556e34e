"""A private nginx WebDAV server on loopback: a binary cache (and Bazel remote cache)
for one machine or a test run, with its own prefix, config, temp dir and port.

The temp dir sits on the same filesystem as the data root, so nginx renames a PUT
into place: a reader never sees half an artifact.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional, Tuple

from ..errors import PrerequisiteError, CacheError
from ..processes import stop_process

_CONFIG = """\
daemon off;
master_process on;
worker_processes 2;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{
        listen {host}:{port};
        root {root};
        location / {{
            {auth}
            {rate}
            dav_methods PUT DELETE MKCOL;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 0;
            client_body_buffer_size 1m;
        }}
    }}
}}
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class DavServer:
    """``with DavServer(prefix) as server: server.url`` - nginx stopped on exit."""

    def __init__(self, prefix: Path, host: str = "127.0.0.1", port: Optional[int] = None,
                 root: Optional[Path] = None, credentials: Optional[Tuple[str, str]] = None,
                 rate_mb_s: Optional[float] = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            raise CacheError(f"DavServer: refusing to listen on {host}: loopback only")
        self.prefix = Path(prefix).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.root = Path(root).resolve() if root else self.prefix / "data"
        self.credentials = credentials  # (user, password): HTTP basic auth on every request
        self.rate_mb_s = rate_mb_s      # per-connection send rate, to mimic a LAN link
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "DavServer":
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx is None:
            raise PrerequisiteError("nginx not found", hint="run scripts/setup-host.sh (installs nginx-light)")
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        # As root, nginx workers would drop to 'nobody' and could not write our dirs.
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        auth = ""
        if self.credentials:
            htpasswd = self.prefix / "htpasswd"
            htpasswd.write_text(f"{self.credentials[0]}:{{PLAIN}}{self.credentials[1]}\n", encoding="utf-8")
            os.chmod(htpasswd, 0o600)
            auth = f'auth_basic "piforge cache"; auth_basic_user_file {htpasswd};'
        rate = f"limit_rate {int(self.rate_mb_s * 1e6)};" if self.rate_mb_s else ""
        conf = self.prefix / "nginx.conf"
        conf.write_text(_CONFIG.format(user=user, prefix=self.prefix, host=self.host, port=self.port,
                                       root=self.root, auth=auth, rate=rate), encoding="utf-8")
        self.process = subprocess.Popen(
            [nginx, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = (self.prefix / "error.log")
                err += log.read_text(errors="replace") if log.exists() else ""
                raise CacheError(f"nginx exited at start (port {self.port}): {err.strip()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise CacheError(f"nginx did not listen on {self.host}:{self.port} within 10 s")

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)  # SIGTERM: nginx's fast shutdown, the master stops its workers
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> "DavServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
