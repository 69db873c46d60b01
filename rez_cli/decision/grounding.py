"""Price grounding: a repaired answer counts only if its prices are ones the model saw or wrote.

The resilience model transcribes a decision out of text that did not parse; it must not decide. So
each price it gives (entry, take profit, stop loss) has to appear somewhere in what the reasoning
model wrote or read: its final text, the context, its turns, and its tools' results. A price found
nowhere is invented, and the cycle holds (``repair_invented_prices``). The live cycle checks a
repair this way, and ``rez traces replay`` checks a recorded one again with the same rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final

from rez_cli.decision.model import ModelAnswer

__all__ = ["invented_prices", "numbers_in"]

_NUMBER_IN_TEXT: Final = re.compile(
    r"""
    (?<![\w.])[-+]?                             # a sign only where it cannot be a hyphen: "5-10"
    (?:
        [0-9]{1,3}(?:,[0-9]{3})+(?![0-9])(?:\.[0-9]+)?   # 35,123.45
        | [0-9]+(?:\.[0-9]*)?                            # 35123.45, 35123.
        | \.[0-9]+                                       # .5
    )
    (?:[eE][-+]?[0-9]+)?
    """,
    re.VERBOSE | re.ASCII,
)


def numbers_in(text: str) -> set[float]:
    """Every finite number written in ``text``, to check that a repair invented no price.

    ``35,123.45``, ``35123.45``, ``3.5e4``, ``-1.2`` and ``.5`` are read; ``35 123`` is two numbers.
    A comma group is ambiguous (``[100,200]`` is a list, ``100,200`` a thousands-separated
    number), so both readings are returned: the result is an allow-list, and a missing reading
    would reject an honest repair.
    """
    found: set[float] = set()
    for match in _NUMBER_IN_TEXT.finditer(text):
        token = match.group()
        readings = [token.replace(",", "")]
        if "," in token:
            sign = "-" if token.startswith("-") else ""
            parts = token.lstrip("+-").split(",")
            readings += [sign + parts[0], *parts[1:]]
        for reading in readings:
            value = float(reading)
            if math.isfinite(value):
                found.add(value)
    return found


def invented_prices(answer: ModelAnswer, seen: Iterable[str]) -> list[str]:
    """The answer's prices written in none of the texts ``seen``, as ``entry_price=35123.0``.

    Empty when every price is grounded. A number matches one read in the texts up to float noise
    (a relative 1e-9), since ``35123.40`` and ``35123.4`` are one price.
    """
    known: set[float] = set()
    for text in seen:
        known |= numbers_in(text)
    return [
        f"{name}={value}"
        for name, value in (
            ("entry_price", answer.entry_price),
            ("tp_price", answer.tp_price),
            ("sl_price", answer.sl_price),
        )
        if value is not None and math.isfinite(value) and not _appears(value, known)
    ]


def _appears(value: float, known: set[float]) -> bool:
    return any(math.isclose(value, number, rel_tol=1e-9, abs_tol=1e-12) for number in known)
