"""doit tasks of the spine area (filled in by its issue)."""
from __future__ import annotations

__all__: list = []
