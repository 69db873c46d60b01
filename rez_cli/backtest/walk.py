"""``rez backtest``: walk history one decision cycle at a time, trade the decisions, score them.

Every ``every`` closed candles of the primary timeframe, the orchestrator runs one ordinary cycle with
``as_of`` at that moment, over a ``HistorySource`` that holds the candles in memory and cuts every
timeframe there: the cycle sees what a live run at that moment would have seen, and nothing after.
Each decision becomes an order for the next candle (``fills``); the account walks the candles as
they close, so what the next cycle is told about its open position (through the memory accessor,
as its previous decision's ``outcome``) is also known by then. Every cycle is journaled under one
backtest id. Then the same span is scored for buy-and-hold and for the ``rules`` mode (``metrics``).

The walk ends early, reporting what was done, when the budget would be passed (``budget_exceeded``),
when the model cannot be used (``model_auth_failed``, ``model_not_configured``, or
``model_unavailable`` after several failed cycles in a row), or on Ctrl-C (``interrupted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rez_cli import clock
from rez_cli.account.book import PositionView, decision_order, order_exposure_problem
from rez_cli.account.fills import (
    PENDING,
    Account,
    Candle,
    FillConfig,
    Order,
    OrderState,
    Trade,
)
from rez_cli.account.watch import FrameWatch, condition_of
from rez_cli.backtest.ahead import MarketsAhead
from rez_cli.backtest.history import HistorySource
from rez_cli.backtest.metrics import Metrics, compute_metrics
from rez_cli.clock import iso
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.cycle.choice import DEFAULT_MODEL, choose, require_price_for_limit
from rez_cli.cycle.context import context_timeframes
from rez_cli.cycle.orchestrator import Event, EventResult, Orchestrator
from rez_cli.decision.codes import FATAL, TRANSIENT, Hold
from rez_cli.decision.model import Decision
from rez_cli.errors import DataNotFound, ExitCode, UsageError
from rez_cli.formatting import json_ready, price
from rez_cli.llm.cache import CachingLLM, ResponseCache, default_cache_path
from rez_cli.llm.client import LLMClient, LLMNotConfigured
from rez_cli.market.candles import parse_time
from rez_cli.market.source import MarketSource
from rez_cli.reasoning.registry import OFFLINE_MODE, find_mode
from rez_cli.timeframes import timeframe_ms

# Without --from, a backtest covers the 30 days before its end: --to (or now), or the last candle of
# the data when that comes first.
DEFAULT_SPAN_MS = 30 * 86_400_000
DEFAULT_TRAINING_CUTOFF = "2023-10-01"
# A cycle needs this many candles on every context timeframe before it can say anything useful.
MIN_HISTORY = 50
# Transient holds (codes.TRANSIENT) in a row that end the walk: the endpoint is down, every cycle would hold.
MAX_FAILURES_IN_A_ROW = 5
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class BacktestRequest:
    """What ``rez backtest`` was asked for.

    ``start_ms``/``end_ms`` bound the moments cycles stand at (rounded to whole candles; ``end_ms``
    None is now, or the end of the data; ``start_ms`` None is 30 days before that end).
    ``context_timeframes`` None keeps ``[market] context_timeframes``. ``mode`` None is ``react``
    when a model is configured, else ``rules``. ``training_cutoff_ms``: a react backtest over an
    earlier span gets a warning. The risk profile's ``maintenance_margin_pct`` replaces the one in
    ``fills``: the profile is where a user sets it. ``moments`` (a tape's) are the moments cycles
    stand at instead of a cycle every ``every`` candles: the span starts at the candle of the first
    one, and a moment without a whole candle after it before ``end_ms`` is skipped with a notice.
    ``ahead``: a walk without a model reads its markets in a second process ahead of its cycles
    (``backtest.ahead``; the same decisions and journal either way); False reads each in its cycle.
    """

    symbol: str
    start_ms: int | None
    end_ms: int | None = None
    timeframe: str | None = None
    context_timeframes: Sequence[str] | None = None
    every: int = 1
    mode: str | None = None
    exchange: str | None = None
    data: Path | None = None
    model: str | None = None
    max_cost_usd: float | None = None
    fills: FillConfig = field(default_factory=FillConfig)
    initial_equity: float = 10_000.0
    journal: Path | None = None
    argv: Sequence[str] = ()
    use_cache: bool = True
    llm_cache: bool = True
    baselines: bool = True
    training_cutoff_ms: int | None = None
    moments: Sequence[int] | None = None
    ahead: bool = True


@dataclass(frozen=True)
class Progress:
    """Where a walk stands, for a progress bar."""

    phase: str
    done: int
    total: int
    cost_usd: float
    llm_calls: int
    cache_hits: int


@dataclass(frozen=True)
class StrategyRun:
    """One strategy over the span: its decisions, trades, equity curve and scores."""

    metrics: Metrics
    decisions: list[dict[str, Any]]
    trades: list[Trade]
    curve: list[float]
    curve_ms: list[int]


@dataclass(frozen=True, repr=False)
class BacktestReport:
    """Everything a backtest found; ``to_json`` is what ``--json`` prints."""

    backtest_id: str
    symbol: str
    exchange: str
    simulated: bool
    timeframe: str
    mode: str
    model: str | None
    every: int
    start_ms: int
    end_ms: int
    requested_end_ms: int
    stopped: str | None
    strategy: StrategyRun
    buy_and_hold: StrategyRun | None
    rules: StrategyRun | None
    cost_usd: float
    llm_calls: int
    cache_hits: int
    fills: FillConfig
    initial_equity: float
    notices: list[str]
    warnings: list[str]
    journal: Path
    run_id: int
    read_ahead: int = 0
    """The strategy's cycles whose market was read ahead in a second process (``backtest.ahead``)."""

    def __repr__(self) -> str:
        # Short: asyncio writes the repr of a finished task's result as it closes its loop (to name
        # its Ctrl-C handler), and the whole of 10,000 cycles took 0.3 s to write.
        return (
            f"BacktestReport(backtest_id={self.backtest_id!r}, symbol={self.symbol!r}, "
            f"mode={self.mode!r}, decisions={len(self.strategy.decisions)}, stopped={self.stopped!r})"
        )

    @property
    def complete(self) -> bool:
        return self.stopped is None

    @property
    def exit_code(self) -> ExitCode:
        """0 complete, 130 interrupted, 3 ended early by the budget or a model failure."""
        if self.stopped is None:
            return ExitCode.OK
        return ExitCode.INTERRUPTED if self.stopped == INTERRUPTED else ExitCode.HOLD_BY_FAILURE

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object (no NaN or infinity anywhere)."""
        return {
            "backtest_id": self.backtest_id,
            "symbol": self.symbol,
            "exchange": self.exchange,
            "simulated": self.simulated,
            "timeframe": self.timeframe,
            "mode": self.mode,
            "model": self.model,
            "every": self.every,
            "from": iso(self.start_ms),
            "to": iso(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "requested_end_ms": self.requested_end_ms,
            "complete": self.complete,
            "stopped": self.stopped,
            "cycles": len(self.strategy.decisions),
            "cost_usd": round(self.cost_usd, 6),
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "fills": {
                "fee_pct": self.fills.fee_pct,
                "slippage_pct": self.fills.slippage_pct,
                "entry": self.fills.entry,
                "maintenance_margin_pct": self.fills.maintenance_margin_pct,
            },
            "initial_equity": self.initial_equity,
            "metrics": json_ready(self.strategy.metrics.as_dict()),
            "baselines": {
                "buy_and_hold": json_ready(self.buy_and_hold.metrics.as_dict())
                if self.buy_and_hold
                else None,
                "rules": json_ready(self.rules.metrics.as_dict()) if self.rules else None,
            },
            "trades": [_trade_json(trade) for trade in self.strategy.trades],
            "decisions": self.strategy.decisions,
            "notices": self.notices,
            "warnings": self.warnings,
            "journal": str(self.journal),
            "run_id": self.run_id,
        }


def _trade_json(trade: Trade) -> dict[str, Any]:
    cleaned: dict[str, Any] = json_ready(
        {
            "trace_id": trade.ref or None,
            "side": "long" if trade.side > 0 else "short",
            "entry_ms": trade.entry_ms,
            "entry_price": trade.entry_price,
            "exit_ms": trade.exit_ms,
            "exit_price": trade.exit_price,
            "reason": trade.reason,
            "liquidation_price": trade.liquidation_price,
            "pnl": trade.pnl,
            "fees": trade.fees,
            "r_multiple": trade.r_multiple,
            "return_pct": trade.return_pct,
        }
    )
    return cleaned


def training_cutoff_notice(start_ms: int, end_ms: int, cutoff_ms: int | None) -> str | None:
    """A warning when a react backtest's span lies (partly) before the model's training cutoff."""
    if cutoff_ms is None or start_ms >= cutoff_ms:
        return None
    which = "lies before" if end_ms <= cutoff_ms else "starts before"
    return (
        f"the span {iso(start_ms)[:10]}..{iso(end_ms)[:10]} {which} the training cutoff "
        f"{iso(cutoff_ms)[:10]} (--training-cutoff): the model may remember these prices, "
        "so its results can look better than it would do live"
    )


def _fmt(value: float | None) -> str:
    return price(value, missing="none")


class WalkMemory:
    """The memory accessor of one walk: its own earlier decisions, and what became of them.

    The outcome of each decision says how its order fared and what position is open now, so the
    next cycle knows its position without any hook in the orchestrator. Only the account's candles
    closed by the asking cycle's moment are behind it (the walk advances the account first).
    """

    def __init__(self, account: Account) -> None:
        self.account = account
        self.entries: list[tuple[dict[str, Any], OrderState | None]] = []

    def add(self, decision: dict[str, Any], state: OrderState | None) -> None:
        self.entries.append((decision, state))

    def recent(
        self, symbol: str, limit: int = 3, *, exchange: str | None = None, before_ms: int | None = None
    ) -> list[Mapping[str, Any]]:
        """This walk's decisions that saw the market before ``before_ms``, newest first, with ``outcome``."""
        found: list[Mapping[str, Any]] = []
        for decision, state in reversed(self.entries):
            if len(found) >= max(0, limit):
                break
            # ``before_ms`` is the market moment the asking cycle saw, so it is compared with the
            # moment each decision saw, not with when it was asked (they differ inside a data gap).
            if before_ms is not None and int(decision["as_of"]) >= before_ms:
                continue
            found.append({**decision, "outcome": self._outcome(state)})
        return found

    def _outcome(self, state: OrderState | None) -> str:
        parts = []
        if state is not None:
            parts.append(_order_fate(state))
        position = self.account.position
        last = self.account.last_close
        if position is None:
            parts.append("no position is open now")
        else:
            side = "long" if position.side > 0 else "short"
            change = (
                f", last close {_fmt(last)} ({position.side * (last / position.entry_price - 1) * 100:+.2f}%)"
                if last is not None
                else ""
            )
            parts.append(
                f"a {side} position is open since {iso(position.entry_ms)} at {_fmt(position.entry_price)}"
                f" (TP {_fmt(position.tp_price)}, SL {_fmt(position.sl_price)}){change}"
            )
        return "; ".join(parts)


def _order_fate(state: OrderState) -> str:
    if state.trade is not None:
        trade = state.trade
        r = f", {trade.r_multiple:+.2f}R" if trade.r_multiple is not None else ""
        return f"filled at {_fmt(trade.entry_price)}, closed by {trade.reason} at {_fmt(trade.exit_price)}{r}"
    return {
        "filled": "filled",
        "pending": "waiting for the next candle",
        "not_touched": "not filled: the next candle never reached the entry",
        "beyond_levels": "not filled: the market opened beyond the stop or the target",
        "position_open": "not traded: a position was already open",
        "no_position": "not traded: no position was open to close",
        "zero_size": "not traded: zero size",
        "no_candle": "not traded: no candle followed",
    }.get(state.status, state.status)


class WalkBook:
    """The ``Book`` of one walk: its account's position, shown to each cycle, and its orders.

    The walk advances the account to a cycle's moment before the cycle runs, so what a cycle is shown
    is what a live run would know by then.
    """

    def __init__(self, account: Account, profile: RiskProfile) -> None:
        self.account = account
        self.profile = profile
        self.placed: OrderState | None = None
        self._notes_seen = 0

    def view(self, symbol: str, as_of_ms: int, last_price: float) -> PositionView | None:
        account = self.account
        position = account.position
        if position is not None:
            closing = account.closing
            return PositionView.of_position(
                symbol,
                position,
                equity=account.equity,
                last_price=last_price,
                age_candles=max(0, (as_of_ms - position.entry_ms) // account.timeframe_ms),
                closing=(closing.detail or closing.reason) if closing is not None else None,
            )
        pending = account.pending
        if pending is not None and pending.kind == "open":
            return PositionView.of_order(symbol, pending, equity=account.equity, last_price=last_price)
        return None

    def notes(self, symbol: str) -> tuple[str, ...]:
        new = tuple(self.account.notes[self._notes_seen :])
        self._notes_seen = len(self.account.notes)
        return new

    def admit(self, decision: Decision) -> tuple[Hold, str] | None:
        account = self.account
        held = account.position
        order = decision_order(decision, decision.timestamp, add=held is not None)
        if order is None:
            return None
        if order.kind == "open":
            open_notionals = [held.notional] if held is not None else []
            refused = order_exposure_problem(self.profile, order, account.equity, open_notionals)
            if refused is not None:
                return refused
        state = account.submit(order)
        if state.status != PENDING:
            code = Hold.NO_POSITION if order.kind == "close" else Hold.POSITION_OPEN
            return code, f"the account did not take the order: {state.status.replace('_', ' ')}"
        self.placed = state
        return None


@dataclass
class _Walk:
    account: Account
    memory: WalkMemory
    rows: list[tuple[dict[str, Any], OrderState | None]] = field(default_factory=list)
    stopped: str | None = None
    stop_ms: int = 0
    read_ahead: int = 0


async def _walk(
    orchestrator: Orchestrator,
    account: Account,
    book: WalkBook,
    memory: WalkMemory,
    *,
    symbol: str,
    mode: str,
    times: Sequence[int],
    end_ms: int,
    correlation_id: str,
    phase: str,
    llm: CachingLLM | None,
    on_progress: Callable[[Progress], None] | None,
    on_cycle: Callable[[EventResult], None] | None,
    history: HistorySource,
) -> _Walk:
    walk = _Walk(account, memory)
    failures_in_a_row = 0
    for index, moment in enumerate(times):
        # Candles that closed by this moment are settled before the cycle runs, never after.
        account.advance(moment)
        book.placed = None
        try:
            result = await orchestrator.handle_event(
                Event("decide", {"symbol": symbol, "mode": mode, "as_of": moment}, moment, correlation_id)
            )
        except asyncio.CancelledError:
            # Ctrl-C: asyncio.run cancels the task; swallowing it here lets the partial result out.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            walk.stopped, walk.stop_ms = INTERRUPTED, moment
            return walk
        if on_cycle is not None:
            on_cycle(result)
        decision = result.decision
        assert decision is not None  # a decide event always ends in one
        error = decision.error
        if error in FATAL:
            walk.stopped, walk.stop_ms = str(error), moment
            return walk
        failures_in_a_row = failures_in_a_row + 1 if error in TRANSIENT else 0
        row = {
            # When the decision was asked for, as ``decide --as-of`` stamps it; ``as_of`` is the close
            # of the last candle it saw, earlier when the data has a gap there.
            "timestamp": moment,
            "as_of": decision.as_of or moment,
            "action": decision.action,
            "entry_price": decision.entry_price,
            "tp_price": decision.tp_price,
            "sl_price": decision.sl_price,
            "leverage": decision.leverage,
            "size_pct": decision.size_pct,
            "confidence": decision.confidence,
            "rationale": decision.rationale,
            "invalidation": decision.invalidation,
            "source": decision.source,
            "error": error,
            "trace_id": decision.trace_id,
        }
        # The book placed the order of a buy, sell or close the policy and the account took.
        state = book.placed if decision.error is None else None
        condition = condition_of(state.order.invalidation) if state is not None else None
        if condition is not None:
            # Its timeframes are there before the first candle it is checked on.
            await history.load(condition.timeframes)
        walk.rows.append((row, state))
        memory.add(row, state)
        if on_progress is not None:
            on_progress(
                Progress(
                    phase,
                    index + 1,
                    len(times),
                    llm.cost_usd if llm else 0.0,
                    llm.misses if llm else 0,
                    llm.hits if llm else 0,
                )
            )
        if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            walk.stopped, walk.stop_ms = (
                "model_unavailable",
                times[index + 1] if index + 1 < len(times) else end_ms,
            )
            return walk
    walk.stop_ms = end_ms
    return walk


def _settle(walk: _Walk, timeframe_ms_: int, *, decisions: bool = True) -> StrategyRun:
    account = walk.account
    account.advance(walk.stop_ms)
    account.finish()
    rows = []
    for row, state in walk.rows:
        out = {key: row[key] for key in row if key not in ("rationale", "invalidation")}
        out["fill"] = state.status if state is not None else None
        rows.append(out)
    metrics = compute_metrics(
        account.curve,
        account.trades,
        timeframe_ms=timeframe_ms_,
        exposed_candles=account.exposed_candles,
        actions=[row["action"] for row, _ in walk.rows] if decisions else None,
    )
    return StrategyRun(metrics, rows, list(account.trades), list(account.curve), list(account.curve_ms))


async def _data_end(market: MarketSource, symbol: str, timeframe: str, end_ms: int) -> int:
    """The close of the last ``timeframe`` candle closed by ``end_ms``: where the data ends.

    Raises:
        DataError, ExchangeError: from the source (no candle at all included).
    """
    frame = (await market.fetch(symbol, [timeframe], 1, until_ms=end_ms))[timeframe]
    if frame.empty:
        return end_ms
    return min(end_ms, int(frame["timestamp"].iloc[-1]) + timeframe_ms(timeframe))


def _first_moment(history: HistorySource, timeframes: Sequence[str], start_ms: int, step: int) -> int:
    """The first whole-candle moment at or after ``start_ms`` with enough history on every timeframe."""
    ready = start_ms
    for timeframe in timeframes:
        closes = history.closes(timeframe)
        if len(closes) < MIN_HISTORY:
            raise DataNotFound(
                f"only {len(closes)} {timeframe} candles of {history.symbol} by {iso(history.end_ms)}",
                hint=f"a backtest needs at least {MIN_HISTORY} on every context timeframe",
            )
        ready = max(ready, int(closes[MIN_HISTORY - 1]))
    return -(-ready // step) * step


async def run_backtest(
    settings: Settings,
    profile: RiskProfile,
    request: BacktestRequest,
    *,
    source: MarketSource | None = None,
    llm: LLMClient | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_cycle: Callable[[EventResult], None] | None = None,
) -> BacktestReport:
    """Walk the span, trade every decision, and score it against buy-and-hold and the rules mode.

    Args:
        settings: the effective settings; ``request.timeframe`` overrides ``[market] timeframe``.
        profile: the risk profile every decision is checked against.
        request: what to backtest.
        source: candles to use instead of opening ``request.exchange``/``request.data`` (left open).
        llm: the model client for react mode instead of the configured one (closed at the end).
        on_progress: called after every cycle.
        on_cycle: called with every cycle's result (traces included), for tests and tools.

    Raises:
        UsageError: a bad request (unknown mode, empty span, react without a model, a GGUF file that
            cannot be served).
        DataError, ExchangeError: the candles cannot be had.
    """
    # A GGUF the run serves itself stays loaded for the whole walk, baselines included.
    with contextlib.ExitStack() as served:
        return await _run_backtest(
            settings,
            profile,
            request,
            source=source,
            llm=llm,
            on_progress=on_progress,
            on_cycle=on_cycle,
            served=served,
        )


async def _run_backtest(
    settings: Settings,
    profile: RiskProfile,
    request: BacktestRequest,
    *,
    source: MarketSource | None,
    llm: LLMClient | None,
    on_progress: Callable[[Progress], None] | None,
    on_cycle: Callable[[EventResult], None] | None,
    served: contextlib.ExitStack,
) -> BacktestReport:
    from rez_cli.cycle.run import make_llm
    from rez_cli.journal.session import open_journal, start_run
    from rez_cli.llm import local_model
    from rez_cli.market.view import open_source

    timeframe = request.timeframe or settings.market.timeframe
    step = timeframe_ms(timeframe)
    if request.every < 1:
        raise UsageError(f"--every must be at least 1, got {request.every}")
    settings = settings.with_timeframes(timeframe, request.context_timeframes)
    fills = replace(request.fills, maintenance_margin_pct=profile.maintenance_margin_pct)
    notices: list[str] = []
    warnings: list[str] = []
    choice = choose(settings.llm, request.mode, request.model)
    mode = choice.mode.name
    needs_model = choice.mode.needs_model
    if not choice.asked and mode == OFFLINE_MODE:
        notices.append(f"no model configured: backtesting the deterministic {mode} mode")
    requested_end = request.end_ms if request.end_ms is not None else clock.now_ms()
    end = requested_end // step * step
    start = end - DEFAULT_SPAN_MS  # until the data says where it ends (below)
    moments = sorted(set(request.moments)) if request.moments is not None else None
    if moments == []:
        raise UsageError("no moments to walk: the tape holds none")
    if moments is not None:
        start = moments[0] // step * step
        if start >= end:
            raise UsageError(f"the moments from {iso(moments[0])} lie after the end {iso(requested_end)}")
    elif request.start_ms is not None:
        start = -(-request.start_ms // step) * step
        if start >= end:
            raise UsageError(
                f"the span {iso(request.start_ms)}..{iso(requested_end)} holds no whole {timeframe} candle",
                hint="--from must come before --to",
            )
    model: str | None = None
    client: CachingLLM | None = None
    if needs_model:
        model = choice.model.model or DEFAULT_MODEL
        inner = llm
        if inner is None:
            if not choice.model.configured:
                raise UsageError(
                    f"--mode {mode} needs a model, and none is configured",
                    hint="set [llm] model and OPENAI_API_KEY, or [llm] base_url; "
                    f"or use --mode {OFFLINE_MODE}",
                )
            gguf = local_model.prepare(settings.llm, request.model)
            # Before the model loads: a limit that cannot hold is refused first.
            require_price_for_limit(settings.llm, model, request.max_cost_usd, local=gguf is not None)
            local = served.enter_context(local_model.serve(settings.llm, gguf)) if gguf else None
            try:
                inner, _ = make_llm(settings, request.model, local)
            except LLMNotConfigured as error:
                raise UsageError(error.message) from None
            assert inner is not None
        else:
            require_price_for_limit(settings.llm, model, request.max_cost_usd)
        cache = ResponseCache(default_cache_path()) if request.llm_cache else None
        client = CachingLLM(inner, cache, prices=settings.llm.prices, max_cost_usd=request.max_cost_usd)
    owned = source is None
    market = source or open_source(
        settings, exchange=request.exchange, data=request.data, use_cache=request.use_cache, now_ms=end
    )
    try:
        if request.start_ms is None and moments is None:
            # Files of last year, asked for "the last 30 days", mean their own last 30 days, not an
            # empty month before now.
            end = await _data_end(market, request.symbol, timeframe, end)
            start = -(-(end - DEFAULT_SPAN_MS) // step) * step
        history = HistorySource(
            market, request.symbol, start_ms=start, end_ms=end, warmup=settings.market.candles
        )
        timeframes = context_timeframes(list(settings.market.context_timeframes), timeframe)
        await history.load(timeframes)
        primary = history.frame(timeframe)
        closes = history.closes(timeframe)
        if len(closes):
            end = min(end, int(closes[-1]) // step * step)
        first = _first_moment(history, timeframes, start, step)
        if first > start:
            notices.append(
                f"the data starts late: the first cycle stands at {iso(first)}, not {iso(start)}, "
                f"so that every timeframe has {MIN_HISTORY} candles behind it"
            )
        start = first
        if moments is None:
            times = list(range(start, end - step + 1, step * request.every))
        else:
            # Live cycles' moments need not fall on the candle grid; each needs a whole candle after it.
            times = [moment for moment in moments if start <= moment <= end - step]
            if len(times) < len(moments):
                notices.append(
                    f"{len(moments) - len(times)} of the {len(moments)} moments are skipped: "
                    f"{MIN_HISTORY} candles on every timeframe before them, or a whole {timeframe} "
                    f"candle after them by {iso(end)}, are missing"
                )
        if not times:
            raise DataNotFound(
                f"no {timeframe} candle of {request.symbol} between {iso(start)} and {iso(end)} to trade on",
                hint="widen the span between --from and --to",
            )
        if needs_model:
            notice = training_cutoff_notice(start, end, request.training_cutoff_ms)
            if notice:
                warnings.append(notice)
        in_span = primary[(primary["timestamp"] >= start) & (primary["timestamp"] < end)]
        candles = [
            Candle(int(ts), float(o), float(h), float(low), float(c))
            for ts, o, h, low, c in in_span[["timestamp", "open", "high", "low", "close"]].itertuples(
                index=False
            )
        ]

        journal = open_journal(settings, request.journal)
        run_id = start_run(journal, "backtest", request.argv, settings, profile)
        backtest_id = "bt-" + uuid.uuid4().hex[:12]

        def new_account() -> Account:
            # Invalidations are read on the history's frames: whole, but only the candles closed by
            # each moment are ever looked at.
            watch = FrameWatch(history.frames, memo=history.memo)
            return Account(request.initial_equity, fills, candles, step, watch=watch)

        async def walk(
            mode_: str, llm_: CachingLLM | None, walk_times: Sequence[int], tag: str, phase: str
        ) -> _Walk:
            account = new_account()
            memory = WalkMemory(account)
            book = WalkBook(account, profile)
            # Without a model a cycle is mostly the reading of its market: read ahead on another core.
            spec = find_mode(mode_)
            ahead = (
                MarketsAhead.start(history, settings, walk_times, spec.tool_calls if spec else None)
                if llm_ is None and request.ahead
                else None
            )
            orchestrator = Orchestrator(
                settings,
                profile,
                history,
                llm=llm_,
                model=model if llm_ is not None else None,
                memory=memory,
                recorder=journal.recorder(run_id, backtest_id=tag),
                # The history's candles never change, so a window's indicators can serve every
                # cycle that sees the same window (each is still computed from that window alone).
                memo=history.memo,
                # Nothing draws a backtest cycle's chart; leaving it out keeps it out of the journal.
                chart=False,
                book=book,
                ahead=ahead,
            )
            try:
                walked = await _walk(
                    orchestrator,
                    account,
                    book,
                    memory,
                    symbol=request.symbol,
                    mode=mode_,
                    times=walk_times,
                    end_ms=end,
                    correlation_id=tag,
                    phase=phase,
                    llm=llm_,
                    on_progress=on_progress,
                    on_cycle=on_cycle,
                    history=history,
                )
            finally:
                if ahead is not None:
                    ahead.close()
            walked.read_ahead = ahead.received if ahead is not None else 0
            return walked

        # Thousands of rules cycles in a row: commit in batches (and whatever is pending on Ctrl-C).
        # A model's cycles are slow anyway, and a batch must not hold the lock across model calls.
        with journal.batched() if not needs_model else contextlib.nullcontext():
            main = await walk(mode, client, times, backtest_id, "rules" if mode == "rules" else "strategy")
        stop_ms = main.stop_ms
        strategy = _settle(main, step)
        buy_and_hold: StrategyRun | None = None
        rules: StrategyRun | None = None
        if request.baselines:
            hodl = new_account()
            hodl.submit(Order(1, None, None, None, 1.0, 100.0, start, "buy-and-hold"))
            buy_and_hold = _settle(_Walk(hodl, WalkMemory(hodl), stop_ms=stop_ms), step, decisions=False)
            done_times = [moment for moment in times if moment < stop_ms]
            if mode == "rules":
                rules = strategy
            elif main.stopped != INTERRUPTED and done_times:
                with journal.batched():
                    baseline = await walk("rules", None, done_times, f"{backtest_id}-rules", "rules baseline")
                if baseline.stopped == INTERRUPTED:
                    notices.append("the rules baseline was interrupted: it is left out")
                    main.stopped = INTERRUPTED
                else:
                    baseline.stop_ms = stop_ms
                    rules = _settle(baseline, step)
        journal.close()
    finally:
        if owned:
            await market.close()
        if client is not None:
            await client.close()
        elif llm is not None:
            await llm.close()
    if main.stopped and main.stopped != INTERRUPTED:
        notices.append(f"stopped early ({main.stopped}) at {iso(stop_ms)}: the report covers what was done")
    return BacktestReport(
        backtest_id=backtest_id,
        symbol=request.symbol,
        exchange=market.name,
        simulated=market.simulated,
        timeframe=timeframe,
        mode=mode,
        model=model,
        every=request.every,
        start_ms=start,
        end_ms=stop_ms,
        requested_end_ms=requested_end,
        stopped=main.stopped,
        strategy=strategy,
        buy_and_hold=buy_and_hold,
        rules=rules,
        cost_usd=client.cost_usd if client else 0.0,
        llm_calls=client.misses if client else 0,
        cache_hits=client.hits if client else 0,
        fills=fills,
        initial_equity=request.initial_equity,
        notices=notices,
        warnings=warnings,
        journal=journal.path,
        run_id=run_id,
        read_ahead=main.read_ahead,
    )


def parse_cutoff(text: str | None) -> int | None:
    """``--training-cutoff``: a date, or ``none`` to switch the warning off."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return None
    return parse_time(text)
