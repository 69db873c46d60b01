"""What the model is told. The profile's limits are written out as numbers, never as names only.

The system message depends only on the profile and on whether a position is open, so an endpoint's
prompt cache can keep it; the market, the position and the memory are in the user message. Every number the
model reads is written without thousands separators, and the answer is shown as a filled example
with one line per field: the decision's JSON schema still goes out as ``response_format`` on the
constrained turn, but a small model copies an example far better than it reads a schema.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rez_cli.config.settings import RiskProfile
from rez_cli.decision.model import answer_json_schema
from rez_cli.indicators.specs import INDICATORS, validate_params

# The costs and the scoring the prompt states. There is no setting for them: these are the defaults
# of the backtest's FillConfig and of ``rez score`` (tests/reasoning/test_prompts.py holds them equal).
FEE_PCT = 0.1
SLIPPAGE_PCT = 0.02
SCORING_HORIZON_CANDLES = 24

# What each action does, in the words of the output spec; ``close`` exists only while a position is
# open (the policy refuses it otherwise), so it is offered only then.
ACTION_MEANINGS = {
    "buy": "open a long: sl < entry < tp",
    "sell": "open a short: tp < entry < sl",
    "close": "close the open position at the next candle's open; prices null",
}
HOLD_MEANING = {
    False: "stay out of the market; prices null",
    True: "keep the open position as it is; prices null",
}

# The example answer, one per action that opens or stays out: it shows the format, not this market,
# and its invalidation is written in the machine grammar the model must use.
EXAMPLES: dict[str, dict[str, Any]] = {
    "buy": {
        "action": "buy",
        "entry_price": 61800.0,
        "tp_price": 63600.0,
        "sl_price": 60900.0,
        "leverage": 2,
        "confidence": 0.65,
        "rationale": "4h above a rising EMA20; 1h held the 61200 swing low, RSI14 turning up.",
        "invalidation": "close_1h < 61200",
    },
    "sell": {
        "action": "sell",
        "entry_price": 61800.0,
        "tp_price": 60000.0,
        "sl_price": 62700.0,
        "leverage": 2,
        "confidence": 0.6,
        "rationale": "4h below a falling EMA20; 1h rejected at the 62400 swing high.",
        "invalidation": "close_1h > 62400",
    },
    "hold": {
        "action": "hold",
        "entry_price": None,
        "tp_price": None,
        "sl_price": None,
        "leverage": 1,
        "confidence": 0.3,
        "rationale": "4h trend up but 1h mid-range between its swings: no edge.",
        "invalidation": "a 1h close above the 62400 swing high would favour a long",
    },
}

INVALIDATION_GRAMMAR = """\
A trade's invalidation is a condition Rez checks on every closed primary candle; when it holds, Rez \
closes the position at the next open without asking you. One that does not parse makes the trade a \
hold. Grammar: terms "a op b" joined by "and" (binds tighter) and "or"; op is < <= > >= \
crosses_above crosses_below; a and b are plain numbers or series: price_timeframe (close_1h, low_4h) \
or indicator_params_timeframe, a single-output indicator above with its parameters in order, \
trailing defaults omitted (rsi_14_4h, ema_20_1h, rsi_4h). \
E.g. close_1h < 61200 | ema_20_1h crosses_below ema_50_1h | close_1h < 61200 or rsi_14_4h > 75
A hold's invalidation is prose (what would change your mind) or null."""

SYSTEM_TEMPLATE = """\
You are Rez. Your goal is to maximize PnL while adhering to the {profile} risk profile.

Actions:
{actions}

Hard limits (a decision that breaks one becomes a hold):
- leverage: between 1 and {max_leverage:g}
- a stop loss {stop_rule}
- reward/risk, |tp - entry| / |entry - sl|: at least {min_reward_risk:g}
- entry: within {max_entry_deviation_pct:g}% of the last price

Execution: entry is a market order at the next candle's open (none if that open is already past \
your stop or target). Costs: {fee_pct:g}% fee per fill, {slippage_pct:g}% slippage per market fill. \
Rez sizes the position from the stop: {risk_per_trade_pct:g}% of equity lost at the stop, margin at \
most {max_position_pct:g}% of equity; leverage only raises that cap and brings liquidation closer. \
Scoring: the next {horizon} primary candles, TP or SL whichever is hit first (the stop if one candle \
hits both), else the last close; in R after fees.

Think step by step, from the context:
1. Trend: close vs EMA20 and its slope on each timeframe; higher timeframes weigh most.
2. Structure and momentum: recent candles, swing highs and lows, the previous day's high and low, \
RSI14. Where are support and resistance?
3. Risk: stop beyond a swing or 1-2 ATR14 of the primary timeframe, target before the next level.
4. Decide. Hold when the evidence is mixed: a hold is a good answer.

fetch_indicator computes other indicators on closed candles, any timeframe: call it only for what \
the context lacks. Tool rounds are limited; after each Rez says how many are left. Indicators \
(parameters in order, defaults; outputs after ->):
{indicators}

Answer with one JSON object and nothing after it, e.g. (format only, not this market):
{example}
- action: {action_names}
- entry_price, tp_price, sl_price: prices in quote currency, plain (61200.5, never 61,200.50); \
null for a hold
- leverage: 1 to {max_leverage:g}; 1 for a hold
- confidence: 0.0 to 1.0 (0.65, not 65)
- rationale: one to three sentences naming the data used
- invalidation: a condition as below for a trade; prose or null for a hold

{grammar}"""

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


def offered_actions(
    allowed_actions: Sequence[str], position_open: bool, *, allow_adding: bool = False
) -> list[str]:
    """The actions the model may answer: the profile's, and ``close`` only while a position is open
    (then always: no profile can forbid ending a position). While one is open a buy or sell would be
    refused (``position_open``) unless the profile allows adding, so it is not offered."""
    offered = [action for action in allowed_actions if action != "close"]
    if not position_open:
        return offered
    if not allow_adding:
        offered = [action for action in offered if action not in ("buy", "sell")]
    return [*offered, "close"]


def actions_text(allowed_actions: Sequence[str], position_open: bool, *, allow_adding: bool = False) -> str:
    """One line per offered action with what it does."""
    meanings = {**ACTION_MEANINGS, "hold": HOLD_MEANING[position_open]}
    return "\n".join(
        f"- {action}: {meanings.get(action, action)}"
        for action in offered_actions(allowed_actions, position_open, allow_adding=allow_adding)
    )


def _either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def indicator_lines() -> str:
    """Each indicator ``fetch_indicator`` knows, its parameters in order with their defaults (the
    order the invalidation grammar's series take them in), and its outputs."""
    lines = []
    for name, spec in INDICATORS.items():
        defaults = ", ".join(
            f"{key}={value!r}" for key, value in validate_params(name, None).model_dump().items()
        )
        outputs = list(spec.outputs)
        lines.append(f"{name}({defaults})" + ("" if outputs == [name] else f" -> {', '.join(outputs)}"))
    return "\n".join(lines)


def example_answer(allowed_actions: Sequence[str]) -> str:
    """The filled example: a buy where the profile allows one, else a sell, else a hold."""
    action = next((action for action in ("buy", "sell") if action in allowed_actions), "hold")
    return json.dumps(EXAMPLES[action])


def system_prompt(profile: RiskProfile, *, position_open: bool = False, template: str | None = None) -> str:
    """The system message of a cycle (``position_open``: whether the symbol has an open position).

    ``template`` replaces ``SYSTEM_TEMPLATE`` (``[llm] system_prompt``), with the same placeholders.

    Raises:
        KeyError, ValueError, IndexError: a ``template`` with an unknown or malformed placeholder.
    """
    return (SYSTEM_TEMPLATE if template is None else template).format(
        profile=profile.name,
        actions=actions_text(profile.allowed_actions, position_open, allow_adding=profile.allow_adding),
        max_leverage=profile.max_leverage,
        stop_rule="on every trade" if profile.require_stop_loss else "recommended",
        min_reward_risk=profile.min_reward_risk,
        max_entry_deviation_pct=profile.max_entry_deviation_pct,
        fee_pct=FEE_PCT,
        slippage_pct=SLIPPAGE_PCT,
        risk_per_trade_pct=profile.risk_per_trade_pct,
        max_position_pct=profile.max_position_pct,
        horizon=SCORING_HORIZON_CANDLES,
        indicators=indicator_lines(),
        example=example_answer(profile.allowed_actions),
        action_names=_either(
            offered_actions(profile.allowed_actions, position_open, allow_adding=profile.allow_adding)
        ),
        grammar=INVALIDATION_GRAMMAR,
    )


def user_prompt(
    context_text: str,
    memory_text: str | None = None,
    *,
    allowed_actions: Sequence[str] = ("buy", "sell", "hold"),
    position_text: str | None = None,
    allow_adding: bool = False,
) -> str:
    """The first user message: the zero-shot context, the open position if there is one, and what
    Rez remembers of this symbol."""
    parts = ["Market context:", context_text]
    if position_text:
        parts += ["", "Your open position:", position_text]
    if memory_text:
        parts += ["", "Your previous decision on this symbol:", memory_text]
    offered = offered_actions(allowed_actions, position_text is not None, allow_adding=allow_adding)
    parts += ["", f"Decide: {_either(offered)}."]
    return "\n".join(parts)


def first_messages(
    profile: RiskProfile,
    context_text: str,
    memory_text: str | None = None,
    position_text: str | None = None,
    template: str | None = None,
) -> list[dict[str, Any]]:
    """The opening messages of a cycle. ``position_text``: the symbol's open position as the model
    reads it, or None when there is none (``close`` is offered only with one); ``template``: the
    system prompt's template when not Rez's own."""
    position_open = position_text is not None
    return [
        {"role": "system", "content": system_prompt(profile, position_open=position_open, template=template)},
        {
            "role": "user",
            "content": user_prompt(
                context_text,
                memory_text,
                allowed_actions=profile.allowed_actions,
                position_text=position_text,
                allow_adding=profile.allow_adding,
            ),
        },
    ]


def rounds_left_note(left: int, *, text: bool = False) -> str:
    """The line after a round of tool results: how many rounds remain before the answer is due
    (``text``: for the text protocol, whose calls are CALL lines)."""
    go_on = (
        TEXT_CONTINUE_NOTE
        if text
        else "Call tools only for what you still lack, or answer with the decision JSON object."
    )
    return f"Tool rounds left: {left}. {go_on}"


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
    'If the text states no clear decision, answer with action "hold" and null prices. '
    "A buy's or sell's invalidation must be a condition in the grammar below: write the text's "
    "invalidation in it when the text states one that can be, else null."
)


def repair_messages(raw_text: str, problem: str | None = None) -> list[dict[str, Any]]:
    """Messages for the resilience model: the primary model's raw text, the schema, the grammar of
    an invalidation, and ``problem``: why the text could not stand as written, when known."""
    why = f"\n\nWhy the text could not be used as written: {problem}" if problem else ""
    return [
        {"role": "system", "content": REPAIR_SYSTEM + "\n\n" + INVALIDATION_GRAMMAR},
        {
            "role": "user",
            "content": "Schema:\n"
            + json.dumps(answer_json_schema(), separators=(",", ":"))
            + why
            + "\n\nText:\n"
            + raw_text,
        },
    ]
