"""``rez backtest`` as a user runs it: sim candles, the rules mode, and a scripted model over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from rez_cli.backtest.walk import BacktestRequest, Progress, run_backtest
from rez_cli.config.settings import load_profile, load_settings
from rez_cli.journal.store import Journal, default_journal_path
from rez_cli.market.candles import parse_time
from tests.support.candles import START_MS, make_candles
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, Reply, error, reply, tool_calls

METRIC_KEYS = {
    "total_return_pct",
    "max_drawdown_pct",
    "sharpe",
    "sortino",
    "win_rate",
    "profit_factor",
    "trades",
    "hold_rate",
}
DECISION_KEYS = {"timestamp", "action", "entry_price", "tp_price", "sl_price", "leverage", "source", "error"}
HOUR = 3_600_000


def backtest_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Result, dict[str, Any]]:
    result = run(capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--json", *args)
    lines = result.json_lines()
    assert len(lines) == 1, result
    return result, lines[0]


def test_rules_backtest_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    result, report = backtest_json(capsys, "--mode", "rules", "--from", "2021-01-01", "--to", "2021-01-15")
    assert result.exit_code == 0, result.stderr
    assert set(report["metrics"]) >= METRIC_KEYS
    assert set(report["baselines"]) == {"buy_and_hold", "rules"}
    for baseline in report["baselines"].values():
        assert set(baseline) >= METRIC_KEYS
    # 14 days of 1h candles, a cycle on each.
    assert report["cycles"] == len(report["decisions"]) == 14 * 24
    first, last = report["decisions"][0], report["decisions"][-1]
    assert set(first) >= DECISION_KEYS
    assert first["timestamp"] == parse_time("2021-01-01")
    assert last["timestamp"] == parse_time("2021-01-15") - HOUR
    assert all(row["source"] == "native" and row["error"] is None for row in report["decisions"])
    actions = {row["action"] for row in report["decisions"]}
    assert {"hold"} < actions  # the baseline trades
    assert report["metrics"]["trades"] > 0
    assert report["metrics"]["hold_rate"] == pytest.approx(
        sum(row["action"] == "hold" for row in report["decisions"]) / report["cycles"]
    )
    # In rules mode the strategy is the rules baseline.
    assert report["baselines"]["rules"] == report["metrics"]
    assert report["baselines"]["buy_and_hold"]["trades"] == 1
    assert report["simulated"] is True
    assert report["complete"] is True
    # Every decision is journaled under the backtest's id.
    with Journal(default_journal_path()) as journal:
        cycles = journal.list_cycles(limit=None)
    assert len(cycles) == report["cycles"]
    assert {cycle["backtest_id"] for cycle in cycles} == {report["backtest_id"]}
    assert {cycle["trace_id"] for cycle in cycles} == {row["trace_id"] for row in report["decisions"]}


def test_summary_table_names_every_metric(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules",
        "--from", "2021-01-01", "--to", "2021-01-02", "--every", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    for label in (
        "total return",
        "max drawdown",
        "Sharpe",
        "Sortino",
        "win rate",
        "profit factor",
        "hold rate",
    ):
        assert label in result.stdout
    assert "buy & hold" in result.stdout
    assert "SIMULATED" in result.stdout


def test_files_that_start_late_and_end_early_bound_the_span(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = make_candles(600, seed=5)  # 1h candles from 2021-03-01, 25 days
    frame.to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    result = run(
        capsys, "backtest", "BTC/USDT", "--data", str(tmp_path), "--timeframes", "1h,4h",
        "--mode", "rules", "--from", "2021-02-01", "--every", "6", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    # 50 4h candles (200 hours) must be behind the first cycle; the last one needs a candle after it.
    assert report["start_ms"] == START_MS + 200 * HOUR
    assert report["end_ms"] == START_MS + 600 * HOUR
    assert report["decisions"][-1]["timestamp"] <= report["end_ms"] - HOUR
    assert report["cycles"] == len(range(200, 600, 6))
    assert report["simulated"] is False
    assert "the data starts late" in result.stderr


def test_an_empty_span_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--from", "2021-01-02", "--to", "2021-01-01"
    )
    assert result.exit_code == 2
    assert "--from must come before --to" in result.stderr


def price_in(body: dict[str, Any]) -> float:
    found = re.search(r"Last price ([\d,]+(?:\.\d+)?)", body["messages"][1]["content"])
    assert found is not None
    return float(found[1].replace(",", ""))


def scripted(body: dict[str, Any]) -> Reply:
    """A model that checks the 1h RSI, then buys when it is under 38 and holds otherwise."""
    tool_results = [m for m in body["messages"] if m["role"] == "tool"]
    if not tool_results:
        return tool_calls([("fetch_indicator", {"indicator": "rsi", "timeframe": "1h", "lookback": 1})])
    rsi = float(tool_results[-1]["content"].split()[-1])
    price = price_in(body)
    if rsi >= 38:
        return reply(json.dumps({"action": "hold", "confidence": 0.5, "rationale": f"RSI {rsi}"}))
    answer = {
        "action": "buy",
        "entry_price": round(price, 2),
        "tp_price": round(price * 1.02, 2),
        "sl_price": round(price * 0.99, 2),
        "leverage": 2,
        "confidence": 0.6,
        "rationale": f"RSI {rsi} is low",
        # Below the stop: the stop always goes first, so the invalidation never changes the numbers.
        "invalidation": f"close_1h < {round(price * 0.99, 2)}",
    }
    return reply(json.dumps(answer), usage=(1500, 200))


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeOpenAI.start([scripted], repeat_last=True) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-backtest")
        monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
        yield fake


REACT_SPAN = ("--mode", "react", "--from", "2021-01-01", "--to", "2021-01-02", "--every", "3")


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must not change between two runs: everything but ids and what was spent."""
    skip = {"backtest_id", "run_id", "cost_usd", "llm_calls", "cache_hits", "decisions", "trades", "journal"}
    return {
        **{key: value for key, value in report.items() if key not in skip},
        "decisions": [{k: v for k, v in row.items() if k != "trace_id"} for row in report["decisions"]],
        "trades": [{k: v for k, v in row.items() if k != "trace_id"} for row in report["trades"]],
    }


def test_react_backtest_with_a_fake_model_then_replayed_from_the_cache(
    capsys: pytest.CaptureFixture[str], model: FakeOpenAI
) -> None:
    result, first = backtest_json(capsys, *REACT_SPAN)
    assert result.exit_code == 0, result.stderr
    assert "sk-test-backtest" not in result.stdout + result.stderr
    assert first["mode"] == "react"
    assert first["model"] == "test-model"
    assert first["cycles"] == 8
    # A buy while its earlier buy is still open is a hold that says why; nothing else fails.
    assert {row["error"] for row in first["decisions"]} <= {None, "position_open"}
    assert {row["action"] for row in first["decisions"]} == {"buy", "hold"}
    # Two turns a cycle: the tool call, then the answer.
    assert first["llm_calls"] == len(model.bodies) == 16
    assert first["cache_hits"] == 0
    assert set(first["baselines"]["rules"]) >= METRIC_KEYS
    assert (
        "warning: the span 2021-01-01..2021-01-02 lies before the training cutoff 2023-10-01" in result.stderr
    )

    result, second = backtest_json(capsys, *REACT_SPAN)
    assert result.exit_code == 0, result.stderr
    assert len(model.bodies) == 16  # not one more request
    assert (second["llm_calls"], second["cache_hits"], second["cost_usd"]) == (0, 16, 0)
    assert comparable(second) == comparable(first)
    assert second["backtest_id"] != first["backtest_id"]


def test_max_cost_stops_before_the_budget_is_passed(
    capsys: pytest.CaptureFixture[str], model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # $1,000 per million tokens: an answer of 1,500 + 200 tokens costs $1.70, a tool turn $0.015.
    monkeypatch.setenv("REZ__LLM__PRICES", json.dumps({"test-model": {"input": 1000, "output": 1000}}))
    result, report = backtest_json(capsys, *REACT_SPAN, "--max-cost", "6", "--no-llm-cache")
    assert result.exit_code == 3
    assert report["stopped"] == "budget_exceeded"
    assert report["complete"] is False
    assert 0 < report["cycles"] < 8
    assert 0 < report["cost_usd"] <= 6
    assert {row["error"] for row in report["decisions"]} <= {None, "position_open"}
    assert "stopped early (budget_exceeded)" in result.stderr
    # The rules baseline covers the same, shorter span.
    assert report["baselines"]["rules"]["cycles"] == report["cycles"]


def test_a_refused_key_ends_the_backtest_at_once(
    capsys: pytest.CaptureFixture[str], model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI.start([error(401)], repeat_last=True) as refusing:
        monkeypatch.setenv("OPENAI_BASE_URL", refusing.base_url)
        result, report = backtest_json(capsys, *REACT_SPAN)
        assert len(refusing.bodies) == 1  # not one request per remaining cycle
    assert result.exit_code == 3
    assert report["stopped"] == "model_auth_failed"
    assert report["cycles"] == 0
    assert report["baselines"]["rules"] is None
    assert report["metrics"]["total_return_pct"] == 0


def test_react_without_a_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "backtest", "BTC/USDT", "--exchange", "sim", *REACT_SPAN)
    assert result.exit_code == 2
    assert "--mode react needs a model" in result.stderr


def test_ctrl_c_stops_cleanly_with_the_partial_result() -> None:
    request = BacktestRequest(
        symbol="BTC/USDT",
        start_ms=parse_time("2021-01-01"),
        end_ms=parse_time("2021-01-03"),
        mode="rules",
        exchange="sim",
    )

    def on_progress(progress: Progress) -> None:
        if progress.done == 5:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends; asyncio.run cancels the walk

    report = asyncio.run(
        run_backtest(load_settings().value, load_profile("moderate").value, request, on_progress=on_progress)
    )
    assert report.stopped == "interrupted"
    assert int(report.exit_code) == 130
    assert len(report.strategy.decisions) == 5
    assert report.buy_and_hold is not None
    assert report.end_ms == report.start_ms + 5 * HOUR
    assert report.to_json()["metrics"]["cycles"] == 5


def test_without_from_the_last_30_days_before_to_are_walked(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(
        capsys,
        "backtest",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--mode",
        "rules",
        "--to",
        "2021-02-01",
        "--every",
        "24",
        "--json",
        "--no-baselines",
    )
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    stamps = [decision["timestamp"] for decision in report["decisions"]]
    assert len(stamps) == 30
    assert stamps[0] == 1_612_137_600_000 - 30 * 86_400_000  # the first moment: 30 days before --to


@pytest.mark.parametrize("to", [None, "2022-01-01"])
def test_without_from_files_walk_their_own_last_30_days(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, to: str | None
) -> None:
    # 60 days of 1h candles from 2021-03-01: the data ends long before now (and before a later --to).
    make_candles(60 * 24, seed=8).to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    result = run(
        capsys, "backtest", "BTC/USDT", "--data", str(tmp_path), "--timeframes", "1h", "--mode", "rules",
        "--every", "24", "--no-baselines", "--json", *(("--to", to) if to else ()),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    data_end = START_MS + 60 * 24 * HOUR  # the close of the last candle
    assert report["end_ms"] == data_end
    assert report["start_ms"] == data_end - 30 * 24 * HOUR
    stamps = [decision["timestamp"] for decision in report["decisions"]]
    assert stamps == [data_end - (30 - day) * 24 * HOUR for day in range(30)]
    assert report["metrics"]["cycles"] == 30


def test_without_from_a_to_inside_the_files_keeps_its_30_days(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_candles(60 * 24, seed=8).to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    to_ms = START_MS + 45 * 24 * HOUR
    result = run(
        capsys, "backtest", "BTC/USDT", "--data", str(tmp_path), "--timeframes", "1h", "--mode", "rules",
        "--every", "24", "--no-baselines", "--json", "--to", str(to_ms),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    assert (report["start_ms"], report["end_ms"]) == (to_ms - 30 * 24 * HOUR, to_ms)
    assert report["decisions"][0]["timestamp"] == to_ms - 30 * 24 * HOUR


def test_a_decision_inside_a_data_gap_is_stamped_with_the_moment_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Hours 150 to 154 are missing (an exchange's maintenance): the candle of hour 149 closes at 150h
    # and the next one closes at 156h. Cycles at 151h..155h see the market as of 150h.
    frame = make_candles(200, seed=9)
    frame = frame[~frame["timestamp"].between(START_MS + 150 * HOUR, START_MS + 154 * HOUR)]
    (tmp_path / "data").mkdir()
    frame.to_csv(tmp_path / "data" / "BTC_USDT-1h.csv", index=False)
    result = run(
        capsys, "backtest", "BTC/USDT", "--data", str(tmp_path / "data"), "--timeframes", "1h",
        "--mode", "rules", "--from", str(START_MS + 140 * HOUR),
        "--to", str(START_MS + 165 * HOUR), "--no-baselines", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    stamps = [row["timestamp"] for row in report["decisions"]]
    assert stamps == [START_MS + hour * HOUR for hour in range(140, 165)]
    for row in report["decisions"]:
        in_gap = START_MS + 151 * HOUR <= row["timestamp"] <= START_MS + 155 * HOUR
        assert row["as_of"] == (START_MS + 150 * HOUR if in_gap else row["timestamp"])
    # The journal keeps the same stamp: it is the decision's, as decide --as-of gives it.
    with Journal(default_journal_path()) as journal:
        journaled = {
            row["trace_id"]: journal.get_cycle(row["trace_id"]) for row in report["decisions"][10:16]
        }
    for row in report["decisions"][10:16]:
        assert journaled[row["trace_id"]]["decision"]["timestamp"] == row["timestamp"]


def test_max_cost_for_a_model_without_a_price_is_refused_before_any_cycle(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.cli import run

    monkeypatch.setenv("REZ__LLM__BASE_URL", "http://127.0.0.1:9/v1")
    args = ("backtest", "BTC/USDT", "--exchange", "sim", "--from", "2021-01-01", "--to", "2021-01-02")
    result = run(capsys, *args, "--model", "my-local", "--max-cost", "1", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "--max-cost cannot be enforced: no price is known for my-local" in result.stderr
