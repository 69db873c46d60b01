"""The pandas-ta bridge: an allow-list of indicators, their parameters, and compact summaries.

This is the only module that imports ``pandas_ta_classic``; it does so lazily, so ``rez --help`` and
every command that computes no indicator never pay for it. The library is always asked for its own
(pure pandas) implementation with ``talib=False``: TA-Lib is a test-only oracle, and every indicator
both implement is checked against it to 1e-6 (``tests/indicators``).

EMA, RSI and ATR, which every cycle's context computes on every timeframe, also have numpy versions
(``fast`` in their specs) that repeat pandas-ta's arithmetic operation for operation, so they give
the same bits for a fraction of the cost; ``compute(..., fast=False)`` runs pandas-ta instead, and the
tests hold the two equal. ``IndicatorMemo`` remembers results by the window of candles they came from,
for callers that see the same window more than once (a backtest's cycles, a cycle's tool calls).

Three rules hold for every indicator here:

- **No look-ahead.** The value at a candle uses only that candle and earlier ones. Ichimoku's chikou
  span (the close plotted ``kijun`` candles back) and its projected cloud are therefore left out.
- **Warm-up stays visible.** Rows without enough history are NaN, never filled or dropped.
- **Warm-up is honest.** ``warmup_bars`` counts the candles after which a value no longer depends on
  where the history started: rolling windows are exact once full; recursive smoothings (EMA, Wilder's
  RMA) count as settled when the weight left on their seed is below 0.1%.

Parameters arrive from a language model, so each indicator has a strict pydantic model (unknown keys
rejected, lengths bounded) and every error reads as a short instruction the model can act on.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import sys
import threading
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rez_cli.errors import UsageError

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

_DAY_MS = 86_400_000


class IndicatorError(UsageError):
    """An unknown indicator or parameters it cannot take; the message tells the model what would work."""

    reference = "indicator_error"


class Unit(StrEnum):
    """What an output measures, which decides how it is rounded for display."""

    PRICE = "price"
    """Quote-currency prices or price distances: rounded to the instrument's precision."""
    OSCILLATOR = "oscillator"
    """Bounded scores, percentages and ratios: 2 decimals."""
    VOLUME = "volume"
    """Base-currency volume: 6 significant digits of the largest value shown."""
    DIRECTION = "direction"
    """+1 (up-trend / long side) or -1 (down-trend / short side)."""


# --- parameter models -------------------------------------------------------------------------------

Length = Annotated[int, Field(ge=2, le=500)]
Smoothing = Annotated[int, Field(ge=1, le=100)]
Multiplier = Annotated[float, Field(ge=0.1, le=10.0)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LengthParams(_Params):
    length: Length = 10


class RsiParams(_Params):
    length: Length = 14


class MacdParams(_Params):
    fast: Length = 12
    slow: Length = 26
    signal: Length = 9

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdParams:
        # pandas-ta swaps them silently; a model that mixed them up should hear about it.
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class BbandsParams(_Params):
    # Bollinger's own 20/2 rather than pandas-ta's and TA-Lib's default length of 5.
    length: Length = 20
    std: Multiplier = 2.0


class Length14Params(_Params):
    length: Length = 14


class StochParams(_Params):
    k: Length = 14
    d: Smoothing = 3
    smooth_k: Smoothing = 3


class StochRsiParams(_Params):
    length: Length = 14
    rsi_length: Length = 14
    k: Smoothing = 3
    d: Smoothing = 3


class NoParams(_Params):
    pass


class VwapParams(_Params):
    anchor: Literal["D", "W", "M"] = "D"


class KcParams(_Params):
    length: Length = 20
    scalar: Multiplier = 2.0


class DonchianParams(_Params):
    lower_length: Length = 20
    upper_length: Length = 20


class SupertrendParams(_Params):
    length: Length = 7
    multiplier: Multiplier = 3.0


class PsarParams(_Params):
    af0: Annotated[float, Field(ge=0.001, le=0.5)] = 0.02
    max_af: Annotated[float, Field(ge=0.01, le=1.0)] = 0.2

    @model_validator(mode="after")
    def _start_below_max(self) -> PsarParams:
        if self.af0 > self.max_af:
            raise ValueError(f"af0 ({self.af0}) must not exceed max_af ({self.max_af})")
        return self


class IchimokuParams(_Params):
    tenkan: Length = 9
    kijun: Length = 26
    senkou: Length = 52


# --- the allow-list ---------------------------------------------------------------------------------

P = TypeVar("P", bound=_Params)
Outputs = dict[str, "pd.Series[float]"]
FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]
FastOutputs = dict[str, FloatArray]
Column = Callable[[str], FloatArray]
"""A candle frame's column by name, as float64."""


@dataclass(frozen=True)
class IndicatorSpec(Generic[P]):
    """One allowed indicator: what the model is told, what it may pass, what comes back."""

    name: str
    description: str
    """One line for the model's tool description."""
    params: type[P]
    outputs: Mapping[str, Unit]
    """Output columns in order, each with its unit."""
    run: Callable[[Any, pd.DataFrame, P], Outputs]
    """Calls the library on a RangeIndex candle frame; returns one series per output."""
    warmup: Callable[[P], int]
    fast: Callable[[Column, P], FastOutputs] | None = None
    """The same values as ``run`` without the library (numpy), from the frame's columns, when every
    value of ``fast_inputs`` is finite."""
    fast_inputs: tuple[str, ...] = ()

    @property
    def in_price_units(self) -> bool:
        """Whether every output is a price (overlays such as EMA or bands), as opposed to a score."""
        return all(unit is Unit.PRICE for unit in self.outputs.values())


def _settle_ema(length: int) -> int:
    # Seed weight (1 - 2/(n+1))**k falls below 0.1% after k ≈ 3.45 (n + 1).
    return math.ceil(3.5 * (length + 1))


def _settle_wilder(length: int) -> int:
    # Seed weight (1 - 1/n)**k falls below 0.1% after k ≈ 6.9 n.
    return 7 * length


def _pick(result: Any, prefix: str, size: int) -> pd.Series[float]:
    """The one column of a pandas-ta frame whose name starts with ``prefix`` (NaN if it gave up)."""
    if result is None:
        # pandas-ta returns None when there are fewer candles than the window.
        return pd.Series(np.full(size, np.nan))
    matches = [column for column in result.columns if str(column).startswith(prefix)]
    if len(matches) != 1:
        raise RuntimeError(f"pandas-ta output {list(result.columns)} has no single {prefix!r} column")
    return _as_float(result[matches[0]], size)


def _as_float(series: Any, size: int) -> pd.Series[float]:
    if series is None:
        return pd.Series(np.full(size, np.nan))
    return pd.Series(np.asarray(series, dtype="float64"))


def _hlc(frame: pd.DataFrame) -> tuple[pd.Series[float], pd.Series[float], pd.Series[float]]:
    return frame["high"], frame["low"], frame["close"]


def _run_ema(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"ema": _as_float(ta.ema(frame["close"], length=p.length, talib=False), len(frame))}


def _run_sma(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"sma": _as_float(ta.sma(frame["close"], length=p.length, talib=False), len(frame))}


def _run_wma(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"wma": _as_float(ta.wma(frame["close"], length=p.length, talib=False), len(frame))}


def _run_rsi(ta: Any, frame: pd.DataFrame, p: RsiParams) -> Outputs:
    return {"rsi": _as_float(ta.rsi(frame["close"], length=p.length, talib=False), len(frame))}


def _run_macd(ta: Any, frame: pd.DataFrame, p: MacdParams) -> Outputs:
    # The MACD line starts at slow - 1, TA-Lib's at slow + signal - 2 with a later-seeded fast EMA:
    # the two agree once the seeds have decayed, which warmup_bars waits for.
    out = ta.macd(frame["close"], fast=p.fast, slow=p.slow, signal=p.signal, talib=False)
    n = len(frame)
    return {
        "macd": _pick(out, "MACD_", n),
        "signal": _pick(out, "MACDs_", n),
        "hist": _pick(out, "MACDh_", n),
    }


def _run_bbands(ta: Any, frame: pd.DataFrame, p: BbandsParams) -> Outputs:
    # ddof=0: population standard deviation, as Bollinger and TA-Lib define the bands.
    out = ta.bbands(frame["close"], length=p.length, std=p.std, ddof=0, mamode="sma", talib=False)
    n = len(frame)
    return {
        "upper": _pick(out, "BBU_", n),
        "middle": _pick(out, "BBM_", n),
        "lower": _pick(out, "BBL_", n),
        "bandwidth": _pick(out, "BBB_", n),
        "percent_b": _pick(out, "BBP_", n),
    }


def _run_atr(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    out = ta.atr(*_hlc(frame), length=p.length, mamode="rma", talib=False)
    return {"atr": _as_float(out, len(frame))}


def _run_adx(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    out = ta.adx(*_hlc(frame), length=p.length, lensig=p.length, mamode="rma", talib=False)
    n = len(frame)
    return {"adx": _pick(out, "ADX_", n), "plus_di": _pick(out, "DMP_", n), "minus_di": _pick(out, "DMN_", n)}


def _run_stoch(ta: Any, frame: pd.DataFrame, p: StochParams) -> Outputs:
    # %K is valid from k + smooth_k - 2, two candles before TA-Lib, which starts %K with %D; same values.
    out = ta.stoch(*_hlc(frame), k=p.k, d=p.d, smooth_k=p.smooth_k, mamode="sma", talib=False)
    n = len(frame)
    return {"k": _pick(out, "STOCHk_", n), "d": _pick(out, "STOCHd_", n)}


def _run_stochrsi(ta: Any, frame: pd.DataFrame, p: StochRsiParams) -> Outputs:
    # k smooths %K (TradingView's convention); with k=1 the result is TA-Lib's STOCHRSI fastk/fastd.
    out = ta.stochrsi(
        frame["close"], length=p.length, rsi_length=p.rsi_length, k=p.k, d=p.d, mamode="sma", talib=False
    )
    n = len(frame)
    return {"k": _pick(out, "STOCHRSIk_", n), "d": _pick(out, "STOCHRSId_", n)}


def _run_cci(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    return {"cci": _as_float(ta.cci(*_hlc(frame), length=p.length, talib=False), len(frame))}


def _run_mfi(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    mfi = _as_float(ta.mfi(*_hlc(frame), frame["volume"], length=p.length, talib=False), len(frame))
    # pandas-ta reports a value at row length - 1 from only length - 1 money flows (the first candle
    # has no previous typical price); TA-Lib, rightly, starts one candle later.
    mfi.iloc[: p.length] = np.nan
    return {"mfi": mfi}


def _run_obv(ta: Any, frame: pd.DataFrame, p: NoParams) -> Outputs:
    return {"obv": _as_float(ta.obv(frame["close"], frame["volume"], talib=False), len(frame))}


def _run_vwap(ta: Any, frame: pd.DataFrame, p: VwapParams) -> Outputs:
    # pandas-ta groups by calendar period of a DatetimeIndex; naive UTC times give UTC sessions
    # (a tz-aware index would make to_period warn that it drops the zone).
    when = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"].to_numpy(dtype="int64"), unit="ms"))
    columns = {
        name: pd.Series(frame[name].to_numpy(), index=when) for name in ("high", "low", "close", "volume")
    }
    out = ta.vwap(columns["high"], columns["low"], columns["close"], columns["volume"], anchor=p.anchor)
    vwap = _as_float(out, len(frame))
    if len(when):
        sessions = when.to_period(p.anchor)
        if when[0] != sessions[0].start_time:
            # The first session began before the first candle: its VWAP would miss that volume.
            vwap[np.asarray(sessions == sessions[0])] = np.nan
    return {"vwap": vwap}


def _run_roc(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"roc": _as_float(ta.roc(frame["close"], length=p.length, talib=False), len(frame))}


def _run_willr(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    return {"willr": _as_float(ta.willr(*_hlc(frame), length=p.length, talib=False), len(frame))}


def _run_kc(ta: Any, frame: pd.DataFrame, p: KcParams) -> Outputs:
    out = ta.kc(*_hlc(frame), length=p.length, scalar=p.scalar, mamode="ema")
    n = len(frame)
    return {"upper": _pick(out, "KCU", n), "middle": _pick(out, "KCB", n), "lower": _pick(out, "KCL", n)}


def _run_donchian(ta: Any, frame: pd.DataFrame, p: DonchianParams) -> Outputs:
    out = ta.donchian(frame["high"], frame["low"], lower_length=p.lower_length, upper_length=p.upper_length)
    n = len(frame)
    return {"upper": _pick(out, "DCU_", n), "middle": _pick(out, "DCM_", n), "lower": _pick(out, "DCL_", n)}


def _run_supertrend(ta: Any, frame: pd.DataFrame, p: SupertrendParams) -> Outputs:
    out = ta.supertrend(*_hlc(frame), length=p.length, multiplier=p.multiplier)
    n = len(frame)
    long, short = _pick(out, "SUPERTl_", n), _pick(out, "SUPERTs_", n)
    # The combined SUPERT_ column holds 0.0 on the first row and a direction of 1 before the ATR
    # exists; rebuilding both from the long/short sides keeps those rows NaN.
    return {"supertrend": long.fillna(short), "direction": _direction(long, short)}


def _run_psar(ta: Any, frame: pd.DataFrame, p: PsarParams) -> Outputs:
    # Without close, pandas-ta starts the SAR at the first low/high as TA-Lib's SAR does; given a
    # close it would start from that close instead and differ until the first reversal.
    out = ta.psar(frame["high"], frame["low"], af0=p.af0, af=p.af0, max_af=p.max_af, talib=False)
    n = len(frame)
    long, short = _pick(out, "PSARl_", n), _pick(out, "PSARs_", n)
    return {"psar": long.fillna(short), "direction": _direction(long, short)}


def _direction(long: pd.Series[float], short: pd.Series[float]) -> pd.Series[float]:
    return pd.Series(np.where(long.notna(), 1.0, np.where(short.notna(), -1.0, np.nan)))


def _run_ichimoku(ta: Any, frame: pd.DataFrame, p: IchimokuParams) -> Outputs:
    # as_dataframe=True: only the candles' own rows (the projected cloud is a separate frame, and
    # the tuple return is deprecated). include_chikou=False: the chikou span at row t is the close
    # of row t + kijun. Span A/B at row t are computed from candles up to t - kijun: known at t.
    out = ta.ichimoku(
        *_hlc(frame), tenkan=p.tenkan, kijun=p.kijun, senkou=p.senkou, include_chikou=False, as_dataframe=True
    )
    n = len(frame)
    return {
        "tenkan": _pick(out, "ITS_", n),
        "kijun": _pick(out, "IKS_", n),
        "span_a": _pick(out, "ISA_", n),
        "span_b": _pick(out, "ISB_", n),
    }


# --- numpy versions of the indicators every context computes ----------------------------------------
#
# Each repeats pandas-ta-classic's own steps (``talib=False``) in the same floating-point order, so
# the results are the same bits, not merely close: a backtest's decisions do not depend on which
# path computed them. pandas-ta's EMA and RMA seed the recursion with the SMA of the first ``length``
# values, then run ``Series.ewm(adjust=False).mean()``. That recursion is pandas' ``ewm`` kernel
# (pandas/_libs/window/aggregations.pyx), called here directly: through ``Series.ewm`` it costs
# thirty times as much, and in Python ten. The kernel is not public API, so ``_ewm_loop`` repeats it
# in Python for a pandas that moves it (``tests/indicators`` hold both to pandas-ta's bits). They
# only take finite inputs (a validated candle frame); anything else goes to pandas-ta.


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


def _fast_ema(column: Column, p: LengthParams) -> FastOutputs:
    close = column("close")
    if len(close) < p.length:
        return {"ema": _nan(len(close))}
    return {"ema": _ewm_from_seed(close, p.length, (p.length - 1) / 2, 0)}


def _fast_rsi(column: Column, p: RsiParams) -> FastOutputs:
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


def _fast_atr(column: Column, p: Length14Params) -> FastOutputs:
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


def _spec(
    name: str,
    description: str,
    params: type[P],
    outputs: Mapping[str, Unit],
    run: Callable[[Any, pd.DataFrame, P], Outputs],
    warmup: Callable[[P], int],
    fast: Callable[[Column, P], FastOutputs] | None = None,
    fast_inputs: tuple[str, ...] = (),
) -> IndicatorSpec[P]:
    return IndicatorSpec(name, description, params, outputs, run, warmup, fast, fast_inputs)


_PRICE, _OSC = Unit.PRICE, Unit.OSCILLATOR

_SPECS: tuple[IndicatorSpec[Any], ...] = (
    _spec(
        "ema",
        "Exponential moving average of close (trend, price units).",
        LengthParams,
        {"ema": _PRICE},
        _run_ema,
        lambda p: p.length - 1 + _settle_ema(p.length),
        _fast_ema,
        ("close",),
    ),
    _spec(
        "sma",
        "Simple moving average of close (trend, price units).",
        LengthParams,
        {"sma": _PRICE},
        _run_sma,
        lambda p: p.length - 1,
    ),
    _spec(
        "wma",
        "Linearly weighted moving average of close, recent candles weigh most.",
        LengthParams,
        {"wma": _PRICE},
        _run_wma,
        lambda p: p.length - 1,
    ),
    _spec(
        "rsi",
        "Relative Strength Index 0-100 (Wilder); above 70 overbought, below 30 oversold.",
        RsiParams,
        {"rsi": _OSC},
        _run_rsi,
        lambda p: p.length + _settle_wilder(p.length),
        _fast_rsi,
        ("close",),
    ),
    _spec(
        "macd",
        "MACD: fast EMA minus slow EMA, its signal EMA, and hist = macd - signal (price units).",
        MacdParams,
        {"macd": _PRICE, "signal": _PRICE, "hist": _PRICE},
        _run_macd,
        lambda p: p.slow - 1 + _settle_ema(p.slow) + p.signal - 1 + _settle_ema(p.signal),
    ),
    _spec(
        "bbands",
        "Bollinger Bands: SMA +/- std deviations; bandwidth % of middle; percent_b 0 = lower, 1 = upper.",
        BbandsParams,
        {"upper": _PRICE, "middle": _PRICE, "lower": _PRICE, "bandwidth": _OSC, "percent_b": _OSC},
        _run_bbands,
        lambda p: p.length - 1,
    ),
    _spec(
        "atr",
        "Average True Range (Wilder): typical candle range in price units, e.g. for stop distance.",
        Length14Params,
        {"atr": _PRICE},
        _run_atr,
        lambda p: p.length + _settle_wilder(p.length),
        _fast_atr,
        ("high", "low", "close"),
    ),
    _spec(
        "adx",
        "ADX trend strength 0-100 (above 25 trending) with +DI/-DI for its direction.",
        Length14Params,
        {"adx": _OSC, "plus_di": _OSC, "minus_di": _OSC},
        _run_adx,
        lambda p: 2 * p.length + _settle_wilder(p.length),
    ),
    _spec(
        "stoch",
        "Slow stochastic %K/%D 0-100: close within the k-candle high-low range; 80/20 extremes.",
        StochParams,
        {"k": _OSC, "d": _OSC},
        _run_stoch,
        lambda p: p.k + p.smooth_k + p.d - 3,
    ),
    _spec(
        "stochrsi",
        "Stochastic RSI 0-100: RSI within its own length-candle range; %K smoothed by k, %D by d.",
        StochRsiParams,
        {"k": _OSC, "d": _OSC},
        _run_stochrsi,
        # Normalising RSI over a short window magnifies what is left of its seed: twice the settle.
        lambda p: p.rsi_length + 2 * _settle_wilder(p.rsi_length) + p.length + p.k + p.d - 3,
    ),
    _spec(
        "cci",
        "Commodity Channel Index: typical price vs its SMA in mean deviations; beyond +/-100 is extreme.",
        Length14Params,
        {"cci": _OSC},
        _run_cci,
        lambda p: p.length - 1,
    ),
    _spec(
        "mfi",
        "Money Flow Index 0-100: volume-weighted RSI; above 80 overbought, below 20 oversold.",
        Length14Params,
        {"mfi": _OSC},
        _run_mfi,
        lambda p: p.length,
    ),
    _spec(
        "obv",
        "On-Balance Volume: running sum of signed volume; its level is arbitrary, read its slope.",
        NoParams,
        {"obv": Unit.VOLUME},
        _run_obv,
        lambda p: 0,
    ),
    _spec(
        "vwap",
        "Volume-weighted average price, restarting each UTC day (anchor D), week (W) or month (M).",
        VwapParams,
        {"vwap": _PRICE},
        _run_vwap,
        # The leading partial session is masked in compute; warmup_bars adds the session length.
        lambda p: 0,
    ),
    _spec(
        "roc",
        "Rate of change: % change of close over length candles.",
        LengthParams,
        {"roc": _OSC},
        _run_roc,
        lambda p: p.length,
    ),
    _spec(
        "willr",
        "Williams %R -100..0: above -20 overbought, below -80 oversold.",
        Length14Params,
        {"willr": _OSC},
        _run_willr,
        lambda p: p.length - 1,
    ),
    _spec(
        "kc",
        "Keltner Channels: EMA of close +/- scalar x EMA of true range.",
        KcParams,
        {"upper": _PRICE, "middle": _PRICE, "lower": _PRICE},
        _run_kc,
        lambda p: p.length + _settle_ema(p.length),
    ),
    _spec(
        "donchian",
        "Donchian channel: highest high, lowest low over the lengths, and their midpoint.",
        DonchianParams,
        {"upper": _PRICE, "middle": _PRICE, "lower": _PRICE},
        _run_donchian,
        lambda p: max(p.lower_length, p.upper_length) - 1,
    ),
    _spec(
        "supertrend",
        "Supertrend: ATR trailing stop line; direction 1 = up-trend (line below price), -1 = down-trend.",
        SupertrendParams,
        {"supertrend": _PRICE, "direction": Unit.DIRECTION},
        _run_supertrend,
        # The line ratchets with the trend, so a different start is forgotten at the next flip;
        # ATR's settle is the longer of the two.
        lambda p: p.length + _settle_wilder(p.length),
    ),
    _spec(
        "psar",
        "Parabolic SAR stop-and-reverse level; direction 1 = below price (long), -1 = above (short).",
        PsarParams,
        {"psar": _PRICE, "direction": Unit.DIRECTION},
        _run_psar,
        # Path-dependent: histories started at different candles agree after a few reversals.
        lambda p: 100,
    ),
    _spec(
        "ichimoku",
        "Ichimoku: tenkan, kijun, and the cloud (span_a, span_b) under each candle; no chikou.",
        IchimokuParams,
        {"tenkan": _PRICE, "kijun": _PRICE, "span_a": _PRICE, "span_b": _PRICE},
        _run_ichimoku,
        lambda p: max(p.tenkan, p.kijun, p.senkou) - 1 + p.kijun,
    ),
)

INDICATORS: Mapping[str, IndicatorSpec[Any]] = types.MappingProxyType({spec.name: spec for spec in _SPECS})
"""The allow-list, in the order the model is shown it."""


# --- validation -------------------------------------------------------------------------------------


def _spec_for(name: str) -> IndicatorSpec[Any]:
    key = name.strip().lower() if isinstance(name, str) else name
    spec = INDICATORS.get(key)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(str(key), list(INDICATORS), n=3, cutoff=0.6)
    guess = f" (did you mean {' or '.join(repr(match) for match in close)}?)" if close else ""
    raise IndicatorError(f"unknown indicator {name!r}{guess}. Allowed: {', '.join(sorted(INDICATORS))}")


def _param_help(params: type[_Params]) -> str:
    """``length=14 (2..500), anchor='D' (D|W|M)``: what a model may pass, with defaults."""
    parts = []
    for field_name, schema in params.model_json_schema().get("properties", {}).items():
        if "enum" in schema:
            span = "|".join(str(value) for value in schema["enum"])
        else:
            span = f"{schema.get('minimum')}..{schema.get('maximum')}"
        parts.append(f"{field_name}={schema.get('default')!r} ({span})")
    return ", ".join(parts)


def _describe_error(error: Mapping[str, Any], fields: list[str]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    context = error.get("ctx") or {}
    kind = error.get("type", "")
    got = f" (got {error['input']!r})" if "input" in error and kind != "extra_forbidden" else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(where, fields, n=1, cutoff=0.6)
        return f"unknown parameter {where!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in ("greater_than_equal", "greater_than"):
        return f"{where} must be at least {context.get('ge', context.get('gt'))}{got}"
    if kind in ("less_than_equal", "less_than"):
        return f"{where} must be at most {context.get('le', context.get('lt'))}{got}"
    if kind.startswith("int_"):
        return f"{where} must be a whole number{got}"
    if kind.startswith("float_"):
        return f"{where} must be a number{got}"
    if kind == "literal_error":
        return f"{where} must be one of {context.get('expected')}{got}"
    # Cross-field checks (model validators) already word their own message.
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}{got}" if where else message


def validate_params(name: str, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """Check an indicator's parameters and fill in its defaults.

    Args:
        name: an indicator of ``INDICATORS`` (case and surrounding spaces ignored).
        params: the parameters as the model sent them; ``None`` or ``{}`` for all defaults. An
            already-validated parameter model of the indicator is returned as it is.

    Returns:
        The indicator's parameter model (frozen, every field set).

    Raises:
        IndicatorError: the indicator is not allowed, or a parameter is unknown, of the wrong
            type or out of bounds; the message names it, its bounds and what the indicator accepts.
    """
    spec = _spec_for(name)
    if isinstance(params, BaseModel):
        if type(params) is spec.params:
            return params
        params = params.model_dump()
    if params is not None and not isinstance(params, Mapping):
        raise IndicatorError(f"{spec.name}: params must be an object such as {{}}, got {params!r}")
    try:
        model: BaseModel = spec.params.model_validate(dict(params or {}))
    except ValidationError as error:
        fields = list(spec.params.model_fields)
        problems = "; ".join(_describe_error(detail, fields) for detail in error.errors())
        accepted = _param_help(spec.params) or "no parameters"
        raise IndicatorError(f"{spec.name}: {problems}. Accepted: {accepted}") from None
    return model


def label(name: str, params: Mapping[str, Any] | BaseModel | None = None) -> str:
    """The call as a model would read it, every parameter shown: ``macd(fast=12, slow=26, signal=9)``.

    Raises:
        IndicatorError: as ``validate_params``.
    """
    spec = _spec_for(name)
    model = validate_params(spec.name, params)
    arguments = ", ".join(f"{key}={value!r}" for key, value in model.model_dump().items())
    return f"{spec.name}({arguments})"


def catalog() -> str:
    """One line per allowed indicator with its parameters and defaults, for the model's instructions."""
    return "\n".join(
        f"{spec.name}({_param_help(spec.params)}): {spec.description}" for spec in INDICATORS.values()
    )


def warmup_bars(
    name: str, params: Mapping[str, Any] | BaseModel | None = None, *, timeframe_ms: int | None = None
) -> int:
    """How many candles come before the first value that does not depend on where the history starts.

    Fetch ``warmup_bars(...) + lookback`` candles to get ``lookback`` reliable values.

    Args:
        name: an indicator of ``INDICATORS``.
        params: its parameters, as for ``validate_params``.
        timeframe_ms: the candle interval; only ``vwap`` needs it, to cover one whole session
            (without it, ``vwap`` counts 0 and ``compute`` masks the partial first session).

    Raises:
        IndicatorError: as ``validate_params``.
    """
    spec = _spec_for(name)
    model = validate_params(spec.name, params)
    bars = int(spec.warmup(model))
    if isinstance(model, VwapParams) and timeframe_ms:
        session_ms = {"D": _DAY_MS, "W": 7 * _DAY_MS, "M": 31 * _DAY_MS}[model.anchor]
        bars += math.ceil(session_ms / timeframe_ms)
    return bars


# --- computation ------------------------------------------------------------------------------------


@functools.cache
def _library() -> Any:
    with warnings.catch_warnings():
        # Building its default Strategy at import calls Timestamp.dayofyear, which pandas 3
        # deprecates (Pandas4Warning); pytest runs with warnings as errors.
        warnings.filterwarnings("ignore", message=r".*dayofyear is deprecated", category=DeprecationWarning)
        import pandas_ta_classic

    return pandas_ta_classic


def compute(
    frame: pd.DataFrame,
    name: str,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    fast: bool = True,
) -> pd.DataFrame:
    """Compute an allowed indicator over a candle frame.

    Args:
        frame: a validated candle frame (see ``rez_cli.market.candles``), oldest candle first.
        name: an indicator of ``INDICATORS``.
        params: its parameters, as for ``validate_params``.
        fast: use the indicator's numpy version where it has one (the same values); False always
            runs pandas-ta, which is what the numpy versions are tested against.

    Returns:
        One row per candle, indexed by the candle's open time (``timestamp``, int ms), one float
        column per output (``spec.outputs``, e.g. ``macd, signal, hist``); NaN where the history is
        too short. ``attrs`` holds ``indicator``, ``params`` and ``units`` (column -> ``Unit``) for
        ``summarize``.

    Raises:
        IndicatorError: as ``validate_params``.
    """
    spec = _spec_for(name)
    model = validate_params(spec.name, params)

    columns: dict[str, FloatArray] = {}

    def column(label: str) -> FloatArray:
        # Each column out of pandas once: the finiteness check and the indicator both read it.
        if label not in columns:
            columns[label] = frame[label].to_numpy(dtype="float64")
        return columns[label]

    outputs = _outputs(spec, model, frame, column if fast else None, finite=None)
    return _result_frame(spec, model, outputs, _open_index(frame["timestamp"].to_numpy(dtype="int64")))


def _outputs(
    spec: IndicatorSpec[Any],
    model: BaseModel,
    frame: pd.DataFrame,
    column: Column | None,
    *,
    finite: bool | None,
) -> dict[str, FloatArray]:
    """Every output of ``spec`` over ``frame`` as float arrays.

    The numpy version when ``column`` is given and the inputs are finite: ``finite`` says whether
    the whole frame is (None: check the indicator's inputs here).
    """
    if column is not None and spec.fast is not None:
        if finite is None:
            finite = all(bool(np.isfinite(column(name)).all()) for name in spec.fast_inputs)
        if finite:
            return spec.fast(column, model)
    if not len(frame):
        # pandas-ta cannot take an empty frame (psar reads the first candle).
        return {output: np.empty(0) for output in spec.outputs}
    series = spec.run(_library(), frame.reset_index(drop=True), model)
    return {output: np.asarray(series[output], dtype="float64") for output in spec.outputs}


def _open_index(opens: np.ndarray[Any, np.dtype[np.int64]]) -> pd.Index:
    index: pd.Index = pd.Index(opens, name="timestamp")
    return index


@functools.cache
def _output_labels(name: str) -> pd.Index:
    # Immutable, so one per indicator serves every result.
    return pd.Index(list(INDICATORS[name].outputs))


def _result_frame(
    spec: IndicatorSpec[Any], model: BaseModel, outputs: Mapping[str, FloatArray], index: pd.Index
) -> pd.DataFrame:
    # One 2-D block built at once: a dict of columns costs pandas several times as much.
    stacked = np.empty((len(spec.outputs), len(index)))
    for row, output in enumerate(spec.outputs):
        stacked[row] = outputs[output]
    result = pd.DataFrame(stacked.T, index=index, columns=_output_labels(spec.name), copy=False)
    result.attrs = {"indicator": spec.name, "params": model.model_dump(), "units": dict(spec.outputs)}
    return result


@dataclass
class _Window:
    """One candle frame as the memo knows it: its numbers, taken out of pandas once."""

    frame: pd.DataFrame  # held so that its id() is not reused while the window is remembered
    array: np.ndarray[tuple[int, int], np.dtype[np.float64]] | None = None
    finite: bool | None = None
    span: tuple[Hashable, ...] | None = None
    index: pd.Index | None = None


@dataclass
class _Entry:
    outputs: dict[str, FloatArray]
    spec: IndicatorSpec[Any]
    model: BaseModel
    result: pd.DataFrame | None = None


T = TypeVar("T")


class IndicatorMemo:
    """``compute`` results remembered by the window of candles they were computed over.

    A backtest computes the same indicators on the same candles again and again: the context and the
    tool calls of one cycle ask for the same EMA, and a 4h window stays the same for four 1h cycles.
    A window is known by its timeframe, length, and first and last open times, which identify its
    candles only where candles never change: share one memo within one symbol of one cycle's
    ``MarketView`` or of one backtest's ``HistorySource``, never across sources or symbols. Every
    value is still computed from that window alone, as ``compute`` would; ``derived`` remembers
    anything else computed from a window alone the same way.

    It also keeps the last few frames it saw as numpy arrays (pandas charges for every column
    lookup), which ``array`` and ``column`` hand out. Frames are recognised by identity: a frame given
    here must not be modified afterwards.

    Results are shared between callers, not copied: treat them as read-only (the arrays are). Safe
    to use from several threads (tool calls compute off the event loop).

    Args:
        capacity: results kept; the least recently used go first.
        frames: frames whose arrays are kept.
    """

    def __init__(self, capacity: int = 256, frames: int = 16) -> None:
        self.capacity = capacity
        self.frames = frames
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._windows: OrderedDict[int, _Window] = OrderedDict()
        self._params: dict[Hashable, tuple[IndicatorSpec[Any], BaseModel, tuple[Any, ...]]] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._entries)

    # -- windows ----------------------------------------------------------------------------------

    def _window(self, frame: pd.DataFrame) -> _Window:
        with self._lock:
            window = self._windows.get(id(frame))
            if window is not None and window.frame is frame:
                self._windows.move_to_end(id(frame))
                return window
            window = _Window(frame)
            self._windows[id(frame)] = window
            while len(self._windows) > self.frames:
                self._windows.popitem(last=False)
            return window

    def _array(self, window: _Window) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
        if window.array is None:
            # One conversion of the whole frame costs about what two column lookups do.
            array = window.frame.to_numpy(dtype="float64")
            array.flags.writeable = False
            window.array = array
        return window.array

    def array(self, frame: pd.DataFrame) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
        """``frame.to_numpy(dtype="float64")``, read-only, converted once per frame."""
        return self._array(self._window(frame))

    def column(self, frame: pd.DataFrame, label: str) -> FloatArray:
        """``frame[label]`` as read-only float64 (open times too: exact below 2**53 ms).

        Raises:
            KeyError: the frame has no such column.
        """
        window = self._window(frame)
        return self._array(window)[:, frame.columns.get_loc(label)]

    def _span(self, window: _Window, timeframe: str) -> tuple[Hashable, ...]:
        if window.span is None or window.span[0] != timeframe:
            opens = self._array(window)[:, window.frame.columns.get_loc("timestamp")]
            size = len(opens)
            window.span = (timeframe, size, int(opens[0]), int(opens[-1])) if size else (timeframe, 0)
        return window.span

    # -- results ----------------------------------------------------------------------------------

    def _validated(
        self, name: str, params: Mapping[str, Any] | BaseModel | None
    ) -> tuple[IndicatorSpec[Any], BaseModel, tuple[Any, ...]]:
        if isinstance(params, BaseModel):
            spec = _spec_for(name)
            model = validate_params(spec.name, params)
            return spec, model, tuple(model.model_dump().items())
        raw: Hashable = None
        if params is None or isinstance(params, Mapping):
            try:
                # Types too: 1, 1.0 and True are equal keys, but not necessarily equally valid.
                raw = (
                    name,
                    tuple(sorted((key, type(value), value) for key, value in (params or {}).items())),
                )
                hash(raw)
            except TypeError:  # a list or dict among the values: validation will say what is wrong
                raw = None
        found = self._params.get(raw) if raw is not None else None
        if found is None:
            spec = _spec_for(name)
            model = validate_params(spec.name, params)
            found = (spec, model, tuple(model.model_dump().items()))
            if raw is not None:
                if len(self._params) >= 1024:  # parameters come from a model: keep this bounded
                    self._params.clear()
                self._params[raw] = found
        return found

    def _lookup(self, key: Hashable) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return found

    def _store(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def _entry(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None,
        *,
        compute: bool,
    ) -> tuple[_Window, _Entry | None]:
        window = self._window(frame)
        spec, model, settings = self._validated(name, params)
        key = (self._span(window, timeframe), spec.name, settings)
        entry: _Entry | None = self._lookup(key)
        if entry is not None or not compute:
            return window, entry
        array = self._array(window)

        def column(label: str) -> FloatArray:
            return array[:, frame.columns.get_loc(label)]

        if window.finite is None:
            window.finite = bool(np.isfinite(array).all())
        outputs = _outputs(spec, model, frame, column, finite=window.finite)
        for values in outputs.values():
            values.flags.writeable = False
        entry = _Entry(outputs, spec, model)
        self._store(key, entry)
        return window, entry

    def _frame(self, window: _Window, entry: _Entry) -> pd.DataFrame:
        if entry.result is None:
            if window.index is None:
                opens = self._array(window)[:, window.frame.columns.get_loc("timestamp")]
                window.index = _open_index(opens.astype("int64"))
            entry.result = _result_frame(entry.spec, entry.model, entry.outputs, window.index)
        return entry.result

    def values(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
    ) -> Mapping[str, FloatArray]:
        """The outputs ``compute`` would give, as read-only arrays by output name (no DataFrame).

        Args:
            frame: the window, a validated candle frame of ``timeframe``.
            timeframe: the frame's candle interval (part of the window's identity).
            name, params: as for ``compute``.

        Raises:
            IndicatorError: as ``validate_params``.
        """
        _, entry = self._entry(frame, timeframe, name, params, compute=True)
        assert entry is not None
        return entry.outputs

    def compute(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
    ) -> pd.DataFrame:
        """``compute(frame, name, params)``, or its remembered result for the same window.

        Raises:
            IndicatorError: as ``validate_params``.
        """
        window, entry = self._entry(frame, timeframe, name, params, compute=True)
        assert entry is not None
        return self._frame(window, entry)

    def known(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
    ) -> bool:
        """Whether this indicator of this window is remembered (so that asking for it computes nothing).

        Raises:
            IndicatorError: as ``validate_params``.
        """
        return self._entry(frame, timeframe, name, params, compute=False)[1] is not None

    def summary_table(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None,
        lookback: int,
        reference_price: float,
        timeframe_ms: int | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """``summary_table(self.compute(...), ...)`` without building the result's DataFrame.

        Raises:
            IndicatorError: as ``validate_params``, or ``lookback`` is below 1.
            ValueError: the reference price is not a positive finite number.
        """
        window, entry = self._entry(frame, timeframe, name, params, compute=True)
        assert entry is not None
        opens = self._array(window)[:, frame.columns.get_loc("timestamp")]
        rows, decimals = _rounded_rows(
            opens[-lookback:].astype("int64").tolist() if lookback >= 1 else [],
            {output: entry.outputs[output] for output in entry.spec.outputs},
            entry.spec.outputs,
            lookback,
            reference_price,
            timeframe_ms,
        )
        return _table_text(rows, decimals), rows

    def derived(self, frame: pd.DataFrame, timeframe: str, label: Hashable, make: Callable[[], T]) -> T:
        """``make()``, remembered for this window under ``label``.

        For anything computed from the window's candles alone (a context's snapshot of them, a
        tool's summary): the same window gives the same value. The value is shared: return a copy
        to callers that might change it.
        """
        key = (self._span(self._window(frame), timeframe), "derived", label)
        found: T | None = self._lookup(key)
        if found is None:
            found = make()
            self._store(key, found)
        return found


# --- rounding and summaries -------------------------------------------------------------------------


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


def _time_text(ts_ms: int, timeframe_ms: int | None) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if timeframe_ms is not None and timeframe_ms >= _DAY_MS and ts_ms % _DAY_MS == 0:
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
    return _rounded_rows(list(result.index[start:]), columns, units, lookback, reference_price, timeframe_ms)


def _rounded_rows(
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
        row: dict[str, Any] = {"time": _time_text(int(ts), timeframe_ms), "timestamp": int(ts)}
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


def _table_text(rows: list[dict[str, Any]], decimals: Mapping[str, int]) -> str:
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
    return _table_text(rows, decimals), rows


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
    return _table_text(rows, decimals)
