"""``rez audit BACKTEST_ID``: every check of a stored backtest, its grade, stored back with it.

The cutoff and regime splits read the stored report. The altered copies and the probe need the
candles again: the tape the backtest ran on (checked against its stored hash), or else its own
source (its ``--data`` files, ``sim``, or the exchange, through the candle cache) read over its span
and warm-up and frozen into a tape, so that the copies are ``Tape.altered`` copies of exactly that.
The model is the backtest's (``--model`` or ``[llm]``), one client for the whole audit, its answers
cached like the backtest's: auditing again calls no model.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rez_cli.audit.altered import (
    DEFAULT_PRICE_SCALE,
    DEFAULT_SHIFT_YEARS,
    altered_copies,
    compare_copies,
    forward_returns,
    replay,
    sample_moments,
)
from rez_cli.audit.cutoffs import Cutoff, model_cutoff
from rez_cli.audit.grade import grade
from rez_cli.audit.probe import probe_windows, run_probe
from rez_cli.audit.splits import cutoff_split, regime_split
from rez_cli.audit.stored import request_of
from rez_cli.clock import iso, now_ms
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.decision.codes import Hold
from rez_cli.errors import DataError, DataNotFound, ExitCode, UsageError
from rez_cli.formatting import json_ready
from rez_cli.journal.backtests import StoredBacktest
from rez_cli.llm.client import ChatResponse, LLMClient
from rez_cli.llm.meter import BudgetExceeded
from rez_cli.tape import Tape
from rez_cli.timeframes import timeframe_ms


@dataclass(frozen=True)
class AuditOptions:
    """How much the audit replays and asks.

    ``sample``: cycles replayed on each copy; ``probes``: windows the memorisation probe shows;
    ``horizon``: candles after a replayed decision that score it; ``seed``: every random choice;
    ``max_cost_usd``: what the model calls the audit makes (replays and probe together) may cost,
    None for no limit; answers from the cache cost nothing.
    """

    sample: int = 50
    probes: int = 3
    seed: int = 0
    price_scale: float = DEFAULT_PRICE_SCALE
    shift_years: int = DEFAULT_SHIFT_YEARS
    horizon: int = 24
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class AuditProgress:
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class AuditReport:
    """What the audit found; ``to_json`` is what ``--json`` prints and what the journal keeps."""

    backtest_id: str
    grade: str
    reasons: list[str]
    findings: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """0 a whole audit; 3 one that ``--max-cost`` cut short."""
        return ExitCode.HOLD_BY_FAILURE if self.findings.get("stopped") else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The audit as one JSON-ready object (no NaN or infinity anywhere)."""
        found: dict[str, Any] = json_ready(
            {"backtest_id": self.backtest_id, "grade": self.grade, "reasons": self.reasons, **self.findings}
        )
        return found


class _Shared:
    """The audit's one model client, lent to every replay and the probe: ``run_backtest`` closes
    what it is given. It counts the calls the budget refused."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner
        self.refused = 0

    async def chat(self, **kwargs: Any) -> ChatResponse:
        try:
            return await self.inner.chat(**kwargs)
        except BudgetExceeded:
            self.refused += 1
            raise

    async def close(self) -> None:
        return None


def _cutoff(settings: Settings, stored: StoredBacktest, needs_model: bool) -> Cutoff:
    if not needs_model:
        return Cutoff(None, "no model: nothing to have memorised")
    source = str(stored.request.get("training_cutoff_source") or "")
    if source.startswith("--training-cutoff"):
        ms = stored.request.get("training_cutoff_ms")
        return Cutoff(int(ms) if isinstance(ms, int) else None, source)
    # The configured cutoffs may have been corrected since the backtest ran.
    return model_cutoff(settings.llm.cutoffs, stored.report.get("model"))


async def _truth(settings: Settings, stored: StoredBacktest, timeframes: list[str]) -> Tape:
    """The backtest's candles as a tape: the tape it ran on (checked against the stored hash), or
    its candles read again from its own source over its span and warm-up, frozen."""
    from rez_cli.backtest.history import HistorySource
    from rez_cli.market.view import open_source
    from rez_cli.tape import TapeMeta, load_tape

    report, request = stored.report, stored.request
    if request.get("tape"):
        tape = load_tape(Path(str(request["tape"])))
        if stored.tape_hash is not None and tape.hash != stored.tape_hash:
            raise DataError(
                f"the tape {request['tape']} is {tape.hash}, "
                f"not the {stored.tape_hash} backtest {stored.id} read",
                hint="audit with the tape the backtest ran on",
            )
        return tape
    start, end = int(report["start_ms"]), int(report["end_ms"])
    data = Path(request["data"]) if request.get("data") else None
    market = open_source(settings, exchange=request.get("exchange"), data=data, now_ms=end)
    try:
        history = HistorySource(
            market, stored.symbol, start_ms=start, end_ms=end, warmup=settings.market.candles
        )
        await history.load(timeframes)
        meta = TapeMeta(
            symbol=stored.symbol,
            exchange=market.name,
            simulated=market.simulated,
            timeframe=str(report["timeframe"]),
            # The primary timeframe stays among them: a context always holds it, and a backtest on
            # the primary alone (--timeframes 1h) has no other.
            context_timeframes=tuple(timeframes),
            every=int(report.get("every") or 1),
            start_ms=start,
            end_ms=end,
            moments=tuple(int(row["timestamp"]) for row in report.get("decisions") or []),
            created_ms=now_ms(),
            warmup=settings.market.candles,
            seed=settings.market.seed,
        )
        return Tape.of(meta, history.frames)
    finally:
        await market.close()


async def audit_backtest(
    settings: Settings,
    stored: StoredBacktest,
    options: AuditOptions,
    *,
    llm: LLMClient | None = None,
    on_progress: Callable[[AuditProgress], None] | None = None,
) -> AuditReport:
    """Audit one stored backtest (nothing is written: ``rez audit`` stores the result).

    Args:
        settings: the effective settings (the model and its endpoint, ``[llm.cutoffs]``).
        stored: the backtest, from ``Journal.backtests().load``.
        options: sample sizes, the alterations, the seed.
        llm: the model client instead of the configured one (closed at the end).
        on_progress: called after each replayed cycle and probe.

    Raises:
        UsageError: the backtest's model is not configured now.
        DataError, ExchangeError: its candles cannot be had again.
    """
    from rez_cli.cycle.choice import require_price_for_limit
    from rez_cli.cycle.context import context_timeframes
    from rez_cli.cycle.run import make_llm
    from rez_cli.llm import local_model
    from rez_cli.llm.cache import CachingLLM, ResponseCache, default_cache_path
    from rez_cli.llm.client import LLMNotConfigured
    from rez_cli.reasoning.registry import mode_spec

    if options.sample < 1 or options.probes < 0 or options.horizon < 1:
        raise UsageError("--sample and --horizon must be at least 1, --probes at least 0")
    report = stored.report
    where = f"backtest {stored.id}"
    try:
        timeframe = str(report["timeframe"])
        mode = str(report["mode"])
        start, end = int(report["start_ms"]), int(report["end_ms"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: the stored report lacks its span, timeframe or mode") from None
    step = timeframe_ms(timeframe)
    needs_model = mode_spec(mode).needs_model
    profile = RiskProfile.model_validate(stored.request.get("profile") or {})
    cutoff = _cutoff(settings, stored, needs_model)
    findings: dict[str, Any] = {
        "symbol": stored.symbol,
        "mode": mode,
        "model": report.get("model"),
        "from": iso(start),
        "to": iso(end),
        "training_cutoff": {"date": cutoff.day, "source": cutoff.source},
    }
    cutoff_found = cutoff_split(report, cutoff.ms, step)
    regimes = regime_split(report)
    findings["cutoff_split"] = cutoff_found
    findings["regimes"] = regimes

    scratch = tempfile.TemporaryDirectory(prefix="rez-audit-")
    request = replace(
        request_of(stored.request, journal=Path(scratch.name) / "replays.sqlite", where=where),
        mode=mode,
    )
    shaped = settings.with_timeframes(timeframe, request.context_timeframes)
    timeframes = context_timeframes(list(shaped.market.context_timeframes), timeframe)
    with contextlib.ExitStack() as stack:
        stack.callback(scratch.cleanup)
        client: CachingLLM | None = None
        # The model the backtest asked: the replays ask it again, the probe asks it, the budget prices it.
        model = str(report.get("model") or request.model or "")
        if needs_model:
            inner = llm
            served_here = False
            if inner is None:
                gguf = local_model.prepare(settings.llm, request.model)
                served_here = gguf is not None
                local = stack.enter_context(local_model.serve(settings.llm, gguf)) if gguf else None
                try:
                    inner, _ = make_llm(settings, request.model, local)
                except LLMNotConfigured as error:
                    raise UsageError(error.message) from None
                assert inner is not None
            require_price_for_limit(settings.llm, model, options.max_cost_usd, local=served_here)
            client = CachingLLM(
                inner,
                ResponseCache(default_cache_path()),
                prices=settings.llm.prices,
                max_cost_usd=options.max_cost_usd,
            )
        try:
            truth = await _truth(settings, stored, timeframes)
            # The cycles see the candles as the tape holds them: its timeframes and warm-up.
            shaped = truth.apply(shaped)
            if timeframe not in truth.frames:
                raise DataNotFound(f"{where}: no {timeframe} candles of {stored.symbol} to audit on")
            moments = sample_moments(
                [int(row["timestamp"]) for row in report.get("decisions") or []], options.sample, options.seed
            )
            copies = altered_copies(truth, price_scale=options.price_scale, shift_years=options.shift_years)
            total = len(moments) * len(copies)
            done = 0

            def advanced(phase: str) -> Callable[[], None]:
                def tick() -> None:
                    nonlocal done
                    done += 1
                    if on_progress is not None:
                        on_progress(AuditProgress(phase, done, total))

                return tick

            actions: dict[str, list[str | None]] = {}
            failed: dict[str, int] = {}
            # Every replay's calls go through the audit's one client: one budget for the whole audit.
            shared = _Shared(client) if client is not None else None
            for copy in copies:
                actions[copy.name], failed[copy.name] = await replay(
                    shaped,
                    profile,
                    request,
                    copy,
                    moments,
                    step,
                    llm=shared,
                    on_cycle=advanced("altered copies"),
                )
            moves = forward_returns(truth.frames[timeframe], moments, step, options.horizon)
            altered = compare_copies(actions, moves, failed) if moments else []
            findings["altered"] = {
                "sampled": len(moments),
                "seed": options.seed,
                "horizon": options.horizon,
                "copies": {copy.name: copy.description for copy in copies},
                "results": altered,
            }
            probe: dict[str, Any] | None = None
            if client is not None and options.probes:
                windows = probe_windows(truth.frames[timeframe], start, end, options.probes, options.seed)
                assert shared is not None
                probe = await run_probe(shared, model, stored.symbol, timeframe, windows, options.seed)
            findings["probe"] = (
                probe
                if probe is not None
                else {"skipped": "no model to probe" if client is None else "--probes 0"}
            )
            if client is not None:
                findings["spent_usd"] = client.cost_usd
            if shared is not None and shared.refused:
                findings["stopped"] = str(Hold.BUDGET_EXCEEDED)
        finally:
            if client is not None:
                await client.close()
            elif llm is not None:
                await llm.close()
    letter, reasons = grade(report, cutoff_found, regimes, findings["altered"]["results"], probe)
    if findings.get("stopped") == Hold.BUDGET_EXCEEDED:
        # The grade stands on what was done; the reader must know it is not the whole audit.
        reasons.insert(
            0,
            f"incomplete: --max-cost ${options.max_cost_usd:g} stopped the model calls "
            f"(spent ${findings['spent_usd']:.4f}); the replays and probes it refused count as failed",
        )
    return AuditReport(stored.id, letter, reasons, findings)


async def audit_stored(
    settings: Settings,
    journal: Path | None,
    backtest_id: str,
    options: AuditOptions,
    *,
    on_progress: Callable[[AuditProgress], None] | None = None,
) -> AuditReport:
    """Load backtest ``backtest_id`` from the journal, audit it, and store the audit with it.

    Raises:
        DataNotFound: no journal, or no such backtest in it.
        UsageError, DataError, ExchangeError: see ``audit_backtest``.
    """
    from rez_cli.journal.session import open_journal

    with open_journal(settings, journal, create=False) as opened:
        stored = opened.backtests().load(backtest_id)
    found = await audit_backtest(settings, stored, options, on_progress=on_progress)
    with open_journal(settings, journal) as opened:
        opened.backtests().save_audit(found.backtest_id, found.grade, found.reasons, found.to_json())
    return found
