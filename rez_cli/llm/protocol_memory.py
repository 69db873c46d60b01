"""Which tool protocol a cycle starts with, and what ``auto`` remembers of an endpoint.

``[llm] tool_protocol``:

- ``native``: tools go in the request's ``tools``; the model calls them as function calls.
- ``text``: no ``tools`` are sent; the prompt describes them and the model writes ``CALL`` lines
  (``text_protocol.py``).
- ``auto`` (the default): native, until the endpoint refuses the tools or the model writes ``CALL``
  lines instead of calling them; the cycle then goes on in text, and the switch is remembered for
  that endpoint and model, so the next run starts in text without asking again.

What is remembered lives in ``<cache dir>/llm/tool_protocol.json`` (0600), one entry per endpoint
(``host:port``, as ``endpoint_label`` shows it) and model, for ``REMEMBER_DAYS``: a server upgraded
to take tools is tried natively again after that, or at once when the file is deleted. It is an
optimisation: a file that cannot be read or written is no memory, never a failed cycle.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rez_cli import clock
from rez_cli.config import paths
from rez_cli.redact import active

__all__ = [
    "FILENAME",
    "REMEMBER_DAYS",
    "Protocol",
    "Remembered",
    "forget",
    "memory_path",
    "recall",
    "remember",
    "starting_protocol",
]

Protocol = Literal["native", "text"]
FILENAME = "tool_protocol.json"
REMEMBER_DAYS = 30
# Entries are a few hundred bytes; a file far larger than any real one is not ours to parse.
MAX_FILE_BYTES = 1_000_000
MAX_ENTRIES = 200


@dataclass(frozen=True)
class Remembered:
    """A switch to the text protocol that ``auto`` made for an endpoint and model."""

    endpoint: str
    model: str
    protocol: Protocol
    reason: str
    saved_ms: int


def memory_path() -> Path:
    """``<cache dir>/llm/tool_protocol.json``; ``REZ_HOME`` moves it with the rest of Rez's state."""
    return paths.cache_dir() / "llm" / FILENAME


def starting_protocol(setting: str, endpoint: str, model: str) -> tuple[Protocol, Remembered | None]:
    """The protocol a cycle starts with, and the remembered switch behind it (``auto`` only).

    Args:
        setting: ``[llm] tool_protocol``: ``auto``, ``native`` or ``text``.
        endpoint: the endpoint's label (``endpoint_label``).
        model: the model name as sent.
    """
    if setting == "text":
        return "text", None
    if setting == "native":
        return "native", None
    remembered = recall(endpoint, model)
    return (remembered.protocol, remembered) if remembered is not None else ("native", None)


def recall(endpoint: str, model: str, *, now_ms: int | None = None) -> Remembered | None:
    """The remembered switch for this endpoint and model, unless it is older than ``REMEMBER_DAYS``."""
    now = now_ms if now_ms is not None else clock.now_ms()
    for entry in _entries(_read()):
        if entry.endpoint == endpoint and entry.model == model:
            fresh = now - entry.saved_ms < REMEMBER_DAYS * 86_400_000
            return entry if fresh else None
    return None


def remember(endpoint: str, model: str, reason: str, *, protocol: Protocol = "text") -> None:
    """Record that ``auto`` switched this endpoint and model to ``protocol`` (replacing any earlier entry)."""
    entry = Remembered(endpoint, model, protocol, reason, clock.now_ms())
    kept = [old for old in _entries(_read()) if (old.endpoint, old.model) != (endpoint, model)]
    _write([*kept[-(MAX_ENTRIES - 1) :], entry])


def forget(endpoint: str, model: str) -> None:
    """Drop what is remembered for this endpoint and model, if anything."""
    entries = _entries(_read())
    kept = [old for old in entries if (old.endpoint, old.model) != (endpoint, model)]
    if len(kept) != len(entries):
        _write(kept)


def _read() -> Any:
    path = memory_path()
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # absent, unreadable, not JSON, nested past the stack
        return None


def _entries(data: Any) -> list[Remembered]:
    items = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        endpoint, model, protocol = item.get("endpoint"), item.get("model"), item.get("protocol")
        saved_ms, reason = item.get("saved_ms"), item.get("reason")
        if (
            isinstance(endpoint, str)
            and isinstance(model, str)
            and protocol in ("native", "text")
            and isinstance(saved_ms, int)
            and not isinstance(saved_ms, bool)
        ):
            entries.append(
                Remembered(endpoint, model, protocol, reason if isinstance(reason, str) else "", saved_ms)
            )
    return entries


def _write(entries: list[Remembered]) -> None:
    path = memory_path()
    data = {
        "version": 1,
        "entries": [
            {
                "endpoint": entry.endpoint,
                "model": entry.model,
                "protocol": entry.protocol,
                "reason": entry.reason,
                "saved_ms": entry.saved_ms,
            }
            for entry in entries
        ],
    }
    # The reason quotes a server's error, which may echo a key: struck as the journal is.
    text = active().text(json.dumps(data, indent=1, ensure_ascii=False)) + "\n"
    temporary = path.with_name(f".{FILENAME}.{os.getpid()}.{time.monotonic_ns()}")
    try:
        paths.private_dir(path.parent)
        with open(paths.open_private(temporary, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as handle:
            handle.write(text)
        # Whole or not at all: concurrent runs each replace the file, none reads half of one.
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
