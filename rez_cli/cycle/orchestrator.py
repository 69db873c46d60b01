"""One decision cycle, as a library: ``Orchestrator.handle_event(Event) -> EventResult``.

This is the only place the pieces meet: market data → context → reasoning manager → policy →
decision. The CLI is one caller; other programs embed the same call. A failure anywhere after the
inputs are known ends in a hold with a stable error code, never in an exception; bad inputs
(unknown symbol, candles that break a rule) are raised as ``RezError`` for the caller to report.

Two kinds of event:

- ``decide`` (Rez's own): a full cycle on a market, ending in a ``Decision`` (status ``decided``,
  ``held`` or ``rejected``).
- ``decision`` (the public reasoning-manager specification): a decision proposed by the caller,
  vetted by the risk profile's policy, with advice from ``orchestrator.reasoning_manager`` when one
  is attached (status ``accepted`` or ``rejected``). It reads no market and calls no model of Rez's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import ValidationError

from rez_cli import indicators
from rez_cli.account.book import Book, PositionView, position_text
from rez_cli.actions import TRADE_ACTIONS
from rez_cli.clock import iso
from rez_cli.config.settings import (
    RiskProfile,
    Settings,
    load_profile,
    load_settings,
    secrets_of,
)
from rez_cli.cycle.choice import DEFAULT_MODEL, choose_model, default_mode
from rez_cli.cycle.context import context_text, market_view, view_context
from rez_cli.cycle.recording import CycleRecorder
from rez_cli.cycle.trace import ChartSeries, Trace, VerdictRecord, redacted
from rez_cli.decision.codes import Hold
from rez_cli.decision.model import ANSWER_FIELDS, Decision, ModelAnswer
from rez_cli.decision.policy import Verdict, evaluate
from rez_cli.errors import ExchangeUnavailable
from rez_cli.indicators import IndicatorMemo
from rez_cli.invalidation import invalidation_problem
from rez_cli.llm.client import LLMClient
from rez_cli.llm.meter import Meter, estimate_tokens
from rez_cli.market.snapshot import Context
from rez_cli.market.source import MarketSource
from rez_cli.market.view import MarketView
from rez_cli.reasoning.manager import AdvisorySignal, MemoryAccessor, ReasoningManager
from rez_cli.reasoning.modes import CycleServices, llm_endpoint, opening
from rez_cli.reasoning.registry import OFFLINE_MODE, ToolCalls, registered_modes
from rez_cli.reasoning.tools import ToolKey, ToolOutput, ToolRegistry, fetch_indicator_tool
from rez_cli.reasoning.trace import ReasoningTrace, TurnRecord
from rez_cli.redact import active
from rez_cli.symbols import normalize_symbol
from rez_cli.timeframes import timeframe_ms


@dataclass(frozen=True)
class Event:
    """Something to decide on, or a decision to vet.

    ``event_type`` ``decide`` takes ``{"symbol": ..., "mode"?: ..., "as_of"?: ms}``; ``decision``
    takes ``{"id": ..., "reasoning_mode"?: ..., "action": ..., "entry_price"?: ..., "tp_price"?: ...,
    "sl_price"?: ..., "leverage"?: ..., "confidence"?: ..., "rationale"?: ..., "invalidation"?: ...,
    "last_price"?: ...}`` (``Orchestrator.handle_event`` says what each is for).
    """

    event_type: str
    payload: Mapping[str, Any]
    timestamp: int
    correlation_id: str


@dataclass(frozen=True)
class DryRun:
    """What the first model call of a cycle would send."""

    symbol: str
    context: Context
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    prompt_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class MarketMoment:
    """What a cycle reads of its market at its moment: the context, as a model and as JSON, its text,
    the candles' fingerprints, and the answers of tool calls made on that market already.

    It depends on the market and the moment alone, never on an account or a model, so a backtest
    may prepare it ahead of its walk (``backtest.ahead``); ``timings_ms``: the stages spent on it
    there, which the cycle's meter adds to its own.
    """

    context: Context
    context_json: dict[str, Any]
    text: str
    candles: dict[str, dict[str, Any]]
    answers: Mapping[ToolKey, ToolOutput] = field(default_factory=dict)
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    context_json_text: str | None = None
    """``context_json`` as the journal writes it (``compact_json``), when it was written already."""


MarketAhead = Callable[[str, int], MarketMoment | None]
"""A market prepared before the cycle, by symbol and moment, or None to read it in the cycle."""


def cycle_tools(view: MarketView, answered: Mapping[ToolKey, ToolOutput] | None = None) -> ToolRegistry:
    """The tools a cycle offers on ``view`` (``ToolRegistry`` says what ``answered`` is)."""
    registry = ToolRegistry(answered)
    registry.register(fetch_indicator_tool(view))
    return registry


async def read_market(
    view: MarketView, settings: Settings, meter: Meter, tool_calls: ToolCalls | None = None
) -> tuple[dict[str, pd.DataFrame], MarketMoment]:
    """The frames of the context's timeframes and the moment they make, read through ``view``;
    ``tool_calls``: calls of a mode's to answer on it too (``MarketMoment.answers``).

    Raises:
        DataError, ExchangeError: from the view's source.
    """
    frames, context = await view_context(
        view, list(settings.market.context_timeframes), settings.market.timeframe, meter
    )
    with meter.stage("context"):
        text = context_text(context)
    candles = {
        timeframe: candles_fingerprint(frame, timeframe, view.memo) for timeframe, frame in frames.items()
    }
    answers: dict[ToolKey, ToolOutput] = {}
    if tool_calls is not None:
        registry = cycle_tools(view)
        for name, arguments in tool_calls(context):
            await registry.call("ahead", name, arguments)
        answers = registry.answers()
    # Written once for the modes' payload and the trace (neither changes it: the manager hands modes
    # a copy).
    return frames, MarketMoment(context, context.model_dump(mode="json"), text, candles, answers)


@dataclass(frozen=True)
class _Prepared:
    context: Context
    context_json: dict[str, Any]
    context_json_text: str | None
    text: str
    tools: ToolRegistry
    candles: dict[str, dict[str, Any]]
    memory_text: str | None
    chart: ChartSeries | None
    position: PositionView | None = None
    position_text: str | None = None
    account_notes: tuple[str, ...] = ()


CHART_CANDLES = 100


def chart_series(frame: pd.DataFrame, timeframe: str, memo: IndicatorMemo | None = None) -> ChartSeries:
    """The primary timeframe's recent closes and EMA 20, kept in the trace for ``--chart``.

    ``memo``: the cycle's indicators, where the context has already computed this EMA.
    """
    params = {"length": 20}
    if memo is None:
        ema = indicators.compute(frame, "ema", params)["ema"].to_numpy()
    else:
        ema = memo.values(frame, timeframe, "ema", params)["ema"]
    return ChartSeries(
        timeframe,
        open_ms=[int(value) for value in frame["timestamp"].to_numpy()[-CHART_CANDLES:].tolist()],
        close=[float(value) for value in frame["close"].to_numpy()[-CHART_CANDLES:].tolist()],
        ema_20=[None if math.isnan(value) else value for value in ema[-CHART_CANDLES:].tolist()],
    )


def candles_fingerprint(
    frame: pd.DataFrame, timeframe: str, memo: IndicatorMemo | None = None
) -> dict[str, Any]:
    """The window of candles a cycle saw and a hash of them, so a journaled decision can be checked.

    ``memo``: where the frame is already an array, and where a window seen before has its fingerprint.
    """

    def fingerprint() -> dict[str, Any]:
        rows = frame.to_numpy(dtype="float64") if memo is None else memo.array(frame)
        opens = rows[:, frame.columns.get_loc("timestamp")]
        return {
            "count": len(frame),
            "first_open_ms": int(opens[0]),
            "last_close_ms": int(opens[-1]) + timeframe_ms(timeframe),
            # Row by row, as frame.to_numpy gives them (tobytes() is row-major whatever the layout).
            "sha256": hashlib.sha256(rows.tobytes()).hexdigest(),
        }

    if memo is None:
        return fingerprint()
    return dict(memo.derived(frame, timeframe, "candles_fingerprint", fingerprint))


def memory_text(past: Mapping[str, Any]) -> str:
    """The previous decision on a symbol as the model reads it."""
    when = iso(int(past.get("timestamp") or 0))
    action = str(past.get("action", "hold"))
    levels = ", ".join(
        f"{name} {past[key]}"
        for name, key in (("entry", "entry_price"), ("tp", "tp_price"), ("sl", "sl_price"))
        if past.get(key) is not None
    )
    parts = [f"{when}: {action}" + (f" ({levels})" if levels else "")]
    if past.get("rationale"):
        parts.append(f"thesis: {past['rationale']}")
    if past.get("invalidation"):
        parts.append(f"invalidation: {past['invalidation']}")
    if past.get("outcome"):
        parts.append(f"outcome: {past['outcome']}")
    return "; ".join(parts)


EventStatus = Literal["decided", "held", "rejected", "accepted"]


@dataclass(frozen=True)
class EventResult:
    """``status``: ``decided`` (a decision, a chosen hold included), ``held`` (a hold forced by a
    failure), or ``rejected`` (an event Rez does not handle, or a ``decision`` event the policy or
    its validation refused); ``accepted``: a ``decision`` event the policy let through.

    A ``decide`` event's result carries its ``decision``, its ``trace`` and the mode's ``signals``
    (``rejected``: none of them, and ``metadata`` says why); a ``decision`` event's, the
    specification's ``metadata`` (``plan_result``, ``advisory_signals``).
    """

    status: EventStatus
    decision_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None
    trace: Trace | None = None
    signals: tuple[AdvisorySignal, ...] = ()


# A mode's decision comes from the model's text, one way or another; a fallback is Rez's own hold.
_MODE_SOURCES = ("native", "extracted", "repaired")


def _problem(error: Exception) -> str:
    """One line saying what is wrong with a value, the field first when pydantic knows it."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _positive_finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int too large for a float is no price
        return False


def _proposed(payload: Mapping[str, Any]) -> tuple[ModelAnswer, str] | str:
    """The answer and its source that a mode's ``decision`` signal carries, or what is wrong with it.

    Rez's modes hand over the ``ModelAnswer`` they made, taken as it is; a mode of the caller's may
    give the answer's fields as a dict instead.
    """
    try:
        raw = payload.get("answer")
        if isinstance(raw, ModelAnswer):
            answer = raw
        elif isinstance(raw, Mapping):
            answer = ModelAnswer.model_validate(dict(raw))
        else:
            return "its payload has no 'answer' object"
        source = payload.get("source", "native")
        if not isinstance(source, str) or source not in _MODE_SOURCES:
            return f"its source must be one of {', '.join(_MODE_SOURCES)}"
    except Exception as error:
        return f"its answer is not a decision: {_problem(error)}"
    return answer, source


def _decision_id(value: Any) -> str | None:
    """A ``decision`` event's id as the result carries it, or None when there is no usable one."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _refused_plan(profile: RiskProfile, error: str, detail: str) -> dict[str, Any]:
    """The plan result of a ``decision`` event refused before the policy could read it."""
    return {
        "passed": False,
        "error": error,
        "detail": detail,
        "size_pct": 0.0,
        "reward_risk": None,
        "profile": profile.name,
        "last_price": None,
        "checks": [],
    }


def _vet_result(
    status: Literal["accepted", "rejected"],
    decision_id: str,
    plan_result: dict[str, Any],
    advisory: list[dict[str, Any]],
) -> EventResult:
    return EventResult(
        status=status,
        decision_id=decision_id,
        metadata={"plan_result": plan_result, "advisory_signals": advisory},
    )


async def _advice(
    manager: ReasoningManager,
    decision_id: str,
    payload: dict[Any, Any],
    context: dict[str, Any],
    mode: Any,
    plan_id: Any,
) -> list[dict[str, Any]]:
    """The manager's signals as a ``decision`` event reports them; advice can never fail the event."""
    try:
        signals = await manager.reason(
            decision_id=decision_id,
            event_payload=payload,
            execution_context=context,
            reasoning_mode=mode,
            plan_id=plan_id,
        )
        return [
            {
                "decision_id": signal.decision_id,
                "signal_type": signal.signal_type,
                "payload": signal.payload,
                "confidence": signal.confidence,
            }
            for signal in signals
        ]
    except Exception as error:  # a manager of the caller's own that breaks its promise
        message = Hold.REASONING_EXCEPTION.with_detail(_problem(error))
        return [
            {
                "decision_id": decision_id,
                "signal_type": "error",
                "payload": {"error": message, "detail": "the reasoning manager raised"},
                "confidence": None,
            }
        ]


class Orchestrator:
    """Runs decision cycles for one settings + profile, over one market source.

    ``Orchestrator()`` is the offline default: the settings Rez reads from its config file, their
    risk profile, the seeded ``sim`` market, no model (so ``decide`` events run the ``rules`` mode).
    ``manager`` runs the modes of ``decide`` events: by default one holding every mode registered
    (``reasoning.registry``: ``react``, ``rules`` and any a plugin added) when the orchestrator is
    made. ``reasoning_manager`` (None until set) advises on ``decision`` events and never changes
    their outcome.

    ``memo``: indicator results shared by every cycle, only for a source whose candles never change
    (a backtest's ``HistorySource``); by default each cycle has its own. ``chart``: keep the primary
    timeframe's closes and EMA in the trace (``Trace.chart``, for ``rez decide --chart``); a
    backtest, which draws no chart, turns it off. ``ahead``: the market of a ``decide`` event with an
    ``as_of``, when it was prepared before the cycle (a backtest's second process, see
    ``backtest.ahead``); a moment it does not hold is read in the cycle as usual.

    Raises:
        ConfigError: no settings or profile were given, and Rez's own cannot be read.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        profile: RiskProfile | None = None,
        source: MarketSource | None = None,
        *,
        llm: LLMClient | None = None,
        model: str | None = None,
        manager: ReasoningManager | None = None,
        memory: MemoryAccessor | None = None,
        max_turns: int | None = None,
        max_cost_usd: float | None = None,
        on_turn: Callable[[TurnRecord], None] | None = None,
        on_context: Callable[[Context], None] | None = None,
        recorder: CycleRecorder | None = None,
        memo: IndicatorMemo | None = None,
        chart: bool = True,
        book: Book | None = None,
        ahead: MarketAhead | None = None,
    ) -> None:
        if settings is None:
            settings = load_settings().value
        if profile is None:
            profile = load_profile(settings.risk.profile).value
        if source is None:
            from rez_cli.market.sim import SimSource

            source = SimSource(seed=settings.market.seed)
        self.settings = settings
        self.profile = profile
        # The profile is frozen: its JSON, which every cycle's payload holds, is written once.
        self._profile_json = profile.model_dump(mode="json")
        self.source = source
        self.llm = llm
        self.model = model or settings.llm.model or (DEFAULT_MODEL if llm is not None else None)
        self.manager = manager or ReasoningManager(
            {spec.name: spec.factory() for spec in registered_modes()},
            memory_accessor=memory,
            timeout_ms=settings.llm.cycle_timeout_s * 1000,
        )
        self.reasoning_manager: ReasoningManager | None = None
        self.max_turns = max_turns or settings.llm.max_turns
        self.max_cost_usd = max_cost_usd
        self.on_turn = on_turn
        self.on_context = on_context
        self.recorder = recorder
        self.memory = memory if settings.memory.enabled else None
        self.memo = memo
        self.chart = chart
        self.book = book
        self.ahead = ahead
        self._redactor = active().extended(secrets_of(settings))

    async def handle_event(self, event: Event) -> EventResult:
        """Run one cycle for a ``decide`` event, or vet a ``decision`` event.

        A ``decision`` event's payload is a proposed decision: ``id`` (a string, or an integer
        taken as its digits), ``action`` and the levels, ``leverage``, ``confidence``,
        ``rationale``, ``invalidation`` as in the decision's JSON, optionally ``last_price`` (the
        market the levels' distances are measured from; the entry price when absent) and
        ``reasoning_mode`` for the advice (``"default"`` when absent). The profile's policy decides
        the status, ``accepted`` or ``rejected``; the advice comes after and cannot change it. The
        result: ``EventResult(status, decision_id=payload["id"], metadata={"plan_result": {passed,
        error, detail, size_pct, reward_risk, profile, last_price, checks}, "advisory_signals":
        [{decision_id, signal_type, payload, confidence}, ...]})``, the signals ``[]`` with no
        ``reasoning_manager``. A payload that is not a dict, has no usable ``id`` or whose fields do
        not make a decision is ``rejected`` (``plan_result["error"]``: ``invalid_event_payload``,
        ``missing_decision_id``, ``invalid_decision``), never an exception; one without an ``id``
        gets a fresh ``decision_id`` and no advice.

        Raises:
            RezError: a ``decide`` event's inputs cannot be used (unknown symbol, invalid candles,
                unknown timeframe). A ``decision`` event never raises.
        """
        event_type = getattr(event, "event_type", None)
        if event_type == "decision":
            return await self._vet_decision(event)
        decision_id = uuid.uuid4().hex[:16]
        payload = getattr(event, "payload", None)
        as_of = payload.get("as_of") if isinstance(payload, Mapping) else None
        if (
            event_type != "decide"
            or not isinstance(payload, Mapping)
            or not payload.get("symbol")
            or (as_of is not None and (isinstance(as_of, bool) or not isinstance(as_of, int)))
        ):
            return EventResult(
                "rejected",
                decision_id,
                {
                    "error": "unsupported_event",
                    "detail": "expected event_type 'decide' with a symbol (and as_of in ms, if any), "
                    "or 'decision'",
                },
            )
        # Library callers get the spelling run_decide and the lock use: one market, one symbol.
        symbol = normalize_symbol(str(payload["symbol"]))
        # Without a model client only the offline mode can run.
        fallback = (
            default_mode(choose_model(self.settings.llm, self.model).configured)
            if self.llm is not None
            else OFFLINE_MODE
        )
        mode = str(payload.get("mode") or fallback)
        meter = Meter(prices=self.settings.llm.prices, max_cost_usd=self.max_cost_usd)
        started = time.perf_counter()
        try:
            prepared = await self._prepare(symbol, as_of, meter)
        except ExchangeUnavailable as error:
            # The exchange being away is a failure to hold on (cron keeps running); bad input is not.
            unread = Trace(context=None, context_text=None, reasoning=ReasoningTrace())
            return self._held(
                decision_id,
                symbol,
                mode,
                event,
                meter,
                Hold.EXCHANGE_UNAVAILABLE,
                error.one_line(),
                unread,
                [],
            )
        model = self.model if self.llm is not None else None
        if self.on_context is not None:
            self.on_context(prepared.context)
        if self.recorder is not None:
            self.recorder.cycle_started(
                decision_id,
                symbol=symbol,
                exchange=self.source.name,
                simulated=self.source.simulated,
                mode=mode,
                model=model,
                profile=self.profile,
                as_of_ms=prepared.context.as_of,
                candles=prepared.candles,
                context=prepared.context,
                context_text=prepared.text,
            )
        services = CycleServices(
            context=prepared.context,
            context_text=prepared.text,
            profile=self.profile,
            tools=prepared.tools,
            meter=meter,
            llm_settings=self.settings.llm,
            llm=self.llm,
            model=model,
            max_turns=self.max_turns,
            memory_text=prepared.memory_text,
            position_text=prepared.position_text,
            position_side=prepared.position.side if prepared.position is not None else None,
            on_turn=self._turn_observer(decision_id),
        )
        # The reasoning-manager contract hands a mode a payload of plain data (a mode of the caller's
        # may read it); Rez's modes read the typed context and profile from their services.
        mode_payload = {
            "symbol": symbol,
            "context": prepared.context_json,
            "profile": self._profile_json,
        }
        with meter.stage("reasoning"):
            signals = await self.manager.reason(
                decision_id, mode_payload, services, reasoning_mode=mode, plan_id=event.correlation_id
            )
        meter.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 3)
        return self._conclude(decision_id, symbol, mode, event, meter, signals, services, prepared)

    async def _vet_decision(self, event: Event) -> EventResult:
        raw = getattr(event, "payload", None)
        fields: dict[Any, Any] | None = None
        if isinstance(raw, Mapping):
            try:
                fields = dict(raw)
            except Exception:  # a mapping that cannot be read is no better than no mapping
                fields = None
        if fields is None:
            return _vet_result(
                "rejected",
                uuid.uuid4().hex[:16],
                _refused_plan(
                    self.profile,
                    Hold.INVALID_EVENT_PAYLOAD,
                    f"the payload is a {type(raw).__name__}, not a dict",
                ),
                [],
            )
        decision_id = _decision_id(fields.get("id"))
        if decision_id is None:
            return _vet_result(
                "rejected",
                uuid.uuid4().hex[:16],
                _refused_plan(
                    self.profile, Hold.MISSING_DECISION_ID, "the payload needs an 'id': a non-empty string"
                ),
                [],
            )
        plan_result = self._plan_result(fields)
        status: Literal["accepted", "rejected"] = "accepted" if plan_result["passed"] else "rejected"
        advisory: list[dict[str, Any]] = []
        if self.reasoning_manager is not None:
            reasoning_context = {
                "status": status,
                "plan_result": plan_result,
                "profile": self._profile_json,
                "event": {
                    "event_type": "decision",
                    "timestamp": getattr(event, "timestamp", None),
                    "correlation_id": getattr(event, "correlation_id", None),
                },
            }
            advisory = await _advice(
                self.reasoning_manager,
                decision_id,
                fields,
                reasoning_context,
                fields.get("reasoning_mode", "default"),
                getattr(event, "correlation_id", None),
            )
        return _vet_result(status, decision_id, plan_result, advisory)

    def _plan_result(self, fields: Mapping[Any, Any]) -> dict[str, Any]:
        """The policy's verdict on a proposed decision, or why its fields make none."""
        try:
            answer = ModelAnswer.model_validate(
                {name: fields[name] for name in ANSWER_FIELDS if name in fields}
            )
        except Exception as error:  # whatever the caller sent: any field may be any object
            return _refused_plan(self.profile, Hold.INVALID_DECISION, _problem(error))
        given = fields.get("last_price")
        if given is not None:
            if not _positive_finite(given):
                return _refused_plan(
                    self.profile, Hold.INVALID_DECISION, "last_price must be a positive finite number"
                )
            last_price = float(given)
        else:
            # Every distance the policy measures is then measured from the entry: the caller said
            # nothing of the market. A hold, or a trade without a usable entry, never reaches it.
            entry = answer.entry_price
            last_price = entry if entry is not None and _positive_finite(entry) else math.nan
        verdict = evaluate(answer, self.profile, last_price)
        return {
            "passed": verdict.passed,
            "error": verdict.error,
            "detail": verdict.detail,
            "size_pct": verdict.size_pct,
            "reward_risk": verdict.reward_risk,
            "profile": self.profile.name,
            "last_price": float(given) if given is not None else None,
            "checks": [{"rule": c.rule, "passed": c.passed, "detail": c.detail} for c in verdict.checks],
        }

    async def dry_run(self, symbol: str, as_of_ms: int | None = None) -> DryRun:
        """Everything up to the first model call, and what that call would send; calls no model.

        Raises:
            RezError: the inputs cannot be used (as ``handle_event``), or the exchange is unreachable.
        """
        meter = Meter(prices=self.settings.llm.prices, max_cost_usd=self.max_cost_usd)
        prepared = await self._prepare(symbol, as_of_ms, meter)
        tools = prepared.tools.schemas()
        model = self.model or DEFAULT_MODEL
        start = opening(
            self.settings.llm,
            llm_endpoint(self.llm, self.settings.llm),
            model,
            self.profile,
            prepared.text,
            prepared.memory_text,
            tools,
            prepared.position_text,
        )
        messages = start.messages
        if start.protocol == "text":
            tools = []  # described in the system message instead
        return DryRun(
            symbol=symbol,
            context=prepared.context,
            model=model,
            messages=messages,
            tools=tools,
            prompt_tokens=estimate_tokens(messages) + estimate_tokens(tools),
            cost_usd=meter.estimate(model, messages, tools),
        )

    async def _prepare(self, symbol: str, as_of: Any, meter: Meter) -> _Prepared:
        view = market_view(
            self.source, symbol, self.settings, int(as_of) if as_of is not None else None, self.memo
        )
        primary = self.settings.market.timeframe
        market = self.ahead(symbol, int(as_of)) if self.ahead is not None and as_of is not None else None
        if market is None:
            frames, market = await read_market(view, self.settings, meter)
            chart_frame = frames[primary] if self.chart else None
        else:
            for stage, ms in market.timings_ms.items():
                meter.add_time(stage, ms)
            chart_frame = await view.frame(primary) if self.chart else None
        registry = cycle_tools(view, market.answers)
        context = market.context
        position = (
            self.book.view(symbol, context.as_of, context.last_price) if self.book is not None else None
        )
        return _Prepared(
            context,
            market.context_json,
            market.context_json_text,
            market.text,
            registry,
            market.candles,
            self._memory_text(symbol, context.as_of),
            chart_series(chart_frame, primary, view.memo) if chart_frame is not None else None,
            position,
            position_text(position) if position is not None else None,
            self.book.notes(symbol) if self.book is not None else (),
        )

    def _memory_text(self, symbol: str, before_ms: int) -> str | None:
        if self.memory is None:
            return None
        # Only decisions made before this cycle's moment, on the same market (sim memories stay out of
        # live runs), and only real decisions: a hold forced by a timeout says nothing about the market.
        # The latest of the last five that is real; usually the latest is, so ask for it alone first
        # (each item comes with its outcome, which costs a query or some formatting).
        for limit in (1, 5):
            items = self.memory.recent(symbol, limit, before_ms=before_ms, exchange=self.source.name)
            past = [item for item in items if item.get("error") is None]
            if past:
                return memory_text(past[0])
            if len(items) < limit:
                break  # there are no more
        return None

    def _turn_observer(self, decision_id: str) -> Callable[[TurnRecord], None] | None:
        if self.recorder is None and self.on_turn is None:
            return None

        def observe(turn: TurnRecord) -> None:
            if self.recorder is not None:
                self.recorder.turn_recorded(decision_id, turn)
            if self.on_turn is not None:
                self.on_turn(turn)

        return observe

    def _conclude(
        self,
        decision_id: str,
        symbol: str,
        mode: str,
        event: Event,
        meter: Meter,
        signals: list[AdvisorySignal],
        services: CycleServices,
        prepared: _Prepared,
    ) -> EventResult:
        verdicts: list[VerdictRecord] = []
        chosen: tuple[AdvisorySignal, ModelAnswer, Verdict, str] | None = None
        malformed: AdvisorySignal | None = None
        for signal in signals:
            if signal.signal_type != "decision":
                continue
            read = _proposed(signal.payload)
            if isinstance(read, str):
                # A mode of the caller's may answer anything: what is not a decision holds, and says why.
                malformed = malformed or AdvisorySignal(
                    signal.decision_id,
                    "error",
                    {"detail": f"the mode's decision signal is malformed: {read}"},
                    signal.plan_id,
                    reasoning_mode=signal.reasoning_mode,
                    error=Hold.SIGNAL_CONSTRUCTION_FAILED,
                )
                verdicts.append(VerdictRecord(signal.decision_id, Hold.SIGNAL_CONSTRUCTION_FAILED, read))
                continue
            answer, source = read
            context = prepared.context
            verdict = evaluate(
                answer,
                self.profile,
                context.last_price,
                atr=context.primary_atr,
                position_side=services.position_side,
            )
            verdicts.append(
                VerdictRecord(
                    signal.decision_id,
                    verdict.error,
                    verdict.detail,
                    reward_risk=verdict.reward_risk,
                    checks=tuple(verdict.checks),
                )
            )
            if chosen is None:
                chosen = (signal, answer, verdict, source)
        trace = Trace(
            context=prepared.context,
            context_dump=prepared.context_json,
            context_dump_text=prepared.context_json_text,
            context_text=prepared.text,
            reasoning=services.trace,
            chart=prepared.chart,
            verdicts=tuple(verdicts),
            position=prepared.position_text,
            account_notes=prepared.account_notes,
        )
        if chosen is None:
            failed = next((signal for signal in signals if signal.error), malformed)
            code = failed.error if failed and failed.error else Hold.NO_DECISION
            detail = str(failed.payload.get("detail", "")) if failed else "the mode returned no decision"
            return self._held(
                decision_id,
                symbol,
                mode,
                event,
                meter,
                code,
                detail,
                trace,
                signals,
                context=services.context,
            )
        signal, answer, verdict, source = chosen
        unchecked = invalidation_problem(answer.invalidation) if answer.action in TRADE_ACTIONS else None
        if verdict.passed and unchecked is not None:
            # Whatever mode answered (a plugin's too): a trade is never kept with a condition Rez
            # could not check between cycles.
            verdict = dataclasses.replace(
                verdict,
                error=Hold.INVALIDATION_UNPARSABLE,
                detail=f"the invalidation does not parse: {unchecked}",
            )
            verdicts.append(VerdictRecord(signal.decision_id, verdict.error, verdict.detail))
            trace = dataclasses.replace(trace, verdicts=tuple(verdicts))
        if not verdict.passed:
            return self._held(
                decision_id,
                symbol,
                mode,
                event,
                meter,
                verdict.error,
                verdict.detail,
                trace,
                signals,
                answer=answer,
                source=source,
                context=services.context,
            )
        trades = answer.action in TRADE_ACTIONS
        decision = Decision(
            symbol=symbol,
            action=answer.action,
            entry_price=answer.entry_price if trades else None,
            tp_price=answer.tp_price if trades else None,
            sl_price=answer.sl_price if trades else None,
            leverage=answer.leverage_or_one if trades else 1.0,
            size_pct=verdict.size_pct,
            confidence=answer.confidence_or_zero,
            rationale=answer.rationale,
            invalidation=answer.invalidation,
            mode=mode,
            source=source,
            error=None,
            usage=meter.usage(),
            trace_id=decision_id,
            timestamp=event.timestamp,
            **self._market_fields(services.context, event),
        )
        refused = self.book.admit(decision) if self.book is not None and answer.action != "hold" else None
        if refused is not None:
            code, detail = refused
            verdicts.append(VerdictRecord(signal.decision_id, code, detail))
            return self._held(
                decision_id,
                symbol,
                mode,
                event,
                meter,
                code,
                detail,
                dataclasses.replace(trace, verdicts=tuple(verdicts)),
                signals,
                answer=answer,
                source=source,
                context=services.context,
            )
        return self._finish("decided", decision, trace, signals)

    def _held(
        self,
        decision_id: str,
        symbol: str,
        mode: str,
        event: Event,
        meter: Meter,
        code: str | None,
        detail: str | None,
        trace: Trace,
        signals: list[AdvisorySignal],
        answer: ModelAnswer | None = None,
        source: str = "fallback",
        context: Context | None = None,
    ) -> EventResult:
        """A hold forced by a failure; ``answer``: the mode's answer that the policy refused."""
        rationale = f"Hold forced by a failure: {detail}" if detail else "Hold forced by a failure."
        decision = Decision(
            symbol=symbol,
            action="hold",
            entry_price=None,
            tp_price=None,
            sl_price=None,
            leverage=1.0,
            size_pct=0.0,
            confidence=0.0,
            rationale=rationale,
            invalidation=None,
            mode=mode,
            source=source if answer is not None else "fallback",
            error=code or "unknown_failure",
            usage=meter.usage(),
            trace_id=decision_id,
            timestamp=event.timestamp,
            **self._market_fields(context, event),
        )
        return self._finish("held", decision, dataclasses.replace(trace, error_detail=detail), signals)

    def _market_fields(self, context: Context | None, event: Event) -> dict[str, Any]:
        """What the decision says about the market it saw: where, when, at what price, how fresh."""
        if context is None:
            return {"exchange": self.source.name}
        # Only a live cycle (no moment asked) can be stale: with --as-of and in a backtest the market
        # is the one asked for. Two primary candles: the last one closed may lag by one.
        live = event.payload.get("as_of") is None
        lag_ms = event.timestamp - context.as_of
        return {
            "as_of": context.as_of,
            "last_price": context.last_price,
            "exchange": context.exchange,
            "stale": live and lag_ms > 2 * timeframe_ms(context.primary_timeframe),
        }

    def _finish(
        self,
        status: Literal["decided", "held"],
        decision: Decision,
        trace: Trace,
        signals: list[AdvisorySignal],
    ) -> EventResult:
        # A model may echo a key into its rationale, a server error may quote one: the decision and
        # its trace leave the cycle (for the journal, stdout, the caller) without them. The check
        # reads the trace's JSON, which the journal then stores as it is.
        summaries = [signal.summary() for signal in signals]
        text = trace.json_text() or json.dumps(trace.to_json(), ensure_ascii=False, default=repr)
        if (
            self._redactor.touches(text)
            or self._redactor.touches(decision.model_dump_json())
            or self._redactor.touches(json.dumps(summaries, ensure_ascii=False, default=repr))
        ):
            decision = redacted(decision, self._redactor)
            # Struck from the context's dump, which is then written again: not from its JSON text,
            # where a secret may stand escaped.
            trace = redacted(dataclasses.replace(trace, context_dump_text=None), self._redactor)
            signals = redacted(signals, self._redactor)
        if self.recorder is not None:
            self.recorder.cycle_finished(
                decision.trace_id, status=status, decision=decision, trace=trace, signals=signals
            )
        return EventResult(status, decision.trace_id, decision=decision, trace=trace, signals=tuple(signals))
