"""Do the shared libraries every ELF file of a venv needs resolve on this host?

Run by `doit deploy` on each host with the host's own python, BEFORE ``current`` is
switched: ``python needed_libs.py VENV [WHEEL_FILENAME...]``. It prints one line per
missing library (``missing LIB needed by FILE (wheel WHEEL)``) and exits 11 if any is
missing, 0 otherwise. A wheel built against a build image's libopenblas/libhdf5 then
fails here, naming the library and the wheel, not at ``import`` in the middle of a job.

What is checked is what ``import`` links: every Python extension module (an ELF file that
exports a ``PyInit_*`` symbol) and the libraries it loads, as ld.so meets them. Other
shared objects are plugins a package may dlopen on demand (ai-edge-litert ships OpenVINO
and Qualcomm dispatch plugins whose vendor SDKs a Pi never has): their libraries are not
required to import, and deploy's own ``import`` check covers what is dlopen'd at import.

Standalone on purpose (copied to the host, Python 3.8+, stdlib only). The ELF dynamic
section is read in pure Python; resolution follows ld.so's order: DT_RPATH (when there is
no DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, the ldconfig cache, ld.so.conf's dirs, the
default dirs, with $ORIGIN expanded and a candidate accepted only if its ELF class and
machine match (as ld.so skips e.g. i386 libraries for an x86_64 module).
"""
from __future__ import annotations

import glob
import os
import struct
import subprocess
import sys
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

EXIT_MISSING = 11
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 15, 29
PYTHON_MODULE_MARK = b"PyInit_"   # every extension module exports PyInit_<name>
DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")


class ElfDeps(NamedTuple):
    """What the dynamic loader needs to know about one ELF file."""

    elf_class: int          # 1: 32-bit, 2: 64-bit
    machine: int            # e_machine (62: x86_64, 183: aarch64)
    needed: Tuple[str, ...]
    rpath: Tuple[str, ...]
    runpath: Tuple[str, ...]
    python_module: bool = False   # exports PyInit_*: `import` loads it


def read_elf(path: str) -> Optional[ElfDeps]:
    """The file's DT_NEEDED/RPATH/RUNPATH, or None if it is not a dynamic ELF file."""
    try:
        with open(path, "rb") as handle:
            ident = handle.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                return None
            elf_class = ident[4]
            order = "<" if ident[5] == 1 else ">"
            machine = struct.unpack_from(order + "H", ident, 18)[0]
            if elf_class == 2:
                phoff, = struct.unpack_from(order + "Q", ident, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
                ph_format, dyn_format = order + "IIQQQQQQ", order + "qQ"
            else:
                phoff, = struct.unpack_from(order + "I", ident, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
                ph_format, dyn_format = order + "IIIIIIII", order + "iI"
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
            loads: List[Tuple[int, int, int]] = []   # (vaddr, offset, filesz)
            dynamic: Optional[Tuple[int, int]] = None
            for index in range(phnum):
                fields = struct.unpack_from(ph_format, table, index * phentsize)
                if elf_class == 2:
                    p_type, _, p_offset, p_vaddr, _, p_filesz = fields[:6]
                else:
                    p_type, p_offset, p_vaddr, _, p_filesz = fields[:5]
                if p_type == PT_LOAD:
                    loads.append((p_vaddr, p_offset, p_filesz))
                elif p_type == PT_DYNAMIC:
                    dynamic = (p_offset, p_filesz)
            if dynamic is None:
                return ElfDeps(elf_class, machine, (), (), ())   # static: needs nothing
            handle.seek(dynamic[0])
            raw = handle.read(dynamic[1])
            entries: List[Tuple[int, int]] = []
            size = struct.calcsize(dyn_format)
            for start in range(0, len(raw) - size + 1, size):
                tag, value = struct.unpack_from(dyn_format, raw, start)
                if tag == DT_NULL:
                    break
                entries.append((tag, value))
            strtab = next((v for t, v in entries if t == DT_STRTAB), None)
            if strtab is None:
                return ElfDeps(elf_class, machine, (), (), ())
            # DT_STRTAB is an address: the PT_LOAD segment holding it gives its file offset.
            base = next((off + strtab - va for va, off, sz in loads if va <= strtab < va + sz), None)
            if base is None:
                return None

            def string(offset: int) -> str:
                handle.seek(base + offset)
                data = b""
                while b"\0" not in data:
                    chunk = handle.read(256)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b"\0", 1)[0].decode("utf-8", "replace")

            def paths(tag: int) -> Tuple[str, ...]:
                return tuple(p for t, v in entries if t == tag for p in string(v).split(":") if p)

            def has_in_strtab(mark: bytes) -> bool:
                size = next((v for t, v in entries if t == DT_STRSZ), 0)
                handle.seek(base)
                tail = b""
                while size > 0:   # in pieces: TensorFlow's string tables run to megabytes
                    chunk = handle.read(min(size, 1 << 20))
                    if not chunk:
                        break
                    if mark in tail + chunk:
                        return True
                    tail, size = chunk[-len(mark):], size - len(chunk)
                return False

            needed = tuple(string(v) for t, v in entries if t == DT_NEEDED)
            return ElfDeps(elf_class, machine, needed, paths(DT_RPATH), paths(DT_RUNPATH),
                           has_in_strtab(PYTHON_MODULE_MARK))
    except (OSError, struct.error):
        return None


def elf_kind(path: str) -> Optional[Tuple[int, int]]:
    """(class, machine) of an ELF file, None if it is not one (or unreadable)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    return head[4], struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)[0]


def expand_origin(entry: str, origin: str) -> str:
    """$ORIGIN / ${ORIGIN}: the directory of the object that carries the path."""
    return entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)


def own_rpath(path: str, deps: ElfDeps) -> List[str]:
    origin = os.path.dirname(os.path.abspath(path))
    return [expand_origin(d, origin) for d in deps.rpath]


def ld_so_conf_dirs(path: str = "/etc/ld.so.conf", seen: Optional[set] = None) -> List[str]:
    """The directories ld.so.conf lists, following ``include`` globs."""
    seen = set() if seen is None else seen
    if path in seen:
        return []
    seen.add(path)
    dirs: List[str] = []
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return dirs
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            pattern = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            if pattern and not pattern.startswith("/"):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for included in sorted(glob.glob(pattern)):
                dirs += ld_so_conf_dirs(included, seen)
        else:
            dirs.append(line)
    return dirs


def ldconfig_cache() -> Dict[str, List[str]]:
    """soname -> paths from ``ldconfig -p`` (empty if there is no ldconfig)."""
    found: Dict[str, List[str]] = {}
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        try:
            output = subprocess.run([ldconfig, "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    universal_newlines=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in output.splitlines():
            if "=>" in line:
                left, target = line.split("=>", 1)
                found.setdefault(left.strip().split(" ", 1)[0], []).append(target.strip())
        return found
    return found


class Resolver:
    """Finds a soname the way ld.so would, for one host (its cache and dirs read once)."""

    def __init__(self, cache: Optional[Dict[str, List[str]]] = None, system_dirs: Optional[Sequence[str]] = None,
                 ld_library_path: Optional[str] = None) -> None:
        self.cache = ldconfig_cache() if cache is None else cache
        self.system_dirs = list(system_dirs) if system_dirs is not None else ld_so_conf_dirs() + list(DEFAULT_DIRS)
        env_path = os.environ.get("LD_LIBRARY_PATH", "") if ld_library_path is None else ld_library_path
        self.env_dirs = [d for d in env_path.split(":") if d]

    def resolve(self, name: str, needer: str, deps: ElfDeps, inherited: Sequence[str] = ()) -> Optional[str]:
        """Path ld.so would load for ``name`` needed by ``needer``; ``inherited``: the
        (expanded) DT_RPATH dirs of the objects that loaded ``needer``, which ld.so also
        searches when ``needer`` has no DT_RUNPATH (how auditwheel's grafted libraries
        find each other: only the extension module carries an RPATH)."""
        kind = (deps.elf_class, deps.machine)
        if "/" in name:
            return name if elf_kind(name) == kind else None
        dirs: List[str] = []
        if not deps.runpath:
            dirs += own_rpath(needer, deps) + list(inherited)
        dirs += self.env_dirs
        origin = os.path.dirname(os.path.abspath(needer))
        dirs += [expand_origin(d, origin) for d in deps.runpath]
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if elf_kind(candidate) == kind:
                return candidate
        for candidate in self.cache.get(name, []):
            if elf_kind(candidate) == kind:
                return candidate
        for directory in self.system_dirs:
            candidate = os.path.join(directory, name)
            if elf_kind(candidate) == kind:
                return candidate
        return None


class Missing(NamedTuple):
    library: str
    needed_by: str     # path relative to the venv
    wheel: str         # the wheel that installed needed_by ('?' if unknown)


def elf_files(root: str) -> Iterator[str]:
    """Every regular file below ``root`` named like a shared object (symlinks skipped:
    the venv's bin/python points at the system interpreter)."""
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".so") or ".so." in name:
                path = os.path.join(directory, name)
                if not os.path.islink(path) and os.path.isfile(path):
                    yield path


def _name_version(stem: str) -> Tuple[str, str]:
    """'Foo.Bar-1.0' (a dist-info dir or the start of a wheel filename) -> ('foo_bar', '1.0')."""
    parts = stem.split("-")
    name = parts[0].lower().replace(".", "_").replace("-", "_")
    return name, parts[1] if len(parts) > 1 else ""


def file_owners(venv: str, wheels: Sequence[str]) -> Dict[str, str]:
    """Absolute path -> wheel filename (or name-version), from each dist-info's RECORD."""
    by_name = {_name_version(os.path.basename(w)): os.path.basename(w) for w in wheels}
    owners: Dict[str, str] = {}
    for record in glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "*.dist-info", "RECORD")):
        site = os.path.dirname(os.path.dirname(record))
        dist = os.path.basename(os.path.dirname(record))[:-len(".dist-info")]
        label = by_name.get(_name_version(dist), dist)
        try:
            with open(record) as handle:
                for line in handle:
                    relative = line.rsplit(",", 2)[0]
                    owners[os.path.normpath(os.path.join(site, relative))] = label
        except OSError:
            continue
    return owners


def check_venv(venv: str, wheels: Sequence[str] = (), resolver: Optional[Resolver] = None) -> List[Missing]:
    """Every needed library that does not resolve, of every extension module in ``venv``
    and of what it loads.

    Files an extension module loads (grafted ``<pkg>.libs/`` libraries) are checked as
    ld.so meets them, below their loader (inheriting its DT_RPATH, with the sonames
    already loaded in that tree); every extension module no other one loads is a root.
    """
    resolver = resolver or Resolver()
    venv = os.path.abspath(venv)
    owners = file_owners(venv, wheels)
    parsed = {path: read_elf(path) for path in sorted(elf_files(venv))}
    files = {path: deps for path, deps in parsed.items() if deps is not None}
    inside = os.path.join(venv, "")
    reached = set()   # files some other venv file loads

    def walk(path: str, deps: ElfDeps, inherited: List[str], loaded: set, found_missing: List[Missing]) -> None:
        chain = inherited + (own_rpath(path, deps) if not deps.runpath else [])
        for name in deps.needed:
            if name in loaded:
                continue
            found = resolver.resolve(name, path, deps, inherited)
            if found is None:
                found_missing.append(Missing(name, os.path.relpath(path, venv), owners.get(path, "?")))
                continue
            loaded.add(name)
            found = os.path.abspath(found)
            if found != path and found.startswith(inside) and found in files:
                reached.add(found)
                walk(found, files[found], chain, loaded, found_missing)

    per_root: Dict[str, List[Missing]] = {}
    for path, deps in files.items():
        if not deps.python_module:
            continue   # a plugin: checked only where an extension module loads it
        per_root[path] = []
        walk(path, deps, [], set(), per_root[path])
    missing: List[Missing] = []
    for path, found_missing in per_root.items():
        if path not in reached:
            missing += [m for m in found_missing if m not in missing]
    return missing


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: needed_libs.py VENV [WHEEL...]", file=sys.stderr)
        return 2
    missing = check_venv(argv[0], argv[1:])
    for item in missing:
        print(f"missing {item.library} needed by {item.needed_by} (wheel {item.wheel})")
    return EXIT_MISSING if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
