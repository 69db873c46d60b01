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

from rez_cli.doctor import check_journal, check_python
from tests.support.cli import Result, run
from tests.support.exchange_server import FAST_CCXT, FakeBinance, exchange_config
from tests.support.openai_server import FakeOpenAI

SECRET = "sk-test-SECRET-1234"


@pytest.fixture
def binance(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    # The doctor asks for the latest closed candle: the fake's clock must be the real one.
    with FakeBinance(now_ms=int(time.time() * 1000)) as server:
        monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps({**exchange_config(server), **FAST_CCXT}))
        yield server


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    return fake_openai


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
    capsys: pytest.CaptureFixture[str], binance: FakeBinance, model_env: FakeOpenAI
) -> None:
    result, checks = doctor(capsys, "--exchange", "binance", "--symbol", "ETH/USDT")
    assert result.exit_code == 0, result.stdout
    assert list(checks) == ["python", "packages", "config", "profile", "exchange", "model", "journal"]
    assert {check["status"] for check in checks.values()} == {"ok"}
    assert "ETH/USDT is listed" in checks["exchange"]["detail"]
    assert binance.klines_requests("1h", "ETHUSDT")
    # The fake serves no GET /v1/models: a 404 still proves the endpoint answers.
    assert "404" in checks["model"]["detail"]
    assert model_env.requests[0].path == "/v1/models"
    assert model_env.requests[0].headers["authorization"] == f"Bearer {SECRET}"
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
