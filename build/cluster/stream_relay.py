"""One link of a streamed deploy; runs ON EACH HOST (shipped as source: stdlib only, Python 3.6+).

    python3 stream_relay.py HOME FIFO WANTED STALL_S [ssh ... NEXT 'feed command']

The deploy stream arrives on FIFO (written by the previous host, or the controller, with
``cat > FIFO``): records ``F <sha256> <size> <name>\\n`` + <size> bytes, then ``E\\n``.
Every byte is passed on to the next host (the ssh command after STALL_S) as soon as it is
read, so all hosts receive at once and a chain of N hosts takes little longer than one.
Files in WANTED (comma-separated sha256s) that are not already in HOME/wheels are written
beside their final name, hashed as they pass, and moved into place only if the sha256
matches: every hop is verified. Reports to the controller on stdout, one line each:

    ready                   the FIFO exists: the previous host may start writing
    p <bytes>               bytes of wanted files written so far (about twice a second)
    ok <sha256>             a file arrived whole and verified
    bad <sha256> <got>      a file arrived corrupted (deleted)
    next-failed <why>       the next host stopped taking the stream (this host carries on)
    end                     the stream ended; nothing more will come

Any other ending (a stall longer than STALL_S, a signal, a bad record) exits non-zero and
leaves no partial file.
"""
import hashlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

# Pipes keep the kernel's 64 KB: every byte buffered along the chain delays the last host
# (measured, 35 hosts over 5 Mbit: 1 MB pipes 25.4 s, 64 KB 22.3 s; no change at 1 Gbit).
BLOCK = 1 << 20


class Stalled(Exception):
    pass


class Stream:
    """Reads the FIFO with a stall timeout (opened O_RDWR: it never sees EOF, the end record ends it)."""

    def __init__(self, fd, stall_s):
        self.fd = fd
        self.stall_s = stall_s
        self.buffer = b""

    def _read(self, limit):
        ready, _, _ = select.select([self.fd], [], [], self.stall_s)
        if not ready:
            raise Stalled("no data for %g s" % self.stall_s)
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

    def __init__(self, argv, say):
        self.say = say
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self.errors) if argv else None

    def send(self, data):
        if self.process is None:
            return
        try:
            self.process.stdin.write(data)
        except OSError as error:   # BrokenPipeError: the next host or its link went away
            self.fail(str(error))

    def fail(self, why):
        process, self.process = self.process, None
        try:
            process.kill()
            process.wait(10)
        except OSError:
            pass
        self.say("next-failed %s" % (self.why() or why))

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
        except (OSError, subprocess.TimeoutExpired) as error:
            self.fail(str(error))
            return
        if code != 0:
            self.say("next-failed %s" % (self.why() or "exit %d" % code))

    def stop(self):
        if self.process is not None:
            self.process.kill()


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def receive(stream, home, wanted, forward):
    """Copy the stream through; write wanted files. Returns at the end record."""
    written = 0
    reported = time.monotonic()
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
        out = None
        if sha in wanted and not os.path.isfile(final):
            os.makedirs(os.path.dirname(final), exist_ok=True)
            part = final + ".part"
            out = open(part, "wb")
            digest = hashlib.sha256()
        try:
            for block in stream.blocks(size):
                forward(block)
                if out is not None:
                    out.write(block)
                    digest.update(block)
                    written += len(block)
                    if time.monotonic() - reported > 0.5:
                        say("p %d" % written)
                        reported = time.monotonic()
        except BaseException:
            if out is not None:
                out.close()
                os.unlink(part)
            raise
        if out is not None:
            out.close()
            got = digest.hexdigest()
            if got == sha:
                os.replace(part, final)
                say("ok %s" % sha)
            else:
                os.unlink(part)
                say("bad %s %s" % (sha, got))
            say("p %d" % written)


def main(argv):
    home, fifo, wanted, stall_s = argv[1], argv[2], set(filter(None, argv[3].split(","))), float(argv[4])
    # The controller ends a broken chain by hanging up (SIGTERM): clean up as for any error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(os.path.dirname(fifo), exist_ok=True)
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo, 0o600)
    nxt = None
    try:
        fd = os.open(fifo, os.O_RDWR)   # Linux: no blocking open, and no EOF between writers
        say("ready")
        nxt = Next(argv[5:], say)
        receive(Stream(fd, stall_s), home, wanted, nxt.send)
        nxt.finish(timeout=stall_s)
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
        try:
            os.unlink(fifo)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv))
