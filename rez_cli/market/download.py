"""``rez data download``: candles from an exchange into files laid out as freqtrade lays them out.

    <out>/BTC_USDT-1h.json                      spot, freqtrade's json: [[ts_ms, o, h, l, c, v], ...]
    <out>/BTC_USDT-1h.csv                       header timestamp,open,high,low,close,volume
    <out>/BTC_USDT-1h.feather                   columns date (UTC), open, high, low, close, volume
    <out>/futures/BTC_USDT_USDT-1h-futures.feather   a contract (``BTC/USDT:USDT``)

A download resumes: an existing file is read, only candles after its last one (and before its first,
when ``since`` reaches further back) are fetched, and the merged file replaces it. Candles already
fetched are written even when the exchange fails halfway, so running the command again continues.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import pandas as pd

from rez_cli.errors import DataError, InvalidCandles, UsageError
from rez_cli.market.cache import merge_candles, symbol_to_filename, timeframe_to_filename, write_atomically
from rez_cli.market.candles import COLUMNS, validate_candles
from rez_cli.timeframes import timeframe_ms

if TYPE_CHECKING:
    from rez_cli.market.ccxt_source import CcxtSource

FileFormat = Literal["json", "csv", "feather"]
FORMATS: tuple[str, ...] = get_args(FileFormat)

DownloadProgress = Callable[[str, str, int, int], None]
"""Called as ``(symbol, timeframe, fetched_until_ms, target_ms)`` as pages arrive."""

# Pages asked for per call to the source: what is fetched is kept between calls, so a failure loses
# at most the call in flight; the file itself is written once, at the end.
_CHUNK_PAGES = 20


@dataclass(frozen=True)
class DownloadResult:
    """What one download did to one file."""

    symbol: str
    timeframe: str
    path: Path
    rows_added: int
    rows_total: int
    first_ms: int | None
    last_ms: int | None


def data_path(out_dir: Path, symbol: str, timeframe: str, fmt: FileFormat) -> Path:
    """The file freqtrade would use for these candles under ``out_dir`` (its ``datadir``)."""
    name = f"{symbol_to_filename(symbol)}-{timeframe_to_filename(timeframe)}"
    if ":" in symbol:
        # freqtrade keeps contracts apart: futures/ and a candle-type suffix.
        return out_dir / "futures" / f"{name}-futures.{fmt}"
    return out_dir / f"{name}.{fmt}"


def read_data_file(path: Path, fmt: FileFormat) -> pd.DataFrame:
    """A candle file written by ``write_data_file`` (or freqtrade) as a validated candle frame.

    Raises:
        DataError: the file cannot be read or its candles break a rule.
    """
    hint = "move the file away to download afresh"
    try:
        if fmt == "json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            frame = pd.DataFrame([row[:6] for row in rows], columns=COLUMNS)
        elif fmt == "csv":
            frame = pd.read_csv(path)
        else:
            raw = pd.read_feather(path)
            dates = pd.to_datetime(raw["date"], utc=True)
            frame = raw.drop(columns="date").assign(
                timestamp=(dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
            )
    except (OSError, ValueError, TypeError, KeyError, IndexError, RecursionError) as error:
        raise DataError(f"cannot read {path}: {type(error).__name__}: {error}", hint=hint) from error
    try:
        return validate_candles(frame, str(path))
    except InvalidCandles as error:
        raise InvalidCandles(error.message, hint=hint) from error


def write_data_file(path: Path, frame: pd.DataFrame, fmt: FileFormat) -> None:
    """Write a candle frame in ``fmt``, atomically (a temporary file replaces ``path``)."""
    candles = frame[COLUMNS].reset_index(drop=True)

    def write(temporary: Path) -> None:
        if fmt == "json":
            # Python's float repr is the shortest text that reads back exactly; pandas' to_json is not.
            columns = [candles[column].tolist() for column in COLUMNS]
            rows = [list(row) for row in zip(*columns, strict=True)]
            temporary.write_text(json.dumps(rows, separators=(",", ":")), encoding="utf-8")
        elif fmt == "csv":
            candles.to_csv(temporary, index=False)
        else:
            dates = pd.to_datetime(candles["timestamp"], unit="ms", utc=True).dt.as_unit("ns")
            out = candles.drop(columns="timestamp").assign(date=dates)[["date", *COLUMNS[1:]]]
            out.to_feather(temporary, compression="lz4", compression_level=9)

    try:
        write_atomically(path, write)
    except OSError as error:
        raise DataError(
            f"cannot write {path}: {error.strerror or error}", hint="choose another --out"
        ) from None


async def download(
    source: CcxtSource,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    *,
    since_ms: int,
    out_dir: Path,
    fmt: FileFormat = "json",
    until_ms: int | None = None,
    on_progress: DownloadProgress | None = None,
) -> list[DownloadResult]:
    """Download closed candles from ``since_ms`` to ``until_ms`` (default: now) into freqtrade-layout files.

    Files are handled one after the other (symbols, then timeframes), so that a long download stays
    within the exchange's rate limits and a failure leaves every finished file in place.

    Args:
        source: the exchange; it is not closed here.
        symbols: unified symbols (``BTC/USDT``, ``BTC/USDT:USDT``).
        timeframes: ccxt timeframes (``1h``).
        since_ms: the earliest candle wanted (its open time, ms since epoch).
        out_dir: freqtrade's datadir for the exchange (``user_data/data/binance``).
        fmt: ``json``, ``csv`` or ``feather``.
        until_ms: the moment by which the last candle must have closed.
        on_progress: told how far each file has got, e.g. to draw a progress bar.

    Raises:
        UsageError: an unknown format or an empty range.
        DataError: an existing file cannot be read.
        ExchangeError: as ``CcxtSource.fetch_range``; finished files and fetched candles are kept.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    for timeframe in timeframes:
        timeframe_ms(timeframe)
    # Before any request: a download that cannot be written is not worth the exchange's time.
    _check_out_dir(out_dir)
    end_ms = source.now() if until_ms is None else min(until_ms, source.now())
    if since_ms >= end_ms:
        raise UsageError("--since must be before the end of the download")
    results = []
    for symbol in symbols:
        for timeframe in timeframes:
            path = data_path(out_dir, symbol, timeframe, fmt)
            results.append(
                await _download_one(source, symbol, timeframe, since_ms, end_ms, path, fmt, on_progress)
            )
    return results


def _check_out_dir(out_dir: Path) -> None:
    try:
        not_a_folder = out_dir.exists() and not out_dir.is_dir()
    except OSError as error:  # a name too long for the file system
        raise UsageError(f"--out {out_dir}: {error.strerror or error}") from None
    if not_a_folder:
        raise UsageError(
            f"--out {out_dir} is not a directory", hint="give the folder to write the files into"
        )


def _read_existing(path: Path, fmt: FileFormat) -> pd.DataFrame | None:
    return read_data_file(path, fmt) if path.exists() else None


async def _download_one(
    source: CcxtSource,
    symbol: str,
    timeframe: str,
    since_ms: int,
    end_ms: int,
    path: Path,
    fmt: FileFormat,
    on_progress: DownloadProgress | None,
) -> DownloadResult:
    step = timeframe_ms(timeframe)
    existing = _read_existing(path, fmt)
    ranges: list[tuple[int, int]] = []
    if existing is None or existing.empty:
        ranges.append((since_ms, end_ms))
    else:
        first, last = int(existing["timestamp"].iloc[0]), int(existing["timestamp"].iloc[-1])
        if since_ms < first:
            ranges.append((since_ms, first))
        ranges.append((max(since_ms, last + step), end_ms))

    def progress(fetched_until_ms: int, _target_ms: int) -> None:
        if on_progress is not None:
            on_progress(symbol, timeframe, fetched_until_ms, end_ms)

    fetched: list[pd.DataFrame] = []
    try:
        for start, stop in ranges:
            progress(start, end_ms)
            cursor = start
            while cursor + step <= stop:
                frame = await source.fetch_range(
                    symbol, timeframe, cursor, until_ms=stop, on_progress=progress, max_pages=_CHUNK_PAGES
                )
                if frame.empty:
                    break
                fetched.append(frame)
                cursor = int(frame["timestamp"].iloc[-1]) + step
    finally:
        # Runs on failure too: what was fetched is kept, and the next run resumes after it.
        parts = ([] if existing is None else [existing]) + fetched
        merged = merge_candles(*parts) if parts else pd.DataFrame(columns=COLUMNS)
        added = len(merged) - (0 if existing is None else len(existing))
        if added > 0:
            write_data_file(path, merged, fmt)
    progress(end_ms, end_ms)
    return DownloadResult(
        symbol=symbol,
        timeframe=timeframe,
        path=path,
        rows_added=added,
        rows_total=len(merged),
        first_ms=int(merged["timestamp"].iloc[0]) if not merged.empty else None,
        last_ms=int(merged["timestamp"].iloc[-1]) if not merged.empty else None,
    )
