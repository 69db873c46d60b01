"""What checking an invalidation condition costs: 1,000 primary candles, indicators included.

    python bench/bench_invalidation.py

Times ``first_firing`` of a typical condition (a price level, a 4h RSI, an EMA crossing: ``TYPICAL``)
over the close times of 1,000 seeded 1h candles (the frames carry the candles the condition's
warm-up needs before them, and the 4h candles of the same span): every indicator computed from the
frames each round, nothing remembered between rounds but the parse. Its levels are chosen so that it
never fires, so the whole span is evaluated. The goal (issue 10) is at most 5 ms. A condition on an
indicator without a numpy version (SMA 200 through pandas-ta) is timed too, to show what the library
path costs; it has no goal.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from rez_cli.invalidation import first_firing, parse_invalidation
from tests.support.candles import START_MS, make_candles

CANDLES = 1_000
ROUNDS = 21
GOAL_MS = 5.0
HOUR = 3_600_000
TYPICAL = "close_1h < 1 or rsi_14_4h > 99.9 or ema_20_1h crosses_below ema_50_1h and close_1h < 1"
LIBRARY = "sma_200_1h > 1e12 or close_1h < 1"


def median_ms(action: Callable[[], object]) -> float:
    action()  # imports and first-call costs are not what a cycle pays
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def frames_for(text: str) -> tuple[dict[str, pd.DataFrame], list[int]]:
    condition = parse_invalidation(text)
    warmup_1h = condition.warmup_bars("1h")
    warmup_4h = condition.warmup_bars("4h")
    start_ms = START_MS
    hourly = make_candles(CANDLES + warmup_1h + 4 * warmup_4h, seed=7, start_ms=start_ms)
    four_hourly = make_candles(len(hourly) // 4 + 1, seed=8, timeframe_ms=4 * HOUR, start_ms=start_ms)
    moments = (hourly["timestamp"].to_numpy()[-CANDLES:] + HOUR).tolist()
    return {"1h": hourly, "4h": four_hourly}, moments


def measure(text: str) -> float:
    frames, moments = frames_for(text)
    previous = moments[0] - HOUR

    def check() -> None:
        assert first_firing(parse_invalidation(text), frames, moments, previous) is None

    return median_ms(check)


def main() -> int:
    typical = measure(TYPICAL)
    library = measure(LIBRARY)
    print(f"typical condition over {CANDLES:,} 1h candles (+ 4h), median of {ROUNDS}: {TYPICAL}")
    print(f"  {typical:.2f} ms = {typical / GOAL_MS:.2f}x the goal (goal <= {GOAL_MS:g} ms): ", end="")
    print("ok" if typical <= GOAL_MS else "MISSED")
    print(f"through pandas-ta ({LIBRARY}): {library:.2f} ms = {library / GOAL_MS:.2f}x the typical goal")
    return 0 if typical <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
