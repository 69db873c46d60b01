"""What a whole ``rez decide`` costs beyond its libraries, and whether symbols overlap their waits.

    python bench/bench_decide.py

Runs the real console script in a subprocess, as cron does, against the fakes of the tests on
127.0.0.1: the fake Binance (``--exchange binance`` with ``REZ__EXCHANGE__CCXT`` pointing ccxt at it,
``--as-of`` its clock) and the fake OpenAI-compatible server answering a valid ``hold`` decision
(valid at any price, so no price has to be known in advance). Every measured run is checked: exit 0,
one decision per symbol, ``mode`` react, no ``error``.

(a) ``rez decide BTC/USDT --json`` with a zero-latency model, against the bare
    ``python -c "import pandas, ccxt, openai"``: goal <= 1.5x. Measured with an empty cache (a fresh
    ``REZ_HOME`` per run: markets and 3 x 300 candles fetched) and with a warm one (markets only).
(b) eight symbols at ``--concurrency 8`` against one symbol, with a model that takes 1 s per answer
    (warm cache, so the model's latency is what is compared): goal <= 1.5x.

How fast ``rez --help`` starts is ``bench_startup.py``'s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config
from tests.support.openai_server import FakeOpenAI, delay, reply

ROUNDS = 5
SLOW_ROUNDS = 3
MODEL_LATENCY_S = 1.0
IMPORT_GOAL = 1.5
CONCURRENCY_GOAL = 1.5
SYMBOLS = ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX")
HOLD = json.dumps(
    {
        "action": "hold",
        "entry_price": None,
        "tp_price": None,
        "sl_price": None,
        "leverage": 1,
        "confidence": 0.5,
        "rationale": "benchmark: no edge either way",
        "invalidation": None,
    }
)


def rez_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m rez_cli``."""
    script = Path(sys.executable).parent / "rez"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rez_cli"]


def base_env(**extra: str) -> dict[str, str]:
    # The user's own config, keys and endpoints must not leak into the measurement.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REZ_", "OPENAI_"))}
    env.update(NO_COLOR="1", **extra)
    return env


def timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def check_decisions(done: subprocess.CompletedProcess[str], symbols: Sequence[str]) -> None:
    """Fail loudly unless the run decided every symbol through the model without an error."""
    if done.returncode != 0:
        raise SystemExit(f"rez decide exited {done.returncode}:\n{done.stderr[-2000:]}")
    decisions: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    got = sorted(decision["symbol"] for decision in decisions)
    if got != sorted(symbols):
        raise SystemExit(f"expected decisions for {sorted(symbols)}, got {got}")
    for decision in decisions:
        if decision["mode"] != "react" or decision["error"] is not None or decision["action"] != "hold":
            raise SystemExit(f"unexpected decision: {decision}")


def decide_env(exchange: FakeBinance, model: FakeOpenAI, home: str) -> dict[str, str]:
    return base_env(
        REZ_HOME=home,
        REZ__EXCHANGE__CCXT=json.dumps({**exchange_config(exchange), **FAST_CCXT}),
        OPENAI_BASE_URL=model.base_url,
        OPENAI_API_KEY="sk-bench",
        REZ__LLM__MODEL="bench-model",
    )


def decide_command(symbols: Sequence[str], *extra: str) -> list[str]:
    return [
        *rez_command(),
        "decide",
        *symbols,
        "--exchange",
        "binance",
        "--as-of",
        str(NOW_MS),
        "--json",
        *extra,
    ]


def verdict(ratio: float, goal: float) -> str:
    return "ok" if ratio <= goal else "MISSED"


def bench_import_ratio() -> bool:
    imports = [sys.executable, "-c", "import pandas, ccxt, openai"]
    command = decide_command(["BTC/USDT"])
    bare_times: list[float] = []
    cold_times: list[float] = []
    warm_times: list[float] = []
    with (
        FakeBinance() as exchange,
        FakeOpenAI.start([reply(HOLD)], repeat_last=True) as model,
        tempfile.TemporaryDirectory(prefix="rez-bench-") as warm_home,
    ):
        warm_env = decide_env(exchange, model, warm_home)
        check_decisions(timed(command, warm_env)[1], ["BTC/USDT"])  # fills the warm cache, not timed
        # Interleaved rounds: a machine that gets busier halfway skews all three alike.
        for _ in range(ROUNDS):
            bare_times.append(timed(imports, base_env())[0])
            with tempfile.TemporaryDirectory(prefix="rez-bench-") as home:
                seconds, done = timed(command, decide_env(exchange, model, home))
                check_decisions(done, ["BTC/USDT"])
                cold_times.append(seconds)
            seconds, done = timed(command, warm_env)
            check_decisions(done, ["BTC/USDT"])
            warm_times.append(seconds)
    bare = statistics.median(bare_times)
    cold, warm = statistics.median(cold_times), statistics.median(warm_times)
    print(f"(a) import pandas, ccxt, openai       median {bare * 1000:7.0f} ms over {ROUNDS} rounds")
    print(f"    rez decide BTC/USDT, empty cache  median {cold * 1000:7.0f} ms  = {cold / bare:.2f}x")
    print(f"    rez decide BTC/USDT, warm cache   median {warm * 1000:7.0f} ms  = {warm / bare:.2f}x")
    ratio = cold / bare
    print(
        f"    ratio {ratio:.2f}x with an empty cache (goal <= {IMPORT_GOAL}x): {verdict(ratio, IMPORT_GOAL)}"
    )
    return ratio <= IMPORT_GOAL


def bench_concurrency() -> bool:
    symbols = [f"{base}/USDT" for base in SYMBOLS]
    market_ids = [symbol.replace("/", "") for symbol in symbols]
    slow_hold = delay(MODEL_LATENCY_S, then=reply(HOLD))
    with (
        FakeBinance(symbols=market_ids) as exchange,
        FakeOpenAI.start([slow_hold], repeat_last=True) as model,
        tempfile.TemporaryDirectory(prefix="rez-bench-") as home,
    ):
        env = decide_env(exchange, model, home)
        eight = decide_command(symbols, "--concurrency", "8")
        one = decide_command(symbols[:1], "--concurrency", "8")
        check_decisions(timed(eight, env)[1], symbols)  # fills the cache of every symbol, not timed
        single_times: list[float] = []
        eight_times: list[float] = []
        for _ in range(SLOW_ROUNDS):
            for command, wanted, times in ((one, symbols[:1], single_times), (eight, symbols, eight_times)):
                seconds, done = timed(command, env)
                check_decisions(done, wanted)
                times.append(seconds)
    single, many = statistics.median(single_times), statistics.median(eight_times)
    ratio = many / single
    print(f"(b) model latency {MODEL_LATENCY_S:g} s per answer, warm cache, median of {SLOW_ROUNDS} runs")
    print(f"    1 symbol                          {single * 1000:7.0f} ms")
    print(
        f"    8 symbols, --concurrency 8        {many * 1000:7.0f} ms"
        f"  (one after another: ~{8 * single:.0f} s)"
    )
    print(f"    ratio {ratio:.2f}x (goal <= {CONCURRENCY_GOAL}x): {verdict(ratio, CONCURRENCY_GOAL)}")
    return ratio <= CONCURRENCY_GOAL


def main() -> int:
    print(f"rez: {' '.join(rez_command())}")
    results = [bench_import_ratio(), bench_concurrency()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
