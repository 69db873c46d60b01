"""``rez audit``: how far a stored backtest's result can be trusted, graded A–D."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import ConfigOption, JournalOption, JsonOption, max_cost_option

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from rez_cli.audit.run import AuditOptions, AuditReport
    from rez_cli.config.settings import Settings


SampleOption = Annotated[
    int,
    typer.Option(
        "--sample", min=1, max=100_000, help="Cycles replayed on the true candles and on each altered copy."
    ),
]
ProbesOption = Annotated[
    int,
    typer.Option(
        "--probes", min=0, max=100, help="Real windows the memorisation probe asks the model to continue."
    ),
]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the sample, the probe's windows and its random walks.")
]


def _pct(value: Any, signed: bool = True) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def _ratio(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


def audit_view(audit: Mapping[str, Any]) -> RenderableType:
    """The audit as the grade and its reasons, then one small table per check."""
    from rich.console import Group
    from rich.text import Text

    from rez_cli.display import DataTable, display_text

    style = {"A": "bold green", "B": "bold", "C": "bold yellow", "D": "bold red"}.get(audit["grade"], "bold")
    cutoff = audit["training_cutoff"]
    parts: list[RenderableType] = [
        Text.assemble(
            ("grade ", "bold"),
            (audit["grade"], style),
            display_text(
                f" · backtest {audit['backtest_id']} · {audit['symbol']} · {audit['mode']}"
                + (f" ({audit['model']})" if audit.get("model") else "")
                + f" · {audit['from'][:10]} → {audit['to'][:10]}",
                multiline=False,
            ),
        )
    ]
    parts += [display_text(f"  {reason}", multiline=False) for reason in audit["reasons"]]

    split = audit["cutoff_split"]
    table = DataTable(header_style="bold", title=None)
    for column in ("training cutoff", "cycles", "trades", "return", "buy & hold", "Sharpe", "win rate"):
        table.add_column(column, justify="left" if column == "training cutoff" else "right")
    for side in ("before", "after"):
        found = split.get(side)
        if found:
            win = found.get("win_rate")
            table.add_row(
                side,
                str(found["cycles"]),
                str(found["trades"]),
                _pct(found["total_return_pct"]),
                _pct(found.get("buy_and_hold_return_pct")),
                _ratio(found.get("sharpe")),
                f"{win * 100:.0f}%" if isinstance(win, int | float) else "n/a",
            )
    parts.append(
        display_text(
            f"training cutoff: {cutoff['date'] or 'none'} ({cutoff['source']})"
            + (
                f" · Sharpe decay {_pct(split['sharpe_decay_pct'], signed=False)}"
                if split.get("sharpe_decay_pct") is not None
                else ""
            ),
            multiline=False,
        )
    )
    if split.get("before") or split.get("after"):
        parts.append(table)

    regimes = audit.get("regimes")
    if regimes:
        table = DataTable(header_style="bold")
        for column in ("regime", "windows", "return", "buy & hold", "excess"):
            table.add_column(column, justify="left" if column == "regime" else "right")
        for name in ("bull", "bear", "sideways"):
            found = regimes.get(name)
            if found:
                table.add_row(
                    name,
                    str(found["windows"]),
                    _pct(found["total_return_pct"]),
                    _pct(found["buy_and_hold_return_pct"]),
                    _pct(found.get("excess_pct")),
                )
        parts.append(
            display_text(
                f"regimes: {regimes['window_days']}-day windows, "
                f"buy & hold beyond ±{regimes['threshold_pct']:g}%",
                multiline=False,
            )
        )
        parts.append(table)

    altered = audit["altered"]
    if altered["results"]:
        table = DataTable(header_style="bold")
        for column in ("copy", "changed", "trades", "hit rate", "edge a cycle", "failed"):
            table.add_column(column, justify="left" if column == "copy" else "right")
        for row in altered["results"]:
            hit = row.get("hit_rate")
            table.add_row(
                f"{row['copy']}: {altered['copies'][row['copy']]}",
                f"{row['decisions_changed']}/{row['cycles']}",
                str(row["trades"]),
                f"{hit * 100:.0f}%" if isinstance(hit, int | float) else "n/a",
                f"{row['edge_pct']:+.3f}%",
                str(row["errors"]),
            )
        parts.append(
            display_text(
                f"altered copies: {altered['sampled']} cycles replayed alone (seed {altered['seed']}), "
                f"each decision scored over the next {altered['horizon']} candles",
                multiline=False,
            )
        )
        parts.append(table)

    probe = audit["probe"]
    if "skipped" in probe:
        parts.append(display_text(f"memorisation probe: skipped ({probe['skipped']})", multiline=False))
    else:
        line = (
            f"memorisation probe: {probe['answered']} of {len(probe['windows'])} windows answered, "
            f"{probe['remembered']} closer than the naive forecast and "
            f"95% of {probe['random_walks']} random walks"
        )
        parts.append(display_text(line, multiline=False))
        for window in probe["windows"]:
            parts.append(
                display_text(
                    f"  {window['asked_from'][:16]}: model {_pct(window['model_error_pct'], signed=False)}, "
                    f"naive {_pct(window['naive_error_pct'], signed=False)}, random walk median "
                    f"{_pct(window['random_walk_median_error_pct'], signed=False)}"
                    + (f" ({window['error']})" if window.get("error") else ""),
                    multiline=False,
                )
            )
    return Group(*parts)


def audit(
    backtest_id: Annotated[
        str, typer.Argument(help="The backtest's id, as rez backtest prints it (bt-...).")
    ],
    sample: SampleOption = 50,
    probes: ProbesOption = 3,
    seed: SeedOption = 0,
    price_scale: Annotated[
        float,
        typer.Option(
            "--price-scale", min=0.001, max=1000, help="What the rescaled copy multiplies prices by."
        ),
    ] = 1.37,
    shift_years: Annotated[
        int,
        typer.Option(
            "--shift-years", min=-50, max=50, help="Whole years the shifted copy moves the dates by."
        ),
    ] = -4,
    horizon: Annotated[
        int,
        typer.Option("--horizon", min=1, max=10_000, help="Candles after a replayed decision that score it."),
    ] = 24,
    max_cost: Annotated[
        float | None,
        max_cost_option(
            "Refuse any model call that could take the audit's calls (replays and probe together) "
            "past this many US$ (needs the model's price in \\[llm.prices]); answers from the "
            "cache cost nothing, so a rerun finishes what a stopped audit left."
        ),
    ] = None,
    config: ConfigOption = None,
    journal: JournalOption = None,
    json_output: JsonOption = False,
) -> None:
    """Grade how far a backtest's result can be trusted (A–D), with the reasons that set the grade.

    Example: rez audit bt-0123456789ab

    Splits the backtest at the model's training cutoff ([llm.cutoffs]) and into bull, bear and
    sideways weeks; replays a sample of its cycles on copies with the symbol renamed, the prices
    rescaled and the dates shifted; asks the model to continue real windows of closes (the
    memorisation probe). The grade is stored with the backtest; auditing again replaces it.

    Exit codes: 0 audited · 2 no such backtest, usage, config or data error · 3 --max-cost stopped
    the model calls (the grade stands on what was done, and says so) · 130 interrupted.
    """
    import asyncio

    from rez_cli.audit.run import AuditOptions
    from rez_cli.cli.console import stderr_console
    from rez_cli.config.settings import load_settings

    settings = load_settings(config).value
    options = AuditOptions(
        sample=sample,
        probes=probes,
        seed=seed,
        price_scale=price_scale,
        shift_years=shift_years,
        horizon=horizon,
        max_cost_usd=max_cost,
    )
    found = asyncio.run(run_with_progress(stderr_console(), settings, journal, backtest_id, options))
    print_audit(found, json_output=json_output)
    raise typer.Exit(int(found.exit_code))


def print_audit(found: AuditReport, *, json_output: bool) -> None:
    from rez_cli.cli.console import print_json_line, stdout_console

    if json_output:
        print_json_line(found.to_json())
    else:
        stdout_console().print(audit_view(found.to_json()))


async def run_with_progress(
    console: Console, settings: Settings, journal: Path | None, backtest_id: str, options: AuditOptions
) -> AuditReport:
    """The audit under a progress bar on stderr (drawn only on a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from rez_cli.audit.run import AuditProgress, audit_stored

    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Bar(*columns, console=console, disable=not console.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(state: AuditProgress) -> None:
            if state.phase not in tasks:
                tasks[state.phase] = bar.add_task(state.phase, total=state.total)
            bar.update(tasks[state.phase], completed=state.done)

        return await audit_stored(settings, journal, backtest_id, options, on_progress=on_progress)
