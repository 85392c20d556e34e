"""Streamed fan-out: the wheelhouse flows through the ssh hosts as one pipelined stream,
controller -> h1 -> h2 -> ... -> hN.

Why a chain and not a tree: a host sending to two others halves its uplink for each, so
a tree at link speed costs about ``fan-out`` times one copy however it is cut, and
store-and-forward chunks add a hop's fixed cost per chunk per level (measured at 35
hosts over 5 Mbit: 2.2x-3.1x of one host). In a chain every link carries the bytes once
in each direction and each host forwards a block as soon as it has read it, so N hosts
take one copy's time plus the chain's setup and a pipe's depth per hop.

Each host runs build/cluster/stream_relay.py (shipped as source), which writes and
hashes the files that host lacks and passes every byte on to the next host, over one of
two transports (``deploy_stream`` in cluster.toml):

- ``ssh``: the relay's own ssh to the next host (authenticated by the forwarded agent,
  host keys checked against the controller's known_hosts entries, as the chunk relays are);
- ``tcp``: a plain connection to the next host's relay, on a port that relay picked and
  opened with a per-deploy random token. Every file is still checked against the
  sha256 the controller sent over ssh, so the transport cannot change what is installed;
  it only skips the encryption, which on a Pi 4 (no AES instructions) caps an ssh hop
  well below its Gigabit NIC, paid twice per hop (decrypt, encrypt again). The TF ports
  the same hosts train over are plain TCP too.

All relays start at once over the controller's ControlMaster connections, so setting up
the chain costs about one hop, not N. A host or hop that fails ends the chain there: the
hosts before it finish, and every host still missing a file gets it from the chunk
fan-out (build/cluster/fanout.py), which routes around broken hosts and links.
"""
from __future__ import annotations

import secrets
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from ..errors import HostError
from .fanout import Receiver, relay_control_path, relay_known_hosts
from .hosts.ssh import FAST_KEX, SSH_FAILED
from .hostscripts import run_script
from .wheelhouse import WheelFile

RELAY_SOURCE = (Path(__file__).with_name("stream_relay.py")).read_text()
STALL_S = 60.0           # a relay with no bytes for this long gives up (the controller usually ends it sooner)
FEED_WAIT_S = 60          # how long a feed waits for its relay's FIFO to appear
BLOCK = 1 << 20
TRANSPORTS = ("ssh", "tcp")


@dataclass
class Link:
    """One host's relay in the chain, as the controller sees it."""

    receiver: Receiver
    fifo: str
    process: Optional["subprocess.Popen[bytes]"] = None
    ready: threading.Event = field(default_factory=threading.Event)
    delivered: Set[str] = field(default_factory=set)     # sha256s verified on the host
    ended: bool = False                                  # the relay saw the end of the stream
    cut: bool = False                                    # ended by the controller: the chain broke before it
    notes: List[str] = field(default_factory=list)
    returncode: Optional[int] = None
    stderr: str = ""
    waits: Optional[Tuple[float, float, float]] = None   # the relay's (in, out, all) seconds
    port: Optional[int] = None                           # tcp: where the relay listens
    listening: threading.Event = field(default_factory=threading.Event)   # tcp: port known, or the relay gone
    wired: bool = False                                  # tcp: part of the chain as wired
    left_out: bool = False                               # tcp: not listening in time; ended unwired


def feed_command(fifo: str) -> str:
    """Shell command on a host: wait for its relay's FIFO, then write stdin into it."""
    quoted = shlex.quote(fifo)
    tries = int(FEED_WAIT_S * 10)
    return (f"f={quoted}; i=0; while [ ! -p \"$f\" ]; do i=$((i+1)); "
            f"if [ $i -gt {tries} ]; then echo \"no relay listening at $f\" >&2; exit 3; fi; sleep 0.1; done; "
            "exec cat > \"$f\"")


def next_hop_argv(sender: Receiver, receiver: Receiver, fifo: str) -> List[str]:
    """The ssh the sending host runs to feed ``receiver`` (as strict as the controller's)."""
    spec = receiver.host.spec
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={relay_known_hosts(sender.home)}",
            "-o", f"ConnectTimeout={max(1, int(spec.connect_timeout))}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={relay_control_path(sender.home)}",
            "-o", "ControlPersist=60", "-o", "LogLevel=ERROR"]
    if spec.ssh_kex == "fast":
        argv += ["-o", f"KexAlgorithms={FAST_KEX}"]
    destination = f"{spec.user}@{spec.address}" if spec.user else spec.address
    return argv + ["-p", str(spec.ssh_port), "--", destination, feed_command(fifo)]


class StreamChain:
    """One pass of the chain over ``receivers`` (in order); see the module docstring."""

    def __init__(self, receivers: Sequence[Receiver], transport: str = "ssh") -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"stream transport {transport!r}: expected one of {TRANSPORTS}")
        self.transport = transport
        token = secrets.token_hex(6)
        self.token = secrets.token_hex(16)    # tcp: what a relay's first bytes must be
        self.links = [Link(r, f"{r.home}/.relay/in-{token}") for r in receivers]
        self.files = _union([w for r in receivers for w in r.needs])
        for receiver in receivers:
            receiver.bytes_total = sum(w.size for w in receiver.needs)
            receiver.bytes_done = 0
        self.broken_at: Optional[int] = None     # the earliest link the stream stopped at (-1: the feed)
        self.lock = threading.Lock()
        self.feed_error = ""

    def run(self) -> None:
        """One pass; afterwards each receiver's ``needs`` holds only what did not arrive."""
        readers = [threading.Thread(target=self._relay, args=(index,), daemon=True,
                                    name=f"stream-{link.receiver.host.name}")
                   for index, link in enumerate(self.links)]
        for reader in readers:
            reader.start()
        feed = self._feed if self.transport == "ssh" else self._wire_and_feed
        feeder = threading.Thread(target=feed, daemon=True, name="stream-feed")
        feeder.start()
        for reader in readers:
            reader.join()
        feeder.join(timeout=STALL_S)
        self._settle()

    # -- the controller's end: feed the first host ---------------------------------------
    def _feed(self) -> None:
        first = self.links[0]
        errors = tempfile.TemporaryFile()
        process = subprocess.Popen(first.receiver.host.ssh_argv(feed_command(first.fifo)), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        assert process.stdin is not None
        try:
            for block in self._records():
                process.stdin.write(block)
        except OSError as error:   # the first host went away: its relay's end says why
            self.feed_error = str(error)
        finally:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=STALL_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode != 0 and not self.feed_error:
            errors.seek(0)
            self.feed_error = _last(errors.read().decode("utf-8", "replace")) or f"exit {process.returncode}"
        errors.close()
        if self.feed_error:
            self._cut(-1)

    def _records(self) -> Iterator[bytes]:
        """The stream as the relays read it: per file a header line and its bytes, then the end."""
        for wheel in self.files:
            yield f"F {wheel.sha256} {wheel.size} {wheel.name}\n".encode()
            with open(wheel.path, "rb") as source:
                yield from iter(lambda: source.read(BLOCK), b"")
        yield b"E\n"

    # -- the controller's end over tcp: wire the relays, then feed the first ---------------
    def _wire_and_feed(self) -> None:
        """Once every relay listens (or has died), tell each its token and the next live
        relay's address and port, then connect to the first and send the stream. A host
        whose relay never listened is left out of the chain (it gets chunks later)."""
        deadline = time.monotonic() + FEED_WAIT_S
        for link in self.links:
            link.listening.wait(timeout=max(0.0, deadline - time.monotonic()))
        with self.lock:
            wired = [link for link in self.links if link.port is not None
                     and link.process is not None and link.process.poll() is None]
            for link in wired:
                link.wired = True
            late = [link for link in self.links if not link.wired and link.process is not None
                    and link.process.poll() is None]
        for link in late:   # still starting after FEED_WAIT_S: not worth waiting for
            link.left_out = True
            link.process.terminate()   # type: ignore[union-attr]
        for link, following in zip(wired, wired[1:] + [None]):
            where = f" {following.receiver.host.spec.address} {following.port}" if following else ""
            try:
                link.process.stdin.write(f"{self.token}{where}\n".encode())   # type: ignore[union-attr]
                link.process.stdin.flush()   # type: ignore[union-attr]
            except (OSError, ValueError):
                pass   # its relay is gone: the host before it finds the port closed
        if not wired:
            self.feed_error = "no relay listened"
            self._cut(-1)
            return
        first = wired[0]
        spec = first.receiver.host.spec
        assert first.port is not None
        try:
            with socket.create_connection((spec.address, first.port), timeout=max(1, spec.connect_timeout)) as sock:
                sock.settimeout(STALL_S)
                sock.sendall(f"{self.token}\n".encode())
                for block in self._records():
                    sock.sendall(block)
                sock.shutdown(socket.SHUT_WR)
        except OSError as error:   # the first host went away: its relay's end says why
            self.feed_error = f"{first.receiver.host.name} port {first.port}: {error}"
            self._cut(-1)

    # -- one relay per host ----------------------------------------------------------------
    def _relay(self, index: int) -> None:
        link = self.links[index]
        receiver = link.receiver
        wanted = ",".join(w.sha256 for w in receiver.needs)
        if self.transport == "tcp":
            argv = [receiver.python, "-c", RELAY_SOURCE, receiver.home, "--tcp", wanted, str(STALL_S),
                    str(max(1, receiver.host.spec.connect_timeout))]
            process = receiver.host.spawn_attached(argv)
        else:
            following = self.links[index + 1] if index + 1 < len(self.links) else None
            argv = [receiver.python, "-c", RELAY_SOURCE, receiver.home, link.fifo, wanted, str(STALL_S)]
            if following is not None:
                argv += next_hop_argv(receiver, following.receiver, following.fifo)
            process = receiver.host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        link.process = process
        assert process.stdout is not None and process.stderr is not None
        errors: List[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
        drain.start()
        for raw in process.stdout:
            self._on_line(link, raw.decode("utf-8", "replace").strip())
        link.returncode = process.wait()
        link.listening.set()
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        drain.join()
        link.stderr = b"".join(errors).decode("utf-8", "replace").strip()
        if not link.ended:
            with self.lock:   # tcp: a relay that died before it was wired only leaves itself out
                counts = self.transport == "ssh" or link.wired
            if counts:
                self._cut(index)
            if index > 0 and not link.cut and self.transport == "ssh":
                self._release_sender(index)

    def _release_sender(self, index: int) -> None:
        """Link ``index`` ended by itself: end the previous host's ssh that feeds it, which
        may be waiting for a FIFO that will never appear (or never be read), so that host
        finishes now rather than after its stall time. The relay wrote that ssh's pid
        beside its own FIFO. Best effort: if it fails, the stall time still ends the hop."""
        sender = self.links[index - 1]
        # The pid file exists once the sender says "ready"; this link may have died sooner.
        deadline = time.monotonic() + FEED_WAIT_S
        while not sender.ready.wait(timeout=0.2):
            if time.monotonic() > deadline or (sender.process is not None and sender.process.poll() is not None):
                return
        if sender.process is None or sender.process.poll() is not None:
            return
        try:
            run_script(sender.receiver.host, 'p=$(cat "$1" 2>/dev/null) && kill "$p" 2>/dev/null; exit 0',
                       [f"{sender.fifo}.next-pid"], timeout=10)
        except HostError:
            pass

    def _on_line(self, link: Link, line: str) -> None:
        word, _, rest = line.partition(" ")
        receiver = link.receiver
        if word == "ready":
            link.ready.set()
        elif word == "listen" and rest.isdigit():
            link.port = int(rest)
            link.listening.set()
        elif word == "p" and rest.isdigit():
            receiver.bytes_done = int(rest)   # bytes_total is what this pass carries for it
        elif word == "ok":
            link.delivered.add(rest)
        elif word == "bad":
            link.notes.append(f"{_name_of(receiver, rest.split(' ')[0])} arrived corrupted in the stream; re-sent")
        elif word == "behind":
            link.notes.append(f"{_name_of(receiver, rest)}: this host's disk fell behind the stream; sent in chunks")
        elif word == "write-failed":
            sha, _, why = rest.partition(" ")
            link.notes.append(f"{_name_of(receiver, sha)} could not be written here ({why}); sent in chunks")
        elif word == "next-failed":
            hint = '; a firewall? deploy_stream = "ssh" streams over ssh' \
                if self.transport == "tcp" and rest.startswith("cannot connect") else ""
            link.notes.append(f"stream to the next host failed ({rest}{hint})")
            self._cut(self.links.index(link))
        elif word == "waits":
            try:
                waited_in, waited_out, seconds = (float(value) for value in rest.split())
                link.waits = (waited_in, waited_out, seconds)
            except ValueError:
                pass
        elif word == "end":
            link.ended = True

    def _cut(self, index: int) -> None:
        """The stream stops at link ``index``: end every relay after it now (they would
        only wait out their stall timeout)."""
        with self.lock:
            if self.broken_at is not None and self.broken_at <= index:
                return
            self.broken_at = index
        for link in self.links[index + 1:]:
            if link.process is not None and link.process.poll() is None:
                link.cut = True
                link.process.terminate()

    # -- the outcome ----------------------------------------------------------------------
    def _settle(self) -> None:
        """Move what arrived into the receivers: delivered files leave ``needs``; a host
        whose own ssh connection failed is failed; the rest is left for the chunk fan-out."""
        for link in self.links:
            receiver = link.receiver
            receiver.bytes_sent += sum(w.size for w in receiver.needs if w.sha256 in link.delivered)
            receiver.needs = [w for w in receiver.needs if w.sha256 not in link.delivered]
            receiver.notes += link.notes
            if link.returncode == SSH_FAILED and not link.ended and not link.cut and not link.left_out:   # ssh exits 255 on SIGTERM too
                last = link.stderr.splitlines()[-1] if link.stderr else "connection failed"
                spec = receiver.host.spec
                receiver.error = f"{receiver.host.name}: ssh to {receiver.host.destination} port {spec.ssh_port} failed: {last}"
            elif receiver.needs and not link.ended and link.left_out:
                receiver.notes.append(f"its relay was not listening after {FEED_WAIT_S} s; sent in chunks")
            elif receiver.needs and not link.ended:
                why = "stream cut upstream" if link.cut else \
                    "stream ended here" + (f" ({_last(link.stderr)})" if link.stderr else "")
                receiver.notes.append(why + "; the rest sent in chunks")

    @property
    def streamed_to(self) -> int:
        return sum(1 for link in self.links if link.ended)

    def held_back(self) -> str:
        """What the whole chain waited for, when one host or hop clearly did (a slow link,
        NIC or CPU paces every host: forwarding is synchronous); "" otherwise."""
        waits = [link.waits for link in self.links]
        if any(w is None or w[2] <= 0 for w in waits):
            return ""
        names = [link.receiver.host.name for link in self.links]
        shares = [(w[0] / w[2], w[1] / w[2]) for w in waits if w is not None]
        found = slow_point(shares)
        if found is None:
            return ""
        first, last = found
        sending = [share[1] for share in shares[:last]]
        receiving = [share[0] for share in shares[first + 1:]]
        evidence = ", ".join(part for part in (
            f"{_span(names[:last])} waited to send {_percent(sending)} of the time" if sending else "",
            f"{_span(names[first + 1:])} waited to receive {_percent(receiving)}" if receiving else "") if part)
        where = names[first] if first == last else f"the hop {names[first]} -> {names[last]}"
        why = "" if first == last else "a slow link, or either host's NIC; "
        return f"{where} ({why}{evidence})"


BUSY = 0.75   # a relay waiting this share of its time on one side is held back there


def slow_point(shares: Sequence[Tuple[float, float]]) -> Optional[Tuple[int, int]]:
    """From each relay's (waiting to receive, waiting to send) shares of its time: the host
    (i, i) or the hop (i, i + 1) that paced the chain, or None when no single one did.
    Hosts before a slow point wait to send, hosts after it wait to receive."""
    fits = [k for k in range(len(shares))
            if all(send >= BUSY for _, send in shares[:k]) and all(receive >= BUSY for receive, _ in shares[k + 1:])]
    if not fits or len(fits) > 2:
        return None
    if fits == [0] and shares[0][0] >= BUSY:
        return None   # the first host waited to receive too: the feed was the limit
    if len(fits) == 2:
        return (fits[0], fits[1]) if fits[1] == fits[0] + 1 else None
    return (fits[0], fits[0])


def _span(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _percent(shares: Sequence[float]) -> str:
    low, high = round(100 * min(shares)), round(100 * max(shares))
    return f"{low}%" if low == high else f"{low}-{high}%"


def _union(wheels: Sequence[WheelFile]) -> List[WheelFile]:
    seen: Dict[str, WheelFile] = {}
    for wheel in wheels:
        seen.setdefault(wheel.sha256, wheel)
    return list(seen.values())


def _name_of(receiver: Receiver, sha: str) -> str:
    for wheel in receiver.needs:
        if wheel.sha256 == sha:
            return wheel.name
    return sha[:12]


def _last(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
