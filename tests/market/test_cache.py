"""CandleCache on disk, and CcxtSource asking the fake Binance only for what the cache lacks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from rez_cli.market.cache import CandleCache, default_cache_dir
from rez_cli.market.ccxt_source import CcxtSource
from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config

HOUR = 3_600_000
LAST_CLOSED_1H = 1_709_290_800_000  # 11:00, the hour before NOW_MS


def candles(first_ms: int, count: int, *, step: int = HOUR, close: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [first_ms + i * step for i in range(count)],
            "open": [close] * count,
            "high": [close + 1] * count,
            "low": [close - 1] * count,
            "close": [close] * count,
            "volume": [1.0] * count,
        }
    )


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    with FakeBinance() as fake:
        yield fake


def fetch(
    server: FakeBinance,
    cache: CandleCache | None,
    timeframes: Sequence[str],
    limit: int,
    until_ms: int | None = None,
) -> dict[str, pd.DataFrame]:
    async def run() -> dict[str, pd.DataFrame]:
        config = {**exchange_config(server), **FAST_CCXT}
        async with CcxtSource("binance", config, cache=cache, now_ms=lambda: server.now_ms) as source:
            return await source.fetch("BTC/USDT", timeframes, limit, until_ms=until_ms)

    return asyncio.run(run())


# the cache on its own


def test_files_are_named_by_exchange_symbol_and_timeframe(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)

    cache.store("binance", "BTC/USDT", "1h", candles(0, 3))

    assert (tmp_path / "binance" / "BTC_USDT-1h.feather").is_file()
    # A month must not share a file with a minute on a case-insensitive filesystem.
    assert cache.path("binance", "BTC/USDT:USDT", "1M") == tmp_path / "binance" / "BTC_USDT_USDT-1Mo.feather"


def test_the_default_location_follows_rez_home(isolated_env: Path) -> None:
    assert default_cache_dir() == isolated_env / "cache" / "candles"
    assert CandleCache.default().directory == default_cache_dir()


def test_stored_candles_load_back_identical(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    frame = candles(1_000 * HOUR, 5)

    cache.store("binance", "BTC/USDT", "1h", frame)

    loaded = cache.load("binance", "BTC/USDT", "1h")
    assert loaded is not None
    pd.testing.assert_frame_equal(loaded, frame)
    assert cache.load("binance", "BTC/USDT", "4h") is None


def test_overlapping_candles_merge_and_the_newest_value_wins(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store("binance", "BTC/USDT", "1h", candles(0, 5, close=100.0))

    held = cache.store("binance", "BTC/USDT", "1h", candles(3 * HOUR, 4, close=200.0))

    assert held["timestamp"].tolist() == [i * HOUR for i in range(7)]
    assert held["close"].tolist() == [100.0] * 3 + [200.0] * 4
    loaded = cache.load("binance", "BTC/USDT", "1h")
    assert loaded is not None
    pd.testing.assert_frame_equal(loaded, held)


def test_adjoining_candles_extend_the_run(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store("binance", "BTC/USDT", "1h", candles(0, 5))

    held = cache.store("binance", "BTC/USDT", "1h", candles(5 * HOUR, 2))

    assert len(held) == 7


def test_a_run_that_does_not_touch_the_cached_one_replaces_it(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store("binance", "BTC/USDT", "1h", candles(0, 5))

    held = cache.store("binance", "BTC/USDT", "1h", candles(100 * HOUR, 2))

    # A hole between the two runs would be invisible to "fetch what is newer than the cache".
    assert held["timestamp"].tolist() == [100 * HOUR, 101 * HOUR]


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)

    for start in range(3):
        cache.store("binance", "BTC/USDT", "1h", candles(start * HOUR, 5))

    assert [p.name for p in (tmp_path / "binance").iterdir()] == ["BTC_USDT-1h.feather"]


@pytest.mark.parametrize("content", [b"", b"not a feather file", b"ARROW1\x00\x00garbage"])
def test_a_corrupt_file_is_treated_as_absent(tmp_path: Path, content: bytes) -> None:
    cache = CandleCache(tmp_path)
    path = cache.path("binance", "BTC/USDT", "1h")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    assert cache.load("binance", "BTC/USDT", "1h") is None
    assert len(cache.store("binance", "BTC/USDT", "1h", candles(0, 2))) == 2


def test_a_file_with_invalid_candles_is_treated_as_absent(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    path = cache.path("binance", "BTC/USDT", "1h")
    path.parent.mkdir(parents=True)
    candles(0, 3).iloc[::-1].reset_index(drop=True).to_feather(path)

    assert cache.load("binance", "BTC/USDT", "1h") is None


# the source with a cache


def test_a_second_fetch_asks_only_for_candles_newer_than_the_cache(
    server: FakeBinance, tmp_path: Path
) -> None:
    cache = CandleCache(tmp_path)
    first = fetch(server, cache, ["1h"], 100)["1h"]
    assert len(server.klines_requests()) == 1

    server.now_ms += 3 * HOUR
    server.reset_requests()
    second = fetch(server, cache, ["1h"], 100)["1h"]

    requests = server.klines_requests()
    assert len(requests) == 1
    assert int(requests[0].query["startTime"]) == LAST_CLOSED_1H + HOUR
    assert int(second["timestamp"].iloc[-1]) == LAST_CLOSED_1H + 3 * HOUR
    assert len(second) == 100
    pd.testing.assert_frame_equal(second.iloc[:97], first.iloc[3:].reset_index(drop=True))


def test_a_fetch_within_the_same_candle_asks_nothing(server: FakeBinance, tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    first = fetch(server, cache, ["1h", "4h"], 50)

    server.now_ms += 10 * 60_000
    server.reset_requests()
    second = fetch(server, cache, ["1h", "4h"], 50)

    assert server.klines_requests() == []
    for timeframe in ("1h", "4h"):
        pd.testing.assert_frame_equal(second[timeframe], first[timeframe])


def test_a_cache_too_short_for_the_limit_is_refilled_with_the_whole_window(
    server: FakeBinance, tmp_path: Path
) -> None:
    cache = CandleCache(tmp_path)
    fetch(server, cache, ["1h"], 10)
    server.reset_requests()

    frame = fetch(server, cache, ["1h"], 300)["1h"]

    assert len(frame) == 300
    assert int(server.klines_requests()[0].query["startTime"]) == LAST_CLOSED_1H - 299 * HOUR
    cached = cache.load("binance", "BTC/USDT", "1h")
    assert cached is not None
    assert len(cached) == 300


def test_a_past_until_is_served_from_the_cache_when_it_holds_the_window(
    server: FakeBinance, tmp_path: Path
) -> None:
    cache = CandleCache(tmp_path)
    fetch(server, cache, ["1h"], 200)
    server.reset_requests()

    frame = fetch(server, cache, ["1h"], 50, until_ms=NOW_MS - 24 * HOUR)["1h"]

    assert server.klines_requests() == []
    assert int(frame["timestamp"].iloc[-1]) == LAST_CLOSED_1H - 24 * HOUR
    assert len(frame) == 50


def test_a_corrupt_cache_file_is_fetched_again(server: FakeBinance, tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    path = cache.path("binance", "BTC/USDT", "1h")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage")

    frame = fetch(server, cache, ["1h"], 20)["1h"]

    assert len(frame) == 20
    assert len(server.klines_requests()) == 1
    assert cache.load("binance", "BTC/USDT", "1h") is not None


def test_without_a_cache_every_fetch_asks_the_exchange(server: FakeBinance, tmp_path: Path) -> None:
    fetch(server, None, ["1h"], 20)
    fetch(server, None, ["1h"], 20)

    requests = server.klines_requests()
    assert len(requests) == 2
    assert requests[0].query == requests[1].query
    assert not any(tmp_path.iterdir())
