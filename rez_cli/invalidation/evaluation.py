"""Evaluating a parsed condition over candles: at which moment, if any, it first holds.

A moment is the close time of a primary candle (its open time + interval, ms). A series takes the
value of the last candle of its own timeframe closed by that moment (open time + interval <= moment),
never of a candle still open; an indicator's value at a candle is what ``compute`` gives at that
candle over the frame passed, which reads that candle and earlier ones only. Truncating the frames
after a moment therefore never changes what is found up to it (no look-ahead).

Everything is vectorised: each series is computed once over its frame and looked up at every moment
with one ``searchsorted``; terms, clauses and the condition are boolean arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from rez_cli import indicators
from rez_cli.errors import DataNotFound
from rez_cli.invalidation.language import Condition, Number, Operand, Series, Term, clause_text
from rez_cli.timeframes import timeframe_ms

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
BoolArray = np.ndarray[tuple[int], np.dtype[np.bool_]]
Moments = Sequence[int] | np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Reading:
    """What one term of the clause that fired saw."""

    term: Term
    left: float
    right: float
    left_before: float | None = None
    """For a crossing: the values at the previous moment."""
    right_before: float | None = None

    @property
    def text(self) -> str:
        """``close_1h 61150 < 61200``: each series followed by its value, numbers as written."""
        seen = f"{_operand_text(self.term.left, self.left)} {self.term.comparator} "
        seen += _operand_text(self.term.right, self.right)
        if self.left_before is not None and self.right_before is not None:
            seen += f" (before: {_value_text(self.left_before)} vs {_value_text(self.right_before)})"
        return seen


@dataclass(frozen=True)
class Firing:
    """The first moment a condition held, the clause that held, and the values it saw."""

    moment_ms: int
    clause_index: int
    """Which clause (0-based, in the order written) held; the first one that did."""
    readings: tuple[Reading, ...]

    @property
    def clause_text(self) -> str:
        return clause_text(tuple(reading.term for reading in self.readings))

    def describe(self) -> str:
        """One trace line: ``close_1h 61150 < 61200 at 2021-03-02T14:00Z``."""
        seen = " and ".join(reading.text for reading in self.readings)
        return f"{seen} at {moment_text(self.moment_ms)}"


def moment_text(moment_ms: int) -> str:
    """A moment as the trace shows it, to the minute: ``2021-03-02T14:00Z``."""
    try:
        return datetime.fromtimestamp(moment_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
    except (ValueError, OverflowError, OSError):
        return f"{moment_ms} ms"


def _value_text(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.8g}"


def _operand_text(operand: Operand, value: float) -> str:
    return operand.text if isinstance(operand, Number) else f"{operand.text} {_value_text(value)}"


def series_at(
    series: Series,
    frame: pd.DataFrame,
    moments_ms: Moments,
    *,
    memo: indicators.IndicatorMemo | None = None,
) -> FloatArray:
    """The series' value at each moment: that of the last candle of ``frame`` closed by it (NaN
    before the first closes, and where an indicator has no value yet).

    Args:
        series: a series of the condition.
        frame: a validated candle frame of ``series.timeframe``, oldest first.
        moments_ms: evaluation moments, ms since epoch, ascending.
        memo: where indicator results are remembered (a backtest's ``HistorySource`` memo); the
            values are the same without one.
    """
    return SeriesTable(series, frame, memo).at(moments_ms)


class SeriesTable:
    """A series' value at every candle of one frame, with the candles' close times: what
    ``series_at`` looks moments up in. Built once, it answers any number of moments, which is what a
    position checked candle after candle over the same frames needs."""

    def __init__(self, series: Series, frame: pd.DataFrame, memo: indicators.IndicatorMemo | None = None):
        self.per_candle = _per_candle(series, frame, memo) if len(frame) else np.empty(0)
        self.closes = frame["timestamp"].to_numpy(dtype=np.int64) + timeframe_ms(series.timeframe)

    def at(self, moments_ms: Moments) -> FloatArray:
        moments = np.asarray(moments_ms, dtype=np.int64)
        if not len(self.closes):
            return np.full(len(moments), np.nan)
        last_closed = np.searchsorted(self.closes, moments, side="right") - 1
        values: FloatArray = np.where(last_closed >= 0, self.per_candle[np.maximum(last_closed, 0)], np.nan)
        return values


class SeriesTables:
    """The ``SeriesTable`` of every series asked for over fixed frames, each built on first use.

    Args:
        frames: a validated candle frame per timeframe, oldest first; they must not change while
            this is in use.
        memo: as for ``series_at``.
    """

    def __init__(
        self, frames: Mapping[str, pd.DataFrame], memo: indicators.IndicatorMemo | None = None
    ) -> None:
        self.frames = frames
        self.memo = memo
        self._tables: dict[Series, SeriesTable] = {}

    def at(self, series: Series, moments_ms: Moments, condition: Condition) -> FloatArray:
        table = self._tables.get(series)
        if table is None:
            frame = self.frames.get(series.timeframe)
            if frame is None:
                raise DataNotFound(
                    f"no {series.timeframe} candles to evaluate {series.text} in {condition.text!r}"
                )
            table = self._tables[series] = SeriesTable(series, frame, self.memo)
        return table.at(moments_ms)


def _per_candle(series: Series, frame: pd.DataFrame, memo: indicators.IndicatorMemo | None) -> FloatArray:
    if series.is_price:
        column: FloatArray = frame[series.name].to_numpy(dtype=np.float64)
        return column
    params = series.params_model
    if memo is not None:
        (only,) = memo.values(frame, series.timeframe, series.name, params).values()
        return only
    result = indicators.compute(frame, series.name, params)
    values: FloatArray = result.iloc[:, 0].to_numpy(dtype=np.float64)
    return values


def holds(
    condition: Condition,
    frames: Mapping[str, pd.DataFrame] | SeriesTables,
    moments_ms: Moments,
    previous_ms: int | None = None,
    *,
    memo: indicators.IndicatorMemo | None = None,
) -> BoolArray:
    """Whether the condition holds at each moment (one bool per moment).

    Args:
        condition: a parsed condition.
        frames: a validated candle frame per timeframe the condition reads (``condition.timeframes``);
            other timeframes are ignored. Or ``SeriesTables`` over such frames, to evaluate the
            same frames at many moments without looking each series up again.
        moments_ms: the moments to evaluate, ms since epoch, ascending: the close times of the
            primary candles.
        previous_ms: the moment before the first one (the previous evaluation, or the moment the
            position was decided), which a crossing at the first moment compares with; None: no
            crossing can hold at the first moment.
        memo: as for ``series_at``.

    Raises:
        DataNotFound: ``frames`` has no frame for a timeframe the condition reads.
    """
    held, _ = _evaluate(condition, _tables(frames, memo), moments_ms, previous_ms)
    return held


def first_firing(
    condition: Condition,
    frames: Mapping[str, pd.DataFrame] | SeriesTables,
    moments_ms: Moments,
    previous_ms: int | None = None,
    *,
    memo: indicators.IndicatorMemo | None = None,
) -> Firing | None:
    """The first moment the condition holds, which clause held and what it saw; None if it never does.

    Arguments and errors as for ``holds``.
    """
    held, clauses = _evaluate(condition, _tables(frames, memo), moments_ms, previous_ms)
    if not held.any():
        return None
    at = int(np.argmax(held))
    index = next(number for number, clause in enumerate(clauses) if clause.held[at])
    readings = tuple(reading.at(at) for reading in clauses[index].terms)
    return Firing(int(np.asarray(moments_ms, dtype=np.int64)[at]), index, readings)


@dataclass(frozen=True)
class _TermArrays:
    term: Term
    left: FloatArray
    right: FloatArray
    left_before: FloatArray
    right_before: FloatArray

    def at(self, position: int) -> Reading:
        if not self.term.crossing:
            return Reading(self.term, float(self.left[position]), float(self.right[position]))
        return Reading(
            self.term,
            float(self.left[position]),
            float(self.right[position]),
            float(self.left_before[position]),
            float(self.right_before[position]),
        )


@dataclass(frozen=True)
class _ClauseArrays:
    terms: tuple[_TermArrays, ...]
    held: BoolArray


def _tables(
    frames: Mapping[str, pd.DataFrame] | SeriesTables, memo: indicators.IndicatorMemo | None
) -> SeriesTables:
    return frames if isinstance(frames, SeriesTables) else SeriesTables(frames, memo)


def _evaluate(
    condition: Condition,
    tables: SeriesTables,
    moments_ms: Moments,
    previous_ms: int | None,
) -> tuple[BoolArray, list[_ClauseArrays]]:
    moments = np.asarray(moments_ms, dtype=np.int64)
    count = len(moments)
    # One lookup per series covers the previous moment too: it sits just before the first.
    with_previous = np.concatenate(([previous_ms], moments)) if previous_ms is not None else moments
    values: dict[Series, FloatArray] = {}
    for series in condition.series:
        looked_up = tables.at(series, with_previous, condition)
        if previous_ms is None:
            # No previous moment: its values are unknown, so no crossing holds at the first moment.
            looked_up = np.concatenate(([np.nan], looked_up))
        values[series] = looked_up

    def operand(side: Operand) -> FloatArray:
        if isinstance(side, Number):
            return np.full(count + 1, side.value)
        return values[side]

    held = np.zeros(count, dtype=bool)
    clauses = []
    for clause in condition.clauses:
        clause_held = np.ones(count, dtype=bool)
        arrays = []
        for term in clause:
            left, right = operand(term.left), operand(term.right)
            now_left, now_right = left[1:], right[1:]
            before_left, before_right = left[:-1], right[:-1]
            term_held = _compare(term, now_left, now_right, before_left, before_right)
            clause_held &= term_held
            arrays.append(_TermArrays(term, now_left, now_right, before_left, before_right))
        held |= clause_held
        clauses.append(_ClauseArrays(tuple(arrays), clause_held))
    return held, clauses


def _compare(
    term: Term, left: FloatArray, right: FloatArray, left_before: FloatArray, right_before: FloatArray
) -> BoolArray:
    # NaN compares false both ways: a series without a value yet makes its term false.
    match term.comparator:
        case "<":
            result: BoolArray = left < right
        case "<=":
            result = left <= right
        case ">":
            result = left > right
        case ">=":
            result = left >= right
        case "crosses_above":
            result = (left > right) & (left_before <= right_before)
        case "crosses_below":
            result = (left < right) & (left_before >= right_before)
    return result
