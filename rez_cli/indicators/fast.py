"""numpy versions of the indicators every context computes: EMA, RSI and ATR.

Each repeats pandas-ta-classic's own steps (``talib=False``) in the same floating-point order, so
the results are the same bits, not merely close: a backtest's decisions do not depend on which
path computed them (``tests/indicators`` hold them to pandas-ta's bits). pandas-ta's EMA and RMA seed
the recursion with the SMA of the first ``length`` values, then run
``Series.ewm(adjust=False).mean()``; ``_ewm_from_seed`` repeats that recursion as pandas' kernel
writes it, in plain Python over a list, which costs a third of what ``Series.ewm`` costs on a
300-candle window and depends on no private pandas function. They only take finite inputs (a
validated candle frame); anything else goes to pandas-ta.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from rez_cli.indicators.params import Length14Params, LengthParams, RsiParams

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
FastOutputs = dict[str, FloatArray]
Column = Callable[[str], FloatArray]
"""A candle frame's column by name, as float64."""


def _nan(size: int) -> FloatArray:
    return np.full(size, np.nan)


def _ewm_from_seed(values: FloatArray, length: int, com: float, first: int) -> FloatArray:
    """pandas-ta's SMA-seeded smoothing of ``values[first:]`` (NaN before ``first``), as pandas runs it.

    ``com`` is the centre of mass pandas derives from ``span`` or ``alpha``: its alpha is
    ``1 / (1 + com)``, which is not always the bits of ``2 / (span + 1)`` or ``1 / length``.
    """
    size = len(values)
    if first + length > size:
        return _nan(size)  # no seed: pandas-ta leaves the whole series undefined
    seed_at = first + length - 1
    smoothed = np.empty(size)
    smoothed[:seed_at] = np.nan
    weighted = float(values[first : seed_at + 1].sum() / length)
    smoothed[seed_at] = weighted
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    # pandas then divides by the sum of the weights, (1 - alpha) + alpha with adjust=False. That is
    # exactly 1.0 for any alpha in (0, 1]: 1 - alpha is exact from 1/2 up, and below it is off by at
    # most a quarter of 1.0's ulp, which adding alpha back rounds away. x / 1.0 is x, so there is no
    # division here. pandas skips the update where the value equals the average (a constant
    # series). A comprehension that carries the average along is the cheapest such loop in Python.
    smoothed[seed_at + 1 :] = [
        weighted := (factor * weighted + alpha * value if weighted != value else weighted)
        for value in values[seed_at + 1 :].tolist()
    ]
    return smoothed


def _rma(values: FloatArray, length: int, first: int) -> FloatArray:
    alpha = 1.0 / length
    return _ewm_from_seed(values, length, (1 - alpha) / alpha, first)


def ema(column: Column, p: LengthParams) -> FastOutputs:
    close = column("close")
    if len(close) < p.length:
        return {"ema": _nan(len(close))}
    return {"ema": _ewm_from_seed(close, p.length, (p.length - 1) / 2, 0)}


def rsi(column: Column, p: RsiParams) -> FastOutputs:
    close = column("close")
    size = len(close)
    if size < p.length:
        return {"rsi": _nan(size)}
    change = np.empty(size)
    change[:1] = np.nan
    np.subtract(close[1:], close[:-1], out=change[1:])
    gains = _rma(np.where(change < 0, 0.0, change), p.length, 1)
    losses = _rma(np.where(change > 0, 0.0, change), p.length, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # 0/0 on a flat stretch is NaN, as in pandas.
        rsi: FloatArray = 100.0 * gains / (gains + np.abs(losses))
    return {"rsi": rsi}


def atr(column: Column, p: Length14Params) -> FastOutputs:
    high, low, close = column("high"), column("low"), column("close")
    size = len(close)
    if size < p.length:
        return {"atr": _nan(size)}
    # pandas-ta's true range: a zero high-low range counts as machine epsilon; row 0 has no previous
    # close and is NaN.
    span = high - low
    span = np.where(span != 0, span, sys.float_info.epsilon)
    previous = np.empty(size)
    previous[:1] = np.nan
    previous[1:] = close[:-1]
    true_range = np.fmax(np.fmax(np.abs(span), np.abs(high - previous)), np.abs(previous - low))
    true_range[:1] = np.nan
    return {"atr": _rma(true_range, p.length, 1)}
