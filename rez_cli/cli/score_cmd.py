"""``rez score``: what became of the journaled decisions, by symbol, model, mode and profile."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import ConfigOption, DataOption, JournalOption, JsonOption, NoCacheOption
from rez_cli.formatting import share

if TYPE_CHECKING:
    from rich.console import RenderableType

    from rez_cli.display import DataTable


def _table(*columns: str, right: tuple[str, ...] = ()) -> DataTable:
    from rez_cli.display import DataTable

    table = DataTable(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def _r(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}R"


def report_view(report: Mapping[str, Any]) -> RenderableType:
    """The JSON report as a header, the table by group, and the calibration table."""
    from rich.console import Group
    from rich.text import Text

    from rez_cli.clock import iso

    scores = report["scores"]
    simulated = sum(bool(score["simulated"]) for score in scores)
    header = Text.assemble(
        f"{len(scores)} decision{'s' if len(scores) != 1 else ''} scored ({report['new']} new), "
        f"{len(report['pending'])} pending",
        " · horizon ",
        f"{report['horizon']} candles of each decision's timeframe",
        f" · fee {report['fee_pct']:g}% per side",
        (f" · {simulated} on the SIMULATED market", "bold red") if simulated else "",
    )
    groups = _table(
        "market",
        "strategy",
        "profile",
        "n",
        "TP/SL/neither",
        "hit rate",
        "avg R",
        "total R",
        "holds",
        "missed R",
        right=("n", "TP/SL/neither", "hit rate", "avg R", "total R", "holds", "missed R"),
    )
    for group in report["groups"]:
        groups.add_row(
            f"{group['symbol']}" + (f" {group['exchange']}" if group["exchange"] else ""),
            f"{group['mode'] or '-'}" + (f" ({group['model']})" if group["model"] else ""),
            f"{group['profile'] or '-'}",
            str(group["decisions"]),
            f"{group['tp_first']}/{group['sl_first']}/{group['neither']}",
            share(group["hit_rate"]),
            _r(group["avg_r"]),
            _r(group["total_r"]) if group["trades"] else "n/a",
            str(group["holds"]),
            _r(group["avg_missed_r"]),
        )
    calibration = report["calibration"]
    buckets = _table(
        "confidence",
        "trades",
        "hits",
        "hit rate",
        "mean conf",
        right=("trades", "hits", "hit rate", "mean conf"),
    )
    for bucket in calibration["buckets"]:
        buckets.add_row(
            f"{bucket['low']:.1f}-{bucket['high']:.1f}",
            str(bucket["count"]),
            str(bucket["hits"]),
            share(bucket["hit_rate"]),
            "n/a" if bucket["mean_confidence"] is None else f"{bucket['mean_confidence']:.2f}",
        )
    brier = calibration["brier"]
    footer = Text(
        "hit rate = TP / (TP + SL); 'neither' is no verdict and stays out of it and of the calibration · "
        "missed R: the better of a naive long and short (±1 ATR) a hold passed up · "
        f"Brier score {'n/a' if brier is None else f'{brier:.3f}'} over {calibration['count']} trades "
        "(0 is perfect, 0.25 is a coin flip)",
        style="dim",
    )
    parts: list[RenderableType] = [header]
    pending = report["pending"]
    if pending:
        first_due = iso(min(item["due_ms"] for item in pending))
        parts.append(
            Text(
                f"pending: {len(pending)} decision{'s' if len(pending) != 1 else ''} whose horizon has not "
                f"passed yet, the first final at {first_due}",
                style="dim",
            )
        )
    if scores:
        parts += [
            Text(""),
            Text("by symbol, model, mode and profile", style="bold"),
            groups,
            Text(""),
            Text("calibration: confidence against hit rate", style="bold"),
            buckets,
            footer,
        ]
    return Group(*parts)


def score(
    horizon: Annotated[
        int,
        typer.Option(
            "--horizon",
            min=1,
            max=100_000,  # 11 years of 1h candles: more would only overflow the time arithmetic
            help="Judge each decision on this many candles of its primary timeframe.",
        ),
    ] = 24,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only decisions whose market time is then or later: 2024-06-01, 2024-06-01T12:00 "
            "(UTC) or ms.",
            show_default=False,
        ),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", "-s", help="Only this market, e.g. BTC/USDT.", show_default=False),
    ] = None,
    data: DataOption = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            "-e",
            help="Fetch what came after from this ccxt exchange (or 'sim'). "
            "Default: the exchange each decision was made on.",
            show_default=False,
        ),
    ] = None,
    fee_pct: Annotated[
        float,
        typer.Option(
            "--fee-pct", min=0, max=10, help="Fee per fill, entry and exit alike, in % of its notional."
        ),
    ] = 0.1,
    force: Annotated[
        bool, typer.Option("--force", help="Judge again decisions already scored with this horizon and fee.")
    ] = False,
    no_cache: NoCacheOption = False,
    journal: JournalOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Judge journaled decisions on the candles after them: TP or SL first, R after fees, calibration.

    Example: rez score --horizon 24 --since 2024-06-01

    Live decisions only (backtest cycles are scored by the backtest). A decision whose horizon has
    not elapsed is pending and judged by a later run; final scores are stored in the journal, and
    the model sees its last decision's score in its memory.

    Exit codes: 0 done (pending decisions included) · 2 usage, config or data error, or some decision
    whose candles could not be had (the others are still scored).
    """
    import asyncio

    from rez_cli.cli.console import print_json_line, stderr_console, stdout_console
    from rez_cli.cli.traces_cmd import open_journal
    from rez_cli.config.settings import load_settings
    from rez_cli.market.candles import parse_time
    from rez_cli.scoring.run import ScoreRequest, score_journal
    from rez_cli.symbols import normalize_symbol

    request = ScoreRequest(
        horizon=horizon,
        fee_pct=fee_pct,
        since_ms=parse_time(since, option="--since") if since else None,
        symbol=normalize_symbol(symbol) if symbol is not None else None,
        exchange=exchange,
        data=Path(data) if data is not None else None,
        force=force,
        use_cache=not no_cache,
    )
    settings = load_settings(config).value
    with open_journal(journal, config) as opened:
        report = asyncio.run(score_journal(opened, settings, request))
    console = stderr_console()
    for failure in report.failures:
        console.print(f"rez: cannot score {failure.trace_id} ({failure.symbol}): {failure.message}")
    payload = report.to_json()
    if json_output:
        print_json_line(payload)
    elif not report.scores and not report.pending:
        if not report.failures:
            console.print(f"no live decision to score in {report.journal}")
    else:
        stdout_console().print(report_view(payload))
    raise typer.Exit(int(report.exit_code))
