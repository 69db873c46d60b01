"""The text tool protocol against SmolLM2-135M on llama.cpp: real HTTP, a real model, sim candles.

SmolLM2's chat template has no tool support, so llama.cpp drops ``tools`` from its prompt and the
model never calls one natively: the text protocol is how such a model reaches ``fetch_indicator``.
A 135M model may or may not write a CALL line; what is checked is what Rez guarantees either way:
no request carries tools, every request is capped, the cycle ends within its budget in a decision
that validates, and every CALL line it ran is answered in the next request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rez_cli.decision.model import Decision, answer_json_schema
from rez_cli.reasoning.prompts import REPAIR_SYSTEM
from tests.support.cli import run
from tests.support.llama_server import LlamaServer, wait_until_idle
from tests.support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.realmodel

AS_OF = "2021-07-01T00:00"
OUTPUT_CAP = 192  # the README recipe's
# The text protocol's prompt carries the tool's schema: ~2,000 tokens to evaluate before the first
# word, which on a busy 2-core CI machine has taken close to 30 s. The call timeout leaves room for
# that; runaway generation is still ruled out by the cap.
CALL_TIMEOUT_S = 60
CYCLE_TIMEOUT_S = 150
# Starting the command, loading sim candles and journaling, on top of the cycle's own budget.
SLACK_S = 15
MAX_TURNS = 3


@pytest.fixture
def proxy(llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    assert wait_until_idle(llama_server), "an earlier request still holds the server's slot"
    with RecordingProxy.start(llama_server.address) as recording:
        monkeypatch.setenv("REZ__LLM__BASE_URL", recording.base_url)
        monkeypatch.setenv("REZ__LLM__MODEL", llama_server.model)
        monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
        monkeypatch.setenv("REZ__LLM__MAX_OUTPUT_TOKENS", str(OUTPUT_CAP))
        monkeypatch.setenv("REZ__LLM__TIMEOUT_S", str(CALL_TIMEOUT_S))
        monkeypatch.setenv("REZ__LLM__CYCLE_TIMEOUT_S", str(CYCLE_TIMEOUT_S))
        monkeypatch.setenv("REZ__LLM__MAX_TURNS", str(MAX_TURNS))
        monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
        yield recording
        recording.wait_for_answers(timeout_s=60)


def content_of(response: Any) -> str | None:
    try:
        content = response["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


def test_the_text_protocol_ends_in_a_decision_within_budget(
    capsys: pytest.CaptureFixture[str], llama_server: LlamaServer, proxy: RecordingProxy
) -> None:
    started = time.monotonic()
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    elapsed_s = time.monotonic() - started
    [decision] = result.json_lines()
    Decision.model_validate(decision)
    record = run(capsys, "traces", "export", decision["trace_id"]).json_lines()[0]
    proxy.wait_for_answers(timeout_s=10)
    chats = proxy.chats
    turns = record["turns"]
    why = (
        f"exit {result.exit_code} in {elapsed_s:.1f}s, {decision['action']} source={decision['source']} "
        f"error={decision['error']}; turns: {[(t['content'], len(t['tool_calls'])) for t in turns]}"
    )
    print(why)  # what the model did, for `pytest -rP`

    assert result.exit_code in (0, 3), why
    assert elapsed_s < CYCLE_TIMEOUT_S + SLACK_S, why
    assert decision["error"] not in ("model_timeout", "model_bad_response", "model_unreachable"), why
    assert record["trace"]["tool_protocol"] == "text", why
    loop = [chat for chat in chats if chat.request["messages"][0]["content"] != REPAIR_SYSTEM]
    assert 1 <= len(loop) <= MAX_TURNS, why
    # One more request than turns only when the cycle's time ran out while it was being answered.
    assert len(turns) <= len(loop) <= len(turns) + 1, why
    assert record["trace"]["messages"] == loop[0].request["messages"]
    assert "CALL fetch_indicator {" in loop[0].request["messages"][0]["content"]
    for chat in chats:
        assert chat.status == 200, why
        assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(chat.request), why
        assert chat.request.get("max_tokens", chat.request.get("max_completion_tokens")) == OUTPUT_CAP
    for number, (chat, turn) in enumerate(zip(loop, turns, strict=False), 1):
        # The trace keeps what the model wrote, word for word.
        assert content_of(chat.response) == turn["content"], why
        if number < len(loop) and turn["tool_calls"]:
            # A turn after CALL lines carries their results.
            results = loop[number].request["messages"][-1]
            assert results["role"] == "user", why
            assert results["content"].startswith("Results of your CALL lines:"), why
            labels = re.findall(r"^\[\d+\] CALL ", results["content"], flags=re.MULTILINE)
            assert len(labels) == len(turn["tool_calls"]), why
        elif number < len(loop):
            # An answer that could not stand, and no calls: the next turn is the constrained last one.
            assert number + 1 == len(loop), why
            assert loop[number].request["response_format"]["type"] == "json_schema", why
    if len(loop) == MAX_TURNS:
        assert loop[-1].request["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "rez_decision", "strict": True, "schema": answer_json_schema()},
        }
