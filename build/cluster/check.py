"""`doit cluster:check`: is every host fit to run the selected profile's jobs?

One row per host: reachable, architecture, OS, Python, free RAM and swap, disk, the
deployed TensorFlow (importable? version), TF port free, clock offset, and the mesh: can
every other host of the job open a TCP connection to this host's TF port. The mesh
matters most: a multi-worker job whose workers cannot reach each other (firewall, wrong
address, ``localhost`` in a shared TF_CONFIG) does not fail, it hangs. With
``deploy_stream = "tcp"`` the mesh also probes a port of the kernel's choosing on every
host, as deploy's relays open one: a host whose firewall blocks it gets a warning (deploy
still works, the hosts after it in the chain get their files in chunks over ssh).
"""
from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from ..platform import Platform
from ..concurrency import map_bounded
from ..errors import HostError
from ..processes import stop_process
from ..profiles import Profile
from .config import ClusterConfig, HostSpec
from .deploy import python_for
from .hosts import Host, close_all, open_host
from .table import render_table

Report = Callable[[str], None]
MIN_DISK_GB = 2.0
MIN_MEMORY_MB = 512          # RAM + swap available; TF alone needs a few hundred MB
CLOCK_WARN_SECONDS = 5.0
LISTEN_SECONDS = 60
CONNECT_TIMEOUT = 3.0
SESSIONS = 32                # ssh sessions the controller runs at once
PEER_PROBES = 16             # connections one host opens at once in the mesh

FACTS = r"""
import json, os, platform, shutil, socket, sys, time
home = sys.argv[1]
facts = {"arch": platform.machine(), "python": "%d.%d.%d" % sys.version_info[:3]}
try:
    release = dict(l.strip().split("=", 1) for l in open("/etc/os-release") if "=" in l)
    facts["os"] = release.get("PRETTY_NAME", "").strip('"')
except OSError:
    facts["os"] = platform.platform()
try:
    mem = dict((l.split(":")[0], int(l.split()[1])) for l in open("/proc/meminfo"))
    facts["mem_mb"] = mem.get("MemAvailable", mem.get("MemFree", 0)) // 1024
    facts["swap_mb"] = mem.get("SwapFree", 0) // 1024
except (OSError, ValueError, IndexError):
    pass
path = home
while path and not os.path.exists(path):
    path = os.path.dirname(path)
facts["disk_gb"] = round(shutil.disk_usage(path or "/").free / 1e9, 1)
facts["time"] = time.time()
print(json.dumps(facts))
"""

TF_CHECK = r"""
import importlib, json, sys
found = {}
for name in sys.argv[1].split(","):
    module = importlib.import_module(name.strip())
    found[name.strip()] = getattr(module, "__version__", "?")
print(json.dumps(found))
"""

# Listen on the TF port for the mesh test; "busy" if something else already holds it.
# With a 4th argument "1", also on a port the kernel picks (as deploy's tcp relays do):
# the first line is then "listening <that port>".
LISTENER = r"""
import select, socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
anywhere = "::" if family == socket.AF_INET6 else "0.0.0.0"
s = socket.socket(family)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((anywhere, int(sys.argv[2])))
    s.listen(64)
except OSError as e:
    print("busy", e.strerror, flush=True)
    sys.exit(0)
sockets = [s]
if len(sys.argv) > 4 and sys.argv[4] == "1":
    extra = socket.socket(family)
    extra.bind((anywhere, 0))
    extra.listen(64)
    sockets.append(extra)
print("listening", *[x.getsockname()[1] for x in sockets[1:]], flush=True)
end = time.time() + float(sys.argv[3])
while time.time() < end:
    for ready in select.select(sockets, [], [], 1)[0]:
        try:
            ready.accept()[0].close()
        except OSError:
            pass
"""

# Connect to every other host's TF port, a bounded number at once: at 35 hosts a
# silent (firewalled) peer costs one timeout, not one per peer in a row.
CONNECT = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(target):
    name, host, port = target.split("|")
    try:
        socket.create_connection((host, int(port)), timeout=float(sys.argv[1])).close()
        return name, "ok"
    except OSError as e:
        return name, e.strerror or type(e).__name__
with ThreadPoolExecutor(max_workers=int(sys.argv[2])) as pool:
    results = dict(pool.map(probe, sys.argv[3:]))
print(json.dumps(results))
"""


@dataclass
class HostCheck:
    spec: HostSpec
    reachable: bool = False
    facts: Dict[str, object] = field(default_factory=dict)
    tf: Optional[str] = None               # "2.21.0", or why not importable
    tf_ok: bool = False
    port: str = "?"
    clock_offset: Optional[float] = None
    unreachable_from: List[str] = field(default_factory=list)
    stream_port: Optional[int] = None       # deploy_stream = "tcp": the probed ephemeral port
    stream_unreachable_from: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def fit(self) -> bool:
        return self.reachable and not self.problems


def check_cluster(cluster: ClusterConfig, profile: Profile, job: Optional[str] = None, *,
                  report: Report = print) -> List[HostCheck]:
    """Check every host of ``job`` (default: every host) against ``profile``."""
    specs = list(cluster.job_hosts(job)) if job else list(cluster.hosts)
    hosts = [open_host(spec) for spec in specs]
    checks = [HostCheck(spec) for spec in specs]
    try:
        map_bounded(lambda pair: _inspect(pair[0], pair[1], profile), zip(hosts, checks), SESSIONS)
        _mesh(hosts, checks, profile, report, stream_ports=cluster.deploy_stream == "tcp")
    finally:
        close_all(hosts)
    for check in checks:
        _judge(check, profile)
    return checks


def _inspect(host: Host, check: HostCheck, profile: Profile) -> None:
    python = python_for(check.spec, profile)
    try:
        result = host.run([python, "-c", FACTS, host.home], timeout=check.spec.connect_timeout + 30)
        after = time.time()
    except HostError as error:
        check.problems.append(_reason(error, host))
        return
    check.reachable = True
    try:
        check.facts = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        check.problems.append(f"unexpected answer from {python}: {result.stdout[-200:]!r}")
        return
    # The host samples its clock as its last act, so the answer's way back (not the
    # interpreter's start-up) is all that lies between its reading and ``after``.
    check.clock_offset = float(check.facts["time"]) - after  # type: ignore[arg-type]
    venv_python = host.venv_python(profile.name)
    try:
        tf = host.run([venv_python, "-c", TF_CHECK, profile.check_import], timeout=600, env=dict(profile.job_env),
                      check=False)
    except HostError as error:
        check.tf = _reason(error, host)
        return
    if tf.ok:
        versions = json.loads(tf.stdout.strip().splitlines()[-1])
        check.tf = versions.get("tensorflow") or ", ".join(f"{k} {v}" for k, v in versions.items())
        check.tf_ok = True
    elif "No such file" in tf.stderr or tf.returncode == 127:
        check.tf = "not deployed"
    else:
        lines = [line for line in tf.stderr.strip().splitlines() if line.strip()]
        check.tf = f"import fails: {lines[-1][:120] if lines else tf.returncode}"


STREAM = "#stream"   # a probe target's name suffix: the host's ephemeral (deploy stream) port


def _mesh(hosts: List[Host], checks: List[HostCheck], profile: Profile, report: Report, *,
          stream_ports: bool = False) -> None:
    """Every reachable host listens on its TF port (and, for tcp deploy streams, on a port
    of the kernel's choosing); every other one connects to them."""
    live = [(h, c) for h, c in zip(hosts, checks) if c.reachable]
    listeners: List[subprocess.Popen] = []

    def listen(pair) -> None:  # type: ignore[no-untyped-def]
        host, check = pair
        python = python_for(check.spec, profile)
        process = host.spawn([python, "-c", LISTENER, check.spec.address, str(check.spec.tf_port),
                              str(LISTEN_SECONDS), "1" if stream_ports else "0"], stderr=subprocess.DEVNULL)
        listeners.append(process)
        line = _first_line(process, check.spec.connect_timeout + 20)
        check.port = "free" if line.startswith("listening") else "in use" if line.startswith("busy") else "?"
        words = line.split()
        if check.port == "free" and len(words) == 2 and words[1].isdigit():
            check.stream_port = int(words[1])

    try:
        map_bounded(listen, live, SESSIONS)   # all at once: one after the other, 35 took seconds
        if len(live) < 2:
            return
        targets = [f"{c.spec.name}|{c.spec.address}|{c.spec.tf_port}" for _, c in live if c.port == "free"]
        targets += [f"{c.spec.name}{STREAM}|{c.spec.address}|{c.stream_port}" for _, c in live if c.stream_port]

        def probe(pair) -> None:  # type: ignore[no-untyped-def]
            host, check = pair
            others = [t for t in targets if t.split("|")[0] not in (check.spec.name, check.spec.name + STREAM)]
            if not others:
                return
            rounds = -(-len(others) // PEER_PROBES)
            result = host.run([python_for(check.spec, profile), "-c", CONNECT, str(CONNECT_TIMEOUT), str(PEER_PROBES),
                               *others], timeout=CONNECT_TIMEOUT * rounds + 30, check=False)
            try:
                outcome = json.loads(result.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return
            for name, status in outcome.items():
                if status != "ok":
                    target = next(c for _, c in live if c.spec.name == name.replace(STREAM, ""))
                    failures = target.stream_unreachable_from if name.endswith(STREAM) else target.unreachable_from
                    failures.append(f"{check.spec.name} ({status})")

        map_bounded(probe, live, SESSIONS)
    finally:
        for process in listeners:
            _stop(process)


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    lines: "queue.Queue[str]" = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(process.stdout.readline().decode(errors="replace")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return ""


def _stop(process: subprocess.Popen) -> None:
    if process.stdin:
        process.stdin.close()  # an ssh-spawned listener stops when its session ends
    stop_process(process)


def _judge(check: HostCheck, profile: Profile) -> None:
    """Turn facts into reasons why a host is unfit for ``profile`` (and warnings)."""
    if not check.reachable:
        return
    facts = check.facts
    want_arch = Platform.parse(profile.platform).uname_machine   # facts' arch is `uname -m`
    if facts.get("arch") != want_arch:
        check.problems.append(f"architecture {facts.get('arch')}, profile {profile.name} needs {want_arch}")
    python = str(facts.get("python", ""))
    if profile.python and not (python == profile.python or python.startswith(profile.python + ".")):
        check.problems.append(f"Python {python}, profile needs {profile.python} (set python in cluster.toml?)")
    memory = int(facts.get("mem_mb", 0)) + int(facts.get("swap_mb", 0))  # type: ignore[call-overload]
    if memory < MIN_MEMORY_MB:
        check.problems.append(f"only {memory} MB RAM + swap available")
    if float(facts.get("disk_gb", 0)) < MIN_DISK_GB:  # type: ignore[arg-type]
        check.problems.append(f"only {facts.get('disk_gb')} GB free disk")
    if not check.tf_ok:
        check.problems.append(f"{profile.check_import}: {check.tf} (run: doit deploy)")
    if check.port == "in use":
        check.problems.append(f"TF port {check.spec.tf_port} is in use (a job still running?)")
    if check.unreachable_from:
        check.problems.append(f"TF port {check.spec.tf_port} unreachable from {', '.join(check.unreachable_from)} "
                              "(firewall? wrong address?)")
    if check.stream_unreachable_from:
        check.warnings.append(f'deploy_stream = "tcp": port {check.stream_port} unreachable from '
                              f"{', '.join(sorted(check.stream_unreachable_from))} (a firewall letting only ssh and the "
                              "TF port in?): deploy's stream stops before this host, the rest goes in chunks over ssh")
    if check.clock_offset is not None and abs(check.clock_offset) > CLOCK_WARN_SECONDS:
        check.warnings.append(f"clock off by {check.clock_offset:+.1f} s (logs and metrics will not line up)")


def _reason(error: HostError, host: Host) -> str:
    text = str(error)
    prefix = f"{host.name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def check_table(checks: Sequence[HostCheck]) -> str:
    """One row per host, the unfit ones first (at 35 hosts a problem must not scroll away)."""
    rows = []
    for c in sorted(checks, key=lambda check: check.fit):
        f = c.facts
        mesh = "-" if not c.reachable else ("ok" if not c.unreachable_from else f"{len(c.unreachable_from)} cannot connect")
        rows.append([
            c.spec.name, "yes" if c.reachable else "NO", f.get("arch", "-"), str(f.get("os", "-"))[:28],
            f.get("python", "-"),
            f"{f['mem_mb']}/{f['swap_mb']} MB" if "mem_mb" in f else "-",
            f"{f['disk_gb']} GB" if "disk_gb" in f else "-",
            (c.tf or "-") if c.reachable else "-", c.port if c.reachable else "-",
            f"{c.clock_offset:+.2f} s" if c.clock_offset is not None else "-", mesh,
            "fit" if c.fit else "UNFIT",
        ])
    table = render_table(["host", "reachable", "arch", "os", "python", "ram/swap free", "disk free",
                          "tensorflow", "tf port", "clock", "mesh", "verdict"], rows)
    notes = [f"  {c.spec.name}: {p}" for c in checks for p in c.problems] + \
            [f"  {c.spec.name}: warning: {w}" for c in checks for w in c.warnings]
    return table + ("\n" + "\n".join(notes) if notes else "")
