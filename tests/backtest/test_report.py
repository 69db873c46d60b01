"""``rez backtest --report``: a self-contained HTML page, and a clear error without the extra."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from rez_cli.backtest.report import drawdown_pct
from rez_cli.journal.store import Journal, default_journal_path
from tests.support.cli import run

SPAN = ("--from", "2021-01-01", "--to", "2021-01-03")


def test_report_page_is_written_and_loads_nothing_from_the_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", *SPAN, "--every", "2",
        "--json", "--report", str(page),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()  # --json still prints exactly one object on stdout
    assert f"report written to {page}" in result.stderr
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # Self-contained: plotly.js is inlined; no script, stylesheet, image or font is fetched. (The
    # inlined library mentions map-tile URLs in its defaults; a chart without maps never loads them.)
    assert re.search(r"<script[^>]*\bsrc\s*=", text) is None
    assert re.search(r"<link[^>]*\bhref\s*=", text) is None
    assert re.search(r"<img[^>]*\bsrc\s*=\s*['\"]?https?:", text) is None
    assert "@import" not in text
    assert "Plotly.newPlot" in text
    for label in (
        "BTC/USDT",
        "SIMULATED",
        "buy &amp; hold",
        "equity: strategy",
        "drawdown %",
        "total return",
    ):
        assert label in text
    assert report["backtest_id"] in text
    assert report["metrics"]["trades"] > 0
    assert "long entry" in text or "short entry" in text
    # The price line is the price each cycle saw, as journaled.
    with Journal(default_journal_path(), create=False) as journal:
        prices = journal.backtest_prices(report["backtest_id"])
    assert len(prices) == report["cycles"]
    assert [ts for ts, _ in prices] == [row["timestamp"] for row in report["decisions"]]
    assert "price at each cycle" in text


def test_without_plotly_report_is_a_one_line_error_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail, as if the extra were not installed.
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    page = tmp_path / "report.html"
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", *SPAN, "--report", str(page)
    )
    assert result.exit_code == 2
    assert result.stderr == "rez: error: --report needs plotly (pip install 'rez-cli[report]')\n"
    assert result.stdout == ""
    assert not page.exists()
    assert not default_journal_path().exists()  # the walk never started


def test_report_into_a_missing_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "no-such-dir" / "report.html"
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules",
        "--from", "2021-01-01", "--to", "2021-01-01T12:00", "--report", str(page),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"cannot write the report {page}" in result.stderr


def test_drawdown_is_the_fall_from_the_running_peak_in_percent() -> None:
    assert drawdown_pct([100.0, 110.0, 99.0, 121.0, 108.9]) == pytest.approx([0.0, 0.0, -10.0, 0.0, -10.0])
    assert drawdown_pct([]) == []
