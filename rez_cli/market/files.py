"""Candles from files: one CSV / JSON / Parquet / Feather file, or a freqtrade data directory.

A directory is read as freqtrade lays out ``download-data``: ``BTC_USDT-1h.json``,
``BTC_USDT-5m.feather``, ``.csv`` and ``.parquet`` too; futures ``BTC/USDT:USDT`` as
``BTC_USDT_USDT-1h-futures.*`` (also under ``futures/``). A timeframe with no file is resampled from the
finest file whose interval divides it; a timeframe finer than every file is an error.

File time is the end of the data: "now" for a file source is the close of the last candle of the finest
timeframe, and every timeframe is cut there, so all frames of one fetch end at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rez_cli.errors import DataError, DataNotFound, InvalidCandles, UsageError
from rez_cli.market.candles import (
    COLUMNS,
    RowName,
    close_time_ms,
    drop_unclosed,
    resample,
    row_number,
    validate_candles,
)
from rez_cli.timeframes import timeframe_ms

SUFFIXES = (".feather", ".parquet", ".json", ".csv")
_NAME = re.compile(r"^(?P<pair>.+?)-(?P<tf>\d+[mhdw])(?:-(?P<kind>futures|mark|index|funding_rate))?$")


def pair_filename(symbol: str) -> str:
    """freqtrade's file stem for a symbol.

    ``BTC/USDT`` → ``BTC_USDT``, ``BTC/USDT:USDT`` → ``BTC_USDT_USDT``.
    """
    return re.sub(r"[/:\-]", "_", symbol.upper())


@dataclass(frozen=True)
class DataFile:
    path: Path
    symbol_stem: str | None
    timeframe: str | None
    futures: bool


def describe(path: Path) -> DataFile:
    stem = path.name
    for suffix in SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    match = _NAME.match(stem)
    if match is None:
        return DataFile(path, None, None, False)
    try:
        timeframe_ms(match["tf"])
    except UsageError:
        return DataFile(path, None, None, False)  # "BTC_USDT-100000w.csv" names no timeframe Rez reads
    return DataFile(path, match["pair"].upper(), match["tf"], match["kind"] == "futures")


def _csv_row_name(path: Path, rows: int) -> RowName:
    """Name a CSV row by its line in the file, as an editor counts lines (pandas skips blank ones).

    The file is read again only when an error needs a name, and only its line breaks are looked at;
    when its lines do not match the rows read (a quoted field holding a line break), rows are counted.
    """
    found: list[list[int]] = []

    def name(position: int) -> str:
        if not found:
            found.append(_csv_data_lines(path, rows))
        lines = found[0]
        return f"line {lines[position]}" if 0 <= position < len(lines) else row_number(position)

    return name


def _csv_data_lines(path: Path, rows: int) -> list[int]:
    try:
        content = path.read_bytes()
    except OSError:
        return []
    filled = [number for number, line in enumerate(content.split(b"\n"), 1) if line.strip(b" \t\r")]
    data = filled[1:]  # the first line with anything on it is the header
    return data if len(data) == rows else []


def _timestamps(series: pd.Series, where: str, row_name: RowName = row_number) -> pd.Series:
    """Milliseconds from a column of ms numbers, ISO 8601 text, or datetimes."""
    if pd.api.types.is_datetime64_any_dtype(series):
        if series.dt.tz is None:
            series = series.dt.tz_localize("UTC")
        converted: pd.Series = series.dt.tz_convert("UTC").astype("datetime64[ms, UTC]").astype("int64")
        return converted
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype("float64")
        # Seconds since epoch (10 digits) are common in exported files; ms have 13.
        if len(values) and values.abs().max() < 1e11:
            values = values * 1000
        return values
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return _timestamps(numeric, where, row_name)
    # As text: pandas would read a stray number in the column as a date format, not as epoch time.
    parsed = pd.to_datetime(series.astype(str), utc=True, format="ISO8601", errors="coerce")
    unreadable = parsed.isna().to_numpy()
    if unreadable.any():
        bad = int(np.argmax(unreadable))
        shown = repr(series.iloc[bad])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InvalidCandles(f"{where}: {row_name(bad)}: timestamp {shown} is neither ms nor ISO 8601")
    return parsed.astype("datetime64[ms, UTC]").astype("int64")


def read_file(path: Path) -> pd.DataFrame:
    """Read one candle file into a validated frame.

    Raises:
        DataNotFound: the file does not exist.
        DataError, InvalidCandles: the file cannot be read or a row breaks a candle rule.
    """
    where = str(path)
    if not path.is_file():
        if path.is_symlink() or path.exists():
            raise DataError(f"{path}: not a regular file (a directory, a FIFO, a device or a link loop)")
        raise DataNotFound(f"{path}: no such file")
    suffix = path.suffix.lower()
    row_name: RowName = row_number
    try:
        if suffix == ".csv":
            raw = pd.read_csv(path)
            row_name = _csv_row_name(path, len(raw))
        elif suffix == ".json":
            with path.open("rb") as handle:
                try:
                    content = json.load(handle)
                except RecursionError:
                    raise DataError(f"{path}: cannot read: JSON nested too deeply to be candles") from None
            raw = _json_frame(content, where)
        elif suffix == ".feather":
            raw = pd.read_feather(path)
        elif suffix == ".parquet":
            raw = pd.read_parquet(path)
        else:
            raise UsageError(
                f"{path}: unknown file type {suffix!r}", hint="use .csv, .json, .parquet or .feather"
            )
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read: {str(error).splitlines()[0]}") from None
    except Exception as error:  # pyarrow raises its own types for corrupt files
        if type(error).__module__.startswith("pyarrow"):
            raise DataError(f"{path}: cannot read: {str(error).splitlines()[0]}") from None
        raise
    raw.columns = [str(column).strip().lower() for column in raw.columns]
    if "timestamp" not in raw.columns:
        for alias in ("date", "time", "datetime", "open_time"):
            if alias in raw.columns:
                raw = raw.rename(columns={alias: "timestamp"})
                break
    twice = sorted(
        {column for column in raw.columns if column in COLUMNS and list(raw.columns).count(column) > 1}
    )
    if twice:
        raise DataError(f"{path}: column {twice[0]!r} appears more than once (column names ignore case)")
    if raw.empty:
        raise DataNotFound(f"{path}: no candles in the file")
    if "timestamp" in raw.columns:
        raw["timestamp"] = _timestamps(raw["timestamp"], where, row_name)
    return validate_candles(raw, where, row_name=row_name)


def _json_frame(content: object, where: str) -> pd.DataFrame:
    """freqtrade's ``[[ms, open, high, low, close, volume], ...]``, or records or columns as pandas writes.

    Raises:
        DataError, InvalidCandles: the JSON is not shaped like candles.
    """
    if isinstance(content, list) and content and all(isinstance(row, list) for row in content):
        for position, row in enumerate(content):
            if len(row) < len(COLUMNS):
                raise InvalidCandles(
                    f"{where}: row {position + 1}: {len(row)} values, a candle has 6 "
                    "(timestamp, open, high, low, close, volume)"
                )
        return pd.DataFrame([row[: len(COLUMNS)] for row in content], columns=COLUMNS)
    if isinstance(content, dict) or (
        isinstance(content, list) and all(isinstance(row, dict) for row in content)
    ):
        try:
            frame = pd.DataFrame(content)
        except (ValueError, TypeError) as error:
            detail = str(error).splitlines()[0] if str(error) else repr(error)
            raise DataError(f"{where}: not candles: {detail}") from None
        return frame
    raise DataError(
        f"{where}: not candles: expected a list of [timestamp, open, high, low, close, volume] rows "
        "or of objects with those keys"
    )


def infer_timeframe(frame: pd.DataFrame, where: str) -> str:
    """The interval of a frame from its most common step (files without a timeframe in their name)."""
    if len(frame) < 2:
        raise DataError(
            f"{where}: too few candles to tell the timeframe", hint="name the file like BTC_USDT-1h.csv"
        )
    step = int(pd.Series(np.diff(frame["timestamp"].to_numpy())).mode().iloc[0])
    for unit, unit_ms in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if step % unit_ms == 0:
            return f"{step // unit_ms}{unit}"
    raise DataError(f"{where}: candles {step} ms apart are not a timeframe")


class FileSource:
    """Candles read from ``--data PATH``; offline, never simulated."""

    name = "files"
    simulated = False

    def __init__(self, path: Path) -> None:
        try:
            exists = path.exists()
        except (OSError, ValueError):
            exists = False  # a name the OS refuses (too long, a NUL byte) names nothing
        if not exists:
            raise DataNotFound(f"{path}: no such file or directory")
        if not (path.is_file() or path.is_dir()):
            # /dev/null, a FIFO, a socket: reading one would block or give nothing to go on.
            raise UsageError(
                f"{path}: not a candle file or a directory of them",
                hint="give --data a CSV/JSON/Parquet/Feather file or a freqtrade data directory",
            )
        self.path = path
        self._frames: dict[tuple[Path, str], pd.DataFrame] = {}

    def files_for(self, symbol: str) -> dict[str, Path]:
        """The files holding ``symbol``, by timeframe.

        Raises:
            DataNotFound: no file holds the symbol; the message lists what the data has.
        """
        wanted = pair_filename(symbol)
        futures = ":" in symbol
        if self.path.is_file():
            described = describe(self.path)
            if described.symbol_stem is not None and described.symbol_stem != wanted:
                raise DataNotFound(
                    f"{self.path}: holds {described.symbol_stem}, not {symbol}",
                    hint="give the file of that symbol, or a directory of files",
                )
            timeframe = described.timeframe or infer_timeframe(self._read(self.path, "?"), str(self.path))
            return {timeframe: self.path}
        candidates = [describe(path) for path in self._listing()]
        found: dict[str, Path] = {}
        for item in candidates:
            if item.symbol_stem == wanted and item.timeframe and item.futures == futures:
                # feather before parquet before json before csv: the order of SUFFIXES.
                current = found.get(item.timeframe)
                if current is None or SUFFIXES.index(item.path.suffix) < SUFFIXES.index(current.suffix):
                    found[item.timeframe] = item.path
        if not found:
            symbols = sorted({item.symbol_stem for item in candidates if item.symbol_stem})
            listing = (
                ", ".join(symbols[:12]) + (" ..." if len(symbols) > 12 else "")
                if symbols
                else "no candle files"
            )
            raise DataNotFound(f"{self.path}: no candles for {symbol} (the data has: {listing})")
        return found

    def _listing(self) -> list[Path]:
        try:
            paths = [path for path in self.path.iterdir() if path.suffix in SUFFIXES]
            futures_dir = self.path / "futures"
            if futures_dir.is_dir():
                paths += [path for path in futures_dir.iterdir() if path.suffix in SUFFIXES]
        except OSError as error:
            raise DataError(f"{self.path}: cannot list: {error.strerror or error}") from None
        return sorted(paths)

    def _read(self, path: Path, timeframe: str) -> pd.DataFrame:
        key = (path, timeframe)
        if key not in self._frames:
            self._frames[key] = read_file(path)
        return self._frames[key]

    def candles(
        self, symbol: str, timeframes: Sequence[str], limit: int, until_ms: int | None
    ) -> dict[str, pd.DataFrame]:
        """Frames for every timeframe asked, cut at the same close time and to ``limit`` rows."""
        files = self.files_for(symbol)
        finest = min(files, key=timeframe_ms)
        base = self._read(files[finest], finest)
        end = close_time_ms(base, finest) if until_ms is None else until_ms
        out: dict[str, pd.DataFrame] = {}
        for timeframe in timeframes:
            if timeframe in files:
                frame = self._read(files[timeframe], timeframe)
            else:
                sources = [
                    tf
                    for tf in files
                    if timeframe_ms(timeframe) % timeframe_ms(tf) == 0
                    and timeframe_ms(tf) < timeframe_ms(timeframe)
                ]
                if not sources:
                    have = ", ".join(sorted(files, key=timeframe_ms))
                    raise UsageError(
                        f"no {timeframe} candles for {symbol} in {self.path} (it has {have})",
                        hint=f"{timeframe} cannot be built from coarser candles; download {timeframe} data",
                    )
                source_tf = max(sources, key=timeframe_ms)
                frame = resample(self._read(files[source_tf], source_tf), source_tf, timeframe)
            frame = drop_unclosed(frame, timeframe, end)
            if frame.empty:
                raise DataNotFound(f"{self.path}: no {timeframe} candles for {symbol} closed by then")
            out[timeframe] = frame.tail(limit).reset_index(drop=True)
        return out

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        return await asyncio.to_thread(self.candles, symbol, timeframes, limit, until_ms)

    async def close(self) -> None:
        return None
