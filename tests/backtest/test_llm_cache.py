"""The response cache and the budget, through the real openai SDK against the scripted server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rez_cli.config.settings import ModelPrice
from rez_cli.llm.cache import CachingLLM, ResponseCache, request_key
from rez_cli.llm.meter import BudgetExceeded
from rez_cli.llm.openai_api import OpenAIChat
from tests.support.openai_server import FakeOpenAI, reply, tool_calls

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "decide"}]
TOOLS = [{"type": "function", "function": {"name": "fetch_indicator", "parameters": {}}}]


def client(fake: FakeOpenAI, path: Path, **options: Any) -> CachingLLM:
    inner = OpenAIChat(api_key="sk-test", base_url=fake.base_url, timeout_s=5, max_retries=0)
    return CachingLLM(inner, ResponseCache(path), **options)


def test_the_same_request_is_answered_from_disk_by_a_new_client(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    with FakeOpenAI.start([tool_calls([("fetch_indicator", {"indicator": "rsi"})]), reply("hold")]) as fake:

        async def ask_twice() -> list[Any]:
            first = client(fake, path)
            answers = [
                await first.chat(model="m", messages=MESSAGES, tools=TOOLS),
                await first.chat(model="m", messages=[*MESSAGES, {"role": "user", "content": "again"}]),
            ]
            await first.close()
            second = client(fake, path)
            answers += [
                await second.chat(model="m", messages=MESSAGES, tools=TOOLS),
                await second.chat(model="m", messages=[*MESSAGES, {"role": "user", "content": "again"}]),
            ]
            await second.close()
            assert (second.hits, second.misses) == (2, 0)
            return answers

        answers = asyncio.run(ask_twice())
        assert len(fake.bodies) == 2
    assert answers[2].tool_calls == answers[0].tool_calls
    assert answers[3].content == answers[1].content == "hold"
    # A replayed answer cost nothing.
    assert answers[2].usage.prompt_tokens == 0
    assert answers[0].usage.prompt_tokens == 10


def test_the_key_covers_model_messages_tools_and_response_format() -> None:
    base: dict[str, Any] = {
        "model": "m",
        "messages": MESSAGES,
        "tools": TOOLS,
        "response_format": None,
        "parallel_tool_calls": None,
    }
    keys = {
        request_key(**base),
        request_key(**{**base, "model": "n"}),
        request_key(**{**base, "messages": [*MESSAGES, {"role": "user", "content": "x"}]}),
        request_key(**{**base, "tools": None}),
        request_key(**{**base, "response_format": {"type": "json_object"}}),
    }
    assert len(keys) == 5
    # Key order inside the request does not matter: the JSON is canonical.
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert request_key(**{**base, "messages": reordered}) == request_key(**base)


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    good = {"key": "k1", "response": {"content": "hold", "tool_calls": [], "usage": [1, 1]}}
    path.write_text(json.dumps(good) + "\n" + '{"key": "k2", "respo')
    cache = ResponseCache(path)
    assert len(cache) == 1
    hit = cache.get("k1")
    assert hit is not None
    assert hit.content == "hold"


def test_a_call_that_could_pass_the_budget_is_not_made(tmp_path: Path) -> None:
    prices = {"m": ModelPrice(input=1000, output=1000)}
    with FakeOpenAI.start([reply("a", usage=(1000, 0))], repeat_last=True) as fake:

        async def spend() -> CachingLLM:
            llm = client(fake, tmp_path / "r.jsonl", prices=prices, max_cost_usd=2.0)
            # Each call costs $1; its estimate is a short prompt plus 800 expected completion tokens
            # ($0.80 and a little): the second call fits ($1 + ~$0.8 <= $2), the third would not.
            for index in range(2):
                await llm.chat(model="m", messages=[{"role": "user", "content": f"q{index}"}])
            with pytest.raises(BudgetExceeded, match=r"past \$2"):
                await llm.chat(model="m", messages=[{"role": "user", "content": "q2"}])
            # A cached answer is free and always allowed.
            await llm.chat(model="m", messages=[{"role": "user", "content": "q0"}])
            await llm.close()
            return llm

        llm = asyncio.run(spend())
        assert len(fake.bodies) == 2
    assert llm.cost_usd == pytest.approx(2.0)
    assert llm.hits == 1
