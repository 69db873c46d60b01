"""The CALL-line parser, the rewrite of a native history as text, and what counts as a refusal of tools."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rez_cli.llm.client import LLMBadResponse, LLMToolsRefused, LLMUnavailable
from rez_cli.llm.openai_api import OpenAIChat, refuses_tools
from rez_cli.reasoning.prompts import FINAL_TURN_NOTE, TEXT_CONTINUE_NOTE, TEXT_FINAL_TURN_NOTE
from rez_cli.reasoning.text_protocol import parse_calls, text_conversation, without_calls
from tests.support.openai_server import FakeOpenAI, error

ARGS = '{"indicator": "rsi", "timeframe": "1h"}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"CALL fetch_indicator {ARGS}", [("fetch_indicator", ARGS)]),
        (f"Let me check.\n```\nCALL fetch_indicator {ARGS}\n```\nThen decide.", [("fetch_indicator", ARGS)]),
        (f"I need the RSI: CALL fetch_indicator {ARGS} to confirm.", [("fetch_indicator", ARGS)]),
        (f"`CALL fetch_indicator {ARGS}`", [("fetch_indicator", ARGS)]),
        (f"1. **CALL** fetch_indicator {ARGS}", [("fetch_indicator", ARGS)]),
        (f"CALL: fetch_indicator({ARGS})", [("fetch_indicator", ARGS)]),
        (f"CALL fetch_indicator\n```json\n{ARGS}\n```", [("fetch_indicator", ARGS)]),
        (
            'CALL fetch_indicator {\n  "indicator": "ema",\n  "params": {"length": 50}\n}',
            [("fetch_indicator", '{\n  "indicator": "ema",\n  "params": {"length": 50}\n}')],
        ),
        (
            f'CALL fetch_indicator {ARGS}\nCALL fetch_indicator {{}}\n- CALL get_news {{"q": 1}}',
            [("fetch_indicator", ARGS), ("fetch_indicator", "{}"), ("get_news", '{"q": 1}')],
        ),
        # Broken JSON is passed on as written, for the registry's error.
        ('CALL fetch_indicator {"indicator": rsi}', [("fetch_indicator", '{"indicator": rsi}')]),
        ("CALL fetch_indicator", [("fetch_indicator", "")]),
        ("  > CALL fetch_indicator please", [("fetch_indicator", "please")]),
        # Prose is not a call.
        ("We could call fetch_indicator for the RSI.", []),
        ("No need to CALL anything here.", []),
        ("CALLS fetch_indicator {}", []),
        ('{"action": "hold", "rationale": "no CALL needed"}', []),
        ("", []),
    ],
)
def test_call_lines_are_read_tolerantly(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(call.name, call.arguments) for call in parse_calls(text)] == expected


def test_the_limit_stops_reading_and_the_rest_of_the_text_is_kept() -> None:
    text = "\n".join(f'CALL fetch_indicator {{"lookback": {n}}}' for n in range(20))
    assert len(parse_calls(text, limit=9)) == 9
    calls = parse_calls(f"Thinking.\nCALL fetch_indicator {ARGS}\nDone.")
    assert without_calls(f"Thinking.\nCALL fetch_indicator {ARGS}\nDone.", calls) == "Thinking.\n\nDone."
    assert parse_calls(None) == []


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(),
            st.sampled_from(
                ["CALL", "CALL ", "CALL:", "{", "}", "(", "`", "```json\n", "\n", '"', "fetch_indicator"]
            ),
            st.from_regex(r"CALL [a-z_]{1,12} \{[^\n]{0,30}", fullmatch=True),
            st.builds(json.dumps, st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5))),
        ),
        max_size=12,
    ).map("".join)
)
def test_the_parser_never_raises_and_returns_only_what_the_text_holds(text: str) -> None:
    calls = parse_calls(text)
    for call in calls:
        assert text[call.start : call.start + 4] == "CALL"
        assert call.name in text[call.start : call.end]
        assert call.arguments in text[call.start : call.end]
    starts = [call.start for call in calls]
    assert starts == sorted(starts)
    assert all(earlier.end <= later.start for earlier, later in itertools.pairwise(calls))
    without_calls(text, calls)


def test_pathological_answers_are_read_without_blowing_up() -> None:
    for text in ("CALL x {" + "{" * 100_000, 'CALL x {"a": ' + "9" * 5_000 + "}", "CALL x " * 10_000):
        calls = parse_calls(text, limit=9)
        assert all(call.name == "x" for call in calls)


def test_a_native_history_is_rewritten_as_text() -> None:
    tools = [
        {"type": "function", "function": {"name": "fetch_indicator", "description": "d", "parameters": {}}}
    ]
    conversation: list[dict[str, Any]] = [
        {"role": "system", "content": "You are Rez."},
        {"role": "user", "content": "context"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "fetch_indicator", "arguments": ARGS}},
                {"id": "b", "type": "function", "function": {"name": "nope", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "rsi 1h\n50"},
        {"role": "tool", "tool_call_id": "b", "content": "Error: unknown tool 'nope'"},
        {"role": "user", "content": FINAL_TURN_NOTE},
    ]
    rewritten = text_conversation(conversation, tools)
    assert [message["role"] for message in rewritten] == ["system", "user", "assistant", "user"]
    assert rewritten[0]["content"].startswith("You are Rez.\n\nTools are called with text here.")
    assert rewritten[2] == {"role": "assistant", "content": f"CALL fetch_indicator {ARGS}\nCALL nope {{}}"}
    assert rewritten[3]["content"] == (
        "Results of your CALL lines:\n\n"
        f"[1] CALL fetch_indicator {ARGS}\nrsi 1h\n50\n\n"
        "[2] CALL nope {}\nError: unknown tool 'nope'\n\n" + TEXT_FINAL_TURN_NOTE
    )
    assert conversation[0]["content"] == "You are Rez."  # the original is left as it was
    # Results the conversation ends with are closed with an invitation to go on.
    assert text_conversation(conversation[:4], tools)[-1]["content"].endswith(TEXT_CONTINUE_NOTE)


@pytest.mark.parametrize(
    ("status", "message", "refused"),
    [
        (400, "registry.ollama.ai/library/gemma:2b does not support tools", True),
        (400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', True),
        (400, "tool_choice 'none' is not supported", True),
        (400, "This model does not support function calling", True),
        (404, 'No endpoints found that support tool use. Try disabling "fetch_indicator".', True),
        (422, "Extra inputs are not permitted: functions", True),
        (500, "tools param requires --jinja flag", True),
        (400, "parallel_tool_calls is not supported", False),
        (400, "Invalid value for 'temperature'", False),
        (404, "The model `gpt-9` does not exist", False),
        (429, "Rate limit for tools reached", False),
        (500, "tool execution failed upstream", False),
        (503, "overloaded", False),
    ],
)
def test_what_counts_as_a_refusal_of_tools(status: int, message: str, refused: bool) -> None:
    assert refuses_tools(status, message) is refused


@pytest.mark.parametrize(
    ("status", "message", "with_tools", "expected"),
    [
        (400, "llama3 does not support tools", True, LLMToolsRefused),
        (400, "llama3 does not support tools", False, LLMBadResponse),
        (500, "tools param requires --jinja flag", True, LLMToolsRefused),
        (500, "tools param requires --jinja flag", False, LLMUnavailable),
        (500, "boom", True, LLMUnavailable),
    ],
)
def test_the_client_raises_a_refusal_only_for_a_request_that_sent_tools(
    status: int, message: str, with_tools: bool, expected: type[Exception]
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

    async def ask(fake: FakeOpenAI) -> None:
        llm = OpenAIChat(api_key="sk-test-1234567", base_url=fake.base_url, timeout_s=5, max_retries=0)
        try:
            await llm.chat(
                model="m", messages=[{"role": "user", "content": "hi"}], tools=tools if with_tools else None
            )
        finally:
            await llm.close()

    with (
        FakeOpenAI.start([error(status, message)]) as fake,
        pytest.raises((LLMBadResponse, LLMUnavailable)) as caught,
    ):
        asyncio.run(ask(fake))
    assert type(caught.value) is expected
    if expected is LLMToolsRefused:
        assert caught.value.code == "model_bad_response"
        assert 'tool_protocol = "text"' in caught.value.message
