"""Webhook notifications: what a channel receives on a loopback server, and what a failing webhook
costs (one line, no URL, no exception)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from rez_cli import redact
from rez_cli.decision.model import Decision, Usage
from rez_cli.notify import MAX_MESSAGE_CHARS, ClosedTrade, Event, deliver, events_for, payload

TOKEN = "T0KEN-abcdefghijklmnopqrstuvwxyz-0123456789"
HOOK_PATH = f"/api/webhooks/123456789012345678/{TOKEN}"
T0 = 1_625_097_600_000  # 2021-07-01T00:00:00Z


def decision(**fields: Any) -> Decision:
    values: dict[str, Any] = {
        "symbol": "BTC/USDT",
        "action": "buy",
        "entry_price": 35_000.0,
        "tp_price": 36_500.0,
        "sl_price": 34_400.0,
        "leverage": 2.0,
        "size_pct": 12.5,
        "confidence": 0.7,
        "rationale": "higher lows on 1h, RSI 58",
        "invalidation": "close_1h < 34400",
        "mode": "react",
        "source": "native",
        "error": None,
        "usage": Usage(),
        "trace_id": "abc123",
        "timestamp": T0,
        "as_of": T0 - 1,
        "last_price": 35_010.0,
        "exchange": "sim",
    }
    values.update(fields)
    return Decision(**values)


def forced_hold(**fields: Any) -> Decision:
    hold: dict[str, Any] = {
        "action": "hold",
        "entry_price": None,
        "tp_price": None,
        "sl_price": None,
        "leverage": 1.0,
        "size_pct": 0.0,
        "confidence": 0.0,
        "rationale": "the model did not answer in time",
        "invalidation": None,
        "source": "fallback",
        "error": "model_timeout",
    }
    return decision(**{**hold, **fields})


STOPPED = ClosedTrade(
    symbol="BTC/USDT",
    side="long",
    entry_price=35_000.0,
    exit_price=34_400.0,
    reason="stop",
    pnl=-12.34,
    r_multiple=-1.0,
    opened_ms=T0,
    closed_ms=T0 + 3 * 3_600_000,
)


@pytest.fixture
def hook(httpserver: HTTPServer) -> str:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    return httpserver.url_for(HOOK_PATH)


def received(httpserver: HTTPServer) -> list[dict[str, Any]]:
    return [request.get_json() for request, _ in httpserver.log]


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}{HOOK_PATH}"


def refusing_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{HOOK_PATH}"


def control_characters(text: str) -> list[str]:
    return [char for char in text if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}]


def all_text(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_text(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_text(item)


# --- what is sent ----------------------------------------------------------------------------------------


def test_a_buy_posts_an_open_event_with_its_levels_and_one_line(httpserver: HTTPServer, hook: str) -> None:
    assert deliver(hook, events_for(decision()), timeout_s=5) == []
    [body] = received(httpserver)
    assert body["kind"] == "open"
    assert body["symbol"] == "BTC/USDT"
    assert body["time"] == "2021-07-01T00:00:00Z"
    line = (
        "BTC/USDT: opened long (buy) at 35,000.00, TP 36,500.00, SL 34,400.00, 2x, size 12.5%, "
        "confidence 70%. Why: higher lows on 1h, RSI 58"
    )
    assert body["summary"] == line
    assert body["content"] == body["text"] == line
    assert body["allowed_mentions"] == {"parse": []}
    fields = body["decision"]
    assert (fields["action"], fields["entry_price"], fields["tp_price"], fields["sl_price"]) == (
        "buy",
        35_000.0,
        36_500.0,
        34_400.0,
    )
    assert fields["invalidation"] == "close_1h < 34400"
    assert fields["time"] == "2021-07-01T00:00:00Z"
    assert body["close"] is None


def test_a_forced_hold_posts_its_error_code(httpserver: HTTPServer, hook: str) -> None:
    assert deliver(hook, events_for(forced_hold()), timeout_s=5) == []
    [body] = received(httpserver)
    assert body["kind"] == "hold"
    assert (
        body["text"] == "BTC/USDT: hold forced by a failure (model_timeout). the model did not answer in time"
    )
    # Discord reads _x_ as italics: the code's underscores are escaped, and shown as written.
    assert (
        body["content"]
        == r"BTC/USDT: hold forced by a failure (model\_timeout). the model did not answer in time"
    )
    assert body["decision"]["error"] == "model_timeout"


def test_a_hold_the_model_chose_sends_nothing(httpserver: HTTPServer, hook: str) -> None:
    chosen = forced_hold(error=None, source="native", rationale="mixed signals")
    assert events_for(chosen) == []
    assert deliver(hook, events_for(chosen), timeout_s=5) == []
    assert received(httpserver) == []


def test_closes_come_first_with_reason_pnl_and_r(httpserver: HTTPServer, hook: str) -> None:
    events = events_for(forced_hold(), [STOPPED])
    assert [event.kind for event in events] == ["close", "hold"]
    assert deliver(hook, events, timeout_s=5) == []
    close, hold = received(httpserver)
    assert close["kind"] == "close"
    assert close["time"] == "2021-07-01T03:00:00Z"
    line = "BTC/USDT: closed long at 34,400.00 (stop), opened at 35,000.00: P&L -12.34, -1.00R"
    assert close["summary"] == close["content"] == line
    assert close["text"] == line.replace("&", "&amp;")  # Slack shows &amp; as &
    assert close["close"] == {
        "side": "long",
        "entry_price": 35_000.0,
        "exit_price": 34_400.0,
        "reason": "stop",
        "pnl": -12.34,
        "r_multiple": -1.0,
        "opened": "2021-07-01T00:00:00Z",
        "closed": "2021-07-01T03:00:00Z",
    }
    assert hold["kind"] == "hold"


def test_numbers_from_outside_that_are_not_finite_are_null_and_n_a() -> None:
    absurd = ClosedTrade("BTC/USDT", "short", math.nan, 1e308, "liquidation", math.inf, None, T0, T0)
    body = payload(events_for(forced_hold(), [absurd])[0])
    assert body["close"]["entry_price"] is None
    assert body["close"]["pnl"] is None
    assert body["summary"] == "BTC/USDT: closed short at 1e+308 (liquidation), opened at n/a: P&L n/a"
    json.dumps(body, allow_nan=False)


def test_markup_and_mentions_in_a_rationale_stay_text_in_discord_and_slack() -> None:
    body = payload(
        events_for(decision(rationale="@everyone *pump* [here](https://x.example) <!channel> & go"))[0]
    )
    assert body["summary"].endswith("Why: @everyone *pump* [here](https://x.example) <!channel> & go")
    assert body["content"].endswith(r"Why: @everyone \*pump\* \[here\](https://x.example) <!channel> & go")
    assert body["text"].endswith("Why: @everyone *pump* [here](https://x.example) &lt;!channel&gt; &amp; go")
    assert body["allowed_mentions"] == {"parse": []}


def test_a_configured_secret_the_model_echoes_is_struck_from_the_body() -> None:
    key = "sk-live-SECRET_with_underscores-42"
    redact.register([key])
    body = payload(events_for(decision(rationale=f"my key is {key}"))[0])
    assert not any(key in text or "SECRET" in text for text in all_text(body))
    assert body["summary"].endswith("Why: my key is ***")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rationale=st.text(max_size=6000),
    invalidation=st.one_of(st.none(), st.text(max_size=3000)),
    error=st.text(min_size=1, max_size=300),
    symbol=st.text(min_size=1, max_size=50),
)
def test_any_text_from_a_model_makes_a_clean_capped_body(
    rationale: str, invalidation: str | None, error: str, symbol: str
) -> None:
    for event in [
        *events_for(decision(symbol=symbol, rationale=rationale, invalidation=invalidation)),
        *events_for(forced_hold(symbol=symbol, rationale=rationale, error=error)),
    ]:
        body = payload(event)
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode()  # sendable as UTF-8 JSON
        assert len(body["content"]) <= MAX_MESSAGE_CHARS
        assert len(body["text"]) <= MAX_MESSAGE_CHARS
        for text in all_text(body):
            assert control_characters(text) == [], text


# --- what a failing webhook costs -----------------------------------------------------------------------


def assert_one_line_without_the_url(problem: str) -> None:
    assert "\n" not in problem
    assert TOKEN not in problem
    assert "/api/webhooks/123" not in problem
    assert "123456789012345678" not in problem


def test_a_server_error_is_one_line_naming_only_the_host(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("oops", status=500)
    with caplog.at_level(logging.INFO, logger="rez_cli.notify"):
        problems = deliver(httpserver.url_for(HOOK_PATH), events_for(decision()), timeout_s=5)
    assert problems == [
        "notify: the webhook (host localhost) answered HTTP 500 (the open event for BTC/USDT)"
    ]
    assert [record.getMessage() for record in caplog.records if record.name == "rez_cli.notify"] == problems
    assert_one_line_without_the_url(problems[0])


def test_an_error_answer_does_not_stop_the_next_event(httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=429)
    problems = deliver(httpserver.url_for(HOOK_PATH), events_for(forced_hold(), [STOPPED]), timeout_s=5)
    assert [problem.split(" (the ")[-1] for problem in problems] == [
        "close event for BTC/USDT)",
        "hold event for BTC/USDT)",
    ]
    assert len(httpserver.log) == 2


def test_a_redirect_is_not_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data(
        "", status=301, headers={"Location": "http://127.0.0.1:9/elsewhere"}
    )
    [problem] = deliver(httpserver.url_for(HOOK_PATH), events_for(decision()), timeout_s=5)
    assert "answered HTTP 301" in problem


def test_a_refused_connection_is_one_line_and_the_rest_is_not_tried() -> None:
    problems = deliver(refusing_url(), events_for(forced_hold(), [STOPPED]), timeout_s=5)
    assert problems == [
        "notify: the webhook (host 127.0.0.1) could not be reached (connection refused) "
        "(the close event for BTC/USDT); 1 more event not sent"
    ]
    assert_one_line_without_the_url(problems[0])


def test_a_webhook_that_never_answers_costs_one_timeout() -> None:
    with silent_server() as url:
        started = time.monotonic()
        problems = deliver(url, events_for(forced_hold(), [STOPPED, STOPPED]), timeout_s=0.3)
        elapsed = time.monotonic() - started
    assert problems == [
        "notify: the webhook (host 127.0.0.1) did not answer within 0.3 s (the close event for BTC/USDT); "
        "2 more events not sent"
    ]
    assert elapsed < 2


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://example.org{HOOK_PATH}",
        f"file://{HOOK_PATH}",
        HOOK_PATH,
        f"http://[::1{HOOK_PATH}",
        f"https://example.org:port{HOOK_PATH}",
    ],
)
def test_a_url_that_is_not_http_is_refused_without_being_repeated(url: str) -> None:
    [problem] = deliver(url, events_for(decision()), timeout_s=5)
    assert "is not an http:// or https:// URL; 1 event not sent" in problem
    assert_one_line_without_the_url(problem)


def test_no_event_sends_nothing() -> None:
    assert deliver(refusing_url(), [], timeout_s=5) == []


def test_an_event_is_typed_and_frozen() -> None:
    [event] = events_for(decision())
    assert isinstance(event, Event)
    with pytest.raises(AttributeError):
        event.kind = "close"  # type: ignore[misc]  # frozen: the test checks it refuses
