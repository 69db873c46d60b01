"""``rez score`` as a user runs it, on a journal that ``rez decide`` wrote: sim and files markets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rez_cli.journal.store import Journal
from rez_cli.market.candles import parse_time
from rez_cli.market.sim import SimSource
from rez_cli.scoring.judge import judge_hold, judge_trade, to_candles
from tests.support.candles import START_MS, make_candles
from tests.support.cli import run

HOUR = 3_600_000
BUY_AS_OF = "2021-03-01T12:00"  # the rules mode buys BTC/USDT on the sim market here
HOLD_AS_OF = "2021-03-05T12:00"  # and holds ETH/USDT here


def decide(capsys: pytest.CaptureFixture[str], journal: Path, symbol: str, *args: str) -> dict[str, object]:
    result = run(capsys, "decide", symbol, "--mode", "rules", "--json", "--journal", str(journal), *args)
    assert result.exit_code == 0, result.stderr
    [decision] = result.json_lines()
    return decision


@pytest.fixture
def sim_journal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    journal = tmp_path / "j.sqlite"
    decide(capsys, journal, "BTC/USDT", "--exchange", "sim", "--as-of", BUY_AS_OF)
    decide(capsys, journal, "ETH/USDT", "--exchange", "sim", "--as-of", HOLD_AS_OF)
    return journal


def test_score_json_judges_sim_decisions_on_the_candles_after_them(
    capsys: pytest.CaptureFixture[str], sim_journal: Path
) -> None:
    result = run(capsys, "score", "--journal", str(sim_journal), "--json")
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    assert report["horizon"] == 24
    assert report["new"] == 2
    assert report["pending"] == []
    assert report["failures"] == []
    by_symbol = {item["symbol"]: item for item in report["scores"]}
    buy, hold = by_symbol["BTC/USDT"], by_symbol["ETH/USDT"]
    assert buy["action"] == "buy"
    assert hold["action"] == "hold"
    assert buy["simulated"] is True

    # The same judgement worked out here from the sim's candles after each decision.
    sim = SimSource()
    for item, as_of in ((buy, BUY_AS_OF), (hold, HOLD_AS_OF)):
        as_of_ms = parse_time(as_of)
        frame = sim.candles(item["symbol"], "1h", 24, as_of_ms + 24 * HOUR)
        future = to_candles(frame)
        assert future[0].ts_ms == as_of_ms
        if item is buy:
            details = buy["details"]
            expected = judge_trade(
                1, details["tp_price"], details["sl_price"], future, horizon=24, timeframe_ms=HOUR
            )
            assert expected is not None
            assert buy["outcome"] == expected.outcome
            assert buy["r_multiple"] == pytest.approx(expected.r_multiple)
        else:
            held = judge_hold(
                future, distance=hold["details"]["naive"]["distance"], horizon=24, timeframe_ms=HOUR
            )
            assert held is not None
            assert hold["outcome"] == held.outcome
            assert hold["r_multiple"] == pytest.approx(held.missed_r)

    [group_btc, group_eth] = report["groups"]
    assert (group_btc["symbol"], group_btc["trades"], group_btc["holds"]) == ("BTC/USDT", 1, 0)
    assert (group_eth["symbol"], group_eth["trades"], group_eth["holds"]) == ("ETH/USDT", 0, 1)
    assert len(report["calibration"]["buckets"]) == 5
    decided = buy["outcome"] in ("tp_first", "sl_first")
    assert report["calibration"]["count"] == int(decided)

    # Stored: the next run judges nothing again, and the model's memory shows the outcome.
    again = run(capsys, "score", "--journal", str(sim_journal), "--json")
    assert again.exit_code == 0
    [second] = again.json_lines()
    assert second["new"] == 0
    assert [item["outcome"] for item in second["scores"]] == [item["outcome"] for item in report["scores"]]
    with Journal(sim_journal, create=False) as journal:
        [memory] = journal.recent("BTC/USDT", exchange="sim")
    assert memory["outcome"] == buy["details"]["summary"]
    assert memory["outcome"].startswith(buy["outcome"])


def test_score_tables_name_the_groups_and_the_calibration(
    capsys: pytest.CaptureFixture[str], sim_journal: Path
) -> None:
    result = run(capsys, "score", "--journal", str(sim_journal))
    assert result.exit_code == 0, result.stderr
    assert "2 decisions scored (2 new), 0 pending" in result.stdout
    assert "SIMULATED" in result.stdout
    for text in ("BTC/USDT", "ETH/USDT", "rules", "moderate", "hit rate", "calibration", "0.8-1.0", "Brier"):
        assert text in result.stdout
    assert result.stderr == ""


def test_symbol_and_since_filter_what_is_scored(
    capsys: pytest.CaptureFixture[str], sim_journal: Path
) -> None:
    only_eth = run(capsys, "score", "--journal", str(sim_journal), "--symbol", "ETH/USDT", "--json")
    assert [item["symbol"] for item in only_eth.json_lines()[0]["scores"]] == ["ETH/USDT"]
    later = run(capsys, "score", "--journal", str(sim_journal), "--since", "2021-03-03", "--json")
    assert [item["symbol"] for item in later.json_lines()[0]["scores"]] == ["ETH/USDT"]


def test_files_decisions_need_data_and_stay_pending_until_their_horizon(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make_candles(600, seed=5).to_csv(data / "BTC_USDT-1h.csv", index=False)  # 25 days of 1h
    config = tmp_path / "rez.toml"
    config.write_text('[market]\ncontext_timeframes = ["1h", "4h"]\n')
    journal = tmp_path / "j.sqlite"
    as_of = START_MS + 400 * HOUR  # 200 candles of the data come after it
    decide(capsys, journal, "BTC/USDT", "--data", str(data), "--config", str(config), "--as-of", str(as_of))

    without = run(capsys, "score", "--journal", str(journal), "--json")
    assert without.exit_code == 2
    [report] = without.json_lines()
    assert report["scores"] == []
    [failure] = report["failures"]
    assert "pass --data" in failure["message"]
    assert "decided on candles from files" in without.stderr
    assert len(without.stderr.strip().splitlines()) == 1

    pending = run(
        capsys, "score", "--journal", str(journal), "--data", str(data), "--horizon", "300", "--json"
    )
    assert pending.exit_code == 0, pending.stderr
    [report] = pending.json_lines()
    [item] = report["pending"]
    assert (item["candles"], item["due_ms"]) == (200, as_of + 300 * HOUR)
    assert report["scores"] == []

    final = run(capsys, "score", "--journal", str(journal), "--data", str(data), "--json")
    assert final.exit_code == 0, final.stderr
    [report] = final.json_lines()
    [score] = report["scores"]
    assert score["outcome"] in ("tp_first", "sl_first", "neither")
    assert score["exchange"] == "files"


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = run(capsys, "score", "--journal", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 2
    assert missing.stderr.startswith("rez: error: no journal at")
    assert not (tmp_path / "none.sqlite").exists()
    journal = tmp_path / "j.sqlite"
    Journal(journal).close()
    bad_since = run(capsys, "score", "--journal", str(journal), "--since", "yesterday")
    assert bad_since.exit_code == 2
    assert "cannot read 'yesterday' as a date" in bad_since.stderr
    empty = run(capsys, "score", "--journal", str(journal))
    assert empty.exit_code == 0
    assert "no live decision to score" in empty.stderr


def test_scoring_the_sim_never_asks_for_candles_after_now(sim_journal: Path) -> None:
    """The sim has candles up to 2047: "now" must bound what counts as having happened."""
    from rez_cli.config.settings import load_settings
    from rez_cli.scoring.run import ScoreRequest, score_journal

    settings = load_settings(None).value
    with Journal(sim_journal, create=False) as journal:
        report = asyncio.run(
            score_journal(journal, settings, ScoreRequest(), now_ms=parse_time(BUY_AS_OF) + 5 * HOUR)
        )
    assert {(item.symbol, item.candles) for item in report.pending} == {("BTC/USDT", 5), ("ETH/USDT", 0)}
    assert report.scores == []
