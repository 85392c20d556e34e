"""`doit deploy` / `doit rollback`: put a profile's wheelhouse into a fresh venv on every
host, switch ``current`` only once the check import works there, keep the previous one.

Hosts are handled in parallel and independently: one host down or failing does not stop
the others; the caller gets one outcome per host and raises DeployError naming the
failed ones. A rerun copies only what is missing (files are addressed by sha256 on the
hosts) and does nothing on hosts already running this wheelhouse. Local hosts with the
same home share one install.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..compat import Target as WheelTarget
from ..concurrency import map_bounded
from ..compat import normalize_arch, require_fit, target_of
from ..errors import DeployError, HostError
from ..profiles import Profile
from .agent import relay_agent
from .config import ClusterConfig, HostSpec
from .fanout import ChunkCache, FanOut, Receiver, progress_line, relay_known_hosts, run_with_progress
from .stream import StreamChain
from .hosts import Host, close_all, open_host
from .hosts.local import LocalHost
from .hosts.ssh import SshHost
from .hostscripts import (CLEAN_INCOMING, EXIT_NO_PREVIOUS, INSTALL, PROBE, ROLLBACK,
                          VERIFY, parse_probe, run_script)
from . import needed_libs
from .table import render_table
from .wheelhouse import WheelFile, Wheelhouse

Report = Callable[[str], None]
PROBE_TIMEOUT = 60.0
INSTALL_TIMEOUT = 3600.0   # TensorFlow under qemu or on a Pi's SD card takes minutes


@dataclass
class Target:
    """One install: an ssh host, or every local host sharing a home."""

    host: Host
    serves: Tuple[str, ...]
    python: str
    status: str = "pending"
    detail: str = ""
    copied: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    probe: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"

    def fail(self, why: str) -> None:
        self.status, self.detail = "FAILED", why
        self.seconds = time.monotonic() - self.started


def python_for(spec: HostSpec, profile: Profile) -> str:
    """The host's interpreter that creates venvs: cluster.toml's, else the profile's."""
    return spec.python or profile.host_python


def venv_id(wheelhouse: Wheelhouse) -> str:
    return f"v-{wheelhouse.key}"


def targets_of(cluster: ClusterConfig, profile: Profile, agent_socket: Optional[str] = None,
               hosts: Optional[Sequence[str]] = None) -> List[Target]:
    """Group local hosts by home (one install serves them all); one target per ssh host."""
    targets: List[Target] = []
    local_by_home: Dict[str, Target] = {}
    for spec in cluster.hosts:
        if hosts is not None and spec.name not in hosts:
            continue
        host = open_host(spec, agent_socket=agent_socket)
        if isinstance(host, LocalHost):
            key = f"{host.home}\0{python_for(spec, profile)}"
            if key in local_by_home:
                shared = local_by_home[key]
                shared.serves = shared.serves + (spec.name,)
                continue
            target = Target(host=host, serves=(spec.name,), python=python_for(spec, profile))
            local_by_home[key] = target
        else:
            target = Target(host=host, serves=(spec.name,), python=python_for(spec, profile))
        targets.append(target)
    return targets


def _parallel(targets: Sequence[Target], work: Callable[[Target], object]) -> None:
    """Run ``work`` on every target at once; a HostError fails that target only."""
    def guarded(target: Target) -> None:
        if target.failed:
            return
        try:
            work(target)
        except HostError as error:
            target.fail(str(error).split(": ", 1)[-1] if str(error).startswith(target.host.name) else str(error))

    map_bounded(guarded, targets)


def deploy(cluster: ClusterConfig, profile: Profile, wheelhouse: Wheelhouse, *,
           report: Report = print, relay: bool = True, chunk_cache: Optional[ChunkCache] = None,
           hosts: Optional[Sequence[str]] = None, stream: bool = True,
           stream_transport: Optional[str] = None) -> List[Target]:
    """Deploy ``wheelhouse`` for ``profile`` to the cluster's hosts; returns one Target per install.

    ``stream=False`` sends by the chunk fan-out alone; ``stream_transport`` overrides the
    cluster's ``deploy_stream`` (``ssh`` or ``tcp``).

    Raises CompatError before any host is contacted if a wheel does not fit the profile
    (or its pip is not shipped); a host whose arch or glibc does not match the profile
    is failed after the probe, before a byte is copied to it."""
    accepts = target_of(profile)
    require_fit([w.name for w in wheelhouse.wheels], accepts, f"deploy: wheelhouse {wheelhouse.path.name}")
    vid = venv_id(wheelhouse)
    keys = sorted({s.key for s in cluster.hosts if s.transport == "ssh" and s.key})
    use_agent = relay and any(s.transport == "ssh" for s in cluster.hosts)
    with relay_agent(keys if use_agent else [], report) as agent:
        targets = targets_of(cluster, profile, agent if use_agent else None, hosts)
        try:
            report(f"deploy: {wheelhouse.path.name} ({len(wheelhouse.wheels)} wheels, "
                   f"{wheelhouse.total_bytes / 1e6:.1f} MB) -> {', '.join(n for t in targets for n in t.serves)}")
            _parallel(targets, lambda t: _probe(t, profile))
            for target in targets:
                if not target.failed:
                    _refuse_unfit_host(target, profile, accepts)
            todo = [t for t in targets if not t.failed and not _up_to_date(t, vid)]
            for target in targets:
                if not target.failed and target not in todo:
                    target.status, target.detail = "up to date", vid
                    target.seconds = time.monotonic() - target.started
            _copy_local([t for t in todo if isinstance(t.host, LocalHost)], wheelhouse, report)
            remote = [t for t in todo if isinstance(t.host, SshHost) and not t.failed]
            _copy_remote(remote, wheelhouse, report, relay=relay and agent is not None,
                         cache=chunk_cache or ChunkCache(),
                         stream=(stream_transport or cluster.deploy_stream) if stream else None)
            _parallel(todo, lambda t: _install(t, profile, wheelhouse, vid, report))
            _parallel([t for t in remote if not t.failed],
                      lambda t: run_script(t.host, CLEAN_INCOMING, [t.host.home, *[w.sha256 for w in wheelhouse.wheels]],
                                           timeout=PROBE_TIMEOUT))
        finally:
            close_all(t.host for t in targets)
    return targets


def _probe(target: Target, profile: Profile) -> None:
    result = run_script(target.host, PROBE, [target.host.home, profile.name, target.python], timeout=PROBE_TIMEOUT)
    result.check()
    target.probe = parse_probe(result.stdout)
    if target.probe.get("python", ["missing"])[0] == "missing":
        raise HostError(f"{target.host.name}: no Python at {target.python!r} on the host")


def _refuse_unfit_host(target: Target, profile: Profile, accepts: WheelTarget) -> None:
    """Fail a host whose arch (or older glibc) cannot run the profile's wheels: nothing
    is copied to it and its ``current`` stays as it is."""
    arch = normalize_arch(target.probe.get("arch", [""])[0])
    name = ", ".join(target.serves)
    if arch != accepts.arch:
        target.fail(f"host {name} has architecture {arch or 'unknown'}, profile {profile.name} is "
                    f"{profile.platform} (its wheels are for {accepts.arch}); refused before copying anything")
        return
    glibc = target.probe.get("glibc", [""])[0].strip().split(".")
    if len(glibc) >= 2 and all(p.isdigit() for p in glibc[:2]) and (int(glibc[0]), int(glibc[1])) < accepts.glibc:
        target.fail(f"host {name} has glibc {'.'.join(glibc)}, profile {profile.name} needs "
                    f"{accepts.glibc[0]}.{accepts.glibc[1]}; refused before copying anything")


def _up_to_date(target: Target, vid: str) -> bool:
    return target.probe.get("current", [""])[0] == vid and target.probe.get("ok", ["0"])[0] == "1"


def _present(target: Target) -> Dict[str, str]:
    """sha256 -> path of every verified wheel already on the host."""
    found = {}
    for path in target.probe.get("have", []):
        parts = path.rsplit("/", 2)
        if len(parts) == 3:
            found[parts[1]] = path
    return found


def _missing(target: Target, wheelhouse: Wheelhouse) -> List[WheelFile]:
    present = _present(target)
    return [w for w in wheelhouse.wheels if w.sha256 not in present]


def wheel_path(home: str, wheel: WheelFile) -> str:
    return f"{home}/wheels/{wheel.sha256}/{wheel.name}"


def _copy_local(targets: List[Target], wheelhouse: Wheelhouse, report: Report) -> None:
    """Local installs: link (or copy) store files into the shared wheels dir, verified."""
    def copy(target: Target) -> None:
        for wheel in _missing(target, wheelhouse):
            final = Path(wheel_path(target.host.home, wheel))
            partial = final.with_name(f".{final.name}.part")
            final.parent.mkdir(parents=True, exist_ok=True)
            if partial.exists():
                partial.unlink()
            try:
                os.link(wheel.path, partial)
            except OSError:
                shutil.copyfile(wheel.path, partial)
            run_script(target.host, VERIFY, [str(partial), str(final), wheel.sha256], timeout=600).check()
            target.copied += wheel.size
        if target.copied:
            report(f"deploy: {', '.join(target.serves)}: {target.copied / 1e6:.1f} MB into {target.host.home}/wheels")

    _parallel(targets, copy)


def _copy_remote(targets: List[Target], wheelhouse: Wheelhouse, report: Report, *, relay: bool,
                 cache: ChunkCache, stream: Optional[str]) -> None:
    """Stream the missing files through every host that can relay (one pipelined chain),
    then send whatever did not arrive with the chunk fan-out (which also serves hosts that
    cannot relay, and every host when relays are off)."""
    receivers: Dict[str, Receiver] = {}
    for target in targets:
        needs = _missing(target, wheelhouse)
        if not needs:
            continue
        assert isinstance(target.host, SshHost)
        has = set()
        for path in target.probe.get("chunk", []):
            sha, index = path.rsplit("/", 2)[-2:]
            if index.isdigit():
                has.add((sha, int(index)))
        receivers[target.host.name] = Receiver(host=target.host, home=target.host.home, needs=needs,
                                               has_chunks=has, can_relay=relay and target.probe.get("scp") == ["1"],
                                               python=target.python)
    if not receivers:
        return
    if relay:
        _install_relay_known_hosts(list(receivers.values()))
    everyone = list(receivers.values())
    chain = [r for r in everyone if r.can_relay]
    chain += [r for r in everyone if not r.can_relay][:1]   # the chain's last host need not relay
    seconds, streamed, fanout = 0.0, 0, None
    if stream and relay and len(chain) >= (1 if stream == "tcp" else 2):   # tcp: even one host skips ssh's crypto
        streaming = StreamChain(chain, stream)
        seconds += run_with_progress(streaming.run, chain, report)
        streamed = streaming.streamed_to
        held_back = streaming.held_back()
        if held_back:
            report(f"deploy: the stream went at the pace of {held_back}")
    rest = [r for r in everyone if r.needs and r.error is None]
    if rest:
        fanout = FanOut(rest, cache, report, relay=relay)
        seconds += run_with_progress(fanout.run, rest, report)
    report(progress_line(everyone) + f" ({seconds:.1f} s; streamed to {streamed} hosts, "
           f"{fanout.relays_used if fanout else 0} relayed and {fanout.direct_hops if fanout else 0} direct chunk copies)")
    for target in targets:
        receiver = receivers.get(target.host.name)
        if receiver is None:
            continue
        target.copied = receiver.bytes_sent
        if receiver.notes:
            target.detail = "; ".join(sorted(set(receiver.notes)))
        if receiver.error:
            target.fail(receiver.error.split(": ", 1)[-1])


def _install_relay_known_hosts(receivers: List[Receiver]) -> None:
    """Give each relay host the controller's known_hosts entries of the other hosts, so
    its scp checks host keys as strictly as the controller does."""
    lines: List[str] = []
    for receiver in receivers:
        spec = receiver.host.spec
        lookup = spec.address if spec.ssh_port == 22 else f"[{spec.address}]:{spec.ssh_port}"
        found = subprocess.run(["ssh-keygen", "-F", lookup, "-f", os.path.expanduser(spec.known_hosts)],
                               capture_output=True, text=True, timeout=10).stdout
        lines += [line for line in found.splitlines() if line and not line.startswith("#")]
    with tempfile.NamedTemporaryFile("w", suffix=".known_hosts", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        local = Path(handle.name)
    try:
        def upload(receiver: Receiver) -> None:
            try:
                receiver.host.put(local, relay_known_hosts(receiver.home), timeout=60)
            except HostError:
                receiver.can_relay = False
        map_bounded(upload, [r for r in receivers if r.can_relay])
    finally:
        local.unlink()


def _install(target: Target, profile: Profile, wheelhouse: Wheelhouse, vid: str, report: Report) -> None:
    home = target.host.home
    pdir = target.host.profile_dir(profile.name)
    target.host.put(wheelhouse.lock, f"{pdir}/.lock-{vid}.txt", timeout=120)
    target.host.put(Path(needed_libs.__file__), f"{pdir}/.needed-libs-{vid}.py", timeout=120)
    wheels = [wheel_path(home, w) for w in wheelhouse.wheels]
    report(f"deploy: {', '.join(target.serves)}: installing {len(wheels)} wheels into {pdir}/{vid}")
    result = run_script(target.host, INSTALL,
                        [pdir, vid, target.python, wheelhouse.pip_wheel.name if wheelhouse.pip_wheel else "",
                         profile.check_import, "1", *wheels],
                        timeout=INSTALL_TIMEOUT)
    if not result.ok:
        lines = [line.strip() for line in result.stderr.strip().splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit {result.returncode}"
        # The script's own message comes last; the tool's last error line says why.
        context = [line for line in lines[:-1] if "Error" in line or "ERROR" in line] or lines[-2:-1]
        target.fail(f"{why}: {context[-1]}" if context else why)
        return
    versions = ", ".join(line.strip() for line in result.stdout.strip().splitlines())
    target.status = "installed"
    target.detail = "; ".join(filter(None, [f"{vid}: {versions}", target.detail]))
    target.seconds = time.monotonic() - target.started


def rollback(cluster: ClusterConfig, profile: Profile, *, report: Report = print,
             hosts: Optional[Sequence[str]] = None) -> List[Target]:
    """Point every host's ``current`` back at its ``previous`` venv (and vice versa)."""
    targets = targets_of(cluster, profile, hosts=hosts)
    try:
        def back(target: Target) -> None:
            result = run_script(target.host, ROLLBACK, [target.host.profile_dir(profile.name)], timeout=PROBE_TIMEOUT)
            if result.returncode == EXIT_NO_PREVIOUS:
                target.fail("no previous deployment to return to")
                return
            result.check()
            target.status, target.detail = "rolled back", f"current -> {result.stdout.strip()}"
            target.seconds = time.monotonic() - target.started
        _parallel(targets, back)
    finally:
        close_all(t.host for t in targets)
    return targets


def summary(targets: Sequence[Target]) -> str:
    rows = []
    for target in targets:
        for name in target.serves:
            rows.append([name, target.host.spec.transport, target.status,
                         f"{target.copied / 1e6:.1f} MB", f"{target.seconds:.1f} s", _clip(target.detail, 140)])
    return render_table(["host", "via", "result", "copied", "time", "detail"], rows)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def raise_for_failures(targets: Sequence[Target], what: str) -> None:
    failed = [(name, t.detail) for t in targets if t.failed for name in t.serves]
    if failed:
        names = ", ".join(name for name, _ in failed)
        details = "".join(f"\n  {name}: {detail}" for name, detail in failed if detail)
        raise DeployError(f"{what} failed on {len(failed)} of {sum(len(t.serves) for t in targets)} hosts: {names}"
                          f"{details}",
                          hint="fix the cause shown in the table and rerun: only what is missing is redone")
