"""Running an arena: every contestant (and repeat) walked by ``run_backtest`` over the same moments.

The baselines come first, one after another: ``rules`` is a walk of its own (its journal batches
would otherwise hold the journal's write lock while a model contestant waits for it), and
``buy-and-hold`` and ``always-hold`` are worked out on the same candles without a cycle. Then the model
contestants run concurrently, at most ``concurrency`` walks at once; each walk's cycles stay in order,
since its position carries over. A contestant that cannot run at all (no endpoint configured, a bad
profile) keeps its row with the one-line reason; one whose endpoint fails mid-walk keeps the cycles
it did, their fallbacks counted by code. ``--repeats N`` walks each model contestant N times with
``[llm] seed`` = base, base+1, ... and a cache of its own per seed.

On Ctrl-C the walks stop where they are (``run_backtest`` returns what it did), the arena reports them
as interrupted, and every answer received is in the caches, so a rerun resumes from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rez_cli.account.fills import FillConfig
from rez_cli.arena.answers import AnswerStore, ContestantLLM, SharedBudget, cache_path
from rez_cli.arena.contestants import ALWAYS_HOLD, BUY_AND_HOLD, RULES, Contestant
from rez_cli.backtest.metrics import compute_metrics
from rez_cli.backtest.walk import INTERRUPTED, BacktestReport, BacktestRequest, StrategyRun, run_backtest
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.errors import RezError
from rez_cli.market.source import MarketSource
from rez_cli.timeframes import timeframe_ms

if TYPE_CHECKING:
    from rez_cli.llm.client import LLMClient


@dataclass(frozen=True)
class ArenaSpec:
    """What every contestant walks: the market and the moments (a tape's, or a span's)."""

    source: MarketSource
    symbol: str
    timeframe: str
    context_timeframes: Sequence[str] | None
    start_ms: int
    end_ms: int
    every: int = 1
    moments: Sequence[int] | None = None
    tape_hash: str | None = None
    fills: FillConfig = field(default_factory=FillConfig)
    initial_equity: float = 10_000.0
    journal: Path | None = None
    argv: Sequence[str] = ()


@dataclass
class ContestantRun:
    """One walk of one contestant: its strategy's run, or why there is none."""

    contestant: Contestant
    repeat: int
    seed: int | None
    run: StrategyRun | None = None
    error: str | None = None
    stopped: str | None = None
    backtest_id: str | None = None
    latencies_s: list[float] = field(default_factory=list)
    answer_cost_usd: float | None = None
    spent_usd: float = 0.0
    calls: int = 0
    cache_hits: int = 0


@dataclass
class ArenaResult:
    runs: list[ContestantRun]
    spec: ArenaSpec
    max_cost_usd: float | None
    spent_usd: float
    interrupted: bool
    budget_exceeded: bool


ProfileLoader = Callable[[str | None], RiskProfile]


def _request(spec: ArenaSpec, mode: str, model: str | None, *, baselines: bool) -> BacktestRequest:
    return BacktestRequest(
        symbol=spec.symbol,
        start_ms=spec.start_ms,
        end_ms=spec.end_ms,
        timeframe=spec.timeframe,
        context_timeframes=spec.context_timeframes,
        every=spec.every,
        mode=mode,
        model=model,
        fills=spec.fills,
        initial_equity=spec.initial_equity,
        journal=spec.journal,
        argv=spec.argv,
        # The arena keeps each contestant's answers itself (ContestantLLM).
        llm_cache=False,
        baselines=baselines,
        training_cutoff_ms=None,
        # A tape's moments: the walk visits exactly those.
        moments=list(spec.moments) if spec.moments is not None else None,
    )


def _always_hold(reference: StrategyRun, initial_equity: float, timeframe: str) -> StrategyRun:
    """Never trading: a flat curve over the same points, a hold at every cycle."""
    curve = [initial_equity] * len(reference.curve)
    decisions = [
        {
            "timestamp": row["timestamp"],
            "action": "hold",
            "error": None,
            "source": "native",
            "confidence": None,
        }
        for row in reference.decisions
    ]
    metrics = compute_metrics(
        curve,
        [],
        timeframe_ms=timeframe_ms(timeframe),
        exposed_candles=0,
        actions=["hold"] * len(decisions),
    )
    return StrategyRun(metrics, decisions, [], curve, list(reference.curve_ms))


async def run_arena(
    settings: Settings,
    load_profile: ProfileLoader,
    spec: ArenaSpec,
    contestants: Sequence[Contestant],
    *,
    repeats: int = 1,
    concurrency: int = 4,
    max_cost_usd: float | None = None,
    make_client: Callable[[Settings, str], LLMClient] | None = None,
    on_cycle: Callable[[str, int], None] | None = None,
) -> ArenaResult:
    """Walk every contestant over ``spec`` and return the walks (see the module docstring).

    Args:
        settings: the effective settings (the model contestants' endpoint is ``[llm]``'s).
        load_profile: a risk profile by name or path (None: the default).
        spec: the market and moments every contestant walks.
        contestants: the baselines included.
        repeats: walks of each model contestant, with seeds base, base+1, ...
        concurrency: model walks at once.
        max_cost_usd: what all model calls together may cost.
        make_client: builds a model client from settings and a model name (tests; default: Rez's).
        on_cycle: called with a contestant's name and the cycles it has done.

    Raises:
        UsageError: repeats or concurrency below 1.
    """
    from rez_cli.errors import UsageError

    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {concurrency}")
    budget = SharedBudget(max_cost_usd, settings.llm.prices)
    runs: list[ContestantRun] = []
    interrupted = False

    # The baselines, one after another.
    reference: BacktestReport | None = None
    baseline_runs = [c for c in contestants if c.model == RULES]
    derived = [c for c in contestants if c.model in (ALWAYS_HOLD, BUY_AND_HOLD)]
    for contestant in baseline_runs:
        entry = ContestantRun(contestant, 0, None)
        runs.append(entry)
        try:
            report = await run_backtest(
                settings,
                load_profile(contestant.profile),
                _request(spec, RULES, None, baselines=True),
                source=spec.source,
            )
        except RezError as error:
            entry.error = error.message
            continue
        entry.run, entry.stopped, entry.backtest_id = report.strategy, report.stopped, report.backtest_id
        if report.stopped == INTERRUPTED:
            interrupted = True
        if reference is None or contestant.profile is None:
            reference = report
    for contestant in derived:
        entry = ContestantRun(contestant, 0, None)
        runs.append(entry)
        if reference is None or reference.buy_and_hold is None:
            entry.error = "no rules walk to take the candles from"
            continue
        entry.backtest_id = reference.backtest_id
        if contestant.model == BUY_AND_HOLD:
            entry.run = reference.buy_and_hold
        else:
            entry.run = _always_hold(reference.strategy, spec.initial_equity, spec.timeframe)

    models = [c for c in contestants if not c.baseline]
    base_seed = settings.llm.seed or 0
    semaphore = asyncio.Semaphore(concurrency)

    async def walk(entry: ContestantRun) -> None:
        async with semaphore:
            await _walk_model(settings, load_profile, spec, entry, budget, make_client, on_cycle)

    entries = [
        ContestantRun(contestant, repeat, base_seed + repeat)
        for contestant in models
        for repeat in range(repeats)
    ]
    runs.extend(entries)
    tasks = [asyncio.create_task(walk(entry)) for entry in entries]
    if tasks and not interrupted:
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Ctrl-C: each walk stops where it is and returns what it did; this task goes on to report.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            interrupted = True
            await asyncio.wait(tasks)
    else:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
    for entry, task in zip(entries, tasks, strict=True):
        if task.cancelled() and entry.run is None and entry.error is None:
            entry.error, entry.stopped = "interrupted before its first cycle", INTERRUPTED
        if entry.stopped == INTERRUPTED:
            interrupted = True
    return ArenaResult(runs, spec, max_cost_usd, budget.spent_usd, interrupted, budget.exhausted)


async def _walk_model(
    settings: Settings,
    load_profile: ProfileLoader,
    spec: ArenaSpec,
    entry: ContestantRun,
    budget: SharedBudget,
    make_client: Callable[[Settings, str], LLMClient] | None,
    on_cycle: Callable[[str, int], None] | None,
) -> None:
    from rez_cli.cycle.run import make_llm
    from rez_cli.llm.client import LLMNotConfigured

    contestant = entry.contestant
    llm_settings = settings.llm.model_copy(update={"seed": entry.seed, "system_prompt": contestant.prompt})
    own = settings.model_copy(update={"llm": llm_settings})
    try:
        profile = load_profile(contestant.profile)
        inner: LLMClient | None = (
            make_client(own, contestant.model)
            if make_client is not None
            else make_llm(own, contestant.model)[0]
        )
    except LLMNotConfigured as error:
        entry.error = error.message
        return
    except RezError as error:
        entry.error = error.message
        return
    if inner is None:
        entry.error = "no model endpoint is configured"
        return
    store = AnswerStore(cache_path(contestant.name, contestant.fingerprint(entry.seed)))
    client = ContestantLLM(inner, store, budget, settings.llm.prices)
    done = 0

    def cycle_done(_: object) -> None:
        nonlocal done
        latency = client.take_cycle()
        if latency is not None:
            entry.latencies_s.append(latency)
        done += 1
        if on_cycle is not None:
            on_cycle(contestant.name, done)

    try:
        report = await run_backtest(
            own,
            profile,
            _request(spec, "react", contestant.model, baselines=False),
            source=spec.source,
            llm=client,
            on_cycle=cycle_done,
        )
    except RezError as error:
        entry.error = error.message
        return
    finally:
        entry.spent_usd = client.spent_meter.cost_usd
        entry.calls, entry.cache_hits = client.misses, client.hits
        priced = client.answer_meter.price_of(contestant.model) is not None
        entry.answer_cost_usd = client.answer_meter.cost_usd if priced else None
    entry.run, entry.stopped, entry.backtest_id = report.strategy, report.stopped, report.backtest_id
