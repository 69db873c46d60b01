"""What the model is told. The profile's limits are written out as numbers, never as names only."""

from __future__ import annotations

import json
from typing import Any

from rez_cli.decision import answer_json_schema
from rez_cli.settings import RiskProfile

SYSTEM_TEMPLATE = """\
You are Rez. Your goal is to maximize PnL while adhering to the {profile} risk profile.
The profile's hard limits (a decision that breaks one is rejected and becomes a hold):
- actions allowed: {actions}
- leverage: between 1 and {max_leverage:g}
- a stop loss is {stop_rule}
- reward/risk, |tp - entry| / |entry - sl|: at least {min_reward_risk:g}
- entry price: within {max_entry_deviation_pct:g}% of the last closed price
- risk per trade: {risk_per_trade_pct:g}% of equity at the stop; \
position at most {max_position_pct:g}% of equity \
(Rez sizes the position itself from the stop distance)
- buy: sl < entry < tp. sell (a short): tp < entry < sl.

Think step by step before you answer:
1. Analyse trends: the direction and slope of the higher timeframe EMAs (e.g. the 4h EMA 20), \
price against them.
2. Verify confluence: does the lower timeframe momentum (5m/15m RSI, MACD) support that trend?
3. Evaluate risk: the distance to the next resistance and support against the stop, \
the target and the leverage.
4. Form the decision. Hold when the evidence is mixed: a hold is a good answer.

You may call fetch_indicator to get any indicator the context lacks, on any timeframe.
Candles are closed candles only; the last price is the close of the last closed candle.

End with your decision as one JSON object matching this schema, and nothing after it:
{schema}
Use null for prices when you hold. Confidence is between 0 and 1. Invalidation names the condition that \
would void the thesis (e.g. "4h close below 31,400")."""

FINAL_TURN_NOTE = "This is your last turn: do not call tools. Answer now with the decision JSON object."


def system_prompt(profile: RiskProfile) -> str:
    """The system message of a cycle."""
    return SYSTEM_TEMPLATE.format(
        profile=profile.name,
        actions=", ".join(profile.allowed_actions),
        max_leverage=profile.max_leverage,
        stop_rule="required on every buy and sell" if profile.require_stop_loss else "recommended",
        min_reward_risk=profile.min_reward_risk,
        max_entry_deviation_pct=profile.max_entry_deviation_pct,
        risk_per_trade_pct=profile.risk_per_trade_pct,
        max_position_pct=profile.max_position_pct,
        schema=json.dumps(answer_json_schema(), separators=(",", ":")),
    )


def user_prompt(context_text: str, memory_text: str | None = None) -> str:
    """The first user message: the zero-shot context (and what Rez remembers of this symbol)."""
    parts = ["Market context:", context_text]
    if memory_text:
        parts += ["", "Your previous decision on this symbol:", memory_text]
    parts += ["", "Decide: buy, sell or hold."]
    return "\n".join(parts)


def first_messages(
    profile: RiskProfile, context_text: str, memory_text: str | None = None
) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": system_prompt(profile)},
        {"role": "user", "content": user_prompt(context_text, memory_text)},
    ]


REPAIR_SYSTEM = (
    "You convert a trading assistant's answer into one JSON object matching the given schema. "
    "Copy the decision the text states; do not make one up. Use only prices that appear in the text. "
    'If the text states no clear decision, answer with action "hold" and null prices.'
)


def repair_messages(raw_text: str) -> list[dict[str, Any]]:
    """Messages for the resilience model: the primary model's raw text and the schema."""
    return [
        {"role": "system", "content": REPAIR_SYSTEM},
        {
            "role": "user",
            "content": "Schema:\n"
            + json.dumps(answer_json_schema(), separators=(",", ":"))
            + "\n\nText:\n"
            + raw_text,
        },
    ]
