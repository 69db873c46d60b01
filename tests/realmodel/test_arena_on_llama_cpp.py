"""An arena with SmolLM2-135M on llama.cpp as one contestant and a loopback fake as the other.

The real model runs with the README's llama.cpp recipe; the fake (always buys) stands on its own
loopback server, so each contestant's client is made for its endpoint (``run_arena``'s
``make_client``). Two cycles each: SmolLM2 takes about half a minute to read Rez's prompt on one core.
What is checked is the arena, not the model: both walks finish with a row each, the real model's
fallbacks (if any) are counted by code, and a rerun asks neither model anything and ranks them the same.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rez_cli.arena.board import arena_json, leaderboard
from rez_cli.arena.contestants import builtin_baselines, parse_contestant
from rez_cli.arena.run import ArenaResult, ArenaSpec, run_arena
from rez_cli.config.settings import Settings, load_profile, load_settings
from rez_cli.llm.client import LLMClient
from rez_cli.llm.openai_api import OpenAIChat
from rez_cli.market.candles import parse_time
from rez_cli.market.view import open_source
from tests.support.llama_server import LlamaServer, wait_until_idle
from tests.support.openai_server import FakeOpenAI, reply
from tests.support.readme_recipes import write_recipe

pytestmark = pytest.mark.realmodel

START = parse_time("2021-07-01")
END = parse_time("2021-07-01T02:00")


def always_buys(body: dict[str, Any]) -> Any:
    import re

    found = re.search(r"Last price ([\d,]+(?:\.\d+)?)", body["messages"][1]["content"])
    price = round(float(found[1].replace(",", "")), 1) if found else 30000.0
    answer = {
        "action": "buy",
        "entry_price": price,
        "tp_price": round(price * 1.02, 1),
        "sl_price": round(price * 0.99, 1),
        "leverage": 1,
        "confidence": 0.6,
        "rationale": "always buys",
        "invalidation": f"close_1h < {round(price * 0.99, 1)}",
    }
    return reply(json.dumps(answer))


@pytest.fixture
def endpoints(
    llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[LlamaServer, FakeOpenAI]]:
    assert wait_until_idle(llama_server), "an earlier request still holds the server's slot"
    config = tmp_path / "llama-cpp.toml"
    write_recipe("llama.cpp", config, base_url=llama_server.base_url)
    monkeypatch.setenv("REZ_CONFIG", str(config))
    with FakeOpenAI.start([always_buys], repeat_last=True) as fake:
        yield llama_server, fake


def arena(server: LlamaServer, fake: FakeOpenAI) -> ArenaResult:
    settings = load_settings().value

    def make_client(own: Settings, model: str) -> LLMClient:
        llm = own.llm
        base_url = server.base_url if model == server.model else fake.base_url
        return OpenAIChat(
            api_key="sk-local",
            base_url=base_url,
            timeout_s=llm.timeout_s,
            max_retries=llm.max_retries,
            max_output_tokens=llm.max_output_tokens,
            temperature=llm.temperature,
            seed=llm.seed,
        )

    async def go() -> ArenaResult:
        source = open_source(settings, exchange="sim")
        spec = ArenaSpec(source, "BTC/USDT", "1h", None, START, END)
        contestants = [
            *builtin_baselines(),
            parse_contestant(f"smol={server.model}"),
            parse_contestant("fake=always-buys"),
        ]
        try:
            return await run_arena(
                settings,
                lambda name: load_profile(name or "moderate").value,
                spec,
                contestants,
                make_client=make_client,
            )
        finally:
            await source.close()

    return asyncio.run(go())


def test_smollm2_and_a_fake_each_keep_a_row_and_a_rerun_asks_nothing(
    endpoints: tuple[LlamaServer, FakeOpenAI],
) -> None:
    server, fake = endpoints
    first = arena(server, fake)
    board = leaderboard(first)
    rows = {row["name"]: row for row in board}
    assert rows["smol"]["errors"] == []
    assert rows["smol"]["cycles"] == 2
    assert rows["fake"]["cycles"] == 2
    assert rows["fake"]["decisions_taken"] >= 1
    # Whatever SmolLM2 wrote, each cycle ended in a decision; a failure is a fallback with its code.
    assert 0 <= rows["smol"]["fallback_rate"] <= 1
    assert sum(rows["smol"]["fallbacks"].values()) == pytest.approx(rows["smol"]["fallback_rate"])
    assert rows["smol"]["median_latency_s"] > 0

    again = arena(server, fake)
    payload = arena_json(again, leaderboard(again))
    assert payload["calls"] == 0
    assert json.dumps(payload["leaderboard"]) == json.dumps(arena_json(first, board)["leaderboard"])
