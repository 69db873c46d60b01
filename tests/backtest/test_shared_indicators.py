"""A backtest's shortcuts change nothing: the same inputs and decisions as recomputing from scratch.

A backtest shares one ``IndicatorMemo`` across its cycles (a window seen before is not computed
again) and computes EMA, RSI and ATR with numpy. Here the same backtests run a second time with
neither: every indicator, snapshot and tool answer recomputed by pandas-ta for every cycle. Every
cycle must read byte-identical inputs and make a byte-identical decision.
"""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path
from typing import Any

import pytest

from rez_cli.indicators import IndicatorMemo, runners, specs
from tests.backtest.test_lookahead import DAYS, QUARTER, backtest, decision, inputs, trace_json, write
from tests.support.candles import make_candles


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(make_candles(DAYS * 96, seed=23, timeframe_ms=QUARTER), tmp_path_factory.mktemp("shared"))


def from_scratch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No numpy versions and a memo that remembers nothing: what a cycle computed before the shortcuts.

    Returns the list that each use of pandas-ta adds to, to show that the patches took.
    """
    slow = {name: dataclasses.replace(spec, fast=None) for name, spec in specs.INDICATORS.items()}
    # Where every look-up by name reads the allow-list, not the package's re-export of it.
    monkeypatch.setattr(specs, "INDICATORS", types.MappingProxyType(slow))

    def forget(self: IndicatorMemo, key: Any) -> None:
        return None

    monkeypatch.setattr(IndicatorMemo, "_lookup", forget)
    used: list[str] = []
    library = runners.library

    def counted() -> Any:
        used.append("pandas-ta")
        return library()

    monkeypatch.setattr(runners, "library", counted)
    return used


@pytest.mark.parametrize(("mode", "every"), [("rules", 1), ("react", 4)])
def test_shortcuts_change_no_input_and_no_decision(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, mode: str, every: int
) -> None:
    fast_report, fast_cycles = backtest(data_dir, mode, every)
    with monkeypatch.context() as patched:
        used = from_scratch(patched)
        slow_report, slow_cycles = backtest(data_dir, mode, every)
    # pandas-ta ran; in rules mode, which asks only for EMA, RSI and ATR, because the patches took.
    assert used
    assert len(fast_cycles) == len(slow_cycles) > 20
    assert {row["action"] for row in fast_report.strategy.decisions} >= {"hold", "buy"}
    for i, (fast, slow) in enumerate(zip(fast_cycles, slow_cycles, strict=True)):
        assert inputs(fast) == inputs(slow), f"cycle {i} saw other inputs"
        assert decision(fast_report.strategy.decisions[i]) == decision(slow_report.strategy.decisions[i])
        # The candles each cycle saw, as journaled, are the same too.
        assert json.dumps(trace_json(fast)["context"]) == json.dumps(trace_json(slow)["context"])
    metrics = fast_report.strategy.metrics.as_dict(), slow_report.strategy.metrics.as_dict()
    assert json.dumps(metrics[0]) == json.dumps(metrics[1])


def test_backtest_cycles_keep_no_chart(data_dir: Path) -> None:
    # Nothing draws a backtest cycle's chart, so neither the trace nor the journal carries one.
    _, cycles = backtest(data_dir, "rules", 24)
    assert cycles
    assert all("chart" not in trace_json(cycle) for cycle in cycles)
