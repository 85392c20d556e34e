"""Fan-out: get the same files onto many ssh hosts without the controller's uplink
being the bottleneck.

Files are cut into chunks. The hosts that need a file form a chain in cluster order;
each host receives every chunk from the previous host in the chain (the first one from
the controller) as soon as that host has verified it, so all links carry data at once:
N hosts take about (chunks + N - 1) chunk-times instead of N x chunks. Every hop is a
plain ``scp`` (controller -> host over the ControlMaster connection; host -> host on
the sending host, authenticated by the forwarded agent, host keys checked against the
controller's known_hosts entries), and every hop is verified by sha256 on the receiving
host before the chunk counts as there. A relay that fails (no scp on the host, a
firewall between hosts, a corrupted hop) falls back to a direct copy from the
controller; a host that fails does not stop the others.

piforge only plans who sends to whom; scp moves the bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..errors import HostError, StoreError
from ..hashing import sha256_bytes
from ..paths import piforge_home
from .hostscripts import ASSEMBLE, EXIT_HASH_MISMATCH, RELAY, VERIFY, run_script
from .hosts.ssh import SshHost
from .wheelhouse import WheelFile

CHUNK_BYTES = 8 << 20     # small enough that an 8-host chain adds ~7 chunk-times to a 200 MB copy
DIRECT_ATTEMPTS = 3        # a hash mismatch on a direct copy is retried this often
HOP_TIMEOUT = 600.0
Report = Callable[[str], None]


@dataclass(frozen=True)
class Chunk:
    file_sha: str
    index: int
    size: int
    sha256: str
    local: Path            # the chunk's bytes on the controller
    file_name: str = ""
    whole: bool = False    # the file's only chunk: it travels as the file itself

    def describe(self) -> str:
        return f"chunk {self.index} of {self.file_name or self.file_sha[:12]}"


class ChunkCache:
    """Chunks of store files on the controller, cut once and reused by every deploy."""

    def __init__(self, root: Optional[Path] = None, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.root = root or piforge_home() / "deploy" / "chunks"
        self.chunk_bytes = chunk_bytes

    def chunks(self, wheel: WheelFile) -> List[Chunk]:
        directory = self.root / f"{wheel.sha256}-{self.chunk_bytes}"
        index_file = directory / "chunks.json"
        if not index_file.is_file():
            self._cut(wheel, directory)
        entries = json.loads(index_file.read_text())
        whole = len(entries) == 1
        return [Chunk(wheel.sha256, i, e["size"], e["sha256"], wheel.path if whole else directory / str(i),
                      wheel.name, whole) for i, e in enumerate(entries)]

    def _cut(self, wheel: WheelFile, directory: Path) -> None:
        """Cut ``wheel`` into chunk files, checking on the way that it still has its sha256
        (the hosts rely on it: they verify chunks, and only the size of the joined file)."""
        staging = directory.with_name(directory.name + f".tmp{os.getpid()}-{threading.get_ident()}")
        staging.mkdir(parents=True, exist_ok=True)
        entries = []
        whole = hashlib.sha256()
        with open(wheel.path, "rb") as source:
            index = 0
            while True:
                block = source.read(self.chunk_bytes)
                if not block and index > 0:
                    break
                whole.update(block)
                (staging / str(index)).write_bytes(block)
                entries.append({"size": len(block), "sha256": sha256_bytes(block)})
                index += 1
                if len(block) < self.chunk_bytes:
                    break
        if whole.hexdigest() != wheel.sha256:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"{wheel.path}: content does not match its manifest sha256 "
                             f"(expected {wheel.sha256}, got {whole.hexdigest()}); run: ./piforge verify")
        (staging / "chunks.json").write_text(json.dumps(entries))
        try:
            os.rename(staging, directory)
        except OSError:  # another deploy cut it meanwhile
            shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Receiver:
    """One ssh host receiving files in this fan-out."""

    host: SshHost
    home: str
    needs: List[WheelFile]
    has_chunks: Set[Tuple[str, int]] = field(default_factory=set)   # verified chunks already there
    can_relay: bool = False        # has scp and got the relay known_hosts
    bytes_done: int = 0            # present on the host (reused or received)
    bytes_total: int = 0
    bytes_sent: int = 0            # actually sent in this run
    error: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    done: bool = False

    def incoming(self, file_sha: str) -> str:
        return f"{self.home}/wheels/.incoming/{file_sha}"

    def chunk_path(self, chunk: Chunk) -> str:
        if chunk.whole:
            return f"{self.home}/wheels/{chunk.file_sha}/{chunk.file_name}"
        return f"{self.incoming(chunk.file_sha)}/{chunk.index}"

    def wheel_path(self, wheel: WheelFile) -> str:
        return f"{self.home}/wheels/{wheel.sha256}/{wheel.name}"


class FanOut:
    """Runs the chain plan: one thread per receiver, all hops verified."""

    def __init__(self, receivers: List[Receiver], cache: ChunkCache, report: Report,
                 relay: bool = True) -> None:
        self.receivers = receivers
        self.cache = cache
        self.report = report
        self.relay = relay
        self.changed = threading.Condition()
        self.relays_used = 0
        self.direct_hops = 0
        self.broken: Set[Tuple[str, str]] = set()   # (sender, receiver) pairs whose relay failed

    # -- the plan --------------------------------------------------------------------
    def parent_of(self, receiver: Receiver, wheel: WheelFile) -> Optional[Receiver]:
        """The host before ``receiver`` in this file's chain that can relay (None: the controller)."""
        if not self.relay:
            return None
        chain = [r for r in self.receivers if any(w.sha256 == wheel.sha256 for w in r.needs)]
        position = chain.index(receiver)
        for candidate in reversed(chain[:position]):
            if candidate.can_relay and candidate.error is None and \
                    (candidate.host.name, receiver.host.name) not in self.broken:
                return candidate
        return None

    # -- running -----------------------------------------------------------------------
    def run(self) -> None:
        for receiver in self.receivers:
            chunks = [c for w in receiver.needs for c in self.cache.chunks(w)]
            receiver.bytes_total = sum(c.size for c in chunks)
            receiver.bytes_done = sum(c.size for c in chunks if (c.file_sha, c.index) in receiver.has_chunks)
        threads = [threading.Thread(target=self._receive, args=(r,), name=f"fanout-{r.host.name}", daemon=True)
                   for r in self.receivers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _receive(self, receiver: Receiver) -> None:
        # Joining a file's chunks runs beside the next file's transfer: an assembly in the
        # receiving loop would stall every host after this one in the chain.
        assembler = ThreadPoolExecutor(max_workers=1)
        assemblies = []
        try:
            plans = [(wheel, self.cache.chunks(wheel)) for wheel in receiver.needs]
            receiver.host.run(["mkdir", "-p", *[os.path.dirname(receiver.chunk_path(chunks[0])) for _, chunks in plans]],
                              timeout=60)
            for wheel, chunks in plans:
                for chunk in chunks:
                    key = (chunk.file_sha, chunk.index)
                    if key not in receiver.has_chunks:
                        self._deliver(receiver, wheel, chunk)
                        receiver.bytes_done += chunk.size
                        receiver.bytes_sent += chunk.size
                    with self.changed:
                        receiver.has_chunks.add(key)
                        self.changed.notify_all()
                if not chunks[0].whole:
                    assemblies.append(assembler.submit(self._assemble, receiver, wheel, chunks))
            for assembly in assemblies:
                assembly.result()
        except HostError as error:
            receiver.error = str(error)
        finally:
            assembler.shutdown(wait=True)
            with self.changed:
                receiver.done = True
                self.changed.notify_all()

    def _deliver(self, receiver: Receiver, wheel: WheelFile, chunk: Chunk) -> None:
        parent = self.parent_of(receiver, wheel)
        if parent is not None and self._wait_for(parent, chunk):
            try:
                self._relay_hop(parent, receiver, chunk)
                self.relays_used += 1
                return
            except HostError as error:
                # This pair is not used again; the next chunks come from another host or here.
                self.broken.add((parent.host.name, receiver.host.name))
                receiver.notes.append(f"relay {parent.host.name}->{receiver.host.name} failed ({_short(error)}); "
                                      "copied from the controller")
        self._direct_hop(receiver, chunk)

    def _wait_for(self, parent: Receiver, chunk: Chunk) -> bool:
        key = (chunk.file_sha, chunk.index)
        with self.changed:
            while key not in parent.has_chunks and parent.error is None and not parent.done:
                self.changed.wait(timeout=5)
            return key in parent.has_chunks and parent.error is None

    def _direct_hop(self, receiver: Receiver, chunk: Chunk) -> None:
        final = receiver.chunk_path(chunk)
        for attempt in range(1, DIRECT_ATTEMPTS + 1):
            receiver.host.put_exact(chunk.local, f"{final}.part", timeout=HOP_TIMEOUT, what=f"sending {chunk.describe()}")
            self.direct_hops += 1
            result = run_script(receiver.host, VERIFY, [f"{final}.part", final, chunk.sha256], timeout=120)
            if result.ok:
                return
            if result.returncode != EXIT_HASH_MISMATCH or attempt == DIRECT_ATTEMPTS:
                result.check()
            receiver.notes.append(f"{chunk.describe()} arrived corrupted; re-sent")

    def _relay_hop(self, sender: Receiver, receiver: Receiver, chunk: Chunk) -> None:
        final = receiver.chunk_path(chunk)
        spec = receiver.host.spec
        destination = f"{spec.user}@{spec.address}" if spec.user else spec.address
        run_script(sender.host, RELAY, [sender.chunk_path(chunk), f"{destination}:{final}.part", spec.ssh_port,
                                        relay_known_hosts(sender.home), max(1, int(spec.connect_timeout)),
                                        relay_control_path(sender.home)], timeout=HOP_TIMEOUT).check()
        run_script(receiver.host, VERIFY, [f"{final}.part", final, chunk.sha256], timeout=120).check()

    def _assemble(self, receiver: Receiver, wheel: WheelFile, chunks: List[Chunk]) -> None:
        run_script(receiver.host, ASSEMBLE, [receiver.wheel_path(wheel), wheel.size,
                                             *[receiver.chunk_path(c) for c in chunks]], timeout=600).check()

    # -- progress --------------------------------------------------------------------
    def progress_line(self) -> str:
        parts = [f"{r.host.name} {r.bytes_done / 1e6:.0f}/{r.bytes_total / 1e6:.0f} MB"
                 + (" FAILED" if r.error else "") for r in self.receivers]
        return "deploy: copying: " + ", ".join(parts)


def relay_known_hosts(home: str) -> str:
    return f"{home}/.relay/known_hosts"


def relay_control_path(home: str) -> str:
    """The relay host's own ControlMaster socket per next host (%C: ssh's hash of it)."""
    return f"{home}/.relay/cm-%C"


def run_with_progress(fanout: FanOut, report: Report, every: float = 2.0) -> None:
    """Run ``fanout``, printing bytes per host every ``every`` seconds while it copies."""
    finished = threading.Event()

    def ticker() -> None:
        while not finished.wait(every):
            report(fanout.progress_line())

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        fanout.run()
    finally:
        finished.set()
        thread.join()
    if any(r.bytes_total for r in fanout.receivers):
        report(fanout.progress_line() + f" ({time.monotonic() - started:.1f} s, "
               f"{fanout.relays_used} relayed and {fanout.direct_hops} direct chunk copies)")


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."
