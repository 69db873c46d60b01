"""A webhook URL (``[notify] webhook``, ``--notify``): what makes one valid, and what in it is secret.

Discord and Slack webhook URLs carry their token in the path
(``https://discord.com/api/webhooks/<id>/<token>``, ``https://hooks.slack.com/services/T/B/<token>``):
whoever reads the URL can post to the channel. So the whole URL is a secret, and so are its path and
its long path segments, which an error message may quote without the host. Only the host is ever
shown: "the webhook (host discord.com)".
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from rez_cli.redact import url_credentials

__all__ = ["host", "problem", "secrets"]

# A path segment this long is a token or an id, not a word such as "webhooks" or "services".
_TOKEN_CHARS = 16


def problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook, in words that do not repeat it, or None when it can."""
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return "must be an http:// or https:// URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not hostname:
        return "must be an http:// or https:// URL with a host"
    return None


def host(url: str) -> str:
    """The host of ``url``, the one part of a webhook that may be shown ("unknown" when it has none)."""
    try:
        return urlsplit(url.strip()).hostname or "unknown"
    except ValueError:
        return "unknown"


def secrets(url: str) -> list[str]:
    """What of ``url`` must never be shown: the URL, its path and query, its long path segments and
    any credentials in it (``user:key@``, ``?token=``)."""
    found = [url, url.strip(), *url_credentials(url)]
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return found
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    found += [tail, parts.path, parts.query]
    found += [segment for segment in parts.path.split("/") if len(segment) >= _TOKEN_CHARS]
    found += [unquote(value) for value in found if "%" in value]
    return [value for value in dict.fromkeys(found) if value]
