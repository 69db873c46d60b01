"""What a model or a person reads of an indicator: its last values, rounded, as rows or a table.

Prices are rounded to the instrument's precision (``price_decimals``), scores to 2 decimals, volumes
to 6 significant digits of the largest value shown, directions to whole numbers; NaN during warm-up
reads ``n/a`` (``None`` in rows). Times are candle open times in UTC.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from rez_cli.formatting import price_decimals
from rez_cli.indicators.params import IndicatorError
from rez_cli.indicators.specs import DAY_MS, Unit


def round_value(value: float, reference_price: float) -> float:
    """A price-unit value rounded to ``price_decimals(reference_price)``; NaN stays NaN."""
    if not math.isfinite(value):
        return value
    return _clean(round(value, price_decimals(reference_price)))


def _clean(value: float) -> float:
    # round() keeps the sign of tiny negatives: -0.0 reads as a signal where there is none.
    return 0.0 if value == 0 else value


def _column_decimals(unit: Unit, values: np.ndarray[Any, Any], reference_price: float) -> int:
    if unit is Unit.PRICE:
        return price_decimals(reference_price)
    if unit is Unit.DIRECTION:
        return 0
    if unit is Unit.VOLUME:
        finite = np.abs(values[np.isfinite(values)])
        largest = float(finite.max()) if finite.size else 0.0
        return max(0, 5 - math.floor(math.log10(largest))) if largest > 0 else 0
    return 2


# A backtest's tool calls show the same candles cycle after cycle.
@functools.lru_cache(maxsize=4096)
def candle_time(ts_ms: int, timeframe_ms: int | None) -> str:
    """A candle's open time in UTC as a model reads it: ``2021-03-01T12:00Z``, or the date alone for
    daily and longer candles that open at midnight."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if timeframe_ms is not None and timeframe_ms >= DAY_MS and ts_ms % DAY_MS == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def _rounded_window(
    result: pd.DataFrame, lookback: int, reference_price: float, timeframe_ms: int | None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of ``summary_rows`` and the decimals chosen for each output column."""
    if lookback < 1:
        raise IndicatorError(f"lookback must be at least 1, got {lookback}")
    start = max(0, len(result) - lookback)
    # Plain arrays rather than result.tail(): this runs for every tool call of every cycle.
    columns = {str(column): result[column].to_numpy(dtype="float64")[start:] for column in result.columns}
    # A frame that did not come from compute has no units: treat its columns as prices.
    units: Mapping[str, Unit] = result.attrs.get("units", {})
    return rounded_rows(list(result.index[start:]), columns, units, lookback, reference_price, timeframe_ms)


def rounded_rows(
    opens: Sequence[Any],
    columns: Mapping[str, np.ndarray[Any, Any]],
    units: Mapping[str, Unit],
    lookback: int,
    reference_price: float,
    timeframe_ms: int | None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``_rounded_window`` of the last ``lookback`` open times and output columns."""
    if lookback < 1:
        raise IndicatorError(f"lookback must be at least 1, got {lookback}")
    price_decimals(reference_price)
    opens = opens[-lookback:]
    columns = {column: values[-lookback:] for column, values in columns.items()}
    decimals = {
        column: _column_decimals(Unit(units.get(column, Unit.PRICE)), values, reference_price)
        for column, values in columns.items()
    }
    listed = {column: values.tolist() for column, values in columns.items()}
    rows: list[dict[str, Any]] = []
    for i, ts in enumerate(opens):
        row: dict[str, Any] = {"time": candle_time(int(ts), timeframe_ms), "timestamp": int(ts)}
        for column, places in decimals.items():
            number = float(listed[column][i])
            if not math.isfinite(number):
                row[column] = None
            elif places == 0:
                row[column] = round(number)
            else:
                row[column] = _clean(round(number, places))
        rows.append(row)
    return rows, decimals


def table_text(rows: list[dict[str, Any]], decimals: Mapping[str, int]) -> str:
    table = [["time", *decimals]]
    for row in rows:
        cells = [row["time"]]
        for column, places in decimals.items():
            value = row[column]
            cells.append("n/a" if value is None else f"{value:.{places}f}")
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        " ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
        for line in table
    )


def summary_table(
    result: pd.DataFrame, lookback: int, reference_price: float, timeframe_ms: int | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """``summarize`` and ``summary_rows`` of the same window at once, rounding it only once.

    Raises:
        IndicatorError: ``lookback`` is below 1.
        ValueError: the reference price is not a positive finite number.
    """
    rows, decimals = _rounded_window(result, lookback, reference_price, timeframe_ms)
    return table_text(rows, decimals), rows


def summary_rows(
    result: pd.DataFrame, lookback: int, reference_price: float, timeframe_ms: int | None = None
) -> list[dict[str, Any]]:
    """The last ``lookback`` rows of a ``compute`` result, rounded, for JSON or a Rich table.

    Args:
        result: what ``compute`` returned.
        lookback: how many of the most recent rows to keep.
        reference_price: a recent price of the instrument; sets the precision of price outputs.
        timeframe_ms: the candle interval; daily and longer candles show dates only.

    Returns:
        One dict per row, oldest first: ``time`` (ISO, UTC, the candle's open), ``timestamp`` (ms),
        then each output rounded (directions as ints), ``None`` where it has no value yet.

    Raises:
        IndicatorError: ``lookback`` is below 1.
        ValueError: the reference price is not a positive finite number.
    """
    rows, _ = _rounded_window(result, lookback, reference_price, timeframe_ms)
    return rows


def summarize(
    result: pd.DataFrame, lookback: int, reference_price: float, timeframe_ms: int | None = None
) -> str:
    """The last ``lookback`` rows of a ``compute`` result as a compact text table for a model.

    A header line (``time`` and the output names), then one line per candle, oldest first; times are
    candle open times in UTC (``2021-03-01T12:00Z``), values rounded to the instrument's precision
    (prices) or 2 decimals (oscillators), ``n/a`` during warm-up.

    Args:
        result: what ``compute`` returned.
        lookback: how many of the most recent rows to show.
        reference_price: a recent price of the instrument; sets the precision of price outputs.
        timeframe_ms: the candle interval; daily and longer candles show dates only.

    Raises:
        IndicatorError: ``lookback`` is below 1.
        ValueError: the reference price is not a positive finite number.
    """
    rows, decimals = _rounded_window(result, lookback, reference_price, timeframe_ms)
    return table_text(rows, decimals)
