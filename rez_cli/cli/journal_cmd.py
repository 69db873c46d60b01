"""``rez journal``: keep the journal's size in hand.

``prune`` deletes old cycles (live ones, or whole backtests with ``--backtests``), after asking;
``vacuum`` gives the space the deleted rows took back to the disk. What was done goes to stdout,
questions and notes to stderr.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from rez_cli.cli.options import ConfigOption, JournalOption

app = typer.Typer(
    help="Keep the journal's size in hand: delete old cycles, give the space back.", no_args_is_help=True
)


@app.command("prune")
def prune(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="Delete cycles journaled before this moment: 2024-01-01, 2024-01-01T12:00 (UTC) or ms.",
            show_default=False,
        ),
    ],
    backtests: Annotated[
        bool,
        typer.Option(
            "--backtests",
            help="Delete backtests instead of live cycles: each whole, when all its cycles are that old.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking first.")] = False,
    journal: JournalOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete the live cycles journaled before a date, or with --backtests the backtests run before it.

    Their turns, tool calls, verdicts and scores go too, and the runs and payloads left unused.

    Asks before deleting, unless --yes. The file keeps its size: rez journal vacuum shrinks it.

    Example: rez journal prune --before 2024-01-01 --backtests
    """
    from rez_cli.cli.console import stderr_console, stdout_console
    from rez_cli.cli.traces_cmd import open_journal
    from rez_cli.errors import UsageError
    from rez_cli.market.candles import parse_time

    before_ms = parse_time(before, option="--before")
    with open_journal(journal, config) as opened:
        target = opened.prune_target(before_ms, backtests=backtests)
        what = _what(target.cycles, target.backtests, backtests_only=backtests)
        moment = _moment(before_ms)
        if not target.cycles:
            stdout_console().print(
                f"nothing to delete: no {what} journaled before {moment} in {opened.path}", soft_wrap=True
            )
            return
        question = f"delete {what} journaled before {moment} from {opened.path}?"
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"rez journal prune would {question.rstrip('?')}, and asks first",
                    hint="pass --yes to delete without asking",
                )
            # Asked on stderr and read from stdin: stdout carries only what was done.
            stderr_console().print(f"{question} [y/N] ", end="", soft_wrap=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                stderr_console().print("nothing deleted")
                return
        count = opened.prune(before_ms, backtests=backtests)
    parts = [
        _count(count.cycles, "backtest cycle" if backtests else "live cycle"),
        *(
            _count(number, noun)
            for number, noun in (
                (count.turns, "turn"),
                (count.tool_calls, "tool call"),
                (count.verdicts, "verdict"),
                (count.scores, "score"),
                (count.runs, "run"),
                (count.blobs, "stored payload"),
            )
            if number
        ),
    ]
    stdout_console().print(
        f"deleted {', '.join(parts)} from {opened.path}; rez journal vacuum gives the space back to the disk",
        soft_wrap=True,
    )


@app.command("vacuum")
def vacuum(journal: JournalOption = None, config: ConfigOption = None) -> None:
    """Give the space of deleted rows back to the disk: the journal is rewritten without it.

    Waits for a write under way to end; prints the journal's size before and after.

    Example: rez journal vacuum
    """
    from rez_cli.cli.console import stdout_console
    from rez_cli.cli.traces_cmd import open_journal

    with open_journal(journal, config) as opened:
        before, after = opened.vacuum()
    stdout_console().print(
        f"journal {opened.path}: {_size(before)} before, {_size(after)} after", soft_wrap=True
    )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _what(cycles: int, backtests: int, *, backtests_only: bool) -> str:
    """What a prune deletes, for its question; without cycles, the kind it found none of."""
    if not backtests_only:
        return _count(cycles, "live cycle") if cycles else "live cycle"
    return f"{_count(backtests, 'backtest')} ({_count(cycles, 'cycle')})" if cycles else "backtest"


def _moment(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d" if moment.time() == datetime.min.time() else "%Y-%m-%d %H:%M:%S UTC")


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:,} bytes"
