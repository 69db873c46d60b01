"""The cycle as a library: ``Orchestrator.handle_event`` with a scripted model behind the LLMClient seam."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.config.settings import load_profile, load_settings
from rez_cli.cycle.orchestrator import Event, Orchestrator
from rez_cli.decision.model import Decision
from rez_cli.llm.client import ChatResponse
from rez_cli.market.candles import drop_unclosed, resample
from rez_cli.reasoning.manager import AdvisorySignal, ReasoningManager
from rez_cli.reasoning.modes import react_mode, rules_mode
from tests.support.candles import make_candles

HOUR = 3_600_000


class FrameSource:
    """Candles held in memory: the cheapest honest MarketSource for many cycles."""

    name = "memory"
    simulated = False

    def __init__(self, fifteen: pd.DataFrame) -> None:
        self.frames = {
            "15m": fifteen,
            "1h": resample(fifteen, "15m", "1h"),
            "4h": resample(fifteen, "15m", "4h"),
        }
        self.end = int(fifteen["timestamp"].iloc[-1]) + 900_000

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        until = self.end if until_ms is None else until_ms
        return {
            tf: drop_unclosed(self.frames[tf], tf, until).tail(limit).reset_index(drop=True)
            for tf in timeframes
        }

    async def close(self) -> None:
        return None


class ScriptedModel:
    """An LLMClient that answers every call with the next scripted text."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.calls: list[dict[str, Any]] = []

    async def chat(self, **kwargs: Any) -> ChatResponse:
        self.calls.append(kwargs)
        return ChatResponse(content=self.texts[min(len(self.calls), len(self.texts)) - 1])

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def source() -> FrameSource:
    return FrameSource(make_candles(4 * 24 * 60, seed=31, timeframe_ms=900_000))


def cycle(
    source: FrameSource, texts: list[str], **options: Any
) -> tuple[str, Decision, tuple[AdvisorySignal, ...]]:
    orchestrator = Orchestrator(
        load_settings().value,
        load_profile("moderate").value,
        source,
        llm=ScriptedModel(texts),
        model="m",
        **options,
    )
    result = asyncio.run(orchestrator.handle_event(Event("decide", {"symbol": "BTC/USDT"}, 1, "c1")))
    decision = result.decision
    assert decision is not None
    return result.status, decision, result.signals


text_fragments = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ['{"action": "buy"', '"entry_price": ', "}", "{", "```json", '"sell"', ",", "null", "NaN"]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(text_fragments, max_size=12).map("".join))
def test_any_model_text_gives_a_valid_decision_or_a_hold(source: FrameSource, text: str) -> None:
    status, decision, _ = cycle(source, [text])
    Decision.model_validate(decision.model_dump())
    numbers = [
        decision.entry_price,
        decision.tp_price,
        decision.sl_price,
        decision.leverage,
        decision.confidence,
    ]
    assert all(value is None or math.isfinite(value) for value in numbers)
    if status == "held":
        assert decision.action == "hold"
        assert decision.error
    else:
        assert decision.error is None


def test_works_the_same_with_or_without_a_manager_attached(source: FrameSource) -> None:
    last = asyncio.run(source.fetch("BTC/USDT", ["15m"], 1))["15m"]["close"].iloc[-1]
    answer = json.dumps(
        {
            "action": "sell",
            "entry_price": last,
            "tp_price": last * 0.97,
            "sl_price": last * 1.01,
            "leverage": 1,
            "confidence": 0.6,
            "rationale": "down",
            "invalidation": None,
        }
    )
    settings_ = load_settings().value
    manager = ReasoningManager({"react": react_mode, "rules": rules_mode}, timeout_ms=5_000)
    without = cycle(source, [answer])
    with_manager = cycle(source, [answer], manager=manager)
    for status, decision, signals in (without, with_manager):
        assert status == "decided"
        assert decision.action == "sell"
        assert decision.source == "native"
        [signal] = signals
        assert set(signal.summary()) >= {"decision_id", "signal_type", "payload", "confidence"}
        assert signal.signal_type == "decision"
    assert settings_.llm.cycle_timeout_s > 0


def test_rules_mode_is_valid_and_reproducible_on_real_looking_data(source: FrameSource) -> None:
    settings_ = load_settings().value
    profile = load_profile("moderate").value
    actions = []
    for hours_back in range(0, 24 * 40, 24):
        until = source.end - hours_back * HOUR

        async def decide(until_ms: int = until) -> Decision:
            orchestrator = Orchestrator(settings_, profile, source)
            result = await orchestrator.handle_event(
                Event("decide", {"symbol": "BTC/USDT", "as_of": until_ms}, until_ms, "r")
            )
            assert result.status == "decided", result.trace and result.trace.error_detail
            assert result.decision is not None
            return result.decision

        first, second = asyncio.run(decide()), asyncio.run(decide())
        assert first.model_dump(exclude={"usage", "trace_id"}) == second.model_dump(
            exclude={"usage", "trace_id"}
        )
        assert first.mode == "rules"
        actions.append(first.action)
        if first.action != "hold":
            assert first.sl_price is not None
            assert first.size_pct > 0
    assert {"buy", "sell"} & set(actions), actions  # the baseline does trade, not only hold
