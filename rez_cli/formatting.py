"""How Rez writes numbers for people and for JSON: prices, percentages, shares, and no NaN in JSON.

A price is shown to about five significant digits of its instrument (``price_decimals``), so that
BTC at 35,123.46 and a coin at 0.000012340 both read at a useful precision; the context the model
reads, the terminal, and the backtest's notes all write them this way. ``n/a`` stands for a value
there is none of. JSON written for ``--json`` holds no NaN or infinity (``json_ready``): a number
that is not finite is ``null``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["compact_json", "json_ready", "price", "price_decimals", "share", "signed_pct"]


# A context writes a dozen prices to the decimals of one reference, a backtest thousands of contexts.
@functools.lru_cache(maxsize=1024)
def price_decimals(reference_price: float) -> int:
    """Decimals that show a price of this size to about 5 significant digits, and never fewer than 2.

    ``35123.4567`` -> 2, ``1.9534`` -> 4, ``0.00001234`` -> 9 (``0.000012340``).

    Raises:
        ValueError: the reference price is not a positive finite number.
    """
    if not math.isfinite(reference_price) or reference_price <= 0:
        raise ValueError(f"reference price must be positive and finite, got {reference_price!r}")
    magnitude = math.floor(math.log10(reference_price))
    return min(12, max(2, 4 - magnitude))


def price(value: float | None, reference: float | None = None, *, missing: str = "n/a") -> str:
    """A price-unit value with thousands separators, to the decimals of ``reference`` (default: itself).

    Raises:
        ValueError: the reference is not a positive finite number.
    """
    if value is None:
        return missing
    decimals = price_decimals(value if reference is None else reference)
    rounded = round(value, decimals) if math.isfinite(value) else value
    # round() keeps the sign of a tiny negative: "-0.00" would read as a level below zero.
    return f"{0.0 if rounded == 0 else rounded:,.{decimals}f}"


def signed_pct(value: float | None, digits: int = 2) -> str:
    """A change in percent, always signed: ``+1.25%``, ``-0.40%``."""
    return "n/a" if value is None else f"{value:+.{digits}f}%"


def share(value: float | None) -> str:
    """A fraction as a percentage to one decimal: 0.375 -> ``37.5%``."""
    return "n/a" if value is None else f"{value:.1%}"


def json_ready(value: Any) -> Any:
    """``value`` with every float that is not finite as None, through mappings, lists and tuples.

    JSON has no NaN or infinity, and a reader of ``--json`` output must not meet them.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def compact_json(value: Any, *, own: bool = True) -> str | None:
    """``value`` as the journal and the trace write JSON: compact, UTF-8 as it is, finite numbers
    only; None when it holds NaN or an infinity, or something JSON has no word for.

    The text is what ``json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))``
    writes, but for the spelling of some numbers (``1e-7`` for ``1e-07``, ``0.00001`` for ``1e-05``),
    which read back as the same ones. pydantic-core's serializer writes it about ten times as fast
    (a backtest writes a few kilobytes of floats every cycle); ``json`` still decides every case it
    would not answer alike.
    Meant for Rez's own JSON-like values (``own``): a date, a set or a key that is not a string
    inside a dict or list is written as pydantic writes it (an ISO string, a list, ``"None"``) where
    ``json`` would refuse it or write ``"null"``. ``own=False``, for a value that may hold anything
    (a plugin mode's payload), has ``json`` write it all.
    """
    from pydantic_core import to_json

    if own and isinstance(value, dict | list):
        try:
            # "constants": a NaN or infinity comes out as a bare word this check finds.
            raw = to_json(value, inf_nan_mode="constants")
        except ValueError:  # a lone surrogate (a model's "\ud800"), which UTF-8 cannot hold
            raw = None
        # The words can also be in a string: then json, which knows the difference, decides.
        if raw is not None and b"NaN" not in raw and b"Infinity" not in raw:
            return raw.decode()
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
