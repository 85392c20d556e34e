"""doit tasks of the cache area (filled in by its issue)."""
from __future__ import annotations

__all__: list = []
