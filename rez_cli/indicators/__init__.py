"""Technical indicators: an allow-list a model may ask from, computed on closed candles, summarised.

One module per concern:

- ``params``: the strict parameter models, and errors worded as instructions a model can act on;
- ``specs``: the allow-list (``INDICATORS``), what the model is told of each indicator, warm-up;
- ``runners``: the pandas-ta bridge, the only module that imports ``pandas_ta_classic`` (lazily, so
  ``rez --help`` and every command that computes no indicator never pay for it);
- ``fast``: numpy EMA, RSI and ATR, the indicators every cycle's context computes, bit for bit
  pandas-ta's values for a fraction of the cost;
- ``computation``: ``compute``, one indicator over one candle frame, by either path;
- ``memo``: ``IndicatorMemo``, results remembered by the window of candles they came from, for
  callers that see the same window more than once (a backtest's cycles, a cycle's tool calls);
- ``summary``: the last values rounded to the instrument's precision, as rows or a text table.

What other modules use is re-exported here; import from ``rez_cli.indicators``, not its modules.
"""

from __future__ import annotations

from rez_cli.formatting import price_decimals
from rez_cli.indicators.computation import compute
from rez_cli.indicators.memo import IndicatorMemo
from rez_cli.indicators.params import IndicatorError
from rez_cli.indicators.specs import (
    INDICATORS,
    IndicatorSpec,
    Unit,
    catalog,
    label,
    validate_params,
    warmup_bars,
)
from rez_cli.indicators.summary import round_value, summarize, summary_rows, summary_table

__all__ = [
    "INDICATORS",
    "IndicatorError",
    "IndicatorMemo",
    "IndicatorSpec",
    "Unit",
    "catalog",
    "compute",
    "label",
    "price_decimals",
    "round_value",
    "summarize",
    "summary_rows",
    "summary_table",
    "validate_params",
    "warmup_bars",
]
