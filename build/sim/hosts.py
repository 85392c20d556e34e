"""Simulated cluster hosts: network namespaces on a bridge, each running a real sshd.

Reusable by any area's tests (``with SimCluster(workdir) as sim: sim.add_host(...)``,
or the ``sim_cluster`` fixture in conftest.py). Every host gets:

- its own network namespace ``pfc-<name>`` with address 10.231.0.<10+i>/24, joined by
  a veth pair to the bridge ``pfcbr0``; the controller (this process) reaches the bridge
  through its own veth pair (10.231.0.1), so every link, the controller's uplink
  included, can be shaped with ``tc``;
- its own sshd (own host key, authorized key, pid file) inside ``unshare --mount`` with
  a private home bind-mounted over /root, so an install on one host is invisible to
  the others;
- optionally an arm64 root filesystem: sshd's ChrootDirectory puts every session inside
  it, so the host's shell, python3 and pip are arm64 binaries running under qemu.

Everything (processes, namespaces, veths, bridge) is removed on close, also after a
crash of a previous run (stale ``pfc-`` namespaces are cleared first).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

BRIDGE = "pfcbr0"
SUBNET = "10.231.0"
CONTROLLER_ADDRESS = f"{SUBNET}.1"
CONTROLLER_VETH = "pfc-ctl"      # controller side (has the address)
CONTROLLER_PORT_VETH = "pfc-ctlb"  # its peer, a port of the bridge
NETNS_PREFIX = "pfc-"
NEIGH_SYSCTL = Path("/proc/sys/net/ipv4/neigh/default")
SETUP_THREADS = 4   # namespace sides and keys: short processes, two cores


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class SimHost:
    name: str
    index: int
    address: str
    netns: str
    veth_bridge_side: str   # in the root namespace, enslaved to the bridge
    veth_host_side: str     # inside the namespace (before it is renamed eth0)
    dir: Path
    rootfs: Optional[Path] = None
    sshd: Optional[subprocess.Popen] = None
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        """The host's private home on this machine (mounted over /root on the host)."""
        return self.dir / "home"

    @property
    def in_host_root(self) -> Path:
        """Where a host path like /root/x lives on the controller's filesystem."""
        return self.home

    def exec_argv(self, *argv: str) -> List[str]:
        """argv that runs a command inside the host's network namespace (not its mounts)."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def pids(self) -> List[int]:
        out = sh("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_sshd(self) -> None:
        """Kill sshd and every session in the namespace at once (a host crash)."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.sshd is not None:
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.sshd = None

    def link_down(self) -> None:
        sh("ip", "link", "set", self.veth_bridge_side, "down")

    def link_up(self) -> None:
        sh("ip", "link", "set", self.veth_bridge_side, "up")


class SimCluster:
    """A bridge plus simulated hosts; use as a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.hosts: List[SimHost] = []
        self.client_key = self.workdir / "client_ed25519"
        self.known_hosts = self.workdir / "known_hosts"
        self.saved_sysctls: Dict[Path, int] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "SimCluster":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        clear_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        if not self.client_key.exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "piforge-test", "-f", str(self.client_key))
        self.known_hosts.write_text("")
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "link", "set", BRIDGE, "up")
        sh("ip", "link", "add", CONTROLLER_VETH, "type", "veth", "peer", "name", CONTROLLER_PORT_VETH)
        sh("ip", "link", "set", CONTROLLER_PORT_VETH, "master", BRIDGE)
        sh("ip", "addr", "add", f"{CONTROLLER_ADDRESS}/24", "dev", CONTROLLER_VETH)
        sh("ip", "link", "set", CONTROLLER_PORT_VETH, "up")
        sh("ip", "link", "set", CONTROLLER_VETH, "up")

    def close(self) -> None:
        for host in self.hosts:
            host.kill_sshd()
        clear_stale()
        for path, value in self.saved_sysctls.items():
            path.write_text(str(value))
        self.saved_sysctls.clear()

    # -- hosts -------------------------------------------------------------------------
    def add_host(self, name: str, *, rootfs: Optional[Path] = None) -> SimHost:
        return self.add_hosts([name], rootfs=rootfs)[0]

    def add_hosts(self, names: Sequence[str], *, rootfs: Optional[Path] = None) -> List[SimHost]:
        """Start hosts ``names`` together and wait until every sshd accepts.

        Why together: one host costs ~10 ``ip`` calls, a key and an sshd start; done one
        after the other 35 hosts took long. Here the root namespace's links come from one
        ``ip -batch``, each namespace's side from one ``ip -n NS -batch``, keys and the
        namespace sides in a few threads, and every sshd starts before the first is waited for.
        """
        hosts: List[SimHost] = []
        for name in names:
            index = len(self.hosts) + len(hosts)
            host = SimHost(name=name, index=index, address=f"{SUBNET}.{10 + index}", netns=f"{NETNS_PREFIX}{name}",
                           veth_bridge_side=f"pfc-b{index}", veth_host_side=f"pfc-h{index}",
                           dir=self.workdir / "hosts" / name, rootfs=rootfs)
            host.home.mkdir(parents=True, exist_ok=True)
            (host.dir / "tmp").mkdir(exist_ok=True)
            os.chmod(host.dir / "tmp", 0o1777)
            hosts.append(host)
        # Namespaces first, in their own process: `netns add` unshares the ip process itself.
        batch(*[f"netns add {host.netns}" for host in hosts])
        batch(*[line for host in hosts for line in (
            f"link add {host.veth_bridge_side} type veth peer name {host.veth_host_side} netns {host.netns}",
            f"link set {host.veth_bridge_side} master {BRIDGE}",
            f"link set {host.veth_bridge_side} up")])

        def inside(host: SimHost) -> None:
            batch("link set lo up", f"addr add {host.address}/24 dev {host.veth_host_side}",
                  f"link set {host.veth_host_side} up", netns=host.netns)
            host_key(host.dir / "ssh_host_ed25519_key")

        self._room_for_neighbours(len(self.hosts) + len(hosts))
        with ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
            list(pool.map(inside, hosts))
        for host in hosts:
            self._write_sshd_config(host)
            self.hosts.append(host)
            self._spawn_sshd(host)
        for host in hosts:
            wait_for_port(host, 22)
        return hosts

    def _room_for_neighbours(self, count: int) -> None:
        """Raise the kernel's ARP table limits for ``count`` hosts that all talk to each other.

        Why: the table is one for all network namespaces, 1,024 entries by default; 35
        hosts in a TF mesh need 35 x 35 of them, and past the limit new neighbours are
        refused ("neighbor table overflow"): connections time out at random. A real Pi
        holds only its own 35. The old values come back on close()."""
        wanted = 2 * (count + 1) ** 2
        for name, share in (("gc_thresh2", 2), ("gc_thresh3", 1)):
            path = NEIGH_SYSCTL / name
            current = int(path.read_text())
            if current < wanted // share:
                self.saved_sysctls.setdefault(path, current)
                path.write_text(str(wanted // share))

    def memory(self) -> Tuple[int, int]:
        """(RSS, PSS) in bytes of every process in the hosts' namespaces (their sshds when
        idle); PSS shares the common pages out, so it is what the hosts really cost."""
        pids = [pid for host in self.hosts for pid in host.pids()]
        return sum(process_memory(pid, "VmRSS:", "status") for pid in pids), \
            sum(process_memory(pid, "Pss:", "smaps_rollup") for pid in pids)

    def _write_sshd_config(self, host: SimHost) -> None:
        key = host_key(host.dir / "ssh_host_ed25519_key")
        authorized = host.dir / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        chroot = f"ChrootDirectory {self._chroot_mountpoint(host)}\n" if host.rootfs else ""
        files = self._sshd_files(host)
        (host.dir / "sshd_config").write_text(textwrap.dedent(f"""\
            ListenAddress {host.address}
            Port 22
            HostKey {files}/{key.name}
            PidFile {files}/sshd.pid
            AuthorizedKeysFile {files}/{authorized.name}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            AllowAgentForwarding yes
            PrintMotd no
            Subsystem sftp internal-sftp
            """) + chroot)
        public = (host.dir / "ssh_host_ed25519_key.pub").read_text().split()
        with open(self.known_hosts, "a") as handle:
            handle.write(f"{host.address} {public[0]} {public[1]}\n")

    def _sshd_files(self, host: SimHost) -> str:
        """Where the host's sshd reads its config and keys. An arm64 host's sshd gets the
        host's own tmp on /tmp (see _spawn_sshd), which hides ``host.dir`` when that lives
        under /tmp: it reads them through a bind mount under /run instead."""
        return f"/run/{NETNS_PREFIX}{host.name}/host" if host.rootfs else str(host.dir)

    def _chroot_mountpoint(self, host: SimHost) -> str:
        # ChrootDirectory needs every path component root-owned and not group/world
        # writable: /run/pfc-<name>/root qualifies, the store path (under /var/tmp) does not.
        return f"/run/{NETNS_PREFIX}{host.name}/root"

    def start_sshd(self, host: SimHost) -> None:
        """(Re)start the host's sshd in its own mount namespace; waits until it accepts."""
        self._spawn_sshd(host)
        wait_for_port(host, 22)

    def _spawn_sshd(self, host: SimHost) -> None:
        mounts = [f"mount --bind {q(host.home)} /root"]
        files = self._sshd_files(host)
        if host.rootfs:
            point = self._chroot_mountpoint(host)
            os.makedirs(point, mode=0o755, exist_ok=True)
            os.makedirs(files, mode=0o755, exist_ok=True)
            mounts = [
                f"mount --bind {q(host.dir)} {files}",
                f"mount --bind {q(host.rootfs)} {point}",
                f"mount --bind {q(host.home)} {point}/root",
                f"mount --bind {q(host.dir / 'tmp')} {point}/tmp",
                # sshd makes a forwarded agent's socket in its own /tmp, outside the chroot:
                # the same directory on both sides lets the session's ssh (a relay hop) use it.
                f"mount --bind {q(host.dir / 'tmp')} /tmp",
                f"mount -t proc proc {point}/proc",
                f"mount --rbind /dev {point}/dev",
                f"mount --rbind /sys {point}/sys",
            ]
        script = "set -e; " + "; ".join(mounts) + f"; exec /usr/sbin/sshd -D -e -f {q(files + '/sshd_config')}"
        log = open(host.dir / "sshd.log", "ab")
        host.sshd = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private", "--",
             "sh", "-c", script], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def shape_all(self, rate: str = "100mbit") -> None:
        """``tc tbf`` on both ends of every veth (controller's uplink included)."""
        for device in self.veths():
            netns = device[0]
            prefix = ["ip", "netns", "exec", netns] if netns else []
            sh(*prefix, "tc", "qdisc", "replace", "dev", device[1], "root", "tbf", "rate", rate,
               "burst", "64kb", "latency", "50ms")

    def veths(self) -> List[tuple]:
        devices = [("", CONTROLLER_VETH), ("", CONTROLLER_PORT_VETH)]
        for host in self.hosts:
            devices += [("", host.veth_bridge_side), (host.netns, host.veth_host_side)]
        return devices

    def cluster_toml(self, *, profile: str, hosts: Optional[List[SimHost]] = None,
                     python: str = "python3", job: bool = True) -> str:
        """A cluster.toml that reaches these hosts over ssh as root with the test key."""
        chosen = hosts if hosts is not None else self.hosts
        lines = [
            "[cluster]",
            'transport = "ssh"',
            'user = "root"',
            f'profile = "{profile}"',
            f'key = "{self.client_key}"',
            f'known_hosts = "{self.known_hosts}"',
            "connect_timeout = 3",
            f'python = "{python}"',
            'home = "/root/piforge"',
            "",
        ]
        for host in chosen:
            lines += ["[[hosts]]", f'name = "{host.name}"', f'address = "{host.address}"', "tf_port = 12345", ""]
        if job:
            lines += ["[jobs.smoke]", ""]
        return "\n".join(lines)


def batch(*commands: str, netns: Optional[str] = None) -> None:
    """Run ``ip`` commands in one process (``ip -batch``); inside ``netns`` if given."""
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    done = subprocess.run([*prefix, "-batch", "-"], input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"ip -batch{' in ' + netns if netns else ''} failed: {done.stderr.strip()[-2000:]}")


def host_key(path: Path) -> Path:
    """The host's ed25519 key, made once."""
    if not path.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path))
    return path


def process_memory(pid: int, key: str, source: str) -> int:
    """A ``kB`` line of /proc/PID/<source> in bytes (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def wait_for_port(host: SimHost, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.sshd is not None and host.sshd.poll() is not None:
            log = (host.dir / "sshd.log").read_text(errors="replace")
            raise RuntimeError(f"sshd of {host.name} exited: {log[-2000:]}")
        try:
            with socket.create_connection((host.address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd of {host.name} did not listen on {host.address}:{port}")


def clear_stale() -> None:
    """Remove every pfc- namespace (killing what runs in it), the veths and the bridge."""
    names = [line.split()[0] for line in sh("ip", "netns", "list", check=False).stdout.splitlines() if line.strip()]
    for netns in names:
        if not netns.startswith(NETNS_PREFIX):
            continue
        for pid in sh("ip", "netns", "pids", netns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", netns, check=False)
    links = sh("ip", "-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith("pfc-") and not name.startswith("pfc-h"):
            sh("ip", "link", "del", name, check=False)
    sh("ip", "link", "del", BRIDGE, check=False)
    run_dirs = [p for p in Path("/run").glob(f"{NETNS_PREFIX}*") if p.is_dir()]
    for directory in run_dirs:
        # mountpoints only ever existed inside the hosts' private mount namespaces
        try:
            for mountpoint in ("root", "host"):
                if (directory / mountpoint).is_dir():
                    (directory / mountpoint).rmdir()
            directory.rmdir()
        except OSError:
            pass


def q(path: object) -> str:
    import shlex
    return shlex.quote(str(path))
