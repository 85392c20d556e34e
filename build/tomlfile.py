"""Read TOML with enough position information to say ``file:LINE: field: problem``.

tomllib/tomli give values but no positions, so we index the raw text ourselves:
every ``[table]``/``[[array]]`` header and every ``key =`` line, by dotted path.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Type

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.8-3.10 (Ubuntu 20.04 on the Pi)
    import tomli as tomllib

from .errors import ConfigError

_HEADER = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")
_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _split_dotted(key: str) -> Tuple[str, ...]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', key)
    return tuple(p.strip("\"'") for p in parts)


class TomlDocument:
    """A parsed TOML file plus a map from dotted key paths to line numbers."""

    def __init__(self, path: str, text: str, data: Dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self._lines: Dict[Tuple[str, ...], int] = {}
        self._index(text)

    def _index(self, text: str) -> None:
        table: Tuple[str, ...] = ()
        counts: Dict[Tuple[str, ...], int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                table = _split_dotted(header.group(2))
                if header.group(1):  # [[array]]: address entries as name.N
                    index = counts.get(table, 0)
                    counts[table] = index + 1
                    self._lines.setdefault(table, number)
                    table = table + (str(index),)
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self._lines.setdefault(table + _split_dotted(key.group(1)), number)

    def line_of(self, *keys: str) -> Optional[int]:
        """Line of the deepest known prefix of ``keys`` (a field, else its table)."""
        path = tuple(str(k) for k in keys)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None

    def error(self, error_type: Type[ConfigError], keys: Tuple[str, ...], problem: str,
              hint: Optional[str] = None) -> ConfigError:
        """Build ``error_type`` pointing at the line of ``keys``; field is the dotted path."""
        return error_type(self.path, self.line_of(*keys), ".".join(str(k) for k in keys), problem, hint=hint)


def load_toml(path: Path, error_type: Type[ConfigError] = ConfigError,
              display: Optional[str] = None) -> TomlDocument:
    """Parse ``path``; syntax errors become ``error_type`` with the file and line."""
    shown = display or str(path)
    if os.environ.get("PIFORGE_TRACE_LOADS"):   # tests count loads: each file once per run
        print(f"piforge: trace: load {path}", file=sys.stderr, flush=True)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_type(shown, None, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error_type(shown, None, "", f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _AT_LINE.search(message)
        line = int(at.group(1)) if at else None
        raise error_type(shown, line, "", f"invalid TOML: {_AT_LINE.sub('', message).strip()}") from None
    return TomlDocument(shown, text, data)
