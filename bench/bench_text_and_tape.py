"""Two goals that were timed assertions in tests: reading a long model answer, and a six-month tape.

    python bench/bench_text_and_tape.py

- ``parse_answer`` on a 100 KB answer (reasoning prose full of numbers and brackets, then the decision
  in a fenced block), median of 21 after one warm-up call: goal at most 100 ms.
- ``record_tape`` of six months of ETH/USDT 1h and 4h candles on the seeded ``sim`` market, then
  ``save_tape`` and ``load_tape`` (hash checked): goal at most 2 s together.

The tests keep what a user sees (the decision read from the long answer, the tape's hash and its
4,344 moments); the times live here, where a busy machine cannot fail the suite.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rez_cli.config.settings import Settings
from rez_cli.market.candles import parse_time
from rez_cli.market.sim import SimSource
from rez_cli.reasoning.parse import parse_answer
from rez_cli.tape import load_tape, record_tape, save_tape

PARSE_GOAL_MS = 100.0
TAPE_GOAL_S = 2.0
ROUNDS = 21
BUY = '{"action": "buy", "entry_price": 35000.5, "tp_price": 36500, "sl_price": 34200, "leverage": 2}'


def parse_ms() -> float:
    reasoning = 'RSI 61.2, MACD [123.4, 125.1], EMA {"ema20": 35010.2} and "quoted" words. ' * 1_400
    text = reasoning[:100_000] + "\n```json\n" + BUY + "\n```"
    outcome = parse_answer(text)  # the regex cache warms up once per process, not per answer
    assert outcome.answer is not None
    assert outcome.answer.action == "buy"
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        parse_answer(text)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def tape_s() -> float:
    settings = Settings().with_timeframes("1h", ["1h", "4h"])
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        recorded = asyncio.run(
            record_tape(
                settings,
                SimSource(),
                "ETH/USDT",
                start_ms=parse_time("2023-01-01"),
                end_ms=parse_time("2023-07-01"),
            )
        )
        loaded = load_tape(save_tape(recorded, Path(folder) / "eth.tape"))
        seconds = time.perf_counter() - started
    assert loaded.hash == recorded.hash
    return seconds


def main() -> int:
    parsed = parse_ms()
    taped = tape_s()
    parse_ok, tape_ok = parsed <= PARSE_GOAL_MS, taped <= TAPE_GOAL_S
    print(f"a 100 KB answer read, median of {ROUNDS}:")
    ratio = parsed / PARSE_GOAL_MS
    print(f"  {parsed:.1f} ms = {ratio:.2f}x the goal (goal <= {PARSE_GOAL_MS:g} ms): ", end="")
    print("ok" if parse_ok else "MISSED")
    print("six months of 1h and 4h candles recorded, saved and loaded:")
    print(f"  {taped:.2f} s = {taped / TAPE_GOAL_S:.2f}x the goal (goal <= {TAPE_GOAL_S:g} s): ", end="")
    print("ok" if tape_ok else "MISSED")
    return 0 if parse_ok and tape_ok else 1


if __name__ == "__main__":
    sys.exit(main())
