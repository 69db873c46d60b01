"""How much three concurrent timeframes cost over one request, against an exchange 200 ms away.

    python bench/bench_fetch.py

Starts the fake Binance of the tests with 200 ms of latency on every request, then times
``CcxtSource.fetch`` of 300 candles for three timeframes against the same fetch for one timeframe
(a single klines request). Markets are loaded before either is timed, no cache is used, and ccxt's
rate limiter stays on as it is for users. The goal is a ratio of at most 1.5: timeframes overlap
instead of queueing.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rez_cli.market.ccxt_source import CcxtSource
from tests.support.exchange_server import FakeBinance, exchange_config

LATENCY_S = 0.2
CANDLES = 300
ROUNDS = 5
GOAL = 1.5


async def measure(server: FakeBinance) -> tuple[list[float], list[float]]:
    single: list[float] = []
    triple: list[float] = []
    async with CcxtSource("binance", exchange_config(server), cache=None) as source:
        await source.fetch("BTC/USDT", ["1h"], CANDLES)  # markets and connection warmed, not timed
        for _ in range(ROUNDS):
            for timeframes, times in ((["1h"], single), (["15m", "1h", "4h"], triple)):
                # Let ccxt's leaky bucket refill, so that every measurement starts from the same state.
                await asyncio.sleep(1.0)
                started = time.perf_counter()
                frames = await source.fetch("BTC/USDT", timeframes, CANDLES)
                times.append(time.perf_counter() - started)
                assert all(len(frame) == CANDLES for frame in frames.values())
    return single, triple


def main() -> int:
    with FakeBinance(latency_s=LATENCY_S, now_ms=int(time.time() * 1000)) as server:
        single, triple = asyncio.run(measure(server))
        requests = len(server.klines_requests())
    one, three = statistics.median(single), statistics.median(triple)
    ratio = three / one
    print(f"latency per request      {LATENCY_S * 1000:.0f} ms ({requests} klines requests in all)")
    print(f"1 timeframe  x {CANDLES} candles  median {one * 1000:7.1f} ms  over {ROUNDS} rounds")
    print(f"3 timeframes x {CANDLES} candles  median {three * 1000:7.1f} ms  over {ROUNDS} rounds")
    print(f"ratio {ratio:.2f}x (goal <= {GOAL}x): {'ok' if ratio <= GOAL else 'MISSED'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
