"""Fan-out: get the same files onto many ssh hosts without the controller's uplink
being the bottleneck.

Files are cut into chunks; a host passes on a chunk as soon as it has verified it. For
every chunk a host still needs, the scheduler picks a sender: an idle host that already
has the chunk, else the controller when its uplink is idle; each sender (the controller
included) sends one chunk at a time, so every link runs at full rate. The first chunk
spreads like a doubling tree (1, 2, 4, 8 hosts), after which every host's uplink is busy
too: N hosts take little longer than one, and a slow host only slows itself. Every hop
is a plain ``scp`` (controller -> host over the ControlMaster connection; host -> host
on the sending host, authenticated by the forwarded agent, host keys checked against the
controller's known_hosts entries), verified by sha256 on the receiving host before the
chunk counts as there. A relay that fails (no scp on the host, a firewall between hosts,
a corrupted hop) is not used for that pair again and the chunk comes from elsewhere; a
host that fails does not stop the others.

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
from .hostscripts import ASSEMBLE, EXIT_HASH_MISMATCH, RELAY, VERIFY, VERIFY_MANY, run_script
from .hosts.ssh import SshHost
from .wheelhouse import WheelFile

CHUNK_BYTES = 8 << 20     # big enough that a hop's fixed cost (~0.1-0.3 s) is small beside its transfer
CONTROLLER = ""           # the controller's name among the senders
DIRECT_ATTEMPTS = 3        # a hash mismatch on a direct copy is retried this often
BATCH_CHUNKS = 4           # chunks one hop may carry when the sender has several the receiver lacks
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
    python: str = "python3"        # runs the stream relay on the host

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
        self.busy: Dict[str, bool] = {}             # sender name (or CONTROLLER) -> sending now
        self.sends: Dict[str, int] = {}
        self.waiting: Dict[str, tuple] = {}         # host -> (chunks it has, since, receiver, key wanted)

    # -- the plan --------------------------------------------------------------------
    def _holders(self, key: Tuple[str, int]) -> int:
        return sum(1 for r in self.receivers if key in r.has_chunks)

    def _options(self, receiver: Receiver, missing: List[Chunk]) -> List[Tuple[Optional[Receiver], List[Chunk]]]:
        """(sender, chunks) pairs ``receiver`` could start now, best first (under the lock).

        Any idle host holding any chunk the receiver lacks may send it, rarest chunk
        first, so hosts need not wait for each other's order; the controller's uplink,
        the scarce one, sends only chunks no host holds yet (with relays off: anything).
        """
        options: List[Tuple[Optional[Receiver], List[Chunk]]] = []
        if self.relay:
            idle = [r for r in self.receivers if r is not receiver and r.can_relay and r.error is None
                    and not self.busy.get(r.host.name) and (r.host.name, receiver.host.name) not in self.broken]
            for sender in sorted(idle, key=lambda r: self.sends.get(r.host.name, 0)):
                held = [c for c in missing if (c.file_sha, c.index) in sender.has_chunks]
                if held:
                    first = min(held, key=lambda c: self._holders((c.file_sha, c.index)))
                    options.append((sender, self._batch(first, held)))
        if not self.busy.get(CONTROLLER) or not self.relay:
            fresh = [c for c in missing if not self.relay or
                     not any((c.file_sha, c.index) in r.has_chunks and r.can_relay and r.error is None
                             and (r.host.name, receiver.host.name) not in self.broken
                             for r in self.receivers if r is not receiver)]
            if fresh:
                # While others still receive, one chunk at a time so new chunks spread early.
                options.append((None, [fresh[0]] if self._others_receiving(receiver) else self._batch(fresh[0], fresh)))
        return options

    @staticmethod
    def _batch(first: Chunk, candidates: List[Chunk]) -> List[Chunk]:
        """``first`` plus more chunks of the same file (one hop's fixed cost for several)."""
        if first.whole:
            return [first]
        more = [c for c in candidates if c.file_sha == first.file_sha and c is not first and not c.whole]
        return [first] + more[:BATCH_CHUNKS - 1]

    def _acquire(self, receiver: Receiver, missing: List[Chunk]) -> Tuple[Optional[Receiver], List[Chunk]]:
        """Block until some sender can serve ``receiver`` and reserve it (None: the controller).

        Fair: a sender goes first to the waiting host with the fewest chunks (then the one
        waiting longest), so no host starves while another keeps the fast sources.
        """
        with self.changed:
            self.waiting[receiver.host.name] = (len(receiver.has_chunks), time.monotonic(), receiver, missing)
            try:
                while True:
                    mine = self.waiting[receiver.host.name][:2]
                    for sender, batch in self._options(receiver, missing):
                        if self.relay and any(w[:2] < mine and any(o[0] is sender for o in self._options(w[2], w[3]))
                                              for w in self.waiting.values()):
                            continue
                        name = sender.host.name if sender else CONTROLLER
                        if self.relay:   # without relays every host copies from here at once (a star)
                            self.busy[name] = True
                        self.sends[name] = self.sends.get(name, 0) + 1
                        return sender, batch
                    self.changed.wait(timeout=1)
            finally:
                del self.waiting[receiver.host.name]

    def _others_receiving(self, receiver: Receiver) -> bool:
        return self.relay and any(r is not receiver and not r.done for r in self.receivers)

    def _release(self, sender: Optional[Receiver]) -> None:
        with self.changed:
            self.busy[sender.host.name if sender else CONTROLLER] = False
            self.changed.notify_all()

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
            receiver.host.run(["mkdir", "-p", *[os.path.dirname(receiver.chunk_path(chunks[0])) for _, chunks in plans],
                               *[f"{receiver.incoming(w.sha256)}/.recv" for w, chunks in plans if not chunks[0].whole]],
                              timeout=60)
            joined: Set[str] = set()
            while True:
                missing = [c for _, chunks in plans for c in chunks if (c.file_sha, c.index) not in receiver.has_chunks]
                if not missing:
                    break
                for chunk in self._deliver(receiver, missing):
                    receiver.bytes_done += chunk.size
                    receiver.bytes_sent += chunk.size
                    with self.changed:
                        receiver.has_chunks.add((chunk.file_sha, chunk.index))
                        self.changed.notify_all()
                for wheel, chunks in plans:
                    if wheel.sha256 not in joined and not chunks[0].whole and \
                            all((c.file_sha, c.index) in receiver.has_chunks for c in chunks):
                        joined.add(wheel.sha256)
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

    def _deliver(self, receiver: Receiver, missing: List[Chunk]) -> List[Chunk]:
        """One hop to ``receiver`` from whichever sender is free; the chunks verified there.
        HostError when the receiver cannot be reached or keeps getting corrupted copies."""
        while True:
            sender, batch = self._acquire(receiver, missing)
            try:
                if sender is None:
                    return self._direct_hop(receiver, batch)
                try:
                    verified = self._relay_hop(sender, receiver, batch)
                    self.relays_used += len(verified)
                    return verified
                except HostError as error:
                    self._relay_failed(sender, receiver, error)
            finally:
                self._release(sender)

    def _relay_failed(self, sender: Receiver, receiver: Receiver, error: HostError) -> None:
        """Never use this pair again; a sender failing towards two hosts stops relaying."""
        with self.changed:
            self.broken.add((sender.host.name, receiver.host.name))
            if sum(1 for pair in self.broken if pair[0] == sender.host.name) >= 2:
                sender.can_relay = False
        receiver.notes.append(f"relay {sender.host.name}->{receiver.host.name} failed ({_short(error)}); "
                              "sent from elsewhere")

    def _direct_hop(self, receiver: Receiver, batch: List[Chunk]) -> List[Chunk]:
        for attempt in range(1, DIRECT_ATTEMPTS + 1):
            receiver.host.put_many([c.local for c in batch], self._landing(receiver, batch), timeout=HOP_TIMEOUT,
                                   what=f"sending {batch[0].describe()}" + (f" (+{len(batch) - 1})" if len(batch) > 1 else ""))
            self.direct_hops += len(batch)
            verified = self._verify(receiver, batch)
            if verified:
                return verified
            if attempt == DIRECT_ATTEMPTS:
                raise HostError(f"{receiver.host.name}: hash mismatch: {batch[0].describe()} arrived corrupted "
                                f"{DIRECT_ATTEMPTS} times")
        return []

    def _relay_hop(self, sender: Receiver, receiver: Receiver, batch: List[Chunk]) -> List[Chunk]:
        spec = receiver.host.spec
        destination = f"{spec.user}@{spec.address}" if spec.user else spec.address
        run_script(sender.host, RELAY, [f"{destination}:{self._landing(receiver, batch)}", spec.ssh_port,
                                        relay_known_hosts(sender.home), max(1, int(spec.connect_timeout)),
                                        relay_control_path(sender.home), *[sender.chunk_path(c) for c in batch]],
                   timeout=HOP_TIMEOUT).check()
        verified = self._verify(receiver, batch)
        if not verified:
            raise HostError(f"{receiver.host.name}: hash mismatch: {batch[0].describe()} from {sender.host.name}")
        return verified

    @staticmethod
    def _landing(receiver: Receiver, batch: List[Chunk]) -> str:
        """Where a hop writes: ``<file>.part`` for a whole file, else the file's ``.recv/`` dir."""
        if batch[0].whole:
            return f"{receiver.chunk_path(batch[0])}.part"
        return f"{receiver.incoming(batch[0].file_sha)}/.recv/"

    def _verify(self, receiver: Receiver, batch: List[Chunk]) -> List[Chunk]:
        """Check each received chunk's sha256 on the receiver; return those that matched."""
        if batch[0].whole:
            final = receiver.chunk_path(batch[0])
            result = run_script(receiver.host, VERIFY, [f"{final}.part", final, batch[0].sha256], timeout=120)
            if result.returncode not in (0, EXIT_HASH_MISMATCH):
                result.check()
            good = batch if result.ok else []
        else:
            directory = receiver.incoming(batch[0].file_sha)
            result = run_script(receiver.host, VERIFY_MANY,
                                [directory, *[x for c in batch for x in (str(c.index), c.sha256)]], timeout=120)
            if result.returncode not in (0, EXIT_HASH_MISMATCH):
                result.check()
            names = set(result.stdout.split())
            good = [c for c in batch if str(c.index) in names]
        for chunk in batch:
            if chunk not in good:
                receiver.notes.append(f"{chunk.describe()} arrived corrupted; re-sent")
        return good

    def _assemble(self, receiver: Receiver, wheel: WheelFile, chunks: List[Chunk]) -> None:
        run_script(receiver.host, ASSEMBLE, [receiver.wheel_path(wheel), wheel.size,
                                             *[receiver.chunk_path(c) for c in chunks]], timeout=600).check()



def relay_known_hosts(home: str) -> str:
    return f"{home}/.relay/known_hosts"


def relay_control_path(home: str) -> str:
    """The relay host's own ControlMaster socket per next host (%C: ssh's hash of it)."""
    return f"{home}/.relay/cm-%C"


EACH_HOST_UP_TO = 8     # more hosts than this: one summary line, not a figure per host
BEHIND_SHOWN = 3        # the hosts furthest behind, named in the summary


def progress_line(receivers: List[Receiver], rate_mb_s: Optional[float] = None) -> str:
    """``deploy: copying: ...``: every host's MB up to EACH_HOST_UP_TO hosts; beyond, the
    total, the hosts complete, the few furthest behind and any failed (a line per host
    at 35 Pis would scroll the one that matters away)."""
    rate = f", {rate_mb_s:.0f} MB/s in all" if rate_mb_s is not None else ""
    if len(receivers) <= EACH_HOST_UP_TO:
        parts = [f"{r.host.name} {r.bytes_done / 1e6:.0f}/{r.bytes_total / 1e6:.0f} MB"
                 + (" FAILED" if r.error else "") for r in receivers]
        return "deploy: copying: " + ", ".join(parts) + rate
    done = sum(min(r.bytes_done, r.bytes_total) for r in receivers)
    total = sum(r.bytes_total for r in receivers)
    failed = [r.host.name for r in receivers if r.error]
    complete = [r for r in receivers if not r.error and r.bytes_done >= r.bytes_total]
    behind = sorted((r for r in receivers if not r.error and r.bytes_done < r.bytes_total),
                    key=lambda r: r.bytes_done / r.bytes_total)[:BEHIND_SHOWN]
    line = (f"deploy: copying: {done / 1e6:,.0f}/{total / 1e6:,.0f} MB ({100 * done / max(total, 1):.0f}%){rate}, "
            f"{len(complete)}/{len(receivers)} hosts complete")
    if behind:
        line += "; furthest behind: " + ", ".join(
            f"{r.host.name} {r.bytes_done / 1e6:.0f}/{r.bytes_total / 1e6:.0f} MB" for r in behind)
    if failed:
        line += "; FAILED: " + ", ".join(failed)
    return line


def run_with_progress(run: Callable[[], None], receivers: List[Receiver], report: Report,
                      every: float = 2.0) -> float:
    """``run()``, printing the copy's progress every ``every`` seconds; its seconds."""
    finished = threading.Event()

    def ticker() -> None:
        last = (time.monotonic(), sum(r.bytes_done for r in receivers))
        while not finished.wait(every):
            now = (time.monotonic(), sum(r.bytes_done for r in receivers))
            rate = max(0, now[1] - last[1]) / 1e6 / max(now[0] - last[0], 1e-6)
            report(progress_line(receivers, rate))
            last = now

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        run()
    finally:
        finished.set()
        thread.join()
    return time.monotonic() - started


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."
