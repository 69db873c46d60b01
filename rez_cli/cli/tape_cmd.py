"""``rez tape``: freeze what a run sees into one file, and look inside one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import (
    ConfigOption,
    DataOption,
    ExchangeOption,
    JournalOption,
    JsonOption,
    TimeframeOption,
    TimeframesOption,
    writable_path,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from rez_cli.market.source import MarketSource
    from rez_cli.tape import Tape

app = typer.Typer(
    help="Tapes: the candles, moments and settings of a run frozen in one content-addressed file.",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path, typer.Option("--out", "-o", help="The tape file to write.", dir_okay=False, show_default=False)
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")]


def tape_json(tape: Tape, path: Path | None = None) -> dict[str, Any]:
    """What ``--json`` prints about a tape: its hash, meta and candle counts."""
    from rez_cli.clock import iso

    meta = tape.meta
    payload: dict[str, Any] = {"path": str(path)} if path is not None else {}
    payload |= {
        "hash": tape.hash,
        "symbol": meta.symbol,
        "exchange": meta.exchange,
        "simulated": meta.simulated,
        "timeframe": meta.timeframe,
        "context_timeframes": list(meta.context_timeframes),
        "from": iso(meta.start_ms),
        "to": iso(meta.end_ms),
        "moments": len(meta.moments),
        "candles": {timeframe: len(frame) for timeframe, frame in tape.frames.items()},
        "meta": meta.to_json(),
    }
    return payload


def tape_view(tape: Tape, title: str, *, verified: bool) -> RenderableType:
    """A tape under ``title``: a header, its hash, and a table of candles per timeframe."""
    from rich.console import Group
    from rich.text import Text

    from rez_cli.clock import iso
    from rez_cli.display import DataTable, display_text

    meta = tape.meta
    header = Text.assemble(
        display_text(meta.symbol, "bold", multiline=False),
        display_text(f" on {meta.exchange}", multiline=False),
        (" (SIMULATED market)", "bold red") if meta.simulated else "",
        display_text(
            f" · {meta.timeframe} (context {', '.join(meta.context_timeframes)})"
            f" · {iso(meta.start_ms)} → {iso(meta.end_ms)}",
            multiline=False,
        ),
    )
    how = {"record": "a regular grid", "journal": "live cycles' moments", "altered": "an altered copy"}
    details = display_text(
        f"{len(meta.moments)} moments ({how.get(meta.origin, meta.origin)}"
        + (f", a cycle every {meta.every} candles" if meta.origin == "record" and meta.every > 1 else "")
        + f") · warm-up {meta.warmup} candles · made {iso(meta.created_ms)}",
        multiline=False,
    )
    hash_line = Text.assemble(
        display_text(f"hash {tape.hash}", multiline=False), (" (verified)", "green") if verified else ""
    )
    table = DataTable(header_style="bold")
    for column, justify in (("timeframe", "left"), ("candles", "right"), ("first", "left"), ("last", "left")):
        table.add_column(column, justify=justify)
    for timeframe, frame in tape.frames.items():
        first = iso(int(frame["timestamp"].iloc[0])) if len(frame) else "-"
        last = iso(int(frame["timestamp"].iloc[-1])) if len(frame) else "-"
        table.add_row(timeframe, str(len(frame)), first, last)
    return Group(display_text(title, "dim", multiline=False), header, details, hash_line, table)


def _target(out: Path, force: bool) -> Path:
    from rez_cli.errors import UsageError

    # Before any candle is fetched: an existing file or a missing folder must not cost a whole download.
    target = writable_path(out, "the tape")
    if target.exists() and not force:
        raise UsageError(f"{target} exists: not overwriting it", hint="use --force to replace it")
    return target


def _write_tape(
    open_market: Callable[[], MarketSource],
    capture: Callable[[MarketSource], Awaitable[Tape]],
    target: Path,
    *,
    force: bool,
    json_output: bool,
) -> None:
    """Capture a tape from the market ``open_market`` opens (closed afterwards, whatever happens),
    write it to ``target`` and show what was written."""
    import asyncio

    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.tape import save_tape

    async def go() -> Tape:
        # A ccxt source serves one event loop: it is opened, used and closed within this one.
        source = open_market()
        try:
            return await capture(source)
        finally:
            await source.close()

    tape = asyncio.run(go())
    save_tape(tape, target, overwrite=force)
    if json_output:
        print_json_line(tape_json(tape, target))
    else:
        stdout_console().print(tape_view(tape, f"tape written to {target}", verified=False))


@app.command("record")
def record(
    symbol: Annotated[str, typer.Argument(help="The symbol, e.g. BTC/USDT.")],
    from_: Annotated[
        str,
        typer.Option("--from", help="First moment a cycle stands at (2021-01-01, UTC).", show_default=False),
    ],
    to: Annotated[str, typer.Option("--to", help="Last moment (UTC).", show_default=False)],
    out: OutOption,
    every: Annotated[
        int, typer.Option("--every", min=1, help="One cycle moment every N closed candles of the timeframe.")
    ] = 1,
    timeframe: TimeframeOption = None,
    timeframes: TimeframesOption = None,
    exchange: ExchangeOption = None,
    data: DataOption = None,
    force: ForceOption = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Freeze the candles a backtest over a span would see, warm-up included, and print the tape's hash.

    Example: rez tape record BTC/USDT --exchange sim --from 2021-01-01 --to 2021-03-01 -o btc.tape

    The moments are those `rez backtest --from --to --every` walks; `rez backtest --tape FILE`
    walks them again, from the file alone.
    """
    from rez_cli.config.settings import load_settings
    from rez_cli.market.candles import parse_time
    from rez_cli.market.view import open_source
    from rez_cli.symbols import normalize_symbol
    from rez_cli.tape import record_tape
    from rez_cli.timeframes import parse_timeframes

    symbol = normalize_symbol(symbol)
    start_ms = parse_time(from_, option="--from", past=True)
    end_ms = parse_time(to, option="--to", past=True)
    target = _target(out, force)
    settings = load_settings(config).value
    _write_tape(
        lambda: open_source(settings, exchange=exchange, data=data, now_ms=end_ms),
        lambda source: record_tape(
            settings,
            source,
            symbol,
            start_ms=start_ms,
            end_ms=end_ms,
            every=every,
            timeframe=timeframe,
            context_timeframes=parse_timeframes(timeframes) if timeframes else None,
        ),
        target,
        force=force,
        json_output=json_output,
    )


@app.command("from-journal")
def from_journal(
    since: Annotated[
        str, typer.Option("--since", help="The first live cycle's moment to take (2026-01-01, UTC).")
    ],
    out: OutOption,
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", help="The symbol; needed when the journal's live cycles are of several."),
    ] = None,
    timeframe: TimeframeOption = None,
    timeframes: TimeframesOption = None,
    exchange: ExchangeOption = None,
    data: DataOption = None,
    journal: JournalOption = None,
    force: ForceOption = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make a tape of the moments live decide cycles ran at: a benchmark no model can have memorised.

    Example: rez tape from-journal --since 2026-01-01 --symbol BTC/USDT -o live.tape

    The moments are the live cycles' (backtests' cycles are left out), each once; the candles come
    from --exchange or --data, else from where those cycles ran. A tape holds one symbol: with
    several in the journal, choose one with --symbol and make one tape per symbol.
    """
    from rez_cli.config.settings import load_settings
    from rez_cli.journal.session import open_journal
    from rez_cli.market.candles import parse_time
    from rez_cli.symbols import normalize_symbol
    from rez_cli.tape import journal_moments, tape_from_journal
    from rez_cli.tape.record import journal_source
    from rez_cli.timeframes import parse_timeframes

    since_ms = parse_time(since, option="--since", past=True)
    target = _target(out, force)
    settings = load_settings(config).value
    with open_journal(settings, journal, create=False) as opened:
        chosen, exchanges, moments = journal_moments(
            opened, since_ms=since_ms, symbol=normalize_symbol(symbol) if symbol else None
        )
    _write_tape(
        lambda: journal_source(settings, exchanges, exchange=exchange, data=data),
        lambda source: tape_from_journal(
            settings,
            source,
            chosen,
            moments,
            timeframe=timeframe,
            context_timeframes=parse_timeframes(timeframes) if timeframes else None,
        ),
        target,
        force=force,
        json_output=json_output,
    )


@app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="A tape file.", dir_okay=False)],
    json_output: JsonOption = False,
) -> None:
    """Show a tape's symbol, span, moments, hash and candle counts, after checking its hash.

    Example: rez tape show btc.tape --json

    A tape whose content no longer matches its hash is refused (exit 2).
    """
    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.config import paths
    from rez_cli.tape import load_tape

    target = paths.expand_user(path)
    tape = load_tape(target)
    if json_output:
        print_json_line(tape_json(tape, target) | {"verified": True})
    else:
        stdout_console().print(tape_view(tape, str(target), verified=True))
