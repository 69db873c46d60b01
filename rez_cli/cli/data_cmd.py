"""``rez data``: candles on disk, in the layout ``--data`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rez_cli.cli.options import ConfigOption, ExchangeOption

app = typer.Typer(
    help="Download candles into files that --data reads (freqtrade's layout).", no_args_is_help=True
)


@app.command("download")
def download(
    symbols: Annotated[list[str], typer.Argument(help="Symbols as the exchange spells them, e.g. BTC/USDT.")],
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="Comma-separated timeframes, e.g. 5m,1h.")
    ] = "1h",
    since: Annotated[
        str, typer.Option("--since", help="First candle wanted: 2021-01-01 or ms since epoch (UTC).")
    ] = "",
    until: Annotated[
        str | None,
        typer.Option("--until", help="Stop at candles closed by then. Default: now.", show_default=False),
    ] = None,
    exchange: ExchangeOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Directory to write to. Default: ./data/<exchange>.", show_default=False
        ),
    ] = None,
    file_format: Annotated[
        str, typer.Option("--format", help="json (freqtrade's default), csv or feather.")
    ] = "json",
    config: ConfigOption = None,
) -> None:
    """Download closed candles through ccxt, resuming where each file ends.

    Example: rez data download BTC/USDT ETH/USDT --timeframe 1h,4h --since 2021-01-01 --out data/binance
    """
    import asyncio

    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from rez_cli.cli.console import stderr_console, stdout_console
    from rez_cli.clock import iso
    from rez_cli.config.settings import load_settings
    from rez_cli.display import display_str
    from rez_cli.errors import UsageError
    from rez_cli.market.candles import parse_time
    from rez_cli.market.ccxt_source import CcxtSource
    from rez_cli.market.download import FORMATS, FileFormat
    from rez_cli.market.download import download as run_download
    from rez_cli.symbols import normalize_symbols
    from rez_cli.timeframes import parse_timeframes

    symbols = normalize_symbols(symbols)
    if not since:
        raise UsageError("--since is required", hint="e.g. --since 2021-01-01")
    if file_format not in FORMATS:
        raise UsageError(f"unknown format {file_format!r}", hint=f"use one of {', '.join(FORMATS)}")
    settings = load_settings(config).value
    exchange_id = exchange or settings.exchange.id
    if exchange_id == "sim":
        raise UsageError(
            "the sim market is generated on the fly; there is nothing to download",
            hint="use --exchange sim directly with rez context / rez decide",
        )
    timeframes = parse_timeframes(timeframe)
    since_ms = parse_time(since, option="--since", past=True)
    until_ms = parse_time(until, option="--until", past=True) if until else None
    out_dir = out or Path("data") / exchange_id
    console = stderr_console()
    fmt: FileFormat = file_format  # type: ignore[assignment]  # checked against FORMATS above

    async def go() -> list[str]:
        source = CcxtSource(exchange_id, dict(settings.exchange.ccxt), retries=settings.exchange.retries)
        tasks: dict[tuple[str, str], TaskID] = {}
        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            # Off a terminal a bar is one stale line, and would come before an error's one line.
            disable=not console.is_terminal,
        ) as progress:

            def on_progress(symbol: str, tf: str, fetched_until_ms: int, target_ms: int) -> None:
                key = (symbol, tf)
                if key not in tasks:
                    tasks[key] = progress.add_task(
                        display_str(f"{symbol} {tf}", multiline=False), total=max(1, target_ms - since_ms)
                    )
                progress.update(tasks[key], completed=max(0, fetched_until_ms - since_ms))

            try:
                results = await run_download(
                    source,
                    symbols,
                    timeframes,
                    since_ms=since_ms,
                    out_dir=out_dir,
                    fmt=fmt,
                    until_ms=until_ms,
                    on_progress=on_progress,
                )
            finally:
                await source.close()
        return [
            f"{r.path}: +{r.rows_added} candles, {r.rows_total} in all"
            + (
                f" ({iso(r.first_ms)} → {iso(r.last_ms)})"
                if r.first_ms is not None and r.last_ms is not None
                else ""
            )
            for r in results
        ]

    # The progress was said on stderr; what was written is the answer.
    answer = stdout_console()
    for line in asyncio.run(go()):
        answer.print(line, soft_wrap=True)
