"""Closed candles kept on disk between runs, one Feather file per exchange, symbol and timeframe.

``<directory>/binance/BTC_USDT-1h.feather`` holds a candle frame (see ``market.candles``). Closed
candles never change, so a source only asks the exchange for candles newer than the last one cached.
Each file holds one run of candles as the exchange gave them: a new run that does not touch the
cached one replaces it, so "newer than the last cached candle" never hides a hole.
Writes go to a temporary file that replaces the old one, so a reader never sees half a file; a file
that cannot be read is treated as absent (the candles are fetched again), never as an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rez_cli.config.paths import cache_dir, private_dir
from rez_cli.errors import InvalidCandles
from rez_cli.market.candles import COLUMNS, validate_candles
from rez_cli.timeframes import timeframe_ms

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def default_cache_dir() -> Path:
    """Where candles are cached unless configured otherwise."""
    return cache_dir() / "candles"


def symbol_to_filename(symbol: str) -> str:
    """``BTC/USDT`` → ``BTC_USDT``, ``BTC/USDT:USDT`` → ``BTC_USDT_USDT``, as freqtrade names its files."""
    for char in "/ .@$+:":
        symbol = symbol.replace(char, "_")
    return _UNSAFE.sub("_", symbol)


def timeframe_to_filename(timeframe: str) -> str:
    """``1h`` → ``1h``; a month (``1M``) becomes ``1Mo`` so that it differs from ``1m`` on any filesystem."""
    return timeframe.replace("M", "Mo") if timeframe.endswith("M") else timeframe


def merge_candles(*frames: pd.DataFrame) -> pd.DataFrame:
    """The frames as one, sorted by time; where several hold a timestamp, the last frame given wins."""
    merged = pd.concat([frame[COLUMNS] for frame in frames if not frame.empty] or [frames[0][COLUMNS]])
    merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp", kind="stable")
    return merged.reset_index(drop=True)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file next to ``path``, then move it over ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


class CandleCache:
    """Candle frames on disk, keyed by exchange, symbol and timeframe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def default(cls) -> CandleCache:
        """The cache under the user's cache directory (``REZ_HOME`` moves it)."""
        return cls(default_cache_dir())

    def path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        """The file that holds these candles (it may not exist)."""
        name = f"{symbol_to_filename(symbol)}-{timeframe_to_filename(timeframe)}.feather"
        return self.directory / _UNSAFE.sub("_", exchange) / name

    def load(self, exchange: str, symbol: str, timeframe: str) -> pd.DataFrame | None:
        """The cached candles, or ``None`` when there are none or the file cannot be used."""
        path = self.path(exchange, symbol, timeframe)
        if not path.is_file():
            return None
        try:
            frame = pd.read_feather(path)
            frame = validate_candles(frame, str(path))
        except (InvalidCandles, OSError, ValueError, TypeError, KeyError, ImportError, RuntimeError):
            # pyarrow's ArrowInvalid is a ValueError; anything unreadable is simply fetched again.
            return None
        return frame if not frame.empty else None

    def store(self, exchange: str, symbol: str, timeframe: str, candles: pd.DataFrame) -> pd.DataFrame:
        """Add closed candles to the cache and return what it now holds.

        Candles that overlap or adjoin the cached run are merged into it (the new ones win on equal
        timestamps); a run that does not touch it replaces it.
        """
        step = timeframe_ms(timeframe)
        new = candles[COLUMNS].reset_index(drop=True)
        old = self.load(exchange, symbol, timeframe)
        if old is not None and not new.empty and _touch(old, new, step):
            merged = merge_candles(old, new)
        else:
            merged = new
        if merged.empty:
            return merged
        path = self.path(exchange, symbol, timeframe)
        # Rez's own state, like the journal: 0700 directories, and mkstemp's 0600 files.
        private_dir(path.parent)
        write_atomically(path, lambda temporary: merged.to_feather(temporary))
        return merged


def _touch(old: pd.DataFrame, new: pd.DataFrame, step: int) -> bool:
    old_first, old_last = int(old["timestamp"].iloc[0]), int(old["timestamp"].iloc[-1])
    new_first, new_last = int(new["timestamp"].iloc[0]), int(new["timestamp"].iloc[-1])
    return new_first <= old_last + step and new_last + step >= old_first
