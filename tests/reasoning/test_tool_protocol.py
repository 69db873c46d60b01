"""The text tool protocol and ``auto``: endpoints that refuse tools, models that never call them.

The real openai SDK against the scripted server on 127.0.0.1, sim candles, ``rez decide`` end to end.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from rez_cli.decision.model import Decision
from rez_cli.llm import protocol_memory
from rez_cli.reasoning.prompts import TEXT_FINAL_TURN_NOTE
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, error, reply, tool_calls

AS_OF = "2021-07-01T00:00"
OLLAMA_REFUSAL = "registry.ollama.ai/library/gemma:2b does not support tools"
RSI_CALL = {"indicator": "rsi", "timeframe": "1h", "params": {"length": 14}, "lookback": 3}


@pytest.fixture(scope="module")
def last_price() -> float:
    import asyncio

    from rez_cli.config.settings import load_settings
    from rez_cli.cycle.context import load_context
    from rez_cli.market.candles import parse_time

    settings = load_settings().value
    context = asyncio.run(
        load_context(
            settings, "BTC/USDT", timeframes=["15m", "1h", "4h"], exchange="sim", as_of_ms=parse_time(AS_OF)
        )
    )
    return context.last_price


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-protocol-1234")
    monkeypatch.setenv("REZ__LLM__MODEL", "small-model")
    monkeypatch.setenv("REZ__LLM__TIMEOUT_S", "5")
    return fake_openai


def decide(capsys: pytest.CaptureFixture[str]) -> tuple[Result, dict[str, Any]]:
    # Runs at one moment, one after the other: without the paper account, so that a position an
    # earlier run opened does not turn the next one's buy into a hold.
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", "--no-paper")
    lines = result.json_lines()
    assert len(lines) == 1, result
    Decision.model_validate(lines[0])
    return result, lines[0]


def exported(capsys: pytest.CaptureFixture[str], trace_id: str) -> dict[str, Any]:
    record: dict[str, Any] = run(capsys, "traces", "export", trace_id).json_lines()[0]
    return record


def buy(price: float) -> str:
    return json.dumps(
        {
            "action": "buy",
            "entry_price": round(price, 2),
            "tp_price": round(price * 1.03, 2),
            "sl_price": round(price * 0.985, 2),
            "leverage": 2,
            "confidence": 0.7,
            "rationale": "4h trend up, RSI confirms",
            "invalidation": "close_4h < ema_20_4h",
        }
    )


def call_line(arguments: Any, name: str = "fetch_indicator") -> str:
    return f"CALL {name} {arguments if isinstance(arguments, str) else json.dumps(arguments)}"


def system_of(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


def last_user(body: dict[str, Any]) -> str:
    [*_, message] = body["messages"]
    assert message["role"] == "user"
    return str(message["content"])


# --- auto: an endpoint that refuses tools -------------------------------------------------------


def test_a_refusal_of_tools_is_asked_again_in_text_and_remembered(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    asked = f"I want the hourly RSI first.\n```\n{call_line(RSI_CALL)}\n```"
    model_env.push(error(400, OLLAMA_REFUSAL), reply(asked), reply(buy(last_price)))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["source"]) == (0, "buy", "native")
    assert decision["usage"]["tool_calls"] == 1
    assert decision["usage"]["llm_calls"] == 2  # the refused request never reached a model

    refused, first, second = model_env.bodies
    assert [tool["function"]["name"] for tool in refused["tools"]] == ["fetch_indicator"]
    for body in (first, second):
        assert "tools" not in body
        assert "tool_choice" not in body
        assert "parallel_tool_calls" not in body
    # The same turn, asked again: the same context, the tools described in the system message.
    assert first["messages"][1] == refused["messages"][1]
    assert "CALL fetch_indicator {" in system_of(first)
    assert "Arguments (JSON schema)" in system_of(first)
    assert '"lookback"' in system_of(first)
    # The call's result comes back in the next user message, labelled with the call it answers.
    assert second["messages"][-2] == {"role": "assistant", "content": asked}
    results = last_user(second)
    assert results.startswith("Results of your CALL lines:")
    assert f"[1] CALL fetch_indicator {json.dumps(RSI_CALL)}\nrsi 1h" in results

    record = exported(capsys, decision["trace_id"])
    trace = record["trace"]
    assert trace["tool_protocol"] == "text"
    assert trace["tool_protocol_switch"]["turn"] == 1
    assert trace["tool_protocol_switch"]["reason"] == "tools_refused"
    assert "does not support tools" in trace["tool_protocol_switch"]["detail"]
    # Journaled as native calls are: the turn, the call, its arguments as written, ok, the result.
    first_turn, _final = record["turns"]
    [call] = first_turn["tool_calls"]
    assert (call["name"], json.loads(call["arguments"]), call["ok"]) == ("fetch_indicator", RSI_CALL, True)
    assert call["content"].startswith("rsi 1h")
    assert first_turn["tools_offered"] is True

    # The next run starts in text: nothing is sent that the endpoint refused.
    model_env.push(reply(buy(last_price)))
    _, again = decide(capsys)
    assert again["action"] == "buy"
    assert "tools" not in model_env.bodies[-1]
    assert "CALL fetch_indicator {" in system_of(model_env.bodies[-1])
    trace = exported(capsys, again["trace_id"])["trace"]
    assert trace["tool_protocol"] == "text"
    assert "does not support tools" in trace["tool_protocol_remembered"]["reason"]
    assert "tool_protocol_switch" not in trace


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (500, "tools param requires --jinja flag"),  # llama.cpp started without --jinja
        (400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'),
        (404, 'No endpoints found that support tool use. Try disabling "fetch_indicator".'),
        (422, "Unsupported parameter: tools"),
    ],
)
def test_each_servers_refusal_switches_to_text(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    message: str,
) -> None:
    monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
    model_env.push(error(status, message), reply(buy(last_price)))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")
    assert "tools" in model_env.bodies[0]
    assert "tools" not in model_env.bodies[1]
    assert exported(capsys, decision["trace_id"])["trace"]["tool_protocol"] == "text"


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (400, "Invalid value for 'temperature'", "model_bad_response"),
        (500, "The server had an error while processing your request.", "model_unreachable"),
    ],
)
def test_other_errors_are_not_a_refusal_of_tools(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    message: str,
    code: str,
) -> None:
    monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
    model_env.push(error(status, message))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["error"]) == (3, code)
    assert len(model_env.requests) == 1
    assert protocol_memory.recall(model_env.url.removeprefix("http://"), "small-model") is None


def test_native_protocol_holds_on_a_refusal_and_says_what_to_set(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "native")
    model_env.push(error(400, OLLAMA_REFUSAL))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["error"]) == (3, "hold", "model_bad_response")
    assert "tool_protocol" in decision["rationale"]
    assert len(model_env.requests) == 1


def test_a_refusal_on_a_later_turn_rewrites_the_native_history_as_text(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A native tool call on turn 1, then an endpoint that refuses tool_choice on the last turn.
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "2")
    model_env.push(
        tool_calls([("fetch_indicator", RSI_CALL)], content="Checking RSI."),
        error(400, "tool_choice 'none' is not supported"),
        reply(buy(last_price)),
    )
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")
    final = model_env.bodies[2]
    assert "tools" not in final
    assert "tool_choice" not in final
    assert final["response_format"]["type"] == "json_schema"
    roles = [message["role"] for message in final["messages"]]
    assert roles == ["system", "user", "assistant", "user"]  # no tool messages, no two users in a row
    assert final["messages"][2]["content"] == f"Checking RSI.\n{call_line(RSI_CALL)}"
    results = last_user(final)
    assert results.startswith("Results of your CALL lines:\n\n[1] CALL fetch_indicator")
    assert "rsi 1h" in results
    assert results.endswith(TEXT_FINAL_TURN_NOTE)
    trace = exported(capsys, decision["trace_id"])["trace"]
    assert trace["tool_protocol_switch"]["turn"] == 2


# --- tool_protocol = "text" ----------------------------------------------------------------------


def test_text_protocol_never_sends_tools(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "3")
    two_calls = "\n".join(
        [
            "Let me look at momentum and volatility:",
            call_line({"indicator": "macd", "timeframe": "4h"}),
            f"- `{call_line({'indicator': 'atr', 'timeframe': '1h', 'lookback': 2})}` for the stop",
        ]
    )
    model_env.push(
        reply(two_calls),
        reply(call_line({"indicator": "ema", "timeframe": "4h", "params": {"length": 50}})),
        reply(buy(last_price)),
    )
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")
    assert decision["usage"]["tool_calls"] == 3
    bodies = model_env.bodies
    assert len(bodies) == 3
    for body in bodies:
        assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)
        assert all(message["role"] in ("system", "user", "assistant") for message in body["messages"])
    assert "CALL fetch_indicator {" in system_of(bodies[0])
    assert "is offered as a function tool" not in system_of(bodies[0])
    assert "response_format" not in bodies[0]
    assert "response_format" not in bodies[1]
    first_results = last_user(bodies[1])
    assert "[1] CALL fetch_indicator" in first_results
    assert "macd 4h" in first_results
    assert "[2] CALL fetch_indicator" in first_results
    assert "atr 1h" in first_results
    assert "Write more CALL lines" in first_results
    # The last turn: told that tools are gone, constrained to the decision's schema.
    assert last_user(bodies[2]).endswith(TEXT_FINAL_TURN_NOTE)
    assert bodies[2]["response_format"]["json_schema"]["strict"] is True

    record = exported(capsys, decision["trace_id"])
    assert record["trace"]["tool_protocol"] == "text"
    assert [len(turn["tool_calls"]) for turn in record["turns"]] == [2, 1, 0]
    assert [call["id"] for call in record["turns"][0]["tool_calls"]] == ["text_1_1", "text_1_2"]
    assert all(call["ok"] for turn in record["turns"] for call in turn["tool_calls"])


def test_text_protocol_in_the_live_turn_view(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    model_env.push(reply(call_line(RSI_CALL)), reply(buy(last_price)))
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF)
    assert result.exit_code == 0
    shown = result.stdout + result.stderr
    assert "turn 1" in shown
    assert "✓ fetch_indicator(" in shown


def test_broken_json_and_unknown_tools_come_back_as_errors_and_cost_turns(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "3")
    model_env.push(
        reply('CALL fetch_indicator {"indicator": "rsi", "timeframe": 1h}'),
        reply(call_line({"q": "btc"}, name="get_news") + "\nCALL fetch_indicator"),
        reply(buy(last_price)),
    )
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")
    assert decision["usage"]["llm_calls"] == 3  # each bad call cost a turn
    assert decision["usage"]["tool_calls"] == 3
    first = last_user(model_env.bodies[1])
    assert (
        '[1] CALL fetch_indicator {"indicator": "rsi", "timeframe": 1h}\nError: arguments are not valid JSON'
        in (first)
    )
    second = last_user(model_env.bodies[2])
    assert "[1] CALL get_news" in second
    assert "Error: unknown tool 'get_news'; available: fetch_indicator" in second
    assert "[2] CALL fetch_indicator\nError: indicator: Field required" in second
    assert second.endswith(TEXT_FINAL_TURN_NOTE)
    record = exported(capsys, decision["trace_id"])
    calls = [call for turn in record["turns"] for call in turn["tool_calls"]]
    assert [call["ok"] for call in calls] == [False, False, False]
    assert all(call["content"].startswith("Error:") for call in calls)


def test_call_lines_to_the_end_are_a_hold_and_the_last_ones_are_not_run(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "2")
    model_env.push(reply(call_line(RSI_CALL)), reply(call_line({"indicator": "atr", "timeframe": "1h"})))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["error"]) == (3, "hold", "max_turns_exceeded")
    assert decision["usage"]["tool_calls"] == 1
    assert len(model_env.requests) == 2  # no repair of a bare CALL line


def test_at_most_eight_calls_of_one_answer_are_run(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    lines = [call_line({"indicator": "rsi", "timeframe": "1h", "lookback": n}) for n in range(1, 13)]
    model_env.push(reply("\n".join(lines)), reply(buy(last_price)))
    _, decision = decide(capsys)
    assert decision["usage"]["tool_calls"] == 8
    results = last_user(model_env.bodies[1])
    assert "[8] CALL" in results
    assert "[9] CALL" not in results
    assert "Only the first 8 CALL lines were run." in results


# --- auto: a model that writes CALL lines although native tools were offered ---------------------


def test_call_lines_in_prose_under_native_tools_are_run_as_text(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        reply(f"To decide I need the RSI.\n{call_line(RSI_CALL)}"),
        reply(buy(last_price)),
    )
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")
    assert decision["usage"]["tool_calls"] == 1
    first, second = model_env.bodies
    assert "tools" in first
    # auto tells a model that cannot see the tools how to ask in text.
    assert "If you cannot call functions, write a line instead" in system_of(first)
    assert "tools" not in second
    assert "Arguments (JSON schema)" in system_of(second)
    assert "If you cannot call functions" not in system_of(second)
    assert "rsi 1h" in last_user(second)
    trace = exported(capsys, decision["trace_id"])["trace"]
    assert trace["tool_protocol"] == "text"
    assert trace["tool_protocol_switch"]["reason"] == "call_lines"
    remembered = protocol_memory.recall(model_env.url.removeprefix("http://"), "small-model")
    assert remembered is not None
    assert remembered.reason.startswith("call_lines")


def test_native_tool_calls_win_over_call_lines_and_native_setting_ignores_them(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_env.push(
        tool_calls(
            [("fetch_indicator", RSI_CALL)], content=call_line({"indicator": "atr", "timeframe": "1h"})
        ),
        reply(buy(last_price)),
    )
    _, decision = decide(capsys)
    assert decision["usage"]["tool_calls"] == 1
    assert "tools" in model_env.bodies[1]
    assert exported(capsys, decision["trace_id"])["trace"]["tool_protocol"] == "native"

    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "native")
    model_env.push(reply(f"{call_line(RSI_CALL)}\n{buy(last_price)}"))
    _, decision = decide(capsys)
    assert decision["usage"]["tool_calls"] == 0
    assert decision["action"] == "buy"
    assert "If you cannot call functions" not in system_of(model_env.bodies[-1])


# --- what is remembered --------------------------------------------------------------------------


def test_the_memory_is_private_expires_and_survives_damage(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol_memory.remember("127.0.0.1:11434", "gemma:2b", "tools_refused: 400")
    path = protocol_memory.memory_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.is_relative_to(isolated_env)
    assert protocol_memory.starting_protocol("auto", "127.0.0.1:11434", "gemma:2b")[0] == "text"
    assert protocol_memory.starting_protocol("native", "127.0.0.1:11434", "gemma:2b") == ("native", None)
    assert protocol_memory.starting_protocol("auto", "127.0.0.1:11434", "qwen2.5") == ("native", None)
    assert protocol_memory.starting_protocol("auto", "127.0.0.1:8080", "gemma:2b") == ("native", None)
    later = int(time.time() * 1000) + (protocol_memory.REMEMBER_DAYS + 1) * 86_400_000
    assert protocol_memory.recall("127.0.0.1:11434", "gemma:2b", now_ms=later) is None
    protocol_memory.forget("127.0.0.1:11434", "gemma:2b")
    assert protocol_memory.recall("127.0.0.1:11434", "gemma:2b") is None

    for damage in ("{not json", "[" * 100_000, '{"entries": [1, {"endpoint": 3}]}', ""):
        path.write_text(damage)
        assert protocol_memory.recall("127.0.0.1:11434", "gemma:2b") is None
        protocol_memory.remember("127.0.0.1:11434", "gemma:2b", "again")
        assert protocol_memory.recall("127.0.0.1:11434", "gemma:2b") is not None


def test_an_unwritable_memory_never_fails_a_cycle(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
) -> None:
    blocked = protocol_memory.memory_path().parent
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the directory should be")
    model_env.push(error(400, OLLAMA_REFUSAL), reply(buy(last_price)))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")


def test_dry_run_shows_the_text_prompt_once_the_switch_is_remembered(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    args = ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--dry-run", "--json")
    [before] = run(capsys, *args).json_lines()
    assert before["tools"]
    assert "If you cannot call functions" in before["messages"][0]["content"]
    protocol_memory.remember(before["endpoint"], "small-model", "tools_refused")
    [after] = run(capsys, *args).json_lines()
    assert after["tools"] == []
    assert "Arguments (JSON schema)" in after["messages"][0]["content"]
    assert model_env.requests == []


def test_arguments_that_fail_validation_say_which_field_in_both_protocols(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = {"indicator": "rsi", "timeframe": "1h", "lookback": 500}
    model_env.push(tool_calls([("fetch_indicator", bad)]), reply(buy(last_price)))
    decide(capsys)
    [tool_message] = [m for m in model_env.bodies[1]["messages"] if m["role"] == "tool"]
    assert tool_message["content"] == "Error: lookback: Input should be less than or equal to 50"

    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    model_env.push(reply(call_line(bad)), reply(buy(last_price)))
    decide(capsys)
    assert "\nError: lookback: Input should be less than or equal to 50\n" in last_user(model_env.bodies[-1])


def test_a_served_model_file_is_remembered_by_its_name_not_its_port() -> None:
    """The embedded llama.cpp gets a new port every run: the memory must not."""
    from rez_cli.llm.openai_api import OpenAIChat

    client = OpenAIChat(
        api_key="",
        base_url="http://127.0.0.1:41234/v1",
        timeout_s=5,
        max_retries=0,
        endpoint_name="SmolLM2.gguf (embedded)",
    )
    assert client.endpoint == "SmolLM2.gguf (embedded)"
    assert OpenAIChat(
        api_key="", base_url="http://127.0.0.1:41234/v1", timeout_s=5, max_retries=0
    ).endpoint == ("127.0.0.1:41234")
