"""``rez traces`` as a user runs it over a journal written through the Journal API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rez_cli.journal import Journal
from tests.support.cli import run

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
HOUR = 3_600_000
BUY_ID = "a1b2c3d4e5f60718"
HOLD_ID = "a1b2c3d4e5f6ffff"
FAIL_ID = "0badc0de00000001"
ETH_ID = "e7e7e7e7e7e7e7e7"
OPEN_ID = "0pen000000000000"


def _decision(
    trace_id: str, symbol: str, action: str, error: str | None, source: str, cost: float
) -> dict[str, Any]:
    trade = action != "hold"
    return {
        "symbol": symbol,
        "action": action,
        "entry_price": 100.0 if trade else None,
        "tp_price": 110.0 if trade else None,
        "sl_price": 95.0 if trade else None,
        "leverage": 1.0,
        "size_pct": 10.0 if trade else 0.0,
        "confidence": 0.0 if error else 0.72,
        "rationale": "breakout above the 4h range" if trade else "no edge",
        "invalidation": "1h close below 95" if trade else None,
        "mode": "react",
        "source": source,
        "error": error,
        "usage": {
            "prompt_tokens": 900,
            "completion_tokens": 80,
            "llm_calls": 2,
            "tool_calls": 1,
            "cost_usd": cost,
        },
        "trace_id": trace_id,
        "timestamp": T0,
    }


def _cycle(
    journal: Journal,
    trace_id: str,
    *,
    symbol: str = "BTC/USDT",
    action: str = "buy",
    error: str | None = None,
    source: str = "native",
    cost: float = 0.002,
    model: str = "gpt-4o-mini",
    finish: bool = True,
) -> None:
    recorder = journal.recorder(1)
    recorder.cycle_started(
        trace_id,
        symbol=symbol,
        exchange="binance",
        simulated=False,
        mode="react",
        model=model,
        profile={"name": "moderate"},
        as_of_ms=T0,
        candles={"1h": {"count": 300, "first_open_ms": 0, "last_close_ms": T0, "sha256": "00"}},
        context={"symbol": symbol, "last_price": 100.0},
        context_text=f"{symbol} last 100.0",
    )
    turn = {
        "index": 1,
        "content": None,
        "tools_offered": True,
        "tool_calls": [
            {
                "id": "call_1",
                "name": "fetch_indicator",
                "arguments": '{"indicator": "macd", "timeframe": "4h"}',
                "ok": True,
                "content": "macd 4h: 1.2 1.4",
                "rows": [],
                "cached": False,
                "duration_ms": 2.0,
            }
        ],
        "prompt_tokens": 450,
        "completion_tokens": 40,
        "duration_ms": 800.0,
    }
    recorder.turn_recorded(trace_id, turn)
    if not finish:
        return
    recorder.cycle_finished(
        trace_id,
        status="held" if error else "decided",
        decision=_decision(trace_id, symbol, action, error, source, cost),
        trace={
            "raw_text": '{"action": "buy"}',
            "verdicts": [
                {"error": error, "checks": [{"rule": "stop_required", "passed": True, "detail": "ok"}]}
            ],
        },
        signals=[],
    )


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    clock = [T0]
    journal = Journal(path, clock=lambda: clock[0])
    journal.start_run(
        "decide", ["BTC/USDT", "--json"], config_hash="c", profile_hash="p", versions={"rez": "0"}
    )
    for trace_id, kwargs in (
        (BUY_ID, {}),
        (HOLD_ID, {"action": "hold", "source": "repaired", "cost": 0.004}),
        (FAIL_ID, {"action": "hold", "error": "llm_timeout", "source": "fallback", "cost": 0.0}),
        (ETH_ID, {"symbol": "ETH/USDT", "action": "sell", "model": "llama3"}),
        (OPEN_ID, {"finish": False}),
    ):
        _cycle(journal, trace_id, **kwargs)
        clock[0] += HOUR
    journal.close()
    return path


def test_list_json_is_newest_first_with_incomplete_cycles(
    capsys: pytest.CaptureFixture[str], journal_path: Path
) -> None:
    result = run(capsys, "traces", "list", "--journal", str(journal_path), "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json_lines()
    assert [row["trace_id"] for row in rows] == [OPEN_ID, ETH_ID, FAIL_ID, HOLD_ID, BUY_ID]
    assert rows[0]["status"] == "incomplete"
    assert rows[0]["action"] is None
    assert rows[2]["error"] == "llm_timeout"
    assert rows[2]["status"] == "held"
    assert rows[4]["turn_count"] == 1
    assert rows[4]["cost_usd"] == pytest.approx(0.002)


def test_list_filters_by_symbol_action_since_and_limit(
    capsys: pytest.CaptureFixture[str], journal_path: Path
) -> None:
    def ids(*options: str) -> list[str]:
        result = run(capsys, "traces", "list", "--journal", str(journal_path), "--json", *options)
        assert result.exit_code == 0, result.stderr
        return [row["trace_id"] for row in result.json_lines()]

    assert ids("--symbol", "ETH/USDT") == [ETH_ID]
    assert ids("--action", "hold") == [FAIL_ID, HOLD_ID]
    assert ids("--since", "2023-11-15T00:00") == [OPEN_ID, ETH_ID, FAIL_ID]
    assert ids("--limit", "2") == [OPEN_ID, ETH_ID]


def test_list_table_shows_short_ids_and_what_happened(
    capsys: pytest.CaptureFixture[str], journal_path: Path
) -> None:
    result = run(capsys, "traces", "list", "--journal", str(journal_path))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    for header in (
        "time (UTC)",
        "trace",
        "symbol",
        "mode",
        "model",
        "action",
        "source",
        "error",
        "cost",
        "turns",
    ):
        assert header in lines[0]
    assert BUY_ID[:12] in result.stdout
    assert BUY_ID not in result.stdout
    [fail_line] = [line for line in lines if FAIL_ID[:12] in line]
    assert "llm_timeout" in fail_line
    assert "fallback" in fail_line
    assert "2023-11-15 00:13:20" in fail_line
    [open_line] = [line for line in lines if OPEN_ID[:12] in line]
    assert "incomplete" in open_line
    [eth_line] = [line for line in lines if ETH_ID[:12] in line]
    assert "llama3" in eth_line
    assert "sell" in eth_line
    assert "0.72" in eth_line
    assert "$0.0020" in eth_line


def test_list_of_empty_journal_says_so_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    Journal(path).close()
    result = run(capsys, "traces", "list", "--journal", str(path))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no journaled cycle" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--action", "long"), "unknown action 'long'"),
        (("--since", "yesterday"), "cannot read 'yesterday' as a date"),
    ],
)
def test_list_bad_option_is_exit_2_one_line(
    capsys: pytest.CaptureFixture[str], journal_path: Path, options: tuple[str, ...], message: str
) -> None:
    result = run(capsys, "traces", "list", "--journal", str(journal_path), *options)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("rez: error: ")
    assert message in result.stderr


def test_missing_journal_is_exit_2_and_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "typo.sqlite"
    result = run(capsys, "traces", "list", "--journal", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"rez: error: no journal at {path}")
    assert result.stderr.count("\n") == 1
    assert not path.exists()


def test_journal_path_comes_from_the_config(
    capsys: pytest.CaptureFixture[str], journal_path: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[journal]\npath = '{journal_path}'\n")
    result = run(capsys, "traces", "list", "--config", str(config), "--json", "--limit", "1")
    assert result.exit_code == 0, result.stderr
    assert [row["trace_id"] for row in result.json_lines()] == [OPEN_ID]


def test_export_prints_the_whole_record_as_one_json_object(
    capsys: pytest.CaptureFixture[str], journal_path: Path
) -> None:
    result = run(capsys, "traces", "export", FAIL_ID[:6], "--journal", str(journal_path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1
    record = json.loads(result.stdout)
    assert record["trace_id"] == FAIL_ID
    assert record["status"] == "held"
    assert record["decision"]["error"] == "llm_timeout"
    assert record["run"]["argv"] == ["BTC/USDT", "--json"]
    assert record["context_text"] == "BTC/USDT last 100.0"
    [turn] = record["turns"]
    assert turn["tool_calls"][0]["name"] == "fetch_indicator"
    assert turn["tool_calls"][0]["content"] == "macd 4h: 1.2 1.4"
    assert record["verdicts"] == [{"verdict_idx": 0, "rule": "stop_required", "passed": True, "detail": "ok"}]
    assert record["trace"]["raw_text"] == '{"action": "buy"}'


@pytest.mark.parametrize(
    ("trace_id", "message"),
    [("ffff", "no trace 'ffff' in"), ("a1b2c3", "trace id 'a1b2c3' is ambiguous")],
)
def test_export_of_unknown_or_ambiguous_id_is_exit_2_one_line(
    capsys: pytest.CaptureFixture[str], journal_path: Path, trace_id: str, message: str
) -> None:
    result = run(capsys, "traces", "export", trace_id, "--journal", str(journal_path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("rez: error: ")
    assert message in result.stderr


def test_stats_json_has_the_rates(capsys: pytest.CaptureFixture[str], journal_path: Path) -> None:
    result = run(capsys, "traces", "stats", "--journal", str(journal_path), "--json")
    assert result.exit_code == 0, result.stderr
    [summary] = result.json_lines()
    assert summary["cycles"] == 5
    assert summary["finished"] == 4
    assert summary["hold_rate"] == pytest.approx(0.5)
    assert summary["failure_rate"] == pytest.approx(0.25)
    assert summary["failures"] == {"llm_timeout": {"count": 1, "rate": 0.25}}
    assert summary["repair_rate_by_model"]["gpt-4o-mini"] == {
        "cycles": 3,
        "repaired": 1,
        "rate": pytest.approx(1 / 3),
    }
    assert summary["avg_cost_usd"] == pytest.approx((0.002 + 0.004 + 0.0 + 0.002) / 4)
    assert summary["avg_turns"] == pytest.approx(1.0)
    assert summary["by_mode"] == {"react": 5}
    since = run(
        capsys, "traces", "stats", "--journal", str(journal_path), "--json", "--since", "2023-11-15T01:00"
    )
    assert since.json_lines()[0]["cycles"] == 2


def test_stats_tables(capsys: pytest.CaptureFixture[str], journal_path: Path) -> None:
    result = run(capsys, "traces", "stats", "--journal", str(journal_path))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    lines = {line.split("  ")[0]: line for line in out.splitlines() if line.strip()}
    assert lines["hold rate"].split()[-1] == "50.0%"
    assert lines["failure rate"].split()[-1] == "25.0%"
    assert lines["incomplete"].split()[-1] == "1"
    assert lines["average cost"].split()[-1] == "$0.0020"
    assert lines["average turns"].split()[-1] == "1.00"
    assert lines["llm_timeout"].split()[1:] == ["1", "25.0%"]
    assert lines["gpt-4o-mini"].split()[1:] == ["3", "1", "33.3%"]
    assert lines["llama3"].split()[1:] == ["1", "0", "0.0%"]
    for title in ("failures by error code", "repairs by model", "cycles by mode"):
        assert title in out


def test_a_damaged_journal_row_is_shown_as_far_as_it_reads_never_a_traceback(
    capsys: pytest.CaptureFixture[str], journal_path: Path
) -> None:
    """A journal is outside data: an older Rez, or the old short-key redaction, left values that no
    longer validate (``max_leverage`` stored as ``ma***_leverage``)."""
    import sqlite3

    with sqlite3.connect(journal_path) as db:
        db.execute(
            "UPDATE cycles SET decision = ?, profile = ? WHERE trace_id = ?",
            (json.dumps({"action": "buy", "leverage": "x"}), json.dumps({"ma***_leverage": 5}), BUY_ID),
        )
    shown = run(capsys, "traces", "show", BUY_ID, "--journal", str(journal_path))
    assert shown.exit_code == 0, shown.stderr
    assert "the journaled decision does not validate: not shown" in shown.stdout
    assert "fetch_indicator" in shown.stdout  # the turns still show
    replayed = run(capsys, "traces", "replay", BUY_ID, "--journal", str(journal_path))
    assert replayed.exit_code == 2
    assert replayed.stderr.count("\n") == 1
    assert "does not validate (replay it with --profile NAME)" in replayed.stderr
    with_profile = run(capsys, "traces", "replay", BUY_ID, "--journal", str(journal_path), "-p", "moderate")
    assert with_profile.exit_code == 0, with_profile.stderr
