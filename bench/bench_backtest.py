"""How fast a rules-mode backtest walks 10,000 1h candles, recomputing everything at every step.

    python bench/bench_backtest.py [--candles 10000] [--every 1] [--naive-samples 100]

Runs ``run_backtest`` (the library call behind ``rez backtest``) on the seeded ``sim`` market in rules
mode, one cycle per closed 1h candle: every cycle builds its context on 15m, 1h and 4h and makes the
rules mode's three ``fetch_indicator`` calls, all over the last 300 candles closed by its moment, and
journals itself (a fresh ``REZ_HOME``). Goal: under 20 s for 10,000 candles.

Then the naive loop: at each step, every indicator of the same cycle (the context's EMA 20, RSI 14 and
ATR 14 on each timeframe, and the rules mode's three) recomputed over the whole prefix of candles
closed by then instead of a 300-candle window. Its cost grows with the prefix, so it is timed on
``--naive-samples`` steps spread evenly over the span and the mean is multiplied by the number of
steps (evenly spaced samples of every prefix length: an unbiased estimate of the mean).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_S = 20.0
START = "2021-01-01"
HOUR_MS = 3_600_000


def run(candles: int, every: int) -> tuple[float, int, dict[str, float]]:
    """The backtest's wall time, its cycles, and its mean time per stage (ms) as the cycles measured it."""
    from rez_cli.backtest.walk import BacktestRequest, run_backtest
    from rez_cli.market.candles import parse_time
    from rez_cli.orchestrator import EventResult
    from rez_cli.settings import load_profile, load_settings

    start_ms = parse_time(START)
    stages: dict[str, float] = defaultdict(float)

    def on_cycle(result: EventResult) -> None:
        for stage, ms in result.metadata["decision"]["usage"]["timings_ms"].items():
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
    started = time.perf_counter()
    report = asyncio.run(
        run_backtest(load_settings().value, load_profile("moderate").value, request, on_cycle=on_cycle)
    )
    seconds = time.perf_counter() - started
    cycles = len(report.strategy.decisions)
    if report.stopped is not None or cycles == 0:
        raise SystemExit(f"the backtest did not complete: {report.stopped}")
    return seconds, cycles, {stage: total / cycles for stage, total in stages.items()}


def naive_step_s(candles: int, samples: int) -> tuple[float, float]:
    """Mean seconds per step of the naive loop and of the same indicators over 300-candle windows."""
    from rez_cli import indicators
    from rez_cli.context import build_context
    from rez_cli.market.candles import drop_unclosed, parse_time
    from rez_cli.market.sim import SimSource

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
    rules_calls = (
        ("4h", "ema", {"length": 20}),
        ("15m", "rsi", {"length": 14}),
        ("1h", "atr", {"length": 14}),
    )

    def step(moment: int, limit: int | None) -> float:
        began = time.perf_counter()
        cut = {}
        for tf, frame in frames.items():
            closed = drop_unclosed(frame, tf, moment)
            cut[tf] = closed if limit is None else closed.tail(limit).reset_index(drop=True)
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
        seconds, cycles, stages = run(args.candles, args.every)
    rate = args.candles / seconds
    print(f"rules backtest, sim BTC/USDT, {args.candles:,} 1h candles, a cycle every {args.every}: ", end="")
    print(f"{cycles:,} cycles")
    print(f"  wall {seconds:8.1f} s   {rate:8.0f} candles/s   {seconds / cycles * 1000:6.2f} ms per cycle")
    shown = ", ".join(f"{stage} {ms:.2f}" for stage, ms in sorted(stages.items(), key=lambda item: -item[1]))
    print(f"  inside a cycle (ms, as the cycle's own meter measured it): {shown}")
    verdict = "ok" if seconds < GOAL_S else "MISSED"
    print(f"  goal: {args.candles:,} candles in under {GOAL_S:g} s: {verdict}")

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
    return 0 if seconds < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
