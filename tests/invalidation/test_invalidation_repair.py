"""A trade whose invalidation Rez cannot check goes to repair, and holds when the repair cannot fix it.

``rez decide`` end to end: the real openai SDK against the scripted server on 127.0.0.1, sim candles.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rez_cli.decision.model import Decision
from rez_cli.invalidation import parse_invalidation
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, reply

AS_OF = "2021-07-01T00:00"
# One constrained turn: what the model writes goes straight to the parser, then to the repair.
REPAIR_ONLY = ("--max-turns", "1")


@pytest.fixture(scope="module")
def last_price() -> float:
    from rez_cli.config.settings import load_settings
    from rez_cli.cycle.context import load_context
    from rez_cli.market.candles import parse_time

    context = asyncio.run(
        load_context(
            load_settings().value,
            "BTC/USDT",
            timeframes=["15m", "1h", "4h"],
            exchange="sim",
            as_of_ms=parse_time(AS_OF),
        )
    )
    return context.last_price


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-invalidation")
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    monkeypatch.setenv("REZ__LLM__TIMEOUT_S", "5")
    return fake_openai


def decide(capsys: pytest.CaptureFixture[str]) -> tuple[Result, dict[str, Any]]:
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", *REPAIR_ONLY)
    (decision,) = result.json_lines()
    Decision.model_validate(decision)
    return result, decision


def answer(action: str, price: float, invalidation: str | None) -> str:
    side = 1 if action == "buy" else -1
    return json.dumps(
        {
            "action": action,
            "entry_price": round(price, 2),
            "tp_price": round(price * (1 + side * 0.03), 2),
            "sl_price": round(price * (1 - side * 0.015), 2),
            "leverage": 2,
            "confidence": 0.7,
            "rationale": "trend",
            "invalidation": invalidation,
        }
    )


def parse_detail(capsys: pytest.CaptureFixture[str], trace_id: str) -> str:
    record = run(capsys, "traces", "export", trace_id).json_lines()[0]
    return str(record["trace"]["parse"]["detail"])


def test_a_prose_invalidation_goes_to_repair_and_a_condition_comes_back(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        reply(answer("buy", last_price, "4h close below the EMA20")),
        reply(answer("buy", last_price, "close_4h < ema_20_4h")),
    )
    result, decision = decide(capsys)
    assert result.exit_code == 0, result.stderr
    assert (decision["action"], decision["source"]) == ("buy", "repaired")
    assert decision["invalidation"] == "close_4h < ema_20_4h"
    assert len(model_env.requests) == 2
    assert parse_detail(capsys, decision["trace_id"]) == (
        "the invalidation does not parse: '4h' at position 0 is neither a number nor a series "
        "(a series is written name_timeframe, e.g. close_1h)"
    )


def test_an_invalidation_the_repair_cannot_fix_is_a_hold_with_its_code(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        reply(answer("sell", last_price, "close_1h > 61,200")),
        reply(answer("sell", last_price, "close_1h > 61,200")),
    )
    result, decision = decide(capsys)
    assert result.exit_code == 3
    assert (decision["action"], decision["error"]) == ("hold", "invalidation_unparsable")
    assert decision["invalidation"] is None


@pytest.mark.parametrize("written", [None, "", "close_1h < 1"])
def test_a_trade_with_a_condition_or_none_stands_as_written(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float, written: str | None
) -> None:
    model_env.push(reply(answer("buy", last_price, written)))
    result, decision = decide(capsys)
    assert result.exit_code == 0, result.stderr
    assert (decision["action"], decision["source"]) == ("buy", "native")
    assert len(model_env.requests) == 1


def test_a_holds_invalidation_stays_prose(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    prose = "a 4h close above 36k would make me look again"
    model_env.push(reply(json.dumps({"action": "hold", "rationale": "chop", "invalidation": prose})))
    result, decision = decide(capsys)
    assert result.exit_code == 0, result.stderr
    assert (decision["action"], decision["source"], decision["error"]) == ("hold", "native", None)
    assert len(model_env.requests) == 1


def test_the_rules_mode_writes_a_condition_rez_can_check(capsys: pytest.CaptureFixture[str]) -> None:
    # No model configured: the rules mode decides, and on this sim moment it trades. Its thesis is
    # the slowest timeframe's trend (4h of the default 15m, 1h, 4h): a close across its EMA 20 ends it.
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    (decision,) = result.json_lines()
    assert decision["mode"] == "rules"
    expected = {"buy": "close_4h < ema_20_4h", "sell": "close_4h > ema_20_4h"}
    assert decision["invalidation"] == expected[decision["action"]]
    assert parse_invalidation(decision["invalidation"]).timeframes == ("4h",)
