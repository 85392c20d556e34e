"""The small POSIX sh programs deploy runs on every host, and where they put things.

Scripts are constants; everything variable (paths, hashes, names) is passed as
positional arguments, so the host's shell never parses cluster.toml contents.

Host layout under the host's piforge home::

    wheels/<sha256>/<file>.whl       verified wheels (a file appears here only after its hash matched)
    wheels/.incoming/<sha256>/<n>    verified chunks of a wheel in transit (kept for relays and reruns)
    venvs/<profile>/v-<key>/         one venv per wheelhouse; .piforge-ok once its check import passed
    venvs/<profile>/current -> v-..  switched atomically (rename) only after the check passed
    venvs/<profile>/previous -> v-.. what `doit rollback` returns to
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from .hosts.base import CommandResult, Host

EXIT_HASH_MISMATCH = 7
EXIT_INSTALL_FAILED = 8
EXIT_CHECK_FAILED = 9
EXIT_NO_PREVIOUS = 10
EXIT_LIBS_MISSING = 11   # needed_libs.py: an extension's shared library does not resolve on the host

PROBE = r"""
home=$1; profile=$2; py=$3
pdir="$home/venvs/$profile"
echo "arch=$(uname -m)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/^glibc //')"
echo "python=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo missing)"
echo "current=$(readlink "$pdir/current" 2>/dev/null)"
if [ -f "$pdir/current/.piforge-ok" ]; then echo ok=1; else echo ok=0; fi
echo "previous=$(readlink "$pdir/previous" 2>/dev/null)"
if command -v scp >/dev/null 2>&1; then echo scp=1; else echo scp=0; fi
for f in "$home"/wheels/*/*.whl; do [ -f "$f" ] && echo "have=$f"; done
for f in "$home"/wheels/.incoming/*/*; do
  case "$f" in *.part) ;; *) [ -f "$f" ] && echo "chunk=$f" ;; esac
done
exit 0
"""

# Move a received file into place only if its sha256 matches (a hop's verification).
VERIFY = r"""
part=$1; final=$2; want=$3
got=$(sha256sum "$part" 2>/dev/null | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -f "$part"
  echo "hash mismatch for $final: expected $want, got ${got:-nothing}" >&2
  exit 7
fi
mkdir -p "$(dirname "$final")" && mv -f "$part" "$final"
"""

# Several chunks received into DIR/.recv/: each one whose sha256 matches moves to DIR/
# (its name printed), the others are deleted; exit 7 if any did not match.
VERIFY_MANY = r"""
dir=$1; shift
bad=""
while [ $# -gt 1 ]; do
  name=$1; want=$2; shift 2
  got=$(sha256sum "$dir/.recv/$name" 2>/dev/null | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then
    mv -f "$dir/.recv/$name" "$dir/$name" && echo "$name"
  else
    rm -f "$dir/.recv/$name"; bad="$bad $name"
  fi
done
if [ -n "$bad" ]; then echo "hash mismatch for chunks$bad in $dir" >&2; exit 7; fi
"""

# Join verified chunks into the wheel and move it into wheels/. Each chunk's sha256 was
# checked on arrival and the controller checked, when cutting, that these chunks make up
# the file with this sha256; re-hashing 300 MB per host (on a Pi's SD card) adds nothing.
# The size is checked: a missing or doubled chunk cannot slip through.
ASSEMBLE = r"""
final=$1; size=$2; shift 2
mkdir -p "$(dirname "$final")"
cat "$@" > "$final.part" || { rm -f "$final.part"; exit 1; }
got=$(wc -c < "$final.part" | tr -d ' ')
if [ "$got" != "$size" ]; then
  rm -f "$final.part"
  echo "size mismatch for $final: expected $size bytes, got $got" >&2
  exit 7
fi
mv -f "$final.part" "$final"
"""

# Build a new venv beside the active one; switch `current` only after the check import.
INSTALL = r"""
set -u
pdir=$1; vid=$2; py=$3; pipwhl=$4; check=$5; libs=$6; shift 6
v="$pdir/$vid"
fail() { code=$1; shift; echo "$*" >&2; [ "$(readlink "$pdir/current" 2>/dev/null)" = "$vid" ] || rm -rf "$v"; exit "$code"; }
mkdir -p "$pdir" || exit 8
if [ "$(readlink "$pdir/current" 2>/dev/null)" != "$vid" ]; then rm -rf "$v"; fi
if [ -n "$pipwhl" ]; then
  # pip runs from the wheelhouse's own pip wheel: no ensurepip / python3-venv needed.
  "$py" -m venv --without-pip "$v" || fail 8 "cannot create a venv with $py"
else
  "$py" -m venv "$v" || fail 8 "cannot create a venv with pip using $py (Debian/Ubuntu: apt install python3-venv; or put a pip wheel in the wheelhouse)"
fi
run_pip() {
  if [ -n "$pipwhl" ]; then "$v/bin/python" "$v/.wheelhouse/$pipwhl/pip" "$@"; else "$v/bin/python" -m pip "$@"; fi
}
mkdir -p "$v/.wheelhouse" || fail 8 "cannot write $v"
while [ $# -gt 0 ]; do ln -sf "$1" "$v/.wheelhouse/"; shift; done
mv -f "$pdir/.lock-$vid.txt" "$v/piforge-lock.txt" || fail 8 "lock file missing"
if [ "$libs" = 1 ]; then mv -f "$pdir/.needed-libs-$vid.py" "$v/piforge-needed-libs.py" || fail 8 "needed_libs.py missing"; fi
export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1   # the host's pip.conf must not redirect this install
run_pip install \
  --no-index --no-deps --no-cache-dir --disable-pip-version-check --no-warn-script-location \
  --find-links "$v/.wheelhouse" --require-hashes -r "$v/piforge-lock.txt" >"$pdir/install-$vid.log" 2>&1 \
  || { grep -v '^ *$' "$pdir/install-$vid.log" | tail -n 3 >&2; fail 8 "pip install failed (log: $pdir/install-$vid.log)"; }
# Every extension's shared libraries must resolve HERE (a wheel built against a build
# image's libopenblas fails now, naming library and wheel, not at import in a job).
if [ "$libs" = 1 ]; then
  "$v/bin/python" "$v/piforge-needed-libs.py" "$v" "$v/.wheelhouse"/*.whl >"$v/piforge-libs.out" 2>&1
  status=$?
  if [ "$status" -ne 0 ]; then
    why=$(head -n 5 "$v/piforge-libs.out" | sed 's/^missing //' | tr '\n' ';' | sed 's/;$//; s/;/; /g')
    if [ "$status" -eq 11 ]; then fail 11 "shared libraries missing on this host: $why"; fi
    fail 11 "needed-libraries check failed (exit $status): $why"
  fi
fi
rm -rf "$v/.wheelhouse"
# Runs with the profile's job environment (e.g. TF_USE_LEGACY_KERAS=1), as jobs will.
"$v/bin/python" -c '
import importlib, sys
for name in sys.argv[1].split(","):
    module = importlib.import_module(name.strip())
    print(name.strip(), getattr(module, "__version__", "?"))
' "$check" >"$v/piforge-check.out" 2>"$v/piforge-check.log" \
  || { tail -n 3 "$v/piforge-check.log" >&2; fail 9 "check import failed: $check"; }
cat "$v/piforge-check.out"
touch "$v/.piforge-ok"
old=$(readlink "$pdir/current" 2>/dev/null || true)
if [ -n "$old" ] && [ "$old" != "$vid" ]; then
  ln -sfn "$old" "$pdir/.previous.new" && mv -fT "$pdir/.previous.new" "$pdir/previous"
fi
ln -sfn "$vid" "$pdir/.current.new" && mv -fT "$pdir/.current.new" "$pdir/current" || exit 8
keep_prev=$(readlink "$pdir/previous" 2>/dev/null || true)
for d in "$pdir"/v-*; do
  name=$(basename "$d")
  [ "$name" = "$vid" ] || [ "$name" = "$keep_prev" ] || rm -rf "$d"
done
exit 0
"""

# Swap current and previous (each a single rename: never a moment without `current`).
ROLLBACK = r"""
pdir=$1
cur=$(readlink "$pdir/current" 2>/dev/null || true)
prev=$(readlink "$pdir/previous" 2>/dev/null || true)
if [ -z "$prev" ] || [ ! -f "$pdir/$prev/.piforge-ok" ]; then
  echo "no previous deployment to return to" >&2; exit 10
fi
ln -sfn "$prev" "$pdir/.current.new" && mv -fT "$pdir/.current.new" "$pdir/current" || exit 1
if [ -n "$cur" ]; then ln -sfn "$cur" "$pdir/.previous.new" && mv -fT "$pdir/.previous.new" "$pdir/previous"; fi
echo "$prev"
"""

# One relay hop, run on the sending host: scp to the next host through a ControlMaster
# of its own (one key exchange per pair, not per chunk). scp's output goes to a file:
# a persisting master holding this session's stderr would keep the session open.
RELAY = r"""
dest=$1; port=$2; known=$3; timeout=$4; control=$5; shift 5
err=$(mktemp) || exit 1
scp -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known" \
  -o ConnectTimeout="$timeout" -o ControlMaster=auto -o ControlPath="$control" -o ControlPersist=60 \
  -P "$port" -- "$@" "$dest" </dev/null >/dev/null 2>"$err"
status=$?
[ "$status" -eq 0 ] || cat "$err" >&2
rm -f "$err"
exit "$status"
"""

# After a deploy: drop chunks of assembled files and stale relay FIFOs, stop relay masters.
CLEAN_INCOMING = r"""
home=$1; shift
for sha in "$@"; do rm -rf "$home/wheels/.incoming/$sha"; done
rm -f "$home"/.relay/in-*      # FIFOs of stream relays that were killed
for socket in "$home"/.relay/cm-*; do
  [ -S "$socket" ] && ssh -o ControlPath="$socket" -O exit piforge-relay >/dev/null 2>&1
done
exit 0
"""


def run_script(host: Host, script: str, args: Sequence[object], *, timeout: float,
               check: bool = False) -> CommandResult:
    """Run one of the scripts above with positional ``args`` ($1, $2, ...)."""
    return host.run(["sh", "-c", script, "piforge", *[str(a) for a in args]], timeout=timeout, check=check)


def parse_probe(stdout: str) -> Dict[str, List[str]]:
    """``key=value`` lines -> key: [values] (have= and chunk= repeat)."""
    found: Dict[str, List[str]] = {}
    for line in stdout.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value)
    return found
