"""``rez context`` as a user runs it: JSON or a table on stdout, one-line errors on stderr with exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rez_cli.cycle.context import MAX_TEXT_CHARS, SWING_BARS, build_context, context_text
from rez_cli.market.snapshot import Context as ContextModel
from tests.support.candles import START_MS, make_candles
from tests.support.cli import run

AS_OF = "2021-07-01T00:00"
AS_OF_MS = 1_625_097_600_000


def test_sim_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "context", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    assert result.exit_code == 0
    [snapshot] = result.json_lines()
    assert snapshot["symbol"] == "BTC/USDT"
    assert snapshot["exchange"] == "sim"
    assert snapshot["simulated"] is True
    assert snapshot["as_of"] == AS_OF_MS
    assert list(snapshot["timeframes"]) == ["15m", "1h", "4h"]
    one_hour = snapshot["timeframes"]["1h"]
    for key in ("candles", "last_close", "change_pct", "ema_20", "rsi_14"):
        assert key in one_hour
    assert one_hour["candles"] == 300
    assert 0 < one_hour["rsi_14"] < 100
    assert snapshot["last_price"] == snapshot["timeframes"]["15m"]["last_close"]
    again = run(capsys, "context", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json").json_lines()[
        0
    ]
    assert again == snapshot


def test_table_says_simulated_and_text_stays_compact(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "context", "ETH/USDT", "--exchange", "sim", "--as-of", AS_OF, "--text")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "SIMULATED" in result.stdout
    assert "RSI 14" in result.stdout
    assert "EMA 20" in result.stdout
    snapshot = ContextModel.model_validate(
        run(capsys, "context", "ETH/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json").json_lines()[0]
    )
    text = context_text(snapshot)
    assert len(text) < MAX_TEXT_CHARS
    # Header, previous day, column names, three timeframe rows; then per timeframe a blank line, the
    # candles (a heading and 12 OHLC rows for the primary 1h, one line of closes for the others)
    # and two lines of swings.
    assert text.count("\n") == 6 + 4 + 16 + 4 - 1


def test_files_context_uses_data_end_as_now(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frame = make_candles(2000, seed=21, timeframe_ms=900_000)
    frame.to_csv(tmp_path / "BTC_USDT-15m.csv", index=False)
    result = run(capsys, "context", "BTC/USDT", "--data", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    [snapshot] = result.json_lines()
    assert snapshot["simulated"] is False
    assert snapshot["exchange"] == "files"
    assert snapshot["as_of"] == int(frame["timestamp"].iloc[-1]) + 900_000
    assert snapshot["last_price"] == pytest.approx(float(frame["close"].iloc[-1]))


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    result = run(capsys, "context", *args)
    assert result.exit_code == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_usage_config_and_data_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[market]\ncandles = 'many'\n")
    assert "bad.toml: market.candles:" in _error(
        capsys, "BTC/USDT", "--exchange", "sim", "--config", str(bad_config)
    )
    assert "unknown risk profile 'yolo'" in _error(
        capsys, "BTC/USDT", "--exchange", "sim", "--profile", "yolo"
    )
    assert "unknown timeframe '3q'" in _error(
        capsys, "BTC/USDT", "--exchange", "sim", "--timeframes", "1h,3q"
    )
    assert "no such file or directory" in _error(capsys, "BTC/USDT", "--data", str(tmp_path / "missing"))
    make_candles(50, seed=22).to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    assert "no candles for ETH/USDT" in _error(capsys, "ETH/USDT", "--data", str(tmp_path), "-t", "1h")
    broken = make_candles(50, seed=23)
    broken.loc[30, "close"] = -5
    broken.to_csv(tmp_path / "SOL_USDT-1h.csv", index=False)
    # Row 31 of the data is line 32 of the file, under its header.
    assert "SOL_USDT-1h.csv: line 32" in _error(capsys, "SOL/USDT", "--data", str(tmp_path), "-t", "1h")
    assert "not-an-exchange" in _error(capsys, "BTC/USDT", "--exchange", "not-an-exchange")


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "context", "--help")
    assert result.exit_code == 0
    assert "Example: rez context BTC/USDT --exchange sim" in result.stdout
    root = run(capsys, "--help")
    assert "Exit codes" in root.stdout
    assert "decide" in root.stdout
    assert "context" in root.stdout


# --- the price action the model reads -----------------------------------------------------------


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT", "SOL/USDT"])
def test_the_context_text_of_three_timeframes_stays_under_6000_characters(
    capsys: pytest.CaptureFixture[str], symbol: str
) -> None:
    result = run(capsys, "context", symbol, "--exchange", "sim", "--as-of", AS_OF, "--json")
    snapshot = ContextModel.model_validate(result.json_lines()[0])
    assert list(snapshot.timeframes) == ["15m", "1h", "4h"]
    assert MAX_TEXT_CHARS == 6_000
    assert len(context_text(snapshot)) <= MAX_TEXT_CHARS


def test_the_model_reads_no_thousands_separators(capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, "context", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json").json_lines()[0]
    written = context_text(ContextModel.model_validate(text))
    assert "Last price 134424." in written
    assert re.search(r"\d,\d", written) is None


def test_recent_candles_are_the_last_twelve_closed_oldest_first_labelled_by_open_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # At 01:00 the 4h candle that opened at 00:00 is still open: the last 4h close is that of the
    # candle that opened at 20:00 the day before, while the 1h rows run up to the one opened at 00:00.
    as_of = ("--exchange", "sim", "--as-of", "2021-07-01T01:00")
    snapshot = ContextModel.model_validate(
        run(capsys, "context", "BTC/USDT", *as_of, "--json").json_lines()[0]
    )
    lines = context_text(snapshot).splitlines()
    heading = lines.index("1h last 12 candles, oldest first: open time, open, high, low, close")
    one_hour = lines[heading + 1 : heading + 13]
    # The date where it changes only: the first row, and the first candle of July.
    assert [row.split()[0] for row in one_hour[:2]] == ["06-30", "14:00"]
    assert one_hour[-1].startswith("07-01 00:00 ")
    assert lines[heading + 13].startswith("1h swing highs: ")
    recent = snapshot.timeframes["1h"].recent
    assert one_hour[-1].split()[2:] == [
        f"{value:.0f}" for value in (recent.open[-1], recent.high[-1], recent.low[-1], recent.close[-1])
    ]
    assert recent.open_ms[-1] + 3_600_000 == snapshot.as_of
    [four_hours] = [line for line in lines if line.startswith("4h last 12 closes")]
    assert four_hours.startswith("4h last 12 closes, oldest first (opened 06-29 00:00 to 06-30 20:00): ")
    closes = snapshot.timeframes["4h"].recent.close
    assert four_hours.split(": ")[1].split() == [f"{value:.0f}" for value in closes]
    assert "Previous UTC day (2021-06-30): high " in lines[1]


def test_changing_candles_after_as_of_changes_nothing_in_the_context(tmp_path: Path) -> None:
    """No look-ahead: the context at a moment is the same whatever the files hold after it."""
    import asyncio

    from rez_cli.config.settings import load_settings
    from rez_cli.cycle.context import load_context

    frame = make_candles(3000, seed=5, timeframe_ms=900_000)
    as_of_ms = int(frame["timestamp"].iloc[2000]) + 7 * 900_000  # mid-hour, mid-4h
    honest, changed = tmp_path / "honest", tmp_path / "changed"
    honest.mkdir()
    changed.mkdir()
    frame.to_csv(honest / "BTC_USDT-15m.csv", index=False)
    future = frame["timestamp"] >= as_of_ms
    wild = frame.copy()
    # Where a look at the future would show: a crash to a tenth, on every column of price.
    wild.loc[future, ["open", "high", "low", "close"]] = (
        wild.loc[future, ["open", "high", "low", "close"]] / 10
    )
    wild.to_csv(changed / "BTC_USDT-15m.csv", index=False)

    settings = load_settings().value

    def context_at(folder: Path) -> ContextModel:
        return asyncio.run(
            load_context(settings, "BTC/USDT", timeframes=["15m", "1h", "4h"], data=folder, as_of_ms=as_of_ms)
        )

    seen = context_at(honest)
    assert seen == context_at(changed)
    assert context_text(seen) == context_text(context_at(changed))
    for timeframe, item in seen.timeframes.items():
        step = {"15m": 900_000, "1h": 3_600_000, "4h": 14_400_000}[timeframe]
        assert item.recent.open_ms[-1] + step <= as_of_ms
        # A swing is confirmed by the candles after it, all closed.
        for open_ms in (*item.swing_highs.open_ms, *item.swing_lows.open_ms):
            assert open_ms + (SWING_BARS + 1) * step <= as_of_ms
    assert seen.previous_day is not None
    assert seen.previous_day.day_open_ms + 86_400_000 <= as_of_ms


def _flat_frame(count: int, step_ms: int, start_ms: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [start_ms + i * step_ms for i in range(count)],
            "open": [100.0] * count,
            "high": [101.0] * count,
            "low": [99.0] * count,
            "close": [100.0] * count,
            "volume": [5.0] * count,
        }
    )


def test_a_swing_is_a_fractal_confirmed_by_three_closed_candles_on_each_side() -> None:
    frame = _flat_frame(40, 3_600_000, START_MS)
    frame.loc[20, "high"] = 110.0  # a swing high: three candles on each side below it
    frame.loc[37, "high"] = 120.0  # higher, but only two candles after it: not confirmed yet
    frame.loc[10, "low"] = 90.0
    frame.loc[12, "low"] = 95.0  # not a swing: a lower low two candles before it
    context = build_context("BTC/USDT", "files", {"1h": frame}, primary_timeframe="1h", simulated=False)
    item = context.timeframes["1h"]
    assert item.swing_highs.price == (110.0,)
    assert item.swing_highs.open_ms == (START_MS + 20 * 3_600_000,)
    assert item.swing_lows.price == (90.0,)
    text = context_text(context)
    assert "1h swing highs: 110.000 (03-01 20:00)" in text
    assert "1h swing lows: 90.000 (03-01 10:00)" in text


def test_the_previous_day_is_the_last_whole_utc_day_before_as_of() -> None:
    # Three days of 1h candles from 2021-03-01T00:00; the last closes at 2021-03-03T12:00.
    frame = _flat_frame(60, 3_600_000, START_MS)
    frame.loc[30, "high"] = 130.0  # 2021-03-02T06:00: inside the previous day
    frame.loc[40, "low"] = 70.0  # 2021-03-02T16:00: inside too
    frame.loc[55, "high"] = 150.0  # 2021-03-03T07:00: today, not the previous day
    context = build_context("BTC/USDT", "files", {"1h": frame}, primary_timeframe="1h", simulated=False)
    assert context.previous_day is not None
    assert (context.previous_day.high, context.previous_day.low) == (130.0, 70.0)
    assert "Previous UTC day (2021-03-02): high 130.000, low 70.000." in context_text(context)
    # A window that starts after that day began cannot say its range.
    late = build_context(
        "BTC/USDT",
        "files",
        {"1h": frame.iloc[30:].reset_index(drop=True)},
        primary_timeframe="1h",
        simulated=False,
    )
    assert late.previous_day is None
    assert "Previous UTC day" not in context_text(late)


def test_a_context_journaled_before_the_price_action_still_loads() -> None:
    old = {
        "symbol": "BTC/USDT",
        "exchange": "sim",
        "as_of": AS_OF_MS,
        "last_price": 100.0,
        "simulated": True,
        "primary_timeframe": "1h",
        "timeframes": {
            "1h": {
                "candles": 300,
                "first_open_ms": 0,
                "last_close_ms": AS_OF_MS,
                "last_close": 100.0,
                "change_pct": 1.0,
                "ema_20": 99.0,
                "ema_20_slope_pct": 0.1,
                "rsi_14": 50.0,
                "atr_14": 1.0,
                "high": 110.0,
                "low": 90.0,
                "from_high_pct": -9.1,
                "from_low_pct": 11.1,
                "volume_ratio": 1.0,
                "gaps": 0,
            }
        },
    }
    context = ContextModel.model_validate(old)
    assert context.previous_day is None
    assert context.timeframes["1h"].recent.open_ms == ()
    text = context_text(context)
    assert "1h last 0 candles" in text
    assert "1h swing highs: none in the window" in text
