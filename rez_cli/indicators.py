"""The pandas-ta bridge: an allow-list of indicators, their parameters, and compact summaries.

This is the only module that imports ``pandas_ta_classic``; it does so lazily, so ``rez --help`` and
every command that computes no indicator never pay for it. The library is always asked for its own
(pure pandas) implementation with ``talib=False``: TA-Lib is a test-only oracle, and every indicator
both implement is checked against it to 1e-6 (``tests/indicators``).

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
import math
import types
import warnings
from collections.abc import Callable, Mapping
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
    "IndicatorSpec",
    "Unit",
    "catalog",
    "compute",
    "label",
    "price_decimals",
    "round_value",
    "summarize",
    "summary_rows",
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


def _spec(
    name: str,
    description: str,
    params: type[P],
    outputs: Mapping[str, Unit],
    run: Callable[[Any, pd.DataFrame, P], Outputs],
    warmup: Callable[[P], int],
) -> IndicatorSpec[P]:
    return IndicatorSpec(name, description, params, outputs, run, warmup)


_PRICE, _OSC = Unit.PRICE, Unit.OSCILLATOR

_SPECS: tuple[IndicatorSpec[Any], ...] = (
    _spec(
        "ema",
        "Exponential moving average of close (trend, price units).",
        LengthParams,
        {"ema": _PRICE},
        _run_ema,
        lambda p: p.length - 1 + _settle_ema(p.length),
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
    frame: pd.DataFrame, name: str, params: Mapping[str, Any] | BaseModel | None = None
) -> pd.DataFrame:
    """Compute an allowed indicator over a candle frame.

    Args:
        frame: a validated candle frame (see ``rez_cli.market.candles``), oldest candle first.
        name: an indicator of ``INDICATORS``.
        params: its parameters, as for ``validate_params``.

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
    candles = frame.reset_index(drop=True)
    # pandas-ta cannot take an empty frame (psar reads the first candle).
    outputs = spec.run(_library(), candles, model) if len(candles) else {}
    result = pd.DataFrame(
        {
            column: outputs[column].to_numpy(dtype="float64") if column in outputs else np.empty(0)
            for column in spec.outputs
        },
        index=pd.Index(candles["timestamp"].to_numpy(dtype="int64"), name="timestamp"),
    )
    result.attrs = {"indicator": spec.name, "params": model.model_dump(), "units": dict(spec.outputs)}
    return result


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
    price_decimals(reference_price)
    window = result.tail(lookback)
    # A frame that did not come from compute has no units: treat its columns as prices.
    units: Mapping[str, Unit] = result.attrs.get("units", {})
    decimals = {
        str(column): _column_decimals(
            Unit(units.get(str(column), Unit.PRICE)),
            window[column].to_numpy(dtype="float64"),
            reference_price,
        )
        for column in window.columns
    }
    rows: list[dict[str, Any]] = []
    for ts, values in zip(window.index, window.itertuples(index=False), strict=True):
        row: dict[str, Any] = {"time": _time_text(int(ts), timeframe_ms), "timestamp": int(ts)}
        for column, value in zip(decimals, values, strict=True):
            number = float(value)
            if not math.isfinite(number):
                row[column] = None
            elif decimals[column] == 0:
                row[column] = round(number)
            else:
                row[column] = _clean(round(number, decimals[column]))
        rows.append(row)
    return rows, decimals


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
