"""``rez decide`` against SmolLM2-135M on llama.cpp: a real model, real HTTP, sim candles.

A recording proxy sits between Rez and the server, so each test sees the requests Rez sent and the
answers llama.cpp gave, next to what Rez journaled. A 135M model decides badly; what is checked here
is Rez (issue 9): the cycle's budget, the output cap on every request, the constrained last turn,
the decision's schema, the trace of what the model wrote.

Rez runs with the README's llama.cpp recipe, read from the README itself (only its ``base_url``
points at the proxy): what a user copies is what is tested. Its cap is 192 tokens, not the default
1,024: on 2 cores SmolLM2 writes 25 to 30 tokens a second with Rez's 1,000-token prompt, so 1,024
tokens alone take longer than a call's timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rez_cli.decision.model import Decision, ModelAnswer, answer_json_schema
from tests.support.cli import Result, run
from tests.support.llama_server import LlamaServer, wait_until_idle
from tests.support.readme_recipes import readme_recipe, write_recipe
from tests.support.recording_proxy import Exchange, RecordingProxy

pytestmark = pytest.mark.realmodel

AS_OF = "2021-07-01T00:00"
RECIPE = readme_recipe("llama.cpp")["llm"]
# Room for a decision and a short reasoning, small enough to generate in seconds on 2 cores.
OUTPUT_CAP = RECIPE["max_output_tokens"]
# A call: up to ~15 s of prompt evaluation on a busy 2-core machine, then at most OUTPUT_CAP tokens.
CALL_TIMEOUT_S = RECIPE["timeout_s"]
CYCLE_TIMEOUT_S = RECIPE["cycle_timeout_s"]
# Starting the command, loading sim candles and journaling, on top of the cycle's own budget.
SLACK_S = 15


@dataclass(frozen=True)
class Cycle:
    result: Result
    decision: dict[str, Any]
    elapsed_s: float
    record: dict[str, Any]
    chats: list[Exchange]

    def summary(self) -> str:
        """What happened, for a failure message: the outcome and each call's answer."""
        calls = [
            f"{chat.status} in {chat.elapsed_s or 0:.1f}s"
            + (" (Rez hung up)" if chat.client_gone else f" finish={finish_reason(chat)}")
            + f" cap={output_cap(chat.request)}"
            for chat in self.chats
        ]
        return (
            f"exit {self.result.exit_code} in {self.elapsed_s:.1f}s, {self.decision.get('action')} "
            f"source={self.decision.get('source')} error={self.decision.get('error')}; calls: {calls}"
        )


def output_cap(request: dict[str, Any]) -> int | None:
    cap = request.get("max_completion_tokens", request.get("max_tokens"))
    return cap if isinstance(cap, int) else None


def finish_reason(chat: Exchange) -> str | None:
    try:
        return str(chat.response["choices"][0]["finish_reason"])
    except (KeyError, IndexError, TypeError):
        return None


def written(chat: Exchange) -> str | None:
    """What the model wrote in an answered call, None where no answer came back."""
    if chat.status != 200 or chat.client_gone:
        return None
    try:
        content = chat.response["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


def journaled_texts(record: dict[str, Any]) -> list[str]:
    """Every model text the trace keeps: each turn, and the repair's answer."""
    trace = record["trace"]
    texts = [turn.get("content") or "" for turn in trace.get("turns", [])]
    repair = trace.get("repair") or {}
    texts.append(repair.get("raw_text") or "")
    return texts


@pytest.fixture
def proxy(
    llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[RecordingProxy]:
    assert wait_until_idle(llama_server), "an earlier request still holds the server's slot"
    # The recipe names the model as the README's llama-server command serves it, as the fixture does.
    assert RECIPE["model"] == llama_server.model
    with RecordingProxy.start(llama_server.address) as recording:
        config = tmp_path / "llama-cpp.toml"
        write_recipe("llama.cpp", config, base_url=recording.base_url)
        monkeypatch.setenv("REZ_CONFIG", str(config))
        yield recording
        recording.wait_for_answers(timeout_s=60)


def decide(capsys: pytest.CaptureFixture[str], proxy: RecordingProxy) -> Cycle:
    started = time.monotonic()
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    elapsed_s = time.monotonic() - started
    lines = result.json_lines()
    assert len(lines) == 1, result
    decision = lines[0]
    Decision.model_validate(decision)
    exported = run(capsys, "traces", "export", decision["trace_id"])
    assert exported.exit_code == 0, exported
    # The proxy records Rez hanging up a moment after Rez has moved on.
    proxy.wait_for_answers(timeout_s=10)
    return Cycle(result, decision, elapsed_s, exported.json_lines()[0], proxy.chats)


def assert_within_budget_and_capped(cycle: Cycle, model: str) -> None:
    why = cycle.summary()
    assert cycle.result.exit_code in (0, 3), why
    assert cycle.elapsed_s < CYCLE_TIMEOUT_S + SLACK_S, why
    assert cycle.decision["error"] != "model_timeout", why
    assert cycle.chats, f"Rez never reached the server: {why}"
    for chat in cycle.chats:
        assert chat.request["model"] == model, why
        cap = output_cap(chat.request)
        assert cap is not None, why
        assert cap <= OUTPUT_CAP, why
        assert chat.status == 200, why
        assert not chat.client_gone, why
        assert finish_reason(chat) in ("stop", "length", "tool_calls"), why


def assert_trace_shows_what_the_model_wrote(cycle: Cycle) -> None:
    record = cycle.record
    assert record["trace_id"] == cycle.decision["trace_id"]
    assert record["error"] == cycle.decision["error"]
    # The prompt as it was sent, and every word the model sent back.
    assert record["trace"]["messages"] == cycle.chats[0].request["messages"]
    texts = journaled_texts(record)
    for chat in cycle.chats:
        content = written(chat)
        assert content is not None, cycle.summary()
        assert content in texts, cycle.summary()


def test_a_cycle_ends_in_time_with_every_request_capped(
    capsys: pytest.CaptureFixture[str], llama_server: LlamaServer, proxy: RecordingProxy
) -> None:
    cycle = decide(capsys, proxy)
    print(cycle.summary())  # what the model did, for `pytest -rP`

    assert_within_budget_and_capped(cycle, llama_server.model)
    assert_trace_shows_what_the_model_wrote(cycle)
    assert cycle.record["model"] == llama_server.model


def test_the_last_turn_answers_in_the_decision_schema(
    capsys: pytest.CaptureFixture[str],
    llama_server: LlamaServer,
    proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One turn, so the first is the last: it must answer, whatever the model would rather do.
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "1")
    cycle = decide(capsys, proxy)
    why = cycle.summary()
    print(why)

    assert_within_budget_and_capped(cycle, llama_server.model)
    assert_trace_shows_what_the_model_wrote(cycle)
    last = cycle.chats[0]
    assert [tool["function"]["name"] for tool in last.request["tools"]] == ["fetch_indicator"]
    assert last.request["tool_choice"] == "none"
    assert last.request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "rez_decision", "strict": True, "schema": answer_json_schema()},
    }
    content = written(last) or ""
    if finish_reason(last) == "stop":
        # llama.cpp enforced the schema: the answer is a decision as written, no repair needed, and
        # only the policy may turn it down.
        ModelAnswer.model_validate_json(content)
        assert cycle.decision["source"] == "native", why
        assert len(cycle.chats) == 1, why
    else:
        # The schema does not bound a string, and a small model can repeat inside one until the cap
        # cuts the JSON; Rez must still end in a valid decision (checked in decide()).
        assert finish_reason(last) == "length", why
        assert cycle.decision["source"] in ("repaired", "fallback"), why
