"""No look-ahead: change every candle after a moment, and nothing decided up to it may change.

The history is a 15m file; 1h, 4h and (for the model's tool calls) 1d are resampled from it by the
file source, so a perturbed 15m candle also changes the higher-timeframe candles that contain it.
Every cycle up to the moment must see byte-identical inputs (context text, tool results, the
messages the model reads, memory included) and make a byte-identical decision.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rez_cli.backtest.history import HistorySource
from rez_cli.backtest.walk import BacktestReport, BacktestRequest, run_backtest
from rez_cli.config.settings import load_profile, load_settings
from rez_cli.cycle.orchestrator import EventResult
from rez_cli.errors import DataNotFound
from rez_cli.llm.client import ChatResponse, ToolCall
from rez_cli.market.files import FileSource
from tests.support.candles import START_MS, make_candles

QUARTER = 900_000
HOUR = 3_600_000
DAY = 86_400_000
DAYS = 20
CUT_MS = START_MS + 15 * DAY + 7 * HOUR  # mid-day, mid-4h-candle


def write(frame: pd.DataFrame, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "BTC_USDT-15m.csv", index=False)
    return directory


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = make_candles(DAYS * 96, seed=11, timeframe_ms=QUARTER)
    changed = base.copy()
    later = changed["timestamp"] >= CUT_MS
    # A different future: prices 8% higher and rising, volume doubled; still valid candles.
    drift = 1.08 + 0.0005 * later.cumsum()
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] = changed.loc[later, column] * drift[later]
    changed.loc[later, "volume"] *= 2
    root = tmp_path_factory.mktemp("lookahead")
    return write(base, root / "base"), write(changed, root / "changed")


class ToolUsingModel:
    """An in-process LLMClient: asks for indicators on four timeframes, then buys on a low RSI."""

    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, *, model: str, messages: list[dict[str, Any]], **_: Any) -> ChatResponse:
        self.calls += 1
        tool_messages = [m for m in messages if m["role"] == "tool"]
        if not tool_messages:
            requests = [
                ("rsi", "15m", {"length": 14}),
                ("macd", "1h", {}),
                ("ema", "4h", {"length": 50}),
                ("sma", "1d", {"length": 5}),
            ]
            calls = [
                ToolCall(
                    f"c{index}",
                    "fetch_indicator",
                    json.dumps({"indicator": name, "timeframe": tf, "params": params, "lookback": 3}),
                )
                for index, (name, tf, params) in enumerate(requests)
            ]
            return ChatResponse(content=None, tool_calls=calls)
        price = float(re.search(r"Last price ([\d,]+(?:\.\d+)?)", messages[1]["content"])[1].replace(",", ""))  # type: ignore[index]
        rsi = float(tool_messages[0]["content"].split()[-1])
        if rsi < 50:
            answer = {
                "action": "buy",
                "entry_price": round(price, 2),
                "tp_price": round(price * 1.02, 2),
                "sl_price": round(price * 0.99, 2),
                "leverage": 2,
                "confidence": 0.6,
                "rationale": f"RSI {rsi}",
                "invalidation": None,
            }
        else:
            answer = {"action": "hold", "confidence": 0.5, "rationale": f"RSI {rsi}"}
        return ChatResponse(content=json.dumps(answer))

    async def close(self) -> None:
        return None


def backtest(data: Path, mode: str, every: int) -> tuple[BacktestReport, list[EventResult]]:
    results: list[EventResult] = []
    request = BacktestRequest(
        symbol="BTC/USDT",
        start_ms=START_MS + 13 * DAY,
        end_ms=START_MS + DAYS * DAY,
        every=every,
        mode=mode,
        data=data,
        baselines=False,
        llm_cache=False,
    )
    report = asyncio.run(
        run_backtest(
            load_settings().value,
            load_profile("moderate").value,
            request,
            llm=ToolUsingModel() if mode == "react" else None,
            on_cycle=results.append,
        )
    )
    return report, results


def trace_json(result: EventResult) -> dict[str, Any]:
    """The cycle's trace as the journal stores it."""
    assert result.trace is not None
    return result.trace.to_json()


def inputs(result: EventResult) -> str:
    """Everything a cycle read, as text: context, tool calls and results, messages, turns."""
    trace = trace_json(result)
    tool_calls = trace.get("tool_calls", []) + [
        call for turn in trace.get("turns", []) for call in turn["tool_calls"]
    ]
    seen = {
        "context": trace["context"],
        "context_text": trace["context_text"],
        "messages": trace.get("messages"),
        "turn_contents": [turn["content"] for turn in trace.get("turns", [])],
        "tools": [{k: v for k, v in call.items() if k != "duration_ms"} for call in tool_calls],
    }
    return json.dumps(seen, sort_keys=True)


def decision(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in ("trace_id", "fill")}, sort_keys=True)


@pytest.mark.parametrize(("mode", "every"), [("rules", 3), ("react", 6)])
def test_changing_the_future_changes_nothing_before_it(
    data_dirs: tuple[Path, Path], mode: str, every: int
) -> None:
    base_report, base_cycles = backtest(data_dirs[0], mode, every)
    changed_report, changed_cycles = backtest(data_dirs[1], mode, every)
    assert len(base_cycles) == len(changed_cycles) > 10
    before = [i for i, row in enumerate(base_report.strategy.decisions) if row["timestamp"] <= CUT_MS]
    after = [i for i, row in enumerate(base_report.strategy.decisions) if row["timestamp"] > CUT_MS]
    assert len(before) >= 5
    assert after
    assert {row["error"] for row in base_report.strategy.decisions} <= {None, "position_open"}
    assert {row["action"] for row in base_report.strategy.decisions} >= {"buy", "hold"}
    for i in before:
        assert inputs(base_cycles[i]) == inputs(changed_cycles[i]), f"cycle {i} saw the future"
        assert decision(base_report.strategy.decisions[i]) == decision(changed_report.strategy.decisions[i])
    # The perturbation is real: the cycles after the moment did see another market.
    assert any(inputs(base_cycles[i]) != inputs(changed_cycles[i]) for i in after)
    if mode == "react":
        offered = {
            json.loads(call["arguments"])["timeframe"]
            for turn in trace_json(base_cycles[before[0]])["turns"]
            for call in turn["tool_calls"]
            if call["ok"]
        }
        assert offered == {"15m", "1h", "4h", "1d"}


def test_a_forming_higher_timeframe_candle_does_not_exist(data_dirs: tuple[Path, Path]) -> None:
    async def cut() -> dict[str, pd.DataFrame]:
        history = HistorySource(
            FileSource(data_dirs[0]),
            "BTC/USDT",
            start_ms=CUT_MS - DAY,
            end_ms=START_MS + DAYS * DAY,
            warmup=300,
        )
        return await history.fetch("BTC/USDT", ["15m", "1h", "4h", "1d"], 300, until_ms=CUT_MS)

    frames = asyncio.run(cut())
    for timeframe, step in (("15m", QUARTER), ("1h", HOUR), ("4h", 4 * HOUR), ("1d", DAY)):
        last_close = int(frames[timeframe]["timestamp"].iloc[-1]) + step
        assert last_close <= CUT_MS
        assert last_close > CUT_MS - step, timeframe  # the latest closed one is there
    # At 07:00 the 04:00-08:00 candle is forming: the last 4h candle is the one that closed at 04:00.
    assert int(frames["4h"]["timestamp"].iloc[-1]) + 4 * HOUR == CUT_MS - 3 * HOUR


def test_nothing_before_the_first_candle(data_dirs: tuple[Path, Path]) -> None:
    history = HistorySource(FileSource(data_dirs[0]), "BTC/USDT", start_ms=START_MS, end_ms=CUT_MS, warmup=10)
    with pytest.raises(DataNotFound, match="no 1h candles"):
        asyncio.run(history.fetch("BTC/USDT", ["1h"], 10, until_ms=START_MS))
