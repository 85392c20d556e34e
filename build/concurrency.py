"""Work on many hosts at once, a bounded number at a time."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_bounded(work: Callable[[T], R], items: Iterable[T], limit: int = 32) -> List[R]:
    """``work`` on every item at once, at most ``limit`` running, results in item order.
    No items, no pool (a ThreadPoolExecutor refuses max_workers=0)."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(limit, len(items))) as pool:
        return list(pool.map(work, items))
