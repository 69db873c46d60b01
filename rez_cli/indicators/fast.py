"""numpy versions of the indicators every context computes: EMA, RSI and ATR.

Each repeats pandas-ta-classic's own steps (``talib=False``) in the same floating-point order, so
the results are the same bits, not merely close: a backtest's decisions do not depend on which
path computed them. pandas-ta's EMA and RMA seed the recursion with the SMA of the first ``length``
values, then run ``Series.ewm(adjust=False).mean()``. That recursion is pandas' ``ewm`` kernel
(pandas/_libs/window/aggregations.pyx), called here directly: through ``Series.ewm`` it costs
thirty times as much, and in Python ten. The kernel is not public API, so ``_ewm_loop`` repeats it
in Python for a pandas that moves it (``tests/indicators`` hold both to pandas-ta's bits). They
only take finite inputs (a validated candle frame); anything else goes to pandas-ta.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import numpy as np

from rez_cli.indicators.params import Length14Params, LengthParams, RsiParams

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
FastOutputs = dict[str, FloatArray]
Column = Callable[[str], FloatArray]
"""A candle frame's column by name, as float64."""


def _ewm_kernel() -> Callable[..., FloatArray] | None:
    try:
        module = importlib.import_module("pandas._libs.window.aggregations")
    except ImportError:  # pragma: no cover - depends on the pandas release
        return None
    kernel: Callable[..., FloatArray] | None = getattr(module, "ewm", None)
    return kernel


_EWM_KERNEL = _ewm_kernel()


def _nan(size: int) -> FloatArray:
    return np.full(size, np.nan)


def _ewm_loop(seeded: FloatArray, seed_at: int, com: float) -> FloatArray:
    """pandas' ``ewm`` kernel (mean, adjust=False, no times) over a series that is NaN before ``seed_at``."""
    out = seeded.copy()
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    # adjust=False: the old weight is reset to 1 after each value, so the divisor is this constant
    # (not always exactly 1.0); pandas divides by it, so this does too.
    divisor = factor + alpha
    weighted = float(seeded[seed_at])
    for i, value in enumerate(seeded[seed_at + 1 :].tolist(), seed_at + 1):
        if weighted != value:  # pandas skips the update when they are equal (constant series)
            weighted = (factor * weighted + alpha * value) / divisor
        out[i] = weighted
    return out


def _ewm_from_seed(values: FloatArray, length: int, com: float, first: int) -> FloatArray:
    """pandas-ta's SMA-seeded smoothing of ``values[first:]`` (NaN before ``first``), as pandas runs it.

    ``com`` is the centre of mass pandas derives from ``span`` or ``alpha``: its alpha is
    ``1 / (1 + com)``, which is not always the bits of ``2 / (span + 1)`` or ``1 / length``.
    """
    size = len(values)
    if first + length > size:
        return _nan(size)  # no seed: pandas-ta leaves the whole series undefined
    seed_at = first + length - 1
    seeded = np.empty(size)
    seeded[:seed_at] = np.nan
    seeded[seed_at] = values[first : seed_at + 1].sum() / length
    seeded[seed_at + 1 :] = values[seed_at + 1 :]
    if _EWM_KERNEL is None:
        return _ewm_loop(seeded, seed_at, com)
    # The arguments Series.ewm(com=com, adjust=False).mean() passes: one window over the whole
    # series, min_periods 1, ignore_na False, no times, normalised.
    bounds = np.array([0], dtype=np.int64), np.array([size], dtype=np.int64)
    return _EWM_KERNEL(seeded, *bounds, 1, com, False, False, None, True)


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
