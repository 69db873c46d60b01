"""Running ``rez decide`` for one or more symbols: sources, model client, orchestrator, exit code.

Kept out of the CLI so tests and other programs can run a whole command's worth of cycles directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rez_cli.account.paper import PaperBook, Settlement
from rez_cli.clock import iso, now_ms
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.cycle.choice import NO_MODEL, CycleChoice, choose, require_price_for_limit
from rez_cli.cycle.orchestrator import DryRun, Event, EventResult, Orchestrator
from rez_cli.errors import ExitCode
from rez_cli.llm.client import LLMClient, LLMNotConfigured
from rez_cli.llm.local_model import LocalModel
from rez_cli.market.snapshot import Context
from rez_cli.market.view import open_source
from rez_cli.reasoning.trace import TurnRecord
from rez_cli.symbols import normalize_symbols


@dataclass(frozen=True)
class DecideRequest:
    symbols: Sequence[str]
    argv: Sequence[str] = ()
    journal: Path | None = None
    exchange: str | None = None
    data: Path | None = None
    model: str | None = None
    mode: str | None = None
    max_turns: int | None = None
    max_cost_usd: float | None = None
    as_of_ms: int | None = None
    use_cache: bool = True
    concurrency: int = 4
    # False: decide without the paper account (no position shown, nothing opened or closed).
    paper: bool = True


@dataclass(frozen=True)
class DecideRun:
    mode: str
    model: str | None
    notice: str | None
    results: list[EventResult]
    # What the paper account did on each symbol before its cycle (empty without the paper account).
    settlements: dict[str, Settlement] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """One line per decision made on stale data: a live run that saw an old market."""
        lines = []
        for result in self.results:
            decision = result.decision
            if decision is None or not decision.stale or decision.as_of is None:
                continue
            hours = (decision.timestamp - decision.as_of) / 3_600_000
            age = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
            lines.append(
                f"{decision.symbol}: stale data: the last closed candle ended at {iso(decision.as_of)}, "
                f'{age} before this decision (marked "stale": true)'
            )
        return lines

    @property
    def exit_code(self) -> ExitCode:
        """3 when any symbol's decision is a hold forced by a failure, else 0."""
        return ExitCode.HOLD_BY_FAILURE if any(r.status != "decided" for r in self.results) else ExitCode.OK


def make_llm(
    settings: Settings, model_override: str | None, local: LocalModel | None = None
) -> tuple[LLMClient | None, str | None]:
    """The model client when a model is configured; raises LLMNotConfigured when it cannot be built.

    ``local``: the GGUF this run serves itself, which the client asks instead of any endpoint.
    """
    from rez_cli.cycle.choice import DEFAULT_MODEL
    from rez_cli.llm.openai_api import OpenAIChat

    llm = settings.llm
    model = model_override or llm.model or DEFAULT_MODEL
    api_key = llm.api_key.get_secret_value() if llm.api_key else None
    base_url = llm.base_url
    if local is not None:
        # An empty key, not None: None would send an exported OPENAI_API_KEY to the local server.
        model, api_key, base_url = local.model, "", local.base_url
    client = OpenAIChat(
        api_key=api_key,
        base_url=base_url,
        timeout_s=llm.timeout_s,
        max_retries=llm.max_retries,
        max_output_tokens=llm.max_output_tokens,
        temperature=llm.temperature,
        seed=llm.seed,
        extra_headers=llm.extra_headers,
        extra_body=llm.extra_body,
        endpoint_name=f"{local.path.name} (embedded)" if local is not None else None,
    )
    return client, model


def _mode_and_model(settings: Settings, request: DecideRequest) -> tuple[CycleChoice, str | None, str | None]:
    """The mode and model, a note for the user when the choice deserves one, and the model name.

    Raises:
        UsageError: an unknown mode; or ``--max-cost`` was given for a model whose price is unknown:
            the limit could not be enforced, and a limit that silently does nothing is worse than none.
    """
    choice = choose(settings.llm, request.mode, request.model)
    model = choice.model
    notice = None
    if not choice.asked and not choice.mode.needs_model:
        # One line on an 80-column terminal when nothing more needs saying.
        hint = " (set [llm] model or base_url, or give --model)" if model.reason == NO_MODEL else ""
        notice = f"{model.reason}: running the {choice.mode.name} mode{hint}"
    elif choice.mode.needs_model and not model.configured:
        notice = f"a model was asked for (--mode {choice.mode.name}) but none is configured"
    if choice.mode.needs_model and model.model is not None:
        require_price_for_limit(settings.llm, model.model, request.max_cost_usd, local=model.gguf is not None)
    return choice, notice, model.model if model.gguf else request.model or settings.llm.model


async def run_decide(
    settings: Settings,
    profile: RiskProfile,
    request: DecideRequest,
    *,
    on_turn: Callable[[str, TurnRecord], None] | None = None,
    on_context: Callable[[Context], None] | None = None,
) -> DecideRun:
    """One cycle per symbol, concurrently within ``request.concurrency``, over one market source.

    Every cycle is journaled as it happens, under a lock per (journal, market): the symbols are
    put in canonical form first, so ``btc/usdt`` and ``BTC/USDT`` are one market, decided once.

    Raises:
        LockHeld: another run is deciding one of the symbols on the same journal.
        RezError: bad inputs (unknown symbol, exchange or timeframe; invalid candles).
    """
    from rez_cli.journal.session import open_journal, start_run
    from rez_cli.llm import local_model

    symbols = normalize_symbols(request.symbols)
    choice, notice, _ = _mode_and_model(settings, request)
    mode = choice.mode.name
    gguf = local_model.prepare(settings.llm, request.model) if choice.mode.needs_model else None
    journal = open_journal(settings, request.journal)
    with ExitStack() as locks:
        for symbol in symbols:
            locks.enter_context(journal.lock(symbol))
        # Loaded once for every symbol, after the locks: a run another one locks out loads nothing.
        local = locks.enter_context(local_model.serve(settings.llm, gguf)) if gguf else None
        run_id = start_run(journal, "decide", request.argv, settings, profile)
        llm: LLMClient | None = None
        model: str | None = None
        if choice.uses_model:
            try:
                llm, model = make_llm(settings, request.model, local)
            except LLMNotConfigured as error:
                notice = error.message
        source = open_source(
            settings,
            exchange=request.exchange,
            data=request.data,
            use_cache=request.use_cache,
            now_ms=request.as_of_ms,
        )
        book = (
            PaperBook(journal.paper(), settings, profile, account=source.name)
            if settings.paper.enabled and request.paper
            else None
        )
        # The served model answers one request at a time: concurrent cycles would only queue there,
        # their waiting counted against each request's timeout.
        limit = asyncio.Semaphore(1 if local else max(1, request.concurrency))
        recorder = journal.recorder(run_id)
        try:

            async def one(symbol: str) -> EventResult:
                async with limit:
                    timestamp = request.as_of_ms if request.as_of_ms is not None else now_ms()
                    if book is not None:
                        # The candles closed since the last cycle settle the position first.
                        await book.settle(source, symbol, timestamp)
                    orchestrator = Orchestrator(
                        settings,
                        profile,
                        source,
                        llm=llm,
                        model=model,
                        max_turns=request.max_turns,
                        max_cost_usd=request.max_cost_usd,
                        memory=journal,
                        recorder=recorder,
                        on_turn=(lambda turn: on_turn(symbol, turn)) if on_turn else None,
                        on_context=on_context,
                        book=book,
                    )
                    payload: dict[str, object] = {"symbol": symbol, "mode": mode}
                    if request.as_of_ms is not None:
                        payload["as_of"] = request.as_of_ms
                    return await orchestrator.handle_event(Event("decide", payload, timestamp, symbol))

            results = list(await asyncio.gather(*(one(symbol) for symbol in symbols)))
        finally:
            await source.close()
            if llm is not None:
                await llm.close()
    return DecideRun(mode, model, notice, results, dict(book.settlements) if book is not None else {})


async def run_dry(settings: Settings, profile: RiskProfile, request: DecideRequest) -> list[DryRun]:
    """What ``rez decide`` would send to the model for each symbol; calls no model, writes nothing."""
    from rez_cli.journal.session import open_journal
    from rez_cli.journal.store import resolve_journal_path

    symbols = normalize_symbols(request.symbols)
    _, _, model = _mode_and_model(settings, request)
    path = resolve_journal_path(request.journal, settings.journal.path)
    memory = open_journal(settings, path) if path.exists() else None
    source = open_source(
        settings,
        exchange=request.exchange,
        data=request.data,
        use_cache=request.use_cache,
        now_ms=request.as_of_ms,
    )
    # The position the model would be shown: the paper account walked in memory, nothing written.
    book = (
        PaperBook(memory.paper(), settings, profile, account=source.name, persist=False)
        if memory is not None and settings.paper.enabled and request.paper
        else None
    )
    try:
        orchestrator = Orchestrator(
            settings,
            profile,
            source,
            model=model,
            memory=memory,
            max_cost_usd=request.max_cost_usd,
            book=book,
        )
        runs = []
        for symbol in symbols:
            if book is not None:
                await book.settle(
                    source, symbol, request.as_of_ms if request.as_of_ms is not None else now_ms()
                )
            runs.append(await orchestrator.dry_run(symbol, request.as_of_ms))
        return runs
    finally:
        await source.close()
