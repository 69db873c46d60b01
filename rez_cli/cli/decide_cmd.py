"""``rez decide``: one decision cycle per symbol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from rez_cli.cli.options import (
    AsOfOption,
    ConfigOption,
    DataOption,
    ExchangeOption,
    JournalOption,
    JsonOption,
    ModelOption,
    ModeOption,
    NoCacheOption,
    NotifyOption,
    ProfileOption,
    TimeframeOption,
    TimeframesOption,
)

if TYPE_CHECKING:
    from rez_cli.account.paper import Settlement
    from rez_cli.config.settings import Settings
    from rez_cli.decision.model import Decision


def decide(
    symbols: Annotated[list[str], typer.Argument(help="One or more symbols, e.g. BTC/USDT ETH/USDT.")],
    exchange: ExchangeOption = None,
    data: DataOption = None,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    max_turns: Annotated[
        int | None,
        typer.Option(
            "--max-turns", min=1, max=20, help="Model turns before it must answer.", show_default=False
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost", min=0, help="Hold (budget_exceeded) rather than spend more US$.", show_default=False
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=32, help="Symbols decided at once.")
    ] = 4,
    timeframe: TimeframeOption = None,
    timeframes: TimeframesOption = None,
    as_of: AsOfOption = None,
    no_cache: NoCacheOption = False,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the decision, no trace.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show exactly what would be sent to the model, and call no model."),
    ] = False,
    journal: JournalOption = None,
    chart: Annotated[
        bool,
        typer.Option(
            "--chart",
            help="Draw the primary timeframe with EMA 20 and the entry/TP/SL lines (needs the chart extra).",
        ),
    ] = False,
    notify: NotifyOption = None,
    no_paper: Annotated[
        bool,
        typer.Option(
            "--no-paper",
            help="Decide without the paper account: no position shown to the model, none opened or closed.",
        ),
    ] = False,
) -> None:
    """Decide buy, sell or hold for each SYMBOL, checked against the risk profile.

    Example: rez decide BTC/USDT --exchange sim --json

    Example, on a folder holding only 1h candles: rez decide BTC/USDT --data ./candles --timeframes 1h

    Exit codes: 0 a decision (a chosen hold included), 2 usage/config/data error,
    3 a hold forced by a failure.
    """
    import asyncio
    import os

    from rez_cli.cli.console import invocation_argv, print_json_line, stderr_console, stdout_console
    from rez_cli.cli.render import (
        context_view,
        decision_view,
        dry_run_payload,
        dry_run_view,
        run_header,
        summary_table,
        turn_view,
    )
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.cycle.run import DecideRequest, run_decide
    from rez_cli.market.candles import parse_time
    from rez_cli.market.snapshot import Context
    from rez_cli.reasoning.registry import mode_spec
    from rez_cli.reasoning.trace import TurnRecord
    from rez_cli.redact import active
    from rez_cli.symbols import normalize_symbols

    symbols = normalize_symbols(symbols)
    if mode is not None:
        mode_spec(mode)  # an unknown mode is refused before anything is loaded
    as_of_ms = parse_time(as_of, option="--as-of", past=True) if as_of is not None else None
    from rez_cli.timeframes import parse_timeframes

    settings = load_settings(config).value
    settings = settings.with_timeframes(timeframe, parse_timeframes(timeframes) if timeframes else None)
    from rez_cli.notify import with_webhook

    settings = with_webhook(settings, notify)
    risk = load_profile(profile or settings.risk.profile).value
    # The trace and the decision are the answer (stdout); notes and warnings are said aside (stderr).
    console = stdout_console()
    aside = stderr_console()
    show_trace = not quiet and not json_output

    def on_turn(symbol: str, turn: TurnRecord) -> None:
        if show_trace:
            # Shown live, before the cycle's result is redacted: a turn may echo a configured key.
            console.print(turn_view(symbol, active().value(turn.to_json())))

    request = DecideRequest(
        symbols=symbols,
        argv=invocation_argv.get(),
        journal=journal,
        exchange=exchange,
        data=data,
        model=model,
        mode=mode,
        max_turns=max_turns,
        max_cost_usd=max_cost,
        as_of_ms=as_of_ms,
        use_cache=not no_cache,
        concurrency=concurrency,
        paper=not no_paper,
    )
    if dry_run:
        from rez_cli.cycle.run import run_dry
        from rez_cli.llm.local_model import gguf_of
        from rez_cli.llm.openai_api import endpoint_label

        gguf = gguf_of(settings.llm, model)
        endpoint = f"{gguf} (served by llama.cpp)" if gguf else endpoint_label(settings.llm.base_url)
        key_set = not gguf and bool(settings.llm.api_key or os.environ.get("OPENAI_API_KEY"))
        for item in asyncio.run(run_dry(settings, risk, request)):
            if json_output:
                print_json_line(dry_run_payload(item, endpoint, key_set))
            else:
                console.print(dry_run_view(item, endpoint=endpoint, key_set=key_set))
        return
    single = len(symbols) == 1
    from rez_cli.cycle.choice import DEFAULT_MODEL, choose

    choice = choose(settings.llm, mode, model)
    model_name = (choice.model.model or DEFAULT_MODEL) if choice.mode.needs_model else None
    live = show_trace and single

    def on_context(snapshot: Context) -> None:
        if live:
            console.print(
                run_header(
                    snapshot.symbol,
                    snapshot.exchange,
                    profile=risk.name,
                    model=model_name,
                    mode=choice.mode.name,
                    why=choice.model.reason,
                )
            )
            console.print(context_view(snapshot, profile=risk.name))

    run = asyncio.run(
        run_decide(
            settings,
            risk,
            request,
            on_turn=on_turn if live else None,
            on_context=on_context if live else None,
        )
    )
    if run.notice and not quiet:
        aside.print(f"note: {run.notice}", style="yellow")
    for warning in run.warnings:
        aside.print(f"warning: {warning}", style="yellow")
    if not quiet and not json_output:
        # What the paper account did: exits and fills since the last cycle, missing candles, the order
        # placed. With --json the same is in rez paper history --json (and the webhook), not stderr.
        for symbol, settlement in run.settlements.items():
            for line in settlement.notes:
                aside.print(f"note: paper {symbol}: {line}", style="cyan", markup=False)
    decisions = []
    for result in run.results:
        decision = result.decision
        assert decision is not None
        decisions.append(decision)
        if json_output:
            print_json_line(decision.model_dump(mode="json"))
            continue
        trace = result.trace
        assert trace is not None
        if show_trace and not single:
            # Cycles ran concurrently: each trace is printed whole, one after the other.
            if trace.context is not None:
                console.print(context_view(trace.context, profile=risk.name))
            for turn in trace.reasoning.turns or []:
                console.print(turn_view(decision.symbol, turn))
        if chart and trace.chart is not None:
            from rez_cli.cli.chart import price_chart

            console.print(price_chart(trace.chart, decision, width=console.width - 2))
        console.print(
            decision_view(
                decision,
                context=trace.context,
                reward_risk=trace.reward_risk,
                error_detail=trace.error_detail,
                profile=risk,
                model=run.model,
                with_context=False,
                with_footer=not quiet,
            )
        )
    if not json_output and not single:
        console.print(summary_table(decisions))
    if settings.notify.webhook is not None:
        # After the answer is out: a slow or failing webhook delays nothing and changes nothing.
        for problem in _notify(settings, decisions, run.settlements):
            aside.print(f"warning: {problem}", style="yellow")
    raise typer.Exit(int(run.exit_code))


def _notify(
    settings: Settings, decisions: Sequence[Decision], settlements: Mapping[str, Settlement]
) -> list[str]:
    """Send the run's events to ``[notify] webhook``; what failed, one line each."""
    from rez_cli.notify import ClosedTrade, deliver, events_for

    assert settings.notify.webhook is not None

    def closed(symbol: str) -> list[ClosedTrade]:
        settlement = settlements.get(symbol)
        trades = settlement.trades if settlement is not None else []
        return [
            ClosedTrade(
                symbol=symbol,
                side="long" if trade.side > 0 else "short",
                entry_price=trade.entry_price,
                exit_price=trade.exit_price,
                reason=trade.reason,  # type: ignore[arg-type]
                pnl=trade.pnl,
                r_multiple=trade.r_multiple,
                opened_ms=trade.entry_ms,
                closed_ms=trade.exit_ms,
            )
            for trade in trades
        ]

    events = [event for decision in decisions for event in events_for(decision, closed(decision.symbol))]
    return deliver(settings.notify.webhook.get_secret_value(), events, timeout_s=settings.notify.timeout_s)
