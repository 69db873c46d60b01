"""Checking positions' invalidation conditions on candle frames (the engine's ``Watch``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from rez_cli.indicators import IndicatorMemo
from rez_cli.invalidation import Condition, InvalidationError, SeriesTables, first_firing, parse_invalidation


def condition_of(text: str | None) -> Condition | None:
    """The condition a stored invalidation holds, or None for none (or prose an older Rez stored)."""
    if text is None or not text.strip():
        return None
    try:
        return parse_invalidation(text)
    except InvalidationError:
        return None


class FrameWatch:
    """A ``Watch`` over candle frames fetched beforehand, one per timeframe.

    Every value is read from the candles closed by the moment asked (``first_firing``), so frames
    that run past it show it nothing later. A condition reading a timeframe that is not among the
    frames cannot be checked: it never holds, and ``unchecked`` names it once for the trace.

    Args:
        frames: candle frames by timeframe, oldest first.
        memo: indicator results over those frames (a backtest's history memo), or a new one.
    """

    def __init__(self, frames: Mapping[str, pd.DataFrame], memo: IndicatorMemo | None = None) -> None:
        self.frames = frames
        self.memo = memo or IndicatorMemo()
        self.unchecked: list[str] = []
        self._parsed: dict[str, Condition | None] = {}
        # A position is checked at every candle it stays open: each series is computed once.
        self._tables = SeriesTables(frames, self.memo)

    def holds(self, condition: str, previous_ms: int, moment_ms: int) -> str | None:
        if condition not in self._parsed:
            self._parsed[condition] = condition_of(condition)
        parsed = self._parsed[condition]
        if parsed is None:
            return None
        missing = [timeframe for timeframe in parsed.timeframes if timeframe not in self.frames]
        if missing:
            note = f"{condition}: no {', '.join(missing)} candles to check it on"
            if note not in self.unchecked:
                self.unchecked.append(note)
            return None
        firing = first_firing(parsed, self._tables, [moment_ms], previous_ms)
        return firing.describe() if firing is not None else None
