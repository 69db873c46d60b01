"""How fast a rules-mode backtest walks 10,000 1h candles, recomputing everything from closed candles.

    python bench/bench_backtest.py [--candles 10000] [--every 1] [--naive-samples 100]

Runs ``run_backtest`` (the library call behind ``rez backtest``) on the seeded ``sim`` market in rules
mode, one cycle per closed 1h candle: every cycle builds its context on 15m, 1h and 4h and makes the
rules mode's three ``fetch_indicator`` calls, all over the last 300 candles closed by its moment, and
journals itself (a fresh ``REZ_HOME``). Goal: under 10 s for 10,000 candles, setup included, on an idle
machine.

Every value a cycle reads is computed from the window of candles closed by its moment, as if from
scratch; the backtest only avoids computing the same window twice (the history's ``IndicatorMemo``:
the tool calls reuse the context's EMA, RSI and ATR, and a 4h window serves four 1h cycles).
``tests/backtest/test_shared_indicators.py`` holds every cycle's inputs and decision equal to those of
a walk that recomputes everything with pandas-ta.

Without a model, the walk reads each moment's market (context, text, the rules mode's tool answers)
in a second process ahead of the cycles (``rez_cli/backtest/ahead.py``): two cores work on one
backtest.

Reported: wall time, candles per second, the mean time of each stage of a cycle (its own meter, the
stages read ahead included), how many cycles were read ahead, the walk's own memo's hit rate, and the
journal's writes (timed around the recorder's calls, which the cycle's
meter does not see: they are not the backtest's to speed up, see ``rez_cli/journal``).

Then the naive loop: at each step, every indicator of the same cycle (the context's EMA 20, RSI 14 and
ATR 14 on each timeframe, and the rules mode's three) recomputed over the whole prefix of candles
closed by then instead of a 300-candle window, with the same indicator code. Its cost grows with the
prefix, so it is timed on ``--naive-samples`` steps spread evenly over the span and the mean is
multiplied by the number of steps (evenly spaced samples of every prefix length: an unbiased estimate
of the mean).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_S = 10.0
GOAL_CANDLES = 10_000
START = "2021-01-01"
HOUR_MS = 3_600_000


@dataclass
class Measured:
    seconds: float
    cycles: int
    stages_ms: dict[str, float]
    journal_s: float
    memo_hits: int
    memo_misses: int
    setup_s: float
    read_ahead: int
    walk_cpu_s: float
    ahead_cpu_s: float


@contextmanager
def timing(owner: Any, names: tuple[str, ...], total: list[float]) -> Iterator[None]:
    """Add the wall time of every call of ``owner.<name>`` to ``total[0]``; behaviour unchanged."""
    originals = {name: getattr(owner, name) for name in names}

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - started

        return wrapper

    for name, function in originals.items():
        setattr(owner, name, timed(function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(owner, name, function)


def run(candles: int, every: int) -> Measured:
    """Run the backtest once; its wall time, cycles, mean stage times, journal time and memo use."""
    from rez_cli.backtest.history import HistorySource
    from rez_cli.backtest.walk import BacktestRequest, run_backtest
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.cycle.orchestrator import EventResult
    from rez_cli.journal.store import JournalRecorder
    from rez_cli.market.candles import parse_time

    start_ms = parse_time(START)
    stages: dict[str, float] = defaultdict(float)
    first_cycle: list[float] = []
    histories: list[HistorySource] = []

    def on_cycle(result: EventResult) -> None:
        if not first_cycle:
            first_cycle.append(time.perf_counter())
        assert result.decision is not None
        for stage, ms in result.decision.usage.timings_ms.items():
            stages[stage] += ms

    request = BacktestRequest(
        symbol="BTC/USDT",
        start_ms=start_ms,
        end_ms=start_ms + candles * HOUR_MS,
        timeframe="1h",
        every=every,
        mode="rules",
        exchange="sim",
    )
    journal = [0.0]
    original_init = HistorySource.__init__

    def remember(self: HistorySource, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        histories.append(self)

    HistorySource.__init__ = remember  # type: ignore[method-assign]  # only to read its memo's counters
    try:
        with timing(JournalRecorder, ("cycle_started", "cycle_finished", "turn_recorded"), journal):
            started = time.perf_counter()
            own, helpers = _cpu_s()
            settings, profile = load_settings().value, load_profile("moderate").value
            report = asyncio.run(run_backtest(settings, profile, request, on_cycle=on_cycle))
            seconds = time.perf_counter() - started
            own_after, helpers_after = _cpu_s()
    finally:
        HistorySource.__init__ = original_init  # type: ignore[method-assign]
    cycles = len(report.strategy.decisions)
    if report.stopped is not None or cycles == 0:
        raise SystemExit(f"the backtest did not complete: {report.stopped}")
    memo = histories[0].memo
    return Measured(
        seconds=seconds,
        cycles=cycles,
        stages_ms={stage: total / cycles for stage, total in stages.items()},
        journal_s=journal[0],
        memo_hits=memo.hits,
        memo_misses=memo.misses,
        setup_s=(first_cycle[0] - started) if first_cycle else 0.0,
        read_ahead=report.read_ahead,
        walk_cpu_s=own_after - own,
        ahead_cpu_s=helpers_after - helpers,
    )


def _cpu_s() -> tuple[float, float]:
    """CPU seconds of this process and of its finished children (the process reading ahead)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def naive_step_s(candles: int, samples: int) -> tuple[float, float]:
    """Mean seconds per step of the naive loop and of the same indicators over 300-candle windows."""
    import numpy as np

    from rez_cli import indicators
    from rez_cli.cycle.context import build_context
    from rez_cli.market.candles import parse_time
    from rez_cli.market.sim import SimSource
    from rez_cli.timeframes import timeframe_ms

    start_ms = parse_time(START)
    end_ms = start_ms + candles * HOUR_MS
    source = SimSource(seed=7)
    window = 300
    frames = {
        tf: source.candles("BTC/USDT", tf, count, end_ms)
        for tf, count in (
            ("15m", 4 * candles + 4 * window),
            ("1h", candles + window),
            ("4h", candles // 4 + window),
        )
    }
    closes = {tf: frame["timestamp"].to_numpy() + timeframe_ms(tf) for tf, frame in frames.items()}
    rules_calls = (
        ("4h", "ema", {"length": 20}),
        ("15m", "rsi", {"length": 14}),
        ("1h", "atr", {"length": 14}),
    )

    def step(moment: int, limit: int | None) -> float:
        began = time.perf_counter()
        cut = {}
        for tf, frame in frames.items():
            # The candles closed by the moment, cut as the backtest's history cuts them.
            end = int(np.searchsorted(closes[tf], moment, side="right"))
            cut[tf] = frame.iloc[:end] if limit is None else frame.iloc[max(0, end - limit) : end]
            cut[tf] = cut[tf].reset_index(drop=True)
        # No memo: every indicator of the step is computed, as a cycle without one would.
        build_context("BTC/USDT", "sim", cut, primary_timeframe="1h", simulated=True)
        for tf, name, params in rules_calls:
            indicators.compute(cut[tf], name, params)
        return time.perf_counter() - began

    moments = [start_ms + (i * candles // samples) * HOUR_MS for i in range(samples)]
    prefix = statistics.fmean(step(moment, None) for moment in moments)
    windowed = statistics.fmean(step(moment, window) for moment in moments)
    return prefix, windowed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--naive-samples", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rez-bench-") as home:
        # A fresh journal, config and cache; the user's own config and keys stay out of it.
        for name in [name for name in os.environ if name.startswith(("REZ_", "OPENAI_"))]:
            del os.environ[name]
        os.environ["REZ_HOME"] = home
        measured = run(args.candles, args.every)
    seconds, cycles = measured.seconds, measured.cycles
    print(f"rules backtest, sim BTC/USDT, {args.candles:,} 1h candles, a cycle every {args.every}: ", end="")
    print(f"{cycles:,} cycles")
    print(
        f"  wall {seconds:8.1f} s   {args.candles / seconds:8.0f} candles/s   "
        f"{seconds / cycles * 1000:6.2f} ms per cycle (setup before the first cycle {measured.setup_s:.1f} s)"
    )
    by_cost = sorted(measured.stages_ms.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{stage} {ms:.2f}" for stage, ms in by_cost)
    print(f"  inside a cycle (ms, as the cycle's own meter measured it): {shown}")
    print(
        f"  markets read ahead in a second process: {measured.read_ahead:,} of {cycles:,} cycles "
        "(their context stages are timed there)"
    )
    print(
        f"  CPU: the walk's process {measured.walk_cpu_s:.1f} s, the process reading ahead "
        f"{measured.ahead_cpu_s:.1f} s (the wall is the longer of the two when neither waits)"
    )
    looked_up = measured.memo_hits + measured.memo_misses
    if looked_up:
        print(
            f"  indicator memo of the walk's own process: {measured.memo_hits:,} of {looked_up:,} "
            f"look-ups answered from a window computed before ({measured.memo_hits / looked_up:.0%})"
        )
    journal_ms = measured.journal_s / cycles * 1000
    print(
        f"  journal writes: {measured.journal_s:6.1f} s, {journal_ms:.2f} ms per cycle "
        f"({measured.journal_s / seconds:.0%} of the wall)"
    )
    # The goal is a rate: a shorter run (--candles) is held to its share of the 10 s.
    goal_s = GOAL_S * args.candles / GOAL_CANDLES
    verdict = "ok" if seconds < goal_s else "MISSED"
    print(f"  goal: {args.candles:,} candles in under {goal_s:.3g} s: {verdict} ({seconds:.1f} s)")
    if seconds >= goal_s:
        rest = seconds - measured.journal_s
        print(f"    everything but the journal's writes: {rest:.1f} s (their cost is up to rez_cli/journal)")

    prefix, windowed = naive_step_s(args.candles, args.naive_samples)
    steps = cycles
    naive_total = prefix * steps
    print(
        f"naive loop: every indicator over the whole prefix at each step ({args.naive_samples} steps sampled)"
    )
    print(f"  {prefix * 1000:8.2f} ms per step on average -> about {naive_total:8.1f} s for {steps:,} steps")
    print(f"  the same indicators over 300-candle windows: {windowed * 1000:.2f} ms per step")
    print(f"  ratio naive / this backtest (whole cycles, journal included): {naive_total / seconds:5.2f}x")
    print(f"  ratio naive / windowed, indicators only:                       {prefix / windowed:5.2f}x")
    return 0 if seconds < goal_s else 1


if __name__ == "__main__":
    sys.exit(main())
