"""An arena of fake models with distinct styles over the sim market, against the loopback OpenAI fake.

The contestants all talk to one fake server; it tells them apart by the model name in the request:
``eager`` always buys, ``rsi`` buys when the 1h RSI is low, ``coin`` buys or holds by a seeded coin
(the request's ``seed``, so repeats answer differently), and ``broken`` gets HTTP 500.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rez_cli.arena.board import arena_json, leaderboard
from rez_cli.arena.contestants import Contestant, builtin_baselines, parse_contestant
from rez_cli.arena.run import ArenaResult, ArenaSpec, run_arena
from rez_cli.config.settings import RiskProfile, load_profile, load_settings
from rez_cli.market.candles import parse_time
from rez_cli.market.view import open_source
from tests.support.openai_server import FakeOpenAI, Reply, error, reply, tool_calls

START = parse_time("2021-01-01")
END = parse_time("2021-01-05")


def last_price(body: dict[str, Any]) -> float:
    found = re.search(r"Last price ([\d,]+(?:\.\d+)?)", body["messages"][1]["content"])
    assert found is not None
    return float(found[1].replace(",", ""))


def buy(body: dict[str, Any], confidence: float) -> Reply:
    price = round(last_price(body), 1)
    answer = {
        "action": "buy",
        "entry_price": price,
        "tp_price": round(price * 1.02, 1),
        "sl_price": round(price * 0.99, 1),
        "leverage": 2,
        "confidence": confidence,
        "rationale": "a style",
        "invalidation": f"close_1h < {round(price * 0.99, 1)}",
    }
    return reply(json.dumps(answer), usage=(1500, 200))


def hold() -> Reply:
    return reply(json.dumps({"action": "hold", "confidence": 0.5, "rationale": "nothing to do"}))


def styles(body: dict[str, Any]) -> Any:
    model = body["model"]
    if model == "broken":
        return error(500, "the endpoint is down")
    if model == "eager":
        return buy(body, 0.9)
    if model == "coin":
        # The same request and seed give the same answer; another seed, another sequence.
        coin = random.Random(f"{body.get('seed')}:{last_price(body)}").random()
        return buy(body, 0.55) if coin < 0.3 else hold()
    tool_results = [m for m in body["messages"] if m["role"] == "tool"]
    if not tool_results:
        return tool_calls([("fetch_indicator", {"indicator": "rsi", "timeframe": "1h", "lookback": 1})])
    rsi = float(tool_results[-1]["content"].split()[-1])
    return buy(body, 0.6) if rsi < 40 else hold()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI.start([styles], repeat_last=True) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-arena")
        monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
        monkeypatch.setenv("REZ__LLM__PRICES", json.dumps({"eager": {"input": 1, "output": 2}}))
        yield server


def profile(name: str | None) -> RiskProfile:
    return load_profile(name or "moderate").value


def arena(contestants: Sequence[Contestant], **options: Any) -> ArenaResult:
    settings = load_settings().value

    async def go() -> ArenaResult:
        source = open_source(settings, exchange="sim")
        spec = ArenaSpec(source, "BTC/USDT", "1h", None, START, END, every=6)
        try:
            return await run_arena(settings, profile, spec, [*builtin_baselines(), *contestants], **options)
        finally:
            await source.close()

    return asyncio.run(go())


def comparable(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return payload["leaderboard"]


def test_a_rerun_asks_no_model_and_prints_the_same_leaderboard(fake: FakeOpenAI) -> None:
    contestants = [parse_contestant(text) for text in ("eager=eager", "rsi=rsi", "coin=coin")]
    first = arena(contestants, repeats=2)
    board = leaderboard(first)
    calls = len(fake.bodies)
    assert calls > 0
    names = [row["name"] for row in board]
    assert names == ["rules", "always-hold", "buy-and-hold", "eager", "rsi", "coin"]
    rows = {row["name"]: row for row in board}
    assert rows["always-hold"]["total_return_pct"] == 0
    assert rows["always-hold"]["decisions_taken"] == 0
    assert rows["eager"]["decisions_taken"] > 0
    assert rows["eager"]["cost_per_decision_usd"] > 0
    assert rows["rsi"]["cost_per_decision_usd"] is None  # no price known for it
    assert rows["eager"]["median_latency_s"] > 0
    assert 0 <= rows["eager"]["brier"] <= 1
    assert rows["coin"]["repeats"] == 2
    assert len(rows["coin"]["runs"]) == 2
    # Two seeds, two sequences of coin flips.
    assert rows["coin"]["runs"][0]["decisions_taken"] != rows["coin"]["runs"][1]["decisions_taken"]
    assert set(rows["eager"]["beats"]) == {"rules", "always-hold", "buy-and-hold"}
    for verdict in rows["eager"]["beats"].values():
        assert 0 < verdict["p_value"] <= 1

    again = arena(contestants, repeats=2)
    assert len(fake.bodies) == calls  # not one request more
    payload = arena_json(again, leaderboard(again))
    assert payload["calls"] == 0
    assert payload["spent_usd"] == 0
    assert payload["cache_hits"] > 0
    assert json.dumps(comparable(payload)) == json.dumps(comparable(arena_json(first, board)))


def test_a_failing_endpoint_keeps_its_row_and_the_others_go_on(fake: FakeOpenAI) -> None:
    result = arena([parse_contestant("down=broken"), parse_contestant("eager=eager")])
    rows = {row["name"]: row for row in leaderboard(result)}
    down = rows["down"]
    assert down["stopped"] == ["model_unavailable"]
    assert down["fallback_rate"] == 1
    assert set(down["fallbacks"]) == {"model_unreachable"} or set(down["fallbacks"]) <= {
        "model_unreachable",
        "model_error",
        "reasoning_exception",
    }
    assert rows["eager"]["stopped"] == []
    assert rows["eager"]["cycles"] == 16


def test_max_cost_stops_every_contestant_before_the_budget_is_passed(fake: FakeOpenAI) -> None:
    # $1 / $2 per million tokens: an answer of 1,500 + 200 tokens costs $0.0019.
    result = arena(
        [parse_contestant("a=eager"), parse_contestant("b=eager,profile=aggressive")], max_cost_usd=0.01
    )
    payload = arena_json(result, leaderboard(result))
    assert payload["budget_exceeded"] is True
    assert 0 < payload["spent_usd"] <= 0.01
    rows = {row["name"]: row for row in payload["leaderboard"]}
    for name in ("a", "b"):
        assert rows[name]["stopped"] == ["budget_exceeded"]
        assert rows[name]["cycles"] < 16


def test_the_report_shows_every_curve_and_the_table(tmp_path: Path) -> None:
    from rez_cli.arena.report import write_report

    result = arena([])
    page = write_report(result, leaderboard(result), tmp_path / "arena.html").read_text()
    for name in ("rules", "always-hold", "buy-and-hold"):
        assert f"<td>{name}</td>" in page
        assert f'"name":"{name}"' in page  # its equity curve
    assert "Sharpe 95% CI" in page


def test_without_plotly_the_report_is_refused_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from rez_cli.arena.report import require_plotly
    from rez_cli.errors import UsageError

    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(UsageError, match="--report needs plotly") as raised:
        require_plotly()
    assert raised.value.hint == "pip install 'rez-cli[report]'"


def test_ctrl_c_keeps_the_finished_cycles_and_a_rerun_resumes_from_the_caches(fake: FakeOpenAI) -> None:
    import signal

    def on_cycle(name: str, done: int) -> None:
        if name == "eager" and done == 3:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends; asyncio.run cancels the arena

    contestants = [parse_contestant("eager=eager")]
    stopped = arena(contestants, on_cycle=on_cycle)
    assert stopped.interrupted
    eager = next(e for e in stopped.runs if e.contestant.name == "eager")
    assert eager.stopped == "interrupted"
    assert eager.run is not None
    assert len(eager.run.decisions) == 3
    # The fourth cycle's request may be on its way when the cancellation lands; it is not kept.
    asked = len(fake.bodies)
    assert asked in (3, 4)

    resumed = arena(contestants)
    assert not resumed.interrupted
    eager = next(e for e in resumed.runs if e.contestant.name == "eager")
    assert eager.cache_hits >= 3  # the three cycles done before Ctrl-C are not asked again
    assert eager.calls + eager.cache_hits == 16
    assert len(fake.bodies) == asked + eager.calls
