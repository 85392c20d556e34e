"""The one fixed build time: 1980-01-01 00:00:00 UTC, the oldest a zip (a wheel) can
store. Outputs must not depend on when they were built (SOURCE_DATE_EPOCH, file mtimes
in wheels and image layers, the image creation time all use this one value)."""
from __future__ import annotations

EPOCH = 315532800
SOURCE_DATE_EPOCH = str(EPOCH)
EPOCH_ISO = "1980-01-01T00:00:00Z"
