"""Candle intervals as ccxt spells them ("1m", "15m", "4h", "1d", "1w")."""

from __future__ import annotations

import functools

from rez_cli.errors import UsageError

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# A year: no exchange has longer candles, and a 100000w candle spans more than numpy's int64 dates.
MAX_TIMEFRAME_MS = 366 * 86_400_000
_HINT = "use a number and a unit: 5m, 15m, 1h, 4h, 1d, 1w"


# A backtest asks for the same few timeframes about ten times a cycle; a failure is not remembered.
@functools.lru_cache(maxsize=64)
def timeframe_ms(timeframe: str) -> int:
    """Length of one candle in milliseconds.

    Raises:
        UsageError: the text is not a number followed by m, h, d or w, or the candle is longer
            than a year.
    """
    unit = timeframe[-1:]
    amount = timeframe[:-1]
    # isascii: "²".isdigit() is true, but int() cannot read it.
    if unit not in _UNIT_MS or not (amount.isascii() and amount.isdigit()) or int(amount) <= 0:
        raise UsageError(f"unknown timeframe {timeframe!r}", hint=_HINT)
    # Bounded by digits first, so that a thousand-digit amount is not multiplied out.
    if len(amount) > 9 or int(amount) * _UNIT_MS[unit] > MAX_TIMEFRAME_MS:
        raise UsageError(f"timeframe {timeframe!r} is longer than a year", hint=_HINT)
    return int(amount) * _UNIT_MS[unit]


def parse_timeframes(text: str) -> list[str]:
    """Parse a comma-separated list such as ``15m,1h,4h`` into sorted, unique timeframes."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError("no timeframe given", hint="e.g. --timeframes 15m,1h,4h")
    for item in items:
        timeframe_ms(item)
    return sorted(dict.fromkeys(items), key=timeframe_ms)
