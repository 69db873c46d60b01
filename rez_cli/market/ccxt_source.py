"""Candles from any exchange ccxt supports: the only module that imports ccxt.

ccxt is imported lazily (``rez --help`` must not pay for it) and every ccxt exception is translated
here, with ``raise ... from``, into the ``ExchangeError`` tree of ``rez_cli.errors``:

    ccxt.OperationFailed (NetworkError: DDoSProtection, RateLimitExceeded, RequestTimeout,
                          ExchangeNotAvailable; BadResponse...)  retried, then ExchangeUnavailable
    ccxt.BadSymbol                                               SymbolNotListed
    any other ccxt.BaseError                                     ExchangeError

Messages never carry a credential: every text that leaves this module goes through ``_Redactor``,
which strikes, with ``rez_cli.redact``, every credential of the ccxt config at any depth (``apiKey``,
``headers = {X-Auth-Token = ...}``, a proxy's ``user:pass@``) and every secret registered for this
invocation.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import pandas as pd

from rez_cli import clock
from rez_cli.clock import iso
from rez_cli.errors import (
    ConfigError,
    DataNotFound,
    ExchangeError,
    ExchangeUnavailable,
    SymbolNotListed,
    TimeframeNotOffered,
    UnknownExchange,
    UsageError,
)
from rez_cli.market.cache import CandleCache, merge_candles
from rez_cli.market.candles import COLUMNS, drop_unclosed, validate_candles
from rez_cli.redact import active, credentials_in
from rez_cli.timeframes import timeframe_ms

UNAVAILABLE_HINT = "use --data PATH to work from files, or --exchange sim"

# When an exchange does not declare its page size, ask for at most this many candles per request.
_DEFAULT_PAGE_LIMIT = 1000

# A runaway guard: an exchange that keeps answering without reaching the end is not paged forever.
_MAX_PAGES = 100_000

ProgressCallback = Callable[[int, int], None]
"""Called as ``(fetched_until_ms, target_ms)`` after each page of candles."""


def _ccxt() -> Any:
    import ccxt.async_support

    return ccxt.async_support


class _Redactor:
    """Removes the configured credentials from any text and keeps it to one short line."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._redactor = active().extended(credentials_in(config))

    def __call__(self, text: str, *, max_chars: int = 240) -> str:
        # Struck before the text is cut: a key cut in half would no longer be recognised.
        text = self._redactor.text(text)
        # Query strings of signed requests hold signatures and timestamps, never anything useful.
        text = re.sub(r"(https?://\S+?)\?\S*", r"\1", text)
        # Error pages of proxies and CDNs are HTML: their tags say nothing on a terminal.
        text = re.sub(r"<[^>]*>", " ", text)
        text = " ".join(text.split())
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


class CcxtSource:
    """Closed candles from one exchange through ccxt's async API, paged, retried and cached.

    One ccxt exchange instance serves every call, within one event loop; ``close()`` (or leaving
    ``async with``) releases its HTTP session. All timeframes of one ``fetch`` are requested
    concurrently over it.
    """

    simulated: bool = False

    def __init__(
        self,
        exchange_id: str,
        ccxt_config: Mapping[str, Any] | None = None,
        *,
        retries: int = 3,
        retry_delay_s: float = 0.5,
        cache: CandleCache | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        """Create the ccxt exchange (no request is made until the first fetch).

        Args:
            exchange_id: a ccxt exchange id (``binance``, ``kraken``...).
            ccxt_config: given to the ccxt constructor as it is (ccxt deep-merges it, so ``options``,
                ``urls``, ``timeout``, ``apiKey``... all work); ``enableRateLimit`` is on unless it
                says otherwise.
            retries: how many times a transient failure (network, timeout, rate limit, 5xx) is
                retried before ``ExchangeUnavailable``.
            retry_delay_s: the first wait between attempts; it doubles after each one.
            cache: where closed candles are kept between runs; ``None`` always asks the exchange.
            now_ms: the clock (ms since epoch), for tests.

        Raises:
            UnknownExchange: ccxt has no exchange of that id.
            ConfigError: ccxt refused the configuration.
        """
        if retries < 0:
            raise UsageError(f"retries must be 0 or more, not {retries}")
        ccxt = _ccxt()
        config = {"enableRateLimit": True, **(ccxt_config or {})}
        self._redact = _Redactor(config)
        if exchange_id not in ccxt.exchanges:
            matches = difflib.get_close_matches(exchange_id.lower(), ccxt.exchanges, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(matches)}?" if matches else "ids look like binance, kraken, okx"
            raise UnknownExchange(f"unknown exchange {exchange_id!r}: not a ccxt exchange id", hint=hint)
        try:
            self._exchange: Any = getattr(ccxt, exchange_id)(config)
        except Exception as error:  # any failure of the constructor is a bad config table
            raise ConfigError(
                f"ccxt could not set up {exchange_id}: {self._redact(f'{type(error).__name__}: {error}')}",
                hint="check the [exchange.ccxt] table",
            ) from error
        self.name = exchange_id
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._cache = cache
        self._now_ms = now_ms or clock.now_ms
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle

    async def close(self) -> None:
        """Release the exchange's HTTP session; the source is not used afterwards."""
        # ccxt's close() sleeps a quarter of a second for TLS shutdown: skip it when nothing opened.
        if self._exchange.session is None:
            return
        try:
            await self._exchange.close()
        except _ccxt().BaseError:  # closing must never turn a result into a failure
            pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # the MarketSource contract

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        """The last ``limit`` candles of ``symbol`` per timeframe, closed by ``until_ms`` (default: now).

        Timeframes are fetched concurrently; with a cache, only candles newer than the last cached
        one are asked for.

        Raises:
            SymbolNotListed, TimeframeNotOffered: the exchange has no such market or interval.
            ExchangeUnavailable: transient failures outlasted the retries.
            ExchangeError: any other refusal of the exchange.
            DataNotFound: the exchange answered with no candles.
            InvalidCandles: the exchange answered with candles that break a rule.
        """
        if limit < 1:
            raise UsageError(f"the number of candles must be at least 1, not {limit}")
        end_ms = self._end_ms(until_ms)
        symbol = await self._check(symbol, timeframes)
        frames = await _gather_or_cancel([self._fetch_last(symbol, tf, limit, end_ms) for tf in timeframes])
        return dict(zip(timeframes, frames, strict=True))

    async def fetch_range(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int,
        *,
        until_ms: int | None = None,
        on_progress: ProgressCallback | None = None,
        max_pages: int | None = None,
    ) -> pd.DataFrame:
        """Every candle opening at or after ``since_ms`` and closed by ``until_ms`` (default: now).

        Pages forwards from ``since_ms``; the cache is not used. An empty frame means the exchange
        has nothing in that range. With ``max_pages`` the answer may stop short of ``until_ms``:
        call again from after its last candle to continue.

        Raises:
            The same errors as ``fetch``, except ``DataNotFound``.
        """
        end_ms = self._end_ms(until_ms)
        symbol = await self._check(symbol, [timeframe])
        return await self._closed_candles(symbol, timeframe, since_ms, end_ms, on_progress, max_pages)

    def now(self) -> int:
        """The source's clock, in ms since epoch."""
        return self._now_ms()

    # internals

    def _end_ms(self, until_ms: int | None) -> int:
        now = self._now_ms()
        # A candle that has not closed yet must not be asked for by a moment in the future.
        return now if until_ms is None else min(until_ms, now)

    async def _check(self, symbol: str, timeframes: Sequence[str]) -> str:
        """The symbol as the exchange lists it, once the market and the timeframes are known to exist.

        Rez spells symbols in upper case (``rez_cli.symbols``); a market the exchange lists in mixed
        case (``stETH/USDT``) is found from that spelling when only one market matches it.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            # ccxt binds its HTTP session and rate limiter to the loop of the first request.
            raise RuntimeError("a CcxtSource serves one event loop: create one per asyncio.run()")
        ex = self._exchange
        await self._call("loading markets", ex.load_markets)
        if symbol not in ex.markets:
            same = [listed for listed in ex.symbols or [] if listed.upper() == symbol.upper()]
            if len(same) != 1:
                raise SymbolNotListed(f"{self.name} does not list {symbol!r}", hint=self._symbol_hint(symbol))
            symbol = same[0]
        if not ex.has.get("fetchOHLCV"):
            raise TimeframeNotOffered(f"{self.name} serves no candles through ccxt (no fetchOHLCV)")
        offered = list(ex.timeframes or {})
        for timeframe in timeframes:
            if timeframe not in offered:
                listing = ", ".join(sorted(offered, key=_sort_key(ex)))
                raise TimeframeNotOffered(
                    f"{self.name} does not offer {timeframe} candles",
                    hint=f"offered: {listing}" if listing else None,
                )
            timeframe_ms(timeframe)
        return symbol

    def _symbol_hint(self, symbol: str) -> str:
        ex = self._exchange
        by_id = ex.markets_by_id or {}
        # Users often type the exchange's own id (BTCUSDT) or lower case.
        exact = [m["symbol"] for m in by_id.get(symbol, []) + by_id.get(symbol.upper(), [])]
        candidates = list(ex.symbols or [])
        fuzzy = difflib.get_close_matches(symbol.upper(), candidates, n=3, cutoff=0.6)
        matches = list(dict.fromkeys(exact + fuzzy))[:3]
        if matches:
            return f"did you mean {', '.join(matches)}?"
        return f"symbols look like {candidates[0]}" if candidates else "the exchange lists no markets"

    async def _fetch_last(self, symbol: str, timeframe: str, limit: int, end_ms: int) -> pd.DataFrame:
        step = timeframe_ms(timeframe)
        window_start = _window_start(timeframe, step, limit, end_ms)
        cached = self._cached(symbol, timeframe, end_ms)
        fetch_from = window_start
        if cached is not None:
            first, last = int(cached["timestamp"].iloc[0]), int(cached["timestamp"].iloc[-1])
            if first <= window_start and last + step >= window_start:
                fetch_from = last + step
            else:
                # Too old or too short to join the window: ask for the whole window.
                cached = None
        fresh = await self._closed_candles(symbol, timeframe, fetch_from, end_ms)
        if self._cache is not None and not fresh.empty:
            self._cache.store(self.name, symbol, timeframe, fresh)
        frame = fresh if cached is None else merge_candles(cached, fresh)
        if frame.empty:
            raise DataNotFound(
                f"{self.name} has no {symbol} {timeframe} candles closed by {iso(end_ms)}",
                hint="the market may be newer than that, or not traded at this interval",
            )
        return validate_candles(frame.iloc[-limit:], f"{self.name} {symbol} {timeframe}")

    def _cached(self, symbol: str, timeframe: str, end_ms: int) -> pd.DataFrame | None:
        if self._cache is None:
            return None
        cached = self._cache.load(self.name, symbol, timeframe)
        if cached is None:
            return None
        # A later run may have cached candles after a past until_ms: they stay on disk, unseen here.
        cached = drop_unclosed(cached, timeframe, end_ms)
        return None if cached.empty else cached

    async def _closed_candles(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int,
        end_ms: int,
        on_progress: ProgressCallback | None = None,
        max_pages: int | None = None,
    ) -> pd.DataFrame:
        rows = await self._paginate(symbol, timeframe, since_ms, end_ms, on_progress, max_pages or _MAX_PAGES)
        frame = pd.DataFrame([row[:6] for row in rows], columns=COLUMNS)
        if frame.empty:
            return validate_candles(frame, f"{self.name} {symbol} {timeframe}")
        # Pages may overlap when an exchange also returns the candle containing `since`.
        frame = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp", kind="stable")
        frame = drop_unclosed(frame.reset_index(drop=True), timeframe, end_ms)
        return validate_candles(frame, f"{self.name} {symbol} {timeframe}")

    async def _paginate(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int,
        end_ms: int,
        on_progress: ProgressCallback | None,
        max_pages: int,
    ) -> list[list[Any]]:
        ex = self._exchange
        step = timeframe_ms(timeframe)
        page_limit = self._page_limit(symbol)
        rows: list[list[Any]] = []
        cursor = since_ms
        what = f"fetching {symbol} {timeframe} candles"
        for _ in range(max_pages):
            # Stop once no candle opening at the cursor could have closed by the end.
            if cursor + step > end_ms:
                break
            # Counting the forming candle too lets one page end exactly where the window does.
            wanted = min(page_limit, max(1, math.ceil((end_ms - cursor) / step)))
            page = await self._call(
                what, functools.partial(ex.fetch_ohlcv, symbol, timeframe, cursor, wanted)
            )
            if not page:
                break
            rows.extend(page)
            last = int(page[-1][0])
            if last < cursor:  # an exchange that ignores `since` answers with its latest page
                break
            cursor = last + step
            if on_progress is not None:
                on_progress(min(cursor, end_ms), end_ms)
        return rows

    def _page_limit(self, symbol: str) -> int:
        try:
            value = self._exchange.feature_value(symbol, "fetchOHLCV", "limit")
        except _ccxt().BaseError:
            value = None
        return int(value) if isinstance(value, int | float) and value > 0 else _DEFAULT_PAGE_LIMIT

    async def _call(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        ccxt = _ccxt()
        attempts = self._retries + 1
        for attempt in range(attempts):
            try:
                return await request()
            except ccxt.OperationFailed as error:
                if attempt + 1 == attempts:
                    raise ExchangeUnavailable(
                        f"{self.name} is unavailable: {what} failed {_times(attempts)}"
                        f" ({self._describe(error)})",
                        hint=UNAVAILABLE_HINT,
                    ) from error
                await asyncio.sleep(self._retry_delay_s * 2**attempt)
            except ccxt.BadSymbol as error:
                raise SymbolNotListed(
                    f"{self.name} rejected the symbol while {what} ({self._describe(error)})",
                    hint="the market may have been delisted",
                ) from error
            except ccxt.AuthenticationError as error:
                raise ExchangeError(
                    f"{self.name} refused the credentials while {what} ({self._describe(error)})",
                    hint="check apiKey and secret in [exchange.ccxt], or remove them: candles need none",
                ) from error
            except ccxt.BaseError as error:
                raise ExchangeError(f"{self.name}: {what} failed ({self._describe(error)})") from error
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _describe(self, error: BaseException) -> str:
        return self._redact(f"{type(error).__name__}: {error}")


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _window_start(timeframe: str, step: int, limit: int, end_ms: int) -> int:
    """The open time of the oldest of the last ``limit`` candles closed by ``end_ms``."""
    newest_open = end_ms // step * step - step
    start = newest_open - (limit - 1) * step
    # Weekly candles open on Monday, not on the epoch's Thursday: one more step covers the shift.
    return start - step if timeframe.endswith("w") else start


def _sort_key(exchange: Any) -> Callable[[str], tuple[int, float, str]]:
    def key(timeframe: str) -> tuple[int, float, str]:
        try:
            return (0, float(exchange.parse_timeframe(timeframe)), timeframe)
        except Exception:  # an exotic spelling sorts last, by name
            return (1, 0.0, timeframe)

    return key


async def _gather_or_cancel(coroutines: Sequence[Awaitable[pd.DataFrame]]) -> list[pd.DataFrame]:
    """``asyncio.gather`` that cancels the siblings of a failure instead of leaving them running."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
