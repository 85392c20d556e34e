"""Hand-made derivations, store entries and keys (shared with tests/integration/cache)."""
from __future__ import annotations

from tests.cache_fixtures import drvs, install_fake, key, trusted  # noqa: F401
