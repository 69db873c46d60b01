"""``rez context`` as a user runs it: JSON or a table on stdout, one-line errors on stderr with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from rez_cli.cycle.context import MAX_TEXT_CHARS, context_text
from rez_cli.market.snapshot import Context as ContextModel
from tests.support.candles import make_candles
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
    assert text.count("\n") == 4  # header, column names, three timeframes


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
