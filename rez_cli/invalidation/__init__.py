"""Invalidation conditions: the small language a trade's ``invalidation`` is written in, and its check.

- ``language``: the syntax tree (``Condition``, ``Term``, ``Series``, ``Number``) and
  ``parse_invalidation``, a bounded recursive-descent parser whose every failure is an
  ``InvalidationError`` with a one-line message;
- ``evaluation``: ``first_firing`` / ``holds``, the condition evaluated over candle frames at the
  primary candles' close times, vectorised, with no look-ahead.

The grammar is in the README ("Invalidation conditions"). A hold's invalidation is free prose and is
never parsed; ``invalidation_problem`` and ``parse_optional`` take None or blank text as "no condition".
"""

from __future__ import annotations

from rez_cli.invalidation.evaluation import (
    Firing,
    Reading,
    SeriesTables,
    first_firing,
    holds,
    moment_text,
    series_at,
)
from rez_cli.invalidation.language import (
    COMPARATORS,
    MAX_CHARS,
    MAX_TERMS,
    PRICES,
    Comparator,
    Condition,
    InvalidationError,
    Number,
    Series,
    Term,
    invalidation_problem,
    parse_invalidation,
    parse_optional,
    single_output_indicators,
)

__all__ = [
    "COMPARATORS",
    "MAX_CHARS",
    "MAX_TERMS",
    "PRICES",
    "Comparator",
    "Condition",
    "Firing",
    "InvalidationError",
    "Number",
    "Reading",
    "Series",
    "SeriesTables",
    "Term",
    "first_firing",
    "holds",
    "invalidation_problem",
    "moment_text",
    "parse_invalidation",
    "parse_optional",
    "series_at",
    "single_output_indicators",
]
