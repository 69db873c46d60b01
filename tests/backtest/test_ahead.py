"""Markets read ahead in a second process change nothing: the same cycles, decisions and journal.

A rules backtest forks a process that reads each moment's context, text, candle fingerprints and the
rules mode's tool answers before the walk reaches it (``rez_cli.backtest.ahead``). Here the same
backtest runs with it and without it; every cycle must read byte-identical inputs, make a
byte-identical decision, and be journaled the same. If the process dies mid-walk, the walk reads the
rest itself and still ends the same.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rez_cli.backtest.ahead import MIN_MOMENTS
from rez_cli.backtest.walk import BacktestReport, BacktestRequest, run_backtest
from rez_cli.config.settings import load_profile, load_settings
from rez_cli.cycle.orchestrator import EventResult
from rez_cli.journal.store import Journal
from tests.backtest.test_lookahead import DAY, QUARTER, decision, inputs, trace_json, write
from tests.support.candles import START_MS, make_candles

# Only Linux forks the second process (elsewhere every market is read in its cycle).
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="markets are read ahead on Linux only")

DAYS = 24
# What differs between two runs of the same cycles: ids, and times measured.
VOLATILE = frozenset(
    (
        "trace_id",
        "decision_id",
        "backtest_id",
        "run_id",
        "duration_ms",
        "timings_ms",
        "started_ms",
        "finished_ms",
    )
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(make_candles(DAYS * 96, seed=31, timeframe_ms=QUARTER), tmp_path_factory.mktemp("ahead"))


def backtest(
    data: Path,
    journal: Path,
    *,
    ahead: bool,
    on_cycle: Callable[[EventResult], None] | None = None,
) -> tuple[BacktestReport, list[EventResult]]:
    results: list[EventResult] = []

    def seen(result: EventResult) -> None:
        results.append(result)
        if on_cycle is not None:
            on_cycle(result)

    request = BacktestRequest(
        symbol="BTC/USDT",
        start_ms=START_MS + 13 * DAY,
        end_ms=START_MS + DAYS * DAY,
        mode="rules",
        data=data,
        journal=journal,
        ahead=ahead,
    )
    settings, profile = load_settings().value, load_profile("moderate").value
    report = asyncio.run(run_backtest(settings, profile, request, on_cycle=seen))
    return report, results


def stable(value: Any) -> Any:
    """JSON without what differs between two runs of the same cycles (``VOLATILE``)."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def journaled(path: Path, report: BacktestReport) -> list[str]:
    """Every cycle of the backtest as the journal gives it back, in order."""
    journal = Journal(path)
    try:
        rows = journal.list_cycles(limit=None)
        cycles = [
            journal.get_cycle(row["trace_id"]) for row in rows if row["backtest_id"] == report.backtest_id
        ]
    finally:
        journal.close()
    cycles.sort(key=lambda cycle: cycle["as_of_ms"])
    return [json.dumps(stable(cycle), sort_keys=True, default=str) for cycle in cycles]


def test_markets_read_ahead_change_no_cycle(data_dir: Path, tmp_path: Path) -> None:
    ahead_report, ahead_cycles = backtest(data_dir, tmp_path / "ahead.db", ahead=True)
    local_report, local_cycles = backtest(data_dir, tmp_path / "local.db", ahead=False)
    # The second process read every cycle's market, and the other run read none that way.
    assert ahead_report.read_ahead == len(ahead_cycles) > MIN_MOMENTS
    assert local_report.read_ahead == 0
    assert {row["action"] for row in ahead_report.strategy.decisions} >= {"hold", "buy"}
    assert len(ahead_cycles) == len(local_cycles)
    for i, (ahead, local) in enumerate(zip(ahead_cycles, local_cycles, strict=True)):
        assert inputs(ahead) == inputs(local), f"cycle {i} read another market"
        assert decision(ahead_report.strategy.decisions[i]) == decision(local_report.strategy.decisions[i])
        assert stable(trace_json(ahead)) == stable(trace_json(local)), f"cycle {i} traced otherwise"
    metrics = ahead_report.strategy.metrics.as_dict(), local_report.strategy.metrics.as_dict()
    assert json.dumps(metrics[0]) == json.dumps(metrics[1])
    ahead_journal = journaled(tmp_path / "ahead.db", ahead_report)
    assert ahead_journal == journaled(tmp_path / "local.db", local_report)
    assert len(ahead_journal) == len(ahead_cycles)


def test_a_second_process_that_dies_leaves_its_moments_to_the_walk(data_dir: Path, tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_it(result: EventResult) -> None:
        children = multiprocessing.active_children()
        if len(killed) == 0 and children:
            os.kill(children[0].pid or 0, signal.SIGKILL)
            children[0].join()
            killed.append(children[0].pid or 0)

    ahead_report, ahead_cycles = backtest(data_dir, tmp_path / "ahead.db", ahead=True, on_cycle=kill_it)
    local_report, local_cycles = backtest(data_dir, tmp_path / "local.db", ahead=False)
    assert killed
    # It had sent a chunk or two before it died; the walk read the rest itself.
    assert 0 < ahead_report.read_ahead < len(ahead_cycles)
    assert ahead_report.stopped is None
    for i, (ahead, local) in enumerate(zip(ahead_cycles, local_cycles, strict=True)):
        assert inputs(ahead) == inputs(local), f"cycle {i} read another market"
        assert decision(ahead_report.strategy.decisions[i]) == decision(local_report.strategy.decisions[i])
    assert journaled(tmp_path / "ahead.db", ahead_report) == journaled(tmp_path / "local.db", local_report)


def test_no_process_is_left_behind(data_dir: Path, tmp_path: Path) -> None:
    report, cycles = backtest(data_dir, tmp_path / "ahead.db", ahead=True)
    assert report.read_ahead == len(cycles)
    assert multiprocessing.active_children() == []


def test_ctrl_c_in_a_terminal_stops_both_processes_with_the_partial_result(tmp_path: Path) -> None:
    # A terminal sends Ctrl-C's SIGINT to every process of the foreground group: the walk's and the
    # one reading ahead. The walk keeps what it did; the other goes quietly.
    rez = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rez_cli",
            "backtest",
            "BTC/USDT",
            "--from",
            "2021-01-01",
            "--to",
            "2022-06-01",
            "--mode",
            "rules",
            "--exchange",
            "sim",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "REZ_HOME": str(tmp_path / "home")},
    )
    children = Path(f"/proc/{rez.pid}/task/{rez.pid}/children")
    deadline = time.monotonic() + 60
    # The walk is under way once its second process is there.
    while rez.poll() is None and not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    helper = int(children.read_text().split()[0])
    time.sleep(0.5)
    os.killpg(rez.pid, signal.SIGINT)
    stdout, stderr = rez.communicate(timeout=60)
    assert rez.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["stopped"] == "interrupted"
    assert 0 < report["metrics"]["cycles"] < 12_000
    assert "Traceback" not in stderr
    # The helper was stopped and waited for, not left behind.
    assert not Path(f"/proc/{helper}").exists()
