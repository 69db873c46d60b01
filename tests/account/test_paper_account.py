"""The paper account's rules as a user meets them: close, the limits across symbols, a run killed
mid-cycle, reset, moments in the past, missing candles, --no-paper and --dry-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.account.test_paper_cron import CLOSE_AT_T1, DATA, HOUR, POSITION_MARK, SLIPPAGE, T1, T2, T3
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, Reply, delay, hang, reply

BUY = {
    "action": "buy",
    "entry_price": CLOSE_AT_T1,
    "tp_price": round(CLOSE_AT_T1 * 1.03, 2),
    "sl_price": round(CLOSE_AT_T1 * 0.99, 2),
    "leverage": 2,
    "confidence": 0.7,
    "rationale": "breakout",
}
HOLD = {"action": "hold", "confidence": 0.5, "rationale": "wait"}
CLOSE = {"action": "close", "confidence": 0.6, "rationale": "momentum faded"}


def answers(*script: dict[str, Any]) -> Callable[[dict[str, Any]], Reply]:
    """The n-th request gets the n-th answer (the last one repeats)."""
    asked = 0

    def answer(body: dict[str, Any]) -> Reply:
        nonlocal asked
        chosen = script[min(asked, len(script) - 1)]
        asked += 1
        return reply(json.dumps(chosen))

    return answer


@pytest.fixture
def use_model(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeOpenAI], None]:
    def use(fake: FakeOpenAI) -> None:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-paper")
        monkeypatch.setenv("REZ__LLM__MODEL", "test-model")

    return use


def decide(
    capsys: pytest.CaptureFixture[str],
    journal: Path,
    moment: int,
    *extra: str,
    data: Path = DATA,
    symbol: str = "BTC/USDT",
) -> Result:
    return run(
        capsys, "decide", symbol, "--data", str(data), "--timeframes", "1h", "--as-of", str(moment),
        "--journal", str(journal), "--json", *extra,
    )  # fmt: skip


def paper_json(capsys: pytest.CaptureFixture[str], journal: Path, *args: str) -> list[dict[str, Any]]:
    result = run(capsys, "paper", *args, "--json", "--journal", str(journal))
    assert result.exit_code == 0, result.stderr
    return result.json_lines()


def test_close_ends_the_position_at_the_next_open(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, use_model: Callable[[FakeOpenAI], None]
) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAI.start([answers(BUY, CLOSE, HOLD)], repeat_last=True) as fake:
        use_model(fake)
        assert decide(capsys, journal, T1).exit_code == 0
        second = decide(capsys, journal, T2)
        assert second.exit_code == 0, second.stderr
        assert second.json_lines()[0]["action"] == "close"
        # The close is an order for the next open: the position is still there until then.
        (account,) = paper_json(capsys, journal, "status")[0]["accounts"]
        assert [order["kind"] for order in account["orders"]] == ["close"]
        third = decide(capsys, journal, T3)
        assert third.exit_code == 0, third.stderr
    events = paper_json(capsys, journal, "history")
    (closed,) = [event for event in events if event["kind"] == "close"]
    assert closed["reason"] == "close"
    assert closed["exit_ms"] == T2  # the open of the 19:00 candle
    assert closed["exit_price"] == pytest.approx(56730.55 * (1 - SLIPPAGE), rel=1e-12)


def test_close_with_nothing_open_and_a_second_buy_are_holds_with_codes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, use_model: Callable[[FakeOpenAI], None]
) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAI.start([answers(CLOSE, BUY, BUY)], repeat_last=True) as fake:
        use_model(fake)
        first = decide(capsys, journal, T1)
        assert first.exit_code == 3
        assert first.json_lines()[0]["error"] == "no_position"
        # The same moment again: the book has nothing new to walk, and the buy is placed.
        assert decide(capsys, journal, T1).exit_code == 0
        again = decide(capsys, journal, T2)
        assert again.exit_code == 3
        decision = again.json_lines()[0]
        assert (decision["action"], decision["error"]) == ("hold", "position_open")
        assert "close ends it" in decision["rationale"]


def _twin_market(tmp_path: Path) -> Path:
    """BTC's candles under a second name, so two symbols trade at once."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(DATA / "BTC_USDT-1h.csv", data / "BTC_USDT-1h.csv")
    shutil.copy(DATA / "BTC_USDT-1h.csv", data / "ETH_USDT-1h.csv")
    return data


def _rez(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rez_cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(fake: FakeOpenAI, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-test-paper",
        "REZ__LLM__MODEL": "test-model",
        "REZ_HOME": str(home),
    }


@pytest.mark.slow
def test_two_symbols_at_once_cannot_together_pass_the_limit(tmp_path: Path) -> None:
    data = _twin_market(tmp_path)
    profile = tmp_path / "one.toml"
    moderate = Path(__file__).parents[2] / "configs" / "profiles" / "moderate.toml"
    profile.write_text(moderate.read_text().replace("max_open_positions = 4", "max_open_positions = 1"))
    journal = tmp_path / "j.sqlite"
    # Both runs are thinking at the same time; only then do they place their orders.
    with FakeOpenAI.start([delay(1.0, then=reply(json.dumps(BUY)))], repeat_last=True) as fake:
        env = _env(fake, tmp_path / "home")
        runs = [
            _rez("decide", symbol, "--data", str(data), "--timeframes", "1h", "--as-of", str(T1),
                 "--journal", str(journal), "--profile", str(profile), "--json", env=env)
            for symbol in ("BTC/USDT", "ETH/USDT")
        ]  # fmt: skip
        outputs = [process.communicate(timeout=120) for process in runs]
    decisions = [json.loads(out) for out, _ in outputs]
    assert sorted(str(decision["error"]) for decision in decisions) == ["None", "max_open_positions"]
    assert sorted(process.returncode for process in runs) == [0, 3]
    result = subprocess.run(
        [sys.executable, "-m", "rez_cli", "paper", "status", "--json", "--journal", str(journal)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (account,) = json.loads(result.stdout)["accounts"]
    assert len(account["orders"]) == 1


@pytest.mark.slow
def test_a_run_killed_while_the_model_thinks_leaves_the_account_whole(tmp_path: Path) -> None:
    data, journal = DATA, tmp_path / "j.sqlite"
    args = ("--data", str(data), "--timeframes", "1h", "--journal", str(journal), "--json")
    script: list[Any] = [reply(json.dumps(BUY)), hang(), reply(json.dumps(HOLD))]
    with FakeOpenAI.start(script, repeat_last=True) as fake:
        env = _env(fake, tmp_path / "home")
        first = _rez("decide", "BTC/USDT", "--as-of", str(T1), *args, env=env)
        assert first.communicate(timeout=120)[0]
        killed = _rez("decide", "BTC/USDT", "--as-of", str(T2), *args, env=env)
        deadline = time.monotonic() + 60
        while len(fake.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake.requests) == 2, "the second run never asked the model"
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
        # The next cron run walks on from what the killed one settled, and the stop still closes it.
        last = _rez("decide", "BTC/USDT", "--as-of", str(T3), *args, env=env)
        _, err = last.communicate(timeout=120)
        assert last.returncode == 0, err
    status = subprocess.run(
        [sys.executable, "-m", "rez_cli", "paper", "status", "--json", "--journal", str(journal)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (account,) = json.loads(status.stdout)["accounts"]
    stop = round(CLOSE_AT_T1 * 0.99, 2)
    fill = CLOSE_AT_T1 * (1 + SLIPPAGE)
    qty = 5000 / fill
    exit_price = stop * (1 - SLIPPAGE)
    pnl = qty * (exit_price - fill) - 5000 * 0.001 - qty * exit_price * 0.001
    assert account["equity"] == pytest.approx(10_000 + pnl, rel=1e-12)
    assert account["positions"] == []
    assert account["orders"] == []


def test_reset_asks_first_and_a_moment_before_the_book_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, use_model: Callable[[FakeOpenAI], None]
) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAI.start([answers(BUY, HOLD)], repeat_last=True) as fake:
        use_model(fake)
        assert decide(capsys, journal, T2).exit_code == 0
        earlier = decide(capsys, journal, T1)
        assert earlier.exit_code == 2
        assert earlier.stdout == ""
        assert len(earlier.stderr.strip().splitlines()) <= 2  # one line, and its hint
        assert "has walked to 2021-03-10T19:00:00Z" in earlier.stderr
        # --no-paper decides at any moment, and shows no position.
        assert decide(capsys, journal, T1, "--no-paper").exit_code == 0
        assert POSITION_MARK not in json.dumps(fake.bodies[-1])
    refused = run(capsys, "paper", "reset", "--journal", str(journal))
    assert refused.exit_code == 2
    assert "asks first" in refused.stderr
    assert "--yes" in refused.stderr
    assert paper_json(capsys, journal, "status")[0]["accounts"][0]["orders"]
    done = run(capsys, "paper", "reset", "--yes", "--journal", str(journal))
    assert done.exit_code == 0, done.stderr
    assert paper_json(capsys, journal, "status") == [{"accounts": []}]


def test_missing_candles_are_reported_never_invented(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, use_model: Callable[[FakeOpenAI], None]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = pd.read_csv(DATA / "BTC_USDT-1h.csv")
    # An outage: the 17:00 and 18:00 candles never came.
    frame = frame[~frame["timestamp"].isin([T1 + HOUR, T1 + 2 * HOUR])]
    frame.to_csv(data / "BTC_USDT-1h.csv", index=False)
    journal = tmp_path / "j.sqlite"
    with FakeOpenAI.start([answers(BUY, HOLD)], repeat_last=True) as fake:
        use_model(fake)
        assert decide(capsys, journal, T1, data=data).exit_code == 0
        second = decide(capsys, journal, T2, data=data)
    assert second.exit_code == 0, second.stderr
    assert second.stderr == ""  # --json: said in the trace and the history, not on stderr
    notes = [event["note"] for event in paper_json(capsys, journal, "history") if event["kind"] == "note"]
    assert any("2 of 3 1h candles since 2021-03-10T16:00:00Z are missing" in note for note in notes)
    # The trace keeps it too.
    shown = run(capsys, "traces", "show", second.json_lines()[0]["trace_id"], "--journal", str(journal))
    assert "are missing from the market" in shown.stdout


def test_dry_run_shows_the_position_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, use_model: Callable[[FakeOpenAI], None]
) -> None:
    journal = tmp_path / "j.sqlite"
    with FakeOpenAI.start([answers(BUY, HOLD)], repeat_last=True) as fake:
        use_model(fake)
        assert decide(capsys, journal, T1).exit_code == 0
        before = paper_json(capsys, journal, "history")
        dry = decide(capsys, journal, T2, "--dry-run")
        assert dry.exit_code == 0, dry.stderr
        assert POSITION_MARK in dry.stdout
        assert len(fake.bodies) == 1
    assert paper_json(capsys, journal, "history") == before
