"""Rich renderables for what Rez shows a person. They render; they never print."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rez_cli import indicators
from rez_cli.context import Context
from rez_cli.decision import Decision
from rez_cli.market.candles import iso
from rez_cli.reasoning.react import Turn
from rez_cli.settings import RiskProfile


def _price(value: float | None, reference: float) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{indicators.price_decimals(reference)}f}"


def _pct(value: float | None, digits: int = 2) -> Text:
    if value is None:
        return Text("n/a", style="dim")
    return Text(f"{value:+.{digits}f}%", style="green" if value > 0 else "red" if value < 0 else "")


def simulated_banner() -> Text:
    return Text("SIMULATED market: synthetic candles, not prices anyone traded at", style="bold red")


def context_view(context: Context, *, profile: str | None = None) -> RenderableType:
    """The context as a header line and one table row per timeframe."""
    price = context.last_price
    header = Text.assemble(
        (context.symbol, "bold"),
        f" on {context.exchange} · as of {iso(context.as_of)} · last {_price(price, price)}",
        f" · primary {context.primary_timeframe}",
        f" · profile {profile}" if profile else "",
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
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
            _price(item.last_close, price),
            _pct(item.change_pct),
            _price(item.ema_20, price),
            _pct(item.ema_20_slope_pct, 3),
            Text(rsi, style=rsi_style),
            _price(item.atr_14, price),
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
            Text(
                "* missing candles in the window: " + ", ".join(f"{tf} {n}" for tf, n in gaps.items()),
                style="yellow",
            )
        )
    return Group(*parts)


ACTION_STYLE = {"buy": "green", "sell": "red", "hold": "yellow"}

# Plain words for the codes a user meets most; every code is also shown as is.
ERROR_WORDS = {
    "model_not_configured": "no model is configured",
    "model_timeout": "the model did not answer in time",
    "model_rate_limited": "the endpoint kept rate-limiting after retries",
    "model_unreachable": "the model endpoint could not be reached",
    "model_auth_failed": "the endpoint refused the API key",
    "model_bad_response": "the endpoint rejected the request",
    "budget_exceeded": "the next call would have passed --max-cost",
    "max_turns_exceeded": "the model kept calling tools and never answered",
    "reasoning_timeout_exceeded": "the cycle ran out of time",
    "exchange_unavailable": "the exchange could not be reached",
    "no_json_found": "the model's answer held no decision JSON",
    "invalid_decision_json": "the model's JSON was not a valid decision",
    "repair_failed": "the resilience model could not produce a decision",
    "repair_invented_prices": "the resilience model gave prices the model never wrote",
}


def turn_view(symbol: str, turn: Turn) -> RenderableType:
    """One model turn: its reasoning text and a line per tool call with what came back."""
    parts: list[RenderableType] = [
        Text(
            f"{symbol} · turn {turn.index}"
            + ("" if turn.tools_offered else " (final, no tools)")
            + f" · {turn.duration_ms:.0f} ms"
            + f" · {turn.usage.prompt_tokens}+{turn.usage.completion_tokens} tokens",
            style="bold cyan",
        )
    ]
    if turn.content:
        parts.append(Text(turn.content.strip()))
    for result in turn.tool_results:
        status = "✓" if result.ok else "✗"
        parts.append(
            Text(
                f"  {status} {result.name}({result.arguments}) · {result.duration_ms:.0f} ms"
                + (" · cached" if result.cached else ""),
                style="green" if result.ok else "red",
            )
        )
        parts.append(Text("    " + result.content.replace("\n", "\n    "), style="dim"))
    return Group(*parts)


def decision_view(
    decision: Decision, metadata: Mapping[str, Any], *, profile: RiskProfile, model: str | None
) -> RenderableType:
    """The decision panel, coloured by action, with the header and the usage footer."""
    trace = metadata.get("trace", {})
    context_data = trace.get("context")
    parts: list[RenderableType] = []
    if context_data:
        parts.append(context_view(Context.model_validate(context_data), profile=profile.name))
    reference = decision.entry_price or (context_data or {}).get("last_price") or 1.0
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()

    def row(label: str, value: str | None) -> None:
        if value is not None:
            table.add_row(label, value)

    row("action", decision.action.upper())
    if decision.action != "hold":
        row("entry", _price(decision.entry_price, reference))
        row("take profit", _price(decision.tp_price, reference))
        row("stop loss", _price(decision.sl_price, reference))
        row("leverage", f"{decision.leverage:g}x")
        row("size", f"{decision.size_pct:g}% of equity")
        verdicts = trace.get("verdicts") or []
        if verdicts and verdicts[0].get("reward_risk") is not None:
            row("reward/risk", f"{verdicts[0]['reward_risk']:.2f}")
    row("confidence", f"{decision.confidence:.2f}")
    row("invalidation", decision.invalidation)
    row("rationale", decision.rationale)
    row("mode / stage", f"{decision.mode} / {decision.source}")
    if decision.error:
        row("error", f"{decision.error}: {ERROR_WORDS.get(decision.error, 'see the trace')}")
        detail = trace.get("error_detail")
        row("why", detail)
    title = f"{decision.symbol} · {decision.action.upper()}" + (
        " (forced by a failure)" if decision.error else ""
    )
    style = "magenta" if decision.error else ACTION_STYLE[decision.action]
    parts.append(Panel(table, title=title, border_style=style, title_align="left"))
    usage = decision.usage
    timings = " · ".join(f"{stage} {ms:.0f} ms" for stage, ms in usage.timings_ms.items())
    parts.append(
        Text(
            f"model {model or 'none'} · {usage.llm_calls} LLM calls · {usage.tool_calls} tool calls · "
            f"{usage.prompt_tokens}+{usage.completion_tokens} tokens · ~${usage.cost_usd:.4f} · {timings} · "
            f"trace {decision.trace_id}",
            style="dim",
        )
    )
    return Group(*parts)
