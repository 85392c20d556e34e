"""doit tasks of the train area (filled in by its issue)."""
from __future__ import annotations

__all__: list = []
