"""The decision: what the model answers, what Rez outputs, and the rules between the two."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["buy", "sell", "hold"]
Source = Literal["native", "extracted", "repaired", "fallback"]


class ModelAnswer(BaseModel):
    """The JSON object the model must end with. Rez computes ``size_pct`` itself.

    Validation here is about shape only (types, the action's spelling); the trading rules
    (sides of TP/SL, leverage cap, reward/risk, distance to market) are checked by the policy
    so that each failure gets its own error code instead of a parse failure.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    action: Action
    entry_price: float | None = None
    tp_price: float | None = None
    sl_price: float | None = None
    leverage: float = 1.0
    confidence: float = 0.5
    rationale: str = ""
    invalidation: str | None = None


def answer_json_schema() -> dict[str, Any]:
    """The strict JSON schema of ``ModelAnswer`` (OpenAI structured outputs: all keys required)."""
    number_or_null = {"type": ["number", "null"]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "action",
            "entry_price",
            "tp_price",
            "sl_price",
            "leverage",
            "confidence",
            "rationale",
            "invalidation",
        ],
        "properties": {
            "action": {"type": "string", "enum": ["buy", "sell", "hold"]},
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
    """The one output of a cycle, as printed with ``--json`` and journaled (see DESIGN.md)."""

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
