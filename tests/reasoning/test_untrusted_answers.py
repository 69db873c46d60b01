"""Whatever a model writes, a cycle ends in one valid decision, and a trade only within the profile.

The model here is a scripted client behind the same ``LLMClient`` protocol as the real one (the
loopback-server tests in ``test_decide_cycle.py`` prove the wire protocol; hypothesis needs thousands
of cycles, which HTTP would make slow). Everything after the model is Rez's own code, unmocked: the
ReAct loop, the parser, the repair, the policy, the orchestrator.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.config.settings import load_profile, load_settings
from rez_cli.cycle.orchestrator import Event, Orchestrator
from rez_cli.decision.model import Decision
from rez_cli.llm.client import ChatResponse, TokenUsage
from rez_cli.market.candles import parse_time
from rez_cli.market.view import open_source

AS_OF_MS = parse_time("2021-07-01T00:00")


class ScriptedModel:
    """Answers every call with the next scripted text; the last one is repeated."""

    def __init__(self, answers: list[tuple[str, str | None]]) -> None:
        self.answers = answers
        self.calls = 0

    async def chat(self, **_: Any) -> ChatResponse:
        text, finish_reason = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return ChatResponse(content=text, usage=TokenUsage(10, 10), finish_reason=finish_reason)

    async def close(self) -> None:
        return None


def run_cycle(answers: list[tuple[str, str | None]]) -> Decision:
    loaded = load_settings().value
    profile = load_profile("moderate").value

    async def cycle() -> Decision:
        source = open_source(loaded, exchange="sim", now_ms=AS_OF_MS)
        try:
            orchestrator = Orchestrator(
                loaded, profile, source, llm=ScriptedModel(answers), model="scripted", chart=False
            )
            event = Event("decide", {"symbol": "BTC/USDT", "mode": "react", "as_of": AS_OF_MS}, AS_OF_MS, "t")
            result = await orchestrator.handle_event(event)
        finally:
            await source.close()
        decision = result.decision
        assert decision is not None
        return decision

    return asyncio.run(cycle())


def assert_within_profile(decision: Decision) -> None:
    Decision.model_validate(decision.model_dump(mode="json"))
    if decision.action == "hold":
        assert decision.size_pct == 0
        return
    profile = load_profile("moderate").value
    last = decision.last_price
    assert last is not None
    entry, tp, sl = decision.entry_price, decision.tp_price, decision.sl_price
    assert entry is not None
    assert tp is not None
    assert sl is not None
    for level in (entry, tp, sl, decision.leverage, decision.size_pct, decision.confidence):
        assert math.isfinite(level)
    assert abs(entry / last - 1) * 100 <= profile.max_entry_deviation_pct + 1e-6
    assert abs(tp / last - 1) * 100 <= profile.max_target_distance_pct + 1e-6
    assert abs(sl / last - 1) * 100 <= profile.max_stop_distance_pct + 1e-6
    assert 1 <= decision.leverage <= profile.max_leverage
    assert 0 < decision.size_pct <= profile.max_position_pct
    assert 0 <= decision.confidence <= 1


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=100_000, max_value=200_000),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["35,000", "1e308", "NaN", "", None, True, "75%"]),
)
answers = st.fixed_dictionaries(
    {"action": st.sampled_from(["buy", "sell", "hold", "long", "SHORT", "close", 7])},
    optional={
        "entry_price": numbers,
        "tp_price": numbers,
        "sl_price": numbers,
        "leverage": numbers,
        "confidence": numbers,
        "rationale": st.text(max_size=40),
        "invalidation": st.one_of(st.none(), st.text(max_size=20)),
    },
)
finish = st.sampled_from([None, "stop", "length", "content_filter"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=answers, repair=answers, finish_first=finish, finish_repair=finish)
def test_any_numbers_end_in_a_valid_decision_within_the_profile(
    first: dict[str, Any], repair: dict[str, Any], finish_first: str | None, finish_repair: str | None
) -> None:
    text = json.dumps(first, allow_nan=True)
    decision = run_cycle([(text, finish_first), (json.dumps(repair, allow_nan=True), finish_repair)])
    assert_within_profile(decision)
    if finish_first == "length" and decision.action != "hold":
        assert decision.source == "repaired"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.text(max_size=300), repair=st.text(max_size=300))
def test_any_text_ends_in_a_valid_decision(first: str, repair: str) -> None:
    assert_within_profile(run_cycle([(first, "stop"), (repair, "stop")]))


def _last_price() -> float:
    from rez_cli.cycle.context import load_context

    context = asyncio.run(
        load_context(load_settings().value, "BTC/USDT", timeframes=["1h"], exchange="sim", as_of_ms=AS_OF_MS)
    )
    return context.last_price


LAST = _last_price()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    action=st.sampled_from(["buy", "sell"]),
    entry=st.floats(min_value=-0.015, max_value=0.015),
    reward=st.floats(min_value=0, max_value=0.5),
    risk=st.floats(min_value=0, max_value=0.2),
    leverage=st.floats(min_value=0.5, max_value=7),
    confidence=st.one_of(st.floats(min_value=-1, max_value=120), st.none()),
)
def test_plausible_trades_pass_only_within_the_profile(
    action: str, entry: float, reward: float, risk: float, leverage: float, confidence: float | None
) -> None:
    """Answers near the market, on the right sides: many are trades, and every trade is within the profile."""
    side = 1 if action == "buy" else -1
    entry_price = LAST * (1 + entry)
    answer = {
        "action": action,
        "entry_price": entry_price,
        "tp_price": entry_price * (1 + side * reward),
        "sl_price": entry_price * (1 - side * risk),
        "leverage": leverage,
        "confidence": confidence,
        "rationale": "r",
    }
    decision = run_cycle([(json.dumps(answer), "stop"), ("no", "stop")])
    assert_within_profile(decision)
    if decision.action != "hold":
        assert decision.source == "native"
        assert confidence is not None
        expected = confidence / 100 if confidence > 1 else confidence
        assert decision.confidence == expected
