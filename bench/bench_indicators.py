"""What the indicators and the zero-shot context cost in CPU, with no network in the way.

    python bench/bench_indicators.py

Times ``compute`` of every allow-listed indicator (``rez_cli.indicators.INDICATORS``, default
parameters) on 1,000 seeded candles: the median of several rounds per indicator, after one untimed
call that pays for importing pandas-ta. Then the numpy versions of EMA, RSI and ATR against
pandas-ta on a cycle's 300-candle window (the same values, ``tests/indicators``), and
``build_context`` (+ its text) for three timeframes (15m, 1h, 4h) at the 300 candles a cycle uses by
default and at 1,000.

There is no goal to miss here; the ratios say where the time goes: each indicator's share of the
total, the slowest against the median indicator, the one-off import against a full pass, what each
numpy version saves against pandas-ta, and the context against the model round trip it precedes.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from rez_cli.cycle.context import build_context, context_text
from rez_cli.indicators import INDICATORS, compute
from tests.support.candles import make_candles

CANDLES = 1_000
ROUNDS = 7
WINDOW = 300
REPEATS = 50
CONTEXT_TIMEFRAMES = {"15m": 900_000, "1h": 3_600_000, "4h": 14_400_000}
# A fast hosted model takes about this long for one short answer: the context should be noise next to it.
MODEL_ROUND_TRIP_S = 1.0


def median_s(action: Callable[[], object], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_indicators() -> float:
    frame = make_candles(CANDLES, seed=11)
    started = time.perf_counter()
    compute(frame, "ema")  # imports pandas-ta-classic once; not part of any indicator's time
    import_s = time.perf_counter() - started
    timings = {name: median_s(functools.partial(compute, frame, name)) for name in INDICATORS}
    total = sum(timings.values())
    print(f"{len(timings)} indicators on {CANDLES} candles, median of {ROUNDS} rounds each")
    for name, seconds in sorted(timings.items(), key=lambda item: item[1], reverse=True):
        print(f"  {name:<12} {seconds * 1000:8.2f} ms  {seconds / total:6.1%}")
    typical = statistics.median(timings.values())
    slowest = max(timings, key=lambda name: timings[name])
    print(f"total          {total * 1000:8.2f} ms for one pass over every indicator")
    print(f"slowest / median indicator: {slowest} {timings[slowest] / typical:.1f}x")
    print(f"first call (pandas-ta import + ema) {import_s * 1000:.0f} ms = {import_s / total:.2f}x a pass")
    return total


def bench_numpy_versions() -> None:
    frame = make_candles(WINDOW, seed=11)
    print(f"numpy versions against pandas-ta on {WINDOW} candles, median of {ROUNDS} x {REPEATS} calls")
    for name, spec in INDICATORS.items():
        if spec.fast is None:
            continue

        def repeated(fast: bool, name: str = name) -> None:
            for _ in range(REPEATS):
                compute(frame, name, fast=fast)

        ours = median_s(functools.partial(repeated, True)) / REPEATS
        theirs = median_s(functools.partial(repeated, False)) / REPEATS
        print(
            f"  {name:<5} numpy {ours * 1000:6.3f} ms  pandas-ta {theirs * 1000:6.3f} ms"
            f"  {theirs / ours:5.1f}x"
        )


def bench_context() -> None:
    for candles in (300, CANDLES):
        frames = {
            timeframe: make_candles(candles, seed=3, timeframe_ms=step)
            for timeframe, step in CONTEXT_TIMEFRAMES.items()
        }

        def build(frames: dict[str, pd.DataFrame] = frames) -> str:
            context = build_context("BTC/USDT", "bench", frames, primary_timeframe="1h", simulated=True)
            return context_text(context)

        build()  # warm-up
        seconds = median_s(build)
        print(
            f"context for 3 timeframes x {candles:>4} candles  {seconds * 1000:7.2f} ms"
            f"  = {seconds / MODEL_ROUND_TRIP_S:.1%} of a {MODEL_ROUND_TRIP_S:g} s model round trip"
        )


def main() -> int:
    bench_indicators()
    bench_numpy_versions()
    bench_context()
    return 0


if __name__ == "__main__":
    sys.exit(main())
