"""Start every worker of a job and watch them until all succeed or the first one fails.

Why a supervisor at all: MultiWorkerMirroredStrategy has no failure handling of its
own. A worker whose peer never starts waits forever, TensorFlow ignores SIGTERM, and a
dead peer leaves the others stuck or failing seconds later. So the controller decides:
- startup deadline: every worker must open its TF port (or take a training step) in time;
- fail-fast: one worker exiting non-zero, or a host whose TF port stops answering (link
  down, host gone), stops every other worker: TERM, then KILL after a grace period;
- Ctrl-C stops everything the same way; afterwards nothing listens on the job's ports.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .console_filter import is_startup_noise
from .records import RunRecord, parse_event

Endpoint = Tuple[str, int]


@dataclass
class WorkerSpec:
    """One process of a job: where it runs, what it runs, and the TF port it will open."""

    host: Any  # build.cluster.hosts.Host
    argv: List[str]
    env: Dict[str, str]
    cwd: str
    endpoint: Optional[Endpoint] = None  # None: no TF server (the single-worker baseline)

    @property
    def name(self) -> str:
        return str(self.host.name)


@dataclass(frozen=True)
class Deadlines:
    startup: float = 300.0      # until every worker is up (a Pi imports TF in ~30 s)
    drop_after: float = 6.0     # a running worker's TF port silent this long = host dropped
    probe_every: float = 1.0
    term_grace: float = 8.0     # TERM, then KILL (TF ignores TERM; keep well under 30 s)


@dataclass
class Outcome:
    status: str                  # succeeded | failed | interrupted
    cause: str = ""
    host: Optional[str] = None
    exit_codes: Dict[str, Optional[int]] = field(default_factory=dict)
    ready_after: Optional[float] = None   # seconds until every worker was up
    stopped_in: Optional[float] = None    # seconds from the failure to every worker gone
    busy_ports: List[str] = field(default_factory=list)
    ended_at: Optional[float] = None      # wall clock when the end (or the failure) was seen


def port_open(endpoint: Endpoint, timeout: float = 1.0) -> bool:
    """Does something accept TCP connections at ``endpoint``?"""
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return True
    except OSError:
        return False


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class _Worker:
    """A started worker: its process, a thread copying its output, and what we learnt."""

    def __init__(self, spec: WorkerSpec, record: RunRecord, echo: Callable[[str, str], None]) -> None:
        self.spec = spec
        self.record = record
        self.echo = echo
        self.started = time.monotonic()
        self.ready_at: Optional[float] = None
        self.last_seen = self.started
        self.tail: List[str] = []
        self.process = spec.host.spawn(spec.argv, env=spec.env, cwd=spec.cwd)
        self.reader = threading.Thread(target=self._read, name=f"log-{spec.name}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.record.log_line(self.spec.name, line)
            self.tail = (self.tail + [line])[-12:]
            fields = parse_event(line)
            if fields is not None:
                self.record.event(self.spec.name, fields)
                if fields["kind"] == "first_step":
                    self.mark_ready()
                continue
            if not is_startup_noise(line):  # the host's log file above keeps it
                self.echo(self.spec.name, line)

    def mark_ready(self) -> None:
        if self.ready_at is None:
            self.ready_at = time.monotonic()
            self.last_seen = self.ready_at

    @property
    def returncode(self) -> Optional[int]:
        return self.process.poll()

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def error_tail(self) -> str:
        lines = [line for line in self.tail if line.strip() and not line.startswith("PIFORGE_EVENT")]
        return "\n".join(f"    {line}" for line in lines[-5:])


class Supervisor:
    def __init__(self, specs: List[WorkerSpec], record: RunRecord, deadlines: Deadlines = Deadlines(),
                 echo: Optional[Callable[[str, str], None]] = None) -> None:
        self.specs = specs
        self.record = record
        self.deadlines = deadlines
        self.workers: List[_Worker] = []
        width = max(len(s.name) for s in specs)
        self._print_lock = threading.Lock()

        def default_echo(host: str, line: str) -> None:
            with self._print_lock:
                sys.stdout.write(f"{host:>{width}} | {line}\n")
                sys.stdout.flush()

        self.echo = echo or default_echo
        self._probes = ThreadPoolExecutor(max_workers=min(32, len(specs)), thread_name_prefix="probe")

    def run(self) -> Outcome:
        """Start all, watch until done; always leaves no worker running."""
        outcome = Outcome(status="failed")
        failed_at: Optional[float] = None
        try:
            for spec in self.specs:
                self.workers.append(_Worker(spec, self.record, self.echo))
            outcome = self._watch()
        except KeyboardInterrupt:
            outcome = Outcome(status="interrupted", cause="interrupted by the user (Ctrl-C)")
        finally:
            failed_at = time.monotonic()
            outcome.ended_at = time.time()
            self._stop_all()
            outcome.stopped_in = round(time.monotonic() - failed_at, 2)
            for worker in self.workers:
                worker.reader.join(timeout=5)
                outcome.exit_codes[worker.spec.name] = worker.returncode
            outcome.busy_ports = self._busy_ports()
            self._probes.shutdown(wait=False)
        return outcome

    # -- watching ---------------------------------------------------------------------
    def _watch(self) -> Outcome:
        start = time.monotonic()
        ready_after: Optional[float] = None
        next_probe = start
        while True:
            codes = {w.spec.name: w.returncode for w in self.workers}
            for worker in self.workers:
                code = codes[worker.spec.name]
                if code is not None and code != 0:
                    # The process has exited; its last lines may still be in the pipe:
                    # let the reader drain them (EOF comes at once) so the cause shows them.
                    worker.reader.join(timeout=2)
                    tail = worker.error_tail()
                    return Outcome(status="failed", host=worker.spec.name, ready_after=ready_after,
                                   cause=f"worker on {worker.spec.name} {describe_exit(code)}"
                                         + (f"; its last lines:\n{tail}" if tail else ""))
            if all(code == 0 for code in codes.values()):
                return Outcome(status="succeeded", ready_after=ready_after)
            now = time.monotonic()
            if now >= next_probe:
                next_probe = now + self.deadlines.probe_every
                self._probe()
                now = time.monotonic()
            for worker in self.workers:
                if worker.returncode == 0:
                    worker.mark_ready()
            if ready_after is None:
                if all(w.ready_at is not None for w in self.workers):
                    ready_after = round(max(w.ready_at for w in self.workers) - start, 2)  # type: ignore[type-var, operator]
                    self.record.update(ready_after=ready_after)
                elif now - start > self.deadlines.startup:
                    late = [w for w in self.workers if w.ready_at is None]
                    names = ", ".join(w.spec.name for w in late)
                    ports = ", ".join(f"{w.spec.endpoint[0]}:{w.spec.endpoint[1]}" for w in late if w.spec.endpoint)
                    return Outcome(status="failed", host=late[0].spec.name,
                                   cause=f"startup deadline: {names} did not come up within "
                                         f"{self.deadlines.startup:g} s (TF port {ports or '-'} never opened, "
                                         "no training step)")
            for worker in self.workers:
                if worker.ready_at is None or worker.spec.endpoint is None or worker.returncode is not None:
                    continue
                silent = now - worker.last_seen
                if silent > self.deadlines.drop_after:
                    host, port = worker.spec.endpoint
                    return Outcome(status="failed", host=worker.spec.name, ready_after=ready_after,
                                   cause=f"host {worker.spec.name} dropped: its TF port {host}:{port} "
                                         f"has not answered for {silent:.0f} s (link down or host gone)")
            time.sleep(0.1)

    def _probe(self) -> None:
        """Concurrently check the TF port of every running worker; a reply = alive (or up)."""
        candidates = [w for w in self.workers if w.spec.endpoint is not None and w.returncode is None]
        timeout = min(2.0, self.deadlines.drop_after / 2)
        results = self._probes.map(lambda w: (w, time.monotonic(), port_open(w.spec.endpoint, timeout)),
                                   candidates)
        for worker, when, alive in results:
            if alive:
                worker.mark_ready()
                worker.last_seen = max(worker.last_seen, when)

    # -- stopping ---------------------------------------------------------------------
    def _stop_all(self) -> None:
        running = [w for w in self.workers if w.returncode is None]
        for worker in running:
            worker.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.deadlines.term_grace
        while time.monotonic() < deadline and any(w.returncode is None for w in running):
            time.sleep(0.1)
        for worker in self.workers:
            # Also the group of workers that exited: whatever they started must not outlive them.
            worker.signal_group(signal.SIGKILL)
        for worker in self.workers:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if worker.process.stdin:
                try:
                    worker.process.stdin.close()
                except OSError:
                    pass

    def _busy_ports(self) -> List[str]:
        """TF ports something still listens on after the job (should be none)."""
        busy: List[str] = []
        for worker in self.workers:
            endpoint = worker.spec.endpoint
            if endpoint is None:
                continue
            for _ in range(20):  # the kernel may need a moment after a KILL
                if not port_open(endpoint, timeout=0.5):
                    break
                time.sleep(0.25)
            else:
                busy.append(f"{worker.spec.name} {endpoint[0]}:{endpoint[1]}")
        return busy
