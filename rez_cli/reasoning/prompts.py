"""What the model is told. The profile's limits are written out as numbers, never as names only."""

from __future__ import annotations

import json
from typing import Any

from rez_cli.config.settings import RiskProfile
from rez_cli.decision.model import answer_json_schema

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

# The text tool protocol (``text_protocol.py``): for endpoints that refuse tools and models that
# never call them. The example is a call that works, so a small model can copy its shape.
CALL_EXAMPLE = (
    'CALL fetch_indicator {"indicator": "rsi", "timeframe": "1h", "params": {"length": 14}, "lookback": 5}'
)

TEXT_TOOLS_TEMPLATE = """\
Tools are called with text here. To call one, write a line that starts with CALL, then the tool's \
name, then its arguments as one JSON object on the same line, e.g.:
{example}
You may write up to {max_calls} CALL lines in one answer. Then stop and wait: Rez runs them and \
sends you the results in the next message. Do not write results yourself. Once you have what you \
need (or if you need nothing), answer with the decision JSON object instead.

The tools:
{tools}"""

# In ``auto``, next to the native tools: a model whose chat template drops them (llama.cpp does so
# silently) can still ask in text, and Rez switches to the text protocol when it does.
CALL_HINT = (
    "fetch_indicator is offered as a function tool. If you cannot call functions, write a line "
    f"instead, e.g.: {CALL_EXAMPLE}"
)

TEXT_CONTINUE_NOTE = "Write more CALL lines if you need more, or answer with the decision JSON object."
TEXT_FINAL_TURN_NOTE = (
    "This is your last turn: tools are no longer available and CALL lines will not be run. "
    "Answer now with the decision JSON object."
)


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


def text_tools_prompt(schemas: list[dict[str, Any]], max_calls: int) -> str:
    """The tools as the text protocol describes them: how to call, then each tool's description
    and argument schema (the same ones the native protocol sends)."""
    tools = []
    for schema in schemas:
        function = schema.get("function") or {}
        parameters = json.dumps(function.get("parameters") or {}, separators=(",", ":"))
        name, description = function.get("name"), function.get("description", "")
        tools.append(f"- {name}: {description}\n  Arguments (JSON schema): {parameters}")
    return TEXT_TOOLS_TEMPLATE.format(example=CALL_EXAMPLE, max_calls=max_calls, tools="\n".join(tools))


def with_system_addition(messages: list[dict[str, Any]], addition: str) -> list[dict[str, Any]]:
    """A copy of ``messages`` whose system message ends with ``addition`` (one is put first when
    there is none); the messages themselves are not changed."""
    copied = [dict(message) for message in messages]
    for message in copied:
        if message.get("role") == "system":
            message["content"] = f"{message.get('content') or ''}\n\n{addition}"
            return copied
    return [{"role": "system", "content": addition}, *copied]


def text_results_message(results: list[tuple[str, str, str]], closing: str) -> str:
    """The user message that answers an answer's CALL lines: each result under the call it answers.

    Args:
        results: ``(tool name, arguments as written, result text)`` per call, in order.
        closing: what the model should do next (``TEXT_CONTINUE_NOTE``, ``TEXT_FINAL_TURN_NOTE``).
    """
    parts = ["Results of your CALL lines:"]
    for number, (name, arguments, content) in enumerate(results, 1):
        parts += ["", f"[{number}] CALL {name} {arguments}".rstrip(), content]
    parts += ["", closing]
    return "\n".join(parts)


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
