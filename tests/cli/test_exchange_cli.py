"""The commands against a live exchange: the real ccxt over HTTP to a fake Binance on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run
from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config

AS_OF = str(NOW_MS)
HOUR = 3_600_000
SINCE = str(NOW_MS // HOUR * HOUR - 400 * HOUR)  # 400 closed 1h candles before NOW_MS


@pytest.fixture
def binance(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    with FakeBinance(now_ms=NOW_MS) as server:
        monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps({**exchange_config(server), **FAST_CCXT}))
        monkeypatch.setenv("REZ__EXCHANGE__RETRIES", "1")
        yield server


def test_context_from_the_exchange_then_from_the_cache(
    capsys: pytest.CaptureFixture[str], binance: FakeBinance
) -> None:
    first = run(capsys, "context", "BTC/USDT", "--exchange", "binance", "--as-of", AS_OF, "--json")
    assert first.exit_code == 0, first.stderr
    [snapshot] = first.json_lines()
    assert snapshot["exchange"] == "binance"
    assert snapshot["simulated"] is False
    assert snapshot["as_of"] == NOW_MS // 900_000 * 900_000  # close of the last closed 15m candle
    assert binance.klines_requests("15m", "BTCUSDT")
    binance.reset_requests()
    again = run(capsys, "context", "BTC/USDT", "--exchange", "binance", "--as-of", AS_OF, "--json")
    assert again.json_lines() == [snapshot]
    assert sum(len(binance.klines_requests(tf, "BTCUSDT")) for tf in ("15m", "1h", "4h")) <= 3
    binance.reset_requests()
    run(capsys, "context", "BTC/USDT", "--exchange", "binance", "--as-of", AS_OF, "--json", "--no-cache")
    assert all(binance.klines_requests(tf, "BTCUSDT") for tf in ("15m", "1h", "4h"))


def test_unlisted_symbol_is_exit_2_with_close_matches(
    capsys: pytest.CaptureFixture[str], binance: FakeBinance
) -> None:
    result = run(capsys, "context", "BTC/USDX", "--exchange", "binance", "--as-of", AS_OF)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "BTC/USDT" in result.stderr


def test_exchange_down_makes_decide_hold_with_exit_3(
    capsys: pytest.CaptureFixture[str], binance: FakeBinance
) -> None:
    binance.fail(500, times=100)
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "binance", "--as-of", AS_OF, "--json")
    assert result.exit_code == 3
    [decision] = result.json_lines()
    assert decision["action"] == "hold"
    assert decision["error"] == "exchange_unavailable"
    context = run(capsys, "context", "BTC/USDT", "--exchange", "binance", "--as-of", AS_OF)
    assert context.exit_code == 2
    assert "--data" in context.stderr


def test_download_writes_freqtrade_files_that_data_reads(
    capsys: pytest.CaptureFixture[str], binance: FakeBinance, tmp_path: Path
) -> None:
    out = tmp_path / "binance"
    result = run(
        capsys,
        "data",
        "download",
        "BTC/USDT",
        "--exchange",
        "binance",
        "--timeframe",
        "1h",
        "--since",
        SINCE,
        "--until",
        AS_OF,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    path = out / "BTC_USDT-1h.json"
    rows = json.loads(path.read_text())
    assert len(rows) == 400
    assert len(rows[0]) == 6
    binance.reset_requests()
    again = run(
        capsys,
        "data",
        "download",
        "BTC/USDT",
        "--exchange",
        "binance",
        "--timeframe",
        "1h",
        "--since",
        SINCE,
        "--until",
        AS_OF,
        "--out",
        str(out),
    )
    assert again.exit_code == 0
    assert "+0 candles" in again.stdout
    context = run(capsys, "context", "BTC/USDT", "--data", str(out), "--timeframes", "1h,4h", "--json")
    assert context.exit_code == 0, context.stderr
    assert context.json_lines()[0]["timeframes"]["1h"]["candles"] == 300
