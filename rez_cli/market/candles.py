"""The candle frame every source returns, and the rules it must obey.

A candle frame is a ``pandas.DataFrame`` with a ``RangeIndex`` and the columns ``timestamp``
(int64, ms since epoch, the candle's *open* time, UTC), ``open``, ``high``, ``low``, ``close``,
``volume`` (float64), sorted by time, one row per candle. Every source runs ``validate_candles``
before handing a frame on: a bad row is an error that names it, never silently used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from rez_cli import clock
from rez_cli.clock import iso
from rez_cli.errors import InvalidCandles, UsageError
from rez_cli.timeframes import timeframe_ms

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
# The last millisecond datetime can show (9999-12-31T23:59:59.999Z): a moment past it cannot be
# printed, and numbers that large overflow the int64 arithmetic of the frames.
LATEST_MS = 253_402_300_799_999

RowName = Callable[[int], str]
"""How a message names the row at a position of a frame: ``row 13``, or a file's ``line 14``."""


def row_number(position: int) -> str:
    """The default ``RowName``: rows counted from 1, as the data's own order."""
    return f"row {position + 1}"


def _row_name(frame: pd.DataFrame, position: int, where: str, name: RowName) -> str:
    ts = frame["timestamp"].iloc[position]
    try:
        when = iso(int(ts))
    except (ValueError, OverflowError, OSError):
        when = repr(ts)
    return f"{where}: {name(position)} ({when})"


def _first_non_numeric(out: pd.DataFrame) -> tuple[int, str, object] | None:
    # Only on the error path: a plain loop, since cells may hold anything (text, lists, huge ints).
    for position in range(len(out)):
        for column in COLUMNS:
            value = out[column].iloc[position]
            if value is None:
                continue  # missing: the finiteness rule names it
            try:
                float(value)
            except (TypeError, ValueError, OverflowError):
                return position, column, value
    return None


def validate_candles(frame: pd.DataFrame, where: str, *, row_name: RowName = row_number) -> pd.DataFrame:
    """Check a frame against the candle rules and return it in canonical form.

    Args:
        frame: columns at least ``timestamp, open, high, low, close, volume``.
        where: what to call the data in an error (a file, ``binance BTC/USDT 1h``...).
        row_name: how to name the row at a position, so that the user can find it (a CSV file
            names its lines).

    Raises:
        InvalidCandles: the first rule broken, naming the row and its time.
    """
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidCandles(f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    out = frame[COLUMNS].reset_index(drop=True)
    try:
        numbers = out.astype(dict.fromkeys(COLUMNS, "float64"))
    except (ValueError, TypeError, OverflowError) as error:
        found = _first_non_numeric(out)
        if found is None:
            raise InvalidCandles(f"{where}: non-numeric value ({error})") from None
        position, column, value = found
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InvalidCandles(f"{where}: {row_name(position)}: {column} {shown} is not a number") from None
    values = numbers.to_numpy()
    not_finite = ~np.isfinite(values)
    if not_finite.any():
        row = int(np.argwhere(not_finite)[0][0])
        column = COLUMNS[int(np.argwhere(not_finite)[0][1])]
        raise InvalidCandles(f"{_row_name(out, row, where, row_name)}: {column} is not a finite number")
    ts_float = numbers["timestamp"].to_numpy()
    bad_ts = (ts_float != np.floor(ts_float)) | (ts_float < 0) | (ts_float > LATEST_MS)
    if bad_ts.any():
        row = int(np.argmax(bad_ts))
        problem = "is after the year 9999" if ts_float[row] > LATEST_MS else "is not whole milliseconds"
        raise InvalidCandles(f"{where}: {row_name(row)}: timestamp {ts_float[row]!r} {problem}")
    numbers["timestamp"] = numbers["timestamp"].astype("int64")
    ts = numbers["timestamp"].to_numpy()
    if len(ts) > 1:
        step = np.diff(ts)
        if (step <= 0).any():
            # Both rows are named: which of the two is wrong only the user can tell.
            row = int(np.argmax(step <= 0)) + 1
            problem = (
                "duplicate timestamp, the same as" if step[row - 1] == 0 else "out of order: earlier than"
            )
            raise InvalidCandles(f"{_row_name(numbers, row, where, row_name)}: {problem} {row_name(row - 1)}")
    prices = numbers[PRICE_COLUMNS].to_numpy()
    if (prices <= 0).any():
        row = int(np.argwhere(prices <= 0)[0][0])
        raise InvalidCandles(f"{_row_name(numbers, row, where, row_name)}: prices must be positive")
    if (numbers["volume"].to_numpy() < 0).any():
        row = int(np.argmax(numbers["volume"].to_numpy() < 0))
        raise InvalidCandles(f"{_row_name(numbers, row, where, row_name)}: volume is negative")
    body_low = np.minimum(numbers["open"].to_numpy(), numbers["close"].to_numpy())
    body_high = np.maximum(numbers["open"].to_numpy(), numbers["close"].to_numpy())
    low_bad = numbers["low"].to_numpy() > body_low
    if low_bad.any():
        row = int(np.argmax(low_bad))
        raise InvalidCandles(f"{_row_name(numbers, row, where, row_name)}: low is above min(open, close)")
    high_bad = numbers["high"].to_numpy() < body_high
    if high_bad.any():
        row = int(np.argmax(high_bad))
        raise InvalidCandles(f"{_row_name(numbers, row, where, row_name)}: high is below max(open, close)")
    return numbers


@dataclass(frozen=True)
class Gap:
    """Candles missing between two rows (exchange downtime, delisting, a hole in a file)."""

    after_ms: int
    missing: int

    def describe(self) -> str:
        return f"{self.missing} candle{'s' if self.missing > 1 else ''} missing after {iso(self.after_ms)}"


def find_gaps(frame: pd.DataFrame, timeframe: str) -> list[Gap]:
    """Holes in a validated frame: places where consecutive candles are more than one interval apart."""
    step_ms = timeframe_ms(timeframe)
    ts = frame["timestamp"].to_numpy()
    if len(ts) < 2:
        return []
    steps = np.diff(ts)
    holes = np.flatnonzero(steps > step_ms)
    return [Gap(int(ts[i]), int(steps[i] // step_ms) - 1) for i in holes]


def drop_unclosed(frame: pd.DataFrame, timeframe: str, now_ms: int) -> pd.DataFrame:
    """Keep only candles whose interval has ended by ``now_ms``.

    Indicators must never see a forming candle.
    """
    closes = frame["timestamp"].to_numpy() + timeframe_ms(timeframe)
    keep = closes <= now_ms
    if keep.all():
        return frame
    return frame.loc[keep].reset_index(drop=True)


def close_time_ms(frame: pd.DataFrame, timeframe: str) -> int:
    """The close time of the last candle of a frame."""
    return int(frame["timestamp"].iloc[-1]) + timeframe_ms(timeframe)


def resample(
    frame: pd.DataFrame, source_tf: str, target_tf: str, *, complete_only: bool = True
) -> pd.DataFrame:
    """Aggregate candles to a higher timeframe (open first, high max, low min, close last, volume sum).

    Buckets are aligned to the epoch, as exchanges align them (4h candles open at 00:00, 04:00 UTC...).
    With ``complete_only`` a bucket is kept only when every one of its source candles is present, so a
    higher-timeframe candle never exists before all of its parts have closed.

    Raises:
        UsageError: ``target_tf`` is lower than ``source_tf`` or not a whole multiple of it.
    """
    source_ms, target_ms = timeframe_ms(source_tf), timeframe_ms(target_tf)
    if target_ms == source_ms:
        return frame
    if target_ms < source_ms or target_ms % source_ms:
        raise UsageError(
            f"cannot build {target_tf} candles from {source_tf} candles",
            hint=f"{target_tf} must be a whole multiple of {source_tf}",
        )
    per_bucket = target_ms // source_ms
    if target_tf.endswith("w"):
        # Exchanges start weeks on Monday; the epoch fell on a Thursday.
        offset = 4 * 86_400_000
        bucket = (frame["timestamp"] - offset) // target_ms * target_ms + offset
    else:
        bucket = frame["timestamp"] // target_ms * target_ms
    grouped = frame.groupby(bucket.to_numpy(), sort=True)
    out = pd.DataFrame(
        {
            "timestamp": grouped["timestamp"].first().index.astype("int64"),
            "open": grouped["open"].first().to_numpy(),
            "high": grouped["high"].max().to_numpy(),
            "low": grouped["low"].min().to_numpy(),
            "close": grouped["close"].last().to_numpy(),
            "volume": grouped["volume"].sum().to_numpy(),
        }
    )
    if complete_only:
        counts = grouped["timestamp"].count().to_numpy()
        out = out.loc[counts == per_bucket].reset_index(drop=True)
    return out


def parse_time(text: str, *, option: str | None = None, past: bool = False) -> int:
    """A date or time given by a user (``2021-03-01``, ``2021-03-01T12:00``, ms since epoch) as ms, UTC.

    Args:
        text: what the user typed.
        option: the option it came from (``--as-of``), to name it in an error.
        past: the moment must have happened: the market has no candles after now, and a made-up
            future (the simulator would draw one) must never pass for data.

    Raises:
        UsageError: not a date, outside 1970..9999, or (with ``past``) later than now.
    """
    prefix = f"{option}: " if option else ""
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit():
        moment_ms = int(stripped)
    else:
        try:
            moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"{prefix}cannot read {text!r} as a date", hint="use 2021-03-01 or 2021-03-01T12:00"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment_ms = int(moment.timestamp() * 1000)
    if not 0 <= moment_ms <= LATEST_MS:
        raise UsageError(
            f"{prefix}{text!r} is not a date between 1970 and 9999", hint="use 2021-03-01 or 2021-03-01T12:00"
        )
    now_ms = clock.now_ms()
    if past and moment_ms > now_ms:
        raise UsageError(
            f"{prefix}{text!r} is in the future ({iso(moment_ms)}, now is {iso(now_ms)})",
            hint="there are no candles after now: use a past moment, or leave it out for now",
        )
    return moment_ms
