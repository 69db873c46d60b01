"""The engine the paper account shares changed nothing for a model that never writes an invalidation.

``tests/fixtures/engine_baseline/baseline.json`` holds the metrics and trades of a react backtest
(a scripted model over HTTP, sim candles) as Rez computed them before positions were shown to the
model, ``close`` existed and invalidations were checked (``make_baseline.py`` says how it was
made). The same walk now must trade the same trades to the last bit. Only the hold rate moves: a
buy while a position was open used to be dropped as "not traded" and now is a hold with the code
``position_open``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine_baseline.scripted_model import SPAN, scripted
from tests.support.cli import run
from tests.support.openai_server import FakeOpenAI

BASELINE = Path(__file__).parents[1] / "fixtures" / "engine_baseline" / "baseline.json"


@pytest.mark.slow
def test_a_model_without_invalidations_trades_as_before(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI.start([scripted], repeat_last=True) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-baseline")
        monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
        result = run(capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--json", "--no-llm-cache", *SPAN)
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = result.json_lines()[0]
    baseline = json.loads(BASELINE.read_text())
    trades = [{k: v for k, v in trade.items() if k != "trace_id"} for trade in report["trades"]]
    assert trades == baseline["trades"]
    before = {k: v for k, v in baseline["metrics"].items() if k != "hold_rate"}
    assert {k: report["metrics"][k] for k in before} == before
    assert report["metrics"]["invalidation_exits"] == 0
    refused = [row for row in report["decisions"] if row["error"] == "position_open"]
    buys = [row for row in report["decisions"] if row["action"] == "buy"]
    # Every buy the old engine dropped is now a hold that says why.
    assert len(buys) == baseline["metrics"]["trades"]
    assert report["metrics"]["hold_rate"] > baseline["metrics"]["hold_rate"]
    buys_before = round((1 - baseline["metrics"]["hold_rate"]) * report["metrics"]["cycles"])
    assert len(refused) + len(buys) == buys_before
