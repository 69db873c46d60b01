"""Any candle file ends in candles or in one line naming it; the moments a market has, and has not."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.errors import DataError, DataNotFound, RezError, UsageError
from rez_cli.market.candles import LATEST_MS, parse_time
from rez_cli.market.files import FileSource, read_file
from rez_cli.market.sim import ORIGIN_MS, SimSource
from rez_cli.timeframes import MAX_TIMEFRAME_MS, timeframe_ms
from tests.support.candles import make_candles

HEADER = "timestamp,open,high,low,close,volume"
# Rows a candle file may really hold, and ones it should not: whole ms, seconds, ISO text, floats
# of every size, NaN and infinities, empty cells, words, quotes and separators inside cells.
cells = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", "nan", "inf", "-inf", "1e308", "2021-03-01T00:00:00Z", "2021-13-45", '"', "1,5", "\t"]
    ),
    st.text(max_size=8),
)
rows = st.lists(st.lists(cells, min_size=0, max_size=8), max_size=8)


def _check(path: Path) -> None:
    """The whole contract: a frame that obeys the candle rules, or a RezError of one line naming the file."""
    try:
        frame = read_file(path)
    except RezError as error:
        line = error.one_line()
        assert "\n" not in line
        assert str(path) in line
        return
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    assert np.isfinite(values).all()
    assert (values[:, :4] > 0).all()
    assert (np.diff(frame["timestamp"].to_numpy()) > 0).all()
    assert ((frame["timestamp"] >= 0) & (frame["timestamp"] <= LATEST_MS)).all()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=rows)
def test_any_csv_rows_end_in_candles_or_one_line(tmp_path: Path, table: list[list[str]]) -> None:
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_text(
        HEADER + "\n" + "\n".join(",".join(row) for row in table) + "\n",
        encoding="utf-8",
        errors="surrogateescape",
    )
    _check(path)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda inner: (
        st.lists(inner, max_size=7)
        | st.dictionaries(st.sampled_from([*HEADER.split(","), "date", "x"]), inner, max_size=7)
    ),
    max_leaves=40,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=json_values)
def test_any_json_ends_in_candles_or_one_line(tmp_path: Path, content: object) -> None:
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text(json.dumps(content))
    _check(path)


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe not json",
        b"[[1, 2, 3]]",
        b"[[1609459200000, 1, 1, 1, 1, 1], 7]",
        b'"a string"',
        b"[[1609459200000, [1], 1, 1, 1, 1]]",
        b"[[1609459200000, 1e999, 1, 1, 1, 1]]",
        b'[{"timestamp": 1609459200000, "open": 1, "Open": 2, "high": 1, "low": 1, "close": 1, "volume": 1}]',
    ],
)
def test_hostile_json_files_are_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_file(path)
    assert "\n" not in caught.value.one_line()
    assert str(path) in caught.value.one_line()


def test_csv_errors_name_the_file_line(tmp_path: Path) -> None:
    text = make_candles(12, seed=3).to_csv(index=False).splitlines()
    text.insert(1, "")  # a blank line right under the header: line numbers and row numbers part ways
    fields = text[7].split(",")
    text[7] = ",".join([*fields[:2], "oops", *fields[3:]])
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"line 8: high 'oops' is not a number"):
        read_file(path)
    text[7] = ",".join(fields)
    text[9], text[10] = text[10], text[9]
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"line 11 \(.*\): out of order: earlier than line 10"):
        read_file(path)
    text[10] = text[9]
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"line 11 \(.*\): duplicate timestamp, the same as line 10"):
        read_file(path)


def test_json_errors_name_the_row(tmp_path: Path) -> None:
    frame = make_candles(10, seed=4)
    rows = frame.to_numpy().tolist()
    rows[6][2] = rows[6][3] / 2  # high under low
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"row 7 \(.*\): "):
        read_file(path)


@pytest.mark.parametrize("special", ["/dev/null", "/dev/zero"])
def test_special_files_are_not_candle_data(special: str) -> None:
    with pytest.raises(UsageError, match="not a candle file or a directory"):
        FileSource(Path(special))


def test_a_file_named_with_an_absurd_timeframe_is_not_read_as_one(tmp_path: Path) -> None:
    make_candles(60, seed=8).to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    make_candles(60, seed=8).to_csv(tmp_path / "BTC_USDT-100000w.csv", index=False)
    assert list(FileSource(tmp_path).files_for("BTC/USDT")) == ["1h"]


@pytest.mark.parametrize(
    "text", ["100000w", "53w", "367d", "8785h", "9" * 40 + "m", "²h", "0h", "-1h", "1M", "h", ""]
)
def test_timeframes_are_bounded(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        timeframe_ms(text)
    assert "\n" not in caught.value.one_line()


def test_the_longest_timeframe_is_a_year() -> None:
    assert timeframe_ms("52w") <= MAX_TIMEFRAME_MS
    assert timeframe_ms("366d") == MAX_TIMEFRAME_MS


def test_times_outside_1970_to_9999_and_the_future_are_usage_errors() -> None:
    assert parse_time("2021-03-01") == 1_614_556_800_000
    assert parse_time("0") == 0
    for text in ("-1", "99999999999999999999", "0001-01-01", "²", "١٢٣x"):
        with pytest.raises(UsageError):
            parse_time(text)
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86_400))
    assert parse_time(tomorrow) > time.time() * 1000  # a date, as such, may be later than now
    with pytest.raises(UsageError, match=r"--as-of: '.*' is in the future"):
        parse_time(tomorrow, option="--as-of", past=True)


def test_the_simulator_has_no_candles_before_it_starts_or_after_now() -> None:
    source = SimSource()
    with pytest.raises(DataNotFound) as caught:
        asyncio.run(source.fetch("BTC/USDT", ["1h"], 10, until_ms=ORIGIN_MS - 1))
    assert "it starts at 2015-01-01" in caught.value.one_line()
    later = int(time.time() * 1000) + 3_600_000
    with pytest.raises(UsageError, match="in the future"):
        asyncio.run(source.fetch("BTC/USDT", ["1h"], 10, until_ms=later))
    with pytest.raises(UsageError, match="in the future"):
        asyncio.run(SimSource(now_ms=later).fetch("BTC/USDT", ["1h"], 10))
    frames = asyncio.run(source.fetch("BTC/USDT", ["1h", "1d"], 5, until_ms=ORIGIN_MS + 2 * 86_400_000))
    assert len(frames["1d"]) == 2
    assert not math.isnan(frames["1h"]["close"].iloc[-1])


def test_a_mixed_case_market_is_found_from_the_canonical_spelling() -> None:
    from rez_cli.errors import SymbolNotListed
    from rez_cli.market.ccxt_source import CcxtSource
    from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config

    async def go(server: FakeBinance) -> tuple[int, str]:
        async with CcxtSource(
            "binance", {**exchange_config(server), **FAST_CCXT}, now_ms=lambda: server.now_ms
        ) as source:
            ex = source._exchange
            await ex.load_markets()
            # ccxt upper-cases Binance's assets; some venues list markets such as kPEPE/USDC:USDC.
            market = ex.markets.pop("ETH/USDT")
            market["symbol"] = "eTh/USDT"
            ex.markets["eTh/USDT"] = market
            ex.symbols = sorted(ex.markets)
            frames = await source.fetch("ETH/USDT", ["1h"], 5)
            with pytest.raises(SymbolNotListed):
                await source.fetch("XRP/USDT", ["1h"], 5)
            return len(frames["1h"]), server.klines_requests("1h", "ETHUSDT")[0].query["symbol"]

    with FakeBinance(now_ms=NOW_MS) as server:
        assert asyncio.run(go(server)) == (5, "ETHUSDT")
