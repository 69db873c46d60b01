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
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rez_cli.indicators.params import Length14Params, LengthParams, RsiParams

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
FastOutputs = dict[str, FloatArray]
Column = Callable[[str], FloatArray]
"""A candle frame's column by name, as float64."""
Windows = np.ndarray[tuple[int, int], np.dtype[np.float64]]
WindowsOutputs = dict[str, Windows]
"""Each output of many windows at once: row ``i`` is what the one-window function gives window ``i``."""


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


# -- many windows at once ----------------------------------------------------------------------------
#
# A backtest asks for the same indicator over windows of one history that each end a step later than
# the last. The functions below take a stretch of that history (``column``'s arrays) and compute
# every window ``stretch[i * stride : i * stride + size]`` in one pass: the recursion steps over the
# ``size`` positions of a window and is vectorised over the windows. Each value is computed with the
# same floating-point operations, in the same order, as the one-window function above, on that
# window's values alone, so every row is that function's result bit for bit
# (``tests/indicators/test_fast_windows.py``). The elementwise steps (changes, true ranges) are
# computed once over the stretch: they read a value and its predecessor, which lie in the same
# window wherever the window's result uses them (its first position is read by no one).


def _windows(stretch: FloatArray, size: int, stride: int) -> Windows:
    """Every window of ``size`` values starting a multiple of ``stride`` into ``stretch``; no copy."""
    view: Windows = sliding_window_view(stretch, size)[::stride]
    return view


def _ewm_windows(values: Windows, length: int, com: float, first: int) -> Windows:
    """``_ewm_from_seed`` of each row of ``values``, transposed: row ``t`` is each window's ``t``-th."""
    count, size = values.shape
    if first + length > size:
        return np.full((size, count), np.nan)
    seed_at = first + length - 1
    smoothed = np.empty((size, count))
    smoothed[:seed_at] = np.nan
    # Summed along a contiguous row, as numpy sums a 1-D slice (pairwise), then divided as there.
    np.divide(np.ascontiguousarray(values[:, first : seed_at + 1]).sum(axis=1), length, out=smoothed[seed_at])
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    steps = values.T
    scaled = np.empty(count)
    unchanged = np.empty(count, dtype=bool)
    previous = smoothed[seed_at]
    for position in range(seed_at + 1, size):
        value, current = steps[position], smoothed[position]
        # factor * weighted + alpha * value, kept as weighted where weighted == value.
        np.multiply(factor, previous, out=current)
        np.multiply(alpha, value, out=scaled)
        np.add(current, scaled, out=current)
        np.equal(previous, value, out=unchanged)
        np.copyto(current, previous, where=unchanged)
        previous = current
    return smoothed


def _rma_windows(values: Windows, length: int, first: int) -> Windows:
    alpha = 1.0 / length
    return _ewm_windows(values, length, (1 - alpha) / alpha, first)


def _rows(steps: Windows) -> Windows:
    rows: Windows = np.ascontiguousarray(steps.T)
    return rows


def _count(stretch: FloatArray, size: int, stride: int) -> int:
    return (len(stretch) - size) // stride + 1


def ema_windows(column: Column, p: LengthParams, size: int, stride: int) -> WindowsOutputs:
    """``ema`` of every window of ``size`` candles, ``stride`` apart, of the stretch ``column`` reads."""
    close = column("close")
    if size < p.length:
        return {"ema": np.full((_count(close, size, stride), size), np.nan)}
    return {"ema": _rows(_ewm_windows(_windows(close, size, stride), p.length, (p.length - 1) / 2, 0))}


def rsi_windows(column: Column, p: RsiParams, size: int, stride: int) -> WindowsOutputs:
    """``rsi`` of every window of ``size`` candles, ``stride`` apart, of the stretch ``column`` reads."""
    close = column("close")
    if size < p.length:
        return {"rsi": np.full((_count(close, size, stride), size), np.nan)}
    change = np.empty(len(close))
    change[:1] = np.nan
    np.subtract(close[1:], close[:-1], out=change[1:])
    gains = _rma_windows(_windows(np.where(change < 0, 0.0, change), size, stride), p.length, 1)
    losses = _rma_windows(_windows(np.where(change > 0, 0.0, change), size, stride), p.length, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi: Windows = 100.0 * gains / (gains + np.abs(losses))
    return {"rsi": _rows(rsi)}


def atr_windows(column: Column, p: Length14Params, size: int, stride: int) -> WindowsOutputs:
    """``atr`` of every window of ``size`` candles, ``stride`` apart, of the stretch ``column`` reads."""
    high, low, close = column("high"), column("low"), column("close")
    if size < p.length:
        return {"atr": np.full((_count(close, size, stride), size), np.nan)}
    span = high - low
    span = np.where(span != 0, span, sys.float_info.epsilon)
    previous = np.empty(len(close))
    previous[:1] = np.nan
    previous[1:] = close[:-1]
    true_range = np.fmax(np.fmax(np.abs(span), np.abs(high - previous)), np.abs(previous - low))
    return {"atr": _rows(_rma_windows(_windows(true_range, size, stride), p.length, 1))}


WindowsFunction = Callable[[Column, Any, int, int], WindowsOutputs]
WINDOWED: dict[Callable[..., FastOutputs], WindowsFunction] = {
    ema: ema_windows,
    rsi: rsi_windows,
    atr: atr_windows,
}
"""The many-windows version of each one-window function that has one."""
