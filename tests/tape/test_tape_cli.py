"""``rez tape`` and ``rez backtest --tape`` as a user runs them, on the sim market."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from rez_cli.journal.store import Journal
from rez_cli.market.candles import parse_time
from rez_cli.tape import load_tape
from tests.support.cli import Result, run

HOUR = 3_600_000


def record(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> Result:
    return run(capsys, "tape", "record", "BTC/USDT", "--exchange", "sim", "--json", "-o", str(out), *args)


def only_line(result: Result) -> dict[str, Any]:
    lines = result.json_lines()
    assert len(lines) == 1, result
    return lines[0]


def decisions(report: dict[str, Any]) -> list[dict[str, Any]]:
    # Trace ids are new on every run; everything else a cycle decided must be the same.
    return [{key: value for key, value in row.items() if key != "trace_id"} for row in report["decisions"]]


def one_line_exit_2(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_record_prints_the_hash_that_show_verifies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "btc.tape"
    recorded = only_line(record(capsys, out, "--from", "2021-02-01", "--to", "2021-02-03", "--every", "2"))
    assert recorded["hash"].startswith("sha256:")
    assert recorded["moments"] == 24
    assert set(recorded["candles"]) == {"15m", "1h", "4h"}
    shown = run(capsys, "tape", "show", str(out), "--json")
    assert shown.exit_code == 0, shown
    payload = only_line(shown)
    assert payload["hash"] == recorded["hash"]
    assert payload["verified"] is True
    assert payload["meta"]["moments"][:2] == [parse_time("2021-02-01"), parse_time("2021-02-01") + 2 * HOUR]
    human = run(capsys, "tape", "show", str(out))
    assert recorded["hash"] in human.stdout
    assert "(verified)" in human.stdout
    assert "SIMULATED" in human.stdout


def test_record_refuses_to_overwrite_without_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "btc.tape"
    out.write_text("precious")
    refused = record(capsys, out, "--from", "2021-02-01", "--to", "2021-02-02")
    one_line_exit_2(refused, "exists", "--force")
    assert out.read_text() == "precious"
    forced = record(capsys, out, "--from", "2021-02-01", "--to", "2021-02-02", "--force")
    assert forced.exit_code == 0, forced
    assert load_tape(out).hash == only_line(forced)["hash"]


def test_backtest_over_a_tape_decides_as_over_the_market_itself(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    span = ("--from", "2021-03-01", "--to", "2021-03-06")
    out = tmp_path / "btc.tape"
    assert record(capsys, out, *span, "--every", "3").exit_code == 0
    common = ("--mode", "rules", "--json")
    direct = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", *span, "--every", "3", *common,
        "--journal", str(tmp_path / "direct.sqlite"),
    )  # fmt: skip
    taped = run(capsys, "backtest", "--tape", str(out), *common, "--journal", str(tmp_path / "tape.sqlite"))
    assert direct.exit_code == taped.exit_code == 0, (direct, taped)
    want, got = only_line(direct), only_line(taped)
    assert got["exchange"] == "tape"
    assert got["simulated"] is True
    assert [row["timestamp"] for row in got["decisions"]] == list(load_tape(out).meta.moments)
    assert decisions(got) == decisions(want)
    assert got["metrics"] == want["metrics"]
    assert got["baselines"] == want["baselines"]


def test_backtest_tape_refuses_options_the_tape_sets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "btc.tape"
    assert record(capsys, out, "--from", "2021-02-01", "--to", "2021-02-02").exit_code == 0
    clash = run(capsys, "backtest", "--tape", str(out), "--from", "2021-01-01", "--exchange", "sim")
    one_line_exit_2(clash, "--tape", "--from", "--exchange")
    other = run(capsys, "backtest", "ETH/USDT", "--tape", str(out))
    one_line_exit_2(other, "holds BTC/USDT")
    missing = run(capsys, "backtest", "--exchange", "sim")
    one_line_exit_2(missing, "symbol")


@pytest.fixture
def saved(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    out = tmp_path / "btc.tape"
    assert record(capsys, out, "--from", "2021-02-01", "--to", "2021-02-02").exit_code == 0
    return out


def rewrite(path: Path, edit: Any) -> None:
    doc = json.loads(gzip.decompress(path.read_bytes()))
    edit(doc)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_show_and_backtest_refuse_a_truncated_tape(capsys: pytest.CaptureFixture[str], saved: Path) -> None:
    saved.write_bytes(saved.read_bytes()[:-100])
    one_line_exit_2(run(capsys, "tape", "show", str(saved)), "truncated")
    one_line_exit_2(run(capsys, "backtest", "--tape", str(saved), "--mode", "rules"), "truncated")


def test_show_refuses_a_corrupt_tape(capsys: pytest.CaptureFixture[str], saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[len(data) // 3] ^= 0x55
    saved.write_bytes(bytes(data))
    one_line_exit_2(run(capsys, "tape", "show", str(saved)), "corrupt")


def test_show_refuses_a_file_that_is_not_a_tape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "candles.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")
    one_line_exit_2(run(capsys, "tape", "show", str(path)), "not a tape")


def test_show_refuses_an_edited_candle(capsys: pytest.CaptureFixture[str], saved: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["frames"]["1h"]["high"][-1] *= 1.5

    rewrite(saved, edit)
    one_line_exit_2(run(capsys, "tape", "show", str(saved)), "does not match its hash")
    one_line_exit_2(run(capsys, "backtest", "--tape", str(saved), "--mode", "rules"), "does not match")


def test_show_refuses_a_future_format_version(capsys: pytest.CaptureFixture[str], saved: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["version"] = 7

    rewrite(saved, edit)
    one_line_exit_2(run(capsys, "tape", "show", str(saved)), "version 7", "upgrade")


def test_show_prints_a_hostile_symbol_as_text(capsys: pytest.CaptureFixture[str], saved: Path) -> None:
    from rez_cli.tape import save_tape

    hostile = load_tape(saved).altered(symbol="\x1b[2J[red]EVIL[/red]/USD")
    save_tape(hostile, saved, overwrite=True)
    shown = run(capsys, "tape", "show", str(saved))
    assert shown.exit_code == 0, shown
    assert "\x1b" not in shown.stdout
    assert "[red]EVIL[/red]" in shown.stdout


def decide(capsys: pytest.CaptureFixture[str], journal: Path, symbol: str, as_of: str) -> None:
    result = run(
        capsys, "decide", symbol, "--exchange", "sim", "--mode", "rules", "--as-of", as_of,
        "--journal", str(journal), "--json",
    )  # fmt: skip
    assert result.exit_code in (0, 3), result


def test_from_journal_takes_the_live_cycles_moments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    for as_of in ("2021-04-01T10:20", "2021-04-01T13:05", "2021-04-02T09:00", "2021-04-02T09:05"):
        decide(capsys, journal, "BTC/USDT", as_of)
    # A backtest's cycles in the same journal are not live cycles.
    backtest = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--from", "2021-04-01",
        "--to", "2021-04-02", "--journal", str(journal), "--json", "--no-baselines",
    )  # fmt: skip
    assert backtest.exit_code == 0, backtest
    with Journal(journal, create=False) as opened:
        live = sorted(
            {cycle["as_of_ms"] for cycle in opened.list_cycles(limit=None) if cycle["backtest_id"] is None}
        )
    assert len(live) == 3  # 09:00 and 09:05 saw the same last closed candle (15m): one moment
    out = tmp_path / "live.tape"
    made = run(
        capsys, "tape", "from-journal", "--since", "2021-04-01", "--journal", str(journal),
        "-o", str(out), "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made
    tape = load_tape(out)
    assert list(tape.meta.moments) == live
    assert tape.meta.origin == "journal"
    assert only_line(made)["hash"] == tape.hash
    later = run(
        capsys, "tape", "from-journal", "--since", "2021-04-02", "--journal", str(journal),
        "-o", str(tmp_path / "later.tape"), "--json",
    )  # fmt: skip
    assert load_tape(tmp_path / "later.tape").meta.moments == tuple(
        m for m in live if m >= parse_time("2021-04-02")
    )
    assert later.exit_code == 0
    walked = run(
        capsys, "backtest", "--tape", str(out), "--mode", "rules", "--json", "--journal", str(journal)
    )
    assert walked.exit_code == 0, walked
    assert [row["timestamp"] for row in only_line(walked)["decisions"]] == live


def test_from_journal_with_several_symbols_asks_for_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    decide(capsys, journal, "BTC/USDT", "2021-04-01T10:00")
    decide(capsys, journal, "ETH/USDT", "2021-04-01T11:00")
    out = tmp_path / "live.tape"
    args = ("tape", "from-journal", "--since", "2021-03-01", "--journal", str(journal), "-o", str(out))
    one_line_exit_2(run(capsys, *args), "2 symbols", "--symbol")
    assert not out.exists()
    chosen = run(capsys, *args, "--symbol", "ETH/USDT", "--json")
    assert chosen.exit_code == 0, chosen
    assert load_tape(out).meta.symbol == "ETH/USDT"


def test_from_journal_without_live_cycles_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    decide(capsys, journal, "BTC/USDT", "2021-04-01T10:00")
    result = run(
        capsys, "tape", "from-journal", "--since", "2021-05-01", "--journal", str(journal),
        "-o", str(tmp_path / "x.tape"),
    )  # fmt: skip
    one_line_exit_2(result, "no live cycle")
