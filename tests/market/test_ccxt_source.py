"""CcxtSource: the real ccxt binance class over real HTTP against the fake Binance on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pytest

from rez_cli.errors import (
    DataNotFound,
    ExchangeError,
    ExchangeUnavailable,
    SymbolNotListed,
    TimeframeNotOffered,
    UnknownExchange,
)
from rez_cli.market.candles import validate_candles
from rez_cli.market.ccxt_source import UNAVAILABLE_HINT, CcxtSource
from tests.support.exchange_server import (
    BINANCE_API_PATHS,
    FAST_CCXT,
    KLINES,
    NOW_MS,
    FakeBinance,
    exchange_config,
)

MINUTE = 60_000
HOUR = 60 * MINUTE
# NOW_MS is 2024-03-01T12:34:56.789Z.
LAST_CLOSED = {"15m": NOW_MS // (15 * MINUTE) * 15 * MINUTE - 15 * MINUTE, "1h": 1_709_290_800_000}
LAST_CLOSED["4h"] = 1_709_280_000_000  # 08:00, the 12:00 candle is forming
API_KEY = "rezTESTkey0123456789abcdef"
API_SECRET = "rezTESTsecret9876543210fedcba"


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    with FakeBinance() as fake:
        yield fake
    assert not fake.unexpected, "ccxt called an endpoint the fake does not serve"


def make_source(server: FakeBinance, *, retries: int = 3, **config: Any) -> CcxtSource:
    return CcxtSource(
        "binance",
        {**exchange_config(server), **FAST_CCXT, **config},
        retries=retries,
        retry_delay_s=0.001,
        now_ms=lambda: server.now_ms,
    )


def fetch(
    source: CcxtSource, symbol: str, timeframes: Sequence[str], limit: int, until_ms: int | None = None
) -> dict[str, pd.DataFrame]:
    async def run() -> dict[str, pd.DataFrame]:
        async with source:
            return await source.fetch(symbol, timeframes, limit, until_ms=until_ms)

    return asyncio.run(run())


def test_three_timeframes_come_back_closed_valid_and_ending_at_the_last_closed_candle(
    server: FakeBinance,
) -> None:
    frames = fetch(make_source(server), "BTC/USDT", ["15m", "1h", "4h"], 100)

    assert list(frames) == ["15m", "1h", "4h"]
    for timeframe, frame in frames.items():
        step = {"15m": 15 * MINUTE, "1h": HOUR, "4h": 4 * HOUR}[timeframe]
        assert len(frame) == 100
        pd.testing.assert_frame_equal(frame, validate_candles(frame, "check"))
        assert int(frame["timestamp"].iloc[-1]) == LAST_CLOSED[timeframe]
        assert (frame["timestamp"].diff().dropna() == step).all()
        served = server.candle("BTCUSDT", timeframe, LAST_CLOSED[timeframe])
        assert frame["close"].iloc[-1] == float(served[4])
    # The fake answered each window with its forming candle too; none of them got through.
    assert all(len(server.klines_requests(tf)) == 1 for tf in frames)


def test_timeframes_are_requested_concurrently(server: FakeBinance) -> None:
    server.latency_s = 0.3
    fetch(make_source(server), "BTC/USDT", ["15m", "1h", "4h"], 50)

    arrivals = sorted(r.at_s for r in server.klines_requests())
    assert len(arrivals) == 3
    # One after the other, each would wait for the previous answer (0.3 s).
    assert arrivals[-1] - arrivals[0] < 0.25


def test_limit_above_one_page_pages_forwards_in_three_requests(server: FakeBinance) -> None:
    frame = fetch(make_source(server), "ETH/USDT", ["1h"], 2500)["1h"]

    assert len(frame) == 2500
    assert int(frame["timestamp"].iloc[-1]) == LAST_CLOSED["1h"]
    assert (frame["timestamp"].diff().dropna() == HOUR).all()
    requests = server.klines_requests("1h", "ETHUSDT")
    assert len(requests) == 3
    starts = [int(r.query["startTime"]) for r in requests]
    assert starts == [
        LAST_CLOSED["1h"] - 2499 * HOUR,
        LAST_CLOSED["1h"] - 1499 * HOUR,
        LAST_CLOSED["1h"] - 499 * HOUR,
    ]
    assert all(int(r.query["limit"]) <= 1000 for r in requests)


def test_until_ms_in_the_past_cuts_every_timeframe_at_that_moment(server: FakeBinance) -> None:
    until = NOW_MS - 30 * 24 * HOUR + 17 * MINUTE
    frames = fetch(make_source(server), "BTC/USDT", ["1h", "4h"], 10, until_ms=until)

    assert int(frames["1h"]["timestamp"].iloc[-1]) + HOUR <= until
    assert int(frames["1h"]["timestamp"].iloc[-1]) + 2 * HOUR > until
    assert int(frames["4h"]["timestamp"].iloc[-1]) + 4 * HOUR <= until


@pytest.mark.parametrize("status", [429, 418, 500, 502, 503])
def test_transient_errors_are_retried_until_success(server: FakeBinance, status: int) -> None:
    server.fail(status, times=2, retry_after_s=1)

    frame = fetch(make_source(server), "BTC/USDT", ["1h"], 20)["1h"]

    assert len(frame) == 20
    assert len(server.klines_requests()) == 3


def test_errors_that_outlast_the_retries_become_exchange_unavailable_on_one_line(server: FakeBinance) -> None:
    server.fail(503, times=None)

    with pytest.raises(ExchangeUnavailable) as caught:
        fetch(make_source(server, retries=2), "BTC/USDT", ["1h"], 20)

    error = caught.value
    assert len(server.klines_requests()) == 3
    assert "\n" not in error.one_line()
    assert error.message.startswith("binance is unavailable: fetching BTC/USDT 1h candles failed 3 times")
    assert "ExchangeNotAvailable" in error.message
    assert error.hint == UNAVAILABLE_HINT
    assert error.__cause__ is not None


def test_a_rate_limit_that_lasts_names_the_ban(server: FakeBinance) -> None:
    server.fail(418, times=None)

    with pytest.raises(ExchangeUnavailable, match="DDoSProtection: binance 418"):
        fetch(make_source(server, retries=1), "BTC/USDT", ["1h"], 20)


def test_a_server_slower_than_the_timeout_becomes_exchange_unavailable(server: FakeBinance) -> None:
    server.delay(2.0, times=None)
    started = time.monotonic()

    with pytest.raises(ExchangeUnavailable, match="RequestTimeout"):
        fetch(make_source(server, retries=1, timeout=200), "BTC/USDT", ["1h"], 20)

    assert time.monotonic() - started < 1.5
    assert len(server.klines_requests()) == 2


def test_markets_that_cannot_load_become_exchange_unavailable(server: FakeBinance) -> None:
    server.fail(500, times=None, path="/api/v3/exchangeInfo")

    with pytest.raises(ExchangeUnavailable, match="loading markets failed 2 times"):
        fetch(make_source(server, retries=1), "BTC/USDT", ["1h"], 20)

    assert server.klines_requests() == []


def test_a_failing_timeframe_cancels_its_siblings_instead_of_waiting_for_them(server: FakeBinance) -> None:
    async def run() -> float:
        async with make_source(server, retries=0) as source:
            await source.fetch("BTC/USDT", ["1h"], 5)  # markets loaded: only the klines below are timed
            server.fail(500, times=1, path=KLINES)
            server.delay(1.0, times=None)
            started = time.monotonic()
            with pytest.raises(ExchangeUnavailable, match="failed once"):
                await source.fetch("BTC/USDT", ["15m", "1h", "4h"], 20)
            return time.monotonic() - started

    assert asyncio.run(run()) < 0.9


@pytest.mark.parametrize(("symbol", "suggestion"), [("BTC/USTD", "BTC/USDT"), ("BTCUSDT", "BTC/USDT")])
def test_an_unlisted_symbol_names_close_matches(server: FakeBinance, symbol: str, suggestion: str) -> None:
    with pytest.raises(SymbolNotListed) as caught:
        fetch(make_source(server), symbol, ["1h"], 20)

    assert caught.value.message == f"binance does not list {symbol!r}"
    assert caught.value.hint is not None
    assert suggestion in caught.value.hint
    assert server.klines_requests() == []


def test_a_symbol_the_exchange_rejects_later_is_not_listed(server: FakeBinance) -> None:
    server.reject_symbol()

    with pytest.raises(SymbolNotListed, match="BadSymbol"):
        fetch(make_source(server), "SOL/USDT", ["1h"], 20)

    assert len(server.klines_requests()) == 1


def test_an_unknown_exchange_id_names_close_matches() -> None:
    with pytest.raises(UnknownExchange) as caught:
        CcxtSource("binanse", {})

    assert caught.value.hint is not None
    assert "binance" in caught.value.hint


def test_a_timeframe_the_exchange_does_not_offer_lists_the_offered_ones(server: FakeBinance) -> None:
    with pytest.raises(TimeframeNotOffered) as caught:
        fetch(make_source(server), "BTC/USDT", ["1h", "7m"], 20)

    assert caught.value.message == "binance does not offer 7m candles"
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("offered: 1s, 1m, 3m, 5m, 15m")
    assert server.klines_requests() == []


def test_an_empty_answer_is_data_not_found(server: FakeBinance) -> None:
    server.empty()

    with pytest.raises(
        DataNotFound, match=r"binance has no BTC/USDT 1h candles closed by 2024-03-01T12:34:56Z"
    ):
        fetch(make_source(server), "BTC/USDT", ["1h"], 20)


def test_an_exchange_answer_that_pages_past_the_data_stops_paging(server: FakeBinance) -> None:
    server.listed_ms = NOW_MS - 30 * HOUR

    frame = fetch(make_source(server), "BTC/USDT", ["1h"], 200)["1h"]

    assert len(frame) == 29
    assert len(server.klines_requests()) == 1


def test_credentials_never_appear_in_error_messages(server: FakeBinance) -> None:
    # An exchange that echoes the key back in its error body: the worst case for a message.
    server.fail(500, times=None, body=f'{{"code":-1000,"msg":"bad key {API_KEY} / {API_SECRET}"}}')
    config = {"apiKey": API_KEY, "secret": API_SECRET}
    errors: list[ExchangeError] = []

    for symbol, timeframes in [("BTC/USDT", ["1h"]), ("BTC/USTD", ["1h"]), ("BTC/USDT", ["7m"])]:
        with pytest.raises(ExchangeError) as caught:
            fetch(make_source(server, retries=0, **config), symbol, timeframes, 20)
        errors.append(caught.value)

    assert [type(e) for e in errors] == [ExchangeUnavailable, SymbolNotListed, TimeframeNotOffered]
    assert "bad key ***" in errors[0].message
    for error in errors:
        assert API_KEY not in error.one_line()
        assert API_SECRET not in error.one_line()


def test_the_fake_config_moves_every_binance_url_to_the_loopback(server: FakeBinance) -> None:
    import ccxt.async_support

    assert set(BINANCE_API_PATHS) == set(ccxt.async_support.binance().urls["api"])
    assert all(url.startswith("http://127.0.0.1:") for url in exchange_config(server)["urls"]["api"].values())


def test_the_caller_config_is_not_modified(server: FakeBinance) -> None:
    config = exchange_config(server)
    before = repr(config)

    fetch(CcxtSource("binance", config, now_ms=lambda: server.now_ms), "BTC/USDT", ["1h"], 5)

    assert repr(config) == before
