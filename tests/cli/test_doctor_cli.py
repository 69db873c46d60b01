"""``rez doctor`` against the loopback fakes: the real ccxt to a fake Binance, HTTP to fake model servers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from rez_cli.doctor.checks import MODEL_TIMEOUT_S, check_journal, check_python
from tests.support.cli import Result, run
from tests.support.exchange_server import FAST_CCXT, FakeBinance, exchange_config
from tests.support.openai_server import FakeOpenAI, Step, error, hang, reply, tool_calls

SECRET = "sk-test-SECRET-1234"


@pytest.fixture
def binance(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    # The doctor asks for the latest closed candle: the fake's clock must be the real one.
    with FakeBinance(now_ms=int(time.time() * 1000)) as server:
        monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps({**exchange_config(server), **FAST_CCXT}))
        yield server


def capable(body: dict[str, Any]) -> Step:
    """A model that calls the tool it is offered and answers in the schema it is given."""
    if "tools" in body:
        return tool_calls([("echo", {"word": "hello"})])
    if "response_format" in body:
        return reply('{"ok": true}')
    return reply("hello")


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    # Each test pushes the one step its model plays, for every request.
    fake_openai.repeat_last = True
    return fake_openai


@pytest.fixture
def capable_model(model_env: FakeOpenAI) -> FakeOpenAI:
    model_env.push(capable)
    return model_env


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Result, dict[str, dict[str, Any]]]:
    """Run ``rez doctor --json`` and the text report; return the text result and the checks by name."""
    as_json = run(capsys, "doctor", "--json", *args)
    [report] = as_json.json_lines()
    text = run(capsys, "doctor", *args)
    assert text.exit_code == as_json.exit_code
    assert report["ok"] is (as_json.exit_code == 0)
    for output in (as_json, text):
        assert SECRET not in output.stdout + output.stderr
    return text, {check["name"]: check for check in report["checks"]}


def line_of(result: Result, name: str) -> str:
    [line] = [line for line in result.stdout.splitlines() if line[2:].split(" ", 1)[0] == name]
    return line


def test_all_green_against_the_fakes(
    capsys: pytest.CaptureFixture[str], binance: FakeBinance, capable_model: FakeOpenAI
) -> None:
    result, checks = doctor(capsys, "--exchange", "binance", "--symbol", "ETH/USDT")
    assert result.exit_code == 0, result.stdout
    assert list(checks) == [
        "python",
        "packages",
        "config",
        "profile",
        "exchange",
        "model",
        "tools",
        "schema",
        "journal",
    ]
    assert {check["status"] for check in checks.values()} == {"ok"}
    assert "ETH/USDT is listed" in checks["exchange"]["detail"]
    assert binance.klines_requests("1h", "ETHUSDT")
    # The fake serves no GET /v1/models: a 404 still proves the endpoint answers.
    assert "404" in checks["model"]["detail"]
    listings = [request for request in capable_model.requests if request.method == "GET"]
    assert [listing.path for listing in listings] == ["/v1/models"] * 2  # doctor --json, then doctor
    assert listings[0].headers["authorization"] == f"Bearer {SECRET}"
    assert checks["tools"]["facts"]["protocol"] == "native"
    assert checks["tools"]["facts"]["probe"] == "tool_call"
    assert checks["schema"]["facts"]["json_schema"] == "enforced"
    assert line_of(result, "tools").startswith("✓ tools     native tool calls: test-model called")
    assert line_of(result, "exchange").startswith("✓ exchange")
    assert result.stdout.strip().splitlines()[-1] == "ready"


def test_no_model_is_a_warning_and_sim_needs_no_network(capsys: pytest.CaptureFixture[str]) -> None:
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    assert checks["exchange"]["status"] == "ok"
    assert "offline simulator" in checks["exchange"]["detail"]
    assert checks["model"]["status"] == "warn"
    assert line_of(result, "model").startswith("! model     no model configured: rez runs the rules mode  → ")
    assert result.stdout.strip().splitlines()[-1] == "ready (1 warning)"


def test_exchange_down_fails_with_the_fix(capsys: pytest.CaptureFixture[str], binance: FakeBinance) -> None:
    binance.fail(500, times=None, path=None)
    result, checks = doctor(capsys, "--exchange", "binance")
    assert result.exit_code == 2
    assert checks["exchange"]["status"] == "fail"
    assert "unavailable" in checks["exchange"]["detail"]
    assert "--exchange sim" in checks["exchange"]["fix"]
    assert line_of(result, "exchange").startswith("✗ exchange")
    assert result.stdout.strip().splitlines()[-1] == "1 check failed"


def test_unlisted_symbol_fails_with_close_matches(
    capsys: pytest.CaptureFixture[str], binance: FakeBinance
) -> None:
    result, checks = doctor(capsys, "--exchange", "binance", "--symbol", "BTC/USDX")
    assert result.exit_code == 2
    assert checks["exchange"]["status"] == "fail"
    assert "does not list 'BTC/USDX'" in checks["exchange"]["detail"]
    assert "BTC/USDT" in checks["exchange"]["fix"]


def test_refused_connection_to_the_model_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 2
    assert checks["model"]["status"] == "fail"
    assert checks["model"]["detail"].startswith(f"cannot reach 127.0.0.1:{port}")
    assert "base_url" in checks["model"]["fix"]


def test_a_model_without_a_key_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__MODEL", "gpt-4o-mini")
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 2
    assert checks["model"] == {
        "name": "model",
        "status": "fail",
        "detail": "model gpt-4o-mini is configured but there is no API key",
        "fix": "set OPENAI_API_KEY or [llm] api_key, or point [llm] base_url at a local endpoint",
    }


@pytest.fixture
def models_server(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    return httpserver


def test_a_refused_key_fails(capsys: pytest.CaptureFixture[str], models_server: HTTPServer) -> None:
    # The body echoes the key, as some servers do: the doctor must not pass it on.
    models_server.expect_request("/v1/models").respond_with_json(
        {"error": {"message": f"Incorrect API key provided: {SECRET}"}}, status=401
    )
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 2
    assert checks["model"]["status"] == "fail"
    assert "refused the API key (401)" in checks["model"]["detail"]


def test_a_model_list_is_checked_for_the_configured_model(
    capsys: pytest.CaptureFixture[str], models_server: HTTPServer
) -> None:
    listing = {"object": "list", "data": [{"id": "test-model", "object": "model"}]}
    models_server.expect_request(
        "/v1/models", headers={"Authorization": f"Bearer {SECRET}"}
    ).respond_with_json(listing)
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    assert checks["model"]["status"] == "ok"
    assert "test-model is listed" in checks["model"]["detail"]


def test_a_model_missing_from_the_list_is_a_warning(
    capsys: pytest.CaptureFixture[str], models_server: HTTPServer
) -> None:
    listing = {"object": "list", "data": [{"id": "other-model", "object": "model"}]}
    models_server.expect_request("/v1/models").respond_with_json(listing)
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    assert checks["model"]["status"] == "warn"
    assert "other-model" in checks["model"]["fix"]


def test_an_invalid_config_fails_and_skips_what_depends_on_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[market]\ncandles = 10\n")
    result, checks = doctor(capsys, "--config", str(config))
    assert result.exit_code == 2
    assert checks["config"]["status"] == "fail"
    assert "market.candles" in checks["config"]["detail"]
    assert [checks[name]["status"] for name in ("profile", "exchange", "model", "journal")] == ["warn"] * 4


def test_an_unknown_profile_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__RISK__PROFILE", "reckless")
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 2
    assert checks["profile"]["status"] == "fail"
    assert "reckless" in checks["profile"]["detail"]


def test_journal_check_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "journal.sqlite"
    check = check_journal(path)
    assert check.status == "ok"
    assert not (tmp_path / "deep").exists()


def test_journal_in_an_unusable_place_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result, checks = doctor(capsys, "--exchange", "sim", "--journal", str(blocker / "journal.sqlite"))
    assert result.exit_code == 2
    assert checks["journal"]["status"] == "fail"
    assert str(blocker) in checks["journal"]["detail"]
    assert "--journal" in checks["journal"]["fix"]
    assert check_journal(tmp_path).status == "fail"


def test_an_old_python_fails() -> None:
    check = check_python((3, 10, 12))
    assert check.status == "fail"
    assert check.detail == "3.10.12: rez needs 3.11 or newer"


def test_an_exported_key_alone_chooses_no_model_and_doctor_says_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many users export OPENAI_API_KEY for other tools: Rez must not start paying a model for it."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result, checks = doctor(capsys, "--exchange", "sim")
    assert checks["model"]["status"] == "warn"
    assert checks["model"]["detail"] == (
        "no model configured (an API key alone does not choose one: set [llm] model or --model): "
        "rez runs the rules mode"
    )
    assert SECRET not in result.stdout + result.stderr


# --- what the endpoint accepts: one request with a tool, one with a strict json_schema ------------------


def probes_of(fake: FakeOpenAI) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tool probe and the json_schema probe the doctor sent (of its last run)."""
    bodies = fake.bodies
    [tool] = [body for body in bodies[-2:] if "tools" in body]
    [schema] = [body for body in bodies[-2:] if "response_format" in body]
    return tool, schema


def test_the_probes_are_tiny_and_capped(
    capsys: pytest.CaptureFixture[str], capable_model: FakeOpenAI
) -> None:
    result = run(capsys, "doctor", "--exchange", "sim", "--json")
    assert result.exit_code == 0
    tool, schema = probes_of(capable_model)
    for body in (tool, schema):
        assert body["model"] == "test-model"
        assert 0 < body["max_tokens"] <= 32
        assert body["temperature"] == 0
    assert [offered["function"]["name"] for offered in tool["tools"]] == ["echo"]
    assert "tool_choice" not in tool
    assert schema["response_format"]["type"] == "json_schema"
    assert schema["response_format"]["json_schema"]["strict"] is True
    assert list(schema["response_format"]["json_schema"]["schema"]["properties"]) == ["ok"]
    assert len(capable_model.bodies) == 2


def test_tools_refused_means_the_text_protocol(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    def no_tools(body: dict[str, Any]) -> Step:
        if "tools" in body:
            return error(400, f"tools are not supported for this model (key {SECRET})")
        return capable(body)

    model_env.push(no_tools)
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    tools = checks["tools"]
    assert tools["status"] == "warn"
    port = model_env.url.rsplit(":", 1)[1]
    assert tools["detail"].startswith(
        f"127.0.0.1:{port} refused the tools (400: tools are not supported for this model (key ***)): "
        "Rez uses the text protocol (the tool described in the prompt, CALL fetch_indicator {json} lines)"
    )
    assert tools["facts"] == {
        "tool_protocol": "auto",
        "protocol": "text",
        "probe": "tools_refused",
        "status": 400,
        "reports_tools": None,
        "remembered": None,
    }
    assert checks["schema"]["status"] == "ok"
    assert line_of(result, "tools").startswith("! tools ")
    assert "→ for native tool calls" in line_of(result, "tools")
    assert result.stdout.strip().splitlines()[-1] == "ready (1 warning)"


def test_a_refusal_that_does_not_name_the_tools_is_no_switch(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    """auto switches only on a refusal of the tools: any other 400 would end every cycle in a hold."""

    def picky(body: dict[str, Any]) -> Step:
        return error(400, "Invalid request.") if "tools" in body else capable(body)

    model_env.push(picky)
    _, checks = doctor(capsys, "--exchange", "sim")
    tools = checks["tools"]
    assert tools["status"] == "warn"
    assert "refused a request with a tool (400: Invalid request.), not naming the tools" in tools["detail"]
    assert "auto would not switch" in tools["detail"]
    assert tools["fix"].startswith('set [llm] tool_protocol = "text"')
    assert tools["facts"]["protocol"] == "native"
    assert tools["facts"]["probe"] == "refused"


def test_a_switch_auto_remembers_is_the_protocol_cycles_start_with(
    capsys: pytest.CaptureFixture[str], capable_model: FakeOpenAI
) -> None:
    from rez_cli.llm.openai_api import endpoint_label
    from rez_cli.llm.protocol_memory import remember

    remember(endpoint_label(capable_model.base_url), "test-model", "tools_refused: 400")
    _, checks = doctor(capsys, "--exchange", "sim")
    tools = checks["tools"]
    assert tools["status"] == "warn"
    assert "auto remembers a switch to the text protocol" in tools["detail"]
    assert "tool_protocol.json" in tools["fix"]
    assert tools["facts"]["protocol"] == "text"
    assert tools["facts"]["remembered"] == "text"


def test_a_model_that_answers_tools_in_prose_gets_the_text_protocol(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    def prose(body: dict[str, Any]) -> Step:
        return reply("Hello! How can I help?") if "tools" in body else capable(body)

    model_env.push(prose)
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    assert checks["tools"]["status"] == "warn"
    assert "answered in prose, and nothing reports tool support" in checks["tools"]["detail"]
    assert checks["tools"]["facts"]["protocol"] == "text"
    assert checks["tools"]["facts"]["probe"] == "prose"


def test_json_schema_refused_says_to_fall_back_to_json_object(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    def no_schema(body: dict[str, Any]) -> Step:
        if body.get("response_format", {}).get("type") == "json_schema":
            return error(400, "This response_format type is unavailable now")
        if "response_format" in body:
            return reply('{"ok": true}')
        return capable(body)

    model_env.push(no_schema)
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    schema = checks["schema"]
    assert schema["status"] == "warn"
    assert "refused json_schema" in schema["detail"]
    assert "it accepts json_object" in schema["detail"]
    assert schema["fix"] == "set [llm] supports_json_schema = false: Rez then asks for json_object instead"
    assert schema["facts"]["json_schema"] == "refused"
    assert schema["facts"]["json_object"] == "enforced"
    assert checks["tools"]["facts"]["protocol"] == "native"
    # The follow-up asked for json_object in a message that says JSON, as OpenAI requires.
    fallbacks = [body for body in model_env.bodies if body.get("response_format") == {"type": "json_object"}]
    assert len(fallbacks) == 2  # doctor --json, then doctor
    assert "JSON" in fallbacks[0]["messages"][-1]["content"]


def test_with_supports_json_schema_off_json_object_is_probed(
    capsys: pytest.CaptureFixture[str], capable_model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__SUPPORTS_JSON_SCHEMA", "false")
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    assert checks["schema"]["status"] == "ok"
    assert checks["schema"]["detail"].startswith(
        "supports_json_schema = false: the last turn asks for json_object"
    )
    assert all(body.get("response_format", {}).get("type") != "json_schema" for body in capable_model.bodies)


def test_an_endpoint_that_refuses_everything_alike_is_no_verdict_on_tools(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    model_env.push(error(404, "The model `test-model` does not exist."))
    result, checks = doctor(capsys, "--exchange", "sim")
    assert result.exit_code == 0
    for name in ("tools", "schema"):
        assert checks[name]["status"] == "warn"
        assert checks[name]["detail"].startswith("could not tell")
        assert "refused alike" in checks[name]["detail"]
    assert checks["tools"]["facts"]["protocol"] is None


def test_a_hanging_endpoint_is_a_warning_within_a_few_seconds(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI
) -> None:
    model_env.push(hang())
    started = time.monotonic()
    result = run(capsys, "doctor", "--exchange", "sim", "--json")
    elapsed = time.monotonic() - started
    assert elapsed < MODEL_TIMEOUT_S + 3, elapsed
    [report] = result.json_lines()
    assert result.exit_code == 0
    checks = {check["name"]: check for check in report["checks"]}
    for name in ("tools", "schema"):
        assert checks[name]["status"] == "warn"
        assert f"within {MODEL_TIMEOUT_S:g} s" in checks[name]["detail"]
        assert checks[name]["fix"].startswith("run rez doctor again")
    assert "switches to the text protocol if the endpoint refuses them" in checks["tools"]["detail"]
    assert checks["tools"]["facts"]["probe"] == "no_answer"


def test_the_endpoints_own_report_on_tools_settles_a_prose_answer(
    capsys: pytest.CaptureFixture[str], models_server: HTTPServer
) -> None:
    """OpenRouter lists supported_parameters; llama.cpp's /props says what the chat template can do."""
    listing = {"data": [{"id": "test-model", "supported_parameters": ["tools", "response_format"]}]}
    models_server.expect_request("/v1/models").respond_with_json(listing)
    models_server.expect_request("/v1/chat/completions").respond_with_handler(_prose_server)
    _, checks = doctor(capsys, "--exchange", "sim")
    assert checks["tools"]["status"] == "ok"
    assert checks["tools"]["facts"]["protocol"] == "native"
    assert "supported_parameters" in checks["tools"]["detail"]

    models_server.clear()
    models_server.expect_request("/v1/models").respond_with_json({"data": [{"id": "test-model"}]})
    models_server.expect_request("/props").respond_with_json(
        {"chat_template_caps": {"supports_tools": False}}
    )
    models_server.expect_request("/v1/chat/completions").respond_with_handler(_prose_server)
    _, checks = doctor(capsys, "--exchange", "sim")
    assert checks["tools"]["status"] == "warn"
    assert checks["tools"]["facts"]["protocol"] == "text"
    assert checks["tools"]["facts"]["reports_tools"] is False
    assert "llama.cpp's /props" in checks["tools"]["detail"]


def _prose_server(request: Any) -> Any:
    from werkzeug import Response

    body = json.loads(request.data)
    content = '{"ok": true}' if "response_format" in body else "Hello there."
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
    return Response(json.dumps(completion), content_type="application/json")


def test_tool_protocol_text_sends_no_tool_probe(
    capsys: pytest.CaptureFixture[str], capable_model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__TOOL_PROTOCOL", "text")
    _, checks = doctor(capsys, "--exchange", "sim")
    assert checks["tools"]["status"] == "ok"
    assert checks["tools"]["facts"]["protocol"] == "text"
    assert all("tools" not in body for body in capable_model.bodies)
