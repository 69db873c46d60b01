"""``rez decide --notify URL`` / ``[notify] webhook``: the channel gets the message, and a failing
webhook changes neither the decision JSON nor the exit code, with one warning line that never shows
the URL's token."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.support.cli import Result, run

AS_OF = "2021-07-01T00:00"  # the rules mode sells BTC/USDT on the sim market then
TOKEN = "T0KEN-abcdefghijklmnopqrstuvwxyz-0123456789"
HOOK_PATH = f"/api/webhooks/123456789012345678/{TOKEN}"
DECIDE = ("decide", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--as-of", AS_OF, "--json")


def refusing_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{HOOK_PATH}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}{HOOK_PATH}"


def comparable(result: Result) -> list[dict[str, Any]]:
    """The decisions without what differs between two runs of the same moment (id, timings)."""
    return [
        {key: value for key, value in line.items() if key not in ("trace_id", "usage")}
        for line in result.json_lines()
    ]


def assert_no_url(text: str) -> None:
    assert TOKEN not in text
    assert "/api/webhooks/123" not in text
    assert "123456789012345678" not in text


def warning_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: notify:")]


def test_a_trade_reaches_the_configured_webhook(
    capsys: pytest.CaptureFixture[str], httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    monkeypatch.setenv("REZ__NOTIFY__WEBHOOK", httpserver.url_for(HOOK_PATH))
    result = run(capsys, *DECIDE)
    assert result.exit_code == 0, result.stderr
    [decision] = result.json_lines()
    assert decision["action"] == "sell"
    [(request, _)] = httpserver.log
    body = request.get_json()
    assert body["kind"] == "open"
    assert body["symbol"] == "BTC/USDT"
    assert body["content"].startswith("BTC/USDT: opened short (sell) at ")
    assert body["text"] == body["summary"]
    assert body["decision"]["entry_price"] == decision["entry_price"]
    assert body["decision"]["trace_id"] == decision["trace_id"]
    assert result.stderr == ""


def test_a_forced_hold_is_posted_and_still_exits_3(
    capsys: pytest.CaptureFixture[str], httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
    monkeypatch.setenv("OPENAI_BASE_URL", refusing_url().removesuffix(HOOK_PATH) + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-notify-0123456789")
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", "--notify",
                 httpserver.url_for(HOOK_PATH))  # fmt: skip
    assert result.exit_code == 3
    [decision] = result.json_lines()
    [(request, _)] = httpserver.log
    body = request.get_json()
    assert body["kind"] == "hold"
    assert decision["error"] is not None
    assert body["decision"]["error"] == decision["error"]
    assert f"hold forced by a failure ({decision['error']})" in body["text"]


@pytest.mark.parametrize("failure", ["http 500", "refused", "timeout"])
def test_a_failing_webhook_changes_nothing_but_one_warning_line(
    capsys: pytest.CaptureFixture[str],
    httpserver: HTTPServer,
    silent_url: str,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    tmp_path: Path,
) -> None:
    # A journal each: the second run must not find the position the first one opened.
    baseline = run(capsys, *DECIDE, "--journal", str(tmp_path / "baseline.sqlite"))
    assert baseline.exit_code == 0
    if failure == "http 500":
        httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("down", status=500)
        url = httpserver.url_for(HOOK_PATH)
    else:
        url = refusing_url() if failure == "refused" else silent_url
    monkeypatch.setenv("REZ__NOTIFY__TIMEOUT_S", "0.3")
    result = run(capsys, *DECIDE, "--journal", str(tmp_path / "notified.sqlite"), "--notify", url)
    assert result.exit_code == baseline.exit_code
    assert comparable(result) == comparable(baseline)
    [line] = result.stderr.splitlines()
    assert line == warning_lines(result)[0]
    expected = {
        "http 500": "answered HTTP 500",
        "refused": "could not be reached (connection refused)",
        "timeout": "did not answer within 0.3 s",
    }[failure]
    assert expected in line
    assert "(the open event for BTC/USDT)" in line
    assert_no_url(result.stderr + result.stdout)


def test_the_webhook_never_reaches_the_journal_or_the_config_view(
    capsys: pytest.CaptureFixture[str],
    httpserver: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    journal = tmp_path / "j.sqlite"
    url = httpserver.url_for(HOOK_PATH)
    assert run(capsys, *DECIDE, "--journal", str(journal), "--notify", url).exit_code == 0
    db = sqlite3.connect(journal)
    try:
        [(argv,)] = db.execute("SELECT argv FROM runs").fetchall()
    finally:
        db.close()
    assert "--notify" in json.loads(argv)
    assert_no_url(argv)
    monkeypatch.setenv("REZ__NOTIFY__WEBHOOK", url)
    shown = run(capsys, "config", "show")
    assert shown.exit_code == 0
    assert "notify.webhook" in shown.stdout
    assert_no_url(shown.stdout + shown.stderr)


def test_a_webhook_that_is_not_http_is_a_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__NOTIFY__WEBHOOK", f"ftp://user:{TOKEN}@example.org{HOOK_PATH}")
    result = run(capsys, *DECIDE)
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "notify.webhook" in line
    assert "must be an http:// or https:// URL" in line
    assert_no_url(line)


def test_a_notify_option_that_is_not_http_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, *DECIDE, "--notify", f"discord.com{HOOK_PATH}")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "--notify must be an http:// or https:// URL" in line
    assert_no_url(line)
