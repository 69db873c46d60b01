"""Replaying a journaled cycle: parse and validate the recorded model output again.

What a change to the parser, the policy or the profile would have done to past decisions, without
calling any model: the recorded raw text goes through today's parser, a recorded repair through
today's invented-price check, and the answer through today's policy with the chosen profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rez_cli.actions import TRADE_ACTIONS
from rez_cli.config.settings import RiskProfile
from rez_cli.decision.codes import Hold
from rez_cli.decision.grounding import invented_prices
from rez_cli.decision.model import ModelAnswer
from rez_cli.decision.policy import evaluate
from rez_cli.invalidation import invalidation_problem
from rez_cli.reasoning.modes import trade_problem
from rez_cli.reasoning.parse import parse_answer


@dataclass(frozen=True)
class Replay:
    trace_id: str
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def changed(self) -> bool:
        keys = ("action", "entry_price", "tp_price", "sl_price", "leverage", "error", "source")
        return any(self.before.get(key) != self.after.get(key) for key in keys)


def _recorded_answer(record: Mapping[str, Any]) -> ModelAnswer | None:
    for signal in record.get("signals") or []:
        answer = (signal.get("payload") or {}).get("answer")
        if answer:
            try:
                return ModelAnswer.model_validate(answer)
            except ValidationError:
                return None  # a journal is outside data: an answer that no longer validates is none
    return None


def _seen(record: Mapping[str, Any], raw_text: str) -> list[str]:
    """What the recorded cycle's model wrote or read: where a recorded repair's prices must be."""
    texts = [raw_text, str(record.get("context_text") or "")]
    for turn in record.get("turns") or []:
        texts.append(str(turn.get("content") or ""))
        texts += [str(call.get("content") or "") for call in turn.get("tool_calls") or []]
    return texts


def _answer_again(
    record: Mapping[str, Any], profile: RiskProfile
) -> tuple[ModelAnswer | None, str, str | None]:
    """The answer today's parser gets from the recorded output: (answer, source, error)."""
    trace = record.get("trace") or {}
    if record.get("mode") != "react":
        answer = _recorded_answer(record)
        return answer, "native", None if answer else Hold.NO_DECISION
    raw_text = trace.get("raw_text")
    if raw_text is None:
        return None, "fallback", (record.get("decision") or {}).get("error") or Hold.NO_MODEL_OUTPUT
    parsed = parse_answer(raw_text)
    truncated = (trace.get("parse") or {}).get("finish_reason") == "length"
    if (
        parsed.answer is not None
        and parsed.stage is not None
        and trade_problem(parsed.answer, profile, truncated=truncated) is None
    ):
        return parsed.answer, parsed.stage, None
    repair = trace.get("repair") or {}
    if (
        not repair
        and parsed.answer is not None
        and parsed.answer.action in TRADE_ACTIONS
        and invalidation_problem(parsed.answer.invalidation)
    ):
        # Recorded before invalidations were conditions: today it would go to a repair that was
        # never made, so what it would become is unknown; a trade it cannot be.
        return None, "fallback", Hold.INVALIDATION_UNPARSABLE
    repaired = parse_answer(repair.get("raw_text")) if repair.get("raw_text") else None
    if repaired is None or repaired.answer is None:
        return None, "fallback", Hold.REPAIR_FAILED if repair else (parsed.error or Hold.UNPARSEABLE_OUTPUT)
    if invented_prices(repaired.answer, _seen(record, raw_text)):
        return None, "fallback", Hold.REPAIR_INVENTED_PRICES
    if repaired.answer.action in TRADE_ACTIONS and invalidation_problem(repaired.answer.invalidation):
        return None, "fallback", Hold.INVALIDATION_UNPARSABLE
    return repaired.answer, "repaired", None


def replay(record: Mapping[str, Any], profile: RiskProfile) -> Replay:
    """Today's parser and policy applied to a journaled cycle's recorded output."""
    before = dict(record.get("decision") or {})
    answer, source, error = _answer_again(record, profile)
    context = record.get("context") or {}
    last_price = float(context.get("last_price") or 0.0)
    primary = (context.get("timeframes") or {}).get(context.get("primary_timeframe")) or {}
    atr = primary.get("atr_14") if isinstance(primary.get("atr_14"), int | float) else None
    after: dict[str, Any] = {
        "action": "hold",
        "source": source,
        "error": error,
        "leverage": 1.0,
        "entry_price": None,
        "tp_price": None,
        "sl_price": None,
        "size_pct": 0.0,
    }
    if answer is not None and last_price > 0:
        verdict = evaluate(answer, profile, last_price, atr=atr)
        if verdict.passed:
            trading = answer.action != "hold"
            after.update(
                action=answer.action,
                entry_price=answer.entry_price if trading else None,
                tp_price=answer.tp_price if trading else None,
                sl_price=answer.sl_price if trading else None,
                leverage=answer.leverage_or_one if trading else 1.0,
                size_pct=verdict.size_pct,
                error=None,
            )
        else:
            after["error"] = verdict.error
            after["detail"] = verdict.detail
    return Replay(str(record.get("trace_id")), before, after)
