"""Values on their way into the journal and back: redacted, finite, and checked when read.

The journal never stores a credential: everything written goes through a ``Codec``, whose
``Redactor`` turns each secret given to ``add_secret`` (8 characters or more: shorter ones are not
secrets) and every credential in a URL into ``***``. Only text changes: the stored JSON keeps its
keys and shape. Non-finite floats are stored as null, and integers beyond SQLite's 64 bits are
clamped. What is read back is JSON Rez wrote; anything else is a damaged journal, said in one line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rez_cli.errors import DataError
from rez_cli.formatting import compact_json
from rez_cli.redact import Redactor

__all__ = ["Codec", "JsonKind", "PolicyCheck", "finite", "integer", "parse_stored", "plain", "policy_checks"]

JsonKind = type[dict[str, Any]] | type[list[Any]]

_SQLITE_INT_MAX = 2**63 - 1
_SQLITE_INT_MIN = -(2**63)


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    """``value`` when it is an int (clamped to 64 bits), else None."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    # SQLite integers are 64-bit: a larger one (an endpoint reporting 10**19 tokens) would fail the
    # insert and leave the cycle unfinished. Clamped, the row is written and the excess is obvious.
    return max(_SQLITE_INT_MIN, min(value, _SQLITE_INT_MAX))


def plain(value: Any) -> Any:
    """``value`` as the JSON it will be stored as: non-finite floats null, keys text, the rest as str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    # Anything else would reach json.dumps as str() anyway.
    return str(value)


class Codec:
    """What a journal writes, as it writes it: text and JSON with its secrets struck out."""

    def __init__(self) -> None:
        self.redactor = Redactor()

    def add_secret(self, value: str) -> None:
        """Never write ``value`` (see ``Journal.add_secret``)."""
        self.redactor.add(value)

    def clean(self, value: Any) -> Any:
        return self.redactor.value(plain(value))

    def text(self, value: Any) -> str | None:
        """``value`` as stored text: a string redacted, anything else as redacted JSON."""
        if value is None:
            return None
        return self.redactor.text(value if isinstance(value, str) else json.dumps(self.clean(value)))

    def json(self, value: Any, *, text: str | None = None) -> str | None:
        """``value`` as stored JSON. ``text``: ``value`` already written as the journal writes it
        (compact, UTF-8, finite numbers only), so as not to write it twice."""
        if value is None:
            return None
        # Fast path: most values are plain finite JSON with no secret in them. Walking every value in
        # Python first cost more than the SQLite write; the walk now runs only when it is needed.
        if text is None:
            text = compact_json(value, own=False)
        if text is not None and not self.redactor.touches(text):
            return text
        return json.dumps(self.clean(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def parse_stored(text: Any, what: str, kind: JsonKind, journal: Path) -> Any:
    """A JSON column as ``Codec.json`` wrote it: a ``kind`` (empty when NULL), or one line saying so.

    Rez writes these columns itself; anything else in them (an edit by hand, a disk error) is a
    damaged journal, reported as such instead of failing deep inside a view.

    Raises:
        DataError: the text is not JSON, or not a ``kind``.
    """
    if text is None or text == "":
        return kind()
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # not JSON, or bytes that are not UTF-8
        value = None
    if not isinstance(value, kind):
        shape = "object" if kind is dict else "array"
        raise DataError(
            f"journal {journal} is damaged: {what} is not a JSON {shape}",
            hint="restore it from a backup, or use another --journal",
        )
    return value


PolicyCheck = tuple[int, int, str | None, bool, str | None]


def policy_checks(trace: Mapping[str, Any], text: Callable[[Any], str | None]) -> list[PolicyCheck]:
    """The policy's checks in a trace, one ``(verdict_idx, seq, rule, passed, detail)`` each, as the
    ``verdicts`` table holds them (``text`` makes a value stored text): the writer of a live cycle's
    rows and the reader of a backtest cycle, which keeps them in its trace alone, share this."""
    checks: list[PolicyCheck] = []
    for verdict_idx, verdict in enumerate(trace.get("verdicts") or []):
        listed = verdict.get("checks") if isinstance(verdict, Mapping) else None
        for seq, check in enumerate(listed or []):
            checks.append(
                (
                    verdict_idx,
                    seq,
                    text(str(check.get("rule", ""))),
                    bool(check.get("passed")),
                    text(check.get("detail")),
                )
            )
    return checks
