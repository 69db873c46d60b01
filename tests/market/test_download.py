"""``rez data download``'s logic against the fake Binance: freqtrade's file layout, resuming, progress."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from rez_cli.errors import DataError, ExchangeUnavailable, UsageError
from rez_cli.market import download as download_module
from rez_cli.market.ccxt_source import CcxtSource
from rez_cli.market.download import (
    DownloadResult,
    FileFormat,
    data_path,
    download,
    read_data_file,
    write_data_file,
)
from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config

HOUR = 3_600_000
LAST_CLOSED_1H = 1_709_290_800_000  # 11:00, the hour before NOW_MS


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    with FakeBinance() as fake:
        yield fake


def run_download(
    server: FakeBinance,
    out: Path,
    *,
    since_ms: int,
    fmt: FileFormat = "json",
    symbols: Sequence[str] = ("BTC/USDT",),
    timeframes: Sequence[str] = ("1h",),
    retries: int = 3,
    progress: list[tuple[str, str, int, int]] | None = None,
) -> list[DownloadResult]:
    async def run() -> list[DownloadResult]:
        config = {**exchange_config(server), **FAST_CCXT}
        source = CcxtSource(
            "binance", config, retries=retries, retry_delay_s=0.001, now_ms=lambda: server.now_ms
        )
        async with source:
            return await download(
                source,
                symbols,
                timeframes,
                since_ms=since_ms,
                out_dir=out,
                fmt=fmt,
                on_progress=(lambda *args: progress.append(args)) if progress is not None else None,
            )

    return asyncio.run(run())


def test_json_files_are_freqtrades_lists_of_six_numbers(server: FakeBinance, tmp_path: Path) -> None:
    [result] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 49 * HOUR)

    assert result.path == tmp_path / "BTC_USDT-1h.json"
    rows = json.loads(result.path.read_text())
    assert len(rows) == 50
    assert all(len(row) == 6 for row in rows)
    assert rows[0][0] == LAST_CLOSED_1H - 49 * HOUR
    assert rows[-1][0] == LAST_CLOSED_1H
    assert all(isinstance(row[0], int) for row in rows)
    assert rows[-1][4] == float(server.candle("BTCUSDT", "1h", LAST_CLOSED_1H)[4])
    assert (result.rows_added, result.rows_total) == (50, 50)
    assert (result.first_ms, result.last_ms) == (LAST_CLOSED_1H - 49 * HOUR, LAST_CLOSED_1H)


def test_csv_files_have_a_header_and_millisecond_timestamps(server: FakeBinance, tmp_path: Path) -> None:
    [result] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 9 * HOUR, fmt="csv")

    lines = result.path.read_text().splitlines()
    assert result.path.name == "BTC_USDT-1h.csv"
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[-1].startswith(f"{LAST_CLOSED_1H},")
    assert len(lines) == 11


def test_feather_files_have_freqtrades_columns(server: FakeBinance, tmp_path: Path) -> None:
    [result] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 9 * HOUR, fmt="feather")

    frame = pd.read_feather(result.path)
    assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert str(frame["date"].dtype) == "datetime64[ns, UTC]"
    assert frame["date"].iloc[-1] == pd.Timestamp(LAST_CLOSED_1H, unit="ms", tz="UTC")
    assert len(read_data_file(result.path, "feather")) == 10


def test_contracts_go_to_futures_with_freqtrades_suffix(tmp_path: Path) -> None:
    assert data_path(tmp_path, "BTC/USDT:USDT", "1h", "feather") == (
        tmp_path / "futures" / "BTC_USDT_USDT-1h-futures.feather"
    )
    assert data_path(tmp_path, "ETH/BTC", "4h", "json") == tmp_path / "ETH_BTC-4h.json"


@pytest.mark.parametrize("fmt", ["json", "csv", "feather"])
def test_a_second_download_fetches_only_what_is_new(
    server: FakeBinance, tmp_path: Path, fmt: FileFormat
) -> None:
    since = LAST_CLOSED_1H - 99 * HOUR
    run_download(server, tmp_path, since_ms=since, fmt=fmt)
    server.now_ms += 5 * HOUR
    server.reset_requests()

    [result] = run_download(server, tmp_path, since_ms=since, fmt=fmt)

    requests = server.klines_requests()
    assert len(requests) == 1
    assert int(requests[0].query["startTime"]) == LAST_CLOSED_1H + HOUR
    assert (result.rows_added, result.rows_total) == (5, 105)
    frame = read_data_file(result.path, fmt)
    assert int(frame["timestamp"].iloc[-1]) == LAST_CLOSED_1H + 5 * HOUR
    assert (frame["timestamp"].diff().dropna() == HOUR).all()


def test_an_earlier_since_fetches_only_the_missing_start(server: FakeBinance, tmp_path: Path) -> None:
    run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 9 * HOUR)
    server.reset_requests()

    [result] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 19 * HOUR)

    assert [int(r.query["startTime"]) for r in server.klines_requests()] == [LAST_CLOSED_1H - 19 * HOUR]
    assert (result.rows_added, result.rows_total) == (10, 20)


def test_an_up_to_date_file_is_left_alone(server: FakeBinance, tmp_path: Path) -> None:
    [first] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 9 * HOUR)
    written = first.path.stat().st_mtime_ns
    server.reset_requests()

    [again] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 9 * HOUR)

    assert server.klines_requests() == []
    assert again.rows_added == 0
    assert first.path.stat().st_mtime_ns == written


def test_long_ranges_are_paged_and_reported(server: FakeBinance, tmp_path: Path) -> None:
    progress: list[tuple[str, str, int, int]] = []

    [result] = run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 2499 * HOUR, progress=progress)

    assert result.rows_total == 2500
    assert len(server.klines_requests()) == 3
    fetched = [p[2] for p in progress]
    assert fetched == sorted(fetched)
    assert progress[0] == ("BTC/USDT", "1h", LAST_CLOSED_1H - 2499 * HOUR, NOW_MS)
    assert progress[-1] == ("BTC/USDT", "1h", NOW_MS, NOW_MS)
    assert len(progress) >= 4


def test_several_symbols_and_timeframes_make_one_file_each(server: FakeBinance, tmp_path: Path) -> None:
    results = run_download(
        server,
        tmp_path,
        since_ms=NOW_MS - 48 * HOUR,
        symbols=["BTC/USDT", "ETH/USDT"],
        timeframes=["1h", "4h"],
    )

    assert [r.path.name for r in results] == [
        "BTC_USDT-1h.json",
        "BTC_USDT-4h.json",
        "ETH_USDT-1h.json",
        "ETH_USDT-4h.json",
    ]
    assert all(r.rows_total > 0 for r in results)


def test_candles_fetched_before_a_failure_are_kept_and_the_next_run_resumes(
    server: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download_module, "_CHUNK_PAGES", 1)
    since = LAST_CLOSED_1H - 2499 * HOUR
    server.fail(503, times=None, after=1)

    with pytest.raises(ExchangeUnavailable):
        run_download(server, tmp_path, since_ms=since, retries=0)

    assert len(read_data_file(tmp_path / "BTC_USDT-1h.json", "json")) == 1000
    server.clear_faults()
    server.reset_requests()
    [result] = run_download(server, tmp_path, since_ms=since)
    assert int(server.klines_requests()[0].query["startTime"]) == since + 1000 * HOUR
    assert (result.rows_added, result.rows_total) == (1500, 2500)


def test_an_unreadable_existing_file_is_an_error_not_overwritten(server: FakeBinance, tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text("[[1, 2, 3")

    with pytest.raises(DataError, match="cannot read"):
        run_download(server, tmp_path, since_ms=LAST_CLOSED_1H - 9 * HOUR)

    assert path.read_text() == "[[1, 2, 3"


def test_a_since_after_the_end_is_a_usage_error(server: FakeBinance, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        run_download(server, tmp_path, since_ms=NOW_MS + HOUR)


@pytest.mark.parametrize("fmt", ["json", "csv", "feather"])
def test_files_round_trip(tmp_path: Path, fmt: FileFormat) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": [1_700_000_000_000, 1_700_003_600_000],
            "open": [0.00001234, 37_123.45],
            "high": [0.00001299, 0.1 + 37_200.2],
            "low": [0.00001200, 37_000.01],
            "close": [0.00001250, 37_100.5],
            "volume": [1e9, 0.0],
        }
    )
    path = tmp_path / f"X_USDT-1h.{fmt}"

    write_data_file(path, frame, fmt)

    pd.testing.assert_frame_equal(read_data_file(path, fmt), frame, check_exact=True)
