"""``rez decide`` as people use it: the journal, the lock, dry-run, traces, secrets, plain output."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rez_cli.journal.store import Journal
from tests.support.cli import run
from tests.support.openai_server import FakeOpenAI, hang, reply, tool_calls

AS_OF = "2021-07-01T00:00"
SECRET = "sk-test-RECOGNISABLE-0xC0FFEE"
HOLD = json.dumps(
    {
        "action": "hold",
        "entry_price": None,
        "tp_price": None,
        "sl_price": None,
        "leverage": 1,
        "confidence": 0.3,
        "rationale": "mixed signals",
        "invalidation": None,
    }
)


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    return fake_openai


def journal_rows(path: Path, table: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(f"SELECT * FROM {table}").fetchall()  # fixed table names from the test
    finally:
        db.close()


def test_a_cycle_is_journaled_and_can_be_shown_exported_and_replayed(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    model_env.push(
        tool_calls([("fetch_indicator", {"indicator": "rsi", "timeframe": "1h", "lookback": 2})]),
        reply("Mixed.\n" + HOLD),
    )
    result = run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        AS_OF,
        "--json",
        "--journal",
        str(journal),
    )
    assert result.exit_code == 0
    [decision] = result.json_lines()
    [cycle] = journal_rows(journal, "cycles")
    assert cycle["trace_id"] == decision["trace_id"]
    assert cycle["status"] == "decided"
    assert cycle["action"] == "hold"
    assert cycle["finished_ms"] is not None
    assert json.loads(cycle["candles"])["1h"]["count"] == 300
    assert len(journal_rows(journal, "turns")) == 2
    [call] = journal_rows(journal, "tool_calls")
    assert call["name"] == "fetch_indicator"
    assert call["content"].startswith("rsi 1h")
    [run_row] = journal_rows(journal, "runs")
    assert run_row["command"] == "decide"
    assert "--as-of" in json.loads(run_row["argv"])

    shown = run(capsys, "traces", "show", decision["trace_id"][:8], "--journal", str(journal))
    assert shown.exit_code == 0
    assert "turn 1" in shown.stdout
    assert "fetch_indicator" in shown.stdout
    assert "BTC/USDT · HOLD" in shown.stdout
    exported = run(capsys, "traces", "export", decision["trace_id"], "--journal", str(journal))
    record = json.loads(exported.stdout)
    assert record["decision"] == decision
    assert record["trace"]["raw_text"].startswith("Mixed.")
    replayed = run(capsys, "traces", "replay", decision["trace_id"], "--journal", str(journal), "--json")
    assert json.loads(replayed.stdout)["changed"] is False
    listed = run(capsys, "traces", "list", "--journal", str(journal), "--json").json_lines()
    assert [item["trace_id"] for item in listed] == [decision["trace_id"]]


def test_replay_shows_what_a_stricter_profile_would_have_done(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    traded = None
    for day in range(1, 28):
        as_of = f"2021-06-{day:02d}T00:00"
        out = run(
            capsys,
            "decide",
            "SOL/USDT",
            "--exchange",
            "sim",
            "--as-of",
            as_of,
            "--json",
            "--journal",
            str(journal),
            "--profile",
            "aggressive",
        ).json_lines()[0]
        if out["action"] != "hold":
            traded = out
            break
    assert traded is not None, "the rules baseline never traded in June"
    replayed = json.loads(
        run(
            capsys,
            "traces",
            "replay",
            traded["trace_id"],
            "--journal",
            str(journal),
            "--profile",
            "conservative",
            "--json",
        ).stdout
    )
    # Rules stops target the profile's reward/risk (1.2 for aggressive): conservative wants 2.0.
    assert replayed["changed"] is True
    assert replayed["after"]["action"] == "hold"
    assert replayed["after"]["error"] == "reward_risk_below_profile"


def test_dry_run_sends_nothing_and_shows_everything(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, tmp_path: Path
) -> None:
    result = run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        AS_OF,
        "--dry-run",
        "--json",
        "--journal",
        str(tmp_path / "j.sqlite"),
    )
    assert result.exit_code == 0
    assert model_env.requests == []
    [payload] = result.json_lines()
    assert payload["dry_run"] is True
    assert payload["model"] == "test-model"
    assert payload["endpoint"].startswith("127.0.0.1:")
    assert payload["messages"][0]["content"].startswith("You are Rez.")
    assert payload["tools"][0]["function"]["name"] == "fetch_indicator"
    assert payload["estimated_prompt_tokens"] > 500
    text = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--dry-run")
    assert "DRY RUN: no model was called" in text.stdout
    assert "fetch_indicator" in text.stdout
    assert SECRET not in result.stdout + result.stderr + text.stdout + text.stderr


def test_secrets_never_leave_the_process(
    capsys: pytest.CaptureFixture[str],
    model_env: FakeOpenAI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The model echoes the key back and the exchange config carries one: neither may be written anywhere.
    monkeypatch.setenv(
        "REZ__EXCHANGE__CCXT", json.dumps({"apiKey": SECRET + "-ex", "secret": "s3cr3t-VALUE"})
    )
    model_env.push(reply(f"My key is {SECRET}. " + HOLD))
    outputs = []
    for args in (
        ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json"),
        ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--dry-run", "--json"),
        ("traces", "list"),
        ("config", "show"),
    ):
        result = run(capsys, *args)
        outputs.append(result.stdout + result.stderr)
    trace_id = json.loads(outputs[0].splitlines()[0])["trace_id"]
    for args in (("traces", "export", trace_id), ("traces", "show", trace_id)):
        result = run(capsys, *args)
        assert result.exit_code == 0
        outputs.append(result.stdout + result.stderr)
    written = b"".join(path.read_bytes() for path in isolated_env.rglob("*") if path.is_file())
    for secret in (SECRET, "s3cr3t-VALUE"):
        assert all(secret not in output for output in outputs)
        assert secret.encode() not in written
    assert "***" in json.dumps(Journal(isolated_env / "data" / "journal.sqlite").get_cycle(trace_id)["trace"])


def test_an_overlapping_run_exits_4_and_leaves_the_first_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    with Journal(journal) as held, held.lock("BTC/USDT"):
        result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--journal", str(journal), "--json")
        other = run(capsys, "decide", "ETH/USDT", "--exchange", "sim", "--journal", str(journal), "--json")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert "another rez run is deciding BTC/USDT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert other.exit_code == 0


def test_a_run_killed_mid_cycle_keeps_what_it_did(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    fake_openai.push(tool_calls([("fetch_indicator", {"indicator": "ema", "timeframe": "4h"})]), hang(30))
    env = {
        **os.environ,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": "sk-x",
        "REZ__LLM__MODEL": "m",
        "REZ_HOME": str(tmp_path / "home"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rez_cli",
            "decide",
            "BTC/USDT",
            "--exchange",
            "sim",
            "--as-of",
            AS_OF,
            "--journal",
            str(journal),
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(fake_openai.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake_openai.requests) == 2, "the run never reached its second model call"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    [cycle] = journal_rows(journal, "cycles")
    assert cycle["finished_ms"] is None
    assert cycle["context_text"]
    [turn] = journal_rows(journal, "turns")
    assert turn["idx"] == 1
    [call] = journal_rows(journal, "tool_calls")
    assert call["content"].startswith("ema 4h")
    listed = Journal(journal).list_cycles()
    assert listed[0]["status"] == "incomplete"


def test_no_color_and_pipes_get_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "decide", "BTC/USDT", "ETH/USDT", "--exchange", "sim", "--as-of", AS_OF)
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout + result.stderr
    assert "BTC/USDT · " in result.stdout
    assert "ETH/USDT · " in result.stdout


def test_memory_shows_the_model_its_last_decision(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    thesis = json.loads(HOLD) | {
        "rationale": "waiting for the 4h breakout",
        "invalidation": "4h close below 30k",
    }
    model_env.push(reply(json.dumps(thesis)), reply(HOLD))
    run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        "2021-07-01T00:00",
        "--json",
        "--journal",
        str(journal),
    )
    run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        "2021-07-01T04:00",
        "--json",
        "--journal",
        str(journal),
    )
    second_prompt = model_env.requests[1].body["messages"][1]["content"]
    assert "Your previous decision on this symbol:" in second_prompt
    assert "waiting for the 4h breakout" in second_prompt
    assert "4h close below 30k" in second_prompt


def test_many_symbols_print_whole_traces_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "decide", "BTC/USDT", "ETH/USDT", "SOL/USDT", "--exchange", "sim", "--as-of", AS_OF)
    assert result.exit_code == 0
    summary = result.stdout[result.stdout.index("summary") :]
    assert [line.split()[0] for line in summary.splitlines()[2:5]] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    # Each context table comes right before its own decision panel: traces are not interleaved.
    for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        context_at = result.stdout.index(f"{symbol} on sim")
        panel_at = result.stdout.index(f"─ {symbol} · ")
        assert context_at < panel_at
        assert all(
            not (context_at < result.stdout.index(f"{other} on sim") < panel_at)
            for other in ("BTC/USDT", "ETH/USDT", "SOL/USDT")
            if other != symbol
        )


def test_quiet_prints_only_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--quiet")
    assert result.exit_code == 0
    assert result.stdout.lstrip().startswith("╭─ BTC/USDT · ")
    assert "tokens" not in result.stdout
    assert "note:" not in result.stdout + result.stderr


def test_chart_draws_the_levels(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "decide", "ETH/USDT", "--exchange", "sim", "--as-of", AS_OF, "--chart")
    assert result.exit_code == 0
    # The first run's order is on the paper account now: the same moment again, without it.
    decision = run(
        capsys, "decide", "ETH/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", "--no-paper"
    ).json_lines()[0]
    assert decision["action"] == "buy"
    assert (
        f"ETH/USDT BUY · entry {decision['entry_price']:,.2f} · tp {decision['tp_price']:,.2f}"
        in result.stdout
    )
    assert "EMA 20" in result.stdout
    assert "\x1b[" not in result.stdout


def test_replay_with_another_model_runs_the_recorded_moment_again(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    model_env.push(reply(HOLD), reply(HOLD))
    first = run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        AS_OF,
        "--json",
        "--journal",
        str(journal),
    ).json_lines()[0]
    replayed = run(
        capsys,
        "traces",
        "replay",
        first["trace_id"],
        "--model",
        "other-model",
        "--journal",
        str(journal),
        "--json",
    )
    assert replayed.exit_code == 0, replayed.stderr
    payload = json.loads(replayed.stdout)
    assert payload["rerun"]["action"] == "hold"
    assert payload["rerun"]["timestamp"] == first["timestamp"]
    assert model_env.requests[1].body["model"] == "other-model"
    # The same moment, and memory only holds decisions made before it: the same prompt, word for word.
    assert model_env.requests[1].body["messages"] == model_env.requests[0].body["messages"]


def test_a_folder_with_only_1h_candles_decides_with_timeframes_and_warns_it_is_stale(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.support.candles import make_candles

    frame = make_candles(600, seed=5, timeframe_ms=3_600_000)
    frame.to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    data_end = int(frame["timestamp"].iloc[-1]) + 3_600_000
    without = run(capsys, "decide", "BTC/USDT", "--data", str(tmp_path), "--json")
    assert without.exit_code == 2
    assert without.stderr.count("\n") == 1
    result = run(capsys, "decide", "BTC/USDT", "--data", str(tmp_path), "--timeframes", "1h", "--json")
    assert result.exit_code == 0, result.stderr
    [decision] = result.json_lines()
    assert (decision["exchange"], decision["as_of"], decision["stale"]) == ("files", data_end, True)
    assert decision["last_price"] == pytest.approx(float(frame["close"].iloc[-1]))
    assert decision["timestamp"] > data_end  # stamped now: the moment the decision is for
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "BTC/USDT: stale data: the last closed candle ended at" in warning
    assert "days before this decision" in warning


def test_a_decision_as_of_a_moment_is_stamped_with_it_and_is_not_stale(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    [decision] = result.json_lines()
    assert decision["timestamp"] == 1_625_097_600_000
    assert decision["as_of"] == 1_625_097_600_000  # the 23:00 candle closed at midnight
    assert (decision["exchange"], decision["stale"]) == ("sim", False)
    assert decision["last_price"] > 0
    assert "stale" not in result.stderr
