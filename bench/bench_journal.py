"""How many bytes a rules backtest's cycle takes in the journal, and what writing it costs.

    python bench/bench_journal.py [--candles 2000]

Runs ``run_backtest`` (the library call behind ``rez backtest``) in rules mode on the seeded ``sim``
market, one cycle per closed 1h candle, into a fresh ``REZ_HOME``, and divides the journal's size once
the run is over (its file; the write-ahead log is folded back when the journal closes) by the number
of cycles. Goal: 3 KB per cycle at most (a six-month backtest, 4,320 cycles, wrote 41 MB before
backtest cycles were stored in blobs). Exit 1 when it is missed.

For comparison, the same cycles (the very objects the recorder was handed) are then written again,
in a loop of their own, into a new journal as a backtest and into another as live cycles, whose
payload stays in the columns of their rows: what every cycle cost before. Each loop is timed (the
best of three, CPU time, so that another process on the machine counts less).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_BYTES = 3 * 1024
START = "2021-01-01"
HOUR_MS = 3_600_000
Call = tuple[str, str, dict[str, Any]]


def backtest(candles: int) -> tuple[Path, list[Call], float]:
    """Run the backtest; its journal, the recorder's calls, and the seconds spent in them."""
    from rez_cli.backtest.walk import BacktestRequest, run_backtest
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.journal import JournalRecorder
    from rez_cli.market.candles import parse_time

    calls: list[Call] = []
    spent = [0.0]
    originals = {name: getattr(JournalRecorder, name) for name in ("cycle_started", "cycle_finished")}

    def spy(name: str) -> Any:
        def recorded(self: JournalRecorder, trace_id: str, **kwargs: Any) -> None:
            calls.append((name, trace_id, kwargs))
            started = time.perf_counter()
            try:
                originals[name](self, trace_id, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return recorded

    start_ms = parse_time(START)
    request = BacktestRequest(
        symbol="BTC/USDT",
        start_ms=start_ms,
        end_ms=start_ms + candles * HOUR_MS,
        timeframe="1h",
        mode="rules",
        exchange="sim",
    )
    for name in originals:
        setattr(JournalRecorder, name, spy(name))
    try:
        settings, profile = load_settings().value, load_profile("moderate").value
        report = asyncio.run(run_backtest(settings, profile, request))
    finally:
        for name, original in originals.items():
            setattr(JournalRecorder, name, original)
    if report.stopped is not None:
        raise SystemExit(f"the backtest did not complete: {report.stopped}")
    return report.journal, calls, spent[0]


def rewrite(calls: list[Call], path: Path, backtest_id: str | None) -> float:
    """Write ``calls`` again into a new journal at ``path``, as a backtest or (``backtest_id`` None)
    as live cycles; the CPU seconds the best of three runs took."""
    from rez_cli.journal import Journal

    best = float("inf")
    for _ in range(3):
        path.unlink(missing_ok=True)
        with Journal(path) as journal:
            run_id = journal.start_run("bench", [], config_hash="c", profile_hash="p", versions={})
            recorder = journal.recorder(run_id, backtest_id=backtest_id)
            started = time.process_time()
            with journal.batched():
                for name, trace_id, kwargs in calls:
                    getattr(recorder, name)(trace_id, **kwargs)
            best = min(best, time.process_time() - started)
    return best


def by_table(path: Path) -> str:
    """Where the bytes are, largest first (SQLite's dbstat, when this SQLite has it)."""
    try:
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 5"
            ).fetchall()
    except sqlite3.OperationalError:
        return "(this SQLite has no dbstat)"
    return ", ".join(f"{name} {size / 1024:,.0f} KiB" for name, size in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rez-bench-") as home:
        # A fresh journal, config and cache; the user's own config and keys stay out of it.
        for name in [name for name in os.environ if name.startswith(("REZ_", "OPENAI_"))]:
            del os.environ[name]
        os.environ["REZ_HOME"] = home
        journal, calls, in_run_s = backtest(args.candles)
        cycles = sum(1 for name, _, _ in calls if name == "cycle_finished")
        packed = journal.stat().st_size
        packed_s = rewrite(calls, Path(home) / "as-backtest.sqlite", "bt-bench")
        inline_path = Path(home) / "as-live.sqlite"
        inline_s = rewrite(calls, inline_path, None)
        inline = inline_path.stat().st_size
        print(f"rules backtest, sim BTC/USDT, {args.candles:,} 1h candles: {cycles:,} cycles journaled")
        print(
            f"  as backtest cycles (blobs): {packed / cycles:8,.0f} bytes per cycle, {packed / 1e6:6.1f} MB; "
            f"writes {packed_s / cycles * 1000:.2f} ms CPU per cycle"
            f" ({in_run_s / cycles * 1000:.2f} ms wall in the backtest)"
        )
        print(f"    {by_table(journal)}")
        print(
            f"  the same as live cycles:    {inline / cycles:8,.0f} bytes per cycle, {inline / 1e6:6.1f} MB; "
            f"writes {inline_s / cycles * 1000:.2f} ms CPU per cycle"
        )
        print(f"  a six-month backtest (4,320 cycles): about {packed / cycles * 4320 / 1e6:.1f} MB")
    ok = packed / cycles <= GOAL_BYTES
    print(f"  goal <= 3 KB per cycle: {'ok' if ok else 'MISSED'} ({packed / cycles / 1024:.2f} KB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
