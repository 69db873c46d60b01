"""The decision: what the model answers, what Rez outputs, and the rules between the two."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rez_cli.actions import ACTIONS, TRADE_ACTIONS, Action

Source = Literal["native", "extracted", "repaired", "fallback"]


class ModelAnswer(BaseModel):
    """The JSON object the model must end with. Rez computes ``size_pct`` itself.

    Validation here is about shape only (types, the action's spelling, a confidence on a known
    scale): the parser keeps the last object that has this shape, so a draft written before the
    final answer never wins over it. Whether a trade says everything a trade needs is
    ``answer_problem``'s question (a missing value goes to repair, never becomes a default nobody
    chose); the trading rules (sides of TP/SL, leverage cap, reward/risk, distance to market) are the
    policy's, so that each failure gets its own error code.

    ``confidence`` is a fraction in [0, 1]. Many models write a percent (75 for 0.75): a value in
    (1, 100] is read as one, and ``confidence_percent`` keeps what was written so the trace can say so.
    Anything else outside [0, 1] is invalid. A hold may leave leverage (1) and confidence (0) out:
    it commits nothing, and no scoring reads a number it did not write as a belief.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    action: Action
    entry_price: float | None = None
    tp_price: float | None = None
    sl_price: float | None = None
    leverage: float | None = None
    confidence: float | None = None
    rationale: str = ""
    invalidation: str | None = None
    # Set by validation only (a model's own key of this name is dropped), never dumped.
    confidence_percent: float | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _read_percent_confidence(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {key: value for key, value in data.items() if key != "confidence_percent"}
        raw = data.get("confidence")
        if isinstance(raw, bool):
            raise ValueError("confidence must be a number, not true/false")
        percent_sign = isinstance(raw, str) and raw.strip().endswith("%")
        if isinstance(raw, str):
            try:
                raw = float(raw.strip().removesuffix("%"))
            except ValueError:
                return data  # field validation names the bad value
        if isinstance(raw, int | float) and not isinstance(raw, bool) and (percent_sign or 1 < raw <= 100):
            data["confidence"] = raw / 100
            data["confidence_percent"] = raw
        return data

    @field_validator("confidence")
    @classmethod
    def _fraction(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 1:
            raise ValueError("must be a fraction in [0, 1] (or a percent in (1, 100])")
        return value

    @property
    def leverage_or_one(self) -> float:
        return 1.0 if self.leverage is None else self.leverage

    @property
    def confidence_or_zero(self) -> float:
        return 0.0 if self.confidence is None else self.confidence


# What every trade must carry; the stop too, where the profile requires one.
TRADE_FIELDS: tuple[str, ...] = ("entry_price", "tp_price", "leverage", "confidence")


def answer_problem(answer: ModelAnswer, *, require_stop: bool, truncated: bool) -> str | None:
    """Why a parsed answer cannot stand as written and must go to repair, or None when it can.

    A trade missing a value is incomplete, not a choice: Rez never fills in a leverage or a
    confidence the model did not write. A trade cut off by the output limit may have lost the clause
    that changed its mind. Both are parse failures. A hold or a close takes no new risk: cut off, it stands.
    """
    if answer.action not in TRADE_ACTIONS:
        return None
    if truncated:
        return "the answer was cut off by the output limit (finish_reason length)"
    needed = TRADE_FIELDS + (("sl_price",) if require_stop else ())
    missing = [name for name in needed if getattr(answer, name) is None]
    if missing:
        return f"a {answer.action} needs {', '.join(missing)}"
    return None


# The keys a model's answer has, in the order the prompt and the schema give them.
ANSWER_FIELDS: tuple[str, ...] = (
    "action",
    "entry_price",
    "tp_price",
    "sl_price",
    "leverage",
    "confidence",
    "rationale",
    "invalidation",
)


def answer_json_schema() -> dict[str, Any]:
    """The strict JSON schema of ``ModelAnswer`` (OpenAI structured outputs: all keys required)."""
    number_or_null = {"type": ["number", "null"]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(ANSWER_FIELDS),
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "entry_price": number_or_null,
            "tp_price": number_or_null,
            "sl_price": number_or_null,
            "leverage": {"type": "number"},
            "confidence": {"type": "number"},
            "rationale": {"type": "string"},
            "invalidation": {"type": ["string", "null"]},
        },
    }


class Usage(BaseModel):
    """What one cycle cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict)


class Decision(BaseModel):
    """The one output of a cycle, as printed with ``--json`` and journaled (the README's table).

    Two moments, each with one meaning in every command: ``timestamp`` is the moment the decision is
    for (now in a live run; the moment asked with ``--as-of`` and in a backtest, even inside a gap in
    the data); ``as_of`` is the market moment the cycle saw (the close of the last closed candle).
    ``stale`` is true when a live run saw a market more than two primary candles older than now.
    The market fields are None only when the cycle failed before it saw a market.
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    action: Action
    entry_price: float | None
    tp_price: float | None
    sl_price: float | None
    leverage: Annotated[float, Field(ge=1)]
    size_pct: Annotated[float, Field(ge=0, le=100)]
    confidence: Annotated[float, Field(ge=0, le=1)]
    rationale: str
    invalidation: str | None
    mode: str
    source: Source
    error: str | None
    usage: Usage
    trace_id: str
    timestamp: int
    as_of: int | None = None
    last_price: float | None = None
    exchange: str | None = None
    stale: bool = False
