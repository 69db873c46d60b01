"""Webhook notifications: a JSON message when a position opens or closes, or a failure forces a hold.

One message per event, POSTed as JSON to ``[notify] webhook`` (or ``rez decide --notify URL``). The
body holds the structured fields and the same one-line summary three ways: ``summary`` as it is,
``content`` for Discord (markdown escaped, at most 2,000 characters: Discord's limit) and ``text``
for Slack (``&``, ``<`` and ``>`` escaped, as Slack asks). ``allowed_mentions`` keeps a rationale's
``@everyone`` from pinging a Discord channel.

Text a model wrote is data: control characters, bidi controls and line breaks are taken out, lengths
are capped, and every configured secret is struck before anything is sent. A number that is not
finite is ``null``.

Delivery never raises and never changes a decision: a failure (a bad URL, a refused connection, a
timeout, an answer other than 2xx) is logged as one line and returned as one line. The URL holds the
channel's token, so it is a secret (``rez_cli.config.webhook``): a message names only its host.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import SecretStr

from rez_cli import redact
from rez_cli.actions import TRADE_ACTIONS
from rez_cli.clock import iso
from rez_cli.config import webhook
from rez_cli.config.settings import Settings
from rez_cli.decision.model import Decision
from rez_cli.errors import UsageError
from rez_cli.formatting import json_ready, price

__all__ = [
    "MAX_MESSAGE_CHARS",
    "CloseReason",
    "ClosedTrade",
    "Event",
    "EventKind",
    "deliver",
    "events_for",
    "payload",
    "with_webhook",
]

logger = logging.getLogger("rez_cli.notify")

EventKind = Literal["open", "close", "hold"]
# The backtest's exit reasons (fills.EXIT_REASONS), the model's invalidation firing, and the model's
# own close.
CloseReason = Literal[
    "target", "target_gap", "stop", "stop_gap", "liquidation", "invalidation", "close", "end"
]

# Discord refuses a content longer than this; Slack takes more, but both get the same line.
MAX_MESSAGE_CHARS: Final = 2000
_MAX_RATIONALE_CHARS: Final = 600
_MAX_FIELD_CHARS: Final = 1000
_MAX_SHORT_CHARS: Final = 200
_RESPONSE_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class ClosedTrade:
    """A position that closed, as the paper account reports it.

    ``pnl`` is in the quote currency, net of fees; ``r_multiple`` is ``pnl`` over the risk taken
    (None when the position had no stop). Times are ms since the epoch.
    """

    symbol: str
    side: Literal["long", "short"]
    entry_price: float
    exit_price: float
    reason: CloseReason
    pnl: float
    r_multiple: float | None
    opened_ms: int
    closed_ms: int


@dataclass(frozen=True)
class Event:
    """One thing worth telling a channel: ``text`` is its one-line summary, clean and capped.

    ``decision`` is set for ``open`` and ``hold`` (the decision that opened or was forced to hold),
    ``close`` for ``close``. ``at_ms`` is when it happened: the decision's moment, or the close.
    """

    kind: EventKind
    symbol: str
    at_ms: int
    text: str
    decision: Decision | None = None
    close: ClosedTrade | None = None


def events_for(decision: Decision, closed_trades: Iterable[ClosedTrade] = ()) -> list[Event]:
    """The events of one cycle: the closes found before it asked the model, then what it decided.

    A buy or a sell is an ``open``; a hold forced by a failure (``error`` set) is a ``hold``; a hold
    the model chose tells nobody anything new and gives no event.
    """
    events = [_closed(trade) for trade in closed_trades]
    if decision.error is not None:
        events.append(_held(decision))
    elif decision.action in TRADE_ACTIONS:
        events.append(_opened(decision))
    return events


def payload(event: Event) -> dict[str, Any]:
    """The JSON body sent for ``event``: structured fields, plus Discord's ``content`` and Slack's
    ``text`` carrying the event's one-line summary. Clean text, no secret, no NaN."""
    summary = _fit(event.text, MAX_MESSAGE_CHARS)
    body: dict[str, Any] = {
        "kind": event.kind,
        "symbol": _clean(event.symbol, _MAX_SHORT_CHARS),
        "time": iso(event.at_ms),
        "summary": summary,
        "content": _fit(_discord(summary), MAX_MESSAGE_CHARS),
        "text": _fit(_slack(summary), MAX_MESSAGE_CHARS),
        # Discord: mention nobody, whatever the text says (a rationale may hold "@everyone").
        "allowed_mentions": {"parse": []},
        "decision": _decision_fields(event.decision) if event.decision is not None else None,
        "close": _close_fields(event.close) if event.close is not None else None,
    }
    # The last gate: no registered secret in any field, and JSON has no NaN.
    return dict(json_ready(redact.active().value(body)))


def with_webhook(settings: Settings, override: str | None) -> Settings:
    """``settings`` with ``--notify URL`` as ``[notify] webhook``; the URL is a secret from here on
    (the journal strikes it from the recorded command line through ``secrets_of``).

    Raises:
        UsageError: the URL is not http(s) (the message does not repeat it).
    """
    if override is None:
        return settings
    if (problem := webhook.problem(override)) is not None:
        raise UsageError(
            f"--notify {problem}", hint="e.g. --notify https://discord.com/api/webhooks/ID/TOKEN"
        )
    redact.register(webhook.secrets(override))
    notify = settings.notify.model_copy(update={"webhook": SecretStr(override)})
    return settings.model_copy(update={"notify": notify})


def deliver(url: str, events: Sequence[Event], *, timeout_s: float) -> list[str]:
    """POST each event's ``payload`` to ``url``; never raises.

    Returns:
        One line per failure, naming the webhook by its host only. Once the webhook cannot be
        reached (refused, timed out, a bad URL), the events left are not tried: each would wait as
        long again.
    """
    if not events:
        return []
    guard = redact.active().extended(webhook.secrets(url))
    where = f"the webhook (host {_clean(webhook.host(url), _MAX_SHORT_CHARS)})"
    problems: list[str] = []

    def report(line: str) -> None:
        line = guard.text(_clean(line, MAX_MESSAGE_CHARS))
        logger.info("%s", line)
        problems.append(line)

    if webhook.problem(url) is not None:
        report(f"notify: {where} is not an http:// or https:// URL; {_count(len(events))} not sent")
        return problems
    for index, event in enumerate(events):
        failure, reachable = _post(url, payload(event), timeout_s)
        if failure is None:
            continue
        what = f"the {event.kind} event for {_clean(event.symbol, _MAX_SHORT_CHARS)}"
        left = len(events) - index - 1
        if reachable or not left:
            report(f"notify: {where} {failure} ({what})")
            continue
        report(f"notify: {where} {failure} ({what}); {_count(left, 'more ')} not sent")
        break
    return problems


# --- the three events ----------------------------------------------------------------------------------


def _opened(decision: Decision) -> Event:
    side = "long" if decision.action == "buy" else "short"
    ref = decision.last_price
    parts = [
        f"{_clean(decision.symbol, _MAX_SHORT_CHARS)}: opened {side} ({decision.action})",
        f"at {_price(decision.entry_price, ref)}",
        f"TP {_price(decision.tp_price, ref)}",
        f"SL {_price(decision.sl_price, ref)}",
        f"{_number(decision.leverage)}x",
        f"size {_number(decision.size_pct)}%",
        f"confidence {_number(decision.confidence * 100, digits=0)}%",
    ]
    text = " ".join(parts[:2]) + ", " + ", ".join(parts[2:])
    rationale = _clean(decision.rationale, _MAX_RATIONALE_CHARS)
    if rationale:
        text += f". Why: {rationale}"
    return Event("open", decision.symbol, decision.timestamp, _fit(text, MAX_MESSAGE_CHARS), decision)


def _held(decision: Decision) -> Event:
    code = _clean(decision.error or "", _MAX_SHORT_CHARS)
    text = f"{_clean(decision.symbol, _MAX_SHORT_CHARS)}: hold forced by a failure ({code})"
    rationale = _clean(decision.rationale, _MAX_RATIONALE_CHARS)
    if rationale:
        text += f". {rationale}"
    return Event("hold", decision.symbol, decision.timestamp, _fit(text, MAX_MESSAGE_CHARS), decision)


def _closed(trade: ClosedTrade) -> Event:
    ref = trade.entry_price if math.isfinite(trade.entry_price) and trade.entry_price > 0 else None
    r_multiple = "" if trade.r_multiple is None else f", {_number(trade.r_multiple, signed=True)}R"
    text = (
        f"{_clean(trade.symbol, _MAX_SHORT_CHARS)}: closed {trade.side} at {_price(trade.exit_price, ref)} "
        f"({_clean(trade.reason, _MAX_SHORT_CHARS)}), opened at {_price(trade.entry_price, ref)}: "
        f"P&L {_number(trade.pnl, signed=True)}{r_multiple}"
    )
    return Event("close", trade.symbol, trade.closed_ms, _fit(text, MAX_MESSAGE_CHARS), close=trade)


def _decision_fields(decision: Decision) -> dict[str, Any]:
    return {
        "action": decision.action,
        "entry_price": decision.entry_price,
        "tp_price": decision.tp_price,
        "sl_price": decision.sl_price,
        "leverage": decision.leverage,
        "size_pct": decision.size_pct,
        "confidence": decision.confidence,
        "rationale": _clean(decision.rationale, _MAX_FIELD_CHARS),
        "invalidation": _clean(decision.invalidation, _MAX_FIELD_CHARS) if decision.invalidation else None,
        "error": _clean(decision.error, _MAX_SHORT_CHARS) if decision.error else None,
        "mode": _clean(decision.mode, _MAX_SHORT_CHARS),
        "source": decision.source,
        "trace_id": _clean(decision.trace_id, _MAX_SHORT_CHARS),
        "time": iso(decision.timestamp),
        "as_of": iso(decision.as_of) if decision.as_of is not None else None,
        "last_price": decision.last_price,
        "exchange": _clean(decision.exchange, _MAX_SHORT_CHARS) if decision.exchange else None,
    }


def _close_fields(trade: ClosedTrade) -> dict[str, Any]:
    return {
        "side": trade.side,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "reason": _clean(trade.reason, _MAX_SHORT_CHARS),
        "pnl": trade.pnl,
        "r_multiple": trade.r_multiple,
        "opened": iso(trade.opened_ms),
        "closed": iso(trade.closed_ms),
    }


# --- text ----------------------------------------------------------------------------------------------

# Controls, format characters (bidi overrides among them), lone surrogates, line and paragraph
# separators: none belongs in a one-line chat message.
_DROPPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_DISCORD_MARKUP: Final = frozenset("\\*_~`|[]")
_SLACK_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _clean(text: str | None, limit: int) -> str:
    """``text`` on one line: whitespace runs as one space, controls and format characters gone,
    registered secrets struck, at most ``limit`` characters."""
    if not text:
        return ""
    # Bounded work whatever was pasted; the cap below is what counts.
    text = text[: limit * 4]
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) not in _DROPPED_CATEGORIES:
            kept.append(char)
    cleaned = " ".join("".join(kept).split())
    return _fit(redact.active().text(cleaned), limit)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _discord(text: str) -> str:
    return "".join(f"\\{char}" if char in _DISCORD_MARKUP else char for char in text)


def _slack(text: str) -> str:
    return "".join(_SLACK_ENTITIES.get(char, char) for char in text)


def _number(value: float, *, digits: int = 2, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1e12:
        return f"{value:+.3g}" if signed else f"{value:.3g}"
    if signed:
        return f"{value:+,.{digits}f}"
    written = f"{value:,.{digits}f}"
    return written.rstrip("0").rstrip(".") if "." in written else written


def _price(value: float | None, reference: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if value <= 0 or value >= 1e12:
        return f"{value:.6g}"
    usable = reference is not None and math.isfinite(reference) and reference > 0
    return price(value, reference if usable else None)


def _count(events: int, more: str = "") -> str:
    return f"{events} {more}event{'s' if events != 1 else ''}"


# --- HTTP ----------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured: following it would turn the POST into a GET."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _post(url: str, body: dict[str, Any], timeout_s: float) -> tuple[str | None, bool]:
    """POST ``body``; (None, True) when it was taken, else (what went wrong, whether the webhook
    was reached at all)."""
    data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    request = urllib.request.Request(
        url.strip(),
        data=data,
        method="POST",
        # Discord's edge refuses urllib's default agent.
        headers={"Content-Type": "application/json", "User-Agent": "rez-cli (webhook notifications)"},
    )
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read(_RESPONSE_BYTES)
    except urllib.error.HTTPError as error:
        error.close()
        return f"answered HTTP {error.code}", True
    except TimeoutError:
        return f"did not answer within {timeout_s:g} s", False
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            return f"did not answer within {timeout_s:g} s", False
        return f"could not be reached ({_reason(error.reason)})", False
    except (http.client.HTTPException, OSError) as error:
        return f"broke off the connection ({_reason(error)})", False
    except ValueError:
        return "is not a usable http:// or https:// URL", False
    # Whatever else a socket, TLS or the standard library raises, a decision is never undone by it.
    except Exception as error:
        return f"failed ({type(error).__name__})", False
    return None, True


def _reason(reason: object) -> str:
    # An exception's text may quote the URL; its strerror and type name cannot.
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    if isinstance(reason, BaseException):
        return type(reason).__name__
    return "no connection"
