"""``OpenAIChat``: the real openai SDK over real HTTP against the scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rez_cli.llm.client import (
    ChatResponse,
    LLMAuthFailed,
    LLMBadResponse,
    LLMError,
    LLMNotConfigured,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
    TokenUsage,
    ToolCall,
)
from rez_cli.llm.openai_api import OpenAIChat, endpoint_label
from tests.support.openai_server import (
    FakeOpenAI,
    Step,
    delay,
    error,
    hang,
    raw,
    reply,
    tool_calls,
)

KEY = "sk-test-SECRET-1234"
MODEL = "fake-model"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "BTC/USDT: buy, sell or hold?"}]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "fetch_indicator",
            "description": "Recent values of one indicator.",
            "parameters": {"type": "object", "properties": {"indicator": {"type": "string"}}},
        },
    }
]
JSON_OBJECT: dict[str, Any] = {"type": "json_object"}


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own key or endpoint must never leak into (or out of) these tests.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens: the port was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def ask(
    base_url: str | None,
    *,
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
    max_retries: int = 0,
    **chat: Any,
) -> ChatResponse:
    """One ``chat`` call on a fresh client, closed afterwards (the warnings filter demands it)."""

    async def call() -> ChatResponse:
        llm = OpenAIChat(api_key=api_key, base_url=base_url, timeout_s=timeout_s, max_retries=max_retries)
        try:
            return await llm.chat(model=MODEL, messages=MESSAGES, **chat)
        finally:
            await llm.close()

    return asyncio.run(call())


def fails(base_url: str | None, **options: Any) -> LLMError:
    with pytest.raises(LLMError) as caught:
        ask(base_url, **options)
    return caught.value


# --- answers ---------------------------------------------------------------------------------


def test_plain_reply_maps_content_model_finish_reason_and_usage() -> None:
    with FakeOpenAI.start([reply("hold: no edge", model="gpt-x", usage=(123, 45))]) as fake:
        response = ask(fake.base_url)

    assert response == ChatResponse(
        content="hold: no edge",
        tool_calls=[],
        usage=TokenUsage(prompt_tokens=123, completion_tokens=45),
        model="gpt-x",
        finish_reason="stop",
    )
    assert fake.bodies == [{"model": MODEL, "messages": MESSAGES}]


def test_two_parallel_tool_calls_are_parsed_in_order() -> None:
    calls = [
        ("fetch_indicator", {"indicator": "rsi", "timeframe": "1h", "params": {"length": 14}}),
        ("fetch_indicator", {"indicator": "ema", "timeframe": "4h"}),
    ]
    with FakeOpenAI.start([tool_calls(calls)]) as fake:
        response = ask(fake.base_url, tools=TOOLS)

    assert response.content is None
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        ToolCall(
            "call_1_0",
            "fetch_indicator",
            '{"indicator": "rsi", "timeframe": "1h", "params": {"length": 14}}',
        ),
        ToolCall("call_1_1", "fetch_indicator", '{"indicator": "ema", "timeframe": "4h"}'),
    ]
    assert response.as_message()["tool_calls"][1]["function"]["name"] == "fetch_indicator"


def test_broken_tool_arguments_are_passed_through_as_text() -> None:
    """The loop, not the adapter, tells the model its arguments were not JSON."""
    with FakeOpenAI.start([tool_calls([("fetch_indicator", '{"indicator": "rsi",')])]) as fake:
        response = ask(fake.base_url, tools=TOOLS)

    assert response.tool_calls[0].arguments == '{"indicator": "rsi",'


def test_usage_is_zero_when_the_server_omits_it() -> None:
    with FakeOpenAI.start([reply("ok", usage=None)]) as fake:
        response = ask(fake.base_url)

    assert response.usage == TokenUsage(prompt_tokens=0, completion_tokens=0)


# --- what is sent ----------------------------------------------------------------------------


def test_authorization_header_carries_the_key() -> None:
    with FakeOpenAI.start([reply("ok")]) as fake:
        ask(fake.base_url)

    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert fake.requests[0].path == "/v1/chat/completions"


def test_key_comes_from_openai_api_key_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with FakeOpenAI.start([reply("ok")]) as fake:
        ask(fake.base_url, api_key=None)

    assert fake.requests[0].headers["authorization"] == "Bearer sk-from-env"


def test_base_url_comes_from_openai_base_url_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI.start([reply("from env")]) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        response = ask(None)

    assert response.content == "from env"


def test_local_endpoint_without_a_key_gets_a_placeholder_key() -> None:
    with FakeOpenAI.start([reply("ok")]) as fake:
        response = ask(fake.base_url, api_key=None)

    assert response.content == "ok"
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


def test_optional_fields_are_absent_unless_given() -> None:
    with FakeOpenAI.start([reply("a"), reply("b"), reply("c")]) as fake:
        ask(fake.base_url)
        ask(fake.base_url, parallel_tool_calls=True, tools=None)
        ask(fake.base_url, parallel_tool_calls=True, tools=[])

    for body in fake.bodies:
        assert set(body) == {"model", "messages"}


def test_tools_parallel_tool_calls_and_response_format_are_sent_when_given() -> None:
    with FakeOpenAI.start([reply("a"), reply("b")]) as fake:
        ask(fake.base_url, tools=TOOLS, parallel_tool_calls=False, response_format=JSON_OBJECT)
        ask(fake.base_url, tools=TOOLS)

    first, second = fake.bodies
    assert first["tools"] == TOOLS
    assert first["parallel_tool_calls"] is False
    assert first["response_format"] == JSON_OBJECT
    assert "tool_choice" not in first
    assert set(second) == {"model", "messages", "tools"}


# --- failures --------------------------------------------------------------------------------


def test_rate_limit_then_success_is_retried_by_the_sdk() -> None:
    with FakeOpenAI.start([error(429, retry_after=0.01), reply("ok")]) as fake:
        response = ask(fake.base_url, max_retries=2)

    assert response.content == "ok"
    first, second = fake.requests
    assert [first.headers["x-stainless-retry-count"], second.headers["x-stainless-retry-count"]] == ["0", "1"]
    # retry-after-ms: 10 was honoured; the SDK's own first backoff is 0.375-0.5 s.
    assert second.received_at - first.received_at < 0.3


def test_rate_limit_after_all_retries_becomes_rate_limited() -> None:
    with FakeOpenAI.start([error(429, retry_after=0.01)], repeat_last=True) as fake:
        failure = fails(fake.base_url, max_retries=1)

    assert isinstance(failure, LLMRateLimited)
    assert failure.code == "model_rate_limited"
    assert len(fake.requests) == 2
    assert "429" in failure.message
    assert "after 2 attempts" in failure.message
    assert "Rate limit reached" in failure.message


def test_server_error_every_time_becomes_unavailable_after_one_plus_max_retries_requests() -> None:
    with FakeOpenAI.start([error(500, retry_after=0.01)], repeat_last=True) as fake:
        failure = fails(fake.base_url, max_retries=2)

    assert isinstance(failure, LLMUnavailable)
    assert failure.code == "model_unreachable"
    assert len(fake.requests) == 3
    assert "500" in failure.message


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_becomes_auth_failed_without_retry(status: int) -> None:
    with FakeOpenAI.start([error(status)]) as fake:
        failure = fails(fake.base_url, max_retries=2)

    assert isinstance(failure, LLMAuthFailed)
    assert failure.code == "model_auth_failed"
    assert str(status) in failure.message
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_rejected_request_becomes_bad_response_without_retry(status: int) -> None:
    with FakeOpenAI.start([error(status, "model 'fake-model' does not support tools")]) as fake:
        failure = fails(fake.base_url, max_retries=2)

    assert isinstance(failure, LLMBadResponse)
    assert failure.code == "model_bad_response"
    assert failure.message.endswith(f"answered {status}: model 'fake-model' does not support tools")
    assert len(fake.requests) == 1


def test_hanging_server_becomes_timeout_within_two_seconds() -> None:
    async def timed_call(base_url: str) -> tuple[LLMError, float]:
        llm = OpenAIChat(api_key=KEY, base_url=base_url, timeout_s=0.5, max_retries=0)
        started = time.monotonic()
        try:
            with pytest.raises(LLMError) as caught:
                await llm.chat(model=MODEL, messages=MESSAGES)
            return caught.value, time.monotonic() - started
        finally:
            await llm.close()

    with FakeOpenAI.start([hang()]) as fake:
        failure, elapsed = asyncio.run(timed_call(fake.base_url))

    assert isinstance(failure, LLMTimeout)
    assert failure.code == "model_timeout"
    assert failure.message == f"{endpoint_label(fake.base_url)} did not answer within 0.5 s"
    assert 0.4 < elapsed < 2.0
    assert len(fake.requests) == 1


def test_connection_refused_becomes_unavailable(closed_port_url: str) -> None:
    failure = fails(closed_port_url, max_retries=0)

    assert isinstance(failure, LLMUnavailable)
    assert failure.message.startswith(f"cannot reach {endpoint_label(closed_port_url)}")


@pytest.mark.parametrize(
    "answer",
    [
        raw(body={"id": "chatcmpl-1", "object": "chat.completion", "model": MODEL, "choices": []}),
        raw(body={"id": "chatcmpl-1", "object": "chat.completion"}),
        raw(body="<html><body>Bad gateway page</body></html>", content_type="text/html"),
        raw(body='{"choices": [{"message": '),
        raw(body={"choices": [{"index": 0, "message": {"role": "assistant", "content": 42}}]}),
    ],
    ids=["empty-choices", "no-choices", "html", "truncated-json", "content-not-text"],
)
def test_answer_that_is_not_a_usable_completion_becomes_bad_response(answer: Step) -> None:
    with FakeOpenAI.start([answer]) as fake:
        failure = fails(fake.base_url)

    assert isinstance(failure, LLMBadResponse)


def test_no_key_and_no_base_url_is_not_configured() -> None:
    with pytest.raises(LLMNotConfigured, match=r"set OPENAI_API_KEY or \[llm\] api_key") as caught:
        OpenAIChat(api_key=None, base_url=None, timeout_s=5.0, max_retries=0)

    assert caught.value.code == "model_not_configured"


@pytest.mark.parametrize("base_url", ["localhost:11434/v1", "ftp://models.example/v1"])
def test_base_url_without_http_scheme_is_not_configured(base_url: str) -> None:
    with pytest.raises(LLMNotConfigured, match="must start with http:// or https://"):
        OpenAIChat(api_key=None, base_url=base_url, timeout_s=5.0, max_retries=0)


@pytest.mark.parametrize(("timeout_s", "max_retries"), [(0.0, 0), (float("nan"), 0), (5.0, -1)])
def test_bad_limits_are_rejected_with_the_value(timeout_s: float, max_retries: int) -> None:
    with pytest.raises(ValueError, match="got "):
        OpenAIChat(api_key=KEY, base_url=None, timeout_s=timeout_s, max_retries=max_retries)


def test_server_message_is_cut_to_one_short_line() -> None:
    long_message = "first line\nsecond line " + "x" * 1000
    with FakeOpenAI.start([error(400, long_message)]) as fake:
        failure = fails(fake.base_url)

    assert "\n" not in failure.message
    assert "first line second line xxx" in failure.message
    assert len(failure.message) < 300


@pytest.mark.parametrize(
    "answer",
    [
        error(401, f"Incorrect API key provided: {KEY}."),
        error(400, f"bad request from key {KEY}"),
        error(500, f"upstream refused {KEY}", retry_after=0.01),
        error(429, f"slow down, {KEY}", retry_after=0.01),
        raw(body=f"<html>key={KEY}</html>", content_type="text/html"),
        raw(status=502, body=f"<html>key={KEY}</html>", content_type="text/html"),
        hang(),
    ],
    ids=["401", "400", "500", "429", "html", "502-html", "timeout"],
)
def test_api_key_never_appears_in_messages_or_reprs(answer: Step) -> None:
    with FakeOpenAI.start([answer], repeat_last=True) as fake:
        failure = fails(fake.base_url, timeout_s=0.5, max_retries=1)
        llm = OpenAIChat(api_key=KEY, base_url=fake.base_url, timeout_s=1.0, max_retries=0)
        asyncio.run(llm.close())

    for text in (failure.message, str(failure), repr(failure), repr(llm), llm.endpoint):
        assert KEY not in text
    assert "SECRET" not in failure.message


def test_a_short_local_key_is_not_a_secret_and_leaves_the_message_whole() -> None:
    # A local server's "k" is under redact.MIN_SECRET_CHARS: striking it would mangle every word.
    with FakeOpenAI.start([error(400, "key k is unknown; token=k")]) as fake:
        failure = fails(fake.base_url, api_key="k")

    assert failure.message.endswith("answered 400: key k is unknown; token=k")


def test_api_key_never_appears_when_the_endpoint_is_unreachable(closed_port_url: str) -> None:
    failure = fails(closed_port_url)

    assert KEY not in failure.message
    assert KEY not in repr(failure)


# --- endpoint_label and imports --------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "label"),
    [
        ("https://user:p4ss@api.openai.com/v1?api-key=sk-abc#x", "api.openai.com"),
        ("http://127.0.0.1:11434/v1", "127.0.0.1:11434"),
        ("localhost:8080/v1", "localhost:8080"),
        ("http://[::1]:8000/v1", "[::1]:8000"),
        ("http://host:notaport/v1", "host"),
        ("", "api.openai.com"),
        (None, "api.openai.com"),
    ],
)
def test_endpoint_label_shows_host_and_port_only(base_url: str | None, label: str) -> None:
    assert endpoint_label(base_url) == label


def test_endpoint_label_follows_openai_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:8000/v1")

    assert endpoint_label(None) == "gpu-box:8000"


def test_importing_the_adapter_does_not_import_openai() -> None:
    code = "import sys, rez_cli.llm.openai_api; sys.exit('openai' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the fake server itself ------------------------------------------------------------------


def test_fake_answers_concurrent_delayed_requests_in_parallel() -> None:
    async def two_at_once(base_url: str) -> tuple[list[ChatResponse], float]:
        llm = OpenAIChat(api_key=KEY, base_url=base_url, timeout_s=5.0, max_retries=0)
        started = time.monotonic()
        try:
            responses = await asyncio.gather(
                llm.chat(model=MODEL, messages=MESSAGES), llm.chat(model=MODEL, messages=MESSAGES)
            )
            return list(responses), time.monotonic() - started
        finally:
            await llm.close()

    with FakeOpenAI.start([delay(0.5, then=reply("one")), delay(0.5, then=reply("two"))]) as fake:
        responses, elapsed = asyncio.run(two_at_once(fake.base_url))

    assert sorted(response.content or "" for response in responses) == ["one", "two"]
    assert elapsed < 0.95


def test_fake_callable_step_answers_from_the_request() -> None:
    def by_request(body: dict[str, Any]) -> Step:
        return reply('{"action": "hold"}') if "response_format" in body else reply("prose")

    with FakeOpenAI.start([by_request], repeat_last=True) as fake:
        assert ask(fake.base_url).content == "prose"
        assert ask(fake.base_url, response_format=JSON_OBJECT).content == '{"action": "hold"}'


def test_fake_exhausted_script_fails_fast_and_says_so() -> None:
    with FakeOpenAI.start([reply("only one")]) as fake:
        ask(fake.base_url, max_retries=2)
        failure = fails(fake.base_url, max_retries=2)

    assert "script exhausted at request 2" in failure.message
    assert len(fake.requests) == 2


def test_fake_stop_releases_a_hanging_request_at_once() -> None:
    outcome: list[BaseException | ChatResponse] = []
    fake = FakeOpenAI([hang()])
    fake.serve()

    def client() -> None:
        try:
            outcome.append(ask(fake.base_url, timeout_s=20.0))
        except LLMError as failure:
            outcome.append(failure)

    worker = threading.Thread(target=client)
    worker.start()
    while not fake.requests:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    worker.join(timeout=5)

    assert time.monotonic() - started < 2.0
    assert isinstance(outcome[0], LLMUnavailable)


@pytest.fixture
def scripted() -> Iterator[FakeOpenAI]:
    with FakeOpenAI.start() as fake:
        yield fake


def test_fake_script_can_be_pushed_after_start(scripted: FakeOpenAI) -> None:
    scripted.push(reply("late"))

    assert ask(scripted.base_url).content == "late"
    assert scripted.remaining == 0
