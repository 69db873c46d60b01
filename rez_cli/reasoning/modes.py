"""The reasoning modes Rez ships: ``react`` (the LLM loop) and ``rules`` (the deterministic baseline).

They are modes of the reasoning manager's contract, ``async def mode(payload, context, timeout_ms)``
returning signal dicts, with the cycle's ``CycleServices`` as the context (market view, tool registry,
profile, model, meter, trace). Both return the same signal: ``signal_type`` ``decision`` with the
payload ``{"answer": ModelAnswer, "source": ...}`` (the answer itself, which the cycle takes as it
is) and in its ``metadata`` the ``ReasoningTrace`` they write as they go (``services.trace``).
Failures the mode can name (the model timed out, the budget ran out, the exchange went away) are ``error``
signals with a stable code in ``error``. The manager's own time bound covers the whole mode, so
they leave ``timeout_ms`` to it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rez_cli import indicators
from rez_cli.config.settings import LLMSettings, RiskProfile
from rez_cli.decision.codes import Hold
from rez_cli.decision.grounding import invented_prices
from rez_cli.decision.model import ModelAnswer, answer_json_schema, answer_problem
from rez_cli.errors import RezError
from rez_cli.invalidation import invalidation_problem
from rez_cli.llm import protocol_memory
from rez_cli.llm.client import LLMClient, LLMError
from rez_cli.llm.meter import BudgetExceeded, Meter
from rez_cli.llm.openai_api import endpoint_label
from rez_cli.llm.protocol_memory import Remembered
from rez_cli.market.snapshot import Context
from rez_cli.reasoning.parse import parse_answer
from rez_cli.reasoning.prompts import CALL_HINT, first_messages, repair_messages, with_system_addition
from rez_cli.reasoning.react import ReactOutcome, react_loop
from rez_cli.reasoning.text_protocol import text_opening
from rez_cli.reasoning.tools import ToolRegistry, ToolResult
from rez_cli.reasoning.trace import (
    ParseRecord,
    ProtocolSwitch,
    ReasoningTrace,
    RememberedProtocol,
    RepairRecord,
    ToolProtocol,
    TurnRecord,
)


@dataclass
class CycleServices:
    """The execution context of one cycle: what a mode may use, besides its copy of the payload.

    The manager hands modes copies of their context; these are the cycle's live services (an open
    model connection, the meter the usage is counted on, the trace the cycle journals), so a copy of
    them is themselves.
    """

    context: Context
    context_text: str
    profile: RiskProfile
    tools: ToolRegistry
    meter: Meter
    llm_settings: LLMSettings
    llm: LLMClient | None = None
    model: str | None = None
    max_turns: int = 6
    memory_text: str | None = None
    # The position open on the symbol as the model is shown it (``account.book.position_text``) and
    # its side (+1 long, -1 short); None when nothing is open.
    position_text: str | None = None
    position_side: int | None = None
    on_turn: Callable[[TurnRecord], None] | None = None
    trace: ReasoningTrace = field(default_factory=ReasoningTrace)

    def __deepcopy__(self, memo: dict[int, Any]) -> CycleServices:
        return self


def _services(context: Any) -> CycleServices:
    if not isinstance(context, CycleServices):
        raise TypeError(
            f"this mode runs inside Rez's cycle: its context is CycleServices, not {type(context).__name__}"
        )
    return context


def _failure(code: str, detail: str, trace: ReasoningTrace) -> list[dict[str, Any]]:
    return [
        {
            "signal_type": "error",
            "payload": {"detail": detail},
            "confidence": 0.0,
            "error": code,
            "metadata": {"trace": trace},
        }
    ]


def _decision(answer: ModelAnswer, source: str, trace: ReasoningTrace) -> list[dict[str, Any]]:
    if answer.confidence_percent is not None:
        trace.notes.append(
            f"confidence {answer.confidence_percent:g} read as a percent: {answer.confidence_or_zero:g}"
        )
    return [
        {
            "signal_type": "decision",
            "payload": {"answer": answer, "source": source},
            "confidence": answer.confidence_or_zero,
            "metadata": {"trace": trace},
        }
    ]


# The actions whose invalidation Rez checks between cycles; anything else keeps free prose.
_OPENING = ("buy", "sell")


def trade_problem(answer: ModelAnswer, profile: RiskProfile, *, truncated: bool) -> str | None:
    """Why a parsed answer must go to repair: ``answer_problem``'s reasons, or a trade's invalidation
    that does not parse (a hold's stays free prose). The decision layer cannot read the condition
    language, so the check joins here."""
    problem = answer_problem(answer, require_stop=profile.require_stop_loss, truncated=truncated)
    if problem is not None or answer.action not in _OPENING:
        return problem
    bad_condition = invalidation_problem(answer.invalidation)
    return f"the invalidation does not parse: {bad_condition}" if bad_condition else None


def _stands(text: str | None, finish_reason: str | None, profile: RiskProfile) -> bool:
    """Whether an answer can stand as written: it parses, and it is complete and not cut off.

    An empty answer stands too: it is a hold of its own (empty_output), not something a constrained
    turn should be spent on.
    """
    if not (text or "").strip():
        return True
    parsed = parse_answer(text)
    if parsed.answer is None:
        return False
    return trade_problem(parsed.answer, profile, truncated=finish_reason == "length") is None


def decision_response_format(llm: LLMSettings) -> dict[str, Any]:
    """The constrained answer: the decision's strict JSON schema, or JSON at least where the
    endpoint cannot take a schema (``[llm] supports_json_schema = false``)."""
    if llm.supports_json_schema:
        return {
            "type": "json_schema",
            "json_schema": {"name": "rez_decision", "strict": True, "schema": answer_json_schema()},
        }
    return {"type": "json_object"}


def llm_endpoint(llm: LLMClient | None, settings: LLMSettings) -> str:
    """The endpoint a client talks to, as ``endpoint_label`` shows it (what ``auto`` remembers by)."""
    endpoint = getattr(llm, "endpoint", None)
    return endpoint if isinstance(endpoint, str) and endpoint else endpoint_label(settings.base_url)


@dataclass(frozen=True)
class Opening:
    """The first request of a cycle: its messages, the tool protocol, and why that protocol."""

    messages: list[dict[str, Any]]
    protocol: ToolProtocol
    remembered: Remembered | None


def opening(
    llm: LLMSettings,
    endpoint: str,
    model: str,
    profile: RiskProfile,
    context_text: str,
    memory_text: str | None,
    schemas: list[dict[str, Any]],
    position_text: str | None = None,
) -> Opening:
    """What a react cycle sends first (``--dry-run`` shows the same)."""
    protocol, remembered = protocol_memory.starting_protocol(llm.tool_protocol, endpoint, model)
    messages = first_messages(profile, context_text, memory_text, position_text, llm.system_prompt)
    if protocol == "text":
        messages = text_opening(messages, schemas)
    elif llm.tool_protocol == "auto" and schemas:
        messages = with_system_addition(messages, CALL_HINT)
    return Opening(messages, protocol, remembered)


def _seen(services: CycleServices, raw_text: str, outcome: ReactOutcome) -> list[str]:
    """Everything the reasoning model wrote or read in the cycle: where a repair's prices must be."""
    texts = [raw_text, services.context_text]
    texts += [turn.content or "" for turn in outcome.turns]
    texts += [result.content for turn in outcome.turns for result in turn.tool_results]
    return texts


async def _repair(
    services: CycleServices, raw_text: str, outcome: ReactOutcome, trace: ReasoningTrace
) -> tuple[ModelAnswer | None, Hold | None, str | None]:
    """Ask the resilience model for the JSON; returns (answer, error code, detail)."""
    assert services.llm is not None
    model = services.llm_settings.resilience_model or services.model or ""
    response_format = decision_response_format(services.llm_settings)
    messages = repair_messages(raw_text, trace.parse.detail if trace.parse is not None else None)
    services.meter.check_budget(model, messages, None)
    try:
        with services.meter.stage("repair"):
            response = await services.llm.chat(
                # The repair transcribes, it does not decide: no sampling.
                model=model,
                messages=messages,
                response_format=response_format,
                temperature=0.0,
            )
    except LLMError as error:
        trace.repair = RepairRecord(model, error.code, detail=error.message)
        return None, Hold.REPAIR_FAILED, f"the resilience model failed: {error.message}"
    services.meter.record_call(model, response.usage)
    parsed = parse_answer(response.content)
    repair = trace.repair = RepairRecord(
        model,
        parsed.error,
        answered=True,
        raw_text=response.content,
        stage=parsed.stage,
        finish_reason=response.finish_reason,
    )
    if parsed.answer is None:
        return None, Hold.REPAIR_FAILED, f"the resilience model's answer is not a decision: {parsed.detail}"
    if response.finish_reason == "length" and parsed.answer.action != "hold":
        return None, Hold.REPAIR_FAILED, "the resilience model's answer was cut off by the output limit"
    answer = parsed.answer
    invented = invented_prices(answer, _seen(services, raw_text, outcome))
    if invented:
        trace.repair = repair.with_invented(invented)
        return (
            None,
            Hold.REPAIR_INVENTED_PRICES,
            f"the repair gave prices the model never wrote: {', '.join(invented)}",
        )
    bad_condition = invalidation_problem(answer.invalidation) if answer.action in _OPENING else None
    if bad_condition:
        # Never stored with a trade: Rez could not check it between cycles.
        return (
            None,
            Hold.INVALIDATION_UNPARSABLE,
            f"the repaired invalidation does not parse: {bad_condition}",
        )
    return answer, None, None


async def react_mode(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    """The LLM reasons over the context, may call tools, and ends with a decision."""
    services = _services(context)
    trace = services.trace
    trace.mode = "react"
    if services.llm is None or not services.model:
        return _failure(Hold.MODEL_NOT_CONFIGURED, "no model is configured", trace)
    model = services.model
    endpoint = llm_endpoint(services.llm, services.llm_settings)
    start = opening(
        services.llm_settings,
        endpoint,
        model,
        services.profile,
        services.context_text,
        services.memory_text,
        services.tools.schemas(),
        services.position_text,
    )
    messages = start.messages
    trace.messages = messages
    trace.tool_protocol = start.protocol
    if start.remembered is not None:
        trace.tool_protocol_remembered = RememberedProtocol(
            endpoint, start.remembered.reason, start.remembered.saved_ms
        )
    turns = trace.turns = []

    def on_switch(switch: ProtocolSwitch) -> None:
        trace.tool_protocol = "text"
        trace.tool_protocol_switch = switch
        # Remembered at once: the next run starts in text even if this cycle fails after the switch.
        protocol_memory.remember(endpoint, model, f"{switch.reason}: {switch.detail}")

    def on_turn(turn: TurnRecord) -> None:
        turns.append(turn)
        if services.on_turn is not None:
            services.on_turn(turn)

    try:
        outcome = await react_loop(
            services.llm,
            model=model,
            messages=messages,
            tools=services.tools,
            max_turns=services.max_turns,
            parallel_tool_calls=services.llm_settings.parallel_tool_calls,
            meter=services.meter,
            on_turn=on_turn,
            final_response_format=decision_response_format(services.llm_settings),
            protocol=start.protocol,
            auto_switch=services.llm_settings.tool_protocol == "auto" and start.protocol == "native",
            on_switch=on_switch,
            stands=lambda text, finish: _stands(text, finish, services.profile),
        )
    except LLMError as error:
        return _failure(error.code, error.message, trace)
    except BudgetExceeded as error:
        return _failure(error.code, str(error), trace)
    except RezError as error:
        return _failure(error.reference, error.one_line(), trace)
    raw_text = outcome.final_text or ""
    trace.answered, trace.raw_text = True, outcome.final_text
    if outcome.exhausted:
        return _failure(
            Hold.MAX_TURNS_EXCEEDED,
            f"no answer after {services.max_turns} turns: the model kept calling tools",
            trace,
        )
    if not raw_text.strip():
        # Nothing to parse and nothing a repair could ground its prices in (a reasoning model may
        # have spent the whole cap thinking): a hold, not a call to the resilience model.
        thought = " (it wrote only its reasoning)" if outcome.turns and outcome.turns[-1].reasoning else ""
        return _failure(Hold.EMPTY_OUTPUT, f"the model's answer was empty{thought}", trace)
    with services.meter.stage("parse"):
        parsed = parse_answer(raw_text)
    truncated = outcome.finish_reason == "length"
    problem = (
        trade_problem(parsed.answer, services.profile, truncated=truncated)
        if parsed.answer is not None
        else None
    )
    trace.parse = ParseRecord(parsed.stage, parsed.error, problem or parsed.detail, outcome.finish_reason)
    if parsed.answer is not None and parsed.stage is not None and problem is None:
        return _decision(parsed.answer, parsed.stage, trace)
    try:
        answer, code, detail = await _repair(services, raw_text, outcome, trace)
    except BudgetExceeded as error:
        return _failure(error.code, str(error), trace)
    if answer is None:
        return _failure(code or parsed.error or Hold.UNPARSEABLE_OUTPUT, detail or parsed.detail or "", trace)
    return _decision(answer, "repaired", trace)


# The rules baseline: trend from the slowest timeframe's EMA 20 slope, confirmation from the fastest
# timeframe's RSI 14, stop at 1.5 ATR 14 of the primary timeframe, target at the profile's reward/risk.
TREND_SLOPE_PCT = 0.05
STOP_ATR = 1.5


def _last_value(result: ToolResult, column: str) -> float | None:
    values = [value for row in result.rows if isinstance(value := row.get(column), int | float)]
    return float(values[-1]) if values else None


def _levels(price: float, stop_offset: float, reward_risk: float) -> tuple[float, float, float]:
    """Entry, stop and target at the instrument's precision, as a trader would place them.

    The target is rounded away from the entry after the entry and stop are rounded, so rounding can
    never leave the reward/risk a hair below the profile's minimum.
    """
    decimals = indicators.price_decimals(price)
    scale = 10.0**decimals
    entry = round(price, decimals)
    stop = round(price + stop_offset, decimals)
    raw_target = entry - reward_risk * (stop - entry)
    target = math.floor(raw_target * scale) / scale if stop > entry else math.ceil(raw_target * scale) / scale
    return entry, stop, target


def _rules_timeframes(context: Context) -> tuple[str, str, str]:
    """The trend's (slowest), the momentum's (fastest) and the primary timeframe."""
    timeframes = list(context.timeframes)
    return timeframes[-1], timeframes[0], context.primary_timeframe


def rules_tool_calls(context: Context) -> tuple[tuple[str, str], ...]:
    """The calls a rules cycle makes on ``context`` whatever else it holds: (tool, arguments' JSON)."""
    return tuple(("fetch_indicator", arguments) for _, arguments in _rules_calls(*_rules_timeframes(context)))


@functools.lru_cache(maxsize=16)
def _rules_calls(slow: str, fast: str, primary: str) -> tuple[tuple[str, str], ...]:
    """The rules mode's three calls and their arguments' JSON, the same every cycle of a backtest."""
    calls = (
        ("rules-ema", {"indicator": "ema", "timeframe": slow, "params": {"length": 20}, "lookback": 6}),
        ("rules-rsi", {"indicator": "rsi", "timeframe": fast, "params": {"length": 14}, "lookback": 1}),
        ("rules-atr", {"indicator": "atr", "timeframe": primary, "params": {"length": 14}, "lookback": 1}),
    )
    return tuple((call_id, json.dumps(args)) for call_id, args in calls)


async def rules_mode(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    """A deterministic baseline over the same tools, with the same output shape as ``react``."""
    services = _services(context)
    trace = services.trace
    trace.mode = "rules"
    slow, fast, primary = _rules_timeframes(services.context)
    try:
        results = [
            await services.tools.call(call_id, "fetch_indicator", arguments)
            for call_id, arguments in _rules_calls(slow, fast, primary)
        ]
    except RezError as error:
        return _failure(error.reference, error.one_line(), trace)
    services.meter.tool_calls += len(results)
    trace.tool_calls = results
    ema_rows = [row for row in results[0].rows if isinstance(row.get("ema"), int | float)]
    rsi = _last_value(results[1], "rsi")
    atr = _last_value(results[2], "atr")
    price = services.context.last_price
    if len(ema_rows) < 2 or rsi is None or atr is None or atr <= 0:
        answer = ModelAnswer(
            action="hold", confidence=0.0, rationale="Not enough history for EMA, RSI or ATR: holding."
        )
        return _decision(answer, "native", trace)
    ema_first, ema_last = float(ema_rows[0]["ema"]), float(ema_rows[-1]["ema"])
    slope_pct = (ema_last / ema_first - 1) * 100
    profile = services.profile
    reward_risk = max(profile.min_reward_risk, 1.0)
    stop_distance = STOP_ATR * atr
    trend = f"{slow} EMA20 slope {slope_pct:+.3f}% over {len(ema_rows) - 1} bars, {fast} RSI14 {rsi:.1f}"
    if services.position_side is not None:
        # One position at a time: its target, stop and invalidation decide when it ends.
        held = "long" if services.position_side > 0 else "short"
        answer = ModelAnswer(
            action="hold",
            confidence=0.5,
            rationale=f"Keeping the open {held}: its target, stop and invalidation still apply ({trend}).",
        )
        return _decision(answer, "native", trace)
    if (
        slope_pct > TREND_SLOPE_PCT
        and price > ema_last
        and 45 <= rsi <= 70
        and "buy" in profile.allowed_actions
    ):
        action = "buy"
        entry, sl, tp = _levels(price, -stop_distance, reward_risk)
        # The thesis in the condition language, so that Rez checks it between cycles itself.
        invalidation = f"close_{slow} < ema_20_{slow}"
    elif (
        slope_pct < -TREND_SLOPE_PCT
        and price < ema_last
        and 30 <= rsi <= 55
        and "sell" in profile.allowed_actions
    ):
        action = "sell"
        entry, sl, tp = _levels(price, stop_distance, reward_risk)
        invalidation = f"close_{slow} > ema_20_{slow}"
    else:
        answer = ModelAnswer(
            action="hold", confidence=0.5, rationale=f"No confluent trend: {trend}.", invalidation=None
        )
        return _decision(answer, "native", trace)
    confidence = min(0.9, 0.5 + abs(slope_pct) / (10 * TREND_SLOPE_PCT))
    answer = ModelAnswer(
        action=action,
        entry_price=entry,
        tp_price=tp,
        sl_price=sl,
        leverage=1.0,
        confidence=round(confidence, 3),
        rationale=f"Trend and momentum agree: {trend}; stop {STOP_ATR} ATR ({atr:.6g}) away, "
        f"target at {reward_risk:g}R.",
        invalidation=invalidation,
    )
    return _decision(answer, "native", trace)
