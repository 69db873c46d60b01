"""A tape saved, loaded, replayed and altered: what ARENA and AUDIT build on."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rez_cli.config.settings import Settings
from rez_cli.errors import DataError, DataNotFound, ExitCode, UsageError
from rez_cli.market.candles import parse_time
from rez_cli.market.sim import SimSource
from rez_cli.tape import Tape, load_tape, record_tape, save_tape

HOUR = 3_600_000
DAY = 24 * HOUR


def small_tape(days: int = 3, symbol: str = "BTC/USDT") -> Tape:
    settings = Settings().with_timeframes("1h", ["1h", "4h"])
    settings = settings.model_copy(update={"market": settings.market.model_copy(update={"candles": 60})})
    return asyncio.run(
        record_tape(
            settings,
            SimSource(),
            symbol,
            start_ms=parse_time("2022-03-01"),
            end_ms=parse_time("2022-03-01") + days * DAY,
            now=lambda: 1_700_000_000_000,
        )
    )


@pytest.fixture(scope="module")
def tape() -> Tape:
    return small_tape()


@pytest.fixture
def tape_file(tape: Tape, tmp_path: Path) -> Path:
    return save_tape(tape, tmp_path / "btc.tape")


def rewrite(path: Path, edit: object) -> None:
    """Apply ``edit`` to the document inside a tape file and write it back (hash untouched)."""
    doc = json.loads(gzip.decompress(path.read_bytes()))
    edit(doc)  # type: ignore[operator]  # a callable, given by the test
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_record_holds_warmup_every_timeframe_and_a_grid_of_moments(tape: Tape) -> None:
    meta = tape.meta
    start = parse_time("2022-03-01")
    assert meta.moments == tuple(range(start, start + 3 * DAY - HOUR + 1, HOUR))
    assert (meta.start_ms, meta.end_ms) == (start, start + 3 * DAY)
    assert set(tape.frames) == {"1h", "4h"}
    hourly = tape.frames["1h"]
    # 60 candles of warm-up closed by the first moment, then one per hour to the end.
    assert int((hourly["timestamp"] + HOUR <= start).sum()) >= 60
    assert int(hourly["timestamp"].iloc[-1]) + HOUR == meta.end_ms
    assert (meta.exchange, meta.simulated, meta.warmup, meta.origin) == ("sim", True, 60, "record")
    assert tape.hash.startswith("sha256:")
    assert len(tape.hash) == 7 + 64


def test_save_then_load_gives_the_same_candles_meta_and_hash(tape: Tape, tape_file: Path) -> None:
    loaded = load_tape(tape_file)
    assert loaded.hash == tape.hash
    assert loaded.meta == tape.meta
    for timeframe, frame in tape.frames.items():
        pd.testing.assert_frame_equal(loaded.frames[timeframe], frame)


def test_the_same_tape_saves_to_the_same_bytes(tape: Tape, tmp_path: Path) -> None:
    first = save_tape(tape, tmp_path / "a.tape").read_bytes()
    assert save_tape(tape, tmp_path / "b.tape").read_bytes() == first


def test_save_refuses_to_overwrite_unless_asked(tape: Tape, tape_file: Path) -> None:
    with pytest.raises(UsageError, match="exists"):
        save_tape(tape, tape_file)
    save_tape(tape, tape_file, overwrite=True)
    assert load_tape(tape_file).hash == tape.hash


def test_source_returns_only_candles_closed_by_until(tape: Tape) -> None:
    source = tape.source()
    assert source.name == "tape"
    moment = tape.meta.moments[5] + 30 * 60_000  # half past: the forming hour does not exist
    frames = asyncio.run(source.fetch("BTC/USDT", ["1h", "4h"], 10, until_ms=moment))
    assert len(frames["1h"]) == len(frames["4h"]) == 10
    assert int(frames["1h"]["timestamp"].iloc[-1]) + HOUR <= moment
    assert int(frames["4h"]["timestamp"].iloc[-1]) + 4 * HOUR <= moment
    assert int(frames["1h"]["timestamp"].iloc[-1]) + 2 * HOUR > moment


def test_source_builds_a_timeframe_the_tape_lacks_from_a_finer_one(tape: Tape) -> None:
    daily = asyncio.run(tape.source().fetch("BTC/USDT", ["1d"], 3, until_ms=tape.meta.end_ms))["1d"]
    hourly = tape.frames["1h"]
    last_day = int(daily["timestamp"].iloc[-1])
    inside = hourly[(hourly["timestamp"] >= last_day) & (hourly["timestamp"] < last_day + DAY)]
    assert float(daily["high"].iloc[-1]) == float(inside["high"].max())


def test_source_refuses_another_symbol_and_an_unbuildable_timeframe(tape: Tape) -> None:
    with pytest.raises(UsageError, match="holds BTC/USDT"):
        asyncio.run(tape.source().fetch("ETH/USDT", ["1h"], 5))
    with pytest.raises(DataNotFound, match="no 15m candles"):
        asyncio.run(tape.source().fetch("BTC/USDT", ["15m"], 5))


def test_altered_renames_rescales_and_shifts_by_whole_days(tape: Tape) -> None:
    altered = tape.altered(symbol="ASSET/USD", price_scale=0.5, shift_years=-2)
    # 2020 is a leap year: 2020-01-01..2022-01-01 is 731 days.
    shift = 731 * DAY
    assert altered.meta.symbol == "ASSET/USD"
    assert altered.meta.moments == tuple(moment - shift for moment in tape.meta.moments)
    assert altered.meta.start_ms == tape.meta.start_ms - shift
    original, changed = tape.frames["1h"], altered.frames["1h"]
    assert (changed["timestamp"] == original["timestamp"] - shift).all()
    assert (changed["close"] == original["close"] * 0.5).all()
    assert (changed["volume"] == original["volume"]).all()
    assert altered.hash != tape.hash
    assert altered.meta.derived_from == tape.hash
    # The original is untouched, and an altered tape replays under its new name.
    assert (tape.frames["1h"]["close"] == original["close"]).all()
    frames = asyncio.run(altered.source().fetch("ASSET/USD", ["1h"], 3, until_ms=altered.meta.moments[0]))
    assert int(frames["1h"]["timestamp"].iloc[-1]) + HOUR == altered.meta.moments[0]


def test_altered_tape_saves_and_loads(tape: Tape, tmp_path: Path) -> None:
    altered = tape.altered(symbol="ASSET/USD", price_scale=3.0, shift_years=1)
    assert load_tape(save_tape(altered, tmp_path / "a.tape")).hash == altered.hash


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), 1e308])
def test_altered_refuses_a_scale_that_is_not_a_finite_positive_price(tape: Tape, scale: float) -> None:
    with pytest.raises(UsageError):
        tape.altered(price_scale=scale)


def test_altered_refuses_a_shift_before_1970(tape: Tape) -> None:
    with pytest.raises(UsageError, match="1970"):
        tape.altered(shift_years=-60)


def test_apply_shapes_settings_as_the_tape_was_recorded(tape: Tape) -> None:
    shaped = tape.apply(Settings())
    assert shaped.market.timeframe == "1h"
    assert shaped.market.context_timeframes == ["1h", "4h"]
    assert shaped.market.candles == 60


def expect_refused(path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as caught:
        load_tape(path)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "\n" not in caught.value.one_line()


def test_a_truncated_tape_is_refused(tape_file: Path) -> None:
    data = tape_file.read_bytes()
    tape_file.write_bytes(data[: len(data) // 2])
    expect_refused(tape_file, "truncated")


def test_a_corrupt_tape_is_refused(tape_file: Path) -> None:
    data = bytearray(tape_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tape_file.write_bytes(bytes(data))
    expect_refused(tape_file, "corrupt")


def test_a_file_that_is_not_a_tape_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    expect_refused(plain, "not a tape")
    other = tmp_path / "other.json.gz"
    other.write_bytes(gzip.compress(b'{"format": "something-else"}'))
    expect_refused(other, "not a tape")


def test_an_edited_candle_no_longer_matches_the_hash(tape_file: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["frames"]["1h"]["close"][100] *= 1.01

    rewrite(tape_file, edit)
    expect_refused(tape_file, "does not match its hash")


def test_an_edited_moment_no_longer_matches_the_hash(tape_file: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["meta"]["moments"].pop()

    rewrite(tape_file, edit)
    expect_refused(tape_file, "does not match its hash")


def test_a_future_format_version_is_refused(tape_file: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["version"] = 2

    rewrite(tape_file, edit)
    expect_refused(tape_file, "version 2 is newer")


def test_a_missing_tape_is_data_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound, match="no tape at"):
        load_tape(tmp_path / "absent.tape")


def test_six_months_of_1h_and_4h_record_and_load_whole(tmp_path: Path) -> None:
    # How long it takes is bench/bench_text_and_tape.py's to say.
    settings = Settings().with_timeframes("1h", ["1h", "4h"])
    recorded = asyncio.run(
        record_tape(
            settings,
            SimSource(),
            "ETH/USDT",
            start_ms=parse_time("2023-01-01"),
            end_ms=parse_time("2023-07-01"),
        )
    )
    loaded = load_tape(save_tape(recorded, tmp_path / "eth.tape"))
    assert loaded.hash == recorded.hash
    assert len(loaded.meta.moments) == 181 * 24
