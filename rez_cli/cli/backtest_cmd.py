"""``rez backtest``: decisions replayed over history, traded, and scored against two baselines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import (
    ConfigOption,
    DataOption,
    ExchangeOption,
    JournalOption,
    JsonOption,
    ModelOption,
    ModeOption,
    NoCacheOption,
    ProfileOption,
    TimeframeOption,
    TimeframesOption,
    max_cost_option,
    report_option,
    report_target,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text

    from rez_cli.backtest.walk import BacktestReport, BacktestRequest, Progress
    from rez_cli.config.settings import RiskProfile, Settings
    from rez_cli.market.source import MarketSource
    from rez_cli.tape import Tape


def summary_view(report: Mapping[str, Any]) -> RenderableType:
    """The report as a header, a table of metrics side by side, and a footer of costs and ids."""
    from rich.console import Group
    from rich.text import Text

    from rez_cli.display import DataTable, display_text

    strategy = f"{report['mode']}" + (f" ({report['model']})" if report.get("model") else "")
    header = Text.assemble(
        display_text(report["symbol"], "bold", multiline=False),
        display_text(f" on {report['exchange']}", multiline=False),
        (" (SIMULATED market)", "bold red") if report["simulated"] else "",
        display_text(f" · {report['timeframe']} · {report['from']} → {report['to']}", multiline=False),
        f" · a cycle every {report['every']} candle{'s' if report['every'] > 1 else ''}",
        f" · {report['cycles']} cycles",
    )
    table = DataTable(header_style="bold")
    table.add_column("metric")
    table.add_column(strategy, justify="right")
    baselines = report["baselines"]
    columns = [("buy & hold", baselines.get("buy_and_hold"))]
    if report["mode"] != "rules":
        columns.append(("rules baseline", baselines.get("rules")))
    for title, _ in columns:
        table.add_column(title, justify="right")
    from rez_cli.backtest.metrics import METRIC_ROWS, format_metric

    for label, key, kind in METRIC_ROWS:
        cells = [format_metric(report["metrics"].get(key), kind)]
        cells += [format_metric(metrics.get(key), kind) if metrics else "n/a" for _, metrics in columns]
        table.add_row(label, *cells)
    fills = report["fills"]
    footer = display_text(
        f"fills: entry at the next candle's {'open' if fills['entry'] == 'open' else 'entry price (limit)'}, "
        f"fee {fills['fee_pct']:g}%, slippage {fills['slippage_pct']:g}%, "
        f"maintenance margin {fills['maintenance_margin_pct']:g}% · "
        f"model cost ${report['cost_usd']:.4f} "
        f"({report['llm_calls']} calls, {report['cache_hits']} cached) · "
        f"backtest {report['backtest_id']} in {report['journal']}",
        "dim",
        multiline=False,
    )
    parts: list[RenderableType] = [header, table]
    exits = exits_line(report["trades"])
    if exits is not None:
        parts.append(exits)
    parts.append(footer)
    if report.get("stopped"):
        parts.append(
            display_text(f"incomplete: stopped early ({report['stopped']})", "bold yellow", multiline=False)
        )
    return Group(*parts)


def exits_line(trades: Sequence[Mapping[str, Any]]) -> Text | None:
    """How the strategy's trades ended, by reason; a liquidation stands out. None without trades."""
    from rich.text import Text

    from rez_cli.account.fills import EXIT_REASONS, LIQUIDATION
    from rez_cli.display import display_str

    counts = Counter(str(trade["reason"]) for trade in trades)
    if not counts:
        return None
    line = Text("exits: ")
    reasons: list[str] = [reason for reason in EXIT_REASONS if counts[reason]]
    reasons += sorted(reason for reason in counts if reason not in EXIT_REASONS)
    for index, reason in enumerate(reasons):
        if index:
            line.append(" · ")
        line.append(
            display_str(f"{counts[reason]} {reason}", multiline=False),
            style="bold red" if reason == LIQUIDATION else "",
        )
    return line


def backtest(
    symbol: Annotated[
        str | None,
        typer.Argument(help="The symbol, e.g. BTC/USDT (with --tape, the tape's).", show_default=False),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First moment a cycle stands at (2021-01-01, UTC). Default: 30 days before the end: "
            "--to, or the last candle of the data when it ends earlier.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Last moment (UTC). Default: now, or the last candle of the data when it ends earlier.",
            show_default=False,
        ),
    ] = None,
    timeframe: TimeframeOption = None,
    timeframes: TimeframesOption = None,
    every: Annotated[
        int,
        typer.Option("--every", min=1, help="One decision cycle every N closed candles of the timeframe."),
    ] = 1,
    mode: ModeOption = None,
    exchange: ExchangeOption = None,
    data: DataOption = None,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    model: ModelOption = None,
    max_cost: Annotated[
        float | None,
        max_cost_option(
            "Stop before the model calls of the whole backtest (and its --audit) could cost more US$ "
            "than this (needs the model's price in \\[llm.prices]); the report covers what was done."
        ),
    ] = None,
    fee_pct: Annotated[
        float,
        typer.Option(
            "--fee-pct",
            min=0,
            max=10,
            help="Fee per fill, entry and exit alike, in % of its notional (0.1: a typical taker fee).",
        ),
    ] = 0.1,
    slippage_pct: Annotated[
        float,
        typer.Option(
            "--slippage-pct",
            min=0,
            max=10,
            help="How much worse than its price a market fill is, in % (entries at the open, stops, "
            "the final close; limit fills, such as targets, have none).",
        ),
    ] = 0.02,
    entry: Annotated[
        str,
        typer.Option(
            "--entry",
            help="open: enter at the next candle's open. limit: at the decision's entry price, "
            "if the next candle reaches it.",
        ),
    ] = "open",
    equity: Annotated[
        # Bounded so that equity, P&L and their ratios stay finite numbers in the report's JSON.
        float, typer.Option("--equity", min=1, max=1e15, help="Starting equity, quote currency.")
    ] = 10_000.0,
    training_cutoff: Annotated[
        str | None,
        typer.Option(
            "--training-cutoff",
            help="The model's training cutoff: a react backtest over earlier prices gets a warning "
            "(the model may remember them), and the audit splits there. 'none' turns it off. "
            "Default: \\[llm.cutoffs], else Rez's table of well-known models, else 2023-10-01.",
            show_default=False,
        ),
    ] = None,
    audit: Annotated[
        bool,
        typer.Option("--audit", help="Audit the result once the backtest is done (see rez audit)."),
    ] = False,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Skip buy-and-hold and the rules baseline.")
    ] = False,
    no_llm_cache: Annotated[
        bool,
        typer.Option(
            "--no-llm-cache", help="Ask the model every time; neither read nor write cached answers."
        ),
    ] = False,
    no_cache: NoCacheOption = False,
    tape: Annotated[
        Path | None,
        typer.Option(
            "--tape",
            help="Walk a tape (rez tape record) instead: its candles, symbol, timeframes and moments, "
            "and nothing else.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    journal: JournalOption = None,
    report_path: Annotated[
        Path | None,
        report_option("a self-contained HTML page: equity curve, drawdown and the trades on the price"),
    ] = None,
) -> None:
    """Replay decisions over history, trade them, and score them against buy-and-hold and rules.

    Example: rez backtest BTC/USDT --exchange sim --mode rules --from 2021-01-01 --to 2021-03-01

    Or over a tape: rez backtest --tape btc.tape --mode rules

    Every cycle sees only the candles closed by its moment, on every timeframe.

    Positions are isolated margin: one whose loss eats its margin down to the profile's
    maintenance_margin_pct of the notional is liquidated (exit reason "liquidation"), losing the
    whole margin and the fees, whatever its stop.

    Model answers are cached: running the same backtest again calls no model.

    --report FILE.html writes the result as a page that opens offline (a partial result too).

    Exit codes: 0 done · 2 usage, config or data error · 3 stopped early (--max-cost, a failing model)
    · 130 interrupted (the partial result is shown).
    """
    import asyncio

    from rez_cli.account.fills import FillConfig
    from rez_cli.audit.cutoffs import Cutoff, model_cutoff
    from rez_cli.audit.stored import store_backtest
    from rez_cli.backtest.walk import BacktestRequest, parse_cutoff
    from rez_cli.cli.console import invocation_argv, print_json_line, stderr_console, stdout_console
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.errors import UsageError
    from rez_cli.market.candles import parse_time
    from rez_cli.reasoning.registry import mode_spec
    from rez_cli.symbols import normalize_symbol
    from rez_cli.timeframes import parse_timeframes

    frozen: Tape | None = None
    if tape is not None:
        given: dict[str, object] = {
            "--from": from_,
            "--to": to,
            "--timeframe": timeframe,
            "--timeframes": timeframes,
        }
        given |= {"--exchange": exchange, "--data": data, "--every": every if every != 1 else None}
        clashing = [option for option, value in given.items() if value is not None]
        if clashing:
            raise UsageError(
                f"--tape sets the candles, span, timeframes and moments: drop {', '.join(clashing)}"
            )
        from rez_cli.config import paths
        from rez_cli.tape import load_tape

        frozen = load_tape(paths.expand_user(tape))
        if symbol is not None and normalize_symbol(symbol) != frozen.meta.symbol:
            raise UsageError(f"the tape holds {frozen.meta.symbol}, not {normalize_symbol(symbol)}")
        symbol = frozen.meta.symbol
    if symbol is None:
        raise UsageError("which symbol? give one (rez backtest BTC/USDT ...), or a --tape")
    symbol = normalize_symbol(symbol)
    start_ms = parse_time(from_, option="--from", past=True) if from_ is not None else None
    end_ms = parse_time(to, option="--to", past=True) if to is not None else None
    if mode is not None:
        mode_spec(mode)  # an unknown mode is refused before anything is loaded
    if entry not in ("open", "limit"):
        raise UsageError(f"unknown entry rule {entry!r}", hint="use --entry open or --entry limit")
    if report_path is not None:
        report_path = report_target(report_path)
    settings = load_settings(config).value
    risk = load_profile(profile or settings.risk.profile).value
    if frozen is not None:
        # The cycles see what was recorded: the tape's timeframes and warm-up, not today's config.
        settings = frozen.apply(settings)
        meta = frozen.meta
        start_ms, end_ms, timeframe, every = meta.start_ms, meta.end_ms, meta.timeframe, meta.every
    cutoff = (
        Cutoff(parse_cutoff(training_cutoff), "--training-cutoff")
        if training_cutoff is not None
        else model_cutoff(settings.llm.cutoffs, model or settings.llm.model)
    )
    request = BacktestRequest(
        symbol=symbol,
        start_ms=start_ms,
        end_ms=end_ms,
        timeframe=timeframe,
        context_timeframes=parse_timeframes(timeframes) if timeframes else None,
        every=every,
        mode=mode,
        exchange=exchange,
        data=data,
        model=model,
        max_cost_usd=max_cost,
        fills=FillConfig(
            fee_pct=fee_pct, slippage_pct=slippage_pct, entry="limit" if entry == "limit" else "open"
        ),
        initial_equity=equity,
        journal=journal,
        argv=invocation_argv.get(),
        use_cache=not no_cache,
        llm_cache=not no_llm_cache,
        baselines=not no_baselines,
        moments=frozen.meta.moments if frozen is not None else None,
        training_cutoff_ms=cutoff.ms,
    )
    console = stderr_console()
    source = frozen.source() if frozen is not None else None
    report = asyncio.run(_run_with_progress(console, settings, risk, request, source))
    for warning in report.warnings:
        console.print(f"warning: {warning}", style="bold yellow")
    for notice in report.notices:
        console.print(f"note: {notice}", style="yellow")
    # Kept for `rez audit BACKTEST_ID`, a partial result too.
    store_backtest(
        settings,
        request,
        report,
        profile=risk,
        cutoff=cutoff,
        tape=tape.resolve() if tape is not None else None,
        tape_hash=frozen.hash if frozen is not None else None,
    )
    payload = report.to_json()
    audited = None
    audit_exit = 0
    if audit and report.complete:
        from rez_cli.audit.run import AuditOptions
        from rez_cli.cli.audit_cmd import run_with_progress

        # --max-cost bounds the backtest and its audit together: the audit gets what is left.
        left = None if max_cost is None else max(0.0, max_cost - report.cost_usd)
        found = asyncio.run(
            run_with_progress(
                console, settings, report.journal, report.backtest_id, AuditOptions(max_cost_usd=left)
            )
        )
        audit_exit = found.exit_code
        audited = found.to_json()
        payload["audit"] = audited
    elif audit:
        console.print("note: no audit: the backtest did not finish", style="yellow")
    if json_output:
        print_json_line(payload)
    else:
        stdout_console().print(summary_view(payload))
        if audited is not None:
            from rez_cli.cli.audit_cmd import audit_view

            stdout_console().print(audit_view(audited))
    if report_path is not None:
        from rez_cli.backtest.report import write_report

        written = write_report(report, report_path)
        console.print(f"report written to {written}")
    # A whole backtest whose audit the budget cut short ends as the audit does.
    raise typer.Exit(int(report.exit_code) or int(audit_exit))


async def _run_with_progress(
    console: Console,
    settings: Settings,
    risk: RiskProfile,
    request: BacktestRequest,
    source: MarketSource | None = None,
) -> BacktestReport:
    """The backtest under a progress bar on stderr (drawn only on a terminal)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    from rez_cli.backtest.walk import run_backtest

    # markup=False: a phase or a cost is shown as it is, never read as Rich markup.
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[spent]}", markup=False),
    )
    with Bar(*columns, console=console, disable=not console.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(state: Progress) -> None:
            if state.phase not in tasks:
                tasks[state.phase] = bar.add_task(state.phase, total=state.total, spent="")
            spent = f"${state.cost_usd:.4f} · {state.llm_calls} calls, {state.cache_hits} cached"
            # The rules mode calls no model: a column of zeros would only be noise.
            idle = not (state.llm_calls or state.cache_hits or state.cost_usd)
            bar.update(tasks[state.phase], completed=state.done, spent="" if idle else spent)

        return await run_backtest(settings, risk, request, source=source, on_progress=on_progress)
