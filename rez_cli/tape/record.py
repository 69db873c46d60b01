"""Making tapes: a regular grid of moments over a span, or the moments live cycles ran at.

Each timeframe is captured as ``HistorySource.load`` loads it for a backtest over the same span
(``warmup`` candles before the first moment, then every candle to the end), so a backtest over the
tape sees the very frames a backtest over the source would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from rez_cli import clock
from rez_cli.clock import iso
from rez_cli.config.settings import Settings
from rez_cli.errors import DataNotFound, UsageError
from rez_cli.market.source import MarketSource
from rez_cli.tape.model import Tape, TapeMeta
from rez_cli.timeframes import timeframe_ms

if TYPE_CHECKING:
    from rez_cli.journal.store import Journal


async def capture(
    source: MarketSource, symbol: str, timeframes: Sequence[str], *, warmup: int, start_ms: int, end_ms: int
) -> dict[str, pd.DataFrame]:
    """Every candle of each timeframe closed by ``end_ms``, from ``warmup`` candles before ``start_ms``.

    Raises:
        DataError, ExchangeError: from the source.
    """
    frames: dict[str, pd.DataFrame] = {}
    for timeframe in timeframes:
        count = warmup + math.ceil((end_ms - start_ms) / timeframe_ms(timeframe)) + 1
        frames[timeframe] = (await source.fetch(symbol, [timeframe], count, until_ms=end_ms))[timeframe]
    return frames


async def record_tape(
    settings: Settings,
    source: MarketSource,
    symbol: str,
    *,
    start_ms: int,
    end_ms: int,
    every: int = 1,
    timeframe: str | None = None,
    context_timeframes: Sequence[str] | None = None,
    now: Callable[[], int] = clock.now_ms,
) -> Tape:
    """A tape of ``symbol`` with a cycle moment every ``every`` candles from ``start_ms`` to ``end_ms``.

    The moments are the ones ``rez backtest --from --to --every`` would walk: whole candles of the
    primary timeframe, the last one a candle before the end of the data.

    Raises:
        UsageError: an empty span or ``every`` below 1.
        DataNotFound: no candle to trade on in the span.
        DataError, ExchangeError: from the source.
    """
    settings = settings.with_timeframes(timeframe, context_timeframes)
    primary = settings.market.timeframe
    step = timeframe_ms(primary)
    if every < 1:
        raise UsageError(f"--every must be at least 1, got {every}")
    end = end_ms // step * step
    start = -(-start_ms // step) * step
    if start >= end:
        raise UsageError(
            f"the span {iso(start_ms)}..{iso(end_ms)} holds no whole {primary} candle",
            hint="--from must come before --to",
        )
    timeframes = _timeframes(settings)
    frames = await capture(
        source, symbol, timeframes, warmup=settings.market.candles, start_ms=start, end_ms=end
    )
    closes = frames[primary]["timestamp"]
    if len(closes):
        end = min(end, (int(closes.iloc[-1]) + step) // step * step)
    moments = tuple(range(start, end - step + 1, step * every))
    if not moments:
        raise DataNotFound(
            f"no {primary} candle of {symbol} between {iso(start)} and {iso(end)} to trade on",
            hint="widen the span between --from and --to",
        )
    meta = _meta(settings, source, symbol, every=every, start_ms=start, end_ms=end, moments=moments, now=now)
    return Tape.of(meta, frames)


def journal_moments(
    journal: Journal, *, since_ms: int, symbol: str | None = None
) -> tuple[str, list[str], list[int]]:
    """The symbol, the exchanges and the moments (``as_of_ms``, ascending, each once) of the live
    cycles since ``since_ms``: cycles of ``decide`` runs, never of a backtest.

    Raises:
        DataNotFound: no live cycle since then (of ``symbol``).
        UsageError: the live cycles are of several symbols and none was chosen (a tape holds one).
    """
    cycles = [
        cycle
        for cycle in journal.list_cycles(symbol=symbol, limit=None)
        if cycle.get("backtest_id") is None
        and isinstance(cycle.get("as_of_ms"), int)
        and cycle["as_of_ms"] >= since_ms
    ]
    which = f" of {symbol}" if symbol else ""
    if not cycles:
        raise DataNotFound(
            f"no live cycle{which} in {journal.path} stood at or after {iso(since_ms)}",
            hint="live cycles are those of rez decide; backtests' cycles are left out",
        )
    symbols = sorted({str(cycle["symbol"]) for cycle in cycles})
    if len(symbols) > 1:
        shown = ", ".join(symbols[:5]) + (", ..." if len(symbols) > 5 else "")
        raise UsageError(
            f"the live cycles since {iso(since_ms)} are of {len(symbols)} symbols ({shown}): "
            "a tape holds one",
            hint="choose it with --symbol, and make one tape per symbol",
        )
    exchanges = sorted({str(cycle["exchange"]) for cycle in cycles if cycle.get("exchange")})
    moments = sorted({int(cycle["as_of_ms"]) for cycle in cycles})
    return symbols[0], exchanges, moments


async def tape_from_journal(
    settings: Settings,
    source: MarketSource,
    symbol: str,
    moments: Sequence[int],
    *,
    timeframe: str | None = None,
    context_timeframes: Sequence[str] | None = None,
    now: Callable[[], int] = clock.now_ms,
) -> Tape:
    """A tape of ``symbol`` whose moments are ``moments`` (live cycles', see ``journal_moments``).

    The candles run from the warm-up before the first moment to the close of the candle after the
    last one, when it has closed (else to the last closed candle: a backtest over the tape then
    skips the moments whose order could not be filled yet, and says so).

    Raises:
        DataNotFound: no moments.
        DataError, ExchangeError: from the source.
    """
    if not moments:
        raise DataNotFound(f"no moments to make a tape of {symbol} from")
    settings = settings.with_timeframes(timeframe, context_timeframes)
    primary = settings.market.timeframe
    step = timeframe_ms(primary)
    ordered = tuple(sorted(set(moments)))
    start = ordered[0] // step * step
    end = min(-(-ordered[-1] // step) * step + step, now() // step * step)
    end = max(end, start + step)
    frames = await capture(
        source, symbol, _timeframes(settings), warmup=settings.market.candles, start_ms=start, end_ms=end
    )
    meta = _meta(
        settings,
        source,
        symbol,
        every=1,
        start_ms=start,
        end_ms=end,
        moments=ordered,
        now=now,
        origin="journal",
    )
    return Tape.of(meta, frames)


def _timeframes(settings: Settings) -> list[str]:
    # What a cycle's context asks for (cycle.context.context_timeframes): the context ones and the primary.
    return sorted({*settings.market.context_timeframes, settings.market.timeframe}, key=timeframe_ms)


def _meta(
    settings: Settings,
    source: MarketSource,
    symbol: str,
    *,
    every: int,
    start_ms: int,
    end_ms: int,
    moments: tuple[int, ...],
    now: Callable[[], int],
    origin: str = "record",
) -> TapeMeta:
    return TapeMeta(
        symbol=symbol,
        exchange=source.name,
        simulated=source.simulated,
        timeframe=settings.market.timeframe,
        context_timeframes=tuple(settings.market.context_timeframes),
        every=every,
        start_ms=start_ms,
        end_ms=end_ms,
        moments=moments,
        created_ms=now(),
        warmup=settings.market.candles,
        seed=settings.market.seed,
        origin=origin,
    )


def journal_source(
    settings: Settings,
    exchanges: Sequence[str],
    *,
    exchange: str | None = None,
    data: Path | None = None,
    now_ms: int | None = None,
) -> MarketSource:
    """Where a journal tape's candles come from: ``--exchange``/``--data``, else where the cycles ran.

    Raises:
        UsageError: the cycles ran on several exchanges, or on files, and no source was given.
        DataNotFound, UnknownExchange: from ``open_source``.
    """
    from rez_cli.market.view import open_source

    if exchange is None and data is None:
        if len(exchanges) > 1:
            raise UsageError(
                f"the live cycles ran on {len(exchanges)} exchanges ({', '.join(exchanges[:5])})",
                hint="choose where the tape's candles come from with --exchange or --data",
            )
        if exchanges == ["files"]:
            raise UsageError(
                "the live cycles read candles from files", hint="give the same files again with --data"
            )
        exchange = exchanges[0] if exchanges else None
    return open_source(settings, exchange=exchange, data=data, now_ms=now_ms)
