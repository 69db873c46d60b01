"""The paper account as cron runs it, over real candles: decide at T1, T2, T3, then read the account.

A scripted model over HTTP buys BTC/USDT at T1 (the close of 2021-03-10T15:00), is shown its
position with its unrealised P&L at T2, and at T3 finds it closed: the stop was hit in between,
with no model asked. ``rez paper status --json`` then agrees with the sum done by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rez_cli.market.candles import parse_time
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, Reply, reply

DATA = Path(__file__).parents[1] / "fixtures" / "binance_btc_1h"
HOUR = 3_600_000
T1 = parse_time("2021-03-10T16:00")
T2 = T1 + 3 * HOUR
T3 = T1 + 6 * HOUR
CLOSE_AT_T1 = 56328.81  # the close of the 15:00 candle
OPEN_AFTER_T1 = 56328.81  # the open of the 16:00 candle, where the order fills
FEE, SLIPPAGE = 0.001, 0.0002
POSITION_MARK = "Unrealised at the last close"


def _user_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"] if m["role"] == "user")


def trader(buy: dict[str, Any]) -> Any:
    """Buys once with ``buy``'s levels, holds whenever it is shown a position, then holds."""
    bought = False

    def answer(body: dict[str, Any]) -> Reply:
        nonlocal bought
        if POSITION_MARK in _user_text(body) or bought:
            return reply(json.dumps({"action": "hold", "confidence": 0.5, "rationale": "keep it"}))
        bought = True
        return reply(json.dumps({"action": "buy", "leverage": 2, "confidence": 0.7, **buy}))

    return answer


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


def decide(capsys: pytest.CaptureFixture[str], journal: Path, moment: int) -> Result:
    return run(
        capsys,
        "decide",
        "BTC/USDT",
        "--data",
        str(DATA),
        "--timeframes",
        "1h",
        "--as-of",
        str(moment),
        "--journal",
        str(journal),
        "--json",
    )


def status(capsys: pytest.CaptureFixture[str], journal: Path) -> dict[str, Any]:
    result = run(capsys, "paper", "status", "--json", "--journal", str(journal))
    assert result.exit_code == 0, result.stderr
    (accounts,) = result.json_lines()
    (account,) = accounts["accounts"]
    return dict(account)


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def start(buy: dict[str, Any]) -> FakeOpenAI:
        fake = FakeOpenAI.start([trader(buy)], repeat_last=True)
        server = fake.__enter__()
        started.append(fake)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-paper")
        monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
        return server

    started: list[Any] = []
    yield start
    for fake in started:
        fake.__exit__(None, None, None)


def test_buy_then_shown_then_stopped_out_between_cycles(
    capsys: pytest.CaptureFixture[str], journal: Path, model: Any
) -> None:
    stop = round(CLOSE_AT_T1 * 0.99, 2)
    fake = model({"entry_price": CLOSE_AT_T1, "tp_price": round(CLOSE_AT_T1 * 1.03, 2), "sl_price": stop})

    first = decide(capsys, journal, T1)
    assert first.exit_code == 0, first.stderr
    assert first.json_lines()[0]["action"] == "buy"
    assert POSITION_MARK not in _user_text(fake.bodies[0])

    second = decide(capsys, journal, T2)
    assert second.exit_code == 0, second.stderr
    assert second.json_lines()[0]["action"] == "hold"
    shown = _user_text(fake.bodies[1])
    # Filled at the 16:00 open; three closes later the last close is 56730.54.
    fill = OPEN_AFTER_T1 * (1 + SLIPPAGE)
    qty = 10_000 * 0.25 * 2 / fill
    unrealised = qty * (56730.54 - fill)
    assert f"{unrealised:+.2f} USDT" in shown
    assert f"{unrealised / (qty * (fill - stop)):+.2f}R" in shown
    assert "(3 candles)" in shown
    assert "since 2021-03-10T16:00:00Z" in shown

    third = decide(capsys, journal, T3)
    assert third.exit_code == 0, third.stderr
    assert len(fake.bodies) == 3  # one question a cycle, none about the stop
    assert POSITION_MARK not in _user_text(fake.bodies[2])
    trace_id = third.json_lines()[0]["trace_id"]
    shown = run(capsys, "traces", "show", trace_id, "--journal", str(journal))
    assert "paper: closed the long by stop" in shown.stdout

    account = status(capsys, journal)
    exit_price = stop * (1 - SLIPPAGE)
    pnl = qty * (exit_price - fill) - 5000 * FEE - qty * exit_price * FEE
    assert account["positions"] == []
    assert account["orders"] == []
    assert account["equity"] == pytest.approx(10_000 + pnl, rel=1e-12)
    assert account["realised_pnl"] == pytest.approx(pnl, rel=1e-12)
    assert account["unrealised_pnl"] == 0

    history = run(capsys, "paper", "history", "--json", "--journal", str(journal)).json_lines()
    closes = [event for event in history if event["kind"] == "close"]
    assert len(closes) == 1
    assert closes[0]["reason"] == "stop"
    assert closes[0]["exit_price"] == pytest.approx(exit_price, rel=1e-12)
    assert closes[0]["exit_ms"] == T1 + 5 * HOUR + HOUR  # the close of the 21:00 candle


def test_an_invalidation_closes_the_position_between_cycles_without_the_model(
    capsys: pytest.CaptureFixture[str], journal: Path, model: Any
) -> None:
    fake = model(
        {
            "entry_price": CLOSE_AT_T1,
            "tp_price": round(CLOSE_AT_T1 * 1.04, 2),
            "sl_price": round(CLOSE_AT_T1 * 0.98, 2),
            "invalidation": "close_1h < 56500",
        }
    )
    assert decide(capsys, journal, T1).exit_code == 0
    shown_at_t2 = decide(capsys, journal, T2)
    assert "close_1h < 56500" in _user_text(fake.bodies[1])
    assert shown_at_t2.exit_code == 0
    third = decide(capsys, journal, T3)
    assert third.exit_code == 0, third.stderr
    assert len(fake.bodies) == 3  # the close itself asked nothing
    history = run(capsys, "paper", "history", "--json", "--journal", str(journal)).json_lines()
    (closed,) = [event for event in history if event["kind"] == "close"]
    # The 20:00 candle closed at 56266 < 56500: closed at the next (21:00) candle's open.
    assert closed["reason"] == "invalidation"
    assert closed["exit_ms"] == T1 + 5 * HOUR
    assert closed["exit_price"] == pytest.approx(56266.0 * (1 - SLIPPAGE), rel=1e-12)
    assert any("close_1h 56266 < 56500" in event.get("note", "") for event in history)
