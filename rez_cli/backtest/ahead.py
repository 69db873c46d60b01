"""A backtest's markets, read in a second process ahead of its walk.

Most of a rules cycle's time goes to what does not depend on its account: its moment's context, the
context's text, the candles' fingerprints and the indicator calls its mode makes on any context. The
walk cannot start a cycle before the one before it has settled, but those can be read for every
moment beforehand. ``MarketsAhead`` forks a process that reads them in the walk's order, from its copy
of the loaded history and with the cycle's own code (``cycle.orchestrator.read_market``,
``ToolRegistry``), and hands each to its cycle: the walk runs on one core, the markets on another.

Only where a market is read changes. Each is still read from the candles closed by its own moment, cut
as the cycle would cut them, with the same indicator code, so a cycle gets the very values it would
have computed (``tests/backtest/test_ahead.py`` compares whole journals). A moment the process could
not read (its candles break a rule, say), and every moment once the process is gone, is read by the
cycle itself, which then fails as it would have failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import signal
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import pydantic_core

from rez_cli.backtest.history import HistorySource
from rez_cli.config.settings import Settings
from rez_cli.cycle.context import market_view
from rez_cli.cycle.orchestrator import MarketMoment, read_market
from rez_cli.errors import DataError
from rez_cli.formatting import compact_json
from rez_cli.llm.meter import Meter
from rez_cli.market.snapshot import Context
from rez_cli.reasoning.registry import ToolCalls
from rez_cli.reasoning.tools import ToolKey, ToolOutput

__all__ = ["MIN_MOMENTS", "MarketsAhead"]

# Fewer moments than this are read by the walk itself: forking would cost more than it saves.
MIN_MOMENTS = 32
# Moments sent together: one message per moment costs more than the pickling of it.
CHUNK = 16
# The pipe's buffer: about a hundred moments of about 6 KB (Linux lets any process have 1 MiB).
PIPE_BYTES = 1 << 20


@dataclass(frozen=True)
class _Sent:
    """A ``MarketMoment`` as it crosses the pipe: the context as its JSON text, which costs both sides
    less than pickling the model and its dump, and which the trace then writes as it is."""

    context_json_text: str
    text: str
    candles: dict[str, dict[str, Any]]
    answers: dict[ToolKey, ToolOutput]
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, market: MarketMoment) -> _Sent | MarketMoment:
        """What is sent for ``market``: itself where its context holds a number JSON cannot carry."""
        written = compact_json(market.context_json)
        if written is None:
            return market
        return cls(written, market.text, market.candles, dict(market.answers), dict(market.timings_ms))

    def market(self) -> MarketMoment:
        # The same values the sender dumped: JSON carries finite floats exactly, and a context
        # validated from its own dump is equal to it.
        dump = pydantic_core.from_json(self.context_json_text)
        context = Context.model_validate(dump)
        return MarketMoment(
            context, dump, self.text, self.candles, self.answers, self.timings_ms, self.context_json_text
        )


_Chunk = list[tuple[int, "_Sent | MarketMoment | None"]]


class MarketsAhead:
    """The markets of one walk's moments, read by a forked process; call it as the orchestrator's
    ``ahead`` (``MarketAhead``).

    Use ``start``, which returns None where no process is forked (not Linux, too few moments), and
    ``close`` once the walk is over.
    """

    def __init__(
        self, connection: Connection, process: BaseProcess, symbol: str, moments: Sequence[int]
    ) -> None:
        self._connection: Connection | None = connection
        self._process = process
        self._symbol = symbol
        self._to_come = set(moments)
        self._ready: dict[int, MarketMoment | None] = {}
        self.received = 0
        """Moments whose market came from the process."""

    @classmethod
    def start(
        cls,
        history: HistorySource,
        settings: Settings,
        moments: Sequence[int],
        tool_calls: ToolCalls | None,
    ) -> MarketsAhead | None:
        """Fork the process reading ``history``'s markets at ``moments``, in that order.

        ``tool_calls``: the calls the walk's mode makes on any context, answered there too. The
        timeframes of the context must be loaded already: the process reads nothing from the
        history's source (its connections are the walk's).
        """
        if sys.platform != "linux" or len(moments) < MIN_MOMENTS:
            # Elsewhere fork is missing or unsafe (macOS's frameworks), and spawning a process
            # imports pandas anew: a second or more.
            return None
        context = multiprocessing.get_context("fork")
        reader, writer = context.Pipe(duplex=False)
        _widen(writer)
        process = context.Process(
            target=_read_all,
            args=(writer, history, settings, list(moments), tool_calls),
            name="rez-markets-ahead",
            daemon=True,
        )
        with warnings.catch_warnings():
            # Python 3.12 warns about forking a process that has threads. The walk's are the event
            # loop's idle executor workers; the child uses neither them nor any lock they hold, and
            # leaves through os._exit without running the parent's exit handlers.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                process.start()
            except OSError:
                reader.close()
                writer.close()
                return None
        writer.close()
        return cls(reader, process, history.symbol, moments)

    def __call__(self, symbol: str, moment: int) -> MarketMoment | None:
        if symbol != self._symbol:
            return None
        while moment not in self._ready and moment in self._to_come and self._connection is not None:
            self._receive()
        market = self._ready.pop(moment, None)
        if market is not None:
            self.received += 1
        return market

    def _receive(self) -> None:
        assert self._connection is not None
        try:
            chunk: _Chunk = self._connection.recv()
        except Exception:
            # The process is gone (EOFError) or sent what does not unpickle: every moment left is the
            # walk's to read.
            self._stop()
            return
        for moment, sent in chunk:
            self._to_come.discard(moment)
            self._ready[moment] = _market_of(sent)

    def _stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._to_come.clear()

    def close(self) -> None:
        """Stop the process (it may be reading moments the walk will never reach) and wait for it."""
        self._stop()
        self._ready.clear()
        process = self._process
        if process.is_alive():
            process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def _market_of(sent: _Sent | MarketMoment | None) -> MarketMoment | None:
    if not isinstance(sent, _Sent):
        return sent
    try:
        return sent.market()
    except Exception:  # it does not read back: the cycle reads its market itself
        return None


def _widen(connection: Connection) -> None:
    """Let the process run up to about a hundred moments ahead instead of ten (a pipe holds 64 KiB):
    a few slower cycles on either side then stall neither."""
    import fcntl  # Linux's, as the fork is: not importable everywhere this module is

    # Above this system's limit for pipes, the default only stalls more often.
    with contextlib.suppress(OSError):
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class _NoSource:
    """The fork's stand-in for the history's source: the connections behind it are the walk's."""

    def __init__(self, name: str, simulated: bool) -> None:
        self.name = name
        self.simulated = simulated

    async def fetch(self, *_: Any, **__: Any) -> Any:
        raise DataError("a timeframe that was not loaded before the fork is read by the walk itself")

    async def close(self) -> None:
        return None


def _read_all(
    writer: Connection,
    history: HistorySource,
    settings: Settings,
    moments: list[int],
    tool_calls: ToolCalls | None,
) -> None:
    # Ctrl-C is the walk's to handle: it stops this process when it closes. The wake-up pipe of the
    # walk's event loop is not this process's to write to.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    history.source = _NoSource(history.source.name, history.source.simulated)

    async def send_all() -> None:
        chunk: _Chunk = []
        for moment in moments:
            chunk.append((moment, await _read_one(history, settings, moment, tool_calls)))
            if len(chunk) == CHUNK:
                writer.send(chunk)
                chunk = []
        if chunk:
            writer.send(chunk)

    try:
        asyncio.run(send_all())
    except Exception:
        # The walk is over and closed its end, or this process failed: either way the walk reads what
        # it still needs itself, and a traceback here would only reach the user's terminal.
        pass
    finally:
        writer.close()


async def _read_one(
    history: HistorySource, settings: Settings, moment: int, tool_calls: ToolCalls | None
) -> _Sent | MarketMoment | None:
    """The market at ``moment`` as a cycle reads it, or None for the cycle to read (and fail on)."""
    meter = Meter()
    view = market_view(history, history.symbol, settings, moment, history.memo)
    try:
        _, market = await read_market(view, settings, meter, tool_calls)
    except Exception:  # whatever it was, the cycle meets it again and reports it
        return None
    return _Sent.of(dataclasses.replace(market, timings_ms=dict(meter.timings_ms)))
