"""What the model is told: the actions the profile offers, the execution facts, the answer's format,
the tool's indicators and the rounds left; read as the model reads them, in the messages sent."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rez_cli.config.settings import RiskProfile, load_profile
from rez_cli.decision.model import ModelAnswer
from rez_cli.indicators.specs import INDICATORS
from rez_cli.reasoning.parse import parse_answer
from rez_cli.reasoning.prompts import (
    EXAMPLES,
    FEE_PCT,
    INVALIDATION_GRAMMAR,
    SCORING_HORIZON_CANDLES,
    SLIPPAGE_PCT,
    first_messages,
    system_prompt,
)
from tests.support.cli import run
from tests.support.openai_server import FakeOpenAI, reply, tool_calls

AS_OF = "2021-07-01T00:00"
RSI_CALL = {"indicator": "rsi", "timeframe": "1h", "lookback": 3}
HOLD = json.dumps({**EXAMPLES["hold"], "invalidation": None})


def profile(**changes: Any) -> RiskProfile:
    return load_profile("moderate").value.model_copy(update=changes)


def opening(**changes: Any) -> tuple[str, str]:
    system, user = first_messages(profile(**changes), "CONTEXT", "MEMORY")
    return str(system["content"]), str(user["content"])


def test_the_stated_costs_and_horizon_are_the_backtests_and_the_scores() -> None:
    from rez_cli.scoring.run import DEFAULT_HORIZON

    try:
        from rez_cli.account.fills import FillConfig
    except ImportError:  # before the paper account moved the fills
        from rez_cli.backtest.fills import FillConfig  # type: ignore[no-redef]

    assert (FillConfig().fee_pct, FillConfig().slippage_pct) == (FEE_PCT, SLIPPAGE_PCT)
    assert SCORING_HORIZON_CANDLES == DEFAULT_HORIZON
    system, _ = opening()
    assert "Costs: 0.1% fee per fill, 0.02% slippage per market fill." in system
    assert "Scoring: the next 24 primary candles" in system
    assert "entry is a market order at the next candle's open" in system
    assert "Rez sizes the position from the stop" in system
    assert "leverage only raises that cap and brings liquidation closer" in system


def test_a_long_only_profile_never_offers_sell() -> None:
    system, user = opening(allowed_actions=["buy", "hold"])
    assert "- buy: open a long" in system
    assert "sell" not in system
    assert user.endswith("Decide: buy or hold.")
    assert '"action": "buy"' in system  # the example shows what may be answered


def test_a_hold_only_profile_shows_a_hold_example_and_no_trade() -> None:
    system, user = opening(allowed_actions=["hold"])
    assert '"action": "hold"' in system
    assert "- buy:" not in system
    assert "- sell:" not in system
    assert user.endswith("Decide: hold.")


def test_close_is_offered_only_with_an_open_position_shown_before_the_memory() -> None:
    flat_system, flat_user = opening()
    assert "close" not in flat_user
    assert "- close:" not in flat_system
    system, user = (
        str(message["content"])
        for message in first_messages(profile(), "CONTEXT", "MEMORY", position_text="long 1 BTC at 61800")
    )
    assert "- close: close the open position at the next candle's open" in system
    assert "- hold: keep the open position as it is" in system
    assert user.index("Your open position:\nlong 1 BTC at 61800") < user.index(
        "Your previous decision on this symbol:\nMEMORY"
    )
    # A new buy or sell would be refused while it is open: only hold and close are offered.
    assert user.endswith("Decide: hold or close.")
    assert "- buy:" not in system
    adding = profile().model_copy(update={"allow_adding": True})
    _, user = (str(m["content"]) for m in first_messages(adding, "CONTEXT", position_text="long 1 BTC"))
    assert user.endswith("Decide: buy, sell, hold or close.")


@pytest.mark.parametrize("action", ["buy", "sell", "hold"])
def test_each_example_is_an_answer_rez_accepts_with_the_rr_the_profile_asks(action: str) -> None:
    parsed = parse_answer(json.dumps(EXAMPLES[action]))
    assert parsed.stage == "native"
    answer = parsed.answer
    assert isinstance(answer, ModelAnswer)
    assert answer.confidence is not None
    assert 0 <= answer.confidence <= 1
    if action != "hold":
        assert answer.entry_price is not None
        assert answer.tp_price is not None
        assert answer.sl_price is not None
        reward_risk = abs(answer.tp_price - answer.entry_price) / abs(answer.entry_price - answer.sl_price)
        assert reward_risk >= profile().min_reward_risk


def test_every_invalidation_the_prompt_shows_parses_in_the_machine_grammar() -> None:
    language = pytest.importorskip("rez_cli.invalidation")
    shown = [EXAMPLES["buy"]["invalidation"], EXAMPLES["sell"]["invalidation"]]
    [examples] = [line for line in INVALIDATION_GRAMMAR.splitlines() if "E.g. " in line]
    shown += [part.strip() for part in examples.split("E.g. ")[1].split("|")]
    shown += ["rsi_14_4h > 1", "ema_20_1h > 1", "rsi_4h > 1"]  # the series the grammar names
    assert len(shown) == 8
    for condition in shown:
        assert language.invalidation_problem(condition) is None, condition


def test_the_answer_is_shown_by_example_and_field_not_as_a_schema() -> None:
    system, _ = opening()
    assert '"additionalProperties"' not in system
    assert '{"action": "buy", "entry_price": 61800.0' in system
    for field in ("action", "entry_price, tp_price, sl_price", "leverage", "confidence", "rationale"):
        assert f"\n- {field}: " in system
    assert "- confidence: 0.0 to 1.0 (0.65, not 65)" in system
    assert 'invalidation": "close_1h < 61200"' in system


def test_no_number_the_model_reads_has_a_thousands_separator() -> None:
    system, _ = opening()
    assert re.search(r"\d,\d{3}\b", system.replace("61,200.50", "")) is None


def test_every_indicator_is_listed_with_its_parameters_in_order_and_defaults() -> None:
    system = system_prompt(profile())
    for name in INDICATORS:
        assert re.search(rf"^{name}\(", system, re.MULTILINE), name
    assert "\nmacd(fast=12, slow=26, signal=9) -> macd, signal, hist\n" in system
    assert "\nrsi(length=14)\n" in system
    assert "\nvwap(anchor='D')\n" in system


def test_the_steps_name_only_data_the_context_holds() -> None:
    system = system_prompt(profile())
    steps = system[system.index("Think step by step") : system.index("4. Decide")]
    # The context has EMA20, RSI14, ATR14, candles, swings and the previous day on 15m/1h/4h.
    for absent in ("MACD", "5m", "Bollinger", "volume profile"):
        assert absent not in steps
    for present in ("EMA20", "RSI14", "ATR14", "swing highs and lows", "previous day's high"):
        assert present in steps


# --- the rounds left, told after each round of tool results -------------------------------------


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-prompts-1234")
    monkeypatch.setenv("REZ__LLM__MODEL", "small-model")
    return fake_openai


def test_each_round_of_tool_results_says_how_many_rounds_are_left(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    model_env.push(
        tool_calls([("fetch_indicator", RSI_CALL)]),
        tool_calls([("fetch_indicator", {**RSI_CALL, "timeframe": "4h"})]),
        reply(HOLD),
    )
    result = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--max-turns", "4", "--json"
    )
    assert result.exit_code == 0, result
    second, third = (request.body["messages"] for request in model_env.requests[1:3])
    assert second[-2]["role"] == "tool"
    assert second[-1] == {
        "role": "user",
        "content": "Tool rounds left: 2. Call tools only for what you still lack, or answer with the "
        "decision JSON object.",
    }
    assert third[-1]["content"].startswith("Tool rounds left: 1.")


def test_the_text_protocol_says_the_rounds_left_under_the_results(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    model_env.push(reply(f"CALL fetch_indicator {json.dumps(RSI_CALL)}"), reply(HOLD))
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    assert result.exit_code == 0, result
    results = model_env.requests[1].body["messages"][-1]["content"]
    assert results.endswith(
        "Tool rounds left: 4. Write more CALL lines if you need more, "
        "or answer with the decision JSON object."
    )
