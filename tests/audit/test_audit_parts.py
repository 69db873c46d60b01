"""The audit's parts on numbers worked out by hand, and its answers to bad input."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rez_cli.audit.altered import compare_copies, forward_returns, sample_moments
from rez_cli.audit.cutoffs import FALLBACK_CUTOFF, day_ms, model_cutoff
from rez_cli.audit.grade import grade
from rez_cli.audit.probe import MAX_RATIO, ProbeWindow, parse_closes, score_window
from rez_cli.audit.splits import cutoff_split, regime_split
from rez_cli.journal.store import Journal
from tests.support.cli import run

DAY = 86_400_000
HOUR = 3_600_000


@given(st.text(max_size=400), st.integers(min_value=1, max_value=20), st.floats(allow_nan=True))
def test_any_answer_gives_usable_closes_or_none(text: str, count: int, last: float) -> None:
    closes = parse_closes(text, count, last)
    if closes is not None:
        assert len(closes) == count
        assert all(math.isfinite(v) and last / MAX_RATIO <= v <= last * MAX_RATIO for v in closes)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=5))
def test_json_numbers_that_are_not_finite_or_far_off_are_refused(values: list[float]) -> None:
    import json

    closes = parse_closes(json.dumps({"closes": values}), len(values), 100.0)
    usable = all(math.isfinite(v) and 10.0 <= v <= 1000.0 for v in values)
    assert (closes is not None) == usable


@pytest.mark.parametrize(
    ("answer", "closes"),
    [
        ('{"closes": [101, 102.5]}', [101.0, 102.5]),
        ('Sure! ```json\n{"closes": ["101", 102]}\n``` hope it helps', [101.0, 102.0]),
        ("[99.5, 98, 97]", [99.5, 98.0]),
        ("2021-01-01 05:00 1,001.5\n2021-01-01 06:00 1,002\n", None),  # 1,001.5 is ten times off
        ("2021-01-01 05:00 101.5\n2021-01-01 06:00 102\n", [101.5, 102.0]),
        ('{"closes": [101]}', None),
        ('{"closes": [true, 101]}', None),
        ("I cannot predict prices.", None),
        ('{"closes": [1e308, 101]}', None),
    ],
)
def test_probe_answers_are_read_or_refused(answer: str, closes: list[float] | None) -> None:
    assert parse_closes(answer, 2, 100.0) == closes


def _window() -> ProbeWindow:
    shown = [100 + (i % 5) - 2 + i * 0.1 for i in range(48)]
    truth = [shown[-1] * (1 + 0.01 * (-1) ** i * (i + 1)) for i in range(12)]
    return ProbeWindow([i * HOUR for i in range(48)], shown, [(48 + i) * HOUR for i in range(12)], truth)


def test_the_true_closes_are_remembered_and_the_last_close_repeated_is_not() -> None:
    window = _window()
    exact = score_window(window, list(window.truth), seed=1)
    assert exact["model_error_pct"] == 0
    assert exact["walks_beaten"] == 1.0
    assert exact["remembered"] is True
    flat = score_window(window, [window.shown[-1]] * 12, seed=1)
    assert flat["model_error_pct"] == pytest.approx(flat["naive_error_pct"])
    assert flat["remembered"] is False
    unanswered = score_window(window, None, seed=1)
    assert (unanswered["answered"], unanswered["remembered"]) == (False, False)


def test_configured_cutoffs_win_over_the_defaults_and_unknown_models_get_the_fallback() -> None:
    assert model_cutoff({}, "openai/gpt-4.1-mini").day == "2024-06-01"
    configured = {"gpt-4.1*": date(2024, 5, 31), "my-model": date(2025, 1, 1)}
    assert model_cutoff(configured, "gpt-4.1-mini").source == "[llm.cutoffs] gpt-4.1*"
    assert model_cutoff(configured, "gpt-4.1-mini").day == "2024-05-31"
    assert model_cutoff(configured, "My-Model").day == "2025-01-01"
    unknown = model_cutoff(configured, "mystery-7b")
    assert (unknown.ms, unknown.source) == (
        day_ms(FALLBACK_CUTOFF),
        "fallback: a model Rez knows no cutoff for",
    )


def _report(equity: list[float], market: list[float], *, trades: int = 0) -> dict[str, Any]:
    """A stored report of daily points from 2021-01-01, one decision a day."""
    start = day_ms(date(2021, 1, 1))
    ms = [start + i * DAY for i in range(len(equity))]
    return {
        "start_ms": start,
        "end_ms": ms[-1],
        "curve": {"ms": ms, "equity": equity},
        "buy_and_hold_curve": {"ms": ms, "equity": market},
        "decisions": [{"timestamp": m, "action": "hold"} for m in ms[:-1]],
        "trades": [{"entry_ms": start, "pnl": 1.0}] * trades,
    }


def test_the_cutoff_split_scores_each_side_and_the_decay() -> None:
    # Up 1% then 2% a day alternately for 10 days, then down about half a percent a day.
    before = [100.0]
    for i in range(10):
        before.append(before[-1] * (1.01 if i % 2 else 1.02))
    after = [before[-1] * 0.995**k * (1.001 if k % 2 else 1.0) for k in range(1, 11)]
    report = _report(before + after, [100.0] * 21)
    split = cutoff_split(report, day_ms(date(2021, 1, 11)), DAY)
    assert split["cutoff"] == "2021-01-11T00:00:00Z"
    assert split["before"]["cycles"] == 10
    assert split["after"]["cycles"] == 10
    assert split["before"]["total_return_pct"] == pytest.approx((before[-1] / 100 - 1) * 100)
    assert split["after"]["sharpe"] < 0 < split["before"]["sharpe"]
    assert split["sharpe_decay_pct"] > 100


def test_a_span_wholly_before_the_cutoff_has_no_after_side_and_is_graded_c() -> None:
    report = _report([100.0 + i for i in range(11)], [100.0] * 11, trades=20)
    split = cutoff_split(report, day_ms(date(2023, 10, 1)), DAY)
    assert split["after"] is None
    letter, reasons = grade(report, split, None, None, None)
    assert letter == "C"
    assert reasons == ["C: the whole span lies before the training cutoff 2023-10-01"]


def test_regimes_follow_the_buy_and_hold_trend_of_each_week() -> None:
    # Week 1 the market rises 10% (bull), week 2 falls 10% (bear), week 3 moves 1% (sideways).
    market = [100.0]
    for week_end in (110.0, 99.0, 99.99):
        start = market[-1]
        market += [start + (week_end - start) * (i + 1) / 7 for i in range(7)]
    mine = [100.0] * 8 + [100.0 + i for i in range(1, 15)]
    split = regime_split(_report(mine, market))
    assert split is not None
    assert split["bull"]["windows"] == split["bear"]["windows"] == split["sideways"]["windows"] == 1
    assert split["bull"]["buy_and_hold_return_pct"] == pytest.approx(10.0)
    assert split["bull"]["total_return_pct"] == pytest.approx(0.0)
    assert split["bear"]["total_return_pct"] == pytest.approx(7.0)
    assert split["bear"]["excess_pct"] == pytest.approx(17.0)


def test_a_copy_that_loses_the_edge_is_worse_and_one_that_decides_alike_is_not() -> None:
    moves = [1.0, -2.0, 3.0, -1.0, 2.0]
    actions: dict[str, list[str | None]] = {
        "true": ["buy", "sell", "buy", "sell", "buy"],
        "rescaled": ["buy", "sell", "buy", "sell", "buy"],
        "shifted": ["hold", "hold", "hold", "hold", "buy"],
    }
    rows = {row["copy"]: row for row in compare_copies(actions, moves, {"shifted": 1})}
    assert rows["true"]["edge_pct"] == pytest.approx(9.0 / 5)
    assert rows["true"]["hit_rate"] == 1.0
    assert rows["rescaled"]["decisions_changed"] == 0
    assert rows["rescaled"]["worse_than_true"] is False
    assert rows["shifted"]["decisions_changed"] == 4
    assert rows["shifted"]["edge_pct"] == pytest.approx(2.0 / 5)
    assert rows["shifted"]["errors"] == 1
    assert rows["shifted"]["worse_than_true"] is True
    letter, reasons = grade({"trades": [{}] * 20}, {"cutoff": None}, None, list(rows.values()), None)
    assert letter == "D"
    assert reasons[0].startswith("D: shifted copy: its edge fell from +1.800% to +0.400% a cycle")


def test_forward_returns_and_the_sample_are_fixed_by_the_candles_and_the_seed() -> None:
    import pandas as pd

    frame = pd.DataFrame({"timestamp": [0, HOUR, 2 * HOUR, 3 * HOUR], "close": [100.0, 110.0, 99.0, 121.0]})
    # At the close of the first candle (1h) the close is 100; two candles later 99; at the end none.
    assert forward_returns(frame, [HOUR, 2 * HOUR, 4 * HOUR], HOUR, 2) == pytest.approx([-1.0, 10.0, 0.0])
    moments = list(range(0, 100 * HOUR, HOUR))
    assert sample_moments(moments, 10, seed=3) == sample_moments(moments, 10, seed=3)
    assert sample_moments(moments, 10, seed=3) != sample_moments(moments, 10, seed=4)
    assert sample_moments(moments[:5], 10, seed=3) == moments[:5]


def test_every_backtest_is_stored_with_its_curves_for_the_audit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--from", "2021-01-01",
        "--to", "2021-01-03", "--journal", str(journal), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    printed = result.json_lines()[0]
    with Journal(journal) as opened:
        stored = opened.backtests().load(printed["backtest_id"])
    assert stored.symbol == "BTC/USDT"
    assert stored.grade is None
    assert stored.request["mode"] == "rules"
    assert stored.request["exchange"] == "sim"
    assert stored.request["profile"]["name"] == "moderate"
    assert stored.report["metrics"] == printed["metrics"]
    assert len(stored.report["curve"]["ms"]) == len(stored.report["curve"]["equity"]) == 49
    assert stored.report["buy_and_hold_curve"]["equity"][0] == 10_000.0


def test_auditing_a_backtest_the_journal_lacks_is_exit_2_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    missing = run(capsys, "audit", "bt-000000000000", "--journal", str(journal))
    assert missing.exit_code == 2
    assert missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) <= 2  # the error and its hint
    assert "no journal at" in missing.stderr
    Journal(journal).close()
    unknown = run(capsys, "audit", "bt-000000000000", "--journal", str(journal))
    assert unknown.exit_code == 2
    assert "no backtest 'bt-000000000000' in journal" in unknown.stderr


def test_a_backtest_over_a_tape_is_audited_on_that_tape_and_refused_when_it_changed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal, tape = str(tmp_path / "journal.sqlite"), tmp_path / "btc.tape"
    recorded = run(
        capsys, "tape", "record", "BTC/USDT", "--exchange", "sim", "--from", "2021-01-01",
        "--to", "2021-01-04", "-o", str(tape),
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.stderr
    result = run(capsys, "backtest", "--tape", str(tape), "--mode", "rules", "--journal", journal, "--json")
    assert result.exit_code == 0, result.stderr
    backtest_id = result.json_lines()[0]["backtest_id"]
    audited = run(capsys, "audit", backtest_id, "--journal", journal, "--sample", "5", "--json")
    assert audited.exit_code == 0, audited.stderr
    audit = audited.json_lines()[0]
    assert audit["probe"] == {"skipped": "no model to probe"}
    assert audit["training_cutoff"]["date"] is None
    assert [row["decisions_changed"] for row in audit["altered"]["results"]] == [0, 0, 0, 0]

    # Another span recorded over the same file: a valid tape, but not the one the backtest read.
    recorded = run(
        capsys, "tape", "record", "BTC/USDT", "--exchange", "sim", "--from", "2021-01-02",
        "--to", "2021-01-04", "-o", str(tape), "--force",
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.stderr
    changed = run(capsys, "audit", backtest_id, "--journal", journal, "--sample", "5")
    assert changed.exit_code == 2
    assert f"the tape {tape} is sha256:" in changed.stderr
    assert f"backtest {backtest_id} read" in changed.stderr


def test_ctrl_c_during_the_replays_ends_the_audit_and_stores_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import asyncio
    import signal

    from rez_cli.audit.run import AuditOptions, AuditProgress, audit_stored
    from rez_cli.config.settings import load_settings

    journal = tmp_path / "journal.sqlite"
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--from", "2021-01-01",
        "--to", "2021-01-03", "--journal", str(journal), "--json",
    )  # fmt: skip
    backtest_id = result.json_lines()[0]["backtest_id"]
    seen: list[int] = []

    def on_progress(progress: AuditProgress) -> None:
        seen.append(progress.done)
        if progress.done == 3:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends; asyncio.run cancels the audit

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            audit_stored(load_settings().value, journal, backtest_id, AuditOptions(), on_progress=on_progress)
        )
    assert seen == [1, 2, 3]
    with Journal(journal) as opened:
        assert opened.backtests().load(backtest_id).grade is None


def test_backtest_with_audit_prints_the_grade_after_the_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = str(tmp_path / "journal.sqlite")
    span = ("--exchange", "sim", "--mode", "rules", "--from", "2021-01-01", "--to", "2021-01-01T12:00")
    result = run(capsys, "backtest", "BTC/USDT", *span, "--journal", journal, "--audit")
    assert result.exit_code == 0, result.stderr
    summary, _, audit = result.stdout.partition("grade ")
    assert "buy & hold" in summary
    assert audit.splitlines()[0].startswith(("A · backtest bt-", "B · backtest bt-", "C · backtest bt-"))
    assert "memorisation probe: skipped (no model to probe)" in audit
    assert "shifted: dates moved -4 years (-1461 days)" in audit
    result = run(capsys, "backtest", "BTC/USDT", *span, "--journal", journal, "--audit", "--json")
    payload = result.json_lines()[0]
    with Journal(Path(journal)) as opened:
        stored = opened.backtests().load(payload["backtest_id"])
    assert payload["audit"]["grade"] == stored.grade
    assert payload["audit"]["reasons"] == stored.grade_reasons


def test_the_audit_view_shows_text_from_the_journal_as_data() -> None:
    import io

    from rich.console import Console

    from rez_cli.cli.audit_cmd import audit_view

    audit = {
        "backtest_id": "bt-1",
        "grade": "D",
        "reasons": ["D: memorisation probe: it continued 2 of 2 real windows"],
        "symbol": "[red]X\x1b[2J/USD",
        "mode": "react",
        "model": "m[bold]",
        "from": "2021-01-01T00:00:00Z",
        "to": "2021-01-08T00:00:00Z",
        "training_cutoff": {"date": None, "source": "no model"},
        "cutoff_split": {"before": None, "after": None},
        "regimes": None,
        "altered": {"results": []},
        "probe": {"skipped": "--probes 0"},
    }
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(audit_view(audit))
    text = out.getvalue()
    assert "grade D · backtest bt-1 · [red]X␛[2J/USD · react (m[bold]) · 2021-01-01 → 2021-01-08" in text
    assert "\x1b" not in text
    assert "  D: memorisation probe: it continued 2 of 2 real windows" in text
    assert "memorisation probe: skipped (--probes 0)" in text


def test_cycles_at_a_gap_in_the_candles_are_replayed_on_the_candle_after_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Real Binance data has outages (2021-04-20 01:00-04:00 in the 1h candles): the cycle that stands
    # at the gap trades on the first candle after it, and so must its replay on every copy.
    real = Path(__file__).parents[1] / "fixtures" / "binance_btc_1h" / "BTC_USDT-1h.csv"
    lines = real.read_text().splitlines()
    data = tmp_path / "data"
    data.mkdir()
    gap = (lines[0], *lines[1:351], *lines[353:])  # two candles missing, late enough for the warm-up
    (data / "BTC_USDT-1h.csv").write_text("\n".join(gap) + "\n")
    journal = str(tmp_path / "journal.sqlite")
    span = ["--data", str(data), "--timeframes", "1h", "--mode", "rules"]
    span += ["--from", "2021-03-07T16:00", "--to", "2021-03-08T02:00"]
    result = run(capsys, "backtest", "BTC/USDT", *span, "--journal", journal, "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json_lines()[0]
    gap_opens_ms = int(lines[351].split(",")[0])
    assert gap_opens_ms in [row["timestamp"] for row in report["decisions"]]

    audit = run(capsys, "audit", report["backtest_id"], "--journal", journal, "--sample", "100", "--json")
    assert audit.exit_code == 0, audit.stderr
    copies = {row["copy"]: row for row in audit.json_lines()[0]["altered"]["results"]}
    assert all(row["errors"] == 0 for row in copies.values()), copies
    assert copies["anonymised"]["decisions_changed"] == 0
