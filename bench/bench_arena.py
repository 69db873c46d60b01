"""Whether the arena's contestants really run side by side: 3 contestants × 500 cycles of a 1 s model.

    python bench/bench_arena.py [--cycles 500] [--delay 1.0]

A loopback fake OpenAI server (threaded: ``ThreadingHTTPServer`` answers each request on its own
thread, so three waiting requests wait together) answers every request after ``--delay`` seconds, in
one of three styles told apart by the model name: ``eager`` always buys, ``idle`` always holds,
``coin`` buys or holds by a seeded coin. Each answer is the decision itself, so a cycle is one call.
The market is the seeded ``sim`` one, 1h candles, one cycle a candle over ``--cycles`` moments.

Each contestant first runs alone (``run_arena`` with only it, a fresh ``REZ_HOME``, so no cache),
then the three together with ``--concurrency 3`` (another fresh ``REZ_HOME``). Goal: the arena's
wall time is at most 1.3 × the slowest contestant's alone; the ratio is printed. The rules,
always-hold and buy-and-hold baselines run in both (they are always in an arena) and take a second
or two of the total.

With the defaults this takes about 4 × 500 s: ``bench/run.py`` runs it only when named (``arena``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_RATIO = 1.3
START = "2021-01-01"
HOUR_MS = 3_600_000
STYLES = ("eager", "idle", "coin")


def answer(body: dict[str, Any], delay_s: float) -> Any:
    from tests.support.openai_server import delay, reply

    found = re.search(r"Last price ([\d,]+(?:\.\d+)?)", body["messages"][1]["content"])
    price = round(float(found[1].replace(",", "")), 1) if found else 0.0
    style = body["model"]
    buys = style == "eager" or (style == "coin" and random.Random(f"{price}").random() < 0.3)
    if buys and price > 0:
        decision = {
            "action": "buy",
            "entry_price": price,
            "tp_price": round(price * 1.02, 1),
            "sl_price": round(price * 0.99, 1),
            "leverage": 2,
            "confidence": 0.6,
            "rationale": style,
            "invalidation": f"close_1h < {round(price * 0.99, 1)}",
        }
    else:
        decision = {"action": "hold", "confidence": 0.5, "rationale": style}
    return delay(delay_s, then=reply(json.dumps(decision)))


def timed_arena(styles: tuple[str, ...], cycles: int) -> tuple[float, int]:
    """Wall time and cycles walked of an arena of ``styles`` (and the baselines), in a fresh home."""
    from rez_cli.arena.contestants import builtin_baselines, parse_contestant
    from rez_cli.arena.run import ArenaSpec, run_arena
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.market.candles import parse_time
    from rez_cli.market.view import open_source

    with tempfile.TemporaryDirectory() as home:
        os.environ["REZ_HOME"] = home
        settings = load_settings().value
        start = parse_time(START)
        spec_end = start + cycles * HOUR_MS

        async def go() -> tuple[float, int]:
            source = open_source(settings, exchange="sim")
            spec = ArenaSpec(source, "BTC/USDT", "1h", None, start, spec_end)
            contestants = [*builtin_baselines(), *(parse_contestant(f"{s}={s}") for s in styles)]
            started = time.perf_counter()
            try:
                result = await run_arena(
                    settings,
                    lambda name: load_profile(name or "moderate").value,
                    spec,
                    contestants,
                    concurrency=len(styles),
                )
            finally:
                await source.close()
            elapsed = time.perf_counter() - started
            walked = sum(
                len(e.run.decisions) for e in result.runs if e.run is not None and not e.contestant.baseline
            )
            errors = [e.error for e in result.runs if e.error]
            if errors:
                raise SystemExit(f"a contestant failed: {errors[0]}")
            return elapsed, walked

        return asyncio.run(go())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the fake takes per answer")
    args = parser.parse_args()

    from tests.support.openai_server import FakeOpenAI

    with FakeOpenAI.start([lambda body: answer(body, args.delay)], repeat_last=True) as fake:
        os.environ["OPENAI_BASE_URL"] = fake.base_url
        os.environ["OPENAI_API_KEY"] = "sk-bench"
        alone = {}
        for style in STYLES:
            alone[style], walked = timed_arena((style,), args.cycles)
            print(f"{style} alone: {alone[style]:.1f} s for {walked} cycles", flush=True)
        together, walked = timed_arena(STYLES, args.cycles)
    slowest = max(alone.values())
    ratio = together / slowest
    print(f"3 contestants together: {together:.1f} s for {walked} cycles")
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    print(f"goal {verdict}: arena / slowest alone = {ratio:.2f} (goal <= {GOAL_RATIO})")
    return 0 if ratio <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
