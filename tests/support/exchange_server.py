"""A fake Binance spot API on 127.0.0.1, speaking Binance's own wire format.

ccxt's real ``binance`` class talks to it over real HTTP once ``exchange_config(server)`` points its
URLs here. It serves what ``load_markets`` and ``fetch_ohlcv`` need for spot markets
(``/api/v3/exchangeInfo``, ``/api/v3/klines``, ``/api/v3/time``, ``/api/v3/ping``), generates
deterministic candles for any time range (a seeded function of the timestamp, so any window can be
asked twice and compared), records every request, and can be scripted to misbehave: error statuses
(429 with Retry-After, 418, 5xx), delays, empty answers, an unknown symbol.

    with FakeBinance(now_ms=NOW_MS) as server:
        server.fail(500, times=2)
        source = CcxtSource("binance", exchange_config(server), ...)
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

KLINES = "/api/v3/klines"
EXCHANGE_INFO = "/api/v3/exchangeInfo"

NOW_MS = 1_709_296_496_789
"""The fake's default clock: 2024-03-01T12:34:56.789Z, inside a forming candle of every timeframe."""

LISTED_MS = 1_502_942_400_000
"""The first candle the fake has of any symbol (BTCUSDT's listing on Binance, 2017-08-17T04:00Z)."""

MAX_KLINES = 1000

_INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
# Binance's weeks open on Monday; the epoch fell on a Thursday.
_WEEK_OFFSET_MS = 4 * 86_400_000

_BASE_PRICES = {"BTC": 42_000.0, "ETH": 2_400.0, "SOL": 110.0, "BNB": 380.0}

# Every key of ccxt binance's urls["api"] and the path it has on the real hosts.
BINANCE_API_PATHS = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}


FAST_CCXT: dict[str, Any] = {"rateLimit": 5, "timeout_on_exit": 0}
"""Merge into ``exchange_config`` to keep tests quick: still rate-limited and still closed, without
binance's 50 ms per request unit, nor ccxt's quarter-second pause in ``close()`` (for TLS shutdown,
which loopback HTTP has none of)."""


def exchange_config(server: FakeBinance, *, timeout_ms: int = 5_000) -> dict[str, Any]:
    """The ``[exchange.ccxt]`` table that points ccxt's ``binance`` at ``server``, spot markets only.

    Every API URL is moved to the loopback, so a call the fake does not serve is a 404 it records
    (see ``FakeBinance.unexpected``), never a request to the real exchange.
    """
    return {
        "timeout": timeout_ms,
        "urls": {"api": {key: server.url + path for key, path in BINANCE_API_PATHS.items()}},
        "options": {
            "defaultType": "spot",
            # ccxt's current spelling; it also reads a bare list here for backward compatibility.
            "fetchMarkets": {"types": ["spot"]},
            # Both would call signed sapi endpoints as soon as an apiKey and secret are configured.
            "fetchMargins": False,
            "fetchCurrencies": False,
        },
    }


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    at_s: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Script:
    path: str | None
    remaining: int | None
    status: int | None = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    empty: bool = False
    after: int = 0
    echo_header: str | None = None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeBinance:
    """Binance's spot REST API on 127.0.0.1, with a clock and faults the test controls."""

    def __init__(
        self,
        *,
        now_ms: int = NOW_MS,
        symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        latency_s: float = 0.0,
        seed: int = 7,
        listed_ms: int = LISTED_MS,
    ) -> None:
        self.now_ms = now_ms
        self.symbols = list(symbols)
        self.latency_s = latency_s
        self.seed = seed
        self.listed_ms = listed_ms
        self._requests: list[RecordedRequest] = []
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeBinance:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-binance", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still sleeping in a scripted delay are woken and dropped."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_port}"

    # what happened

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def klines_requests(
        self, interval: str | None = None, symbol: str | None = None
    ) -> list[RecordedRequest]:
        """The ``/api/v3/klines`` requests, optionally for one interval and market id."""
        return [
            r
            for r in self.requests
            if r.path == KLINES
            and (interval is None or r.query.get("interval") == interval)
            and (symbol is None or r.query.get("symbol") == symbol)
        ]

    @property
    def unexpected(self) -> list[RecordedRequest]:
        """Requests to paths the fake does not serve (each answered 404)."""
        return [r for r in self.requests if r.path not in _ROUTES]

    def reset_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self._requests.clear()

    # scripting

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        path: str | None = KLINES,
        retry_after_s: int | None = None,
        body: str | None = None,
        after: int = 0,
        echo_header: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status``.

        ``path=None`` matches any path; ``times=None`` fails forever; ``after`` lets that many
        matching requests through first. ``echo_header``: the body quotes that request header's
        value back, as careless servers do in their error messages.

        The body is Binance's for that status unless given: 429 and 418 carry code -1003 (and a
        Retry-After header), 500 carries -1000, other 5xx an HTML page as a CDN would send.
        """
        headers: dict[str, str] = {}
        if status in (418, 429):
            headers["Retry-After"] = str(retry_after_s if retry_after_s is not None else 1)
        elif retry_after_s is not None:
            headers["Retry-After"] = str(retry_after_s)
        if body is None:
            body = _error_body(status)
        self._add(
            _Script(
                path, times, status=status, body=body, headers=headers, after=after, echo_header=echo_header
            )
        )

    def delay(self, seconds: float, *, times: int | None = None, path: str | None = KLINES) -> None:
        """Hold the next ``times`` requests to ``path`` for ``seconds`` before answering normally."""
        self._add(_Script(path, times, delay_s=seconds))

    def empty(self, *, times: int | None = None) -> None:
        """Answer klines with ``[]``, as Binance does for a window without trades."""
        self._add(_Script(KLINES, times, empty=True))

    def reject_symbol(self, *, times: int | None = None) -> None:
        """Answer klines with Binance's "Invalid symbol." (a market delisted since markets were loaded)."""
        body = json.dumps({"code": -1121, "msg": "Invalid symbol."})
        self._add(_Script(KLINES, times, status=400, body=body))

    def clear_faults(self) -> None:
        """Drop every scripted fault and delay."""
        with self._lock:
            self._scripts.clear()

    def _add(self, script: _Script) -> None:
        with self._lock:
            self._scripts.append(script)

    def _take_script(self, path: str) -> _Script | None:
        with self._lock:
            for script in self._scripts:
                if script.path not in (None, path):
                    continue
                if script.after > 0:
                    script.after -= 1
                    continue
                if script.remaining is not None:
                    if script.remaining <= 0:
                        continue
                    script.remaining -= 1
                return script
        return None

    # candles

    def candle(self, market_id: str, interval: str, open_ms: int) -> list[Any]:
        """One kline as Binance sends it: 12 fields, prices and volumes as strings."""
        step = _INTERVAL_MS[interval]
        close_at = min(open_ms + step, self.now_ms)
        base = _BASE_PRICES.get(market_id[:3], 50.0)
        phase = _unit(self.seed, market_id, "phase", 0) * 6.0
        o = round(_price(base, phase, open_ms), 2)
        c = round(_price(base, phase, close_at), 2)
        spread = base * 0.004 * _unit(self.seed, market_id, interval, open_ms)
        h = round(max(o, c) + spread, 2)
        low = round(min(o, c) - spread * _unit(self.seed, market_id, interval, open_ms + 1), 2)
        volume = round(5 + 500 * _unit(self.seed, market_id, interval, open_ms + 2), 5)
        quote = round(volume * (o + c) / 2, 8)
        taker = round(volume * 0.5, 5)
        trades = int(100 + 10_000 * _unit(self.seed, market_id, interval, open_ms + 3))
        return [
            open_ms,
            f"{o:.8f}",
            f"{h:.8f}",
            f"{low:.8f}",
            f"{c:.8f}",
            f"{volume:.8f}",
            open_ms + step - 1,
            f"{quote:.8f}",
            trades,
            f"{taker:.8f}",
            f"{taker * (o + c) / 2:.8f}",
            "0",
        ]

    def klines(
        self,
        market_id: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[list[Any]]:
        """What ``GET /api/v3/klines`` answers, forming candle included, as Binance does."""
        step = _INTERVAL_MS[interval]
        offset = _WEEK_OFFSET_MS if interval == "1w" else 0
        limit = max(1, min(limit, MAX_KLINES))
        newest = _floor(self.now_ms, step, offset)
        if end_ms is not None:
            newest = min(newest, _floor(end_ms, step, offset))
        oldest = _ceil(self.listed_ms, step, offset)
        if start_ms is not None:
            first = max(_ceil(start_ms, step, offset), oldest)
        else:
            first = max(newest - (limit - 1) * step, oldest)
        opens = range(first, newest + 1, step)
        return [self.candle(market_id, interval, ts) for ts in opens[:limit]]

    # HTTP

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        query = {key: request.args[key] for key in request.args}
        headers = dict(request.headers.items())
        with self._lock:
            self._requests.append(
                RecordedRequest(request.method, request.path, query, time.monotonic(), headers)
            )
        response = self._respond(request.path, query, headers)
        return response(environ, start_response)

    def _respond(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Response:
        if self.latency_s and self._stopping.wait(self.latency_s):
            return _json({"code": -1001, "msg": "Internal error; server stopping."}, 503)
        script = self._take_script(path)
        if script is not None:
            if script.delay_s and self._stopping.wait(script.delay_s):
                return _json({"code": -1001, "msg": "Internal error; server stopping."}, 503)
            if script.status is not None and script.echo_header is not None:
                name = script.echo_header
                message = f"invalid {name}: {headers.get(name, '')!s}"
                return _json({"code": -1000, "msg": message}, script.status)
            if script.status is not None:
                content_type = "application/json" if (script.body or "").startswith("{") else "text/html"
                return Response(script.body, script.status, headers=script.headers, content_type=content_type)
            if script.empty and path == KLINES:
                return _json([])
        route = _ROUTES.get(path)
        if route is None:
            return Response("<html><body>404 Not Found</body></html>", 404, content_type="text/html")
        return route(self, query)

    def _exchange_info(self, query: dict[str, str]) -> Response:
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": [_symbol_info(market_id) for market_id in self.symbols],
            }
        )

    def _klines(self, query: dict[str, str]) -> Response:
        market_id = query.get("symbol")
        if not market_id:
            return _json({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."}, 400)
        if market_id not in self.symbols:
            return _json({"code": -1121, "msg": "Invalid symbol."}, 400)
        interval = query.get("interval", "")
        if interval not in _INTERVAL_MS:
            return _json({"code": -1120, "msg": "Invalid interval."}, 400)
        try:
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
            limit = int(query.get("limit", "500"))
        except ValueError:
            return _json({"code": -1100, "msg": "Illegal characters found in a parameter."}, 400)
        return _json(self.klines(market_id, interval, start_ms=start, end_ms=end, limit=limit))

    def _time(self, query: dict[str, str]) -> Response:
        return _json({"serverTime": self.now_ms})

    def _ping(self, query: dict[str, str]) -> Response:
        return _json({})


_ROUTES = {
    EXCHANGE_INFO: FakeBinance._exchange_info,
    KLINES: FakeBinance._klines,
    "/api/v3/time": FakeBinance._time,
    "/api/v3/ping": FakeBinance._ping,
}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status, content_type="application/json")


def _error_body(status: int) -> str:
    if status == 429:
        msg = "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."
        return json.dumps({"code": -1003, "msg": msg})
    if status == 418:
        return json.dumps(
            {"code": -1003, "msg": f"Way too much request weight used; IP banned until {NOW_MS}."}
        )
    if status == 500:
        return json.dumps({"code": -1000, "msg": "An unknown error occurred while processing the request."})
    return f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"


def _symbol_info(market_id: str) -> dict[str, Any]:
    base, quote = market_id[:-4], market_id[-4:]
    return {
        "symbol": market_id,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100.00000000",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN", "TRD_GRP_004", "TRD_GRP_005"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _unit(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) for the given parts."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _price(base: float, phase: float, ts_ms: int) -> float:
    hours = ts_ms / 3_600_000
    wave = 0.25 * math.sin(hours / 2_000 + phase) + 0.06 * math.sin(hours / 97 + 2 * phase)
    return base * (1 + wave + 0.01 * math.sin(hours / 7.3 + 3 * phase) + 0.003 * math.sin(hours * 5.1))


def _floor(ts_ms: int, step: int, offset: int) -> int:
    return (ts_ms - offset) // step * step + offset


def _ceil(ts_ms: int, step: int, offset: int) -> int:
    return -((offset - ts_ms) // step) * step + offset


def iter_klines_windows(requests: Iterable[RecordedRequest]) -> Iterator[tuple[int | None, int | None]]:
    """(startTime, limit) of each recorded klines request, for assertions."""
    for r in requests:
        start = r.query.get("startTime")
        limit = r.query.get("limit")
        yield (int(start) if start else None, int(limit) if limit else None)
