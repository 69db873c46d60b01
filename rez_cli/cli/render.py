"""Rich renderables for what Rez shows a person. They render; they never print.

Every value here came from outside (a model, a server, a file, the journal) or may have, so every
string becomes a ``Text`` through ``display_text`` and every table is a ``DataTable``: a view is
safe on any console, and ``[/red]`` in a rationale is shown, not parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from rez_cli import formatting
from rez_cli.clock import iso
from rez_cli.config.settings import RiskProfile
from rez_cli.cycle.orchestrator import DryRun
from rez_cli.decision.codes import Hold
from rez_cli.decision.model import Decision
from rez_cli.display import DataTable, display_text
from rez_cli.market.snapshot import Context
from rez_cli.reasoning.trace import TurnRecord


def _pct(value: float | None, digits: int = 2) -> Text:
    if value is None:
        return Text("n/a", style="dim")
    return Text(
        formatting.signed_pct(value, digits), style="green" if value > 0 else "red" if value < 0 else ""
    )


def simulated_banner() -> Text:
    return Text("SIMULATED market: synthetic candles, not prices anyone traded at", style="bold red")


def context_view(context: Context, *, profile: str | None = None) -> RenderableType:
    """The context as a header line and one table row per timeframe."""
    price = context.last_price
    header = Text.assemble(
        display_text(context.symbol, "bold", multiline=False),
        display_text(
            f" on {context.exchange} · as of {iso(context.as_of)} · last {formatting.price(price, price)}"
            f" · primary {context.primary_timeframe}" + (f" · profile {profile}" if profile else ""),
            multiline=False,
        ),
    )
    table = DataTable(box=None, pad_edge=False, header_style="bold")
    for column in (
        "tf",
        "close",
        "chg",
        "EMA 20",
        "slope",
        "RSI 14",
        "ATR 14",
        "from high",
        "from low",
        "vol/avg",
    ):
        table.add_column(column, justify="left" if column == "tf" else "right")
    for timeframe, item in context.timeframes.items():
        rsi = "n/a" if item.rsi_14 is None else f"{item.rsi_14:.1f}"
        rsi_style = (
            "red"
            if item.rsi_14 and item.rsi_14 >= 70
            else "green"
            if item.rsi_14 and item.rsi_14 <= 30
            else ""
        )
        table.add_row(
            timeframe + ("*" if item.gaps else ""),
            formatting.price(item.last_close, price),
            _pct(item.change_pct),
            formatting.price(item.ema_20, price),
            _pct(item.ema_20_slope_pct, 3),
            Text(rsi, style=rsi_style),
            formatting.price(item.atr_14, price),
            _pct(item.from_high_pct),
            _pct(item.from_low_pct),
            "n/a" if item.volume_ratio is None else f"{item.volume_ratio:.2f}x",
        )
    parts: list[RenderableType] = []
    if context.simulated:
        parts.append(simulated_banner())
    parts += [header, table]
    gaps = {tf: item.gaps for tf, item in context.timeframes.items() if item.gaps}
    if gaps:
        parts.append(
            display_text(
                "* missing candles in the window: " + ", ".join(f"{tf} {n}" for tf, n in gaps.items()),
                "yellow",
                multiline=False,
            )
        )
    return Group(*parts)


ACTION_STYLE = {"buy": "green", "sell": "red", "hold": "yellow"}

# The panel gives a code's plain words only for these, the failures of the model and the exchange a
# user meets most; for a rule the "why" row beneath says more than words could. The code is always
# shown as is.
PANEL_EXPLAINS = frozenset(
    {
        Hold.MODEL_NOT_CONFIGURED,
        Hold.MODEL_TIMEOUT,
        Hold.MODEL_RATE_LIMITED,
        Hold.MODEL_UNREACHABLE,
        Hold.MODEL_AUTH_FAILED,
        Hold.MODEL_BAD_RESPONSE,
        Hold.BUDGET_EXCEEDED,
        Hold.MAX_TURNS_EXCEEDED,
        Hold.REASONING_TIMEOUT_EXCEEDED,
        Hold.EXCHANGE_UNAVAILABLE,
        Hold.NO_JSON_FOUND,
        Hold.INVALID_DECISION_JSON,
        Hold.REPAIR_FAILED,
        Hold.REPAIR_INVENTED_PRICES,
    }
)


def turn_view(symbol: str, record: TurnRecord | Mapping[str, Any]) -> RenderableType:
    """One model turn, live or as the journal stores it (``TurnRecord.to_json``, perhaps from an
    older or damaged journal): its reasoning text and a line per tool call with what came back."""
    turn = record.to_json() if isinstance(record, TurnRecord) else record
    offered = turn.get("tools_offered")
    parts: list[RenderableType] = [
        display_text(
            f"{symbol} · turn {turn.get('index')}"
            + (" (final, no tools)" if offered is False else "")
            + f" · {_number(turn.get('duration_ms')):.0f} ms"
            + f" · {turn.get('prompt_tokens') or 0}+{turn.get('completion_tokens') or 0} tokens",
            "bold cyan",
            multiline=False,
        )
    ]
    if turn.get("content"):
        parts.append(display_text(str(turn["content"]).strip()))
    for call in turn.get("tool_calls") or []:
        ok = bool(call.get("ok"))
        parts.append(
            display_text(
                f"  {'✓' if ok else '✗'} {call.get('name')}({call.get('arguments')}) · "
                f"{_number(call.get('duration_ms')):.0f} ms" + (" · cached" if call.get("cached") else ""),
                "green" if ok else "red",
                multiline=False,
            )
        )
        parts.append(display_text("    " + str(call.get("content", "")).replace("\n", "\n    "), "dim"))
    return Group(*parts)


def _number(value: Any) -> float:
    """A journaled duration as a number; a damaged one shows as 0 rather than stopping the view."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def trace_view(record: Mapping[str, Any], *, profile: RiskProfile | None = None) -> RenderableType:
    """A journaled cycle, rendered as it was when it ran: context, turns, decision panel, footer."""
    symbol = str(record.get("symbol", "?"))
    parts: list[RenderableType] = [
        display_text(
            f"trace {record.get('trace_id')} · {symbol} on {record.get('exchange')}"
            f" · mode {record.get('mode')}"
            f" · model {record.get('model') or 'none'}"
            + (
                " · INCOMPLETE (the run stopped before a decision)"
                if record.get("status") == "incomplete"
                else ""
            ),
            "bold",
            multiline=False,
        )
    ]
    stored_trace = record.get("trace")
    if isinstance(stored_trace, Mapping):
        # What the account did before the model was asked, and the position the model was shown.
        for note in stored_trace.get("account_notes") or []:
            parts.append(display_text(f"paper: {note}", "cyan"))
        if stored_trace.get("position"):
            shown = f"open position shown to the model:\n{stored_trace['position']}"
            parts.append(display_text(shown, "cyan"))
    parts += [turn_view(symbol, turn) for turn in record.get("turns") or []]
    decision_data = record.get("decision")
    decision = _stored(Decision, decision_data) if decision_data else None
    if decision is not None:
        trace = record.get("trace")
        trace = trace if isinstance(trace, Mapping) else {}
        context_data = trace["context"] if "context" in trace else record.get("context")
        verdicts = trace.get("verdicts") or []
        detail = trace.get("error_detail")
        parts.append(
            decision_view(
                decision,
                context=_stored(Context, context_data) if context_data else None,
                reward_risk=verdicts[0].get("reward_risk") if verdicts else None,
                error_detail=None if detail is None else str(detail),
                profile=profile or _stored(RiskProfile, record.get("profile")),
                model=record.get("model"),
            )
        )
    else:
        if decision_data:
            parts.append(display_text("the journaled decision does not validate: not shown", "yellow"))
        context = _stored(Context, record.get("context"))
        if context is not None:
            parts.append(context_view(context))
    return Group(*parts)


_Stored = TypeVar("_Stored", bound=BaseModel)


def _stored(model: type[_Stored], data: Any) -> _Stored | None:
    """A journaled value read back, or None when it no longer validates: the journal is outside data
    (an older Rez, a damaged file), and one bad value must not cost the view of the rest."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def decision_view(
    decision: Decision,
    *,
    context: Context | None,
    reward_risk: float | None,
    error_detail: str | None,
    profile: RiskProfile | None,
    model: str | None,
    with_context: bool = True,
    with_footer: bool = True,
) -> RenderableType:
    """The decision panel, coloured by action; with the context above and the usage footer below.

    ``reward_risk``: the policy's, of the answer decided on; ``error_detail``: why a forced hold was
    forced.
    """
    parts: list[RenderableType] = []
    if context is not None and with_context:
        parts.append(context_view(context, profile=profile.name if profile else None))
    reference = decision.entry_price or (context.last_price if context is not None else None) or 1.0
    table = DataTable.grid(padding=(0, 2))
    table.add_column(style="bold", overflow="fold")
    table.add_column(overflow="fold")

    def row(label: str, value: str | None) -> None:
        if value is not None:
            # The model's prose keeps its line breaks; everything else stays on one line.
            table.add_row(label, display_text(value, multiline=label in ("rationale", "invalidation", "why")))

    row("action", decision.action.upper())
    if decision.action != "hold":
        row("entry", formatting.price(decision.entry_price, reference))
        row("take profit", formatting.price(decision.tp_price, reference))
        row("stop loss", formatting.price(decision.sl_price, reference))
        row("leverage", f"{decision.leverage:g}x")
        row("size", f"{decision.size_pct:g}% of equity")
        if reward_risk is not None:
            row("reward/risk", f"{reward_risk:.2f}")
    row("confidence", f"{decision.confidence:.2f}")
    row("invalidation", decision.invalidation)
    row("rationale", decision.rationale)
    row("mode / stage", f"{decision.mode} / {decision.source}")
    if decision.error:
        code = Hold.of(decision.error)
        row("error", f"{decision.error}: {code.words if code in PANEL_EXPLAINS else 'see the trace'}")
        row("why", error_detail)
    title = display_text(
        f"{decision.symbol} · {decision.action.upper()}"
        + (" (forced by a failure)" if decision.error else ""),
        multiline=False,
    )
    style = "magenta" if decision.error else ACTION_STYLE[decision.action]
    parts.append(Panel(table, title=title, border_style=style, title_align="left"))
    if not with_footer:
        return Group(*parts)
    usage = decision.usage
    timings = " · ".join(f"{stage} {ms:.0f} ms" for stage, ms in usage.timings_ms.items())
    parts.append(
        display_text(
            f"model {model or 'none'} · {usage.llm_calls} LLM calls · {usage.tool_calls} tool calls · "
            f"{usage.prompt_tokens}+{usage.completion_tokens} tokens · ~${usage.cost_usd:.4f} · {timings} · "
            f"trace {decision.trace_id}",
            "dim",
            multiline=False,
        )
    )
    return Group(*parts)


def prompt_chars(dry: DryRun) -> dict[str, int]:
    """The size of what the first request would send, in characters: each message by its role (the
    context as the model reads it among them) and the tool schemas, and their total."""
    sizes: dict[str, int] = {}
    for message in dry.messages:
        role = str(message.get("role"))
        sizes[role] = sizes.get(role, 0) + len(str(message.get("content") or ""))
    sizes["tools"] = len(json.dumps(dry.tools, separators=(",", ":"))) if dry.tools else 0
    sizes["total"] = sum(sizes.values())
    return sizes


def dry_run_payload(dry: DryRun, endpoint: str, key_set: bool) -> dict[str, Any]:
    """The dry run as JSON: what the first request would carry (the key is never included)."""
    return {
        "dry_run": True,
        "symbol": dry.symbol,
        "model": dry.model,
        "endpoint": endpoint,
        "api_key": "set (redacted)" if key_set else "not set",
        "messages": dry.messages,
        "tools": dry.tools,
        "prompt_chars": prompt_chars(dry),
        "estimated_prompt_tokens": dry.prompt_tokens,
        "estimated_cost_usd": round(dry.cost_usd, 6),
        "context": dry.context.model_dump(mode="json"),
    }


def dry_run_view(dry: DryRun, *, endpoint: str, key_set: bool) -> RenderableType:
    """Every message and tool schema the first model call would send, verbatim, and its size."""
    sizes = prompt_chars(dry)
    parts: list[RenderableType] = [
        context_view(dry.context),
        display_text(
            f"DRY RUN: no model was called. Model {dry.model} at {endpoint} "
            f"(API key {'set, redacted' if key_set else 'not set'}) · "
            f"~${dry.cost_usd:.4f} with a typical answer",
            "bold yellow",
            multiline=False,
        ),
        display_text(
            f"prompt: {sizes['total']} characters, ~{dry.prompt_tokens} tokens (estimated) · "
            + " · ".join(f"{part} {size}" for part, size in sizes.items() if part != "total"),
            "bold yellow",
            multiline=False,
        ),
    ]
    for message in dry.messages:
        parts.append(
            Panel(
                display_text(message.get("content")),
                title=display_text(message.get("role"), multiline=False),
                title_align="left",
            )
        )
    parts.append(
        Panel(
            display_text(json.dumps(dry.tools, indent=2)),
            title=Text("tools"),
            title_align="left",
            border_style="dim",
        )
    )
    return Group(*parts)


def run_header(
    symbol: str, exchange: str, *, profile: str, model: str | None, mode: str, why: str | None = None
) -> Text:
    """The first line of a live trace: what decides, and why that model (``choice.choose_model``)."""
    chosen = f"{model or 'none'} ({why})" if why else model or "none"
    return display_text(
        f"rez decide {symbol} · {exchange} · profile {profile} · mode {mode} · model {chosen}",
        "bold",
        multiline=False,
    )


def summary_table(decisions: list[Decision]) -> DataTable:
    """One row per symbol, after a multi-symbol run."""
    table = DataTable(title="summary", box=None, pad_edge=False, header_style="bold", title_justify="left")
    for column in ("symbol", "action", "entry", "tp", "sl", "lev", "size", "conf", "stage", "error"):
        table.add_column(
            column, justify="left" if column in ("symbol", "action", "stage", "error") else "right"
        )
    for item in decisions:
        reference = item.entry_price or 1.0
        table.add_row(
            item.symbol,
            Text(item.action.upper(), style="magenta" if item.error else ACTION_STYLE[item.action]),
            formatting.price(item.entry_price, reference),
            formatting.price(item.tp_price, reference),
            formatting.price(item.sl_price, reference),
            f"{item.leverage:g}x",
            f"{item.size_pct:g}%",
            f"{item.confidence:.2f}",
            item.source,
            item.error or "",
        )
    return table
