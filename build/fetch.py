"""Fetch fixed-output sources into the content-addressed source cache.

``sources_dir()/<sha256>/<filename>``: a file (or a directory, for a local tree) enters
the cache only after its sha256 matched the recipe's pin, so whatever is there is
trusted. URLs are mirrors tried in order: ``https://`` / ``http://`` (requests, retries,
HTTP Range resume of a cut download), ``pypi:NAME==VERSION`` (the sdist, resolved through
PyPI's JSON API), ``file://`` and plain local paths (files or whole directories).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, List, Optional, Tuple
from urllib.parse import unquote, urljoin, urlparse

from .errors import FetchError, HashMismatchError
from .filelock import exclusive_lock
from .filehash_cache import FileHashCache, tree_hash
from .hashing import sha256_file
from .paths import sources_dir

PYPI_URL = "https://pypi.org"          # override with $PIFORGE_PYPI_URL (a PyPI mirror)
ATTEMPTS = 4                           # per URL: first try + resumes/retries
CONNECT_TIMEOUT, READ_TIMEOUT = 15, 60
BIG = 4 << 20                          # downloads larger than this show progress
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

Progress = Callable[[str], None]


class IncompleteDownload(Exception):
    """The server closed the connection before sending every byte it announced."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def ca_bundle() -> Any:
    """The CA file requests should trust: the system's, which knows local and proxy CAs
    (certifi's does not: behind an intercepting proxy every HTTPS request would fail)."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and Path(value).exists():
            return value
    return next((path for path in SYSTEM_CA_BUNDLES if Path(path).exists()), True)


def new_session() -> Any:
    import requests  # imported here: `doit list` should not pay for it

    session = requests.Session()
    session.verify = ca_bundle()
    session.headers["User-Agent"] = "piforge-fetch"
    return session


def cached_path(sha256: str, filename: str) -> Path:
    return sources_dir() / sha256 / filename


def is_cached(source: Any) -> bool:
    return cached_path(source.sha256, source.filename).exists()


def fetch(source: Any, *, session: Any = None, base_dir: Optional[Path] = None,
          progress: Progress = _stderr) -> Path:
    """Return the cached path of ``source``, fetching it from its first working URL.

    ``base_dir`` resolves relative local paths (the recipe's directory). Raises
    HashMismatchError if a URL served other bytes than pinned (nothing is cached), or
    FetchError naming every URL tried and why it failed.
    """
    target = cached_path(source.sha256, source.filename)
    if target.exists():
        return target
    failures: List[str] = []
    mismatches: List[Tuple[str, str]] = []
    with _fetch_lock(source.sha256):
        if target.exists():  # another process fetched it while we waited
            return target
        for url in source.urls:
            try:
                _fetch_one(url, source, target, session, base_dir, progress)
                return target
            except HashMismatchError as error:
                mismatches.append((url, getattr(error, "actual", "?")))
                failures.append(f"{url}: {error.message}")
            except FetchError as error:
                failures.append(f"{url}: {error.message}")
    tried = "\n".join(f"  - {line}" for line in failures)
    if mismatches:
        raise HashMismatchError(
            f"{source.filename}: sha256 mismatch (nothing was cached)\n"
            f"  expected {source.sha256}\n" + "".join(f"  actual   {actual}  from {url}\n" for url, actual in mismatches)
            + f"tried:\n{tried}",
            hint="if the new content is trusted, update sha256 in the recipe")
    raise FetchError(f"could not fetch {source.filename} (sha256 {source.sha256}); tried:\n{tried}")


def _fetch_lock(sha256: str) -> ContextManager[None]:
    """One fetch per source at a time across processes (they share the .part file)."""
    return exclusive_lock(sources_dir() / ".tmp" / f"{sha256}.lock")


def _fetch_one(url: str, source: Any, target: Path, session: Any, base_dir: Optional[Path],
               progress: Progress) -> None:
    local = local_path(url, base_dir)
    if local is not None:
        _fetch_local(local, source, target)
        return
    scheme = urlparse(url).scheme
    if scheme == "pypi":
        session = session or new_session()
        url = resolve_pypi(url, source, session)
    elif scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme '{scheme}' (expected https, http, file, pypi or a path)")
    session = session or new_session()
    part = sources_dir() / ".tmp" / f"{source.sha256}.part"
    download(url, part, session, progress=progress, label=source.filename)
    _verify_and_move(part, source, target)


def local_path(url: str, base_dir: Optional[Path]) -> Optional[Path]:
    """The filesystem path a ``file://`` URL or plain path names, else None."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and url[1:3] == ":\\"):
        path = Path(url).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path
    return None


def _fetch_local(path: Path, source: Any, target: Path) -> None:
    if path.is_dir():
        actual = tree_hash(path, FileHashCache.for_tree(path))
        if actual != source.sha256:
            raise _mismatch(source.sha256, actual, f"directory {path}")
        staging = target.parent.parent / ".tmp" / f"{source.sha256}.tree"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(path, staging, symlinks=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        return
    if not path.is_file():
        raise FetchError(f"no such file or directory: {path}")
    part = sources_dir() / ".tmp" / f"{source.sha256}.part"
    shutil.copyfile(path, part)
    _verify_and_move(part, source, target)


def _mismatch(expected: str, actual: str, what: str) -> HashMismatchError:
    error = HashMismatchError(f"sha256 mismatch for {what}: expected {expected}, got {actual}")
    error.actual = actual  # type: ignore[attr-defined]
    return error


def _verify_and_move(part: Path, source: Any, target: Path) -> None:
    actual = sha256_file(part)
    if actual != source.sha256:
        part.unlink()
        raise _mismatch(source.sha256, actual, source.filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)


def resolve_pypi(url: str, source: Any, session: Any) -> str:
    """``pypi:NAME==VERSION`` -> the URL of that release's sdist, via PyPI's JSON API.

    Tries the per-release document first, then the project document (some mirrors and
    proxies only serve the latter). If PyPI's own digest differs from the pin, stop here.
    """
    spec = url.split(":", 1)[1]
    if "==" not in spec:
        raise FetchError(f"'{url}' must look like pypi:NAME==VERSION")
    name, version = (part.strip() for part in spec.split("==", 1))
    base = os.environ.get("PIFORGE_PYPI_URL", PYPI_URL).rstrip("/")
    files = None
    errors = []
    for document, pick in ((f"{base}/pypi/{name}/{version}/json", lambda data: data.get("urls")),
                           (f"{base}/pypi/{name}/json", lambda data: data.get("releases", {}).get(version))):
        try:
            response = session.get(document, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        except Exception as error:  # requests' many connection errors
            errors.append(f"{document}: {type(error).__name__}: {error}")
            continue
        if response.status_code != 200:
            errors.append(f"{document}: HTTP {response.status_code}")
            continue
        try:
            files = pick(response.json())
        except ValueError:
            errors.append(f"{document}: not JSON")
            continue
        if files is not None:
            break
        errors.append(f"{document}: no release {version}")
    if not files:
        raise FetchError(f"PyPI has no files for {name}=={version} ({'; '.join(errors) or 'empty release'})")
    sdists = [f for f in files if f.get("packagetype") == "sdist"]
    chosen = next((f for f in sdists if f.get("filename") == source.filename), sdists[0] if sdists else None)
    if chosen is None:
        raise FetchError(f"PyPI has no sdist for {name}=={version}")
    published = chosen.get("digests", {}).get("sha256")
    if published and published != source.sha256:
        raise _mismatch(source.sha256, published, f"{chosen['filename']} (PyPI's published digest)")
    return urljoin(response.url or document, chosen["url"])


def download(url: str, part: Path, session: Any, *, progress: Progress = _stderr,
             label: str = "", attempts: int = ATTEMPTS) -> None:
    """Download ``url`` to ``part``, resuming with an HTTP Range request when cut off.

    A ``part`` left by an earlier, interrupted run is resumed too. Client errors (4xx
    but 408/429) are final; connection drops, timeouts and 5xx are retried with backoff.
    """
    import requests

    part.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(8.0, 0.5 * 2 ** attempt))
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with session.get(url, headers=headers, stream=True,
                             timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
                if response.status_code == 416 and offset:  # .part is stale or complete: start over
                    part.unlink()
                    last = "HTTP 416 for a resume; restarting"
                    continue
                if response.status_code >= 400:
                    last = f"HTTP {response.status_code} {response.reason}"
                    if response.status_code < 500 and response.status_code not in (408, 429):
                        raise FetchError(last)
                    continue
                resumed = response.status_code == 206
                if not resumed:
                    offset = 0  # the server ignored Range: take the whole body again
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
                _stream_body(response, part, offset, total, resumed, progress, label or url)
                return
        except FetchError:
            raise
        except (requests.RequestException, IncompleteDownload, OSError) as error:
            last = f"{type(error).__name__}: {error}"
            progress(f"fetch {label or url}: interrupted ({last}); "
                     f"{'resuming' if attempt + 1 < attempts else 'giving up'}")
    raise FetchError(f"failed after {attempts} attempts: {last}")


def _stream_body(response: Any, part: Path, offset: int, total: Optional[int], resumed: bool,
                 progress: Progress, label: str) -> None:
    show = total is None or total > BIG
    written = offset
    next_report = time.monotonic() + 2.0
    with open(part, "ab" if resumed else "wb") as handle:
        for block in response.iter_content(chunk_size=1 << 16):
            handle.write(block)
            written += len(block)
            if show and time.monotonic() >= next_report:
                next_report = time.monotonic() + 2.0
                of = f"/{total / 1e6:.1f} MB ({100 * written // total}%)" if total else " MB"
                progress(f"fetch {label}: {written / 1e6:.1f}{of}")
    if total is not None and written < total:
        raise IncompleteDownload(f"got {written} of {total} bytes")
