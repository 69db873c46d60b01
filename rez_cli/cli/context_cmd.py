"""``rez context``: the snapshot the model reads first."""

from __future__ import annotations

from typing import Annotated

import typer

from rez_cli.cli.options import (
    AsOfOption,
    ConfigOption,
    DataOption,
    ExchangeOption,
    JsonOption,
    NoCacheOption,
    ProfileOption,
    TimeframesOption,
)


def context(
    symbol: Annotated[str, typer.Argument(help="Market symbol as the exchange spells it, e.g. BTC/USDT.")],
    exchange: ExchangeOption = None,
    timeframes: TimeframesOption = None,
    data: DataOption = None,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    as_of: AsOfOption = None,
    no_cache: NoCacheOption = False,
    json_output: JsonOption = False,
    show_text: Annotated[
        bool, typer.Option("--text", help="Also print the exact text the model reads.")
    ] = False,
) -> None:
    """Show the zero-shot context for SYMBOL: price, change, EMA 20, RSI 14... per timeframe.

    Example: rez context BTC/USDT --exchange sim --timeframes 15m,1h,4h
    """
    import asyncio  # here, not at the top: it costs every `rez --help` about 35 ms

    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.cli.render import context_view
    from rez_cli.config.settings import load_profile, load_settings
    from rez_cli.cycle.context import context_text, load_context
    from rez_cli.display import display_text
    from rez_cli.market.candles import parse_time
    from rez_cli.symbols import normalize_symbol
    from rez_cli.timeframes import parse_timeframes

    symbol = normalize_symbol(symbol)
    as_of_ms = parse_time(as_of, option="--as-of", past=True) if as_of is not None else None
    settings = load_settings(config).value
    risk = load_profile(profile or settings.risk.profile).value
    requested = parse_timeframes(timeframes) if timeframes else list(settings.market.context_timeframes)
    snapshot = asyncio.run(
        load_context(
            settings,
            symbol,
            timeframes=requested,
            exchange=exchange,
            data=data,
            use_cache=not no_cache,
            as_of_ms=as_of_ms,
        )
    )
    if json_output:
        print_json_line(snapshot.model_dump(mode="json"))
        return
    console = stdout_console()
    console.print(context_view(snapshot, profile=risk.name))
    if show_text:
        console.print(display_text(context_text(snapshot)))
