"""The clock, and how Rez writes a moment: milliseconds since the epoch, shown as ISO 8601 UTC.

Every timestamp Rez stores or compares is an ``int`` of milliseconds since 1970-01-01 UTC (the
exchanges' unit). "Now" is read here and nowhere else, so that each part of Rez means the same
instant by it, and a test or a replay that needs another present passes its own ``now_ms`` value.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

__all__ = ["iso", "now_ms"]


def now_ms() -> int:
    """The present, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


# A backtest writes each moment twice: as one cycle's as-of, then as the decision the next recalls.
@functools.lru_cache(maxsize=1024)
def iso(ts_ms: int) -> str:
    """A millisecond timestamp as compact ISO 8601 UTC, for messages; the number itself past year 9999."""
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"{ts_ms} ms"  # a message about an absurd time must still be shown
