from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from rez_cli.clock import iso
from rez_cli.errors import DataNotFound, InvalidCandles, UsageError
from rez_cli.market.candles import resample
from rez_cli.market.files import FileSource
from tests.support.candles import make_candles


def fetch(path: Path, symbol: str, timeframes: list[str], limit: int = 1000) -> dict[str, pd.DataFrame]:
    return asyncio.run(FileSource(path).fetch(symbol, timeframes, limit))


def write(frame: pd.DataFrame, path: Path, kind: str) -> Path:
    if kind == "csv-ms":
        frame.to_csv(path, index=False)
    elif kind == "csv-iso":
        frame.assign(timestamp=[iso(int(ts)) for ts in frame["timestamp"]]).to_csv(path, index=False)
    elif kind == "json":
        path.write_text(json.dumps(frame.to_numpy().tolist()))
    elif kind in ("feather", "parquet"):
        # freqtrade's own layout: a UTC datetime column named date.
        out = frame.assign(date=pd.to_datetime(frame["timestamp"], unit="ms", utc=True)).drop(
            columns="timestamp"
        )
        out = out[["date", "open", "high", "low", "close", "volume"]]
        out.to_feather(path) if kind == "feather" else out.to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [
        ("csv-ms", ".csv"),
        ("csv-iso", ".csv"),
        ("json", ".json"),
        ("feather", ".feather"),
        ("parquet", ".parquet"),
    ],
)
def test_every_format_reads_to_the_same_candles(tmp_path: Path, kind: str, suffix: str) -> None:
    frame = make_candles(120, seed=11)
    path = write(frame, tmp_path / f"BTC_USDT-1h{suffix}", kind)
    got = fetch(path, "BTC/USDT", ["1h"])["1h"]
    pd.testing.assert_frame_equal(got, frame.reset_index(drop=True), check_dtype=False)


def test_freqtrade_directory_resamples_missing_higher_timeframes(tmp_path: Path) -> None:
    five = make_candles(12 * 24 * 4, seed=12, timeframe_ms=300_000)
    write(five, tmp_path / "BTC_USDT-5m.feather", "feather")
    write(make_candles(50, seed=13, start_price=2000), tmp_path / "ETH_USDT-1h.json", "json")
    frames = fetch(tmp_path, "BTC/USDT", ["5m", "15m", "1h", "4h"], limit=5000)
    assert {tf: len(frame) for tf, frame in frames.items()} == {"5m": 1152, "15m": 384, "1h": 96, "4h": 24}
    pd.testing.assert_frame_equal(frames["4h"], resample(five, "5m", "4h"))
    assert fetch(tmp_path, "ETH/USDT", ["1h"])["1h"]["close"].iloc[0] > 0


def test_frames_end_together_and_keep_the_limit(tmp_path: Path) -> None:
    write(make_candles(1000, seed=14, timeframe_ms=300_000), tmp_path / "BTC_USDT-5m.csv", "csv-ms")
    frames = fetch(tmp_path, "BTC/USDT", ["5m", "1h"], limit=30)
    assert len(frames["5m"]) == 30
    assert len(frames["1h"]) == 30
    end_5m = int(frames["5m"]["timestamp"].iloc[-1]) + 300_000
    end_1h = int(frames["1h"]["timestamp"].iloc[-1]) + 3_600_000
    assert end_1h <= end_5m < end_1h + 3_600_000


def test_futures_layout_is_found(tmp_path: Path) -> None:
    (tmp_path / "futures").mkdir()
    write(
        make_candles(60, seed=15, start_price=1.2),
        tmp_path / "futures" / "XRP_USDT_USDT-1h-futures.feather",
        "feather",
    )
    assert len(fetch(tmp_path, "XRP/USDT:USDT", ["1h"])["1h"]) == 60


def test_lower_timeframe_than_any_file_is_an_error(tmp_path: Path) -> None:
    write(make_candles(60, seed=16), tmp_path / "BTC_USDT-1h.csv", "csv-ms")
    with pytest.raises(UsageError, match=r"no 15m candles for BTC/USDT .*it has 1h"):
        fetch(tmp_path, "BTC/USDT", ["15m", "1h"])


def test_symbol_absent_lists_what_the_data_has(tmp_path: Path) -> None:
    write(make_candles(60, seed=17), tmp_path / "BTC_USDT-1h.csv", "csv-ms")
    with pytest.raises(DataNotFound, match=r"no candles for DOGE/USDT \(the data has: BTC_USDT\)"):
        fetch(tmp_path, "DOGE/USDT", ["1h"])
    with pytest.raises(DataNotFound, match="holds BTC_USDT, not ETH/USDT"):
        fetch(tmp_path / "BTC_USDT-1h.csv", "ETH/USDT", ["1h"])


def test_missing_path_and_bad_rows_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound, match="no such file or directory"):
        FileSource(tmp_path / "nope")
    frame = make_candles(30, seed=18)
    frame.loc[12, "high"] = frame.loc[12, "low"] / 2
    path = write(frame, tmp_path / "BTC_USDT-1h.csv", "csv-ms")
    # The 13th candle is on line 14, under the header: the line an editor shows.
    with pytest.raises(
        InvalidCandles, match=r"BTC_USDT-1h.csv: line 14 \(.*\): high is below max\(open, close\)"
    ):
        fetch(path, "BTC/USDT", ["1h"])
    path.write_text("timestamp,open,high,low,close,volume\nyesterday,1,1,1,1,1\n")
    with pytest.raises(InvalidCandles, match="line 2: timestamp 'yesterday' is neither ms nor ISO 8601"):
        fetch(path, "BTC/USDT", ["1h"])


def test_a_file_without_a_timeframe_in_its_name_is_inferred(tmp_path: Path) -> None:
    path = write(make_candles(40, seed=19, timeframe_ms=900_000), tmp_path / "prices.csv", "csv-ms")
    assert list(fetch(path, "BTC/USDT", ["15m", "1h"])) == ["15m", "1h"]
