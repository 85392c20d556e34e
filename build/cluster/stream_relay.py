"""One link of a streamed deploy; runs ON EACH HOST (shipped as source: stdlib only, Python 3.6+).

    python3 stream_relay.py HOME FIFO WANTED STALL_S [ssh ... NEXT 'feed command']
    python3 stream_relay.py HOME --tcp WANTED STALL_S CONNECT_S

The deploy stream is records ``F <sha256> <size> <name>\\n`` + <size> bytes, then ``E\\n``.
Every byte is passed on to the next host as soon as it is read, so all hosts receive at
once and a chain of N hosts takes little longer than one. Two transports:

- ssh: the stream arrives on FIFO (written by the previous host, or the controller, with
  ``cat > FIFO`` over ssh) and leaves through the ssh command after STALL_S.
- tcp: the relay listens on a port of its own choosing and says ``listen <port>``; the
  controller then writes one line on stdin: ``<token> [<next address> <next port>]``. The
  relay connects to the next host's relay, sends it the token, and accepts the one
  connection that presents the token. Hashes are checked at every hop either way, so
  plain TCP can only lose speed, never correctness; it saves the ssh encryption a Pi 4
  (no AES instructions) pays twice per hop. EOF on stdin means the controller is gone.

Files in WANTED (comma-separated sha256s) that are not already in HOME/wheels are written
beside their final name, hashed as they pass, and moved into place only if the sha256
matches: every hop is verified. Reports to the controller on stdout, one line each:

    listen <port>           (tcp) listening there; waiting for the token line on stdin
    ready                   ssh: the FIFO exists (and the next hop's pid file): writing may
                            start; tcp: the previous hop is connected
    p <bytes>               bytes of wanted files written so far (about twice a second)
    ok <sha256>             a file arrived whole and verified
    bad <sha256> <got>      a file arrived corrupted (deleted)
    behind <sha256>         this host's disk fell too far behind the stream: file dropped here
    write-failed <sha> <why>  the file could not be written here (dropped)
    next-failed <why>       the next host stopped taking the stream (this host carries on)
    waits <in> <out> <all>  seconds since the first byte spent waiting for the stream to
                            arrive, waiting for the next host to take it, and in all (the
                            controller finds the hop that held the chain back from them)
    end                     the stream ended; nothing more will come

Any other ending (a stall longer than STALL_S, a signal, a bad record) exits non-zero and
leaves no partial file.
"""
import hashlib
import hmac
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# Pipes keep the kernel's 64 KB: every byte buffered along the chain delays the last host
# (measured, 35 hosts over 5 Mbit: 1 MB pipes 25.4 s, 64 KB 22.3 s; no change at 1 Gbit).
BLOCK = 1 << 20
BACKLOG_BLOCKS = 512      # reads (<= 64 KB from a pipe) queued for the disk: ~32 MB at most


class Stalled(Exception):
    pass


class Ended(Exception):
    """The previous hop closed the stream before its end record."""


class Stream:
    """Reads the FIFO with a stall timeout (opened O_RDWR: it never sees EOF, the end record ends it)."""

    def __init__(self, fd, stall_s):
        self.fd = fd
        self.stall_s = stall_s
        self.buffer = b""
        self.first_byte = None    # monotonic time the stream began
        self.waited = 0.0         # seconds since then with nothing to read

    def _read(self, limit):
        began = time.monotonic()
        ready, _, _ = select.select([self.fd], [], [], self.stall_s)
        if not ready:
            raise Stalled("no data for %g s" % self.stall_s)
        if self.first_byte is None:
            self.first_byte = time.monotonic()
        else:
            self.waited += time.monotonic() - began
        data = os.read(self.fd, limit)
        if not data:   # a socket's EOF (a FIFO opened O_RDWR has none)
            raise Ended("the stream ended before its end record")
        return data

    def line(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > 4096:
                raise ValueError("record header too long")
            self.buffer += self._read(BLOCK)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def blocks(self, size):
        """The next ``size`` bytes, as they arrive."""
        while size > 0:
            if self.buffer:
                block, self.buffer = self.buffer[:size], self.buffer[size:]
            else:
                block = self._read(min(size, BLOCK))
            size -= len(block)
            yield block


class Hop:
    """Where the stream goes next (``fd`` is None: nowhere); a failure there stops
    forwarding, not this host."""

    def __init__(self, say, stall_s):
        self.say = say
        self.stall_s = stall_s
        self.fd = None
        self.waited = 0.0         # seconds the next host's pipe or socket was full

    def send(self, data):
        """All of ``data`` to the next host; one that takes nothing for STALL_S (its relay
        died before it read, its disk hangs) is given up, so this host never hangs on it."""
        view = memoryview(data)
        while view and self.fd is not None:
            began = time.monotonic()
            _, ready, _ = select.select([], [self.fd], [], self.stall_s)
            self.waited += time.monotonic() - began
            if not ready:
                self.fail("the next host took no data for %g s" % self.stall_s)
                return
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                continue
            except OSError as error:   # BrokenPipeError: the next host or its link went away
                self.fail(str(error))

    def fail(self, why):
        self.fd = None
        detail = self.close()
        self.say("next-failed %s" % (why if "took no data" in why else detail or why))

    def close(self):
        """Stop sending; returns what the other end said about why, if anything."""
        return ""

    def finish(self, timeout):
        pass

    def stop(self):
        pass


class Next(Hop):
    """ssh transport: the ssh to the next host, which writes into that host's FIFO."""

    def __init__(self, argv, say, stall_s, pid_file):
        Hop.__init__(self, say, stall_s)
        self.pid_file = pid_file
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self.errors, bufsize=0) if argv else None
        if self.process is not None:
            self.fd = self.process.stdin.fileno()
            os.set_blocking(self.fd, False)
            # The controller ends this hop through it when the next relay died by itself.
            with open(pid_file, "w") as handle:
                handle.write("%d\n" % self.process.pid)

    def close(self):
        process, self.process = self.process, None
        remove(self.pid_file)
        if process is None:
            return ""
        try:
            process.kill()
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        return self.why()

    def why(self):
        self.errors.seek(0)
        lines = [line.strip() for line in self.errors.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def finish(self, timeout):
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            code = self.process.wait(timeout)
            remove(self.pid_file)
        except (OSError, subprocess.TimeoutExpired) as error:
            self.fail(str(error))
            return
        if code != 0:
            self.say("next-failed %s" % (self.why() or "exit %d" % code))

    def stop(self):
        if self.process is not None:
            self.process.kill()


class NextSocket(Hop):
    """tcp transport: a connection to the next host's relay, opened with the token."""

    def __init__(self, address, port, token, say, stall_s, connect_s):
        Hop.__init__(self, say, stall_s)
        self.sock = None
        if address is None:
            return
        try:
            sock = socket.create_connection((address, port), timeout=connect_s)
            sock.sendall((token + "\n").encode())
        except OSError as error:
            say("next-failed cannot connect to %s port %d: %s" % (address, port, error))
            return
        sock.setblocking(False)
        self.sock, self.fd = sock, sock.fileno()

    def close(self):
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        return ""

    def finish(self, timeout):
        if self.sock is None:
            return
        try:   # what is still queued in the kernel is delivered after close
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            self.fail(str(error))
            return
        self.close()

    def stop(self):
        self.close()


SAY_LOCK = threading.Lock()


def say(text):
    with SAY_LOCK:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


class Writer(threading.Thread):
    """Writes and hashes the wanted files off the forwarding path, so a slow disk here
    does not slow every host after this one. When it falls BACKLOG_BLOCKS reads behind,
    the file is dropped here (the controller sends it later in chunks, at this host's own
    pace) and the stream keeps its speed."""

    def __init__(self):
        threading.Thread.__init__(self, daemon=True)
        self.queue = queue.Queue(BACKLOG_BLOCKS)
        self.dropped = set()
        self.parts = set()        # partial files not yet verified or removed
        self.written = 0
        self.reported = time.monotonic()

    # -- the forwarding thread's side: never blocks --------------------------------------
    def begin(self, sha, final):
        self.parts.add(final + ".part")
        self._offer(sha, ("open", sha, final))

    def data(self, sha, block):
        self._offer(sha, ("data", sha, block))

    def end(self, sha):
        self._offer(sha, ("close", sha))

    def _offer(self, sha, item):
        if sha in self.dropped:
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped.add(sha)
            say("behind %s" % sha)

    def finish(self, timeout):
        """After the stream: let the disk catch up (at most ``timeout``), then remove
        whatever is still partial."""
        try:
            self.queue.put(None, timeout=timeout)
            self.join(timeout)
        except queue.Full:
            pass
        self.discard()

    def discard(self):
        for part in list(self.parts):
            remove(part)
        self.parts.clear()

    # -- the disk's side ---------------------------------------------------------------
    def run(self):
        current = None     # (sha, final, file, digest)
        while True:
            item = self.queue.get()
            if current is not None and current[0] in self.dropped:
                current[2].close()
                self._forget(current[1] + ".part")
                current = None
            if item is None:
                return
            kind, sha = item[0], item[1]
            if sha in self.dropped:
                continue
            try:
                if kind == "open":
                    final = item[2]
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    current = (sha, final, open(final + ".part", "wb"), hashlib.sha256())
                elif kind == "data" and current is not None:
                    current[2].write(item[2])
                    current[3].update(item[2])
                    self.written += len(item[2])
                    if time.monotonic() - self.reported > 0.5:
                        say("p %d" % self.written)
                        self.reported = time.monotonic()
                elif kind == "close" and current is not None:
                    sha, final, out, digest = current
                    current = None
                    out.close()
                    got = digest.hexdigest()
                    if got == sha:
                        os.replace(final + ".part", final)
                        self.parts.discard(final + ".part")
                        say("ok %s" % sha)
                    else:
                        self._forget(final + ".part")
                        say("bad %s %s" % (sha, got))
                    say("p %d" % self.written)
            except OSError as error:   # a full or failing disk: this file comes later, in chunks
                self.dropped.add(sha)
                say("write-failed %s %s" % (sha, error))

    def _forget(self, part):
        remove(part)
        self.parts.discard(part)


def remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def receive(stream, home, wanted, forward, writer):
    """Copy the stream through, handing the wanted files to ``writer``. Returns at the end record."""
    while True:
        header = stream.line()
        forward(header + b"\n")
        fields = header.decode("utf-8", "strict").split(" ", 3)
        if fields[0] == "E":
            return
        if fields[0] != "F" or len(fields) != 4 or not fields[2].isdigit() \
                or "/" in fields[3] or fields[3] in ("", ".", ".."):
            raise ValueError("bad record header %r" % header[:200])
        sha, size, name = fields[1], int(fields[2]), fields[3]
        final = os.path.join(home, "wheels", sha, name)
        write = sha in wanted and not os.path.isfile(final)
        if write:
            writer.begin(sha, final)
        for block in stream.blocks(size):
            forward(block)
            if write:
                writer.data(sha, block)
        if write:
            writer.end(sha)


def listen():
    """A listening socket on a free port, IPv4 and IPv6 where the host has both."""
    try:
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            listener.bind(("::", 0))
        except OSError:
            listener.close()
            raise
    except OSError:   # no IPv6 here
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    return listener


def control_line(stall_s):
    """The controller's one line on stdin (read unbuffered: a thread watches stdin after it)."""
    data = b""
    while b"\n" not in data:
        ready, _, _ = select.select([0], [], [], stall_s)
        if not ready:
            raise Stalled("the controller sent no wiring for %g s" % stall_s)
        part = os.read(0, 4096)
        if not part:
            raise Ended("the controller went away")
        data += part
    return data.split(b"\n", 1)[0].decode("ascii", "replace").split()


def hang_up_with_stdin():
    """The controller holds stdin open for the relay's life: EOF means it is gone (its ssh
    died or it ended this link), so end as for SIGTERM."""
    while True:
        try:
            if not os.read(0, 4096):
                break
        except OSError:
            break
    os.kill(os.getpid(), signal.SIGTERM)


def accept_stream(listener, token, stall_s):
    """The one connection that starts with ``token``; others are closed and ignored."""
    expected = (token + "\n").encode()
    deadline = time.monotonic() + stall_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Stalled("no host connected for %g s" % stall_s)
        listener.settimeout(left)
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        got = b""
        try:
            conn.settimeout(min(left, 10.0))
            while len(got) < len(expected):
                part = conn.recv(len(expected) - len(got))
                if not part:
                    break
                got += part
        except OSError:
            got = b""
        if hmac.compare_digest(got, expected):
            conn.settimeout(None)
            return conn
        conn.close()


def open_tcp(stall_s, connect_s):
    """tcp transport: listen, learn the token and the next hop, connect onwards, accept."""
    listener = listen()
    say("listen %d" % listener.getsockname()[1])
    fields = control_line(stall_s)
    if len(fields) not in (1, 3) or (len(fields) == 3 and not fields[2].isdigit()):
        raise ValueError("bad wiring line %r" % " ".join(fields)[:200])
    threading.Thread(target=hang_up_with_stdin, daemon=True).start()
    token = fields[0]
    address, port = (fields[1], int(fields[2])) if len(fields) == 3 else (None, 0)
    nxt = NextSocket(address, port, token, say, stall_s, connect_s)
    try:
        conn = accept_stream(listener, token, stall_s)
    finally:
        listener.close()
    return conn, nxt


def main(argv):
    home, source, wanted, stall_s = argv[1], argv[2], set(filter(None, argv[3].split(","))), float(argv[4])
    tcp = source == "--tcp"
    # The controller ends a broken chain by hanging up (SIGTERM): clean up as for any error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    nxt = None
    conn = None
    writer = Writer()
    writer.start()
    try:
        if tcp:
            conn, nxt = open_tcp(stall_s, float(argv[5]) if len(argv) > 5 else 5.0)
            fd = conn.fileno()
        else:
            os.makedirs(os.path.dirname(source), exist_ok=True)
            remove(source)
            os.mkfifo(source, 0o600)
            fd = os.open(source, os.O_RDWR)   # Linux: no blocking open, and no EOF between writers
            nxt = Next(argv[5:], say, stall_s, source + ".next-pid")
        say("ready")   # the stream may flow (ssh: the FIFO and the next hop's pid file exist)
        stream = Stream(fd, stall_s)
        receive(stream, home, wanted, nxt.send, writer)
        if stream.first_byte is not None:
            say("waits %.3f %.3f %.3f" % (stream.waited, nxt.waited, time.monotonic() - stream.first_byte))
        nxt.finish(timeout=stall_s)
        writer.finish(timeout=stall_s)
        say("end")
        return 0
    except Stalled as error:
        sys.stderr.write("stream stalled: %s\n" % error)
        return 3
    except (ValueError, Ended) as error:
        sys.stderr.write("%s\n" % error)
        return 4
    finally:
        if nxt is not None:
            nxt.stop()
        if conn is not None:
            conn.close()
        writer.dropped.update(sha for sha in wanted)   # stops a writer still running
        writer.discard()
        if not tcp:
            remove(source)
            remove(source + ".next-pid")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
