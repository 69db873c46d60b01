"""What the paper account adds to a ``rez decide`` cycle: settling the book, the view, the order.

    python bench/bench_paper.py

A journal in a temporary directory holds a paper account with an open long on BTC/USDT whose
invalidation reads the 4h RSI and two 1h EMAs; candles come from files (seeded 1h and 4h candles).
Each round is one cron cycle an hour later: ``settle`` fetches the new candle and the invalidation's
frames, walks the candle through the engine and writes the book in one transaction; ``view`` builds
what the model is shown; ``admit`` takes a decision (a hold, then, every fourth round, a close and
a new buy, so that writes of orders are timed too). The goal (issue 10) is at most 10 ms a cycle.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rez_cli.account.paper import PaperBook
from rez_cli.config.settings import load_profile, load_settings
from rez_cli.decision.model import Decision, Usage
from rez_cli.journal.store import Journal
from rez_cli.market.view import open_source
from tests.support.candles import START_MS, make_candles

HOUR = 3_600_000
ROUNDS = 60
GOAL_MS = 10.0
INVALIDATION = "rsi_14_4h > 99 or ema_20_1h crosses_below ema_50_1h and close_1h < 1"


def decision(action: str, price: float, moment: int) -> Decision:
    trade = action == "buy"
    return Decision(
        symbol="BTC/USDT",
        action=action,  # type: ignore[arg-type]
        entry_price=price if trade else None,
        tp_price=price * 1.5 if trade else None,
        sl_price=price * 0.5 if trade else None,
        leverage=1.0,
        size_pct=10.0 if trade else 0.0,
        confidence=0.6,
        rationale="bench",
        invalidation=INVALIDATION if trade else None,
        mode="rules",
        source="native",
        error=None,
        usage=Usage(),
        trace_id=f"bench-{moment}",
        timestamp=moment,
        as_of=moment,
        last_price=price,
    )


async def run(directory: Path) -> list[float]:
    hourly = make_candles(2_000, seed=11)
    four = make_candles(600, seed=12, timeframe_ms=4 * HOUR)
    data = directory / "data"
    data.mkdir()
    hourly.to_csv(data / "BTC_USDT-1h.csv", index=False)
    four.to_csv(data / "BTC_USDT-4h.csv", index=False)
    settings = load_settings(None).value
    settings = settings.with_timeframes("1h", ["1h", "4h"])
    profile = load_profile("moderate").value
    journal = Journal(directory / "journal.sqlite")
    source = open_source(settings, data=data)
    start = START_MS + 1_000 * HOUR
    closes = dict(zip(hourly["timestamp"] + HOUR, hourly["close"], strict=True))
    times = []
    try:
        book = PaperBook(journal.paper(), settings, profile, account="bench")
        await book.settle(source, "BTC/USDT", start)
        assert book.admit(decision("buy", float(closes[start]), start)) is None
        for round_ in range(ROUNDS):
            moment = start + (round_ + 1) * HOUR
            price = float(closes[moment])
            began = time.perf_counter()
            book = PaperBook(journal.paper(), settings, profile, account="bench")
            await book.settle(source, "BTC/USDT", moment)
            book.view("BTC/USDT", moment, price)
            action = ("hold", "close", "hold", "buy")[round_ % 4]
            book.admit(decision(action, price, moment))
            times.append((time.perf_counter() - began) * 1000)
    finally:
        await source.close()
        journal.close()
    return times


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        os.environ["REZ_HOME"] = directory
        times = asyncio.run(run(Path(directory)))
    median = statistics.median(times)
    print(f"paper bookkeeping per cycle (settle + view + admit), median of {ROUNDS}: {median:.2f} ms")
    print(f"  = {median / GOAL_MS:.2f}x the goal (goal <= {GOAL_MS:g} ms): ", end="")
    print("ok" if median <= GOAL_MS else "MISSED")
    return 0 if median <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
