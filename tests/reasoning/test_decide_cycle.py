"""``rez decide`` end to end: the real openai SDK against a scripted server on 127.0.0.1, sim candles."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rez_cli.decision.model import Decision
from rez_cli.reasoning.prompts import rounds_left_note
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, error, hang, reply, tool_calls

AS_OF = "2021-07-01T00:00"
SECRET = "sk-test-SECRET-1234"


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
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    monkeypatch.setenv("REZ__LLM__TIMEOUT_S", "5")
    return fake_openai


def decide(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[Result, dict[str, Any]]:
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", *extra)
    lines = result.json_lines()
    assert len(lines) == 1, result
    Decision.model_validate(lines[0])
    assert SECRET not in result.stdout + result.stderr
    return result, lines[0]


# One turn, which is the constrained last: what the model writes goes straight to the parser and, if
# it cannot stand, to the resilience model (with more turns a constrained turn is asked first).
REPAIR_ONLY = ("--max-turns", "1")


def buy(price: float, **changes: Any) -> dict[str, Any]:
    answer = {
        "action": "buy",
        "entry_price": round(price, 2),
        "tp_price": round(price * 1.03, 2),
        "sl_price": round(price * 0.985, 2),
        "leverage": 2,
        "confidence": 0.7,
        "rationale": "4h trend up, 15m RSI confirms",
        "invalidation": "close_4h < ema_20_4h",
    }
    answer.update(changes)
    return answer


def test_direct_json_is_a_native_decision(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(reply(json.dumps(buy(last_price)), usage=(1200, 150)))
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["action"] == "buy"
    assert decision["source"] == "native"
    assert decision["error"] is None
    assert decision["mode"] == "react"
    # 1% risk, 1.5% stop, 2x leverage: 1 / (2 * 0.015) = 33.3%, capped by moderate's 25%.
    assert decision["size_pct"] == 25
    assert decision["usage"]["llm_calls"] == 1
    assert decision["usage"]["prompt_tokens"] == 1200
    first = model_env.requests[0].body
    assert first["model"] == "test-model"
    assert first["messages"][0]["content"].startswith(
        "You are Rez. Your goal is to maximize PnL while adhering to the moderate risk profile"
    )
    assert "leverage: between 1 and 5" in first["messages"][0]["content"]
    assert "BTC/USDT on sim (SIMULATED market)" in first["messages"][1]["content"]
    assert [tool["function"]["name"] for tool in first["tools"]] == ["fetch_indicator"]
    assert model_env.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_tool_call_then_json(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        tool_calls(
            [
                (
                    "fetch_indicator",
                    {"indicator": "rsi", "timeframe": "5m", "params": {"length": 14}, "lookback": 3},
                )
            ]
        ),
        reply(json.dumps(buy(last_price))),
    )
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["action"] == "buy"
    assert decision["usage"]["llm_calls"] == 2
    assert decision["usage"]["tool_calls"] == 1
    # The tool's result, then the rounds left (5 of 6 turns remain; the last takes no tools).
    *_, tool_message, note = model_env.requests[1].body["messages"]
    assert note == {"role": "user", "content": rounds_left_note(4)}
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "call_1_0"
    assert tool_message["content"].startswith("rsi 5m")
    assert len(tool_message["content"].splitlines()) == 5  # header, column line, 3 values


def test_parallel_tool_calls_all_answered(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        tool_calls(
            [
                ("fetch_indicator", {"indicator": "macd", "timeframe": "4h"}),
                ("fetch_indicator", {"indicator": "bbands", "timeframe": "1h", "lookback": 2}),
                ("fetch_indicator", {"indicator": "macd", "timeframe": "4h"}),
            ]
        ),
        reply(json.dumps(buy(last_price))),
    )
    result, _decision = decide(capsys)
    assert result.exit_code == 0
    tool_messages = [m for m in model_env.requests[1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_1_0", "call_1_1", "call_1_2"]
    assert tool_messages[0]["content"] == tool_messages[2]["content"]
    assert all(not m["content"].startswith("Error") for m in tool_messages)


@pytest.mark.parametrize(
    "template",
    [
        "Trend is up, RSI fine. Decision: {answer} Good luck.",
        "```json\n{answer}\n```",
        "MACD last values [12.5, 13.1, 14.2] and RSI [55, 58].\nFinal: {answer}",
        "{answer_trailing_comma}",
        "{answer_truncated}",
    ],
)
def test_json_in_prose_fences_and_truncated_is_extracted(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float, template: str
) -> None:
    answer = json.dumps(buy(last_price))
    text = template.format(
        answer=answer, answer_trailing_comma=answer[:-1] + ",}", answer_truncated=answer[:-1]
    )
    model_env.push(reply(text))
    result, decision = decide(capsys)
    assert result.exit_code == 0, result.stderr
    assert decision["action"] == "buy"
    assert decision["source"] == "extracted"


def test_garbage_is_repaired_by_the_resilience_model(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__RESILIENCE_MODEL", "fixer")
    answer = buy(last_price)
    prose = (
        f"I would go long at {answer['entry_price']} with a target of {answer['tp_price']} and a stop at "
        f"{answer['sl_price']}, leverage 2."
    )
    model_env.push(reply(prose), reply(json.dumps(answer)))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 0
    assert decision["source"] == "repaired"
    assert decision["action"] == "buy"
    repair = model_env.requests[1].body
    assert repair["model"] == "fixer"
    assert repair["response_format"]["type"] == "json_schema"
    assert repair["response_format"]["json_schema"]["strict"] is True
    assert prose in repair["messages"][-1]["content"]


def test_json_object_fallback_when_the_endpoint_cannot_do_schemas(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__SUPPORTS_JSON_SCHEMA", "false")
    answer = buy(last_price)
    model_env.push(
        reply(f"long at {answer['entry_price']}, tp {answer['tp_price']}, sl {answer['sl_price']}"),
        reply(json.dumps(answer)),
    )
    _, decision = decide(capsys, *REPAIR_ONLY)
    assert decision["source"] == "repaired"
    assert model_env.requests[1].body["response_format"] == {"type": "json_object"}


def test_repair_that_invents_prices_is_rejected(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(reply("Looks bullish, I would buy."), reply(json.dumps(buy(last_price * 0.999))))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 3
    assert decision["action"] == "hold"
    assert decision["error"] == "repair_invented_prices"
    assert decision["source"] == "fallback"


def test_garbage_everywhere_is_a_hold(capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI) -> None:
    model_env.push(reply("no idea"), reply("still no idea"))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 3
    assert decision["action"] == "hold"
    assert decision["error"] == "repair_failed"


def test_unknown_tool_and_bad_arguments_let_the_model_correct_itself(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        tool_calls(
            [("get_news", {"q": "btc"}), ("fetch_indicator", {"indicator": "rsii", "timeframe": "1h"})]
        ),
        tool_calls(
            [
                ("fetch_indicator", {"indicator": "rsi", "timeframe": "7x"}),
                ("fetch_indicator", {"indicator": "ema", "timeframe": "1h", "params": {"length": 100000}}),
                ("fetch_indicator", "{not json"),
                ("fetch_indicator", '{"lookback": ' + "9" * 5_000 + "}"),
                ("fetch_indicator", "[" * 100_000),
            ]
        ),
        reply(json.dumps(buy(last_price))),
    )
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["action"] == "buy"
    first = [m["content"] for m in model_env.requests[1].body["messages"] if m["role"] == "tool"]
    assert first[0].startswith("Error: unknown tool 'get_news'")
    assert first[1].startswith("Error:")
    assert "rsi" in first[1]
    second = [m["content"] for m in model_env.requests[2].body["messages"] if m["role"] == "tool"][2:]
    assert all(content.startswith("Error:") for content in second)
    assert "7x" in second[0]
    assert "length" in second[1]
    assert "JSON" in second[2]
    assert second[3] == second[4] == "Error: arguments are not usable JSON (too large or too deep)"


def test_endless_tool_calls_meet_a_final_turn_that_must_answer_in_the_schema(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    loop = tool_calls([("fetch_indicator", {"indicator": "atr", "timeframe": "1h"})])
    model_env.push(*([loop] * 5), reply(json.dumps(buy(last_price))))
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["action"] == "buy"
    assert len(model_env.requests) == 6
    bodies = [request.body for request in model_env.requests]
    assert all("tools" in body for body in bodies)  # kept: some endpoints refuse tool history without
    assert all("tool_choice" not in body and "response_format" not in body for body in bodies[:5])
    final = bodies[5]
    assert final["tool_choice"] == "none"
    assert final["response_format"]["type"] == "json_schema"
    assert final["response_format"]["json_schema"]["strict"] is True
    assert "last turn" in final["messages"][-1]["content"]


def test_every_request_carries_the_output_cap_and_the_sampling_settings(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__SEED", "42")
    monkeypatch.setenv("REZ__LLM__EXTRA_BODY", '{"options": {"num_ctx": 8192}}')
    monkeypatch.setenv("REZ__LLM__EXTRA_HEADERS", '{"X-Title": "rez"}')
    model_env.push(reply("I would buy."), reply(json.dumps(buy(last_price))))
    _, decision = decide(capsys, *REPAIR_ONLY)
    assert decision["error"] == "repair_invented_prices"  # the prose named no price
    decide_call, repair_call = (request.body for request in model_env.requests)
    assert decide_call["max_tokens"] == repair_call["max_tokens"] == 1024
    assert (decide_call["temperature"], repair_call["temperature"]) == (0.2, 0.0)
    assert decide_call["seed"] == repair_call["seed"] == 42
    assert decide_call["options"] == {"num_ctx": 8192}
    assert model_env.requests[0].headers["x-title"] == "rez"


def test_an_endpoint_that_refuses_max_tokens_gets_max_completion_tokens(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    """OpenAI's reasoning models answer 400 to max_tokens; the cap is sent under the new name."""
    refusal = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead."
    )
    model_env.push(error(400, refusal), reply(json.dumps(buy(last_price))))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"]) == (0, "buy")
    refused, accepted = (request.body for request in model_env.requests)
    assert refused["max_tokens"] == 1024
    assert "max_tokens" not in accepted
    assert accepted["max_completion_tokens"] == 1024


def test_a_model_that_never_answers_is_a_hold(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    model_env.push(tool_calls([("fetch_indicator", {"indicator": "atr", "timeframe": "1h"})]))
    model_env.repeat_last = True
    result, decision = decide(capsys, "--max-turns", "3")
    assert result.exit_code == 3
    assert decision["error"] == "max_turns_exceeded"
    assert len(model_env.requests) == 3


def test_rate_limit_then_success(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(error(429, retry_after=0.01), reply(json.dumps(buy(last_price))))
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["action"] == "buy"
    assert len(model_env.requests) == 2


def test_server_error_always_is_a_hold(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "1")
    model_env.push(error(500, retry_after=0.01))
    model_env.repeat_last = True
    result, decision = decide(capsys)
    assert result.exit_code == 3
    assert decision["action"] == "hold"
    assert decision["error"] == "model_unreachable"
    assert len(model_env.requests) == 2


def test_hanging_server_is_a_hold_within_the_time_budget(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__TIMEOUT_S", "0.5")
    monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
    model_env.push(hang())
    started = time.monotonic()
    result, decision = decide(capsys)
    assert time.monotonic() - started < 5
    assert result.exit_code == 3
    assert decision["error"] == "model_timeout"


def test_the_whole_cycle_is_bounded(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__CYCLE_TIMEOUT_S", "1")
    model_env.push(hang())
    started = time.monotonic()
    result, decision = decide(capsys)
    assert time.monotonic() - started < 4
    assert result.exit_code == 3
    assert decision["error"] == "reasoning_timeout_exceeded"


def test_budget_stops_before_the_call_that_would_pass_it(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__MODEL", "gpt-4o")
    result, decision = decide(capsys, "--max-cost", "0.001")
    assert result.exit_code == 3
    assert decision["error"] == "budget_exceeded"
    assert model_env.requests == []


def test_policy_failure_is_a_hold_with_the_rule(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(reply(json.dumps(buy(last_price, tp_price=round(last_price * 0.99, 2)))))
    result, decision = decide(capsys)
    assert result.exit_code == 3
    assert decision["action"] == "hold"
    assert decision["error"] == "tp_not_above_entry"
    assert decision["source"] == "native"


def test_a_hold_the_model_chose_exits_zero(capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI) -> None:
    model_env.push(
        reply(
            json.dumps(
                {
                    "action": "hold",
                    "entry_price": None,
                    "tp_price": None,
                    "sl_price": None,
                    "leverage": 1,
                    "confidence": 0.4,
                    "rationale": "mixed",
                    "invalidation": None,
                }
            )
        )
    )
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["action"] == "hold"
    assert decision["error"] is None
    assert decision["size_pct"] == 0


def test_no_model_configured_runs_rules_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["mode"] == "rules"
    assert decision["error"] is None
    assert (
        "note: no model configured: running the rules mode (set [llm] model or base_url, or give --model)\n"
        in result.stderr
    )
    # Deterministic: the same moment decides the same (without the order the first run placed).
    again = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", "--no-paper"
    ).json_lines()[0]
    assert {k: v for k, v in again.items() if k not in ("usage", "trace_id")} == {
        k: v for k, v in decision.items() if k not in ("usage", "trace_id")
    }


def test_asking_for_a_model_without_one_is_a_hold(capsys: pytest.CaptureFixture[str]) -> None:
    result, decision = decide(capsys, "--mode", "react")
    assert result.exit_code == 3
    assert decision["error"] == "model_not_configured"


def test_trace_on_stdout_shows_turns_and_the_decision(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(
        tool_calls(
            [("fetch_indicator", {"indicator": "rsi", "timeframe": "15m", "lookback": 2})],
            content="Checking momentum.",
        ),
        reply("Confluent.\n" + json.dumps(buy(last_price))),
    )
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF)
    assert result.exit_code == 0
    assert "SIMULATED" in result.stdout
    assert "turn 1" in result.stdout
    assert "fetch_indicator" in result.stdout
    assert "Checking momentum." in result.stdout
    assert "BTC/USDT · BUY" in result.stdout
    assert "reward/risk" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_sequential_tool_calls_when_the_endpoint_cannot_run_them_in_parallel(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    last_price: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REZ__LLM__PARALLEL_TOOL_CALLS", "false")
    model_env.push(
        tool_calls(
            [
                ("fetch_indicator", {"indicator": "rsi", "timeframe": "1h"}),
                ("fetch_indicator", {"indicator": "atr", "timeframe": "4h"}),
            ]
        ),
        reply(json.dumps(buy(last_price))),
    )
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["usage"]["tool_calls"] == 2
    assert model_env.requests[0].body["parallel_tool_calls"] is False


def exported(capsys: pytest.CaptureFixture[str], trace_id: str) -> dict[str, Any]:
    record: dict[str, Any] = run(capsys, "traces", "export", trace_id).json_lines()[0]
    return record


@pytest.mark.parametrize("missing", ["leverage", "confidence", "sl_price", "tp_price"])
def test_a_trade_missing_a_field_is_repaired_never_defaulted(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float, missing: str
) -> None:
    complete = buy(last_price)
    incomplete = {key: value for key, value in complete.items() if key != missing}
    # The prose names the missing value, so the repair is grounded in what the model wrote.
    prose = f"My {missing} would be {complete[missing]}.\n"
    model_env.push(reply(prose + json.dumps(incomplete)), reply(json.dumps(complete)))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 0, result.stdout
    assert decision["source"] == "repaired"
    assert decision["leverage"] == 2
    assert decision["confidence"] == 0.7
    assert "response_format" in model_env.requests[1].body
    parse = exported(capsys, decision["trace_id"])["trace"]["parse"]
    assert parse["detail"].endswith(f"needs {missing}")


def test_a_trade_missing_a_field_that_repair_cannot_supply_is_a_hold(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    incomplete = {key: value for key, value in buy(last_price).items() if key != "leverage"}
    model_env.push(reply(json.dumps(incomplete)), reply("I cannot say."))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 3
    assert (decision["action"], decision["error"]) == ("hold", "repair_failed")


def test_an_answer_cut_off_by_the_output_limit_is_never_a_trade_as_it_stands(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    answer = json.dumps(buy(last_price))
    model_env.push(reply(answer, finish_reason="length"), reply(answer, finish_reason="length"))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 3
    assert (decision["action"], decision["error"]) == ("hold", "repair_failed")
    assert len(model_env.requests) == 2  # the cut answer went to repair, whose answer was cut too
    trace = exported(capsys, decision["trace_id"])["trace"]
    assert trace["parse"]["finish_reason"] == "length"
    assert "cut off" in trace["parse"]["detail"]


def test_a_cut_off_answer_that_repair_completes_is_a_repaired_trade(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    answer = json.dumps(buy(last_price))
    model_env.push(reply(answer, finish_reason="length"), reply(answer))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert result.exit_code == 0
    assert (decision["action"], decision["source"]) == ("buy", "repaired")


def test_a_confidence_in_percent_is_read_as_one_and_the_trace_says_so(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(reply(json.dumps(buy(last_price, confidence=75))))
    result, decision = decide(capsys)
    assert result.exit_code == 0
    assert decision["confidence"] == 0.75
    assert exported(capsys, decision["trace_id"])["trace"]["notes"] == [
        "confidence 75 read as a percent: 0.75"
    ]


@pytest.mark.parametrize("confidence", [250, -3, "very"])
def test_a_confidence_on_no_known_scale_goes_to_repair(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float, confidence: object
) -> None:
    model_env.push(reply(json.dumps(buy(last_price, confidence=confidence))), reply("no"))
    result, decision = decide(capsys, *REPAIR_ONLY)
    assert (result.exit_code, decision["error"]) == (3, "repair_failed")


def test_a_target_a_world_away_and_a_hair_stop_are_not_a_trade(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(reply(json.dumps(buy(last_price, tp_price=1e308))))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["error"]) == (3, "hold", "tp_too_far_from_market")
    model_env.push(reply(json.dumps(buy(last_price, sl_price=round(last_price, 2) - 0.001))))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["error"]) == (3, "sl_too_close_to_entry")


def test_an_exported_key_alone_never_calls_a_model(
    capsys: pytest.CaptureFixture[str], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result, decision = decide(capsys)
    assert (result.exit_code, decision["mode"]) == (0, "rules")
    assert fake_openai.requests == []
    assert "an API key alone does not choose one" in result.stderr


def test_max_cost_for_a_model_without_a_price_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    args = ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", "--max-cost", "0.01")
    result = run(capsys, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "--max-cost cannot be enforced: no price is known for test-model" in result.stderr
    assert model_env.requests == []
    priced = run(capsys, *args[:-1], "0.01", "--model", "gpt-4o-mini")
    assert priced.exit_code in (0, 3)  # a known price: the limit holds and the cycle runs


def test_the_trace_header_names_the_model_and_why(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    model_env.push(reply(json.dumps(buy(last_price))))
    shown = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF)
    assert "mode react · model test-model (set in [llm] model)" in shown.stdout + shown.stderr
    model_env.push(reply(json.dumps(buy(last_price))))
    given = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--model", "other")
    assert "model other (given with --model)" in given.stdout + given.stderr


def test_the_rules_header_says_why_no_model(capsys: pytest.CaptureFixture[str]) -> None:
    shown = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF)
    assert "mode rules · model none (no model configured)" in shown.stdout + shown.stderr


def test_a_reasoning_models_thinking_is_kept_in_the_trace_and_never_parsed(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    draft = json.dumps(buy(last_price, leverage=50))  # a draft in the thinking must not be read
    answer = json.dumps(buy(last_price))
    model_env.push(reply(f"<think>First idea: {draft}. Too much leverage.</think>\n{answer}"))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["leverage"]) == (0, "buy", 2)
    [turn] = exported(capsys, decision["trace_id"])["turns"]
    assert turn["content"] == answer
    assert turn["reasoning"] == f"First idea: {draft}. Too much leverage."


@pytest.mark.parametrize(
    ("content", "reasoning_content", "detail"),
    [
        ("", None, "the model's answer was empty"),
        (None, "I should think about RSI... and then I ran out of tokens", "it wrote only its reasoning"),
        ("<think>still thinking when the cap cut it", None, "it wrote only its reasoning"),
    ],
)
def test_an_empty_answer_or_only_reasoning_is_a_hold_with_a_code(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    content: str | None,
    reasoning_content: str | None,
    detail: str,
) -> None:
    model_env.push(reply(content, reasoning_content=reasoning_content))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["error"]) == (3, "hold", "empty_output")
    assert detail in decision["rationale"]
    assert len(model_env.requests) == 1  # no repair of nothing


def test_prose_before_the_last_turn_gets_the_constrained_turn_before_any_repair(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, last_price: float
) -> None:
    """A small model answers its first turn in prose: the schema-constrained last turn is asked at
    once, and its answer is the model's own (native), not a repair by another call."""
    model_env.push(reply("The trend looks up, I would buy."), reply(json.dumps(buy(last_price))))
    result, decision = decide(capsys)
    assert (result.exit_code, decision["action"], decision["source"]) == (0, "buy", "native")
    prose_turn, constrained = (request.body for request in model_env.requests)
    assert "response_format" not in prose_turn
    assert constrained["response_format"]["json_schema"]["strict"] is True
    assert constrained["tool_choice"] == "none"
    assert "last turn" in constrained["messages"][-1]["content"]
