"""The trace of one cycle, typed: what it saw, what its mode did, what the policy said of it.

The orchestrator builds one ``Trace`` per cycle and hands it, as it is, to the caller
(``EventResult.trace``) and to the journal; the journal is the one place it becomes JSON
(``to_json``, the shape ``rez traces export`` shows). Live views read its fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel

from rez_cli.decision.policy import Check
from rez_cli.formatting import compact_json
from rez_cli.market.snapshot import Context
from rez_cli.reasoning.trace import ReasoningTrace
from rez_cli.redact import Redactor


@dataclass(frozen=True)
class ChartSeries:
    """The primary timeframe's recent closes and EMA 20, kept for ``rez decide --chart``."""

    timeframe: str
    open_ms: list[int]
    close: list[float]
    ema_20: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return {
            "timeframe": self.timeframe,
            "open_ms": self.open_ms,
            "close": self.close,
            "ema_20": self.ema_20,
        }


@dataclass(frozen=True)
class VerdictRecord:
    """The policy's verdict on one decision signal; ``checks`` None when the signal was malformed
    and the policy never saw an answer."""

    decision_id: str
    error: str | None
    detail: str | None
    reward_risk: float | None = None
    checks: tuple[Check, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"decision_id": self.decision_id, "error": self.error, "detail": self.detail}
        if self.checks is not None:
            record["reward_risk"] = self.reward_risk
            record["checks"] = [
                {"rule": check.rule, "passed": check.passed, "detail": check.detail} for check in self.checks
            ]
        return record


@dataclass(frozen=True)
class Trace:
    """Everything a cycle did. ``context`` and ``context_text`` are None when the market could not be
    read (the exchange was unreachable); ``verdicts`` None when no mode ran; ``error_detail`` says
    why a forced hold was forced."""

    context: Context | None
    context_text: str | None
    reasoning: ReasoningTrace
    chart: ChartSeries | None = None
    verdicts: tuple[VerdictRecord, ...] | None = None
    error_detail: str | None = None
    # The open position as the model was shown it, and what the account did since the last cycle
    # (exits, invalidations that held, candles missing from the market).
    position: str | None = None
    account_notes: tuple[str, ...] = ()
    # ``context.model_dump(mode="json")``, for a caller that has written it already, and that dump as
    # the journal writes it (``compact_json``), for one that has that too.
    context_dump: dict[str, Any] | None = dataclasses.field(default=None, compare=False, repr=False)
    context_dump_text: str | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def reward_risk(self) -> float | None:
        """The policy's reward/risk of the answer the decision came from (the first one vetted)."""
        return self.verdicts[0].reward_risk if self.verdicts else None

    def to_json(self) -> dict[str, Any]:
        """The trace as the journal stores it (made once; callers must not change it)."""
        return self._json

    def json_text(self) -> str | None:
        """``to_json`` as the journal writes it (compact, UTF-8, finite numbers only), made once and
        shared by the cycle's secret check and the journal; None when it holds a non-finite number."""
        return self._json_text

    def context_json_text(self) -> str | None:
        """The context's own part of ``json_text``, for a journal that stores the context with the
        cycle's inputs as well; None without a context or when ``json_text`` is None."""
        return self._context_json_text if self._json_text is not None else None

    @cached_property
    def _json(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.context is not None:
            dump = self.context_dump
            record["context"] = dump if dump is not None else self.context.model_dump(mode="json")
        if self.chart is not None:
            record["chart"] = self.chart.to_json()
        record.update(self.reasoning.to_json())
        if self.context_text is not None:
            record["context_text"] = self.context_text
        if self.verdicts is not None:
            record["verdicts"] = [verdict.to_json() for verdict in self.verdicts]
        if self.error_detail is not None:
            record["error_detail"] = self.error_detail
        if self.position is not None:
            record["position"] = self.position
        if self.account_notes:
            record["account_notes"] = list(self.account_notes)
        return record

    @cached_property
    def _json_text(self) -> str | None:
        record = self._json
        if "context" not in record:
            return compact_json(record)
        # Written in two parts, the context (the most of it) and the rest, so that the context's
        # text is there for the journal's inputs too: written once per cycle, not twice.
        rest = compact_json({key: value for key, value in record.items() if key != "context"})
        if self._context_json_text is None or rest is None:
            return None
        return '{"context":' + self._context_json_text + ("}" if rest == "{}" else "," + rest[1:])

    @cached_property
    def _context_json_text(self) -> str | None:
        if "context" not in self._json:
            return None
        if self.context_dump_text is not None and self.context_dump is not None:
            return self.context_dump_text
        return compact_json(self._json["context"])


_Value = TypeVar("_Value")


def redacted(value: _Value, redactor: Redactor) -> _Value:
    """A copy of a typed value (dataclasses, pydantic models, and the JSON-like values inside them)
    with ``redactor``'s secrets struck from every text; the types are kept.

    Walks the whole value: call it only once ``redactor.touches`` found something to strike.
    """
    result: Any
    if isinstance(value, str):
        result = redactor.text(value) if redactor.touches(value) else value
    elif isinstance(value, BaseModel):
        result = type(value).model_validate(redactor.value(value.model_dump()))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            item.name: redacted(getattr(value, item.name), redactor)
            for item in dataclasses.fields(value)
            if item.init
        }
        result = dataclasses.replace(value, **changes)
    elif isinstance(value, dict):
        result = {redacted(key, redactor): redacted(item, redactor) for key, item in value.items()}
    elif isinstance(value, list):
        result = [redacted(item, redactor) for item in value]
    elif isinstance(value, tuple):
        result = tuple(redacted(item, redactor) for item in value)
    else:
        result = value
    return result  # type: ignore[no-any-return]
