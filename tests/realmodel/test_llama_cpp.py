"""What llama.cpp's server does with the request options Rez relies on, with a real model behind it.

These pin the endpoint's side of issue 9 §2 (output caps, constrained final answers): if an upgrade
of xllamacpp changes one of them, this says so before a Rez test fails in a harder way to read.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from rez_cli.decision.model import ModelAnswer, answer_json_schema
from tests.support.llama_server import LlamaServer, wait_until_idle

pytestmark = pytest.mark.realmodel

# Long enough that an uncapped answer would run far past any cap asked for here.
TALKATIVE = [{"role": "user", "content": "Count from 1 to 200, one number per line."}]
DECIDE = [
    {
        "role": "system",
        "content": "You are a trading assistant. Answer with one JSON decision: action buy, sell or hold.",
    },
    {
        "role": "user",
        "content": "BTC/USDT last price 34,423.99; 1h RSI14 37.4; 4h EMA20 36,547.59. Buy, sell or hold?",
    },
]
FETCH_INDICATOR = {
    "type": "function",
    "function": {
        "name": "fetch_indicator",
        "description": "Compute a technical indicator on closed candles and return its last values.",
        "parameters": {
            "type": "object",
            "properties": {"indicator": {"type": "string"}, "timeframe": {"type": "string"}},
            "required": ["indicator", "timeframe"],
        },
    },
}


@pytest.fixture
def client(llama_server: LlamaServer) -> Iterator[Any]:
    import openai

    assert wait_until_idle(llama_server), "an earlier request still holds the server's slot"
    with openai.OpenAI(
        base_url=llama_server.base_url, api_key="not-needed", max_retries=0, timeout=120
    ) as sdk:
        yield sdk


def test_serves_the_model_and_answers_a_chat(llama_server: LlamaServer, client: Any) -> None:
    with urllib.request.urlopen(f"{llama_server.base_url}/models", timeout=10) as answer:
        listed = json.load(answer)
    assert [model["id"] for model in listed["data"]] == [llama_server.model]

    completion = client.chat.completions.create(
        model=llama_server.model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16
    )
    choice = completion.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert (choice.message.content or "").strip()
    assert 0 < completion.usage.completion_tokens <= 16


@pytest.mark.parametrize("cap", ["max_tokens", "max_completion_tokens"])
def test_an_output_cap_ends_the_answer_with_finish_reason_length(
    llama_server: LlamaServer, client: Any, cap: str
) -> None:
    completion = client.chat.completions.create(model=llama_server.model, messages=TALKATIVE, **{cap: 12})
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 12


def bounded_answer_schema(max_chars: int) -> dict[str, Any]:
    """Rez's strict answer schema with its free-text fields bounded."""
    schema = answer_json_schema()
    for name in ("rationale", "invalidation"):
        schema["properties"][name]["maxLength"] = max_chars
    return schema


def test_json_schema_with_bounded_strings_always_gives_a_complete_answer(
    llama_server: LlamaServer, client: Any
) -> None:
    # What the final turn of §2 is to send: a strict schema, the tools still listed, tool_choice
    # "none". The grammar alone does not end a string: unbounded, SmolLM2 has been seen to repeat
    # inside "invalidation" until the cap cut the JSON. maxLength closes it (llama.cpp enforces it).
    completion = client.chat.completions.create(
        model=llama_server.model,
        messages=DECIDE,
        tools=[FETCH_INDICATOR],
        tool_choice="none",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "rez_decision", "strict": True, "schema": bounded_answer_schema(160)},
        },
        max_tokens=400,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert not choice.message.tool_calls
    answer = ModelAnswer.model_validate_json(choice.message.content or "")
    assert answer.action in ("buy", "sell", "hold")
    assert len(answer.rationale) <= 160
    assert len(answer.invalidation or "") <= 160
