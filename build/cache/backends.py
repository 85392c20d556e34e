"""The cache backends by URL scheme: the one place a new kind of cache is added."""
from __future__ import annotations

import urllib.parse
from typing import Callable, Dict, Optional

from ..errors import CacheError
from .filesystem import FileRemote
from .http import HttpRemote
from .remote import Remote, redact
from .s3 import S3Remote

# scheme -> (url, endpoint, region) -> backend; endpoint and region matter to S3 only.
BACKENDS: Dict[str, Callable[[str, Optional[str], Optional[str]], Remote]] = {
    "http": lambda url, endpoint, region: HttpRemote(url),
    "https": lambda url, endpoint, region: HttpRemote(url),
    "file": lambda url, endpoint, region: FileRemote(url),
    "s3": lambda url, endpoint, region: S3Remote(url, endpoint=endpoint, region=region),
}


def open_remote(url: str, endpoint: Optional[str] = None, region: Optional[str] = None) -> Remote:
    """The backend for ``url``: http(s)://, file:// or s3://."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in BACKENDS:
        schemes = ", ".join(f"{s}://" for s in BACKENDS)
        raise CacheError(f"cache URL {redact(url)!r}: unsupported scheme {scheme!r} (use {schemes})")
    return BACKENDS[scheme](url, endpoint, region)
