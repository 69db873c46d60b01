"""``rez arena``: models, prompts and profiles on one tape, against the built-in baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import (
    ConfigOption,
    JournalOption,
    JsonOption,
    max_cost_option,
    report_option,
    report_target,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from rez_cli.arena.run import ArenaSpec
    from rez_cli.tape import Tape


# The terminal's headers: the page's, shortened so a row fits 120 columns.
SHORT = {
    "return %": "ret %",
    "max DD %": "DD %",
    "win rate": "win",
    "hold rate": "hold",
    "fallback": "fallb.",
    "$/decision": "$/dec",
    "latency s": "lat s",
}


def leaderboard_view(payload: Mapping[str, Any]) -> RenderableType:
    """The leaderboard as a table (a row per contestant, and one per repeat under it), and its notes."""
    from rich.box import SIMPLE_HEAD
    from rich.console import Group
    from rich.text import Text

    from rez_cli.arena.report import COLUMNS, cell
    from rez_cli.display import DataTable, display_text

    header = display_text(
        f"{payload['symbol']} · {payload['timeframe']} · {payload['from']} → {payload['to']}"
        + (f" · tape {payload['tape_hash']}" if payload.get("tape_hash") else ""),
        "bold",
        multiline=False,
    )
    table = DataTable(header_style="bold", box=SIMPLE_HEAD, pad_edge=False)
    table.add_column("contestant", no_wrap=True)
    for title, _, _ in COLUMNS:
        table.add_column(SHORT.get(title, title), justify="right", no_wrap=True)
    table.add_column("Sharpe 95% CI", justify="right", no_wrap=True)

    def cells(row: Mapping[str, Any]) -> list[str]:
        found = [cell(row.get(key), pattern) for _, key, pattern in COLUMNS]
        interval = row.get("sharpe_ci")
        found.append(f"[{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "–")
        return found

    notes: list[RenderableType] = []
    for row in payload["leaderboard"]:
        table.add_row(row["name"], *cells(row))
        if row["repeats"] > 1:
            for run in row["runs"]:
                table.add_row(f"  #{run['repeat']} seed {run['seed']}", *cells(run))
        beats = row.get("beats") or {}
        if beats and not row["baseline"]:
            verdicts = " · ".join(
                f"{name} {'beaten' if verdict['beaten'] else 'not beaten'} "
                f"(p={cell(verdict['p_value'], '{:.3f}')})"
                for name, verdict in beats.items()
            )
            notes.append(display_text(f"{row['name']}: {verdicts}", multiline=False))
        if row["fallbacks"]:
            codes = ", ".join(f"{code} {rate:.0%}" for code, rate in row["fallbacks"].items())
            notes.append(display_text(f"{row['name']}: fallbacks {codes}", "yellow", multiline=False))
        for error in row["errors"]:
            notes.append(display_text(f"{row['name']}: {error}", "bold red", multiline=False))
        for stopped in row["stopped"]:
            notes.append(display_text(f"{row['name']}: stopped early ({stopped})", "yellow", multiline=False))
    footer = display_text(
        f"spent ${payload['spent_usd']:.4f} on {payload['calls']} model calls, "
        f"{payload['cache_hits']} answers from the caches",
        "dim",
        multiline=False,
    )
    parts: list[RenderableType] = [header, table, *notes, footer]
    if payload["budget_exceeded"]:
        parts.append(Text("incomplete: --max-cost stopped the contestants", style="bold yellow"))
    if payload["interrupted"]:
        parts.append(Text("incomplete: interrupted; a rerun resumes from the caches", style="bold yellow"))
    return Group(*parts)


def spec_of_tape(tape: Tape, journal: Path | None, argv: Sequence[str]) -> ArenaSpec:
    """The arena's market and moments: the tape's."""
    from rez_cli.arena.run import ArenaSpec

    meta = tape.meta
    return ArenaSpec(
        source=tape.source(),
        symbol=meta.symbol,
        timeframe=meta.timeframe,
        context_timeframes=list(meta.context_timeframes),
        start_ms=meta.moments[0] if meta.moments else meta.start_ms,
        end_ms=meta.end_ms,
        every=meta.every,
        moments=list(meta.moments),
        tape_hash=tape.hash,
        journal=journal,
        argv=argv,
    )


def arena(
    tape: Annotated[
        Path, typer.Argument(help="The tape every contestant walks (rez tape record).", dir_okay=False)
    ],
    contestant: Annotated[
        list[str] | None,
        typer.Option(
            "--contestant",
            help="NAME=MODEL[,prompt=FILE][,profile=NAME|PATH]; MODEL is a model of the configured "
            "endpoint, or rules, always-hold or buy-and-hold (those three always run). Repeatable.",
            show_default=False,
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, max=100, help="Walks of each model, seeds [llm] seed, +1, ...")
    ] = 1,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Model walks at once (cycles stay in order).")
    ] = 4,
    max_cost: Annotated[
        float | None,
        max_cost_option(
            "Stop every contestant before the model calls together could cost more US$ than this."
        ),
    ] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
    journal: JournalOption = None,
    report_path: Annotated[
        Path | None, report_option("an HTML page: the equity curves side by side and the leaderboard")
    ] = None,
) -> None:
    """Rank models, prompts and profiles on one tape, against rules, always-hold and buy-and-hold.

    Example: rez arena btc.tape --contestant mini=gpt-4o-mini --contestant terse=gpt-4o-mini,prompt=terse.txt

    Each contestant has its own answer cache: a rerun asks no model anything and prints the same
    leaderboard, and one cut short (Ctrl-C, --max-cost) resumes from where it stopped.

    Exit codes: 0 done (a contestant whose endpoint failed keeps its row) · 2 usage, config or tape
    error · 3 stopped by --max-cost · 130 interrupted (the finished cycles are shown).
    """
    import asyncio

    from rez_cli.arena.board import arena_json, leaderboard
    from rez_cli.arena.contestants import builtin_baselines, check_names, check_prompt, parse_contestant
    from rez_cli.arena.run import run_arena
    from rez_cli.cli.console import invocation_argv, print_json_line, stderr_console, stdout_console
    from rez_cli.config import paths
    from rez_cli.config.settings import RiskProfile, load_profile, load_settings
    from rez_cli.errors import ExitCode

    entrants = [parse_contestant(text) for text in contestant or []]
    given = {c.name: c for c in entrants}
    contestants = [b for b in builtin_baselines() if b.name not in given] + entrants
    check_names(contestants)
    settings = load_settings(config).value
    profiles: dict[str | None, RiskProfile] = {}

    def profile_of(name: str | None) -> RiskProfile:
        if name not in profiles:
            profiles[name] = load_profile(name or settings.risk.profile).value
        return profiles[name]

    for entrant in contestants:
        # A bad profile or prompt template is refused before any model is asked anything.
        check_prompt(entrant, profile_of(entrant.profile))
    if report_path is not None:
        report_path = report_target(report_path)
    # The tape's timeframes, warm-up and market seed: every contestant sees what was recorded.
    from rez_cli.tape import load_tape

    frozen = load_tape(paths.expand_user(tape))
    settings = frozen.apply(settings)
    spec = spec_of_tape(frozen, journal, invocation_argv.get())
    console = stderr_console()

    async def go() -> Any:
        try:
            return await run_arena(
                settings,
                profile_of,
                spec,
                contestants,
                repeats=repeats,
                concurrency=concurrency,
                max_cost_usd=max_cost,
            )
        finally:
            await spec.source.close()

    result = asyncio.run(go())
    board = leaderboard(result)
    payload = arena_json(result, board)
    if json_output:
        print_json_line(payload)
    else:
        stdout_console().print(leaderboard_view(payload))
    if report_path is not None:
        from rez_cli.arena.report import write_report

        console.print(f"report written to {write_report(result, board, report_path)}")
    code = ExitCode.OK
    if result.interrupted:
        code = ExitCode.INTERRUPTED
    elif result.budget_exceeded:
        code = ExitCode.HOLD_BY_FAILURE
    raise typer.Exit(int(code))
