"""``rez traces``: the journaled decision cycles, listed, exported and summarised.

Every command opens the journal through ``open_journal`` and takes ``--journal`` and ``--config``;
a new command is one more function decorated with ``@app.command``. What was asked for (a table, a
trace, a replay) goes to stdout; ``--json`` prints JSON there instead and nothing else. Everything
shown from the journal goes through ``rez_cli.display``: a stored rationale is data, not markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import ConfigOption, DataOption, JournalOption, JsonOption, ProfileOption
from rez_cli.formatting import share

if TYPE_CHECKING:
    from rich.console import RenderableType

    from rez_cli.cycle.replay import Replay
    from rez_cli.display import DataTable
    from rez_cli.journal.store import Journal

app = typer.Typer(help="List, export and summarise the journaled decision cycles.", no_args_is_help=True)

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Only cycles started then or later: 2021-03-01, 2021-03-01T12:00 (UTC) or ms.",
        show_default=False,
    ),
]
TRACE_ID_WIDTH = 12


def open_journal(journal: Path | None, config: Path | None, *, create: bool = False) -> Journal:
    """The journal a command reads: ``--journal``, else ``[journal] path`` in the config, else the default.

    Secrets from the settings are registered, so a command that writes never stores them.

    Args:
        journal: the ``--journal`` option.
        config: the ``--config`` option.
        create: start an empty journal when there is none (writers); readers get ``DataNotFound``.

    Raises:
        ConfigError: the config is invalid, or the journal cannot be opened.
        DataNotFound: no journal at that path and ``create`` is false.
    """
    from rez_cli.config.settings import load_settings
    from rez_cli.journal.session import open_journal as open_configured

    return open_configured(load_settings(config).value, journal, create=create)


def _symbol(symbol: str | None) -> str | None:
    from rez_cli.symbols import normalize_symbol

    return normalize_symbol(symbol) if symbol is not None else None


def _since_ms(since: str | None) -> int | None:
    if not since:
        return None
    from rez_cli.market.candles import parse_time

    return parse_time(since, option="--since")


def _when(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError, TypeError):
        return str(ts_ms)  # a damaged row still lists, showing what it holds


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _table(*columns: str, right: tuple[str, ...] = ()) -> DataTable:
    from rez_cli.display import DataTable

    table = DataTable(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


@app.command("list")
def list_traces(
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", "-s", help="Only this market, e.g. BTC/USDT.", show_default=False),
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", "-a", help="Only buy, sell or hold.", show_default=False)
    ] = None,
    since: SinceOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="At most this many cycles.")
    ] = 20,
    journal: JournalOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """List journaled cycles, newest first; a run that was killed shows as incomplete.

    Example: rez traces list --symbol BTC/USDT --action buy --since 2024-01-01
    """
    from rez_cli.cli.console import print_json_line, stderr_console, stdout_console

    with open_journal(journal, config) as opened:
        rows = opened.list_cycles(
            symbol=_symbol(symbol), action=action, since_ms=_since_ms(since), limit=limit
        )
    if json_output:
        for row in rows:
            print_json_line(row)
        return
    if not rows:
        stderr_console().print(f"no journaled cycle matches in {opened.path}")
        return
    stdout_console().print(list_table(rows))


def list_table(rows: list[dict[str, Any]]) -> DataTable:
    """The cycles of ``Journal.list_cycles``, one row each."""
    table = _table(
        "time (UTC)",
        "trace",
        "symbol",
        "mode",
        "model",
        "action",
        "source",
        "error",
        "conf",
        "cost",
        "turns",
        right=("conf", "cost", "turns"),
    )
    for row in rows:
        finished = row["finished_ms"] is not None
        table.add_row(
            _when(row["started_ms"]),
            str(row["trace_id"])[:TRACE_ID_WIDTH],
            str(row["symbol"]),
            str(row["mode"] or "-"),
            str(row["model"] or "-"),
            str(row["action"] if finished else row["status"]),
            str(row["source"] or "-"),
            str(row["error"] or ""),
            "-" if row["confidence"] is None else f"{row['confidence']:.2f}",
            _cost(row["cost_usd"]),
            str(row["turn_count"]),
        )
    return table


@app.command("export")
def export(
    trace_id: Annotated[str, typer.Argument(help="A trace id, or enough of its start to be unique.")],
    journal: JournalOption = None,
    config: ConfigOption = None,
) -> None:
    """Print everything journaled about one cycle as one JSON object on stdout.

    Example: rez traces export 3f9a1c2b | jq .decision
    """
    from rez_cli.cli.console import print_json_line

    with open_journal(journal, config) as opened:
        print_json_line(opened.get_cycle(trace_id))


@app.command("stats")
def stats(
    since: SinceOption = None,
    journal: JournalOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Summarise the journal: hold and failure rates, failures by code, repairs by model, cost, turns.

    Live cycles and backtest cycles are summed up apart (--json: under "live" and "backtest" too).

    Example: rez traces stats --since 2024-06-01
    """
    from rez_cli.cli.console import print_json_line, stdout_console

    with open_journal(journal, config) as opened:
        summary = opened.stats(since_ms=_since_ms(since))
    if json_output:
        print_json_line(summary)
        return
    console = stdout_console()
    # A section for each kind of cycle the journal holds (an empty journal shows its live one).
    kinds = [kind for kind in ("live", "backtest") if summary[kind]["cycles"]] or ["live"]
    tables = [(f"{kind} {title}", table) for kind in kinds for title, table in _stats_tables(summary[kind])]
    # Titles on their own line: a Rich table title wraps at the width of a narrow table.
    for index, (title, table) in enumerate(tables):
        if index:
            console.print()
        console.print(title, style="bold")
        console.print(table)


def _stats_tables(summary: dict[str, Any]) -> list[tuple[str, DataTable]]:
    overview = _table("measure", "value", right=("value",))
    average_turns = summary["avg_turns"]
    for name, value in (
        ("cycles", str(summary["cycles"])),
        ("finished", str(summary["finished"])),
        ("incomplete", str(summary["incomplete"])),
        ("hold rate", share(summary["hold_rate"])),
        ("failure rate", share(summary["failure_rate"])),
        ("average cost", "n/a" if summary["avg_cost_usd"] is None else _cost(summary["avg_cost_usd"])),
        ("average turns", "n/a" if average_turns is None else f"{average_turns:.2f}"),
    ):
        overview.add_row(name, value)
    tables = [("cycles", overview)]
    if summary["failures"]:
        failures = _table("error", "count", "rate", right=("count", "rate"))
        for code, item in summary["failures"].items():
            failures.add_row(str(code), str(item["count"]), share(item["rate"]))
        tables.append(("failures by error code", failures))
    if summary["repair_rate_by_model"]:
        repairs = _table(
            "model",
            "cycles",
            "repaired",
            "rate",
            right=("cycles", "repaired", "rate"),
        )
        for model, item in summary["repair_rate_by_model"].items():
            repairs.add_row(str(model), str(item["cycles"]), str(item["repaired"]), share(item["rate"]))
        tables.append(("repairs by model", repairs))
    if summary["by_mode"]:
        modes = _table("mode", "cycles", right=("cycles",))
        for mode, count in summary["by_mode"].items():
            modes.add_row(str(mode), str(count))
        tables.append(("cycles by mode", modes))
    return tables


@app.command("show")
def show(
    trace_id: Annotated[str, typer.Argument(help="The trace id, or a unique prefix of it.")],
    journal: JournalOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a journaled cycle the way it was shown when it ran: context, turns, tool calls, decision.

    Example: rez traces show 7e6ebbd1
    """
    from rez_cli.cli.console import stdout_console
    from rez_cli.cli.render import trace_view

    record = open_journal(journal, config).get_cycle(trace_id)
    stdout_console().print(trace_view(record))


@app.command("replay")
def replay(
    trace_id: Annotated[str, typer.Argument(help="The trace id, or a unique prefix of it.")],
    profile: ProfileOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Also run the recorded moment against this model (calls it; journaled as a new cycle).",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
    journal: JournalOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Parse and validate a cycle's recorded model output again, with today's code and a profile.

    Shows what a change (parser, policy, profile) would have done to a past decision; no model is
    called unless --model asks to run the same moment against another model.

    Example: rez traces replay 7e6ebbd1 --profile conservative
    """
    import asyncio

    from pydantic import ValidationError

    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.config.settings import RiskProfile, load_profile, load_settings
    from rez_cli.cycle.replay import replay as replay_record
    from rez_cli.errors import UsageError

    opened = open_journal(journal, config)
    record = opened.get_cycle(trace_id)
    if profile:
        chosen = load_profile(profile).value
    else:
        try:
            chosen = RiskProfile.model_validate(record.get("profile"))
        except ValidationError:
            raise UsageError(
                f"the risk profile journaled with trace {record['trace_id']} does not validate",
                hint="replay it with --profile NAME",
            ) from None
    outcome = replay_record(record, chosen)
    rerun: dict[str, Any] | None = None
    if model is not None:
        from rez_cli.cycle.run import DecideRequest, run_decide
        from rez_cli.reasoning.registry import MODEL_MODE

        exchange = record.get("exchange")
        if data is None and exchange in (None, "files", "memory"):
            raise UsageError(
                f"trace {record['trace_id']} read candles from files",
                hint="pass --data PATH with the same files to run it again",
            )
        settings = load_settings(config).value
        request = DecideRequest(
            symbols=[record["symbol"]],
            exchange=None if data is not None else exchange,
            data=data,
            model=model,
            mode=MODEL_MODE,
            as_of_ms=record["as_of_ms"],
            journal=opened.path,
            argv=["traces", "replay", trace_id, "--model", model],
        )
        run = asyncio.run(run_decide(settings, chosen, request))
        decision = run.results[0].decision
        rerun = decision.model_dump(mode="json") if decision is not None else None
    if json_output:
        print_json_line(
            {
                "trace_id": outcome.trace_id,
                "profile": chosen.name,
                "before": outcome.before,
                "after": outcome.after,
                "changed": outcome.changed,
                "rerun": rerun,
            }
        )
        return
    stdout_console().print(replay_view(outcome, chosen.name, model=model, rerun=rerun))


def replay_view(
    outcome: Replay, profile: str, *, model: str | None = None, rerun: dict[str, Any] | None = None
) -> RenderableType:
    """The recorded decision beside the replayed one (and the rerun with ``model``), field by field."""
    from rich.console import Group

    from rez_cli.display import display_text

    table = _table("", "recorded", "replayed", *(["with " + model] if model else []))
    for key in ("action", "entry_price", "tp_price", "sl_price", "leverage", "size_pct", "source", "error"):
        row = [key, str(outcome.before.get(key)), str(outcome.after.get(key))]
        if model:
            row.append(str((rerun or {}).get(key)))
        table.add_row(*row)
    header = display_text(
        f"trace {outcome.trace_id} · profile {profile} · " + ("CHANGED" if outcome.changed else "same"),
        multiline=False,
    )
    return Group(header, table)
