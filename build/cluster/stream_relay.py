"""One link of a streamed deploy; runs ON EACH HOST (shipped as source: stdlib only, Python 3.6+).

    python3 stream_relay.py HOME FIFO WANTED STALL_S [ssh ... NEXT 'feed command']

The deploy stream arrives on FIFO (written by the previous host, or the controller, with
``cat > FIFO``): records ``F <sha256> <size> <name>\\n`` + <size> bytes, then ``E\\n``.
Every byte is passed on to the next host (the ssh command after STALL_S) as soon as it is
read, so all hosts receive at once and a chain of N hosts takes little longer than one.
Files in WANTED (comma-separated sha256s) that are not already in HOME/wheels are written
beside their final name, hashed as they pass, and moved into place only if the sha256
matches: every hop is verified. Reports to the controller on stdout, one line each:

    ready                   the FIFO exists (and the next hop's pid file): writing may start
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
import os
import queue
import select
import signal
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
        return os.read(self.fd, limit)

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


class Next:
    """The ssh to the next host; a failure there stops forwarding, not this host."""

    def __init__(self, argv, say, stall_s, pid_file):
        self.say = say
        self.stall_s = stall_s
        self.pid_file = pid_file
        self.errors = tempfile.TemporaryFile()
        self.waited = 0.0         # seconds the next host's pipe was full
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self.errors, bufsize=0) if argv else None
        if self.process is not None:
            self.fd = self.process.stdin.fileno()
            os.set_blocking(self.fd, False)
            # The controller ends this hop through it when the next relay died by itself.
            with open(pid_file, "w") as handle:
                handle.write("%d\n" % self.process.pid)

    def send(self, data):
        """All of ``data`` to the next host; one that takes nothing for STALL_S (its relay
        died before it read, its disk hangs) is given up, so this host never hangs on it."""
        view = memoryview(data)
        while view and self.process is not None:
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
        process, self.process = self.process, None
        remove(self.pid_file)
        try:
            process.kill()
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.say("next-failed %s" % (why if "took no data" in why else self.why() or why))

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


def main(argv):
    home, fifo, wanted, stall_s = argv[1], argv[2], set(filter(None, argv[3].split(","))), float(argv[4])
    # The controller ends a broken chain by hanging up (SIGTERM): clean up as for any error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(os.path.dirname(fifo), exist_ok=True)
    remove(fifo)
    os.mkfifo(fifo, 0o600)
    nxt = None
    writer = Writer()
    writer.start()
    try:
        fd = os.open(fifo, os.O_RDWR)   # Linux: no blocking open, and no EOF between writers
        nxt = Next(argv[5:], say, stall_s, fifo + ".next-pid")
        say("ready")   # the FIFO exists, and so does the pid file of the hop to the next host
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
    except ValueError as error:
        sys.stderr.write("%s\n" % error)
        return 4
    finally:
        if nxt is not None:
            nxt.stop()
        writer.dropped.update(sha for sha in wanted)   # stops a writer still running
        writer.discard()
        remove(fifo)
        remove(fifo + ".next-pid")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
