"""The one redactor: whatever Rez writes (the journal) or shows (stdout, stderr) goes through it.

What is a secret:

- a value the configuration holds under a credential-like name (``is_secret_key``): ``[llm]
  api_key``, ``OPENAI_API_KEY``, and any key of ``[exchange.ccxt]`` at any depth (``apiKey``,
  ``headers.X-Auth-Token``...); ``settings.secrets_of`` collects them with ``credentials_in``;
- a credential embedded in a URL: the user info of ``scheme://user:key@host`` and the value of a
  query parameter with a credential-like name (``?api_key=...``, ``?key=...``, ``&token=...``).

The rules:

- A value shorter than ``MIN_SECRET_CHARS`` (8) characters is not a secret. A local server's key is
  often ``"x"``; replacing every ``x`` in every stored text broke the journal's own field names and
  told an onlooker nothing anyway. Real API keys and exchange secrets are far longer.
- Only text changes, and only where a secret occurs in it: each occurrence (also JSON-escaped,
  ``repr``-escaped or percent-encoded) becomes ``***``. Numbers, booleans, ``None``, nesting, and
  every key are kept, so readers of the journal find the names they wrote. The one exception is a
  key that itself holds a whole secret: a credential is never written, not even as a name.
- URL credentials are struck by their position in the URL, whatever their length.

``active()`` is the redactor of this invocation: ``settings.load_settings`` registers the loaded
configuration's secrets with it, and the views that have no settings at hand (the error line of
``main()``, JSON on stdout) use it. ``cli.app.main`` starts each invocation with a fresh one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "Redactor",
    "active",
    "credentials_in",
    "is_secret_key",
    "mask_secret_keys",
    "redact_url",
    "register",
    "reset_active",
    "strip_url_credentials",
    "url_credentials",
]

MIN_SECRET_CHARS = 8
REDACTED = "***"

# ccxt's credential names (requiredCredentials) and what proxies, signed headers and URL query
# strings add; compared without case, "_" or "-". Short names match whole, longer ones anywhere.
_SECRET_NAMES = {"uid", "login", "key", "pin", "otp", "auth", "pass", "pwd"}
_SECRET_PARTS = (
    "apikey",
    "secret",
    "password",
    "passphrase",
    "privatekey",
    "walletaddress",
    "token",
    "twofa",
    "accesskey",
    "authorization",
    "credential",
    "signature",
    "cookie",
)

# A URL in free text: a scheme, then everything up to whitespace, a quote, a bracket or a backslash
# (the end of a URL quoted in JSON, HTML or a repr).
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>\\`]*")


def is_secret_key(name: str) -> bool:
    """Whether a key's name looks like a credential (``apiKey``, ``secret``, ``password``, ``key``...)."""
    folded = name.lower().replace("_", "").replace("-", "")
    return folded in _SECRET_NAMES or any(part in folded for part in _SECRET_PARTS)


# --- URLs ----------------------------------------------------------------------------------------------


def _split_authority(rest: str) -> tuple[str, str]:
    """``rest`` (what follows ``scheme://``) as (authority, the path, query and fragment)."""
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    return rest[:end], rest[end:]


def _strip_params(part: str) -> str:
    # ``part`` is a query or a fragment without its leading ? or #; both separators are in use.
    pieces = re.split(r"([&;])", part)
    for index in range(0, len(pieces), 2):
        name, equals, value = pieces[index].partition("=")
        if equals and value and value != REDACTED and is_secret_key(unquote_plus(name)):
            pieces[index] = f"{name}={REDACTED}"
    return "".join(pieces)


def _strip_one(url: str, scheme_end: int) -> str:
    head, rest = url[:scheme_end], url[scheme_end:]
    authority, tail = _split_authority(rest)
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        if userinfo and userinfo != REDACTED:
            authority = f"{REDACTED}@{host}"
    path, hash_mark, fragment = tail.partition("#")
    path, question, query = path.partition("?")
    if question:
        query = _strip_params(query)
    if hash_mark:
        fragment = _strip_params(fragment)
    return f"{head}{authority}{path}{question}{query}{hash_mark}{fragment}"


def strip_url_credentials(text: str) -> str:
    """``text`` with the user info and credential-named query values of every URL in it as ``***``."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: _strip_one(match.group(0), match.group(0).index("://") + 3), text)


def redact_url(url: str) -> str:
    """One configured URL (``base_url``, a proxy) as it may be shown; a missing scheme is allowed."""
    if "://" in url:
        return strip_url_credentials(url)
    if url.startswith("//"):
        return _strip_one(url, 2)
    # "user:key@host:8080/v1" has no scheme, but its credentials are just as real.
    return _strip_one(f"//{url}", 2)[2:]


def _url_parts(url: str) -> list[str]:
    """The credentials one URL carries: its user info (and password alone), credential-named params."""
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
    except ValueError:
        return []
    found: list[str] = []
    authority = parts.netloc
    if "@" in authority:
        userinfo = authority.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        found += [userinfo, password] if colon else [user]
    for part in (parts.query, parts.fragment):
        for piece in re.split(r"[&;]", part):
            name, equals, value = piece.partition("=")
            if equals and value and is_secret_key(unquote_plus(name)):
                found.append(value)
    # Both as written and decoded: a key with a "/" is %2F in the URL and "/" once it is used.
    return [form for value in found if value for form in dict.fromkeys((value, unquote(value)))]


def url_credentials(text: str) -> list[str]:
    """Every credential embedded in the URLs of ``text`` (or in ``text`` itself when it is a bare URL)."""
    urls = _URL.findall(text) if "://" in text else []
    if not urls and "@" in text and not any(char.isspace() for char in text):
        urls = [text]  # "user:key@host/v1", a base_url written without its scheme
    return [found for url in urls for found in _url_parts(url)]


# --- what a configuration holds ----------------------------------------------------------------------


def credentials_in(value: Any, *, secret: bool = False) -> list[str]:
    """Every credential in a nested table: text under a credential-like key (at any depth), and the
    credentials embedded in any URL. ``secret``: treat all of ``value`` as a credential."""
    found: list[str] = []

    def walk(item: Any, under_secret: bool) -> None:
        if isinstance(item, Mapping):
            for key, child in item.items():
                walk(child, under_secret or is_secret_key(str(key)))
        elif isinstance(item, list | tuple):
            for child in item:
                walk(child, under_secret)
        elif isinstance(item, str) and item:
            if under_secret:
                found.append(item)
            found.extend(url_credentials(item))

    walk(value, secret)
    return list(dict.fromkeys(found))


def mask_secret_keys(value: Any) -> Any:
    """``value`` with each non-empty value under a credential-like key, at any depth, as ``***``,
    and URL credentials struck from the rest (``rez config show``: the names stay visible)."""
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if is_secret_key(str(key)) and item not in (None, "") else mask_secret_keys(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secret_keys(item) for item in value]
    if isinstance(value, str):
        return strip_url_credentials(value)
    return value


# --- the redactor --------------------------------------------------------------------------------------


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` may be spelled in text Rez writes: raw, JSON-, repr- and URL-escaped."""
    forms = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


class Redactor:
    """Strikes a set of secrets (and URL credentials) out of text and of JSON-like values.

    Args:
        secrets: the values to strike; those shorter than ``MIN_SECRET_CHARS`` (after stripping
            surrounding whitespace) are ignored, as are empty ones.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: dict[str, None] = {}
        self._forms: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets struck out (those long enough to be secrets)."""
        return tuple(self._secrets)

    def add(self, secret: str) -> None:
        """Strike ``secret`` from now on, when it is long enough to be one."""
        if not isinstance(secret, str):
            return
        new = [value for value in dict.fromkeys((secret, secret.strip())) if _is_long_enough(value)]
        new = [value for value in new if value not in self._secrets]
        if not new:
            return
        for value in new:
            self._secrets[value] = None
        forms = {form for value in self._secrets for form in _forms(value)}
        # Longest first: a secret that contains another is struck out whole.
        self._forms = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        self._pattern = re.compile("|".join(re.escape(form) for form in self._forms))

    def extended(self, secrets: Iterable[str]) -> Redactor:
        """A new redactor with this one's secrets and ``secrets``."""
        return Redactor([*self._secrets, *secrets])

    def touches(self, text: str) -> bool:
        """Whether ``text`` may hold something to strike (cheap: substring tests, no regex)."""
        return "://" in text or any(form in text for form in self._forms)

    def holds_secret(self, text: str) -> bool:
        """Whether one of the secrets, in any of its spellings, occurs in ``text`` (URLs aside)."""
        return any(form in text for form in self._forms)

    def text(self, text: str) -> str:
        """``text`` with URL credentials and every secret replaced by ``***``."""
        text = strip_url_credentials(text)
        if self._pattern is None:
            return text
        # Striking one occurrence can join its neighbours into another ("a" + "***b..." where the
        # secret is "a***b..."); each pass shortens the text, so this ends.
        while True:
            struck = self._pattern.sub(REDACTED, text)
            if struck == text:
                return text
            text = struck

    def value(self, value: Any) -> Any:
        """``value`` (JSON-like: mappings, lists, tuples, text, numbers) with its text redacted.

        The shape and types are kept; a key changes only when it holds a whole secret. A value with
        nothing to strike is returned as it is (not copied).
        """
        try:
            # One C-speed serialisation answers for the whole tree; most values hold nothing to strike.
            serialised = json.dumps(value, ensure_ascii=False, default=repr)
        except (TypeError, ValueError, RecursionError):
            serialised = None
        if serialised is not None and not self.touches(serialised):
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value) if self.touches(value) else value
        if isinstance(value, Mapping):
            return {self._key(key): self._walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._walk(item) for item in value)
        return value

    def _key(self, key: Any) -> Any:
        if not isinstance(key, str) or not self._forms or not any(form in key for form in self._forms):
            return key
        return self.text(key)

    def __call__(self, text: str) -> str:
        return self.text(text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


def _is_long_enough(value: str) -> bool:
    return len(value.strip()) >= MIN_SECRET_CHARS


_active = Redactor()


def active() -> Redactor:
    """The redactor of this invocation: every secret registered so far."""
    return _active


def register(secrets: Iterable[str]) -> None:
    """Add ``secrets`` to ``active()``."""
    for secret in secrets:
        _active.add(secret)


def reset_active() -> None:
    """Forget the registered secrets: a new invocation (``main()`` run again in one process) starts clean."""
    global _active
    _active = Redactor()
